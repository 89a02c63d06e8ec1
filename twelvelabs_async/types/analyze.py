"""Wire structs of the asynchronous analysis tasks (``/analyze/tasks``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import msgspec

from .._types import ANALYZE_FINAL_STATUSES
from .common import Wire as _Wire

__all__ = [
    "AnalyzeImageInput",
    "AnalyzeTask",
    "AnalyzeTaskCanceled",
    "AnalyzeTaskCreated",
    "AnalyzeTaskError",
    "AnalyzeTaskRequest",
    "AnalyzeTaskRequestParams",
    "AnalyzeTaskResult",
    "AnalyzeTaskUsage",
    "AnalyzeTaskWebhookInfo",
    "AnalyzeVideoSource",
    "PromptV2",
    "VideoContext",
]


# --- requests -------------------------------------------------------------------------------


class VideoContext(_Wire):
    """The video to analyse: ``type`` is ``"url"``, ``"asset_id"`` or ``"base64_string"``,
    with the matching field set. ``VideoContext.from_url(url)`` is the common case."""

    type: str
    url: str | None = None
    asset_id: str | None = None
    base64_string: str | None = None

    @classmethod
    def from_url(cls, url: str) -> VideoContext:
        """A video given by a direct URL."""
        return cls(type="url", url=url)

    @classmethod
    def from_asset(cls, asset_id: str) -> VideoContext:
        """A video uploaded as an asset."""
        return cls(type="asset_id", asset_id=asset_id)


class AnalyzeImageInput(_Wire):
    """One of 1-20 images (Pegasus 1.6): ``name`` plus one of url / asset_id / base64_string."""

    name: str
    url: str | None = None
    asset_id: str | None = None
    base64_string: str | None = None


class PromptV2(_Wire):
    """A prompt that references images by ``<@name>``."""

    input_text: str
    media_sources: list[dict[str, Any]] | None = None


class AnalyzeTaskRequest(_Wire):
    """Body of ``POST /analyze/tasks``."""

    model_name: str | None = None
    custom_id: str | None = None
    video: VideoContext | dict[str, Any] | None = None
    image: list[AnalyzeImageInput | dict[str, Any]] | None = None
    prompt: str | None = None
    prompt_v_2: PromptV2 | dict[str, Any] | None = msgspec.field(default=None, name="prompt_v2")
    analysis_mode: str | None = None
    temperature: float | None = None
    max_tokens: int | str | None = None
    response_format: dict[str, Any] | None = None
    min_segment_duration: float | None = None
    max_segment_duration: float | None = None
    start_time: float | None = None
    end_time: float | None = None


# --- responses ------------------------------------------------------------------------------


class _SystemMetadata(_Wire):
    duration: float | None = None


class AnalyzeVideoSource(_Wire):
    """Where the analysed video came from."""

    type: str | None = None
    url: str | None = None
    asset_id: str | None = None
    video_id: str | None = None
    index_id: str | None = None
    system_metadata: _SystemMetadata | None = None


class AnalyzeTaskRequestParams(_Wire):
    """The request's parameters as echoed by the API (the list truncates prompts)."""

    analysis_mode: str | None = None
    prompt: str | None = None
    prompt_v_2: dict[str, Any] | None = msgspec.field(default=None, name="prompt_v2")
    image: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | str | None = None
    min_segment_duration: float | None = None
    max_segment_duration: float | None = None
    start_time: float | None = None
    end_time: float | None = None


class AnalyzeTaskUsage(_Wire):
    """Tokens used by the analysis."""

    output_tokens: int | None = None
    input_tokens: int | None = None


class AnalyzeTaskResult(_Wire):
    """The analysis result (only when ``ready``). ``data`` is text, or a JSON string for
    ``json_schema`` and segmentation; check ``finish_reason`` before parsing it."""

    generation_id: str | None = None
    data: str | None = None
    finish_reason: str | None = None
    usage: AnalyzeTaskUsage | None = None


class AnalyzeTaskError(_Wire):
    """Why a task failed or was canceled, or a warning on a ready task."""

    message: str | None = None
    code: str | None = None


class AnalyzeTaskWebhookInfo(_Wire):
    """Delivery state of the task's webhook notifications to one endpoint."""

    url: str | None = None
    delivered: bool | None = None
    attempts: int | None = None
    last_error: str | None = None


class AnalyzeTask(_Wire):
    """An analysis task (``GET /analyze/tasks/{task_id}``; also the list item)."""

    FINAL_STATUSES: ClassVar[frozenset[str]] = ANALYZE_FINAL_STATUSES

    task_id: str
    status: str
    custom_id: str | None = None
    batch_id: str | None = None
    video_source: AnalyzeVideoSource | None = None
    request_params: AnalyzeTaskRequestParams | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None
    result: AnalyzeTaskResult | None = None
    error: AnalyzeTaskError | None = None
    webhooks: list[AnalyzeTaskWebhookInfo] | None = None

    @property
    def id(self) -> str:
        """The task id (same as ``task_id``), for code that handles every kind alike."""
        return self.task_id

    @property
    def is_final(self) -> bool:
        """``True`` once the task is ``ready``, ``failed`` or ``canceled``."""
        return self.status in ANALYZE_FINAL_STATUSES

    @property
    def error_message(self) -> str | None:
        """The task's error message or warning, if any."""
        return self.error.message if self.error is not None else None


class AnalyzeTaskCreated(_Wire):
    """Answer of ``POST /analyze/tasks``."""

    task_id: str
    status: str


class AnalyzeTaskCanceled(_Wire):
    """Answer of ``POST /analyze/tasks/{task_id}/cancel``."""

    task_id: str
    status: str
