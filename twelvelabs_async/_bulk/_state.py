"""A bulk job's durable state: one SQLite file (WAL) mapping each ``custom_id`` to its task.

Every call runs in one worker thread at a time (``sqlite3`` blocks), never on the event loop.
Writes are queued and committed in batches by :meth:`JobState.run_writer`; a caller that
must not go on before its write is on disk (an intent, before its create is sent) awaits it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio

if TYPE_CHECKING:  # sqlite3 is imported when a job opens its state, not with the package
    import sqlite3

__all__ = ["CREATED", "SENDING", "SETTLED", "JobState", "Row", "StateInUseError"]

SENDING: Final = "sending"
"""The intent is on disk; the create may or may not have reached the API."""
CREATED: Final = "created"
"""The API answered with a task id."""
SETTLED: Final = "settled"
"""The item has its final result (and was handed over)."""

_LOOKUP_CHUNK = 500  # below SQLite's default limit of host parameters per statement

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    custom_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    intent_at REAL,
    params TEXT,
    task_id TEXT,
    status TEXT,
    error TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_task ON items (kind, task_id);
CREATE TABLE IF NOT EXISTS uploads (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    upload_id TEXT,
    asset_id TEXT,
    status TEXT
) WITHOUT ROWID;
"""

T = TypeVar("T")


class StateInUseError(RuntimeError):
    """Another run (this process or another) has the job's state file open."""


@dataclass(frozen=True, slots=True)
class Row:
    """One item's stored state."""

    custom_id: str
    kind: str
    state: str
    intent_at: float | None
    params: str | None
    """The create's parameters as JSON, kept until a task id is known (to re-send or match)."""
    task_id: str | None
    status: str | None
    error: str | None


_COLUMNS = "custom_id, kind, state, intent_at, params, task_id, status, error"


class JobState:
    """The SQLite state of one bulk job (``path=None``: in memory, not resumable)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.job_id = ""
        """A random id made when the file is created; with ``custom_id`` it derives the
        ``Idempotency-Key`` of analysis creates, so a rerun re-sends the same key."""
        self._db: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._committed = anyio.Event()
        self._wake = anyio.Event()
        self._writing: anyio.Event | None = None
        self._closed = False
        self.commits = 0
        """Batches committed so far."""

    def __repr__(self) -> str:
        return f"<JobState {self.path or ':memory:'} job={self.job_id}>"

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # --- opening and closing --------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) the file and read the job id."""
        await self._call(self._open)

    def _open(self) -> None:
        import sqlite3

        path = self.path or ":memory:"
        if self.path is not None:
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=0.5)
        try:
            # One run per state file: two runs of one job would both create the same items.
            # The lock is taken by the first write below and held until the file is closed.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (only a power
            # loss may lose the last commits), at a fraction of FULL's fsyncs.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            found = db.execute("SELECT value FROM meta WHERE key = 'job_id'").fetchone()
            if found is None:
                job_id = uuid.uuid4().hex
                db.execute("INSERT INTO meta (key, value) VALUES ('job_id', ?)", (job_id,))
            else:
                job_id = found[0]
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc):
                raise StateInUseError(
                    f"the bulk job state {self.path!r} is in use by another run"
                ) from None
            raise
        except BaseException:
            db.close()
            raise
        self.job_id = str(job_id)
        self._db = db

    async def close(self) -> None:
        """Commit what is queued and close the file (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        db, self._db = self._db, None
        if db is None:
            return
        ops, self._ops = self._ops, []
        with anyio.CancelScope(shield=True):
            try:
                if ops:
                    await self._call(_apply, db, ops)
            finally:
                await self._call(db.close)
        self._committed.set()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the bulk job state is not open")
        return self._db

    # --- reads ----------------------------------------------------------------------------

    async def lookup(self, custom_ids: Sequence[str]) -> dict[str, Row]:
        """The stored rows of these items (absent ones are left out)."""
        return await self._call(self._lookup, list(custom_ids))

    def _lookup(self, custom_ids: list[str]) -> dict[str, Row]:
        found: dict[str, Row] = {}
        db = self.db
        for start in range(0, len(custom_ids), _LOOKUP_CHUNK):
            chunk = custom_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM items WHERE custom_id IN ({marks})"  # noqa: S608
            for values in db.execute(query, chunk):
                found[values[0]] = Row(*values)
        return found

    async def in_state(self, state: str) -> list[Row]:
        """Every row in ``state`` (used for the few items left ``sending`` by a crash)."""
        query = f"SELECT {_COLUMNS} FROM items WHERE state = ?"  # noqa: S608
        rows = await self._call(lambda: self.db.execute(query, (state,)).fetchall())
        return [Row(*values) for values in rows]

    async def claimed(self, kind: str, task_ids: Sequence[str]) -> set[str]:
        """Which of these task ids already belong to an item of this job."""
        ids = list(task_ids)

        def query() -> set[str]:
            owned: set[str] = set()
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT task_id FROM items WHERE kind = ? AND task_id IN ({marks})"  # noqa: S608
                owned.update(value for (value,) in self.db.execute(sql, [kind, *chunk]))
            return owned

        return await self._call(query) if ids else set()

    async def upload(
        self, path: str, size: int, mtime_ns: int
    ) -> tuple[str | None, str | None, str | None]:
        """``(upload_id, asset_id, asset status)`` recorded for this file (all ``None`` if none,
        or if the file changed since: another size or modification time)."""

        def query() -> tuple[str | None, str | None, str | None]:
            found = self.db.execute(
                "SELECT upload_id, asset_id, status FROM uploads "
                "WHERE path = ? AND size = ? AND mtime_ns = ?",
                (path, size, mtime_ns),
            ).fetchone()
            if found is None:
                return None, None, None
            return found[0], found[1], found[2]

        return await self._call(query)

    def record_upload(
        self,
        path: str,
        size: int,
        mtime_ns: int,
        *,
        upload_id: str | None,
        asset_id: str | None = None,
        status: str | None = None,
    ) -> anyio.Event:
        """Store what is known of a file's upload (queued; the event fires on commit): a rerun
        then resumes the session, or reuses the asset."""
        return self._put(
            "INSERT INTO uploads (path, size, mtime_ns, upload_id, asset_id, status) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, "
            "upload_id = excluded.upload_id, asset_id = excluded.asset_id, "
            "status = excluded.status",
            (path, size, mtime_ns, upload_id, asset_id, status),
        )

    async def counts(self) -> dict[str, int]:
        """Items by state."""
        rows = await self._call(
            lambda: self.db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall()
        )
        return {str(state): int(count) for state, count in rows}

    # --- writes (batched) -----------------------------------------------------------------

    def _put(self, sql: str, params: tuple[Any, ...]) -> anyio.Event:
        if self._closed:
            raise RuntimeError("the bulk job state is closed")
        self._ops.append((sql, params))
        self._wake.set()
        return self._committed

    async def record_intent(self, custom_id: str, kind: str, intent_at: float, params: str) -> None:
        """Store the intent to create a task for this item; returns once it is on disk."""
        await self._wait(
            self._put(
                "INSERT INTO items (custom_id, kind, state, intent_at, params) "
                "VALUES (?, ?, 'sending', ?, ?) ON CONFLICT (custom_id) DO UPDATE SET "
                "kind = excluded.kind, state = 'sending', intent_at = excluded.intent_at, "
                "params = excluded.params, task_id = NULL, status = NULL, error = NULL",
                (custom_id, kind, intent_at, params),
            )
        )

    def record_task(self, custom_id: str, task_id: str) -> anyio.Event:
        """The API answered with ``task_id`` (queued; the returned event fires on commit)."""
        return self._put(
            "UPDATE items SET state = 'created', task_id = ?, params = NULL WHERE custom_id = ?",
            (task_id, custom_id),
        )

    def record_settled(
        self,
        custom_id: str,
        kind: str,
        status: str,
        task_id: str | None,
        error: str | None,
    ) -> anyio.Event:
        """The item's final result (queued; the returned event fires on commit)."""
        return self._put(
            "INSERT INTO items (custom_id, kind, state, task_id, status, error) "
            "VALUES (?, ?, 'settled', ?, ?, ?) ON CONFLICT (custom_id) DO UPDATE SET "
            "state = 'settled', task_id = excluded.task_id, status = excluded.status, "
            "error = excluded.error",
            (custom_id, kind, task_id, status, error),
        )

    def forget(self, custom_id: str) -> anyio.Event:
        """Drop an intent whose create surely never reached the API (queued)."""
        return self._put(
            "DELETE FROM items WHERE custom_id = ? AND state = 'sending'", (custom_id,)
        )

    def reopen(self, status: str) -> anyio.Event:
        """Put settled items of ``status`` back to ``sending`` (to reconcile them again)."""
        return self._put(
            "UPDATE items SET state = 'sending', status = NULL, error = NULL "
            "WHERE state = 'settled' AND status = ? AND params IS NOT NULL",
            (status,),
        )

    async def flush(self) -> None:
        """Return once everything queued so far is committed."""
        writing = self._writing
        if self._ops:
            await self._wait(self._committed)
        elif writing is not None:
            await self._wait(writing)

    async def _wait(self, committed: anyio.Event) -> None:
        await committed.wait()

    async def run_writer(self) -> None:
        """Commit queued writes in batches until cancelled (run it in a task group)."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            ops, self._ops = self._ops, []
            committed, self._committed = self._committed, anyio.Event()
            if ops:
                self._writing = committed
                # Shielded: a cancelled job still commits what it had already queued.
                with anyio.CancelScope(shield=True):
                    await self._call(_apply, self.db, ops)
                self.commits += 1
                self._writing = None
            committed.set()


def _apply(db: sqlite3.Connection, ops: list[tuple[str, tuple[Any, ...]]]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in ops:
            db.execute(sql, params)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
