"""One exception root for MinerWatch. Every error that points into a file carries file, line and column.

MinerWatchError
 ├── RuleError            a rule document cannot be loaded (file:line)
 ├── QueryError           LINQ query problems, with the source line and a caret
 │    ├── QuerySyntaxError   tokenizer / parser
 │    └── QueryCompileError  unknown table, function, bad group by ...
 ├── InputError           an input file/path cannot be opened or read at all
 ├── ConfigError          allowlist / config files
 ├── StateError           the SQLite state store
 └── ScratchError         a run's temporary files (sort spills) cannot be written
"""

from __future__ import annotations


class MinerWatchError(Exception):
    """Root of all MinerWatch errors.

    ``line`` and ``col`` are 1-based. ``source_line`` is the text of the offending line, shown with a caret.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
        source_line: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.source_line = source_line

    @property
    def location(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def format(self) -> str:
        """``file:line:col: message`` followed by the source line and a caret under the column."""
        out = f"{self.location}: {self.message}"
        if self.source_line is not None:
            text = self.source_line.rstrip("\n").expandtabs(1)
            out += f"\n    {text}"
            if self.col is not None:
                out += "\n    " + " " * (self.col - 1) + "^"
        return out

    def __str__(self) -> str:
        return self.format()


class RuleError(MinerWatchError):
    """A rule document is malformed."""


class QueryError(MinerWatchError):
    """A LINQ query is invalid."""


class QuerySyntaxError(QueryError):
    """The query text does not follow the grammar."""


class QueryCompileError(QueryError):
    """The query parses but cannot be compiled (unknown table, function, bad grouping)."""


class InputError(MinerWatchError):
    """An input path cannot be opened or read."""


class ConfigError(MinerWatchError):
    """An allowlist or configuration file is invalid."""


class StateError(MinerWatchError):
    """The state store is unusable."""


class ScratchError(MinerWatchError):
    """A run's temporary files cannot be written: the temporary folder (``TMPDIR``) is full or unusable."""
