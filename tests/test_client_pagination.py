"""The paginator: every item across pages, stop rules, early exit and one-page lookahead."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import anyio
import anyio.lowlevel
import pytest

from twelvelabs_async import (
    AsyncPaginator,
    AsyncTwelveLabs,
    BadRequestError,
    NotFoundError,
    PageInfo,
    TaskPage,
)
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

V2_LIST = "GET /v1.3/embed-v2/tasks"
V1_LIST = "GET /v1.3/embed/tasks"
AN_LIST = "GET /v1.3/analyze/tasks"


def _client_side_pending(baseline: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    """Pending tasks started since ``baseline``, except the fake server's own handlers
    (the server runs in this event loop too)."""
    return {
        t
        for t in asyncio.all_tasks() - baseline
        if not t.done() and "RequestHandler" not in getattr(t.get_coro(), "__qualname__", "")
    }


async def settle(
    baseline: set[asyncio.Task[object]], rounds: int = 10
) -> set[asyncio.Task[object]]:
    """Let finalizers run (a few loop turns); return what is still pending beyond the baseline."""
    left: set[asyncio.Task[object]] = set()
    for _ in range(rounds):
        await anyio.lowlevel.checkpoint()
        left = _client_side_pending(baseline)
        if not left:
            break
    return left


# --- all items, all pages --------------------------------------------------------------------


@pytest.mark.parametrize("total", [1, 9, 10, 11, 25, 30])
async def test_embed_list_yields_every_item_using_total_page(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, total: int
) -> None:
    ids = fake.add_tasks("embed_v2", total)
    items = [item async for item in client.embed.v2.tasks.list(page_limit=10)]
    assert [t.id for t in items] == list(reversed(ids))
    # total_page tells when to stop: no request for an extra, empty page.
    assert fake.request_count(V2_LIST) == -(-total // 10)


async def test_pages_have_data_and_page_info(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    fake.add_tasks("embed_v1", 7)
    pages = [page async for page in client.embed.v1.tasks.list(page_limit=3).pages()]
    assert [len(p.data or []) for p in pages] == [3, 3, 1]
    assert [p.page_info for p in pages] == [
        PageInfo(limit_per_page=3, page=n, total_page=3, total_results=7) for n in (1, 2, 3)
    ]
    assert all(isinstance(p, TaskPage) for p in pages)
    assert fake.request_count(V1_LIST) == 3
    sent = [r.path.partition("?")[2].split("&") for r in fake.request_log]
    assert [sorted(q) for q in sent] == [
        ["page=1", "page_limit=3"],
        ["page=2", "page_limit=3"],
        ["page=3", "page_limit=3"],
    ]


@pytest.mark.parametrize(
    ("total", "requests"),
    [(0, 1), (3, 1), (9, 1), (10, 2), (19, 2), (20, 3), (21, 3)],
)
async def test_analyze_list_stops_on_short_or_empty_page(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, total: int, requests: int
) -> None:
    ids = fake.add_tasks("analyze", total)
    items = await client.analyze.tasks.list(page_limit=10).to_list()
    assert [t.task_id for t in items] == list(reversed(ids))
    assert fake.request_count(AN_LIST) == requests
    # The analyze list really does send only `page` in page_info.
    fake.reset_counters()
    pages = [p async for p in client.analyze.tasks.list(page_limit=10).pages()]
    assert all(p.page_info == PageInfo(page=n) for n, p in enumerate(pages, start=1))


async def test_analyze_list_without_page_limit_uses_the_api_default(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    ids = fake.add_tasks("analyze", 15)
    items = await client.analyze.tasks.list().to_list()
    assert [t.task_id for t in items] == list(reversed(ids))
    assert fake.request_count(AN_LIST) == 2  # 10 then a short page of 5


async def test_analyze_full_page_info_is_used_when_present() -> None:
    async with (
        FakeTwelveLabs(analyze_full_page_info=True) as fake,
        AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client,
    ):
        fake.add_tasks("analyze", 20)
        items = await client.analyze.tasks.list(page_limit=10).to_list()
        assert len(items) == 20
        assert fake.request_count(AN_LIST) == 2  # no empty third page


async def test_no_items(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    assert await client.embed.v2.tasks.list().to_list() == []
    assert [i async for i in client.analyze.tasks.list()] == []
    pages = [p async for p in client.embed.v1.tasks.list(page_limit=5).pages()]
    assert len(pages) == 1
    assert pages[0].items == []
    assert fake.request_count(V2_LIST) == 1
    assert fake.request_count(AN_LIST) == 1
    assert fake.request_count(V1_LIST) == 1


async def test_exactly_one_full_page(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    fake.add_tasks("embed_v2", 10)
    assert len(await client.embed.v2.tasks.list(page_limit=10).to_list()) == 10
    assert fake.request_count(V2_LIST) == 1  # total_page=1: no second request
    fake.add_tasks("analyze", 10)
    assert len(await client.analyze.tasks.list(page_limit=10).to_list()) == 10
    assert fake.request_count(AN_LIST) == 2  # without total_page an empty page 2 ends it


async def test_starting_page_and_restart(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    ids = list(reversed(fake.add_tasks("embed_v2", 25)))
    paginator = client.embed.v2.tasks.list(page=2, page_limit=10)
    assert [t.id for t in await paginator.to_list()] == ids[10:]
    assert [t.id for t in await paginator.to_list()] == ids[10:]  # iterating again restarts
    assert fake.request_count(V2_LIST) == 4


@pytest.mark.parametrize("bad", [0, -1, 51, 100])
async def test_page_limit_out_of_range_rejected_before_any_request(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, bad: int
) -> None:
    with pytest.raises(ValueError, match="page_limit"):
        client.embed.v2.tasks.list(page_limit=bad)
    with pytest.raises(ValueError, match="page_limit"):
        client.embed.v1.tasks.list(page_limit=bad)
    with pytest.raises(ValueError, match="page_limit"):
        client.analyze.tasks.list(page_limit=bad)
    assert fake.request_count() == 0


@pytest.mark.parametrize("good", [1, 50])
async def test_page_limit_bounds_accepted(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, good: int
) -> None:
    fake.add_tasks("embed_v2", 3)
    assert len(await client.embed.v2.tasks.list(page_limit=good).to_list()) == 3


async def test_invalid_start_page_rejected(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    with pytest.raises(ValueError):
        client.embed.v2.tasks.list(page=0)
    assert fake.request_count() == 0


async def test_nothing_requested_until_iteration(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    paginator = client.embed.v2.tasks.list(page_limit=5)
    await anyio.sleep(0.02)
    assert fake.request_count() == 0
    assert isinstance(paginator, AsyncPaginator)


# --- lookahead -------------------------------------------------------------------------------


async def test_next_page_is_fetched_while_the_caller_works_one_ahead_only(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.add_tasks("embed_v2", 50)
    seen_pages = 0
    async for _page in client.embed.v2.tasks.list(page_limit=10).pages():
        seen_pages += 1
        await anyio.sleep(0.03)  # the caller is busy with this page
        # The next page is already requested, the one after it is not.
        assert fake.request_count(V2_LIST) == min(seen_pages + 1, 5)
        await anyio.sleep(0.03)
        assert fake.request_count(V2_LIST) == min(seen_pages + 1, 5)
    assert seen_pages == 5
    assert fake.request_count(V2_LIST) == 5


async def test_lookahead_with_a_synthetic_fetcher() -> None:
    """The same property, without HTTP: fetches start and end in a checked order."""
    events: list[str] = []

    async def fetch(number: int) -> TaskPage[int]:
        events.append(f"start {number}")
        await anyio.sleep(0.01)
        events.append(f"end {number}")
        info = PageInfo(page=number, total_page=3)
        return TaskPage(data=[number * 10 + i for i in range(2)], page_info=info)

    async for page in AsyncPaginator(fetch, page_limit=2).pages():
        events.append(f"consume {page.page_info.page if page.page_info else '?'}")
        await anyio.sleep(0.03)
    assert events == [
        "start 1",
        "end 1",
        "consume 1",
        "start 2",
        "end 2",
        "consume 2",
        "start 3",
        "end 3",
        "consume 3",
    ]


async def test_a_known_next_page_is_requested_with_the_awaited_one() -> None:
    """Once total_page is known, the caller waiting for page n has pages n and n+1 in flight
    (the server prepares n+1 while n is decoded), never more, and no page past the last."""
    events: list[str] = []
    in_flight = 0
    most_in_flight = 0

    async def fetch(number: int) -> TaskPage[int]:
        nonlocal in_flight, most_in_flight
        events.append(f"start {number}")
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        events.append(f"end {number}")
        return TaskPage(data=[number], page_info=PageInfo(page=number, total_page=4))

    items = [item async for item in AsyncPaginator(fetch, page_limit=1)]  # a bare consumer
    assert items == [1, 2, 3, 4]
    assert sorted(e for e in events if e.startswith("start")) == [f"start {n}" for n in range(1, 5)]
    assert most_in_flight == 2
    assert events.index("start 3") < events.index("end 2"), events  # overlapped
    assert events.index("start 2") > events.index("end 1")  # page 1 alone told the total


async def test_no_overlap_without_total_page() -> None:
    """Without total_page nothing says a next page exists: one request at a time."""
    events: list[str] = []

    async def fetch(number: int) -> TaskPage[int]:
        events.append(f"start {number}")
        await anyio.sleep(0.01)
        events.append(f"end {number}")
        return TaskPage(data=[number] * (2 if number < 3 else 1), page_info=PageInfo(page=number))

    assert len(await AsyncPaginator(fetch, page_limit=2).to_list()) == 5
    assert events == ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]


async def test_last_page_does_not_prefetch() -> None:
    calls: list[int] = []

    async def fetch(number: int) -> TaskPage[int]:
        calls.append(number)
        return TaskPage(data=[1, 2, 3], page_info=PageInfo(page=number, total_page=2))

    assert await AsyncPaginator(fetch, page_limit=3).to_list() == [1, 2, 3, 1, 2, 3]
    assert calls == [1, 2]


# --- leaving early ---------------------------------------------------------------------------


async def test_break_early_cancels_the_prefetch_and_leaves_no_tasks(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.add_tasks("embed_v2", 40)
    baseline = set(asyncio.all_tasks())
    paginator = client.embed.v2.tasks.list(page_limit=10)
    got = []
    async for item in paginator:
        got.append(item)
        # Hold page 2's answer back so its request is surely in flight when we leave.
        fake.faults.push(V2_LIST, delay=0.2)
        await anyio.sleep(0.02)
        break
    assert len(got) == 1
    assert await settle(baseline) == set()
    assert fake.request_count(V2_LIST) == 2  # page 1, and page 2 (cancelled) only
    # The client is unharmed.
    await anyio.sleep(0.2)
    assert len(await client.embed.v2.tasks.list(page_limit=50).to_list()) == 40


async def test_break_early_with_aclosing(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    fake.add_tasks("analyze", 30)
    baseline = set(asyncio.all_tasks())
    pages = client.analyze.tasks.list(page_limit=10).pages()
    async with contextlib.aclosing(pages):
        async for page in pages:
            assert len(page.items) == 10
            break
    # Closed synchronously by aclosing: nothing pending even before the loop turns.
    assert _client_side_pending(baseline) == set()
    assert fake.request_count(AN_LIST) <= 2


async def test_break_before_the_prefetch_even_started(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.add_tasks("embed_v1", 30)
    baseline = set(asyncio.all_tasks())
    async for _item in client.embed.v1.tasks.list(page_limit=10):
        break  # no await in between: page 2's task never got to run
    assert await settle(baseline) == set()
    assert fake.request_count(V1_LIST) in (1, 2)


async def test_cancel_scope_around_iteration(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    fake.add_tasks("embed_v2", 30)
    baseline = set(asyncio.all_tasks())
    seen = 0
    with anyio.move_on_after(0.05) as scope:
        async for _item in client.embed.v2.tasks.list(page_limit=10):
            seen += 1
            fake.faults.push(V2_LIST, delay=0.2)  # the next page hangs
            await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert seen == 10
    assert await settle(baseline) == set()


async def test_an_unused_prefetched_error_is_not_reported(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_tasks("embed_v2", 30)
    baseline = set(asyncio.all_tasks())
    pages = client.embed.v2.tasks.list(page_limit=10).pages()
    async for _page in pages:
        fake.faults.push(V2_LIST, status=400)  # page 2 fails while we look at page 1
        await anyio.sleep(0.05)
        break
    await pages.aclose()
    assert await settle(baseline) == set()
    gc.collect()
    await anyio.lowlevel.checkpoint()
    assert "never retrieved" not in caplog.text
    assert fake.request_count(V2_LIST) == 2


async def test_error_on_a_later_page_propagates(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.add_tasks("embed_v2", 25)
    seen = 0

    async def consume() -> None:
        nonlocal seen
        async for _item in client.embed.v2.tasks.list(page_limit=10):
            seen += 1
            if seen == 1:
                fake.faults.push(V2_LIST, status=404)

    with pytest.raises(NotFoundError):
        await consume()
    assert seen == 10


async def test_error_on_the_first_page_propagates(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.faults.push(AN_LIST, status=400)
    baseline = set(asyncio.all_tasks())
    with pytest.raises(BadRequestError):
        await client.analyze.tasks.list().to_list()
    assert await settle(baseline) == set()


async def test_synthetic_break_cancels_a_slow_prefetch() -> None:
    state: dict[str, object] = {}

    async def fetch(number: int) -> TaskPage[int]:
        if number == 1:
            return TaskPage(data=[1, 2], page_info=PageInfo(page=1, total_page=9))
        try:
            await anyio.sleep(10)
        except BaseException as exc:
            state["page2"] = type(exc).__name__
            raise
        raise AssertionError("not reached")

    baseline = set(asyncio.all_tasks())
    pages = AsyncPaginator(fetch, page_limit=2).pages()
    async for _page in pages:
        await anyio.sleep(0.01)  # page 2 is now sleeping
        break
    with anyio.fail_after(2):
        await pages.aclose()
    assert state["page2"] == "CancelledError"
    assert await settle(baseline) == set()
