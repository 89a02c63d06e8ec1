"""Tests of the fake TwelveLabs server (``twelvelabs_async.testing``)."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from twelvelabs_async.testing import Chaos, FakeTwelveLabs, RequestRecord
from twelvelabs_async.testing.pytest_plugin import (
    twelvelabs_fake as _twelvelabs_fake_fixture,  # noqa: F401  (registers the fixture)
)

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parents[1]
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HEX24_RE = re.compile(r"^[0-9a-f]{24}$")
V2_TASK = "GET /v1.3/embed-v2/tasks/{task_id}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A hand-advanced monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeTwelveLabs]:
    async with FakeTwelveLabs(clock=clock) as server:
        yield server


@pytest.fixture
async def http(fake: FakeTwelveLabs) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"x-api-key": fake.api_key}) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    **kwargs: Any,
) -> tuple[int, Any, Any]:
    async with http.request(method, url, **kwargs) as resp:
        raw = await resp.read()
        body = json.loads(raw) if raw else None
        return resp.status, resp.headers, body


async def get(http: aiohttp.ClientSession, url: str | URL, **kwargs: Any) -> tuple[int, Any]:
    status, _, body = await call(http, "GET", url, **kwargs)
    return status, body


def v1_form(**fields: str | list[str]) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            form.add_field(name, v)
    return form


# ---------------------------------------------------------------------------- embed v2


@pytest.mark.parametrize(("kind", "path"), [("embed_v2", "embed-v2"), ("analyze", "analyze")])
async def test_listing_the_finished_side_observes_poll_based_tasks(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession, kind: str, path: str
) -> None:
    """A sweeping poller may list only finished tasks (``status=ready``): page 1 of such a
    walk counts as an observation of every task the status left out, so poll-based tasks
    finish for a client that never retrieves them; later pages do not count again."""
    ids = fake.add_tasks(kind, 3, finish_after_polls=2)
    for page, finished in ((2, 0), (1, 0), (1, 3)):
        status, body = await get(
            http, f"{fake.base_url}/{path}/tasks", params={"status": "ready", "page": page}
        )
        assert status == 200
        assert sum(fake.task(kind, i).final_at is not None for i in ids) == finished
    assert len(body["data"]) == 0  # built before the second observation finished them
    status, body = await get(http, f"{fake.base_url}/{path}/tasks", params={"status": "ready"})
    shown = [item.get("_id") or item.get("id") or item.get("task_id") for item in body["data"]]
    assert sorted(shown) == sorted(ids)


async def test_embed_v2_create_poll_and_ready_shape(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    status, _, body = await call(
        http,
        "POST",
        f"{fake.base_url}/embed-v2/tasks",
        json={
            "input_type": "video",
            "model_name": "marengo3.0",
            "video": {"media_source": {"url": "https://example.com/v.mp4"}},
        },
    )
    assert status == 202
    assert set(body) == {"_id", "status", "data"}
    assert body["status"] == "processing"
    assert body["data"] is None
    tid = body["_id"]
    assert HEX24_RE.match(tid)

    status, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert status == 200
    assert task["status"] == "processing"
    assert task["data"] is None
    assert "error" not in task
    assert TS_RE.match(task["created_at"])
    assert TS_RE.match(task["updated_at"])
    assert task["metadata"]["input_type"] == "video"
    assert task["metadata"]["input_url"] == "https://example.com/v.mp4"
    assert fake.task("embed_v2", tid).final_at is None

    clock.advance(1.5)
    status, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert task["status"] == "ready"
    # The published defaults: options visual, audio, transcription; scopes clip and asset.
    assert len(task["data"]) == 4 + 3
    first = task["data"][0]
    assert set(first) == {
        "embedding",
        "embedding_option",
        "embedding_scope",
        "start_sec",
        "end_sec",
    }
    assert len(first["embedding"]) == 1024
    assert all(isinstance(x, float) for x in first["embedding"][:10])
    assert [(d["embedding_option"], d["embedding_scope"]) for d in task["data"]] == [
        ("visual", "clip"),
        ("audio", "clip"),
        ("transcription", "clip"),
        ("visual", "clip"),
        ("visual", "asset"),
        ("audio", "asset"),
        ("transcription", "asset"),
    ]
    assert task["data"][3]["start_sec"] == 6.0
    assert task["data"][3]["end_sec"] == 12.0
    assert (task["data"][4]["start_sec"], task["data"][4]["end_sec"]) == (0.0, 12.0)
    meta = task["metadata"]
    assert meta["clip_length"] == 6
    assert meta["embedding_scopes"] == ["clip", "asset"]
    assert meta["embedding_options"] == ["visual", "audio", "transcription"]
    assert meta["duration"] == 12.0
    rec = fake.task("embed_v2", tid)
    assert rec.polls == 2
    assert rec.final_at == clock.now
    assert rec.status == "ready"

    # Final bodies are cached and stable.
    _, again = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert again == task


async def test_embed_v2_create_validation(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    url = f"{fake.base_url}/embed-v2/tasks"
    status, _, body = await call(http, "POST", url, json={"model_name": "marengo3.0"})
    assert status == 400
    assert body["error"]["code"] == "parameter_not_provided"
    assert "input_type" in body["error"]["message"]
    status, _, body = await call(http, "POST", url, json={"input_type": "video"})
    assert status == 400
    assert "model_name" in body["error"]["message"]
    status, _, body = await call(http, "POST", url, data=b"not json")
    assert status == 400
    assert body["error"]["code"] == "parameter_invalid"
    assert fake.tasks("embed_v2") == []


async def test_embed_v2_failed_task_and_config(clock: FakeClock) -> None:
    async with (
        FakeTwelveLabs(clock=clock, embedding_dim=512, segments=3) as fake,
        aiohttp.ClientSession(headers={"x-api-key": "anything"}) as http,
    ):
        bad = fake.add_task("embed_v2", finish_after_polls=1, final_status="failed")
        good = fake.add_task("embed_v2", status="ready")
        _, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{bad}")
        assert task["status"] == "failed"
        assert task["data"] is None
        assert set(task["error"]) == {"message"}
        assert task["error"]["message"]
        _, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{good}")
        assert len(task["data"]) == 3
        assert len(task["data"][0]["embedding"]) == 512


async def test_embedding_vectors_are_deterministic_per_seed() -> None:
    a = FakeTwelveLabs(seed=5)
    b = FakeTwelveLabs(seed=5)
    c = FakeTwelveLabs(seed=6)
    assert a.payloads.v2_data() == b.payloads.v2_data() != c.payloads.v2_data()


# ---------------------------------------------------------------------------- embed v1


async def test_embed_v1_create_status_retrieve(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    url = f"{fake.base_url}/embed/tasks"
    form = v1_form(
        model_name="marengo3.0",
        video_url="https://example.com/a.mp4",
        video_clip_length="5",
        video_embedding_scope=["clip", "video"],
    )
    status, _, body = await call(http, "POST", url, data=form)
    assert status == 200
    assert set(body) == {"_id"}
    tid = body["_id"]

    status, st = await get(http, f"{url}/{tid}/status")
    assert status == 200
    assert set(st) == {"_id", "model_name", "status", "video_embedding"}
    assert st["status"] == "processing"
    assert st["model_name"] == "marengo3.0"
    meta = st["video_embedding"]["metadata"]
    assert meta["input_url"] == "https://example.com/a.mp4"
    assert meta["video_clip_length"] == 5
    assert meta["video_embedding_scope"] == ["clip", "video"]

    status, task = await get(http, f"{url}/{tid}")  # second poll -> ready
    assert task["status"] == "ready"
    assert set(task) == {
        "_id",
        "model_name",
        "status",
        "created_at",
        "updated_at",
        "video_embedding",
    }
    segs = task["video_embedding"]["segments"]
    # Scope video was asked for: the whole-video embedding per option follows the clips.
    assert [(x["embedding_scope"], x["embedding_option"]) for x in segs[4:]] == [
        ("video", "visual"),
        ("video", "audio"),
    ]
    assert (segs[4]["start_offset_sec"], segs[4]["end_offset_sec"]) == (0.0, 12.0)
    assert len(segs) == 6
    assert set(segs[0]) == {
        "float",
        "start_offset_sec",
        "end_offset_sec",
        "embedding_option",
        "embedding_scope",
    }
    assert len(segs[0]["float"]) == 1024

    _, visual = await get(http, f"{url}/{tid}", params={"embedding_option": "visual"})
    assert [s["embedding_option"] for s in visual["video_embedding"]["segments"]] == ["visual"] * 3
    _, both = await get(
        http, f"{url}/{tid}", params=[("embedding_option", "visual"), ("embedding_option", "audio")]
    )
    assert len(both["video_embedding"]["segments"]) == 6
    assert fake.task("embed_v1", tid).polls == 4


async def test_embed_v1_not_ready_has_no_segments(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    tid = fake.add_task("embed_v1", finish_after_polls=5)
    _, task = await get(http, f"{fake.base_url}/embed/tasks/{tid}")
    assert task["status"] == "processing"
    assert set(task["video_embedding"]) == {"metadata"}


async def test_embed_v1_create_validation(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    url = f"{fake.base_url}/embed/tasks"
    status, _, body = await call(http, "POST", url, data=v1_form(video_url="https://x/y.mp4"))
    assert status == 400
    assert body["code"] == "parameter_not_provided"
    assert "error" not in body
    status, _, body = await call(http, "POST", url, data=v1_form(model_name="marengo3.0"))
    assert status == 400
    assert body["code"] == "parameter_not_provided"
    # A file upload is accepted (and discarded); the file name is reported.
    form = aiohttp.FormData()
    form.add_field("model_name", "marengo3.0")
    form.add_field("video_file", b"\x00" * 4096, filename="clip.mp4", content_type="video/mp4")
    status, _, body = await call(http, "POST", url, data=form)
    assert status == 200
    _, st = await get(http, f"{url}/{body['_id']}/status")
    assert st["video_embedding"]["metadata"]["input_filename"] == "clip.mp4"
    # Not multipart -> 400 flat.
    status, _, body = await call(
        http, "POST", url, data={"model_name": "marengo3.0", "video_url": "https://x/y.mp4"}
    )
    assert status == 400
    assert body["code"] == "parameter_invalid"


# ---------------------------------------------------------------------------- lists


async def test_embed_lists_order_page_info_and_filters(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    base = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    ids = fake.add_tasks(
        "embed_v2",
        25,
        created_at=lambda i: base + timedelta(seconds=i, milliseconds=250),
        status=lambda i: "ready" if i % 5 == 0 else None,
        finish_after_seconds=math.inf,
    )
    url = f"{fake.base_url}/embed-v2/tasks"
    status, body = await get(http, url)
    assert status == 200
    assert body["page_info"] == {
        "limit_per_page": 10,
        "page": 1,
        "total_page": 3,
        "total_results": 25,
    }
    assert [t["_id"] for t in body["data"]] == ids[::-1][:10]
    item = body["data"][0]
    assert set(item) == {
        "_id",
        "model_name",
        "status",
        "created_at",
        "updated_at",
        "video_embedding",
    }
    assert set(item["video_embedding"]["metadata"]) == {
        "input_url",
        "video_clip_length",
        "video_embedding_scope",
        "duration",
    }
    assert item["created_at"] == "2025-03-01T12:00:24.250Z"

    _, page3 = await get(http, url, params={"page": "3"})
    assert [t["_id"] for t in page3["data"]] == ids[4::-1]
    _, beyond = await get(http, url, params={"page": "4"})
    assert beyond["data"] == []
    assert beyond["page_info"]["total_results"] == 25

    _, ready = await get(http, url, params={"status": "ready", "page_limit": "50"})
    assert [t["_id"] for t in ready["data"]] == [ids[i] for i in (20, 15, 10, 5, 0)]

    # Inclusive bounds, fractional seconds, both 'Z' and offsets.
    params = {"started_at": "2025-03-01T12:00:03.250Z", "ended_at": "2025-03-01T13:00:06.25+01:00"}
    _, window = await get(http, url, params=params)
    assert [t["_id"] for t in window["data"]] == ids[6:2:-1]
    _, window = await get(http, url, params={"started_at": "2025-03-01T12:00:03.251Z"})
    assert window["page_info"]["total_results"] == 21

    for bad in ({"page_limit": "51"}, {"page_limit": "0"}, {"page": "0"}, {"started_at": "x"}):
        status, _, err = await call(http, "GET", url, params=bad)
        assert status == 400
        assert err["code"] == "parameter_invalid"
        assert "error" not in err

    # A list page that shows a task counts as one observation of it.
    assert any(rec.polls > 0 for rec in fake.tasks("embed_v2"))
    seen = fake.add_task("embed_v2", finish_after_polls=2)
    for expected in ("processing", "processing", "ready"):
        _, page = await get(http, url, params={"page_limit": "1"})
        assert page["data"][0]["_id"] == seen
        assert page["data"][0]["status"] == expected

    fake.add_tasks("embed_v1", 3)
    _, v1 = await get(http, f"{fake.base_url}/embed/tasks", params={"page_limit": "2"})
    assert v1["page_info"] == {"limit_per_page": 2, "page": 1, "total_page": 2, "total_results": 3}


async def test_analyze_list_truncates_prompt_and_filters(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    a = fake.add_task("analyze", status="ready", video_url="https://example.com/a.mp4")
    b = fake.add_task(
        "analyze",
        asset_id="asset-1",
        analysis_mode="time_based_metadata",
        finish_after_seconds=math.inf,
    )
    c = fake.add_task("analyze", custom_id="my-id", finish_after_seconds=math.inf)
    url = f"{fake.base_url}/analyze/tasks"
    _, body = await get(http, url)
    assert body["page_info"] == {"page": 1}
    assert [t["task_id"] for t in body["data"]] == [c, b, a]
    item_c = body["data"][0]
    assert item_c["custom_id"] == "my-id"
    assert item_c["status"] == "queued"
    assert len(item_c["request_params"]["prompt"]) == 30
    item_a = body["data"][2]
    assert item_a["result"]["finish_reason"] == "stop"
    assert "completed_at" in item_a

    _, full = await get(http, f"{url}/{c}")
    assert len(full["request_params"]["prompt"]) > 30

    async def ids(**params: str) -> list[str]:
        _, res = await get(http, url, params=params)
        return [t["task_id"] for t in res["data"]]

    assert await ids(status="ready") == [a]
    assert await ids(video_url="https://example.com/a.mp4") == [a]
    assert await ids(asset_id="asset-1") == [b]
    assert await ids(analysis_mode="time_based_metadata") == [b]
    assert await ids(analysis_mode="general") == [c, a]
    status, _, err = await call(http, "GET", url, params={"page_limit": "100"})
    assert status == 400
    assert err["code"] == "parameter_invalid"


async def test_analyze_full_page_info_option() -> None:
    async with (
        FakeTwelveLabs(analyze_full_page_info=True) as fake,
        aiohttp.ClientSession(headers={"x-api-key": fake.api_key}) as http,
    ):
        fake.add_tasks("analyze", 3)
        _, body = await get(http, f"{fake.base_url}/analyze/tasks", params={"page_limit": "2"})
        assert body["page_info"] == {
            "limit_per_page": 2,
            "page": 1,
            "total_page": 2,
            "total_results": 3,
        }


async def test_large_store_is_fast(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    t0 = time.perf_counter()
    ids = fake.add_tasks("embed_v2", 100_000, status=lambda i: "ready" if i % 2 else None)
    assert time.perf_counter() - t0 < 5
    t0 = time.perf_counter()
    _, body = await get(
        http, f"{fake.base_url}/embed-v2/tasks", params={"page": "2000", "page_limit": "50"}
    )
    _, ready = await get(
        http, f"{fake.base_url}/embed-v2/tasks", params={"status": "ready", "page": "3"}
    )
    assert time.perf_counter() - t0 < 2
    assert body["data"][-1]["_id"] == ids[0]
    assert ready["page_info"]["total_results"] == 50_000


# ---------------------------------------------------------------------------- analyze


async def test_analyze_create_progress_and_idempotency(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    url = f"{fake.base_url}/analyze/tasks"
    req = {
        "video": {"type": "url", "url": "https://example.com/v.mp4"},
        "prompt": "Summarize this video in three sentences, please.",
        "custom_id": "job-1",
    }
    hdrs = {"Idempotency-Key": "idem-123"}
    s1, _, first = await call(http, "POST", url, json=req, headers=hdrs)
    s2, _, second = await call(http, "POST", url, json=req, headers=hdrs)
    assert s1 == s2 == 202
    assert first == second == {"task_id": first["task_id"], "status": "queued"}
    assert len(fake.tasks("analyze")) == 1
    assert [r.idempotency_key for r in fake.request_log] == ["idem-123", "idem-123"]

    tid = first["task_id"]
    _, task = await get(http, f"{url}/{tid}")
    assert task["status"] == "processing"
    assert "completed_at" not in task
    assert "result" not in task
    assert task["custom_id"] == "job-1"
    assert task["video_source"] == {"type": "url", "url": "https://example.com/v.mp4"}
    assert task["request_params"]["prompt"] == req["prompt"]
    assert task["request_params"]["temperature"] == 0.2
    _, task = await get(http, f"{url}/{tid}")
    assert task["status"] == "ready"
    assert TS_RE.match(task["completed_at"])
    result = task["result"]
    assert set(result) == {"generation_id", "data", "finish_reason", "usage"}
    assert set(result["usage"]) == {"output_tokens", "input_tokens"}
    assert "error" not in task

    status, _, err = await call(http, "POST", url, json={"prompt": "hi"})
    assert status == 400
    assert err["error"]["code"] == "parameter_not_provided"
    status, _, err = await call(
        http, "POST", url, json={"image": [{"name": "a", "url": "https://x/a.png"}], "prompt": "x"}
    )
    assert status == 202


async def test_analyze_failed_task(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    tid = fake.add_task(
        "analyze", finish_after_polls=1, final_status="failed", error_message="bad video"
    )
    _, task = await get(http, f"{fake.base_url}/analyze/tasks/{tid}")
    assert task["status"] == "failed"
    assert task["error"] == {"message": "bad video"}
    assert "result" not in task
    assert "completed_at" in task


async def test_analyze_delete_rules(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    url = f"{fake.base_url}/analyze/tasks"
    running = fake.add_task("analyze")
    done = fake.add_task("analyze", status="ready")
    status, _, err = await call(http, "DELETE", f"{url}/{running}")
    assert status == 409
    assert err["error"]["code"] == "task_in_progress"
    async with http.delete(f"{url}/{done}") as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    status, _, err = await call(http, "GET", f"{url}/{done}")
    assert status == 404
    assert err["error"]["code"] == "resource_not_exist"
    status, _, err = await call(http, "DELETE", f"{url}/{done}")
    assert status == 404


async def test_analyze_cancel_rules(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    url = f"{fake.base_url}/analyze/tasks"
    tid = fake.add_task("analyze")
    for _ in range(2):  # cancelling twice answers the same 200
        status, _, body = await call(http, "POST", f"{url}/{tid}/cancel")
        assert status == 200
        assert body == {"task_id": tid, "status": "canceled"}
    rec = fake.task("analyze", tid)
    assert rec.final_at == clock.now
    _, task = await get(http, f"{url}/{tid}")
    assert task["status"] == "canceled"
    assert task["error"]["code"] == "user_canceled"
    assert task["error"]["message"]
    assert "completed_at" in task
    assert "result" not in task

    for final in ("ready", "failed"):
        other = fake.add_task("analyze", status=final)
        status, _, err = await call(http, "POST", f"{url}/{other}/cancel")
        assert status == 409
        assert "code" in err["error"]
    status, _, err = await call(http, "POST", f"{url}/nope/cancel")
    assert status == 404
    assert err["error"]["code"] == "resource_not_exist"


# ---------------------------------------------------------------------------- progression


async def test_time_based_progression_with_fake_clock(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    created = clock.now
    tid = fake.add_task("embed_v2", finish_after_seconds=10)
    aid = fake.add_task("analyze", finish_after_seconds=10)
    _, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert task["status"] == "processing"

    clock.advance(5)
    _, listing = await get(http, f"{fake.base_url}/analyze/tasks")
    assert listing["data"][0]["status"] == "processing"  # queued -> processing at half time

    clock.advance(7)
    _, ready = await get(http, f"{fake.base_url}/analyze/tasks", params={"status": "ready"})
    assert [t["task_id"] for t in ready["data"]] == [aid]
    arec = fake.task("analyze", aid)
    assert arec.polls == 1  # the earlier list page showed it while it was processing
    assert arec.final_at == created + 10
    _, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert task["status"] == "ready"
    assert fake.task("embed_v2", tid).final_at == created + 10


async def test_handle_task_controls(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    never = fake.add_task("embed_v2", finish_after_seconds=math.inf)
    for _ in range(3):
        _, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{never}")
        assert task["status"] == "processing"
    fake.set_status("embed_v2", never, "failed", error_message="boom")
    _, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{never}")
    assert task["status"] == "failed"
    assert task["error"] == {"message": "boom"}

    ids = fake.add_tasks(
        "analyze", 4, status="ready", final_status=lambda i: "failed" if i % 2 else "ready"
    )
    assert [fake.task("analyze", i).status for i in ids] == ["ready", "ready", "ready", "ready"]
    ids = fake.add_tasks(
        "analyze", 4, finish_after_polls=0, final_status=lambda i: ("ready", "failed")[i % 2]
    )
    assert [fake.task("analyze", i).status for i in ids] == ["ready", "failed", "ready", "failed"]

    fake.delete_task("embed_v2", never)
    status, _ = await get(http, f"{fake.base_url}/embed-v2/tasks/{never}")
    assert status == 404
    with pytest.raises(KeyError):
        fake.task("embed_v2", never)
    with pytest.raises(KeyError):
        fake.delete_task("embed_v2", never)
    with pytest.raises(ValueError):
        fake.add_task("bogus")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- errors & auth


async def test_not_found_envelopes_per_kind(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    base = fake.base_url
    for path, nested in (
        ("/embed-v2/tasks/missing", True),
        ("/analyze/tasks/missing", True),
        ("/embed/tasks/missing", False),
        ("/embed/tasks/missing/status", False),
    ):
        status, body = await get(http, base + path)
        assert status == 404
        if nested:
            assert set(body) == {"error"}
            assert body["error"]["code"] == "resource_not_exist"
            assert body["error"]["message"]
        else:
            assert body["code"] == "resource_not_exist"
            assert body["message"]
    status, body = await get(http, base + "/nothing/here")
    assert status == 404
    assert body["code"] == "resource_not_exist"
    status, _, body = await call(http, "PUT", base + "/embed-v2/tasks")
    assert status == 405


async def test_auth(clock: FakeClock) -> None:
    async with FakeTwelveLabs("secret-key-123", clock=clock) as fake:
        assert fake.api_key == "secret-key-123"
        url = f"{fake.base_url}/embed-v2/tasks"
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"x-api-key": ""}, {"x-api-key": "wrong"}):
                status, hdrs, body = await call(http, "GET", url, headers=headers)
                assert status == 401
                assert body["code"] == "api_key_invalid"
                assert body["message"]
                assert hdrs["X-Api-Version"] == "1.3"
            status, _, _ = await call(http, "GET", url, headers={"x-api-key": "secret-key-123"})
            assert status == 200
            status, _, body = await call(
                http, "GET", url + "/secret-key-123", headers={"x-api-key": "secret-key-123"}
            )
            assert status == 404
            assert "secret-key-123" not in json.dumps(body)
        assert "secret-key-123" not in repr(fake.request_log)
        assert [r.status for r in fake.request_log] == [401, 401, 401, 200, 404]

    async with (
        FakeTwelveLabs() as fake,
        aiohttp.ClientSession(headers={"x-api-key": "whatever-you-like"}) as http,
    ):
        assert fake.api_key == "test-key"
        status, _ = await get(http, f"{fake.base_url}/analyze/tasks")
        assert status == 200
        assert "whatever-you-like" not in repr(fake.request_log)


async def test_percent_encoded_ids_reach_only_the_retrieve_route(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    weird = ["a/b", "x?y=1", "frag#ment", "..", "../..", "a/../../embed-v2/tasks"]
    for tid in weird:
        encoded = quote(tid, safe="").replace(".", "%2E")
        url = URL(f"{fake.base_url}/embed-v2/tasks/{encoded}", encoded=True)
        status, body = await get(http, url)
        assert status == 404, tid
        assert body["error"]["code"] == "resource_not_exist"
    assert fake.request_count("GET /v1.3/embed-v2/tasks") == 0
    assert fake.request_count(V2_TASK) == len(weird)
    assert all(
        "%2F" in r.path or "%2E" in r.path or "%3F" in r.path or "%23" in r.path
        for r in fake.request_log
    )

    rec = fake.store.add("embed_v2", task_id="dir/file?.mp4#1", status="ready")
    url = URL(f"{fake.base_url}/embed-v2/tasks/{quote(rec.id, safe='')}", encoded=True)
    status, body = await get(http, url)
    assert status == 200
    assert body["_id"] == "dir/file?.mp4#1"
    assert fake.request_log[-1].path == "/v1.3/embed-v2/tasks/dir%2Ffile%3F.mp4%231"


# ---------------------------------------------------------------------------- counters & log


async def test_request_counters_and_log(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    tid = fake.add_task("embed_v2")
    await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    await get(http, f"{fake.base_url}/embed-v2/tasks", params={"page": "1"})
    await call(http, "POST", f"{fake.base_url}/analyze/tasks", json={"video": {"url": "u"}})
    assert fake.requests_total == 4
    assert fake.request_count() == 4
    assert fake.request_count(V2_TASK) == 2
    assert fake.request_count("/embed-v2/tasks/{task_id}") == 2
    assert fake.request_count("GET /v1.3/embed-v2/tasks") == 1
    assert fake.request_count(method="GET") == 3
    assert fake.request_count(method="POST") == 1
    assert fake.request_count(f"GET /v1.3/embed-v2/tasks/{tid}") == 2
    log = fake.request_log
    assert log[0] == RequestRecord(
        time=clock.now,
        method="GET",
        route=V2_TASK,
        path=f"/v1.3/embed-v2/tasks/{tid}",
        status=200,
        idempotency_key=None,
    )
    assert log[2].path == "/v1.3/embed-v2/tasks?page=1"
    assert log[3].status == 202
    assert log[3].route == "POST /v1.3/analyze/tasks"
    fake.reset_counters()
    assert fake.requests_total == 0
    assert fake.request_log == []
    assert fake.request_count(V2_TASK) == 0
    with pytest.raises(ValueError):
        fake.request_count("GET /v1.3/embed-v2/task/{task_id}")


# ---------------------------------------------------------------------------- rate limits


async def test_rate_limit_headers(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    before = time.time()
    for i in range(1, 4):
        status, hdrs, _ = await call(http, "GET", f"{fake.base_url}/embed-v2/tasks")
        assert status == 200
        assert hdrs["X-Api-Version"] == "1.3"
        assert hdrs["X-Ratelimit-Limit"] == "600"
        assert hdrs["X-Ratelimit-Used"] == str(i)
        assert hdrs["X-Ratelimit-Remaining"] == str(600 - i)
        reset = int(hdrs["X-Ratelimit-Reset"])
        assert before + 59 <= reset <= time.time() + 61


async def test_rate_limit_enforced() -> None:
    async with (
        FakeTwelveLabs(rate_limit_per_minute=3, enforce_rate_limit=True) as fake,
        aiohttp.ClientSession(headers={"x-api-key": fake.api_key}) as http,
    ):
        url = f"{fake.base_url}/analyze/tasks"
        statuses = []
        for _ in range(5):
            status, hdrs, body = await call(http, "GET", url)
            statuses.append(status)
        assert statuses == [200, 200, 200, 429, 429]
        assert body["code"] == "too_many_requests"
        assert "error" not in body
        assert 1 <= int(hdrs["Retry-After"]) <= 60
        assert hdrs["X-Ratelimit-Remaining"] == "0"
        fake.reset_rate_limit()
        status, _ = await get(http, url)
        assert status == 200


# ---------------------------------------------------------------------------- faults


async def test_fault_status_headers_and_fifo(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession
) -> None:
    tid = fake.add_task("embed_v2", finish_after_polls=1)
    url = f"{fake.base_url}/embed-v2/tasks/{tid}"
    fake.faults.push(V2_TASK, status=503, headers={"Retry-After": "2"})
    fake.faults.push(V2_TASK, times=2, status=429, headers={"Retry-After": "0"})
    fake.faults.push("*", status=500, body=b'{"custom": true}')
    seen = []
    for _ in range(4):
        status, hdrs, body = await call(http, "GET", url)
        seen.append((status, hdrs.get("Retry-After"), body))
    assert seen[0][:2] == (503, "2")
    assert seen[0][2]["error"]["code"] == "service_unavailable"  # nested for embed-v2 retrieve
    assert seen[1][:2] == seen[2][:2] == (429, "0")
    assert seen[1][2]["code"] == "too_many_requests"
    assert seen[3] == (500, None, {"custom": True})
    assert fake.task("embed_v2", tid).polls == 0  # faulted requests never reached the task
    status, body = await get(http, url)
    assert status == 200
    assert body["status"] == "ready"
    assert fake.request_count(V2_TASK) == 5

    fake.faults.push(V2_TASK, status=502)
    fake.faults.clear()
    status, _ = await get(http, url)
    assert status == 200


async def test_fault_delay(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    tid = fake.add_task("analyze")
    url = f"{fake.base_url}/analyze/tasks/{tid}"
    fake.faults.push("GET /v1.3/analyze/tasks/{task_id}", delay=0.15)
    t0 = time.perf_counter()
    status, body = await get(http, url)
    assert time.perf_counter() - t0 >= 0.14
    assert status == 200
    assert body["task_id"] == tid
    fake.faults.push("GET /v1.3/analyze/tasks/{task_id}", delay=0.05, status=504)
    status, body = await get(http, url)
    assert status == 504
    assert body["error"]["code"] == "gateway_timeout"


async def test_fault_truncate(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    tid = fake.add_task("embed_v2", status="ready")
    fake.faults.push(V2_TASK, truncate=True)
    async with http.get(f"{fake.base_url}/embed-v2/tasks/{tid}") as resp:
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) > 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert fake.task("embed_v2", tid).polls == 1  # processed, then cut
    status, body = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert status == 200
    assert body["status"] == "ready"


async def test_fault_drop(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    tid = fake.add_task("embed_v2")
    # aiohttp transparently retries an idempotent request once after a disconnect,
    # so two drops are needed to surface the error through a GET.
    fake.faults.push(V2_TASK, drop=True, times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert fake.request_count(V2_TASK) == 2
    assert [r.status for r in fake.request_log] == [0, 0]
    fake.faults.push("POST /v1.3/analyze/tasks", drop=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(http, "POST", f"{fake.base_url}/analyze/tasks", json={"video": {"url": "u"}})
    assert fake.tasks("analyze") == []  # a dropped request is not processed
    status, _ = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
    assert status == 200


async def test_fault_not_json(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    fake.faults.push("GET /v1.3/analyze/tasks", not_json=True)
    async with http.get(f"{fake.base_url}/analyze/tasks") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        text = await resp.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_chaos_counts(fake: FakeTwelveLabs, http: aiohttp.ClientSession) -> None:
    fake.add_task("embed_v2", status="ready")
    fake.chaos = Chaos(
        p_5xx=0.2, p_429=0.2, p_drop=0.1, p_truncate=0.1, p_slow=0.1, slow_delay=0.01, seed=3
    )
    url = f"{fake.base_url}/embed-v2/tasks"
    outcomes: dict[str, int] = {"ok": 0, "5xx": 0, "429": 0, "error": 0}
    for _ in range(120):
        try:
            status, hdrs, _ = await call(http, "GET", url)
        except aiohttp.ClientError:
            outcomes["error"] += 1
            continue
        if status == 200:
            outcomes["ok"] += 1
        elif status == 429:
            outcomes["429"] += 1
            assert hdrs["Retry-After"] == "0"
        else:
            assert 500 <= status <= 504
            outcomes["5xx"] += 1
    counts = fake.chaos_counts
    assert set(counts) == {"5xx", "429", "drop", "truncate", "slow"}
    assert all(n > 0 for n in counts.values()), counts
    assert counts["5xx"] == outcomes["5xx"]
    assert counts["429"] == outcomes["429"]
    assert fake.requests_total == sum(counts.values()) + (outcomes["ok"] - counts["slow"])

    fake.chaos = Chaos(p_5xx=1.0, p_429=0, p_drop=0, p_truncate=0, p_slow=0, routes=[V2_TASK])
    status, _ = await get(http, url)
    assert status == 200  # route not selected
    fake.chaos = None
    fake.reset_counters()
    assert sum(fake.chaos_counts.values()) == 0


# ---------------------------------------------------------------------------- plugin & CLI


async def test_pytest_plugin_fixture(twelvelabs_fake: FakeTwelveLabs) -> None:
    assert twelvelabs_fake.base_url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession(headers={"x-api-key": twelvelabs_fake.api_key}) as http:
        status, _ = await get(http, f"{twelvelabs_fake.base_url}/embed/tasks")
    assert status == 200


async def test_start_close_without_context_manager() -> None:
    fake = FakeTwelveLabs()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    await fake.start()
    try:
        assert re.match(r"^http://127\.0\.0\.1:\d+/v1\.3$", fake.base_url)
    finally:
        await fake.close()
    await fake.close()


async def test_close_with_request_in_flight_leaks_nothing() -> None:
    fake = await FakeTwelveLabs().start()
    fake.faults.push("*", delay=0.2, status=503)
    session = aiohttp.ClientSession(headers={"x-api-key": fake.api_key})

    async def fetch() -> int:
        async with session.get(f"{fake.base_url}/embed-v2/tasks") as resp:
            return resp.status

    task = asyncio.create_task(fetch())
    await asyncio.sleep(0.05)
    await session.close()  # the client goes away mid-request...
    await fake.close()  # ...and the server closes right after
    with pytest.raises(aiohttp.ClientError):
        await task
    gc.collect()  # an unclosed socket would surface here as an unraisable ResourceWarning


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_standalone_server(sig: signal.Signals) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twelvelabs_async.testing",
        "--port",
        "0",
        "--seed-tasks",
        "3",
        "--api-key",
        "cli-key",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(REPO_ROOT),
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/v1\.3", line)
        assert m is not None, line
        assert int(m.group(1)) > 0
        async with aiohttp.ClientSession(headers={"x-api-key": "cli-key"}) as http:
            status, body = await get(http, f"{line}/embed-v2/tasks")
            assert status == 200
            assert body["page_info"]["total_results"] == 3
            status, _ = await get(http, f"{line}/embed-v2/tasks", headers={"x-api-key": "x"})
            assert status == 401
    finally:
        if proc.returncode is None:
            proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert out == b""  # exactly one line was printed
    assert b"cli-key" not in err


async def test_payloads_follow_the_published_spec(
    fake: FakeTwelveLabs, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Audio gets audio/transcription only; a requested asset scope alone returns only the
    whole-file embeddings; segment results carry the custom fields of their definition; the
    analysis list honours the deprecated video_id filter."""
    created = {}
    for name, media in {
        "audio": {"input_type": "audio", "audio": {"media_source": {"url": "https://a/x.mp3"}}},
        "asset-only": {
            "input_type": "video",
            "video": {"media_source": {"url": "https://a/v.mp4"}, "embedding_scope": ["asset"]},
        },
    }.items():
        _, _, body = await call(
            http, "POST", f"{fake.base_url}/embed-v2/tasks", json={"model_name": "m", **media}
        )
        created[name] = body["_id"]
    clock.advance(1.5)
    for name, tid in created.items():
        await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
        _, task = await get(http, f"{fake.base_url}/embed-v2/tasks/{tid}")
        pairs = [(d["embedding_option"], d["embedding_scope"]) for d in task["data"]]
        if name == "audio":
            assert {option for option, _ in pairs} == {"audio", "transcription"}
            assert task["metadata"]["embedding_options"] == ["audio", "transcription"]
        else:
            assert pairs == [("visual", "asset"), ("audio", "asset"), ("transcription", "asset")]
    fields = [{"name": "mood", "type": "string"}, {"name": "place", "type": "string"}]
    for video in ({"video_id": "vid-1"}, {"url": "https://a/other.mp4"}):
        await call(
            http,
            "POST",
            f"{fake.base_url}/analyze/tasks",
            json={
                "video": video,
                "analysis_mode": "time_based_metadata",
                "response_format": {
                    "type": "segment_definitions",
                    "segment_definitions": [{"id": "scenes", "fields": fields}],
                },
            },
        )
    _, listed = await get(http, f"{fake.base_url}/analyze/tasks", params={"video_id": "vid-1"})
    assert [t["video_source"]["video_id"] for t in listed["data"]] == ["vid-1"]
    tid = listed["data"][0]["task_id"]
    clock.advance(1.5)
    await get(http, f"{fake.base_url}/analyze/tasks/{tid}")
    _, task = await get(http, f"{fake.base_url}/analyze/tasks/{tid}")
    segments = json.loads(task["result"]["data"])["scenes"]
    assert all(set(seg["metadata"]) == {"mood", "place"} for seg in segments)


def test_both_fake_server_command_lines_take_the_same_flags() -> None:
    import argparse

    from twelvelabs_async._cli import build_parser
    from twelvelabs_async._fake_args import add_fake_server_arguments

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    cli_flags = {o for a in sub.choices["fake-server"]._actions for o in a.option_strings}
    module = argparse.ArgumentParser()  # what python -m twelvelabs_async.testing builds
    add_fake_server_arguments(module)
    module_flags = {o for a in module._actions for o in a.option_strings}
    assert {"--port", "--api-key", "--seed-tasks", "--webhook-url"} <= module_flags
    # The CLI adds only its global connection options on top.
    assert module_flags <= cli_flags
    assert cli_flags - module_flags <= {"--base-url", "-v", "--verbose", "--quiet", "-q"}
