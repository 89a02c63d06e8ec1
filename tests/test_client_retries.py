"""Retries: what is retried, how often, how long we wait, idempotency and cancellation."""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from twelvelabs_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncTwelveLabs,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
    is_testing,
    set_testing,
)
from twelvelabs_async._transport import parse_retry_hint
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"
V2_LIST = "GET /v1.3/embed-v2/tasks"
V2_CREATE = "POST /v1.3/embed-v2/tasks"
V1_STATUS = "GET /v1.3/embed/tasks/{task_id}/status"
V1_CREATE = "POST /v1.3/embed/tasks"
AN_LIST = "GET /v1.3/analyze/tasks"
AN_TASK = "GET /v1.3/analyze/tasks/{task_id}"
AN_CREATE = "POST /v1.3/analyze/tasks"
AN_DELETE = "DELETE /v1.3/analyze/tasks/{task_id}"
AN_CANCEL = "POST /v1.3/analyze/tasks/{task_id}/cancel"

VIDEO = {"media_source": {"url": "https://cdn.example.com/v.mp4"}}
WAIT_RE = re.compile(r"retrying after (\w+) in (\d+\.\d+)s")


@pytest.fixture
def real_waits() -> Iterator[None]:
    """Testing mode off: retry waits are real (tests keep them around 0.2 s)."""
    set_testing(False)
    yield
    set_testing(True)


def logged_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        float(match.group(2))
        for record in caplog.records
        if (match := WAIT_RE.search(record.getMessage()))
    ]


async def create_v2(client: AsyncTwelveLabs, **kw: Any) -> Any:
    return await client.embed.v2.tasks.create(
        input_type="video", model_name="marengo3.0", video=VIDEO, **kw
    )


# --- what is retried -------------------------------------------------------------------------

TRANSIENT = [
    pytest.param({"drop": True}, id="drop"),
    pytest.param({"truncate": True}, id="truncated-body"),
    pytest.param({"status": 408}, id="408"),
    pytest.param({"status": 429}, id="429"),
    pytest.param({"status": 500}, id="500"),
    pytest.param({"status": 502}, id="502"),
    pytest.param({"status": 503}, id="503"),
    pytest.param({"status": 504}, id="504"),
    pytest.param({"status": 599}, id="599"),
]


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_get_retried_on_transient_failures(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, fault: dict[str, Any]
) -> None:
    task_id = fake.add_task("embed_v2", status="ready")
    fake.faults.push(V2_TASK, times=2, **fault)
    task = await client.embed.v2.tasks.retrieve(task_id)
    assert task.id == task_id
    assert task.status == "ready"
    assert fake.request_count(V2_TASK) == 3


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_delete_retried_on_transient_failures(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, fault: dict[str, Any]
) -> None:
    task_id = fake.add_task("analyze", status="ready")
    if fault.get("truncate"):
        # A cut-off answer to a DELETE the server carried out would make the retry find the
        # task gone (404); cut off an error answer instead, so the task is still there.
        fault = {**fault, "status": 503}
    fake.faults.push(AN_DELETE, times=2, **fault)
    assert await client.analyze.tasks.delete(task_id) is None
    assert fake.request_count(AN_DELETE) == 3
    assert fake.store.get("analyze", task_id) is None


async def test_timeout_on_get_is_retried(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.2)
    task = await client.embed.v2.tasks.retrieve(task_id, timeout=0.05)
    assert task.id == task_id
    assert fake.request_count(V2_TASK) == 2


@pytest.mark.parametrize(
    ("route", "call"),
    [
        (V2_LIST, lambda c, ids: c.embed.v2.tasks.list().to_list()),
        (V1_STATUS, lambda c, ids: c.embed.v1.tasks.status(ids["embed_v1"])),
        (
            "GET /v1.3/embed/tasks/{task_id}",
            lambda c, ids: c.embed.v1.tasks.retrieve(ids["embed_v1"]),
        ),
        ("GET /v1.3/embed/tasks", lambda c, ids: c.embed.v1.tasks.list().to_list()),
        (AN_LIST, lambda c, ids: c.analyze.tasks.list().to_list()),
        (AN_TASK, lambda c, ids: c.analyze.tasks.retrieve(ids["analyze"])),
        (AN_CANCEL, lambda c, ids: c.analyze.tasks.cancel(ids["analyze"])),
    ],
)
async def test_every_idempotent_endpoint_retries(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, route: str, call: Any
) -> None:
    ids = {kind: fake.add_task(kind) for kind in ("embed_v1", "analyze")}
    fake.faults.push(route, status=503)
    fake.faults.push(route, drop=True)
    await call(client, ids)
    assert fake.request_count(route) == 3


# --- giving up -------------------------------------------------------------------------------


async def test_gives_up_after_max_retries_with_the_last_error(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=500)
    fake.faults.push(V2_TASK, status=503)
    fake.faults.push(V2_TASK, status=502, body=b'{"code":"bad_gateway","message":"last one"}')
    with pytest.raises(InternalServerError) as info:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=2)
    assert info.value.status_code == 502
    assert info.value.message == "last one"
    assert info.value.code == "bad_gateway"
    assert info.value.retries == 2
    assert "after 2 retries" in str(info.value)
    assert fake.request_count(V2_TASK) == 3


async def test_gives_up_on_connection_errors(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, drop=True, times=5)
    with pytest.raises(APIConnectionError) as info:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=3)
    assert not isinstance(info.value, APITimeoutError)
    assert info.value.retries == 3
    assert fake.request_count(V2_TASK) == 4


async def test_gives_up_on_timeouts(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.2, times=2)
    with pytest.raises(APITimeoutError) as info:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=1, timeout=0.05)
    assert info.value.retries == 1
    assert fake.request_count(V2_TASK) == 2


async def test_last_error_can_change_kind(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503)
    fake.faults.push(V2_TASK, drop=True)
    with pytest.raises(APIConnectionError) as info:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=1)
    assert info.value.retries == 1
    fake.faults.push(V2_TASK, drop=True)
    fake.faults.push(V2_TASK, status=429)
    with pytest.raises(RateLimitError) as info2:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=1)
    assert info2.value.retries == 1


async def test_default_max_retries_is_four(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, times=10)
    with pytest.raises(InternalServerError) as info:
        await client.embed.v2.tasks.retrieve(task_id)
    assert info.value.retries == 4
    assert fake.request_count(V2_TASK) == 5


@pytest.mark.parametrize("client_retries", [0, 1, 3])
async def test_max_retries_per_client(fake: FakeTwelveLabs, client_retries: int) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, times=10)
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, max_retries=client_retries
    ) as client:
        with pytest.raises(InternalServerError) as info:
            await client.embed.v2.tasks.retrieve(task_id)
    assert info.value.retries == client_retries
    assert fake.request_count(V2_TASK) == client_retries + 1


async def test_max_retries_zero_means_exactly_one_request(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("analyze")
    for route in (AN_TASK, AN_LIST, AN_DELETE):
        fake.faults.push(route, drop=True, times=3)
    with pytest.raises(APIConnectionError):
        await client.analyze.tasks.retrieve(task_id, max_retries=0)
    with pytest.raises(APIConnectionError):
        await client.analyze.tasks.list(request_options={"max_retries": 0}).to_list()
    with pytest.raises(APIConnectionError):
        await client.analyze.tasks.delete(task_id, request_options={"max_retries": 0})
    assert fake.request_count(AN_TASK) == 1
    assert fake.request_count(AN_LIST) == 1
    assert fake.request_count(AN_DELETE) == 1


async def test_per_call_max_retries_overrides_client(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, max_retries=0
    ) as client:
        fake.faults.push(V2_TASK, status=503, times=2)
        assert (await client.embed.v2.tasks.retrieve(task_id, max_retries=2)).id == task_id
        assert fake.request_count(V2_TASK) == 3
        fake.faults.push(V2_TASK, status=503, times=2)
        task = await client.embed.v2.tasks.retrieve(task_id, request_options={"max_retries": 2})
        assert task.id == task_id
        assert fake.request_count(V2_TASK) == 6


async def test_explicit_keyword_beats_request_options(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, times=3)
    with pytest.raises(InternalServerError):
        await client.embed.v2.tasks.retrieve(
            task_id, max_retries=1, request_options={"max_retries": 5}
        )
    assert fake.request_count(V2_TASK) == 2


async def test_negative_max_retries_rejected(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    with pytest.raises(ValueError):
        await client.embed.v2.tasks.retrieve("abc", max_retries=-1)
    assert fake.request_count() == 0


async def test_set_testing_can_force_the_retry_count(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, times=10)
    set_testing(True, max_retries=1)
    try:
        async with AsyncTwelveLabs(
            api_key=fake.api_key, base_url=fake.base_url, max_retries=6
        ) as client:
            with pytest.raises(InternalServerError) as info:
                await client.embed.v2.tasks.retrieve(task_id)
    finally:
        set_testing(True)
    assert info.value.retries == 1
    assert fake.request_count(V2_TASK) == 2


# --- never retried ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 422])
async def test_client_errors_never_retried(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, status: int
) -> None:
    ids = {kind: fake.add_task(kind, status="ready") for kind in ("embed_v2", "analyze")}
    for route in (V2_TASK, AN_DELETE, AN_CREATE, V2_CREATE, AN_CANCEL):
        fake.faults.push(route, status=status, times=5)
    calls = [
        client.embed.v2.tasks.retrieve(ids["embed_v2"]),
        client.analyze.tasks.delete(ids["analyze"]),
        client.analyze.tasks.create(video={"type": "url", "url": "https://x/y.mp4"}),
        create_v2(client),
        client.analyze.tasks.cancel(ids["analyze"]),
    ]
    for call in calls:
        with pytest.raises(APIStatusError) as info:
            await call
        assert info.value.status_code == status
        assert info.value.retries == 0
    for route in (V2_TASK, AN_DELETE, AN_CREATE, V2_CREATE, AN_CANCEL):
        assert fake.request_count(route) == 1, route


# --- creates: idempotency --------------------------------------------------------------------


async def test_analyze_create_always_sends_an_idempotency_key(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    first = await client.analyze.tasks.create(video={"type": "url", "url": "https://x/1.mp4"})
    second = await client.analyze.tasks.create(video={"type": "url", "url": "https://x/2.mp4"})
    assert first.task_id != second.task_id
    keys = [r.idempotency_key for r in fake.request_log if r.route == AN_CREATE]
    assert len(keys) == 2
    assert all(keys)
    assert keys[0] != keys[1]


async def test_analyze_create_uses_the_callers_idempotency_key(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    a = await client.analyze.tasks.create(
        video={"type": "url", "url": "https://x/1.mp4"}, idempotency_key="order-42"
    )
    b = await client.analyze.tasks.create(
        video={"type": "url", "url": "https://x/1.mp4"}, idempotency_key="order-42"
    )
    assert a.task_id == b.task_id
    assert [r.idempotency_key for r in fake.request_log] == ["order-42", "order-42"]
    assert len(fake.tasks("analyze")) == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 503}, id="503"),
        pytest.param({"status": 500}, id="500"),
        pytest.param({"status": 429}, id="429"),
        pytest.param({"drop": True}, id="drop"),
        pytest.param({"truncate": True}, id="processed-then-cut"),
    ],
)
async def test_retried_analyze_create_makes_exactly_one_task(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, fault: dict[str, Any]
) -> None:
    fake.faults.push(AN_CREATE, **fault)
    created = await client.analyze.tasks.create(
        video={"type": "url", "url": "https://x/y.mp4"}, prompt="Summarize"
    )
    records = [r for r in fake.request_log if r.route == AN_CREATE]
    assert len(records) == 2
    assert records[0].idempotency_key
    assert records[0].idempotency_key == records[1].idempotency_key
    tasks = fake.tasks("analyze")
    assert [t.id for t in tasks] == [created.task_id]


async def test_embed_v2_create_retried_on_429(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.faults.push(V2_CREATE, status=429, times=2)
    created = await create_v2(client)
    assert fake.request_count(V2_CREATE) == 3
    assert [t.id for t in fake.tasks("embed_v2")] == [created.id]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_embed_v2_create_not_retried_on_5xx(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, status: int
) -> None:
    fake.faults.push(V2_CREATE, status=status, times=3)
    with pytest.raises(APIStatusError) as info:
        await create_v2(client)
    assert info.value.status_code == status
    assert info.value.retries == 0
    assert fake.request_count(V2_CREATE) == 1
    assert fake.tasks("embed_v2") == []


async def test_embed_v2_create_not_retried_after_a_dropped_connection(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.faults.push(V2_CREATE, drop=True, times=3)
    with pytest.raises(APIConnectionError) as info:
        await create_v2(client)
    assert info.value.retries == 0
    assert fake.request_count(V2_CREATE) == 1


async def test_embed_v2_create_not_retried_after_a_cut_off_answer(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.faults.push(V2_CREATE, truncate=True)
    with pytest.raises(APIConnectionError):
        await create_v2(client)
    assert fake.request_count(V2_CREATE) == 1
    assert len(fake.tasks("embed_v2")) == 1  # the server made it; we did not make a second


async def test_embed_v2_create_not_retried_after_a_timeout(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.faults.push(V2_CREATE, delay=0.2)
    with pytest.raises(APITimeoutError):
        await create_v2(client, timeout=0.05)
    assert fake.request_count(V2_CREATE) == 1


async def test_embed_v2_create_retried_when_nothing_was_sent(fake: FakeTwelveLabs) -> None:
    """A refused connection never reached the API, so even a plain POST may be retried."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempts: list[int] = []
    async with AsyncTwelveLabs(api_key="k", base_url=f"http://127.0.0.1:{port}/v1.3") as client:
        client.hooks.on_request.append(lambda method, path, attempt: attempts.append(attempt))
        with pytest.raises(APIConnectionError) as info:
            await create_v2(client, max_retries=2)
    assert info.value.retries == 2
    assert attempts == [0, 1, 2]


@pytest.mark.parametrize("as_path", [False, True])
async def test_embed_v1_create_retried_on_429_with_the_file_resent(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Any, as_path: bool
) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x01" * 128)
    fake.faults.push(V1_CREATE, status=429)
    created = await client.embed.v1.tasks.create(
        model_name="marengo3.0", video_file=video if as_path else video.read_bytes()
    )
    assert fake.request_count(V1_CREATE) == 2
    record = fake.task("embed_v1", created.id or "")
    expected = "clip.mp4" if as_path else "video_file"
    assert (record.extra or {}).get("input_filename") == expected


async def test_embed_v1_create_not_retried_on_503(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.faults.push(V1_CREATE, status=503, times=3)
    with pytest.raises(InternalServerError):
        await client.embed.v1.tasks.create(model_name="marengo3.0", video_url="https://x/y.mp4")
    assert fake.request_count(V1_CREATE) == 1


# --- server wait hints -----------------------------------------------------------------------


@pytest.mark.usefixtures("real_waits")
async def test_retry_after_seconds_honoured(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, headers={"Retry-After": "0.2"})
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        started = time.monotonic()
        await client.embed.v2.tasks.retrieve(task_id)
        elapsed = time.monotonic() - started
    assert logged_waits(caplog) == [0.2]
    assert elapsed >= 0.19
    assert fake.request_count(V2_TASK) == 2


@pytest.mark.usefixtures("real_waits")
async def test_retry_after_http_date_honoured(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v2")
    # A date 60 s ahead, capped by max_retry_after so the test stays fast.
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    fake.faults.push(V2_TASK, status=429, headers={"Retry-After": future})
    fake.faults.push(V2_TASK, status=503, headers={"Retry-After": past})
    policy = RetryPolicy(initial=1000.0, max_wait=1000.0, max_retry_after=0.2)
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, retry_policy=policy
    ) as client:
        started = time.monotonic()
        with anyio.fail_after(10):  # a guard: backoff would wait up to 1000 s
            await client.embed.v2.tasks.retrieve(task_id)
        elapsed = time.monotonic() - started
    # The future date is obeyed (capped at 0.2 s); the past date means "now".
    assert logged_waits(caplog) == [0.2, 0.0]
    assert elapsed >= 0.19


@pytest.mark.usefixtures("real_waits")
async def test_retry_after_ms_honoured(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("analyze")
    fake.faults.push(AN_TASK, status=429, headers={"retry-after-ms": "200", "Retry-After": "60"})
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    async with AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
        started = time.monotonic()
        await client.analyze.tasks.retrieve(task_id)
        elapsed = time.monotonic() - started
    assert logged_waits(caplog) == [0.2]
    assert elapsed >= 0.19


@pytest.mark.usefixtures("real_waits")
async def test_x_ratelimit_reset_honoured_on_429(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v2")
    reset = f"{time.time() + 0.25:.3f}"
    fake.faults.push(V2_TASK, status=429, headers={"X-Ratelimit-Reset": reset})
    policy = RetryPolicy(initial=1000.0, max_wait=1000.0)
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, retry_policy=policy
    ) as client:
        started = time.monotonic()
        with anyio.fail_after(10):
            await client.embed.v2.tasks.retrieve(task_id)
        elapsed = time.monotonic() - started
    (wait,) = logged_waits(caplog)
    assert 0.1 <= wait <= 0.25
    assert elapsed >= wait - 0.01


@pytest.mark.usefixtures("real_waits")
async def test_x_ratelimit_reset_ignored_for_5xx(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v2")
    # The fake sends X-Ratelimit-Reset on every answer (a minute ahead); for a 503 it must
    # not turn into a wait, so the tiny backoff applies.
    fake.faults.push(V2_TASK, status=503)
    policy = RetryPolicy(initial=0.001, max_wait=0.001)
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, retry_policy=policy
    ) as client:
        with anyio.fail_after(10):
            await client.embed.v2.tasks.retrieve(task_id)
    assert logged_waits(caplog) == [0.0]


@pytest.mark.usefixtures("real_waits")
async def test_long_retry_after_is_capped(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, headers={"Retry-After": "3600"})
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    async with AsyncTwelveLabs(
        api_key=fake.api_key,
        base_url=fake.base_url,
        retry_policy=RetryPolicy(max_retry_after=0.1),
    ) as client:
        with anyio.fail_after(10):
            await client.embed.v2.tasks.retrieve(task_id)
    assert logged_waits(caplog) == [0.1]


def test_parse_retry_hint_values() -> None:
    now = time.time()
    assert parse_retry_hint({"Retry-After": "7"}, 503) == 7.0
    assert parse_retry_hint({"Retry-After": "1.5"}, 429) == 1.5
    assert parse_retry_hint({"Retry-After": "-3"}, 429) == 0.0
    assert parse_retry_hint({"retry-after-ms": "250"}, 503) == 0.25
    assert parse_retry_hint({"retry-after-ms": "250", "Retry-After": "9"}, 503) == 0.25
    date = email.utils.formatdate(now + 30, usegmt=True)
    hint = parse_retry_hint({"Retry-After": date}, 503)
    assert hint is not None
    assert 28.0 <= hint <= 31.0
    reset = parse_retry_hint({"X-Ratelimit-Reset": str(int(now) + 20)}, 429)
    assert reset is not None
    assert 18.0 <= reset <= 21.0
    assert parse_retry_hint({"X-Ratelimit-Reset": str(int(now) + 20)}, 503) is None
    assert parse_retry_hint({"Retry-After": "soon"}, 503) is None
    assert parse_retry_hint({}, 429) is None


async def test_testing_mode_makes_every_wait_zero(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    assert is_testing()
    assert RetryPolicy().delay(5, None) == 0.0
    assert RetryPolicy().delay(0, 60.0) == 0.0
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, headers={"Retry-After": "60"})
    fake.faults.push(V2_TASK, status=429, headers={"retry-after-ms": "60000"})
    fake.faults.push(V2_TASK, drop=True)
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    with anyio.fail_after(10):
        await client.embed.v2.tasks.retrieve(task_id)
    assert logged_waits(caplog) == [0.0, 0.0, 0.0]


def test_backoff_without_testing_is_bounded_and_grows() -> None:
    set_testing(False)
    try:
        policy = RetryPolicy(initial=0.5, max_wait=4.0)
        for attempt in range(8):
            delay = policy.delay(attempt, None)
            assert 0.0 <= delay <= min(4.0, 0.5 * 2**attempt)
        assert policy.delay(0, 2.0) == 2.0
        assert policy.delay(0, 500.0) == policy.max_retry_after
    finally:
        set_testing(True)


# --- cancellation ----------------------------------------------------------------------------


async def test_cancel_during_a_slow_request(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.3)
    seen: list[BaseException] = []

    async def call() -> None:
        try:
            await client.embed.v2.tasks.retrieve(task_id)
        except BaseException as exc:
            seen.append(exc)
            raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert len(seen) == 1
    assert isinstance(seen[0], anyio.get_cancelled_exc_class())
    await anyio.sleep(0.05)
    assert fake.request_count(V2_TASK) == 1  # not retried
    # The client still works.
    assert (await client.embed.v2.tasks.retrieve(task_id)).id == task_id


async def test_move_on_after_around_a_slow_request(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("analyze")
    fake.faults.push(AN_TASK, delay=0.3)
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, max_connections=1
    ) as client:
        with anyio.move_on_after(0.05) as scope:
            await client.analyze.tasks.retrieve(task_id)
        assert scope.cancelled_caught
        # The only pooled slot was given back: a new call gets through.
        with anyio.fail_after(5):
            task = await client.analyze.tasks.retrieve(task_id)
    assert task.task_id == task_id
    assert fake.request_count(AN_TASK) == 2


@pytest.mark.usefixtures("real_waits")
async def test_cancel_during_a_retry_sleep(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, headers={"Retry-After": "30"})
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, max_connections=1
    ) as client:
        with anyio.move_on_after(0.1) as scope:
            await client.embed.v2.tasks.retrieve(task_id)
        assert scope.cancelled_caught
        assert fake.request_count(V2_TASK) == 1
        with anyio.fail_after(5):
            task = await client.embed.v2.tasks.retrieve(task_id)
    assert task.id == task_id
    assert fake.request_count(V2_TASK) == 2


async def test_fail_after_surfaces_as_timeout_error_not_api_error(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.3)
    with pytest.raises(TimeoutError) as info, anyio.fail_after(0.05):
        await client.embed.v2.tasks.retrieve(task_id)
    assert not isinstance(info.value, APIConnectionError)
    assert fake.request_count(V2_TASK) == 1
