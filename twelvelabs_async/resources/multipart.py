"""Multipart uploads of large local files: ``client.multipart_upload``.

The low-level calls carry the official SDK's names; :meth:`MultipartUpload.upload_file` runs the
whole flow: parts read from their file offsets (never the whole file in memory), sent
concurrently with a bound, each part retried on its own, reported in batches, resumable from
the server's record of completed parts, then a wait until the asset is ready.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import anyio

from .._config import Timeout
from .._decode import decode
from .._exceptions import (
    APIError,
    InvalidFileError,
    PermissionDeniedError,
    UploadError,
)
from .._paginator import AsyncPaginator
from .._transport import RequestOptions, Transport, encode_path_segment
from ..types.assets import (
    Asset,
    ChunkInfo,
    CompletedChunk,
    CreateAssetUploadResponse,
    IncompleteUploadSummary,
    ReportChunkBatchResponse,
    RequestAdditionalPresignedUrlsResponse,
    UploadStatus,
)
from ..types.common import TaskPage
from ._base import DEFAULT_TASK_TIMEOUT, build_options
from .assets import Assets, check_local_file

__all__ = ["MULTIPART_UPLOAD_LIMIT", "MultipartUpload", "ProgressCallback"]

logger = logging.getLogger("twelvelabs_async")

MULTIPART_UPLOAD_LIMIT: Final = 10 * 1000**3
"""The largest file a multipart upload takes (10 GB, video and audio)."""
_URLS_PER_REQUEST: Final = 50
_SESSION_FINAL: Final = frozenset({"completed", "failed", "expired"})
_FRESH_URL_ATTEMPTS: Final = 2
"""How many times a part whose URL was refused (403: expired or used) gets a fresh one."""
_FLUSH_ON_EXIT: Final = 10.0
"""Seconds a cancelled or failed upload spends reporting the parts it finished (so that a
resume does not send them again)."""

ProgressCallback = Callable[[int, int], "Awaitable[None] | None"]
"""``progress_callback(bytes_sent, total_bytes)``: plain function or coroutine function."""


def _read_part(path: str, into: memoryview, offset: int) -> int:
    """Fill ``into`` from ``path`` at ``offset``; the bytes read (short only at end of file)."""
    done = 0
    with open(path, "rb") as handle:
        while done < len(into):
            got = os.preadv(handle.fileno(), [into[done:]], offset + done)
            if got == 0:
                break
            done += got
    return done


class _Session:
    """What one upload run knows of its session (fresh or resumed)."""

    def __init__(
        self,
        upload_id: str,
        asset_id: str | None,
        chunk_size: int,
        total_chunks: int,
        headers: Mapping[str, str],
        urls: dict[int, str],
    ) -> None:
        self.upload_id = upload_id
        self.asset_id = asset_id
        self.chunk_size = chunk_size
        self.total_chunks = total_chunks
        self.headers = dict(headers)
        self.urls = urls
        self.completed = False


class MultipartUpload:
    """``client.multipart_upload``: upload sessions for files too large for a direct upload."""

    collection: Final = "/assets/multipart-uploads"

    def __init__(self, transport: Transport, assets: Assets) -> None:
        self._transport = transport
        self._assets = assets

    def __repr__(self) -> str:
        return f"<MultipartUpload {self.collection}>"

    def _path(self, upload_id: str, suffix: str = "") -> str:
        return f"{self.collection}/{encode_path_segment(upload_id)}{suffix}"

    # --- the SDK's low-level calls ---------------------------------------------------------

    async def create(
        self,
        *,
        filename: str,
        type: str,
        total_size: int,
        enable_hls: bool | None = None,
        enable_thumbnail: bool | None = None,
        user_metadata: Mapping[str, Any] | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> CreateAssetUploadResponse:
        """Open an upload session: its id, the reserved asset id, the part size and count,
        and the first part URLs."""
        body: dict[str, Any] = {"filename": filename, "type": type, "total_size": total_size}
        if enable_hls is not None:
            body["enable_hls"] = enable_hls
        if enable_thumbnail is not None:
            body["enable_thumbnail"] = enable_thumbnail
        if user_metadata is not None:
            body["user_metadata"] = dict(user_metadata)
        response = await self._transport.request(
            "POST",
            self.collection,
            json=body,
            options=build_options(None, None, request_options),
        )
        return decode(CreateAssetUploadResponse, response)

    async def get_additional_presigned_urls(
        self,
        upload_id: str,
        *,
        start: int,
        count: int,
        request_options: Mapping[str, Any] | None = None,
    ) -> RequestAdditionalPresignedUrlsResponse:
        """Fresh part URLs for parts ``start`` .. ``start + count - 1`` (``count`` <= 50)."""
        response = await self._transport.request(
            "POST",
            self._path(upload_id, "/presigned-urls"),
            json={"start": start, "count": count},
            options=build_options(None, None, request_options),
            # Asking twice for URLs changes nothing: safe to retry.
            idempotency_key=Transport.new_idempotency_key(),
        )
        return decode(RequestAdditionalPresignedUrlsResponse, response)

    async def report_chunk_batch(
        self,
        upload_id: str,
        *,
        completed_chunks: Sequence[CompletedChunk],
        request_options: Mapping[str, Any] | None = None,
    ) -> ReportChunkBatchResponse:
        """Report uploaded parts (any order; parts reported before are ignored)."""
        response = await self._transport.request(
            "POST",
            self._path(upload_id),
            json={"completed_chunks": list(completed_chunks)},
            options=build_options(None, None, request_options),
            # The server ignores duplicates: a report may be repeated.
            idempotency_key=Transport.new_idempotency_key(),
        )
        return decode(ReportChunkBatchResponse, response)

    async def get_status(
        self,
        upload_id: str,
        *,
        page: int | None = None,
        page_limit: int | None = None,
        request_options: Mapping[str, Any] | None = None,
    ) -> UploadStatus:
        """The session (status, counts, sizes) with one page of its parts; see
        :meth:`iter_chunks` for every part."""
        params = {}
        if page is not None:
            params["page"] = str(page)
        if page_limit is not None:
            params["page_limit"] = str(page_limit)
        response = await self._transport.request(
            "GET",
            self._path(upload_id),
            params=params or None,
            options=build_options(None, None, request_options),
        )
        return decode(UploadStatus, response)

    def iter_chunks(self, upload_id: str, *, page_limit: int = 50) -> AsyncPaginator[ChunkInfo]:
        """Every part of a session with its status (an async paginator)."""

        async def fetch(number: int) -> TaskPage[ChunkInfo]:
            status = await self.get_status(upload_id, page=number, page_limit=page_limit)
            return TaskPage(data=status.items, page_info=status.page_info)

        return AsyncPaginator(fetch, page_limit=page_limit)

    def list_incomplete_uploads(
        self, *, page: int | None = None, page_limit: int | None = None
    ) -> AsyncPaginator[IncompleteUploadSummary]:
        """Unfinished sessions (find one to resume when its id was not kept)."""

        async def fetch(number: int) -> TaskPage[IncompleteUploadSummary]:
            params = {"page": str(number)}
            if page_limit is not None:
                params["page_limit"] = str(page_limit)
            response = await self._transport.request("GET", self.collection, params=params)
            return decode(TaskPage[IncompleteUploadSummary], response)

        return AsyncPaginator(fetch, page=page or 1, page_limit=page_limit)

    async def wait_for_upload_completion(
        self,
        upload_id: str,
        *,
        sleep_interval: float = 5.0,
        max_wait_time: float | None = None,
        callback: Callable[[UploadStatus], Any] | None = None,
    ) -> UploadStatus:
        """Poll a session until it is ``completed``, ``failed`` or ``expired`` (the SDK's
        helper, with a real deadline: ``max_wait_time`` seconds, ``None`` for none).

        Raises:
            UploadError: still not final at the deadline.
        """
        status: UploadStatus | None = None
        with anyio.move_on_after(max_wait_time):
            while True:
                status = await self.get_status(upload_id, page_limit=1)
                if callback is not None:
                    outcome = callback(status)
                    if inspect.isawaitable(outcome):
                        await outcome
                if status.status in _SESSION_FINAL:
                    return status
                await anyio.sleep(sleep_interval)
        raise UploadError(
            f"upload {upload_id!r} was still {getattr(status, 'status', None)!r} after "
            f"{max_wait_time}s",
            upload_id=upload_id,
        )

    # --- the whole flow ---------------------------------------------------------------------

    async def upload_file(
        self,
        file_path: str | os.PathLike[str],
        *,
        filename: str | None = None,
        file_type: str = "video",
        enable_hls: bool | None = None,
        enable_thumbnail: bool | None = None,
        user_metadata: Mapping[str, Any] | None = None,
        max_workers: int = 5,
        batch_size: int = 10,
        progress_callback: ProgressCallback | None = None,
        max_retries: int = 3,
        upload_id: str | None = None,
        on_session: Callable[[str], None] | None = None,
        wait: bool = True,
        timeout: float | None = DEFAULT_TASK_TIMEOUT,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
        part_timeout: Timeout | float | None = None,
    ) -> Asset:
        """Upload a local file in parts and return its asset, once ``ready`` (or ``failed``).

        Args:
            max_workers: parts in flight at once; memory stays near part size x max_workers.
            batch_size: parts per report to the API.
            progress_callback: called after each part with ``(bytes_sent, total_bytes)``
                (bytes the server already had, when resuming, count as sent).
            max_retries: retries of each part's transient failures (5xx, connection errors),
                part by part: a failed part never restarts the file.
            upload_id: resume this session (e.g. after the process died): the parts the
                server recorded as completed are not sent again.
            on_session: called with the session's id as soon as it exists (keep it to resume).
            wait: ``False`` returns as soon as the upload is complete (the asset is then
                still ``processing``).
            timeout, poll_interval, max_poll_interval: as for ``client.assets.wait``.
            part_timeout: the limits of each part's PUT (default: the client's).

        Raises:
            InvalidFileError: missing file, directory, empty file, more than 10 GB; or a
                resumed session whose size differs from the file. Before any request.
            UploadError: a part kept failing, or the session cannot be resumed.
            TaskTimeoutError: the asset was not final within ``timeout``.
        """
        if max_workers < 1 or batch_size < 1:
            raise ValueError("max_workers and batch_size must be at least 1")
        path = os.fspath(file_path)
        size = check_local_file(path)
        if size > MULTIPART_UPLOAD_LIMIT:
            raise InvalidFileError(
                f"{path!r} has {size:,} bytes, more than a multipart upload takes "
                f"({MULTIPART_UPLOAD_LIMIT:,})"
            )
        if upload_id is None:
            created = await self.create(
                filename=filename or os.path.basename(path),
                type=file_type,
                total_size=size,
                enable_hls=enable_hls,
                enable_thumbnail=enable_thumbnail,
                user_metadata=user_metadata,
            )
            if not created.upload_id or not created.chunk_size or created.chunk_size < 1:
                raise UploadError("The upload session came back without an id or a part size")
            total = created.total_chunks or -(-size // created.chunk_size)
            session = _Session(
                created.upload_id,
                created.asset_id,
                created.chunk_size,
                total,
                created.upload_headers or {},
                {u.chunk_index: u.url for u in created.upload_urls or ()},
            )
            done: set[int] = set()
        else:
            session, done = await self._resume(upload_id, size)
        if on_session is not None:
            on_session(session.upload_id)
        run = _Run(self, session, path, size, done, progress_callback, part_timeout, max_retries)
        await run.upload(max_workers, batch_size)
        if session.asset_id is None:
            raise UploadError(
                "The upload completed but the API did not say which asset it made",
                upload_id=session.upload_id,
            )
        if not wait:
            return await self._assets.retrieve(session.asset_id)
        return await self._assets.wait(
            session.asset_id,
            timeout=timeout,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )

    async def _resume(self, upload_id: str, size: int) -> tuple[_Session, set[int]]:
        """The session of ``upload_id`` and its parts the server has completed."""
        summary: IncompleteUploadSummary | None = None
        async for item in self.list_incomplete_uploads(page_limit=50):
            if item.upload_id == upload_id:
                summary = item
                break
        status = await self.get_status(upload_id, page_limit=50)
        done = {c.index for c in status.items if c.status == "completed"}
        info = status.page_info
        pages = info.total_page if info is not None and info.total_page else 1
        for number in range(2, pages + 1):
            more = await self.get_status(upload_id, page=number, page_limit=50)
            done.update(c.index for c in more.items if c.status == "completed")
        if status.total_size is not None and status.total_size != size:
            raise InvalidFileError(
                f"upload {upload_id!r} is for {status.total_size:,} bytes but the file has "
                f"{size:,}: not the same file"
            )
        if status.status == "completed":
            session = _Session(upload_id, status.asset_id, 1, 0, {}, {})
            session.completed = True
            return session, done
        if summary is None or not summary.chunk_size:
            raise UploadError(
                f"upload {upload_id!r} is {status.status or 'unknown'} and cannot be resumed; "
                "start a new upload",
                upload_id=upload_id,
            )
        total = summary.total_chunks or -(-size // summary.chunk_size)
        # The session's upload headers came only with its creation; resumed parts go without.
        return _Session(upload_id, status.asset_id, summary.chunk_size, total, {}, {}), done


class _Run:
    """One run of :meth:`MultipartUpload.upload_file` over a session."""

    def __init__(
        self,
        owner: MultipartUpload,
        session: _Session,
        path: str,
        size: int,
        done: set[int],
        progress: ProgressCallback | None,
        part_timeout: Timeout | float | None,
        max_retries: int,
    ) -> None:
        self.owner = owner
        self.session = session
        self.path = path
        self.size = size
        self.progress = progress
        self.options: RequestOptions | None = build_options(part_timeout, max_retries)
        self.todo = deque(i for i in range(1, session.total_chunks + 1) if i not in done)
        self.sent = sum(self.part_size(i) for i in done if 1 <= i <= session.total_chunks)
        self.unreported: list[CompletedChunk] = []
        self.report_lock = anyio.Lock()
        self.failure: Exception | None = None
        self.url_lock = anyio.Lock()

    def part_size(self, index: int) -> int:
        chunk = self.session.chunk_size
        return min(chunk, self.size - (index - 1) * chunk)

    async def upload(self, workers: int, batch_size: int) -> None:
        if self.session.completed:
            return
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(min(workers, len(self.todo)) or 1):
                    tg.start_soon(self._worker, batch_size, tg.cancel_scope)
            if self.failure is not None:
                # The first worker's error as itself (callers catch UploadError, not a group).
                raise self.failure
            await self._flush()
        except BaseException:
            # Report what did arrive, so that a resume skips it; shielded and bounded, and
            # the original error (or cancellation) goes on unchanged.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_FLUSH_ON_EXIT):
                try:
                    await self._flush()
                except Exception as error:  # the first failure is the one to report
                    logger.info("could not report finished parts on the way out: %s", error)
            raise
        if not self.session.completed:
            status = await self.owner.get_status(self.session.upload_id, page_limit=1)
            if status.status != "completed":
                raise UploadError(
                    f"Every part was reported but the upload is {status.status!r}",
                    upload_id=self.session.upload_id,
                )
            self.session.asset_id = self.session.asset_id or status.asset_id

    async def _worker(self, batch_size: int, scope: anyio.CancelScope) -> None:
        try:
            await self._work(batch_size)
        except Exception as error:
            if self.failure is None:
                self.failure = error
            scope.cancel()

    async def _work(self, batch_size: int) -> None:
        # One buffer per worker, reused part after part: memory stays part size x workers,
        # with no allocation per part left for the garbage collector to find.
        buffer = memoryview(bytearray(self.session.chunk_size))
        while self.todo:
            index = self.todo.popleft()
            chunk = await self._send_part(index, buffer)
            self.unreported.append(chunk)
            self.sent += chunk.chunk_size
            if self.progress is not None:
                outcome = self.progress(self.sent, self.size)
                if inspect.isawaitable(outcome):
                    await outcome
            if len(self.unreported) >= batch_size:
                await self._flush()

    async def _url(self, index: int, *, fresh: bool) -> str:
        async with self.url_lock:
            urls = self.session.urls
            if fresh or index not in urls:
                count = min(_URLS_PER_REQUEST, self.session.total_chunks - index + 1)
                got = await self.owner.get_additional_presigned_urls(
                    self.session.upload_id, start=index, count=1 if fresh else count
                )
                for entry in got.upload_urls or ():
                    urls[entry.chunk_index] = entry.url
            url = urls.pop(index, None)
        if url is None:
            raise UploadError(
                f"The API gave no upload URL for part {index}",
                upload_id=self.session.upload_id,
                chunk_index=index,
            )
        return url

    async def _send_part(self, index: int, buffer: memoryview) -> CompletedChunk:
        length = self.part_size(index)
        data = buffer[:length]
        got = await anyio.to_thread.run_sync(
            _read_part, self.path, data, (index - 1) * self.session.chunk_size
        )
        if got != length:
            raise UploadError(
                f"{self.path!r} changed during the upload (part {index} is short)",
                upload_id=self.session.upload_id,
                chunk_index=index,
            )
        url = await self._url(index, fresh=False)
        for refreshed in range(_FRESH_URL_ATTEMPTS + 1):
            try:
                response = await self.owner._transport.request_external(
                    "PUT", url, content=data, headers=self.session.headers, options=self.options
                )
            except PermissionDeniedError as error:
                # An expired or already-used URL: a fresh one for this part only.
                if refreshed == _FRESH_URL_ATTEMPTS:
                    raise UploadError(
                        f"Part {index} was refused by storage: {error.message}",
                        upload_id=self.session.upload_id,
                        chunk_index=index,
                    ) from error
                url = await self._url(index, fresh=True)
                continue
            except APIError as error:
                raise UploadError(
                    f"Part {index} could not be uploaded: {error}",
                    upload_id=self.session.upload_id,
                    chunk_index=index,
                ) from error
            etag = (response.headers.get("ETag") or "").strip().strip('"')
            if not etag:
                raise UploadError(
                    f"Storage accepted part {index} without an ETag",
                    upload_id=self.session.upload_id,
                    chunk_index=index,
                )
            return CompletedChunk(chunk_index=index, proof=etag, chunk_size=length)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _flush(self) -> None:
        async with self.report_lock:
            batch, self.unreported = self.unreported, []
            if not batch:
                return
            try:
                answer = await self.owner.report_chunk_batch(
                    self.session.upload_id, completed_chunks=batch
                )
            except BaseException:
                self.unreported = batch + self.unreported
                raise
        self.session.asset_id = self.session.asset_id or answer.asset_id
        if answer.url or (
            answer.total_completed is not None
            and answer.total_completed >= self.session.total_chunks
        ):
            self.session.completed = True
