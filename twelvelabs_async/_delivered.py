"""``DeliveredIds``: the ids a poller already delivered, kept in ~12 bytes each.

A long-running poller must remember delivered ids (adding one again is a no-op), but keeping
a string, let alone a task object, per id grows without bound. ObjectId-like ids (24 hex
digits, what the API issues) are packed into two integers and kept in sorted ``array`` blocks
(12 bytes per id, ordered by their most varying part); a set takes the newest ids (at most an
eighth of them) and any id of another shape.
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
    # Same order as the blocks are sorted in (see DeliveredIds._seal).
    # The low 16 digits (an ObjectId's random part and counter) vary the most: sorting on
    # them first keeps the runs of equal keys that a lookup scans to one id.
    return int(task_id[8:], 16), int(task_id[:8], 16)


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
        if len(task_id) != 24 or not _HEX.issuperset(task_id):
            self._other.add(task_id)
            return
        self._recent.add(task_id)
        # Sealing at an eighth of the total keeps the block count logarithmic (each id is
        # sorted once, never merged again) and the unsealed strings under ~15 bytes per id.
        if len(self._recent) >= max(_BATCH, self._count // 8):
            self._seal()

    def clear(self) -> None:
        """Forget every id."""
        self.__init__()  # type: ignore[misc]

    def _seal(self) -> None:
        """Move the recent ids into a new sorted block."""
        keys = sorted([int(t[8:] + t[:8], 16) for t in self._recent])
        self._recent = set()
        self._hi.append(array("Q", [k >> 32 for k in keys]))
        self._lo.append(array("I", [k & 0xFFFFFFFF for k in keys]))
