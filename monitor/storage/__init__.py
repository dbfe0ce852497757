"""Persistence: pick a backend by URL.

``sqlite:///var/crisiswatch.db`` (relative path), ``sqlite:////abs/path.db``,
``sqlite://:memory:``; ``postgresql://...`` where the PostgreSQL backend is installed.
"""

from __future__ import annotations

from monitor.errors import ConfigError
from monitor.storage.base import OutboxRow, Store

__all__ = ["OutboxRow", "Store", "open_store"]


async def open_store(url: str, *, retry_seconds: float = 30.0) -> Store:
    """The store at ``url``; PostgreSQL retries statements for ``retry_seconds`` while its
    connection is lost (SQLite is a local file: nothing to wait for)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("storage.url", "expected scheme://...", url)
    if scheme == "sqlite":
        from monitor.storage.sqlite import SqliteStore

        path = rest[1:] if rest.startswith("/") else rest
        return await SqliteStore.open(path or ":memory:")
    if scheme in ("postgresql", "postgres"):
        from monitor.storage.postgres import PostgresStore

        return await PostgresStore.open(url, retry_seconds=retry_seconds)
    raise ConfigError("storage.url", f"unsupported scheme {scheme!r}", url)
