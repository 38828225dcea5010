"""The raw-bytes prefilter: which literals a where-clause requires, and the filter built from them."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from minerwatch.compile.prefilter import make_prefilter, required_literals
from minerwatch.compile.python import compile_python
from minerwatch.lang.parser import parse_query
from minerwatch.sources.records import Record

SEED = Path(__file__).resolve().parents[1] / "data" / "seed" / "000_874a6878789f665b.txt"


def lits(where: str) -> list[bytes] | None:
    return required_literals(parse_query(f"from cloud.aws.guardduty where {where}"))


def test_seed_requires_cryptocurrency() -> None:
    text = SEED.read_text(encoding="utf-8").split("```sql\n", 1)[1].split("```", 1)[0]
    assert required_literals(parse_query(text)) == [b"CryptoCurrency"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('type = "CryptoCurrency:EC2/BitcoinTool.B"', [b"CryptoCurrency:EC2"]),  # '/' may be written '\/'
        ('type like "%Bitcoin%Tool%"', [b"Bitcoin"]),
        ('type like "ab_cdef%"', [b"cdef"]),
        ('resource.instanceDetails.instanceId in ("i-0abc", "i-0def")', [b"i-0abc", b"i-0def"]),
        ('type = "abcdef" and region = "us-east-1"', [b"us-east-1"]),
        ('type = "abcdef" and severity > 5', [b"abcdef"]),
        ('type = "abcdef" or severity > 5', None),
        ('not type = "abcdef"', None),
        ('type != "abcdef"', None),
        ('type not like "%abcdef%"', None),
        ('type = "ab"', None),  # too short to be worth it
        ("service.count = 12345", None),  # numbers have many spellings
        ('eventdate > "2024-01-01"', None),
        ('lower(type) = "abcdef"', None),
        ('type = "éé"', None),
        ('type like "%Crypto%" or type = "CryptoCurrencyX"', [b"Crypto"]),
    ],
)
def test_required_literals(where: str, expected: list[bytes] | None) -> None:
    assert lits(where) == expected


def test_prefilter_accepts_lines_with_a_literal_or_any_unicode_escape() -> None:
    f = make_prefilter(parse_query('from cloud.aws.guardduty where type like "%CryptoCurrency%"'))
    assert f is not None
    assert f(b'{"type":"CryptoCurrency:EC2/BitcoinTool.B"}')
    assert not f(b'{"type":"Recon:EC2/PortProbeUnprotectedPort"}')
    assert f(b'{"type":"\\u0043ryptoCurrency"}')  # valid JSON for the same text: never rejected
    many = make_prefilter(parse_query('from cloud.aws.guardduty where type in ("aaa1", "bbb2")'))
    assert many is not None and many(b"..bbb2..") and not many(b"..ccc3..")
    assert make_prefilter(parse_query("from cloud.aws.guardduty where severity > 1")) is None


def test_prefilter_never_rejects_a_matching_sample(records: list[Record]) -> None:
    for where in ('type like "%CryptoCurrency%"', 'resource.instanceDetails.instanceId = "i-99999999"',
                  'type in ("Backdoor:EC2/C&CActivity.B", "x-y-z")'):
        q = parse_query(f"from cloud.aws.guardduty where {where}")
        f, pred = make_prefilter(q), compile_python(q).predicate
        assert f is not None
        matched = [r for r in records if pred(r)]
        assert matched
        for r in matched:
            for raw in (orjson.dumps(r.doc), json.dumps(r.doc).encode(), json.dumps(r.doc, indent=1).encode()):
                assert f(raw)
