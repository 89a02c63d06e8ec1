"""Errors: status -> class mapping from every envelope, decode errors, and no key leaks."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from twelvelabs_async import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncTwelveLabs,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    TwelveLabsError,
    UnprocessableEntityError,
)
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"

STATUS_CLASSES: list[tuple[int, type[APIStatusError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (409, ConflictError),
    (422, UnprocessableEntityError),
    (429, RateLimitError),
    (500, InternalServerError),
    (502, InternalServerError),
    (503, InternalServerError),
    (504, InternalServerError),
    (405, APIStatusError),
    (408, APIStatusError),
    (410, APIStatusError),
    (413, APIStatusError),
    (418, APIStatusError),
]

ENVELOPES: dict[str, tuple[bytes, str | None, str | None]] = {
    "flat": (
        msgspec.json.encode({"code": "some_code", "message": "Flat message."}),
        "some_code",
        "Flat message.",
    ),
    "flat-with-docs-url": (
        msgspec.json.encode(
            {"code": "some_code", "message": "Flat message.", "docs_url": "https://d"}
        ),
        "some_code",
        "Flat message.",
    ),
    "nested": (
        msgspec.json.encode(
            {"error": {"code": "nested_code", "message": "Nested message.", "details": {}}}
        ),
        "nested_code",
        "Nested message.",
    ),
    "empty": (b"", None, None),
    "whitespace": (b"  \n", None, None),
    "html": (b"<html><body>Bad Gateway</body></html>", None, None),
    "json-array": (b"[1, 2]", None, None),
    "error-string": (msgspec.json.encode({"error": "just a string"}), None, "just a string"),
}


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES)
@pytest.mark.parametrize("envelope", list(ENVELOPES))
async def test_status_maps_to_class_with_fields(
    client: AsyncTwelveLabs,
    fake: FakeTwelveLabs,
    status: int,
    cls: type[APIStatusError],
    envelope: str,
) -> None:
    body, code, message = ENVELOPES[envelope]
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=status, body=body, headers={"X-Request-Id": "req-77"})
    with pytest.raises(APIStatusError) as info:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=0)
    error = info.value
    assert type(error) is cls
    assert isinstance(error, APIError)
    assert isinstance(error, TwelveLabsError)
    assert error.status_code == status
    assert error.code == code
    if message is None:
        assert error.message  # a generic, non-empty message
        assert str(status) in error.message
    else:
        assert error.message == message
    assert error.headers["X-Request-Id"] == "req-77"
    assert error.headers["x-request-id"] == "req-77"  # case-insensitive
    assert error.retries == 0
    assert error.method == "GET"
    assert error.path == f"/embed-v2/tasks/{task_id}"
    assert str(status) in str(error)
    assert cls.__name__ in repr(error)


async def test_status_error_retries_counted(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=429, times=3, headers={"Retry-After": "0"})
    with pytest.raises(RateLimitError) as info:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=2)
    assert info.value.retries == 2
    assert info.value.headers["Retry-After"] == "0"
    assert info.value.code == "too_many_requests"


def _endpoints(ids: dict[str, str]) -> dict[str, tuple[str, Callable[[AsyncTwelveLabs], Any]]]:
    video = {"media_source": {"url": "https://x/y.mp4"}}
    return {
        "v2-list": (
            "GET /v1.3/embed-v2/tasks",
            lambda c: c.embed.v2.tasks.list(max_retries=0).to_list(),
        ),
        "v2-retrieve": (
            V2_TASK,
            lambda c: c.embed.v2.tasks.retrieve(ids["embed_v2"], max_retries=0),
        ),
        "v2-create": (
            "POST /v1.3/embed-v2/tasks",
            lambda c: c.embed.v2.tasks.create(
                input_type="video", model_name="marengo3.0", video=video, max_retries=0
            ),
        ),
        "v1-list": (
            "GET /v1.3/embed/tasks",
            lambda c: c.embed.v1.tasks.list(max_retries=0).to_list(),
        ),
        "v1-status": (
            "GET /v1.3/embed/tasks/{task_id}/status",
            lambda c: c.embed.v1.tasks.status(ids["embed_v1"], max_retries=0),
        ),
        "v1-retrieve": (
            "GET /v1.3/embed/tasks/{task_id}",
            lambda c: c.embed.v1.tasks.retrieve(ids["embed_v1"], max_retries=0),
        ),
        "v1-create": (
            "POST /v1.3/embed/tasks",
            lambda c: c.embed.v1.tasks.create(
                model_name="marengo3.0", video_url="https://x/y.mp4", max_retries=0
            ),
        ),
        "analyze-list": (
            "GET /v1.3/analyze/tasks",
            lambda c: c.analyze.tasks.list(max_retries=0).to_list(),
        ),
        "analyze-retrieve": (
            "GET /v1.3/analyze/tasks/{task_id}",
            lambda c: c.analyze.tasks.retrieve(ids["analyze"], max_retries=0),
        ),
        "analyze-create": (
            "POST /v1.3/analyze/tasks",
            lambda c: c.analyze.tasks.create(
                video={"type": "url", "url": "https://x/y.mp4"}, max_retries=0
            ),
        ),
        "analyze-cancel": (
            "POST /v1.3/analyze/tasks/{task_id}/cancel",
            lambda c: c.analyze.tasks.cancel(ids["analyze"], max_retries=0),
        ),
        "analyze-delete": (
            "DELETE /v1.3/analyze/tasks/{task_id}",
            lambda c: c.analyze.tasks.delete(ids["analyze"], max_retries=0),
        ),
    }


ENDPOINT_NAMES = list(_endpoints({"embed_v2": "", "embed_v1": "", "analyze": ""}))


@pytest.mark.parametrize("endpoint", ENDPOINT_NAMES)
async def test_same_status_same_class_on_every_endpoint(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, endpoint: str
) -> None:
    ids = {kind: fake.add_task(kind) for kind in ("embed_v2", "embed_v1", "analyze")}
    route, call = _endpoints(ids)[endpoint]
    for status, cls in STATUS_CLASSES:
        fake.faults.push(route, status=status)  # the route's own default envelope
        with pytest.raises(APIStatusError) as info:
            await call(client)
        assert type(info.value) is cls, (endpoint, status)
        assert info.value.status_code == status
        assert info.value.code  # parsed from whichever envelope the route uses
        assert info.value.message
    assert fake.request_count(route) == len(STATUS_CLASSES)


# --- decode errors ---------------------------------------------------------------------------


async def test_non_json_2xx_body_is_a_decode_error(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, not_json=True)
    with pytest.raises(ResponseDecodeError) as info:
        await client.embed.v2.tasks.retrieve(task_id)
    error = info.value
    assert error.status_code == 200
    assert error.path == f"/embed-v2/tasks/{task_id}"
    assert error.body_excerpt.startswith("<html>")
    assert len(error.body_excerpt) <= 200
    assert isinstance(error, APIError)
    assert fake.request_count(V2_TASK) == 1  # not retried


async def test_long_body_excerpt_is_truncated(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("analyze")
    fake.faults.push("GET /v1.3/analyze/tasks/{task_id}", not_json=True, body=b"x" * 5000)
    with pytest.raises(ResponseDecodeError) as info:
        await client.analyze.tasks.retrieve(task_id)
    assert info.value.body_excerpt == "x" * 200


DECODING_ENDPOINTS = [
    "v2-list",
    "v2-retrieve",
    "v2-create",
    "v1-list",
    "v1-status",
    "v1-retrieve",
    "v1-create",
    "analyze-list",
    "analyze-retrieve",
    "analyze-create",
    "analyze-cancel",
]


async def _expect_decode_error(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, endpoint: str, body: bytes
) -> ResponseDecodeError:
    ids = {kind: fake.add_task(kind) for kind in ("embed_v2", "embed_v1", "analyze")}
    route, call = _endpoints(ids)[endpoint]
    status = 202 if route.startswith("POST") else 200
    fake.faults.push(route, status=status, body=body)
    with pytest.raises(ResponseDecodeError) as info:
        await call(client)
    error = info.value
    assert error.status_code == status
    assert error.body_excerpt == body.decode()[:200]
    assert error.path.startswith("/")
    assert "?" not in error.path
    assert fake.request_count(route) == 1  # a decode error is not retried
    return error


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[1, 2, 3]", id="array"),
        pytest.param(b"null", id="null"),
        pytest.param(b'"text"', id="string"),
        pytest.param(
            b'{"_id": 5, "task_id": 5, "status": 1, "data": 7, "page_info": 3}', id="wrong-types"
        ),
    ],
)
@pytest.mark.parametrize("endpoint", DECODING_ENDPOINTS)
async def test_json_that_does_not_fit_any_model(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, endpoint: str, body: bytes
) -> None:
    await _expect_decode_error(client, fake, endpoint, body)


@pytest.mark.parametrize(
    "endpoint", ["v2-retrieve", "v2-create", "analyze-retrieve", "analyze-create", "analyze-cancel"]
)
async def test_missing_required_fields(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, endpoint: str
) -> None:
    error = await _expect_decode_error(client, fake, endpoint, b'{"unexpected": true}')
    assert "unexpected" in error.body_excerpt


@pytest.mark.parametrize("endpoint", ["v2-retrieve", "v1-retrieve", "analyze-retrieve"])
async def test_unparseable_datetime(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, endpoint: str
) -> None:
    body = b'{"_id": "a", "task_id": "a", "status": "ready", "created_at": "yesterday"}'
    await _expect_decode_error(client, fake, endpoint, body)


@pytest.mark.parametrize("endpoint", ["v2-list", "v1-list", "analyze-list"])
async def test_list_with_bad_items(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, endpoint: str
) -> None:
    await _expect_decode_error(client, fake, endpoint, b'{"data": [1, 2], "page_info": {}}')


async def test_not_json_error_status_is_a_status_error(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, not_json=True, status=502)
    with pytest.raises(InternalServerError) as info:
        await client.embed.v2.tasks.retrieve(task_id, max_retries=0)
    assert info.value.code is None
    assert "502" in info.value.message


# --- the API key never leaks -----------------------------------------------------------------

SECRET = "tlk_Sup3rS3cretKeyValue_0123456789abcdef"


def _all_text(error: BaseException) -> str:
    parts = [
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        repr(error.args),
        repr(vars(error)) if hasattr(error, "__dict__") else "",
    ]
    return "\n".join(parts)


async def test_key_not_in_client_repr() -> None:
    client = AsyncTwelveLabs(api_key=SECRET, base_url="https://api.example.com/v1.3")
    assert SECRET not in repr(client)
    assert SECRET not in str(client)
    assert SECRET not in repr(client._transport)
    for resource in (client.embed, client.embed.v2, client.embed.v1, client.analyze):
        assert SECRET not in repr(resource)
    for tasks in (client.embed.v2.tasks, client.embed.v1.tasks, client.analyze.tasks):
        assert SECRET not in repr(tasks)
        assert SECRET not in repr(tasks.list())
    await client.aclose()
    assert SECRET not in repr(client)


async def test_key_never_in_errors_or_logs(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    async def collect(call: Awaitable[Any]) -> None:
        try:
            await call
        except TwelveLabsError as exc:
            errors.append(exc)

    async with FakeTwelveLabs(api_key="the-right-key") as strict:
        task_id = strict.add_task("embed_v2")
        async with AsyncTwelveLabs(api_key=SECRET, base_url=strict.base_url) as client:
            await collect(client.embed.v2.tasks.retrieve(task_id))  # 401

    task_id = fake.add_task("embed_v2")
    async with AsyncTwelveLabs(api_key=SECRET, base_url=fake.base_url) as client:
        assert (await client.embed.v2.tasks.retrieve(task_id)).id == task_id  # debug logs
        for fault, kw in [
            ({"status": 503, "times": 3}, {"max_retries": 2}),
            ({"drop": True, "times": 2}, {"max_retries": 1}),
            ({"delay": 0.2}, {"max_retries": 0, "timeout": 0.05}),
            ({"not_json": True}, {}),
            ({"truncate": True, "times": 2}, {"max_retries": 1}),
        ]:
            fake.faults.push(V2_TASK, **fault)
            await collect(client.embed.v2.tasks.retrieve(task_id, **kw))
            assert not fake.faults
        await collect(client.embed.v2.tasks.retrieve("missing"))
        await collect(client.embed.v2.tasks.wait("missing", poll_interval=0.01))
        await collect(client.analyze.tasks.delete("missing"))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AsyncTwelveLabs(api_key=SECRET, base_url=f"http://127.0.0.1:{port}/v1.3") as dead:
        await collect(dead.embed.v2.tasks.retrieve("abc", max_retries=1))
    await collect(dead.embed.v2.tasks.retrieve("abc"))  # closed client

    kinds = {type(e).__name__ for e in errors}
    assert {
        "AuthenticationError",
        "InternalServerError",
        "APIConnectionError",
        "APITimeoutError",
        "ResponseDecodeError",
        "NotFoundError",
        "ClientClosedError",
    } <= kinds
    for error in errors:
        assert SECRET not in _all_text(error), type(error)
        if isinstance(error, APIStatusError):
            assert all(SECRET not in str(v) for v in error.headers.values())
            assert SECRET not in repr(error.body)
    assert any(isinstance(e, APITimeoutError) for e in errors)
    assert any(isinstance(e, APIConnectionError) for e in errors)
    assert caplog.records  # debug and retry logs were captured
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        assert SECRET not in text
    assert SECRET not in caplog.text
