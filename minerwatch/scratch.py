"""A run's temporary folders (matched rows sorted on disk, records loaded into DuckDB, streams spooled for Parquet),
and the errors of writing there.

A folder is locked (``flock``) while the process that made it, or a worker it forked, is alive: the kernel drops
the lock however the process ends, ``kill -9`` and the out-of-memory killer included. Making a folder first removes
the folders of earlier runs that no process holds any more, so rows of findings a killed run spilled do not pile
up in the temporary folder.

A write there that fails (a full disk) is a :class:`ScratchError` naming the folder, not the error of whatever the
run was doing with the file (its state store, its input).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from minerwatch.errors import ScratchError

try:
    import fcntl
except ImportError:  # no flock (Windows): folders are still removed by the run that made them
    fcntl = None  # type: ignore[assignment]

PREFIX = "minerwatch-spill-"
"""Every folder made here starts with this; the sweep looks at no other name."""
GRACE_SECONDS = 60
"""A folder is locked a moment after it is made: one younger than this is never taken for a killed run's."""
_swept: dict[str, float] = {}
"""When this process last swept each temporary folder (monotonic seconds)."""


@contextlib.contextmanager
def folder(kind: str) -> Iterator[str]:
    """A private temporary folder (``TMPDIR``) named after ``kind``, locked while it exists, removed on leaving.
    A folder that cannot be made is a :class:`ScratchError`."""
    with errors(os.environ.get("TMPDIR") or "temporary folder"):
        base = tempfile.gettempdir()  # fails only when no candidate folder can be written
    with errors(base):
        # A run may make many folders (a spool per Parquet object, a records file per table): it looks for left
        # ones at most once a minute, not once a folder.
        now = time.monotonic()
        if now - _swept.get(base, now - GRACE_SECONDS) >= GRACE_SECONDS:
            _swept[base] = now
            sweep(base)
        path = tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-", dir=base)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else has it: the sweep takes only folders past the grace period
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # removed before it is unlocked: no sweep finds it half gone
        os.close(fd)


def sweep(base: str) -> None:
    """Remove the folders :func:`folder` made in ``base`` whose process ended without removing them (it was killed):
    this user's, unlocked, and older than :data:`GRACE_SECONDS`."""
    if fcntl is None:
        return
    now, uid = time.time(), os.getuid()
    try:
        entries = os.scandir(base)
    except OSError:
        return
    with entries:
        for entry in entries:
            if not entry.name.startswith(PREFIX):
                continue
            try:
                # Another user's entry (a symbolic link planted in a shared /tmp, say) is never followed or removed.
                info = entry.stat(follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or now - info.st_mtime < GRACE_SECONDS:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # held: its run is alive
                continue
            try:
                shutil.rmtree(entry.path, ignore_errors=True)
            finally:
                os.close(fd)


@contextlib.contextmanager
def errors(where: str) -> Iterator[None]:
    """Errors writing or reading temporary files in the folder ``where`` as :class:`ScratchError`."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise error(exc, where) from None


def error(exc: OSError | sqlite3.Error, where: str) -> ScratchError:
    # A full temporary folder is neither a damaged state store (what SQLite's error alone would suggest) nor a
    # broken input: the message says which folder and what to do.
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    return ScratchError(
        f"cannot write this run's temporary files ({reason}): free space in the temporary folder, or set TMPDIR to "
        "one with room",
        file=where,
    )


class File:
    """A file to write in a temporary folder: a write or close that fails is a :class:`ScratchError` naming the
    folder. Leaving the ``with`` block on an error closes it quietly: the buffer holds bytes it could not write,
    and the folder goes anyway."""

    def __init__(self, path: str, buffering: int = -1) -> None:
        self.folder = os.path.dirname(path)
        with errors(self.folder):
            self._file = open(path, "wb", buffering=buffering)  # noqa: SIM115 (closed by close or on leaving)

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise error(exc, self.folder) from None

    def close(self) -> None:
        with errors(self.folder):
            self._file.close()

    def __enter__(self) -> File:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is None:
            self.close()
        else:
            with contextlib.suppress(OSError):
                self._file.close()


@contextlib.contextmanager
def spooled(chunks: Iterable[bytes], name: str) -> Iterator[str]:
    """The bytes of a stream that cannot seek (stdin, S3), in a file ``name`` of a :func:`folder` of its own: its
    path, until leaving. An error reading ``chunks`` passes as it is."""
    with folder("spool") as where:
        path = os.path.join(where, name)
        with File(path) as out:
            for chunk in chunks:
                out.write(chunk)
        yield path
