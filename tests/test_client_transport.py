"""Transport: request headers, task-id path encoding, timeouts and the connection pool."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.helpers import catch_all, serve_app
from twelvelabs_async import (
    APIConnectionError,
    APITimeoutError,
    AsyncTwelveLabs,
    NotFoundError,
    ResponseDecodeError,
    ResponseTooLargeError,
    Timeout,
    __version__,
)
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"
V2_LIST = "GET /v1.3/embed-v2/tasks"


# --- a tiny server of our own that records request headers and concurrency ------------------


@dataclass
class Recorder:
    base_url: str = ""
    delay: float = 0.0
    requests: list[tuple[str, str, CIMultiDict[str]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


@asynccontextmanager
async def recording_server(delay: float = 0.0) -> AsyncIterator[Recorder]:
    recorder = Recorder(delay=delay)

    async def handle(request: web.Request) -> web.StreamResponse:
        recorder.requests.append((request.method, request.raw_path, CIMultiDict(request.headers)))
        recorder.in_flight += 1
        recorder.max_in_flight = max(recorder.max_in_flight, recorder.in_flight)
        try:
            if recorder.delay:
                await asyncio.sleep(recorder.delay)
            await request.read()
            path = request.path
            if path.endswith("/tasks") and request.method == "GET":
                return web.json_response({"data": [], "page_info": {"page": 1, "total_page": 1}})
            if path.endswith("/embed-v2/tasks"):
                return web.json_response({"_id": "new", "status": "processing"}, status=202)
            if path.endswith("/embed/tasks"):
                return web.json_response({"_id": "new"})
            if path.endswith("/analyze/tasks"):
                return web.json_response({"task_id": "new", "status": "queued"}, status=202)
            return web.json_response({"_id": "abc", "status": "processing"})
        finally:
            recorder.in_flight -= 1

    async with serve_app(catch_all(handle)) as root:
        recorder.base_url = f"{root}/v1.3"
        yield recorder


# --- headers ---------------------------------------------------------------------------------


async def test_every_request_carries_key_and_user_agent(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 32)
    async with (
        recording_server() as server,
        AsyncTwelveLabs(api_key="tlk_header_check", base_url=server.base_url) as client,
    ):
        await client.embed.v2.tasks.retrieve("abc")
        await client.embed.v2.tasks.list().to_list()
        await client.embed.v2.tasks.create(
            input_type="video", model_name="marengo3.0", video={"media_source": {"url": "u"}}
        )
        await client.embed.v1.tasks.create(model_name="marengo3.0", video_file=video)
        await client.analyze.tasks.create(video={"type": "url", "url": "https://x/y.mp4"})
    assert len(server.requests) == 5
    for _method, _path, headers in server.requests:
        assert headers.getall("x-api-key") == ["tlk_header_check"]
        assert headers["User-Agent"] == f"twelvelabs-async/{__version__}"
        assert "application/json" in headers["Accept"]
    methods = [m for m, _p, _h in server.requests]
    assert methods == ["GET", "GET", "POST", "POST", "POST"]
    assert server.requests[2][2]["Content-Type"].startswith("application/json")
    assert server.requests[3][2]["Content-Type"].startswith("multipart/form-data")
    assert "Idempotency-Key" in server.requests[4][2]
    assert "Idempotency-Key" not in server.requests[2][2]


async def test_version_string_is_the_package_version() -> None:
    import twelvelabs_async

    assert __version__ == twelvelabs_async.__version__
    assert __version__
    assert __version__[0].isdigit()


async def test_extra_default_headers_are_sent_but_cannot_replace_the_key() -> None:
    async with (
        recording_server() as server,
        AsyncTwelveLabs(
            api_key="real-key",
            base_url=server.base_url,
            headers={"X-Team": "video", "x-api-key": "spoofed"},
        ) as client,
    ):
        await client.embed.v2.tasks.retrieve("abc")
    headers = server.requests[0][2]
    assert headers["X-Team"] == "video"
    assert headers.getall("x-api-key") == ["real-key"]


# --- task id encoding ------------------------------------------------------------------------

HOSTILE_IDS = [
    "a/b",
    "abc/../../analyze/tasks",
    "a?b=c",
    "?page=2",
    "a#frag",
    "#",
    "..",
    ".",
    "../embed-v2/tasks",
    "%2F",
    "a%2Fb",
    "%2e%2e",
    "with space",
    "tab\tand\nnewline",
    "ünïcødé",
    "日本語",
    "emoji-🎬",
    "/",
    "a;b",
    "a\\b",
    "+plus+",
]


@pytest.mark.parametrize("task_id", HOSTILE_IDS)
async def test_task_id_is_one_encoded_segment(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, task_id: str
) -> None:
    with pytest.raises(NotFoundError):
        await client.embed.v2.tasks.retrieve(task_id, max_retries=0)
    with pytest.raises(NotFoundError):
        await client.analyze.tasks.retrieve(task_id, max_retries=0)
    with pytest.raises(NotFoundError):
        await client.embed.v1.tasks.status(task_id, max_retries=0)
    with pytest.raises(NotFoundError):
        await client.embed.v1.tasks.retrieve(task_id, ["visual"], max_retries=0)
    with pytest.raises(NotFoundError):
        await client.analyze.tasks.delete(task_id, max_retries=0)
    with pytest.raises(NotFoundError):
        await client.analyze.tasks.cancel(task_id, max_retries=0)
    routes = [(r.route, r.status) for r in fake.request_log]
    assert routes == [
        ("GET /v1.3/embed-v2/tasks/{task_id}", 404),
        ("GET /v1.3/analyze/tasks/{task_id}", 404),
        ("GET /v1.3/embed/tasks/{task_id}/status", 404),
        ("GET /v1.3/embed/tasks/{task_id}", 404),
        ("DELETE /v1.3/analyze/tasks/{task_id}", 404),
        ("POST /v1.3/analyze/tasks/{task_id}/cancel", 404),
    ]
    encoded = quote(task_id, safe="")
    for record in fake.request_log:
        path = record.path.partition("?")[0]
        segment = path.split("/")[4]
        assert "#" not in record.path
        assert segment.upper() == encoded.upper().replace(".", "%2E")
    # No list route was ever reached.
    assert fake.request_count(V2_LIST) == 0
    assert fake.request_count("GET /v1.3/analyze/tasks") == 0
    assert fake.request_count("GET /v1.3/embed/tasks") == 0


@pytest.mark.parametrize("task_id", ["a/b", "a?b", "a#b", "..", "%2F", "sp ace", "ünï/cødé"])
async def test_hostile_id_round_trips_to_the_same_task(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, task_id: str
) -> None:
    fake.store.add("embed_v2", task_id=task_id, status="ready")
    fake.store.add("analyze", task_id=task_id, status="ready")
    v2 = await client.embed.v2.tasks.retrieve(task_id)
    assert v2.id == task_id
    assert v2.status == "ready"
    analysis = await client.analyze.tasks.retrieve(task_id)
    assert analysis.task_id == task_id
    await client.analyze.tasks.delete(task_id)
    assert fake.store.get("analyze", task_id) is None


@pytest.mark.parametrize("bad", ["", None, 123])
async def test_empty_or_non_string_id_rejected_before_any_request(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, bad: Any
) -> None:
    with pytest.raises(ValueError):
        await client.embed.v2.tasks.retrieve(bad)
    with pytest.raises(ValueError):
        await client.analyze.tasks.delete(bad)
    assert fake.request_count() == 0


# --- timeouts --------------------------------------------------------------------------------


async def test_per_client_timeout(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.2)
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, timeout=0.05, max_retries=0
    ) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.embed.v2.tasks.retrieve(task_id)
    assert isinstance(info.value, APIConnectionError)
    assert info.value.retries == 0
    assert info.value.path == f"/embed-v2/tasks/{task_id}"
    assert fake.request_count(V2_TASK) == 1


async def test_per_call_timeout(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.2)
    with pytest.raises(APITimeoutError):
        await client.embed.v2.tasks.retrieve(task_id, timeout=0.05, max_retries=0)
    assert fake.request_count(V2_TASK) == 1


async def test_per_call_timeout_object(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("analyze")
    fake.faults.push("GET /v1.3/analyze/tasks/{task_id}", delay=0.2)
    with pytest.raises(APITimeoutError):
        await client.analyze.tasks.retrieve(
            task_id, timeout=Timeout(connect=1.0, read=0.05, total=5.0), max_retries=0
        )


async def test_per_call_timeout_overrides_a_small_client_timeout(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.15)
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, timeout=0.05, max_retries=0
    ) as client:
        task = await client.embed.v2.tasks.retrieve(task_id, timeout=5.0)
    assert task.id == task_id


async def test_timeout_via_request_options(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    fake.faults.push(V2_LIST, delay=0.2)
    paginator = client.embed.v2.tasks.list(
        request_options={"timeout_in_seconds": 0.05, "max_retries": 0}
    )
    with pytest.raises(APITimeoutError):
        await paginator.to_list()
    assert fake.request_count(V2_LIST) == 1


def test_timeout_coercion() -> None:
    assert Timeout.coerce(None) == Timeout(connect=None, read=None, total=None)
    assert Timeout.coerce(30) == Timeout(connect=10.0, read=30.0, total=30.0)
    assert Timeout.coerce(2.5) == Timeout(connect=2.5, read=2.5, total=2.5)
    custom = Timeout(connect=1, read=2, total=3, pool=4)
    assert Timeout.coerce(custom) is custom
    with pytest.raises(ValueError):
        Timeout.coerce(0)
    with pytest.raises(ValueError):
        Timeout.coerce(-1)


# --- the connection pool ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
async def test_max_connections_bounds_requests_in_flight(limit: int) -> None:
    async with (
        recording_server(delay=0.03) as server,
        AsyncTwelveLabs(api_key="k", base_url=server.base_url, max_connections=limit) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(4 * limit + 2):
            tg.start_soon(client.embed.v2.tasks.retrieve, "abc")
    assert len(server.requests) == 4 * limit + 2
    assert server.max_in_flight == limit


async def test_waiting_for_a_pooled_connection_is_not_charged_to_the_timeout(
    fake: FakeTwelveLabs,
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.2, times=2)
    results: list[str] = []
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, max_connections=1
    ) as client:

        async def fetch() -> None:
            task = await client.embed.v2.tasks.retrieve(task_id, timeout=0.3, max_retries=0)
            results.append(task.id)

        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            tg.start_soon(fetch)
    assert results == [task_id, task_id]
    assert fake.request_count(V2_TASK) == 2


async def test_pool_timeout_applies_to_waiting_for_a_slot(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, delay=0.2)
    errors: list[BaseException] = []
    async with AsyncTwelveLabs(
        api_key=fake.api_key,
        base_url=fake.base_url,
        max_connections=1,
        timeout=Timeout(connect=1, read=5, total=5, pool=0.05),
        max_retries=0,
    ) as client:

        async def second() -> None:
            await anyio.sleep(0.02)
            try:
                await client.embed.v2.tasks.retrieve(task_id)
            except APITimeoutError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.embed.v2.tasks.retrieve, task_id)
            tg.start_soon(second)
    assert len(errors) == 1
    assert "connection" in str(errors[0]).lower()
    assert fake.request_count(V2_TASK) == 1


# --- body limits -----------------------------------------------------------------------------


async def test_response_larger_than_max_response_size(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2", status="ready")
    async with AsyncTwelveLabs(
        api_key=fake.api_key, base_url=fake.base_url, max_response_size=512
    ) as client:
        with pytest.raises(ResponseTooLargeError) as info:
            await client.embed.v2.tasks.retrieve(task_id)
        assert isinstance(info.value, ResponseDecodeError)
        assert info.value.status_code == 200
        # Small bodies still pass.
        page = await client.embed.v2.tasks.list(page_limit=1).to_list()
        assert [t.id for t in page] == [task_id]


async def test_file_object_upload_is_sent(fake: FakeTwelveLabs, client: AsyncTwelveLabs) -> None:
    handle = io.BytesIO(b"\x00" * 64)
    handle.name = "from-memory.mp4"
    created = await client.embed.v1.tasks.create(model_name="marengo3.0", video_file=handle)
    record = fake.task("embed_v1", created.id or "")
    assert (record.extra or {}).get("input_filename") == "from-memory.mp4"
