"""Bulk jobs with local files: each file uploaded as an asset first, once per job state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from twelvelabs_async import AsyncTwelveLabs, BulkItem, BulkJob, BulkResult
from twelvelabs_async.testing import FakeTwelveLabs

from .helpers import cli

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {"poll_interval": 0.02, "max_poll_interval": 0.1, "reconcile_delay": 0.05}
SESSIONS = "POST /v1.3/assets/multipart-uploads"


def v2_local(name: str, path: Path) -> BulkItem:
    params = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"path": str(path)}},
    }
    return BulkItem(name, "embed_v2", params)


async def run(client: AsyncTwelveLabs, items: list[BulkItem], state: Path) -> list[BulkResult]:
    with anyio.fail_after(30):
        async with BulkJob(client, items, state=state, **FAST) as job:
            return [result async for result in job]


async def test_local_files_become_assets_and_a_rerun_never_uploads_a_finished_file_again(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    first.write_bytes(b"a" * 50_000)
    second.write_bytes(b"b" * 70_000)
    state = tmp_path / "job.sqlite"
    items = [v2_local("a", first), v2_local("a-again", first), v2_local("b", second)]
    results = await run(client, items, state)
    assert {r.custom_id: r.status for r in results} == {
        "a": "ready",
        "a-again": "ready",
        "b": "ready",
    }
    assert fake.request_count(SESSIONS) == 2  # the shared file went up once
    tasks = {rec.asset_id for rec in fake.tasks("embed_v2")}
    assert len(tasks) == 2
    assert tasks <= set(fake.assets.assets)
    # A rerun with one more item naming a file this job uploaded already: no upload at all.
    more = [*items, v2_local("b-again", second)]
    rerun = await run(client, more, state)
    assert {r.custom_id for r in rerun if not r.earlier} == {"b-again"}
    assert fake.request_count(SESSIONS) == 2
    assert fake.request_count("PUT /storage/parts/{part_id}") == 2


async def test_a_file_whose_asset_fails_settles_failed_and_a_vanished_file_is_rejected(
    client: AsyncTwelveLabs, fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    broken, gone = tmp_path / "broken.mp4", tmp_path / "gone.mp4"
    broken.write_bytes(b"x" * 1000)
    fake.assets.final_status = "failed"
    results = await run(
        client, [v2_local("broken", broken), v2_local("gone", gone)], tmp_path / "s.sqlite"
    )
    by_id = {r.custom_id: r for r in results}
    assert by_id["broken"].status == "failed"
    assert "ended 'failed'" in (by_id["broken"].error or "")
    assert by_id["gone"].status == "rejected"
    assert "No such file" in (by_id["gone"].error or "")
    assert fake.tasks("embed_v2") == []


async def test_submit_takes_a_csv_column_of_paths(fake: FakeTwelveLabs, tmp_path: Path) -> None:
    for name in ("x", "y"):
        (tmp_path / f"{name}.mp4").write_bytes(name.encode() * 10_000)
    manifest = tmp_path / "items.csv"
    manifest.write_text(f"custom_id,path\nx,{tmp_path / 'x.mp4'}\ny,{tmp_path / 'y.mp4'}\n")
    out = tmp_path / "results.jsonl"
    args = ("submit", str(manifest), "--out", str(out), "--kind", "analyze")
    run1 = await cli(
        fake, *args, "--model", "pegasus1.5", "--prompt", "Describe", "--poll-interval", "0.05"
    )
    assert run1.code == 0, run1.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((line["custom_id"], line["status"]) for line in lines) == [
        ("x", "ready"),
        ("y", "ready"),
    ]
    assert fake.request_count(SESSIONS) == 2
    (tmp_path / "z.mp4").unlink(missing_ok=True)
    manifest.write_text(f"custom_id,path\nz,{tmp_path / 'z.mp4'}\n")
    bad = await cli(
        fake,
        "submit",
        str(manifest),
        "--out",
        str(tmp_path / "r2.jsonl"),
        "--kind",
        "analyze",
        "--model",
        "pegasus1.5",
        "--prompt",
        "D",
    )
    assert bad.code == 2
    assert "no such file" in bad.stderr
    assert fake.request_count(SESSIONS) == 2
