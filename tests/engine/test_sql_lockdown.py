"""`minerwatch sql` sees only the tables it loaded: files, extensions and settings are out of reach unless
--allow-external."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.rules.shipped import SAMPLES_DIR

runner = CliRunner()
FINDINGS = str(SAMPLES_DIR / "findings")


def _sql(query: str, *extra: str):
    return runner.invoke(app, ["sql", query, "--findings", FINDINGS, "--format", "json", *extra])


def test_the_loaded_tables_still_answer():
    res = _sql("SELECT count(*) AS n FROM cloud_aws_guardduty WHERE doc->>'$.type' LIKE '%CryptoCurrency%'")
    assert res.exit_code == 0, res.output
    assert '"n"' in res.stdout


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_text('{secret}')",
        "SELECT * FROM read_csv('{secret}')",
        "COPY (SELECT 1 AS x) TO '{out}'",
        "EXPORT DATABASE '{outdir}'",
        "ATTACH '{out}.db' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET lock_configuration",
    ],
)
def test_each_escape_fails_with_a_clear_error(tmp_path: Path, query: str):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    out, outdir = tmp_path / "written.csv", tmp_path / "exported"
    res = _sql(query.format(secret=secret, out=out, outdir=outdir))
    assert res.exit_code == 2, res.output
    assert "root:x" not in res.output
    assert not out.exists() and not outdir.exists() and not Path(f"{out}.db").exists()
    assert res.output.startswith("sql: ") and "--allow-external" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_allow_external_opts_back_in(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    out = tmp_path / "written.csv"
    res = _sql(f"SELECT content FROM read_text('{secret}')", "--allow-external")
    assert res.exit_code == 0 and "root:x" in res.stdout
    assert _sql(f"COPY (SELECT 1 AS x) TO '{out}'", "--allow-external").exit_code == 0
    assert out.exists()
