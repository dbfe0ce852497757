"""PostgreSQL backend (asyncpg), selected by a ``postgresql://`` URL. Same migrations as SQLite.

``postgresql://user@host:5432/db?schema=name`` keeps every table in schema `name` (created if
missing), which lets tests and several deployments share one database.

Every statement is retried while the connection is lost (a server restart, a failover, an
administrator killing our backend), with backoff for up to ``retry_seconds``: the pipeline
waits through a database blip instead of dying in the middle of a page. Statements are
idempotent upserts, except the dead-letter insert, which a retry after a lost commit
acknowledgement may store twice (a batch of them: the whole batch).

>>> split_schema("postgresql://postgres@127.0.0.1/test?schema=cw_1&sslmode=disable")
('postgresql://postgres@127.0.0.1/test?sslmode=disable', 'cw_1')
>>> split_schema("postgresql://h/db")
('postgresql://h/db', None)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from monitor.errors import ConfigError
from monitor.storage.base import (
    OWNER_KEY,
    OutboxRow,
    StoreTakenOver,
    describe_owner,
    owner_record,
)
from monitor.storage.migrations import MIGRATIONS, too_new

log = logging.getLogger("monitor.storage.postgres")

_DIALECT = {"blob": "BYTEA", "serial": "BIGSERIAL PRIMARY KEY"}
# What a lost connection raises, and only that: SQL and usage errors are raised at once.
_LOST: tuple[type[BaseException], ...] = (
    OSError,  # refused or reset while the server is down
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.CannotConnectNowError,  # 57P03: the server is starting up
    asyncpg.AdminShutdownError,  # 57P01: shut down, or our backend terminated
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.ConnectionDoesNotExistError,  # the connection closed under the statement
    asyncpg.InternalClientError,  # the protocol state a killed backend leaves (seen here)
)
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Serialises migrations of concurrent starters (any constant; "cw" in ASCII).
_MIGRATION_LOCK = 0x6377
#: Class of the session lock one running instance holds on its store (two-key form: its own
#: key space, apart from the migration lock); the second key is the CRC of the schema.
_OWNER_LOCK = 0x6377


def where(dsn: str) -> str:
    """The server and database a DSN names, without user or password (for errors and logs).

    >>> where("postgresql://cw:s3cret@db.example.org:5433/crisiswatch?sslmode=require")
    'db.example.org:5433/crisiswatch'
    >>> where("postgresql:///test")
    'localhost:5432/test'
    >>> where("postgresql://cw:p@ss/w0rd@db:5432/x"), where("postgresql://h1:5432,h2:5433/x")
    ('the configured server', 'the configured server')
    """
    try:
        parts = urlsplit(dsn)
        host, port, path = parts.hostname, parts.port, parts.path
    except ValueError:  # several hosts, a password with '#' or '?': asyncpg reads more than this
        return "the configured server"
    if "@" in path or ("?" in dsn and "host=" in dsn):
        # a password with an unencoded '/' spills into the path; a socket via ?host= is no
        # localhost: say nothing rather than something wrong or secret
        return "the configured server"
    return f"{host or 'localhost'}:{port or 5432}{path or '/'}"


def _reason(exc: BaseException) -> str:
    """An asyncpg or socket error in one line: its type and what the server or OS said (a
    server message names the role or the database, never the password)."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def split_schema(url: str) -> tuple[str, str | None]:
    """Take our own ``schema`` query parameter out of the DSN asyncpg will see."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        r["id"],
        r["receiver"],
        json.loads(r["payload"]),
        r["created_at"],
        r["due_at"],
        r["expires_at"],
        r["attempts"],
        r["state"],
        r["last_error"],
    )


def _owner_key(schema: str) -> int:
    """The owner lock's second key for a schema: a signed 32-bit CRC (stable everywhere).

    >>> _owner_key("public"), _owner_key("cw_1") != _owner_key("cw_2")
    (1001664029, True)
    """
    crc = zlib.crc32(schema.encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class _Retrying:
    """The pool's one-statement calls, retried with backoff while the connection is lost.

    ``guard`` runs before every try: the store's check that it still holds its lock."""

    def __init__(
        self, pool: Any, retry_seconds: float, guard: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.pool, self.retry_seconds, self.guard = pool, retry_seconds, guard

    async def _call(self, name: str, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_seconds
        delay = 0.1
        while True:
            try:
                if self.guard is not None:
                    await self.guard()
                return await getattr(self.pool, name)(*args)
            except _LOST as exc:
                if loop.time() + delay > deadline:
                    raise
                log.warning(
                    "PostgreSQL connection lost (%s: %s); retrying in %.1f s",
                    type(exc).__name__, str(exc)[:200], delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(2.0 * delay, 5.0)

    async def execute(self, *args: Any) -> Any:
        return await self._call("execute", *args)

    async def fetch(self, *args: Any) -> Any:
        return await self._call("fetch", *args)

    async def fetchval(self, *args: Any) -> Any:
        return await self._call("fetchval", *args)

    async def executemany(self, *args: Any) -> Any:
        # asyncpg runs the whole of it in one transaction (atomic since 0.22)
        return await self._call("executemany", *args)


class PostgresStore:
    """One running instance per store: it holds a session advisory lock (`_OWNER_LOCK`, the
    schema's key) on a connection of its own, the pool's connections coming and going.

    That connection dropping (a restart, a failover, a terminated backend) loses the lock.
    Before every statement the store checks the connection (a local flag, no round trip);
    once it is closed, the next statement reconnects and takes the lock again, waiting for the
    server as statements do. If another instance took it meanwhile, this store is fenced:
    that statement and every one after raise `StoreTakenOver`, logged once as an error, so the
    two never write (or send what they read) at once. What this cannot see is a connection
    that is dead without the client knowing (a silent network partition) until TCP says so.
    """

    def __init__(
        self,
        pool: Any,
        schema: str | None,
        *,
        retry_seconds: float = 30.0,
        dsn: str = "",
        settings: dict[str, str] | None = None,
    ) -> None:
        self._raw = pool
        self._pool = _Retrying(pool, retry_seconds, self._hold)
        self.schema = schema
        self._dsn, self._settings = dsn, settings
        self._owner: Any = None  # the connection holding the lock; None: not exclusive
        self._owner_key = 0
        self._retaking = asyncio.Lock()
        self._taken: StoreTakenOver | None = None
        self.taken = asyncio.Event()  # set once fenced: the service must stop
        self.where = f"postgresql://{where(dsn)}" + (f"?schema={schema}" if schema else "")

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        retry_seconds: float = 30.0,
        exclusive: bool = True,
    ) -> PostgresStore:
        """Connect (waiting up to ``retry_seconds`` for the server), take the store's lock,
        migrate and write the owner record. ``exclusive=False`` takes no lock (tests of
        concurrent starters only)."""
        dsn, schema = split_schema(url)
        if schema is not None and not _SCHEMA.match(schema):
            raise ConfigError("storage.url", "schema must match [a-z_][a-z0-9_]*", schema)
        settings = {"search_path": schema} if schema else None
        # a database that is not up yet (started together with the service, restarting) is
        # waited for, as a lost connection is later: it failed the start at once (QA)
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + retry_seconds, 0.5
        while True:
            try:
                pool = await cls._connect(dsn, schema, settings, min_size, max_size)
                break
            except _LOST as exc:
                if loop.time() + delay > deadline:
                    raise ConfigError(
                        "storage.url",
                        f"cannot open PostgreSQL at {where(dsn)} (tried for "
                        f"{retry_seconds:g} s): {_reason(exc)}",
                    ) from None
                log.warning(
                    "PostgreSQL at %s not reachable yet (%s); retrying in %.1f s",
                    where(dsn), _reason(exc), delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(2.0 * delay, 5.0)
        store = cls(pool, schema, retry_seconds=retry_seconds, dsn=dsn, settings=settings)
        try:
            if exclusive:
                await store._lock_at_open()
            await store._migrate()
            try:
                # the proof that the database takes writes (a read-only standby does not)
                await store.put(OWNER_KEY, owner_record())
            except asyncpg.PostgresError as exc:
                raise ConfigError(
                    "storage.url", f"cannot write PostgreSQL at {where(dsn)}: {_reason(exc)}"
                ) from None
        except BaseException:
            await store.close()
            raise
        return store

    async def _take_lock(self) -> Any:
        """A new connection holding the owner lock, or None (and no connection) if another
        session holds it. Connection losses are raised (the callers wait for the server)."""
        conn = await asyncpg.connect(self._dsn, server_settings=self._settings)
        try:
            # the schema as the server resolves it: no ?schema= and ?schema=public are one store
            schema = await conn.fetchval("SELECT coalesce(current_schema(), '')")
            self._owner_key = _owner_key(schema)
            if await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", _OWNER_LOCK, self._owner_key
            ):
                return conn
        except BaseException:
            await conn.close()
            raise
        await conn.close()
        return None

    async def _holder(self) -> str:
        """`describe_owner` of the owner record the holder wrote ("" if none yet)."""
        try:
            raw = await self._raw.fetchval("SELECT value FROM kv WHERE key = $1", OWNER_KEY)
        except asyncpg.PostgresError:  # no kv table yet: the holder is still migrating
            return ""
        return describe_owner(None if raw is None else bytes(raw))

    async def _lock_at_open(self) -> None:
        try:
            self._owner = await self._take_lock()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(
                "storage.url", f"cannot lock PostgreSQL at {where(self._dsn)}: {_reason(exc)}"
            ) from None
        if self._owner is None:
            raise ConfigError(
                "storage.url",
                f"another crisiswatch{await self._holder()} is running on the store at "
                f"{self.where.removeprefix('postgresql://')}; two would page twice and"
                " overwrite each other's state",
            )

    async def _hold(self) -> None:
        """Raise `StoreTakenOver` once another instance holds the lock; take it again first
        if its connection was lost (connection errors go to the caller's retry)."""
        if self._taken is not None:
            raise self._taken
        if self._owner is None or not self._owner.is_closed():
            return
        async with self._retaking:  # one reconnect for every statement waiting on it
            if self._taken is not None:
                raise self._taken
            if not self._owner.is_closed():
                return
            conn = await self._take_lock()
            if conn is None:
                self._taken = StoreTakenOver(
                    f"storage: another crisiswatch{await self._holder()} took the store at "
                    f"{self.where} while this one's lock connection was lost; this one no "
                    "longer reads or writes it: stop it"
                )
                log.error("%s", self._taken)
                self.taken.set()
                raise self._taken
            self._owner = conn
            log.warning("storage: lock connection was lost; lock taken again (%s)", self.where)

    @staticmethod
    async def _connect(
        dsn: str, schema: str | None, settings: dict[str, str] | None, min_size: int, max_size: int
    ) -> Any:
        try:
            if schema:  # the pool's search_path needs the schema to exist first
                conn = await asyncpg.connect(dsn)
                try:
                    # under the migration lock: two starters racing on IF NOT EXISTS would
                    # otherwise fail one of them with a unique violation
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                finally:
                    await conn.close()
            return await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, server_settings=settings
            )
        except _LOST:
            raise  # waited for by open()
        except asyncpg.PostgresError as exc:
            # The DSN may hold a password: name the server and the failure, never the URL.
            raise ConfigError(
                "storage.url", f"cannot open PostgreSQL at {where(dsn)}: {_reason(exc)}"
            ) from None

    async def _migrate(self) -> None:
        async with self._raw.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            current = await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0
            if (why := too_new(current, MIGRATIONS)) is not None:
                raise ConfigError("storage.url", why)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for sql in statements:
                    await conn.execute(sql.format(**_DIALECT))
                await conn.execute("INSERT INTO schema_version VALUES ($1)", version)
        # one line when migrations ran (an upgrade's start said nothing: QA), none if current
        if current == 0:
            log.info("storage: new store at schema %d (%s)", MIGRATIONS[-1][0], self.where)
        elif current < MIGRATIONS[-1][0]:
            log.info("storage: schema %d -> %d (%s)", current, MIGRATIONS[-1][0], self.where)

    async def schema_version(self) -> int:
        v = await self._pool.fetchval("SELECT MAX(version) FROM schema_version")
        return int(v or 0)

    async def close(self) -> None:
        await self._raw.close()
        if self._owner is not None:  # after the pool: the next starter may begin now
            await self._owner.close()
            self._owner = None

    async def drop_schema(self) -> None:
        """Remove this store's schema and everything in it (tests)."""
        if self.schema:
            await self._pool.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    async def get(self, key: str) -> bytes | None:
        v = await self._pool.fetchval("SELECT value FROM kv WHERE key = $1", key)
        return None if v is None else bytes(v)

    async def put(self, key: str, value: bytes) -> None:
        await self._pool.execute(
            "INSERT INTO kv (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value,
        )

    async def put_many(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        await self._pool.execute(
            "INSERT INTO kv (key, value) SELECT * FROM unnest($1::text[], $2::bytea[])"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(items),
            list(items.values()),
        )

    async def upsert_incident(self, incident: dict[str, Any]) -> None:
        await self._pool.execute(
            "INSERT INTO incidents (id, key, state, severity, opened_at, updated_at, doc)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET"
            " state = excluded.state, severity = excluded.severity,"
            " updated_at = excluded.updated_at, doc = excluded.doc",
            incident["id"],
            incident["key"],
            incident["state"],
            incident.get("severity"),
            float(incident["opened_at"]),
            float(incident["updated_at"]),
            json.dumps(incident),
        )

    async def list_incidents(
        self, *, open_only: bool = False, limit: int = 200
    ) -> list[dict[str, Any]]:
        where = "WHERE state != 'resolved'" if open_only else ""
        rows = await self._pool.fetch(
            f"SELECT doc FROM incidents {where} ORDER BY updated_at DESC LIMIT $1", limit
        )
        return [json.loads(r["doc"]) for r in rows]

    async def outbox_enqueue(self, row: OutboxRow) -> None:
        await self._pool.execute(
            "INSERT INTO outbox (id, receiver, payload, created_at, due_at, expires_at,"
            " attempts, state, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (id) DO NOTHING",
            row.id,
            row.receiver,
            json.dumps(row.payload),
            float(row.created_at),
            float(row.due_at),
            float(row.expires_at),
            row.attempts,
            row.state,
            row.last_error,
        )

    async def outbox_due(self, now: float, limit: int = 100) -> list[OutboxRow]:
        rows = await self._pool.fetch(
            "SELECT id, receiver, payload, created_at, due_at, expires_at, attempts, state,"
            " last_error FROM outbox WHERE state = 'pending' AND due_at <= $1"
            " ORDER BY due_at LIMIT $2",
            float(now),
            limit,
        )
        return [_row(r) for r in rows]

    async def outbox_oldest(self, per_receiver: int) -> list[OutboxRow]:
        # ids compared bytewise (COLLATE "C"), as SQLite and Python compare them: the
        # database's locale collation could put a group's head outside the window. Rows are
        # numbered on the narrow columns; payloads are joined for the chosen ones only.
        rows = await self._pool.fetch(
            "SELECT o.id, o.receiver, o.payload, o.created_at, o.due_at, o.expires_at,"
            " o.attempts, o.state, o.last_error FROM (SELECT id, ROW_NUMBER() OVER"
            ' (PARTITION BY receiver ORDER BY created_at, id COLLATE "C") AS n FROM outbox'
            " WHERE state = 'pending') AS p JOIN outbox AS o ON o.id = p.id"
            ' WHERE p.n <= $1 ORDER BY o.created_at, o.id COLLATE "C"',
            per_receiver,
        )
        return [_row(r) for r in rows]

    async def outbox_pending_count(self) -> int:
        n = await self._pool.fetchval("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
        return int(n or 0)

    async def outbox_update(
        self, id: str, *, state: str, attempts: int, due_at: float, last_error: str | None
    ) -> None:
        await self._pool.execute(
            "UPDATE outbox SET state = $1, attempts = $2, due_at = $3, last_error = $4"
            " WHERE id = $5",
            state,
            attempts,
            float(due_at),
            last_error,
            id,
        )

    async def outbox_stats(self, now: float) -> dict[str, Any]:
        rows = await self._pool.fetch(
            "SELECT state, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY state"
        )
        by_state = {r["state"]: int(r["n"]) for r in rows}
        oldest = next((r["oldest"] for r in rows if r["state"] == "pending"), None)
        return {
            "pending": by_state.get("pending", 0),
            "delivered": by_state.get("delivered", 0),
            "expired": by_state.get("expired", 0),
            "oldest_pending_age": None if oldest is None else max(0.0, now - oldest),
        }

    async def outbox_prune(self, before: float) -> int:
        status = await self._pool.execute(
            "DELETE FROM outbox WHERE state != 'pending' AND created_at < $1", float(before)
        )
        return int(status.rsplit(" ", 1)[-1])  # asyncpg returns the command tag "DELETE n"

    async def add_dead_letter(
        self, source: str, reason: str, detail: str, payload: bytes, received_at: float
    ) -> None:
        await self.add_dead_letters([(source, reason, detail, payload, received_at)])

    async def add_dead_letters(self, rows: Sequence[tuple[str, str, str, bytes, float]]) -> None:
        if not rows:
            return
        await self._pool.executemany(
            "INSERT INTO dead_letters (source, reason, detail, payload, received_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(s, r, d, p, float(at)) for s, r, d, p, at in rows],
        )

    async def count_dead_letters(self) -> dict[tuple[str, str], int]:
        rows = await self._pool.fetch(
            "SELECT source, reason, COUNT(*) AS n FROM dead_letters GROUP BY source, reason"
        )
        return {(r["source"], r["reason"]): int(r["n"]) for r in rows}

    async def prune_dead_letters(self, keep: int) -> int:
        status = await self._pool.execute(
            "DELETE FROM dead_letters WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER()"
            " OVER (PARTITION BY source, reason ORDER BY id DESC) AS n FROM dead_letters)"
            " AS ranked WHERE n > $1)",
            keep,
        )
        return int(status.rsplit(" ", 1)[-1])
