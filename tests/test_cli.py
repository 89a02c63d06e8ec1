"""The command line, run for real (``python -m twelvelabs_async ...``) against the fake API.

The fake server runs in the test's event loop; the command runs in a subprocess that only
needs its URL (``TWELVELABS_BASE_URL``) and a key.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.helpers import cli, cli_env, command
from twelvelabs_async import AsyncTwelveLabs
from twelvelabs_async._cli import main
from twelvelabs_async._cli._demo import split_tasks
from twelvelabs_async._cli._results import ResultsFile
from twelvelabs_async._cli._watch import parse_id_lines
from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

FAST = ["--poll-interval", "0.05", "--max-poll-interval", "0.2"]
PLAIN_LINE = re.compile(r"^\[\s*\d+\.\ds\] watching \d+/\d+ \(\d+%\)", re.MULTILINE)


def read_results(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the results file ends in a partial line"
    return [msgspec.json.decode(line) for line in data.splitlines()]


# --- tasks list / get -----------------------------------------------------------------------


async def test_tasks_list_table_json_limit_and_filters(fake: FakeTwelveLabs) -> None:
    ids = fake.add_tasks(
        "analyze",
        12,
        status=lambda i: "failed" if i % 4 == 0 else None,
        custom_id=lambda i: f"job-{i}",
        finish_after_seconds=math.inf,
    )
    table = await cli(fake, "tasks", "list", "analyze", "--limit", "5")
    assert table.code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "CREATED"]
    assert len(lines) == 6
    assert lines[1].split()[0] == ids[-1]  # newest first
    assert "job-11" in lines[1]
    assert table.stderr.strip() == "5 tasks"

    as_json = await cli(fake, "tasks", "list", "analyze", "--json", "--page-limit", "5")
    assert as_json.code == 0, as_json.stderr
    items = [msgspec.json.decode(line) for line in as_json.stdout.splitlines()]
    assert [item["task_id"] for item in items] == ids[::-1]  # all 3 pages walked
    assert as_json.stderr == ""

    failed = await cli(fake, "tasks", "list", "analyze", "--status", "failed", "--json")
    statuses = Counter(msgspec.json.decode(line)["status"] for line in failed.stdout.splitlines())
    assert statuses == {"failed": 3}

    wrong = await cli(fake, "tasks", "list", "embed-v2", "--video-url", "https://x/y.mp4")
    assert wrong.code == 2
    assert "--video-url does not apply to embed-v2" in wrong.stderr


async def test_tasks_get_prints_json_and_not_found_exits_1(fake: FakeTwelveLabs) -> None:
    task_id = fake.add_task("embed_v2", status="ready")
    found = await cli(fake, "tasks", "get", "embed-v2", task_id)
    assert found.code == 0, found.stderr
    task = msgspec.json.decode(found.stdout)
    assert task["_id"] == task_id
    assert task["status"] == "ready"
    assert task["data"]

    missing = await cli(fake, "tasks", "get", "analyze", "no-such-task")
    assert missing.code == 1
    assert missing.stdout == ""
    assert "404" in missing.stderr
    assert "does not exist" in missing.stderr


async def test_refused_key_exits_3_and_never_prints_the_key() -> None:
    async with FakeTwelveLabs("the-right-key") as fake:
        env = cli_env(fake, TWELVELABS_API_KEY="a-wrong-secret-key")
        run = await cli(fake, "tasks", "list", "embed-v1", env=env)
    assert run.code == 3
    assert "refused the key" in run.stderr
    assert "a-wrong-secret-key" not in run.stderr + run.stdout


async def test_missing_key_and_bad_arguments_exit_2(fake: FakeTwelveLabs) -> None:
    env = cli_env(None, TWELVELABS_BASE_URL=fake.base_url)
    run = await cli(None, "tasks", "get", "embed-v2", "abc", env=env)
    assert run.code == 2
    assert "TWELVELABS_API_KEY" in run.stderr

    bad_kind = await cli(fake, "tasks", "list", "embed-v3")
    assert bad_kind.code == 2
    assert "invalid kind" in bad_kind.stderr

    no_ids = await cli(fake, "watch", "embed-v2")  # stdin is empty, not a terminal
    assert no_ids.code == 2
    assert "no task ids" in no_ids.stderr


# --- watch ----------------------------------------------------------------------------------


async def test_watch_outcomes_and_exit_code_1(fake: FakeTwelveLabs, tmp_path: Path) -> None:
    ready = fake.add_tasks("embed_v2", 3, finish_after_seconds=0.1)
    failed = fake.add_task("embed_v2", finish_after_seconds=0.1, final_status="failed")
    stuck = fake.add_task("embed_v2", finish_after_seconds=math.inf)
    out = tmp_path / "out.jsonl"
    run = await cli(
        fake,
        "watch",
        "embed-v2",
        *ready,
        failed,
        stuck,
        "no-such-task",
        "--out",
        str(out),
        "--timeout",
        "1.5",
        *FAST,
    )
    assert run.code == 1, run.stderr
    records = {r["task_id"]: r for r in read_results(out)}
    assert {k: r["status"] for k, r in records.items()} == {
        **dict.fromkeys(ready, "ready"),
        failed: "failed",
        stuck: "timed_out",
        "no-such-task": "not_found",
    }
    for record in records.values():
        assert record["kind"] == "embed_v2"
        assert set(record) >= {"task_id", "kind", "status", "task"}
    assert records[ready[0]]["task"]["data"]  # the whole final task, embeddings included
    for item in records[ready[0]]["task"]["data"]:  # float32 vectors, written as JSON arrays
        assert item["embedding"]
        assert all(type(x) is float for x in item["embedding"])
    assert "temporarily unstable" in records[failed]["error"]  # the task's own message
    assert records[stuck]["task"]["status"] == "processing"  # the last one retrieved
    assert "404" in records["no-such-task"]["error"]
    assert records["no-such-task"]["task"] is None
    assert "done: 6 embed-v2 tasks" in run.stderr


async def test_watch_ids_from_stdin_to_stdout_exit_0(fake: FakeTwelveLabs) -> None:
    ids = fake.add_tasks("embed_v1", 4, finish_after_seconds=0.1)
    # `tasks list --json | watch`: JSON lines on stdin, results as JSON lines on stdout.
    listed = await cli(fake, "tasks", "list", "embed-v1", "--json")
    run = await cli(fake, "watch", "embed-v1", *FAST, stdin=listed.stdout.encode())
    assert run.code == 0, run.stderr
    records = [msgspec.json.decode(line) for line in run.stdout.splitlines()]
    assert sorted(r["task_id"] for r in records) == sorted(ids)
    assert all(r["status"] == "ready" and r["kind"] == "embed_v1" for r in records)
    assert all(r["task"]["video_embedding"]["segments"] for r in records)  # full v1 record


async def test_watch_status_lists_unfinished_tasks(fake: FakeTwelveLabs, tmp_path: Path) -> None:
    # Final after a few sightings (list pages count), however slowly the command starts.
    unfinished = fake.add_tasks("analyze", 5, finish_after_polls=4)
    fake.add_tasks("analyze", 3, status="ready")  # already final: not watched
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# nothing here\n\n")
    out = tmp_path / "out.jsonl"
    run = await cli(
        fake,
        "watch",
        "analyze",
        "--status",
        "unfinished",
        "--ids-file",
        str(ids_file),
        "--out",
        str(out),
        *FAST,
    )
    assert run.code == 0, run.stderr
    assert sorted(r["task_id"] for r in read_results(out)) == sorted(unfinished)


async def test_watch_prints_plain_progress_lines_when_not_a_terminal(
    fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    ids = fake.add_tasks("embed_v2", 30, finish_after_seconds=lambda i: 0.3 + 0.03 * i)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    run = await cli(
        fake,
        "watch",
        "embed-v2",
        "--ids-file",
        str(ids_file),
        "--out",
        str(tmp_path / "out.jsonl"),
        "--progress-interval",
        "0.2",
        *FAST,
    )
    assert run.code == 0, run.stderr
    lines = PLAIN_LINE.findall(run.stderr)
    assert len(lines) >= 3, run.stderr
    assert "\x1b[" not in run.stderr  # no terminal control sequences
    assert "watching 30/30 (100%) · ready 30" in run.stderr
    assert "tasks/s" in run.stderr


async def test_watch_killed_halfway_resumes_with_every_id_once(
    fake: FakeTwelveLabs, tmp_path: Path
) -> None:
    total = 400
    ids = fake.add_tasks("embed_v2", total, finish_after_seconds=lambda i: 0.2 + 0.006 * i)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    out = tmp_path / "results.jsonl"
    args = ["watch", "embed-v2", "--ids-file", str(ids_file), "--out", str(out), *FAST]
    with (tmp_path / "first.err").open("wb") as errors:
        process = await anyio.open_process(
            command(*args), env=cli_env(fake), stdout=subprocess.DEVNULL, stderr=errors
        )
        try:
            with anyio.fail_after(20):
                while not out.exists() or out.read_bytes().count(b"\n") < 100:
                    assert process.returncode is None, "finished before it could be killed"
                    await anyio.sleep(0.02)
            process.send_signal(signal.SIGKILL)
            with anyio.fail_after(5):
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == -signal.SIGKILL
    # SIGKILL may land in the middle of a large write; if it did not, make it look so.
    data = out.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    first = [json.loads(line) for line in complete.splitlines()]
    assert 100 <= len(first) < total
    if data == complete:
        with out.open("ab") as handle:
            handle.write(b'{"task_id":"' + ids[-1].encode() + b'","kind":"emb')

    run = await cli(fake, *args)
    assert run.code == 0, run.stderr
    assert "cut off a partial last line" in run.stderr
    assert f"({len(first):,} already in {out})" in run.stderr
    records = read_results(out)
    assert Counter(r["task_id"] for r in records) == Counter(ids)  # every id exactly once
    assert all(r["status"] == "ready" for r in records)
    assert records[: len(first)] == first  # what was there is kept as it was


# --- demo, fake-server, the package ---------------------------------------------------------


async def test_demo_end_to_end(tmp_path: Path) -> None:
    run = await cli(None, "demo", "--tasks", "200", "--duration", "1.5", cwd=tmp_path, timeout=60)
    assert run.code == 0, run.stderr
    out = tmp_path / "demo-results.jsonl"  # the default, in the current directory
    records = read_results(out)
    assert len(records) == 200
    assert len({r["task_id"] for r in records}) == 200
    kinds = Counter(r["kind"] for r in records)
    assert kinds == split_tasks(200)
    assert {r["status"] for r in records} <= {"ready", "failed", "canceled"}
    assert Counter(r["status"] for r in records)["canceled"] >= 1  # canceled through the API
    text = run.stdout
    for kind in ("embed-v2", "embed-v1", "analyze"):  # listed and retrieved, every kind
        assert len(re.findall(rf"^  {kind} +[0-9a-f]{{24}} ", text, re.MULTILINE)) >= 3
    assert re.search(r"requests +\d+\.\d\d per task", text)
    assert re.search(r"^  ready +\d+", text, re.MULTILINE)
    assert f"results    {out} (200 lines)" in text
    assert PLAIN_LINE.search(text)


async def test_demo_without_rich_prints_plain_lines(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    (shim / "rich").mkdir(parents=True)
    (shim / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    out = tmp_path / "res.jsonl"
    env = cli_env(None, PYTHONPATH=str(shim))
    run = await cli(
        None,
        "demo",
        "--tasks",
        "60",
        "--duration",
        "0.5",
        "--out",
        str(out),
        "--progress",
        "rich",
        env=env,
        timeout=60,
    )
    assert run.code == 0, run.stderr
    assert "rich is not installed" in run.stderr
    assert PLAIN_LINE.search(run.stdout)
    assert len(read_results(out)) == 60


async def test_fake_server_command_serves_until_interrupted(tmp_path: Path) -> None:
    ids_out = tmp_path / "ids.txt"
    args = ["fake-server", "--seed-tasks", "3", "--kind", "embed-v1", "--api-key", "sekrit"]
    process = await anyio.open_process(command(*args, "--ids-out", str(ids_out)), env=cli_env(None))
    try:
        assert process.stdout is not None
        with anyio.fail_after(15):
            url = b""
            while not url.endswith(b"\n"):
                url += await process.stdout.receive(1)
        base_url = url.decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1\.3", base_url)
        ids = ids_out.read_text().split()
        assert len(ids) == 3
        async with AsyncTwelveLabs(api_key="sekrit", base_url=base_url) as client:
            status = await client.embed.v1.tasks.status(ids[0])
        assert status.status == "processing"
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


async def test_help_version_and_entry_points() -> None:
    run = await cli(None, "--help")
    assert run.code == 0
    for text in ("tasks", "watch", "fake-server", "demo", "exit codes:"):
        assert text in run.stdout
    watch_help = await cli(None, "watch", "--help")
    for option in (
        "--ids-file",
        "--out",
        "--timeout",
        "--max-concurrency",
        "--requests-per-minute",
        "--poll-interval",
        "--max-poll-interval",
    ):
        assert option in watch_help.stdout
    script = Path(sys.executable).parent / "twelvelabs-async"
    if script.exists():  # the console script of an installed package
        with anyio.fail_after(30):
            done = await anyio.run_process([str(script), "--version"], check=False)
        assert done.returncode == 0
        assert done.stdout.startswith(b"twelvelabs-async ")


async def test_importing_the_library_loads_no_cli_code() -> None:
    code = (
        "import sys, twelvelabs_async;"
        "print(sorted(m for m in ('rich', 'argparse', 'twelvelabs_async._cli',"
        " 'twelvelabs_async.testing') if m in sys.modules))"
    )
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, "-c", code], check=False)
    assert done.returncode == 0
    assert done.stdout.decode().strip() == "[]"


# --- in-process units -----------------------------------------------------------------------


def test_results_file_cuts_a_partial_line_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"task_id":"a","kind":"analyze","status":"ready"}\nnot json\n{"task_')
    with ResultsFile(path) as results:
        assert results.dropped_partial == len(b'{"task_')
        assert results.unreadable == 1
        assert results.has("analyze", "a")
        assert not results.has("embed_v2", "a")
        assert results.status_of("analyze", "a") == "ready"
        results.append(b'{"task_id":"b","kind":"analyze","status":"failed"}')
        with pytest.raises(Exception, match="in use by another process"):
            ResultsFile(path).open()
    assert path.read_bytes().endswith(b'"failed"}\n')
    with ResultsFile(path, fresh=True) as results:
        assert results.recorded == {}
    assert path.read_bytes() == b""


def test_id_lines_accept_plain_ids_comments_and_json() -> None:
    lines = ["# header", "", "abc extra words", '{"task_id": "t1"}', '{"_id": "t2"}', " t3 "]
    assert parse_id_lines(lines, "x") == ["abc", "t1", "t2", "t3"]


def test_main_returns_exit_codes_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["tasks", "list", "not-a-kind"])
    assert exited.value.code == 2
    assert "invalid kind" in capsys.readouterr().err
