"""The poller's scheduling state, sans I/O: which task is checked when, which kind is swept
when, what is delivered. The async :class:`~twelvelabs_async.Poller` only runs the jobs this
hands out and reports back; a test can drive it with a simulated clock and server.

The invariant (:meth:`Scheduler.check_invariant`): every watched, undelivered task has at all
times exactly one of a scheduled check, membership in a live sweep, or a check in flight; and,
when it has a deadline, either that deadline is still armed or the task's own check is due at
or before it (or in flight), so the deadline is honoured.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from ._delivered import DeliveredIds
from ._engine import Action, CheckAt, Deliver, RelyOnSweep, StopAll, TaskEngine
from ._polling import ErrorAction, PollerOptions, PollSchedule, classify_error
from ._sweeps import (
    SWEEP_FAILURES_BEFORE_SOLO,
    SWEEP_MIN_TASKS,
    SWEEP_MISSES_BEFORE_SOLO,
    SweepPlan,
    SweepPlanner,
    SweepReport,
    window_of,
)
from ._types import TaskStatus, WatchKind

__all__ = ["CheckJob", "KindSpec", "Outcome", "Scheduler", "StatusChange", "SweepJob"]

logger = logging.getLogger("twelvelabs_async")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one watched task ended.

    Attributes:
        task_id: the task's id.
        kind: ``"embed_v2"``, ``"embed_v1"``, ``"analyze"``, ``"asset"`` or ``"analyze_batch"``.
        status: ``"ready"``, ``"failed"``, ``"canceled"`` (a batch: ``"completed"``,
            ``"canceled"``, ``"expired"``), or the poller's own verdict
            ``"timed_out"`` or ``"not_found"`` (the task answered 404 twice).
            ``timed_out`` means a check made at or after the task's deadline (or in flight
            across it, up to the grace) still said "not final"; or, with ``error`` set to
            an exception that is not an API error (a bug, an id that cannot be sent),
            that checking this one task failed in a way retrying cannot fix: it ends at
            once, and the other tasks go on.
        task: the last task model retrieved (the final one for a final status), or ``None``.
        error: the last error for ``timed_out``/``not_found`` outcomes, else ``None``.
    """

    task_id: str
    kind: WatchKind
    status: str
    task: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """``True`` for a ``ready`` task."""
        return self.status == TaskStatus.READY


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status transition reported to ``on_change`` (``new`` may be a poller verdict)."""

    task_id: str
    kind: WatchKind
    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What the scheduler needs to know about a kind's statuses and list endpoint."""

    pending_statuses: tuple[str, ...]
    final_statuses: tuple[str, ...]
    use_window: bool


class State(Enum):
    """Who is responsible for a watched task's next look."""

    SCHEDULED = "scheduled"
    SWEPT = "swept"
    INFLIGHT = "inflight"


class Watch(TaskEngine):
    """One watched task: its engine state plus the scheduler's bookkeeping."""

    __slots__ = (
        "armed",
        "created_at",
        "due",
        "epoch",
        "generation",
        "group",
        "last_task",
        "misses",
        "recheck",
        "state",
        "status",
        "task_id",
    )

    def __init__(self, task_id: str, group: Group, schedule: PollSchedule, grace: float) -> None:
        super().__init__(schedule, None, grace)
        self.task_id = task_id
        self.group = group
        self.state = State.SCHEDULED
        self.due = math.inf
        self.generation = 0
        self.epoch = 0
        self.armed = False
        self.recheck = False
        self.misses = 0
        self.status: str | None = None
        self.created_at: datetime | None = None
        self.last_task: Any = None

    def __repr__(self) -> str:
        return f"<Watch {self.group.kind} {self.task_id} {self.state.value}>"


class Group:
    """The watched tasks of one kind, and that kind's sweeps."""

    def __init__(self, kind: WatchKind, spec: KindSpec, options: PollerOptions) -> None:
        self.kind = kind
        self.spec = spec
        self.pending: dict[str, Watch] = {}
        self.active = False
        self.broken = False
        self.next_sweep = math.inf
        self.sweeping: SweepJob | None = None
        self.epoch = 0
        self.finished = 0
        self.delivered = DeliveredIds()
        self.planner = SweepPlanner(
            options,
            pending_statuses=spec.pending_statuses,
            final_statuses=spec.final_statuses,
            use_window=spec.use_window,
        )

    def swept(self) -> list[Watch]:
        return [w for w in self.pending.values() if w.state is State.SWEPT]


@dataclass(frozen=True, slots=True, eq=False)
class CheckJob:
    """Check one task's status (and fetch its full record if final)."""

    watch: Watch


@dataclass(frozen=True, slots=True, eq=False)
class SweepJob:
    """List what ``plan`` says for ``group``'s kind."""

    group: Group
    plan: SweepPlan
    epoch: int


Job = CheckJob | SweepJob


class Scheduler:
    """Every watched task's next step, and when each kind is swept (see the module doc)."""

    def __init__(
        self,
        options: PollerOptions,
        on_change: Callable[[StatusChange], None] | None = None,
    ) -> None:
        self.options = options
        self.schedule = options.schedule()
        self.grace = options.grace()
        self.on_change = on_change
        self.groups: dict[WatchKind, Group] = {}
        self.pending = 0
        """Watched tasks not yet delivered (each is in its group's ``pending``)."""
        self.inflight: set[Watch] = set()
        self.outbox: list[Outcome] = []
        self.counts: Counter[str] = Counter()
        self.pending_by_status: Counter[str] = Counter()
        self.started = False
        self.stopped: BaseException | None = None
        self._checks: list[tuple[float, int, int, Watch]] = []
        # Deadlines grouped by time: the tasks of one add() share one (8 bytes each).
        self._deadline_times: list[float] = []
        self._deadline_lists: dict[float, list[Watch]] = {}
        self._deadline_entries = 0
        self._seq = itertools.count()

    # --- the public surface -------------------------------------------------------------

    def add(self, kind: WatchKind, task_ids: Iterable[str], now: float, spec: KindSpec) -> int:
        """Watch ``task_ids`` of ``kind`` (whose statuses ``spec`` describes); returns how
        many were new (ids already watched or delivered are ignored).

        Raises ``ValueError`` for an id that is not a non-empty string or cannot be encoded
        (a lone surrogate): it could never be sent, so it is refused up front.
        """
        group = self.groups.get(kind)
        if group is None:
            group = self.groups[kind] = Group(kind, spec, self.options)
        ids = check_task_ids(task_ids)
        added: list[Watch] = []
        for task_id in ids:
            if task_id in group.pending or task_id in group.delivered:
                continue
            watch = Watch(task_id, group, self.schedule, self.grace)
            group.pending[task_id] = watch
            self.pending_by_status["unknown"] += 1
            added.append(watch)
        if not added:
            return 0
        self.pending += len(added)
        self.counts["watched"] += len(added)
        if self.started:
            # Activate the kind's sweeps first, so new tasks join them directly instead of
            # leaving a first check behind in the heap.
            self._rebalance(group, now)
            for watch in added:
                self._begin(watch, now)
        return len(added)

    def start(self, now: float) -> None:
        """The poller started: deadlines count from now, first checks are spread out."""
        self.started = True
        for group in self.groups.values():
            self._rebalance(group, now)
            for watch in list(group.pending.values()):
                self._begin(watch, now)

    def is_pending(self, kind: WatchKind, task_id: str) -> bool:
        """Whether ``task_id`` of ``kind`` is watched and not yet delivered."""
        group = self.groups.get(kind)
        return group is not None and task_id in group.pending

    def notify(self, task_id: str, kind: WatchKind | None, now: float) -> bool:
        """Check ``task_id`` now; returns whether it is watched and pending."""
        for group in self.groups.values():
            if kind is not None and group.kind != kind:
                continue
            watch = group.pending.get(task_id)
            if watch is None:
                continue
            if not self.started:
                return True
            if watch.state is State.INFLIGHT:
                watch.recheck = True  # check again as soon as this one answers
            else:
                self._apply(watch, watch.on_notify(now), now)
            return True
        return False

    def forget_delivered(self) -> int:
        """Forget every delivered id (adding one again watches it again); returns how many."""
        count = 0
        for group in self.groups.values():
            count += len(group.delivered)
            group.delivered.clear()
        return count

    def next_job(self, now: float) -> Job | None:
        """The next job due at ``now`` (``None``: nothing is due)."""
        if self.stopped is not None:
            return None
        times = self._deadline_times
        while times and times[0] <= now:
            when = heapq.heappop(times)
            due = self._deadline_lists.pop(when)
            self._deadline_entries -= len(due)
            for watch in due:
                if not watch.armed or watch.deadline != when:
                    continue  # delivered meanwhile
                watch.armed = False
                if watch.state is State.SWEPT:
                    self._apply(watch, watch.on_deadline(now), now)
                elif watch.state is State.SCHEDULED and watch.due > when:
                    self._schedule(watch, now)  # cannot happen: the engine clamps; be safe
        for group in self.groups.values():
            if group.active and group.sweeping is None and group.next_sweep <= now:
                members = group.swept()
                if not members:
                    group.next_sweep = now + self.schedule.initial
                    continue
                window = window_of(w.created_at for w in members)
                plan = group.planner.plan(
                    window,
                    len(members),
                    group.finished,
                    newest_member=max(w.epoch for w in members),
                )
                group.epoch += 1
                job = SweepJob(group, plan, group.epoch)
                group.sweeping = job
                group.next_sweep = math.inf
                return job
        checks = self._checks
        while checks and checks[0][0] <= now:
            _, _, generation, watch = heapq.heappop(checks)
            if watch.state is not State.SCHEDULED or watch.generation != generation:
                continue  # superseded (a newer schedule, a sweep took over, delivered)
            watch.state = State.INFLIGHT
            watch.generation += 1
            self.inflight.add(watch)
            return CheckJob(watch)
        return None

    def next_wakeup(self) -> float:
        """When the next job may be due (``inf``: only an ``add``/``notify`` can make one)."""
        if self.stopped is not None:
            return math.inf
        checks = self._checks
        while checks and (
            checks[0][3].state is not State.SCHEDULED or checks[0][3].generation != checks[0][2]
        ):
            heapq.heappop(checks)
        when = checks[0][0] if checks else math.inf
        if self._deadline_times:
            when = min(when, self._deadline_times[0])
        for group in self.groups.values():
            if group.active and group.sweeping is None:
                when = min(when, group.next_sweep)
        return when

    def check_done(
        self,
        watch: Watch,
        now: float,
        *,
        checked: Any = None,
        task: Any = None,
        error: Exception | None = None,
        cut_off: bool = False,
    ) -> None:
        """A check job ended: ``task`` is the full record if ``checked`` said final; else
        ``error`` is what it raised, or ``cut_off`` says it outlived the deadline's grace."""
        self.inflight.discard(watch)
        if watch.state is not State.INFLIGHT:
            return  # delivered meanwhile (the poller stopped)
        action: Action
        if cut_off:
            action = watch.on_cutoff(now)
        elif error is not None:
            action = watch.on_error(now, error)
        else:
            status = getattr(checked, "status", None)
            self._set_status(watch, status)
            created = getattr(checked, "created_at", None)
            if watch.created_at is None and isinstance(created, datetime):
                watch.created_at = created
            final = task is not None
            watch.last_task = task if final else checked
            group = watch.group
            sweepable = (
                group.active
                and watch.misses <= SWEEP_MISSES_BEFORE_SOLO
                and (watch.deadline is None or watch.armed)
            )
            action = watch.on_result(now, status, final, sweepable=sweepable)
        if watch.recheck and isinstance(action, (CheckAt, RelyOnSweep)):
            action = CheckAt(now)
        watch.recheck = False
        self._apply(watch, action, now)

    def sweep_done(
        self, job: SweepJob, now: float, report: SweepReport | None, error: Exception | None
    ) -> None:
        """A sweep job ended with ``report`` (or ``error``)."""
        group = job.group
        group.sweeping = None
        planner = group.planner
        if error is not None:
            if classify_error(error) is ErrorAction.STOP_ALL:
                self.stop(error)
                return
            logger.info("sweep of %s tasks failed: %s", group.kind, error)
        changed = 0
        if report is not None:
            planner.learned(job.plan, report, job.epoch)
            changed = self._read_sweep(group, job, report, now)
        if report is None or not report.complete:
            delay = planner.failed()
            if planner.failures >= SWEEP_FAILURES_BEFORE_SOLO:
                logger.warning("%s sweeps keep failing: polling those tasks one by one", group.kind)
                group.broken = True
                self._rebalance(group, now)
                return
        else:
            planner.failures = 0
            members = group.swept()
            window = window_of(w.created_at for w in members)
            next_cost = planner.cost(window, len(members), group.finished)
            delay = planner.next_interval(
                now, changed, report.requests, next_cost, len(group.pending)
            )
        if group.active:
            group.next_sweep = now + delay

    def stop(self, error: BaseException) -> None:
        """The key was refused: nothing more is handed out."""
        if self.stopped is None:
            self.stopped = error
            logger.error("poller stopped: %s", error)

    def take_outbox(self) -> list[Outcome]:
        outbox, self.outbox = self.outbox, []
        return outbox

    # --- the invariant ------------------------------------------------------------------

    def check_invariant(self) -> None:
        """Raise ``AssertionError`` if some watched task could fall between the cracks."""
        if not self.started or self.stopped is not None:
            return
        live_checks = {(id(w), gen) for _, _, gen, w in self._checks if w.state is State.SCHEDULED}
        armed = {(id(w), when) for when, due in self._deadline_lists.items() for w in due}
        assert sorted(self._deadline_times) == sorted(self._deadline_lists)
        pending = 0
        for group in self.groups.values():
            for task_id, watch in group.pending.items():
                pending += 1
                assert watch.task_id == task_id
                assert task_id not in group.delivered, task_id
                state = watch.state
                if state is State.SCHEDULED:
                    assert (id(watch), watch.generation) in live_checks, f"{watch}: no check"
                    assert watch not in self.inflight
                elif state is State.SWEPT:
                    assert group.active, f"{watch}: swept, but its kind is not"
                    assert not group.broken, f"{watch}: swept, but sweeps are broken"
                    assert group.sweeping is not None or group.next_sweep < math.inf, watch
                    assert watch not in self.inflight
                else:
                    assert watch in self.inflight, f"{watch}: in flight, but no job"
                if watch.deadline is None:
                    continue
                if watch.armed:
                    assert (id(watch), watch.deadline) in armed, f"{watch}: deadline lost"
                else:
                    assert state is not State.SWEPT, f"{watch}: swept past its deadline"
                    if state is State.SCHEDULED:
                        assert watch.due <= watch.cutoff(), f"{watch}: checked too late"
        assert pending == self.pending

    # --- internals ----------------------------------------------------------------------

    def _begin(self, watch: Watch, now: float) -> None:
        timeout = self.options.timeout
        if timeout is not None:
            watch.deadline = when = now + timeout
            watch.armed = True
            due = self._deadline_lists.get(when)
            if due is None:
                due = self._deadline_lists[when] = []
                heapq.heappush(self._deadline_times, when)
            due.append(watch)
            self._deadline_entries += 1
        group = watch.group
        if group.active:
            self._join_sweeps(watch)
        else:
            self._apply(watch, watch.start(now, spread=True), now)

    def _schedule(self, watch: Watch, when: float) -> None:
        watch.state = State.SCHEDULED
        watch.generation += 1
        watch.due = when
        heapq.heappush(self._checks, (when, next(self._seq), watch.generation, watch))

    def _join_sweeps(self, watch: Watch) -> None:
        watch.state = State.SWEPT
        watch.generation += 1  # any scheduled check of its own is void now
        watch.due = math.inf
        watch.epoch = watch.group.epoch  # judged only by sweeps that start after this

    def _apply(self, watch: Watch, action: Action, now: float) -> None:
        if isinstance(action, CheckAt):
            self._schedule(watch, action.when)
        elif isinstance(action, RelyOnSweep):
            if watch.group.active:
                self._join_sweeps(watch)
            else:
                self._apply(watch, watch.at(now, self.schedule.delay(watch.checks)), now)
        elif isinstance(action, Deliver):
            task = watch.last_task
            self._deliver(watch, action.status, task, action.error, now)
        else:
            assert isinstance(action, StopAll)
            self.stop(action.error)

    def _set_status(self, watch: Watch, status: str | None) -> None:
        old = watch.status
        if status == old:
            return
        self.pending_by_status[old or "unknown"] -= 1
        watch.status = status
        self.pending_by_status[status or "unknown"] += 1
        if status is not None:
            self._emit(StatusChange(watch.task_id, watch.group.kind, old, status))

    def _emit(self, change: StatusChange) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(change)
        except Exception:
            logger.exception("on_change callback failed for %s", change.task_id)

    def _deliver(
        self, watch: Watch, status: str, task: Any, error: BaseException | None, now: float
    ) -> None:
        group = watch.group
        del group.pending[watch.task_id]
        self.pending -= 1
        self.inflight.discard(watch)
        watch.generation += 1
        watch.armed = False
        self.pending_by_status[watch.status or "unknown"] -= 1
        self.counts[status] += 1
        group.finished += 1
        if status not in (TaskStatus.TIMED_OUT, TaskStatus.NOT_FOUND):
            error = None
        if status != watch.status:
            self._emit(StatusChange(watch.task_id, group.kind, watch.status, status))
        if self.options.remember_delivered:
            group.delivered.add(watch.task_id)
        # The outcome keeps the task and error; the watch keeps nothing (it is dropped).
        watch.last_task = None
        watch.last_error = None
        self.outbox.append(Outcome(watch.task_id, group.kind, status, task, error))
        self._compact()
        self._rebalance(group, now)

    def _compact(self) -> None:
        """Drop heap entries of delivered or rescheduled tasks once they are the majority:
        a delivered task's deadline entry would otherwise keep its watch alive for hours."""
        limit = 2 * self.pending + 64
        if self._deadline_entries > limit:
            lists = {
                when: [w for w in due if w.armed and w.deadline == when]
                for when, due in self._deadline_lists.items()
            }
            self._deadline_lists = {when: due for when, due in lists.items() if due}
            self._deadline_times = list(self._deadline_lists)
            heapq.heapify(self._deadline_times)
            self._deadline_entries = sum(map(len, self._deadline_lists.values()))
        if len(self._checks) > limit:
            self._checks = [
                e for e in self._checks if e[3].state is State.SCHEDULED and e[3].generation == e[2]
            ]
            heapq.heapify(self._checks)

    def _rebalance(self, group: Group, now: float) -> None:
        """Sweep a kind with enough pending tasks; poll each task of a smaller one alone."""
        want = (
            self.options.sweep
            and not group.broken
            and bool(group.spec.pending_statuses)  # a list without a status filter (assets)
            and len(group.pending) >= SWEEP_MIN_TASKS
        )
        if want and not group.active:
            group.active = True
            # The first sweep soon: it learns every task's creation time (narrower sweeps).
            group.next_sweep = now + min(self.schedule.initial, 1.0) * 0.5
            for watch in group.pending.values():
                if (
                    watch.state is State.SCHEDULED
                    and watch.due > now
                    and watch.misses <= SWEEP_MISSES_BEFORE_SOLO
                    and (watch.deadline is None or watch.armed)
                ):
                    self._join_sweeps(watch)
        elif not want and group.active:
            group.active = False
            group.next_sweep = math.inf
            for watch in group.pending.values():
                if watch.state is State.SWEPT:
                    self._apply(watch, watch.start(now, spread=True), now)

    def _read_sweep(self, group: Group, job: SweepJob, report: SweepReport, now: float) -> int:
        """Act on what a sweep saw; returns how many watched tasks it found changed."""
        plan = job.plan
        seen: dict[str, str | None] = {}
        for item_id, status, created in report.items:
            watch = group.pending.get(item_id) if item_id else None
            if watch is None:
                continue
            seen[item_id] = status
            if watch.created_at is None and created is not None:
                watch.created_at = created
        changed = 0
        if plan.final_side:
            finals = set(plan.statuses)
            for item_id, status in seen.items():
                watch = group.pending[item_id]
                if watch.state is State.SWEPT and watch.epoch < job.epoch and status in finals:
                    changed += 1
                    self._schedule(watch, now)
            return changed
        if not report.complete:
            return 0  # an incomplete list cannot say who left it
        if set(plan.statuses) <= report.unchanged:
            return 0  # the count has not moved: nobody left
        for watch in list(group.pending.values()):
            if watch.state is not State.SWEPT or watch.epoch >= job.epoch:
                continue
            status = seen.get(watch.task_id, _MISSING)
            if status is not _MISSING:
                watch.misses = 0
                if status is not None:
                    self._set_status(watch, status)
                continue
            watch.misses += 1
            changed += 1
            self._schedule(watch, now)  # not among the non-final ones: look at it
        return changed


_MISSING: Any = object()


def check_task_ids(task_ids: Iterable[str]) -> list[str]:
    """``task_ids`` as a list, or ``ValueError`` (for the whole call) if one is not a
    non-empty string or cannot be encoded (a lone surrogate could never be sent)."""
    ids = list(task_ids)
    for task_id in ids:
        if not isinstance(task_id, str) or not task_id:
            raise ValueError(f"task ids must be non-empty strings, got {task_id!r}")
        try:
            task_id.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"task id {task_id!r} cannot be encoded as UTF-8") from None
    return ids
