"""``generate findings``: realistic GuardDuty findings in every input shape, with ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from minerwatch.cli.app import app, err, fail
from minerwatch.generate import ALL_SHAPES

gen_app = typer.Typer(help="Generate realistic test data.", no_args_is_help=True)
app.add_typer(gen_app, name="generate")


@gen_app.command("findings")
def generate_findings(
    n: int = typer.Option(5000, "--n", help="Number of findings (deliveries) to generate."),
    seed: int = typer.Option(1, "--seed", help="Random seed: the same seed writes the same bytes."),
    out: Path = typer.Option(..., "--out", help="Output folder: OUT/findings/ and OUT/manifest.json."),
    shapes: list[str] = typer.Option(
        None, "--shapes", help=f"Input shapes to write (repeatable). Default: all of {', '.join(ALL_SHAPES)}."
    ),
) -> None:
    """Write N findings: bursts of crypto-mining from a few instances amid many benign types, several accounts and
    regions, tagged dev/test instances, recurring findings and repeated deliveries, a few AWS sample findings."""
    # Start-up: the generator is loaded by the command, not by `--help`.
    from minerwatch.generate.findings import generate_findings_cmd

    unknown = sorted(set(shapes or ()) - set(ALL_SHAPES))
    if unknown:
        fail(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(ALL_SHAPES)}")
    if n <= 0:
        fail("--n must be positive")
    manifest = generate_findings_cmd(n, seed, out, shapes or None)
    files = manifest.get("files", {})
    err.print(f"wrote {n:,} findings to {out / 'findings'} ({len(files)} files); manifest: {out / 'manifest.json'}",
              highlight=False)


@gen_app.command("scenario")
def generate_scenario(
    out: Path = typer.Option(..., "--out", help="Output folder (absent or empty): one folder per log source and "
                             "OUT/manifest.json with the ground truth."),
    seed: int = typer.Option(1, "--seed", help="Random seed: the same seed and noise write the same bytes."),
    noise: float = typer.Option(1.0, "--noise", help="Scale of the benign activity around the attack (0 for none; "
                                "the attack itself does not change)."),
) -> None:
    """Write one crypto-mining compromise (a leaked access key, GPU instances mining in two regions, persistence)
    amid benign activity, as CloudTrail, VPC flow log, Route 53 Resolver, CloudWatch CPU and GuardDuty data in
    their AWS delivery layouts, with OUT/manifest.json saying what happened."""
    from minerwatch.generate.scenario import ScenarioError, write_scenario

    try:
        manifest = write_scenario(out, seed=seed, noise=noise)
    except ScenarioError as exc:
        fail(str(exc))
    counts = manifest["counts"]
    parts = ", ".join(f"{src} {c['records']:,} records in {c['files']} files" for src, c in counts.items())
    err.print(f"wrote {out}: {parts}; {len(manifest['compromised_instances'])} compromised instances, "
              f"{len(manifest['clean_instances'])} clean; manifest: {out / 'manifest.json'}", highlight=False,
              markup=False)
