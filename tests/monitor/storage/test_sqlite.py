from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.storage import OutboxRow, open_store
from monitor.storage.migrations import MIGRATIONS
from monitor.storage.sqlite import SqliteStore


async def test_kv_incidents_outbox_and_dead_letters_survive_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    store = await open_store(url)
    await store.put("k", b"v1")
    await store.put("k", b"v2")
    inc = {
        "id": "i1",
        "key": "acme/volume",
        "state": "triggered",
        "severity": 2,
        "opened_at": 1.0,
        "updated_at": 2.0,
    }
    await store.upsert_incident(inc)
    await store.upsert_incident({**inc, "state": "resolved", "updated_at": 3.0})
    row = OutboxRow("n1", "pager", {"a": 1}, 1.0, 5.0, 100.0, 0, "pending", None)
    await store.outbox_enqueue(row)
    await store.outbox_enqueue(row)  # idempotent by id
    await store.add_dead_letter("mqtt", "malformed_json", "x", b"\xff", 1.0)
    await store.close()

    store = await open_store(url)
    assert await store.get("k") == b"v2"
    assert await store.get("missing") is None
    assert [i["state"] for i in await store.list_incidents()] == ["resolved"]
    assert await store.list_incidents(open_only=True) == []
    assert await store.outbox_due(4.0) == []
    due = await store.outbox_due(5.0)
    assert [r.id for r in due] == ["n1"]
    await store.outbox_update("n1", state="delivered", attempts=1, due_at=5.0, last_error=None)
    stats = await store.outbox_stats(10.0)
    assert stats["pending"] == 0 and stats["delivered"] == 1
    assert await store.count_dead_letters() == {("mqtt", "malformed_json"): 1}
    assert isinstance(store, SqliteStore) and await store.schema_version() == MIGRATIONS[-1][0]
    await store.close()


async def test_unknown_scheme_names_the_config_path() -> None:
    with pytest.raises(ConfigError, match=r"storage.url: unsupported scheme 'redis'"):
        await open_store("redis://localhost")


async def test_a_file_that_is_no_database_is_a_config_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database " * 20)
    with pytest.raises(ConfigError, match=r"^storage.url: cannot open SQLite database: .*notes"):
        await open_store(f"sqlite:///{bad}")
    with pytest.raises(ConfigError, match=r"^storage.url: cannot open SQLite database: "):
        await open_store(f"sqlite:///{bad}/inside/a/file.db")


def test_a_bad_store_file_ends_the_service_with_exit_2(tmp_path: Path) -> None:
    """Not a traceback and a process that never exits (the connection's thread kept it)."""
    bad = tmp_path / "cw.db"
    bad.write_text("not a database " * 20)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "topics: [{name: a, query: acme}]\n"
        "sources: {demo: {enabled: false}}\n"
        f"storage: {{url: 'sqlite:///{bad}'}}\n"
        "server: {port: 0}\n"
    )
    run = run_service(cfg)
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith("error: storage.url: cannot open SQLite database: file is not a database")
    )


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///"])
async def test_a_url_without_a_path_is_refused_not_an_in_memory_store(url: str) -> None:
    # an in-memory store forgets incidents, escalations and baselines on every restart
    with pytest.raises(ConfigError, match=rf"^storage.url: .*:memory:.*\(got '{url}'\)$"):
        await open_store(url)
    with pytest.raises(ConfigError, match=rf"^storage.url: .*\(got '{url}'\)$"):
        parse_config({"topics": [{"name": "a", "query": "acme"}], "storage": {"url": url}})


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:"])
async def test_an_in_memory_store_is_spelled_out(url: str) -> None:
    store = await open_store(url)
    await store.put("k", b"v")
    assert await store.get("k") == b"v"
    await store.close()


def test_check_config_refuses_a_scheme_no_backend_serves() -> None:
    with pytest.raises(ConfigError, match=r"^storage.url: unsupported scheme 'redis'"):
        parse_config({"topics": [{"name": "a", "query": "acme"}], "storage": {"url": "redis://x"}})


async def test_services_starting_together_on_a_new_file_all_open(tmp_path: Path) -> None:
    """While one connection switches a new file to WAL, SQLite says "database is locked" to
    the others at once, without waiting: about one round in eight lost a starter."""
    for round_ in range(30):
        url = f"sqlite:///{tmp_path}/r{round_}.db"
        stores = await asyncio.gather(*(open_store(url) for _ in range(8)), return_exceptions=True)
        for s in stores:
            if not isinstance(s, BaseException):
                await s.close()
        assert [str(s) for s in stores if isinstance(s, BaseException)] == [], round_


def test_a_config_error_while_the_app_is_built_is_one_line(tmp_path: Path) -> None:
    """A token variable missing from the environment: the error came with an asyncio
    "Unclosed client session" line after it (QA, tenth session)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "topics: [{name: a, query: acme}]\n"
        "sources: {demo: {enabled: false}}\n"
        f"storage: {{url: 'sqlite:///{tmp_path}/cw.db'}}\n"
        "server: {port: 0}\n"
        "delivery: {api: {tokens: [{name: ana, token_env: CW_TEST_NO_SUCH_VARIABLE,"
        " roles: [responder]}]}}\n"
    )
    run = run_service(cfg, {k: v for k, v in os.environ.items() if k != "CW_TEST_NO_SUCH_VARIABLE"})
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "CW_TEST_NO_SUCH_VARIABLE" in lines[0], lines


def run_service(cfg: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`crisiswatch run --config cfg` from the checkout, as far as it gets in a minute."""
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
        env=env,
    )


async def test_a_failed_commit_never_takes_another_coroutines_write_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One connection serves every coroutine: a write waiting for its commit shared the open
    transaction with the next one's statement, so a full disk failing the first commit rolled
    back the second write, whose own commit then "succeeded" on nothing. The outbox took a
    delivered page for pending and sent it again and again (QA, twelfth session)."""
    store = await SqliteStore.open(tmp_path / "s.db")
    db = store._db
    real_commit = db.commit
    failed: list[bool] = []

    async def commit_fails_once() -> None:
        if not failed:
            failed.append(True)
            await db.rollback()  # what SQLite does to the transaction on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")
        await real_commit()

    monkeypatch.setattr(db, "commit", commit_fails_once)
    first, second = await asyncio.gather(
        store.put("checkpoint", b"big"), store.put("outcome", b"delivered"), return_exceptions=True
    )
    assert isinstance(first, sqlite3.OperationalError) and second is None
    await store.close()
    again = await SqliteStore.open(tmp_path / "s.db")
    try:
        assert await again.get("outcome") == b"delivered"  # durable, as its commit said
        assert await again.get("checkpoint") is None
    finally:
        await again.close()


async def test_a_failed_dead_letter_batch_is_rolled_back_alone(tmp_path: Path) -> None:
    """A batch is one step under the store's lock: its failure takes none of its rows and no
    other coroutine's write with it."""
    store = await SqliteStore.open(tmp_path / "s.db")
    rows = [("mqtt", "malformed_json", f"line {i}", b"{", float(i)) for i in range(500)]
    bad = [*rows[:250], (None, "oversize", "", b"", 1.0), *rows[250:]]
    batch, put = await asyncio.gather(
        store.add_dead_letters(bad),  # type: ignore[arg-type]
        store.put("outcome", b"delivered"),
        return_exceptions=True,
    )
    assert isinstance(batch, sqlite3.IntegrityError) and put is None
    await store.add_dead_letters(rows)
    await store.close()
    again = await SqliteStore.open(tmp_path / "s.db")
    try:
        assert await again.get("outcome") == b"delivered"
        assert await again.count_dead_letters() == {("mqtt", "malformed_json"): 500}
    finally:
        await again.close()


async def test_close_waits_for_the_writes_already_under_way(tmp_path: Path) -> None:
    """A stop closes the store while the outbox may still be saving "delivered": that write
    lands (or fails to its caller) before the connection goes, never half-way through it."""
    store = await SqliteStore.open(tmp_path / "s.db")
    writes = [asyncio.ensure_future(store.put(f"k{i}", b"v")) for i in range(20)]
    await asyncio.sleep(0)  # the first write is under way
    await store.close()
    assert [w.result() for w in writes] == [None] * 20
    again = await SqliteStore.open(tmp_path / "s.db")
    try:
        assert [await again.get(f"k{i}") for i in range(20)] == [b"v"] * 20
    finally:
        await again.close()
