"""``demo``: the whole job against the built-in fake API, in-process (no key, no network).

It creates a few thousand mixed tasks through the create endpoints, lists and retrieves tasks
of every kind, cancels a few analysis tasks, watches everything with the progress display,
writes each outcome to the results file and prints a summary.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

import anyio

from .._client import AsyncTwelveLabs
from .._exceptions import ConflictError
from .._poller import Outcome
from .._polling import PollerOptions
from .._types import TaskKind
from ..testing import FakeTwelveLabs
from ._common import (
    CLI_NAMES,
    EXIT_NOT_READY,
    EXIT_OK,
    outcome_record,
    plural,
    resource_for,
    write_line,
)
from ._progress import Snapshot, follow, open_display
from ._results import ResultsFile

__all__ = ["demo", "split_tasks"]

CREATE_CONCURRENCY = 32
FAILED_SHARE = 0.03
CANCELED_SHARE = 0.015  # analysis tasks only
MIN_FINISH_SECONDS = 1.0


def split_tasks(total: int) -> dict[TaskKind, int]:
    """Half Embed v2, a sixth Embed v1, the rest analysis (3,000 -> 1,500 / 500 / 1,000)."""
    embed_v2 = total // 2
    embed_v1 = total // 6
    return {"embed_v2": embed_v2, "embed_v1": embed_v1, "analyze": total - embed_v2 - embed_v1}


class _Demo:
    def __init__(self, args: argparse.Namespace, out: IO[str]) -> None:
        self.args = args
        self.out = out
        self.rng = random.Random(args.seed)
        self.plan = split_tasks(args.tasks)
        self.ids: dict[TaskKind, list[str]] = {kind: [] for kind in self.plan}
        self.canceled: list[str] = []

    def say(self, text: str = "") -> None:
        write_line(self.out, text)

    # --- the fake's behaviour: when each task finishes, and how -----------------------------

    def finish_after(self, kind: TaskKind) -> float:
        return self.rng.uniform(MIN_FINISH_SECONDS, max(self.args.duration, MIN_FINISH_SECONDS))

    def final_status(self, kind: TaskKind) -> str:
        draw = self.rng.random()
        if draw < FAILED_SHARE:
            return "failed"
        if kind == "analyze" and draw < FAILED_SHARE + CANCELED_SHARE:
            return "canceled"
        return "ready"

    # --- steps ------------------------------------------------------------------------------

    async def create(self, client: AsyncTwelveLabs) -> float:
        jobs: list[tuple[TaskKind, int]] = [
            (kind, n) for kind, count in self.plan.items() for n in range(count)
        ]
        self.rng.shuffle(jobs)
        total = len(jobs)
        display = open_display(self.args.progress, self.out, interval=self.args.progress_interval)
        created: Counter[str] = Counter()
        started = time.monotonic()
        makers: dict[TaskKind, Callable[[int], Any]] = {
            "embed_v2": lambda n: client.embed.v2.tasks.create(
                input_type="video",
                model_name="marengo3.0",
                video={"media_source": {"url": f"https://example.com/demo/video-{n}.mp4"}},
            ),
            "embed_v1": lambda n: client.embed.v1.tasks.create(
                model_name="marengo3.0", video_url=f"https://example.com/demo/clip-{n}.mp4"
            ),
            "analyze": lambda n: client.analyze.tasks.create(
                video={"type": "url", "url": f"https://example.com/demo/talk-{n}.mp4"},
                prompt="Summarise this talk in three bullet points.",
                custom_id=f"demo-{n}",
            ),
        }

        async def worker(queue: list[tuple[TaskKind, int]]) -> None:
            while queue:
                kind, n = queue.pop()
                answer = await makers[kind](n)
                task_id = answer.task_id if kind == "analyze" else answer.id
                self.ids[kind].append(task_id)
                created["created"] += 1
                display.update(Snapshot(total=total, counts=dict(created)))

        display.start(total, "creating")
        try:
            async with anyio.create_task_group() as group:
                for _ in range(CREATE_CONCURRENCY):
                    group.start_soon(worker, jobs)
        finally:
            display.stop(Snapshot(total=total, counts=dict(created)) if display.live else None)
        return time.monotonic() - started

    async def explore(self, client: AsyncTwelveLabs) -> None:
        """List and retrieve tasks of every kind; cancel a few analysis tasks."""
        self.say("newest tasks of each kind (list endpoints, one page of 2):")
        for kind in self.plan:
            resource = resource_for(client, kind)
            page = await resource.list_page({"page": "1", "page_limit": "2"})
            for item in page.items:
                created = item.created_at.strftime("%H:%M:%S") if item.created_at else "-"
                self.say(f"  {CLI_NAMES[kind]:<9} {item.id}  {item.status:<10}  created {created}")
        self.say("one task of each kind, retrieved:")
        for kind in self.plan:
            if not self.ids[kind]:
                continue
            task = await resource_for(client, kind).retrieve(self.ids[kind][0])
            self.say(f"  {CLI_NAMES[kind]:<9} {_describe(kind, task)}")
        analyses = self.ids["analyze"]
        for task_id in analyses[-max(1, len(analyses) // 200) :] if analyses else []:
            try:
                await client.analyze.tasks.cancel(task_id)
            except ConflictError:  # it finished first
                continue
            self.canceled.append(task_id)
        if self.canceled:
            self.say(
                f"canceled {plural(len(self.canceled), 'analysis task')} with "
                "POST /analyze/tasks/{id}/cancel"
            )

    async def watch(
        self, client: AsyncTwelveLabs, results: ResultsFile
    ) -> tuple[Counter[str], float]:
        counts: Counter[str] = Counter()
        total = sum(len(ids) for ids in self.ids.values())
        display = open_display(self.args.progress, self.out, interval=self.args.progress_interval)
        started = time.monotonic()
        # Demo tasks finish within seconds: every interval is short.
        options = PollerOptions(
            timeout=self.args.timeout, poll_interval=0.5, max_poll_interval=2.0, target_delay=1.0
        )
        async with client.poller(options=options) as poller:
            for kind, ids in self.ids.items():
                poller.add(resource_for(client, kind), ids)

            def snapshot() -> Snapshot:
                stats = poller.stats
                return Snapshot(
                    total=total,
                    counts=dict(counts),
                    pending=stats.pending_by_status,
                    requests=stats.requests,
                )

            def record(outcome: Outcome) -> None:
                results.append(outcome_record(outcome))
                counts[outcome.status] += 1

            await follow(poller, display, total, snapshot, record)
        return counts, time.monotonic() - started


def _describe(kind: TaskKind, task: Any) -> str:
    if kind == "analyze":
        source = task.video_source.url if task.video_source else "-"
        return f"{task.task_id}  {task.status:<10}  custom_id={task.custom_id}  video={source}"
    if kind == "embed_v2":
        meta = task.metadata
        url = meta.input_url if meta else "-"
        return f"{task.id}  {task.status:<10}  input={url}"
    meta = task.video_embedding.metadata if task.video_embedding else None
    url = meta.input_url if meta else "-"
    return f"{task.id}  {task.status:<10}  model={task.model_name}  input={url}"


async def demo(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when every task reached a final status (the fake fails a few on
    purpose), 1 if any timed out or went missing."""
    out = sys.stdout
    job = _Demo(args, out)
    started = time.monotonic()
    path = args.out  # made absolute by the parser
    fake = FakeTwelveLabs(
        None,
        rate_limit_per_minute=10**9,
        embedding_dim=8,
        segments=2,
        seed=args.seed,
        default_finish_after_polls=None,
        default_finish_after_seconds=job.finish_after,
        default_final_status=job.final_status,
    )
    plan = ", ".join(f"{count:,} {CLI_NAMES[kind]}" for kind, count in job.plan.items())
    with ResultsFile(path, fresh=True) as results:
        async with fake, AsyncTwelveLabs(api_key=fake.api_key, base_url=fake.base_url) as client:
            job.say(f"twelvelabs-async demo: a fake TwelveLabs API at {fake.base_url}")
            job.say("(in this process: no API key, no network)")
            job.say(f"creating {plural(args.tasks, 'task')} ({plan}) ...")
            seconds = await job.create(client)
            job.say(f"created {plural(args.tasks, 'task')} in {seconds:.1f}s")
            job.say()
            await job.explore(client)
            job.say()
            job.say(f"watching all {plural(args.tasks, 'task')} until each is final ...")
            before = fake.requests_total
            counts, watched = await job.watch(client, results)
            status_requests = fake.requests_total - before
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    job.say()
    job.say("summary")
    for name in ("ready", "failed", "canceled", "timed_out", "not_found"):
        job.say(f"  {name.replace('_', ' '):<10} {counts.get(name, 0):>7,}")
    job.say(f"  {'tasks':<10} {total:>7,}")
    per_task = status_requests / total if total else 0.0
    job.say(
        f"  requests   {per_task:>7.2f} per task while watching "
        f"({status_requests:,} list and retrieve requests; creation not counted)"
    )
    job.say(f"  elapsed    {elapsed:>6.1f}s (watching {watched:.1f}s)")
    job.say(f"  results    {path} ({plural(results.written, 'line')})")
    missing = counts.get("timed_out", 0) + counts.get("not_found", 0)
    return EXIT_NOT_READY if missing or total != args.tasks else EXIT_OK
