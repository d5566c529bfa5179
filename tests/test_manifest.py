from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from node.trust.keys import SigningKey
from node.trust.manifest import (
    MANIFEST_PREFIX,
    KeyEntry,
    Manifest,
    ManifestDowngrade,
    ManifestExpired,
    ManifestMalformed,
    ManifestSignatureInvalid,
    ManifestUnsigned,
    Member,
    canonical_json,
    format_time,
    load_manifest,
    sign_manifest,
    verify_manifest,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0


@pytest.fixture(scope="module")
def governance() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def member_key() -> SigningKey:
    return SigningKey.generate()


def make_manifest(member_key: SigningKey, *, version: int = 3) -> Manifest:
    entry = KeyEntry(member_key.key_id, member_key.verify_key, NOW - 60, NOW + 365 * DAY)
    return Manifest(
        federation="yangtze-river-delta",
        version=version,
        issued_at=NOW,
        expires_at=NOW + 90 * DAY,
        members=(
            Member(
                node_id="node-310000",
                province="shanghai",
                code="310000",
                endpoint="127.0.0.1:7101",
                keys=(entry,),
                may_send=frozenset({"heartbeat", "probe"}),
            ),
        ),
    )


@pytest.fixture
def manifest(member_key: SigningKey) -> Manifest:
    return make_manifest(member_key)


@pytest.fixture
def signed(manifest: Manifest, governance: SigningKey) -> bytes:
    return sign_manifest(manifest, governance)


def edit(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    document = json.loads(data)
    change(document)
    return json.dumps(document).encode()


def resign(data: bytes, key: SigningKey, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Apply ``change`` to the manifest object and sign the result properly with ``key``."""
    document = json.loads(data)
    change(document["manifest"])
    signature = key.sign(MANIFEST_PREFIX + canonical_json(document["manifest"]))
    document["signature"] = {
        "key_id": key.key_id,
        "value": base64.b64encode(signature).decode(),
    }
    return json.dumps(document).encode()


def test_a_signed_manifest_verifies_and_round_trips(
    manifest: Manifest, signed: bytes, governance: SigningKey
) -> None:
    """A manifest signed by the governance key verifies and parses back to what was signed."""
    loaded = verify_manifest(signed, [governance.verify_key], now=NOW)
    assert loaded == manifest
    assert loaded.raw == signed
    assert loaded.member("node-310000") == manifest.members[0]
    assert loaded.member_for_province("shanghai") == manifest.members[0]
    assert loaded.member("node-999999") is None


def test_load_manifest_reads_a_file(tmp_path: Path, signed: bytes, governance: SigningKey) -> None:
    """load_manifest verifies a file's bytes; a missing file is malformed, named by path."""
    path = tmp_path / "manifest.json"
    path.write_bytes(signed)
    assert load_manifest(path, [governance.verify_key], now=NOW).version == 3
    with pytest.raises(ManifestMalformed, match=r"missing\.json"):
        load_manifest(tmp_path / "missing.json", [governance.verify_key], now=NOW)


def test_reformatting_the_file_keeps_it_valid(signed: bytes, governance: SigningKey) -> None:
    """The signature covers canonical JSON, so whitespace and key order do not matter."""
    compact = json.dumps(json.loads(signed), separators=(",", ":")).encode()
    assert verify_manifest(compact, [governance.verify_key], now=NOW).version == 3


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("signature"),
        lambda d: d["signature"].pop("value"),
        lambda d: d["signature"].update(value=""),
        lambda d: d.update(signature="governance"),
    ],
    ids=["no-signature", "no-value", "empty-value", "not-an-object"],
)
def test_an_unsigned_manifest_is_refused(
    signed: bytes, governance: SigningKey, change: Callable[[dict[str, Any]], None]
) -> None:
    """A manifest without a governance signature is ManifestUnsigned."""
    with pytest.raises(ManifestUnsigned):
        verify_manifest(edit(signed, change), [governance.verify_key], now=NOW)


def test_a_tampered_endpoint_is_refused(signed: bytes, governance: SigningKey) -> None:
    """Changing an endpoint under the original signature is ManifestSignatureInvalid."""

    def redirect(document: dict[str, Any]) -> None:
        document["manifest"]["members"][0]["endpoint"] = "203.0.113.7:7101"

    with pytest.raises(ManifestSignatureInvalid, match="altered"):
        verify_manifest(edit(signed, redirect), [governance.verify_key], now=NOW)


def test_a_signature_that_is_not_base64_is_refused(signed: bytes, governance: SigningKey) -> None:
    """A signature value that is not base64 is ManifestSignatureInvalid."""

    def garble(document: dict[str, Any]) -> None:
        document["signature"]["value"] = "not base64!"

    with pytest.raises(ManifestSignatureInvalid, match="base64"):
        verify_manifest(edit(signed, garble), [governance.verify_key], now=NOW)


def test_a_manifest_signed_by_another_key_is_refused(
    manifest: Manifest, governance: SigningKey, member_key: SigningKey
) -> None:
    """A manifest signed by a key that is not a governance key is ManifestSignatureInvalid."""
    forged = sign_manifest(manifest, member_key)
    with pytest.raises(ManifestSignatureInvalid, match=member_key.key_id):
        verify_manifest(forged, [governance.verify_key], now=NOW)


def test_another_keys_signature_under_the_governance_key_id_is_refused(
    manifest: Manifest, governance: SigningKey, member_key: SigningKey
) -> None:
    """Claiming the governance key id does not help a signature made by another key."""
    forged = edit(
        sign_manifest(manifest, member_key),
        lambda d: d["signature"].update(key_id=governance.key_id),
    )
    with pytest.raises(ManifestSignatureInvalid, match="altered"):
        verify_manifest(forged, [governance.verify_key], now=NOW)


def test_any_configured_governance_key_may_sign(manifest: Manifest, governance: SigningKey) -> None:
    """With two trust anchors configured, a manifest signed by the second verifies."""
    second = SigningKey.generate()
    data = sign_manifest(manifest, second)
    anchors = [governance.verify_key, second.verify_key]
    assert verify_manifest(data, anchors, now=NOW) == manifest


def test_an_expired_manifest_is_refused(
    manifest: Manifest, signed: bytes, governance: SigningKey
) -> None:
    """From its expiry instant on, a manifest is ManifestExpired, naming the expiry."""
    assert verify_manifest(signed, [governance.verify_key], now=manifest.expires_at - 1)
    with pytest.raises(ManifestExpired, match=format_time(manifest.expires_at)):
        verify_manifest(signed, [governance.verify_key], now=manifest.expires_at)


def test_an_older_version_is_a_downgrade(
    manifest: Manifest, member_key: SigningKey, governance: SigningKey
) -> None:
    """A manifest older than the one held is ManifestDowngrade."""
    older = sign_manifest(make_manifest(member_key, version=2), governance)
    with pytest.raises(ManifestDowngrade, match="older"):
        verify_manifest(older, [governance.verify_key], now=NOW, current=manifest)


def test_same_version_with_other_content_is_a_downgrade(
    manifest: Manifest, signed: bytes, governance: SigningKey
) -> None:
    """The same version with different content is ManifestDowngrade; identical is accepted."""
    held = verify_manifest(signed, [governance.verify_key], now=NOW)
    assert verify_manifest(signed, [governance.verify_key], now=NOW, current=held) == held
    moved = held.with_member(replace(held.members[0], endpoint="127.0.0.1:9999"))
    changed = sign_manifest(moved, governance)
    with pytest.raises(ManifestDowngrade, match="same version"):
        verify_manifest(changed, [governance.verify_key], now=NOW, current=held)


def test_a_newer_version_replaces_the_held_one(
    manifest: Manifest, member_key: SigningKey, governance: SigningKey
) -> None:
    """A higher version is accepted over the held manifest."""
    newer = sign_manifest(make_manifest(member_key, version=4), governance)
    assert verify_manifest(newer, [governance.verify_key], now=NOW, current=manifest).version == 4


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe", b"[]", b'{"signature": {}}'])
def test_a_file_that_is_not_a_manifest_document_is_malformed(
    governance: SigningKey, data: bytes
) -> None:
    """Bytes that are not a JSON manifest document are ManifestMalformed."""
    with pytest.raises(ManifestMalformed):
        verify_manifest(data, [governance.verify_key], now=NOW)


def _drop(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target: Any = body
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return change


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target: Any = body
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_drop("version"), "manifest.version"),
        (_set("3", "version"), "manifest.version"),
        (_set(True, "version"), "manifest.version"),
        (_drop("federation"), "manifest.federation"),
        (_drop("members"), "manifest.members"),
        (_set({}, "members"), "manifest.members"),
        (_set(["x"], "members"), r"manifest.members\[0\]"),
        (_drop("members", 0, "endpoint"), r"manifest.members\[0\].endpoint"),
        (_drop("members", 0, "policy"), r"manifest.members\[0\].policy"),
        (_drop("members", 0, "policy", "may_send"), r"manifest.members\[0\].policy.may_send"),
        (
            _drop("members", 0, "signing_keys", 0, "public_key"),
            r"manifest.members\[0\].signing_keys\[0\].public_key",
        ),
        (
            _set("AAAA", "members", 0, "signing_keys", 0, "public_key"),
            r"manifest.members\[0\].signing_keys\[0\].public_key",
        ),
        (_set("2026-01-01", "issued_at"), "manifest.issued_at"),
        (_set(1767225600, "expires_at"), "manifest.expires_at"),
        (_set("2026-01-01T00:00:00+08:00", "expires_at"), "manifest.expires_at"),
        (
            _set("2026-13-01T00:00:00Z", "members", 0, "signing_keys", 0, "not_after"),
            r"manifest.members\[0\].signing_keys\[0\].not_after",
        ),
    ],
    ids=[
        "no-version",
        "version-string",
        "version-bool",
        "no-federation",
        "no-members",
        "members-object",
        "member-not-object",
        "no-endpoint",
        "no-policy",
        "no-may-send",
        "no-public-key",
        "short-public-key",
        "date-only",
        "epoch-number",
        "offset-time",
        "month-13",
    ],
)
def test_malformed_fields_are_named(
    signed: bytes,
    governance: SigningKey,
    change: Callable[[dict[str, Any]], None],
    named: str,
) -> None:
    """A properly signed manifest with a missing or ill-typed field is ManifestMalformed
    naming that field."""
    with pytest.raises(ManifestMalformed, match=named):
        verify_manifest(resign(signed, governance, change), [governance.verify_key], now=NOW)


def test_a_key_id_that_does_not_match_its_public_key_is_malformed(
    signed: bytes, governance: SigningKey
) -> None:
    """A signing key listed under another key's id is ManifestMalformed."""
    other = SigningKey.generate()
    change = _set(other.key_id, "members", 0, "signing_keys", 0, "key_id")
    with pytest.raises(ManifestMalformed, match="does not match its public key"):
        verify_manifest(resign(signed, governance, change), [governance.verify_key], now=NOW)


def test_a_node_id_listed_twice_is_malformed(manifest: Manifest, governance: SigningKey) -> None:
    """Two members with one node id are ManifestMalformed."""
    doubled = replace(manifest, members=manifest.members * 2)
    with pytest.raises(ManifestMalformed, match="twice"):
        verify_manifest(sign_manifest(doubled, governance), [governance.verify_key], now=NOW)


def test_key_entry_is_usable_only_inside_its_window(member_key: SigningKey) -> None:
    """A key verifies from not_before through not_after inclusive, and never when revoked."""
    entry = KeyEntry(member_key.key_id, member_key.verify_key, NOW, NOW + DAY)
    assert not entry.usable_at(NOW - 1)
    assert entry.usable_at(NOW)
    assert entry.usable_at(NOW + DAY)
    assert not entry.usable_at(NOW + DAY + 1)
    revoked = replace(entry, revoked=True)
    assert not revoked.usable_at(NOW)
    assert not revoked.usable_at(NOW + DAY / 2)


def test_revocation_survives_the_round_trip(manifest: Manifest, governance: SigningKey) -> None:
    """A key marked revoked in the file is revoked after loading, and still listed."""
    member = manifest.members[0]
    revoked = manifest.with_member(
        replace(member, keys=tuple(replace(k, revoked=True) for k in member.keys))
    )
    loaded = verify_manifest(sign_manifest(revoked, governance), [governance.verify_key], now=NOW)
    (key,) = loaded.members[0].keys
    assert key.revoked
    assert not key.usable_at(NOW)
    assert key.key_id in loaded.all_keys()


def test_format_time_is_utc_to_the_second() -> None:
    """Times are written as UTC with a Z, to the second."""
    assert format_time(NOW) == "2026-01-01T00:00:00Z"
    assert format_time(NOW + 0.9) == "2026-01-01T00:00:00Z"


def test_a_lone_surrogate_is_malformed_not_a_crash(signed: bytes, governance: SigningKey) -> None:
    """A JSON string holding a lone UTF-16 surrogate escape is ManifestMalformed."""
    data = signed.replace(b'"yangtze-river-delta"', b'"\\ud800"')
    with pytest.raises(ManifestMalformed):
        verify_manifest(data, [governance.verify_key], now=NOW)


def test_a_revoked_flag_that_is_not_a_boolean_is_malformed(
    signed: bytes, governance: SigningKey
) -> None:
    """revoked must be a JSON boolean; the string "false" is ManifestMalformed."""
    change = _set("false", "members", 0, "signing_keys", 0, "revoked")
    with pytest.raises(ManifestMalformed, match="revoked"):
        verify_manifest(resign(signed, governance, change), [governance.verify_key], now=NOW)
