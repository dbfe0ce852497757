"""Numbered schema migrations shared by every SQL backend. Append; never edit a shipped one.

Each entry is (version, statements). Statements use portable SQL (TEXT, BIGINT, DOUBLE
PRECISION, BYTEA/BLOB spelled through `{blob}`), formatted per backend.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE kv (key TEXT PRIMARY KEY, value {blob} NOT NULL)",
            "CREATE TABLE incidents ("
            " id TEXT PRIMARY KEY, key TEXT NOT NULL, state TEXT NOT NULL,"
            " severity INTEGER, opened_at DOUBLE PRECISION NOT NULL,"
            " updated_at DOUBLE PRECISION NOT NULL, doc TEXT NOT NULL)",
            "CREATE INDEX incidents_state ON incidents (state, updated_at)",
            "CREATE TABLE outbox ("
            " id TEXT PRIMARY KEY, receiver TEXT NOT NULL, payload TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, due_at DOUBLE PRECISION NOT NULL,"
            " expires_at DOUBLE PRECISION NOT NULL, attempts INTEGER NOT NULL,"
            " state TEXT NOT NULL, last_error TEXT)",
            "CREATE INDEX outbox_due ON outbox (state, due_at)",
            "CREATE TABLE dead_letters ("
            " id {serial}, source TEXT NOT NULL, reason TEXT NOT NULL,"
            " detail TEXT NOT NULL, payload {blob} NOT NULL,"
            " received_at DOUBLE PRECISION NOT NULL)",
        ],
    ),
    (
        2,
        [
            # the outbox reads each receiver's oldest pending rows (`outbox_oldest`) on every
            # pass: without this, every pass sorts the whole pending table
            "CREATE INDEX outbox_pending ON outbox (state, receiver, created_at, id)",
        ],
    ),
]


def too_new(current: int, migrations: list[tuple[int, list[str]]] = MIGRATIONS) -> str | None:
    """Why a store at schema ``current`` cannot be used by this version, or None.

    A later version wrote it (a rollback after an upgrade): its tables may hold columns this
    one does not fill, so every write would fail while the service looked healthy.

    >>> too_new(MIGRATIONS[-1][0]) is None
    True
    >>> too_new(99)  # doctest: +ELLIPSIS
    'the store is at schema 99, newer than this crisiswatch knows (...): ...'
    """
    newest = migrations[-1][0]
    if current <= newest:
        return None
    return (
        f"the store is at schema {current}, newer than this crisiswatch knows ({newest}): "
        "a later version wrote it; run that version, or give this one another store"
    )
