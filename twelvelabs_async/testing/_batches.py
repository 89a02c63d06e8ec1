"""Analysis batches (``/analyze/batches``) of the fake server.

Progression: a batch is ``pending`` until first read, then ``processing``; each read of the
batch (retrieve, or a list page that shows it) moves the next share of its queued items to
``processing`` and the items processing before to their final status, so that the batch is
``completed`` after about ``finish_after_polls`` reads. A cancel makes it ``canceling``; the
next read cancels the queued items, finishes the processing ones and ends ``canceled``.
Results are JSON lines, readable at any time (unfinished items as ``queued``/``processing``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web

from ._http import Handler, ParamError, Reply, page_info, paging, read_json
from ._payloads import error_body
from ._routes import T_BATCH, T_BATCH_CANCEL, T_BATCH_RESULTS, T_BATCHES
from ._store import format_ms

if TYPE_CHECKING:
    from ._assets import AssetHandlers

__all__ = ["BatchHandlers", "BatchItem", "BatchRecord", "BatchStore"]

_encode = msgspec.json.encode
_FINAL: Final = frozenset({"completed", "canceled", "expired"})
_ACTIVE_LIMIT: Final = 5
_MAX_ITEMS: Final = 1000
_CUSTOM_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODES: Final = frozenset({"general", "time_based_metadata"})


@dataclass(slots=True, eq=False)
class BatchItem:
    """One request of a batch (its analysis task)."""

    task_id: str
    custom_id: str | None
    asset_id: str
    fields: list[str]
    status: str = "queued"
    final_status: str = "ready"

    def line(self) -> dict[str, Any]:
        """The item's results line."""
        out: dict[str, Any] = {
            "task_id": self.task_id,
            "custom_id": self.custom_id,
            "status": self.status,
        }
        if self.status == "ready":
            text = _encode({"custom_id": self.custom_id, **dict.fromkeys(self.fields, "fake")})
            out["data"] = {
                "generation_id": f"gen-{self.task_id}",
                "data": text.decode(),
                "finish_reason": "stop",
                "usage": {"output_tokens": 42, "input_tokens": 1200},
            }
        elif self.status == "failed":
            out["error"] = {"message": "The video could not be analysed (fake failure)."}
        return out


@dataclass(slots=True, eq=False)
class BatchRecord:
    """One batch held by the fake."""

    batch_id: str
    analysis_mode: str
    model_name: str
    created_ms: int
    items: list[BatchItem]
    finish_after_polls: int
    status: str = "pending"
    final_ms: int | None = None
    polls: int = 0
    webhooks: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The five item counters."""
        counts = dict.fromkeys(("queued", "processing", "ready", "failed", "canceled"), 0)
        for item in self.items:
            counts[item.status] += 1
        return {f"{name}_items": n for name, n in counts.items()}

    def wire(self) -> dict[str, Any]:
        """The batch as ``GET /analyze/batches/{id}`` answers it."""
        body: dict[str, Any] = {
            "batch_id": self.batch_id,
            "analysis_mode": self.analysis_mode,
            "model_name": self.model_name,
            "status": self.status,
            "total_items": len(self.items),
            **self.counts(),
            "created_at": format_ms(self.created_ms),
            "expires_at": format_ms(self.created_ms + 86_400_000),
        }
        if self.final_ms is not None:
            body[
                {"completed": "completed_at", "canceled": "canceled_at"}.get(
                    self.status, "expired_at"
                )
            ] = format_ms(self.final_ms)
        return body


class BatchStore:
    """Batches and the knobs tests turn: ``finish_after_polls`` (default 3) and
    ``fail_custom_ids`` (items whose analysis fails)."""

    def __init__(self, *, clock: Callable[[], float], new_id: Callable[[int], str]) -> None:
        self.clock = clock
        self.new_id = new_id
        self.batches: dict[str, BatchRecord] = {}
        self.finish_after_polls = 3
        self.fail_custom_ids: set[str] = set()

    def observe(self, rec: BatchRecord) -> None:
        """One read of the batch by the client: the batch moves one step on."""
        if rec.status in _FINAL:
            return
        rec.polls += 1
        if rec.status == "canceling":
            for item in rec.items:
                if item.status == "queued":
                    item.status = "canceled"
                elif item.status == "processing":
                    item.status = item.final_status
            self._finish(rec, "canceled")
            return
        for item in rec.items:
            if item.status == "processing":
                item.status = item.final_status
        share = math.ceil(len(rec.items) / max(1, rec.finish_after_polls - 1))
        for item in [i for i in rec.items if i.status == "queued"][:share]:
            item.status = "processing"
        rec.status = "processing"
        if all(item.status in ("ready", "failed", "canceled") for item in rec.items):
            self._finish(rec, "completed")

    @staticmethod
    def _finish(rec: BatchRecord, status: str) -> None:
        rec.status = status
        rec.final_ms = int(time.time() * 1000)


class BatchHandlers:
    """Routes of ``/analyze/batches`` (nested error envelopes, as documented)."""

    def __init__(self, store: BatchStore, *, assets: AssetHandlers) -> None:
        self.store = store
        self.assets = assets

    def routes(self) -> dict[tuple[str, str], tuple[Handler, bool]]:
        """``(method, template) -> (handler, nested error envelope)``."""
        return {
            ("POST", T_BATCHES): (self._create, True),
            ("GET", T_BATCHES): (self._list, True),
            ("GET", T_BATCH): (self._get, True),
            ("DELETE", T_BATCH): (self._delete, True),
            ("POST", T_BATCH_CANCEL): (self._cancel, True),
            ("GET", T_BATCH_RESULTS): (self._results, True),
        }

    def _batch(self, ident: str | None) -> BatchRecord | None:
        return self.store.batches.get(ident or "")

    @staticmethod
    def _not_found(ident: str | None) -> Reply:
        return 404, error_body(
            "batch_not_found", f"The batch {ident!r} does not exist.", nested=True
        )

    async def _create(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        data = await read_json(request)
        model = data.get("model_name")
        if model != "pegasus1.5":
            raise ParamError("model_name must be 'pegasus1.5'.")
        mode = data.get("analysis_mode")
        if mode not in _MODES:
            raise ParamError(f"analysis_mode must be one of {sorted(_MODES)}.")
        requests = data.get("requests")
        if not isinstance(requests, list) or not 1 <= len(requests) <= _MAX_ITEMS:
            raise ParamError(f"requests must hold 1 to {_MAX_ITEMS} items.")
        raw_defaults = data.get("defaults")
        defaults: dict[str, Any] = raw_defaults if isinstance(raw_defaults, dict) else {}
        active = sum(b.status not in _FINAL for b in self.store.batches.values())
        if active >= _ACTIVE_LIMIT:
            return 429, error_body(
                "too_many_active_batches",
                f"You already have {_ACTIVE_LIMIT} active batches; wait for one to finish.",
                nested=True,
            )
        seen: set[str] = set()
        ms = int(time.time() * 1000)
        items: list[BatchItem] = []
        for n, req in enumerate(requests):
            if not isinstance(req, dict):
                raise ParamError(f"requests[{n}] must be an object.")
            video = req.get("video")
            if not isinstance(video, dict) or video.get("type") != "asset_id":
                raise ParamError(f"requests[{n}].video must be {{type: asset_id, asset_id}}.")
            asset_id = video.get("asset_id")
            asset = self.assets.store.assets.get(asset_id) if isinstance(asset_id, str) else None
            if asset is None:
                return 404, error_body(
                    "asset_not_found", f"requests[{n}]: asset {asset_id!r} not found.", nested=True
                )
            if asset.status != "ready":
                return 409, error_body(
                    "asset_not_ready",
                    f"requests[{n}]: asset {asset_id!r} is not ready.",
                    nested=True,
                )
            custom_id = req.get("custom_id")
            if custom_id is not None:
                if not isinstance(custom_id, str) or _CUSTOM_ID.match(custom_id) is None:
                    raise ParamError(f"requests[{n}].custom_id is malformed.")
                if custom_id in seen:
                    raise ParamError(f"requests[{n}].custom_id {custom_id!r} is a duplicate.")
                seen.add(custom_id)
            if mode == "general" and not (req.get("prompt") or defaults.get("prompt")):
                raise ParamError(f"requests[{n}] needs a prompt (on the item or in defaults).")
            fmt = req.get("response_format") or defaults.get("response_format") or {}
            fields = [
                str(f.get("name"))
                for seg in (fmt.get("segment_definitions") or [])
                if isinstance(seg, dict)
                for f in (seg.get("fields") or [])
                if isinstance(f, dict) and f.get("name")
            ]
            failing = custom_id in self.store.fail_custom_ids
            items.append(
                BatchItem(
                    task_id=self.store.new_id(ms),
                    custom_id=custom_id,
                    asset_id=asset_id,  # type: ignore[arg-type]
                    fields=fields,
                    final_status="failed" if failing else "ready",
                )
            )
        rec = BatchRecord(
            batch_id=self.store.new_id(ms),
            analysis_mode=mode,
            model_name=model,
            created_ms=ms,
            items=items,
            finish_after_polls=self.store.finish_after_polls,
        )
        self.store.batches[rec.batch_id] = rec
        body = {
            "batch_id": rec.batch_id,
            "status": rec.status,
            "total_items": len(items),
            "created_at": format_ms(ms),
            "expires_at": format_ms(ms + 86_400_000),
            "items": [{"task_id": i.task_id, "custom_id": i.custom_id} for i in items],
        }
        return 201, _encode(body)

    async def _list(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        q = request.query
        page, limit = paging(q)
        statuses = set(q.getall("status", []))
        modes = set(q.getall("analysis_mode", []))
        rows = [
            rec
            for rec in reversed(self.store.batches.values())
            if (not statuses or rec.status in statuses)
            and (not modes or rec.analysis_mode in modes)
        ]
        shown = rows[(page - 1) * limit : page * limit]
        data = [rec.wire() for rec in shown]
        for rec in shown:
            self.store.observe(rec)
        return 200, _encode({"data": data, "page_info": page_info(page, limit, len(rows))})

    async def _get(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self._batch(ident)
        if rec is None:
            return self._not_found(ident)
        self.store.observe(rec)
        return 200, _encode(rec.wire())

    async def _cancel(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self._batch(ident)
        if rec is None:
            return self._not_found(ident)
        if rec.status in _FINAL:
            return 409, error_body(
                f"batch_{rec.status}", f"The batch is already {rec.status}.", nested=True
            )
        rec.status = "canceling"
        return 202, _encode(rec.wire())

    async def _delete(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self._batch(ident)
        if rec is None:
            return self._not_found(ident)
        if rec.status not in _FINAL:
            return 409, error_body(
                "batch_not_terminal", "Cancel the batch and wait for it first.", nested=True
            )
        del self.store.batches[rec.batch_id]
        return 200, b""

    async def _results(
        self, request: web.BaseRequest, ident: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self._batch(ident)
        if rec is None:
            return self._not_found(ident)
        headers["Content-Type"] = "application/jsonl"
        return 200, b"".join(_encode(item.line()) + b"\n" for item in rec.items)
