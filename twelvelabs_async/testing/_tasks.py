"""Handlers of the task routes (Embed v2, Embed v1, analysis tasks) of the fake server."""

from __future__ import annotations

import math
import re
from typing import Any, Final

import msgspec
from aiohttp import BodyPartReader, web

from ._http import Handler, ParamError, Reply, paging, parse_rfc3339_ms, read_json, redact
from ._payloads import Payloads, error_body, task_video_url
from ._routes import (
    T_AN_CANCEL,
    T_AN_LIST,
    T_AN_TASK,
    T_V1_LIST,
    T_V1_STATUS,
    T_V1_TASK,
    T_V2_LIST,
    T_V2_TASK,
)
from ._store import DEFAULT_CANCEL_MESSAGE, TaskKind, TaskStore

__all__ = ["TaskHandlers"]

_encode = msgspec.json.encode

_V2_INPUT_TYPES: Final = frozenset({"audio", "video", "document", "image"})
_V1_SCOPES: Final = frozenset({"clip", "video"})
_ANALYSIS_MODES: Final = frozenset({"general", "time_based_metadata"})
_CUSTOM_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TaskHandlers:
    """The task routes: validation of each request and its answer from the task store."""

    def __init__(
        self,
        *,
        store: TaskStore,
        payloads: Payloads,
        api_key: str | None,
        analyze_full_page_info: bool,
    ) -> None:
        self.store = store
        self.payloads = payloads
        self.api_key = api_key
        self.analyze_full_page_info = analyze_full_page_info
        self.idempotency: dict[str, Reply] = {}

    def routes(self) -> dict[tuple[str, str], tuple[Handler, bool]]:
        """``(method, template) -> (handler, nested error envelope)``."""
        return {
            ("GET", T_V2_LIST): (self._v2_list, False),
            ("POST", T_V2_LIST): (self._v2_create, True),
            ("GET", T_V2_TASK): (self._v2_get, True),
            ("GET", T_V1_LIST): (self._v1_list, False),
            ("POST", T_V1_LIST): (self._v1_create, False),
            ("GET", T_V1_STATUS): (self._v1_status, False),
            ("GET", T_V1_TASK): (self._v1_get, False),
            ("GET", T_AN_LIST): (self._analyze_list, False),
            ("POST", T_AN_LIST): (self._analyze_create, True),
            ("GET", T_AN_TASK): (self._analyze_get, True),
            ("DELETE", T_AN_TASK): (self._analyze_delete, True),
            ("POST", T_AN_CANCEL): (self._analyze_cancel, True),
        }

    def _not_found(self, kind: TaskKind, task_id: str | None, *, nested: bool) -> Reply:
        what = {"embed_v2": "embed-v2 tasks", "embed_v1": "embed tasks", "analyze": "analyze tasks"}
        shown = redact(task_id or "", self.api_key)
        return 404, error_body(
            "resource_not_exist",
            f"The resource {shown!r} does not exist in {what[kind]}.",
            nested=nested,
        )

    # ------------------------------------------------------------------ lists

    def _observe_filtered_out(
        self, kind: TaskKind, now: float, status: str | None, page: int, **filters: Any
    ) -> None:
        """A list filtered by ``status`` also tells the client that every other task its
        other filters match does not have that status. For poll-based finishing that counts
        as an observation (once per walk: on page 1), so a client that lists only the
        finished side (a sweeping poller) still sees poll-based tasks finish."""
        if status is None or page != 1:
            return
        others = self.store.query(kind, now, **filters)
        self.store.observe([rec for rec in others if rec.status != status], now)

    # ------------------------------------------------------------------ embed lists

    def _embed_list(self, kind: TaskKind, request: web.BaseRequest, now: float) -> Reply:
        q = request.query
        page, limit = paging(q)
        started = q.get("started_at")
        ended = q.get("ended_at")
        rows = self.store.query(
            kind,
            now,
            started_ms=None if not started else parse_rfc3339_ms(started, upper=False),
            ended_ms=None if not ended else parse_rfc3339_ms(ended, upper=True),
            status=q.get("status") or None,
        )
        total = len(rows)
        start = (page - 1) * limit
        item = self.payloads.media_embedding_item_bytes
        shown = [rows[total - 1 - pos] for pos in range(start, min(start + limit, total))]
        data = b",".join([item(rec) for rec in shown])
        self.store.observe(shown, now)
        self._observe_filtered_out(
            kind,
            now,
            q.get("status") or None,
            page,
            started_ms=None if not started else parse_rfc3339_ms(started, upper=False),
            ended_ms=None if not ended else parse_rfc3339_ms(ended, upper=True),
        )
        page_info = _encode(
            {
                "limit_per_page": limit,
                "page": page,
                "total_page": math.ceil(total / limit),
                "total_results": total,
            }
        )
        return 200, b'{"data":[' + data + b'],"page_info":' + page_info + b"}"

    async def _v2_list(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        return self._embed_list("embed_v2", request, now)

    async def _v1_list(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        return self._embed_list("embed_v1", request, now)

    # ------------------------------------------------------------------ embed v2

    async def _v2_get(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self.store.poll("embed_v2", task_id or "", now)
        if rec is None:
            return self._not_found("embed_v2", task_id, nested=True)
        return 200, self.payloads.v2_task(rec)

    async def _v2_create(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        data = await read_json(request)
        missing = [f for f in ("input_type", "model_name") if not data.get(f)]
        if missing:
            return 400, error_body(
                "parameter_not_provided",
                f"The following parameters are required: {', '.join(missing)}.",
                nested=True,
            )
        input_type = data["input_type"]
        model_name = data["model_name"]
        if not isinstance(input_type, str) or input_type not in _V2_INPUT_TYPES:
            raise ParamError(f"input_type must be one of {sorted(_V2_INPUT_TYPES)}.")
        if not isinstance(model_name, str):
            raise ParamError("model_name must be a string.")
        media = data.get(input_type)
        media = media if isinstance(media, dict) else {}
        source = media.get("media_source")
        source = source if isinstance(source, dict) else {}
        extra: dict[str, Any] = {"input_type": input_type, "model_name": model_name}
        url = source.get("url")
        asset_id = source.get("asset_id")
        if not isinstance(url, str):
            url = None
        if not isinstance(asset_id, str):
            asset_id = None
        if url is None and asset_id is None and "base64_string" in source:
            extra["video_source"] = {"type": "base64_string"}
        options = media.get("embedding_option")
        if options is not None:
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                raise ParamError("embedding_option must be an array of strings.")
            if options:
                extra["embedding_options"] = options
        scopes = media.get("embedding_scope")
        if scopes is not None:
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ParamError("embedding_scope must be an array of strings.")
            if scopes:
                extra["embedding_scopes"] = scopes
        seg = media.get("segmentation")
        if isinstance(seg, dict):
            fixed = seg.get("fixed")
            if not isinstance(fixed, dict) and isinstance(seg.get("temporal"), dict):
                fixed = seg["temporal"].get("fixed")
            if isinstance(fixed, dict) and isinstance(fixed.get("duration_sec"), int):
                extra["clip_length"] = fixed["duration_sec"]
        rec = self.store.add("embed_v2", video_url=url, asset_id=asset_id, extra=extra)
        return 202, self.payloads.v2_created(rec)

    # ------------------------------------------------------------------ embed v1

    async def _v1_status(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self.store.poll("embed_v1", task_id or "", now)
        if rec is None:
            return self._not_found("embed_v1", task_id, nested=False)
        return 200, self.payloads.v1_status(rec)

    async def _v1_get(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self.store.poll("embed_v1", task_id or "", now)
        if rec is None:
            return self._not_found("embed_v1", task_id, nested=False)
        wanted = request.query.getall("embedding_option", None)
        options: tuple[str, ...] | None = None
        if wanted:
            options = tuple(sorted({o.strip() for v in wanted for o in v.split(",") if o.strip()}))
        return 200, self.payloads.v1_task(rec, options)

    async def _v1_create(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        if not request.content_type.startswith("multipart/"):
            raise ParamError("The request must be sent as multipart/form-data.")
        fields: dict[str, list[str]] = {}
        filename: str | None = None
        has_file = False
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    await part.release()
                    continue
                name = part.name or ""
                if name == "video_file":
                    has_file = True
                    filename = part.filename or "video.mp4"
                    await part.release()  # discard the upload
                else:
                    fields.setdefault(name, []).append(await part.text())
        except (ValueError, AssertionError, UnicodeDecodeError) as exc:
            raise ParamError(f"Malformed multipart/form-data body: {exc}") from None
        model_name = (fields.get("model_name") or [""])[0]
        video_url = (fields.get("video_url") or [""])[0] or None
        if not model_name:
            return 400, error_body(
                "parameter_not_provided", "The model_name parameter is required.", nested=False
            )
        if video_url is None and not has_file:
            return 400, error_body(
                "parameter_not_provided",
                "Either the video_url or the video_file parameter is required.",
                nested=False,
            )
        extra: dict[str, Any] = {"model_name": model_name}
        if video_url is None:
            extra["input_filename"] = filename
            extra["video_source"] = {"type": "file"}
        clip = fields.get("video_clip_length")
        if clip:
            try:
                clip_len = float(clip[0])
            except ValueError:
                raise ParamError("video_clip_length must be a number.") from None
            if not 2 <= clip_len <= 10:
                raise ParamError("video_clip_length must be between 2 and 10 seconds.")
            extra["clip_length"] = int(clip_len) if clip_len.is_integer() else clip_len
        offsets: list[float] = []
        for name in ("video_start_offset_sec", "video_end_offset_sec"):
            vals = fields.get(name)
            if vals:
                try:
                    offsets.append(float(vals[0]))
                except ValueError:
                    raise ParamError(f"{name} must be a number.") from None
        if len(offsets) == 2 and offsets[1] <= offsets[0]:
            raise ParamError("video_end_offset_sec must be greater than video_start_offset_sec.")
        scopes = fields.get("video_embedding_scope")
        if scopes:
            bad = [s for s in scopes if s not in _V1_SCOPES]
            if bad:
                raise ParamError(f"Invalid video_embedding_scope value(s): {', '.join(bad)}.")
            extra["embedding_scopes"] = list(dict.fromkeys(scopes))
        rec = self.store.add("embed_v1", video_url=video_url, extra=extra)
        return 200, _encode({"_id": rec.id})

    # ------------------------------------------------------------------ analyze

    async def _analyze_list(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        q = request.query
        page, limit = paging(q)
        rows = self.store.query(
            "analyze",
            now,
            status=q.get("status") or None,
            video_url=q.get("video_url") or None,
            asset_id=q.get("asset_id") or None,
            analysis_mode=q.get("analysis_mode") or None,
            url_of=task_video_url,
        )
        video_id = q.get("video_id")
        if video_id:  # deprecated, still documented: the index video the task analysed
            source = self.payloads.analyze_video_source
            rows = [r for r in rows if (source(r) or {}).get("video_id") == video_id]
        total = len(rows)
        start = (page - 1) * limit
        build = self.payloads.analyze_dict
        shown = [rows[total - 1 - pos] for pos in range(start, min(start + limit, total))]
        data = [build(rec, list_item=True) for rec in shown]
        self.store.observe(shown, now)
        if not video_id:
            self._observe_filtered_out(
                "analyze",
                now,
                q.get("status") or None,
                page,
                video_url=q.get("video_url") or None,
                asset_id=q.get("asset_id") or None,
                analysis_mode=q.get("analysis_mode") or None,
                url_of=task_video_url,
            )
        page_info: dict[str, int] = {"page": page}
        if self.analyze_full_page_info:
            page_info = {
                "limit_per_page": limit,
                "page": page,
                "total_page": math.ceil(total / limit),
                "total_results": total,
            }
        return 200, _encode({"data": data, "page_info": page_info})

    async def _analyze_get(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self.store.poll("analyze", task_id or "", now)
        if rec is None:
            return self._not_found("analyze", task_id, nested=True)
        return 200, self.payloads.analyze_task(rec)

    async def _analyze_delete(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self.store.get("analyze", task_id or "")
        if rec is None:
            return self._not_found("analyze", task_id, nested=True)
        self.store.advance(rec, now)
        if rec.final_at is None:
            return 409, error_body(
                "task_in_progress",
                "The analysis task is still being processed and cannot be deleted.",
                nested=True,
            )
        self.store.delete("analyze", rec.id)
        return 200, b""

    async def _analyze_cancel(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        rec = self.store.get("analyze", task_id or "")
        if rec is None:
            return self._not_found("analyze", task_id, nested=True)
        self.store.advance(rec, now)
        if rec.status != "canceled":
            if rec.final_at is not None:
                return 409, error_body(
                    "task_cannot_be_canceled",
                    f"The analysis task has already finished with status {rec.status!r}.",
                    nested=True,
                )
            self.store.set_status(
                rec, "canceled", error_message=DEFAULT_CANCEL_MESSAGE, error_code="user_canceled"
            )
        return 200, _encode({"task_id": rec.id, "status": "canceled"})

    async def _analyze_create(
        self, request: web.BaseRequest, task_id: str | None, now: float, headers: dict[str, str]
    ) -> Reply:
        idem = request.headers.get("Idempotency-Key")
        if idem:
            previous = self.idempotency.get(idem)
            if previous is not None:
                return previous
        data = await read_json(request)
        video = data.get("video")
        image = data.get("image")
        if video is None and image is None:
            return 400, error_body(
                "parameter_not_provided", "Either video or image is required.", nested=True
            )
        if video is not None and image is not None:
            raise ParamError("video and image are mutually exclusive.")
        custom_id = data.get("custom_id")
        if custom_id is not None and (
            not isinstance(custom_id, str) or _CUSTOM_ID.match(custom_id) is None
        ):
            raise ParamError("custom_id must be 1-64 characters of letters, digits, '_' or '-'.")
        mode = data.get("analysis_mode", "general")
        if mode not in _ANALYSIS_MODES:
            raise ParamError(f"analysis_mode must be one of {sorted(_ANALYSIS_MODES)}.")
        extra: dict[str, Any] = {"model_name": data.get("model_name", "pegasus1.5")}
        url: str | None = None
        asset_id: str | None = None
        if video is not None:
            if not isinstance(video, dict):
                raise ParamError("video must be an object.")
            if isinstance(video.get("url"), str):
                url = video["url"]
            elif isinstance(video.get("asset_id"), str):
                asset_id = video["asset_id"]
            elif "base64_string" in video:
                extra["video_source"] = {"type": "base64_string"}
            elif isinstance(video.get("video_id"), str):  # deprecated: a video of an index
                extra["video_source"] = {"type": "video_id", "video_id": video["video_id"]}
            else:
                raise ParamError("video must contain one of url, asset_id or base64_string.")
        else:
            if not isinstance(image, list) or not 1 <= len(image) <= 20:
                raise ParamError("image must be an array of 1 to 20 images.")
            extra["video_source"] = None
        params: dict[str, Any] = {"analysis_mode": mode}
        for name in ("prompt", "prompt_v2", "response_format"):
            if data.get(name) is not None:
                params[name] = data[name]
        params["temperature"] = data.get("temperature", 0.2)
        params["max_tokens"] = data.get(
            "max_tokens", 32768 if mode == "time_based_metadata" else 4096
        )
        for name in ("min_segment_duration", "max_segment_duration", "start_time", "end_time"):
            if data.get(name) is not None:
                params[name] = data[name]
        extra["request_params"] = params
        rec = self.store.add(
            "analyze",
            video_url=url,
            asset_id=asset_id,
            analysis_mode=mode,
            custom_id=custom_id,
            extra=extra,
        )
        reply: Reply = (202, _encode({"task_id": rec.id, "status": rec.status}))
        if idem:
            self.idempotency[idem] = reply
        return reply
