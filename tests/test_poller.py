"""The concurrent poller against the fake server: outcomes, deadlines, errors, rate, sweeps."""

from __future__ import annotations

import itertools
import logging
import math
import random
import tracemalloc
from collections import Counter

import anyio
import pytest

from tests.helpers import InFlight, client_tasks
from twelvelabs_async import (
    AsyncTwelveLabs,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    Outcome,
    PermissionDeniedError,
    StatusChange,
    TaskFailedError,
    TaskTimeoutError,
)
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

FAST = {"poll_interval": 0.02, "max_poll_interval": 0.1}
NEVER = math.inf  # finish_after_seconds for a task that stays non-final
RETRIEVE = {
    "embed_v2": "GET /v1.3/embed-v2/tasks/{task_id}",
    "embed_v1": "GET /v1.3/embed/tasks/{task_id}/status",
    "analyze": "GET /v1.3/analyze/tasks/{task_id}",
}


async def collect(poller: object) -> list[Outcome]:
    return [outcome async for outcome in poller.as_completed()]  # type: ignore[attr-defined]


# --- final states ---------------------------------------------------------------------------


async def test_every_kind_reaches_its_final_states(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    expected: dict[str, str] = {}
    for kind, finals in (
        ("embed_v2", ["ready", "failed"]),
        ("embed_v1", ["ready", "failed"]),
        ("analyze", ["ready", "failed", "canceled"]),
    ):
        for i in range(9):
            final = finals[i % len(finals)]
            task_id = fake.add_task(
                kind,
                finish_after_seconds=0.05 + 0.01 * i,
                final_status=final,  # type: ignore[arg-type]
            )
            expected[task_id] = final
    by_kind = {kind: [t for t in expected if fake_kind(fake, t) == kind] for kind in RETRIEVE}
    with anyio.fail_after(20):
        results = await client.wait_all(**by_kind, **FAST)
    assert set(results) == set(expected)
    for task_id, outcome in results.items():
        assert outcome.status == expected[task_id]
        assert outcome.error is None
        assert outcome.task is not None
        assert outcome.task.status == expected[task_id]
    v1_ready = [o for o in results.values() if o.kind == "embed_v1" and o.status == "ready"]
    assert all(o.task.video_embedding.segments for o in v1_ready)
    v2_ready = [o for o in results.values() if o.kind == "embed_v2" and o.status == "ready"]
    assert all(o.task.data for o in v2_ready)


def fake_kind(fake: FakeTwelveLabs, task_id: str) -> str:
    for kind in RETRIEVE:
        try:
            fake.task(kind, task_id)  # type: ignore[arg-type]
        except KeyError:
            continue
        return kind
    raise KeyError(task_id)


async def test_wait_returns_failed_and_raises_on_request(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    failed = fake.add_task("embed_v2", finish_after_polls=1, final_status="failed")
    task = await client.embed.v2.tasks.wait(failed, **FAST)
    assert task.status == "failed"
    canceled = fake.add_task("analyze", finish_after_polls=1, final_status="canceled")
    with pytest.raises(TaskFailedError) as info:
        await client.analyze.tasks.wait(canceled, raise_on_failure=True, **FAST)
    assert info.value.status == "canceled"
    assert info.value.task is not None
    assert info.value.task_id == canceled


async def test_unknown_status_is_not_final_and_logged_once(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=NEVER)
    fake.set_status("embed_v2", task_id, "warming_up")
    caplog.set_level(logging.WARNING, "twelvelabs_async")
    with pytest.raises(TaskTimeoutError) as info:
        await client.embed.v2.tasks.wait(task_id, timeout=0.3, **FAST)
    assert info.value.task.status == "warming_up"
    assert sum("warming_up" in r.getMessage() for r in caplog.records) == 1


async def test_thousands_of_mixed_tasks_finish_at_random_times(fake: FakeTwelveLabs) -> None:
    rng = random.Random(11)
    expected: dict[str, tuple[str, str]] = {}
    for kind, finals in (
        ("embed_v2", ("ready", "failed")),
        ("embed_v1", ("ready", "failed")),
        ("analyze", ("ready", "failed", "canceled")),
    ):
        finish = [rng.uniform(0.05, 2.0) for _ in range(1000)]
        status = [rng.choice(finals) for _ in range(1000)]
        ids = fake.add_tasks(
            kind,  # type: ignore[arg-type]
            1000,
            finish_after_seconds=lambda i, f=finish: f[i],  # type: ignore[misc]
            final_status=lambda i, s=status: s[i],  # type: ignore[misc]
        )
        expected.update({t: (kind, status[i]) for i, t in enumerate(ids)})
    fake.reset_counters()
    delivered: list[Outcome] = []
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        with anyio.fail_after(60):
            async with client.poller(
                max_concurrency=32, poll_interval=0.05, max_poll_interval=0.5
            ) as poller:
                for kind in RETRIEVE:
                    resource = {
                        "embed_v2": client.embed.v2.tasks,
                        "embed_v1": client.embed.v1.tasks,
                        "analyze": client.analyze.tasks,
                    }[kind]
                    poller.add(resource, [t for t, (k, _) in expected.items() if k == kind])
                async for outcome in poller.as_completed():
                    delivered.append(outcome)
    assert len(delivered) == len(expected) == 3000
    assert len({o.task_id for o in delivered}) == 3000
    for outcome in delivered:
        kind, status = expected[outcome.task_id]
        assert (outcome.kind, outcome.status) == (kind, status)
        assert fake.task(kind, outcome.task_id).status == status  # type: ignore[arg-type]
    # Batched sweeps: far fewer requests than one retrieve per task per interval. (v1 tasks
    # cost one extra request each: the light status check, then the full record.)
    assert fake.requests_total <= 1.3 * 3000 + 1000


# --- deadlines, 404, 401, transient errors --------------------------------------------------


async def test_deadline_gives_timed_out_outcome(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    slow = fake.add_tasks("analyze", 4, finish_after_seconds=NEVER)
    quick = fake.add_task("analyze", finish_after_polls=1)
    with anyio.fail_after(10):
        async with client.poller(timeout=0.4, **FAST) as poller:
            poller.add(client.analyze.tasks, [*slow, quick])
            outcomes = {o.task_id: o for o in await collect(poller)}
    assert outcomes[quick].status == "ready"
    for task_id in slow:
        assert outcomes[task_id].status == "timed_out"
        assert outcomes[task_id].error is None  # nothing failed: time simply ran out
    assert poller.stats.timed_out == 4


async def test_wait_timeout_raises_task_timeout_error(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v1", finish_after_seconds=NEVER)
    with pytest.raises(TaskTimeoutError) as info, anyio.fail_after(5):
        await client.embed.v1.tasks.wait(task_id, timeout=0.2, **FAST)
    assert info.value.kind == "embed_v1"
    assert isinstance(info.value, TimeoutError)


async def test_deleted_task_is_not_found_not_polled_forever(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    doomed = fake.add_task("analyze", finish_after_seconds=NEVER)
    other = fake.add_task("analyze", finish_after_seconds=0.3)
    seen: list[StatusChange] = []
    with anyio.fail_after(10):
        async with client.poller(on_change=seen.append, **FAST) as poller:
            poller.add(client.analyze.tasks, [doomed, other])
            await anyio.sleep(0.1)
            fake.delete_task("analyze", doomed)
            outcomes = {o.task_id: o for o in await collect(poller)}
    assert outcomes[doomed].status == "not_found"
    assert isinstance(outcomes[doomed].error, NotFoundError)
    assert outcomes[other].status == "ready"
    # Confirmed once, then given up: a handful of requests, not an endless loop.
    doomed_requests = [r for r in fake.request_log if r.path.endswith(doomed)]
    assert 2 <= len([r for r in doomed_requests if r.status == 404]) <= 3
    assert any(c.task_id == doomed and c.new == "not_found" for c in seen)


async def test_wait_raises_not_found_after_confirmation(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    with pytest.raises(NotFoundError):
        await client.embed.v2.tasks.wait("0" * 24, **FAST)
    assert fake.request_count(RETRIEVE["embed_v2"]) == 2


@pytest.mark.parametrize(
    ("status", "error_type"), [(401, AuthenticationError), (403, PermissionDeniedError)]
)
async def test_refused_key_stops_the_whole_poller(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, status: int, error_type: type[Exception]
) -> None:
    ids = fake.add_tasks("embed_v2", 2, finish_after_seconds=5)
    fake.faults.push("*", times=1000, status=status)
    poller = client.poller(**FAST)
    poller.add(client.embed.v2.tasks, ids)

    async def watch() -> None:
        async with poller:
            await collect(poller)

    with anyio.fail_after(5), pytest.raises(error_type) as info:
        await watch()
    assert type(info.value) is error_type  # the error itself, never an exception group
    requests_at_stop = fake.requests_total
    await anyio.sleep(0.2)
    assert fake.requests_total == requests_at_stop  # nothing polls after the stop


async def test_transient_errors_are_retried_and_counted(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("analyze", finish_after_polls=2)
    fake.faults.push(RETRIEVE["analyze"], times=3, status=503)
    fake.faults.push(RETRIEVE["analyze"], times=1, drop=True)
    fake.faults.push(RETRIEVE["analyze"], times=1, not_json=True)
    with anyio.fail_after(10):
        async with client.poller(**FAST) as poller:
            poller.add(client.analyze.tasks, [task_id])
            (outcome,) = await collect(poller)
    assert outcome.status == "ready"
    assert poller.stats.retries >= 3


async def test_persistent_errors_end_with_the_last_error(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=NEVER)
    fake.faults.push(RETRIEVE["embed_v2"], times=10_000, status=500)
    with anyio.fail_after(10):
        async with client.poller(timeout=0.5, max_retries=1, **FAST) as poller:
            poller.add(client.embed.v2.tasks, [task_id])
            (outcome,) = await collect(poller)
    assert outcome.status == "timed_out"
    assert isinstance(outcome.error, InternalServerError)


async def test_one_bad_task_never_stops_the_others(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    good = fake.add_tasks("embed_v2", 20, finish_after_seconds=lambda i: 0.05 + 0.01 * i)
    missing = "f" * 24
    with anyio.fail_after(10):
        results = await client.wait_all(embed_v2=[*good, missing], **FAST)
    assert results[missing].status == "not_found"
    assert all(results[t].status == "ready" for t in good)


# --- scheduling, concurrency and rate --------------------------------------------------------


async def test_max_concurrency_bounds_requests_in_flight(fake: FakeTwelveLabs) -> None:
    ids = fake.add_tasks("analyze", 12, finish_after_polls=1)
    fake.faults.push(RETRIEVE["analyze"], times=12, delay=0.05)
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        in_flight = InFlight(client)
        with anyio.fail_after(10):
            async with client.poller(max_concurrency=3, sweep=False, **FAST) as poller:
                poller.add(client.analyze.tasks, ids)
                outcomes = await collect(poller)
    assert len(outcomes) == 12
    assert 2 <= in_flight.peak <= 3


async def test_requests_per_minute_is_never_exceeded(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("embed_v2", 10, finish_after_polls=3)
    rpm = 600  # one request per 0.1 s
    with anyio.fail_after(20):
        async with client.poller(requests_per_minute=rpm, sweep=False, **FAST) as poller:
            poller.add(client.embed.v2.tasks, ids)
            await collect(poller)
    times = sorted(r.time for r in fake.request_log)
    assert len(times) >= 30
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Spaced at least 60/rpm apart (allowing for timer granularity).
    assert min(gaps) >= 0.1 * 0.8
    assert poller.stats.requests == len(times)


async def test_429_with_retry_after_pauses_every_task(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    from twelvelabs_async import set_testing

    set_testing(False)  # this test is about real waits
    ids = fake.add_tasks("analyze", 4, finish_after_polls=2)
    fake.faults.push(RETRIEVE["analyze"], times=1, status=429, headers={"Retry-After": "0.4"})
    with anyio.fail_after(10):
        async with client.poller(sweep=False, **FAST) as poller:
            poller.add(client.analyze.tasks, ids)
            outcomes = await collect(poller)
    assert {o.status for o in outcomes} == {"ready"}
    log = sorted(fake.request_log, key=lambda r: r.time)
    limited = next(r for r in log if r.status == 429)
    # Requests already past the gate may still land just after the 429; after that, nobody
    # asks anything during the pause the server requested.
    during = [r for r in log if limited.time + 0.05 < r.time < limited.time + 0.35]
    assert during == []
    assert any(r.time >= limited.time + 0.35 for r in log)
    assert poller.stats.slowdowns >= 1


async def test_exhausted_rate_limit_window_slows_everyone() -> None:
    async with FakeTwelveLabs(rate_limit_per_minute=8) as fake:
        ids = fake.add_tasks("analyze", 3, finish_after_polls=4)
        client = AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url)
        async with client, client.poller(sweep=False, **FAST) as poller:
            poller.add(client.analyze.tasks, ids)
            with anyio.move_on_after(1.0):
                await collect(poller)
            stats = poller.stats
    assert stats.slowdowns >= 1
    # The window allowed 8 requests; the poller stopped near it instead of hammering 429s.
    assert fake.requests_total <= 10


def test_100k_watched_ids_fit_in_little_memory() -> None:
    async def build() -> int:
        async with AsyncTwelveLabs(api_key="k", base_url="http://127.0.0.1:9/v1.3") as client:
            poller = client.poller()
            tracemalloc.start()
            poller.add(client.embed.v2.tasks, (f"{i:024x}" for i in range(100_000)))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return peak

    peak = anyio.run(build)
    assert peak < 150 * 2**20


# --- batched sweeps ---------------------------------------------------------------------------


async def test_sweeps_keep_requests_per_task_low(fake: FakeTwelveLabs) -> None:
    """1,000 tasks finishing over a (scaled) 30 s-10 min spread: at most 1.3 requests each."""
    scale = 1 / 120
    rng = random.Random(7)
    finish = [(30 + 570 * rng.random()) * scale for _ in range(1000)]
    ids = fake.add_tasks("embed_v2", 1000, finish_after_seconds=lambda i: finish[i])
    fake.reset_counters()
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        with anyio.fail_after(60):
            async with client.poller(poll_interval=2 * scale, max_poll_interval=30 * scale) as p:
                p.add(client.embed.v2.tasks, ids)
                outcomes = await collect(p)
    assert Counter(o.status for o in outcomes) == {"ready": 1000}
    assert fake.requests_total <= 1.3 * 1000
    assert p.stats.requests == fake.requests_total


async def test_tasks_the_list_cannot_see_are_polled_alone(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("embed_v2", 6, finish_after_seconds=0.6)
    # Every list request fails: sweeps learn nothing, yet every task is delivered.
    fake.faults.push("GET /v1.3/embed-v2/tasks", times=10_000, status=200, not_json=True)
    with anyio.fail_after(10):
        async with client.poller(**FAST) as poller:
            poller.add(client.embed.v2.tasks, ids)
            outcomes = await collect(poller)
    assert {o.status for o in outcomes} == {"ready"}


async def test_final_only_from_the_tasks_own_record(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("embed_v2", 10, finish_after_seconds=lambda i: 0.1 + 0.02 * i)
    with anyio.fail_after(10):
        async with client.poller(**FAST) as poller:
            poller.add(client.embed.v2.tasks, ids)
            outcomes = await collect(poller)
    for outcome in outcomes:
        assert outcome.task.data, "a list item never stands in for the full record"
        retrieves = [r for r in fake.request_log if r.path.endswith(outcome.task_id)]
        assert retrieves


# --- exactly once, dynamic add, leaving early -------------------------------------------------


async def test_each_id_exactly_once_even_with_duplicates_and_late_adds(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    first = fake.add_tasks("embed_v2", 30, finish_after_seconds=lambda i: 0.02 * i)
    late = fake.add_tasks("analyze", 5, finish_after_seconds=0.2)
    delivered: list[str] = []
    with anyio.fail_after(15):
        async with client.poller(**FAST) as poller:
            assert poller.add(client.embed.v2.tasks, first) == 30
            assert poller.add(client.embed.v2.tasks, first[:10]) == 0
            async for outcome in poller.as_completed():
                delivered.append(outcome.task_id)
                if len(delivered) == 5:
                    poller.add(client.analyze.tasks, late)
                    poller.add(client.analyze.tasks, late)
                    poller.add(client.embed.v2.tasks, delivered[:2])  # already delivered
    assert sorted(delivered) == sorted(first + late)
    assert len(delivered) == len(set(delivered))
    assert poller.stats.watched == 35


async def test_breaking_out_stops_polling_and_leaks_nothing(fake: FakeTwelveLabs) -> None:
    ids = fake.add_tasks("embed_v2", 50, finish_after_seconds=lambda i: 0.05 * i)
    before = client_tasks()
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        async with client.poller(**FAST) as poller:
            poller.add(client.embed.v2.tasks, ids)
            async for _ in poller.as_completed():
                break
        after_exit = fake.requests_total
        await anyio.sleep(0.2)
        assert fake.requests_total == after_exit
        assert client_tasks() - before == set()
        assert not client.is_closed
        task = await client.embed.v2.tasks.retrieve(ids[0])  # the client still works
        assert task.id == ids[0]
    assert client.is_closed


async def test_cancelling_the_enclosing_scope_stops_promptly(fake: FakeTwelveLabs) -> None:
    ids = fake.add_tasks("analyze", 20, finish_after_seconds=NEVER)
    before = client_tasks()
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        with anyio.move_on_after(0.3) as scope:
            async with client.poller(**FAST) as poller:
                poller.add(client.analyze.tasks, ids)
                await collect(poller)
        assert scope.cancelled_caught
        stopped = fake.requests_total
        await anyio.sleep(0.2)
        assert fake.requests_total == stopped
    assert client_tasks() - before == set()


# --- progress ---------------------------------------------------------------------------------


async def test_stats_and_on_change_follow_along(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("analyze", 6, finish_after_seconds=lambda i: 0.1 + 0.05 * i)
    failing = fake.add_task("analyze", finish_after_seconds=0.1, final_status="failed")
    changes: list[StatusChange] = []
    with anyio.fail_after(10):
        async with client.poller(on_change=changes.append, **FAST) as poller:
            poller.add(client.analyze.tasks, [*ids, failing])
            early = poller.stats
            outcomes = await collect(poller)
    assert early.watched == 7
    assert early.pending == 7
    stats = poller.stats
    assert (stats.ready, stats.failed, stats.pending) == (6, 1, 0)
    assert stats.delivered == len(outcomes) == 7
    assert stats.requests >= 7
    assert stats.request_rate == stats.requests
    finals = [c for c in changes if c.new in ("ready", "failed")]
    assert sorted(c.task_id for c in finals) == sorted([*ids, failing])
    assert all(c.kind == "analyze" for c in changes)


async def test_notify_checks_a_task_at_once(fake: FakeTwelveLabs, client: AsyncTwelveLabs) -> None:
    task_id = fake.add_task("analyze", finish_after_seconds=NEVER)
    with anyio.fail_after(10):
        async with client.poller(poll_interval=5, max_poll_interval=5) as poller:
            poller.add(client.analyze.tasks, [task_id])
            await anyio.sleep(0.05)
            fake.set_status("analyze", task_id, "ready")
            assert poller.notify(task_id)
            (outcome,) = await collect(poller)
    assert outcome.status == "ready"
    assert not poller.notify("not-watched")
