"""Wire structs of assets (``/assets``) and multipart uploads (``/assets/multipart-uploads``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Final

import msgspec

from .common import PageInfo
from .common import Wire as _Wire

__all__ = [
    "ASSET_FINAL_STATUSES",
    "Asset",
    "AssetError",
    "AssetMediaStatus",
    "ChunkInfo",
    "CompletedChunk",
    "CreateAssetUploadResponse",
    "IncompleteUploadSummary",
    "PresignedUrl",
    "ReportChunkBatchResponse",
    "RequestAdditionalPresignedUrlsResponse",
    "UploadStatus",
]

ASSET_FINAL_STATUSES: Final = frozenset({"ready", "failed"})
"""An asset is final once ``ready`` (usable) or ``failed``."""


class AssetError(_Wire):
    """Why an asset failed (human text, not a contract)."""

    message: str | None = None


class AssetMediaStatus(_Wire):
    """HLS or thumbnail state of an asset (they never block ``ready``)."""

    status: str | None = None
    manifest_url: str | None = None
    representative_url: str | None = None


class Asset(_Wire):
    """An asset (``POST /assets``, ``GET /assets/{id}`` and list items): an uploaded media file.

    ``technical_metadata`` is kept as a plain dict (it grows with every release)."""

    FINAL_STATUSES: ClassVar[frozenset[str]] = ASSET_FINAL_STATUSES

    id: str | None = msgspec.field(default=None, name="_id")
    method: str | None = None
    status: str | None = None
    filename: str | None = None
    file_type: str | None = None
    created_at: datetime | None = None
    user_metadata: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    hls: AssetMediaStatus | None = None
    thumbnail: AssetMediaStatus | None = None
    technical_metadata: dict[str, Any] | None = None
    size: int | None = None
    duration: float | None = None
    error: AssetError | None = None

    @property
    def is_final(self) -> bool:
        """``True`` once the asset is ``ready`` or ``failed``."""
        return self.status in ASSET_FINAL_STATUSES

    @property
    def error_message(self) -> str | None:
        """Why the asset failed, if it did."""
        return self.error.message if self.error is not None else None


class PresignedUrl(_Wire):
    """Where to PUT one chunk (1-based ``chunk_index``); valid until ``expires_at``."""

    chunk_index: int
    url: str
    expires_at: datetime | None = None


class CreateAssetUploadResponse(_Wire):
    """Answer of ``POST /assets/multipart-uploads``: the session and its first part URLs."""

    upload_id: str | None = None
    asset_id: str | None = None
    upload_urls: list[PresignedUrl] | None = None
    upload_headers: dict[str, str] | None = None
    chunk_size: int | None = None
    total_chunks: int | None = None
    expires_at: datetime | None = None


class RequestAdditionalPresignedUrlsResponse(_Wire):
    """Answer of ``POST /assets/multipart-uploads/{id}/presigned-urls``."""

    upload_id: str | None = None
    start_index: int | None = None
    count: int | None = None
    upload_urls: list[PresignedUrl] | None = None
    generated_at: datetime | None = None
    expires_at: datetime | None = None


class CompletedChunk(_Wire):
    """One uploaded chunk as reported: its index, the storage ETag and its exact size."""

    chunk_index: int
    proof: str
    chunk_size: int
    proof_type: str = "etag"


class ReportChunkBatchResponse(_Wire):
    """Answer of a chunk report; ``url`` is set only by the report that completes the upload."""

    url: str | None = None
    asset_id: str | None = None
    processed_chunks: int | None = None
    duplicate_chunks: int | None = None
    total_completed: int | None = None


class ChunkInfo(_Wire):
    """One chunk of an upload session (1-based ``index``)."""

    index: int
    status: str | None = None
    uploaded_at: datetime | None = None
    updated_at: datetime | None = None
    error: str | None = None


class UploadStatus(_Wire):
    """``GET /assets/multipart-uploads/{id}``: the session and one page of its chunks."""

    upload_id: str | None = None
    status: str | None = None
    asset_id: str | None = None
    uploaded_chunks: list[ChunkInfo] | None = None
    chunks_completed: int | None = None
    chunks_failed: int | None = None
    chunks_pending: int | None = None
    page_info: PageInfo | None = None
    total_size: int | None = None
    uploaded_size: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def items(self) -> list[ChunkInfo]:
        """This page's chunks (what the paginator walks)."""
        return self.uploaded_chunks or []

    @property
    def data(self) -> list[ChunkInfo]:
        """Alias of :attr:`items` so a status page walks like any list page."""
        return self.items


class IncompleteUploadSummary(_Wire):
    """One unfinished upload session (``GET /assets/multipart-uploads``)."""

    upload_id: str
    status: str | None = None
    total_size: int | None = None
    chunk_size: int | None = None
    total_chunks: int | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
