"""The transport's promises under hostile servers, odd headers and odd timing (issue 11).

Each test names the defect it guards (``defect N``) and talks HTTP to a real server on
127.0.0.1: a tiny aiohttp app, the fake API, or a raw TCP server for bytes aiohttp.web cannot
send (malformed framing).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import math
import time
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import catch_all, serve_app, serve_raw
from twelvelabs_async import (
    APIConnectionError,
    APIError,
    APIProtocolError,
    APIStatusError,
    APITimeoutError,
    AsyncTwelveLabs,
    InternalServerError,
    Limits,
    PaginationError,
    RateLimitError,
    RequestOptions,
    ResponseEvent,
    ResponseTooLargeError,
    RetryPolicy,
    Timeout,
    set_testing,
)
from twelvelabs_async._deadlines import SUPPORTED
from twelvelabs_async._ratelimit import RequestGate
from twelvelabs_async._transport import Transport, parse_retry_hint, retry_delay
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio
needs_shared = pytest.mark.skipif(not SUPPORTED, reason="shared deadlines need Python 3.11+")

KEY = "tlk_SECRET_HARDENING_KEY_0123456789"
TASK = msgspec.json.encode({"_id": "abc", "status": "processing"})


def ok_response(body: bytes = TASK) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def full_traceback(error: BaseException) -> str:
    """Everything a log handler could print about ``error``: its traceback, causes, contexts,
    and the repr of every exception in the chain."""
    text = "".join(traceback.format_exception(error))
    seen: BaseException | None = error
    while seen is not None:
        text += repr(seen) + str(seen) + repr(seen.args)
        seen = seen.__cause__ or seen.__context__
    return text


# --- defect 1: malformed responses are typed, retried for GET, and key-free ---------------------

MALFORMED = {
    "header line over 8 KB": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    "bad header character": b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
    "bad header name": b"HTTP/1.1 200 OK\r\nX Bad: ab\r\nContent-Length: 2\r\n\r\n{}",
    "bad status line": b"HTTP/1.1 abc Not A Status\r\nContent-Length: 2\r\n\r\n{}",
    "conflicting framing": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_response_is_a_retried_key_free_protocol_error(case: str) -> None:
    """defect 1: a response that breaks HTTP raises APIProtocolError (an APIConnectionError,
    so an APIError), is retried for a GET, and nothing printable about it holds the key."""
    async with (
        serve_raw(lambda n: MALFORMED[case]) as server,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{server.url}/v1.3", max_retries=2) as client,
    ):
        with anyio.fail_after(10), pytest.raises(APIProtocolError) as info:
            await client.embed.v2.tasks.retrieve("abc")
    error = info.value
    assert isinstance(error, APIConnectionError)
    assert isinstance(error, APIError)
    assert error.retries == 2
    assert len(server.requests) == 3  # the first try and two retries
    assert KEY.encode() in server.requests[0]  # the key was sent...
    assert KEY not in full_traceback(error)  # ...and appears nowhere in what we raise
    assert error.__cause__ is None
    assert error.__context__ is None


async def test_malformed_response_then_a_good_one_succeeds() -> None:
    """defect 1: the retry after a malformed answer gets the task."""
    answers = [MALFORMED["bad header character"], ok_response()]
    async with (
        serve_raw(lambda n: answers[min(n, 1)]) as server,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{server.url}/v1.3") as client,
    ):
        task = await client.embed.v2.tasks.retrieve("abc")
    assert task.id == "abc"
    assert len(server.requests) == 2


async def test_malformed_responses_do_not_kill_a_wait() -> None:
    """defect 1: a poll answered by a broken proxy page is a transient error for wait(), which
    keeps polling until the task is final."""
    ready = msgspec.json.encode({"_id": "abc", "status": "ready"})
    answers = [MALFORMED["header line over 8 KB"]] * 3 + [ok_response(ready)]
    async with (
        serve_raw(lambda n: answers[min(n, 3)]) as server,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{server.url}/v1.3") as client,
    ):
        with anyio.fail_after(10):
            task = await client.embed.v2.tasks.wait("abc", poll_interval=0.01, max_retries=0)
    assert task.status == "ready"
    assert len(server.requests) == 4


async def test_malformed_response_to_a_plain_post_is_not_retried() -> None:
    """defect 1: the request may have been carried out, so a create without an idempotency
    key is not sent twice."""
    async with (
        serve_raw(lambda n: MALFORMED["bad status line"]) as server,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{server.url}/v1.3", max_retries=3) as client,
    ):
        with pytest.raises(APIProtocolError):
            await client.embed.v1.tasks.create(model_name="m", video_url="https://x/v.mp4")
    assert len(server.requests) == 1


async def test_dropped_connection_error_chain_is_key_free() -> None:
    """defect 1: a connection dropped before the answer is mapped the same key-free way."""
    async with (
        serve_raw(lambda n: None) as server,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{server.url}/v1.3", max_retries=1) as client,
    ):
        with pytest.raises(APIConnectionError) as info:
            await client.embed.v2.tasks.retrieve("abc")
    assert len(server.requests) == 2
    assert KEY not in full_traceback(info.value)
    assert info.value.__context__ is None


async def test_connection_errors_say_whether_the_request_may_have_been_sent() -> None:
    """A refused connection surely sent nothing (``request_sent`` is False: a bulk job may
    create again at once); a connection dropped after the request went out may have been
    acted on (``request_sent`` is True: it must be reconciled, never blindly re-sent)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    async with AsyncTwelveLabs(
        api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1.3", max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError) as refused:
            await client.embed.v2.tasks.retrieve("abc")
    assert refused.value.request_sent is False
    async with (
        serve_raw(lambda n: None) as server,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{server.url}/v1.3", max_retries=0) as client,
    ):
        with pytest.raises(APIConnectionError) as dropped:
            await client.embed.v2.tasks.retrieve("abc")
    assert len(server.requests) == 1
    assert dropped.value.request_sent is True


# --- defect 2: every delay is finite, >= 0 and capped, whatever the headers say ---------------

NUMBERISH = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "-1e309", "-5"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S -0000")),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    retry_after=st.none() | NUMBERISH,
    retry_after_ms=st.none() | NUMBERISH,
    reset=st.none() | NUMBERISH,
    status=st.sampled_from([429, 503]),
    attempt=st.integers(min_value=0, max_value=10**6),
    initial=st.floats(min_value=0, max_value=100),
    max_wait=st.floats(min_value=0, max_value=1000),
    max_retry_after=st.floats(min_value=0, max_value=1000),
)
def test_every_computed_delay_is_finite_non_negative_and_capped(
    retry_after: str | None,
    retry_after_ms: str | None,
    reset: str | None,
    status: int,
    attempt: int,
    initial: float,
    max_wait: float,
    max_retry_after: float,
) -> None:
    """defect 2: arbitrary Retry-After / retry-after-ms / X-Ratelimit-Reset values and any
    retry number give a finite delay in [0, policy cap]; hints themselves are finite."""
    headers = {
        name: value
        for name, value in (
            ("Retry-After", retry_after),
            ("retry-after-ms", retry_after_ms),
            ("X-Ratelimit-Reset", reset),
        )
        if value is not None
    }
    hint = parse_retry_hint(headers, status)
    assert hint is None or (math.isfinite(hint) and hint >= 0)
    policy = RetryPolicy(initial=initial, max_wait=max_wait, max_retry_after=max_retry_after)
    with set_testing(False):
        delay = policy.delay(attempt, hint)
    assert math.isfinite(delay)
    assert 0 <= delay <= policy.cap


async def test_a_nan_retry_after_still_retries_promptly() -> None:
    """defect 2: ``Retry-After: nan`` is no hint: the retry goes out after normal backoff
    (before, ``sleep(nan)`` never woke up)."""
    answers = [
        b"HTTP/1.1 503 Busy\r\nRetry-After: nan\r\nretry-after-ms: NaN\r\n"
        b"Content-Length: 0\r\n\r\n",
        ok_response(),
    ]
    policy = RetryPolicy(initial=0.01, max_wait=0.05)
    with set_testing(False):
        async with (
            serve_raw(lambda n: answers[min(n, 1)]) as server,
            AsyncTwelveLabs(
                api_key=KEY, base_url=f"{server.url}/v1.3", retry_policy=policy
            ) as client,
        ):
            with anyio.fail_after(5):
                task = await client.embed.v2.tasks.retrieve("abc")
    assert task.id == "abc"


@pytest.mark.parametrize("value", [math.nan, -1.0, -math.inf])
@pytest.mark.parametrize("field", ["connect", "read", "total", "pool"])
def test_timeout_refuses_nan_and_negative_limits(field: str, value: float) -> None:
    """defect 2: a NaN limit never fires and a negative one always: both are refused."""
    with pytest.raises(ValueError, match=field):
        Timeout(**{field: value})


def test_timeout_takes_inf_as_no_limit_and_coerce_refuses_nan() -> None:
    """defect 2: ``math.inf`` means no limit; a NaN number of seconds is refused."""
    assert Timeout(read=math.inf).read is None
    with pytest.raises(ValueError):
        Timeout.coerce(math.nan)


@pytest.mark.parametrize("field", ["initial", "max_wait", "max_retry_after"])
def test_retry_policy_refuses_nan_inf_and_negative(field: str) -> None:
    """defect 2: the policy's own numbers are finite and >= 0."""
    for value in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match=field):
            RetryPolicy(**{field: value})


# --- defect 3: closing the client keeps the limits of requests in flight ----------------------


async def test_aclose_keeps_the_read_limit_of_a_request_on_a_caller_session() -> None:
    """defect 3: a request in flight on the caller's session still ends at its read limit
    after the client is closed (before, it ran on without any limit)."""

    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response()

    async with serve_app(catch_all(stall)) as root, aiohttp.ClientSession() as session:
        client = AsyncTwelveLabs(
            api_key=KEY,
            base_url=f"{root}/v1.3",
            session=session,
            timeout=Timeout(read=0.3, total=None),
            max_retries=0,
        )
        outcome: list[BaseException] = []

        async def call() -> None:
            try:
                await client.embed.v2.tasks.retrieve("abc")
            except APITimeoutError as error:
                outcome.append(error)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.sleep(0.1)
                await client.aclose()
        assert len(outcome) == 1
        assert "read=0.3" in str(outcome[0]) or not SUPPORTED  # aiohttp words it otherwise


# --- defect 4: the caller's cancellation wins a tie with the request's own limit --------------


def block_loop_at(delay: float, seconds: float) -> None:
    """Block the event loop for ``seconds`` starting ``delay`` from now, so that every timer
    due in between fires in one and the same loop iteration afterwards."""
    asyncio.get_running_loop().call_later(delay, time.sleep, seconds)


@contextlib.asynccontextmanager
async def stalled_client(read: float) -> AsyncIterator[AsyncTwelveLabs]:
    """A client with only a ``read`` limit (no retries) against a server that never answers."""

    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response()

    async with (
        serve_app(catch_all(stall)) as root,
        AsyncTwelveLabs(
            api_key=KEY,
            base_url=f"{root}/v1.3",
            timeout=Timeout(read=read, total=None),
            max_retries=0,
        ) as client,
    ):
        yield client


@needs_shared
@pytest.mark.parametrize("ours_first", [True, False], ids=["limit-due-first", "scope-due-first"])
@pytest.mark.parametrize("mechanism", ["move_on_after", "fail_after", "asyncio_timeout"])
async def test_caller_scope_wins_when_both_expire_in_one_loop_iteration(
    mechanism: str, ours_first: bool
) -> None:
    """defect 4: thirty times over, the caller's scope and the request's read limit expire in
    the same loop iteration; every time the caller's scope catches the cancellation and no
    APITimeoutError escapes it."""
    if mechanism == "asyncio_timeout" and not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout needs Python 3.11+")

    read, scope_after = (0.03, 0.04) if ours_first else (0.04, 0.03)
    async with stalled_client(read) as client:
        for _ in range(30):
            block_loop_at(0.01, 0.06)  # both due inside the block: they fire together
            if mechanism == "move_on_after":
                with anyio.move_on_after(scope_after) as scope:
                    await client.embed.v2.tasks.retrieve("abc")
                assert scope.cancelled_caught
            elif mechanism == "fail_after":
                with pytest.raises(TimeoutError) as info:  # anyio's, not APITimeoutError
                    with anyio.fail_after(scope_after):
                        await client.embed.v2.tasks.retrieve("abc")
                assert not isinstance(info.value, APIError)
            else:
                with pytest.raises(TimeoutError) as info:
                    async with asyncio.timeout(scope_after):  # type: ignore[attr-defined]
                        await client.embed.v2.tasks.retrieve("abc")
                assert not isinstance(info.value, APIError)
        assert len(client._transport._deadlines or ()) == 0


@needs_shared
@pytest.mark.parametrize("ours_first", [True, False], ids=["limit-due-first", "cancel-due-first"])
async def test_task_cancel_wins_when_due_with_the_limit(ours_first: bool) -> None:
    """defect 4: a Task.cancel() due in the same loop iteration as the read limit always
    ends the task cancelled, never with APITimeoutError."""

    read, cancel_after = (0.03, 0.04) if ours_first else (0.04, 0.03)
    async with stalled_client(read) as client:
        loop = asyncio.get_running_loop()
        for _ in range(30):
            task = asyncio.ensure_future(client.embed.v2.tasks.retrieve("abc"))
            await asyncio.sleep(0)
            loop.call_later(cancel_after, task.cancel)
            block_loop_at(0.01, 0.06)
            done, _ = await asyncio.wait([task], timeout=5)
            assert done, "the call hung"
            assert task.cancelled(), task.exception()


# --- defect 5: requests_per_minute is a ceiling at the wire -----------------------------------


async def test_rate_gate_spaces_requests_as_they_arrive_at_the_server() -> None:
    """defect 5: with one connection busy for a while, requests that wait for it must not
    leave back to back once it frees up: the server sees them spaced by the rate."""
    arrivals: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            await asyncio.sleep(0.5)  # hold the only connection
        return web.json_response({"_id": "abc", "status": "processing"})

    gate = RequestGate(requests_per_minute=600)  # one request per 0.1 s
    options = RequestOptions(gate=gate)
    async with (
        serve_app(catch_all(handler)) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3", max_connections=1) as client,
    ):
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(client.embed.v2.tasks.check, "abc", options)
    assert len(arrivals) == 6
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.05, gaps  # 0.1 s apart (before: ~0), less jitter on a loaded machine


# --- defect 6: per-call timeouts are not cached forever ---------------------------------------


async def test_per_call_timeouts_do_not_grow_a_cache(fake: FakeTwelveLabs) -> None:
    """defect 6: a timeout computed per call (from a remaining budget) leaves nothing behind."""
    task_id = fake.add_task("embed_v2")
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        for i in range(300):
            await client.embed.v2.tasks.retrieve(task_id, timeout=10.0 + i / 1000)
        assert len(client._transport._client_timeouts) <= 32


# --- defect 7: a stream that cannot be rewound is never re-sent empty ---------------------------


class OneShot(io.RawIOBase):
    """A readable, non-seekable stream (a pipe, a socket, a generator's bytes)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def upload_server(first_status: int) -> tuple[web.Application, list[int]]:
    sizes: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        sizes.append(len(await request.read()))
        if len(sizes) == 1:
            return web.json_response(
                {"code": "too_many_requests", "message": "slow down"},
                status=first_status,
                headers={"Retry-After": "0"},
            )
        return web.json_response({"_id": "created"})

    return catch_all(handler), sizes


async def test_non_seekable_upload_is_not_resent_after_429() -> None:
    """defect 7: the 429 is raised instead of a retry that would send an empty file and
    "succeed"."""
    video = b"\x01" * 200_000
    app, sizes = upload_server(429)
    async with (
        serve_app(app) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3") as client,
    ):
        with pytest.raises(RateLimitError):
            await client.embed.v1.tasks.create(
                model_name="m", video_file=io.BufferedReader(OneShot(video))
            )
    assert len(sizes) == 1
    assert sizes[0] > len(video)


async def test_seekable_upload_is_resent_whole_after_429() -> None:
    """defect 7: a seekable stream is rewound, and the retry carries the whole file."""
    video = b"\x02" * 200_000
    app, sizes = upload_server(429)
    async with (
        serve_app(app) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3") as client,
    ):
        created = await client.embed.v1.tasks.create(model_name="m", video_file=io.BytesIO(video))
    assert created.id == "created"
    assert len(sizes) == 2
    assert sizes[0] == sizes[1] > len(video)


# --- defect 8: a DELETE whose answer was lost ---------------------------------------------------


async def test_delete_whose_answer_was_lost_then_404_succeeds() -> None:
    """defect 8: the first DELETE is carried out but its answer never comes (a timeout); the
    retry's 404 means the task is gone, which is what was asked: success."""
    deleted: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        if deleted:
            return web.json_response(
                {"code": "resource_not_exist", "message": "no such task"}, status=404
            )
        deleted.append(request.path)
        await asyncio.sleep(2)  # the answer is lost: the client times out first
        return web.Response(status=204)

    async with (
        serve_app(catch_all(handler)) as root,
        AsyncTwelveLabs(
            api_key=KEY, base_url=f"{root}/v1.3", timeout=Timeout(read=0.2, total=None)
        ) as client,
    ):
        with anyio.fail_after(5):
            assert await client.analyze.tasks.delete("abc") is None
    assert deleted == ["/v1.3/analyze/tasks/abc"]


async def test_delete_of_a_missing_task_still_raises_404(fake: FakeTwelveLabs) -> None:
    """defect 8: without an earlier lost answer, a 404 is the truth: NotFoundError."""
    from twelvelabs_async import NotFoundError

    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        with pytest.raises(NotFoundError):
            await client.analyze.tasks.delete("6b0a93b4912265b1f5d82c08")


# --- defect 9: elapsed is the real time of failed attempts -------------------------------------


async def test_failed_attempts_report_their_real_elapsed_time() -> None:
    """defect 9: a timeout after 0.2 s and a connection dropped after 0.2 s report about 0.2 s,
    both to the client hooks and to the request's own observer."""

    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response()

    seen: list[ResponseEvent] = []
    observed: list[ResponseEvent] = []
    options = RequestOptions(max_retries=0, observer=observed.append)
    async with (
        serve_app(catch_all(stall)) as root,
        AsyncTwelveLabs(
            api_key=KEY, base_url=f"{root}/v1.3", timeout=Timeout(read=0.2, total=None)
        ) as client,
    ):
        client.hooks.on_response.append(seen.append)
        with pytest.raises(APITimeoutError):
            await client.embed.v2.tasks.check("abc", options)

    async with (
        serve_raw(lambda n: None, delay=0.2) as server,  # thinks for 0.2 s, then hangs up
        AsyncTwelveLabs(api_key=KEY, base_url=f"{server.url}/v1.3") as client,
    ):
        client.hooks.on_response.append(seen.append)
        with pytest.raises(APIConnectionError):
            await client.embed.v2.tasks.check("abc", options)
    assert [type(e.error) for e in seen] == [APITimeoutError, APIConnectionError]
    assert observed == seen
    for event in seen:
        assert event.status is None
        assert 0.15 <= event.elapsed < 5, event


async def test_a_pool_timeout_is_reported_to_the_observer_too() -> None:
    """defect 9: a request that never got a connection (pool limit) is an attempt that timed
    out: the observer and the hooks see it, with the time it waited."""

    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response()

    observed: list[ResponseEvent] = []
    async with (
        serve_app(catch_all(stall)) as root,
        AsyncTwelveLabs(
            api_key=KEY, base_url=f"{root}/v1.3", max_connections=1, max_retries=0
        ) as client,
    ):
        with anyio.move_on_after(1):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.embed.v2.tasks.retrieve, "holder")
                await anyio.sleep(0.05)
                options = RequestOptions(timeout=Timeout(pool=0.1), observer=observed.append)
                with pytest.raises(APITimeoutError, match="free connection"):
                    await client.embed.v2.tasks.check("abc", options)
                tg.cancel_scope.cancel()
    assert len(observed) == 1
    assert isinstance(observed[0].error, APITimeoutError)
    assert 0.08 <= observed[0].elapsed < 1


async def test_observer_sees_every_attempt_of_its_request_only(fake: FakeTwelveLabs) -> None:
    """The per-request observer gets each attempt (a 503, then the 200) of its own request,
    and nothing of other requests."""
    task_id = fake.add_task("embed_v2")
    fake.faults.push(f"GET /v1.3/embed-v2/tasks/{task_id}", status=503)
    observed: list[ResponseEvent] = []
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        await client.embed.v2.tasks.check(task_id, RequestOptions(observer=observed.append))
        await client.embed.v2.tasks.retrieve(task_id)
    assert [(e.status, e.attempt) for e in observed] == [(503, 0), (200, 1)]
    assert isinstance(observed[0].error, InternalServerError)
    assert observed[1].error is None


# --- defect 10: final 5xx statuses, and no overflow ---------------------------------------------


@pytest.mark.parametrize("status", [501, 505])
async def test_not_implemented_and_bad_version_are_not_retried(status: int) -> None:
    """defect 10: 501 and 505 say the request can never work: raised at once."""
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response({"message": "no"}, status=status)

    async with (
        serve_app(catch_all(handler)) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3", max_retries=3) as client,
    ):
        with pytest.raises(APIStatusError) as info:
            await client.embed.v2.tasks.retrieve("abc")
    assert info.value.status_code == status
    assert len(calls) == 1


def test_retry_policy_delay_never_overflows() -> None:
    """defect 10: the backoff for retry number 10**6 is the cap, not an OverflowError."""
    policy = RetryPolicy(initial=0.5, max_wait=30.0)
    with set_testing(False):
        for attempt in (1023, 1024, 1025, 10**6, 10**18):
            assert 0 <= policy.delay(attempt, None) <= 30.0


# --- defect 11: request_options are honoured or refused, never dropped -------------------------


def recording_server() -> tuple[web.Application, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "headers": request.headers.copy(),  # case-insensitive
                "raw_headers": list(request.headers.items()),
                "query": list(request.query.items()),
                "body": body,
                "content_type": request.content_type,
            }
        )
        if request.method == "POST" and request.path.endswith("/analyze/tasks"):
            return web.json_response({"task_id": "t1", "status": "queued"})
        if request.method == "POST":
            return web.json_response({"_id": "t1"})
        return web.json_response({"_id": "abc", "status": "processing"})

    return catch_all(handler), seen


async def test_additional_headers_and_query_parameters_reach_the_server() -> None:
    """defect 11: the official SDK's additional_headers / additional_query_parameters are
    sent (an Idempotency-Key among them wins over the generated one)."""
    app, seen = recording_server()
    async with (
        serve_app(app) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3") as client,
    ):
        await client.embed.v2.tasks.retrieve(
            "abc",
            request_options={
                "additional_headers": {"X-Trace": "t-1"},
                "additional_query_parameters": {"flag": True, "tag": ["a", "b"]},
            },
        )
        await client.analyze.tasks.create(
            video={"type": "url", "url": "https://x/v.mp4"},
            prompt="p",
            request_options={"additional_headers": {"idempotency-key": "mine", "accept": "*/*"}},
        )
    assert seen[0]["headers"]["X-Trace"] == "t-1"
    assert seen[0]["headers"]["x-api-key"] == KEY
    assert seen[0]["query"] == [("flag", "true"), ("tag", "a"), ("tag", "b")]
    assert seen[1]["headers"]["Idempotency-Key"] == "mine"
    assert seen[1]["headers"]["Accept"] == "*/*"
    assert len(seen[1]["raw_headers"]) == len({k.lower() for k, _ in seen[1]["raw_headers"]})


async def test_additional_body_parameters_are_merged_into_json_and_form_bodies() -> None:
    """defect 11: additional_body_parameters join the JSON body of a create, and the form
    fields of a multipart create."""
    app, seen = recording_server()
    async with (
        serve_app(app) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3") as client,
    ):
        await client.analyze.tasks.create(
            video={"type": "url", "url": "https://x/v.mp4"},
            prompt="p",
            request_options={"additional_body_parameters": {"beta_field": {"x": 1}}},
        )
        await client.embed.v1.tasks.create(
            model_name="m",
            video_url="https://x/v.mp4",
            request_options={"additional_body_parameters": {"beta_field": "on"}},
        )
    body = msgspec.json.decode(seen[0]["body"])
    assert body["beta_field"] == {"x": 1}
    assert body["prompt"] == "p"
    assert seen[1]["content_type"] == "multipart/form-data"
    assert b'name="beta_field"' in seen[1]["body"]
    assert b"\r\non\r\n" in seen[1]["body"]


@pytest.mark.parametrize(
    "request_options",
    [
        {"additional_headers": {"X-API-Key": "other"}},
        {"additional_headers": {"Content-Length": "3"}},
        {"additional_headers": {"Transfer-Encoding": "chunked"}},
        {"additional_headers": {"host": "evil.example"}},
        {"additional_headers": {"content-type": "text/plain"}},
        {"additional_headers": {"X-Split": "a\r\nx-api-key: b"}},
        {"additional_body_parameters": {"x": 1}},  # a GET has no body
        {"timeout_in_second": 3},  # a typo
        {"retries": 3},
    ],
)
async def test_protected_or_unknown_request_options_are_refused(
    request_options: dict[str, Any],
) -> None:
    """defect 11: the key and the framing headers cannot be overridden, and an unknown key
    raises instead of being ignored; nothing is sent."""
    app, seen = recording_server()
    async with (
        serve_app(app) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3") as client,
    ):
        with pytest.raises(ValueError) as info:
            await client.embed.v2.tasks.retrieve("abc", request_options=request_options)
    assert seen == []
    assert KEY not in str(info.value)


# --- defect 12: proxies from the environment -----------------------------------------------------


def proxy_app() -> tuple[web.Application, list[str]]:
    """A forward proxy stand-in: records the absolute URL asked for and answers itself."""
    asked: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        asked.append(f"{request.method} {request.host}{request.path}")
        if "Proxy-Authorization" in request.headers:
            asked.append(request.headers["Proxy-Authorization"])
        return web.json_response({"_id": "via-proxy", "status": "processing"})

    return catch_all(handler), asked


async def test_http_proxy_from_the_environment_is_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """defect 12: with HTTP_PROXY set, requests go through it, like the official SDK's."""
    app, asked = proxy_app()
    async with serve_app(app) as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("http_proxy", proxy)
        async with AsyncTwelveLabs(
            api_key=KEY,
            base_url="http://api.twelvelabs.invalid/v1.3",
            allow_insecure_http=True,
            max_retries=0,
        ) as client:
            with anyio.fail_after(10):
                task = await client.embed.v2.tasks.retrieve("abc")
    assert task.id == "via-proxy"
    assert asked == ["GET api.twelvelabs.invalid/v1.3/embed-v2/tasks/abc"]


async def test_proxy_credentials_and_an_explicit_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """defect 12: credentials in the proxy URL become Proxy-Authorization; ``proxy=`` wins over
    the environment, also with a session the caller owns."""
    app, asked = proxy_app()
    async with serve_app(app) as proxy:
        with_user = proxy.replace("http://", "http://user:pa%24s@")
        monkeypatch.setenv("HTTP_PROXY", with_user)
        monkeypatch.setenv("http_proxy", with_user)
        async with AsyncTwelveLabs(
            api_key=KEY, base_url="http://api.twelvelabs.invalid/v1.3", allow_insecure_http=True
        ) as client:
            await client.embed.v2.tasks.retrieve("abc")
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
        async with (
            aiohttp.ClientSession() as session,
            AsyncTwelveLabs(
                api_key=KEY,
                base_url="http://api.twelvelabs.invalid/v1.3",
                allow_insecure_http=True,
                session=session,
                proxy=proxy,
            ) as client,
        ):
            await client.embed.v2.tasks.retrieve("def")
    assert asked == [
        "GET api.twelvelabs.invalid/v1.3/embed-v2/tasks/abc",
        "Basic dXNlcjpwYSRz",  # user:pa$s
        "GET api.twelvelabs.invalid/v1.3/embed-v2/tasks/def",
    ]


@pytest.mark.parametrize("opt_out", ["trust_env", "no_proxy"])
async def test_proxy_opt_outs(monkeypatch: pytest.MonkeyPatch, opt_out: str) -> None:
    """defect 12: ``trust_env=False`` or a matching NO_PROXY sends requests directly."""
    app, asked = proxy_app()
    async with serve_app(app) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("http_proxy", proxy)
        if opt_out == "no_proxy":
            monkeypatch.setenv("NO_PROXY", "api.twelvelabs.invalid")
            monkeypatch.setenv("no_proxy", "api.twelvelabs.invalid")
        async with AsyncTwelveLabs(
            api_key=KEY,
            base_url="http://api.twelvelabs.invalid/v1.3",
            allow_insecure_http=True,
            max_retries=0,
            trust_env=opt_out != "trust_env",
        ) as client:
            with anyio.fail_after(20), pytest.raises(APIConnectionError):
                await client.embed.v2.tasks.retrieve("abc")  # no such host, directly
    assert asked == []


async def test_loopback_is_never_proxied(
    monkeypatch: pytest.MonkeyPatch, fake: FakeTwelveLabs
) -> None:
    """defect 12: a loopback base URL (tests, the fake server) is reached directly even with
    a proxy in the environment."""
    app, asked = proxy_app()
    async with serve_app(app) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("http_proxy", proxy)
        task_id = fake.add_task("embed_v2")
        async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
            assert (await client.embed.v2.tasks.retrieve(task_id)).id == task_id
    assert asked == []


# --- defect 13: a list endpoint that ignores `page` ------------------------------------------


@pytest.mark.parametrize("names_page", [True, False], ids=["says-page-1", "says-nothing"])
async def test_list_stops_when_the_server_ignores_page(names_page: bool) -> None:
    """defect 13: the server answers page 1 whatever is asked: list() raises PaginationError
    after two requests instead of fetching forever."""
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.query.get("page", ""))
        info = {"limit_per_page": 2, "page": 1} if names_page else {"limit_per_page": 2}
        items = [{"_id": "a", "status": "ready"}, {"_id": "b", "status": "ready"}]
        return web.json_response({"data": items, "page_info": info})

    async with (
        serve_app(catch_all(handler)) as root,
        AsyncTwelveLabs(api_key=KEY, base_url=f"{root}/v1.3") as client,
    ):
        with anyio.fail_after(5), pytest.raises(PaginationError) as info:
            [task async for task in client.embed.v2.tasks.list(page_limit=2)]
    assert info.value.page == 2
    assert info.value.path == "/embed-v2/tasks"
    assert calls[:2] == ["1", "2"]
    assert len(calls) <= 3  # the walk stops (one prefetch at most)


# --- also checked: *.localhost, -0000 dates, trickled error bodies ----------------------------


@pytest.mark.parametrize("host", ["api.localhost", "localhost.evil.example", "evil.localhost."])
def test_names_under_localhost_are_not_trusted_with_the_key_over_http(host: str) -> None:
    """*.localhost is resolved by DNS on most systems: not loopback for the plain-http check."""
    with pytest.raises(ValueError, match="plain http"):
        AsyncTwelveLabs(api_key=KEY, base_url=f"http://{host}/v1.3")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "[::1]", "127.8.9.10"])
def test_loopback_hosts_are_allowed_over_http(host: str) -> None:
    """The name localhost and loopback addresses stay allowed."""
    AsyncTwelveLabs(api_key=KEY, base_url=f"http://{host}:8080/v1.3")


def test_http_date_with_minus_zero_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``-0000`` HTTP date is UTC (zone unknown), not the machine's local time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        target = time.time() + 60
        value = time.strftime("%a, %d %b %Y %H:%M:%S -0000", time.gmtime(target))
        hint = parse_retry_hint({"Retry-After": value}, 503)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert hint is not None
    assert 55 <= hint <= 61


async def test_slowly_trickled_error_body_reports_its_status() -> None:
    """An error status whose body trickles past the read limit is reported as that status
    (with what arrived), not as a timeout."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=503, headers={"Content-Type": "application/json"})
        response.content_length = 4000
        await response.prepare(request)
        await response.write(b'{"message": "down for maintenance"')
        await asyncio.sleep(30)
        return response

    async with (
        serve_app(catch_all(handler)) as root,
        AsyncTwelveLabs(
            api_key=KEY,
            base_url=f"{root}/v1.3",
            timeout=Timeout(read=0.2, total=None),
            max_retries=0,
        ) as client,
    ):
        with anyio.fail_after(5), pytest.raises(InternalServerError) as info:
            await client.embed.v2.tasks.retrieve("abc")
    assert info.value.status_code == 503


def test_set_testing_restores_the_previous_mode() -> None:
    """``with set_testing(...)`` cannot leak out of a test."""
    from twelvelabs_async import is_testing

    before = is_testing()
    with set_testing(not before):
        assert is_testing() is (not before)
    assert is_testing() is before


# --- the retry decision on its own ------------------------------------------------------------


def status_error(status: int, headers: dict[str, str] | None = None) -> APIStatusError:
    from twelvelabs_async._exceptions import status_error_class

    return status_error_class(status)("x", status_code=status, headers=headers or {})


DECISIONS: list[tuple[str, str, Callable[[], APIError], bool, bool]] = [
    # (case, method, error, sent, retried)
    ("GET 503", "GET", lambda: status_error(503), True, True),
    ("GET 429", "GET", lambda: status_error(429), True, True),
    ("GET 408", "GET", lambda: status_error(408), True, True),
    ("GET 404", "GET", lambda: status_error(404), True, False),
    ("GET 501", "GET", lambda: status_error(501), True, False),
    ("GET 505", "GET", lambda: status_error(505), True, False),
    ("GET dropped", "GET", lambda: APIConnectionError("x"), True, True),
    ("GET malformed", "GET", lambda: APIProtocolError("x"), True, True),
    ("GET too large", "GET", lambda: ResponseTooLargeError("x", status_code=200), True, False),
    ("POST 503", "POST", lambda: status_error(503), True, False),
    ("POST 429", "POST", lambda: status_error(429), True, True),
    ("POST refused", "POST", lambda: APIConnectionError("x"), False, True),
    ("POST dropped", "POST", lambda: APIConnectionError("x"), True, False),
    ("POST timeout", "POST", lambda: APITimeoutError("x"), True, False),
]


def prepared(method: str, **kwargs: Any) -> Any:
    transport = Transport(api_key=KEY, base_url="http://127.0.0.1:9/v1.3", timeout=Timeout())
    args = {"params": None, "json": None, "form": None, "headers": None, "key": None} | kwargs
    return transport._prepare(
        method,
        "/x",
        args["params"],
        args["json"],
        args["form"],
        args["headers"],
        RequestOptions(max_retries=args.get("max_retries", 3)),
        args["key"],
    )


@pytest.mark.parametrize(("case", "method", "error", "sent", "retried"), DECISIONS)
def test_retry_decision_is_a_pure_function_of_the_call_and_the_error(
    case: str, method: str, error: Callable[[], APIError], sent: bool, retried: bool
) -> None:
    """retry_delay returns a delay or raises the very error it was given, touching nothing."""
    call = prepared(method)
    call.sent = sent
    failure = error()
    with set_testing(False):
        if retried:
            assert 0 <= retry_delay(call, failure, RetryPolicy()) <= RetryPolicy().cap
        else:
            with pytest.raises(type(failure)) as info:
                retry_delay(call, failure, RetryPolicy())
            assert info.value is failure
    assert call.attempt == 0


def test_retry_decision_respects_retries_left_keys_and_one_shot_bodies() -> None:
    """No retries left: raise; a keyed POST is idempotent; a non-seekable body is not re-sent
    once it may have been read, even after a 429."""
    call = prepared("GET", max_retries=2)
    call.attempt = 2
    with pytest.raises(InternalServerError):
        retry_delay(call, status_error(503), RetryPolicy())
    keyed = prepared("POST", key="k1")
    keyed.sent = True
    assert retry_delay(keyed, status_error(503), RetryPolicy()) >= 0
    stream = io.BufferedReader(OneShot(b"x"))
    one_shot = prepared("POST", form=[("video_file", stream)])
    one_shot.sent = True
    with pytest.raises(RateLimitError):
        retry_delay(one_shot, status_error(429), RetryPolicy())
    one_shot.sent = False  # refused before anything was read: safe
    assert retry_delay(one_shot, APIConnectionError("x"), RetryPolicy()) >= 0


def test_retry_decision_obeys_a_server_hint_within_the_cap() -> None:
    """A 429's Retry-After is the wait, shortened to max_retry_after."""
    call = prepared("GET")
    policy = RetryPolicy(max_retry_after=5)
    with set_testing(False):
        assert retry_delay(call, status_error(429, {"Retry-After": "2"}), policy) == 2
        assert retry_delay(call, status_error(429, {"Retry-After": "1e9"}), policy) == 5


# --- Limits: pool and size knobs passed whole -------------------------------------------------


async def test_limits_object_caps_the_pool_and_the_body_size() -> None:
    """``Limits`` is passed whole; the old keyword arguments still work and win over it."""
    in_flight = peak = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.json_response({"_id": "abc", "status": "processing", "pad": "x" * 300})

    async with serve_app(catch_all(handler)) as root:
        async with (
            AsyncTwelveLabs(
                api_key=KEY, base_url=f"{root}/v1.3", limits=Limits(max_connections=2)
            ) as client,
            anyio.create_task_group() as tg,
        ):
            for _ in range(6):
                tg.start_soon(client.embed.v2.tasks.retrieve, "abc")
        assert peak == 2
        async with AsyncTwelveLabs(
            api_key=KEY,
            base_url=f"{root}/v1.3",
            limits=Limits(max_response_size=10_000),
            max_response_size=100,  # the shorthand wins
        ) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.embed.v2.tasks.retrieve("abc")


def test_limits_refuse_nonsense() -> None:
    """A pool of no connections, a negative size or a NaN keep-alive are refused."""
    for bad in (
        {"max_connections": 0},
        {"max_response_size": -1},
        {"keepalive_expiry": math.nan},
    ):
        with pytest.raises(ValueError):
            Limits(**bad)
