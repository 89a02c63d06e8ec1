"""Every code block in README.md and docs/*.md runs, against the fake server (no key, no
network)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from twelvelabs_async.testing import FakeTwelveLabs

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


DOCS = [README, *sorted((README.parent / "docs").glob("*.md"))]
"""The README first, then the pages it links to: their examples run too."""


def blocks(language: str, pages: list[Path] = DOCS) -> Iterator[str]:
    for page in pages:
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            if match.group(1) == language:
                yield match.group(2)


PYTHON_BLOCKS = list(blocks("python"))
BASH_BLOCKS = list(blocks("bash"))


def test_readme_has_the_two_commands_first() -> None:
    first, second = list(blocks("bash", [README]))[:2]
    assert first.strip() == 'pip install -e ".[cli]" && python -m twelvelabs_async demo'
    assert second.strip() == 'pip install -e ".[test]" && python -m pytest'
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert second.strip() in ci  # CI runs exactly the README's test command


def fake_env(fake: FakeTwelveLabs) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWELVE")}
    env.update(TWELVELABS_API_KEY=fake.api_key, TWELVELABS_BASE_URL=fake.base_url)
    return env


@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS, ids=[f"block{i}" for i in range(len(PYTHON_BLOCKS))]
)
async def test_python_block_runs(code: str, tmp_path: Path) -> None:
    async with FakeTwelveLabs(
        rate_limit_per_minute=10**9,
        default_finish_after_polls=None,
        default_finish_after_seconds=0.2,
    ) as fake:
        script = tmp_path / "block.py"
        script.write_text(code, encoding="utf-8")
        with anyio.fail_after(60):
            result = await anyio.run_process(
                [sys.executable, str(script)], env=fake_env(fake), cwd=tmp_path, check=False
            )
    assert result.returncode == 0, result.stderr.decode()


async def test_cli_block_runs(tmp_path: Path) -> None:
    (cli_block,) = [b for b in BASH_BLOCKS if "tasks list" in b]
    async with FakeTwelveLabs(rate_limit_per_minute=10**9) as fake:
        fake.add_tasks("embed_v2", 3, finish_after_seconds=100)
        ids = fake.add_tasks("embed_v2", 5, finish_after_seconds=0.2)
        (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
        env = fake_env(fake) | {"TASK_ID": fake.add_task("analyze", finish_after_polls=1)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        for line in cli_block.strip().splitlines():
            with anyio.fail_after(60):
                result = await anyio.run_process(
                    ["bash", "-c", line], env=env, cwd=tmp_path, check=False
                )
            assert result.returncode == 0, (line, result.stderr.decode())
        lines = (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 5


def test_fake_server_block_runs(tmp_path: Path) -> None:
    (block,) = [b for b in BASH_BLOCKS if "fake-server" in b]
    argv = shlex.split(block.strip())
    assert argv[0] == "twelvelabs-async"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twelvelabs_async", *argv[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1\.3", url), url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_demo_command_runs(tmp_path: Path) -> None:
    """The first command's job (its `pip install` half is what CI's install step does)."""
    command = next(blocks("bash", [README])).split("&&", 1)[1].split()
    assert command[:3] == ["python", "-m", "twelvelabs_async"]
    result = subprocess.run(
        [sys.executable, *command[1:], "--tasks", "300", "--duration", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "demo-results.jsonl" in result.stdout
    assert len((tmp_path / "demo-results.jsonl").read_text().splitlines()) == 300
