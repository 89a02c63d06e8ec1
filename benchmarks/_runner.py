"""Runs the scenarios, alternating clients run by run, and writes results.md / results.json."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import operator
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._clients import sdk_available
from ._proc import FakeServer, child_env, run_worker
from ._report import render_markdown
from ._stats import median, ratio, summarize_runs

HERE = Path(__file__).resolve().parent

RETRIEVE_METRICS = (
    "wall_s",
    "cpu_s",
    "cpu_per_req_us",
    "throughput_rps",
    "requests_per_cpu_s",
    "rss_peak_mb",
    "preempted",
    "server_requests",
    "server_cpu_util",
)
LIST_METRICS = (
    "wall_s",
    "cpu_s",
    "rss_peak_mb",
    "server_requests",
    "server_cpu_util",
    "items",
    "preempted",
)


@dataclass
class Config:
    """Sizes of one benchmark run (full or ``--quick``)."""

    quick: bool
    runs: int
    warmup: int
    clients: list[str]
    a_tasks: int = 1000
    a_rounds: int = 4
    a_concurrency: int = 64
    b_tasks: int = 128
    b_sdk_tasks: int = 4
    b_rounds: int = 4
    b_concurrency: int = 64
    b_segments: int = 60
    b_dim: int = 1024
    c_tasks: int = 5000
    c_page_limit: int = 50
    c_io_per_page: float = 0.001
    c_passes: int = 5
    """Listing passes per process for ours and raw (each pass is only ~0.1 s); the SDK's
    passes take ~1.5 s, so it makes one per process."""
    d_iterations: dict[str, int] = field(
        default_factory=lambda: {"ours": 200, "raw": 200, "list": 200, "pure": 200, "sdk": 5}
    )
    e_repeats: int = 21
    e_sdk_repeats: int = 11
    e_importtime_runs: int = 5
    e_compile_runs: int = 2
    f_sizes: list[tuple[int, float]] = field(
        default_factory=lambda: [(200, 1 / 30), (2000, 1 / 30), (20000, 1 / 10)]
    )
    """(tasks, time scale) of each poller run. 20,000 tasks at 1/30 would finish ~1,000
    tasks/s, each final retrieve carrying its embeddings: that saturates the client's core and
    measures the compression, not the poller; 1/10 keeps the core mostly idle."""
    f_scale: float = 1 / 30
    """The time scale of the fixed-interval loop."""
    f_curve: list[tuple[float | None, float]] = field(
        default_factory=lambda: [(5.0, 1.5), (10.0, 1.25), (20.0, 1.15), (None, 1.1)]
    )
    """(target_delay, requests_per_task) of each point of the trade curve (2,000 tasks)."""
    f_curve_tasks: int = 2000
    f_fixed_sample: int = 200
    g_ids: int = 100_000
    g_duration: float = 9.0
    g_poll_interval: float = 0.2
    g_max_poll_interval: float = 1.0
    h_tasks: int = 1000
    h_concurrency: int = 16
    i_size: int = 2**30
    """Bytes of the multipart upload (1 GiB; created in a temp dir, deleted afterwards)."""
    i_chunk: int = 5 * 2**20
    i_concurrency: int = 5

    @classmethod
    def full(cls, clients: list[str], runs: int, warmup: int) -> Config:
        return cls(quick=False, runs=runs, warmup=warmup, clients=clients)

    def runs_of(self, client: str) -> int:
        # The same number for every client: extra runs of the fast clients would land in a
        # different stretch of time than the SDK's, and this shared machine's speed drifts.
        return self.runs

    @classmethod
    def tiny(cls, clients: list[str]) -> Config:
        return cls(
            quick=True,
            runs=1,
            warmup=0,
            clients=clients,
            a_tasks=40,
            a_rounds=2,
            a_concurrency=8,
            b_tasks=4,
            b_sdk_tasks=2,
            b_rounds=2,
            b_concurrency=4,
            b_segments=4,
            b_dim=64,
            c_tasks=120,
            c_page_limit=50,
            c_passes=1,
            d_iterations={"ours": 5, "raw": 5, "list": 5, "pure": 5, "sdk": 1},
            e_repeats=1,
            e_sdk_repeats=1,
            e_importtime_runs=1,
            e_compile_runs=1,
            f_sizes=[(30, 1 / 600)],
            f_scale=1 / 600,
            f_curve=[(10.0, 1.25)],
            f_curve_tasks=30,
            f_fixed_sample=10,
            g_ids=600,
            g_duration=1.5,
            g_poll_interval=0.1,
            g_max_poll_interval=0.3,
            h_tasks=20,
            h_concurrency=4,
            i_size=24 * 2**20 + 7,
            i_chunk=2**20,
            i_concurrency=4,
        )


def _log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def _order(clients: list[str], round_no: int) -> list[str]:
    """Rotate the client order every round, so no client always runs first or last."""
    k = round_no % len(clients)
    return clients[k:] + clients[:k]


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "==": operator.eq,
}


def _target(tid: str, text: str, value: float | None, op: str, threshold: float) -> dict[str, Any]:
    met = None if value is None else bool(_OPS[op](value, threshold))
    return {"id": tid, "text": text, "value": value, "op": op, "threshold": threshold, "met": met}


def _alternate(
    cfg: Config,
    measure: Callable[[str], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> dict[str, list[dict[str, Any]]]:
    """Warm-up rounds, then counted rounds; the client order rotates every round, and each
    client stops after its own number of counted runs."""
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cfg.clients}
    for round_no in range(cfg.warmup + max(cfg.runs_of(c) for c in cfg.clients)):
        for client in _order(cfg.clients, round_no):
            if round_no >= cfg.warmup + cfg.runs_of(client):
                continue
            if round_no < cfg.warmup and client == "sdk":
                continue  # see the note in main(): the SDK's runs are long; it warms up in-process
            res = measure(client)
            counted = round_no >= cfg.warmup
            label = f"run {round_no - cfg.warmup + 1}" if counted else "warm-up"
            _log(f"  {client:4s} {label}: {describe(res)}")
            if counted:
                runs[client].append(res)
    return runs


def _med(scn: dict[str, Any], client: str, metric: str) -> float | None:
    entry = scn["clients"].get(client)
    if not entry:
        return None
    stats = entry["summary"].get(metric)
    return None if not stats else float(stats["median"])


def _paired(scn: dict[str, Any], num: str, den: str, metric: str) -> float | None:
    """Median over rounds of the per-round ratio ``num / den`` (the k-th counted runs of two
    clients ran next to each other, so slow drifts of the machine's speed cancel out)."""
    a, b = scn["clients"].get(num), scn["clients"].get(den)
    if not a or not b:
        return None
    values = [
        x[metric] / y[metric] for x, y in zip(a["runs"], b["runs"], strict=False) if y[metric]
    ]
    return median(values) if values else None


# --- a, b: retrieves --------------------------------------------------------------------------


def _retrieve_runs(
    cfg: Config,
    server: FakeServer,
    ids_by_client: dict[str, list[str]],
    *,
    rounds: int,
    concurrency: int,
    expect: str,
    warm: dict[str, int] | None = None,
) -> dict[str, Any]:

    def measure(client: str) -> dict[str, Any]:
        ids = ids_by_client[client]
        spec = {
            "mode": "retrieve",
            "client": client,
            "base_url": server.base_url,
            "ids": ids,
            "rounds": rounds,
            "concurrency": min(concurrency, len(ids)),
            "expect": expect,
            "warm": (warm or {}).get(client, concurrency),
        }
        res = run_worker(spec, server)
        if res["unexpected"] or res["server_requests"] != res["requests"]:
            raise RuntimeError(f"{client}: unexpected answers or request count: {res}")
        res["cpu_per_req_us"] = 1e6 * res["cpu_s"] / res["requests"]
        res["throughput_rps"] = res["requests"] / res["wall_s"]
        res["requests_per_cpu_s"] = res["requests"] / res["cpu_s"]
        res["rss_peak_mb"] = res["rss_peak_b"] / 2**20
        res["server_cpu_util"] = res["server_cpu_s"] / res["wall_s"]
        return res

    def describe(res: dict[str, Any]) -> str:
        return (
            f"wall {res['wall_s']:.3f}s cpu {res['cpu_s']:.3f}s "
            f"({res['cpu_per_req_us']:.0f} us/req) requests {res['server_requests']} "
            f"preempted {res['preempted']}"
        )

    runs = _alternate(cfg, measure, describe)
    return {c: {"runs": r, "summary": summarize_runs(r, RETRIEVE_METRICS)} for c, r in runs.items()}


def scenario_a(cfg: Config) -> dict[str, Any]:
    n, rounds, conc = cfg.a_tasks, cfg.a_rounds, cfg.a_concurrency
    with FakeServer() as server:
        ids = server.seed(n, finish_after_seconds="inf")
        clients = _retrieve_runs(
            cfg,
            server,
            dict.fromkeys(cfg.clients, ids),
            rounds=rounds,
            concurrency=conc,
            expect="processing",
        )
    scn: dict[str, Any] = {
        "title": "a. Poll embed-v2 tasks, small bodies (status processing)",
        "params": {"tasks": n, "retrieves_per_task": rounds, "concurrency": conc},
        "clients": clients,
        "notes": [
            "Each run: 64 coroutines share one list of tasks x retrieves (every task once, then "
            "again, 4 times over); every client uses its defaults (ours: a 64-connection "
            "aiohttp pool; the SDK: its own httpx.AsyncClient, whose default pool keeps at most "
            "20 idle connections, so some connections are reopened; raw: an aiohttp pool of 64)."
            " The throughput target uses wall time, which other load on the machine disturbs "
            "more than CPU time; requests per CPU-second is shown alongside.",
        ],
    }
    sdk_cpu, ours_cpu = _med(scn, "sdk", "cpu_s"), _med(scn, "ours", "cpu_s")
    ours_tp, raw_tp = _med(scn, "ours", "throughput_rps"), _med(scn, "raw", "throughput_rps")
    scn["ratios"] = {
        "sdk_cpu / ours_cpu": ratio(sdk_cpu, ours_cpu),
        "ours_throughput / raw_throughput": ratio(ours_tp, raw_tp),
        "ours_cpu / raw_cpu": ratio(ours_cpu, _med(scn, "raw", "cpu_s")),
        "requests per CPU-s: ours / raw": ratio(
            _med(scn, "ours", "requests_per_cpu_s"), _med(scn, "raw", "requests_per_cpu_s")
        ),
        "sdk_wall / ours_wall": ratio(_med(scn, "sdk", "wall_s"), _med(scn, "ours", "wall_s")),
        "paired rounds: sdk_cpu / ours_cpu": _paired(scn, "sdk", "ours", "cpu_s"),
        "paired rounds: ours_throughput / raw_throughput": _paired(
            scn, "ours", "raw", "throughput_rps"
        ),
        "paired rounds: ours_cpu / raw_cpu": _paired(scn, "ours", "raw", "cpu_s"),
    }
    scn["targets"] = [
        _target("a1", "client CPU: SDK / ours", scn["ratios"]["sdk_cpu / ours_cpu"], ">=", 20),
        _target(
            "a2",
            "request throughput: ours / raw loop",
            scn["ratios"]["ours_throughput / raw_throughput"],
            ">=",
            0.85,
        ),
    ]
    return scn


def scenario_b(cfg: Config) -> dict[str, Any]:
    rounds, conc = cfg.b_rounds, cfg.b_concurrency
    with FakeServer(segments=cfg.b_segments, embedding_dim=cfg.b_dim) as server:
        ids = server.seed(cfg.b_tasks, status="ready")
        ids_by_client = {c: ids for c in cfg.clients}
        if "sdk" in ids_by_client:
            ids_by_client["sdk"] = ids[: cfg.b_sdk_tasks]
        clients = _retrieve_runs(
            cfg,
            server,
            ids_by_client,
            rounds=rounds,
            concurrency=conc,
            expect="ready",
            warm={"sdk": 1},
        )
    scn: dict[str, Any] = {
        "title": f"b. Poll embed-v2 tasks, ready bodies ({cfg.b_segments} x {cfg.b_dim} floats)",
        "params": {
            "tasks": cfg.b_tasks,
            "sdk_tasks": cfg.b_sdk_tasks,
            "retrieves_per_task": rounds,
            "concurrency": f"min({conc}, tasks)",
            "segments": cfg.b_segments,
            "embedding_dim": cfg.b_dim,
        },
        "clients": clients,
        "notes": [
            "Smaller than scenario a to fit the time budget: each ready body is ~580 KB, so "
            "1,000 x 4 would move 2.3 GB per run. ours and raw run "
            f"{cfg.b_tasks} tasks x {rounds} retrieves; the official SDK spends ~0.3 s of CPU "
            f"per ready body, so it runs {cfg.b_sdk_tasks} tasks x {rounds} (1,000 x 4 would "
            "take ~20 minutes per SDK run). The SDK ratio is therefore per request (CPU per "
            "request); ours and raw run the same workload.",
        ],
    }
    sdk_r, ours_r = _med(scn, "sdk", "cpu_per_req_us"), _med(scn, "ours", "cpu_per_req_us")
    raw_r = _med(scn, "raw", "cpu_per_req_us")
    scn["ratios"] = {
        "sdk_cpu_per_req / ours_cpu_per_req": ratio(sdk_r, ours_r),
        "ours_cpu / raw_cpu": ratio(ours_r, raw_r),
        "ours_throughput / raw_throughput": ratio(
            _med(scn, "ours", "throughput_rps"), _med(scn, "raw", "throughput_rps")
        ),
        "paired rounds: sdk_cpu_per_req / ours_cpu_per_req": _paired(
            scn, "sdk", "ours", "cpu_per_req_us"
        ),
        "paired rounds: ours_cpu / raw_cpu": _paired(scn, "ours", "raw", "cpu_per_req_us"),
    }
    scn["targets"] = [
        _target(
            "b1",
            "client CPU per request: SDK / ours",
            scn["ratios"]["sdk_cpu_per_req / ours_cpu_per_req"],
            ">=",
            50,
        ),
        _target(
            "b2", "client CPU: ours / raw loop", scn["ratios"]["ours_cpu / raw_cpu"], "<=", 1.15
        ),
    ]
    return scn


# --- c: listing -------------------------------------------------------------------------------


def _list_runs(cfg: Config, server: FakeServer, io: float, expect: int) -> dict[str, Any]:

    def measure(client: str) -> dict[str, Any]:
        spec = {
            "mode": "list",
            "client": client,
            "base_url": server.base_url,
            "page_limit": cfg.c_page_limit,
            "io_per_page": io,
            "passes": 1 if client == "sdk" else cfg.c_passes,
        }
        res = run_worker(spec, server)
        res["server_requests"] /= res["passes"]
        res["server_cpu_s"] /= res["passes"]
        res["rss_peak_mb"] = res["rss_peak_b"] / 2**20
        res["server_cpu_util"] = res["server_cpu_s"] / res["wall_s"]
        if res["items"] != expect:
            raise RuntimeError(f"{client} listed {res['items']} tasks, expected {expect}")
        return res

    def describe(res: dict[str, Any]) -> str:
        return (
            f"wall {res['wall_s']:.3f}s cpu {res['cpu_s']:.3f}s "
            f"requests {res['server_requests']} preempted {res['preempted']}"
        )

    runs = _alternate(cfg, measure, describe)
    return {c: {"runs": r, "summary": summarize_runs(r, LIST_METRICS)} for c, r in runs.items()}


def scenario_c(cfg: Config) -> dict[str, Any]:
    n, limit = cfg.c_tasks, cfg.c_page_limit
    pages = -(-n // limit)
    with FakeServer() as server:
        server.seed(n, finish_after_seconds="inf")
        _log(" c: consumer does nothing between items")
        bare = _list_runs(cfg, server, 0.0, n)
        _log(f" c: consumer waits {cfg.c_io_per_page * 1000:g} ms for a threaded write per page")
        io = _list_runs(cfg, server, cfg.c_io_per_page, n)
    scn: dict[str, Any] = {
        "title": f"c. List {n:,} embed-v2 tasks, page_limit={limit}",
        "params": {
            "tasks": n,
            "page_limit": limit,
            "pages": pages,
            "io_per_page_s": cfg.c_io_per_page,
        },
        "clients": bare,
        "variants": {"io": io},
        "notes": [
            "Two consumers: one that only collects the ids (no await between items), and one "
            f"that awaits {cfg.c_io_per_page * 1000:g} ms of downstream I/O per page (variant "
            "`io`: a write done in a worker thread, as a database driver would; a plain "
            "asyncio.sleep(0.001) is avoided because epoll rounds timer waits up to whole "
            "milliseconds whenever other I/O lands during them, which swamps a 1 ms wait). "
            "The raw loop is sequential: it requests a page only after handling the previous "
            "one. Our paginator keeps the next page's fetch under way while a page is "
            "handled, and once `total_page` says a next page exists it requests that page "
            "together with the one the consumer waits for: the server prepares page n+1 while "
            "the client decodes page n, so even the bare consumer gains (never more than one "
            "page beyond the one being handled or awaited, and exactly 100 requests).",
            f"ours and raw list all tasks {cfg.c_passes} times per process and report their "
            "median pass (a pass is ~0.1 s, easily disturbed by other load); the SDK lists "
            "them once per process. Requests and server CPU are per pass.",
        ],
    }
    io_scn = {"clients": io}
    scn["ratios"] = {
        "sdk_wall / ours_wall": ratio(_med(scn, "sdk", "wall_s"), _med(scn, "ours", "wall_s")),
        "raw_wall / ours_wall": ratio(_med(scn, "raw", "wall_s"), _med(scn, "ours", "wall_s")),
        "sdk_cpu / ours_cpu": ratio(_med(scn, "sdk", "cpu_s"), _med(scn, "ours", "cpu_s")),
        "io: sdk_wall / ours_wall": ratio(
            _med(io_scn, "sdk", "wall_s"), _med(io_scn, "ours", "wall_s")
        ),
        "io: raw_wall / ours_wall": ratio(
            _med(io_scn, "raw", "wall_s"), _med(io_scn, "ours", "wall_s")
        ),
    }
    ours_requests = _med(scn, "ours", "server_requests")
    scn["targets"] = [
        _target("c1", "wall time: SDK / ours", scn["ratios"]["sdk_wall / ours_wall"], ">=", 30),
        _target(
            "c2",
            "wall time: sequential raw loop / ours (consumer with per-page I/O)",
            scn["ratios"]["io: raw_wall / ours_wall"],
            ">",
            1.0,
        ),
        {
            **_target(
                "c2b",
                "wall time: sequential raw loop / ours (bare consumer; informational)",
                scn["ratios"]["raw_wall / ours_wall"],
                ">",
                1.0,
            ),
            "informational": True,
        },
        _target("c3", "requests sent by ours", ours_requests, "==", pages),
    ]
    return scn


# --- d: decoding ------------------------------------------------------------------------------


def scenario_d(cfg: Config) -> dict[str, Any]:
    with FakeServer(segments=cfg.b_segments, embedding_dim=cfg.b_dim) as server:
        (task_id,) = server.seed(1, status="ready")

        def measure(client: str) -> dict[str, Any]:
            spec = {
                "mode": "decode",
                "client": client,
                "base_url": server.base_url,
                "task_id": task_id,
                "iterations": cfg.d_iterations[client],
            }
            # "pure" is ours with the C accelerator switched off: what a machine without a
            # C compiler at install time gets.
            env = {"TWELVELABS_ASYNC_NO_EXTENSIONS": "1"} if client == "pure" else None
            res = run_worker(spec, env=env)
            res["decode_ms"] = res["decode_s"] * 1000
            res["cpu_per_decode_ms"] = res["cpu_per_decode_s"] * 1000
            for part in ("json_loads_s", "parse_obj_as_s"):
                if part in res:
                    res[part.replace("_s", "_ms")] = res[part] * 1000
            return res

        # "list" decodes the vectors to list[float], as this library did before float32
        # vectors; "pure" is ours without the C accelerator.
        with_list = replace(cfg, clients=[*cfg.clients, "list", "pure"])
        runs = _alternate(with_list, measure, lambda res: f"{res['decode_ms']:.2f} ms per body")
    metrics = ("decode_ms", "cpu_per_decode_ms", "json_loads_ms", "parse_obj_as_ms")
    clients = {c: {"runs": r, "summary": summarize_runs(r, metrics)} for c, r in runs.items()}
    first = next(iter(next(iter(runs.values()))), {})
    scn: dict[str, Any] = {
        "title": f"d. Decode one ready body ({cfg.b_segments} x {cfg.b_dim} floats)",
        "params": {
            "body_bytes": first.get("body_bytes"),
            "floats": first.get("floats"),
            "iterations_per_process": cfg.d_iterations,
        },
        "clients": clients,
        "notes": [
            "ours: twelvelabs_async._decode.decode(EmbeddingTask, response), exactly what "
            "retrieve() runs on a body: the C accelerator parses every vector straight into "
            "float32 without making Python floats, in one pass over the body "
            "(extract_vectors), and msgspec decodes the rest. raw: "
            "msgspec.json.Decoder(EmbeddingTask) called directly, as a user's own msgspec "
            "decode would: each vector's text is parsed by the accelerator after msgspec has "
            "scanned it (two passes). "
            "sdk: json.loads(body) (httpx's Response.json()) + "
            "core.pydantic_utilities.parse_obj_as(EmbeddingTaskResponse, ...), exactly what "
            "embed.v_2.tasks.retrieve runs (embed/v_2/tasks/raw_client.py); the SDK's time "
            "includes json.loads. list: a plain msgspec decode with vectors as list[float], "
            "as this library kept them before float32 vectors (the floats parsed and kept). "
            "pure: ours with TWELVELABS_ASYNC_NO_EXTENSIONS=1 (no C accelerator, as on a "
            "machine without a C compiler at install): msgspec decodes each vector's text to "
            "a transient list[float] that struct packs into float32.",
        ],
    }
    scn["ratios"] = {
        "sdk / ours": ratio(_med(scn, "sdk", "decode_ms"), _med(scn, "ours", "decode_ms")),
        "ours / raw": ratio(_med(scn, "ours", "decode_ms"), _med(scn, "raw", "decode_ms")),
        "ours / list": ratio(_med(scn, "ours", "decode_ms"), _med(scn, "list", "decode_ms")),
        "pure / list": ratio(_med(scn, "pure", "decode_ms"), _med(scn, "list", "decode_ms")),
    }
    scn["targets"] = [
        _target("d1", "decode time: SDK / ours", scn["ratios"]["sdk / ours"], ">=", 100)
    ]
    return scn


# --- e: import time ---------------------------------------------------------------------------


IMPORTS = {
    "bare": "pass",
    "deps": "import aiohttp, msgspec, anyio, backoff",
    "ours": "import twelvelabs_async",
    "sdk": "import twelvelabs",
}
IMPORT_ROOTS = {
    "deps": ("aiohttp", "msgspec", "anyio", "backoff"),
    "ours": ("twelvelabs_async",),
    "sdk": ("twelvelabs",),
}


def _importtime_ms(code: str, roots: tuple[str, ...], env: dict[str, str]) -> float:
    """Sum of the cumulative ``-X importtime`` figures of the top-level ``roots``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() in roots and not parts[2][1:].startswith(" "):
            total += int(parts[1])
    return total / 1000.0


def scenario_e(cfg: Config) -> dict[str, Any]:
    names = ["bare", "deps", "ours"] + (["sdk"] if "sdk" in cfg.clients else [])
    cache = tempfile.mkdtemp(prefix="bench-pyc-")
    env = child_env(PYTHONPYCACHEPREFIX=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    importtime: dict[str, list[float]] = {n: [] for n in names if n != "bare"}
    try:
        for name in names:  # compile every module once, into the private cache
            for _ in range(cfg.e_compile_runs):
                subprocess.run([sys.executable, "-c", IMPORTS[name]], env=env, check=True)
        repeats = cfg.e_repeats
        for i in range(repeats):
            for name in _order(names, i):
                if name == "sdk" and i >= cfg.e_sdk_repeats:
                    continue
                u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", IMPORTS[name]], env=env, check=True)
                walls[name].append(time.perf_counter() - t0)
                u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus[name].append(
                    u1.ru_utime - u0.ru_utime + u1.ru_stime - u0.ru_stime
                )  # the child's own CPU: robust to other load on the machine
                if name != "bare" and i < cfg.e_importtime_runs:
                    importtime[name].append(_importtime_ms(IMPORTS[name], IMPORT_ROOTS[name], env))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    bare_wall, bare_cpu = median(walls["bare"]), median(cpus["bare"])
    clients: dict[str, Any] = {}
    for name in names:
        runs = [
            {
                "process_ms": w * 1000,
                "net_ms": (w - bare_wall) * 1000,
                "process_cpu_ms": c * 1000,
                "net_cpu_ms": (c - bare_cpu) * 1000,
            }
            for w, c in zip(walls[name], cpus[name], strict=True)
        ]
        for run, value in zip(runs, importtime.get(name, []), strict=False):
            run["importtime_ms"] = value
        metrics = ("net_cpu_ms", "net_ms", "process_cpu_ms", "process_ms", "importtime_ms")
        clients[name] = {"runs": runs, "summary": summarize_runs(runs, metrics)}
    scn: dict[str, Any] = {
        "title": "e. Import time (fresh interpreter)",
        "params": {
            "repeats": cfg.e_repeats,
            "sdk_repeats": cfg.e_sdk_repeats,
            "commands": {n: IMPORTS[n] for n in names},
        },
        "clients": clients,
        "notes": [
            "net_cpu_ms = the CPU time (user + sys) of `python -c '<import>'` minus the median "
            "of `python -c pass`; net_ms = the same with wall time (more exposed to other load "
            "on the machine); importtime_ms = the cumulative `-X importtime` figure of the "
            "top-level package(s) (no interpreter start or exit). The targets use net_cpu_ms. "
            "Bytecode is compiled first into a private PYTHONPYCACHEPREFIX, so every package "
            "is timed from .pyc files alike.",
        ],
    }
    ours, deps, sdk = (_med(scn, n, "net_cpu_ms") for n in ("ours", "deps", "sdk"))
    scn["ratios"] = {
        "ours / deps": ratio(ours, deps),
        "sdk / ours": ratio(sdk, ours),
        "wall: ours / deps": ratio(_med(scn, "ours", "net_ms"), _med(scn, "deps", "net_ms")),
        "wall: sdk / ours": ratio(_med(scn, "sdk", "net_ms"), _med(scn, "ours", "net_ms")),
        "importtime: ours / deps": ratio(
            _med(scn, "ours", "importtime_ms"), _med(scn, "deps", "importtime_ms")
        ),
        "importtime: sdk / ours": ratio(
            _med(scn, "sdk", "importtime_ms"), _med(scn, "ours", "importtime_ms")
        ),
    }
    scn["targets"] = [
        _target(
            "e1",
            "import time: ours / (aiohttp+msgspec+anyio+backoff)",
            scn["ratios"]["ours / deps"],
            "<=",
            1.2,
        ),
        _target("e2", "import time: twelvelabs / ours", scn["ratios"]["sdk / ours"], ">=", 3),
    ]
    return scn


# --- f: the poller end to end -----------------------------------------------------------------


def _end_to_end(
    n: int, mode: str, scale: float, knobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One poller (or fixed-interval) run over ``n`` tasks seeded when the client is ready;
    ``knobs`` are PollerOptions values (target_delay, requests_per_task) for this run."""
    rng = random.Random(1)
    finish = [rng.uniform(30.0, 600.0) * scale for _ in range(n)]
    with FakeServer() as server:
        spec = {"mode": mode, "base_url": server.base_url, "scale": scale, "fixed_interval": 5.0}
        spec.update(knobs or {})

        def seed() -> list[str]:
            return [json.dumps(server.seed(n, finish_after_seconds=finish))]

        res = run_worker(spec, server, on_ready=seed, timeout=1800)
        final_at = server.final_at()
    delivered: dict[str, float] = res.pop("delivered_at")
    if len(delivered) != n:
        raise RuntimeError(f"{mode}: {len(delivered)} of {n} tasks delivered")
    delays = sorted((t - (final_at[task_id] or 0.0)) / scale for task_id, t in delivered.items())
    res.update(
        requests=res["server_requests"],
        requests_per_task=res["server_requests"] / n,
        delay_median_s=statistics.median(delays),
        delay_p90_s=delays[min(n - 1, int(0.9 * n))],
        delay_max_s=delays[-1],
        early_deliveries=sum(1 for d in delays if d < 0),
        time_scale=round(1 / scale),
        server_cpu_util=res["server_cpu_s"] / res["wall_s"],
        client_cpu_util=res["cpu_s"] / res["wall_s"],
    )
    _log(
        f"  {res['requests_per_task']:.2f} requests/task, delay median "
        f"{res['delay_median_s']:.1f}s p90 {res['delay_p90_s']:.1f}s (real seconds); "
        f"client CPU {res['client_cpu_util']:.0%}, server CPU {res['server_cpu_util']:.0%}"
    )
    return res


def scenario_f(cfg: Config) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    metrics = (
        "requests_per_task",
        "delay_median_s",
        "delay_p90_s",
        "delay_max_s",
        "wall_s",
        "cpu_s",
        "requests",
        "client_cpu_util",
        "server_cpu_util",
        "time_scale",
    )
    for n, size_scale in cfg.f_sizes:
        _log(f" f: poller, {n} tasks, time scale 1/{round(1 / size_scale)}")
        res = _end_to_end(n, "poller", size_scale)
        rows[f"poller_{n}"] = {"runs": [res], "summary": summarize_runs([res], metrics)}
    curve = []
    for target, budget in cfg.f_curve:
        knobs = {"target_delay": target, "requests_per_task": budget}
        _log(f" f: trade curve, {cfg.f_curve_tasks} tasks, {knobs}")
        res = _end_to_end(cfg.f_curve_tasks, "poller", cfg.f_scale, knobs)
        curve.append(
            {
                "target_delay_s": target,
                "requests_per_task_budget": budget,
                **{k: res[k] for k in ("requests_per_task", "delay_median_s", "delay_p90_s")},
            }
        )
    n = cfg.f_fixed_sample
    scale = cfg.f_scale
    _log(f" f: fixed 5 s loop per task, {n} tasks, time scale 1/{round(1 / scale)}")
    res = _end_to_end(n, "fixed", scale)
    rows[f"fixed_{n}"] = {"runs": [res], "summary": summarize_runs([res], metrics)}
    scn: dict[str, Any] = {
        "title": "f. Poller end to end: tasks finishing between 30 s and 10 min",
        "params": {
            "poller_runs": ", ".join(f"{k:,} tasks at 1/{round(1 / v)}" for k, v in cfg.f_sizes),
            "poll_interval_s": "2 x scale",
            "max_poll_interval_s": "30 x scale",
            "fixed_loop": f"{n} tasks at 1/{round(1 / scale)}, 5 x scale interval",
        },
        "clients": rows,
        "notes": [
            "All tasks are created together (directly in the fake's store; creation requests "
            "excluded) and finish at times drawn uniformly from 30 s..600 s, scaled down (the "
            "time_scale column) on the fake (finish_after_seconds) and in the poller's "
            "intervals; delays, requests and CPU are reported per real-time run, with delays "
            "scaled back to real seconds. The fake runs in its own "
            "process (so the client's CPU is its own); its final_at and the client's delivery "
            "times are both time.monotonic(), the system-wide CLOCK_MONOTONIC on Linux. One "
            "run per size (each takes the whole scaled timeline).",
            f"The fixed-interval loop (the official SDK's style: fetch, sleep 5 s, repeat; "
            f"implemented with our retrieve) runs on a {n}-task sample with the same finish-time "
            "distribution: its per-task numbers do not depend on the batch size, and 2,000 such "
            "loops would need 400 requests/s in real time (12,000/s at 1/30).",
            "Default poller settings otherwise (PollerOptions(), every duration scaled): "
            "max_concurrency 16, sweeps on, 50 tasks per list request, target_delay 10 s "
            "(sweeps at most 19 s apart), requests_per_task 1.25 (sweeps spend up to 0.25 list "
            "requests per task they find finished, each sweep listing whichever side, "
            "non-final or final tasks of the creation window, takes fewer pages).",
            "Trade curve (2,000 tasks at the fixed loop's scale, one run each): "
            + "; ".join(
                f"target_delay {p['target_delay_s']} s / budget {p['requests_per_task_budget']}"
                f" -> {p['requests_per_task']:.2f} requests per task, median "
                f"{p['delay_median_s']:.1f} s, p90 {p['delay_p90_s']:.1f} s"
                for p in curve
            )
            + ".",
        ],
        "curve": curve,
    }
    fixed_rpt = rows[f"fixed_{n}"]["summary"]["requests_per_task"]["median"]
    fixed_delay = rows[f"fixed_{n}"]["summary"]["delay_median_s"]["median"]
    ratios: dict[str, float | None] = {}
    for size, _ in cfg.f_sizes:
        summ = rows[f"poller_{size}"]["summary"]
        ratios[f"fixed / poller requests per task ({size})"] = ratio(
            fixed_rpt, summ["requests_per_task"]["median"]
        )
        ratios[f"poller / fixed median delay ({size})"] = ratio(
            summ["delay_median_s"]["median"], fixed_delay
        )
    scn["ratios"] = ratios
    targets = []
    for size, _ in cfg.f_sizes:
        summ = rows[f"poller_{size}"]["summary"]
        targets += [
            _target(
                f"f{size}a",
                f"poller requests per task ({size:,} tasks)",
                summ["requests_per_task"]["median"],
                "<=",
                1.3,
            ),
            _target(
                f"f{size}b",
                f"poller median delay, s ({size:,} tasks)",
                summ["delay_median_s"]["median"],
                "<=",
                10.0,
            ),
            _target(
                f"f{size}c",
                f"poller p90 delay, s ({size:,} tasks)",
                summ["delay_p90_s"]["median"],
                "<=",
                20.0,
            ),
        ]
    scn["targets"] = targets
    return scn


# --- g: 100,000 watched ids -------------------------------------------------------------------


def scenario_g(cfg: Config) -> dict[str, Any]:
    with FakeServer() as server:
        ids = server.seed(cfg.g_ids, finish_after_seconds="inf")
        spec = {
            "mode": "watch",
            "base_url": server.base_url,
            "duration": cfg.g_duration,
            "poll_interval": cfg.g_poll_interval,
            "max_poll_interval": cfg.g_max_poll_interval,
        }
        res = run_worker(spec, server, extra_lines=[json.dumps(ids)], timeout=600)
    res["rss_peak_mb"] = res["rss_peak_b"] / 2**20
    res["rss_before_mb"] = res["rss_before_b"] / 2**20
    res["rss_after_add_mb"] = res["rss_after_add_b"] / 2**20
    res["bytes_per_watched_id"] = (res["rss_peak_b"] - res["rss_before_b"]) / res["watched"]
    res["full_sweep_cpu_median_s"] = median(res["full_sweep_cpu_s"])
    res["full_sweep_wall_median_s"] = median(res["full_sweep_wall_s"])
    res["probe_cpu_median_ms"] = median(res["probe_cpu_s"]) * 1000
    res["cpu_per_watched_id_per_full_sweep_us"] = (
        1e6 * res["full_sweep_cpu_median_s"] / res["watched"]
    )
    _log(
        f"  peak RSS {res['rss_peak_mb']:.1f} MB, {res['sweeps']} sweeps "
        f"({res['full_sweeps']} full), full sweep CPU {res['full_sweep_cpu_median_s']:.2f}s"
    )
    metrics = (
        "rss_before_mb",
        "rss_after_add_mb",
        "rss_peak_mb",
        "bytes_per_watched_id",
        "add_cpu_s",
        "sweeps",
        "full_sweeps",
        "probe_sweeps",
        "full_sweep_pages",
        "full_sweep_cpu_median_s",
        "full_sweep_wall_median_s",
        "cpu_per_watched_id_per_full_sweep_us",
        "probe_cpu_median_ms",
        "cpu_per_cycle_s",
        "cpu_s",
        "wall_s",
        "requests",
        "server_requests",
    )
    return {
        "title": f"g. A poller watching {cfg.g_ids:,} ids that stay processing",
        "params": {
            "watched": cfg.g_ids,
            "run_s": cfg.g_duration,
            "poll_interval_s": cfg.g_poll_interval,
            "max_poll_interval_s": cfg.g_max_poll_interval,
        },
        "clients": {"ours": {"runs": [res], "summary": summarize_runs([res], metrics)}},
        "ratios": {},
        "targets": [],
        "notes": [
            "One poller process (the fake in its own process) watches every id with default "
            "settings except shorter intervals, so that several sweep cycles fit in the run. A "
            "full sweep lists every processing task in the watched creation window (50 per "
            "request) and learns each task's creation time; later sweeps list the shorter side "
            "of that window (here the finished tasks: none) and stop after page 1 while its "
            "count is unchanged (a probe). No task finishes, so no retrieve is sent. "
            "cpu_per_cycle_s = the poller process's CPU over the whole run / sweeps. 'RSS "
            f"before the client' already holds the ids themselves (a list of {cfg.g_ids:,} "
            "strings), so the per-id figure is the poller's own bookkeeping plus what the sweeps "
            "keep (each task's creation time).",
        ],
    }


# --- h: keep a thousand ready bodies ----------------------------------------------------------


KEEP_METRICS = (
    "wall_s",
    "cpu_s",
    "cpu_per_req_us",
    "rss_peak_mb",
    "rss_kept_mb",
    "bytes_per_float",
    "server_cpu_util",
    "preempted",
)


def scenario_h(cfg: Config) -> dict[str, Any]:
    n, conc = cfg.h_tasks, cfg.h_concurrency
    keep_cfg = replace(cfg, clients=["ours", "list"])
    with FakeServer(segments=cfg.b_segments, embedding_dim=cfg.b_dim) as server:
        ids = server.seed(n, status="ready")

        def measure(client: str) -> dict[str, Any]:
            spec = {
                "mode": "keep",
                "client": client,
                "base_url": server.base_url,
                "ids": ids,
                "concurrency": min(conc, n),
            }
            res = run_worker(spec, server)
            if res["tasks_kept"] != n or res["server_requests"] != n:
                raise RuntimeError(f"{client}: unexpected counts: {res}")
            res["cpu_per_req_us"] = 1e6 * res["cpu_s"] / n
            res["rss_peak_mb"] = res["rss_peak_b"] / 2**20
            res["rss_kept_mb"] = res["rss_kept_b"] / 2**20
            res["bytes_per_float"] = (res["rss_kept_b"] - res["rss_before_b"]) / res["floats"]
            res["server_cpu_util"] = res["server_cpu_s"] / res["wall_s"]
            return res

        def describe(res: dict[str, Any]) -> str:
            return (
                f"cpu {res['cpu_s']:.2f}s wall {res['wall_s']:.2f}s peak RSS "
                f"{res['rss_peak_mb']:.0f} MB ({res['vector_type']}, "
                f"{res['bytes_per_float']:.1f} B/float) preempted {res['preempted']}"
            )

        runs = _alternate(keep_cfg, measure, describe)
    clients = {c: {"runs": r, "summary": summarize_runs(r, KEEP_METRICS)} for c, r in runs.items()}
    scn: dict[str, Any] = {
        "title": f"h. Fetch and keep {n:,} ready bodies ({cfg.b_segments} x {cfg.b_dim} floats)",
        "params": {
            "tasks": n,
            "concurrency": min(conc, n),
            "segments": cfg.b_segments,
            "embedding_dim": cfg.b_dim,
        },
        "clients": clients,
        "notes": [
            "Each run retrieves every task once and keeps every decoded task in a dict (a "
            "batch script gathering results, or wait_all()'s outcomes). ours: "
            "client.embed.v2.tasks.retrieve() with default settings (vectors are "
            "Float32Vector). list: plain aiohttp + msgspec decoding to a struct whose vectors "
            "are list[float] (what this library kept before). Peak RSS is the process's "
            "ru_maxrss (interpreter and imports included); bytes per float is (RSS with "
            "everything kept - RSS before the measured part) / floats kept.",
        ],
    }
    scn["ratios"] = {
        "ours_cpu / list_cpu": ratio(_med(scn, "ours", "cpu_s"), _med(scn, "list", "cpu_s")),
        "list_rss_peak / ours_rss_peak": ratio(
            _med(scn, "list", "rss_peak_mb"), _med(scn, "ours", "rss_peak_mb")
        ),
        "paired rounds: ours_cpu / list_cpu": _paired(scn, "ours", "list", "cpu_s"),
    }
    scn["targets"] = [
        _target(
            "h1", "peak RSS keeping them, ours (MB)", _med(scn, "ours", "rss_peak_mb"), "<=", 350
        ),
        _target(
            "h2",
            "CPU to fetch and keep: ours / list loop",
            scn["ratios"]["ours_cpu / list_cpu"],
            "<=",
            1.2,
        ),
    ]
    return scn


# --- i: multipart upload throughput -----------------------------------------------------------


UPLOAD_METRICS = ("wall_s", "cpu_s", "mb_per_s", "rss_peak_mb", "preempted")


def scenario_i(cfg: Config) -> dict[str, Any]:
    clients = [c for c in cfg.clients if c in ("ours", "raw")]
    folder = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    path = folder / "upload.bin"
    try:
        with path.open("wb") as handle:  # random bytes: nothing compresses or dedupes them
            left = cfg.i_size
            while left:
                block = os.urandom(min(left, 16 * 2**20))
                handle.write(block)
                left -= len(block)
        with FakeServer() as server:
            server.uploads(keep_bytes=False, chunk_size=cfg.i_chunk)

            def measure(client: str) -> dict[str, Any]:
                spec = {
                    "mode": "upload",
                    "client": client,
                    "base_url": server.base_url,
                    "path": str(path),
                    "size": cfg.i_size,
                    "concurrency": cfg.i_concurrency,
                }
                res = run_worker(spec, server, timeout=900)
                res["rss_peak_mb"] = res["rss_peak_b"] / 2**20
                return res

            def describe(res: dict[str, Any]) -> str:
                return (
                    f"wall {res['wall_s']:.2f}s {res['mb_per_s']:.0f} MB/s cpu {res['cpu_s']:.2f}s "
                    f"peak RSS {res['rss_peak_mb']:.0f} MB"
                )

            runs = _alternate(replace(cfg, clients=clients), measure, describe)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    scn: dict[str, Any] = {
        "title": f"i. Multipart upload of {cfg.i_size / 1e9:.2f} GB",
        "params": {
            "bytes": cfg.i_size,
            "part_bytes": cfg.i_chunk,
            "concurrency": cfg.i_concurrency,
        },
        "clients": {
            c: {"runs": r, "summary": summarize_runs(r, UPLOAD_METRICS)} for c, r in runs.items()
        },
        "ratios": {},
        "targets": [],
        "notes": [
            "ours = the whole client.multipart_upload.upload_file(wait=False): session, part "
            "URLs, PUTs, reports. raw = aiohttp PUTs of the same parts at the same concurrency, "
            "its session and URLs fetched before the clock starts. The fake storage in its own "
            "process hashes every part (MD5) and keeps no bytes. RSS budget = part size x "
            "(concurrency + 2) + 60 MB.",
        ],
    }
    throughput = _paired(scn, "ours", "raw", "mb_per_s")
    scn["ratios"]["throughput_ours_over_raw"] = throughput
    budget = cfg.i_chunk * (cfg.i_concurrency + 2) / 2**20 + 60
    peak = _med(scn, "ours", "rss_peak_mb")
    scn["targets"] = [
        _target("i1", "upload throughput: ours / raw PUTs", throughput, ">=", 0.8),
        _target("i2", "peak RSS of ours (MB) vs the budget", peak, "<=", budget),
    ]
    return scn


SCENARIOS: dict[str, tuple[str, Callable[[Config], dict[str, Any]]]] = {
    "a": ("poll_processing", scenario_a),
    "b": ("poll_ready", scenario_b),
    "c": ("list", scenario_c),
    "d": ("decode", scenario_d),
    "e": ("import", scenario_e),
    "f": ("poller_e2e", scenario_f),
    "g": ("watch_100k", scenario_g),
    "h": ("keep_ready", scenario_h),
    "i": ("multipart_upload", scenario_i),
}


def _note_server_load(scn: dict[str, Any]) -> None:
    """Say so when the fake server came close to a full core (then it, not the client, may be
    what limits a client's wall time)."""
    busiest: dict[str, float] = {}
    entries = list(scn["clients"].items())
    for variant in scn.get("variants", {}).values():
        entries += list(variant.items())
    for name, entry in entries:
        for run in entry["runs"]:
            util = run.get("server_cpu_util")
            if util is not None:
                busiest[name] = max(busiest.get(name, 0.0), util)
    hot = {name: util for name, util in busiest.items() if util >= 0.8}
    if hot:
        which = ", ".join(f"{name} {util:.0%}" for name, util in sorted(hot.items()))
        scn["notes"].append(
            "The fake server's CPU reached 80% or more of a core in some runs (busiest run per "
            f"client: {which}): for those runs the server is close to being the bottleneck, "
            "which compresses the differences between the fast clients. With 2 cores (one for "
            "the client, one for the server) a server process per client run would not help."
        )


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in (
        "twelvelabs-async",
        "aiohttp",
        "msgspec",
        "anyio",
        "backoff",
        "yarl",
        "multidict",
        "twelvelabs",
        "httpx",
        "pydantic",
        "pydantic-core",
        "psutil",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _vectors_accelerated() -> bool:
    """Whether this install parses vectors with the C accelerator (``ours`` uses it)."""
    from twelvelabs_async.types._vector import ACCELERATED

    return ACCELERATED


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": mem,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds; smoke test)")
    p.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS) + sorted(k for k, _ in SCENARIOS.values()),
        help="run only this scenario (repeatable); default: all",
    )
    p.add_argument("--no-sdk", action="store_true", help="skip the official SDK's columns")
    p.add_argument("--runs", type=int, default=5, help="counted runs per client (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="uncounted warm-up rounds (default 1)")
    p.add_argument("--out", type=Path, default=HERE, help="directory for results.md / results.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    have_sdk = sdk_available()
    use_sdk = have_sdk and not args.no_sdk
    clients = ["ours", "raw"] + (["sdk"] if use_sdk else [])
    cfg = Config.tiny(clients) if args.quick else Config.full(clients, args.runs, args.warmup)
    by_name = {name: key for key, (name, _) in SCENARIOS.items()}
    wanted = [by_name.get(s, s) for s in (args.scenario or list(SCENARIOS))]
    notes = []
    if not use_sdk:
        why = "--no-sdk was given" if have_sdk else "`twelvelabs` is not importable"
        notes.append(f"The official SDK's columns are skipped: {why}.")
    if cfg.quick:
        notes.append("--quick: tiny sizes, one run each; these numbers mean nothing.")
    elif use_sdk:
        notes.append(
            "Every measurement process warms up in-process before the measured part (its "
            "connections, decoders and code paths). The warm-up rounds run ours and raw only: "
            "an SDK run takes 10-25 s, and its first counted run comes after those rounds "
            "warmed the server and the OS caches."
        )
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "packages": _versions(),
        "quick": cfg.quick,
        "runs": cfg.runs,
        "warmup_rounds": cfg.warmup,
        "clients": clients,
        "sdk_available": have_sdk,
        "sdk_included": use_sdk,
        "vectors_accelerated": _vectors_accelerated(),
        "scenarios_run": wanted,
        "loadavg_start": _loadavg(),
        "notes": notes,
    }
    results: dict[str, Any] = {"meta": meta, "scenarios": {}}
    started = time.perf_counter()
    for key in wanted:
        name, fn = SCENARIOS[key]
        _log(f"scenario {key} ({name})")
        t0 = time.perf_counter()
        load0 = _loadavg()
        scn = fn(cfg)
        scn["id"] = key
        scn["seconds"] = round(time.perf_counter() - t0, 1)
        scn["loadavg"] = {"start": load0, "end": _loadavg()}
        _note_server_load(scn)
        results["scenarios"][name] = scn
        for target in scn["targets"]:
            _log(f"  target {target['id']}: {target['text']}: {target['value']} -> {target['met']}")
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    meta["loadavg_end"] = _loadavg()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(render_markdown(results))
    _log(f"wrote {out / 'results.md'} and {out / 'results.json'} in {meta['total_seconds']}s")
    return 0
