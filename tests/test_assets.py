"""Assets and multipart uploads against the fake server on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from twelvelabs_async import (
    AsyncTwelveLabs,
    InvalidFileError,
    NotFoundError,
    TaskFailedError,
    UploadError,
)
from twelvelabs_async.testing import FakeTwelveLabs

from .helpers import cli

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
PART_ROUTE = "PUT /storage/parts/{part_id}"


def part_puts(fake: FakeTwelveLabs, upload_id: str) -> Counter[int]:
    """PUTs that reached the server per part of ``upload_id`` (faulted ones included)."""
    prefix = f"/storage/parts/{upload_id}."
    return Counter(
        int(rec.path.partition("?")[0][len(prefix) :])
        for rec in fake.request_log
        if rec.path.startswith(prefix)
    )


def write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


# --- assets -----------------------------------------------------------------------------


async def test_url_asset_is_created_listed_waited_ready_and_deleted(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    asset = await client.assets.create(method="url", url="https://example.com/v/clip.mp4")
    assert asset.status == "processing"
    assert asset.id is not None
    assert asset.method == "url"
    assert asset.filename == "clip.mp4"
    ready = await client.assets.wait(asset.id, poll_interval=0.01)
    assert ready.status == "ready"
    assert ready.size is not None
    listed = [a.id async for a in client.assets.list(asset_ids=[asset.id, "other"])]
    assert listed == [asset.id]
    assert "asset_ids=" + asset.id in fake.request_log[-1].path
    await client.assets.delete(asset.id)
    with pytest.raises(NotFoundError):
        await client.assets.retrieve(asset.id)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def test_direct_upload_takes_a_path_bytes_a_file_object_and_an_async_stream(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    data = write_random(tmp_path / "movie.mp4", 300_000)
    digest = hashlib.sha256(data).hexdigest()
    sources = {
        "path-str": str(tmp_path / "movie.mp4"),
        "path": tmp_path / "movie.mp4",
        "bytes": data,
        "file": io.BytesIO(data),
        "stream": _chunks(data),
    }
    for label, source in sources.items():
        asset = await client.assets.create(
            method="direct", file=source, filename=f"{label}.mp4", user_metadata={"n": 1}
        )
        assert asset.id is not None
        rec = fake.assets.assets[asset.id]
        assert (rec.size, rec.sha256) == (len(data), digest), label
        assert rec.filename == f"{label}.mp4"
        assert rec.user_metadata == {"n": 1}


async def test_a_retried_direct_upload_sends_the_whole_file_again(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    data = write_random(tmp_path / "a.mp4", 100_000)
    handle = io.BytesIO(data)
    handle.read(5000)  # a file object part-read already is still sent whole
    fake.faults.push("POST /assets", status=429, headers={"Retry-After": "0"})
    asset = await client.assets.create(method="direct", file=handle)
    assert asset.id is not None
    assert fake.assets.assets[asset.id].sha256 == hashlib.sha256(data).hexdigest()
    assert fake.request_count("POST /assets") == 2


async def test_an_asset_that_fails_processing_ends_failed(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    fake.assets.final_status = "failed"
    write_random(tmp_path / "bad.mp4", 10_000)
    asset = await client.assets.create(method="direct", file=tmp_path / "bad.mp4")
    assert asset.id is not None
    done = await client.assets.wait(asset.id, poll_interval=0.01)
    assert done.status == "failed"
    assert done.error_message
    with pytest.raises(TaskFailedError) as caught:
        await client.assets.wait(asset.id, poll_interval=0.01, raise_on_failure=True)
    assert caught.value.kind == "asset"
    assert caught.value.status == "failed"


async def test_bad_input_is_refused_before_any_request(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as handle:  # sparse: no disk used
        handle.truncate(200 * MiB + 1)
    cases = {
        "missing": (tmp_path / "nope.mp4", "No such file"),
        "directory": (tmp_path, "is a directory"),
        "empty": (tmp_path / "empty.mp4", "empty"),
        "oversize": (huge, "multipart"),
        "empty bytes": (b"", "empty"),
        "text stream": (io.StringIO("abc"), "binary mode"),
    }
    for label, (source, words) in cases.items():
        with pytest.raises(InvalidFileError, match=words):
            await client.assets.create(method="direct", file=source)  # type: ignore[arg-type]
        if isinstance(source, Path) and label != "oversize":
            with pytest.raises(InvalidFileError, match=words):
                await client.multipart_upload.upload_file(source)
    with pytest.raises(ValueError, match="needs url"):
        await client.assets.create(method="url")
    assert fake.requests_total == 0


# --- multipart uploads ----------------------------------------------------------------------


async def test_every_byte_of_a_25_mb_upload_arrives_in_order_one_failed_part_retried_alone(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    source = tmp_path / "big.mp4"
    data = write_random(source, 25 * 1000 * 1000)
    fake.assets.initial_urls = 2  # the rest come from presigned-urls
    fake.faults.push(PART_ROUTE, status=503)
    seen: list[tuple[int, int]] = []
    sessions: list[str] = []
    asset = await client.multipart_upload.upload_file(
        source,
        max_workers=3,
        batch_size=2,
        progress_callback=lambda sent, total: seen.append((sent, total)),
        on_session=sessions.append,
        poll_interval=0.01,
    )
    assert asset.status == "ready"
    assert asset.method == "multipart"
    (upload_id,) = sessions
    assert hashlib.sha256(fake.assets.assembled(upload_id)).digest() == (
        hashlib.sha256(data).digest()
    )
    puts = part_puts(fake, upload_id)
    assert sorted(puts) == [1, 2, 3, 4, 5]
    assert sorted(puts.values()) == [1, 1, 1, 1, 2]  # only the failed part went twice
    assert fake.request_count(PART_ROUTE) == 6
    assert fake.assets.puts_without_upload_headers == 0
    assert fake.request_count("POST /assets/multipart-uploads/{upload_id}/presigned-urls") >= 1
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert seen[-1] == (len(data), len(data))


async def test_a_cancelled_upload_resumes_without_resending_completed_parts(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    fake.assets.chunk_size = 1 * MiB
    source = tmp_path / "resume.mp4"
    data = write_random(source, 8 * MiB + 123)
    sessions: list[str] = []
    with anyio.CancelScope() as scope:

        def stop_after_three(sent: int, total: int) -> None:
            if sent >= 3 * MiB:
                scope.cancel()

        await client.multipart_upload.upload_file(
            source,
            max_workers=2,
            batch_size=4,
            progress_callback=stop_after_three,
            on_session=sessions.append,
        )
    assert scope.cancelled_caught
    (upload_id,) = sessions
    session = fake.assets.uploads[upload_id]
    kept = set(session.reported)
    assert len(kept) >= 3  # parts finished before the cancel were reported on the way out
    assert session.status == "active"
    before = part_puts(fake, upload_id)
    progress: list[int] = []
    asset = await client.multipart_upload.upload_file(
        source,
        upload_id=upload_id,
        progress_callback=lambda sent, total: progress.append(sent),
        poll_interval=0.01,
    )
    assert asset.status == "ready"
    assert asset.id == session.asset_id
    for index in kept:
        assert part_puts(fake, upload_id)[index] == before[index] == 1
    assert fake.assets.assembled(upload_id) == data
    assert progress[0] > len(kept) * MiB  # resumed progress counts what the server had


async def test_a_refused_part_url_is_replaced_and_a_dead_part_fails_typed(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    source = tmp_path / "small.mp4"
    write_random(source, 3 * MiB)
    fake.assets.chunk_size = 1 * MiB
    fake.faults.push(PART_ROUTE, status=403)  # expired or used URL: a fresh one
    asset = await client.multipart_upload.upload_file(source, poll_interval=0.01)
    assert asset.status == "ready"
    fake.faults.push(PART_ROUTE, status=500, times=50)
    with pytest.raises(UploadError) as caught:
        await client.multipart_upload.upload_file(source, max_retries=1, max_workers=1)
    assert caught.value.chunk_index == 1
    assert caught.value.upload_id
    assert "test-key" not in str(caught.value)


async def test_low_level_calls_use_the_sdk_names(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs
) -> None:
    fake.assets.chunk_size = 10
    session = await client.multipart_upload.create(filename="a.mp4", type="video", total_size=25)
    assert session.upload_id
    assert session.total_chunks == 3
    more = await client.multipart_upload.get_additional_presigned_urls(
        session.upload_id, start=2, count=2
    )
    assert [u.chunk_index for u in more.upload_urls or ()] == [2, 3]
    status = await client.multipart_upload.get_status(session.upload_id)
    assert status.status == "active"
    assert status.chunks_pending == 3
    chunks = [c.index async for c in client.multipart_upload.iter_chunks(session.upload_id)]
    assert chunks == [1, 2, 3]
    pending = [u.upload_id async for u in client.multipart_upload.list_incomplete_uploads()]
    assert pending == [session.upload_id]
    with pytest.raises(UploadError, match="still 'active'"):
        await client.multipart_upload.wait_for_upload_completion(
            session.upload_id, sleep_interval=0.01, max_wait_time=0.05
        )


async def test_the_assets_upload_command_shows_progress_and_prints_the_ready_asset(
    fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    fake.assets.chunk_size = 1 * MiB
    source = tmp_path / "cli.mp4"
    data = write_random(source, 3 * MiB + 5)
    run = await cli(fake, "assets", "upload", str(source), "--multipart", "--concurrency", "2")
    assert run.code == 0, run.stderr
    asset = json.loads(run.stdout)
    assert asset["status"] == "ready"
    assert asset["size"] == len(data)
    assert "--resume" in run.stderr
    assert "100%" in run.stderr
    missing = await cli(fake, "assets", "upload", str(tmp_path / "nope.mp4"))
    assert missing.code == 2
    assert "No such file" in missing.stderr


KILLED_UPLOAD = """
import sys

import anyio

from twelvelabs_async import AsyncTwelveLabs


async def main() -> None:
    async with AsyncTwelveLabs(api_key=sys.argv[1], base_url=sys.argv[2]) as client:
        await client.multipart_upload.upload_file(
            sys.argv[3], max_workers=1, batch_size=1, on_session=lambda u: print(u, flush=True)
        )


anyio.run(main)
"""


async def test_an_upload_killed_with_sigkill_resumes_without_resending_reported_parts(
    fake: FakeTwelveLabs, client: AsyncTwelveLabs, tmp_path: Path
) -> None:
    fake.assets.chunk_size = 1 * MiB
    source = tmp_path / "killed.mp4"
    data = write_random(source, 8 * MiB)
    script = tmp_path / "upload.py"
    script.write_text(KILLED_UPLOAD)
    fake.faults.push(PART_ROUTE, delay=0.15, times=8)  # slow storage: time to kill midway
    process = await anyio.open_process(
        [sys.executable, str(script), fake.api_key, fake.base_url, str(source)]
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            upload_id = (await process.stdout.receive()).decode().strip()
            while len(fake.assets.uploads[upload_id].reported) < 3:
                await anyio.sleep(0.02)
        process.kill()  # SIGKILL: no chance to report anything on the way out
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
    session = fake.assets.uploads[upload_id]
    kept = set(session.reported)
    assert 3 <= len(kept) < 8
    before = part_puts(fake, upload_id)
    fake.faults.clear()
    asset = await client.multipart_upload.upload_file(
        source, upload_id=upload_id, poll_interval=0.01
    )
    assert asset.status == "ready"
    after = part_puts(fake, upload_id)
    assert all(after[index] == before[index] == 1 for index in kept)
    assert fake.assets.assembled(upload_id) == data
