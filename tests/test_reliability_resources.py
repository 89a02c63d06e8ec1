"""Resource bounds: flat memory over long runs, pooled keep-alive connections, stale connections.

* Memory: batches of tasks run through one client (and through one long-lived poller) under
  chaos; what stays allocated after the second batch is compared with after the first.
* Connections: counted at a tiny server of our own by the peer address of each request, so
  keep-alive reuse and the ``max_connections`` cap are seen from the server's side.
* Stale keep-alive connections (closed by the server while idle, ``Connection: close``, or
  closed just as the next request arrives) never surface as errors on idempotent calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from tests.helpers import serve_app
from twelvelabs_async import APIConnectionError, APIError, AsyncTwelveLabs, Outcome

pytestmark = pytest.mark.anyio

BATCH = 300
FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05}
KINDS = ("embed_v2", "embed_v1", "analyze")


# --- memory --------------------------------------------------------------------------------------

SERVER = """
import asyncio
from twelvelabs_async.testing import Chaos, FakeTwelveLabs

async def main():
    fake = FakeTwelveLabs(
        rate_limit_per_minute=10**9, embedding_dim=32, request_log_size=0, seed=5,
        default_finish_after_polls=2,
    )
    async with fake:
        fake.chaos = Chaos(p_5xx=0.10, p_429=0.05, p_drop=0.02, p_truncate=0.01, p_slow=0, seed=5)
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@contextlib.asynccontextmanager
async def fake_in_another_process() -> AsyncIterator[str]:
    """A chaotic fake server in its own process, so that this process's memory is the client's
    alone (the fake keeps every task it ever made, and caches)."""
    process = await anyio.open_process([sys.executable, "-c", SERVER], stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            line = b""
            async for chunk in process.stdout:
                line += chunk
                if b"\n" in line:
                    break
        yield line.decode().strip()
    finally:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:  # pragma: no cover - a stuck server
            process.kill()
        await process.aclose()


def retained() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def create_batch(client: AsyncTwelveLabs) -> dict[str, list[str]]:
    """``BATCH`` create calls (a third of each kind); the ids of those that succeeded."""
    ids: dict[str, list[str]] = {kind: [] for kind in KINDS}
    video = {"media_source": {"url": "https://v.example.com/a.mp4"}}

    async def create(kind: str) -> None:
        with contextlib.suppress(APIError):
            if kind == "embed_v2":
                made = await client.embed.v2.tasks.create(
                    input_type="video", model_name="m", video=video
                )
                ids[kind].append(made.id)
            elif kind == "embed_v1":
                made_v1 = await client.embed.v1.tasks.create(model_name="m", video_url="https://v")
                ids[kind].append(made_v1.id or "")
            else:
                made_an = await client.analyze.tasks.create(
                    video={"type": "url", "url": "https://v"}
                )
                ids[kind].append(made_an.task_id)

    limit = anyio.Semaphore(16)

    async def bounded(kind: str) -> None:
        async with limit:
            await create(kind)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(BATCH):
                tg.start_soon(bounded, KINDS[i % len(KINDS)])
    return ids


@pytest.fixture
def quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Retry warnings would pile up as captured log records: that memory is pytest's."""
    caplog.set_level(logging.ERROR, logger="twelvelabs_async")


@pytest.mark.usefixtures("quiet_logs")
async def test_memory_is_flat_across_batches_through_one_client() -> None:
    async with (
        fake_in_another_process() as base_url,
        AsyncTwelveLabs(api_key="k", base_url=base_url, max_retries=0) as client,
    ):

        async def run_batch() -> int:
            ids = await create_batch(client)
            with anyio.fail_after(30):
                results = await client.wait_all(**ids, **FAST)
            assert {o.status for o in results.values()} == {"ready"}
            return len(results)

        assert await run_batch() > BATCH // 2  # warm-up: pools, decoders, caches
        tracemalloc.start()
        try:
            assert await run_batch() > BATCH // 2
            after_first = retained()
            second = await run_batch()
            after_second = retained()
        finally:
            tracemalloc.stop()
    per_task = (after_second - after_first) / second
    # Noise (pooled connections opened or dropped by chaos, allocator slack) is a few KiB
    # either way; a leak of anything per task would show as hundreds of bytes each.
    assert per_task < 256, f"{per_task:.0f} bytes kept per task after a second batch"


@pytest.mark.usefixtures("quiet_logs")
async def test_memory_per_finished_task_is_bounded_in_one_long_poller() -> None:
    """A poller remembers each id it delivered (so re-adding one is a no-op), nothing more:
    not the task, not the last transient error with its traceback."""
    failures: list[int] = []
    async with (
        fake_in_another_process() as base_url,
        AsyncTwelveLabs(api_key="k", base_url=base_url) as client,
        client.poller(max_retries=0, **FAST) as poller,
    ):
        client.hooks.on_response.append(
            lambda event: (
                failures.append(1) if event.method == "GET" and event.status != 200 else None
            )
        )
        resources = {
            "embed_v2": client.embed.v2.tasks,
            "embed_v1": client.embed.v1.tasks,
            "analyze": client.analyze.tasks,
        }

        async def run_batch() -> list[Outcome]:
            ids = await create_batch(client)
            for kind, task_ids in ids.items():
                poller.add(resources[kind], task_ids)
            with anyio.fail_after(30):
                return [o async for o in poller.as_completed()]

        assert len(await run_batch()) > BATCH // 2
        tracemalloc.start()
        try:
            assert len(await run_batch()) > BATCH // 2
            after_first = retained()
            kept = await run_batch()  # the caller keeps these: their size is not growth
            kept_size = retained() - after_first
            delivered = len(kept)
            del kept
            after_second = retained()
        finally:
            tracemalloc.stop()
    assert len(failures) > BATCH // 10  # transient failures did reach the poller
    per_task = (after_second - after_first) / delivered
    assert per_task < 1536, f"{per_task:.0f} bytes kept per finished task"
    assert kept_size > 2 * (after_second - after_first)  # what the caller keeps is the bulk


# --- connections ---------------------------------------------------------------------------------


@dataclass
class Peers:
    """What a tiny server of our own saw: the peer (client port) of every request."""

    base_url: str = ""
    peers: list[tuple[str, int]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    closed_on_arrival: int = 0


def task_json(task_id: str) -> bytes:
    return msgspec.json.encode({"_id": task_id, "status": "ready"})


@contextlib.asynccontextmanager
async def peer_server(
    *,
    delay: float = 0.0,
    keepalive_timeout: float = 75.0,
    connection_close: bool = False,
    drop_reused: bool = False,
) -> AsyncIterator[Peers]:
    """Answers task retrieves and creates, recording each request's peer address.

    ``drop_reused``: a request arriving on a connection that already served one is dropped
    unanswered, as by a server that closed the idle connection just as the request came in.
    """
    seen = Peers()
    served: set[tuple[str, int]] = set()

    async def handle(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        peer = transport.get_extra_info("peername")[:2]
        seen.peers.append(peer)
        if drop_reused and peer in served:
            seen.closed_on_arrival += 1
            transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        served.add(peer)
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        try:
            if delay:
                await asyncio.sleep(delay)
            await request.read()
        finally:
            seen.in_flight -= 1
        if request.path.endswith("/analyze/tasks"):
            body = msgspec.json.encode({"task_id": "new", "status": "queued"})
        elif request.path.endswith("/embed-v2/tasks"):
            body = msgspec.json.encode({"_id": "new", "status": "processing"})
        else:
            body = task_json(request.match_info.get("task_id", "x"))
        response = web.Response(body=body, content_type="application/json")
        if connection_close:
            response.force_close()
        return response

    app = web.Application()
    app.router.add_route("*", "/v1.3/embed-v2/tasks/{task_id}", handle)
    app.router.add_route("*", "/v1.3/embed-v2/tasks", handle)
    app.router.add_route("*", "/v1.3/analyze/tasks", handle)
    async with serve_app(app, keepalive_timeout=keepalive_timeout) as root:
        seen.base_url = f"{root}/v1.3"
        yield seen


def counting_client(base_url: str, **kw: Any) -> tuple[AsyncTwelveLabs, list[int]]:
    """A client and the list of attempt numbers it made (0 = first try, 1+ = retries)."""
    attempts: list[int] = []
    client = AsyncTwelveLabs(api_key="k", base_url=base_url, **kw)
    client.hooks.on_request.append(lambda method, path, attempt: attempts.append(attempt))
    return client, attempts


async def test_sequential_calls_reuse_one_keep_alive_connection() -> None:
    async with peer_server() as server:
        client, attempts = counting_client(server.base_url)
        async with client:
            with anyio.fail_after(10):
                for i in range(20):
                    assert (await client.embed.v2.tasks.retrieve(f"t{i}")).id == f"t{i}"
    assert len(server.peers) == 20
    assert len(set(server.peers)) == 1, "each call opened a new connection"
    assert attempts == [0] * 20


@pytest.mark.parametrize("pool", [1, 4])
async def test_concurrent_calls_are_capped_by_the_pool(pool: int) -> None:
    async with peer_server(delay=0.02) as server:
        client, _ = counting_client(server.base_url, max_connections=pool)
        with anyio.fail_after(20):
            async with client, anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(client.embed.v2.tasks.retrieve, f"t{i}")
    assert len(server.peers) == 40
    assert len(set(server.peers)) <= pool, "more connections than the pool allows"
    assert server.max_in_flight <= pool
    assert server.max_in_flight == pool  # and the pool is actually used


async def test_poller_requests_share_the_pool() -> None:
    async with peer_server(delay=0.005) as server:
        client, _ = counting_client(server.base_url, max_connections=3)
        async with client:
            with anyio.fail_after(20):
                outcomes = await client.wait_all(
                    embed_v2=[f"t{i}" for i in range(30)], max_concurrency=16, **FAST
                )
    assert {o.status for o in outcomes.values()} == {"ready"}
    assert len(set(server.peers)) <= 3
    assert server.max_in_flight <= 3


async def _retrieve_twice(client: AsyncTwelveLabs, pause: float) -> None:
    assert (await client.embed.v2.tasks.retrieve("a")).id == "a"
    await anyio.sleep(pause)
    assert (await client.embed.v2.tasks.retrieve("b")).id == "b"


async def test_connection_closed_by_the_server_while_idle_is_not_an_error() -> None:
    async with peer_server(keepalive_timeout=0.05) as server:
        client, attempts = counting_client(server.base_url)
        async with client:
            with anyio.fail_after(10):
                await _retrieve_twice(client, pause=0.3)
    assert len(set(server.peers)) == 2  # the idle one was closed; a new one was opened
    assert attempts == [0, 0]  # nothing failed, nothing retried


async def test_connection_close_header_is_honoured() -> None:
    async with peer_server(connection_close=True) as server:
        client, attempts = counting_client(server.base_url)
        async with client:
            with anyio.fail_after(10):
                await _retrieve_twice(client, pause=0.0)
    assert len(set(server.peers)) == 2
    assert attempts == [0, 0]


async def test_stale_connection_closed_on_arrival_is_retried_for_idempotent_calls() -> None:
    async with peer_server(drop_reused=True) as server:
        client, attempts = counting_client(server.base_url)
        async with client:
            with anyio.fail_after(10):
                await _retrieve_twice(client, pause=0.0)
                # An analysis create carries an Idempotency-Key: just as safe to send again.
                created = await client.analyze.tasks.create(
                    video={"type": "url", "url": "https://v"}
                )
    assert created.task_id == "new"
    assert server.closed_on_arrival == 2
    assert attempts == [0, 0, 1, 0, 1]  # each stale reuse cost exactly one counted retry
    assert len(server.peers) == 5


async def test_stale_connection_on_a_plain_create_is_surfaced_not_resent() -> None:
    """A create without an idempotency key that dies on a reused connection may have reached
    the API: it is reported (documented), never silently sent twice."""
    async with peer_server(drop_reused=True) as server:
        client, attempts = counting_client(server.base_url)
        async with client:
            with anyio.fail_after(10):
                assert (await client.embed.v2.tasks.retrieve("a")).id == "a"
                with pytest.raises(APIConnectionError):
                    await client.embed.v2.tasks.create(
                        input_type="video",
                        model_name="m",
                        video={"media_source": {"url": "https://v"}},
                    )
                # The next call simply opens a fresh connection.
                assert (await client.embed.v2.tasks.retrieve("b")).id == "b"
    assert attempts == [0, 0, 0]
    assert server.closed_on_arrival == 1
