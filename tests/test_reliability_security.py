"""Key safety: the API key never shows, never travels in clear to a remote host, never follows
a redirect; webhook signatures are compared in constant time.

A distinctive key is used everywhere and every place a key could surface is scanned: reprs and
strings of every public object, log records at every level (ours, ``backoff``'s, aiohttp's, the
fake server's), exception text and formatted tracebacks (with their whole ``__cause__`` chain),
captured stdout/stderr, warnings and the fake server's request log.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import logging
import socket
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.helpers import catch_all, serve_app
from twelvelabs_async import (
    APIStatusError,
    AsyncTwelveLabs,
    Timeout,
    TwelveLabsError,
)
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

KEY = "tlk_RELIABILITY-7Zq9-do-not-print-c0ffee42"
"""A key distinctive enough that any occurrence in captured text is a leak."""
V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"
AN_TASK = "GET /v1.3/analyze/tasks/{task_id}"
FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05}


def exception_texts(error: BaseException) -> list[str]:
    """Everything a user might print or log about an error, its causes and contexts included."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        with contextlib.suppress(TypeError):
            texts.append(repr(vars(current)))
        if isinstance(current, APIStatusError):
            texts += [repr(dict(current.headers)), repr(current.body)]
        stack += [current.__cause__, current.__context__]
    return texts


def assert_no_key(texts: list[str], where: str) -> None:
    for text in texts:
        assert KEY not in text, f"the API key leaked into {where}: {text[:300]!r}"


@contextlib.asynccontextmanager
async def tiny_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    async with serve_app(catch_all(handler)) as root:
        yield root


# --- the key never shows -------------------------------------------------------------------------


async def test_key_not_in_any_repr_or_str() -> None:
    client = AsyncTwelveLabs(api_key=KEY, base_url="https://api.example.com/v1.3")
    poller = client.poller()
    objects: list[Any] = [
        client,
        client._transport,
        client.embed,
        client.embed.v2,
        client.embed.v1,
        client.analyze,
        client.hooks,
        poller,
        poller.stats,
    ]
    for tasks in (client.embed.v2.tasks, client.embed.v1.tasks, client.analyze.tasks):
        objects += [tasks, tasks.list()]
    assert_no_key([repr(o) for o in objects] + [str(o) for o in objects], "a repr")
    await client.aclose()
    assert_no_key([repr(client), str(client)], "a closed client's repr")


async def test_key_never_in_logs_errors_tracebacks_output_or_server_log(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # the root: ours, backoff's, aiohttp's, the fake's
    for name in ("twelvelabs_async", "backoff", "aiohttp", "twelvelabs_async.testing"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    errors: list[BaseException] = []

    async def expect_error(call: Awaitable[Any]) -> None:
        try:
            await call
        except (TwelveLabsError, ValueError) as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected an error")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with FakeTwelveLabs(api_key=KEY) as fake:
            ok = fake.add_task("embed_v2", status="ready")
            slow = fake.add_task("analyze", finish_after_polls=3)
            async with AsyncTwelveLabs(
                api_key=KEY, base_url=fake.base_url, max_response_size=4096
            ) as client:
                # Successful traffic, at DEBUG: creates, lists, polls, retries.
                await client.embed.v2.tasks.create(
                    input_type="video", model_name="m", video={"media_source": {"url": "u"}}
                )
                await client.embed.v1.tasks.create(model_name="m", video_url="https://x/v.mp4")
                await client.analyze.tasks.create(video={"type": "url", "url": "https://x/v"})
                await client.embed.v2.tasks.list().to_list()
                fake.faults.push(AN_TASK, times=2, status=503)
                fake.faults.push(AN_TASK, status=429, headers={"Retry-After": "0"})
                fake.faults.push(AN_TASK, drop=True)
                fake.faults.push(AN_TASK, truncate=True)
                fake.faults.push(AN_TASK, not_json=True)
                results = await client.wait_all(analyze=[slow], **FAST)
                assert results[slow].status == "ready"
                # Every kind of failure.
                for fault, kw in [
                    ({"status": 503, "times": 3}, {"max_retries": 2}),
                    ({"drop": True, "times": 2}, {"max_retries": 1}),
                    ({"delay": 0.3}, {"max_retries": 0, "timeout": 0.05}),
                    ({"not_json": True}, {}),
                    ({"truncate": True, "times": 2}, {"max_retries": 1}),
                    ({"status": 200, "body": b"x" * 10_000}, {}),
                    ({"status": 302, "headers": {"Location": "https://elsewhere/"}}, {}),
                ]:
                    fake.faults.push(V2_TASK, **fault)
                    await expect_error(client.embed.v2.tasks.retrieve(ok, **kw))
                await expect_error(client.embed.v2.tasks.retrieve("missing"))
                await expect_error(client.embed.v2.tasks.wait("missing", **FAST))
                await expect_error(client.analyze.tasks.cancel("missing"))
                await expect_error(client.embed.v2.tasks.retrieve(""))
                fake.faults.push("*", times=100, status=401)
                with pytest.raises(TwelveLabsError) as refused:
                    await client.wait_all(analyze=[slow], **FAST)
                errors.append(refused.value)
            log = fake.request_log
            assert any(r.status == 200 for r in log)
        # A key the server refuses, a port nobody listens on, a closed client.
        async with FakeTwelveLabs(api_key="another-key") as strict:
            async with AsyncTwelveLabs(api_key=KEY, base_url=strict.base_url) as wrong:
                await expect_error(wrong.embed.v2.tasks.retrieve("abc"))
            strict_log = strict.request_log
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        async with AsyncTwelveLabs(
            api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1.3", timeout=Timeout(connect=1)
        ) as dead:
            await expect_error(dead.embed.v2.tasks.retrieve("abc", max_retries=1))
        await expect_error(dead.embed.v2.tasks.retrieve("abc"))
        gc.collect()

    kinds = {type(e).__name__ for e in errors}
    assert {
        "InternalServerError",
        "APIConnectionError",
        "APITimeoutError",
        "ResponseDecodeError",
        "ResponseTooLargeError",
        "APIStatusError",
        "NotFoundError",
        "AuthenticationError",
        "ClientClosedError",
    } <= kinds, kinds
    for error in errors:
        assert_no_key(exception_texts(error), f"a {type(error).__name__}")
    records = caplog.records
    assert any(r.levelno == logging.DEBUG for r in records)
    assert any(r.levelno == logging.WARNING for r in records)  # retries were logged
    formatter = logging.Formatter()
    assert_no_key([formatter.format(r) for r in records], "a log record")
    assert_no_key([caplog.text], "the captured log")
    out = capsys.readouterr()
    assert_no_key([out.out, out.err], "stdout/stderr")
    assert_no_key([str(w.message) for w in caught], "a warning")
    assert_no_key([repr(r) for r in [*log, *strict_log]], "the fake server's request log")


# --- never in clear to a remote host -------------------------------------------------------------

REMOTE_HTTP = [
    "http://api.twelvelabs.io/v1.3",
    "http://10.0.0.5/v1.3",
    "http://192.168.1.10:8080/v1.3",
    "http://[2001:db8::1]/v1.3",
    "http://127.0.0.1.nip.io/v1.3",
    "http://localhost@evil.example.com/v1.3",
    "http://0.0.0.0/v1.3",
]
LOOPBACK_HTTP = [
    "http://127.0.0.1:8000/v1.3",
    "http://127.8.9.10/v1.3",
    "http://localhost:8000/v1.3",
    "http://[::1]:8000/v1.3",
]


@pytest.mark.parametrize("url", REMOTE_HTTP)
def test_plain_http_to_a_remote_host_needs_an_explicit_opt_in(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http") as info:
        AsyncTwelveLabs(api_key=KEY, base_url=url)
    assert_no_key(exception_texts(info.value), "the refusal")
    monkeypatch.setenv("TWELVELABS_BASE_URL", url)
    with pytest.raises(ValueError, match="allow_insecure_http"):
        AsyncTwelveLabs(api_key=KEY)
    client = AsyncTwelveLabs(api_key=KEY, base_url=url, allow_insecure_http=True)
    assert client.base_url.startswith("http://")


@pytest.mark.parametrize("url", [*LOOPBACK_HTTP, "https://api.twelvelabs.io/v1.3"])
def test_loopback_http_and_https_need_no_opt_in(url: str) -> None:
    assert AsyncTwelveLabs(api_key=KEY, base_url=url).base_url == url


# --- never forwarded on a redirect ----------------------------------------------------------------


@dataclass
class Seen:
    requests: list[tuple[str, str, CIMultiDict[str]]] = field(default_factory=list)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("where", ["other-origin", "same-origin"])
async def test_redirects_are_not_followed_and_the_key_stays_home(status: int, where: str) -> None:
    origin, elsewhere = Seen(), Seen()

    async def record_elsewhere(request: web.Request) -> web.StreamResponse:
        elsewhere.requests.append((request.method, request.raw_path, CIMultiDict(request.headers)))
        return web.json_response({"_id": "stolen", "status": "ready"})

    async with tiny_server(record_elsewhere) as other:

        async def redirect(request: web.Request) -> web.StreamResponse:
            origin.requests.append((request.method, request.raw_path, CIMultiDict(request.headers)))
            if request.path.startswith("/landing"):
                return web.json_response({"_id": "landed", "status": "ready"})
            target = f"{other}/v1.3/embed-v2/tasks/abc" if where == "other-origin" else "/landing"
            return web.Response(status=status, headers={"Location": target})

        async with (
            tiny_server(redirect) as home,
            AsyncTwelveLabs(api_key=KEY, base_url=f"{home}/v1.3") as client,
        ):
            calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: client.embed.v2.tasks.retrieve("abc"),
                lambda: client.embed.v2.tasks.list().to_list(),
                lambda: client.analyze.tasks.create(video={"type": "url", "url": "https://v"}),
            ]
            for call in calls:
                with pytest.raises(APIStatusError) as info, anyio.fail_after(5):
                    await call()
                error = info.value
                assert error.status_code == status
                assert "redirect not followed" in str(error)
                assert_no_key(exception_texts(error), "a redirect error")
    assert elsewhere.requests == [], "the client followed a redirect to another origin"
    assert [path for _, path, _ in origin.requests if path.startswith("/landing")] == []
    assert len(origin.requests) == 3  # one each: a 3xx is never retried
    assert all(headers.get("x-api-key") == KEY for _, _, headers in origin.requests)


# --- webhook signatures: constant-time comparison -------------------------------------------------


def test_webhook_signatures_compare_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    webhooks = pytest.importorskip("twelvelabs_async.webhooks")
    source = inspect.getsource(webhooks)
    assert "hmac.compare_digest" in source or "compare_digest(" in source
    hmac = importlib.import_module("hmac")
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    secret, body = "whsec-test", b'{"id": "evt_1", "type": "analyze.task.ready", "data": {}}'
    header = webhooks.sign(body, secret)
    assert webhooks.verify_signature(body, header, secret, tolerance=None) > 0
    assert calls, "verification did not go through hmac.compare_digest"
    calls.clear()
    forged = header.rsplit("=", 1)[0] + "=" + "0" * 64
    with pytest.raises(webhooks.WebhookSignatureError) as info:
        webhooks.verify_signature(body, forged, secret, tolerance=None)
    assert calls, "a wrong signature must also be compared in constant time"
    expected = header.rsplit("=", 1)[1]
    assert expected not in str(info.value), "the error reveals the expected signature"
    assert secret not in str(info.value)
