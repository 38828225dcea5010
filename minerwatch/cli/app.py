"""The typer application object and small helpers shared by command modules."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from minerwatch.cli import lazy_help
from minerwatch.errors import MinerWatchError

lazy_help.install()  # before typer renders any help or usage error

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from minerwatch.alerting.state import StateStore

app = typer.Typer(
    name="minerwatch",
    help="Detect, triage and answer crypto-mining on AWS: rule documents, a LINQ engine over GuardDuty "
    "findings, throttled alerts with allowlists and state.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _print_version(value: bool) -> None:
    if value:
        from minerwatch import __version__

        print(f"minerwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _group(
    _version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Detect, triage and answer crypto-mining on AWS."""
    # A callback keeps the app a command group even when only one command module is loaded (see cli/entry.py).


DEFAULT_STATE = ".minerwatch/state.db"
"""The state store every command uses unless --state says otherwise."""


class _LazyConsole:
    """A rich Console made on first use. Importing rich costs each command line about 40 ms, which one that
    prints only plain lines (``detect`` writing JSON Lines) need not pay."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            # Pipes and CI logs get wide lines instead of rich's 80-column default.
            self._console = Console(stderr=self._stderr, soft_wrap=True, width=None if stream.isatty() else 180)
        return getattr(self._console, name)


out: Console = _LazyConsole()  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


def note(*lines: str) -> None:
    """Plain lines on stderr, as written: a run's summary needs no rich (nor its start-up), and Rich would read
    ``[...]`` in a path as markup and ``:name:`` in a reason as an emoji."""
    sys.stderr.write("".join(line + "\n" for line in lines))


def inert(value: Any, *, multiline: bool = False) -> str:
    """Data (finding text, log fields, server replies) as text that cannot drive a terminal: control and format
    characters (ESC and so CSI/OSC sequences, C1, bidi overrides; newlines too unless ``multiline``) are shown as
    escapes such as ``\\x1b``. Print it with ``markup=False`` or wrap it in :func:`cell`, so ``[bold]`` stays text.
    """
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(
        ch if ch == "\t" or (multiline and ch == "\n") or unicodedata.category(ch)[0] != "C" else _escape(ch)
        for ch in text
    )


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cell(value: Any, style: str = "", *, multiline: bool = False) -> Text:
    """A table cell (or printable) of data: :func:`inert` text, never read as Rich markup."""
    from rich.text import Text

    return Text(inert(value, multiline=multiline), style=style)


def fail(exc: MinerWatchError | str, code: int = 2) -> NoReturn:
    """Print an error the way every command does (``file:line:col: message`` + caret) and exit."""
    text = exc.format() if isinstance(exc, MinerWatchError) else exc
    print(inert(text, multiline=True), file=sys.stderr)  # messages quote input lines and names
    raise typer.Exit(code)


def alert_or_fail(store: StateStore, alert_id: str, state: Path) -> dict[str, Any]:
    """The alert ``alert_id`` names (an unambiguous prefix is enough); exits 1 when there is none, 2 with the
    candidates when the prefix starts several alerts' ids."""
    from minerwatch.alerting.state import AmbiguousAlertId

    try:
        record = store.get_alert(alert_id)
    except AmbiguousAlertId as exc:
        fail(exc, 2)
    if record is None:
        fail(f"no alert {alert_id!r} in {state}", 1)
    return record


def run() -> None:
    """Run the app; a MinerWatchError that escapes a command is printed as ``file:line:col: message``."""
    try:
        app()
    except MinerWatchError as exc:
        print(inert(exc.format(), multiline=True), file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        sqlite3 = sys.modules.get("sqlite3")  # not imported for --help: only a command that opened a store raises it
        if sqlite3 is None or not isinstance(exc, sqlite3.Error):
            raise
        # A damaged, full or busy state store: one line naming the store and SQLite's reason, not a traceback.
        from minerwatch.alerting import state

        print(inert(state.state_error(exc, state.last_opened or "<state>", "state store").format()), file=sys.stderr)
        sys.exit(2)
