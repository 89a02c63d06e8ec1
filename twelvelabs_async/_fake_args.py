"""The fake server's flags, declared once for its two command lines
(``python -m twelvelabs_async.testing`` and ``twelvelabs-async fake-server``).

argparse only: building the CLI parser must not load the fake server (nor aiohttp).
"""

from __future__ import annotations

import argparse

from ._argtypes import kind_arg, positive_int

__all__ = ["add_fake_server_arguments"]


def add_fake_server_arguments(p: argparse.ArgumentParser) -> None:
    """Declare every flag of the fake server on ``p``."""
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free one)")
    p.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    p.add_argument("--seed-tasks", type=int, default=0, metavar="N", help="tasks to create")
    p.add_argument(
        "--kind",
        type=kind_arg,
        default="embed_v2",
        metavar="{embed-v2,embed-v1,analyze}",
        help="kind of the seeded tasks (default embed-v2)",
    )
    p.add_argument("--ids-out", metavar="FILE", help="write the seeded task ids here")
    p.add_argument(
        "--finish-after-polls",
        type=int,
        metavar="N",
        help="reads until a task is final (default 2, unless --finish-after-seconds)",
    )
    p.add_argument(
        "--finish-after-seconds",
        type=float,
        metavar="SECONDS",
        help="seconds from creation until a task is final",
    )
    p.add_argument("--embedding-dim", type=positive_int, default=1024, metavar="N")
    p.add_argument("--segments", type=positive_int, default=4, help="embeddings per ready task")
    p.add_argument(
        "--rate-limit-per-minute",
        type=positive_int,
        default=600,
        metavar="N",
        help="the X-Ratelimit-Limit it reports (default 600)",
    )
    p.add_argument("--enforce-rate-limit", action="store_true", help="answer 429 above that rate")
    p.add_argument("--seed", type=int, default=0, help="seed for ids and vectors")
    p.add_argument(
        "--webhook-url",
        metavar="URL",
        help="POST signed analyze.task.* webhooks here when analysis tasks finish",
    )
    p.add_argument("--webhook-secret", metavar="SECRET", help="webhook signing secret")
