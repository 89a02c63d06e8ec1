"""Realistic wire bodies for the fake server (field names follow the API reference).

Embedding vectors are generated once per server from a seed and pre-encoded as
JSON fragments; ready embedding bodies are assembled from those shared bytes and
a small per-task head/tail that is cached once the task is final (it never
changes). Nothing per task holds floats. The server keeps the vectors as the
client decodes them (:class:`Float32Vector`), so a test compares what it
retrieved with ``payloads.vectors`` exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from ..types import Float32Vector
from ._store import TaskRecord, format_ms

__all__ = ["Payloads", "error_body", "error_code_for_status"]

_encode = msgspec.json.encode

DEFAULT_EMBEDDING_OPTIONS: Final = ("visual", "audio")
"""Options of a task added straight to the store (and of every Embed v1 task)."""
V2_DEFAULT_OPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "video": ("visual", "audio", "transcription"),
    "audio": ("audio", "transcription"),
    "image": ("visual",),
    "document": ("visual",),
}
"""The published defaults of a created Embed v2 task, by input type."""
V2_ALLOWED_OPTIONS: Final[dict[str, frozenset[str]]] = {
    "audio": frozenset({"audio", "transcription"}),
}
"""Options an input type can have at all (an audio file has no visual embedding)."""
V2_DEFAULT_SCOPES: Final = ("clip", "asset")
WHOLE_FILE_SCOPES: Final = frozenset({"asset", "video"})
"""The scope naming the whole-file embedding: ``asset`` (Embed v2), ``video`` (Embed v1)."""
DEFAULT_PROMPT: Final = (
    "Generate a detailed summary of the video content, including the key scenes, "
    "the people involved and the overall tone."
)
DEFAULT_ANALYSIS_TEXT: Final = (
    "Video Summary: The video opens with an establishing shot of a city skyline at dawn, "
    "follows a cyclist through several neighbourhoods and ends at a harbour market."
)
LIST_PROMPT_CHARS: Final = 30

_STATUS_CODES: Final[dict[int, str]] = {
    400: "parameter_invalid",
    401: "api_key_invalid",
    403: "api_not_allowed",
    404: "resource_not_exist",
    405: "method_not_allowed",
    408: "request_canceled_or_timed_out",
    409: "conflict",
    410: "resource_expired",
    413: "payload_too_large",
    422: "unprocessable_entity",
    429: "too_many_requests",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
_STATUS_MESSAGES: Final[dict[int, str]] = {
    401: "The API key you provided is not valid or has expired. Please regenerate it.",
    429: "You have exceeded the rate limit. Please try again later.",
    500: "An internal error occurred. Please try again later.",
    502: "The upstream service returned an invalid response. Please try again later.",
    503: "The service is temporarily unavailable. Please try again later.",
    504: "The upstream service timed out. Please try again later.",
}


def error_code_for_status(status: int) -> str:
    """The error-code string the fake uses for an HTTP status."""
    code = _STATUS_CODES.get(status)
    if code is not None:
        return code
    return "internal_server_error" if status >= 500 else "request_failed"


def error_body(code: str, message: str, *, nested: bool) -> bytes:
    """Encode an error envelope: nested ``{"error": {...}}`` or flat ``{code, message}``."""
    if nested:
        return _encode({"error": {"code": code, "message": message}})
    return _encode({"code": code, "message": message})


def default_error_body(status: int, *, nested: bool) -> bytes:
    """A plausible error envelope for ``status``."""
    msg = _STATUS_MESSAGES.get(status, f"The request failed with HTTP status {status}.")
    return error_body(error_code_for_status(status), msg, nested=nested)


def default_video_url(task_id: str) -> str:
    """The source URL reported for a task created without one (no per-task storage)."""
    return f"https://storage.example.com/videos/{task_id}.mp4"


def task_video_url(rec: TaskRecord) -> str | None:
    """The effective source URL of a task (``None`` for asset/base64/image sources)."""
    if rec.video_url is not None:
        return rec.video_url
    if rec.asset_id is not None or (rec.extra is not None and "video_source" in rec.extra):
        return None
    return default_video_url(rec.id)


class Payloads:
    """Builds (and caches) encoded response bodies for one server instance."""

    __slots__ = (
        "_served",
        "_v1_filtered",
        "_v1_segments",
        "_v1_whole",
        "_v2_data",
        "clip_length",
        "default_duration",
        "embedding_dim",
        "segments",
        "vectors",
    )

    def __init__(
        self, *, embedding_dim: int = 1024, segments: int = 4, seed: int = 0, clip_length: int = 6
    ) -> None:
        if embedding_dim < 1:
            raise ValueError("embedding_dim must be >= 1")
        if segments < 0:
            raise ValueError("segments must be >= 0")
        self.embedding_dim = embedding_dim
        self.segments = segments
        self.clip_length = clip_length
        self.default_duration = self.duration()
        rng = random.Random(seed)
        # The numbers written on the wire: 9 decimals, as the API's own examples show them
        # (-0.060086973, 0.016479108).
        served: list[list[float]] = []
        for _ in range(segments):
            raw = [rng.gauss(0.0, 1.0) for _ in range(embedding_dim)]
            norm = math.sqrt(sum(x * x for x in raw)) or 1.0
            served.append([round(x / norm, 9) for x in raw])
        self._served = served
        self._v2_data: dict[tuple[str, ...], bytes] = {}
        self._v1_whole = _encode(self._whole_file(DEFAULT_EMBEDDING_OPTIONS, v1=True))[1:-1]
        self._v1_segments: list[tuple[str, bytes]] = [
            (option, _encode(seg))
            for option, seg in self._layout(DEFAULT_EMBEDDING_OPTIONS, v1=True)
        ]
        self.vectors = [Float32Vector(v) for v in served]
        """The per-server embedding vectors (shared by every ready task), as a client decodes
        them: the wire carries each value with 9 decimals, this is its float32."""
        self._v1_filtered: dict[tuple[str, ...] | None, bytes] = {}

    # ------------------------------------------------------------------ embeddings

    def _layout(
        self, options: tuple[str, ...], *, v1: bool
    ) -> Iterable[tuple[str, dict[str, Any]]]:
        n_opt = max(1, len(options))
        for i, vec in enumerate(self._served):
            option = options[i % n_opt] if options else "visual"
            start = float((i // n_opt) * self.clip_length)
            end = start + self.clip_length
            if v1:
                yield (
                    option,
                    {
                        "float": vec,
                        "start_offset_sec": start,
                        "end_offset_sec": end,
                        "embedding_option": option,
                        "embedding_scope": "clip",
                    },
                )
            else:
                yield (
                    option,
                    {
                        "embedding": vec,
                        "embedding_option": option,
                        "embedding_scope": "clip",
                        "start_sec": start,
                        "end_sec": end,
                    },
                )

    def duration(self, options: tuple[str, ...] = DEFAULT_EMBEDDING_OPTIONS) -> float:
        """Media duration implied by the segment layout."""
        n_opt = max(1, len(options))
        return float(math.ceil(self.segments / n_opt) * self.clip_length)

    def _whole_file(self, options: tuple[str, ...], *, v1: bool) -> list[dict[str, Any]]:
        """One whole-file embedding per option (scope ``asset`` in v2, ``video`` in v1)."""
        end = self.duration(options)
        out = []
        for n, option in enumerate(options or ("visual",)):
            vec = self._served[n % len(self._served)] if self._served else []
            if v1:
                out.append(
                    {
                        "float": vec,
                        "start_offset_sec": 0.0,
                        "end_offset_sec": end,
                        "embedding_option": option,
                        "embedding_scope": "video",
                    }
                )
            else:
                out.append(
                    {
                        "embedding": vec,
                        "embedding_option": option,
                        "embedding_scope": "asset",
                        "start_sec": 0.0,
                        "end_sec": end,
                    }
                )
        return out

    def v2_data(
        self,
        options: tuple[str, ...] = DEFAULT_EMBEDDING_OPTIONS,
        scopes: tuple[str, ...] = ("clip",),
    ) -> bytes:
        """Pre-encoded ``data`` array (EmbeddingData items) of a ready embed-v2 task: the clip
        embeddings (scope ``clip``), then one whole-file embedding per option (``asset``)."""
        key = (*options, "|", *scopes)
        frag = self._v2_data.get(key)
        if frag is None:
            items: list[dict[str, Any]] = []
            if "clip" in scopes:
                items += [seg for _, seg in self._layout(options, v1=False)]
            if "asset" in scopes:
                items += self._whole_file(options, v1=False)
            frag = _encode(items)
            if len(self._v2_data) >= 64:
                self._v2_data.clear()
            self._v2_data[key] = frag
        return frag

    def v1_segments(self, options: tuple[str, ...] | None = None) -> bytes:
        """Pre-encoded v1 ``segments`` array, filtered to ``options`` (``None`` = all)."""
        frag = self._v1_filtered.get(options)
        if frag is None:
            wanted = None if options is None else frozenset(options)
            parts = [b for opt, b in self._v1_segments if wanted is None or opt in wanted]
            frag = b"[" + b",".join(parts) + b"]"
            if len(self._v1_filtered) >= 64:
                self._v1_filtered.clear()
            self._v1_filtered[options] = frag
        return frag

    # ------------------------------------------------------------------ embed v2

    def _v2_options(self, rec: TaskRecord) -> tuple[str, ...]:
        extra = rec.extra
        if extra is None:  # a task added straight to the store
            return DEFAULT_EMBEDDING_OPTIONS
        input_type = extra.get("input_type", "video")
        opts = extra.get("embedding_options")
        if not opts:
            return V2_DEFAULT_OPTIONS.get(input_type, DEFAULT_EMBEDDING_OPTIONS)
        allowed = V2_ALLOWED_OPTIONS.get(input_type)
        return tuple(o for o in opts if allowed is None or o in allowed)

    @staticmethod
    def _v2_scopes(rec: TaskRecord) -> tuple[str, ...]:
        extra = rec.extra
        if extra is None:
            return ("clip",)
        scopes = extra.get("embedding_scopes")
        if scopes:
            return tuple(scopes)
        if extra.get("input_type", "video") in ("video", "audio"):
            return V2_DEFAULT_SCOPES
        return ("asset",)

    def v2_metadata(self, rec: TaskRecord) -> dict[str, Any]:
        """The ``metadata`` object of an embed-v2 task (EmbeddingVideo/AudioMetadata)."""
        extra = rec.extra or {}
        input_type = extra.get("input_type", "video")
        options = self._v2_options(rec)
        meta: dict[str, Any] = {"input_type": input_type}
        url = task_video_url(rec)
        if url is not None:
            meta["input_url"] = url
        if input_type == "video":
            meta["clip_length"] = extra.get("clip_length", self.clip_length)
        meta["embedding_scopes"] = list(self._v2_scopes(rec))
        meta["embedding_options"] = list(options)
        meta["duration"] = self.duration(options)
        return meta

    def v2_task(self, rec: TaskRecord) -> bytes:
        """Body of ``GET /embed-v2/tasks/{id}``."""
        cache: tuple[bytes, ...] | None = rec.cache
        if cache is not None:
            if len(cache) == 1:
                return cache[0]
            return b"".join((cache[0], self._v2_ready_data(rec), cache[1]))
        status = rec.status
        head = (
            b'{"_id":'
            + _encode(rec.id)
            + b',"status":'
            + _encode(status)
            + b',"created_at":'
            + _encode(format_ms(rec.created_ms))
            + b',"updated_at":'
            + _encode(format_ms(rec.final_ms))
            + b',"data":'
        )
        tail = b',"metadata":' + _encode(self.v2_metadata(rec))
        if status == "failed":
            tail += b',"error":' + _encode({"message": rec.error_message or "failed"})
        tail += b"}"
        if status == "ready":
            if rec.final_at is not None:
                rec.cache = (head, tail)
            return b"".join((head, self._v2_ready_data(rec), tail))
        body = head + b"null" + tail
        if rec.final_at is not None:
            rec.cache = (body,)
        return body

    def _v2_ready_data(self, rec: TaskRecord) -> bytes:
        return self.v2_data(self._v2_options(rec), self._v2_scopes(rec))

    @staticmethod
    def v2_created(rec: TaskRecord) -> bytes:
        """202 body of ``POST /embed-v2/tasks``."""
        return _encode({"_id": rec.id, "status": "processing", "data": None})

    # ------------------------------------------------------------------ embed v1 / list items

    def v1_metadata(self, rec: TaskRecord) -> dict[str, Any]:
        """``VideoEmbeddingMetadata`` of a v1 task (also used by the embed list items)."""
        extra = rec.extra
        meta: dict[str, Any] = {}
        if extra is None:  # fast path: a task added directly to the store
            if rec.asset_id is None:
                meta["input_url"] = rec.video_url or default_video_url(rec.id)
            meta["video_clip_length"] = self.clip_length
            meta["video_embedding_scope"] = ["clip"]
            meta["duration"] = self.default_duration
            return meta
        url = task_video_url(rec)
        filename = extra.get("input_filename")
        if filename is not None:
            meta["input_filename"] = filename
        elif url is not None:
            meta["input_url"] = url
        meta["video_clip_length"] = extra.get("clip_length", self.clip_length)
        meta["video_embedding_scope"] = extra.get("embedding_scopes", ["clip"])
        options = self._v2_options(rec) if rec.kind == "embed_v2" else DEFAULT_EMBEDDING_OPTIONS
        meta["duration"] = self.duration(options)
        return meta

    def media_embedding_item(self, rec: TaskRecord) -> dict[str, Any]:
        """A ``MediaEmbeddingTask`` list item (embed-v2 and v1 lists; no embeddings)."""
        extra = rec.extra or {}
        item: dict[str, Any] = {
            "_id": rec.id,
            "model_name": extra.get("model_name", "marengo3.0"),
            "status": rec.status,
            "created_at": format_ms(rec.created_ms),
            "updated_at": format_ms(rec.final_ms),
        }
        if extra.get("input_type") == "audio":
            url = task_video_url(rec)
            meta: dict[str, Any] = {} if url is None else {"input_url": url}
            meta["audio_embedding_options"] = list(self._v2_options(rec))
            meta["audio_embedding_scopes"] = list(self._v2_scopes(rec))
            meta["duration"] = self.duration(self._v2_options(rec))
            item["audio_embedding"] = {"metadata": meta}
        else:
            item["video_embedding"] = {"metadata": self.v1_metadata(rec)}
        return item

    def media_embedding_item_bytes(self, rec: TaskRecord) -> bytes:
        """The encoded list item, rebuilt only when the task's status changed (list pages
        are then joins of cached bytes, so listing never makes the server the bottleneck)."""
        key = (rec.status, rec.final_at)
        cached = rec.list_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        body = _encode(self.media_embedding_item(rec))
        rec.list_cache = (key, body)
        return body

    def v1_status(self, rec: TaskRecord) -> bytes:
        """Body of ``GET /embed/tasks/{id}/status``."""
        cache: tuple[bytes, bytes, bytes] | None = rec.cache
        if cache is not None:
            return cache[0]
        body = _encode(
            {
                "_id": rec.id,
                "model_name": (rec.extra or {}).get("model_name", "marengo3.0"),
                "status": rec.status,
                "video_embedding": {"metadata": self.v1_metadata(rec)},
            }
        )
        if rec.final_at is not None:
            rec.cache = (body, *self._v1_head_tail(rec))
        return body

    def _v1_head_tail(self, rec: TaskRecord) -> tuple[bytes, bytes]:
        extra = rec.extra or {}
        head = (
            b'{"_id":'
            + _encode(rec.id)
            + b',"model_name":'
            + _encode(extra.get("model_name", "marengo3.0"))
            + b',"status":'
            + _encode(rec.status)
            + b',"created_at":'
            + _encode(format_ms(rec.created_ms))
            + b',"updated_at":'
            + _encode(format_ms(rec.final_ms))
            + b',"video_embedding":{"metadata":'
            + _encode(self.v1_metadata(rec))
        )
        return head, b"}}"

    def v1_task(self, rec: TaskRecord, options: tuple[str, ...] | None = None) -> bytes:
        """Body of ``GET /embed/tasks/{id}`` (segments only when ready, filtered by option)."""
        if rec.cache is None and rec.final_at is not None:
            self.v1_status(rec)  # fills the cache: (status body, head, tail)
        cache: tuple[bytes, bytes, bytes] | None = rec.cache
        if cache is not None:
            head, tail = cache[1], cache[2]
        else:
            head, tail = self._v1_head_tail(rec)
        if rec.status == "ready":
            segments = self.v1_segments(options)
            scopes = (rec.extra or {}).get("embedding_scopes") or ()
            if "video" in scopes and (options is None or set(options) & {"visual", "audio"}):
                whole = self._v1_whole_for(options)
                if "clip" not in scopes:
                    segments = b"[" + whole + b"]"
                elif whole:
                    segments = segments[:-1] + (b"," if segments != b"[]" else b"") + whole + b"]"
            return b"".join((head, b',"segments":', segments, tail))
        return head + tail

    def _v1_whole_for(self, options: tuple[str, ...] | None) -> bytes:
        """The whole-video segments (scope ``video``), filtered to ``options``."""
        if options is None:
            return self._v1_whole
        wanted = [
            w
            for w in self._whole_file(DEFAULT_EMBEDDING_OPTIONS, v1=True)
            if w["embedding_option"] in options
        ]
        return _encode(wanted)[1:-1]

    # ------------------------------------------------------------------ analyze

    @staticmethod
    def analyze_video_source(rec: TaskRecord) -> dict[str, Any] | None:
        """The ``video_source`` object of an analysis task (``None`` for image tasks)."""
        extra = rec.extra
        if extra is not None and "video_source" in extra:
            src: dict[str, Any] | None = extra["video_source"]
            return src
        if rec.asset_id is not None:
            return {"type": "asset_id", "asset_id": rec.asset_id}
        return {"type": "url", "url": task_video_url(rec)}

    @staticmethod
    def analyze_request_params(rec: TaskRecord, *, truncate: bool) -> dict[str, Any]:
        """The ``request_params`` echo (prompt truncated to 30 chars in list items)."""
        extra = rec.extra
        if extra is not None and "request_params" in extra:
            params = dict(extra["request_params"])
        elif rec.analysis_mode == "time_based_metadata":
            params = {
                "analysis_mode": "time_based_metadata",
                "response_format": {
                    "type": "segment_definitions",
                    "segment_definitions": [
                        {"id": "scenes", "description": "Distinct scenes of the video"}
                    ],
                },
                "temperature": 0.2,
                "max_tokens": 32768,
            }
        else:
            params = {
                "analysis_mode": rec.analysis_mode,
                "prompt": DEFAULT_PROMPT,
                "temperature": 0.2,
                "max_tokens": 4096,
            }
        if truncate:
            prompt = params.get("prompt")
            if isinstance(prompt, str) and len(prompt) > LIST_PROMPT_CHARS:
                params["prompt"] = prompt[:LIST_PROMPT_CHARS]
            pv2 = params.get("prompt_v2")
            if isinstance(pv2, dict):
                text = pv2.get("input_text")
                if isinstance(text, str) and len(text) > LIST_PROMPT_CHARS:
                    params["prompt_v2"] = {**pv2, "input_text": text[:LIST_PROMPT_CHARS]}
            fmt = params.get("response_format")
            if isinstance(fmt, dict):
                fmt = {k: v for k, v in fmt.items() if k != "json_schema"}
                defs = fmt.get("segment_definitions")
                if isinstance(defs, list) and len(defs) > 1:
                    fmt["segment_definitions"] = defs[:1]
                params["response_format"] = fmt
        return params

    @staticmethod
    def _analyze_result(rec: TaskRecord, params: dict[str, Any]) -> dict[str, Any]:
        tid = rec.id.ljust(32, "0")[:32]
        gen_id = f"{tid[:8]}-{tid[8:12]}-{tid[12:16]}-{tid[16:20]}-{tid[20:32]}"
        fmt = params.get("response_format")
        fmt_type = fmt.get("type") if isinstance(fmt, dict) else None
        mode = params.get("analysis_mode")
        if mode == "time_based_metadata" or fmt_type == "segment_definitions":
            defs = fmt.get("segment_definitions") if isinstance(fmt, dict) else None
            defs = [d for d in defs or () if isinstance(d, dict) and "id" in d] or [
                {"id": "scenes"}
            ]
            result: dict[str, list[dict[str, Any]]] = {}
            for definition in defs:
                # Each segment carries a value for every custom field of its definition.
                names = [
                    str(f["name"])
                    for f in definition.get("fields") or ()
                    if isinstance(f, dict) and f.get("name")
                ]
                result[str(definition["id"])] = [
                    {
                        "start_time": start,
                        "end_time": end,
                        "metadata": {name: f"{name} of segment {n}" for name in names},
                    }
                    for n, (start, end) in enumerate(((0.0, 12.5), (12.5, 30.0)), 1)
                ]
            data = _encode(result).decode()
        elif fmt_type == "json_schema":
            data = _encode({"summary": DEFAULT_ANALYSIS_TEXT}).decode()
        else:
            data = DEFAULT_ANALYSIS_TEXT
        return {
            "generation_id": gen_id,
            "data": data,
            "finish_reason": "stop",
            "usage": {"output_tokens": 150, "input_tokens": 45},
        }

    def analyze_dict(self, rec: TaskRecord, *, list_item: bool) -> dict[str, Any]:
        """An ``AnalyzeTaskResponse`` as a dict (list items truncate the prompt)."""
        params = self.analyze_request_params(rec, truncate=list_item)
        out: dict[str, Any] = {"task_id": rec.id, "custom_id": rec.custom_id}
        src = self.analyze_video_source(rec)
        if src is not None:
            out["video_source"] = src
        out["request_params"] = params
        status = rec.status
        out["status"] = status
        out["created_at"] = format_ms(rec.created_ms)
        if rec.final_at is not None:
            out["completed_at"] = format_ms(rec.final_ms)
        if status == "ready":
            out["result"] = self._analyze_result(rec, params)
            if rec.error_message is not None:  # e.g. a truncation / partial-result warning
                out["error"] = {"message": rec.error_message}
        elif status in ("failed", "canceled"):
            err: dict[str, Any] = {"message": rec.error_message or status}
            if rec.error_code is not None:
                err["code"] = rec.error_code
            out["error"] = err
        return out

    def analyze_task(self, rec: TaskRecord) -> bytes:
        """Body of ``GET /analyze/tasks/{id}`` (cached once final)."""
        cache: bytes | None = rec.cache
        if cache is not None:
            return cache
        body = _encode(self.analyze_dict(rec, list_item=False))
        if rec.final_at is not None:
            rec.cache = body
        return body
