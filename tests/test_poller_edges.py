"""The poller's promises at the edges, each against a real loopback server: one regression
test per defect the review found (stale ``timed_out``, orphaned watch, lost deadline, one bad
id killing everything, a 429 anywhere pausing the poller, sweeps against a server that ignores
``page``), plus the knobs that are defined once in :class:`PollerOptions`."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from tests.helpers import InFlight, catch_all, serve_app
from twelvelabs_async import (
    AsyncTwelveLabs,
    AuthenticationError,
    Outcome,
    PollerOptions,
    RateLimitError,
    TaskTimeoutError,
)
from twelvelabs_async.resources.embed_v2 import EmbedV2Tasks
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

NEVER = math.inf
V2_RETRIEVE = "GET /v1.3/embed-v2/tasks/{task_id}"


async def collect(poller: Any) -> list[Outcome]:
    return [outcome async for outcome in poller.as_completed()]


# --- 1. stale timed_out: the last check is made at the deadline ------------------------------


async def test_poller_takes_a_last_look_at_the_deadline(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = [
        fake.add_task("embed_v2", finish_after_seconds=0.15),
        fake.add_task("embed_v2", finish_after_seconds=0.4),
    ]
    # The first checks come early (spread over 0..0.8 s) and the next would come after
    # the deadline: the poller must look once more at the deadline itself.
    with anyio.fail_after(5):
        async with client.poller(timeout=1.0, poll_interval=0.8, sweep=False) as poller:
            poller.add(client.embed.v2.tasks, ids)
            outcomes = await collect(poller)
    assert {o.status for o in outcomes} == {"ready"}


async def test_wait_checks_at_the_deadline_instead_of_sleeping_past_it(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=0.5)
    started = anyio.current_time()
    with anyio.fail_after(5):
        # Checks at 0 and ~0.4 s; the next (~1 s later) is pulled in to the deadline at 0.8 s.
        task = await client.embed.v2.tasks.wait(
            task_id, timeout=0.8, poll_interval=0.4, max_poll_interval=30
        )
    assert task.status == "ready"
    assert anyio.current_time() - started < 1.5  # answered at the deadline, not 30 s later


async def test_wait_raises_timeout_only_after_a_check_at_the_deadline(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=NEVER)
    started = anyio.current_time()
    with pytest.raises(TaskTimeoutError) as info, anyio.fail_after(5):
        await client.embed.v2.tasks.wait(task_id, timeout=0.5, poll_interval=0.3)
    times = [r.time for r in fake.request_log if r.path.endswith(task_id)]
    assert max(times) - min(times) >= 0.45  # the last check was at the deadline
    assert anyio.current_time() - started < 1.5
    assert info.value.task.status == "processing"


# --- 2. orphaned watch: a swept task with a check of its own when its kind shrinks ------------


async def test_a_swept_task_checked_alone_is_not_orphaned_when_its_kind_shrinks(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    quick = fake.add_tasks("embed_v2", 2, finish_after_seconds=0.1)
    slow = fake.add_task("embed_v2", finish_after_seconds=0.7)
    # The slow task's own check (after notify) is in flight while the two others are
    # delivered and the kind drops below the sweep threshold.
    fake.faults.push(f"GET /v1.3/embed-v2/tasks/{slow}", times=1, delay=0.4)
    with anyio.fail_after(5):
        async with client.poller(timeout=None, poll_interval=0.05, max_poll_interval=0.2) as poller:
            poller.add(client.embed.v2.tasks, [*quick, slow])
            await anyio.sleep(0.02)
            assert poller.notify(slow)
            outcomes = {o.task_id: o for o in await collect(poller)}
    assert outcomes[slow].status == "ready"
    assert all(outcomes[t].status == "ready" for t in quick)


# --- 3. lost deadline: a check in flight across the deadline ---------------------------------


async def test_a_check_in_flight_across_the_deadline_still_ends_the_task(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=NEVER)
    # Every check takes 0.25 s: one is always running when the 0.3 s deadline comes.
    fake.faults.push(V2_RETRIEVE, times=100, delay=0.25)
    with anyio.fail_after(5):
        async with client.poller(timeout=0.3, poll_interval=0.02, max_poll_interval=0.05) as p:
            p.add(client.embed.v2.tasks, [task_id])
            (outcome,) = await collect(p)
            delivered_at = fake.requests_total
            await anyio.sleep(0.4)
            assert fake.requests_total == delivered_at  # nothing polls it afterwards
    assert outcome.status == "timed_out"
    assert outcome.task is not None  # the late check's answer


async def test_a_check_that_outlives_the_grace_is_cut_off(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=NEVER)
    fake.faults.push(V2_RETRIEVE, times=100, delay=3.0)
    options = PollerOptions(timeout=0.2, deadline_grace=0.2, poll_interval=0.02)
    started = anyio.current_time()
    with anyio.fail_after(5):
        async with client.poller(options=options) as poller:
            poller.add(client.embed.v2.tasks, [task_id])
            (outcome,) = await collect(poller)
    assert outcome.status == "timed_out"
    assert anyio.current_time() - started < 1.0  # deadline + grace, not the 3 s answer


# --- 4. one bad id never kills the others -----------------------------------------------------


async def test_an_id_that_cannot_be_encoded_is_refused_by_add(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    good = fake.add_tasks("embed_v2", 3, finish_after_seconds=0.05)
    with anyio.fail_after(5):
        async with client.poller(poll_interval=0.02, max_poll_interval=0.1) as poller:
            poller.add(client.embed.v2.tasks, good)
            with pytest.raises(ValueError, match="encoded"):
                poller.add(client.embed.v2.tasks, ["\ud800"])
            with pytest.raises(ValueError, match="encoded"):
                poller.add(client.embed.v2.tasks, [good[0] + "x", "bad\udcff"])
            outcomes = await collect(poller)
    assert sorted(o.task_id for o in outcomes) == sorted(good)  # nothing of a refused call
    assert {o.status for o in outcomes} == {"ready"}


class _BuggyTasks(EmbedV2Tasks):
    """Embed v2 tasks whose status check of one id fails with a plain bug."""

    buggy_id = ""

    async def check(self, task_id: str, options: Any = None) -> Any:
        if task_id == self.buggy_id:
            raise KeyError("a bug while checking this one task")
        return await super().check(task_id, options)


async def test_a_non_api_error_ends_only_its_own_task(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("embed_v2", 6, finish_after_seconds=lambda i: 0.05 + 0.02 * i)
    tasks = _BuggyTasks(client.embed.v2.tasks._transport)
    tasks.buggy_id = ids[2]
    with anyio.fail_after(5):
        async with client.poller(timeout=None, poll_interval=0.02, max_poll_interval=0.1) as p:
            p.add(tasks, ids)
            outcomes = {o.task_id: o for o in await collect(p)}
    buggy = outcomes.pop(ids[2])
    assert buggy.status == "timed_out"
    assert isinstance(buggy.error, KeyError)
    assert {o.status for o in outcomes.values()} == {"ready"}
    # wait() raises the error itself.
    with pytest.raises(KeyError):
        await tasks.wait(ids[2], timeout=1)


# --- 5. observation: the poller reads only its own requests ------------------------------------


async def test_a_429_elsewhere_on_the_client_does_not_pause_the_poller(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("analyze", 3, finish_after_polls=2)
    other = fake.add_task("embed_v1", finish_after_seconds=NEVER)
    fake.faults.push("GET /v1.3/embed/tasks/{task_id}", status=429, headers={"Retry-After": "30"})
    with anyio.fail_after(5):
        async with client.poller(sweep=False, poll_interval=0.02, max_poll_interval=0.05) as p:
            p.add(client.analyze.tasks, ids)
            with pytest.raises(RateLimitError):
                await client.embed.v1.tasks.retrieve(other, max_retries=0)
            outcomes = await collect(p)
    assert {o.status for o in outcomes} == {"ready"}
    assert p.stats.slowdowns == 0


async def test_pause_on_client_429_is_an_explicit_option(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    from twelvelabs_async import set_testing

    set_testing(False)  # real waits: the pause is the point
    ids = fake.add_tasks("analyze", 3, finish_after_polls=2)
    other = fake.add_task("embed_v1", finish_after_seconds=NEVER)
    fake.faults.push("GET /v1.3/embed/tasks/{task_id}", status=429, headers={"Retry-After": "0.3"})
    options = PollerOptions(sweep=False, poll_interval=0.02, pause_on_client_429=True)
    with anyio.fail_after(5):
        async with client.poller(options=options) as poller:
            with pytest.raises(RateLimitError):
                await client.embed.v1.tasks.retrieve(other, max_retries=0)
            poller.add(client.analyze.tasks, ids)
            await collect(poller)
    assert poller.stats.slowdowns == 1
    assert client.hooks.on_response == []  # its client-wide observer is gone with it


async def test_clearing_the_users_hooks_keeps_the_pollers_own_backoff(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("analyze", 3, finish_after_polls=2)
    fake.faults.push(
        "GET /v1.3/analyze/tasks/{task_id}", status=429, headers={"Retry-After": "0.1"}
    )
    with anyio.fail_after(5):
        async with client.poller(sweep=False, poll_interval=0.02, max_poll_interval=0.05) as p:
            client.hooks.on_response.clear()
            p.add(client.analyze.tasks, ids)
            await collect(p)
    assert p.stats.slowdowns == 1


# --- 6. sweeps against a server that ignores `page` ------------------------------------------


async def test_sweeps_stop_walking_a_list_that_ignores_page() -> None:
    ids = [f"{i:024x}" for i in range(60)]
    created = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()
    lists = 0
    checks: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        nonlocal lists
        tail = request.path.rsplit("/", 1)[-1]
        if tail == "tasks":  # the list: always the same first 50, whatever `page` says
            lists += 1
            items = [{"_id": t, "status": "processing", "created_at": created} for t in ids[:50]]
            body = {"data": items, "page_info": {"total_results": 60}}
            return web.Response(body=msgspec.json.encode(body), content_type="application/json")
        status = "ready" if checks.get(tail, 0) >= 1 else "processing"
        checks[tail] = checks.get(tail, 0) + 1
        body = {"_id": tail, "status": status, "created_at": created}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    async with serve_app(catch_all(handler)) as url:
        client = AsyncTwelveLabs(api_key="k", base_url=url + "/v1.3")
        async with client:
            with anyio.fail_after(10):
                async with client.poller(poll_interval=0.02, max_poll_interval=0.05) as poller:
                    poller.add(client.embed.v2.tasks, ids)
                    outcomes = await collect(poller)
    assert len(outcomes) == 60
    assert {o.status for o in outcomes} == {"ready"}
    assert lists <= 12  # a few sweeps of two pages each, then task by task


async def test_sweep_pages_are_fetched_in_parallel_within_max_concurrency(
    fake: FakeTwelveLabs,
) -> None:
    ids = fake.add_tasks("embed_v2", 400, finish_after_seconds=0.3)
    fake.faults.push("GET /v1.3/embed-v2/tasks", times=40, delay=0.03)  # slow list pages
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        in_flight = InFlight(client)
        with anyio.fail_after(10):
            async with client.poller(
                max_concurrency=4, poll_interval=0.05, max_poll_interval=0.2
            ) as poller:
                poller.add(client.embed.v2.tasks, ids)
                outcomes = await collect(poller)
    assert len(outcomes) == 400
    assert {o.status for o in outcomes} == {"ready"}
    assert 2 <= in_flight.peak <= 4  # pages went out together, never more than max_concurrency


async def test_a_refused_key_on_a_parallel_sweep_page_stops_the_poller_as_itself(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("embed_v2", 200, finish_after_seconds=NEVER)
    fake.faults.push("GET /v1.3/embed-v2/tasks", times=1, delay=0.01)  # page one answers
    fake.faults.push("GET /v1.3/embed-v2/tasks", times=100, status=401)  # the rest refuse

    async def watch() -> None:
        async with client.poller(poll_interval=0.05, max_poll_interval=0.2) as poller:
            poller.add(client.embed.v2.tasks, ids)
            await collect(poller)

    with anyio.fail_after(5), pytest.raises(AuthenticationError) as info:
        await watch()
    assert type(info.value) is AuthenticationError  # never an exception group


# --- knobs in one place -------------------------------------------------------------------------


async def test_wait_all_takes_every_poller_knob(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    ids = fake.add_tasks("embed_v2", 4, finish_after_polls=2)
    with anyio.fail_after(5):
        results = await client.wait_all(
            embed_v2=ids, sweep=False, max_retries=0, poll_interval=0.02, max_poll_interval=0.05
        )
    assert {o.status for o in results.values()} == {"ready"}
    # sweep=False reached the poller: no list request at all.
    assert not [r for r in fake.request_log if r.path.endswith("/embed-v2/tasks")]


async def test_options_and_keywords_combine(client: AsyncTwelveLabs) -> None:
    options = PollerOptions(timeout=5.0, poll_interval=0.5, max_concurrency=3)
    poller = client.poller(options=options, poll_interval=0.1)
    assert poller.options.poll_interval == 0.1  # the keyword wins
    assert poller.options.timeout == 5.0  # the options' timeout applies when left out
    assert poller.options.max_concurrency == 3
    assert client.poller(options=options, timeout=None).options.timeout is None
    with pytest.raises(ValueError, match="poll_interval"):
        client.poller(poll_interval=math.nan)
    with pytest.raises(ValueError, match="timeout"):
        client.poller(timeout=-1)
    with pytest.raises(ValueError, match="max_poll_interval"):
        await client.embed.v2.tasks.wait("x" * 24, max_poll_interval=math.inf)


def test_the_command_line_builds_its_poller_from_poller_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from twelvelabs_async._cli import build_parser
    from twelvelabs_async._cli._watch import poller_options

    parser = build_parser()
    flags = ["--timeout", "60", "--target-delay", "3", "--requests-per-task", "1.5"]
    flags += ["--poll-interval", "0.5", "--max-concurrency", "4"]
    args = parser.parse_args(["watch", "embed-v2", "x", *flags])
    options = poller_options(args)
    assert options == PollerOptions(
        timeout=60.0, target_delay=3.0, requests_per_task=1.5, poll_interval=0.5, max_concurrency=4
    )
    defaults = poller_options(parser.parse_args(["watch", "embed-v2", "x"]))
    assert defaults == PollerOptions(timeout=6 * 3600.0)
    for bad in (["--poll-interval", "inf"], ["--timeout", "nan"], ["--requests-per-task", "1"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["watch", "embed-v2", "x", *bad])
        assert exited.value.code == 2
    assert "must be" in capsys.readouterr().err
