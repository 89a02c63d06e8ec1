"""Markdown rendering of results.json."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Fmt = Callable[[float], str]


def _f(digits: int) -> Fmt:
    return lambda v: f"{v:,.{digits}f}"


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


Column = tuple[str, str, Fmt]

RETRIEVE_COLUMNS: list[Column] = [
    ("wall s", "wall_s", _f(3)),
    ("client CPU s", "cpu_s", _f(3)),
    ("CPU/request µs", "cpu_per_req_us", _f(0)),
    ("requests/s", "throughput_rps", _f(0)),
    ("requests per CPU-s", "requests_per_cpu_s", _f(0)),
    ("peak RSS MB", "rss_peak_mb", _f(1)),
    ("requests (server)", "server_requests", _f(0)),
    ("server CPU", "server_cpu_util", _pct),
    ("preempted", "preempted", _f(0)),
]
LIST_COLUMNS: list[Column] = [
    ("wall s", "wall_s", _f(3)),
    ("client CPU s", "cpu_s", _f(3)),
    ("peak RSS MB", "rss_peak_mb", _f(1)),
    ("requests (server)", "server_requests", _f(0)),
    ("server CPU", "server_cpu_util", _pct),
    ("preempted", "preempted", _f(0)),
]
DECODE_COLUMNS: list[Column] = [
    ("time per body ms", "decode_ms", _f(2)),
    ("CPU per body ms", "cpu_per_decode_ms", _f(2)),
    ("json.loads ms", "json_loads_ms", _f(2)),
    ("parse_obj_as ms", "parse_obj_as_ms", _f(2)),
]
IMPORT_COLUMNS: list[Column] = [
    ("net import CPU ms", "net_cpu_ms", _f(1)),
    ("net import wall ms", "net_ms", _f(1)),
    ("process CPU ms", "process_cpu_ms", _f(1)),
    ("process wall ms", "process_ms", _f(1)),
    ("-X importtime ms", "importtime_ms", _f(1)),
]
POLLER_COLUMNS: list[Column] = [
    ("time scale 1/x", "time_scale", _f(0)),
    ("requests/task", "requests_per_task", _f(2)),
    ("delay median s", "delay_median_s", _f(1)),
    ("delay p90 s", "delay_p90_s", _f(1)),
    ("delay max s", "delay_max_s", _f(1)),
    ("requests", "requests", _f(0)),
    ("run wall s (scaled)", "wall_s", _f(1)),
    ("client CPU s", "cpu_s", _f(2)),
    ("client CPU", "client_cpu_util", _pct),
    ("server CPU", "server_cpu_util", _pct),
]
WATCH_ROWS: list[tuple[str, str, Fmt]] = [
    ("RSS before the client, MB", "rss_before_mb", _f(1)),
    ("RSS after adding the ids, MB", "rss_after_add_mb", _f(1)),
    ("peak RSS, MB", "rss_peak_mb", _f(1)),
    ("memory per watched id (peak - before), bytes", "bytes_per_watched_id", _f(0)),
    ("CPU to add the ids, s", "add_cpu_s", _f(3)),
    ("sweep cycles (full + probes)", "sweeps", _f(0)),
    ("full sweeps", "full_sweeps", _f(0)),
    ("pages per full sweep", "full_sweep_pages", _f(0)),
    ("CPU per full sweep, s (median)", "full_sweep_cpu_median_s", _f(3)),
    ("wall per full sweep, s (median)", "full_sweep_wall_median_s", _f(3)),
    ("CPU per watched id per full sweep, µs", "cpu_per_watched_id_per_full_sweep_us", _f(2)),
    ("CPU per probe sweep, ms (median)", "probe_cpu_median_ms", _f(2)),
    ("CPU per sweep cycle (whole run / cycles), s", "cpu_per_cycle_s", _f(3)),
    ("client CPU over the run, s", "cpu_s", _f(2)),
    ("run wall, s", "wall_s", _f(1)),
    ("requests (poller's count)", "requests", _f(0)),
]

KEEP_COLUMNS: list[Column] = [
    ("client CPU s", "cpu_s", _f(2)),
    ("wall s", "wall_s", _f(2)),
    ("CPU/request µs", "cpu_per_req_us", _f(0)),
    ("peak RSS MB", "rss_peak_mb", _f(0)),
    ("RSS kept MB", "rss_kept_mb", _f(0)),
    ("bytes per float", "bytes_per_float", _f(1)),
    ("server CPU", "server_cpu_util", _pct),
    ("preempted", "preempted", _f(0)),
]

UPLOAD_COLUMNS: list[Column] = [
    ("wall s", "wall_s", _f(2)),
    ("MB/s", "mb_per_s", _f(0)),
    ("client CPU s", "cpu_s", _f(2)),
    ("peak RSS MB", "rss_peak_mb", _f(1)),
    ("preempted", "preempted", _f(0)),
]
COLUMNS = {
    "poll_processing": RETRIEVE_COLUMNS,
    "poll_ready": RETRIEVE_COLUMNS,
    "list": LIST_COLUMNS,
    "decode": DECODE_COLUMNS,
    "import": IMPORT_COLUMNS,
    "poller_e2e": POLLER_COLUMNS,
    "keep_ready": KEEP_COLUMNS,
    "multipart_upload": UPLOAD_COLUMNS,
}


def _cell(stats: dict[str, float] | None, fmt: Fmt) -> str:
    if not stats:
        return "-"
    if stats.get("n", 1) <= 1 or stats["min"] == stats["max"]:
        return fmt(stats["median"])
    return f"{fmt(stats['median'])} [{fmt(stats['min'])}..{fmt(stats['max'])}]"


def _table(clients: dict[str, Any], columns: Sequence[Column]) -> list[str]:
    present = [c for c in columns if any(c[1] in e["summary"] for e in clients.values())]
    lines = [
        "| client | " + " | ".join(c[0] for c in present) + " |",
        "|---|" + "---|" * len(present),
    ]
    for name, entry in clients.items():
        cells = [_cell(entry["summary"].get(key), fmt) for _, key, fmt in present]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _value(v: float | None) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def _verdict(met: bool | None) -> str:
    return "skipped" if met is None else ("**met**" if met else "**MISSED**")


def _targets(results: dict[str, Any]) -> list[str]:
    lines = ["| # | target | measured | wanted | verdict |", "|---|---|---|---|---|"]
    for scn in results["scenarios"].values():
        for t in scn["targets"]:
            lines.append(
                f"| {t['id']} | {t['text']} | {_value(t['value'])} | {t['op']} "
                f"{_value(t['threshold'])} | "
                + (
                    f"info: {'yes' if t['met'] else 'no'}"
                    if t.get("informational")
                    else _verdict(t["met"])
                )
                + " |"
            )
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    machine = meta["machine"]
    pk = meta["packages"]
    out = [
        "# Benchmark results",
        "",
        "Written by `python -m benchmarks` (`nox -s bench`). Each client measurement ran in a "
        "fresh subprocess against the fake TwelveLabs server in another process; cells are "
        "`median [min..max]` over the counted runs; ratios are ratios of medians (the "
        "targets use those), and the `paired rounds` ratios are the median of per-round ratios "
        "(runs alternate, so the k-th runs of two clients ran side by side; this cancels slow "
        "drifts in the machine's speed).",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gb']} GB RAM, "
        f"{machine['platform']}",
        f"- Python: {machine['implementation']} {machine['python']}",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in pk.items() if v),
        f"- Runs: {meta['runs']} counted per client after {meta['warmup_rounds']} warm-up "
        f"round(s), clients alternating run by run; clients: {', '.join(meta['clients'])}",
        f"- Load average at start / end: {meta['loadavg_start']} / {meta.get('loadavg_end')} "
        f"(other work on the machine inflates wall times more than CPU times)",
        f"- Total time: {meta.get('total_seconds')} s",
        "- Vectors parsed by: "
        + (
            "the C accelerator (`twelvelabs_async._speedups`)"
            if meta.get("vectors_accelerated")
            else "the pure-Python path (no C accelerator in this install)"
        ),
    ]
    for note in meta["notes"]:
        out.append(f"- **Note:** {note}")
    out += [
        "",
        "How to read the tables: *client CPU* is the measured process's own CPU time "
        "(`time.process_time()`) over the measured part only (after imports, client setup and "
        "an in-process warm-up); *peak RSS* is that process's `ru_maxrss`; *requests (server)* "
        "is the fake server's own request counter over the measured part; *server CPU* is the "
        "fake server process's CPU time divided by the wall time (near 100% would mean the "
        "server is the bottleneck); *preempted* counts involuntary context switches of the "
        "measured process (the OS gave its core to other work: high values flag runs disturbed "
        "by other load on the machine).",
        "",
        "## Targets",
        "",
        *_targets(results),
    ]
    for name, scn in results["scenarios"].items():
        out += ["", f"## {scn['title']}", ""]
        params = ", ".join(f"{k}={v}" for k, v in scn["params"].items())
        out += [
            f"Parameters: {params}. Took {scn['seconds']} s; load average "
            f"{scn['loadavg']['start']} -> {scn['loadavg']['end']}.",
            "",
        ]
        if name == "watch_100k":
            summ = scn["clients"]["ours"]["summary"]
            out += ["| measure | ours |", "|---|---|"]
            for label, key, fmt in WATCH_ROWS:
                if key in summ:
                    out.append(f"| {label} | {_cell(summ[key], fmt)} |")
        else:
            out += _table(scn["clients"], COLUMNS[name])
        for variant, clients in scn.get("variants", {}).items():
            out += ["", f"Variant `{variant}`:", "", *_table(clients, COLUMNS[name])]
        if scn["ratios"]:
            out += ["", "| ratio | value |", "|---|---|"]
            out += [f"| {k} | {_value(v)} |" for k, v in scn["ratios"].items()]
        for note in scn["notes"]:
            out += ["", note]
    return "\n".join(out) + "\n"
