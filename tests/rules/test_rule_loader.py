"""The rule-document loader: the seed loaded verbatim, field mapping, warnings and errors with positions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minerwatch.errors import RuleError
from minerwatch.rules import Rule, load_rule, parse_rule, parse_throttle, rule_id_for

MINIMAL = """# Minimal Rule

## Severity
**High**

## Query
```
from cloud.aws.guardduty
where type = "x"
```

## Alert Configuration
- **Throttling**: 1 alert per instance per 1 hour
"""


@pytest.fixture(scope="module")
def seed(seed_path: Path) -> Rule:
    return load_rule(seed_path)


def test_seed_metadata(seed: Rule, seed_path: Path) -> None:
    assert seed.id == "aws-guardduty-cryptocurrency-mining-detection"
    assert seed.name == "AWS - GuardDuty Cryptocurrency Mining Detection"
    assert seed.path == str(seed_path)
    assert seed.severity == "critical"
    assert seed.priority == "P1"
    assert seed.description.startswith("Detects cryptocurrency mining activity identified by AWS GuardDuty")


def test_seed_mitre(seed: Rule) -> None:
    assert [(t.id, t.name) for t in seed.mitre.tactics] == [
        ("TA0040", "Impact"),
        ("TA0042", "Resource Hijacking"),
    ]
    assert [(t.id, t.name) for t in seed.mitre.techniques] == [("T1496", "Resource Hijacking")]


def test_seed_query_and_position(seed: Rule, seed_path: Path) -> None:
    lines = seed_path.read_text().split("\n")
    assert seed.query_line == 16
    assert seed.query_col_offset == 0
    assert lines[seed.query_line - 1] == "from cloud.aws.guardduty"
    # the query is the fence body verbatim: lines 16..34 of the file
    assert seed.query == "\n".join(lines[15:34])
    assert seed.query.endswith("group by accountid, instance_id, type")
    assert seed.table == "cloud.aws.guardduty"


def test_seed_alert_configuration(seed: Rule) -> None:
    assert seed.alert.trigger == "Any cryptocurrency mining detection"
    assert seed.alert.severity == "critical"
    assert seed.alert.priority == "P1"
    assert (seed.throttle.count, seed.throttle.key, seed.throttle.window_seconds) == (
        1,
        ["accountid", "instance_id"],
        7200,
    )


def test_seed_iocs(seed: Rule) -> None:
    assert seed.iocs.domains == ["moneropool.com", "minergate.com", "nanopool.org", "ethermine.org"]
    assert seed.iocs.ports == [3333, 4444, 14444]
    assert seed.iocs.ips == []


def test_seed_steps(seed: Rule) -> None:
    assert len(seed.recommended_actions) == 11
    assert seed.recommended_actions[0] == "IMMEDIATE: Isolate affected EC2 instance"
    assert seed.recommended_actions[-1] == "Reset all credentials that had access to instance"
    assert len(seed.response_playbook) == 12
    assert seed.response_playbook[1] == "Immediately isolate instance (modify security groups)"
    assert len(seed.investigation_steps) == 7
    assert seed.investigation_steps[3] == "Review running processes (if accessible)"


def test_seed_false_positives_and_lists(seed: Rule) -> None:
    assert seed.false_positives.considerations == [
        "Authorized blockchain development/testing",
        "Legitimate cryptocurrency operations",
        "Approved mining pools for research",
    ]
    assert seed.false_positives.tuning == [
        "Whitelist approved instances/accounts for crypto activities",
        "Exclude dev/test environments with documented crypto work",
        "Very low false positive rate for production",
    ]
    assert len(seed.enrichment) == 6
    assert seed.indicators[0] == "High CPU utilization (80-100%)"
    assert len(seed.cost_impact) == 4
    assert "Use instance metadata service v2 (IMDSv2)" in seed.prevention
    assert seed.notes[-1] == "Consider account-wide security review"


def test_seed_every_section_kept_verbatim(seed: Rule, seed_path: Path) -> None:
    text = seed_path.read_text()
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert list(seed.sections) == headings
    assert len(headings) == 15
    assert seed.sections["Notes"] == "\n".join(text.split("\n")[127:132])
    assert seed.sections["DEVO Query"].startswith("```sql\nfrom cloud.aws.guardduty")
    assert seed.section_lines["Mining Pool Domains/IPs to Monitor"] == 96


def test_seed_warnings_point_at_lines(seed: Rule) -> None:
    # TA0042 is "Resource Development" in ATT&CK; the seed calls it Resource Hijacking.
    assert [(w.line, "TA0042" in w.message) for w in seed.warnings] == [(10, True)]
    assert seed.warnings[0].format("x.md").startswith("x.md:10: warning[mitre-name]:")


def test_to_json_shape(seed: Rule) -> None:
    data = seed.to_json()
    for key in (
        "id", "name", "severity", "priority", "mitre", "query", "throttle", "iocs", "recommended_actions",
        "response_playbook", "investigation_steps", "false_positives", "enrichment", "indicators",
        "cost_impact", "prevention", "notes", "sections", "tests", "warnings", "query_line", "alert",
    ):
        assert key in data, key
    assert data["throttle"] == {"count": 1, "key": ["accountid", "instance_id"], "window_seconds": 7200}
    assert data["mitre"]["tactics"][0] == {"id": "TA0040", "name": "Impact"}
    assert data["iocs"]["ports"] == [3333, 4444, 14444]
    assert data["false_positives"]["tuning"][0].startswith("Whitelist")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("rules/aws-guardduty-crypto-mining.md", "aws-guardduty-crypto-mining"),
        ("/x/000_874a6878789f665b.txt", "aws-guardduty-cryptocurrency-mining-detection"),
        ("My_Rule.MD", "my-rule"),
        ("rule.v2.md", "aws-guardduty-cryptocurrency-mining-detection"),
        (None, "aws-guardduty-cryptocurrency-mining-detection"),
    ],
)
def test_rule_id(path: str | None, expected: str) -> None:
    assert rule_id_for(path, "AWS - GuardDuty Cryptocurrency Mining Detection") == expected


def test_rule_id_title_slug_folds_accents() -> None:
    assert rule_id_for(None, "Détection: Crypto  Mining!") == "detection-crypto-mining"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 alert per instance per 2 hours", (1, ["accountid", "instance_id"], 7200)),
        ("3 alerts per account per 30 minutes", (3, ["accountid"], 1800)),
        ("1 alert per resource per day", (1, ["accountid", "resource_id"], 86400)),
        ("one alert per instances every 90 seconds", (1, ["accountid", "instance_id"], 90)),
        ("1 alert per EKS cluster per 1 hour", (1, ["accountid", "eks_cluster_id"], 3600)),
        ("an alert per user_id per 10 min", (1, ["accountid", "user_id"], 600)),
        ("2 alerts per function per 1.5 h", (2, ["accountid", "function_id"], 5400)),
    ],
)
def test_parse_throttle(text: str, expected: tuple[int, list[str], int]) -> None:
    t = parse_throttle(text)
    assert t is not None
    assert (t.count, t.key, t.window_seconds) == expected


@pytest.mark.parametrize("text", ["once in a while", "0 alerts per instance per hour", "1 alert per hour"])
def test_parse_throttle_rejects(text: str) -> None:
    assert parse_throttle(text) is None


def _with_alert(lines: str) -> str:
    return MINIMAL.split("## Alert Configuration")[0] + "## Alert Configuration\n" + lines


def test_explicit_throttle_key_overrides_entity() -> None:
    rule = parse_rule(
        _with_alert("- Throttling: 1 alert per instance per 2 hours\n- Throttle key: `accountid`, region\n")
    )
    assert rule.throttle.key == ["accountid", "region"]
    assert rule.throttle.window_seconds == 7200


def test_missing_throttling_defaults_with_warning() -> None:
    rule = parse_rule(_with_alert("- **Priority**: P2\n"))
    assert (rule.throttle.count, rule.throttle.key, rule.throttle.window_seconds) == (1, ["accountid"], 3600)
    assert rule.priority == "P2"
    assert any("Throttling" in w.message and w.line == 12 for w in rule.warnings)


def test_unparseable_throttling_warns_at_its_line() -> None:
    rule = parse_rule(_with_alert("- **Throttling**: sometimes\n"))
    assert rule.throttle.window_seconds == 3600
    assert [w.line for w in rule.warnings if "not understood" in w.message] == [13]


def test_missing_alert_section_defaults_with_warning() -> None:
    rule = parse_rule(MINIMAL.split("## Alert Configuration")[0])
    assert rule.throttle.key == ["accountid"]
    assert rule.alert.severity == "high"
    assert any("Alert Configuration" in w.message for w in rule.warnings)


def test_unknown_section_kept_with_warning_and_line() -> None:
    text = MINIMAL + "\n## Runbook Links\nSee https://example.com/runbook\n\n- a\n- b\n"
    rule = parse_rule(text, "rules/x.md")
    assert rule.sections["Runbook Links"] == "See https://example.com/runbook\n\n- a\n- b"
    warnings = [w for w in rule.warnings if "Runbook Links" in w.message]
    assert len(warnings) == 1
    assert warnings[0].line == 15
    assert "unknown section 'Runbook Links' kept as text" in warnings[0].message


def test_duplicate_sections_are_both_kept() -> None:
    rule = parse_rule(MINIMAL + "\n## Notes\n- one\n\n## Notes\n- two\n")
    assert rule.sections["Notes"] == "- one"
    assert rule.sections["Notes (2)"] == "- two"
    assert rule.notes == ["one", "two"]
    assert any("duplicate section 'Notes'" in w.message and w.line == 18 for w in rule.warnings)


def test_preamble_and_stray_title_are_kept_with_warnings() -> None:
    text = "<!-- owner: secops -->\n" + MINIMAL.replace("## Severity", "Intro text.\n\n## Severity", 1)
    text += "\n## Notes\n# Another Title\n- n1\n"
    rule = parse_rule(text)
    assert rule.name == "Minimal Rule"
    assert rule.preamble == "<!-- owner: secops -->\n\nIntro text."
    assert rule.sections["Notes"] == "# Another Title\n- n1"
    assert rule.notes == ["n1"]
    messages = {w.line: w.message for w in rule.warnings}
    assert "preamble" in messages[1]
    assert "second '# Another Title'" in messages[19]


def test_title_in_blockquote_is_not_a_title() -> None:
    with pytest.raises(RuleError):
        parse_rule("> # Quoted\n\n## Query\n```\nfrom t\n```\n")


def test_no_title_is_an_error() -> None:
    with pytest.raises(RuleError) as exc:
        parse_rule(MINIMAL.replace("# Minimal Rule\n", ""), "rules/bad.md")
    assert exc.value.file == "rules/bad.md"
    assert exc.value.line == 2
    assert "Title" in exc.value.message


def test_no_query_section_is_an_error() -> None:
    text = "# T\n\n## Severity\nlow\n\n## Notes\n- x\n"
    with pytest.raises(RuleError) as exc:
        parse_rule(text, "r.md")
    assert (exc.value.file, exc.value.line) == ("r.md", 1)
    assert "Query" in exc.value.message


def test_query_section_without_fence_is_an_error() -> None:
    text = "# T\n\n## Severity\nlow\n\n## DEVO Query\nfrom cloud.aws.guardduty\n"
    with pytest.raises(RuleError) as exc:
        parse_rule(text, "r.md")
    assert exc.value.line == 6
    assert "DEVO Query" in exc.value.message


def test_empty_query_is_an_error() -> None:
    with pytest.raises(RuleError) as exc:
        parse_rule("# T\n\n## Severity\nlow\n\n## Query\n```\n\n```\n", "r.md")
    assert exc.value.line == 7


def test_unrecognised_severity_is_an_error_with_position() -> None:
    with pytest.raises(RuleError) as exc:
        parse_rule(MINIMAL.replace("**High**", "**Severe**"), "rules/bad.md")
    err = exc.value
    assert (err.file, err.line, err.col) == ("rules/bad.md", 4, 3)
    assert "Severe" in err.message
    assert str(err).startswith("rules/bad.md:4:3: severity 'Severe' not recognised")
    assert "^" in str(err)


def test_unrecognised_alert_severity_is_an_error() -> None:
    with pytest.raises(RuleError) as exc:
        parse_rule(_with_alert("- **Severity**: Extreme\n"), "r.md")
    assert exc.value.line == 13


def test_severity_without_bold_and_alert_severity_mismatch() -> None:
    text = MINIMAL.replace("**High**", "Medium") + "- **Severity**: High\n"
    rule = parse_rule(text)
    assert rule.severity == "medium"
    assert rule.alert.severity == "high"
    assert any("differs" in w.message and w.line == 12 for w in rule.warnings)


def test_iocs_domains_ips_cidrs_ports() -> None:
    text = MINIMAL + (
        "\n## Mining Pool Domains/IPs to Monitor\n"
        "- Pool.SupportXMR.com.\n"
        "- `xmrpool.eu` (Monero)\n"
        "- 203.0.113.7, 198.51.100.0/24\n"
        "- 2001:db8::/32\n"
        "- Stratum ports 3333 and 5555 (also 99999 is not a port)\n"
        "- something vague\n"
    )
    rule = parse_rule(text)
    assert rule.iocs.domains == ["pool.supportxmr.com", "xmrpool.eu"]
    assert rule.iocs.ips == ["203.0.113.7", "198.51.100.0/24", "2001:db8::/32"]
    assert rule.iocs.ports == [3333, 5555]
    assert [w.line for w in rule.warnings if "IOC entry" in w.message] == [21]


def test_mitre_items_checked() -> None:
    text = MINIMAL + (
        "\n## MITRE ATT&CK\n"
        "- **Tactic**: Impact (TA0040), Resource Hijacking (T1496)\n"
        "- **Technique**: none listed\n"
        "- Platform: AWS\n"
    )
    rule = parse_rule(text)
    assert [t.id for t in rule.mitre.tactics] == ["TA0040"]
    assert [t.id for t in rule.mitre.techniques] == ["T1496"]
    by_line = {w.line: w.message for w in rule.warnings}
    assert "T1496 is a technique id" in by_line[16]
    assert "no ATT&CK ids" in by_line[17]
    assert "not understood" in by_line[18]


def test_tuning_section_and_considerations() -> None:
    text = MINIMAL + (
        "\n## False Positive Considerations\n- research\n\n"
        "## Tuning Recommendations\n- allowlist the lab account\n"
    )
    rule = parse_rule(text)
    assert rule.false_positives.considerations == ["research"]
    assert rule.false_positives.tuning == ["allowlist the lab account"]


def test_indented_fence_and_crlf_keep_positions() -> None:
    fence = '```\nfrom cloud.aws.guardduty\nwhere type = "x"\n```'
    assert fence in MINIMAL
    text = MINIMAL.replace(fence, "  ```sql\n  from t\n  where x\n  ```")
    rule = parse_rule(text.replace("\n", "\r\n"))
    assert rule.query == "from t\nwhere x"
    assert rule.query_line == 8
    assert rule.query_col_offset == 2
    assert rule.table == "t"


def test_tests_section_parsed_with_lines(tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "a.jsonl").write_text("{}\n")
    doc = tmp_path / "my-rule.md"
    doc.write_text(
        MINIMAL
        + "\n## Tests\n```yaml\n"
        + "- name: a\n  file: fixtures/a.jsonl\n  expect: {matches: 2, alerts: 1}\n"
        + "- name: b\n  file: fixtures/b.jsonl\n  allowlist: fixtures/allow.yaml\n"
        + "  expect:\n    matches: 0\n    alerts: 0\n"
        + "```\n"
    )
    rule = load_rule(doc)
    assert rule.id == "my-rule"
    assert [(t.name, t.expect_matches, t.expect_alerts, t.line) for t in rule.tests] == [
        ("a", 2, 1, 17),
        ("b", 0, 0, 20),
    ]
    assert rule.tests[0].fixture_path(rule.path) == tmp_path / "fixtures" / "a.jsonl"
    assert rule.tests[1].allowlist_path(rule.path) == tmp_path / "fixtures" / "allow.yaml"
    missing = sorted((w.line, w.message) for w in rule.warnings if "not found" in w.message)
    assert [line for line, _ in missing] == [20, 20]


@pytest.mark.parametrize(
    ("block", "line", "fragment"),
    [
        ("- name: a\n  file: [unclosed\n", 18, "not valid YAML"),
        ("name: a\n", 17, "YAML list"),
        ("- name: a\n  file: f.jsonl\n", 17, "expect"),
        ("- name: a\n  file: f.jsonl\n  expect: {matches: -1, alerts: 0}\n", 17, "expect.matches"),
        ("- name: a\n  file: /etc/passwd\n  expect: {matches: 0, alerts: 0}\n", 17, "inside the rule"),
        ("- name: a\n  file: ../x.jsonl\n  expect: {matches: 0, alerts: 0}\n", 17, "inside the rule"),
        (
            "- {name: a, file: f.jsonl, expect: {matches: 0, alerts: 0}}\n"
            "- {name: a, file: g.jsonl, expect: {matches: 0, alerts: 0}}\n",
            18,
            "duplicate",
        ),
    ],
)
def test_malformed_tests_are_errors_with_lines(block: str, line: int, fragment: str) -> None:
    with pytest.raises(RuleError) as exc:
        parse_rule(MINIMAL + "\n## Tests\n```yaml\n" + block + "```\n", "r.md")
    assert exc.value.line == line
    assert fragment in exc.value.message


def test_load_rule_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RuleError) as exc:
        load_rule(tmp_path / "missing.md")
    assert exc.value.file == str(tmp_path / "missing.md")
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"# T\n\n## Severity\n\xff\xfe\n")
    with pytest.raises(RuleError) as exc:
        load_rule(bad)
    assert exc.value.line == 4
