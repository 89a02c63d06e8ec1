"""Progress output: a live rich bar on a terminal, plain periodic lines elsewhere.

``rich`` (the ``cli`` extra) is imported here, lazily, only when a live display is wanted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import anyio

from .._poller import Outcome, Poller
from ._common import format_counts, write_line

__all__ = [
    "OUTCOME_ORDER",
    "Display",
    "PlainDisplay",
    "RichDisplay",
    "Snapshot",
    "open_display",
    "refresh",
]

OUTCOME_ORDER = ("ready", "failed", "canceled", "timed_out", "not_found")
"""How outcome counts are listed."""
PENDING_NAMES = {"unknown": "unchecked"}
RICH_HINT = "rich is not installed (pip install 'twelvelabs-async[cli]'): plain progress lines"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a batch stands: outcome counts, unfinished tasks by status, requests so far."""

    total: int
    counts: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    requests_per_item: float | None = None
    """Requests per settled item so far (``submit`` shows it on the live bar)."""

    @property
    def done(self) -> int:
        """Tasks with an outcome."""
        return sum(self.counts.values())

    def outcome_text(self) -> str:
        """``"ready 12 · failed 1"`` (outcomes in :data:`OUTCOME_ORDER`, then any other)."""
        names = [*OUTCOME_ORDER, *sorted(set(self.counts) - set(OUTCOME_ORDER))]
        return format_counts([(name, self.counts.get(name, 0)) for name in names])

    def pending_text(self) -> str:
        """``"processing 3 · queued 2"`` (most common first; tasks not checked yet are
        ``unchecked``; a task a list showed final, while its own record is being fetched, is
        not shown)."""
        items = sorted(
            (
                (PENDING_NAMES.get(name, name), count)
                for name, count in self.pending.items()
                if name not in OUTCOME_ORDER
            ),
            key=lambda kv: (-kv[1], kv[0]),
        )
        return format_counts(items)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Display:
    """Shows a batch's progress; the base class shows nothing (``--progress none``)."""

    live = False
    """Whether this display redraws in place (then other output goes through :meth:`log`)."""

    def __init__(self, stream: IO[str], *, interval: float = 5.0) -> None:
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self.description = ""

    def start(self, total: int, description: str) -> None:
        """Begin showing a batch of ``total`` tasks."""
        self.started = time.monotonic()
        self.description = description

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Show ``snapshot`` (a plain display prints at most once per ``interval``)."""

    def log(self, text: str) -> None:
        """Print a line without disturbing the display."""
        write_line(self.stream, text)

    def stop(self, snapshot: Snapshot | None = None) -> None:
        """Show the last state and stop."""

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.monotonic() - self.started

    def status_line(self, snapshot: Snapshot) -> str:
        """One line: done/total, outcome counts, unfinished statuses, rate, ETA, requests."""
        elapsed = self.elapsed()
        done, total = snapshot.done, snapshot.total
        percent = 100.0 * done / total if total else 100.0
        parts = [f"[{elapsed:7.1f}s] {self.description} {done:,}/{total:,} ({percent:.0f}%)"]
        outcome = snapshot.outcome_text()
        if outcome:
            parts.append(outcome)
        pending = snapshot.pending_text()
        if pending and done < total:
            parts.append(f"pending: {pending}")
        rate = done / elapsed if elapsed > 0 else 0.0
        parts.append(f"{rate:.1f} tasks/s")
        if done < total and rate > 0 and elapsed >= 1.0 and done * 100 >= total:
            parts.append(f"ETA {_duration((total - done) / rate)}")
        if snapshot.requests:
            parts.append(f"{snapshot.requests:,} requests")
        return " · ".join(parts)


class PlainDisplay(Display):
    """A status line every ``interval`` seconds (for logs, CI, pipes)."""

    def __init__(self, stream: IO[str], *, interval: float = 5.0) -> None:
        super().__init__(stream, interval=interval)
        self._last = 0.0

    def start(self, total: int, description: str) -> None:
        """Print the first line at once."""
        super().start(total, description)
        self._last = 0.0

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Print a status line if ``interval`` passed since the last one."""
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            write_line(self.stream, self.status_line(snapshot))

    def stop(self, snapshot: Snapshot | None = None) -> None:
        """Print the final line."""
        if snapshot is not None:
            self.update(snapshot, force=True)


class RichDisplay(Display):
    """A live progress bar (rich): counts by status, rate, elapsed time and ETA."""

    live = True

    def __init__(
        self, stream: IO[str], *, interval: float = 0.1, force_terminal: bool | None = None
    ) -> None:
        super().__init__(stream, interval=interval)
        from rich.console import Console  # lazily: rich is the optional `cli` extra

        self.console = Console(file=stream, force_terminal=force_terminal)
        self._progress: Any = None
        self._task: Any = None

    def start(self, total: int, description: str) -> None:
        """Draw the bar."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().start(total, description)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("[cyan]{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=10,
            redirect_stdout=False,  # results may go to stdout: never through this console
            redirect_stderr=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, counts="", rate="")

    def update(self, snapshot: Snapshot, *, force: bool = False) -> None:
        """Move the bar."""
        if self._progress is None:
            return
        elapsed = self.elapsed()
        rate = snapshot.done / elapsed if elapsed > 0 else 0.0
        counts = snapshot.outcome_text()
        pending = snapshot.pending_text()
        if pending and snapshot.done < snapshot.total:
            counts = f"{counts} | {pending}" if counts else pending
        if snapshot.requests_per_item is not None:
            per_item = f"{snapshot.requests_per_item:.2f} requests/item"
            counts = f"{counts} | {per_item}" if counts else per_item
        self._progress.update(
            self._task,
            completed=snapshot.done,
            total=snapshot.total,
            counts=counts.replace("[", r"\["),
            rate=f"{rate:.1f}/s",
        )

    def log(self, text: str) -> None:
        """Print above the bar."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self, snapshot: Snapshot | None = None) -> None:
        """Draw the final state and leave it on screen."""
        if self._progress is None:
            return
        if snapshot is not None:
            self.update(snapshot)
        self._progress.stop()
        self._progress = None


def open_display(mode: str, stream: IO[str], *, interval: float | None = None) -> Display:
    """The display for ``--progress`` ``auto`` (rich on a terminal, else plain lines),
    ``rich``, ``plain`` or ``none``. Without rich, ``auto`` and ``rich`` fall back to plain."""
    plain_interval = 5.0 if interval is None else interval
    if mode == "none":
        return Display(stream, interval=plain_interval)
    if mode == "plain" or (mode == "auto" and not _isatty(stream)):
        return PlainDisplay(stream, interval=plain_interval)
    try:
        return RichDisplay(stream, force_terminal=True if mode == "rich" else None)
    except ImportError:
        write_line(sys.stderr, f"note: {RICH_HINT}")
        return PlainDisplay(stream, interval=plain_interval)


async def refresh(display: Display, snapshot: Callable[[], Snapshot]) -> None:
    """Redraw ``display`` from ``snapshot()`` until cancelled (10 times a second when live;
    a plain display prints only once per its interval)."""
    period = 0.1 if display.live else max(min(display.interval, 1.0), 0.05)
    while True:
        await anyio.sleep(period)
        display.update(snapshot())


async def follow(
    poller: Poller,
    display: Display,
    total: int,
    snapshot: Callable[[], Snapshot],
    on_outcome: Callable[[Outcome], None],
) -> None:
    """Hand each outcome of ``poller`` to ``on_outcome`` while ``display`` follows along
    (redrawn in the background between outcomes), then draw the final state."""
    display.start(total, "watching")
    try:
        async with anyio.create_task_group() as group:
            if display.live or isinstance(display, PlainDisplay):
                group.start_soon(refresh, display, snapshot)
            async for outcome in poller.as_completed():
                on_outcome(outcome)
                display.update(snapshot())
            group.cancel_scope.cancel()
    finally:
        display.stop(snapshot())


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
