"""What the store's SQL runs on, whichever backend holds the store: the connection protocol,
the errors common to both drivers, and where a store is (a SQLite file or a PostgreSQL URL).

Rules kept here:
- Store functions take a ``Connection``: ``execute`` and ``executemany`` with ``?``
  placeholders, cursors read with ``fetchone``, ``fetchall``, iteration and ``rowcount``. A
  ``sqlite3.Connection`` is one as it is; on PostgreSQL the store hands out an adapter
  (``node.store.postgres``) that speaks the same.
- The SQL is written once, in the subset both backends run the same: ``ON CONFLICT … DO
  NOTHING`` / ``DO UPDATE`` (never ``INSERT OR IGNORE``), ``RETURNING`` (never
  ``lastrowid``), blobs compared through parameters (never ``x''``).
- A store is a path or a ``postgresql://`` URL; ``store_location`` tells which from text (a
  config value or a ``--store`` argument), and a URL is shown without its password.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg

POSTGRES_SCHEMES = ("postgresql", "postgres")


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection the store's SQL runs on (``?`` placeholders)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


IntegrityError = (sqlite3.IntegrityError, psycopg.IntegrityError)
"""A constraint refused a statement, on either backend (``except IntegrityError``)."""
DriverError = (sqlite3.Error, psycopg.Error)
"""Any error of either backend's driver (``except DriverError``)."""


@dataclass(frozen=True)
class PostgresUrl:
    """A store in a PostgreSQL database; ``str()`` hides the password."""

    url: str

    def __str__(self) -> str:
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


STORE_HELP = "the node's store: its SQLite file, or its postgresql:// URL"
"""What a ``--store`` argument takes, for every command's help."""

StoreLocation = Path | PostgresUrl
"""Where a store is: a SQLite file, or a PostgreSQL database."""


def store_location(text: str | Path) -> StoreLocation:
    """A ``postgresql://`` (or ``postgres://``) URL names a database; anything else a file."""
    if isinstance(text, str) and urlsplit(text).scheme in POSTGRES_SCHEMES:
        return PostgresUrl(text)
    return Path(text)
