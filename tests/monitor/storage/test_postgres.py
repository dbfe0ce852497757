"""The store contract, run against every backend: SQLite always, PostgreSQL as integration.

PostgreSQL: db ``test`` on 127.0.0.1:5432 as user postgres; each test gets a fresh schema that
is dropped afterwards, so runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from alerting.notification import Notification
from alerting.outbox import Outbox
from monitor.clock import FakeClock
from monitor.errors import ConfigError
from monitor.storage import OutboxRow, Store, open_store
from monitor.storage import postgres as postgres_store
from monitor.storage import sqlite as sqlite_store
from monitor.storage.base import StoreTakenOver
from monitor.storage.migrations import MIGRATIONS
from monitor.storage.postgres import PostgresStore

PG = "postgresql://postgres@127.0.0.1:5432/test"
LATEST = MIGRATIONS[-1][0]

Opener = Callable[..., Awaitable[Store]]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """A function that opens (or re-opens) one fresh store of the requested backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = f"{PG}?schema=cw_test_{uuid.uuid4().hex[:12]}"

    async def open_(**kw: Any) -> Store:
        return await open_store(url, **kw)

    yield open_
    if request.param == "postgresql":  # not through the store: a test may leave it unopenable
        conn = await asyncpg.connect(PG)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{url.rsplit("=", 1)[1]}" CASCADE')
        await conn.close()


@pytest.fixture
async def store(opener: Opener) -> AsyncIterator[Store]:
    s = await opener()
    yield s
    await s.close()


async def test_kv_roundtrips_bytes(store: Store) -> None:
    assert await store.get("k") is None
    await store.put("k", b"\x00\xffone")
    await store.put("k", b"\x00\xfftwo")
    await store.put("other", b"")
    assert await store.get("k") == b"\x00\xfftwo"
    assert await store.get("other") == b""
    # the parts of one checkpoint, in one statement: new keys and replaced ones together
    await store.put_many({"k": b"three", "dedup": bytes(range(256)) * 4, "aggregator": b"{}"})
    assert await store.get("k") == b"three" and await store.get("aggregator") == b"{}"
    assert await store.get("dedup") == bytes(range(256)) * 4
    await store.put_many({})


async def test_incidents_upsert_order_and_open_filter(store: Store) -> None:
    for i, (state, t) in enumerate([("triggered", 5.0), ("acknowledged", 7.0), ("resolved", 6.0)]):
        await store.upsert_incident(
            {"id": f"i{i}", "key": "acme", "state": state, "severity": 2,
             "opened_at": 1.0, "updated_at": t, "extra": {"drivers": ["x"]}}
        )  # fmt: skip
    assert [i["id"] for i in await store.list_incidents()] == ["i1", "i2", "i0"]
    assert [i["id"] for i in await store.list_incidents(open_only=True)] == ["i1", "i0"]
    assert [i["id"] for i in await store.list_incidents(limit=1)] == ["i1"]
    await store.upsert_incident(
        {"id": "i0", "key": "acme", "state": "resolved", "severity": None,
         "opened_at": 1.0, "updated_at": 9.0}
    )  # fmt: skip
    docs = await store.list_incidents()
    assert docs[0] == {"id": "i0", "key": "acme", "state": "resolved", "severity": None,
                       "opened_at": 1.0, "updated_at": 9.0}  # fmt: skip
    assert (await store.list_incidents())[1]["extra"] == {"drivers": ["x"]}


async def test_outbox_enqueue_due_update_stats(store: Store) -> None:
    def row(i: str, due: float, created: float = 1.0) -> OutboxRow:
        return OutboxRow(i, "pager", {"id": i, "n": [1, "ü"]}, created, due, 100.0, 0,
                         "pending", None)  # fmt: skip

    await store.outbox_enqueue(row("b", 5.0))
    await store.outbox_enqueue(row("a", 3.0, created=0.5))
    await store.outbox_enqueue(row("a", 1.0))  # same id: ignored
    await store.outbox_enqueue(row("c", 50.0))
    assert [r.id for r in await store.outbox_due(10.0)] == ["a", "b"]
    assert [r.id for r in await store.outbox_due(1e18, limit=1)] == ["a"]
    (a,) = await store.outbox_due(3.0)
    assert a == row("a", 3.0, created=0.5)
    await store.outbox_update("a", state="pending", attempts=1, due_at=20.0, last_error="HTTP 503")
    await store.outbox_update("b", state="delivered", attempts=1, due_at=5.0, last_error=None)
    assert [(r.id, r.attempts, r.last_error) for r in await store.outbox_due(30.0)] == [
        ("a", 1, "HTTP 503")
    ]
    await store.outbox_update("c", state="expired", attempts=3, due_at=50.0, last_error="x")
    assert await store.outbox_stats(10.5) == {
        "pending": 1, "delivered": 1, "expired": 1, "oldest_pending_age": 10.0}  # fmt: skip


async def test_outbox_oldest_reads_a_prefix_of_every_receivers_queue(store: Store) -> None:
    def row(i: str, receiver: str, created: float, due: float, state: str = "pending") -> OutboxRow:
        return OutboxRow(i, receiver, {"id": i}, created, due, 1e9, 0, state, None)

    # creation order, ties broken by id code point by code point ("B" < "a" < "é")
    for r in (
        row("a", "pd", 2.0, 90.0),
        row("é", "pd", 2.0, 1.0),
        row("B", "pd", 2.0, 50.0),
        row("old", "pd", 1.0, 99.0),
        row("late", "pd", 3.0, 0.0),
        row("done", "pd", 0.5, 0.0, "delivered"),
        row("s1", "slack", 5.0, 0.0),
    ):
        await store.outbox_enqueue(r)
    assert [r.id for r in await store.outbox_oldest(3)] == ["old", "B", "a", "s1"]
    assert [r.id for r in await store.outbox_oldest(10)] == ["old", "B", "a", "é", "late", "s1"]
    assert (await store.outbox_oldest(1))[0] == row("old", "pd", 1.0, 99.0)
    assert await store.outbox_pending_count() == 6
    await store.outbox_update("old", state="expired", attempts=1, due_at=99.0, last_error="x")
    assert await store.outbox_pending_count() == 5
    assert [r.id for r in await store.outbox_oldest(1)] == ["B", "s1"]


async def test_outbox_prune_drops_only_old_finished_rows(store: Store) -> None:
    def row(i: str, created: float, state: str) -> OutboxRow:
        return OutboxRow(i, "pager", {"id": i}, created, created, 1e9, 1, state, None)

    for r in (
        row("old-done", 1.0, "delivered"),
        row("old-expired", 2.0, "expired"),
        row("old-pending", 3.0, "pending"),
        row("new-done", 50.0, "delivered"),
    ):
        await store.outbox_enqueue(r)
    assert await store.outbox_prune(before=10.0) == 2
    stats = await store.outbox_stats(60.0)
    assert (stats["pending"], stats["delivered"], stats["expired"]) == (1, 1, 0)
    assert await store.outbox_prune(before=10.0) == 0


async def test_dead_letters_are_counted(store: Store) -> None:
    await store.add_dead_letter("mqtt", "malformed_json", "line 1", b"\xff{", 1.0)
    await store.add_dead_letter("mqtt", "malformed_json", "line 2", b"", 2.0)
    await store.add_dead_letter("ws", "too_large", "", b"x", 3.0)
    assert await store.count_dead_letters() == {
        ("mqtt", "malformed_json"): 2, ("ws", "too_large"): 1}  # fmt: skip


async def test_dead_letters_are_added_a_batch_at_a_time_all_or_none(store: Store) -> None:
    await store.add_dead_letters([])
    await store.add_dead_letters(
        [("mqtt", "malformed_json", f"line {i}", b"\xff{", float(i)) for i in range(1000)]
        + [("ws", "too_large", "", b"x" * 65536, 3.0)]
    )
    assert await store.count_dead_letters() == {
        ("mqtt", "malformed_json"): 1000, ("ws", "too_large"): 1}  # fmt: skip
    bad = ("ws", "too_large", "", b"x", 4.0), (None, "oversize", "", b"", 5.0)
    with pytest.raises((sqlite3.IntegrityError, asyncpg.NotNullViolationError)):
        await store.add_dead_letters(bad)  # type: ignore[arg-type]
    assert await store.count_dead_letters() == {  # the good row went with the bad one
        ("mqtt", "malformed_json"): 1000, ("ws", "too_large"): 1}  # fmt: skip
    await store.add_dead_letter("ws", "too_large", "one", b"", 6.0)  # one row: a batch of one
    assert (await store.count_dead_letters())[("ws", "too_large")] == 2


async def test_dead_letters_prune_keeps_the_newest_of_every_source_and_reason(
    store: Store,
) -> None:
    for i in range(6):
        await store.add_dead_letter("mqtt", "malformed_json", f"line {i}", b"{", float(i))
    await store.add_dead_letter("ws", "too_large", "only one", b"x", 3.0)
    assert await store.prune_dead_letters(keep=2) == 4
    assert await store.count_dead_letters() == {
        ("mqtt", "malformed_json"): 2, ("ws", "too_large"): 1}  # fmt: skip
    assert await store.prune_dead_letters(keep=2) == 0


async def test_state_survives_reopen_and_migrations_run_once(opener: Opener) -> None:
    s = await opener()
    await s.put("cursor", b"42")
    await s.outbox_enqueue(OutboxRow("n1", "r", {}, 1.0, 1.0, 9.0, 0, "pending", None))
    await s.close()
    s = await opener()
    assert await s.get("cursor") == b"42"
    assert [r.id for r in await s.outbox_due(2.0)] == ["n1"]
    assert await s.schema_version() == LATEST  # type: ignore[attr-defined]
    await s.close()


async def test_starters_racing_on_a_fresh_store_all_open(opener: Opener) -> None:
    """The migration under concurrent starters (unlocked stores: with the lock, all but one
    are refused before they migrate)."""
    stores = await asyncio.gather(
        *(opener(exclusive=False) for _ in range(8)), return_exceptions=True
    )
    for s in stores:
        if not isinstance(s, BaseException):
            await s.close()
    assert [type(s).__name__ for s in stores if isinstance(s, BaseException)] == []


async def test_starters_racing_on_a_fresh_store_one_runs_the_rest_are_refused(
    opener: Opener,
) -> None:
    """Two instances on one store both paged and overwrote each other's `alerting.state`: an
    incident ended up open in the list and 404 on its detail, for good (QA, day two)."""
    stores = await asyncio.gather(*(opener() for _ in range(8)), return_exceptions=True)
    opened = [s for s in stores if not isinstance(s, BaseException)]
    refused = [s for s in stores if isinstance(s, BaseException)]
    for s in opened:
        await s.close()
    assert len(opened) == 1 and len(refused) == 7, refused
    for err in refused:
        assert isinstance(err, ConfigError) and str(err).startswith(
            "storage.url: another crisiswatch"
        ), err
        assert "two would page twice" in str(err)


async def test_a_second_open_is_refused_until_the_first_closes(opener: Opener) -> None:
    first = await opener()
    try:
        await first.put("k", b"v")
        with pytest.raises(ConfigError) as err:
            await opener()
        holder = f"(pid {os.getpid()} on {socket.gethostname()})"
        assert f"storage.url: another crisiswatch {holder} is running on" in str(err.value)
        await first.put("k", b"still mine")
    finally:
        await first.close()
    second = await opener()
    assert await second.get("k") == b"still mine"
    await second.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
async def test_migrating_says_so_in_one_line_and_a_current_store_says_nothing(
    tmp_path: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An upgrade's start said nothing of the schema it moved the store to (QA, day two)."""
    schema = f"cw_test_{uuid.uuid4().hex[:12]}"
    url = f"sqlite:///{tmp_path}/store.db" if backend == "sqlite" else f"{PG}?schema={schema}"
    shown = (
        f"sqlite:///{tmp_path}/store.db"
        if backend == "sqlite"
        else (f"postgresql://127.0.0.1:5432/test?schema={schema}")
    )
    caplog.set_level(logging.INFO, logger="monitor.storage")
    with monkeypatch.context() as old:  # a store the previous release (schema 1) made
        old.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:1])
        old.setattr(postgres_store, "MIGRATIONS", MIGRATIONS[:1])
        await (await open_store(url)).close()
    try:
        await (await open_store(url)).close()
        await (await open_store(url)).close()  # current: nothing
    finally:
        if backend != "sqlite":
            conn = await asyncpg.connect(PG)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.close()
    said = [r.getMessage() for r in caplog.records if r.name.startswith("monitor.storage")]
    assert said == [
        f"storage: new store at schema 1 ({shown})",
        f"storage: schema 1 -> {LATEST} ({shown})",
    ]


async def test_a_migration_that_fails_half_way_leaves_nothing_behind(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await opener()
    await s.put("k", b"kept")
    await s.close()
    broken = [*MIGRATIONS, (LATEST + 1, ["CREATE TABLE extra (x INTEGER)", "NOT SQL"])]
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", broken)
    monkeypatch.setattr(postgres_store, "MIGRATIONS", broken)
    with pytest.raises(Exception, match="syntax error"):
        await opener()
    # as after a crash in the middle: the fixed release migrates from where the last one was
    fixed = [*MIGRATIONS, (LATEST + 1, ["CREATE TABLE extra (x INTEGER)"])]
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", fixed)
    monkeypatch.setattr(postgres_store, "MIGRATIONS", fixed)
    s = await opener()
    assert await s.get("k") == b"kept"
    assert await s.schema_version() == LATEST + 1  # type: ignore[attr-defined]
    await s.close()


async def test_outbox_delivers_over_the_backend(store: Store) -> None:
    sent: list[str] = []

    class Rec:
        async def send(self, n: Notification) -> None:
            sent.append(n.id)

    clock = FakeClock(10.0)
    ob = Outbox(store, {"r": Rec()}, clock, CollectorRegistry())
    for i in range(3):
        await ob.enqueue(Notification(f"n{i}", "r", "trigger", f"k{i}", {"id": "i"}, 10.0))
    assert await ob.tick() == 3
    assert sorted(sent) == ["n0", "n1", "n2"]
    assert (await store.outbox_stats(11.0))["delivered"] == 3


@pytest.mark.integration
async def test_pg_errors_do_not_echo_the_url() -> None:
    with pytest.raises(ConfigError) as ei:
        await open_store("postgresql://postgres:hunter2@127.0.0.1:1/test", retry_seconds=1)
    assert "hunter2" not in str(ei.value) and "tried for 1 s" in str(ei.value)
    # which server, and what went wrong: "gaierror" or "InvalidCatalogNameError" alone was
    # all an operator got (QA, eleventh session)
    assert "at 127.0.0.1:1/test" in str(ei.value)
    missing = PG.rsplit("/", 1)[0] + "/no_such_database_cw"
    with pytest.raises(ConfigError) as ei:
        await open_store(missing, retry_seconds=1)
    assert 'database "no_such_database_cw" does not exist' in str(ei.value)
    with pytest.raises(ConfigError, match="schema must match"):
        await open_store(f"{PG}?schema=Bad-Name")


async def _kill_backend_of(store: PostgresStore) -> None:
    """Terminate the server process behind the store's connection, as a failover would."""
    import asyncpg

    pid = await store._pool.fetchval("SELECT pg_backend_pid()")
    killer = await asyncpg.connect(PG)
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await killer.close()


@pytest.mark.integration
async def test_writes_go_on_after_the_server_kills_the_connection() -> None:
    store = await open_store(f"{PG}?schema=cw_test_{uuid.uuid4().hex[:12]}")
    assert isinstance(store, PostgresStore)
    try:
        for i in range(3):
            await _kill_backend_of(store)
            await store.put("k", str(i).encode())
            assert await store.get("k") == str(i).encode()
    finally:
        await store.drop_schema()
        await store.close()


class FlakyPool:
    """Fails its first ``failures`` calls with ``error``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def execute(self, *args: object) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "INSERT 0 1"


async def test_only_a_lost_connection_is_retried_and_only_for_retry_seconds() -> None:
    import asyncpg

    from monitor.storage.postgres import _Retrying

    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    pool = FlakyPool(3, lost)
    assert await _Retrying(pool, retry_seconds=5.0).execute("INSERT") == "INSERT 0 1"
    assert pool.calls == 4  # backoff 0.1 + 0.2 + 0.4 s
    pool = FlakyPool(3, lost)
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        await _Retrying(pool, retry_seconds=0.2).execute("INSERT")  # 0.1 s, then 0.2 > budget
    assert pool.calls == 2
    pool = FlakyPool(1, asyncpg.UniqueViolationError("duplicate key"))
    with pytest.raises(asyncpg.UniqueViolationError):
        await _Retrying(pool, retry_seconds=5.0).execute("INSERT")
    assert pool.calls == 1  # an SQL error is the caller's, at once


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
async def test_a_store_a_later_version_wrote_is_refused(tmp_path: Path, backend: str) -> None:
    """A rollback after an upgrade: the service started on the newer tables and every write
    failed while /healthz said ok (QA, tenth session); now it does not start, in one line."""
    schema = f"cw_test_{uuid.uuid4().hex[:12]}"
    url = f"sqlite:///{tmp_path}/store.db" if backend == "sqlite" else f"{PG}?schema={schema}"
    s = await open_store(url)
    await s.close()
    if backend == "sqlite":
        with sqlite3.connect(tmp_path / "store.db") as db:
            db.execute("INSERT INTO schema_version VALUES (?)", (LATEST + 1,))
    else:
        conn = await asyncpg.connect(PG)
        await conn.execute(f'INSERT INTO "{schema}".schema_version VALUES ($1)', LATEST + 1)
    try:
        with pytest.raises(ConfigError) as err:
            await open_store(url)
        assert f"the store is at schema {LATEST + 1}, newer than this crisiswatch knows" in str(
            err.value
        )
        assert str(err.value).startswith("storage.url: ")
    finally:
        if backend != "sqlite":
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()


@pytest.mark.integration
async def test_a_database_that_is_not_up_yet_is_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started together with its database (or during a restart of it), the service failed at
    once with "cannot open PostgreSQL" (QA, tenth session); it now waits as for a lost
    connection, up to retry_seconds."""
    real = asyncpg.create_pool
    refused = 0

    async def not_yet(*args: object, **kw: object) -> object:
        nonlocal refused
        if refused < 2:
            refused += 1
            raise ConnectionRefusedError(111, "Connection refused")
        return await real(*args, **kw)

    monkeypatch.setattr(asyncpg, "create_pool", not_yet)
    store = await open_store(PG, retry_seconds=10)
    try:
        assert refused == 2 and await store.schema_version() == LATEST  # type: ignore[attr-defined]
    finally:
        await store.close()


async def _kill_owner_connection_of(store: PostgresStore) -> None:
    """Terminate the backend holding the store's lock (a restart or failover does the same),
    and wait until the server has let the lock go."""
    pid = store._owner.get_server_pid()
    killer = await asyncpg.connect(PG)
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):
            if not await killer.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                break
            await asyncio.sleep(0.05)
        for _ in range(100):  # the client sees its connection closed
            if store._owner.is_closed():
                break
            await asyncio.sleep(0.05)
    finally:
        await killer.close()


@pytest.fixture
async def pg_opener() -> AsyncIterator[Opener]:
    """The `opener` of a fresh PostgreSQL store only."""
    url = f"{PG}?schema=cw_test_{uuid.uuid4().hex[:12]}"

    async def open_(**kw: Any) -> Store:
        return await open_store(url, **kw)

    yield open_
    conn = await asyncpg.connect(PG)
    await conn.execute(f'DROP SCHEMA IF EXISTS "{url.rsplit("=", 1)[1]}" CASCADE')
    await conn.close()


@pytest.mark.integration
async def test_a_lost_lock_connection_takes_the_lock_again(
    pg_opener: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    opener = pg_opener
    store = await opener()
    assert isinstance(store, PostgresStore)
    try:
        await _kill_owner_connection_of(store)
        await store.put("k", b"v")  # reconnects and locks again first
        assert await store.get("k") == b"v"
        assert "lock taken again" in caplog.text
        with pytest.raises(ConfigError, match="another crisiswatch"):
            await opener()  # the lock is held again
    finally:
        await store.close()


@pytest.mark.integration
async def test_a_store_taken_over_while_its_lock_was_lost_stops_reading_and_writing(
    pg_opener: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """While the first one's lock connection is down, a second instance starts: from then on
    the first must neither write (both would overwrite each other) nor read (its outbox would
    send what the second sends too)."""
    opener = pg_opener
    first = await opener()
    assert isinstance(first, PostgresStore)
    try:
        await _kill_owner_connection_of(first)
        second = await opener()
        try:
            for _ in range(2):  # every statement after, not only the first
                with pytest.raises(StoreTakenOver, match=r"another crisiswatch .* took the store"):
                    await first.put("k", b"first")
                with pytest.raises(StoreTakenOver):
                    await first.outbox_due(1e18)
            await second.put("k", b"second")
            assert await second.get("k") == b"second"
        finally:
            await second.close()
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "took the store" in errors[0].getMessage()
        assert first.taken.is_set()  # what stops the service (monitor.app.serve)
    finally:
        await first.close()


@pytest.mark.integration
async def test_stores_in_other_schemas_of_one_database_run_side_by_side() -> None:
    """Schemas let several deployments share a database: the lock is the schema's."""
    urls = [f"{PG}?schema=cw_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    stores = [await open_store(u) for u in urls]
    for s in stores:
        assert isinstance(s, PostgresStore)
        await s.drop_schema()
        await s.close()
