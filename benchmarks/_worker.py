"""One measurement in a fresh process: ``python -m benchmarks._worker``.

Protocol with the runner, one JSON document per line: the runner writes the spec on stdin; the
worker sets up (imports, client, connections, a warm-up) and answers ``{"ready": true}``; the
runner reads the server's counters and writes ``go``; the worker runs the measured part and
answers with its result. Only the part between ``go`` and the result is measured: wall time
(``perf_counter``), this process's CPU time (``process_time``), and the process's peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

from ._clients import CLIENTS, Client


def _peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        return _peak_rss_bytes()


def _say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _wait_for_go() -> None:
    _say({"ready": True})
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("runner went away")


class _Meter:
    """Wall time, CPU time and context switches of the measured block."""

    def __enter__(self) -> _Meter:
        self.u0 = resource.getrusage(resource.RUSAGE_SELF)
        self.c0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        # Involuntary switches: the OS took the core away (other load on the machine).
        self.preempted = u1.ru_nivcsw - self.u0.ru_nivcsw
        self.waits = u1.ru_nvcsw - self.u0.ru_nvcsw

    def result(self, **extra: Any) -> dict[str, Any]:
        return {
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "rss_peak_b": _peak_rss_bytes(),
            "preempted": self.preempted,
            "waits": self.waits,
            **extra,
        }


# --- a, b: many retrieves at a fixed concurrency ----------------------------------------------


async def _retrieve(spec: dict[str, Any]) -> dict[str, Any]:
    client: Client = CLIENTS[spec["client"]]()
    concurrency = int(spec["concurrency"])
    ids: list[str] = spec["ids"]
    expect: str = spec["expect"]
    await client.open(spec["base_url"], concurrency)
    # Warm-up: open the connections, build decoders, touch every code path once.
    warm = ids[: max(1, min(len(ids), int(spec.get("warm", concurrency))))]
    await asyncio.gather(*(client.retrieve(t) for t in warm))
    work = [t for _ in range(int(spec["rounds"])) for t in ids]
    _wait_for_go()
    bad = 0

    async def worker(it: Any) -> None:
        nonlocal bad
        for task_id in it:
            if await client.retrieve(task_id) != expect:
                bad += 1

    it = iter(work)
    with _Meter() as m:
        await asyncio.gather(*(worker(it) for _ in range(concurrency)))
    await client.close()
    return m.result(requests=len(work), unexpected=bad)


# --- h: fetch ready tasks and keep every one -------------------------------------------------


async def _keep(spec: dict[str, Any]) -> dict[str, Any]:
    """Retrieve every id once at a fixed concurrency and keep every decoded task (a batch script
    gathering results before writing them to a vector store)."""
    client: Client = CLIENTS[spec["client"]]()
    concurrency = int(spec["concurrency"])
    ids: list[str] = spec["ids"]
    await client.open(spec["base_url"], concurrency)
    warm = await client.fetch(ids[0])  # a connection, the decoders, the code paths
    kind = type(warm.data[0].embedding).__name__
    del warm
    rss_before = _current_rss_bytes()
    _wait_for_go()
    kept: dict[str, Any] = {}

    async def worker(it: Any) -> None:
        for task_id in it:
            kept[task_id] = await client.fetch(task_id)

    it = iter(ids)
    with _Meter() as m:
        await asyncio.gather(*(worker(it) for _ in range(concurrency)))
    floats = sum(len(d.embedding) for t in kept.values() for d in t.data)
    rss_kept = _current_rss_bytes()
    await client.close()
    return m.result(
        requests=len(ids),
        tasks_kept=len(kept),
        floats=floats,
        vector_type=kind,
        rss_before_b=rss_before,
        rss_kept_b=rss_kept,
    )


# --- c: list every task -----------------------------------------------------------------------


async def _list(spec: dict[str, Any]) -> dict[str, Any]:
    """List every task ``passes`` times in this process; report the median pass."""
    client: Client = CLIENTS[spec["client"]]()
    page_limit = int(spec["page_limit"])
    io = float(spec.get("io_per_page", 0.0))
    passes = int(spec.get("passes", 1))
    await client.open(spec["base_url"], 1)
    loop = asyncio.get_running_loop()
    # Warm-up: one page (connection, decoders), not measured and not counted.
    async for _ in client.list_ids(page_limit):
        break
    # Leaving that loop cancels our prefetch of page 2, which may already be on the wire: let
    # it reach the server now, before the runner reads the server's request counter.
    await asyncio.sleep(0.2)
    if io:  # start the thread pool's worker before measuring
        await loop.run_in_executor(None, time.sleep, 0)
    _wait_for_go()
    meters: list[_Meter] = []
    seen = 0
    for _ in range(passes):
        seen = 0
        with _Meter() as m:
            async for _ in client.list_ids(page_limit):
                seen += 1
                if io and seen % page_limit == 0:
                    # The consumer's downstream write of one page, e.g. a database driver
                    # running in a thread. (Not asyncio.sleep(): epoll's 1 ms timer rounding
                    # would swamp a 1 ms wait whenever other I/O lands during it.)
                    await loop.run_in_executor(None, time.sleep, io)
        meters.append(m)
    await client.close()
    best = sorted(meters, key=lambda m: m.wall)[len(meters) // 2]  # the median pass
    return best.result(items=seen, passes=passes)


# --- d: decode one ready body -----------------------------------------------------------------


def _fetch(base_url: str, task_id: str) -> bytes:
    import urllib.request

    req = urllib.request.Request(
        f"{base_url}/embed-v2/tasks/{task_id}", headers={"x-api-key": "bench-key"}
    )
    with urllib.request.urlopen(req) as resp:  # loopback only
        body: bytes = resp.read()
    return body


def _vectors_accelerated() -> bool:
    from twelvelabs_async.types._vector import ACCELERATED

    return ACCELERATED


def _decode(spec: dict[str, Any]) -> dict[str, Any]:
    body = _fetch(spec["base_url"], spec["task_id"])
    name = spec["client"]
    iterations = int(spec["iterations"])
    parts: dict[str, list[float]] = {}
    if name in ("ours", "pure"):
        from multidict import CIMultiDict, CIMultiDictProxy

        from twelvelabs_async._decode import decode
        from twelvelabs_async._transport import Response
        from twelvelabs_async.types import EmbeddingTask

        headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
        path = f"/embed-v2/tasks/{spec['task_id']}"

        def once() -> Any:
            # Exactly what retrieve() does with a body: decode(EmbeddingTask, response).
            return decode(EmbeddingTask, Response("GET", path, 200, headers, body, 0))

        def count(task: Any) -> int:
            return sum(len(d.embedding) for d in task.data)

    elif name in ("raw", "list"):
        import msgspec

        from ._clients import list_types, raw_types

        decoder = msgspec.json.Decoder(raw_types()[0] if name == "raw" else list_types())

        def once() -> Any:
            return decoder.decode(body)

        def count(task: Any) -> int:
            return sum(len(d.embedding) for d in task.data)

    else:
        import json as jsonlib

        from twelvelabs.core.pydantic_utilities import parse_obj_as
        from twelvelabs.types.embedding_task_response import EmbeddingTaskResponse

        parts = {"json_loads_s": [], "parse_obj_as_s": []}

        def once() -> Any:
            # What embed.v_2.tasks.retrieve does after the response arrives
            # (embed/v_2/tasks/raw_client.py): httpx's Response.json() is json.loads(content),
            # then parse_obj_as(EmbeddingTaskResponse, ...).
            t0 = time.perf_counter()
            obj = jsonlib.loads(body)
            t1 = time.perf_counter()
            task = parse_obj_as(type_=EmbeddingTaskResponse, object_=obj)
            t2 = time.perf_counter()
            parts["json_loads_s"].append(t1 - t0)
            parts["parse_obj_as_s"].append(t2 - t1)
            return task

        def count(task: Any) -> int:
            return sum(len(d.embedding) for d in task.data)

    floats = count(once())  # warm-up, and a check that every float arrived
    for values in parts.values():
        values.clear()
    _wait_for_go()
    times: list[float] = []
    c0 = time.process_time()
    for _ in range(iterations):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - c0
    out: dict[str, Any] = {
        "decode_s": statistics.median(times),
        "decode_min_s": min(times),
        "cpu_per_decode_s": cpu / iterations,
        "iterations": iterations,
        "body_bytes": len(body),
        "floats": floats,
        "rss_peak_b": _peak_rss_bytes(),
        "vectors_accelerated": _vectors_accelerated(),
    }
    for key, values in parts.items():
        out[key] = statistics.median(values)
    return out


# --- f: the poller end to end -----------------------------------------------------------------


async def _poller_e2e(spec: dict[str, Any]) -> dict[str, Any]:
    """Wait for every task; report when each was delivered, on ``time.monotonic()``.

    The runner seeds the tasks only after ``go`` (so they start when the client is ready) and
    sends their ids on the next line; it reads when each became final from the fake.
    """
    from twelvelabs_async import AsyncTwelveLabs, PollerOptions

    scale = float(spec["scale"])
    # The poller's defaults, except the knobs this run asks for; every duration scaled.
    knobs = {k: spec[k] for k in ("target_delay", "requests_per_task") if k in spec}
    options = PollerOptions(**knobs).scaled(scale)
    delivered: dict[str, float] = {}
    async with AsyncTwelveLabs(api_key="bench-key", base_url=spec["base_url"]) as client:
        tasks = client.embed.v2.tasks
        async for _ in tasks.list(page_limit=1):  # warm-up: a connection, the decoders
            break
        _wait_for_go()
        ids: list[str] = json.loads(sys.stdin.readline())
        with _Meter() as m:
            if spec["mode"] == "poller":
                async with client.poller(options=options) as poller:
                    poller.add(tasks, ids)
                    async for outcome in poller.as_completed():
                        delivered[outcome.task_id] = time.monotonic()
            else:
                interval = float(spec["fixed_interval"]) * scale

                async def loop(task_id: str) -> None:
                    # The official SDK's style: fetch, then sleep a fixed interval, until the
                    # status is ready or failed (here with our client's retrieve).
                    while True:
                        task = await tasks.retrieve(task_id)
                        if task.status in ("ready", "failed"):
                            delivered[task_id] = time.monotonic()
                            return
                        await asyncio.sleep(interval)

                await asyncio.gather(*(loop(t) for t in ids))
    return m.result(tasks=len(ids), delivered_at=delivered)


# --- g: a poller watching many ids, all still processing --------------------------------------


async def _poller_watch(spec: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    import anyio

    from twelvelabs_async import AsyncTwelveLabs

    rss_before = _current_rss_bytes()
    client = AsyncTwelveLabs(api_key="bench-key", base_url=spec["base_url"])
    tasks = client.embed.v2.tasks
    await tasks.retrieve(ids[0])  # warm-up: a connection and the decoders
    sweeps: list[dict[str, float]] = []
    original = tasks.list_page

    async def list_page(params: Any, options: Any = None) -> Any:
        # Instrumentation only: mark where each sweep (a walk from page 1) starts and ends.
        if params.get("page") == "1":
            sweeps.append({"t0": time.perf_counter(), "c0": time.process_time(), "pages": 0})
        page = await original(params, options)
        current = sweeps[-1]
        current["pages"] += 1
        current["t1"] = time.perf_counter()
        current["c1"] = time.process_time()
        return page

    tasks.list_page = list_page  # type: ignore[method-assign]
    _wait_for_go()
    duration = float(spec["duration"])
    with _Meter() as m:
        async with client.poller(
            poll_interval=float(spec["poll_interval"]),
            max_poll_interval=float(spec["max_poll_interval"]),
        ) as poller:
            added_at = time.process_time()
            poller.add(tasks, ids)
            add_cpu = time.process_time() - added_at
            rss_added = _current_rss_bytes()
            with anyio.move_on_after(duration):
                async for _ in poller.as_completed():
                    pass
            stats = poller.stats
    await client.aclose()
    full = [s for s in sweeps if s["pages"] > 1 and "c1" in s]
    probes = [s for s in sweeps if s["pages"] == 1 and "c1" in s]
    return m.result(
        watched=len(ids),
        rss_before_b=rss_before,
        rss_after_add_b=rss_added,
        add_cpu_s=add_cpu,
        sweeps=len(sweeps),
        full_sweeps=len(full),
        probe_sweeps=len(probes),
        full_sweep_pages=statistics.median([s["pages"] for s in full]) if full else 0,
        full_sweep_cpu_s=[s["c1"] - s["c0"] for s in full],
        full_sweep_wall_s=[s["t1"] - s["t0"] for s in full],
        probe_cpu_s=[s["c1"] - s["c0"] for s in probes],
        requests=stats.requests,
        cpu_per_cycle_s=m.cpu / max(len(sweeps), 1),
    )


# --- i: multipart upload throughput -----------------------------------------------------------


async def _upload(spec: dict[str, Any]) -> dict[str, Any]:
    """``ours``: the whole ``upload_file`` (session, part URLs, PUTs, reports), measured.
    ``raw``: plain aiohttp PUTs of the same parts at the same concurrency, with the session
    and every part URL fetched before the measured part (so raw is the ceiling)."""
    import aiohttp

    from twelvelabs_async import AsyncTwelveLabs

    path, size, workers = spec["path"], int(spec["size"]), int(spec["concurrency"])
    key = {"x-api-key": "bench-key"}
    if spec["client"] == "ours":
        async with AsyncTwelveLabs(api_key="bench-key", base_url=spec["base_url"]) as client:
            _wait_for_go()
            with _Meter() as m:
                asset = await client.multipart_upload.upload_file(
                    path, max_workers=workers, wait=False
                )
            assert asset.id
        return m.result(bytes=size, mb_per_s=size / m.wall / 1e6)
    base = spec["base_url"]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/assets/multipart-uploads",
            json={"filename": "bench.bin", "type": "video", "total_size": size},
            headers=key,
        ) as r:
            session = await r.json()
        total, chunk = session["total_chunks"], session["chunk_size"]
        urls = {u["chunk_index"]: u["url"] for u in session["upload_urls"]}
        for start in range(1, total + 1, 50):
            async with http.post(
                f"{base}/assets/multipart-uploads/{session['upload_id']}/presigned-urls",
                json={"start": start, "count": min(50, total - start + 1)},
                headers=key,
            ) as r:
                urls.update({u["chunk_index"]: u["url"] for u in (await r.json())["upload_urls"]})
        loop = asyncio.get_running_loop()
        todo = list(range(1, total + 1))
        headers = session.get("upload_headers") or {}

        def read(index: int) -> bytes:
            with open(path, "rb") as handle:
                return os.pread(handle.fileno(), chunk, (index - 1) * chunk)

        async def worker() -> None:
            while todo:
                index = todo.pop(0)
                data = await loop.run_in_executor(None, read, index)
                async with http.put(urls[index], data=data, headers=headers) as r:
                    assert r.status == 200
                    assert r.headers["ETag"]

        _wait_for_go()
        with _Meter() as m:
            await asyncio.gather(*(worker() for _ in range(workers)))
    return m.result(bytes=size, mb_per_s=size / m.wall / 1e6)


def main() -> int:
    spec = json.loads(sys.stdin.readline())
    mode = spec["mode"]
    if mode == "retrieve":
        result = asyncio.run(_retrieve(spec))
    elif mode == "list":
        result = asyncio.run(_list(spec))
    elif mode == "keep":
        result = asyncio.run(_keep(spec))
    elif mode == "decode":
        result = _decode(spec)
    elif mode in ("poller", "fixed"):
        result = asyncio.run(_poller_e2e(spec))
    elif mode == "upload":
        result = asyncio.run(_upload(spec))
    elif mode == "watch":
        ids = json.loads(sys.stdin.readline())
        result = asyncio.run(_poller_watch(spec, ids))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    _say(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
