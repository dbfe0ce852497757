"""SQLite backend (aiosqlite), the default. One connection, WAL, migrations on open."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from monitor.errors import ConfigError
from monitor.storage.base import OWNER_KEY, OutboxRow, describe_owner, owner_record
from monitor.storage.migrations import MIGRATIONS, too_new

log = logging.getLogger("monitor.storage.sqlite")

_DIALECT = {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
#: Tables checked at open only by their ends: dead letters are kept without bound unless
#: `storage.dead_letter_keep` is set, and nothing reads them at start. A full quick_check of a
#: 93 MB store took 1.6-2.7 s with a cold page cache (0.3 s warm); the rest, 50-90 ms.
_SKIMMED = frozenset({"dead_letters"})


def _take_lock(path: str) -> int:
    """Hold ``<db>.lock`` (an exclusive, non-blocking flock) for the store's life; its fd.

    A second crisiswatch on the file paged twice and overwrote the first's state (QA). The
    OS drops the lock when the process dies, so kill -9 leaves none behind; the file is never
    deleted (a starter could lock a deleted file while the next one locks a new one).
    """
    lock = f"{path}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(
            "storage.url", f"cannot create the lock file {lock}: {exc.strerror}", path
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 256, 0) if isinstance(exc, BlockingIOError) else None
        os.close(fd)
        if holder is None:  # e.g. ENOLCK: a file system without locks
            raise ConfigError("storage.url", f"cannot lock {lock}: {exc.strerror}", path) from None
        raise ConfigError(
            "storage.url",
            f"another crisiswatch{describe_owner(holder)} is running on this store;"
            " two would page twice and overwrite each other's state",
            path,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, owner_record(), 0)
    return fd


async def _check_intact(db: aiosqlite.Connection) -> str | None:
    """What is damaged inside the file, or None: a damaged page failed the first read at
    start with a 42-line traceback (QA). Every table is quick-checked except the `_SKIMMED`
    ones, of which the first and last rows are read."""
    async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
        tables = [r[0] for r in await cur.fetchall()]
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        if table in _SKIMMED:
            for order in ("ASC", "DESC"):
                async with db.execute(
                    f"SELECT * FROM {quoted} ORDER BY rowid {order} LIMIT 1"
                ) as cur:
                    await cur.fetchall()
            continue
        async with db.execute(f"PRAGMA quick_check({quoted})") as cur:
            problems = [r[0] for r in await cur.fetchall()]
        if problems != ["ok"]:
            # SQLite's report starts "*** in database main ***" and spans lines: one line here
            first = " ".join(problems[0].replace("*** in database main ***", "").split())
            more = f" (+{len(problems) - 1} more)" if problems[1:] else ""
            return f"{table}: {first}{more}"
    return None


def _outbox_row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7], r[8])


async def _use_wal(db: aiosqlite.Connection, wait_seconds: float = 5.0) -> None:
    """Switch the file to write-ahead logging, waiting for other starters as a lock would.

    While another connection is switching a fresh file to WAL, SQLite answers "database is
    locked" at once instead of calling its busy handler (seen with 8 services starting on one
    new file: about one start in eight failed), so the wait is done here.
    """
    for _ in range(max(1, round(wait_seconds / 0.05))):
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            await asyncio.sleep(0.05)
    await db.execute("PRAGMA journal_mode=WAL")  # the last try: its error is the answer


def _say_migrated(before: int, where: str) -> None:
    """One INFO line when migrations ran (an upgrade's start said nothing: QA), none when the
    store was current."""
    newest = MIGRATIONS[-1][0]
    if before == 0:
        log.info("storage: new store at schema %d (%s)", newest, where)
    elif before < newest:
        log.info("storage: schema %d -> %d (%s)", before, newest, where)


def _release(lock_fd: int | None) -> None:
    """Give up the store's lock (closing the fd drops the flock)."""
    if lock_fd is not None:
        os.close(lock_fd)


class SqliteStore:
    """Every statement runs in a transaction of its own, one at a time.

    One connection serves every coroutine (outbox, escalation, checkpoints, dead letters), and
    SQLite's transactions belong to the connection, not to the coroutine: a write awaiting its
    commit shared the open transaction with the next coroutine's statement, so one commit
    failing (a full disk) rolled back another's write whose own commit then "succeeded" on
    nothing, and a read could see a row a failed commit took back. A delivered page whose
    outcome was lost that way was sent again and again (QA, twelfth session: 112 copies in a
    minute). The lock makes each statement and its commit one step.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        url: str = "sqlite:///:memory:",
        lock_fd: int | None = None,
    ) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self.where = url
        self._lock_fd = lock_fd  # the flock on `<db>.lock`; None in memory or unlocked
        self.taken = asyncio.Event()  # never set: a flock lasts as long as the process

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One step under the lock: what runs inside commits as one transaction, or, on any
        failure, none of it stays."""
        async with self._lock:
            try:
                yield
                await self._db.commit()
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self._db.rollback()
                raise

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write and commit it (`_transaction`). Returns the row count."""
        async with self._transaction():
            cur = await self._db.execute(sql, params)
        return int(cur.rowcount)

    async def _write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for every row, committed as one transaction."""
        async with self._transaction():
            await self._db.executemany(sql, rows)

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock, self._db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    @classmethod
    async def open(cls, path: str | Path, *, exclusive: bool = True) -> SqliteStore:
        """Open (creating if needed), lock, check and migrate; a file that cannot serve as the
        store is a `ConfigError` naming it, and nothing is left open (aiosqlite's thread would
        keep the process from exiting).

        ``exclusive=False`` takes no lock (tests of concurrent starters only); an in-memory
        store needs none.
        """
        name = str(path)
        in_memory = name == ":memory:"
        lock_fd: int | None = None
        try:
            if not in_memory:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                if exclusive:
                    lock_fd = _take_lock(name)
            db = await aiosqlite.connect(name)
        except (OSError, sqlite3.Error) as exc:
            _release(lock_fd)
            raise ConfigError("storage.url", f"cannot open SQLite database: {exc}", name) from None
        except BaseException:
            _release(lock_fd)
            raise
        try:
            await _use_wal(db)
            await db.execute("PRAGMA synchronous=NORMAL")
            if (damage := await _check_intact(db)) is not None:
                raise ConfigError(
                    "storage.url",
                    f"the SQLite database is damaged ({damage}); restore it from a backup or"
                    " move it aside",
                    name,
                )
            where = name if in_memory else str(Path(name).resolve())
            store = cls(db, url=f"sqlite:///{where}", lock_fd=lock_fd)
            await store._migrate()
            try:
                # a read-only file (chmod, chattr +i, a read-only mount) opens and reads fine:
                # only a committed write shows that every page would fail to be recorded
                await store.put(OWNER_KEY, owner_record())
            except sqlite3.Error as exc:
                raise ConfigError(
                    "storage.url", f"cannot write the SQLite database: {exc}", name
                ) from None
        except BaseException as exc:
            await db.close()
            _release(lock_fd)
            if isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc):
                raise ConfigError(
                    "storage.url",
                    f"the SQLite database is damaged ({exc}); restore it from a backup or"
                    " move it aside",
                    name,
                ) from None
            if isinstance(exc, sqlite3.Error):
                raise ConfigError(
                    "storage.url", f"cannot open SQLite database: {exc}", name
                ) from None
            raise
        return store

    async def _migrate(self) -> None:
        # One write transaction: a crash half-way leaves no table behind, and a second
        # process starting on the same file waits here, then sees the version it wrote.
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            await self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            async with self._db.execute("SELECT MAX(version) FROM schema_version") as cur:
                row = await cur.fetchone()
            current = (row[0] if row else None) or 0
            if (why := too_new(current, MIGRATIONS)) is not None:
                raise ConfigError("storage.url", why)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for sql in statements:
                    await self._db.execute(sql.format(**_DIALECT))
                await self._db.execute("INSERT INTO schema_version VALUES (?)", (version,))
        except BaseException:
            await self._db.rollback()
            raise
        await self._db.commit()
        _say_migrated(current, self.where)

    async def schema_version(self) -> int:
        rows = await self._rows("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def close(self) -> None:
        async with self._lock:  # after a write in flight, not through it
            await self._db.close()
            _release(self._lock_fd)  # after the last write: the next starter may begin now
            self._lock_fd = None

    async def get(self, key: str) -> bytes | None:
        rows = await self._rows("SELECT value FROM kv WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None

    async def put(self, key: str, value: bytes) -> None:
        await self._write(
            "INSERT INTO kv (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def put_many(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        rows = ", ".join("(?, ?)" for _ in items)
        await self._write(
            f"INSERT INTO kv (key, value) VALUES {rows}"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [x for kv in items.items() for x in kv],
        )

    async def upsert_incident(self, incident: dict[str, Any]) -> None:
        await self._write(
            "INSERT INTO incidents (id, key, state, severity, opened_at, updated_at, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " state = excluded.state, severity = excluded.severity,"
            " updated_at = excluded.updated_at, doc = excluded.doc",
            (
                incident["id"],
                incident["key"],
                incident["state"],
                incident.get("severity"),
                incident["opened_at"],
                incident["updated_at"],
                json.dumps(incident),
            ),
        )

    async def list_incidents(
        self, *, open_only: bool = False, limit: int = 200
    ) -> list[dict[str, Any]]:
        where = "WHERE state != 'resolved'" if open_only else ""
        sql = f"SELECT doc FROM incidents {where} ORDER BY updated_at DESC LIMIT ?"
        return [json.loads(r[0]) for r in await self._rows(sql, (limit,))]

    async def outbox_enqueue(self, row: OutboxRow) -> None:
        await self._write(
            "INSERT INTO outbox (id, receiver, payload, created_at, due_at, expires_at,"
            " attempts, state, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO NOTHING",
            (
                row.id,
                row.receiver,
                json.dumps(row.payload),
                row.created_at,
                row.due_at,
                row.expires_at,
                row.attempts,
                row.state,
                row.last_error,
            ),
        )

    async def outbox_due(self, now: float, limit: int = 100) -> list[OutboxRow]:
        sql = (
            "SELECT id, receiver, payload, created_at, due_at, expires_at, attempts, state,"
            " last_error FROM outbox WHERE state = 'pending' AND due_at <= ?"
            " ORDER BY due_at LIMIT ?"
        )
        return [_outbox_row(r) for r in await self._rows(sql, (now, limit))]

    async def outbox_oldest(self, per_receiver: int) -> list[OutboxRow]:
        # rows are numbered on the narrow columns, payloads joined for the chosen ones only:
        # a deep backlog is not sorted payload and all
        sql = (
            "SELECT o.id, o.receiver, o.payload, o.created_at, o.due_at, o.expires_at,"
            " o.attempts, o.state, o.last_error FROM (SELECT id, ROW_NUMBER() OVER"
            " (PARTITION BY receiver ORDER BY created_at, id) AS n FROM outbox"
            " WHERE state = 'pending') AS p JOIN outbox AS o ON o.id = p.id"
            " WHERE p.n <= ? ORDER BY o.created_at, o.id"
        )
        return [_outbox_row(r) for r in await self._rows(sql, (per_receiver,))]

    async def outbox_pending_count(self) -> int:
        rows = await self._rows("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
        return int(rows[0][0]) if rows else 0

    async def outbox_update(
        self, id: str, *, state: str, attempts: int, due_at: float, last_error: str | None
    ) -> None:
        await self._write(
            "UPDATE outbox SET state = ?, attempts = ?, due_at = ?, last_error = ? WHERE id = ?",
            (state, attempts, due_at, last_error, id),
        )

    async def outbox_stats(self, now: float) -> dict[str, Any]:
        sql = "SELECT state, COUNT(*), MIN(created_at) FROM outbox GROUP BY state"
        rows = await self._rows(sql)
        by_state = {r[0]: int(r[1]) for r in rows}
        oldest = next((r[2] for r in rows if r[0] == "pending"), None)
        return {
            "pending": by_state.get("pending", 0),
            "delivered": by_state.get("delivered", 0),
            "expired": by_state.get("expired", 0),
            "oldest_pending_age": None if oldest is None else max(0.0, now - oldest),
        }

    async def outbox_prune(self, before: float) -> int:
        return await self._write(
            "DELETE FROM outbox WHERE state != 'pending' AND created_at < ?", (before,)
        )

    async def add_dead_letter(
        self, source: str, reason: str, detail: str, payload: bytes, received_at: float
    ) -> None:
        await self.add_dead_letters([(source, reason, detail, payload, received_at)])

    async def add_dead_letters(self, rows: Sequence[tuple[str, str, str, bytes, float]]) -> None:
        if not rows:
            return
        await self._write_many(
            "INSERT INTO dead_letters (source, reason, detail, payload, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    async def count_dead_letters(self) -> dict[tuple[str, str], int]:
        sql = "SELECT source, reason, COUNT(*) FROM dead_letters GROUP BY source, reason"
        return {(r[0], r[1]): int(r[2]) for r in await self._rows(sql)}

    async def prune_dead_letters(self, keep: int) -> int:
        return await self._write(
            "DELETE FROM dead_letters WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER()"
            " OVER (PARTITION BY source, reason ORDER BY id DESC) AS n FROM dead_letters)"
            " AS ranked WHERE n > ?)",
            (keep,),
        )
