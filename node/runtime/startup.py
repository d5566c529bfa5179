"""What stops a node from starting or reloading, said so an operator knows what to fix.

Pure rules over the manifest, the signing key, the TLS certificate and the exceptions loading
them raises: no store, network or clock of its own (the caller passes ``now``).
"""

from __future__ import annotations

import re

from node.runtime.config import ConfigError
from node.trust.keys import KeyFileError, SigningKey
from node.trust.manifest import Manifest
from node.trust.tls import certificate_node_id


class StartupError(Exception):
    """The node cannot start; the message says what to fix."""


class OwnKeyUnusable(StartupError):
    """The manifest does not let this node sign with its key, or does not list the node."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
        """``node_not_listed``, ``signing_key_not_listed``, ``signing_key_revoked`` or
        ``signing_key_not_current``: the label a refused reload is counted under."""


def check_own_key(manifest: Manifest, node_id: str, key: SigningKey, now: float) -> None:
    """Refuse a manifest that does not let this node sign with ``key`` at ``now``."""
    member = manifest.member(node_id)
    if member is None:
        raise OwnKeyUnusable(
            f"manifest version {manifest.version} does not list this node {node_id}",
            "node_not_listed",
        )
    entry = member.key(key.key_id)
    if entry is None or not entry.usable_at(now):
        state = "not listed" if entry is None else "revoked" if entry.revoked else "not current"
        raise OwnKeyUnusable(
            f"signing key {key.key_id} is {state} for {node_id} in manifest version "
            f"{manifest.version}",
            "signing_key_" + state.replace(" ", "_"),
        )


def check_own_certificate(cert_pem: bytes, node_id: str, where: str) -> None:
    """Refuse a TLS certificate that speaks for another node than ``node_id``: peers (and
    this node's own replicas) would take this process for that node."""
    named = certificate_node_id(cert_pem, where)
    if named != node_id:
        raise StartupError(
            f"TLS certificate {where} is for {named}, not for this node {node_id}; give it "
            f"{node_id}'s certificate and key"
        )


def reload_failure_reason(exc: Exception) -> str:
    """The ``reason`` label of a refused reload: what was wrong, not which layer noticed."""
    if isinstance(exc, OwnKeyUnusable):
        return exc.reason
    if isinstance(exc, KeyFileError):
        return "signing_key_unreadable"
    if isinstance(exc, ConfigError):
        return "config_invalid"
    if isinstance(exc, FileNotFoundError):
        return "file_missing"
    if isinstance(exc, OSError):
        return "file_unreadable"
    # ManifestSignatureInvalid -> manifest_signature_invalid: codes are snake_case.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
