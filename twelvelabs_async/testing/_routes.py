"""Route vocabulary of the fake server: templates, raw-path resolution, route specs.

Routes are resolved on the *raw* (still percent-encoded) request path, so an
encoded ``/`` (``%2F``) inside a task id never acts as a separator. Route keys
used throughout the testing API have the form ``"GET /v1.3/embed-v2/tasks/{task_id}"``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "PREFIX",
    "ROUTES",
    "TEMPLATES",
    "UNMATCHED",
    "normalize_route",
    "resolve",
    "route_key",
]

PREFIX: Final = "/v1.3"
UNMATCHED: Final = "<unmatched>"
"""Template recorded for requests that match no route."""

_EMBED_V2: Final = "/v1.3/embed-v2/tasks"
_EMBED_V1: Final = "/v1.3/embed/tasks"
_ANALYZE: Final = "/v1.3/analyze/tasks"

T_V2_LIST: Final = _EMBED_V2
T_V2_TASK: Final = _EMBED_V2 + "/{task_id}"
T_V1_LIST: Final = _EMBED_V1
T_V1_TASK: Final = _EMBED_V1 + "/{task_id}"
T_V1_STATUS: Final = _EMBED_V1 + "/{task_id}/status"
T_AN_LIST: Final = _ANALYZE
T_AN_TASK: Final = _ANALYZE + "/{task_id}"
T_AN_CANCEL: Final = _ANALYZE + "/{task_id}/cancel"

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
)
"""Every (method, template) pair the fake serves."""

TEMPLATES: Final = frozenset(t for _, t in ROUTES)

_GROUPS: Final[dict[str, str]] = {
    "embed-v2": _EMBED_V2,
    "embed": _EMBED_V1,
    "analyze": _ANALYZE,
}
_SUFFIXES: Final[dict[tuple[str, str], str]] = {
    ("embed", "status"): T_V1_STATUS,
    ("analyze", "cancel"): T_AN_CANCEL,
}


def resolve(raw_path: str) -> tuple[str, str | None] | None:
    """Map a raw request target to ``(template, encoded task id or None)``; ``None`` if unknown."""
    q = raw_path.find("?")
    path = raw_path if q < 0 else raw_path[:q]
    if not path.startswith("/v1.3/"):
        return None
    parts = path[6:].split("/")
    n = len(parts)
    if n < 2 or parts[1] != "tasks":
        return None
    base = _GROUPS.get(parts[0])
    if base is None:
        return None
    if n == 2:
        return base, None
    if n == 3:
        return base + "/{task_id}", parts[2]
    if n == 4:
        template = _SUFFIXES.get((parts[0], parts[3]))
        if template is not None:
            return template, parts[2]
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
    if not spec.startswith(PREFIX + "/"):
        spec = PREFIX + spec
    if len(spec) > 1 and spec.endswith("/") and "{" in spec:
        spec = spec.rstrip("/")
    if "{" in spec and spec not in TEMPLATES:
        raise ValueError(f"unknown route template {route!r}; known: {sorted(TEMPLATES)}")
    return method, spec
