"""Webhooks: signatures, events, de-duplication, the receiver, and the fake's deliveries."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

import twelvelabs_async
from twelvelabs_async import AsyncTwelveLabs, TaskKind, WebhookError
from twelvelabs_async.testing import FakeTwelveLabs
from twelvelabs_async.webhooks import (
    SIGNATURE_HEADER,
    AnalyzeTaskEvent,
    IndexTaskEvent,
    UnknownWebhookEvent,
    WebhookDeduplicator,
    WebhookPayloadError,
    WebhookReceiver,
    WebhookSignatureError,
    WebhookTimestampError,
    compute_signature,
    construct_event,
    parse_event,
    sign,
    verify_signature,
)

SECRET = "whsec_0123456789abcdef"
NOW = 1_700_000_000


def event_body(
    event_type: str = "analyze.task.ready", event_id: str = "evt_1", **data: Any
) -> bytes:
    payload = {"id": "task_1", "custom_id": None, "status": "ready", **data}
    return msgspec.json.encode(
        {"id": event_id, "created_at": "2026-01-02T03:04:05Z", "type": event_type, "data": payload}
    )


# --- signatures -----------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_raw_body() -> None:
    body = b'{"id":"evt_1"}'
    expected = hmac.new(SECRET.encode(), b"1659342128." + body, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1659342128, body) == expected
    assert sign(body, SECRET, timestamp=1659342128) == f"t=1659342128,v1={expected}"
    assert verify_signature(body, f"t=1659342128,v1={expected}", SECRET, now=1659342128) == (
        1659342128
    )


@given(body=st.binary(max_size=300), secret=st.text(min_size=1, max_size=40))
def test_signed_bodies_verify_and_any_change_is_rejected(body: bytes, secret: str) -> None:
    header = sign(body, secret, timestamp=NOW)
    assert verify_signature(body, header, secret, now=NOW) == NOW
    with pytest.raises(WebhookSignatureError):
        verify_signature(body + b" ", header, secret, now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify_signature(body, header, secret + "x", now=NOW)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "no valid 't="),
        ("t=abc,v1=00", "no valid 't="),
        ("t=-5,v1=00", "no valid 't="),
        (f"t={NOW}", "no 'v1="),
        (f"t={NOW},v0=00", "no 'v1="),
        (f"t={NOW},v1=deadbeef", "does not match"),
        (f"t={NOW},v1=ü", "does not match"),
    ],
)
def test_bad_headers_are_refused(header: str | None, message: str) -> None:
    with pytest.raises(WebhookSignatureError, match=message):
        verify_signature(b"{}", header, SECRET, now=NOW)


def test_any_of_several_signatures_may_match_and_hex_case_is_ignored() -> None:
    good = compute_signature(SECRET, NOW, b"{}")
    header = f" t={NOW} , v1={'0' * 64}, v1={good.upper()}, v2=zzz"
    assert verify_signature(b"{}", header, SECRET, now=NOW) == NOW
    assert verify_signature("{}", header, SECRET.encode(), now=NOW) == NOW  # str / bytes


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("twelvelabs_async.webhooks.hmac.compare_digest", spy)
    verify_signature(b"{}", sign(b"{}", SECRET, timestamp=NOW), SECRET, now=NOW)
    assert len(calls) == 1


def test_timestamps_outside_the_tolerance_are_refused() -> None:
    header = sign(b"{}", SECRET, timestamp=NOW)
    assert verify_signature(b"{}", header, SECRET, now=NOW + 300) == NOW
    assert verify_signature(b"{}", header, SECRET, now=NOW - 300) == NOW
    for now in (NOW + 301, NOW - 301):
        with pytest.raises(WebhookTimestampError) as caught:
            verify_signature(b"{}", header, SECRET, now=now)
        assert caught.value.timestamp == NOW
        assert caught.value.now == now
    assert verify_signature(b"{}", header, SECRET, now=NOW + 10**6, tolerance=None) == NOW
    with pytest.raises(WebhookTimestampError):
        verify_signature(b"{}", header, SECRET, now=NOW + 11, tolerance=10)
    # A forged signature is reported as such even when the timestamp is stale too.
    with pytest.raises(WebhookSignatureError) as forged:
        verify_signature(b"{}", sign(b"{}", "other", timestamp=NOW), SECRET, now=NOW + 999)
    assert not isinstance(forged.value, WebhookTimestampError)


def test_error_types_form_one_tree_under_webhook_error() -> None:
    for name in ("WebhookSignatureError", "WebhookTimestampError", "WebhookPayloadError"):
        error = getattr(twelvelabs_async, name)  # importable from the top level
        assert issubclass(error, WebhookError)
        assert issubclass(error, twelvelabs_async.TwelveLabsError)
    assert issubclass(WebhookTimestampError, WebhookSignatureError)
    with pytest.raises(ValueError, match="empty"):
        sign(b"{}", "")


# --- events ---------------------------------------------------------------------------------


def test_analyze_events_parse_into_structs() -> None:
    body = event_body(
        "analyze.task.failed",
        status="failed",
        custom_id="c-7",
        created_at="2026-01-01T00:00:00.250Z",
        video_source={"type": "url", "url": "https://example.com/v.mp4"},
        error={"message": "could not fetch the video"},
        brand_new_field=[1, 2],
    )
    event = construct_event(body, sign(body, SECRET), SECRET)
    assert isinstance(event, AnalyzeTaskEvent)
    assert event.id == "evt_1"
    assert event.type == "analyze.task.failed"
    assert event.created_at is not None
    assert event.created_at.year == 2026
    assert event.task_id == event.data.task_id == "task_1"
    assert event.task_kind == "analyze"
    assert event.status == "failed"
    assert event.data.custom_id == "c-7"
    assert event.data.video_source is not None
    assert event.data.video_source.url == "https://example.com/v.mp4"
    assert event.data.error is not None
    assert event.data.error.message == "could not fetch the video"
    for status in ("ready", "canceled"):
        parsed = parse_event(event_body(f"analyze.task.{status}", status=status))
        assert isinstance(parsed, AnalyzeTaskEvent)
        assert parsed.status == status


def test_index_and_unknown_events_keep_their_data() -> None:
    index = parse_event(
        event_body("index.task.ready", metadata={"duration": 12.5}, models=[{"name": "m"}])
    )
    assert isinstance(index, IndexTaskEvent)
    assert index.data.metadata == {"duration": 12.5}
    assert index.task_id == "task_1"
    assert index.task_kind is None  # not a kind this client polls

    unknown = parse_event(b'{"id":"e9","type":"video.uploaded","data":{"id":"v1","size":[3]}}')
    assert isinstance(unknown, UnknownWebhookEvent)
    assert unknown.data == {"id": "v1", "size": [3]}
    assert unknown.task_id == "v1"
    assert unknown.task_kind is None
    assert msgspec.json.decode(msgspec.json.encode(unknown))["data"]["size"] == [3]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type":"analyze.task.ready","data":{"id":"t"}}',  # no event id
        b'{"id":"e","data":{"id":"t"}}',  # no type
        b'{"id":"e","type":"analyze.task.ready"}',  # no data
        b'{"id":"e","type":"analyze.task.ready","data":{"status":"ready"}}',  # no task id
        b'{"id":"e","type":"analyze.task.ready","created_at":"yesterday","data":{"id":"t"}}',
    ],
)
def test_bodies_that_are_not_events_are_refused(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError):
        parse_event(body)


# --- de-duplication and the receiver ----------------------------------------------------------


def test_deduplicator_is_a_bounded_lru() -> None:
    seen = WebhookDeduplicator(max_size=3)
    assert [seen.is_duplicate(e) for e in ("a", "b", "c")] == [False] * 3
    assert seen.is_duplicate("a")  # a repeat; now the most recently seen
    assert not seen.is_duplicate("d")  # evicts b, the least recently seen
    assert len(seen) == 3
    assert "b" not in seen
    assert "a" in seen
    assert not seen.is_duplicate("b")
    seen.forget("b")
    assert not seen.is_duplicate("b")
    seen.clear()
    assert len(seen) == 0
    with pytest.raises(ValueError, match="at least 1"):
        WebhookDeduplicator(0)


class Spy:
    """Stands in for a poller: records what it was told."""

    def __init__(self, answer: bool = True) -> None:
        self.calls: list[tuple[str, TaskKind | None]] = []
        self.answer = answer

    def notify(self, task_id: str, kind: TaskKind | None = None) -> bool:
        self.calls.append((task_id, kind))
        return self.answer


def test_receiver_verifies_dedupes_and_notifies_pollers() -> None:
    clock = [float(NOW)]
    receiver = WebhookReceiver(SECRET, now=lambda: clock[0])
    first, second = Spy(), Spy(answer=False)
    seen: list[str] = []
    receiver.handlers.append(lambda event: seen.append(event.id))
    body = event_body()
    header = sign(body, SECRET, timestamp=NOW)
    with receiver.attached(first):
        receiver.attach(second)
        event = receiver.receive(body, header)
        assert isinstance(event, AnalyzeTaskEvent)
        assert receiver.receive(body, header) is None  # the platform's retry
    assert first.calls == [("task_1", "analyze")]
    assert second.calls == [("task_1", "analyze")]
    assert seen == ["evt_1"]

    other = event_body(event_id="evt_2")
    receiver.receive(other, headers={"tl-signature": sign(other, SECRET, timestamp=NOW)})
    assert first.calls == [("task_1", "analyze")]  # detached when the block ended
    assert second.calls[-1] == ("task_1", "analyze")
    receiver.detach(second)

    clock[0] = NOW + 3600.0
    stale = event_body(event_id="evt_3")
    with pytest.raises(WebhookTimestampError):
        receiver.receive(stale, sign(stale, SECRET, timestamp=NOW))
    with pytest.raises(WebhookSignatureError):
        receiver.receive(body, None)
    assert (receiver.received, receiver.duplicates, receiver.rejected) == (2, 1, 2)
    assert SECRET not in repr(receiver)


def test_a_failing_handler_lets_the_retry_through() -> None:
    receiver = WebhookReceiver(SECRET)
    failures = [RuntimeError("database down")]

    def handler(event: Any) -> None:
        if failures:
            raise failures.pop()

    receiver.handlers.append(handler)
    body = event_body()
    with pytest.raises(RuntimeError, match="database down"):
        receiver.receive(body, sign(body, SECRET))
    assert receiver.receive(body, sign(body, SECRET)) is not None  # handled this time


# --- the fake server's deliveries, end to end -------------------------------------------------


Handler = Callable[[web.Request], Any]


async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hooks", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> WebhookReceiver:
    return WebhookReceiver(SECRET)


@pytest.fixture
async def hook_url(receiver: WebhookReceiver) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        try:
            receiver.receive(await request.read(), request.headers.get(SIGNATURE_HEADER))
        except WebhookError as exc:
            return web.Response(status=400, text=str(exc))
        return web.Response(status=204)

    async for url in serve(handle):
        yield url


@pytest.mark.anyio
async def test_webhook_wakes_the_poller_long_before_its_next_poll(
    receiver: WebhookReceiver, hook_url: str
) -> None:
    async with (
        FakeTwelveLabs(webhook_url=hook_url, webhook_secret=SECRET) as fake,
        AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client,
    ):
        task_id = fake.add_task("analyze", finish_after_seconds=0.3)
        told: list[bool] = []
        async with client.poller(poll_interval=30, max_poll_interval=30) as poller:

            class Relay:
                def notify(self, task_id: str, kind: TaskKind | None = None) -> bool:
                    told.append(poller.notify(task_id, kind))
                    return told[-1]

            poller.add(client.analyze.tasks, task_id)
            started = anyio.current_time()
            with receiver.attached(Relay()), anyio.fail_after(5):
                outcomes = [outcome async for outcome in poller.as_completed()]
            took = anyio.current_time() - started
    assert [(o.task_id, o.status) for o in outcomes] == [(task_id, "ready")]
    assert outcomes[0].task.result is not None
    assert told == [True]  # the webhook reached the poller while the task was pending
    assert took < 2.0  # not 30 s: the next poll was not waited for
    [delivery] = fake.webhook_deliveries
    assert (delivery.task_id, delivery.type, delivery.delivered) == (
        task_id,
        "analyze.task.ready",
        True,
    )


@pytest.mark.anyio
async def test_fake_announces_every_final_analysis_task_once_per_event(
    receiver: WebhookReceiver, hook_url: str
) -> None:
    events: list[Any] = []
    receiver.handlers.append(events.append)
    async with (
        FakeTwelveLabs(webhook_url=hook_url, webhook_secret=SECRET, webhook_repeat=2) as fake,
        AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client,
    ):
        ready = fake.add_task("analyze", finish_after_seconds=0.05, custom_id="r1")
        failed = fake.add_task("analyze", finish_after_seconds=0.05, final_status="failed")
        running = fake.add_task("analyze", finish_after_seconds=math.inf)
        fake.add_task("embed_v2", finish_after_seconds=0.05)  # embeddings send no webhooks
        await client.analyze.tasks.cancel(running)
        with anyio.fail_after(5):
            while len(fake.webhook_deliveries) < 6 or not all(
                d.delivered for d in fake.webhook_deliveries
            ):
                await anyio.sleep(0.02)
    by_task = {event.task_id: event for event in events}
    assert set(by_task) == {ready, failed, running}
    assert len(events) == 3  # each event was sent twice; the repeats were dropped
    assert receiver.duplicates == 3
    assert by_task[ready].type == "analyze.task.ready"
    assert by_task[ready].data.custom_id == "r1"
    assert by_task[ready].data.error is None
    assert by_task[failed].type == "analyze.task.failed"
    assert by_task[failed].data.error.message
    assert by_task[running].type == "analyze.task.canceled"
    assert by_task[running].data.error is None  # never on canceled
    assert all(event.data.video_source is not None for event in events)


@pytest.mark.anyio
async def test_fake_retries_a_failed_delivery() -> None:
    answers = [500]

    async def flaky(request: web.Request) -> web.Response:
        verify_signature(await request.read(), request.headers.get(SIGNATURE_HEADER), SECRET)
        return web.Response(status=answers.pop() if answers else 204)

    async for url in serve(flaky):
        async with FakeTwelveLabs(webhook_url=url, webhook_secret=SECRET) as fake:
            fake.add_task("analyze", status="ready")
            with anyio.fail_after(5):
                while not fake.webhook_deliveries or not fake.webhook_deliveries[0].delivered:
                    await anyio.sleep(0.02)
            [delivery] = fake.webhook_deliveries
            assert delivery.attempts == 2
            assert delivery.status == 204
            assert delivery.error is None
