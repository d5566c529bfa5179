"""Every refusal the protocol can give, with its stable code and the gRPC status that fits.

The code (``FaultCode.value``) is what peers, metrics labels, logs and problem documents
carry; it never changes meaning once released. The human text names the field at fault.
"""

from __future__ import annotations

import enum

import grpc


class FaultCode(enum.Enum):
    MESSAGE_TOO_LARGE = "message_too_large"
    MALFORMED_ENVELOPE = "malformed_envelope"
    MALFORMED_MESSAGE = "malformed_message"
    SENDER_MISMATCH = "sender_mismatch"
    UNKNOWN_SENDER = "unknown_sender"
    UNKNOWN_KEY = "unknown_key"
    KEY_NOT_CURRENT = "key_not_current"
    KEY_REVOKED = "key_revoked"
    BAD_SIGNATURE = "bad_signature"
    WRONG_RECIPIENT = "wrong_recipient"
    CLOCK_SKEW = "clock_skew"
    REPLAY_MISMATCH = "replay_mismatch"
    PAYLOAD_NOT_ALLOWED = "payload_not_allowed"
    INVALID_PAYLOAD = "invalid_payload"
    MANIFEST_EXPIRED = "manifest_expired"
    UNAVAILABLE = "unavailable"
    STORE_UNAVAILABLE = "store_unavailable"
    # Case refusals: the handling node's answer to a case message it cannot apply.
    UNKNOWN_CASE = "unknown_case"
    ILLEGAL_TRANSITION = "illegal_transition"
    WRONG_SIDE = "wrong_side"
    SEQUENCE_CONFLICT = "sequence_conflict"
    SEQUENCE_GAP = "sequence_gap"
    # Certificate refusals: the issuer's answer to a verification it will not attest.
    UNKNOWN_ISSUER = "unknown_issuer"
    # The manifest does not let the requester ask for this certificate type or purpose.
    CERTIFICATE_NOT_PERMITTED = "certificate_not_permitted"
    CERTIFICATE_NOT_FOUND = "certificate_not_found"
    HOLDER_MISMATCH = "holder_mismatch"
    PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
    FIELD_NOT_ALLOWED = "field_not_allowed"
    CONSENT_REQUIRED = "consent_required"
    CONSENT_EXPIRED = "consent_expired"
    CONSENT_MISMATCH = "consent_mismatch"
    CONSENT_UNVERIFIABLE = "consent_unverifiable"
    LIBRARY_UNAVAILABLE = "library_unavailable"
    # A witness's refusal of a checkpoint that does not extend the one it cosigned before:
    # the log was rewritten, cut short, or shown otherwise to another peer (a fork).
    LOG_INCONSISTENT = "log_inconsistent"

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return _STATUS[self]

    @property
    def is_permanent(self) -> bool:
        """Whether re-sending the same bytes can never succeed (so a sender should park it)."""
        return self not in _TRANSIENT

    @property
    def is_decision(self) -> bool:
        """Whether the refusal is the peer's final answer to a request (a case action it
        will not apply), not a failure to deliver: the sender records the answer and does
        not park the message for an operator."""
        return self in _DECISIONS


_STATUS: dict[FaultCode, grpc.StatusCode] = {
    FaultCode.MESSAGE_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FaultCode.MALFORMED_ENVELOPE: grpc.StatusCode.INVALID_ARGUMENT,
    FaultCode.MALFORMED_MESSAGE: grpc.StatusCode.INVALID_ARGUMENT,
    FaultCode.SENDER_MISMATCH: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.UNKNOWN_SENDER: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.UNKNOWN_KEY: grpc.StatusCode.UNAUTHENTICATED,
    FaultCode.KEY_NOT_CURRENT: grpc.StatusCode.UNAUTHENTICATED,
    FaultCode.KEY_REVOKED: grpc.StatusCode.UNAUTHENTICATED,
    FaultCode.BAD_SIGNATURE: grpc.StatusCode.UNAUTHENTICATED,
    FaultCode.WRONG_RECIPIENT: grpc.StatusCode.INVALID_ARGUMENT,
    FaultCode.CLOCK_SKEW: grpc.StatusCode.FAILED_PRECONDITION,
    FaultCode.REPLAY_MISMATCH: grpc.StatusCode.ALREADY_EXISTS,
    FaultCode.PAYLOAD_NOT_ALLOWED: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.INVALID_PAYLOAD: grpc.StatusCode.INVALID_ARGUMENT,
    FaultCode.MANIFEST_EXPIRED: grpc.StatusCode.FAILED_PRECONDITION,
    FaultCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    FaultCode.STORE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    FaultCode.UNKNOWN_CASE: grpc.StatusCode.NOT_FOUND,
    FaultCode.ILLEGAL_TRANSITION: grpc.StatusCode.FAILED_PRECONDITION,
    FaultCode.WRONG_SIDE: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.SEQUENCE_CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    FaultCode.SEQUENCE_GAP: grpc.StatusCode.FAILED_PRECONDITION,
    FaultCode.UNKNOWN_ISSUER: grpc.StatusCode.INVALID_ARGUMENT,
    FaultCode.CERTIFICATE_NOT_PERMITTED: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.CERTIFICATE_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    FaultCode.HOLDER_MISMATCH: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.PURPOSE_NOT_ALLOWED: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.FIELD_NOT_ALLOWED: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.CONSENT_REQUIRED: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.CONSENT_EXPIRED: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.CONSENT_MISMATCH: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.CONSENT_UNVERIFIABLE: grpc.StatusCode.PERMISSION_DENIED,
    FaultCode.LIBRARY_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    FaultCode.LOG_INCONSISTENT: grpc.StatusCode.FAILED_PRECONDITION,
}

# Refusals that depend on the receiver's or sender's current state (clocks, keys about to be
# published, a manifest being renewed), so the same bytes may pass later.
_TRANSIENT = frozenset(
    {
        FaultCode.CLOCK_SKEW,
        FaultCode.UNKNOWN_KEY,
        FaultCode.MANIFEST_EXPIRED,
        FaultCode.UNAVAILABLE,
        # The receiver's disk is full or failing; it keeps nothing until it recovers.
        FaultCode.STORE_UNAVAILABLE,
        # An update too far ahead of the ones applied: the earlier ones are on their way.
        FaultCode.SEQUENCE_GAP,
        # The issuer's province platform did not answer; ask again later.
        FaultCode.LIBRARY_UNAVAILABLE,
    }
)

_DECISIONS = frozenset({FaultCode.UNKNOWN_CASE, FaultCode.ILLEGAL_TRANSITION, FaultCode.WRONG_SIDE})


class Refusal(Exception):
    """A message was refused. Carries everything a signed Fault needs."""

    def __init__(
        self,
        code: FaultCode,
        text: str,
        *,
        field: str = "",
        message_id: str = "",
        digest: bytes = b"",
    ) -> None:
        super().__init__(f"{code.value}: {text}")
        self.code = code
        self.text = text
        self.field = field
        self.message_id = message_id
        self.digest = digest
