"""``minerwatch watch``: the live detection service over SQS, S3 exports, the GuardDuty API, a file or stdin."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from minerwatch.cli import org_out
from minerwatch.cli.app import app, err, fail
from minerwatch.cli.detect_cmds import DEFAULT_STATE, DRAIN_TIMEOUT, _alert_line, _notify_config, _print_summary
from minerwatch.errors import MinerWatchError
from minerwatch.rules.shipped import DEFAULT_RULE

if TYPE_CHECKING:
    from minerwatch.live.feeds import Source
    from minerwatch.live.service import WatchOptions
    from minerwatch.rules.model import Rule


def _source(
    inputs: list[str],
    sqs: str | None,
    s3: str | None,
    guardduty: bool,
    regions: str | None,
    detector_ids: list[str],
    follow: Path | None,
    wait_seconds: int,
    visibility_timeout: int,
    reject_visibility: int,
    poll_interval: float,
    s3_settle: float,
) -> Source:
    chosen = [name for name, on in (("-", inputs == ["-"]), ("--sqs", sqs), ("--s3", s3),
                                    ("--guardduty", guardduty), ("--follow", follow)) if on]  # fmt: skip
    if inputs and inputs != ["-"]:
        fail(f"watch reads one live source; use detect for files and folders (got {' '.join(inputs)})")
    if len(chosen) != 1:
        fail(
            "watch needs exactly one source: -, --sqs QUEUE_URL, --s3 s3://bucket/prefix, --guardduty, or --follow FILE"
        )
    if sqs:
        from minerwatch.live.sqs import SqsSource

        return SqsSource(
            sqs, wait_seconds=wait_seconds, visibility_timeout=visibility_timeout, reject_visibility=reject_visibility
        )
    if s3:
        from minerwatch.live.s3poll import S3PollSource

        return S3PollSource(s3, interval=poll_interval, settle=s3_settle)
    if guardduty:
        from minerwatch.live.gdapi import GuardDutyApiSource

        region_list = [r.strip() for r in (regions or "").split(",") if r.strip()]
        return GuardDutyApiSource(region_list or None, detector_ids=detector_ids or None, interval=poll_interval)
    from minerwatch.live.feeds import FollowSource, StdinSource

    if follow:
        return FollowSource(str(follow))
    return StdinSource()


@app.command("watch")
def watch_cmd(
    inputs: list[str] = typer.Argument(None, help="- to read JSON Lines from standard input until EOF."),
    sqs: str | None = typer.Option(
        None, "--sqs", metavar="QUEUE_URL", help="Consume EventBridge GuardDuty Finding events from this SQS queue."
    ),
    s3: str | None = typer.Option(
        None, "--s3", metavar="S3_URL", help="Poll s3://bucket/prefix (GuardDuty S3 export layout) for new objects."
    ),
    guardduty: bool = typer.Option(False, "--guardduty", help="Poll the GuardDuty API (ListFindings/GetFindings)."),
    regions: str | None = typer.Option(None, "--regions", help="Regions for --guardduty, comma-separated."),
    detector_ids: list[str] = typer.Option(None, "--detector-id", help="Detectors for --guardduty (default: all)."),
    follow: Path | None = typer.Option(None, "--follow", help="Follow JSON Lines appended to this file."),
    rule: Path = typer.Option(DEFAULT_RULE, "--rule", "-r", help="Rule document to run."),
    allowlist: Path | None = typer.Option(None, "--allowlist", "-a", help="Allowlist YAML (DESIGN §6)."),
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state", help="SQLite state store (created if missing)."),
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="Append one JSON line per alert created or updated."
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Where rejects go (JSON Lines). Default: rejects.jsonl beside the state."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Notification settings (default: $MINERWATCH_CONFIG, else ./minerwatch.yaml if present)."
    ),
    include_samples: bool = typer.Option(False, "--include-samples", help="Alert on AWS sample findings too."),
    no_prefilter: bool = typer.Option(False, "--no-prefilter", help="Parse every line (- and --follow)."),
    reorder_window: float = typer.Option(
        0.0,
        "--reorder-window",
        min=0.0,
        help="Seconds to hold each matched finding so that findings arriving out of order are applied in "
        "(eventdate, id) order, as a backtest does. 0: apply in arrival order, at once.",
    ),
    http: int | None = typer.Option(None, "--http", metavar="PORT", help="Serve /healthz and /metrics on this port."),
    http_host: str = typer.Option("127.0.0.1", "--http-host", help="Address for --http."),
    wait_seconds: int = typer.Option(
        5, "--wait-seconds", min=0, max=20, help="SQS long-poll wait; also bounds how long a shutdown may wait."
    ),
    visibility_timeout: int = typer.Option(
        60, "--visibility-timeout", min=1, help="SQS visibility timeout for received messages (extended as needed)."
    ),
    reject_visibility: int = typer.Option(
        300,
        "--reject-visibility",
        min=0,
        max=43200,
        help="Seconds a message kept as a reject stays invisible before its next receive (redrive counts receives).",
    ),
    poll_interval: float = typer.Option(60.0, "--poll-interval", min=0.0, help="Seconds between S3 / API polls."),
    s3_settle: float = typer.Option(
        25 * 3600.0,
        "--s3-settle",
        min=0.0,
        hidden=True,
        help="Age after which S3 objects no longer get siblings with smaller keys.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print alerts on stdout."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="Alerts on stdout: jsonl or ocsf."),
    stats_json: Path | None = typer.Option(None, "--stats-json", help="Write the run summary as JSON at exit."),
    drain_timeout: float = DRAIN_TIMEOUT,
    to_securityhub: bool = typer.Option(
        False, "--to-securityhub",
        help="Also import every alert into AWS Security Hub as an ASFF finding (the securityhub destination of "
        "the config, else one with the AWS environment's region and credentials).",
    ),
    org: bool = typer.Option(
        False, "--org", help="With --guardduty: poll the detectors of every active account of the AWS Organization, "
        "through a role assumed in each (credentials refreshed before they expire); one run, a per-account table "
        "at exit, exit 3 when an account could not be read (see docs/organizations.md)."
    ),
    role_name: str = org_out.ROLE_NAME,
    session_name: str = org_out.SESSION_NAME,
    external_id: str | None = org_out.EXTERNAL_ID,
    accounts: str | None = org_out.ACCOUNTS,
    exclude_accounts: str | None = org_out.EXCLUDE,
    concurrency: int = org_out.CONCURRENCY,
    profile: str | None = org_out.PROFILE,
) -> None:
    """Run a detection rule continuously over a live source, with the semantics of `detect`.

    Alerts are committed to the state store one finding at a time, then delivered (--config) by a background
    dispatcher. SIGTERM or SIGINT: the finding in hand is finished, everything is committed, exit 0 (with
    --org: a per-account table, and exit 3 when an account could not be read).
    """
    # Start-up: the live service (the detection stack, the rule model) is loaded by the command, not by `--help`.
    from minerwatch.alerting.allowlist import load_allowlist
    from minerwatch.live.http import HealthServer
    from minerwatch.live.service import WatchOptions, WatchService
    from minerwatch.rules.loader import load_rule

    if fmt not in ("jsonl", "ocsf"):
        fail("--format must be jsonl or ocsf")
    try:
        loaded = load_rule(rule)
        allow = load_allowlist(allowlist) if allowlist else None
        source = _source(inputs or [], sqs, s3, guardduty, regions, detector_ids or [], follow, wait_seconds,
                         visibility_timeout, reject_visibility, poll_interval, s3_settle)  # fmt: skip
        org_results: list[Any] | None = None
        if org:
            if not guardduty:
                fail("--org polls the GuardDuty API in every account: use it with --guardduty")
            from minerwatch.live.gdapi import org_source

            opts = org_out.org_options(role_name, session_name, external_id, accounts, exclude_accounts, concurrency)
            region_list = [r.strip() for r in (regions or "").split(",") if r.strip()]
            source, org_results = org_source(opts, region_list or None, detector_ids=detector_ids or None,
                                             interval=poll_interval, profile=profile)  # fmt: skip
    except MinerWatchError as exc:
        fail(exc)

    def on_alert(record: dict[str, Any]) -> None:
        if org_results is not None:
            org_out.count_alert(org_results, record)
        if not quiet:
            sys.stdout.write(_alert_line(record, fmt) + "\n")
            sys.stdout.flush()

    options = WatchOptions(
        state=str(state),
        allowlist=allow,
        out=str(out_file) if out_file else None,
        rejects=str(rejects or state.parent / "rejects.jsonl"),
        include_samples=include_samples,
        prefilter=not no_prefilter,
        reorder_window=reorder_window,
        idle_timeout=float(max(1, wait_seconds)),
        drain_timeout=drain_timeout,
        on_alert=on_alert,
    )
    try:
        destinations = _attach_notifications(options, config, state, loaded, to_securityhub)
    except MinerWatchError as exc:
        fail(exc)
    service = WatchService(loaded, source, options)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now (every commit is still atomic)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = None
    if http is not None:
        try:
            server = HealthServer(service.metrics, service.health, http, http_host).start()
        except OSError as exc:
            fail(f"cannot serve --http on {http_host}:{http}: {exc}")
        err.print(f"serving /healthz and /metrics on http://{http_host}:{server.port}", highlight=False)
    notifying = f", notifying {destinations}" if destinations else ""
    err.print(f"watching {source.name} with rule {loaded.id}{notifying}", highlight=False, markup=False)
    try:
        stats = service.run(stop)
    except MinerWatchError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err.print("interrupted: the run is left open and resumes at the next start", highlight=False)
        raise typer.Exit(130) from None
    finally:
        if server is not None:
            server.stop()
    _print_summary(stats)
    if service.drained is not None:
        from minerwatch.cli.notify_cmds import report_delivery

        report_delivery(*service.drained)
    summary = {**stats.to_json(), "watch": service.metrics.snapshot()}
    if org_results is not None:
        from minerwatch.sources.org import settle

        org_results = settle(org_results)
        org_out.read_summary(org_results)
        summary["accounts"] = org_out.account_results_json(org_results)
    if stats_json:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(summary, indent=2))
    if org_results is not None:
        org_out.exit_if_account_failed(org_results)


def _attach_notifications(
    options: WatchOptions, config: Path | None, state: Path, rule: Rule, to_securityhub: bool = False
) -> str | None:
    """The outbox in the commit transaction and the dispatcher in a background thread, when a configuration with
    destinations is found (``--config``, else ``$MINERWATCH_CONFIG``, else ``./minerwatch.yaml``)."""
    from minerwatch.notify.outbox import Dispatcher, transaction_hook

    cfg = _notify_config(config)
    if to_securityhub:
        from minerwatch.cli.securityhub_out import with_securityhub

        cfg = with_securityhub(cfg, config)
    if cfg is None:
        return None
    options.in_transaction = transaction_hook(cfg)
    options.notifier = Dispatcher(state, cfg, rules=[rule])
    return ", ".join(d.name for d in cfg.destinations if d.enabled)
