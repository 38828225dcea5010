"""The GuardDuty finding-type catalogue."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from minerwatch.catalog.finding_types import (
    crypto_mining_types,
    get_finding_type,
    load_finding_types,
)

CRYPTO = {
    "CryptoCurrency:EC2/BitcoinTool.B",
    "CryptoCurrency:EC2/BitcoinTool.B!DNS",
    "CryptoCurrency:Runtime/BitcoinTool.B",
    "CryptoCurrency:Runtime/BitcoinTool.B!DNS",
    "CryptoCurrency:Lambda/BitcoinTool.B",
    "Impact:EC2/BitcoinDomainRequest.Reputation",
    "Impact:Runtime/BitcoinDomainRequest.Reputation",
    "Impact:Runtime/CryptoMinerExecuted",
}


def test_exactly_the_eight_crypto_types() -> None:
    assert crypto_mining_types() == sorted(CRYPTO)
    assert {ft.type for ft in load_finding_types() if ft.crypto_mining} == CRYPTO


def test_catalogue_is_broad_unique_and_well_formed() -> None:
    types = load_finding_types()
    assert len(types) >= 150
    names = [ft.type for ft in types]
    assert [n for n, c in Counter(names).items() if c > 1] == []
    assert names == sorted(names, key=str.lower)
    for ft in types:
        assert re.fullmatch(r"[A-Za-z]+:[A-Za-z0-9]+/[A-Za-z0-9.&!]+", ft.type), ft.type
        assert ft.severity in ("low", "medium", "high", "critical")
    families = Counter(ft.resource for ft in types)
    assert set(families) == {
        "EC2", "IAM", "S3", "EKS", "Runtime", "Malware Protection", "RDS", "Lambda", "Attack sequence",
    }
    assert families["EC2"] >= 35 and families["Runtime"] >= 35 and families["EKS"] >= 30


def test_every_cryptocurrency_type_is_marked() -> None:
    currency = [ft for ft in load_finding_types() if ft.threat_purpose == "CryptoCurrency"]
    assert {ft.type for ft in currency} == {t for t in CRYPTO if t.startswith("CryptoCurrency:")}
    assert [ft.type for ft in currency if not ft.crypto_mining] == []


def test_real_sample_types_are_known(samples: Path) -> None:
    seen: set[str] = set()
    for path in (samples / "guardduty").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip() and "type" in (rec := json.loads(line)):
                seen.add(rec["type"])
    assert len(seen) >= 10
    assert sorted(t for t in seen if get_finding_type(t) is None) == []


def test_lookup_and_defaults() -> None:
    ft = get_finding_type("CryptoCurrency:EC2/BitcoinTool.B!DNS")
    assert ft is not None
    assert (ft.resource, ft.severity, ft.crypto_mining, ft.retired) == ("EC2", "high", True, False)
    sequence = get_finding_type("AttackSequence:EKS/CompromisedCluster")
    assert sequence is not None and sequence.severity == "critical"
    assert get_finding_type("CryptoCurrency:EC2/NotAThing") is None
