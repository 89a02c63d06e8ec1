"""Every endpoint of the three task families against the fake server."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from twelvelabs_async import (
    AnalyzeTask,
    APITimeoutError,
    AsyncTwelveLabs,
    ConflictError,
    EmbeddingTask,
    EmbedV1Task,
    EmbedV1TaskStatus,
    InternalServerError,
    NotFoundError,
    TaskFailedError,
    TaskTimeoutError,
)
from twelvelabs_async.testing import FakeTwelveLabs
from twelvelabs_async.types import (
    AnalyzeTaskCanceled,
    AnalyzeTaskCreated,
    AsyncVideoInput,
    EmbeddingTaskCreated,
    EmbedV1TaskCreated,
    MediaSource,
    VideoContext,
)

pytestmark = pytest.mark.anyio

UTC = timezone.utc
V2_LIST = "GET /v1.3/embed-v2/tasks"
V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"
V1_LIST = "GET /v1.3/embed/tasks"
V1_TASK = "GET /v1.3/embed/tasks/{task_id}"
V1_STATUS = "GET /v1.3/embed/tasks/{task_id}/status"
AN_LIST = "GET /v1.3/analyze/tasks"
AN_TASK = "GET /v1.3/analyze/tasks/{task_id}"
FAST = {"poll_interval": 0.005, "max_poll_interval": 0.01}


def query_of(fake: FakeTwelveLabs, route: str) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(r.path).query, keep_blank_values=True)
        for r in fake.request_log
        if r.route == route
    ]


# --- aliases ---------------------------------------------------------------------------------


async def test_sdk_aliases(client: AsyncTwelveLabs) -> None:
    assert client.embed.v_2 is client.embed.v2
    assert client.embed.tasks is client.embed.v1.tasks
    assert client.analyze_async is client.analyze
    assert client.analyze_async.tasks is client.analyze.tasks


# --- embed v2 --------------------------------------------------------------------------------


async def test_v2_list_newest_first(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    base = datetime(2025, 3, 1, tzinfo=UTC)
    ids = fake.add_tasks("embed_v2", 5, created_at=lambda i: base + timedelta(minutes=i))
    items = await client.embed.v2.tasks.list().to_list()
    assert [t.id for t in items] == list(reversed(ids))
    assert all(t.status == "processing" for t in items)
    assert items[0].created_at == base + timedelta(minutes=4)


async def test_v2_list_filters_sent_and_applied(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    base = datetime(2025, 3, 1, tzinfo=UTC)
    ids = fake.add_tasks(
        "embed_v2",
        6,
        created_at=lambda i: base + timedelta(hours=i),
        status=lambda i: "ready" if i % 2 else None,
    )
    items = await client.embed.v2.tasks.list(
        started_at=datetime(2025, 3, 1, 1),  # naive: taken as UTC
        ended_at="2025-03-01T04:00:00Z",
        status="ready",
        page_limit=50,
    ).to_list()
    assert [t.id for t in items] == [ids[3], ids[1]]
    (query,) = query_of(fake, V2_LIST)
    assert query == {
        "started_at": ["2025-03-01T01:00:00Z"],
        "ended_at": ["2025-03-01T04:00:00Z"],
        "status": ["ready"],
        "page_limit": ["50"],
        "page": ["1"],
    }


async def test_v2_retrieve_ready_with_embeddings(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", status="ready")
    task = await client.embed.v2.tasks.retrieve(task_id)
    assert isinstance(task, EmbeddingTask)
    assert task.id == task_id
    assert task.is_final
    assert task.data
    assert all(len(d.embedding) == 1024 for d in task.data)
    assert task.metadata is not None
    assert task.metadata.input_type == "video"
    assert task.created_at is not None
    assert task.created_at.tzinfo is not None


async def test_v2_retrieve_missing(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.embed.v2.tasks.retrieve("64f8d2c7e4a1b37f8a9c5d12")
    assert info.value.code == "resource_not_exist"
    assert fake.request_count(V2_TASK) == 1


async def test_v2_create_then_wait(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    created = await client.embed.v2.tasks.create(
        input_type="video",
        model_name="marengo3.0",
        video=AsyncVideoInput(
            media_source=MediaSource(url="https://cdn.example.com/a.mp4"),
            embedding_option=["visual"],
            embedding_scope=["clip", "asset"],
            segmentation={"strategy": "fixed", "fixed": {"duration_sec": 4}},
        ),
    )
    assert isinstance(created, EmbeddingTaskCreated)
    assert created.status == "processing"
    (record,) = fake.tasks("embed_v2")
    assert record.id == created.id
    assert record.video_url == "https://cdn.example.com/a.mp4"
    assert record.extra is not None
    assert record.extra["embedding_options"] == ["visual"]
    assert record.extra["clip_length"] == 4
    task = await client.embed.v2.tasks.wait(created.id, **FAST)
    assert task.status == "ready"
    assert task.data
    assert {d.embedding_option for d in task.data} == {"visual"}
    assert task.metadata is not None
    assert task.metadata.clip_length == 4
    assert fake.request_count(V2_TASK) == 2  # processing, then ready


async def test_v2_create_with_dict_input(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    created = await client.embed.v2.tasks.create(
        input_type="audio",
        model_name="marengo3.0",
        audio={"media_source": {"url": "https://cdn.example.com/a.mp3"}},
    )
    record = fake.task("embed_v2", created.id)
    assert record.extra is not None
    assert record.extra["input_type"] == "audio"


async def test_v2_wait_failed(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2", final_status="failed", error_message="bad media")
    task = await client.embed.v2.tasks.wait(task_id, **FAST)
    assert task.status == "failed"
    assert task.error_message == "bad media"
    with pytest.raises(TaskFailedError) as info:
        await client.embed.v2.tasks.wait(task_id, raise_on_failure=True, **FAST)
    error = info.value
    assert error.status == "failed"
    assert error.task_id == task_id
    assert error.kind == "embed_v2"
    assert error.error_message == "bad media"
    assert isinstance(error.task, EmbeddingTask)
    assert "bad media" in str(error)


async def test_v2_wait_ready_with_raise_on_failure(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2", finish_after_polls=3)
    task = await client.embed.v2.tasks.wait(task_id, raise_on_failure=True, **FAST)
    assert task.status == "ready"
    assert fake.request_count(V2_TASK) == 3


async def test_wait_timeout(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=math.inf)
    with pytest.raises(TaskTimeoutError) as info:
        await client.embed.v2.tasks.wait(task_id, timeout=0.05, **FAST)
    error = info.value
    assert isinstance(error, TimeoutError)
    assert error.task_id == task_id
    assert error.kind == "embed_v2"
    assert isinstance(error.task, EmbeddingTask)
    assert error.task.status == "processing"
    assert fake.request_count(V2_TASK) >= 1


async def test_wait_timeout_records_last_transient_error(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("analyze", finish_after_seconds=math.inf)
    fake.faults.push(AN_TASK, status=503, times=10_000)
    with pytest.raises(TaskTimeoutError) as info:
        await client.analyze.tasks.wait(task_id, timeout=0.05, max_retries=0, **FAST)
    assert isinstance(info.value.last_error, InternalServerError)
    assert info.value.task is None


async def test_wait_not_found_after_confirmation(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    with pytest.raises(NotFoundError):
        await client.embed.v2.tasks.wait("nope", **FAST)
    assert fake.request_count(V2_TASK) == 2


async def test_wait_survives_transient_errors(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v2")
    fake.faults.push(V2_TASK, status=503, times=2)
    fake.faults.push(V2_TASK, not_json=True)
    task = await client.embed.v2.tasks.wait(task_id, max_retries=0, **FAST)
    assert task.status == "ready"


# --- embed v1 --------------------------------------------------------------------------------


async def test_v1_list(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    base = datetime(2025, 3, 1, tzinfo=UTC)
    ids = fake.add_tasks(
        "embed_v1",
        4,
        created_at=lambda i: base + timedelta(hours=i),
        status=lambda i: "ready" if i < 2 else None,
    )
    items = await client.embed.v1.tasks.list().to_list()
    assert [t.id for t in items] == list(reversed(ids))
    ready = await client.embed.v1.tasks.list(
        status="ready", started_at=base, ended_at=base + timedelta(hours=10)
    ).to_list()
    assert [t.id for t in ready] == [ids[1], ids[0]]
    assert query_of(fake, V1_LIST)[1] == {
        "status": ["ready"],
        "started_at": ["2025-03-01T00:00:00Z"],
        "ended_at": ["2025-03-01T10:00:00Z"],
        "page": ["1"],
    }
    assert items[0].video_embedding is not None
    assert items[0].video_embedding.metadata is not None


async def test_v1_status_and_retrieve(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v1", status="ready")
    status = await client.embed.v1.tasks.status(task_id)
    assert isinstance(status, EmbedV1TaskStatus)
    assert status.id == task_id
    assert status.is_final
    assert status.video_embedding is not None
    assert status.video_embedding.segments is None
    task = await client.embed.v1.tasks.retrieve(task_id)
    assert isinstance(task, EmbedV1Task)
    assert task.video_embedding is not None
    segments = task.video_embedding.segments
    assert segments
    assert {s.embedding_option for s in segments} == {"visual", "audio"}
    assert all(len(s.float_) == 1024 for s in segments)
    assert fake.request_count(V1_STATUS) == 1
    assert fake.request_count(V1_TASK) == 1


async def test_v1_retrieve_with_repeated_embedding_option(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v1", status="ready")
    visual = await client.embed.v1.tasks.retrieve(task_id, embedding_option=["visual"])
    assert visual.video_embedding is not None
    assert visual.video_embedding.segments
    assert {s.embedding_option for s in visual.video_embedding.segments} == {"visual"}
    both = await client.embed.v1.tasks.retrieve(task_id, ["visual", "audio"])
    assert both.video_embedding is not None
    assert both.video_embedding.segments
    assert {s.embedding_option for s in both.video_embedding.segments} == {"visual", "audio"}
    paths = [r.path for r in fake.request_log if r.route == V1_TASK]
    assert paths[1].endswith("?embedding_option=visual&embedding_option=audio")
    assert query_of(fake, V1_TASK) == [
        {"embedding_option": ["visual"]},
        {"embedding_option": ["visual", "audio"]},
    ]


async def test_v1_create_with_url(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    created = await client.embed.v1.tasks.create(
        model_name="marengo3.0",
        video_url="https://cdn.example.com/v1.mp4",
        video_clip_length=5,
        video_start_offset_sec=1,
        video_end_offset_sec=9.5,
        video_embedding_scope=["clip", "video"],
    )
    assert isinstance(created, EmbedV1TaskCreated)
    record = fake.task("embed_v1", created.id or "")
    assert record.video_url == "https://cdn.example.com/v1.mp4"
    assert record.extra is not None
    assert record.extra["clip_length"] == 5
    assert record.extra["embedding_scopes"] == ["clip", "video"]
    assert record.extra["model_name"] == "marengo3.0"


async def test_v1_create_with_bytes(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    created = await client.embed.v1.tasks.create(model_name="marengo3.0", video_file=b"\x00" * 100)
    record = fake.task("embed_v1", created.id or "")
    assert record.video_url is None
    assert record.extra is not None
    assert record.extra["input_filename"] == "video_file"
    status = await client.embed.v1.tasks.status(created.id or "")
    assert status.video_embedding is not None
    assert status.video_embedding.metadata is not None
    assert status.video_embedding.metadata.input_filename == "video_file"


async def test_v1_create_with_path(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    video = tmp_path / "holiday_clip-01.mp4"
    video.write_bytes(b"\x00\x01" * 500)
    created = await client.embed.v1.tasks.create(model_name="marengo3.0", video_file=video)
    record = fake.task("embed_v1", created.id or "")
    assert record.extra is not None
    assert record.extra["input_filename"] == "holiday_clip-01.mp4"


async def test_v1_create_needs_a_source(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    with pytest.raises(ValueError):
        await client.embed.v1.tasks.create(model_name="marengo3.0")
    assert fake.request_count() == 0


async def test_v1_wait_polls_status_then_fetches_once(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("embed_v1", finish_after_polls=3)
    task = await client.embed.v1.tasks.wait(task_id, **FAST)
    assert isinstance(task, EmbedV1Task)
    assert task.status == "ready"
    assert task.video_embedding is not None
    assert task.video_embedding.segments
    assert fake.request_count(V1_STATUS) == 3
    assert fake.request_count(V1_TASK) == 1


async def test_v1_wait_failed_raises(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v1", status="failed")
    with pytest.raises(TaskFailedError) as info:
        await client.embed.tasks.wait(task_id, raise_on_failure=True, **FAST)
    assert info.value.status == "failed"
    assert info.value.kind == "embed_v1"


# --- analyze ---------------------------------------------------------------------------------


async def test_analyze_list_filters(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    a = fake.add_task("analyze", video_url="https://x/a.mp4", status="ready")
    b = fake.add_task("analyze", asset_id="asset-9")
    c = fake.add_task("analyze", video_url="https://x/c.mp4", analysis_mode="time_based_metadata")
    everything = await client.analyze.tasks.list().to_list()
    assert {t.task_id for t in everything} == {a, b, c}
    assert all(isinstance(t, AnalyzeTask) for t in everything)
    assert [t.task_id for t in await client.analyze.tasks.list(status="ready").to_list()] == [a]
    by_url = await client.analyze.tasks.list(video_url="https://x/a.mp4").to_list()
    assert [t.task_id for t in by_url] == [a]
    by_asset = await client.analyze.tasks.list(asset_id="asset-9").to_list()
    assert [t.task_id for t in by_asset] == [b]
    by_mode = await client.analyze.tasks.list(analysis_mode="time_based_metadata").to_list()
    assert [t.task_id for t in by_mode] == [c]
    queries = query_of(fake, AN_LIST)
    assert queries[1:] == [
        {"status": ["ready"], "page": ["1"]},
        {"video_url": ["https://x/a.mp4"], "page": ["1"]},
        {"asset_id": ["asset-9"], "page": ["1"]},
        {"analysis_mode": ["time_based_metadata"], "page": ["1"]},
    ]


async def test_analyze_retrieve(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("analyze", status="ready", custom_id="job-1")
    task = await client.analyze.tasks.retrieve(task_id)
    assert task.task_id == task_id
    assert task.custom_id == "job-1"
    assert task.is_final
    assert task.result is not None
    assert task.result.data
    assert task.completed_at is not None


async def test_analyze_create_wait(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    created = await client.analyze.tasks.create(
        video=VideoContext.from_url("https://x/v.mp4"),
        prompt="Summarize the video",
        custom_id="run_7",
        temperature=0.3,
        model_name="pegasus1.5",
    )
    assert isinstance(created, AnalyzeTaskCreated)
    assert created.status == "queued"
    record = fake.task("analyze", created.task_id)
    assert record.custom_id == "run_7"
    assert record.extra is not None
    assert record.extra["request_params"]["prompt"] == "Summarize the video"
    assert record.extra["request_params"]["temperature"] == 0.3
    task = await client.analyze_async.tasks.wait(created.task_id, **FAST)
    assert task.status == "ready"
    assert task.request_params is not None
    assert task.request_params.prompt == "Summarize the video"


async def test_analyze_cancel(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("analyze", finish_after_seconds=math.inf)
    canceled = await client.analyze.tasks.cancel(task_id)
    assert isinstance(canceled, AnalyzeTaskCanceled)
    assert canceled.task_id == task_id
    assert canceled.status == "canceled"
    again = await client.analyze.tasks.cancel(task_id)  # harmless
    assert again.status == "canceled"
    task = await client.analyze.tasks.retrieve(task_id)
    assert task.status == "canceled"
    assert task.is_final
    assert task.error is not None
    assert task.error.code == "user_canceled"
    with pytest.raises(TaskFailedError) as info:
        await client.analyze.tasks.wait(task_id, raise_on_failure=True, **FAST)
    assert info.value.status == "canceled"
    assert info.value.kind == "analyze"
    returned = await client.analyze.tasks.wait(task_id, **FAST)
    assert returned.status == "canceled"


async def test_analyze_cancel_of_finished_task_conflicts(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    task_id = fake.add_task("analyze", status="ready")
    with pytest.raises(ConflictError):
        await client.analyze.tasks.cancel(task_id)
    with pytest.raises(NotFoundError):
        await client.analyze.tasks.cancel("missing")


async def test_analyze_delete(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("analyze", finish_after_seconds=math.inf)
    with pytest.raises(ConflictError) as info:
        await client.analyze.tasks.delete(task_id)
    assert info.value.status_code == 409
    assert info.value.code == "task_in_progress"
    assert info.value.retries == 0
    fake.set_status("analyze", task_id, "ready")
    assert await client.analyze.tasks.delete(task_id) is None
    with pytest.raises(NotFoundError):
        await client.analyze.tasks.retrieve(task_id)
    with pytest.raises(NotFoundError):
        await client.analyze.tasks.delete(task_id)
    assert fake.request_count("DELETE /v1.3/analyze/tasks/{task_id}") == 3


async def test_analyze_wait_failed(client: AsyncTwelveLabs, fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("analyze", final_status="failed")
    with pytest.raises(TaskFailedError) as info:
        await client.analyze.tasks.wait(task_id, raise_on_failure=True, **FAST)
    assert info.value.status == "failed"
    assert info.value.error_message


# --- request_options like the official SDK ---------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda c, ids, o: c.embed.v2.tasks.list(request_options=o).to_list(), id="v2-list"
        ),
        pytest.param(
            lambda c, ids, o: c.embed.v2.tasks.retrieve(ids["embed_v2"], request_options=o),
            id="v2-retrieve",
        ),
        pytest.param(
            lambda c, ids, o: c.embed.v1.tasks.status(ids["embed_v1"], request_options=o),
            id="v1-status",
        ),
        pytest.param(
            lambda c, ids, o: c.embed.v1.tasks.retrieve(ids["embed_v1"], request_options=o),
            id="v1-retrieve",
        ),
        pytest.param(
            lambda c, ids, o: c.embed.v1.tasks.list(request_options=o).to_list(), id="v1-list"
        ),
        pytest.param(
            lambda c, ids, o: c.analyze.tasks.list(request_options=o).to_list(), id="analyze-list"
        ),
        pytest.param(
            lambda c, ids, o: c.analyze.tasks.retrieve(ids["analyze"], request_options=o),
            id="analyze-retrieve",
        ),
        pytest.param(
            lambda c, ids, o: c.analyze.tasks.cancel(ids["analyze"], request_options=o),
            id="analyze-cancel",
        ),
        pytest.param(
            lambda c, ids, o: c.analyze.tasks.delete(ids["analyze"], request_options=o),
            id="analyze-delete",
        ),
        pytest.param(
            lambda c, ids, o: c.analyze.tasks.create(
                video={"type": "url", "url": "u"}, request_options=o
            ),
            id="analyze-create",
        ),
        pytest.param(
            lambda c, ids, o: c.embed.v2.tasks.create(
                input_type="video",
                model_name="marengo3.0",
                video={"media_source": {"url": "u"}},
                request_options=o,
            ),
            id="v2-create",
        ),
        pytest.param(
            lambda c, ids, o: c.embed.v1.tasks.create(
                model_name="marengo3.0", video_url="u", request_options=o
            ),
            id="v1-create",
        ),
    ],
)
async def test_request_options_accepted(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, call: Any
) -> None:
    ids = {kind: fake.add_task(kind) for kind in ("embed_v2", "embed_v1", "analyze")}
    fake.faults.push("*", delay=0.1)
    with pytest.raises(APITimeoutError) as info:
        await call(client, ids, {"timeout_in_seconds": 0.02, "max_retries": 0})
    assert info.value.retries == 0
    # One attempt at most: on a loaded machine the 20 ms limit can expire before the request
    # has even reached the server.
    sent = fake.request_count()
    assert sent <= 1
    fake.faults.push("*", status=429, times=5)  # retried by every method
    with pytest.raises(Exception) as info2:
        await call(client, ids, {"max_retries": 1})
    assert getattr(info2.value, "status_code", None) == 429
    assert getattr(info2.value, "retries", None) == 1
    assert fake.request_count() == sent + 2
    fake.faults.clear()
