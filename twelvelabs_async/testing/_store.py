"""In-memory task store of the fake server and its status progression.

Tasks are kept per kind in a dict (id -> record) plus a list ordered by
``(created_ms, seq)`` ascending, so listing newest-first is a reverse slice and
time filters are a bisect. Status transitions are evaluated lazily:

* time-based finishing (``finish_after_seconds``) is applied whenever a task is
  read, and a heap of due times lets a list request bring every task up to date
  in ``O(due)`` instead of ``O(n)``;
* poll-based finishing (``finish_after_polls``) counts every observation of the
  task by the client: each individual GET (retrieve / status) and each list page
  that shows it. A GET that reaches the count answers with the final status; a
  list page that reaches it still shows the old status (it was built first), so
  the next read sees the task final. A status-filtered list also observes, once
  per walk (page 1), every task its other filters match but its status leaves out
  (the client learns that they lack that status). A client that only lists (a
  sweeping poller, on either side) therefore sees poll-based tasks finish too.

``final_at`` is the server clock time at which the task became final: the time
of the flipping poll or of :meth:`TaskStore.set_status`, or the *scheduled*
finish time ``created + finish_after_seconds`` for time-based finishing.
"""

from __future__ import annotations

import heapq
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Final, Literal, TypeAlias, TypeVar

__all__ = [
    "FINAL_STATUSES",
    "KINDS",
    "TaskKind",
    "TaskRecord",
    "TaskStore",
    "format_ms",
]

TaskKind = Literal["embed_v2", "embed_v1", "analyze"]
"""The three kinds of long-running task the fake serves."""

KINDS: Final[tuple[TaskKind, ...]] = ("embed_v2", "embed_v1", "analyze")
"""All task kinds."""

FINAL_STATUSES: Final = frozenset({"ready", "failed", "canceled"})
"""Statuses after which a task never changes on its own."""

_EARLY_ANALYZE_STATUSES: Final = frozenset({"queued", "pending"})

_V = TypeVar("_V")
PerKind: TypeAlias = _V | Callable[[TaskKind], _V]
"""A default value, or a callable called with the kind of each new task (e.g. a random
finish time per task)."""

DEFAULT_FAILURE_MESSAGES: Final[dict[str, str]] = {
    "embed_v2": "The embedding service is temporarily unstable. Please try again later.",
    "embed_v1": "The embedding service is temporarily unstable. Please try again later.",
    "analyze": "The video could not be processed: failed to fetch or materialize source media.",
}
DEFAULT_CANCEL_MESSAGE: Final = "The analysis task was canceled by the user."


_SECOND_PREFIXES: dict[int, str] = {}


def format_ms(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC with milliseconds and ``Z``."""
    sec, milli = divmod(ms, 1000)
    prefix = _SECOND_PREFIXES.get(sec)
    if prefix is None:
        if len(_SECOND_PREFIXES) >= 4096:
            _SECOND_PREFIXES.clear()
        t = time.gmtime(sec)
        prefix = _SECOND_PREFIXES[sec] = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
    return f"{prefix}.{milli:03d}Z"


@dataclass(slots=True, eq=False)
class TaskRecord:
    """One task held by the fake server (mutable; the server owns it).

    Attributes mirror the wire task plus the knobs that drive its progression.
    ``polls`` counts the client's observations of this task: individual GET
    retrieve/status requests and list pages that show it. ``final_at`` is the
    server-clock time at which the task became final (``None`` while it is not).
    """

    id: str
    kind: TaskKind
    seq: int
    status: str
    created_ms: int
    created_monotonic: float
    finish_after_polls: int | None
    finish_after_seconds: float | None
    final_status: str
    error_message: str | None = None
    error_code: str | None = None
    polls: int = 0
    final_at: float | None = None
    video_url: str | None = None
    asset_id: str | None = None
    analysis_mode: str = "general"
    custom_id: str | None = None
    extra: dict[str, Any] | None = None
    """Request-specific details (only for tasks created through POST)."""
    cache: Any = None
    """Encoded body fragments of a final task (owned by the payload builder)."""
    list_cache: tuple[tuple[str, float | None], bytes] | None = None
    """The encoded list item and the (status, final_at) it was built for (payload builder's)."""

    @property
    def created_at(self) -> datetime:
        """Wall-clock creation time (UTC, millisecond precision)."""
        return datetime.fromtimestamp(self.created_ms / 1000, tz=timezone.utc)

    @property
    def is_final(self) -> bool:
        """Whether the task reached ``ready``, ``failed`` or ``canceled``."""
        return self.final_at is not None

    @property
    def final_ms(self) -> int:
        """Wall-clock epoch milliseconds of the final transition (creation if not final)."""
        if self.final_at is None:
            return self.created_ms
        return self.created_ms + max(0, round((self.final_at - self.created_monotonic) * 1000))

    @property
    def updated_at(self) -> datetime:
        """Wall-clock time of the last status change (UTC)."""
        return datetime.fromtimestamp(self.final_ms / 1000, tz=timezone.utc)


_order_key = attrgetter("created_ms", "seq")
_created_key = attrgetter("created_ms")


def _check_kind(kind: str) -> TaskKind:
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {KINDS}")
    return kind


class TaskStore:
    """In-memory task store with lazy, clock-driven status progression.

    All methods are synchronous and meant to be called from the event loop
    that runs the fake server (or before it starts).
    """

    __slots__ = (
        "_by_kind",
        "_counter",
        "_due",
        "_last_ms",
        "_order",
        "_query_cache",
        "_rand40",
        "_seq",
        "_sorted",
        "clock",
        "default_final_status",
        "default_finish_after_polls",
        "default_finish_after_seconds",
        "on_final",
        "version",
    )

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        default_finish_after_polls: int | None = 2,
        default_finish_after_seconds: PerKind[float | None] = None,
        default_final_status: PerKind[str] = "ready",
        seed: int = 0,
    ) -> None:
        self.clock = clock
        self.default_finish_after_polls = default_finish_after_polls
        self.default_finish_after_seconds = default_finish_after_seconds
        self.default_final_status = (
            default_final_status
            if callable(default_final_status)
            else _check_final(default_final_status)
        )
        self.version = 0
        """Bumped on every change that can alter a list result."""
        self.on_final: Callable[[TaskRecord], None] | None = None
        """Called with each record the moment it becomes final (e.g. to send a webhook)."""
        self._by_kind: dict[str, dict[str, TaskRecord]] = {k: {} for k in KINDS}
        self._order: dict[str, list[TaskRecord]] = {k: [] for k in KINDS}
        self._sorted: dict[str, bool] = dict.fromkeys(KINDS, True)
        self._due: list[tuple[float, int, TaskRecord]] = []
        self._query_cache: dict[tuple[Any, ...], tuple[int, list[TaskRecord]]] = {}
        self._seq = 0
        self._last_ms = 0
        self._counter = random.Random(seed).getrandbits(24)
        self._rand40 = random.Random(seed + 1).getrandbits(40)

    # ------------------------------------------------------------------ creation

    def new_id(self, created_ms: int) -> str:
        """A fresh 24-lowercase-hex id (ObjectId-like: time, random, counter)."""
        self._counter = (self._counter + 1) & 0xFFFFFF
        return f"{(created_ms // 1000) & 0xFFFFFFFF:08x}{self._rand40:010x}{self._counter:06x}"

    def add(
        self,
        kind: TaskKind,
        *,
        status: str | None = None,
        finish_after_polls: int | None = None,
        finish_after_seconds: float | None = None,
        final_status: str | None = None,
        error_message: str | None = None,
        created_at: datetime | None = None,
        video_url: str | None = None,
        asset_id: str | None = None,
        analysis_mode: str = "general",
        custom_id: str | None = None,
        extra: dict[str, Any] | None = None,
        task_id: str | None = None,
        now: float | None = None,
    ) -> TaskRecord:
        """Create a task and return its record.

        If neither ``finish_after_polls`` nor ``finish_after_seconds`` is given,
        the store defaults apply (pass ``finish_after_seconds=math.inf`` for a
        task that never finishes on its own). ``status`` sets the initial status;
        a final status creates the task already final. ``now`` overrides the
        creation clock time (default ``clock()``; batches share one value).
        """
        kind = _check_kind(kind)
        if now is None:
            now = self.clock()
        if created_at is None:
            created_ms = int(time.time() * 1000)
            if created_ms == self._last_ms:
                created_ms = self._last_ms  # share one int object between tasks
            else:
                self._last_ms = created_ms
        else:
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=timezone.utc)
            created_ms = round(created_at.timestamp() * 1000)
        if finish_after_polls is None and finish_after_seconds is None:
            finish_after_polls = self.default_finish_after_polls
            finish_after_seconds = _per_kind(self.default_finish_after_seconds, kind)
        if final_status is None:
            fstatus = _check_final(_per_kind(self.default_final_status, kind))
        else:
            fstatus = _check_final(final_status)
        initial = status
        if initial is None:
            initial = "queued" if kind == "analyze" else "processing"
        tid = task_id if task_id is not None else self.new_id(created_ms)
        tasks = self._by_kind[kind]
        if tid in tasks:
            raise ValueError(f"task {tid!r} already exists")
        self._seq += 1
        rec = TaskRecord(
            id=tid,
            kind=kind,
            seq=self._seq,
            status=initial,
            created_ms=created_ms,
            created_monotonic=now,
            finish_after_polls=finish_after_polls,
            finish_after_seconds=finish_after_seconds,
            final_status=fstatus,
            error_message=error_message,
            video_url=video_url,
            asset_id=asset_id,
            analysis_mode=analysis_mode,
            custom_id=custom_id,
            extra=extra,
        )
        tasks[tid] = rec
        order = self._order[kind]
        if order and created_ms < order[-1].created_ms:
            self._sorted[kind] = False
        order.append(rec)
        self.version += 1
        if initial in FINAL_STATUSES:
            rec.final_status = initial
            self._finalize(rec, now)
        elif finish_after_polls is not None and finish_after_polls <= 0:
            self._finalize(rec, now)
        elif finish_after_seconds is not None and finish_after_seconds != float("inf"):
            due = now + finish_after_seconds
            if due <= now:
                self._finalize(rec, due)
            else:
                heapq.heappush(self._due, (due, rec.seq, rec))
                if kind == "analyze" and initial in _EARLY_ANALYZE_STATUSES:
                    heapq.heappush(self._due, (now + finish_after_seconds / 2, rec.seq, rec))
        return rec

    # ------------------------------------------------------------------ lookups

    def get(self, kind: TaskKind, task_id: str) -> TaskRecord | None:
        """The record, or ``None`` (no progression is evaluated)."""
        return self._by_kind[kind].get(task_id)

    def require(self, kind: TaskKind, task_id: str) -> TaskRecord:
        """The record brought up to date with the clock; ``KeyError`` if unknown."""
        rec = self._by_kind[_check_kind(kind)].get(task_id)
        if rec is None:
            raise KeyError(f"no {kind} task {task_id!r}")
        self.advance(rec, self.clock())
        return rec

    def all(self, kind: TaskKind) -> list[TaskRecord]:
        """All records of ``kind`` in creation order, brought up to date."""
        now = self.clock()
        recs = list(self._by_kind[_check_kind(kind)].values())
        for rec in recs:
            self.advance(rec, now)
        return recs

    def count(self, kind: TaskKind) -> int:
        """How many tasks of ``kind`` exist."""
        return len(self._by_kind[kind])

    # ------------------------------------------------------------------ progression

    def advance(self, rec: TaskRecord, now: float) -> None:
        """Apply time-based transitions that are due at ``now``."""
        if rec.final_at is not None:
            return
        fas = rec.finish_after_seconds
        if fas is None:
            return
        due = rec.created_monotonic + fas
        if due <= now:
            self._finalize(rec, due)
        elif (
            rec.kind == "analyze"
            and rec.status in _EARLY_ANALYZE_STATUSES
            and now >= rec.created_monotonic + fas / 2
        ):
            rec.status = "processing"
            self.version += 1

    def poll(self, kind: TaskKind, task_id: str, now: float) -> TaskRecord | None:
        """Count one GET of the task and apply every transition due; ``None`` if unknown."""
        rec = self._by_kind[kind].get(task_id)
        if rec is None:
            return None
        self.advance(rec, now)
        rec.polls += 1
        if rec.final_at is not None:
            return rec
        fap = rec.finish_after_polls
        if fap is not None and rec.polls >= fap:
            self._finalize(rec, now)
        elif rec.kind == "analyze" and rec.status in _EARLY_ANALYZE_STATUSES:
            rec.status = "processing"
            self.version += 1
        return rec

    def observe(self, records: Sequence[TaskRecord], now: float) -> None:
        """Count one list sighting of each record as a poll (after its page was built)."""
        for rec in records:
            if rec.final_at is not None:
                continue
            rec.polls += 1
            fap = rec.finish_after_polls
            if fap is not None and rec.polls >= fap:
                self._finalize(rec, now)

    def catch_up(self, now: float) -> None:
        """Apply every time-based transition due at ``now`` (used before listing)."""
        due = self._due
        while due and due[0][0] <= now:
            _, _, rec = heapq.heappop(due)
            if self._by_kind[rec.kind].get(rec.id) is rec:
                self.advance(rec, now)

    def _finalize(self, rec: TaskRecord, at: float) -> None:
        rec.status = rec.final_status
        rec.final_at = at
        rec.cache = None
        if rec.status == "canceled" and rec.error_code is None:
            rec.error_code = "user_canceled"
            if rec.error_message is None:
                rec.error_message = DEFAULT_CANCEL_MESSAGE
        elif rec.status == "failed" and rec.error_message is None:
            rec.error_message = DEFAULT_FAILURE_MESSAGES[rec.kind]
        self.version += 1
        if self.on_final is not None:
            self.on_final(rec)

    def set_status(
        self,
        rec: TaskRecord,
        status: str,
        *,
        error_message: str | None = None,
        error_code: str | None = None,
    ) -> None:
        """Force ``status`` now. A final status records ``final_at = clock()``."""
        if error_message is not None:
            rec.error_message = error_message
        if error_code is not None:
            rec.error_code = error_code
        if status in FINAL_STATUSES:
            rec.final_status = status
            self._finalize(rec, self.clock())
        else:
            rec.status = status
            rec.final_at = None
            rec.cache = None
            self.version += 1

    def delete(self, kind: TaskKind, task_id: str) -> TaskRecord | None:
        """Remove a task (later reads answer 404); returns the removed record."""
        rec = self._by_kind[_check_kind(kind)].pop(task_id, None)
        if rec is None:
            return None
        order = self._order[kind]
        if self._sorted[kind]:
            i = bisect_left(order, _order_key(rec), key=_order_key)
            if i < len(order) and order[i] is rec:
                del order[i]
            else:  # pragma: no cover - defensive
                order.remove(rec)
        else:
            order.remove(rec)
        self.version += 1
        return rec

    # ------------------------------------------------------------------ listing

    def query(
        self,
        kind: TaskKind,
        now: float,
        *,
        started_ms: int | None = None,
        ended_ms: int | None = None,
        status: str | None = None,
        video_url: str | None = None,
        asset_id: str | None = None,
        analysis_mode: str | None = None,
        url_of: Callable[[TaskRecord], str | None] | None = None,
    ) -> Sequence[TaskRecord]:
        """Matching tasks in ascending ``(created_at, seq)`` order (callers page from the end).

        Time bounds are inclusive epoch milliseconds compared against ``created_at``.
        The returned sequence must not be mutated.
        """
        self.catch_up(now)
        order = self._order[kind]
        if not self._sorted[kind]:
            order.sort(key=_order_key)
            self._sorted[kind] = True
        if (
            started_ms is None
            and ended_ms is None
            and status is None
            and video_url is None
            and asset_id is None
            and analysis_mode is None
        ):
            return order
        key = (kind, started_ms, ended_ms, status, video_url, asset_id, analysis_mode)
        hit = self._query_cache.get(key)
        if hit is not None and hit[0] == self.version:
            return hit[1]
        lo = 0 if started_ms is None else bisect_left(order, started_ms, key=_created_key)
        hi = len(order) if ended_ms is None else bisect_right(order, ended_ms, key=_created_key)
        result = order[lo:hi] if lo < hi else []
        if status is not None:
            result = [r for r in result if r.status == status]
        if analysis_mode is not None:
            result = [r for r in result if r.analysis_mode == analysis_mode]
        if asset_id is not None:
            result = [r for r in result if r.asset_id == asset_id]
        if video_url is not None:
            get_url = url_of if url_of is not None else attrgetter("video_url")
            result = [r for r in result if get_url(r) == video_url]
        if len(self._query_cache) >= 32:
            self._query_cache.clear()
        self._query_cache[key] = (self.version, result)
        return result


def _per_kind(value: PerKind[_V], kind: TaskKind) -> _V:
    """``value``, or ``value(kind)`` when it is a callable (a per-task default)."""
    if callable(value):
        return value(kind)
    return value


def _check_final(status: str) -> str:
    if status not in FINAL_STATUSES:
        raise ValueError(f"final status must be one of {sorted(FINAL_STATUSES)}, got {status!r}")
    return status
