"""The federation manifest: who the members are, where they listen, which keys speak for
them, what each may send and ask for, and until when all of that may be trusted.

Rules kept here:
- A manifest is JSON ``{"manifest": {...}, "signature": {"key_id", "value"}}``; the signature
  is Ed25519 by a governance key over ``MANIFEST_PREFIX`` + the canonical JSON of the
  ``manifest`` object (sorted keys, no spaces, UTF-8). Canonical JSON has one encoding per
  value, so verifying re-encodes the parsed object; the manifest holds no floats.
- A node accepts a manifest only if it is signed by one of its configured governance keys,
  unexpired, and not older than the one it holds (same version must mean same content).
- Signing keys carry validity windows; a key outside its window or marked revoked does not
  verify anything, from the moment the manifest that says so is loaded.
- A member's ``policy`` says what it may do::

      "policy": {
        "may_send": ["case_submit", "certificate_verify", ...],
        "may_verify": {
          "certificate_types": ["resident_id_card", "driving_licence", ...],
          "purposes": ["hotel_check_in", "matter", ...]
        }
      }

  ``may_send`` lists the payload types (``Message.body`` field names) it may send.
  ``may_verify`` lists what it may ask an issuer to verify online (``certificate_verify``):
  ``certificate_types`` are names of ``node.certificates.model.TYPES``; ``purposes`` are
  scene names (``node.certificates.policy.SCENES``) and ``"matter"``, which stands for every
  matter code of the federated catalog (免于提交). A request is allowed when both its type
  and its purpose are listed (``node.certificates.policy.check_may_verify``).
- A member's ``endpoint`` is where its node listens for gRPC; a member whose node runs as
  several replicas also lists ``"endpoints"``: every replica's, in the order peers try them,
  the first being ``endpoint`` (so a reader that knows only ``endpoint`` reaches the first
  replica). A member with one endpoint is written without ``endpoints``, so the canonical
  form, and every signature made before replicas, stays as it was. ``endpoints`` is parsed
  strictly: a non-empty list of distinct ``host:port`` strings starting with ``endpoint``.
- Secure by default: a member whose policy has no ``may_verify`` may ask for no
  certificate at all. ``may_verify`` is parsed strictly: both lists present, no other keys,
  every entry a known type or purpose token, or the manifest is refused naming the entry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from node.trust.keys import SigningKey, VerifyKey, parse_public_key
from node.trust.suites import suite_of_key_id
from node.vocabulary import CERTIFICATE_TYPES, PURPOSE_TOKENS
from node.vocabulary import PROVINCES as PROVINCES  # the one table; importable here too

MANIFEST_PREFIX = b"yrd.federation.v1/manifest\x00"


class ManifestError(Exception):
    """The manifest cannot be trusted; the message says why."""


class ManifestMalformed(ManifestError):
    pass


class ManifestUnsigned(ManifestError):
    pass


class ManifestSignatureInvalid(ManifestError):
    pass


class ManifestExpired(ManifestError):
    pass


class ManifestDowngrade(ManifestError):
    pass


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, where: str) -> float:
    try:
        parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise ManifestMalformed(
            f"{where}: {text!r} is not a UTC time like 2026-01-31T08:00:00Z"
        ) from exc
    return parsed.timestamp()


@dataclass(frozen=True)
class KeyEntry:
    """One signing key of a member, with the window in which its signatures count."""

    key_id: str
    verify_key: VerifyKey
    not_before: float
    not_after: float
    revoked: bool = False

    def usable_at(self, now: float) -> bool:
        return not self.revoked and self.not_before <= now <= self.not_after

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": self.verify_key.text,
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class VerifyPermission:
    """What a member may ask an issuer to verify online: any listed certificate type, for
    any listed purpose. The empty permission (the default) allows nothing."""

    certificate_types: frozenset[str] = frozenset()
    """Names of ``node.certificates.model.TYPES``."""
    purposes: frozenset[str] = frozenset()
    """Scene names, and ``"matter"`` for every matter code of the federated catalog."""

    def to_json(self) -> dict[str, Any]:
        return {
            "certificate_types": _in_order(self.certificate_types, CERTIFICATE_TYPES),
            "purposes": _in_order(self.purposes, PURPOSE_TOKENS),
        }


def _in_order(names: frozenset[str], table: Iterable[str]) -> list[str]:
    """``names`` in the table's order, so the signed file reads the way the code lists them;
    a name not in the table goes last, kept, for ``verify_manifest`` to refuse on publishing."""
    position = {name: index for index, name in enumerate(table)}
    return sorted(names, key=lambda name: (position.get(name, len(position)), name))


NO_CERTIFICATES = VerifyPermission()
"""The permission of a member whose policy names none: it may ask for no certificate."""


@dataclass(frozen=True)
class Member:
    """A province's node as the federation knows it."""

    node_id: str
    province: str
    code: str
    endpoint: str
    keys: tuple[KeyEntry, ...]
    may_send: frozenset[str]
    """Payload types (``Message.body`` field names) this member may send to others."""
    may_verify: VerifyPermission = NO_CERTIFICATES
    """Certificate types and purposes this member may ask issuers to verify."""
    replica_endpoints: tuple[str, ...] = ()
    """Every replica's gRPC endpoint, the first being ``endpoint``; empty for a member with
    one node (``endpoints`` reads both)."""

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Where this member's node listens, in the order peers try: every replica's
        endpoint, or the one ``endpoint``."""
        return self.replica_endpoints or (self.endpoint,)

    def key(self, key_id: str) -> KeyEntry | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "node_id": self.node_id,
            "province": self.province,
            "code": self.code,
            "endpoint": self.endpoint,
            "signing_keys": [k.to_json() for k in self.keys],
            "policy": {
                "may_send": sorted(self.may_send),
                "may_verify": self.may_verify.to_json(),
            },
        }
        if len(self.endpoints) > 1:
            document["endpoints"] = list(self.endpoints)
        return document


@dataclass(frozen=True)
class Manifest:
    federation: str
    version: int
    issued_at: float
    expires_at: float
    members: tuple[Member, ...]
    raw: bytes = field(default=b"", compare=False, repr=False)
    """The signed file's bytes, as loaded (kept for the evidence log)."""

    def member(self, node_id: str) -> Member | None:
        return next((m for m in self.members if m.node_id == node_id), None)

    def member_for_province(self, province: str) -> Member | None:
        return next((m for m in self.members if m.province == province), None)

    def expired_at(self, now: float) -> bool:
        return now >= self.expires_at

    def all_keys(self) -> dict[str, VerifyKey]:
        """Every key ever listed, revoked or not: old evidence must stay verifiable."""
        return {k.key_id: k.verify_key for m in self.members for k in m.keys}

    def to_json(self) -> dict[str, Any]:
        return {
            "federation": self.federation,
            "version": self.version,
            "issued_at": format_time(self.issued_at),
            "expires_at": format_time(self.expires_at),
            "members": [m.to_json() for m in self.members],
        }

    def with_member(self, member: Member) -> Manifest:
        members = tuple(member if m.node_id == member.node_id else m for m in self.members)
        return replace(self, members=members)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_manifest(manifest: Manifest, governance_key: SigningKey) -> bytes:
    body = manifest.to_json()
    signature = governance_key.sign(MANIFEST_PREFIX + canonical_json(body))
    document = {
        "manifest": body,
        "signature": {
            "key_id": governance_key.key_id,
            "value": base64.b64encode(signature).decode("ascii"),
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True).encode() + b"\n"


def _require(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestMalformed(f"{where}.{key} is missing or not a {kind.__name__}")
    return value


def _parse_key(obj: Any, where: str) -> KeyEntry:
    if not isinstance(obj, dict):
        raise ManifestMalformed(f"{where} is not an object")
    key_id = _require(obj, "key_id", str, where)
    try:
        suite = suite_of_key_id(key_id)
    except ValueError as exc:
        raise ManifestMalformed(f"{where}.key_id: {exc}") from exc
    try:
        verify_key = parse_public_key(_require(obj, "public_key", str, where), suite)
    except ValueError as exc:
        raise ManifestMalformed(f"{where}.public_key: {exc}") from exc
    if verify_key.key_id != key_id:
        raise ManifestMalformed(f"{where}.key_id {key_id} does not match its public key")
    revoked = obj.get("revoked", False)
    if not isinstance(revoked, bool):
        raise ManifestMalformed(f"{where}.revoked must be true or false, not {revoked!r}")
    entry = KeyEntry(
        key_id=key_id,
        verify_key=verify_key,
        not_before=parse_time(_require(obj, "not_before", str, where), f"{where}.not_before"),
        not_after=parse_time(_require(obj, "not_after", str, where), f"{where}.not_after"),
        revoked=revoked,
    )
    if entry.not_before > entry.not_after:
        raise ManifestMalformed(f"{where}: not_before is after not_after")
    return entry


def _parse_names(
    obj: Mapping[str, Any], key: str, known: Iterable[str], where: str
) -> frozenset[str]:
    names = _require(obj, key, list, where)
    allowed = tuple(known)
    for index, name in enumerate(names):
        if not isinstance(name, str) or name not in allowed:
            raise ManifestMalformed(
                f"{where}.{key}[{index}] is {name!r}, not one of {', '.join(allowed)}"
            )
    return frozenset(names)


def _parse_may_verify(policy: Mapping[str, Any], where: str) -> VerifyPermission:
    if "may_verify" not in policy:
        return NO_CERTIFICATES
    obj = _require(policy, "may_verify", dict, where)
    where = f"{where}.may_verify"
    for key in obj:
        if key not in ("certificate_types", "purposes"):
            raise ManifestMalformed(
                f"{where}.{key} is not a field here (certificate_types, purposes)"
            )
    return VerifyPermission(
        certificate_types=_parse_names(obj, "certificate_types", CERTIFICATE_TYPES, where),
        purposes=_parse_names(obj, "purposes", PURPOSE_TOKENS, where),
    )


MAX_ENDPOINTS = 64
"""The most endpoints one member may list (a bound on what a peer dials)."""


def _parse_endpoints(obj: Mapping[str, Any], endpoint: str, where: str) -> tuple[str, ...]:
    """A member's ``endpoints`` (module rules); () when it lists none or only ``endpoint``."""
    if "endpoints" not in obj:
        return ()
    listed = _require(obj, "endpoints", list, where)
    where = f"{where}.endpoints"
    if not listed or len(listed) > MAX_ENDPOINTS:
        raise ManifestMalformed(f"{where} must list 1 to {MAX_ENDPOINTS} endpoints")
    for index, address in enumerate(listed):
        host, colon, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
        if not (host and colon and port.isdigit() and 0 < int(port) <= 65535):
            raise ManifestMalformed(f"{where}[{index}] is {address!r}, not a host:port address")
    if len(set(listed)) != len(listed):
        raise ManifestMalformed(f"{where} lists one endpoint twice")
    if listed[0] != endpoint:
        raise ManifestMalformed(
            f"{where}[0] is {listed[0]!r}; it must be the member's endpoint {endpoint!r}"
        )
    return tuple(listed) if len(listed) > 1 else ()


def _parse_member(obj: Any, where: str) -> Member:
    if not isinstance(obj, dict):
        raise ManifestMalformed(f"{where} is not an object")
    keys = _require(obj, "signing_keys", list, where)
    policy = _require(obj, "policy", dict, where)
    may_send = _require(policy, "may_send", list, f"{where}.policy")
    province = _require(obj, "province", str, where)
    code = _require(obj, "code", str, where)
    if PROVINCES.get(province, (code,))[0] != code:
        raise ManifestMalformed(
            f"{where}.code {code} is not the GB/T 2260 code of {province} "
            f"({PROVINCES[province][0]})"
        )
    endpoint = _require(obj, "endpoint", str, where)
    return Member(
        node_id=_require(obj, "node_id", str, where),
        province=province,
        code=code,
        endpoint=endpoint,
        replica_endpoints=_parse_endpoints(obj, endpoint, where),
        keys=tuple(_parse_key(k, f"{where}.signing_keys[{i}]") for i, k in enumerate(keys)),
        may_send=frozenset(str(t) for t in may_send),
        may_verify=_parse_may_verify(policy, f"{where}.policy"),
    )


def parse_manifest_body(body: Any) -> Manifest:
    if not isinstance(body, dict):
        raise ManifestMalformed("manifest is not an object")
    members = _require(body, "members", list, "manifest")
    parsed = tuple(_parse_member(m, f"manifest.members[{i}]") for i, m in enumerate(members))
    ids = [m.node_id for m in parsed]
    if len(set(ids)) != len(ids):
        raise ManifestMalformed("manifest.members lists a node id twice")
    key_ids = [k.key_id for m in parsed for k in m.keys]
    if len(set(key_ids)) != len(key_ids):
        raise ManifestMalformed("manifest lists one signing key twice (keys are never shared)")
    return Manifest(
        federation=_require(body, "federation", str, "manifest"),
        version=_require(body, "version", int, "manifest"),
        issued_at=parse_time(_require(body, "issued_at", str, "manifest"), "manifest.issued_at"),
        expires_at=parse_time(_require(body, "expires_at", str, "manifest"), "manifest.expires_at"),
        members=parsed,
    )


def verify_manifest(
    data: bytes,
    governance_keys: Iterable[VerifyKey],
    *,
    now: float | None,
    current: Manifest | None = None,
) -> Manifest:
    """Parse and check a signed manifest file's bytes; raise a ManifestError saying why not.

    ``now=None`` skips the expiry check: a node reads its held manifest that way, to learn
    what it trusted even after that trust ran out.
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestMalformed(f"manifest is not UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict) or "manifest" not in document:
        raise ManifestMalformed('manifest file has no "manifest" object')
    signature = document.get("signature")
    if not isinstance(signature, dict) or not signature.get("value"):
        raise ManifestUnsigned("manifest carries no governance signature")
    anchors = {k.key_id: k for k in governance_keys}
    anchor = anchors.get(str(signature.get("key_id")))
    if anchor is None:
        raise ManifestSignatureInvalid(
            f"manifest is signed by {signature.get('key_id')!r}, not a configured governance key"
        )
    try:
        value = base64.b64decode(str(signature["value"]), validate=True)
    except ValueError as exc:
        raise ManifestSignatureInvalid("manifest signature is not base64") from exc
    try:
        signed = MANIFEST_PREFIX + canonical_json(document["manifest"])
    except UnicodeEncodeError as exc:
        raise ManifestMalformed(f"manifest holds text that is not valid Unicode: {exc}") from exc
    if not anchor.verify(value, signed):
        raise ManifestSignatureInvalid("manifest signature does not verify: it was altered")
    manifest = replace(parse_manifest_body(document["manifest"]), raw=data)
    if now is not None and manifest.expired_at(now):
        raise ManifestExpired(
            f"manifest version {manifest.version} expired at {format_time(manifest.expires_at)}"
        )
    if current is not None:
        if manifest.version < current.version:
            raise ManifestDowngrade(
                f"manifest version {manifest.version} is older than the held version "
                f"{current.version}"
            )
        if manifest.version == current.version and manifest != current:
            raise ManifestDowngrade(
                f"manifest version {manifest.version} differs from the held manifest of the "
                "same version; a change must raise the version"
            )
    return manifest


def load_manifest(
    path: Path,
    governance_keys: Iterable[VerifyKey],
    *,
    now: float,
    current: Manifest | None = None,
) -> Manifest:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestMalformed(f"cannot read manifest {path}: {exc.strerror}") from exc
    return verify_manifest(data, governance_keys, now=now, current=current)
