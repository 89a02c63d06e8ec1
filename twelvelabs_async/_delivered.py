"""``DeliveredIds``: the ids a poller already delivered, kept in ~12 bytes each.

A long-running poller must remember delivered ids (adding one again is a no-op), but keeping
a string, let alone a task object, per id grows without bound. ObjectId-like ids (24 hex
digits, what the API issues) are packed into two integers and kept in sorted ``array`` blocks
(12 bytes per id); a small set takes the newest ids and any id of another shape.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

__all__ = ["DeliveredIds"]

_BATCH = 4096
_HEX = frozenset("0123456789abcdefABCDEF")


def _pack(task_id: str) -> tuple[int, int] | None:
    if len(task_id) != 24 or not _HEX.issuperset(task_id):
        return None
    return int(task_id[:16], 16), int(task_id[16:], 16)


class DeliveredIds:
    """A set of delivered ids of one kind (``add``, ``in``, ``len``, ``clear``)."""

    __slots__ = ("_count", "_hi", "_lo", "_other", "_recent")

    def __init__(self) -> None:
        self._recent: set[str] = set()
        self._other: set[str] = set()
        self._hi: list[array[int]] = []
        self._lo: list[array[int]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, task_id: object) -> bool:
        if not isinstance(task_id, str):
            return False
        if task_id in self._recent or task_id in self._other:
            return True
        packed = _pack(task_id)
        if packed is None:
            return False
        hi, lo = packed
        for his, los in zip(self._hi, self._lo, strict=True):
            start = bisect_left(his, hi)
            end = bisect_right(his, hi, start)
            if any(los[i] == lo for i in range(start, end)):
                return True
        return False

    def add(self, task_id: str) -> None:
        """Remember ``task_id`` (the caller checks it is not already in)."""
        self._count += 1
        if _pack(task_id) is None:
            self._other.add(task_id)
            return
        self._recent.add(task_id)
        if len(self._recent) >= _BATCH:
            self._seal()

    def clear(self) -> None:
        """Forget every id."""
        self.__init__()  # type: ignore[misc]

    def _seal(self) -> None:
        """Move the recent ids into a sorted block; merge blocks of similar size (so there
        are O(log n) blocks and each id is copied O(log n) times)."""
        pairs = sorted(p for p in map(_pack, self._recent) if p is not None)
        self._recent = set()
        while self._hi and len(self._hi[-1]) <= 2 * len(pairs):
            his, los = self._hi.pop(), self._lo.pop()
            pairs = sorted([*pairs, *zip(his, los, strict=True)])
        self._hi.append(array("Q", [p[0] for p in pairs]))
        self._lo.append(array("I", [p[1] for p in pairs]))
