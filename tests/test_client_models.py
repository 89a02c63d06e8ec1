"""Wire models: the documented example bodies decode, names are mapped, unknowns tolerated."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from twelvelabs_async import (
    ANALYZE_FINAL_STATUSES,
    EMBED_FINAL_STATUSES,
    AnalyzeTask,
    AsyncTwelveLabs,
    EmbeddingTask,
    EmbedV1Task,
    EmbedV1TaskStatus,
    Float32Vector,
    MediaEmbeddingTask,
    PageInfo,
    TaskPage,
    TaskStatus,
)
from twelvelabs_async.testing import FakeTwelveLabs
from twelvelabs_async.types import (
    AnalyzeTaskRequest,
    AsyncVideoInput,
    EmbeddingTaskCreated,
    EmbeddingV2TaskRequest,
    EmbedV1TaskCreated,
    MediaSource,
    PromptV2,
    VideoContext,
)

pytestmark = pytest.mark.anyio

API_DOCS = Path(
    os.environ.get("TWELVELABS_API_DOCS") or Path(__file__).resolve().parents[2] / "shared" / "api"
)
"""The project's API documentation: ``shared/api`` beside the checkout (where the project's
workspace keeps it), or wherever ``TWELVELABS_API_DOCS`` points. The test skips without it."""
UTC = timezone.utc

# --- the documented example bodies (copied from the API docs) --------------------------------

# embed-v2-tasks-retrieve.page.txt: "Task still processing"
V2_PROCESSING: dict[str, Any] = {
    "_id": "64f8d2c7e4a1b37f8a9c5d12",
    "status": "processing",
    "data": [{"embedding": [0.111, 0.234, -0.567, 0.89]}],
}

# The "Task completed with results" / "Task failed" examples are named in
# embed-v2-tasks-retrieve.openapi.md but their bodies are not stored; these follow its schema
# (EmbeddingTaskResponse with EmbeddingVideoMetadata) and REFERENCE.md section 2.3.
V2_READY: dict[str, Any] = {
    "_id": "64f8d2c7e4a1b37f8a9c5d12",
    "status": "ready",
    "created_at": "2025-01-15T10:29:19.968Z",
    "updated_at": "2025-01-15T10:31:02Z",
    "data": [
        {
            "embedding": [0.111, 0.234, -0.567, 0.89],
            "embedding_option": "visual",
            "embedding_scope": "clip",
            "start_sec": 0.0,
            "end_sec": 6.0,
        },
        {
            "embedding": [0.5, -0.25, 0.125, 0.0],
            "embedding_option": "audio",
            "embedding_scope": "asset",
            "start_sec": None,
            "end_sec": None,
        },
    ],
    "metadata": {
        "input_type": "video",
        "input_url": "https://example.com/video.mp4",
        "clip_length": 6,
        "embedding_scopes": ["clip", "asset"],
        "embedding_options": ["visual", "audio"],
        "duration": 13.44,
        "start_offset_sec": 0,
        "end_offset_sec": 13.44,
    },
}

V2_FAILED: dict[str, Any] = {
    "_id": "64f8d2c7e4a1b37f8a9c5d13",
    "status": "failed",
    "created_at": "2025-01-15T10:29:19.968+00:00",
    "updated_at": "2025-01-15T12:29:19.968+02:00",
    "data": None,
    "metadata": {
        "input_type": "audio",
        "input_url": "https://example.com/a.mp3",
        "embedding_scopes": ["clip"],
        "embedding_options": ["audio"],
        "duration": 3.5,
    },
    "error": {"message": "The media could not be decoded."},
}

# embed-v1-tasks-list.page.txt
V1_LIST: dict[str, Any] = {
    "data": [
        {
            "_id": "66f537778d9641fe5a0d101f",
            "model_name": "marengo3.0",
            "status": "processing",
            "created_at": "2024-09-26T10:29:19.968Z",
            "video_embedding": {
                "metadata": {
                    "duration": 13.4400001,
                    "input_filename": "01.mp4",
                    "video_clip_length": 6,
                    "video_embedding_scope": ["clip"],
                }
            },
        },
        {
            "_id": "66f535874bd2802fc13293f4",
            "model_name": "marengo3.0",
            "status": "processing",
            "created_at": "2024-09-26T10:21:04.157Z",
            "video_embedding": {
                "metadata": {
                    "duration": 13.4400001,
                    "input_filename": "01.mp4",
                    "video_clip_length": 6,
                    "video_embedding_scope": ["clip"],
                }
            },
        },
        {
            "_id": "66f534fd4bd2802fc13293ee",
            "model_name": "marengo3.0",
            "status": "processing",
            "created_at": "2024-09-26T10:18:44.866Z",
            "video_embedding": {
                "metadata": {
                    "duration": 13.4400001,
                    "input_filename": "01.mp4",
                    "video_clip_length": 6,
                    "video_embedding_scope": ["clip"],
                }
            },
        },
    ],
    "page_info": {"limit_per_page": 10, "page": 1, "total_page": 1, "total_results": 3},
}

# analyze-tasks-list.page.txt
ANALYZE_LIST: dict[str, Any] = {
    "data": [
        {
            "task_id": "64f8d2c7e4a1b37f8a9c5d12",
            "custom_id": "prod-segment-analysis-42",
            "status": "ready",
            "created_at": "2024-09-26T10:29:19.968Z",
            "video_source": {"type": "url", "url": "https://example.com/video.mp4"},
            "request_params": {
                "analysis_mode": "general",
                "prompt": "Generate a detailed summary of",
                "temperature": 0.2,
                "max_tokens": 4096,
            },
            "completed_at": "2024-09-26T10:30:45.123Z",
            "result": {
                "generation_id": "gen_xyz789",
                "data": "Video Summary: This is a detailed summary of the video content...",
                "finish_reason": "stop",
                "usage": {"output_tokens": 150, "input_tokens": 45},
            },
        }
    ],
    "page_info": {"page": 1},
}

# REFERENCE.md section 4.3 (GET /embed/tasks/{task_id}): the v1 vector's wire name is "float".
V1_TASK: dict[str, Any] = {
    "_id": "66f537778d9641fe5a0d101f",
    "model_name": "marengo3.0",
    "status": "ready",
    "created_at": "2024-09-26T10:29:19.968Z",
    "updated_at": "2024-09-26T10:30:00Z",
    "video_embedding": {
        "metadata": {
            "input_url": "https://example.com/v.mp4",
            "video_clip_length": 6,
            "video_embedding_scope": ["clip", "video"],
            "duration": 12.0,
        },
        "segments": [
            {
                "float": [0.1, -0.2, 0.3],
                "start_offset_sec": 0,
                "end_offset_sec": 6,
                "embedding_option": "visual",
                "embedding_scope": "clip",
            },
            {
                "float": [0.4, 0.5, -0.6],
                "start_offset_sec": 0,
                "end_offset_sec": 12,
                "embedding_option": "audio",
                "embedding_scope": "video",
            },
        ],
    },
}


def _numbered_json(text: str) -> Any:
    """The JSON example of a stored docs page: lines ``1{``, ``2 "data": [`` ... numbered."""
    lines = text.splitlines()
    start = lines.index("1{")
    body = []
    for number, line in enumerate(lines[start:], start=1):
        prefix = str(number)
        if not line.startswith(prefix):
            break
        body.append(line[len(prefix) :])
    return json.loads("\n".join(body))


@pytest.mark.skipif(not API_DOCS.is_dir(), reason="the shared API docs are not available")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("embed-v2-tasks-retrieve.page.txt", V2_PROCESSING),
        ("embed-v1-tasks-list.page.txt", V1_LIST),
        ("analyze-tasks-list.page.txt", ANALYZE_LIST),
    ],
)
def test_copies_match_the_stored_docs(name: str, expected: dict[str, Any]) -> None:
    assert _numbered_json((API_DOCS / name).read_text()) == expected


def _decode(tp: Any, value: Any) -> Any:
    return msgspec.json.decode(json.dumps(value).encode(), type=tp)


# --- examples decode -------------------------------------------------------------------------


def test_v2_processing_example() -> None:
    task = _decode(EmbeddingTask, V2_PROCESSING)
    assert task.id == "64f8d2c7e4a1b37f8a9c5d12"
    assert task.status == "processing"
    assert not task.is_final
    assert task.data is not None
    # Vectors are float32 (issue 12): equal to the API's values at float32 precision.
    assert task.data[0].embedding == Float32Vector([0.111, 0.234, -0.567, 0.89])
    assert task.data[0].embedding_option is None
    assert task.created_at is None
    assert task.metadata is None
    assert task.error_message is None


def test_v2_ready_example() -> None:
    task = _decode(EmbeddingTask, V2_READY)
    assert task.is_final
    assert task.status == "ready"
    assert task.created_at == datetime(2025, 1, 15, 10, 29, 19, 968000, tzinfo=UTC)
    assert task.updated_at == datetime(2025, 1, 15, 10, 31, 2, tzinfo=UTC)
    assert task.created_at.tzinfo is not None
    assert task.data is not None
    assert [d.embedding_option for d in task.data] == ["visual", "audio"]
    assert [d.embedding_scope for d in task.data] == ["clip", "asset"]
    assert task.data[0].start_sec == 0.0
    assert task.data[0].end_sec == 6.0
    assert task.data[1].start_sec is None
    assert task.metadata is not None
    assert task.metadata.input_type == "video"
    assert task.metadata.clip_length == 6
    assert task.metadata.embedding_scopes == ["clip", "asset"]
    assert task.metadata.embedding_options == ["visual", "audio"]
    assert task.metadata.duration == 13.44


def test_v2_failed_example() -> None:
    task = _decode(EmbeddingTask, V2_FAILED)
    assert task.is_final
    assert task.status == "failed"
    assert task.data is None
    assert task.error_message == "The media could not be decoded."
    assert task.metadata is not None
    assert task.metadata.input_type == "audio"
    # Offsets are applied: both timestamps are the same instant.
    assert task.updated_at == task.created_at
    assert task.updated_at is not None
    assert task.updated_at.utcoffset() == timedelta(hours=2)


def test_v1_list_example() -> None:
    page = _decode(TaskPage[MediaEmbeddingTask], V1_LIST)
    assert [t.id for t in page.items] == [
        "66f537778d9641fe5a0d101f",
        "66f535874bd2802fc13293f4",
        "66f534fd4bd2802fc13293ee",
    ]
    first = page.items[0]
    assert first.model_name == "marengo3.0"
    assert first.status == "processing"
    assert not first.is_final
    assert first.created_at == datetime(2024, 9, 26, 10, 29, 19, 968000, tzinfo=UTC)
    assert first.updated_at is None
    assert first.video_embedding is not None
    assert first.video_embedding.metadata == {
        "duration": 13.4400001,
        "input_filename": "01.mp4",
        "video_clip_length": 6,
        "video_embedding_scope": ["clip"],
    }
    assert page.page_info == PageInfo(limit_per_page=10, page=1, total_page=1, total_results=3)


def test_analyze_list_example() -> None:
    page = _decode(TaskPage[AnalyzeTask], ANALYZE_LIST)
    (task,) = page.items
    assert task.task_id == "64f8d2c7e4a1b37f8a9c5d12"
    assert task.id == task.task_id
    assert task.custom_id == "prod-segment-analysis-42"
    assert task.status == "ready"
    assert task.is_final
    assert task.created_at == datetime(2024, 9, 26, 10, 29, 19, 968000, tzinfo=UTC)
    assert task.completed_at == datetime(2024, 9, 26, 10, 30, 45, 123000, tzinfo=UTC)
    assert task.video_source is not None
    assert task.video_source.type == "url"
    assert task.video_source.url == "https://example.com/video.mp4"
    assert task.request_params is not None
    assert task.request_params.analysis_mode == "general"
    assert task.request_params.prompt == "Generate a detailed summary of"
    assert task.request_params.max_tokens == 4096
    assert task.result is not None
    assert task.result.generation_id == "gen_xyz789"
    assert task.result.finish_reason == "stop"
    assert task.result.usage is not None
    assert task.result.usage.output_tokens == 150
    assert task.result.usage.input_tokens == 45
    assert task.error_message is None
    assert page.page_info == PageInfo(page=1)
    assert page.page_info.total_page is None


def test_v1_task_float_is_float_underscore() -> None:
    task = _decode(EmbedV1Task, V1_TASK)
    assert task.id == "66f537778d9641fe5a0d101f"
    assert task.is_final
    assert task.video_embedding is not None
    segments = task.video_embedding.segments
    assert segments is not None
    assert segments[0].float_ == Float32Vector([0.1, -0.2, 0.3])
    assert segments[1].float_ == Float32Vector([0.4, 0.5, -0.6])
    assert segments[1].embedding_scope == "video"
    assert task.video_embedding.metadata is not None
    assert task.video_embedding.metadata.video_embedding_scope == ["clip", "video"]
    status = _decode(EmbedV1TaskStatus, V1_TASK)  # the status model ignores the extras
    assert status.id == task.id
    assert status.is_final
    assert status.error_message is None
    # And it encodes back under the wire names.
    encoded = json.loads(msgspec.json.encode(task))
    assert encoded["_id"] == task.id
    assert "float" in encoded["video_embedding"]["segments"][0]
    assert "float_" not in encoded["video_embedding"]["segments"][0]


def test_created_answers() -> None:
    created = _decode(EmbeddingTaskCreated, {"_id": "abc", "status": "processing", "data": None})
    assert created.id == "abc"
    assert created.status == "processing"
    assert _decode(EmbedV1TaskCreated, {"_id": "v1"}).id == "v1"


# --- tolerance -------------------------------------------------------------------------------


def _with_extras(value: Any, opaque: frozenset[str] = frozenset()) -> Any:
    """``value`` with an unknown field added to every object (except free-form ones)."""
    if isinstance(value, dict):
        out = {k: v if k in opaque else _with_extras(v, opaque) for k, v in value.items()}
        out["field_added_in_2027"] = {"nested": [1, 2, {"x": None}]}
        return out
    if isinstance(value, list):
        return [_with_extras(v, opaque) for v in value]
    return value


@pytest.mark.parametrize(
    ("tp", "body", "opaque"),
    [
        (EmbeddingTask, V2_READY, ()),
        (EmbeddingTask, V2_FAILED, ()),
        # A list item's per-media ``metadata`` is a free-form dict: it keeps what it gets.
        (TaskPage[MediaEmbeddingTask], V1_LIST, ("metadata",)),
        (TaskPage[AnalyzeTask], ANALYZE_LIST, ()),
        (EmbedV1Task, V1_TASK, ()),
    ],
)
def test_unknown_fields_are_ignored(tp: Any, body: dict[str, Any], opaque: tuple[str, ...]) -> None:
    assert _decode(tp, _with_extras(body, frozenset(opaque))) == _decode(tp, body)


@pytest.mark.parametrize(
    ("tp", "body"),
    [
        (EmbeddingTask, {"_id": "a", "status": "archiving"}),
        (EmbedV1Task, {"_id": "a", "status": "archiving"}),
        (EmbedV1TaskStatus, {"_id": "a", "status": "archiving"}),
        (MediaEmbeddingTask, {"_id": "a", "status": "archiving"}),
        (AnalyzeTask, {"task_id": "a", "status": "archiving"}),
    ],
)
def test_unknown_status_is_kept_and_not_final(tp: Any, body: dict[str, Any]) -> None:
    task = _decode(tp, body)
    assert task.status == "archiving"
    assert task.is_final is False


@pytest.mark.parametrize("input_type", ["hologram", "document", "image", "text_image", ""])
def test_unknown_metadata_input_type_decodes(input_type: str) -> None:
    body = {
        "_id": "a",
        "status": "ready",
        "data": [{"embedding": [1.0], "embedding_scope": "page", "start_page_number": 2}],
        "metadata": {
            "input_type": input_type,
            "pages": 12,
            "embedding_dimension": 256,
            "holo_depth": {"z": 3},
        },
        "usage": {"input_tokens": {"document": 900}, "truncated": False},
    }
    task = _decode(EmbeddingTask, body)
    assert task.metadata is not None
    assert task.metadata.input_type == input_type
    assert task.metadata.embedding_dimension == 256
    assert task.data is not None
    assert task.data[0].start_page_number == 2
    assert task.usage is not None
    assert task.usage.input_tokens == {"document": 900}


def test_metadata_without_input_type_decodes() -> None:
    task = _decode(EmbeddingTask, {"_id": "a", "status": "processing", "metadata": {}})
    assert task.metadata is not None
    assert task.metadata.input_type is None


@pytest.mark.parametrize(
    "status", ["processing", "ready", "failed", "canceled", "queued", "pending", "weird"]
)
def test_is_final_of_every_model(status: str) -> None:
    embed_final = status in ("ready", "failed")
    analyze_final = status in ("ready", "failed", "canceled")
    assert _decode(EmbeddingTask, {"_id": "a", "status": status}).is_final is embed_final
    assert _decode(EmbedV1Task, {"_id": "a", "status": status}).is_final is embed_final
    assert _decode(EmbedV1TaskStatus, {"_id": "a", "status": status}).is_final is embed_final
    assert _decode(MediaEmbeddingTask, {"_id": "a", "status": status}).is_final is embed_final
    assert _decode(AnalyzeTask, {"task_id": "a", "status": status}).is_final is analyze_final


def test_final_status_constants() -> None:
    assert frozenset({"ready", "failed"}) == EMBED_FINAL_STATUSES
    assert frozenset({"ready", "failed", "canceled"}) == ANALYZE_FINAL_STATUSES
    assert EmbeddingTask.FINAL_STATUSES == EMBED_FINAL_STATUSES
    assert EmbedV1Task.FINAL_STATUSES == EMBED_FINAL_STATUSES
    assert AnalyzeTask.FINAL_STATUSES == ANALYZE_FINAL_STATUSES
    assert TaskStatus.CANCELED == "canceled"


def test_v1_status_without_status_is_not_final() -> None:
    status = _decode(EmbedV1TaskStatus, {"_id": "a"})
    assert status.status is None
    assert not status.is_final


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-09-26T10:29:19.968Z", datetime(2024, 9, 26, 10, 29, 19, 968000, tzinfo=UTC)),
        ("2024-09-26T10:29:19Z", datetime(2024, 9, 26, 10, 29, 19, tzinfo=UTC)),
        ("2024-09-26T12:29:19+02:00", datetime(2024, 9, 26, 10, 29, 19, tzinfo=UTC)),
        ("2024-09-26T10:29:19.123456Z", datetime(2024, 9, 26, 10, 29, 19, 123456, tzinfo=UTC)),
    ],
)
def test_datetimes_parsed(text: str, expected: datetime) -> None:
    task = _decode(AnalyzeTask, {"task_id": "a", "status": "queued", "created_at": text})
    assert task.created_at == expected
    assert task.created_at is not None
    assert task.created_at.tzinfo is not None


def test_list_without_data_or_page_info() -> None:
    page = _decode(TaskPage[AnalyzeTask], {})
    assert page.items == []
    assert page.data is None
    assert page.page_info is None
    assert _decode(TaskPage[AnalyzeTask], {"data": None}).items == []


def test_list_item_fields_may_all_be_missing() -> None:
    item = _decode(MediaEmbeddingTask, {})
    assert item.id is None
    assert item.status is None
    assert not item.is_final


def test_analyze_max_tokens_unlimited_and_warning_on_ready() -> None:
    body = {
        "task_id": "a",
        "status": "ready",
        "request_params": {"max_tokens": "unlimited", "prompt_v2": {"input_text": "hi"}},
        "result": {"data": "{}", "finish_reason": "length"},
        "error": {"message": "truncated output", "code": None},
        "webhooks": [{"url": "https://hook", "delivered": False, "attempts": 3, "last_error": "x"}],
    }
    task = _decode(AnalyzeTask, body)
    assert task.request_params is not None
    assert task.request_params.max_tokens == "unlimited"
    assert task.request_params.prompt_v_2 == {"input_text": "hi"}
    assert task.is_final
    assert task.error_message == "truncated output"
    assert task.webhooks is not None
    assert task.webhooks[0].attempts == 3


# --- request bodies --------------------------------------------------------------------------


def test_request_bodies_use_wire_names_and_omit_unset_fields() -> None:
    analyze = AnalyzeTaskRequest(
        video=VideoContext.from_url("https://x/v.mp4"),
        prompt_v_2=PromptV2(input_text="Describe <@logo>"),
        temperature=0.1,
    )
    assert json.loads(msgspec.json.encode(analyze)) == {
        "video": {"type": "url", "url": "https://x/v.mp4"},
        "prompt_v2": {"input_text": "Describe <@logo>"},
        "temperature": 0.1,
    }
    embed = EmbeddingV2TaskRequest(
        input_type="video",
        model_name="marengo3.0",
        video=AsyncVideoInput(media_source=MediaSource(asset_id="asset-1")),
    )
    assert json.loads(msgspec.json.encode(embed)) == {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"asset_id": "asset-1"}},
    }
    assert VideoContext.from_asset("a1") == VideoContext(type="asset_id", asset_id="a1")


# --- the same bodies through the client ------------------------------------------------------


@pytest.mark.parametrize("body", [V2_PROCESSING, V2_READY, V2_FAILED])
async def test_examples_through_the_client(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, body: dict[str, Any]
) -> None:
    fake.faults.push(
        "GET /v1.3/embed-v2/tasks/{task_id}", status=200, body=json.dumps(body).encode()
    )
    task = await client.embed.v2.tasks.retrieve(body["_id"])
    assert task == _decode(EmbeddingTask, body)


async def test_list_examples_through_the_client(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs
) -> None:
    fake.faults.push("GET /v1.3/embed/tasks", status=200, body=json.dumps(V1_LIST).encode())
    items = await client.embed.v1.tasks.list().to_list()
    assert [t.id for t in items] == [t["_id"] for t in V1_LIST["data"]]
    fake.faults.push("GET /v1.3/analyze/tasks", status=200, body=json.dumps(ANALYZE_LIST).encode())
    analyses = await client.analyze.tasks.list().to_list()
    assert [t.task_id for t in analyses] == ["64f8d2c7e4a1b37f8a9c5d12"]
    # One request each: total_page=1 for v1; a short page (1 < 10) for analyze.
    assert fake.request_count("GET /v1.3/embed/tasks") == 1
    assert fake.request_count("GET /v1.3/analyze/tasks") == 1
