from __future__ import annotations

from minerwatch.catalog.finding_types import crypto_mining_types
from minerwatch.lang.lint import lint_query
from minerwatch.lang.parser import parse_query
from minerwatch.rules.loader import load_rule

CRYPTO = crypto_mining_types()


def _codes(text: str) -> dict[str, str]:
    return {w.code: w.message for w in lint_query(parse_query(text), CRYPTO)}


def test_seed_warnings(seed_path):
    rule = load_rule(seed_path)
    warnings = lint_query(parse_query(rule.query, str(seed_path), rule.query_line - 1), CRYPTO)
    codes = {w.code: w for w in warnings}
    assert set(codes) == {"precedence", "ungrouped", "unmatched-types"}
    unmatched = codes["unmatched-types"].message
    for t in (
        "Impact:EC2/BitcoinDomainRequest.Reputation",
        "Impact:Runtime/BitcoinDomainRequest.Reputation",
        "Impact:Runtime/CryptoMinerExecuted",
    ):
        assert t in unmatched
    assert "CryptoCurrency:" not in unmatched  # every CryptoCurrency:* type matches the like
    assert "(type = \"CryptoCurrency:EC2/BitcoinTool.B\" and severity >= 7)" in codes["precedence"].message
    assert codes["precedence"].pos.line == 20  # the unparenthesised 'and'


def test_parenthesised_query_has_no_precedence_warning():
    assert "precedence" not in _codes("from cloud.aws.guardduty where (a = 1 and b = 2) or c = 3")
    assert "precedence" in _codes("from cloud.aws.guardduty where a = 1 and b = 2 or c = 3")


def test_unmatched_types_follow_the_logic():
    all8 = "from cloud.aws.guardduty where type like 'CryptoCurrency:%' or type like 'Impact:%Bitcoin%' " \
        "or type = 'Impact:Runtime/CryptoMinerExecuted'"
    assert "unmatched-types" not in _codes(all8)
    negated = _codes("from cloud.aws.guardduty where not type like '%Crypto%'")
    assert "CryptoCurrency:EC2/BitcoinTool.B" in negated["unmatched-types"]
    # Not a GuardDuty table, or not about crypto: no such warning.
    assert "unmatched-types" not in _codes("from cloud.aws.guardduty where type = 'Recon:EC2/PortProbeUnprotectedPort'")


def test_null_comparison_warning():
    assert "null-compare" in _codes("from cloud.aws.guardduty where region = null")
