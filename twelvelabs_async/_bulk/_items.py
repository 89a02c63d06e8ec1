"""What goes into a bulk job and what comes out, and how an item's input is recognised."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .._types import TaskKind

__all__ = [
    "BULK_KINDS",
    "REJECTED",
    "UNCONFIRMED",
    "BulkItem",
    "BulkResult",
    "idempotency_key",
    "input_key",
    "listed_keys",
    "local_path",
    "with_asset",
]

BULK_KINDS: Final[frozenset[str]] = frozenset({"embed_v2", "embed_v1", "analyze"})
REJECTED: Final = "rejected"
"""The API refused the create with a 4xx: no task exists."""
UNCONFIRMED: Final = "unconfirmed"
"""The create may have reached the API, and no task could be matched to it."""


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One input of a bulk job.

    Attributes:
        custom_id: your id for the item, unique within the job; results carry it.
        kind: ``"embed_v2"``, ``"embed_v1"`` or ``"analyze"``.
        params: the create call's keyword arguments (the API's body fields), e.g.
            ``{"input_type": "video", "model_name": "marengo3.0", "video": {...}}``.
        metadata: anything of yours, handed back with the result (not stored).
    """

    custom_id: str
    kind: TaskKind
    params: Mapping[str, Any]
    metadata: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.custom_id, str) or not self.custom_id:
            raise ValueError(f"custom_id must be a non-empty string, got {self.custom_id!r}")
        if self.kind not in BULK_KINDS:
            raise ValueError(f"kind must be one of embed_v2, embed_v1, analyze, got {self.kind!r}")
        if not isinstance(self.params, Mapping):
            raise ValueError(f"params must be a mapping, got {type(self.params).__name__}")


@dataclass(frozen=True, slots=True)
class BulkResult:
    """How one item of a bulk job ended.

    Attributes:
        custom_id: the item's id.
        kind: the item's kind.
        status: the task's final status (``ready``, ``failed``, ``canceled``), the poller's
            verdict (``timed_out``, ``not_found``), ``rejected`` (the API refused the create
            with a 4xx) or ``unconfirmed`` (the create may have reached the API and no task
            could be matched to it; see ``error``).
        task_id: the task's id, or ``None`` if no task is known.
        task: the last task model retrieved, or ``None`` (always ``None`` when ``earlier``).
        error: a message, or ``None``.
        metadata: the item's ``metadata``.
        earlier: the item was settled by an earlier run of the same job (its result is
            handed over again, without the task body, so that every item gets one result).
    """

    custom_id: str
    kind: TaskKind
    status: str
    task_id: str | None
    task: Any = field(default=None, repr=False)
    error: str | None = None
    metadata: Any = None
    earlier: bool = False

    @property
    def ok(self) -> bool:
        """``True`` for a ``ready`` task."""
        return self.status == "ready"


def idempotency_key(job_id: str, custom_id: str) -> str:
    """The ``Idempotency-Key`` of an item's analysis create: the same on every attempt and
    every rerun of the job, different across jobs."""
    digest = hashlib.sha256(f"{job_id}\x00{custom_id}".encode()).hexdigest()
    return f"tla-bulk-{digest[:40]}"


def input_key(kind: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """What identifies an embed item's input in a list item: ``("url", URL)`` or
    ``("filename", NAME)``; ``None`` if the input cannot be recognised (base64, asset)."""
    if kind == "embed_v2":
        input_type = params.get("input_type")
        media = params.get(input_type) if isinstance(input_type, str) else None
        source = media.get("media_source") if isinstance(media, Mapping) else None
        url = source.get("url") if isinstance(source, Mapping) else None
        return ("url", url) if isinstance(url, str) and url else None
    if kind == "embed_v1":
        url = params.get("video_url")
        if isinstance(url, str) and url:
            return ("url", url)
        path = params.get("video_file")
        if isinstance(path, (str, os.PathLike)):
            return ("filename", os.path.basename(os.fspath(path)))
    return None


_HOLDERS = ("video_embedding", "audio_embedding", "document_embedding", "image_embedding")


def listed_keys(item: Any) -> set[tuple[str, str]]:
    """The input keys an embed list item shows (``metadata.input_url`` / ``input_filename``
    of whichever media it holds)."""
    keys: set[tuple[str, str]] = set()
    for name in _HOLDERS:
        holder = getattr(item, name, None)
        metadata = getattr(holder, "metadata", None)
        if not isinstance(metadata, Mapping):
            continue
        url = metadata.get("input_url")
        if isinstance(url, str) and url:
            keys.add(("url", url))
        filename = metadata.get("input_filename")
        if isinstance(filename, str) and filename:
            keys.add(("filename", filename))
    return keys


def local_path(kind: str, params: Mapping[str, Any]) -> str | None:
    """The local file an item names instead of a URL: ``media_source.path`` (Embed v2) or
    ``video.path`` (analysis); ``None`` when it names none."""
    if kind == "embed_v2":
        input_type = params.get("input_type")
        media = params.get(input_type) if isinstance(input_type, str) else None
        source = media.get("media_source") if isinstance(media, Mapping) else None
        path = source.get("path") if isinstance(source, Mapping) else None
    elif kind == "analyze":
        video = params.get("video")
        path = video.get("path") if isinstance(video, Mapping) else None
    else:
        return None
    return path if isinstance(path, str) and path else None


def with_asset(kind: str, params: Mapping[str, Any], asset_id: str) -> dict[str, Any]:
    """``params`` with the local file replaced by the asset it was uploaded as."""
    out = dict(params)
    if kind == "embed_v2":
        input_type = out["input_type"]
        media = dict(out[input_type])
        media["media_source"] = {"asset_id": asset_id}
        out[input_type] = media
    else:
        out["video"] = {"type": "asset_id", "asset_id": asset_id}
    return out
