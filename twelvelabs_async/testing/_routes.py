"""Route vocabulary of the fake server: templates, raw-path resolution, route specs.

Routes are resolved on the *raw* (still percent-encoded) request path, so an
encoded ``/`` (``%2F``) inside a task id never acts as a separator. Route keys
used throughout the testing API have the form ``"GET /v1.3/embed-v2/tasks/{task_id}"``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "PREFIX",
    "PUBLIC_TEMPLATES",
    "ROUTES",
    "STORAGE",
    "TEMPLATES",
    "UNMATCHED",
    "normalize_route",
    "resolve",
    "route_key",
]

PREFIX: Final = "/v1.3"
UNMATCHED: Final = "<unmatched>"
"""Template recorded for requests that match no route."""
STORAGE: Final = "/storage/parts"
"""Where presigned part URLs point: the fake's stand-in for object storage (outside the API
prefix, like the real storage host; no API key, no rate limit)."""

_EMBED_V2: Final = "/v1.3/embed-v2/tasks"
_EMBED_V1: Final = "/v1.3/embed/tasks"
_ANALYZE: Final = "/v1.3/analyze/tasks"
_ASSETS: Final = "/v1.3/assets"
_UPLOADS: Final = "/v1.3/assets/multipart-uploads"
_BATCHES: Final = "/v1.3/analyze/batches"

T_V2_LIST: Final = _EMBED_V2
T_V2_TASK: Final = _EMBED_V2 + "/{task_id}"
T_V1_LIST: Final = _EMBED_V1
T_V1_TASK: Final = _EMBED_V1 + "/{task_id}"
T_V1_STATUS: Final = _EMBED_V1 + "/{task_id}/status"
T_AN_LIST: Final = _ANALYZE
T_AN_TASK: Final = _ANALYZE + "/{task_id}"
T_AN_CANCEL: Final = _ANALYZE + "/{task_id}/cancel"
T_ASSETS: Final = _ASSETS
T_ASSET: Final = _ASSETS + "/{asset_id}"
T_UPLOADS: Final = _UPLOADS
T_UPLOAD: Final = _UPLOADS + "/{upload_id}"
T_UPLOAD_URLS: Final = _UPLOADS + "/{upload_id}/presigned-urls"
T_PART: Final = STORAGE + "/{part_id}"
T_BATCHES: Final = _BATCHES
T_BATCH: Final = _BATCHES + "/{batch_id}"
T_BATCH_CANCEL: Final = _BATCHES + "/{batch_id}/cancel"
T_BATCH_RESULTS: Final = _BATCHES + "/{batch_id}/results"

ROUTES: Final[tuple[tuple[str, str], ...]] = (
    ("GET", T_V2_LIST),
    ("POST", T_V2_LIST),
    ("GET", T_V2_TASK),
    ("GET", T_V1_LIST),
    ("POST", T_V1_LIST),
    ("GET", T_V1_STATUS),
    ("GET", T_V1_TASK),
    ("GET", T_AN_LIST),
    ("POST", T_AN_LIST),
    ("GET", T_AN_TASK),
    ("DELETE", T_AN_TASK),
    ("POST", T_AN_CANCEL),
    ("GET", T_ASSETS),
    ("POST", T_ASSETS),
    ("GET", T_ASSET),
    ("DELETE", T_ASSET),
    ("GET", T_UPLOADS),
    ("POST", T_UPLOADS),
    ("GET", T_UPLOAD),
    ("POST", T_UPLOAD),
    ("POST", T_UPLOAD_URLS),
    ("PUT", T_PART),
    ("GET", T_BATCHES),
    ("POST", T_BATCHES),
    ("GET", T_BATCH),
    ("DELETE", T_BATCH),
    ("POST", T_BATCH_CANCEL),
    ("GET", T_BATCH_RESULTS),
)
"""Every (method, template) pair the fake serves."""

TEMPLATES: Final = frozenset(t for _, t in ROUTES)
PUBLIC_TEMPLATES: Final = frozenset({T_PART})
"""Templates served without an API key and outside the rate limit (object storage)."""


def _split(template: str) -> tuple[str, ...]:
    return tuple(template.strip("/").split("/"))


# Longest literal prefix first, so ``assets/multipart-uploads`` wins over ``assets/{asset_id}``.
_BY_LENGTH: Final[dict[int, list[tuple[tuple[str, ...], str]]]] = {}
for _template in sorted(TEMPLATES, key=lambda t: (t.count("{"), t)):
    _parts = _split(_template)
    _BY_LENGTH.setdefault(len(_parts), []).append((_parts, _template))


def resolve(raw_path: str) -> tuple[str, str | None] | None:
    """Map a raw request target to ``(template, encoded id or None)``; ``None`` if unknown."""
    q = raw_path.find("?")
    path = raw_path if q < 0 else raw_path[:q]
    if not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    for pattern, template in _BY_LENGTH.get(len(parts), ()):
        ident: str | None = None
        for want, got in zip(pattern, parts, strict=True):
            if want.startswith("{"):
                ident = got
            elif want != got:
                break
        else:
            return template, ident
    return None


def route_key(method: str, template: str) -> str:
    """The route key string, e.g. ``"GET /v1.3/embed-v2/tasks/{task_id}"``."""
    return f"{method} {template}"


def normalize_route(route: str) -> tuple[str | None, str | None]:
    """Parse a route spec into ``(method or None, path or None)``.

    Accepted forms: ``"*"`` (everything), ``"GET *"`` (every GET),
    ``"GET /v1.3/embed-v2/tasks/{task_id}"``, a template without method (any
    method), templates without the ``/v1.3`` prefix, and concrete raw paths such
    as ``"GET /v1.3/embed-v2/tasks/abc"``. A ``{...}`` template that the fake
    does not serve raises ``ValueError`` (to catch typos).
    """
    spec = route.strip()
    method: str | None = None
    if " " in spec:
        m, _, spec = spec.partition(" ")
        method = m.strip().upper() or None
        spec = spec.strip()
        if method == "*":
            method = None
    if spec in ("*", ""):
        return method, None
    if spec == UNMATCHED:
        return method, spec
    if not spec.startswith("/"):
        spec = "/" + spec
    if not spec.startswith((PREFIX + "/", STORAGE + "/")):
        spec = PREFIX + spec
    if len(spec) > 1 and spec.endswith("/") and "{" in spec:
        spec = spec.rstrip("/")
    if "{" in spec and spec not in TEMPLATES:
        raise ValueError(f"unknown route template {route!r}; known: {sorted(TEMPLATES)}")
    return method, spec
