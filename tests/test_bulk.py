"""``BulkJob``: items in, one settled result per item out, against the fake API.

Crash-and-rerun of the command line (SIGKILL) is in ``test_submit.py``; here each promise of
the library is tried in-process: creates that the server processed and then dropped the
connection for, creates that may or may not have landed, a state left ``sending`` by a crash,
the shared rate limit, the request budget and memory bounded by the concurrency.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
import tracemalloc
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from twelvelabs_async import (
    AsyncTwelveLabs,
    AuthenticationError,
    BulkItem,
    BulkJob,
    BulkResult,
    Outcome,
    RequestGate,
)
from twelvelabs_async._bulk._items import idempotency_key, input_key
from twelvelabs_async._bulk._state import JobState, StateInUseError
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

FAST = {"poll_interval": 0.05, "max_poll_interval": 0.2, "reconcile_delay": 0.05}
V2_CREATE = "POST /v1.3/embed-v2/tasks"
V1_CREATE = "POST /v1.3/embed/tasks"
ANALYZE_CREATE = "POST /v1.3/analyze/tasks"
_PATHS = {"embed_v2": "/embed-v2/tasks", "embed_v1": "/embed/tasks", "analyze": "/analyze/tasks"}


def v2_item(i: int, **extra: Any) -> BulkItem:
    params = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"url": f"https://videos.example/{i}.mp4"}},
    }
    return BulkItem(f"v2-{i}", "embed_v2", params, **extra)


def v1_item(i: int) -> BulkItem:
    params = {"model_name": "marengo3.0", "video_url": f"https://videos.example/v1-{i}.mp4"}
    return BulkItem(f"v1-{i}", "embed_v1", params)


def analyze_item(i: int) -> BulkItem:
    params = {"video": {"url": f"https://videos.example/a-{i}.mp4"}, "prompt": "Summarize."}
    return BulkItem(f"an-{i}", "analyze", params)


def mixed(n: int) -> list[BulkItem]:
    return [
        maker(i) for i in range(n) for maker in (v2_item, v1_item, analyze_item) if i % 3 == 0
    ] + [v2_item(i) for i in range(n) if i % 3]


async def run(
    client: AsyncTwelveLabs, items: Any, state: Path | None, **options: Any
) -> list[BulkResult]:
    results: list[BulkResult] = []
    with anyio.fail_after(30):
        async with BulkJob(client, items, state=state, **{**FAST, **options}) as job:
            async for result in job:
                results.append(result)
    return results


def tasks_per_input(fake: FakeTwelveLabs) -> Counter[str]:
    """How many tasks the server holds for each input URL (every kind)."""
    return Counter(
        str(rec.video_url)
        for kind in ("embed_v2", "embed_v1", "analyze")
        for rec in fake.store.all(kind)  # type: ignore[arg-type]
    )


def url_of(item: BulkItem) -> str:
    key = input_key(item.kind, item.params)
    if key is not None:
        return key[1]
    return str(item.params["video"]["url"])


async def test_every_item_settles_once_with_its_custom_id_and_metadata(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    items = (
        [v2_item(i, metadata={"n": i}) for i in range(12)]
        + [v1_item(i) for i in range(5)]
        + [analyze_item(i) for i in range(5)]
    )
    results = await run(client, iter(items), tmp_path / "job.sqlite")
    assert sorted(r.custom_id for r in results) == sorted(i.custom_id for i in items)
    assert {r.status for r in results} == {"ready"}
    by_id = {r.custom_id: r for r in results}
    assert by_id["v2-3"].metadata == {"n": 3}
    assert by_id["v1-0"].task is not None
    assert by_id["v1-0"].task.video_embedding is not None
    assert all(not r.earlier and r.task_id for r in results)
    assert fake.app.request_count(method="POST") == len(items)
    assert set(tasks_per_input(fake).values()) == {1}

    # A rerun hands every result over again, from the state file, with no request at all.
    before = fake.app.request_count()
    again = await run(client, iter(items), tmp_path / "job.sqlite")
    assert fake.app.request_count() == before
    assert sorted((r.custom_id, r.status, r.task_id, r.earlier) for r in again) == sorted(
        (r.custom_id, r.status, r.task_id, True) for r in results
    )


async def test_async_iterable_and_in_memory_state(client: AsyncTwelveLabs) -> None:
    async def items() -> AsyncIterator[BulkItem]:
        for i in range(4):
            await anyio.lowlevel.checkpoint()
            yield v2_item(i)

    results = await run(client, items(), None)
    assert sorted(r.custom_id for r in results) == [f"v2-{i}" for i in range(4)]


async def test_leaving_early_then_resuming_settles_every_item_once(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    """Breaking out after a few results (creates and checks still in flight) loses nothing:
    the rerun hands over every item not yet taken, each created once."""
    items = mixed(30)
    state = tmp_path / "job.sqlite"
    taken: list[BulkResult] = []
    with anyio.fail_after(30):
        async with BulkJob(client, items, state=state, concurrency=12, **FAST) as job:
            async for result in job:
                taken.append(result)
                if len(taken) == 5:
                    break
    rest = await run(client, items, state)
    fresh = [r for r in rest if not r.earlier]
    assert sorted(r.custom_id for r in taken + fresh) == sorted(i.custom_id for i in items)
    assert sorted(r.custom_id for r in rest if r.earlier) == sorted(r.custom_id for r in taken)
    assert set(tasks_per_input(fake).values()) == {1}


async def test_one_run_per_state_file(client: AsyncTwelveLabs, tmp_path: Path) -> None:
    """Two runs of one job at once would create the same items twice: the second is
    refused before it sends anything."""
    state = tmp_path / "job.sqlite"
    async with BulkJob(client, [v2_item(1)], state=state, **FAST) as job:
        with pytest.raises(StateInUseError, match="in use by another run"):
            async with BulkJob(client, [v2_item(1)], state=state, **FAST):
                pass
        assert [r.status async for r in job] == ["ready"]


async def test_a_refused_create_is_rejected_without_a_task(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    bad = BulkItem("no-model", "embed_v2", {"input_type": "video", "model_name": ""})
    typo = BulkItem("typo", "embed_v2", {"input_type": "video", "modle_name": "x"})
    results = {r.custom_id: r for r in await run(client, [bad, typo, v2_item(1)], None)}
    assert results["no-model"].status == "rejected"
    assert results["no-model"].task_id is None
    assert "model_name" in (results["no-model"].error or "")
    assert results["typo"].status == "rejected"
    assert "modle_name" in (results["typo"].error or "")
    assert results["v2-1"].status == "ready"


@pytest.mark.parametrize("route", [V2_CREATE, V1_CREATE, ANALYZE_CREATE])
async def test_creates_processed_then_dropped_are_reconciled_without_duplicates(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path, route: str
) -> None:
    """The fake creates the task, then cuts the answer off: the item still gets its one task
    (embed: found by listing and matching its input; analysis: the same Idempotency-Key)."""
    fake.app.faults.push(route, times=4, truncate=True)
    items = mixed(12)
    results = await run(client, items, tmp_path / "job.sqlite")
    assert {r.status for r in results} == {"ready"}, [r for r in results if not r.ok]
    assert len(results) == len(items)
    counts = tasks_per_input(fake)
    assert all(counts[url_of(item)] == 1 for item in items), counts
    assert sum(counts.values()) == len(items)
    assert fake.app.faults.pending() == 0
    if route == ANALYZE_CREATE:  # each cut-off create was sent again under the same key
        assert fake.app.request_count(route) == sum(i.kind == "analyze" for i in items) + 4
    else:  # each was found by listing the kind's tasks, never sent again
        assert fake.app.request_count(route.replace("POST", "GET")) >= 1
        assert fake.app.request_count(route) == sum(
            url_of(i) in counts for i in items if route.endswith(_PATHS[i.kind])
        )


async def test_an_unanswered_create_with_no_task_settles_unconfirmed_and_is_not_resent(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    """A 503 and a dropped connection (neither created anything, but the client cannot know)
    and no matching task: ``unconfirmed``, never sent again, until asked to retry."""
    fake.app.faults.push(V2_CREATE, status=503)
    fake.app.faults.push(V2_CREATE, drop=True)
    state = tmp_path / "job.sqlite"
    results = await run(client, [v2_item(1), v2_item(2)], state, concurrency=1)
    assert [r.status for r in results] == ["unconfirmed", "unconfirmed"]
    for result in results:
        assert result.task_id is None
        assert "may have reached the API" in (result.error or "")
        assert "--retry-unconfirmed" in (result.error or "")
    assert fake.app.request_count(V2_CREATE) == 2
    assert fake.store.count("embed_v2") == 0

    again = await run(client, [v2_item(1), v2_item(2)], state)
    assert [(r.status, r.earlier) for r in again] == [("unconfirmed", True)] * 2
    assert fake.app.request_count(V2_CREATE) == 2  # still never re-sent

    retried = await run(client, [v2_item(1), v2_item(2)], state, retry_unconfirmed=True)
    assert sorted((r.custom_id, r.status) for r in retried) == [
        ("v2-1", "ready"),
        ("v2-2", "ready"),
    ]
    assert fake.store.count("embed_v2") == 2


async def test_several_matching_tasks_are_ambiguous(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    """Two tasks with the item's input already exist (made elsewhere): which one is its own
    cannot be proven, so the item settles unconfirmed and both ids are named."""
    item = v2_item(7)
    for _ in range(2):
        await client.embed.v2.tasks.create(**item.params)
    fake.app.faults.push(V2_CREATE, status=502)
    (result,) = await run(client, [item], None)
    assert result.status == "unconfirmed"
    assert "2 tasks match its input" in (result.error or "")
    assert fake.store.count("embed_v2") == 2


async def test_a_crash_after_the_intent_is_reconciled_before_anything_is_sent(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    """State as a process killed mid-create leaves it: intents without task ids. The creates
    that reached the API are found (embed: by input; analysis: the same key re-sent); those
    that did not are created; nothing twice."""
    state_path = tmp_path / "job.sqlite"
    items = [v2_item(i) for i in range(4)] + [v1_item(0)] + [analyze_item(i) for i in range(2)]
    job_id = await record_intents(state_path, items)
    # The creates of v2-0, v2-2, v1-0 and an-0 reached the API before the "crash".
    await client.embed.v2.tasks.create(**items[0].params)
    await client.embed.v2.tasks.create(**items[2].params)
    await client.embed.v1.tasks.create(**items[4].params)
    await client.analyze.tasks.create(
        **items[5].params, idempotency_key=idempotency_key(job_id, "an-0")
    )
    fake.app.reset_counters()

    results = await run(client, items, state_path)
    assert {r.status for r in results} == {"ready"}
    assert sorted(r.custom_id for r in results) == sorted(i.custom_id for i in items)
    counts = tasks_per_input(fake)
    assert all(counts[url_of(item)] == 1 for item in items), counts
    # Only the creates that never landed were sent as new ones (v2-1, v2-3), plus the two
    # analysis creates re-sent under their keys (one answered from the key's record).
    assert fake.app.request_count(V2_CREATE) == 2
    assert fake.app.request_count(V1_CREATE) == 0
    assert fake.app.request_count(ANALYZE_CREATE) == 2


@pytest.mark.parametrize("seed", [1])
async def test_under_chaos_no_item_ever_gets_two_tasks(tmp_path: Path, seed: int) -> None:
    """Random 5xx, 429, dropped connections, cut-off bodies and slow answers on every route
    (creates, checks, lists): every item gets exactly one result; an item with a task id
    has exactly that one task at the server, with its true status; an ``unconfirmed`` item
    has none (the chaos faults that answer nothing never process the request); no input
    ever has two tasks. A rerun with ``retry_unconfirmed`` then settles every item."""
    from twelvelabs_async.testing import Chaos

    async with (
        FakeTwelveLabs(
            rate_limit_per_minute=10**9,
            default_finish_after_polls=None,
            default_finish_after_seconds=0.3,
        ) as fake,
        AsyncTwelveLabs(api_key="k", base_url=fake.base_url, timeout=2.0) as client,
    ):
        fake.chaos = Chaos(
            p_5xx=0.08, p_429=0.04, p_drop=0.04, p_truncate=0.06, p_slow=0.01,
            slow_delay=2.5, seed=seed,
        )  # fmt: skip
        items = mixed(45)
        results = await run(client, items, tmp_path / "job.sqlite", concurrency=16)
        fake.chaos = None
        by_url = {}
        for kind in ("embed_v2", "embed_v1", "analyze"):
            for rec in fake.store.all(kind):  # type: ignore[arg-type]
                assert str(rec.video_url) not in by_url, "two tasks for one input"
                by_url[str(rec.video_url)] = rec
        # Then, with the faults gone, --retry-unconfirmed settles the rest: one task each.
        retried = await run(client, items, tmp_path / "job.sqlite", retry_unconfirmed=True)
        assert {r.status for r in retried} == {"ready"}
        assert set(tasks_per_input(fake).values()) == {1}
        assert len(tasks_per_input(fake)) == len(items)
    assert sorted(r.custom_id for r in results) == sorted(i.custom_id for i in items)
    items_by_id = {i.custom_id: i for i in items}
    for result in results:
        rec = by_url.get(url_of(items_by_id[result.custom_id]))
        if result.status == "unconfirmed":
            assert result.task_id is None
            assert rec is None
        else:
            assert rec is not None
            assert result.task_id == rec.id
            assert result.status in (rec.status, "timed_out")
    assert sum(fake.chaos_counts.values()) > 0
    assert {"ready", "unconfirmed"} <= {r.status for r in results}


async def test_a_crash_state_that_cannot_be_proven_settles_unconfirmed(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    """Left ``sending`` by a crash: an input two tasks match, and an input no list shows
    (base64). Neither is created again; both settle ``unconfirmed``, saying why."""
    state_path = tmp_path / "job.sqlite"
    twice = v2_item(1)
    inline = BulkItem(
        "inline",
        "embed_v2",
        {"input_type": "video", "model_name": "marengo3.0",
         "video": {"media_source": {"base64_string": "AAAA"}}},
    )  # fmt: skip
    await record_intents(state_path, [twice, inline])
    for _ in range(2):
        await client.embed.v2.tasks.create(**twice.params)
    fake.app.reset_counters()
    results = {r.custom_id: r for r in await run(client, [twice, inline], state_path)}
    assert results["v2-1"].status == "unconfirmed"
    assert "2 tasks match its input" in (results["v2-1"].error or "")
    assert results["inline"].status == "unconfirmed"
    assert "cannot be found in a list" in (results["inline"].error or "")
    assert fake.app.request_count(V2_CREATE) == 0
    assert fake.store.count("embed_v2") == 2


async def record_intents(path: Path, items: list[BulkItem]) -> str:
    """Write intents as a run killed right after them leaves them; returns the job id."""
    state = JobState(path)
    await state.open()
    async with anyio.create_task_group() as group:
        group.start_soon(state.run_writer)
        for item in items:
            params = json.dumps(dict(item.params))
            await state.record_intent(item.custom_id, item.kind, time.time(), params)
        group.cancel_scope.cancel()
    await state.close()
    return state.job_id


async def test_a_refused_key_stops_the_job_with_the_error_itself(tmp_path: Path) -> None:
    async with (
        FakeTwelveLabs(api_key="right", rate_limit_per_minute=10**9) as fake,
        AsyncTwelveLabs(api_key="wrong", base_url=fake.base_url) as client,
    ):
        with pytest.raises(AuthenticationError):
            await run(client, [v2_item(i) for i in range(5)], tmp_path / "job.sqlite")
        assert fake.store.count("embed_v2") == 0
    # Nothing is left "sending": a rerun with the right key creates every item normally.
    rows = sqlite3.connect(tmp_path / "job.sqlite").execute("SELECT * FROM items").fetchall()
    assert rows == []


async def test_an_unreachable_api_stops_the_job_and_leaves_nothing_sending(
    tmp_path: Path,
) -> None:
    """Connection refused: the create surely never left, so the job stops with the error
    (the command exits 4) instead of waiting to reconcile, and a rerun starts clean."""
    import socket

    from twelvelabs_async import APIConnectionError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    async with AsyncTwelveLabs(api_key="k", base_url=f"http://127.0.0.1:{port}/v1.3") as client:
        with pytest.raises(APIConnectionError):
            await run(
                client, [v2_item(i) for i in range(3)], tmp_path / "job.sqlite", concurrency=1
            )
    rows = sqlite3.connect(tmp_path / "job.sqlite").execute("SELECT * FROM items").fetchall()
    assert rows == []


async def test_one_rate_limit_covers_creates_and_polls(tmp_path: Path) -> None:
    """``requests_per_minute`` paces every request of the job: creates, checks, lists. The
    CONTRACT's rule (no 10 s window above R/6 + R/60) is checked at the server's arrival
    times, scaled to this short run: no 1 s window above R/60 + R/600."""
    rpm = 3000.0
    async with (
        FakeTwelveLabs(
            rate_limit_per_minute=10**9,
            default_finish_after_polls=None,
            default_finish_after_seconds=0.3,
        ) as fake,
        AsyncTwelveLabs(api_key="k", base_url=fake.base_url) as client,
    ):
        fake.app.faults.push(V2_CREATE, times=2, truncate=True)  # lists join in too
        results = await run(client, [v2_item(i) for i in range(30)], None, requests_per_minute=rpm)
        assert {r.status for r in results} == {"ready"}
        times = sorted(entry.time for entry in fake.app.request_log)
    assert len(times) >= 60
    kinds = Counter(entry.route.split(" ")[0] for entry in fake.app.request_log)
    assert kinds["POST"] == 30
    assert kinds["GET"] >= 30
    ceiling = rpm / 60 + rpm / 600
    window = deque[float]()
    for arrived in times:
        window.append(arrived)
        while window[0] < arrived - 1.0:
            window.popleft()
        assert len(window) <= ceiling, (len(window), ceiling)


async def test_a_poller_can_share_a_gate(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    """``client.poller(gate=...)``: the hook bulk jobs use to put polls under the same limit
    as their creates; every request of the poller passes the given gate."""
    gate = RequestGate(60_000)
    ids = fake.add_tasks("embed_v2", 4, finish_after_polls=2)
    fake.app.reset_counters()
    async with client.poller(gate=gate, poll_interval=0.05, max_poll_interval=0.1) as poller:
        poller.add(client.embed.v2.tasks, ids)
        assert len([o async for o in poller.as_completed()]) == 4
        assert poller.stats.requests == gate.requests
    assert gate.requests == fake.app.request_count() > 0


async def test_requests_per_item_in_the_default_scenario(tmp_path: Path) -> None:
    """Tasks finishing at spread-out times (as the benchmarks' default scenario, scaled):
    one create per item and at most 1.3 requests per item for watching, counted at the
    server."""
    rng = random.Random(13)
    async with (
        FakeTwelveLabs(
            rate_limit_per_minute=10**9,
            default_finish_after_polls=None,
            default_finish_after_seconds=lambda kind: rng.uniform(1.0, 4.0),
        ) as fake,
        AsyncTwelveLabs(api_key="k", base_url=fake.base_url) as client,
    ):
        n = 300
        results = await run(
            client,
            [v2_item(i) for i in range(n)],
            None,
            concurrency=n,
            poll_interval=0.2,
            max_poll_interval=1.0,
        )
        assert {r.status for r in results} == {"ready"}
        creates = fake.app.request_count(method="POST")
        watching = fake.app.request_count(method="GET")
    assert creates == n
    assert watching / n <= 1.3, watching / n


async def test_tasks_go_to_fresh_pollers_and_finished_ones_are_closed(
    client: AsyncTwelveLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poller remembers every id it watched; the job hands each batch of tasks to a fresh
    poller and closes the previous one once it has delivered everything, so a long job's
    memory does not grow with its item count."""
    from twelvelabs_async._bulk import _backend

    monkeypatch.setattr(_backend, "POLLER_ROTATION", 7)
    seen_live: list[int] = []
    async with BulkJob(client, mixed(40), concurrency=10, **FAST) as job:
        backend = job._backend
        assert isinstance(backend, _backend.HttpBackend)
        results = []
        async for result in job:
            results.append(result)
            seen_live.append(backend.pollers_live)
    assert sorted(r.custom_id for r in results) == sorted(i.custom_id for i in mixed(40))
    assert {r.status for r in results} == {"ready"}
    assert backend.pollers_opened >= 40 // 7
    assert max(seen_live) <= 10  # never more than one poller per item in progress
    assert backend.pollers_live == 0


class InstantBackend:
    """A backend where every create answers at once and every task is ready at once: the
    job's own machinery (state file, slots, results) is all that is measured."""

    def __init__(self) -> None:
        self.gate = RequestGate()
        self.created = 0
        self.queue: deque[Outcome] = deque()

    async def __aenter__(self) -> InstantBackend:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def create(self, kind: str, params: Any, key: str) -> str:
        self.created += 1
        return f"task-{self.created}"

    async def listing(self, kind: str, start: datetime, end: datetime) -> AsyncIterator[Any]:
        for item in ():
            yield item

    def watch(self, kind: Any, task_id: str) -> None:
        self.queue.append(Outcome(task_id, kind, "ready"))

    async def outcomes(self) -> AsyncIterator[Outcome]:
        while self.queue:
            yield self.queue.popleft()


@pytest.mark.slow
async def test_a_100k_manifest_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """100,000 items through the whole pipeline (intent, create, watch, result, settle) in
    memory bounded by the concurrency, not the item count: items are read only as slots free
    up; the Python heap (allocated blocks) does not grow from item 10,000 to item 100,000;
    tracemalloc, on for the last 5,000 items (it slows each item ten-fold), sees a peak under
    a few MB and nothing retained; and the state file holds every row, settled."""
    n = 100_000
    produced = 0

    def items() -> Iterator[BulkItem]:
        nonlocal produced
        for i in range(n):
            produced += 1
            yield v2_item(i)

    backend = InstantBackend()
    state = tmp_path / "big.sqlite"
    seen = 0
    blocks: dict[int, int] = {}
    traced_from = 0
    try:
        with anyio.fail_after(60):
            async with BulkJob(
                None,  # type: ignore[arg-type]  # the backend does all the talking
                items(),
                state=state,
                concurrency=512,
                _backend=backend,  # type: ignore[arg-type]
            ) as job:
                async for _ in job:
                    seen += 1
                    assert produced - seen <= 512 + 256 + 1  # read lazily, as slots free
                    if seen % 10_000 == 0:
                        blocks[seen] = sys.getallocatedblocks()
                    if seen == n - 5_000:
                        tracemalloc.start()
                        traced_from = tracemalloc.get_traced_memory()[0]
            current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n
    assert backend.created == n
    # 512 items in flight: well under 16 KiB each at the peak (0.7 MB on 3.11, ~4 MB on 3.10,
    # whose allocator and frames cost more); 100,000 items kept would be hundreds of MB.
    assert peak - traced_from < 8_000_000, peak - traced_from
    assert current - traced_from < 500_000, current - traced_from
    assert blocks[n] - blocks[10_000] < 20_000, blocks  # < 1 block per 4 items: no leak
    db = sqlite3.connect(state)
    assert db.execute("SELECT COUNT(*) FROM items WHERE state = 'settled'").fetchone() == (n,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
