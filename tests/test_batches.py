"""Analysis batches against the fake server, and the streamed results against hostile servers."""

from __future__ import annotations

import asyncio
import json

import anyio
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twelvelabs_async import (
    APIConnectionError,
    AsyncTwelveLabs,
    ConflictError,
    NotFoundError,
    ResponseDecodeError,
)
from twelvelabs_async.testing import FakeTwelveLabs

from .helpers import catch_all, serve_app

pytestmark = pytest.mark.anyio

SEGMENTS = {
    "type": "segment_definitions",
    "segment_definitions": [
        {"id": "scenes", "description": "scenes", "fields": [{"name": "mood"}, {"name": "place"}]}
    ],
}


async def test_a_50_item_batch_is_watched_to_completion_and_its_results_match_by_custom_id(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    assets = {f"item-{n}": fake.add_asset(f"{n}.mp4") for n in range(50)}
    fake.batches.fail_custom_ids = {"item-7"}
    created = await client.analyze.batches.create(
        analysis_mode="general",
        defaults={"prompt": {"input_text": "Describe"}, "response_format": SEGMENTS},
        requests=[
            {"video": {"type": "asset_id", "asset_id": asset}, "custom_id": custom_id}
            for custom_id, asset in assets.items()
        ],
    )
    assert created.total_items == 50
    assert [i.custom_id for i in created.items or ()] == list(assets)
    early = [line async for line in client.analyze_async.batches.results(created.batch_id)]
    assert {line.status for line in early} == {"queued"}  # readable before it runs
    done = await client.analyze.batches.wait(created.batch_id, poll_interval=0.01)
    assert done.status == "completed"
    assert (done.ready_items, done.failed_items, done.total_items) == (49, 1, 50)
    by_id = {line.custom_id: line async for line in client.analyze.batches.results(done.id)}
    assert set(by_id) == set(assets)
    failed = by_id.pop("item-7")
    assert failed.status == "failed"
    assert failed.error is not None
    for custom_id, line in by_id.items():
        assert line.status == "ready"
        assert line.data is not None
        assert line.data.data is not None
        assert json.loads(line.data.data) == {
            "custom_id": custom_id,
            "mood": "fake",
            "place": "fake",
        }
    listed = [b.batch_id async for b in client.analyze.batches.list(status=["completed"])]
    assert listed == [done.batch_id]
    assert "status=completed" in fake.request_log[-1].path


async def test_a_canceled_batch_ends_canceled_and_only_a_final_batch_can_be_deleted(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    asset = fake.add_asset()
    created = await client.analyze.batches.create(
        analysis_mode="time_based_metadata",
        requests=[{"video": {"type": "asset_id", "asset_id": asset}} for _ in range(6)],
    )
    await client.analyze.batches.retrieve(created.batch_id)  # some items start processing
    with pytest.raises(ConflictError):
        await client.analyze.batches.delete(created.batch_id)
    asked = await client.analyze.batches.cancel(created.batch_id)
    assert asked.status == "canceling"
    done = await client.analyze.batches.wait(created.batch_id, poll_interval=0.01)
    assert done.status == "canceled"
    assert done.canceled_items is not None
    assert done.canceled_items > 0
    assert (done.ready_items or 0) + done.canceled_items == 6
    with pytest.raises(ConflictError):
        await client.analyze.batches.cancel(created.batch_id)
    await client.analyze.batches.delete(created.batch_id)
    with pytest.raises(NotFoundError):
        await client.analyze.batches.retrieve(created.batch_id)


async def test_batch_create_refuses_assets_that_are_missing_or_not_ready(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    busy = fake.add_asset(status="processing")
    with pytest.raises(ConflictError):
        await client.analyze.batches.create(
            analysis_mode="time_based_metadata",
            requests=[{"video": {"type": "asset_id", "asset_id": busy}}],
        )
    with pytest.raises(NotFoundError):
        await client.analyze.batches.create(
            analysis_mode="time_based_metadata",
            requests=[{"video": {"type": "asset_id", "asset_id": "nope"}}],
        )
    assert fake.batches.batches == {}


async def test_results_stream_line_by_line_before_the_body_ends() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"task_id":"t1","custom_id":"a","status":"queued"}\r\n\n')
        await release.wait()  # the client must have the first line by now
        await resp.write(b'{"task_id":"t2","custom_id":null,"status":"processing"}')
        await resp.write_eof()
        return resp

    async with (
        serve_app(catch_all(handler)) as url,
        AsyncTwelveLabs(api_key="k", base_url=url + "/v1.3") as client,
    ):
        seen = []
        with anyio.fail_after(10):
            async for line in client.analyze.batches.results("b1"):
                seen.append((line.task_id, line.custom_id, line.status))
                release.set()
    assert seen == [("t1", "a", "queued"), ("t2", None, "processing")]


async def collect(client: AsyncTwelveLabs, into: list[str]) -> None:
    async for line in client.analyze.batches.results("b1"):
        into.append(line.task_id)


async def test_a_bad_result_line_or_a_cut_stream_raises_typed_errors() -> None:
    mode = {"kind": "bad"}

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 1000
        await resp.prepare(request)
        await resp.write(b'{"task_id":"t1","custom_id":"a","status":"ready"}\n')
        if mode["kind"] == "bad":
            await resp.write(b'{"task_id": 5}\n')
            await resp.write(b" " * (1000 - 66))
            return resp
        assert request.transport is not None
        request.transport.close()  # cut off midway
        return resp

    async with (
        serve_app(catch_all(handler)) as url,
        AsyncTwelveLabs(api_key="secret-key", base_url=url + "/v1.3") as client,
    ):
        got: list[str] = []
        with pytest.raises(ResponseDecodeError) as bad:
            await collect(client, got)
        assert got == ["t1"]
        assert "task_id" in bad.value.body_excerpt
        mode["kind"] = "cut"
        got.clear()
        with pytest.raises(APIConnectionError) as cut:
            await collect(client, got)
        assert got == ["t1"]
        assert "secret-key" not in str(cut.value)


async def test_the_poller_watches_assets_and_batches_with_their_own_kinds(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    """Enough of each kind for the poller to want sweeps: batches are swept through their
    list's status filter; assets (whose list has none) are checked one by one."""
    fake.assets.finish_after_polls = 2
    assets = [fake.add_asset(status="processing") for _ in range(6)]
    fake.assets.assets[assets[0]].final_status = "failed"
    ready = fake.add_asset()
    batches = [
        (
            await client.analyze.batches.create(
                analysis_mode="time_based_metadata",
                requests=[{"video": {"type": "asset_id", "asset_id": ready}}],
            )
        ).batch_id
        for _ in range(4)
    ]
    await client.analyze.batches.cancel(batches[0])
    outcomes = {}
    async with client.poller(poll_interval=0.01, max_poll_interval=0.05) as poller:
        poller.add(client.assets, assets)
        poller.add(client.analyze.batches, batches)
        with anyio.fail_after(20):
            async for outcome in poller.as_completed():
                outcomes[outcome.task_id] = (outcome.kind, outcome.status)
    expected = {a: ("asset", "ready") for a in assets[1:]}
    expected[assets[0]] = ("asset", "failed")
    expected.update({b: ("analyze_batch", "completed") for b in batches[1:]})
    expected[batches[0]] = ("analyze_batch", "canceled")
    assert outcomes == expected


async def test_the_fault_plan_covers_batch_routes_with_their_nested_envelope(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    asset = fake.add_asset()
    batch = await client.analyze.batches.create(
        analysis_mode="time_based_metadata",
        requests=[{"video": {"type": "asset_id", "asset_id": asset}}],
    )
    route = "GET /v1.3/analyze/batches/{batch_id}"
    fake.faults.push(route, status=503, times=2)
    done = await client.analyze.batches.wait(batch.batch_id, poll_interval=0.01)
    assert done.status == "completed"
    fake.faults.push(route, status=409)
    with pytest.raises(ConflictError) as caught:
        await client.analyze.batches.retrieve(batch.batch_id)
    assert caught.value.code == "conflict"  # read from the nested {"error": {...}} envelope
    assert fake.request_count(route) >= 4


STREAM_E2E = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
result_lines = st.lists(
    st.builds(
        lambda n, status, crlf: (f"t{n}", status, crlf),
        st.integers(0, 10**6),
        st.sampled_from(["queued", "processing", "ready", "failed", "canceled"]),
        st.booleans(),
    ),
    max_size=12,
)


@STREAM_E2E
@given(lines=result_lines, cuts=st.lists(st.integers(1, 400), max_size=20), blanks=st.booleans())
async def test_results_survive_any_chunk_boundaries(
    lines: list[tuple[str, str, bool]], cuts: list[int], blanks: bool
) -> None:
    """However the body is cut into network chunks (mid-line, mid-\\r\\n), every line comes
    out once, whole, in order; blank lines are skipped."""
    body = b"".join(
        json.dumps({"task_id": t, "custom_id": None, "status": s}).encode()
        + (b"\r\n" if crlf else b"\n")
        + (b"\n" if blanks else b"")
        for t, s, crlf in lines
    )
    pieces, at = [], 0
    for cut in cuts:
        pieces.append(body[at : at + cut])
        at += cut
    pieces.append(body[at:])

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for piece in pieces:
            if piece:
                await resp.write(piece)
                await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    async with (
        serve_app(catch_all(handler)) as url,
        AsyncTwelveLabs(api_key="k", base_url=url + "/v1.3") as client,
    ):
        with anyio.fail_after(10):
            got = [(i.task_id, i.status) async for i in client.analyze.batches.results("b")]
    assert got == [(t, s) for t, s, _ in lines]
