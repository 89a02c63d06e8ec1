"""examples/fastapi_app.py, served through httpx's ASGITransport, with the fake API behind it.

ASGITransport does not run lifespan events, so each test enters the app's lifespan itself.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import msgspec
import pytest

from twelvelabs_async.testing import FakeTwelveLabs
from twelvelabs_async.webhooks import SIGNATURE_HEADER, sign

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"
SECRET = "whsec-example"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture
async def app(fake: FakeTwelveLabs) -> AsyncIterator[Any]:
    application = example.create_app(
        api_key=fake.api_key,
        base_url=fake.base_url,
        webhook_secret=SECRET,
        poll_interval=0.02,
        max_poll_interval=0.1,
    )
    async with application.router.lifespan_context(application):
        yield application
    assert application.state.twelvelabs.is_closed  # the lifespan closed the client


@pytest.fixture
async def http(app: Any) -> AsyncIterator[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


async def test_create_analysis_answers_202_with_the_id(
    fake: FakeTwelveLabs, http: Any, app: Any
) -> None:
    response = await http.post(
        "/analyses",
        json={"video_url": "https://example.com/a.mp4", "prompt": "Summarise", "custom_id": "c1"},
    )
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert response.headers["location"] == f"/tasks/analyze/{task_id}"
    record = fake.task("analyze", task_id)
    assert record.custom_id == "c1"
    assert record.video_url == "https://example.com/a.mp4"

    current = await http.get(f"/tasks/analyze/{task_id}")
    assert current.status_code == 200
    assert current.json()["task_id"] == task_id

    invalid = await http.post("/analyses", json={"video_url": "https://example.com/a.mp4"})
    assert invalid.status_code == 422
    assert app.state.twelvelabs.is_closed is False  # one client, open while the app runs


async def test_wait_returns_the_final_task(fake: FakeTwelveLabs, http: Any) -> None:
    task_id = fake.add_task("analyze", finish_after_seconds=0.2)
    response = await http.get(f"/tasks/analyze/{task_id}/wait", params={"timeout": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["result"]["data"]

    failed = fake.add_task("embed_v2", finish_after_seconds=0.05, final_status="failed")
    response = await http.get(f"/tasks/embed-v2/{failed}/wait", params={"timeout": 5})
    assert response.status_code == 200  # the body says how it ended
    assert response.json()["status"] == "failed"


async def test_wait_answers_504_on_timeout_and_404_when_missing(
    fake: FakeTwelveLabs, http: Any
) -> None:
    stuck = fake.add_task("embed_v1", finish_after_seconds=math.inf)
    with anyio.fail_after(10):
        response = await http.get(f"/tasks/embed-v1/{stuck}/wait", params={"timeout": 0.3})
    assert response.status_code == 504
    body = response.json()
    assert body["task_id"] == stuck
    assert body["last_status"] == "processing"

    missing = await http.get("/tasks/analyze/no-such-task/wait", params={"timeout": 5})
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["detail"]
    assert (await http.get("/tasks/embed-v2/no-such-task")).status_code == 404
    assert (await http.get("/tasks/embed-v3/abc")).status_code == 422


async def test_progress_streams_json_lines(fake: FakeTwelveLabs, http: Any) -> None:
    expected: dict[str, str] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, finals in (
        ("embed_v2", ["ready", "failed"]),
        ("embed_v1", ["ready"]),
        ("analyze", ["ready", "canceled"]),
    ):
        for i in range(6):
            final = finals[i % len(finals)]
            task_id = fake.add_task(
                kind,  # type: ignore[arg-type]
                finish_after_seconds=0.05 + 0.02 * i,
                final_status=final,
            )
            expected[task_id] = final
            by_kind.setdefault(kind, []).append(task_id)
    with anyio.fail_after(20):
        response = await http.post("/tasks/progress", json={**by_kind, "timeout": 10})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    events = [msgspec.json.decode(line) for line in response.text.splitlines()]
    outcomes, end = events[:-1], events[-1]
    assert {e["task_id"]: e["status"] for e in outcomes} == expected
    assert [e["done"] for e in outcomes] == list(range(1, len(expected) + 1))
    assert all(e["event"] == "outcome" and e["total"] == len(expected) for e in outcomes)
    assert end["event"] == "end"
    assert end["counts"] == dict(Counter(expected.values()))
    assert end["requests"] >= len(expected)


async def test_progress_streams_server_sent_events(fake: FakeTwelveLabs, http: Any) -> None:
    ids = fake.add_tasks("embed_v2", 3, finish_after_seconds=0.05)
    with anyio.fail_after(20):
        response = await http.post(
            "/tasks/progress",
            json={"embed_v2": [*ids, "no-such-task"], "timeout": 10},
            headers={"Accept": "text/event-stream"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in response.text.split("\n\n") if f]
    names = [f.splitlines()[0] for f in frames]
    assert names == ["event: outcome"] * 4 + ["event: end"]
    data = [msgspec.json.decode(f.splitlines()[1].removeprefix("data: ")) for f in frames]
    statuses = {d["task_id"]: d["status"] for d in data[:-1]}
    assert statuses == {**dict.fromkeys(ids, "ready"), "no-such-task": "not_found"}
    assert data[-1]["counts"] == {"ready": 3, "not_found": 1}

    empty = await http.post("/tasks/progress", json={})
    assert empty.status_code == 422


async def test_webhook_endpoint_verifies_and_drops_repeats(app: Any, http: Any) -> None:
    body = msgspec.json.encode(
        {
            "id": "evt_1",
            "created_at": "2026-01-01T00:00:00Z",
            "type": "analyze.task.ready",
            "data": {"id": "t1", "status": "ready", "custom_id": None},
        }
    )
    headers = {SIGNATURE_HEADER: sign(body, SECRET), "Content-Type": "application/json"}
    assert (
        await http.post("/webhooks/twelvelabs", content=body, headers=headers)
    ).status_code == 204
    again = await http.post("/webhooks/twelvelabs", content=body, headers=headers)
    assert again.status_code == 204
    forged = {SIGNATURE_HEADER: sign(body, "not-the-secret")}
    rejected = await http.post("/webhooks/twelvelabs", content=body, headers=forged)
    assert rejected.status_code == 400
    receiver = app.state.webhooks
    assert (receiver.received, receiver.duplicates, receiver.rejected) == (1, 1, 1)
