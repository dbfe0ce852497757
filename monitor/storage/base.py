"""The persistence protocol every backend implements (SQLite by default, PostgreSQL by URL).

Values cross it as JSON-able dicts or bytes, so the backends stay dumb and interchangeable.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.errors import CrisiswatchError

#: kv key of the running instance's owner record; writing it at open is also the proof that
#: the store takes writes (a read-only file or database was accepted, then every page failed)
OWNER_KEY = "storage.owner"


def owner_record() -> bytes:
    """Who holds the store: this process's pid and host, for the error a second starter gets."""
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()


def describe_owner(raw: bytes | None) -> str:
    """``" (pid 12 on web1)"`` from an owner record; ``""`` when there is none to read.

    >>> describe_owner(b'{"pid": 12, "host": "web1"}'), describe_owner(b""), describe_owner(b"{")
    (' (pid 12 on web1)', '', '')
    """
    try:
        doc = json.loads(raw or b"")
        return f" (pid {int(doc['pid'])} on {str(doc['host'])[:100]})"
    except (ValueError, TypeError, KeyError):
        return ""  # written half-way, or by something else: the refusal stands without it


class StoreTakenOver(CrisiswatchError):
    """Another crisiswatch took the store while this one had lost its lock (the database
    restarted or failed over). Every statement of this store raises it from then on: two
    instances on one store page twice and overwrite each other's state."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: str
    receiver: str
    payload: dict[str, Any]
    created_at: float
    due_at: float
    expires_at: float
    attempts: int
    state: str  # pending | delivered | expired
    last_error: str | None


class Store(Protocol):
    """Async persistence. Every write is durable when the awaited call returns."""

    #: Set when another instance took the store (PostgreSQL, after its lock connection was
    #: lost): every statement raises `StoreTakenOver` from then on, and the service stops.
    taken: asyncio.Event
    #: The store for logs: a SQLite file's absolute path, PostgreSQL's server, database and
    #: schema (never a password).
    where: str

    async def close(self) -> None: ...

    # small key/value state: detector checkpoints, collector cursors, escalation state
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def put_many(self, items: Mapping[str, bytes]) -> None:
        """Every key at once, or none (one statement): parts of one checkpoint must agree."""
        ...

    # incidents, one JSON document each
    async def upsert_incident(self, incident: dict[str, Any]) -> None: ...

    async def list_incidents(
        self, *, open_only: bool = False, limit: int = 200
    ) -> list[dict[str, Any]]: ...

    # outbox of notifications
    async def outbox_enqueue(self, row: OutboxRow) -> None: ...

    async def outbox_due(self, now: float, limit: int = 100) -> list[OutboxRow]: ...

    async def outbox_oldest(self, per_receiver: int) -> list[OutboxRow]:
        """The oldest `per_receiver` pending rows of every receiver, ordered by
        (created_at, id) with ids compared by code point.

        Each receiver's part is a prefix of its queue in creation order, so it holds the oldest
        row of every group it holds a row of: the rows the outbox may send are all in it,
        however long the queue behind it.
        """
        ...

    async def outbox_pending_count(self) -> int:
        """How many rows are pending (a count; no row is loaded)."""
        ...

    async def outbox_update(
        self, id: str, *, state: str, attempts: int, due_at: float, last_error: str | None
    ) -> None: ...

    async def outbox_stats(self, now: float) -> dict[str, Any]: ...

    async def outbox_prune(self, before: float) -> int:
        """Delete finished (not pending) rows created before `before`; returns how many."""
        ...

    # dead letters
    async def add_dead_letter(
        self, source: str, reason: str, detail: str, payload: bytes, received_at: float
    ) -> None:
        """One dead letter: `add_dead_letters` of one row."""
        ...

    async def add_dead_letters(self, rows: Sequence[tuple[str, str, str, bytes, float]]) -> None:
        """Dead letters as (source, reason, detail, payload, received_at), in order, in one
        transaction: all of them are stored, or (the call raising) none. A batch costs one
        commit and, against a database that is down, one retry budget, not one per row."""
        ...

    async def count_dead_letters(self) -> dict[tuple[str, str], int]: ...

    async def prune_dead_letters(self, keep: int) -> int:
        """Delete all but the newest `keep` dead letters of every (source, reason); returns
        how many."""
        ...
