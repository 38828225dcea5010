"""Where indicators come from: the rule document, the bundled domain list and IOC files (with file:line errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerwatch.enrich.iocs import (
    BUNDLED_DOMAINS_SOURCE,
    STRATUM_PORTS,
    STRATUM_PORTS_SOURCE,
    IocSet,
    bundled,
    default_for_rule,
    from_rule,
    load_ioc_file,
    merge,
    parse_indicator,
)
from minerwatch.errors import ConfigError
from minerwatch.rules.loader import load_rule, parse_rule
from minerwatch.rules.shipped import DEFAULT_RULE

# -- bundled ---------------------------------------------------------------------------------------------------


def test_bundled_list_is_the_public_sample_verbatim(samples: Path) -> None:
    sample = (samples / "ioc" / "crypto_mining_domains.txt").read_text(encoding="utf-8").split()
    b = bundled()
    domains = [e.value for e in b.of_kind("domain")]
    assert domains == sample and len(domains) == 251
    assert {e.source for e in b.of_kind("domain")} == {BUNDLED_DOMAINS_SOURCE}
    assert {int(e.value) for e in b.of_kind("port")} == STRATUM_PORTS == {3333, 4444, 14444}
    assert {e.source for e in b.of_kind("port")} == {STRATUM_PORTS_SOURCE}
    assert b is bundled()  # loaded once


def test_bundled_file_keeps_its_attribution() -> None:
    data = Path(__file__).resolve().parents[2] / "minerwatch" / "catalog" / "data" / "crypto_mining_domains.txt"
    header = [ln for ln in data.read_text(encoding="utf-8").splitlines() if ln.startswith("#")]
    text = "\n".join(header)
    for needle in (
        "panther-labs/panther-analysis",
        "CRYPTO_MINING_DOMAINS",
        "daa10c8",
        "Apache License 2.0",
        "SigmaHQ",
    ):
        assert needle in text


def test_bundled_matches_real_pool_names() -> None:
    b = bundled()
    hit = b.match_domain("xmr-eu1.nanopool.org.")
    assert hit is not None and hit.indicator == "xmr-eu1.nanopool.org" and hit.source == BUNDLED_DOMAINS_SOURCE
    assert b.match_domain("sub.xmr-eu1.nanopool.org").indicator == "xmr-eu1.nanopool.org"  # type: ignore[union-attr]
    assert b.match_domain("eu.nanopool.org").indicator == "nanopool.org"  # type: ignore[union-attr]
    assert b.match_domain("nanopool.org.attacker.example") is None
    assert b.match_port(14444) is not None and b.match_port(5555) is None


# -- rules -----------------------------------------------------------------------------------------------------


def test_from_the_seed_rule(seed_path: Path) -> None:
    rule = load_rule(seed_path)
    iocs = from_rule(rule)
    source = f"rule:{rule.id}"
    assert [e.value for e in iocs.of_kind("domain")] == [
        "moneropool.com",
        "minergate.com",
        "nanopool.org",
        "ethermine.org",
    ]
    assert iocs.stratum_ports == {3333, 4444, 14444}
    assert {e.source for e in iocs} == {source}
    # ethermine.org is in the rule, not in the bundled list: its hit names the rule only.
    assert "ethermine.org" not in bundled().domains
    hit = default_for_rule(rule).match_domain("us1.ethermine.org")
    assert hit is not None and hit.sources == (source,)
    both = default_for_rule(rule).match_domain("x.nanopool.org")
    assert both is not None and both.sources == (source, BUNDLED_DOMAINS_SOURCE)


def test_default_for_rule_adds_the_rules_ports_to_the_stratum_defaults() -> None:
    extended = DEFAULT_RULE.parent / "aws-guardduty-crypto-mining-extended.md"
    rule = load_rule(extended)
    assert default_for_rule(rule).stratum_ports == STRATUM_PORTS | set(rule.iocs.ports)
    assert merge(from_rule(rule), bundled()) == default_for_rule(rule)


RULE_WITH_IPS = """# Test rule

## Severity
**HIGH**

## DEVO Query
```sql
from cloud.aws.guardduty where severity >= 7
```

## Mining Pool Domains/IPs to Monitor
- *.pool.example.com
- 203.0.113.0/24
- 2001:db8::7
- Stratum protocol (port 3333, 5555)
"""


def test_from_rule_with_wildcards_networks_and_ports() -> None:
    rule = parse_rule(RULE_WITH_IPS, "test-rule.md")
    iocs = from_rule(rule)
    assert [(e.kind, e.value) for e in iocs] == [
        ("domain", "pool.example.com"),
        ("cidr", "203.0.113.0/24"),
        ("ip", "2001:db8::7"),
        ("port", "3333"),
        ("port", "5555"),
    ]
    assert iocs.match_ip("203.0.113.9").source == f"rule:{rule.id}"  # type: ignore[union-attr]


def test_from_rule_rejects_a_bad_model_value() -> None:
    rule = parse_rule(RULE_WITH_IPS, "test-rule.md")
    rule.iocs.ports.append(70000)
    with pytest.raises(ConfigError) as info:
        from_rule(rule)
    assert info.value.file == "test-rule.md" and "70000" in info.value.message


# -- IOC files -------------------------------------------------------------------------------------------------


def test_plain_text_file(tmp_path: Path) -> None:
    f = tmp_path / "iocs.txt"
    f.write_text(
        "# mining pools seen in incident 42\n"
        "\n"
        "Pool.Example.COM.\n"
        "203.0.113.0/24   # their stratum proxies\n"
        "198.51.100.7\n"
        "2001:db8::/48\n"
        "3333\n"
        "*.moneroocean.stream\n"
        "bücher.example\n",
        encoding="utf-8",
    )
    iocs = load_ioc_file(f)
    assert [(e.kind, e.value, e.source) for e in iocs] == [
        ("domain", "pool.example.com", f"file:{f}:3"),
        ("cidr", "203.0.113.0/24", f"file:{f}:4"),
        ("ip", "198.51.100.7", f"file:{f}:5"),
        ("cidr", "2001:db8::/48", f"file:{f}:6"),
        ("port", "3333", f"file:{f}:7"),
        ("domain", "moneroocean.stream", f"file:{f}:8"),
        ("domain", "xn--bcher-kva.example", f"file:{f}:9"),
    ]
    assert iocs.match_ip("::ffff:203.0.113.200").source == f"file:{f}:4"  # type: ignore[union-attr]


def test_csv_with_type_value_description(tmp_path: Path) -> None:
    f = tmp_path / "feed.csv"
    f.write_text(
        "\ufefftype,value,description\n"
        "domain,pool.example.com,main pool\n"
        "# a comment row\n"
        "ip,203.0.113.0/24,\n"
        "cidr,198.51.100.7,single host as a network\n"
        ',2001:db8::1,"inferred, quoted, with commas"\n'
        "port,4444,\n"
        '"domain","quoted.example","multi\nline description"\n'
        "PORT,5555,case-insensitive type\n",
        encoding="utf-8",
    )
    iocs = load_ioc_file(f)
    assert [(e.kind, e.value, e.source.rsplit(":", 1)[1], e.description) for e in iocs] == [
        ("domain", "pool.example.com", "2", "main pool"),
        ("cidr", "203.0.113.0/24", "4", None),
        ("cidr", "198.51.100.7/32", "5", "single host as a network"),
        ("ip", "2001:db8::1", "6", "inferred, quoted, with commas"),
        ("port", "4444", "7", None),
        ("domain", "quoted.example", "8", "multi\nline description"),
        ("port", "5555", "10", "case-insensitive type"),
    ]
    assert iocs.entries[0].to_json() == {
        "kind": "domain",
        "value": "pool.example.com",
        "source": f"file:{f}:2",
        "description": "main pool",
    }


def test_csv_with_only_a_value_column_is_recognised_by_its_header(tmp_path: Path) -> None:
    f = tmp_path / "values.txt"
    f.write_text("# exported\nvalue\npool.example.com\n10.0.0.0/8\n14444\n", encoding="utf-8")
    assert [(e.kind, e.value) for e in load_ioc_file(f)] == [
        ("domain", "pool.example.com"),
        ("cidr", "10.0.0.0/8"),
        ("port", "14444"),
    ]


def test_empty_and_comment_only_files_are_empty_sets(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("", encoding="utf-8")
    (tmp_path / "b.txt").write_text("# nothing yet\n\n", encoding="utf-8")
    assert load_ioc_file(tmp_path / "a.txt") == IocSet() == load_ioc_file(tmp_path / "b.txt")


@pytest.mark.parametrize(
    ("name", "content", "line", "message"),
    [
        ("a.txt", "pool.example.com\n\nnot a domain\n", 3, "one value per line"),
        ("b.txt", "# c\nexample\n", 2, "at least two labels"),
        ("c.txt", "ok.example\n70000\n", 2, "outside 1-65535"),
        ("d.txt", "0\n", 1, "outside 1-65535"),
        ("e.txt", "10.0.0.0/33\n", 1, "not a valid IP address or CIDR"),
        ("f.txt", "1.2.3.256\n", 1, "not a valid IP, CIDR, port or domain"),
        ("g.txt", "bad_tld.exa_mple\n", 1, "not a valid IP, CIDR, port or domain"),
        ("h.txt", "-pool.example.com\n", 1, "not a valid IP, CIDR, port or domain"),
        ("i.txt", ("a" * 64) + ".example\n", 1, "not a valid IP, CIDR, port or domain"),
        ("j.csv", "pool.example.com\n", 1, "needs a header row with a 'value' column"),
        ("k.csv", "type,value\ndomain,ok.example\nhost,x.example\n", 3, "unknown type 'host'"),
        ("l.csv", "type,value\nip,pool.example.com\n", 2, "not a valid IP address or CIDR"),
        ("m.csv", "type,value\nport,http\n", 2, "not a port number"),
        ("n.csv", "type,value\ndomain,\n", 2, "empty value"),
        ("o.csv", 'type,value,description\ndomain,a.example,"two\nlines"\ndomain,bad..example,\n', 4, "not a valid"),
    ],
)
def test_file_errors_name_file_and_line(tmp_path: Path, name: str, content: str, line: int, message: str) -> None:
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_ioc_file(f)
    err = info.value
    assert (err.file, err.line) == (str(f), line)
    assert message in err.message
    assert err.format().startswith(f"{f}:{line}: ")


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_ioc_file(tmp_path / "missing.txt")
    assert missing.value.file == str(tmp_path / "missing.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError):
        load_ioc_file(binary)


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("203.0.113.7", None, ("ip", "203.0.113.7")),
        ("203.0.113.7/24", None, ("cidr", "203.0.113.0/24")),
        ("2001:DB8::1", None, ("ip", "2001:db8::1")),
        ("65535", None, ("port", "65535")),
        ("xn--BCHER-kva.Example", None, ("domain", "xn--bcher-kva.example")),
        ("_srv.pool.example", None, ("domain", "_srv.pool.example")),
        ("203.0.113.7", "cidr", ("cidr", "203.0.113.7/32")),
        ("2001:db8::/32", "ip", ("cidr", "2001:db8::/32")),
    ],
)
def test_parse_indicator(text: str, kind: str | None, expected: tuple[str, str]) -> None:
    assert parse_indicator(text, kind) == expected  # type: ignore[arg-type]


def test_of_rejects_bad_values_with_their_source() -> None:
    with pytest.raises(ConfigError, match="manual: 'not valid' is not a valid"):
        IocSet.of(domains=["not valid"], source="manual")
