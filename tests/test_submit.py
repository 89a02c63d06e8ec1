"""``submit`` and ``export`` run for real (``python -m twelvelabs_async ...``), killed with
SIGKILL at random points and rerun; plus the results-file and terminal-safety fixes that
``watch`` and ``tasks list`` share with them.

The fake server runs in the test's event loop; the command runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers import cli, cli_env, command
from twelvelabs_async._cli._results import ResultsFile
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

FAST = ["--poll-interval", "0.05", "--max-poll-interval", "0.2", "--reconcile-delay", "0.1"]
README = Path(__file__).resolve().parent.parent / "README.md"


def manifest_lines(n: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for i in range(n):
        url = f"https://videos.example/{i}.mp4"
        if i % 3 == 0:
            lines.append(
                {"custom_id": f"item-{i}", "kind": "analyze", "params": {"video": {"url": url}}}
            )
        elif i % 3 == 1:
            lines.append(
                {
                    "custom_id": f"item-{i}",
                    "kind": "embed-v1",
                    "params": {"model_name": "marengo3.0", "video_url": url},
                }
            )
        else:
            lines.append(
                {
                    "custom_id": f"item-{i}",
                    "params": {
                        "input_type": "video",
                        "model_name": "marengo3.0",
                        "video": {"media_source": {"url": url}},
                    },
                }
            )
    return lines


def write_manifest(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def server_tasks(fake: FakeTwelveLabs) -> dict[str, list[Any]]:
    """The server's tasks by input URL."""
    by_url: dict[str, list[Any]] = {}
    for kind in ("embed_v2", "embed_v1", "analyze"):
        for rec in fake.store.all(kind):  # type: ignore[arg-type]
            by_url.setdefault(str(rec.video_url), []).append(rec)
    return by_url


async def test_sigkill_anywhere_then_rerun_gives_one_task_and_one_line_per_item(
    tmp_path: Path,
) -> None:
    """Killed with SIGKILL at random moments (while creating, while watching), then rerun
    until it exits by itself: exactly one task per item at the server, exactly one results
    line per item, each with the task's true final status; a further rerun changes nothing
    and still exits 1 for the failed items."""
    rng = random.Random(1313)
    lines = manifest_lines(30)
    manifest = write_manifest(tmp_path / "items.jsonl", lines)
    out = tmp_path / "results.jsonl"
    n = len(lines)
    async with FakeTwelveLabs(
        rate_limit_per_minute=10**9,
        default_finish_after_polls=None,
        default_finish_after_seconds=lambda kind: rng.uniform(0.8, 1.6),
        default_final_status=lambda kind: "failed" if kind == "analyze" else "ready",
    ) as fake:
        args = command(
            "submit", str(manifest), "--out", str(out), "--kind", "embed_v2",
            "--concurrency", "8", "--requests-per-minute", "2400", "--progress", "plain",
            *FAST,
        )  # fmt: skip

        async def kill_when(created_at_least: int) -> tuple[int, int]:
            """Start a run, SIGKILL it at a random moment soon after the server holds that
            many tasks; return (tasks at the server, result lines) at the kill."""
            async with await anyio.open_process(args, env=cli_env(fake)) as proc:
                with anyio.fail_after(20):
                    while len(server_tasks(fake)) < created_at_least:
                        await anyio.sleep(0.01)
                    await anyio.sleep(rng.uniform(0.0, 0.25))
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
            return len(server_tasks(fake)), len(read_results(out)) if out.exists() else 0

        # Killed while creating: some items have no task yet.
        created, _ = await kill_when(1)
        assert created < n
        # Killed while watching: every task created, some still running, some lines missing.
        created, written = await kill_when(n)
        assert created == n
        assert written < n
        # Then at random moments, until a run ends by itself.
        code: int | None = None
        for _ in range(10):
            async with await anyio.open_process(args, env=cli_env(fake)) as proc:
                with anyio.move_on_after(rng.uniform(0.4, 1.5)):
                    code = await proc.wait()
                if code is None:
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
                    continue
            break
        else:
            with anyio.fail_after(30):
                code = (await anyio.run_process(args, env=cli_env(fake), check=False)).returncode
        assert code == 1, code  # the analyze items failed
        tasks = server_tasks(fake)
        # Exactly one task per item at the server.
        assert sorted(tasks) == sorted(
            line["params"].get("video_url") or _url(line) for line in lines
        )
        assert {url: len(recs) for url, recs in tasks.items() if len(recs) != 1} == {}
        # Exactly one line per item, with the task's true status.
        results = read_results(out)
        assert Counter(r["custom_id"] for r in results) == Counter(
            line["custom_id"] for line in lines
        )
        by_id = {line["custom_id"]: line for line in lines}
        for result in results:
            (rec,) = tasks[_url(by_id[result["custom_id"]])]
            assert result["task_id"] == rec.id
            assert result["status"] == rec.status
            assert result["kind"] == (
                "embed_v2"
                if "kind" not in by_id[result["custom_id"]]
                else by_id[result["custom_id"]]["kind"].replace("-", "_")
            )
        before = fake.app.request_count()
        again = await cli(fake, *args[5:], timeout=30)
        assert again.code == 1, again.stderr
        assert fake.app.request_count() == before
        assert len(read_results(out)) == len(lines)


async def test_unconfirmed_items_stay_until_retry_unconfirmed(tmp_path: Path) -> None:
    """A create answered 503 settles ``unconfirmed`` (exit 1) and a plain rerun leaves it so
    without sending anything; ``--retry-unconfirmed`` reconciles it, creates it (no task
    exists) and appends its new line; the last line of a ``custom_id`` wins."""
    lines = [{"kind": "embed_v2", **x} for x in manifest_lines(6)]
    manifest = write_manifest(tmp_path / "items.jsonl", lines)
    out = tmp_path / "results.jsonl"
    base = ["submit", str(manifest), "--out", str(out), "--concurrency", "1", *FAST]
    async with FakeTwelveLabs(rate_limit_per_minute=10**9) as fake:
        fake.app.faults.push("POST /v1.3/embed-v2/tasks", status=503)
        first = await cli(fake, *base)
        assert first.code == 1, first.stderr
        assert "unconfirmed 1" in first.stderr
        assert "--retry-unconfirmed" in first.stderr
        (shaky,) = [r for r in read_results(out) if r["status"] == "unconfirmed"]
        assert shaky["task_id"] is None
        assert "may have reached the API" in shaky["error"]
        posts = fake.app.request_count(method="POST")
        again = await cli(fake, *base)
        assert again.code == 1, again.stderr
        assert fake.app.request_count(method="POST") == posts
        retried = await cli(fake, *base, "--retry-unconfirmed")
        assert retried.code == 0, retried.stderr
        assert fake.app.request_count(method="POST") == posts + 1
        assert len(server_tasks(fake)) == len(lines)
    results = read_results(out)
    assert len(results) == len(lines) + 1
    assert results[-1]["custom_id"] == shaky["custom_id"]
    assert results[-1]["status"] == "ready"


async def test_ctrl_c_exits_130_and_the_rerun_finishes(tmp_path: Path) -> None:
    lines = manifest_lines(12)
    manifest = write_manifest(tmp_path / "items.jsonl", lines)
    out = tmp_path / "results.jsonl"
    async with FakeTwelveLabs(
        rate_limit_per_minute=10**9,
        default_finish_after_polls=None,
        default_finish_after_seconds=1.0,
    ) as fake:
        args = command("submit", str(manifest), "--out", str(out), "--kind", "embed-v2", *FAST)
        async with await anyio.open_process(args, env=cli_env(fake)) as proc:
            with anyio.fail_after(20):
                while fake.store.count("embed_v2") + fake.store.count("analyze") == 0:
                    await anyio.sleep(0.05)
                proc.send_signal(signal.SIGINT)
                assert await proc.wait() == 130
        assert len(server_tasks(fake)) <= len(lines)
        again = await cli(fake, *args[5:], timeout=30)
        assert again.code == 0, again.stderr
    results = read_results(out)
    assert sorted(r["custom_id"] for r in results) == sorted(x["custom_id"] for x in lines)


def _url(line: dict[str, Any]) -> str:
    params = line["params"]
    if "video_url" in params:
        return str(params["video_url"])
    if "input_type" in params:
        return str(params["video"]["media_source"]["url"])
    return str(params["video"]["url"])


async def test_a_bad_manifest_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    good = manifest_lines(3)
    bad_lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps({"custom_id": "x", "kind": "embed_v3", "params": {}}),
        json.dumps({"custom_id": "y", "kind": "embed_v2", "params": {"input_type": "video"}}),
        json.dumps(good[1]),
        json.dumps({**good[2], "custom_id": good[0]["custom_id"]}),
        json.dumps({"custom_id": "z", "kind": "analyze", "params": {"vidoe": {}}}),
    ]
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text("\n".join(bad_lines) + "\n", encoding="utf-8")
    async with FakeTwelveLabs(rate_limit_per_minute=10**9) as fake:
        run = await cli(
            fake, "submit", str(manifest), "--out", str(tmp_path / "r.jsonl"), "--kind", "embed-v2"
        )
        assert run.code == 2, run.stderr
        assert fake.app.request_count() == 0
    assert "nothing was created" in run.stderr
    assert "line 2: not valid JSON" in run.stderr
    assert "line 3: unknown kind 'embed_v3'" in run.stderr
    assert "line 4: missing input: params.model_name is missing" in run.stderr
    assert "line 6: duplicate custom_id 'item-0' (also on line 1)" in run.stderr
    assert "line 7: unknown analyze parameter(s): vidoe" in run.stderr
    assert not (tmp_path / "r.jsonl").exists()
    assert not (tmp_path / "r.jsonl.state.sqlite").exists()


async def test_the_live_bar_shows_both_phases_and_requests_per_item(tmp_path: Path) -> None:
    """On a terminal (``--progress rich`` forces one), the live bar shows creating / running
    counts while it moves and, like the plain lines, the requests spent per item."""
    manifest = write_manifest(tmp_path / "items.jsonl", manifest_lines(6))
    out = tmp_path / "results.jsonl"
    async with FakeTwelveLabs(rate_limit_per_minute=10**9) as fake:
        run = await cli(
            fake, "submit", str(manifest), "--out", str(out), "--kind", "embed_v2",
            "--progress", "rich", *FAST,
        )  # fmt: skip
    assert run.code == 0, run.stderr
    assert "requests/item" in run.stderr
    assert len(read_results(out)) == 6


async def test_csv_manifest_key_refused_and_export(tmp_path: Path) -> None:
    """A CSV of custom_id,url with --kind/--model; a refused key exits 3 creating nothing;
    then ``export`` writes one row per segment (.npy + JSON-lines index without pyarrow)."""
    manifest = tmp_path / "videos.csv"
    rows = [f"clip-{i},https://videos.example/c{i}.mp4" for i in range(6)]
    manifest.write_text("custom_id,url\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    base = ["submit", str(manifest), "--out", str(out), "--kind", "embed-v2",
            "--model", "marengo3.0", *FAST]  # fmt: skip
    async with FakeTwelveLabs(api_key="right", rate_limit_per_minute=10**9, segments=3) as fake:
        refused = await cli(None, *base, env=cli_env(None, TWELVELABS_BASE_URL=fake.base_url,
                                                     TWELVELABS_API_KEY="wrong"))  # fmt: skip
        assert refused.code == 3, refused.stderr
        assert fake.store.count("embed_v2") == 0
        run = await cli(fake, *base)
        assert run.code == 0, run.stderr
        assert fake.store.count("embed_v2") == 6
    results = read_results(out)
    assert sorted(r["custom_id"] for r in results) == [f"clip-{i}" for i in range(6)]
    assert {r["status"] for r in results} == {"ready"}
    exported = await cli(None, "export", str(out), "--out", str(tmp_path / "vec"),
                         "--format", "npy")  # fmt: skip
    assert exported.code == 0, exported.stderr
    index = [json.loads(x) for x in (tmp_path / "vec.jsonl").read_text().splitlines()]
    segments = sum(len(r["task"]["data"]) for r in results)
    assert len(index) == segments
    assert segments > 0
    assert [row["row"] for row in index] == list(range(segments))
    assert set(index[0]) == {"row", "custom_id", "task_id", "segment", "option", "scope",
                             "start", "end"}  # fmt: skip
    matrix = (tmp_path / "vec.npy").read_bytes()
    assert matrix.startswith(b"\x93NUMPY\x01\x00")
    header_len = int.from_bytes(matrix[8:10], "little")
    header = matrix[10 : 10 + header_len].decode()
    dim = len(results[0]["task"]["data"][0]["embedding"])
    assert f"'shape': ({segments}, {dim})" in header
    assert "'<f4'" in header
    assert len(matrix) == 10 + header_len + segments * dim * 4


async def test_export_to_parquet_when_pyarrow_is_installed(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from twelvelabs_async import export_results

    out = tmp_path / "results.jsonl"
    write_manifest(tmp_path / "m.jsonl", [{"kind": "embed_v1", **x} for x in manifest_lines(4)
                                          if "video_url" in x["params"]])  # fmt: skip
    async with FakeTwelveLabs(rate_limit_per_minute=10**9, segments=2) as fake:
        run = await cli(fake, "submit", str(tmp_path / "m.jsonl"), "--out", str(out), *FAST)
        assert run.code == 0, run.stderr
    summary = export_results(out, tmp_path / "vec")
    assert summary.format == "parquet"
    table = pq.read_table(tmp_path / "vec.parquet")
    assert table.num_rows == summary.rows
    assert summary.rows > 0
    assert table.column_names == [
        "custom_id", "task_id", "segment", "option", "scope", "start", "end", "vector",
    ]  # fmt: skip
    first = table.slice(0, 1).to_pylist()[0]
    results = read_results(out)
    segment = results[0]["task"]["video_embedding"]["segments"][0]
    assert first["custom_id"] == results[0]["custom_id"]
    assert first["start"] == segment["start_offset_sec"]
    assert first["vector"] == pytest.approx(segment["float"], rel=1e-6)


async def test_readme_bulk_example_runs(tmp_path: Path) -> None:
    """The README's ``submit``/``export`` block, against the fake, on a small manifest, then
    its numpy-only vector store on the export."""
    text = README.read_text(encoding="utf-8")
    (block,) = [
        m.group(1)
        for m in re.finditer(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        if "submit" in m.group(1)
    ]
    lines = [{"kind": "embed_v2", **line} for line in manifest_lines(6)]
    write_manifest(tmp_path / "videos.jsonl", lines)
    async with FakeTwelveLabs(rate_limit_per_minute=10**9) as fake:
        env = cli_env(fake)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        for line in block.strip().splitlines():
            with anyio.fail_after(60):
                done = await anyio.run_process(
                    ["bash", "-c", line], env=env, cwd=tmp_path, check=False
                )
            assert done.returncode in (0, 1), (line, done.stderr.decode())
        assert len(read_results(tmp_path / "results.jsonl")) == 6
        # The numpy-only vector store reads what `export` wrote (a `py` block, so that
        # test_readme.py, whose blocks each run in an empty directory, leaves it to this test).
        (loader,) = re.findall(r"^```py\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        (tmp_path / "load.py").write_text(loader, encoding="utf-8")
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [sys.executable, "load.py"], env=env, cwd=tmp_path, check=False
            )
        assert done.returncode == 0, done.stderr.decode()
        assert len(done.stdout.decode().splitlines()) == 5


# --- the fixes in the code `watch` shares --------------------------------------------------


async def test_watch_rerun_rechecks_timed_out_tasks_and_appends_the_new_line(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results.jsonl"
    async with FakeTwelveLabs(rate_limit_per_minute=10**9) as fake:
        slow = fake.add_task("embed_v2", finish_after_seconds=1.0)
        quick = fake.add_task("embed_v2", finish_after_polls=1)
        first = await cli(fake, "watch", "embed-v2", slow, quick, "--out", str(out),
                          "--timeout", "0.3", "--poll-interval", "0.05")  # fmt: skip
        assert first.code == 1, first.stderr
        assert {r["task_id"]: r["status"] for r in read_results(out)} == {
            slow: "timed_out",
            quick: "ready",
        }
        await anyio.sleep(1.0)
        second = await cli(fake, "watch", "embed-v2", slow, quick, "--out", str(out),
                           "--poll-interval", "0.05")  # fmt: skip
        assert second.code == 0, second.stderr
        lines = read_results(out)
        assert [(r["task_id"], r["status"]) for r in lines[2:]] == [(slow, "ready")]
        third = await cli(fake, "watch", "embed-v2", slow, quick, "--out", str(out))
        assert third.code == 0
        assert len(read_results(out)) == 3


def test_a_complete_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    whole = b'{"task_id":"a","kind":"embed_v2","status":"ready"}\n'
    last = b'{"custom_id":"c","task_id":null,"kind":"analyze","status":"rejected"}'
    path.write_bytes(whole + last)
    with ResultsFile(path) as results:
        assert results.repaired
        assert not results.dropped_partial
        assert results.custom_ids == {"c": "rejected"}
        results.append(b'{"task_id":"b","kind":"embed_v2","status":"ready"}\n')
    assert path.read_bytes().splitlines()[1] == last
    assert len(path.read_bytes().splitlines()) == 3
    path.write_bytes(whole + last[:-1])  # cut inside the record: still cut off
    with ResultsFile(path) as results:
        assert not results.repaired
        assert results.dropped_partial == len(last) - 1
    assert path.read_bytes() == whole


async def test_tasks_list_escapes_control_characters(tmp_path: Path) -> None:
    hostile = "evil\x1b[2J\x07\x9b31m\u202egnp.exe"
    async with FakeTwelveLabs(rate_limit_per_minute=10**9) as fake:
        fake.add_task("analyze", custom_id=hostile)
        run = await cli(fake, "tasks", "list", "analyze")
    assert run.code == 0, run.stderr
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", run.stdout)
    assert "evil\\u001b[2J\\u0007\\u009b31m\\u202egnp.exe" in run.stdout


def test_help_lists_submit_and_export() -> None:
    done = subprocess.run(command("--help"), capture_output=True, text=True, check=False)
    assert "submit" in done.stdout
    assert "export" in done.stdout
