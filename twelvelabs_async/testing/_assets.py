"""Assets, multipart uploads and part storage of the fake server.

Shapes and progression follow ``REFERENCE-assets-batches.md``: an asset starts
``processing`` and turns ``final_status`` (default ``ready``) after ``finish_after_polls``
reads of it (retrieve or a list page that shows it); a multipart asset starts counting only
once its upload is complete. Presigned part URLs point back at this server
(``/storage/parts/{upload_id}.{index}?signature=...``), which plays object storage: no API
key (a request that carries one is refused), the session's ``upload_headers`` counted,
exact part sizes, an MD5 ``ETag`` in quotes.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from aiohttp import BodyPartReader, web

from ._http import Handler, ParamError, Reply, page_info, paging, read_json, redact
from ._payloads import error_body
from ._routes import (
    STORAGE,
    T_ASSET,
    T_ASSETS,
    T_PART,
    T_UPLOAD,
    T_UPLOAD_URLS,
    T_UPLOADS,
)
from ._store import format_ms

__all__ = ["AssetHandlers", "AssetRecord", "AssetStore", "UploadRecord"]

_encode = msgspec.json.encode

DIRECT_LIMIT: Final = 200 * 1024 * 1024
"""The larger reading of the documented 200 MB limit of a direct upload."""
MULTIPART_LIMIT: Final = 10 * 1000**3
STORAGE_HEADER: Final = "x-fake-storage-class"
"""The one ``upload_headers`` entry the fake hands out; its storage counts PUTs without it."""
_UPLOAD_TYPES: Final = frozenset({"video", "audio", "image"})
_MAX_URLS: Final = 50


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True, eq=False)
class AssetRecord:
    """One asset held by the fake (mutable; the server owns it)."""

    id: str
    method: str
    filename: str
    file_type: str
    created_ms: int
    status: str = "processing"
    final_status: str = "ready"
    finish_after_polls: int = 1
    polls: int = 0
    counting: bool = True
    """Whether reads count towards finishing (a multipart asset waits for its upload)."""
    size: int | None = None
    sha256: str | None = None
    content: bytes | None = None
    user_metadata: dict[str, Any] | None = None
    url: str | None = None

    def wire(self) -> dict[str, Any]:
        """The asset as ``GET /assets/{id}`` answers it."""
        body: dict[str, Any] = {
            "_id": self.id,
            "method": self.method,
            "status": self.status,
            "filename": self.filename,
            "file_type": self.file_type,
            "created_at": format_ms(self.created_ms),
        }
        if self.user_metadata is not None:
            body["user_metadata"] = self.user_metadata
        if self.status != "processing":
            body["size"] = self.size
            body["technical_metadata"] = {"file_size_bytes": self.size}
            if self.file_type.startswith(("video/", "audio/")):
                body["duration"] = 12.5
        if self.status == "failed":
            body["error"] = {"message": "The file could not be decoded (fake failure)."}
        return body


@dataclass(slots=True, eq=False)
class UploadRecord:
    """One multipart upload session."""

    upload_id: str
    asset_id: str
    filename: str
    type: str
    total_size: int
    chunk_size: int
    created_ms: int
    status: str = "active"
    parts: dict[int, bytes] = field(default_factory=dict)
    """Bytes of each part received (when the store keeps bytes)."""
    etags: dict[int, str] = field(default_factory=dict)
    reported: set[int] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)

    @property
    def total_chunks(self) -> int:
        """How many parts the file is split into."""
        return math.ceil(self.total_size / self.chunk_size)

    def part_size(self, index: int) -> int:
        """The exact size of part ``index`` (1-based; the last one may be smaller)."""
        if index < self.total_chunks:
            return self.chunk_size
        return self.total_size - self.chunk_size * (self.total_chunks - 1)


class AssetStore:
    """Assets and upload sessions, and the knobs tests turn.

    ``chunk_size`` is the part size handed to new sessions; ``initial_urls`` how many part
    URLs a new session comes with (the rest via ``presigned-urls``); ``keep_bytes`` keeps
    every received byte (turn it off for big benchmarks); ``part_puts`` counts the PUTs per
    ``(upload_id, index)``.
    """

    def __init__(self, *, clock: Callable[[], float], new_id: Callable[[int], str]) -> None:
        self.clock = clock
        self.new_id = new_id
        self.assets: dict[str, AssetRecord] = {}
        self.uploads: dict[str, UploadRecord] = {}
        self.final_status = "ready"
        self.finish_after_polls = 1
        self.chunk_size = 5 * 1024 * 1024
        self.initial_urls = 10
        self.keep_bytes = True
        self.part_puts: Counter[tuple[str, int]] = Counter()
        self.puts_without_upload_headers = 0

    def add_asset(self, method: str, filename: str, file_type: str) -> AssetRecord:
        """A new ``processing`` asset with the store's current knobs."""
        ms = _now_ms()
        rec = AssetRecord(
            id=self.new_id(ms),
            method=method,
            filename=filename,
            file_type=file_type,
            created_ms=ms,
            final_status=self.final_status,
            finish_after_polls=self.finish_after_polls,
        )
        self.assets[rec.id] = rec
        return rec

    def observe(self, rec: AssetRecord) -> None:
        """One read of the asset by the client (may finish it)."""
        if rec.status != "processing" or not rec.counting:
            return
        rec.polls += 1
        if rec.polls >= rec.finish_after_polls:
            rec.status = rec.final_status

    def assembled(self, upload_id: str) -> bytes:
        """The file of a session, parts joined in index order (needs ``keep_bytes``)."""
        up = self.uploads[upload_id]
        return b"".join(up.parts[i] for i in range(1, up.total_chunks + 1))


def _file_type(filename: str, kind: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if kind == "audio" or ext in ("mp3", "wav", "m4a", "flac"):
        return f"audio/{ext or 'mpeg'}"
    if kind == "image" or ext in ("png", "jpg", "jpeg", "gif", "webp"):
        return f"image/{ext or 'png'}"
    return f"video/{ext or 'mp4'}"


class AssetHandlers:
    """Routes of ``/assets``, ``/assets/multipart-uploads`` and the part storage."""

    def __init__(self, store: AssetStore, *, api_key: str | None) -> None:
        self.store = store
        self.api_key = api_key

    def routes(self) -> dict[tuple[str, str], tuple[Handler, bool]]:
        """``(method, template) -> (handler, nested error envelope)``: assets are flat."""
        return {
            ("POST", T_ASSETS): (self._create, False),
            ("GET", T_ASSETS): (self._list, False),
            ("GET", T_ASSET): (self._get, False),
            ("DELETE", T_ASSET): (self._delete, False),
            ("POST", T_UPLOADS): (self._upload_create, False),
            ("GET", T_UPLOADS): (self._upload_list, False),
            ("GET", T_UPLOAD): (self._upload_status, False),
            ("POST", T_UPLOAD): (self._upload_report, False),
            ("POST", T_UPLOAD_URLS): (self._upload_urls, False),
            ("PUT", T_PART): (self._put_part, False),
        }

    def _not_found(self, what: str, ident: str | None) -> Reply:
        shown = redact(ident or "", self.api_key)
        return 404, error_body(
            "resource_not_exist", f"The {what} {shown!r} does not exist.", nested=False
        )

    # ------------------------------------------------------------------ assets

    async def _create(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        if not request.content_type.startswith("multipart/"):
            raise ParamError("The request must be sent as multipart/form-data.")
        fields: dict[str, str] = {}
        upload: tuple[str, int, str, bytes | None] | None = None
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    await part.release()
                    continue
                if part.name == "file":
                    digest = hashlib.sha256()
                    size = 0
                    kept = bytearray() if self.store.keep_bytes else None
                    while chunk := await part.read_chunk(1 << 20):
                        size += len(chunk)
                        if size > DIRECT_LIMIT:
                            return 400, error_body(
                                "file_too_large",
                                "A direct upload may not exceed 200 MB; use a multipart upload.",
                                nested=False,
                            )
                        digest.update(chunk)
                        if kept is not None:
                            kept += chunk
                    upload = (
                        part.filename or "file",
                        size,
                        digest.hexdigest(),
                        None if kept is None else bytes(kept),
                    )
                else:
                    fields[part.name or ""] = await part.text()
        except (ValueError, AssertionError, UnicodeDecodeError) as exc:
            raise ParamError(f"Malformed multipart/form-data body: {exc}") from None
        method = fields.get("method")
        if method not in ("direct", "url"):
            raise ParamError("method must be 'direct' or 'url'.")
        metadata: dict[str, Any] | None = None
        if "user_metadata" in fields:
            try:
                metadata = msgspec.json.decode(fields["user_metadata"])
            except msgspec.DecodeError:
                raise ParamError("user_metadata must be a JSON-encoded object.") from None
            if not isinstance(metadata, dict):
                raise ParamError("user_metadata must be a JSON-encoded object.")
        if method == "direct":
            if upload is None:
                raise ParamError("file is required when method is 'direct'.")
            name, size, sha, content = upload
            if size == 0:
                raise ParamError("The uploaded file is empty.")
            rec = self.store.add_asset(
                "direct", fields.get("filename") or name, _file_type(name, "")
            )
            rec.size, rec.sha256, rec.content = size, sha, content
        else:
            url = fields.get("url")
            if not url:
                raise ParamError("url is required when method is 'url'.")
            name = fields.get("filename") or url.rsplit("/", 1)[-1].partition("?")[0] or "file"
            rec = self.store.add_asset("url", name, _file_type(name, ""))
            rec.url, rec.size = url, 1_000_000
        rec.user_metadata = metadata
        return 201, _encode(rec.wire())

    async def _list(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        q = request.query
        page, limit = paging(q)
        ids = set(q.getall("asset_ids", []))
        types = set(q.getall("asset_types", []))
        needle = q.get("filename", "").lower()
        rows = [
            rec
            for rec in reversed(self.store.assets.values())
            if (not ids or rec.id in ids)
            and (not types or rec.file_type.split("/")[0] in types)
            and needle in rec.filename.lower()
        ]
        shown = rows[(page - 1) * limit : page * limit]
        data = [rec.wire() for rec in shown]
        for rec in shown:
            self.store.observe(rec)
        return 200, _encode({"data": data, "page_info": page_info(page, limit, len(rows))})

    async def _get(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self.store.assets.get(ident or "")
        if rec is None:
            return self._not_found("asset", ident)
        self.store.observe(rec)
        return 200, _encode(rec.wire())

    async def _delete(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        if self.store.assets.pop(ident or "", None) is None:
            return self._not_found("asset", ident)
        return 200, b""

    # ------------------------------------------------------------------ multipart uploads

    def _urls(
        self, request: web.BaseRequest, up: UploadRecord, start: int, count: int
    ) -> list[Any]:
        origin = f"{request.scheme}://{request.host}"
        expires = format_ms(_now_ms() + 3_600_000)
        urls = []
        for index in range(start, min(start + count, up.total_chunks + 1)):
            signature = secrets.token_hex(8)
            up.signatures.add(signature)
            urls.append(
                {
                    "chunk_index": index,
                    "url": f"{origin}{STORAGE}/{up.upload_id}.{index}?signature={signature}",
                    "expires_at": expires,
                }
            )
        return urls

    def _upload(self, ident: str | None) -> UploadRecord | None:
        return self.store.uploads.get(ident or "")

    async def _upload_create(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        data = await read_json(request)
        filename, kind, total = data.get("filename"), data.get("type"), data.get("total_size")
        if not isinstance(filename, str) or not filename:
            raise ParamError("filename is required.")
        if kind not in _UPLOAD_TYPES:
            raise ParamError(f"type must be one of {sorted(_UPLOAD_TYPES)}.")
        if not isinstance(total, int) or isinstance(total, bool) or total < 1:
            raise ParamError("total_size must be a positive integer.")
        if total > MULTIPART_LIMIT:
            raise ParamError("total_size exceeds the 10 GB limit of a multipart upload.")
        asset = self.store.add_asset("multipart", filename, _file_type(filename, kind))
        asset.counting = False
        asset.size = total
        if isinstance(data.get("user_metadata"), dict):
            asset.user_metadata = data["user_metadata"]
        up = UploadRecord(
            upload_id=self.store.new_id(_now_ms()),
            asset_id=asset.id,
            filename=filename,
            type=kind,
            total_size=total,
            chunk_size=self.store.chunk_size,
            created_ms=_now_ms(),
        )
        self.store.uploads[up.upload_id] = up
        body = {
            "upload_id": up.upload_id,
            "asset_id": asset.id,
            "upload_urls": self._urls(request, up, 1, self.store.initial_urls),
            "upload_headers": {STORAGE_HEADER: "STANDARD"},
            "chunk_size": up.chunk_size,
            "total_chunks": up.total_chunks,
            "expires_at": format_ms(up.created_ms + 86_400_000),
        }
        return 201, _encode(body)

    async def _upload_list(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        page, limit = paging(request.query)
        rows = [up for up in reversed(self.store.uploads.values()) if up.status == "active"]
        data = [
            {
                "upload_id": up.upload_id,
                "status": up.status,
                "total_size": up.total_size,
                "chunk_size": up.chunk_size,
                "total_chunks": up.total_chunks,
                "created_at": format_ms(up.created_ms),
                "expires_at": format_ms(up.created_ms + 86_400_000),
            }
            for up in rows[(page - 1) * limit : page * limit]
        ]
        return 200, _encode({"data": data, "page_info": page_info(page, limit, len(rows))})

    async def _upload_status(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        up = self._upload(ident)
        if up is None:
            return self._not_found("upload", ident)
        page, limit = paging(request.query)
        indexes = range(1, up.total_chunks + 1)
        chunks = [
            {
                "index": i,
                "status": "completed" if i in up.reported else "pending",
                "uploaded_at": format_ms(up.created_ms) if i in up.reported else None,
                "updated_at": format_ms(up.created_ms),
            }
            for i in indexes[(page - 1) * limit : page * limit]
        ]
        done = len(up.reported)
        body = {
            "upload_id": up.upload_id,
            "asset_id": up.asset_id,
            "status": up.status,
            "uploaded_chunks": chunks,
            "chunks_completed": done,
            "chunks_failed": 0,
            "chunks_pending": up.total_chunks - done,
            "page_info": page_info(page, limit, up.total_chunks),
            "total_size": up.total_size,
            "uploaded_size": sum(up.part_size(i) for i in up.reported),
            "created_at": format_ms(up.created_ms),
            "updated_at": format_ms(_now_ms()),
        }
        return 200, _encode(body)

    async def _upload_urls(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        up = self._upload(ident)
        if up is None:
            return self._not_found("upload", ident)
        data = await read_json(request)
        start, count = data.get("start"), data.get("count")
        if not isinstance(start, int) or not 1 <= start <= up.total_chunks:
            raise ParamError(f"start must be between 1 and {up.total_chunks}.")
        if not isinstance(count, int) or not 1 <= count <= _MAX_URLS:
            raise ParamError(f"count must be between 1 and {_MAX_URLS}.")
        urls = self._urls(request, up, start, count)
        generated = _now_ms()
        body = {
            "upload_id": up.upload_id,
            "start_index": start,
            "count": len(urls),
            "upload_urls": urls,
            "generated_at": format_ms(generated),
            "expires_at": format_ms(generated + 3_600_000),
        }
        return 200, _encode(body)

    async def _upload_report(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        up = self._upload(ident)
        if up is None:
            return self._not_found("upload", ident)
        if up.status != "active" and up.status != "completed":
            raise ParamError(f"The upload is {up.status}.")
        chunks = (await read_json(request)).get("completed_chunks")
        if not isinstance(chunks, list) or not chunks:
            raise ParamError("completed_chunks must be a non-empty array.")
        fresh: list[int] = []
        duplicates = 0
        for chunk in chunks:
            if not isinstance(chunk, dict):
                raise ParamError("Each completed chunk must be an object.")
            index = chunk.get("chunk_index")
            if not isinstance(index, int) or not 1 <= index <= up.total_chunks:
                raise ParamError(f"chunk_index {index!r} is out of range.")
            if chunk.get("proof_type", "etag") != "etag":
                raise ParamError("proof_type must be 'etag'.")
            etag = up.etags.get(index)
            if etag is None or str(chunk.get("proof", "")).strip('"') != etag:
                raise ParamError(f"The proof of chunk {index} does not match its upload.")
            if chunk.get("chunk_size") != up.part_size(index):
                raise ParamError(f"chunk_size of chunk {index} must be {up.part_size(index)}.")
            if index in up.reported or index in fresh:
                duplicates += 1
            else:
                fresh.append(index)
        up.reported.update(fresh)
        body: dict[str, Any] = {
            "asset_id": up.asset_id,
            "processed_chunks": len(fresh),
            "duplicate_chunks": duplicates,
            "total_completed": len(up.reported),
        }
        if fresh and len(up.reported) == up.total_chunks:
            up.status = "completed"
            asset = self.store.assets.get(up.asset_id)
            if asset is not None:
                asset.counting = True
            body["url"] = f"https://storage.example.com/assets/{up.asset_id}"
        return 200, _encode(body)

    async def _put_part(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        if "x-api-key" in request.headers:
            # Object storage is another host: a client that sends the key there leaks it.
            return 400, error_body(
                "api_key_leaked", "The API key must never be sent to object storage.", nested=False
            )
        upload_id, _, raw_index = (ident or "").rpartition(".")
        up = self.store.uploads.get(upload_id)
        if up is None or not raw_index.isdigit():
            return 404, error_body("no_such_upload", "No such upload.", nested=False)
        index = int(raw_index)
        self.store.part_puts[(upload_id, index)] += 1
        if request.query.get("signature") not in up.signatures:
            return 403, error_body("signature_invalid", "Bad or expired signature.", nested=False)
        if request.headers.get(STORAGE_HEADER) != "STANDARD":
            # A resumed upload cannot know the headers (only the create answer has them).
            self.store.puts_without_upload_headers += 1
        if request.content_length is None:
            return 411, error_body("length_required", "Content-Length is required.", nested=False)
        digest = hashlib.md5(usedforsecurity=False)
        kept = bytearray() if self.store.keep_bytes else None
        size = 0
        async for chunk in request.content.iter_any():  # parts exceed aiohttp's read() cap
            size += len(chunk)
            digest.update(chunk)
            if kept is not None:
                kept += chunk
        if not 1 <= index <= up.total_chunks or size != up.part_size(index):
            return 400, error_body(
                "bad_part", f"Part {index} must be {up.part_size(index)} bytes.", nested=False
            )
        etag = digest.hexdigest()
        up.etags[index] = etag
        if kept is not None:
            up.parts[index] = bytes(kept)
        headers["ETag"] = f'"{etag}"'
        return 200, b""
