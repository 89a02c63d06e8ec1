"""``client.embed``: the embedding namespaces (``.v2.tasks``, ``.v1.tasks``) and SDK aliases."""

from __future__ import annotations

from .._transport import Transport
from .embed_v1 import EmbedV1Tasks
from .embed_v2 import EmbedV2Tasks

__all__ = ["Embed", "EmbedV1", "EmbedV2"]


class EmbedV2:
    """``client.embed.v2`` (alias ``client.embed.v_2``)."""

    def __init__(self, transport: Transport) -> None:
        self.tasks = EmbedV2Tasks(transport)

    def __repr__(self) -> str:
        return "<EmbedV2 tasks>"


class EmbedV1:
    """``client.embed.v1``: the older video embedding API."""

    def __init__(self, transport: Transport) -> None:
        self.tasks = EmbedV1Tasks(transport)

    def __repr__(self) -> str:
        return "<EmbedV1 tasks>"


class Embed:
    """``client.embed``. ``embed.v_2`` is ``embed.v2`` and ``embed.tasks`` is
    ``embed.v1.tasks``, as in the official SDK."""

    def __init__(self, transport: Transport) -> None:
        self.v2 = EmbedV2(transport)
        self.v1 = EmbedV1(transport)
        self.v_2 = self.v2
        self.tasks = self.v1.tasks

    def __repr__(self) -> str:
        return "<Embed v2 v1>"
