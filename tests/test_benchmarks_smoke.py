"""Smoke test of the benchmark harness: ``python -m benchmarks --quick --no-sdk`` runs.

It checks only that the harness runs end to end and writes the expected files and keys; it
measures and asserts nothing about speed (the numbers of a quick run mean nothing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "poll_processing",
    "poll_ready",
    "list",
    "decode",
    "import",
    "poller_e2e",
    "watch_100k",
    "keep_ready",
    "multipart_upload",
}


@pytest.mark.timeout(120)
def test_quick_benchmark_run_writes_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-sdk", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"meta", "scenarios"}
    meta = results["meta"]
    for key in ("date", "machine", "packages", "clients", "sdk_included", "notes"):
        assert key in meta
    assert meta["sdk_included"] is False
    assert "sdk" not in meta["clients"]
    assert any("SDK" in note for note in meta["notes"])
    assert set(results["scenarios"]) == SCENARIOS
    for name, scenario in results["scenarios"].items():
        for key in ("title", "params", "clients", "ratios", "targets", "notes"):
            assert key in scenario, (name, key)
    for name in ("poll_processing", "poll_ready", "list"):
        assert set(results["scenarios"][name]["clients"]) == {"ours", "raw"}, name
    assert set(results["scenarios"]["decode"]["clients"]) == {"ours", "raw", "list", "pure"}
    assert set(results["scenarios"]["keep_ready"]["clients"]) == {"ours", "list"}
    assert set(results["scenarios"]["multipart_upload"]["clients"]) == {"ours", "raw"}
    markdown = (tmp_path / "results.md").read_text()
    assert "# Benchmark results" in markdown
    assert "## Targets" in markdown
