"""What a node trusts and signs with: the manifest and signing key in force, as loaded at
start (never older than the store last recorded), re-read on SIGHUP, recorded in the
evidence log and published as expiry metrics.

The rules of what makes them unusable are in ``node.runtime.startup``; here is how they are
read, remembered and shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from monitoring.metrics import NodeMetrics
from node.runtime.config import NodeConfig, load_config
from node.runtime.startup import check_own_key
from node.store import audit
from node.store.connection import Connection
from node.store.database import Database
from node.trust.keys import SigningKey, load_signing_key
from node.trust.manifest import Manifest, format_time, verify_manifest
from node.trust.tls import TlsMaterial, certificate_not_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """What this node trusts and signs with; swapped as a whole on reload."""

    manifest: Manifest
    signing_key: SigningKey


def held_manifest(conn: Connection) -> bytes | None:
    """The manifest file bytes this node last recorded in its evidence log."""
    row = conn.execute(
        "SELECT body FROM audit WHERE kind = 'manifest' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return bytes(row[0]) if row else None


def record_manifest(conn: Connection, manifest: Manifest, at: float) -> None:
    """The manifest file as loaded, an entry of the evidence log (inside a write job)."""
    audit.append(
        conn,
        direction="local",
        peer="",
        message_id=f"manifest-v{manifest.version}",
        kind="manifest",
        body=manifest.raw,
        recorded_at=at,
    )


async def load_manifest(db: Database, config: NodeConfig, clock: Callable[[], float]) -> Manifest:
    """The manifest file at start, refusing one older than what the store last recorded and
    recording it when it is new; an expired one is loaded, loudly (the node then refuses
    traffic until a current one is loaded)."""
    anchors = config.governance_keys
    held_bytes = held_manifest(db.reader())
    held = verify_manifest(held_bytes, anchors, now=None) if held_bytes else None
    manifest = verify_manifest(config.paths.manifest.read_bytes(), anchors, now=None, current=held)
    if held is None or manifest.version != held.version:
        await db.write(lambda c: record_manifest(c, manifest, clock()))
    if manifest.expired_at(clock()):
        log.error(
            "manifest has expired; refusing all traffic until a current one is loaded",
            extra={
                "manifest_version": manifest.version,
                "expired_at": format_time(manifest.expires_at),
            },
        )
    return manifest


def read_credentials(config: NodeConfig, current: Manifest, now: float) -> Credentials:
    """node.toml's signing key and the manifest file as they are now (SIGHUP), checked:
    the manifest signed, current and not older than ``current``, the key usable in it."""
    fresh = load_config(config.source, {}) if config.source else config
    key = load_signing_key(fresh.paths.signing_key)
    manifest = verify_manifest(
        fresh.paths.manifest.read_bytes(), config.governance_keys, now=now, current=current
    )
    check_own_key(manifest, config.node_id, key, now)
    return Credentials(manifest, key)


def observe_credentials(
    metrics: NodeMetrics, credentials: Credentials, node_id: str, tls: TlsMaterial | None
) -> None:
    """Publish what this node trusts and signs with, and until when."""
    manifest = credentials.manifest
    metrics.manifest_version.set(manifest.version)
    metrics.manifest_expiry.set(manifest.expires_at)
    member = manifest.member(node_id)
    entry = member.key(credentials.signing_key.key_id) if member else None
    if entry is not None:
        metrics.signing_key_expiry.set(entry.not_after)
    if tls is not None:
        metrics.tls_certificate_expiry.set(certificate_not_after(tls.cert_pem))
