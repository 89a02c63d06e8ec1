"""Introspection: the ``twelvelabs_async`` logger and the on_request / on_response hooks."""

from __future__ import annotations

import logging
import math
import re

import anyio
import pytest

from twelvelabs_async import (
    APIConnectionError,
    AsyncTwelveLabs,
    EventHooks,
    NotFoundError,
    ResponseEvent,
)
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

KEY = "sk-do-not-log-me-0123456789"
REQUEST_LINE = re.compile(
    r"^(?P<method>GET|POST|DELETE) (?P<path>/\S+) -> (?P<status>\S+) "
    r"in (?P<ms>\d+\.\d) ms \(attempt (?P<attempt>\d+)\)$"
)


def library_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("twelvelabs_async")]


def assert_no_key(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.args)


async def test_one_debug_line_per_request(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v2", status="ready")
    caplog.set_level(logging.DEBUG, logger="twelvelabs_async")
    async with AsyncTwelveLabs(api_key=KEY, base_url=fake.base_url) as client:
        await client.embed.v2.tasks.retrieve(task_id)
        with pytest.raises(NotFoundError):
            await client.analyze.tasks.retrieve("missing")
    lines = [REQUEST_LINE.match(r.getMessage()) for r in library_records(caplog)]
    assert all(lines), [r.getMessage() for r in library_records(caplog)]
    found = [(m["method"], m["path"], m["status"], m["attempt"]) for m in lines if m]
    assert found == [
        ("GET", f"/embed-v2/tasks/{task_id}", "200", "1"),
        ("GET", "/analyze/tasks/missing", "404", "1"),
    ]
    assert all(r.levelno == logging.DEBUG for r in library_records(caplog))
    assert_no_key(caplog)


async def test_retries_warn_and_every_attempt_is_logged(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("embed_v1", status="ready")
    fake.faults.push("GET /v1.3/embed/tasks/{task_id}/status", status=503)
    caplog.set_level(logging.DEBUG, logger="twelvelabs_async")
    async with AsyncTwelveLabs(api_key=KEY, base_url=fake.base_url) as client:
        await client.embed.v1.tasks.status(task_id)
    messages = [(r.levelno, r.getMessage()) for r in library_records(caplog)]
    debug = [m for level, m in messages if level == logging.DEBUG]
    assert [REQUEST_LINE.match(m)["status"] for m in debug] == ["503", "200"]  # type: ignore[index]
    assert [REQUEST_LINE.match(m)["attempt"] for m in debug] == ["1", "2"]  # type: ignore[index]
    warnings = [m for level, m in messages if level == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("retrying after InternalServerError")
    assert "(retry 1)" in warnings[0]
    assert_no_key(caplog)


async def test_rate_limit_slowdowns_warn(
    fake: FakeTwelveLabs, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = fake.add_task("analyze", finish_after_polls=2)
    fake.faults.push(
        "GET /v1.3/analyze/tasks/{task_id}", status=429, headers={"Retry-After": "0.05"}
    )
    caplog.set_level(logging.WARNING, logger="twelvelabs_async")
    async with AsyncTwelveLabs(api_key=KEY, base_url=fake.base_url) as client:
        with anyio.fail_after(10):
            results = await client.wait_all(
                analyze=[task_id], poll_interval=0.02, max_poll_interval=0.05
            )
    assert results[task_id].status == "ready"
    messages = [r.getMessage() for r in library_records(caplog)]
    assert any(m.startswith("rate limited: pausing all polling") for m in messages), messages
    assert_no_key(caplog)


async def test_hooks_see_every_attempt_with_its_fields(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2", finish_after_seconds=math.inf)
    requests: list[tuple[str, str, int]] = []
    responses: list[ResponseEvent] = []
    hooks = EventHooks(on_request=[lambda m, p, a: requests.append((m, p, a))])
    async with AsyncTwelveLabs(
        api_key=KEY, base_url=fake.base_url, hooks=hooks, max_retries=1
    ) as client:
        assert client.hooks is hooks
        client.hooks.on_response.append(responses.append)
        fake.faults.push("GET /v1.3/embed-v2/tasks/{task_id}", status=503)
        await client.embed.v2.tasks.retrieve(task_id)
        fake.faults.push("GET /v1.3/embed-v2/tasks/{task_id}", drop=True, times=2)
        with pytest.raises(APIConnectionError):
            await client.embed.v2.tasks.retrieve(task_id)

    path = f"/embed-v2/tasks/{task_id}"
    assert requests == [("GET", path, 0), ("GET", path, 1)] * 2
    assert [(e.method, e.path, e.status, e.attempt) for e in responses] == [
        ("GET", path, 503, 0),
        ("GET", path, 200, 1),
        ("GET", path, None, 0),
        ("GET", path, None, 1),
    ]
    ok = responses[1]
    assert ok.error is None
    assert ok.elapsed >= 0
    assert ok.headers["X-Ratelimit-Limit"]
    assert "x-api-key" not in {name.lower() for name in ok.headers}  # response headers only
    dropped = responses[-1]
    assert isinstance(dropped.error, APIConnectionError)
    assert KEY not in str(dropped.error)
