"""Cancellation at any point: it propagates as cancellation, leaks nothing, and the client lives on.

Each scenario stops a call at one point of its life: while connecting (a listening socket that
never accepts), while sleeping before a retry (a real ``Retry-After``), halfway through a body,
while the next page is being prefetched, and while polling (the poller and ``resource.wait``).
Each is cancelled in every way a caller can: an anyio cancel scope (``move_on_after`` and an
explicit ``cancel()``), ``anyio.fail_after``, ``asyncio.timeout``, ``Task.cancel()`` and, for the
iterators, breaking out of the loop. Every time, the code inside sees a ``CancelledError`` (never
swallowed, never turned into an ``APIError``), the caller sees the mechanism's own result, no task
is left pending, and the same client (one pooled connection only) then serves a new call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from tests.helpers import client_tasks, serve_app
from twelvelabs_async import APIError, APITimeoutError, AsyncTwelveLabs, Timeout, set_testing
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

CANCEL_AFTER = 0.15
"""Seconds before a time-based mechanism fires; every blocked phase below lasts far longer."""
FOREVER = 30.0
V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"
V2_LIST = "GET /v1.3/embed-v2/tasks"

MECHANISMS = ["move_on_after", "scope_cancel", "fail_after", "asyncio_timeout", "task_cancel"]
if sys.version_info < (3, 11):  # pragma: no cover - asyncio.timeout is new in 3.11
    MECHANISMS.remove("asyncio_timeout")


async def no_new_tasks(before: set[asyncio.Task[Any]]) -> None:
    """Wait (bounded) until every task started since ``before`` has finished."""
    with anyio.fail_after(3):
        while client_tasks() - before:
            await anyio.sleep(0.01)


# --- a tiny API of our own: a body that stops halfway, a socket that never accepts ---------------


@dataclass
class TinyAPI:
    base_url: str = ""
    body_started: anyio.Event = field(default_factory=anyio.Event)
    requests: int = 0


def task_body(task_id: str) -> bytes:
    return msgspec.json.encode({"_id": task_id, "status": "ready", "data": None})


@contextlib.asynccontextmanager
async def tiny_api(sock: socket.socket | None = None) -> AsyncIterator[TinyAPI]:
    """``/embed-v2/tasks/stall-body`` sends half its body and then nothing; other ids answer."""
    api = TinyAPI()

    async def handle(request: web.Request) -> web.StreamResponse:
        api.requests += 1
        task_id = request.match_info["task_id"]
        body = task_body(task_id) + b" " * 4096
        if task_id != "stall-body":
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        api.body_started.set()
        await asyncio.sleep(FOREVER)
        return response

    app = web.Application()
    app.router.add_get("/v1.3/embed-v2/tasks/{task_id}", handle)
    async with serve_app(app, sock=sock) as root:
        api.base_url = f"{root}/v1.3"
        yield api


@contextlib.contextmanager
def never_accepting_listener() -> Any:
    """A listening socket whose accept queue is full: a new ``connect()`` just hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield listener, fillers
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# --- scenarios: each yields (operation that blocks, check that it blocked, a later call) -------


@dataclass
class Scenario:
    client: AsyncTwelveLabs
    operation: Callable[[], Awaitable[Any]]
    reached: Callable[[], bool]
    """Whether the operation got to the point where it is cancelled."""
    later: Callable[[], Awaitable[Any]]
    """A call on the same client after the cancellation; must succeed."""
    after: Callable[[], None] = lambda: None
    """Extra checks once it is cancelled (e.g. nothing more was sent)."""
    breaker: Callable[[], Awaitable[None]] | None = None
    """For "break": a loop that breaks out after its first item."""


def one_connection(base_url: str) -> AsyncTwelveLabs:
    # One pooled connection: a slot not given back would make the later call hang.
    return AsyncTwelveLabs(api_key="k", base_url=base_url, max_connections=1)


@contextlib.asynccontextmanager
async def connect_scenario() -> AsyncIterator[Scenario]:
    with never_accepting_listener() as (listener, fillers):
        port = listener.getsockname()[1]
        client = one_connection(f"http://127.0.0.1:{port}/v1.3")

        async def later() -> Any:
            # The listener starts accepting: the same client now connects and gets an answer.
            for filler in fillers:
                filler.close()
            await stack.enter_async_context(tiny_api(listener))
            return await client.embed.v2.tasks.retrieve("after")

        async with contextlib.AsyncExitStack() as stack, client:
            yield Scenario(
                client,
                lambda: client.embed.v2.tasks.retrieve("abc"),
                reached=lambda: True,  # see test_the_listener_really_holds_connect_open
                later=later,
            )


@contextlib.asynccontextmanager
async def retry_sleep_scenario() -> AsyncIterator[Scenario]:
    set_testing(False)  # a real wait: the server asks for 30 s
    async with FakeTwelveLabs() as fake, one_connection(fake.base_url) as client:
        task_id = fake.add_task("embed_v2", status="ready")
        fake.faults.push(V2_TASK, status=503, headers={"Retry-After": str(FOREVER)})

        def after() -> None:
            assert fake.request_count(V2_TASK) == 1, "the retry was sent after cancellation"

        yield Scenario(
            client,
            lambda: client.embed.v2.tasks.retrieve(task_id),
            reached=lambda: fake.request_count(V2_TASK) == 1,
            later=lambda: client.embed.v2.tasks.retrieve(task_id),
            after=after,
        )


@contextlib.asynccontextmanager
async def mid_body_scenario() -> AsyncIterator[Scenario]:
    async with tiny_api() as api, one_connection(api.base_url) as client:
        yield Scenario(
            client,
            lambda: client.embed.v2.tasks.retrieve("stall-body"),
            reached=api.body_started.is_set,
            later=lambda: client.embed.v2.tasks.retrieve("after"),
        )


@contextlib.asynccontextmanager
async def pagination_scenario() -> AsyncIterator[Scenario]:
    async with FakeTwelveLabs() as fake, one_connection(fake.base_url) as client:
        fake.add_tasks("embed_v2", 25, finish_after_seconds=math.inf)

        def first_page_seen() -> None:
            # The next page is already being fetched ahead; make it never arrive.
            assert fake.request_count(V2_LIST) == 1
            fake.faults.push(V2_LIST, delay=FOREVER)

        async def walk() -> None:
            async for page in client.embed.v2.tasks.list(page_limit=10).pages():
                if page.page_info.page == 1:
                    first_page_seen()

        async def breaker() -> None:
            async for _ in client.embed.v2.tasks.list(page_limit=10).pages():
                first_page_seen()
                with anyio.fail_after(2):
                    while fake.request_count(V2_LIST) < 2:  # the prefetch is at the server
                        await anyio.sleep(0.01)
                break  # the abandoned generator is closed by the event loop, cancelling it

        def after() -> None:
            assert fake.request_count(V2_LIST) == 2, "a third page was requested"

        yield Scenario(
            client,
            walk,
            reached=lambda: fake.request_count(V2_LIST) == 2,
            later=lambda: client.embed.v2.tasks.list(page_limit=50).to_list(),
            after=after,
            breaker=breaker,
        )


@contextlib.asynccontextmanager
async def poller_scenario() -> AsyncIterator[Scenario]:
    async with FakeTwelveLabs() as fake, one_connection(fake.base_url) as client:
        quick = fake.add_task("analyze", finish_after_polls=1)
        slow = fake.add_tasks("analyze", 5, finish_after_seconds=math.inf)
        fast = {"poll_interval": 0.02, "max_poll_interval": 0.05}

        async def operation() -> None:
            async with client.poller(**fast) as poller:
                poller.add(client.analyze.tasks, slow)
                async for _ in poller.as_completed():
                    raise AssertionError("a task that never finishes was delivered")

        async def breaker() -> None:
            async with client.poller(**fast) as poller:
                poller.add(client.analyze.tasks, [quick, *slow])
                async for _ in poller.as_completed():
                    break

        stopped: list[int] = []

        def after() -> None:
            stopped.append(fake.requests_total)

        async def later() -> Any:
            await anyio.sleep(0.1)
            assert fake.requests_total == stopped[0], "the poller kept polling"
            return await client.wait_all(analyze=[quick], **fast)

        yield Scenario(
            client,
            operation,
            reached=lambda: fake.requests_total >= 1,
            later=later,
            after=after,
            breaker=breaker,
        )


@contextlib.asynccontextmanager
async def wait_scenario() -> AsyncIterator[Scenario]:
    async with FakeTwelveLabs() as fake, one_connection(fake.base_url) as client:
        slow = fake.add_task("embed_v1", finish_after_seconds=math.inf)
        done = fake.add_task("embed_v1", status="ready")
        # Every other check hangs: the cancellation finds wait() in a request or asleep.
        fake.faults.push("GET /v1.3/embed/tasks/{task_id}/status", times=1000, delay=0.05)
        yield Scenario(
            client,
            lambda: client.embed.v1.tasks.wait(slow, poll_interval=0.02, max_poll_interval=0.05),
            reached=lambda: fake.request_count() >= 2,
            later=lambda: client.embed.v1.tasks.retrieve(done),
        )


SCENARIOS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[Scenario]]] = {
    "connect": connect_scenario,
    "retry_sleep": retry_sleep_scenario,
    "mid_body": mid_body_scenario,
    "mid_pagination": pagination_scenario,
    "mid_poll_poller": poller_scenario,
    "mid_poll_wait": wait_scenario,
}
CASES = [
    pytest.param(scenario, mechanism, id=f"{scenario}-{mechanism}")
    for scenario in SCENARIOS
    for mechanism in MECHANISMS
] + [
    pytest.param("mid_pagination", "break", id="mid_pagination-break"),
    pytest.param("mid_poll_poller", "break", id="mid_poll_poller-break"),
]


async def cancel(mechanism: str, scenario: Scenario) -> list[BaseException | None]:
    """Run the operation and stop it with ``mechanism``; return what the operation saw."""
    seen: list[BaseException | None] = []

    async def observed() -> None:
        try:
            await scenario.operation()
        except BaseException as exc:
            seen.append(exc)
            raise
        seen.append(None)

    if mechanism == "move_on_after":
        with anyio.move_on_after(CANCEL_AFTER) as scope:
            await observed()
        assert scope.cancelled_caught
    elif mechanism == "scope_cancel":
        async with anyio.create_task_group() as tg:
            tg.start_soon(observed)
            await anyio.sleep(CANCEL_AFTER)
            tg.cancel_scope.cancel()
        assert tg.cancel_scope.cancelled_caught
    elif mechanism == "fail_after":
        with pytest.raises(TimeoutError) as info, anyio.fail_after(CANCEL_AFTER):
            await observed()
        assert not isinstance(info.value, APIError)
    elif mechanism == "asyncio_timeout":
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(CANCEL_AFTER):  # type: ignore[attr-defined]
                await observed()
        assert not isinstance(info.value, APIError)
        current = asyncio.current_task()
        assert current is not None
        assert current.cancelling() == 0  # the timeout's own cancel request was withdrawn
    elif mechanism == "task_cancel":
        task = asyncio.ensure_future(observed())
        await anyio.sleep(CANCEL_AFTER)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
    else:
        raise AssertionError(mechanism)
    return seen


@pytest.mark.parametrize(("scenario_name", "mechanism"), CASES)
async def test_cancellation_propagates_and_leaks_nothing(
    scenario_name: str, mechanism: str
) -> None:
    before = client_tasks()
    with anyio.fail_after(15):
        async with SCENARIOS[scenario_name]() as scenario:
            if mechanism == "break":
                assert scenario.breaker is not None
                await scenario.breaker()
            else:
                seen = await cancel(mechanism, scenario)
                assert len(seen) == 1
                assert isinstance(seen[0], asyncio.CancelledError), repr(seen[0])
                assert scenario.reached(), "cancelled before reaching the intended point"
            await no_new_tasks(before)
            scenario.after()
            assert not scenario.client.is_closed
            with anyio.fail_after(5):
                assert await scenario.later() is not None
    await no_new_tasks(before)


async def test_the_listener_really_holds_connect_open() -> None:
    """The "connect" scenario is what it claims: only a connect timeout ends the call."""
    with never_accepting_listener() as (listener, _):
        port = listener.getsockname()[1]
        async with AsyncTwelveLabs(
            api_key="k",
            base_url=f"http://127.0.0.1:{port}/v1.3",
            timeout=Timeout(connect=0.2, read=30, total=30),
            max_retries=0,
        ) as client:
            with pytest.raises(APITimeoutError) as info, anyio.fail_after(5):
                await client.embed.v2.tasks.retrieve("abc")
    assert "Connect" in str(info.value) or "connect" in str(info.value)
