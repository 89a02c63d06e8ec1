"""The results file: one JSON line per final task, crash-safe and resumable.

Each line is written with a single ``os.write`` on a file opened with ``O_APPEND`` (no
user-space buffer, so nothing waits to be flushed): a crash or a ``kill -9`` leaves complete
lines, and at worst one partial last line, which the next run cuts off before appending.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import msgspec

from ._common import EXIT_USAGE, CliError

__all__ = ["ResultsFile"]

_CHUNK = 1 << 16


class _Recorded(msgspec.Struct):
    task_id: str | None = None
    kind: str | None = None
    status: str | None = None
    custom_id: str | None = None  # submit's lines (whose task_id may be null)


_decode_recorded = msgspec.json.Decoder(_Recorded).decode


class ResultsFile:
    """An append-only JSON-lines file of task outcomes.

    ``fresh=True`` empties the file first (the demo); otherwise the lines already there are
    read back (:attr:`recorded`) so that a rerun skips those tasks. While open, the file is
    locked so that two runs cannot interleave their lines.
    """

    def __init__(self, path: str | os.PathLike[str], *, fresh: bool = False) -> None:
        self.path = Path(path)
        self.fresh = fresh
        self.recorded: dict[tuple[str | None, str], str | None] = {}
        """``(kind, task_id) -> status`` of every line found on opening (the last line of a
        task wins: a rerun appends a new line for a task it watched again)."""
        self.custom_ids: dict[str, str | None] = {}
        """``custom_id -> status`` of every ``submit`` line found on opening."""
        self.repaired = False
        """Whether a complete last line lacking its newline was given one on opening."""
        self.dropped_partial = 0
        """Bytes of a partial last line cut off on opening (a crash mid-write)."""
        self.unreadable = 0
        """Complete lines that were not results (ignored, kept in the file)."""
        self.written = 0
        """Lines appended by this run."""
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<ResultsFile {str(self.path)!r} recorded={len(self.recorded)}>"

    def __enter__(self) -> ResultsFile:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open (creating it if needed), lock, repair and read the file."""
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise CliError(
                f"cannot open results file {str(self.path)!r}: {exc}", EXIT_USAGE
            ) from exc
        try:
            _lock(fd, self.path)
            if self.fresh:
                os.ftruncate(fd, 0)
            else:
                size = os.fstat(fd).st_size
                complete = _complete_size(fd, size)
                if complete < size:
                    if _is_record(os.pread(fd, size - complete, complete)):
                        # A whole record whose newline was never written: keep it.
                        os.write(fd, b"\n")
                        self.repaired = True
                    else:
                        os.ftruncate(fd, complete)
                        self.dropped_partial = size - complete
                self._scan()
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _scan(self) -> None:
        with open(self.path, "rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    item = _decode_recorded(line)
                except msgspec.DecodeError:
                    self.unreadable += 1
                    continue
                if item.task_id is not None:
                    self.recorded[(item.kind, item.task_id)] = item.status
                if item.custom_id is not None:
                    self.custom_ids[item.custom_id] = item.status

    def has(self, kind: str, task_id: str) -> bool:
        """Whether a line for this task was found on opening."""
        return (kind, task_id) in self.recorded or (None, task_id) in self.recorded

    def status_of(self, kind: str, task_id: str) -> str | None:
        """The recorded status of a task found on opening."""
        status = self.recorded.get((kind, task_id))
        return status if status is not None else self.recorded.get((None, task_id))

    def append(self, line: bytes) -> None:
        """Append one complete line (ending in ``\\n``) with one write; it is on disk (in the
        OS's cache) when this returns."""
        if self._fd is None:
            raise RuntimeError("the results file is not open")
        if not line.endswith(b"\n"):
            line += b"\n"
        view = memoryview(line)
        while view:  # a regular file takes it all at once; loop only on a short write
            view = view[os.write(self._fd, view) :]
        self.written += 1

    def close(self) -> None:
        """Close (and unlock) the file; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CliError(
            f"results file {str(path)!r} is in use by another process", EXIT_USAGE
        ) from None
    except OSError:  # pragma: no cover - a file system without locks: go on unlocked
        return


def _is_record(tail: bytes) -> bool:
    """Whether ``tail`` (a last line without its newline) is one whole result record. Lines
    are written whole by one ``write``, so a cut one is never a complete JSON object."""
    if len(tail) > 256 * 1024 * 1024:  # pragma: no cover - not worth decoding
        return False
    try:
        item = _decode_recorded(tail)
    except msgspec.DecodeError:
        return False
    return item.task_id is not None or item.custom_id is not None


def _complete_size(fd: int, size: int) -> int:
    """The length of the file up to and including its last newline."""
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0
