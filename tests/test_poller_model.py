"""Model-based tests of the poller's sans-I/O scheduler and engine.

A hypothesis state machine drives :class:`Scheduler` (the poller's whole scheduling state,
with the same engine ``wait()`` runs) against a simulated clock and a simulated server: tasks
finish at random times, some are deleted or answer 404 for a while, checks fail transiently or
with a 429 or with a bug, list pages are stale, shift or repeat, ids are added while others are
in flight, webhooks notify. After every step the scheduler's invariant must hold (no task can
fall between the cracks); at the end every id is delivered exactly once, with its true final
status, and never ``timed_out`` if it was final before its last check.
"""

from __future__ import annotations

import math
import tracemalloc
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from twelvelabs_async import (
    APIConnectionError,
    InternalServerError,
    NotFoundError,
    PollerOptions,
    RateLimitError,
)
from twelvelabs_async._delivered import DeliveredIds
from twelvelabs_async._engine import CheckAt, Deliver, TaskEngine
from twelvelabs_async._scheduler import CheckJob, KindSpec, Outcome, Scheduler, SweepJob
from twelvelabs_async._sweeps import SweepReport

KIND = "embed_v2"
SPEC = KindSpec(("processing",), ("ready", "failed"), use_window=True)
BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
FINAL = frozenset({"ready", "failed"})


@dataclass
class SimTask:
    """One task on the simulated server."""

    task_id: str
    finish_at: float
    final_status: str
    created: datetime
    deleted: bool = False
    faults: list[str] = field(default_factory=list)

    def status(self, t: float) -> str:
        return self.final_status if t >= self.finish_at else "processing"


@dataclass(frozen=True)
class Checked:
    """What a simulated status check returns."""

    status: str
    created_at: datetime

    @property
    def is_final(self) -> bool:
        return self.status in FINAL


def _error(fault: str) -> Exception:
    if fault == "404":
        return NotFoundError("gone", status_code=404, code="resource_not_exist")
    if fault == "500":
        return InternalServerError("boom", status_code=500)
    if fault == "429":
        return RateLimitError("slow down", status_code=429)
    if fault == "conn":
        return APIConnectionError("dropped")
    return UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")


class PollerModel(RuleBasedStateMachine):
    """The scheduler against a simulated server and clock."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.tasks: dict[str, SimTask] = {}
        self.inflight: list[tuple[Any, float]] = []
        self.delivered: dict[str, Outcome] = {}
        self.delivered_count: dict[str, int] = {}
        self.last_ok_check: dict[str, float] = {}
        self.gave_up: set[str] = set()
        self.had_404: set[str] = set()
        self.cut_off: set[str] = set()
        self.added_at: dict[str, float] = {}
        self.counter = 0

    # --- setup ----------------------------------------------------------------------------

    @initialize(
        timeout=st.sampled_from([None, 6.0, 30.0]),
        sweep=st.booleans(),
        count=st.integers(0, 8),
        data=st.data(),
    )
    def setup(self, timeout: float | None, sweep: bool, count: int, data: st.DataObject) -> None:
        self.timeout = timeout
        options = PollerOptions(
            timeout=timeout,
            poll_interval=1.0,
            max_poll_interval=8.0,
            target_delay=3.0,
            deadline_grace=2.0,
            sweep=sweep,
        )
        self.sched = Scheduler(options)
        ids = [self._new_task(data) for _ in range(count)]
        self.sched.add(KIND, ids, 0.0, SPEC)
        self.sched.start(0.0)
        self._drain_jobs()

    def _new_task(self, data: st.DataObject) -> str:
        self.counter += 1
        task_id = f"{self.counter:024x}"
        limit = 60.0 if self.timeout is None else 50.0
        finish = data.draw(
            st.floats(0.0, limit) | st.just(math.inf) if self.timeout else st.floats(0.0, limit)
        )
        self.added_at[task_id] = self.now
        self.tasks[task_id] = SimTask(
            task_id,
            self.now + finish,
            data.draw(st.sampled_from(["ready", "ready", "failed"])),
            BASE + timedelta(seconds=data.draw(st.integers(0, 3))),
        )
        return task_id

    # --- the driver's side ----------------------------------------------------------------

    def _drain_jobs(self) -> None:
        while (job := self.sched.next_job(self.now)) is not None:
            self.inflight.append((job, self.now))
        self._collect()

    def _collect(self) -> None:
        for outcome in self.sched.take_outbox():
            self.delivered_count[outcome.task_id] = self.delivered_count.get(outcome.task_id, 0) + 1
            self.delivered[outcome.task_id] = outcome

    def _finish_check(self, job: CheckJob, *, cut_off: bool = False) -> None:
        watch = job.watch
        task = self.tasks[watch.task_id]
        if cut_off:
            self.cut_off.add(watch.task_id)
            self.sched.check_done(watch, self.now, cut_off=True)
            return
        if task.faults:
            fault = task.faults.pop(0)
            if fault == "404":
                self.had_404.add(task.task_id)
            if fault == "bug":
                self.gave_up.add(task.task_id)
            self.sched.check_done(watch, self.now, error=_error(fault))
            return
        if task.deleted:
            self.had_404.add(task.task_id)
            self.sched.check_done(watch, self.now, error=_error("404"))
            return
        checked = Checked(task.status(self.now), task.created)
        self.last_ok_check[task.task_id] = self.now
        full = checked if checked.is_final else None
        self.sched.check_done(watch, self.now, checked=checked, task=full)

    def _finish_sweep(self, job: SweepJob, stale: float, drop: int, mode: str) -> None:
        if mode == "error":
            self.sched.sweep_done(job, self.now, None, _error("500"))
            return
        view = self.now - stale
        report = SweepReport()
        plan = job.plan
        for status in plan.statuses:
            rows = [
                t
                for t in self.tasks.values()
                if not t.deleted
                and t.status(max(view, 0.0)) == status
                and (plan.window is None or plan.window[0] <= _rfc(t.created) <= plan.window[1])
            ]
            report.totals[status] = len(rows)
            if plan.known_totals.get(status) == len(rows):
                report.unchanged.add(status)
                continue
            rows = rows[drop:] if drop else rows  # a shifting list skips some items
            report.items.extend((t.task_id, status, t.created) for t in rows)
        report.complete = mode != "repeat"
        self.sched.sweep_done(job, self.now, report, None)

    # --- rules ----------------------------------------------------------------------------

    @rule(data=st.data(), count=st.integers(1, 4))
    def add_more(self, data: st.DataObject, count: int) -> None:
        ids = [self._new_task(data) for _ in range(count)]
        # A delivered id added again is a no-op.
        again = list(self.delivered)[:1]
        added = self.sched.add(KIND, ids + again, self.now, SPEC)
        assert added == count
        self._drain_jobs()

    @rule(dt=st.floats(0.0, 6.0))
    def advance(self, dt: float) -> None:
        target = self.now + dt
        while True:
            cutoffs = [
                (job.watch.cutoff(), i)
                for i, (job, _) in enumerate(self.inflight)
                if isinstance(job, CheckJob) and job.watch.cutoff() <= target
            ]
            wake = self.sched.next_wakeup()
            first_cut = min(cutoffs, default=(math.inf, -1))
            if first_cut[0] <= min(wake, target) and first_cut[0] < math.inf:
                self.now = max(self.now, first_cut[0])
                job, _ = self.inflight.pop(first_cut[1])
                self._finish_check(job, cut_off=True)
            elif wake <= target:
                self.now = max(self.now, wake)
                self._drain_jobs()
                if self.sched.next_wakeup() <= self.now:
                    continue
            else:
                break
            self._collect()
        self.now = target
        self._drain_jobs()

    @precondition(lambda self: bool(self.inflight))
    @rule(
        data=st.data(),
        stale=st.sampled_from([0.0, 0.0, 3.0]),
        drop=st.sampled_from([0, 0, 1]),
        mode=st.sampled_from(["ok"] * 8 + ["repeat", "error"]),
    )
    def finish_a_job(self, data: st.DataObject, stale: float, drop: int, mode: str) -> None:
        index = data.draw(st.integers(0, len(self.inflight) - 1))
        job, _ = self.inflight.pop(index)
        if isinstance(job, CheckJob):
            self._finish_check(job)
        else:
            self._finish_sweep(job, stale, drop, mode)
        self._collect()
        self._drain_jobs()

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data(), fault=st.sampled_from(["404", "500", "429", "conn", "bug", "404"]))
    def inject_fault(self, data: st.DataObject, fault: str) -> None:
        task = data.draw(st.sampled_from(sorted(self.tasks)))
        self.tasks[task].faults.append(fault)

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def delete_a_task(self, data: st.DataObject) -> None:
        self.tasks[data.draw(st.sampled_from(sorted(self.tasks)))].deleted = True

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def notify(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.tasks)))
        pending = self.sched.is_pending(KIND, task_id)
        assert self.sched.notify(task_id, KIND, self.now) == pending
        self._drain_jobs()

    @invariant()
    def nothing_falls_between_the_cracks(self) -> None:
        if hasattr(self, "sched"):
            self.sched.check_invariant()

    # --- the end: drain, then judge -------------------------------------------------------

    def teardown(self) -> None:
        if not hasattr(self, "sched"):
            return
        for task in self.tasks.values():
            task.faults = [f for f in task.faults if f != "404"][:2]
        for _ in range(5000):
            self._collect()
            if not self.sched.pending:
                break
            if self.inflight:
                job, _ = self.inflight.pop(0)
                if isinstance(job, CheckJob):
                    self._finish_check(job)
                else:
                    self._finish_sweep(job, 0.0, 0, "ok")
                self._collect()
                self._drain_jobs()
                self.sched.check_invariant()
                continue
            wake = self.sched.next_wakeup()
            assert wake < math.inf, f"stuck: {self.sched.groups}"
            self.now = max(self.now, wake)
            self._drain_jobs()
            self.sched.check_invariant()
        self._collect()
        assert not self.sched.pending, "the poller never finished"
        assert set(self.delivered) == set(self.tasks)
        assert all(n == 1 for n in self.delivered_count.values()), "delivered twice"
        for task_id, outcome in self.delivered.items():
            task = self.tasks[task_id]
            if outcome.status in FINAL:
                assert outcome.status == task.final_status
                assert outcome.task is not None
                assert outcome.task.status == task.final_status
            elif outcome.status == "not_found":
                assert task_id in self.had_404
            else:
                assert outcome.status == "timed_out"
                if task_id in self.gave_up and outcome.error is not None:
                    continue
                assert self.timeout is not None
                last = self.last_ok_check.get(task_id)
                if last is not None:
                    # Never timed out if it was final before its last check.
                    assert task.finish_at > last, (task, last)
                if outcome.error is None:
                    # A check at or after the deadline said "not final" (or one in flight
                    # across it outlived the grace).
                    deadline = self.added_at[task_id] + self.timeout
                    assert task_id in self.cut_off or (last is not None and last >= deadline)


def _rfc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


PollerModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPollerModel = PollerModel.TestCase


# --- the engine alone: the deadline semantics ---------------------------------------------


def test_engine_never_schedules_past_the_deadline_and_times_out_only_after_a_late_check() -> None:
    options = PollerOptions(timeout=10.0, poll_interval=2.0, max_poll_interval=30.0)
    engine = TaskEngine(options.schedule(), deadline=10.0, grace=options.grace())
    action = engine.start(0.0)
    now = 0.0
    while isinstance(action, CheckAt):
        assert action.when <= 10.0
        now = action.when
        action = engine.on_result(now, "processing", final=False)
    assert isinstance(action, Deliver)
    assert action.status == "timed_out"
    assert now == 10.0  # the last check was made at the deadline itself


def test_engine_in_flight_across_the_deadline_that_says_final_is_delivered() -> None:
    engine = TaskEngine(PollerOptions().schedule(), deadline=5.0, grace=2.0)
    assert engine.on_result(6.5, "ready", final=True) == Deliver("ready")
    assert engine.on_cutoff(7.0).status == "timed_out"


def test_a_non_api_error_ends_only_its_task_at_once() -> None:
    engine = TaskEngine(PollerOptions().schedule(), deadline=None, grace=5.0)
    action = engine.on_error(0.0, UnicodeEncodeError("utf-8", "\ud800", 0, 1, "x"))
    assert isinstance(action, Deliver)
    assert action.status == "timed_out"
    assert isinstance(action.error, UnicodeEncodeError)


# --- memory: delivered ids are remembered compactly ----------------------------------------


def test_delivered_tasks_leave_under_100_bytes_each_behind() -> None:
    """Through the whole scheduler (deadlines armed, as by default): what stays per task
    once it is delivered and its outcome handed on."""
    sched = Scheduler(PollerOptions(sweep=False))
    sched.start(0.0)
    total, batch = 20_000, 5_000
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for start in range(0, total, batch):
        sched.add(KIND, [f"{i:024x}" for i in range(start, start + batch)], 0.0, SPEC)
        while (job := sched.next_job(3.0)) is not None:
            assert isinstance(job, CheckJob)
            checked = Checked("ready", BASE)
            sched.check_done(job.watch, 1.0, checked=checked, task=checked)
        assert len(sched.take_outbox()) == batch  # as_completed() hands the outcomes on
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_id = (after - before) / total
    assert per_id < 100, f"{per_id:.1f} bytes per delivered id"
    assert sched.add(KIND, [f"{7:024x}"], 2.0, SPEC) == 0  # still a no-op to add one again


def test_a_million_delivered_ids_are_remembered_in_under_100_bytes_each() -> None:
    delivered = DeliveredIds()
    total, batch = 1_000_000, 20_000
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for start in range(0, total, batch):
        for i in range(start, start + batch):
            delivered.add(f"{i:024x}")
    delivered.add("not-an-object-id")
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_id = (after - before) / total
    assert per_id < 100, f"{per_id:.1f} bytes per delivered id"
    assert all(f"{i:024x}" in delivered for i in (0, 4095, 123_456, total - 1))
    assert "not-an-object-id" in delivered
    assert f"{total:024x}" not in delivered
    assert len(delivered) == total + 1


def test_forgetting_delivered_ids_lets_them_be_watched_again() -> None:
    sched = Scheduler(PollerOptions(sweep=False))
    sched.start(0.0)
    sched.add(KIND, [f"{i:024x}" for i in range(10)], 0.0, SPEC)
    while (job := sched.next_job(3.0)) is not None:
        assert isinstance(job, CheckJob)
        sched.check_done(
            job.watch, 1.0, checked=Checked("failed", BASE), task=Checked("failed", BASE)
        )
    assert len(sched.take_outbox()) == 10
    assert sched.add(KIND, [f"{3:024x}"], 2.0, SPEC) == 0
    assert sched.forget_delivered() == 10
    assert sched.add(KIND, [f"{3:024x}"], 2.0, SPEC) == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 0.0])
@pytest.mark.parametrize("knob", ["poll_interval", "max_poll_interval", "timeout"])
def test_options_refuse_nan_inf_and_negative_times(knob: str, bad: float) -> None:
    with pytest.raises(ValueError, match=knob):
        PollerOptions(**{knob: bad})
