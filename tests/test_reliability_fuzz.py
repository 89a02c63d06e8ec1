"""Hostile and malformed input: bodies, error bodies, sizes and task ids.

* Every response model decodes arbitrary JSON values, model-shaped JSON with wrong or extreme
  values, and arbitrary bytes into the model or raises ``ResponseDecodeError``; nothing else
  escapes (``_decode.decode`` directly, and end to end through the fake server).
* An error status with a body of any shape raises the status's error class with a readable
  message.
* Bodies over ``max_response_size`` raise ``ResponseTooLargeError`` (with ``Content-Length`` and
  chunked), without reading much past the limit.
* A task id, whatever its characters, is one path segment: it reaches its own route and no other.
"""

from __future__ import annotations

import contextlib
import json
import tracemalloc
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

import anyio
import msgspec
import msgspec.inspect as mi
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from tests.helpers import catch_all, serve_app
from twelvelabs_async import (
    APIStatusError,
    AsyncTwelveLabs,
    InternalServerError,
    NotFoundError,
    ResponseDecodeError,
    ResponseTooLargeError,
)
from twelvelabs_async._decode import decode
from twelvelabs_async._exceptions import status_error_class
from twelvelabs_async._transport import Response, parse_error_body
from twelvelabs_async.testing import FakeTwelveLabs
from twelvelabs_async.types import (
    AnalyzeTask,
    AnalyzeTaskCanceled,
    AnalyzeTaskCreated,
    EmbeddingTask,
    EmbeddingTaskCreated,
    EmbedV1Task,
    EmbedV1TaskCreated,
    EmbedV1TaskStatus,
    MediaEmbeddingTask,
    TaskPage,
)

pytestmark = pytest.mark.anyio

MODELS: list[Any] = [
    EmbeddingTask,
    EmbeddingTaskCreated,
    MediaEmbeddingTask,
    TaskPage[MediaEmbeddingTask],
    EmbedV1Task,
    EmbedV1TaskStatus,
    EmbedV1TaskCreated,
    AnalyzeTask,
    AnalyzeTaskCreated,
    AnalyzeTaskCanceled,
    TaskPage[AnalyzeTask],
]
MODEL_IDS = [
    "EmbeddingTask",
    "EmbeddingTaskCreated",
    "MediaEmbeddingTask",
    "TaskPage[MediaEmbeddingTask]",
    "EmbedV1Task",
    "EmbedV1TaskStatus",
    "EmbedV1TaskCreated",
    "AnalyzeTask",
    "AnalyzeTaskCreated",
    "AnalyzeTaskCanceled",
    "TaskPage[AnalyzeTask]",
]
models = st.sampled_from(MODELS)

# Deterministic and leaves no example database in the repository.
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None)
FUZZ_SHAPED = settings(FUZZ, max_examples=100)  # model-shaped values are costlier to draw
E2E = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"
V1_STATUS = "GET /v1.3/embed/tasks/{task_id}/status"
AN_TASK = "GET /v1.3/analyze/tasks/{task_id}"


# --- strategies -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
weird_times = st.one_of(
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2024-02-30T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "0000-01-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01",
            "yesterday",
            "",
        ]
    ),
    st.text(max_size=30),
)


def shaped(info: mi.Type, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that follow a model's shape (its wire names and types), often with wrong leaves."""
    wrong = json_values if depth < 3 else json_scalars
    if isinstance(info, mi.StructType):
        if depth > 4:
            return st.just({})
        fields = {f.encode_name: shaped(f.type, depth + 1) for f in info.fields}
        return st.fixed_dictionaries({}, optional=fields) | st.dictionaries(
            st.sampled_from(sorted(fields) or ["_"]), wrong, max_size=6
        )
    if isinstance(info, mi.UnionType):
        return st.one_of([shaped(t, depth + 1) for t in info.types])
    if isinstance(info, mi.ListType):
        return st.lists(shaped(info.item_type, depth + 1), max_size=3) | wrong
    if isinstance(info, mi.IntType):
        return st.integers(min_value=-(2**80), max_value=2**80) | wrong
    if isinstance(info, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers() | wrong
    if isinstance(info, mi.StrType):
        return st.text(max_size=20) | wrong
    if isinstance(info, mi.BoolType):
        return st.booleans() | wrong
    if isinstance(info, mi.DateTimeType):
        return weird_times | wrong
    if isinstance(info, mi.NoneType):
        return st.none() | wrong
    return wrong


def near_json(model: Any) -> st.SearchStrategy[bytes]:
    """Model-shaped JSON, then cut short or with one byte changed."""

    def damage(raw: bytes, data: st.DataObject) -> bytes:
        if not raw:
            return raw
        cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        if data.draw(st.booleans()):
            return raw[:cut]
        byte = data.draw(st.integers(min_value=0, max_value=255))
        return raw[:cut] + bytes([byte]) + raw[cut + 1 :]

    return st.builds(
        lambda value, data: damage(encode(value), data),
        shaped(mi.type_info(model)),
        st.data(),
    )


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def response(body: bytes, status: int = 200) -> Response:
    return Response("GET", "/fuzz", status, CIMultiDictProxy(CIMultiDict()), body, 0)


def check_decode(model: Any, body: bytes) -> None:
    """The one property: the model, or ``ResponseDecodeError``; nothing else."""
    error: ResponseDecodeError | None = None
    try:
        result = decode(model, response(body))
    except ResponseDecodeError as exc:
        error = exc
    if error is not None:
        assert error.status_code == 200
        assert error.path == "/fuzz"
        assert isinstance(error.body_excerpt, str)
        assert len(error.body_excerpt) <= 200
        assert str(error)
        assert repr(error)
        return
    origin = getattr(model, "__origin__", model)
    assert isinstance(result, origin)
    # The derived views a caller (or the poller) reads must not blow up either.
    for name in ("is_final", "error_message", "items", "id"):
        if hasattr(type(result), name):
            getattr(result, name)


# --- decode: every model, any input -------------------------------------------------------------


@FUZZ
@given(model=models, value=json_values)
def test_any_json_value_decodes_or_raises_decode_error(model: Any, value: Any) -> None:
    check_decode(model, encode(value))


@FUZZ_SHAPED
@given(model=models, data=st.data())
def test_model_shaped_json_with_wrong_values(model: Any, data: st.DataObject) -> None:
    value = data.draw(shaped(mi.type_info(model)))
    check_decode(model, encode(value))


@FUZZ
@given(model=models, body=st.binary(max_size=300))
def test_any_bytes_decode_or_raise_decode_error(model: Any, body: bytes) -> None:
    check_decode(model, body)


@FUZZ_SHAPED
@given(model=models, data=st.data())
def test_damaged_json_decodes_or_raises_decode_error(model: Any, data: st.DataObject) -> None:
    check_decode(model, data.draw(near_json(model)))


@pytest.mark.parametrize("model", MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"_id":"x","status":"ready","data":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"task_id":"x","status":"ready","result":{"usage":{"input_tokens":' + b"9" * 400 + b"}}}",
        b'{"_id":"x","status":"ready","created_at":"99999-01-01T00:00:00Z"}',
        b'{"_id":"x","status":"ready","data":[{"embedding":[1e999]}]}',
        b"\xef\xbb\xbf{}",
        b'{"_id":"\xff\xfe","status":"ready"}',
        b'"\\ud800"',
        b"",
        b"null",
    ],
    ids=[
        "deep-array",
        "deep-object",
        "deep-data",
        "huge-int",
        "year-99999",
        "float-overflow",
        "bom",
        "invalid-utf8",
        "lone-surrogate",
        "empty",
        "null",
    ],
)
def test_pathological_bodies(model: Any, body: bytes) -> None:
    check_decode(model, body)


# --- decode end to end: the fake serves the hostile body ----------------------------------------


@E2E
@given(
    body=st.one_of(
        st.binary(max_size=200),
        json_values.map(encode),
        shaped(mi.type_info(EmbeddingTask)).map(encode),
        shaped(mi.type_info(AnalyzeTask)).map(encode),
    ),
    route=st.sampled_from([V2_TASK, V1_STATUS, AN_TASK]),
)
async def test_hostile_2xx_bodies_end_to_end(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, body: bytes, route: str
) -> None:
    calls: dict[str, Callable[[], Any]] = {
        V2_TASK: lambda: client.embed.v2.tasks.retrieve("abc"),
        V1_STATUS: lambda: client.embed.v1.tasks.status("abc"),
        AN_TASK: lambda: client.analyze.tasks.retrieve("abc"),
    }
    before = fake.request_count(route)
    fake.faults.push(route, status=200, body=body)
    result: Any = None
    error: ResponseDecodeError | None = None
    with anyio.fail_after(5):
        try:
            result = await calls[route]()
        except ResponseDecodeError as exc:
            error = exc
    if error is not None:
        assert error.status_code == 200
        assert isinstance(error.body_excerpt, str)
    else:
        assert result.status is None or isinstance(result.status, str)
    assert fake.request_count(route) == before + 1, "a decode error is never retried"


async def test_poller_treats_hostile_status_bodies_as_transient(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    task_id = fake.add_task("analyze", finish_after_polls=2)
    for body in (b"[" * 50_000, b'{"task_id": 5}', b"\x00\xff", b'{"status": "ready"}'):
        fake.faults.push(AN_TASK, status=200, body=body)
    with anyio.fail_after(10):
        results = await client.wait_all(analyze=[task_id], poll_interval=0.01)
    assert results[task_id].status == "ready"


# --- error bodies of any shape ------------------------------------------------------------------

error_shapes = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values}),
    st.fixed_dictionaries(
        {"error": st.fixed_dictionaries({}, optional={"code": json_values, "message": json_values})}
    ),
    st.fixed_dictionaries({"error": json_values}, optional={"message": json_values}),
)
error_bodies = st.one_of(
    error_shapes.map(encode),
    st.binary(max_size=200),
    st.sampled_from([b"[" * 100_000, b"<html>502 Bad Gateway</html>", b"", b"   ", b"null"]),
)


def expected_message(body: bytes) -> str | None:
    """The API's own message, when the body carries one in either envelope."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    inner = value.get("error")
    source = inner if isinstance(inner, dict) else value
    message = source.get("message")
    if message is None and isinstance(inner, str):
        message = inner
    return message if isinstance(message, str) and message.strip() else None


@FUZZ
@given(body=error_bodies)
def test_parse_error_body_never_raises(body: bytes) -> None:
    code, message, _ = parse_error_body(body)
    assert code is None or isinstance(code, str)
    assert message is None or isinstance(message, str)


@FUZZ
@given(status=st.integers(min_value=400, max_value=599))
def test_every_error_status_maps_to_a_status_error(status: int) -> None:
    cls = status_error_class(status)
    assert issubclass(cls, APIStatusError)
    assert issubclass(cls, InternalServerError) == (status >= 500)
    assert status_error_class(status) is cls  # the same on every call and endpoint


@E2E
@given(
    status=st.sampled_from([400, 401, 403, 404, 409, 410, 418, 422, 429, 451, 500, 503, 599]),
    body=error_bodies,
)
@example(status=400, body=b'{"message": ""}')
@example(status=422, body=b'{"error": {"code": "x", "message": "   "}}')
@example(status=500, body=b'{"error": "upstream exploded"}')
@example(status=503, body=b"[" * 100_000)
@example(status=404, body=b'{"code": 404, "message": ["not", "a", "string"]}')
async def test_error_body_of_any_shape_gives_a_readable_status_error(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, status: int, body: bytes
) -> None:
    fake.faults.push(V2_TASK, status=status, body=body)
    with pytest.raises(APIStatusError) as info, anyio.fail_after(5):
        await client.embed.v2.tasks.retrieve("abc", max_retries=0)
    error = info.value
    assert type(error) is status_error_class(status)
    assert error.status_code == status
    assert isinstance(error.message, str)
    assert error.message.strip(), "an empty message is not readable"
    text = str(error)
    assert str(status) in text
    assert "/embed-v2/tasks/abc" in text
    assert repr(error)
    own = expected_message(body)
    if own is not None:
        assert error.message == own
    else:
        assert error.message == f"HTTP {status} (no error message)"


async def test_error_body_in_several_chunks_keeps_its_message() -> None:
    payload = msgspec.json.encode({"code": "parameter_invalid", "message": "m" * 20_000})

    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=400, headers={"Content-Type": "application/json"})
        resp.content_length = len(payload)
        await resp.prepare(request)
        for start in range(0, len(payload), 1000):
            await resp.write(payload[start : start + 1000])
            await anyio.sleep(0.001)
        return resp

    async with own_server(handle) as base_url, AsyncTwelveLabs("k", base_url=base_url) as client:
        with pytest.raises(APIStatusError) as info:
            await client.embed.v2.tasks.retrieve("abc")
    assert info.value.code == "parameter_invalid"
    assert info.value.message == "m" * 20_000


# --- huge bodies: max_response_size -------------------------------------------------------------

LIMIT = 64 * 1024


@contextlib.asynccontextmanager
async def own_server(handler: Callable[[web.Request], Any]) -> AsyncIterator[str]:
    async with serve_app(catch_all(handler)) as root:
        yield f"{root}/v1.3"


def padded_task(size: int) -> bytes:
    """A valid EmbeddingTask body of exactly ``size`` bytes."""
    head = b'{"_id":"big","status":"ready"}'
    return head[:-1] + b" " * (size - len(head)) + b"}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_at_the_limit_is_read_and_one_byte_more_is_refused(chunked: bool) -> None:
    sizes = iter([LIMIT, LIMIT + 1, 100])

    async def handle(request: web.Request) -> web.StreamResponse:
        body = padded_task(next(sizes))
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 4096):
            await resp.write(body[start : start + 4096])
        await resp.write_eof()
        return resp

    async with (
        own_server(handle) as base_url,
        AsyncTwelveLabs("k", base_url=base_url, max_response_size=LIMIT) as client,
    ):
        assert (await client.embed.v2.tasks.retrieve("big")).id == "big"
        with pytest.raises(ResponseTooLargeError) as info:
            await client.embed.v2.tasks.retrieve("big")
        assert f"max_response_size={LIMIT}" in str(info.value)
        assert info.value.retries == 0  # not retried: the same body would come back
        # The connection with the unread rest is dropped; the client carries on.
        assert (await client.embed.v2.tasks.retrieve("big")).id == "big"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_huge_body_is_refused_without_reading_it(chunked: bool) -> None:
    """A 64 MiB answer against a 64 KiB limit: refused after about the limit, memory bounded."""
    total = 64 * 1024 * 1024
    chunk = b" " * 65536
    sent = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = total
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            while sent < total:
                await resp.write(chunk)
                sent += len(chunk)
        return resp

    async with (
        own_server(handle) as base_url,
        AsyncTwelveLabs("k", base_url=base_url, max_response_size=LIMIT) as client,
    ):
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError), anyio.fail_after(10):
                await client.embed.v2.tasks.retrieve("huge")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await anyio.sleep(0.05)
    assert peak < 16 * LIMIT + 4 * 1024 * 1024
    assert sent < total // 4, "the client kept reading far past its limit"


async def test_huge_error_body_is_read_only_in_part(fake: FakeTwelveLabs) -> None:
    fake.faults.push(V2_TASK, status=404, body=b'{"message": "' + b"x" * (4 << 20) + b'"}')
    async with AsyncTwelveLabs(fake.api_key, base_url=fake.base_url) as client:
        with pytest.raises(NotFoundError) as info, anyio.fail_after(5):
            await client.embed.v2.tasks.retrieve("abc")
    assert info.value.message == "HTTP 404 (no error message)"  # the excerpt is not JSON


# --- task ids: one path segment, their own route ------------------------------------------------

TRICKY_IDS = [
    "..",
    ".",
    "../../analyze/tasks",
    "a/b",
    "a%2Fb",
    "%2e%2e",
    "abc?page=2",
    "abc#frag",
    "abc/status",
    "abc/../../../x",
    "\\..\\",
    " ",
    "\t\n",
    "\x00",
    "ü/é",
    "🙂",
    "a;b",
    "a=b&c=d",
    "//evil.example.com",
    "http://evil.example.com/",
    "@evil.example.com",
    "%",
    "%%32%46",
    "~",
]
ID_ROUTES = {
    "retrieve_v2": "GET /v1.3/embed-v2/tasks/{task_id}",
    "status_v1": "GET /v1.3/embed/tasks/{task_id}/status",
    "retrieve_v1": "GET /v1.3/embed/tasks/{task_id}",
    "retrieve_analyze": "GET /v1.3/analyze/tasks/{task_id}",
    "cancel_analyze": "POST /v1.3/analyze/tasks/{task_id}/cancel",
    "delete_analyze": "DELETE /v1.3/analyze/tasks/{task_id}",
}


async def call_with_id(client: AsyncTwelveLabs, what: str, task_id: str) -> Any:
    operations: dict[str, Callable[[], Any]] = {
        "retrieve_v2": lambda: client.embed.v2.tasks.retrieve(task_id),
        "status_v1": lambda: client.embed.v1.tasks.status(task_id),
        "retrieve_v1": lambda: client.embed.v1.tasks.retrieve(task_id),
        "retrieve_analyze": lambda: client.analyze.tasks.retrieve(task_id),
        "cancel_analyze": lambda: client.analyze.tasks.cancel(task_id),
        "delete_analyze": lambda: client.analyze.tasks.delete(task_id),
    }
    return await operations[what]()


async def assert_reaches_own_route(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, task_id: str
) -> None:
    for what, route in ID_ROUTES.items():
        seen = len(fake.request_log)
        with pytest.raises(NotFoundError), anyio.fail_after(5):
            await call_with_id(client, what, task_id)
        log = fake.request_log[seen:]
        assert len(log) == 1, (what, task_id)
        record = log[0]
        assert record.route == route, (what, task_id, record.path)
        target = record.path.partition("?")[0]
        assert not record.path.partition("?")[2], "the id leaked into the query string"
        segments = target.split("/")  # "", "v1.3", collection, "tasks", id[, suffix]
        assert unquote(segments[4]) == task_id, (what, target)


@pytest.mark.parametrize("task_id", TRICKY_IDS)
async def test_tricky_ids_reach_only_their_own_route(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, task_id: str
) -> None:
    await assert_reaches_own_route(fake, client, task_id)


@E2E
@given(task_id=st.text(min_size=1, max_size=40))
async def test_any_text_id_reaches_only_its_own_route(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, task_id: str
) -> None:
    await assert_reaches_own_route(fake, client, task_id)


@pytest.mark.parametrize("task_id", ["a/b", "..", "abc?x=1", "%2F", "🙂 /#"])
async def test_tricky_id_round_trips_to_that_very_task(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, task_id: str
) -> None:
    fake.store.add("embed_v2", task_id=task_id, status="ready")
    fake.store.add("analyze", task_id=task_id, status="ready")
    assert (await client.embed.v2.tasks.retrieve(task_id)).id == task_id
    assert (await client.analyze.tasks.retrieve(task_id)).task_id == task_id
    assert len(fake.tasks("embed_v2")) == 1  # nothing else was created or touched


@pytest.mark.parametrize("task_id", ["", "\ud800", 7, None])
async def test_unusable_ids_are_refused_before_any_request(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, task_id: Any
) -> None:
    with pytest.raises(ValueError):
        await client.embed.v2.tasks.retrieve(task_id)
    with pytest.raises(ValueError):
        await client.analyze.tasks.cancel(task_id)
    assert fake.requests_total == 0


def test_a_well_formed_body_decodes() -> None:
    """A sanity anchor for the fuzzers above: a well-formed body does decode."""
    body = msgspec.json.encode(
        {"_id": "x", "status": "ready", "created_at": "2024-05-01T10:00:00Z", "data": []}
    )
    task = decode(EmbeddingTask, response(body))
    assert task.created_at == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
