"""``assets upload``: upload a local file as an asset, with a progress bar."""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO

import msgspec

from ..resources.assets import DIRECT_UPLOAD_LIMIT
from ._common import EXIT_NOT_READY, EXIT_OK, encode, make_client, stderr_line, write_line

__all__ = ["ByteProgress", "assets_upload"]

_WIDTH = 30


class ByteProgress:
    """Bytes sent of a total: a redrawn bar on a terminal, else a line every ``interval``
    seconds (and one at the end)."""

    def __init__(self, stream: IO[str], total: int, *, interval: float = 5.0) -> None:
        self.stream = stream
        self.total = total
        self.interval = interval
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def text(self, sent: int) -> str:
        """``[#####.....]  50%  12.5/25.0 MB  8.1 MB/s``."""
        share = sent / self.total if self.total else 1.0
        filled = int(share * _WIDTH)
        rate = sent / max(time.monotonic() - self.started, 1e-9) / 1e6
        return (
            f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {share:4.0%}  "
            f"{sent / 1e6:.1f}/{self.total / 1e6:.1f} MB  {rate:.1f} MB/s"
        )

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        done = sent >= total
        if self.tty:
            self.stream.write("\r" + self.text(sent) + ("\n" if done else ""))
            self.stream.flush()
        elif done or now - self.last >= self.interval:
            self.last = now
            write_line(self.stream, self.text(sent))


async def assets_upload(args: argparse.Namespace) -> int:
    """Upload ``args.path`` (direct up to 200 MB unless ``--multipart``, else in parts), wait
    until the asset is final, print it as JSON; exit 1 if it failed."""
    import os

    from ..resources.assets import check_local_file

    size = check_local_file(args.path)
    progress = ByteProgress(sys.stderr, size, interval=args.progress_interval)
    async with make_client(args) as client:
        if args.resume or args.multipart or size > DIRECT_UPLOAD_LIMIT:
            asset = await client.multipart_upload.upload_file(
                args.path,
                file_type=args.type,
                max_workers=args.concurrency,
                progress_callback=progress,
                upload_id=args.resume,
                on_session=lambda upload_id: stderr_line(
                    f"upload {upload_id} (resume with --resume {upload_id})"
                ),
                wait=not args.no_wait,
                timeout=args.timeout,
            )
        else:
            created = await client.assets.create(
                method="direct", file=args.path, filename=os.path.basename(args.path)
            )
            progress(size, size)
            assert created.id is not None
            asset = created
            if not args.no_wait:
                asset = await client.assets.wait(created.id, timeout=args.timeout)
    write_line(sys.stdout, msgspec.json.format(encode(asset), indent=2).decode())
    return EXIT_NOT_READY if asset.status == "failed" else EXIT_OK
