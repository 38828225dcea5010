"""minerwatch.yaml: destinations, routing, retry policy, secret references that never leak."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from minerwatch.errors import ConfigError
from minerwatch.notify.config import (
    PagerDutyDestination,
    RetryPolicy,
    SecretError,
    load_config,
    parse_config,
    redact_url,
    scrub,
)

REPO = Path(__file__).resolve().parents[2]

FULL = """
watch:                       # another part of MinerWatch: ignored here
  sqs: https://sqs.us-east-1.amazonaws.com/111111111111/q
retry: {max_attempts: 5, base_delay: 500ms, max_delay: 2m, jitter: equal}
console_url: https://mw.example.com/alerts/{alert_id}
destinations:
  - name: secops-slack
    type: slack
    url_env: MW_TEST_SLACK_URL
    route: {severities: [critical, high]}
  - name: siem
    type: webhook
    url: https://siem.example.com/ingest
    secret_file: /run/secrets/siem
    timeout: 3s
  - name: oncall
    type: pagerduty
    routing_key_env: MW_TEST_PD_KEY
    route: {priorities: [P1], rules: ["aws-guardduty-*"]}
    retry: {max_attempts: 12}
  - name: topic
    type: sns
    topic_arn: arn:aws:sns:eu-west-1:111111111111:alerts.fifo
  - name: mail
    type: email
    host: smtp.example.com
    username: minerwatch
    password_env: MW_TEST_SMTP_PASSWORD
    from: MinerWatch <minerwatch@example.com>
    to: [secops@example.com]
"""


def test_full_config_loads_with_types_defaults_and_overrides():
    cfg = parse_config(FULL, "minerwatch.yaml")
    assert [d.name for d in cfg.destinations] == ["secops-slack", "siem", "oncall", "topic", "mail"]
    assert [d.type for d in cfg.destinations] == ["slack", "webhook", "pagerduty", "sns", "email"]
    assert cfg.retry == RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=120, jitter="equal")
    siem, oncall, topic, mail = cfg.destinations[1:]
    assert siem.timeout == 3.0 and siem.updates and siem.status_changes
    assert cfg.retry_for(oncall).max_attempts == 12 and cfg.retry_for(siem).max_attempts == 5
    assert isinstance(oncall, PagerDutyDestination) and oncall.severity_map["high"] == "error"
    assert topic.fifo and topic.region_name == "eu-west-1" and not topic.updates
    assert mail.smtp_port == 587 and mail.sender.endswith("<minerwatch@example.com>")
    assert cfg.alert_link("mw-1") == "https://mw.example.com/alerts/mw-1"


def test_the_example_file_at_the_repo_root_is_valid():
    cfg = load_config(REPO / "minerwatch.example.yaml")
    assert {d.type for d in cfg.destinations} == {"slack", "webhook", "pagerduty", "sns", "email"}


def test_routes_match_severity_priority_and_rule_patterns():
    cfg = parse_config(FULL)
    slack, _, oncall = cfg.destinations[:3]
    record = {"severity": "critical", "priority": "P1", "rule_id": "aws-guardduty-crypto-mining"}
    assert slack.route.matches(record) and oncall.route.matches(record)
    assert not slack.route.matches({**record, "severity": "medium"})
    assert not oncall.route.matches({**record, "priority": "P2"})
    assert not oncall.route.matches({**record, "rule_id": "custom-rule"})
    min_high = parse_config("destinations: [{name: x, type: pagerduty, routing_key_env: K, "
                            "route: {min_severity: high}}]").destinations[0].route
    assert min_high.matches({"severity": "critical"}) and min_high.matches({"severity": "high"})
    assert not min_high.matches({"severity": "medium"}) and not min_high.matches({"severity": None})


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("destinations:\n  - name: s\n    type: slack\n    url: https://hooks.slack.com/services/T/B/X\n", 4,
         "'url' is a secret"),
        ("destinations:\n  - name: p\n    type: pagerduty\n    routing_key: abc123\n", 4, "'routing_key' is a secret"),
        ("destinations:\n  - name: w\n    type: webhook\n    url: https://x\n    secret: hunter2\n", 5,
         "'secret' is a secret"),
        ("destinations:\n  - name: w\n    type: webhook\n    url: https://x\n", 2, "secret_env or secret_file"),
        ("destinations:\n  - name: w\n    type: webhook\n    url: https://x\n    secret_env: A\n    bogus: 1\n", 6,
         "bogus: unknown setting"),
        ("destinations:\n  - name: x\n    type: teams\n", 2, "'type' must be one of"),
        ("destinations:\n  - name: x\n", 2, "needs a 'type'"),
        ("retry:\n  max_attempts: 0\n", 2, "max_attempts"),
        ("retry:\n  base_delay: soon\n", 2, "not a duration"),
        ("destinations:\n  - {name: a, type: sns, topic_arn: 'arn:aws:sns:us-east-1:1:t'}\n", 2, "topic_arn"),
        ("destinations:\n  - {name: a, type: pagerduty, routing_key_env: K}\n"
         "  - {name: a, type: pagerduty, routing_key_env: K}\n", 3, "used twice (first at line 2)"),
        ("destinations: [\n", 2, "invalid YAML"),
    ],
)
def test_config_errors_carry_file_and_line(text, line, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "mw.yaml")
    err = info.value
    assert err.file == "mw.yaml" and err.line == line, err.format()
    assert fragment in err.message, err.message


def test_secrets_resolve_from_env_and_file_and_never_show_in_repr(tmp_path, monkeypatch):
    secret_path = tmp_path / "pd.key"
    secret_path.write_text("R0UT1NGK3Y-from-file\n")
    monkeypatch.setenv("MW_TEST_SLACK_URL", "https://hooks.slack.com/services/T0/B0/XXXXSECRETXXXX")
    cfg = parse_config(
        "destinations:\n"
        "  - {name: s, type: slack, url_env: MW_TEST_SLACK_URL}\n"
        f"  - {{name: p, type: pagerduty, routing_key_file: {secret_path}}}\n"
    )
    slack, pd = cfg.destinations
    assert slack.url.resolve() == "https://hooks.slack.com/services/T0/B0/XXXXSECRETXXXX"
    assert pd.routing_key.resolve() == "R0UT1NGK3Y-from-file"
    shown = repr(cfg) + str(cfg) + cfg.model_dump_json()
    assert "XXXXSECRETXXXX" not in shown and "R0UT1NGK3Y" not in shown
    assert "MW_TEST_SLACK_URL" in shown  # the reference is shown, so people can see where it comes from


def test_missing_secrets_name_the_source_not_a_value(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_TEST_MISSING", raising=False)
    cfg = parse_config(
        f"destinations:\n  - {{name: s, type: slack, url_env: MW_TEST_MISSING}}\n"
        f"  - {{name: p, type: pagerduty, routing_key_file: {tmp_path / 'nope'}}}\n"
    )
    with pytest.raises(SecretError, match="MW_TEST_MISSING is not set"):
        cfg.destinations[0].url.resolve()
    with pytest.raises(SecretError, match="cannot read secret file"):
        cfg.destinations[1].routing_key.resolve()


def test_redaction_keeps_only_scheme_host_and_port():
    url = "https://hooks.slack.com/services/T000/B000/abcdefSECRET?token=zzz"
    assert redact_url(url) == "https://hooks.slack.com/…"
    assert redact_url("http://user:pw@127.0.0.1:8080/x") == "http://127.0.0.1:8080/…"
    assert redact_url("https://example.com") == "https://example.com"
    text = f"POST {url} failed; key=R0UTING"
    cleaned = scrub(text, [url, "R0UTING"])
    assert "abcdefSECRET" not in cleaned and "R0UTING" not in cleaned and "hooks.slack.com" in cleaned


def test_config_loading_logs_nothing_secret(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MW_TEST_SLACK_URL", "https://hooks.slack.com/services/T0/B0/LOGLEAK")
    path = tmp_path / "minerwatch.yaml"
    path.write_text(FULL)
    with caplog.at_level(logging.DEBUG):
        cfg = load_config(path)
        cfg.destinations[0].url.resolve()
    assert "LOGLEAK" not in caplog.text
