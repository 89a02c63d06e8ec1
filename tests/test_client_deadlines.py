"""The read and total limits of each attempt, kept by the transport's one shared timer
(``shared``) or, before Python 3.11, by aiohttp's per-request timers (``aiohttp``); the tests
that concern behaviour run against both.

Every test talks HTTP to a tiny real aiohttp server on 127.0.0.1 whose handler trickles, stalls
or reads slowly, so that only a deadline can end (or must not end) the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import msgspec
import pytest
from aiohttp import web

from tests.helpers import serve_app
from twelvelabs_async import APITimeoutError, AsyncTwelveLabs, Timeout
from twelvelabs_async._deadlines import SUPPORTED, Deadlines

pytestmark = pytest.mark.anyio
needs_shared = pytest.mark.skipif(not SUPPORTED, reason="shared deadlines need Python 3.11+")
MODES = [pytest.param("shared", marks=needs_shared), "aiohttp"]

FOREVER = 3600.0


def task_body(task_id: str) -> bytes:
    return msgspec.json.encode({"_id": task_id, "status": "processing"}) + b" " * 600


@dataclass
class SlowAPI:
    """``GET .../tasks/{id}`` answers as ``behaviour`` says; ``POST /embed/tasks`` reads the
    upload only after ``read_delay`` seconds."""

    base_url: str = ""
    behaviour: str = "quick"  # quick | stall | trickle | slow-headers
    chunk_gap: float = 0.05
    chunks: int = 6
    read_delay: float = 0.0
    upload_bytes: int = 0
    requests: int = 0
    handlers_running: int = 0
    cancelled_handlers: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def slow_api() -> AsyncIterator[SlowAPI]:
    api = SlowAPI()

    async def retrieve(request: web.Request) -> web.StreamResponse:
        api.requests += 1
        task_id = request.match_info["task_id"]
        body = task_body(task_id)
        if api.behaviour == "quick":
            return web.Response(body=body, content_type="application/json")
        if api.behaviour == "slow-headers":
            await asyncio.sleep(FOREVER)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        if api.behaviour == "stall":
            await response.write(body[:10])
            await asyncio.sleep(FOREVER)
        piece = -(-len(body) // api.chunks)
        for start in range(0, len(body), piece):
            await response.write(body[start : start + piece])
            await asyncio.sleep(api.chunk_gap)
        await response.write_eof()
        return response

    async def upload(request: web.Request) -> web.Response:
        await asyncio.sleep(api.read_delay)
        api.upload_bytes = len(await request.read())
        return web.json_response({"_id": "uploaded"})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_get("/v1.3/embed-v2/tasks/{task_id}", retrieve)
    app.router.add_post("/v1.3/embed/tasks", upload)
    async with serve_app(app) as root:
        api.base_url = f"{root}/v1.3"
        yield api


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(
    api: SlowAPI, timeout: Timeout, mode: str = "shared", max_retries: int = 0
) -> AsyncTwelveLabs:
    client = AsyncTwelveLabs(
        api_key="k", base_url=api.base_url, timeout=timeout, max_retries=max_retries
    )
    if mode == "aiohttp":  # what Python 3.10 runs
        client._transport._deadlines = None
    return client


def says(error: BaseException, mode: str, text: str) -> bool:
    """Our own deadline messages say which limit ran out; aiohttp's say less."""
    return mode != "shared" or text in str(error)


def cancels_pending() -> int:
    """Cancellation requests on the current task not yet taken back (0 before 3.11, where
    asyncio does not count them)."""
    task = asyncio.current_task()
    assert task is not None
    return int(getattr(task, "cancelling", lambda: 0)())


async def test_a_stalled_body_ends_at_the_read_limit(mode: str) -> None:
    async with slow_api() as api, client_for(api, Timeout(read=0.2, total=30), mode) as client:
        api.behaviour = "stall"
        with anyio.fail_after(5), pytest.raises(APITimeoutError) as info:
            await client.embed.v2.tasks.retrieve("abc")
        assert says(info.value, mode, "no response data for read=0.2 s")
        assert cancels_pending() == 0, "the deadline's cancellation was not taken back"
        api.behaviour = "quick"
        assert (await client.embed.v2.tasks.retrieve("next")).id == "next"
        assert len(client._transport._deadlines or ()) == 0


async def test_slow_headers_end_at_the_read_limit(mode: str) -> None:
    async with slow_api() as api, client_for(api, Timeout(read=0.15, total=None), mode) as client:
        api.behaviour = "slow-headers"
        with anyio.fail_after(5), pytest.raises(APITimeoutError) as info:
            await client.embed.v2.tasks.retrieve("abc")
        assert says(info.value, mode, "read=0.15")


async def test_every_chunk_restarts_the_read_limit(mode: str) -> None:
    # Six chunks 0.1 s apart: 0.6 s in all, each gap well under read=0.3.
    async with slow_api() as api, client_for(api, Timeout(read=0.3, total=30), mode) as client:
        api.behaviour, api.chunk_gap = "trickle", 0.1
        with anyio.fail_after(5):
            task = await client.embed.v2.tasks.retrieve("abc")
        assert task.id == "abc"
        assert cancels_pending() == 0


async def test_a_trickling_body_ends_at_the_total_limit(mode: str) -> None:
    async with slow_api() as api, client_for(api, Timeout(read=5, total=0.3), mode) as client:
        api.behaviour, api.chunk_gap = "trickle", 0.1
        with anyio.fail_after(5), pytest.raises(APITimeoutError) as info:
            await client.embed.v2.tasks.retrieve("abc")
        assert says(info.value, mode, "longer than total=0.3 s")
        assert cancels_pending() == 0


async def test_sending_a_large_upload_does_not_count_against_the_read_limit(
    tmp_path: Path, mode: str
) -> None:
    # The server reads the 32 MB body only after 0.5 s, so sending it takes longer than
    # read=0.25; the read limit starts once the body is sent, as aiohttp's sock_read does.
    video = tmp_path / "video.mp4"
    video.write_bytes(b"\0" * (32 << 20))
    async with slow_api() as api, client_for(api, Timeout(read=0.25, total=30), mode) as client:
        api.read_delay = 0.5
        with anyio.fail_after(20):
            created = await client.embed.v1.tasks.create(
                model_name="Marengo-retrieval-2.7", video_file=video
            )
    assert created.id == "uploaded"
    assert api.upload_bytes > video.stat().st_size


async def test_each_retry_gets_fresh_deadlines(mode: str) -> None:
    async with (
        slow_api() as api,
        client_for(api, Timeout(read=0.1, total=30), mode, max_retries=2) as client,
    ):
        api.behaviour = "stall"
        with anyio.fail_after(5), pytest.raises(APITimeoutError) as info:
            await client.embed.v2.tasks.retrieve("abc")
        assert info.value.retries == 2
        assert api.requests == 3
        assert cancels_pending() == 0


@pytest.mark.parametrize("outer", ["move_on_after", "task_cancel"])
async def test_an_outer_cancellation_at_the_deadline_always_wins(outer: str, mode: str) -> None:
    """The outer cancellation and the attempt's own deadline land in the same instant, again
    and again: the caller's cancellation wins every time (its scope catches it, or the task
    ends cancelled), nothing hangs, nothing leaks. (Forced into one loop iteration, in every
    timer order: tests/test_transport_hardening.py.)

    With aiohttp's own timers (what Python 3.10 runs, where asyncio cannot count
    cancellations) a timeout that fired first may still be reported; it must not hang or leak.
    """
    timeout = Timeout(read=0.05, total=0.05)
    async with slow_api() as api, client_for(api, timeout, mode) as client:
        api.behaviour = "slow-headers"
        outcomes: dict[str, int] = {"cancelled": 0, "timeout": 0}
        for _ in range(20):
            if outer == "move_on_after":
                with anyio.move_on_after(0.05) as scope:
                    try:
                        await client.embed.v2.tasks.retrieve("abc")
                    except APITimeoutError:
                        outcomes["timeout"] += 1
                if scope.cancelled_caught:
                    outcomes["cancelled"] += 1
            else:

                async def call() -> None:
                    await client.embed.v2.tasks.retrieve("abc")

                task = asyncio.ensure_future(call())
                await asyncio.sleep(0.05)
                task.cancel()
                done, _ = await asyncio.wait([task], timeout=5)
                assert done, "the call hung after being cancelled"
                if task.cancelled():
                    outcomes["cancelled"] += 1
                else:
                    with pytest.raises(APITimeoutError):
                        task.result()
                    outcomes["timeout"] += 1
            assert cancels_pending() == 0
        if mode == "shared":
            assert outcomes == {"cancelled": 20, "timeout": 0}
        else:
            assert sum(outcomes.values()) == 20, outcomes
        assert len(client._transport._deadlines or ()) == 0


@needs_shared
async def test_many_attempts_share_one_timer() -> None:
    async with slow_api() as api, client_for(api, Timeout(read=30, total=60)) as client:
        deadlines = client._transport._deadlines
        assert deadlines is not None
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(client.embed.v2.tasks.retrieve, f"t{i}")
        assert len(deadlines) == 0
        assert deadlines._timer is not None, "the timer stays armed for the earliest deadline"
        assert api.requests == 200
    assert deadlines._timer is None, "closing the client disarms the timer"


@needs_shared
async def test_the_timer_fires_on_stale_deadlines_and_rearms_for_live_ones() -> None:
    deadlines = Deadlines()
    first = deadlines.start(read=None, total=0.05)
    second = deadlines.start(read=None, total=30)
    assert first is not None
    assert second is not None
    first.stop()
    await asyncio.sleep(0.1)  # the timer set for `first` fires, finds nothing overdue
    assert first.reason is None
    assert second.reason is None
    assert deadlines._timer is not None
    assert deadlines._timer_due == second.total_due
    second.stop()
    assert len(deadlines) == 0
    assert deadlines.start(read=None, total=None) is None
