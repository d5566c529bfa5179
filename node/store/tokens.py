"""Bearer tokens of the REST API, kept as hashes.

Rules kept here:
- A token is ``yrd_`` and 32 random bytes in URL-safe base64 (256 bits); ``create`` returns
  it once and stores only its SHA-256. A token cannot be recovered from the store.
- Looking a token up hashes what was presented and compares the stored hash in constant
  time; an unknown, malformed or revoked token is simply not found.
- A name is unique among the tokens in force; revoking keeps the row (who had access, when).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from node.store.connection import Connection, StoreLocation
from node.store.database import Database, DuplicateEntry

SCOPES = ("platform", "operator", "read")
PREFIX = "yrd_"
TOKEN_PATTERN = re.compile(r"yrd_[A-Za-z0-9_-]{43}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ApiToken:
    name: str
    scope: str
    created_at: float
    revoked_at: float | None = None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def create(conn: Connection, *, name: str, scope: str, now: float, token: str | None = None) -> str:
    """A new token of ``scope`` named ``name``; the only time the token is seen. ``token``
    puts one made by ``new_token`` elsewhere in force here too (one viewer for a mesh)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            "a token name is 1 to 64 letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit"
        )
    token = token or new_token()
    if not TOKEN_PATTERN.fullmatch(token):
        raise ValueError("not a token made by new_token()")
    stored = conn.execute(
        "INSERT INTO api_tokens (token_hash, name, scope, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (token_hash(token), name, scope, now),
    )
    if stored.rowcount != 1:
        raise DuplicateEntry(f"a token named {name!r} is already in force")
    return token


def lookup(conn: Connection, token: str) -> ApiToken | None:
    """The token in force that ``token`` is, or None."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    digest = token_hash(token)
    row = conn.execute(
        "SELECT token_hash, name, scope, created_at FROM api_tokens "
        "WHERE token_hash = ? AND revoked_at IS NULL",
        (digest,),
    ).fetchone()
    if row is None or not hmac.compare_digest(bytes(row[0]), digest):
        return None
    return ApiToken(str(row[1]), str(row[2]), float(row[3]))


def listed(conn: Connection) -> list[ApiToken]:
    """Every token ever made, in force or revoked, oldest first (no secrets: there are none)."""
    rows = conn.execute(
        "SELECT name, scope, created_at, revoked_at FROM api_tokens ORDER BY created_at, name"
    ).fetchall()
    return [
        ApiToken(str(n), str(s), float(c), None if r is None else float(r)) for n, s, c, r in rows
    ]


def revoke(conn: Connection, *, name: str, now: float) -> bool:
    """Revoke the token in force named ``name``; False when there is none."""
    cursor = conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (now, name)
    )
    return cursor.rowcount > 0


async def issue(
    store: StoreLocation, wanted: Sequence[tuple[str, str, str | None]], *, now: float
) -> dict[str, str]:
    """Open the store at ``store`` (creating it) and make a token for each (name, scope,
    token or None); the tokens by name."""
    db = await Database.open(store)
    try:
        return await db.write(
            lambda conn: {
                name: create(conn, name=name, scope=scope, now=now, token=token)
                for name, scope, token in wanted
            }
        )
    finally:
        await db.close()
