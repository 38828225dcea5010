"""lower() / upper() in Python map case per code point exactly as DuckDB does, over every code point."""

from __future__ import annotations

import duckdb

from minerwatch.compile.runtime import lower, upper


def test_case_mapping_matches_duckdb_for_every_code_point() -> None:
    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    con = duckdb.connect()
    con.execute("CREATE TABLE c AS SELECT unnest(?) AS cp", [cps])
    wrong = [
        (cp, lo, up)
        for cp, lo, up in con.execute("SELECT cp, lower(chr(cp)), upper(chr(cp)) FROM c").fetchall()
        if lower(chr(cp)) != lo or upper(chr(cp)) != up
    ]
    assert wrong == []


def test_strings_map_per_code_point() -> None:
    assert lower("ΣΑΣ") == "σασ"  # no final-sigma context
    assert upper("straße ﬁ") == "STRAẞE ﬁ"
    assert lower("İx") == "ix"
    assert lower("ABC") == "abc" and upper("abc") == "ABC"
