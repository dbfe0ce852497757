"""Persistence: pick a backend by URL.

``sqlite:///var/crisiswatch.db`` (relative path), ``sqlite:////abs/path.db``,
``sqlite:///:memory:`` (nothing survives a restart: tests only); ``postgresql://...`` where
the PostgreSQL backend is installed.
"""

from __future__ import annotations

from monitor.errors import ConfigError
from monitor.storage.base import OutboxRow, Store

__all__ = ["OutboxRow", "Store", "check_url", "open_store"]


def check_url(url: str) -> tuple[str, str]:
    """``(scheme, target)`` of a URL some backend serves: the SQLite path, else the whole URL.

    >>> check_url("sqlite:///var/cw.db"), check_url("sqlite:////srv/cw.db")
    (('sqlite', 'var/cw.db'), ('sqlite', '/srv/cw.db'))
    >>> check_url("sqlite://")
    Traceback (most recent call last):
    ...
    monitor.errors.ConfigError: storage.url: no database file; ...
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("storage.url", "expected scheme://...", url)
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            # this once meant an in-memory store: every incident, escalation and baseline
            # gone on each restart, with nothing to say so
            raise ConfigError(
                "storage.url",
                "no database file; e.g. sqlite:///var/crisiswatch.db"
                " (sqlite:///:memory: keeps nothing across restarts)",
                url,
            )
        return scheme, path
    if scheme in ("postgresql", "postgres"):
        return scheme, url
    raise ConfigError("storage.url", f"unsupported scheme {scheme!r}", url)


async def open_store(url: str, *, retry_seconds: float = 30.0, exclusive: bool = True) -> Store:
    """The store at ``url``; PostgreSQL retries statements for ``retry_seconds`` while its
    connection is lost (SQLite is a local file: nothing to wait for).

    One crisiswatch per store: while this one is open, another open of the same store is a
    `ConfigError` (two instances paged twice and overwrote each other's state). Only tests of
    concurrent starters pass ``exclusive=False``.
    """
    scheme, target = check_url(url)
    if scheme == "sqlite":
        from monitor.storage.sqlite import SqliteStore

        return await SqliteStore.open(target, exclusive=exclusive)
    from monitor.storage.postgres import PostgresStore

    return await PostgresStore.open(target, retry_seconds=retry_seconds, exclusive=exclusive)
