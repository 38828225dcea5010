"""make_prefilter: its literals come from required_literals, and its test is "the line holds a needle"."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.compile.prefilter import ESCAPE, Prefilter, make_prefilter, required_literals
from minerwatch.lang.parser import parse_query

SEED_WHERE = (
    "from cloud.aws.guardduty where type like '%CryptoCurrency%' or type = 'CryptoCurrency:EC2/BitcoinTool.B!DNS'"
    " or type = 'CryptoCurrency:EC2/BitcoinTool.B' and severity >= 7"
)


def test_seed_query_gives_one_literal_and_the_escape() -> None:
    query = parse_query(SEED_WHERE)
    prefilter = make_prefilter(query)
    assert prefilter == Prefilter((b"CryptoCurrency",))
    assert list(prefilter.literals) == required_literals(query)
    assert prefilter.needles == (b"CryptoCurrency", ESCAPE) and ESCAPE == b"\\u"


def test_several_literals_are_all_kept() -> None:
    prefilter = make_prefilter(parse_query("from cloud.aws.guardduty where type in ('Alpha:X', 'Beta:Y')"))
    assert prefilter is not None and prefilter.literals == (b"Alpha:X", b"Beta:Y")
    assert prefilter(b'{"type":"Beta:Y"}') and prefilter(b'{"type":"Alpha:X"}')
    assert not prefilter(b'{"type":"Gamma:Z"}')


@pytest.mark.parametrize(
    "text",
    [
        "from cloud.aws.guardduty where severity >= 7",
        "from cloud.aws.guardduty",
        "from cloud.aws.guardduty where not type = 'abc'",
    ],
)
def test_no_usable_literal_gives_none(text: str) -> None:
    assert make_prefilter(parse_query(text)) is None


def test_escapes_let_a_line_through() -> None:
    prefilter = Prefilter((b"CryptoCurrency",))
    assert prefilter(b'{"type":"\\u0043ryptoCurrency"}')
    assert prefilter(b'{"a":"\\\\u"}')  # an escaped backslash before a "u": kept, the test is on raw bytes
    assert not prefilter(b'{"a":"\\"q\\"","b":"\\n"}')  # other escapes are not a reason
    assert not prefilter(b"{}")


FRAGMENTS = st.sampled_from([b"\\", b"u", b"\\u", b"Cry", b"pto", b"CryptoCurrency", b"ab", b"{", b"}", b'"', b"x"])


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(st.one_of(FRAGMENTS, st.binary(max_size=4)), max_size=20),
    literals=st.lists(st.sampled_from([b"CryptoCurrency", b"abc", b"pto", b"u:x"]), min_size=1, max_size=3),
)
def test_the_test_is_exactly_contains_a_needle(parts: list[bytes], literals: list[bytes]) -> None:
    line = b"".join(parts)
    prefilter = Prefilter(tuple(literals))
    assert prefilter(line) == any(needle in line for needle in prefilter.needles)
