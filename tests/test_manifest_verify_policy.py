"""The certificate part of a member's manifest policy (``policy.may_verify``): how it is
written, parsed and refused, and the one check both the requester and the issuer run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from node.certificates.model import TYPES
from node.certificates.policy import (
    MATTER,
    PURPOSE_TOKENS,
    SCENES,
    PolicyRefusal,
    certificate_type_of,
    check_may_verify,
    purpose_token,
)
from node.cli.main import main
from node.identifiers import make_certificate_id, parse_certificate_id
from node.mesh.layout import DEFAULT_MAY_VERIFY, init_mesh
from node.trust.keys import SigningKey
from node.trust.manifest import (
    NO_CERTIFICATES,
    Manifest,
    ManifestMalformed,
    ManifestSignatureInvalid,
    Member,
    VerifyPermission,
    sign_manifest,
    verify_manifest,
)
from tests.certificate_samples import sample_json
from tests.test_manifest import NOW, make_manifest, resign

MATTER_CODE = "1" * 31  # only its kind matters here: not a scene, so a matter code
MAY_VERIFY = ("members", 0, "policy", "may_verify")


@pytest.fixture(scope="module")
def governance() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def member_key() -> SigningKey:
    return SigningKey.generate()


def restricted(member_key: SigningKey) -> Manifest:
    manifest = make_manifest(member_key)
    permission = VerifyPermission(
        certificate_types=frozenset({"resident_id_card", "driving_licence"}),
        purposes=frozenset({"hotel_check_in", MATTER}),
    )
    return manifest.with_member(replace(manifest.members[0], may_verify=permission))


def member_with(types: set[str], purposes: set[str]) -> Member:
    manifest = make_manifest(SigningKey.generate())
    permission = VerifyPermission(frozenset(types), frozenset(purposes))
    return replace(manifest.members[0], may_verify=permission)


def change_at(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    """Set (or, for ``...``, delete) the entry at ``path`` of the manifest body."""

    def change(body: dict[str, Any]) -> None:
        target: Any = body
        for step in path[:-1]:
            target = target[step]
        if value is ...:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


# -- the manifest ------------------------------------------------------------------------------


def test_may_verify_round_trips_through_the_signed_file(
    member_key: SigningKey, governance: SigningKey
) -> None:
    """A restricted may_verify is written in the tables' order and parses back equal."""
    manifest = restricted(member_key)
    signed = sign_manifest(manifest, governance)
    policy = json.loads(signed)["manifest"]["members"][0]["policy"]
    assert policy["may_verify"] == {
        "certificate_types": ["resident_id_card", "driving_licence"],
        "purposes": ["hotel_check_in", "matter"],
    }
    loaded = verify_manifest(signed, [governance.verify_key], now=NOW)
    assert loaded == manifest
    assert loaded.members[0].may_verify == manifest.members[0].may_verify
    assert loaded.members[0].to_json() == manifest.members[0].to_json()


def test_the_signature_covers_may_verify(member_key: SigningKey, governance: SigningKey) -> None:
    """Widening a member's may_verify under the original signature is refused as altered."""
    signed = sign_manifest(restricted(member_key), governance)
    document = json.loads(signed)
    document["manifest"]["members"][0]["policy"]["may_verify"]["purposes"].append(
        "roadside_vehicle_inspection"
    )
    with pytest.raises(ManifestSignatureInvalid, match="altered"):
        verify_manifest(json.dumps(document).encode(), [governance.verify_key], now=NOW)


def test_a_policy_without_may_verify_may_ask_for_no_certificate(
    member_key: SigningKey, governance: SigningKey
) -> None:
    """Secure by default: a member whose policy lacks may_verify gets the empty permission,
    and check_may_verify refuses it every type."""
    signed = sign_manifest(restricted(member_key), governance)
    loaded = verify_manifest(
        resign(signed, governance, change_at(..., *MAY_VERIFY)), [governance.verify_key], now=NOW
    )
    member = loaded.members[0]
    assert member.may_verify == NO_CERTIFICATES
    assert member.may_verify.certificate_types == frozenset()
    assert member.may_verify.purposes == frozenset()
    with pytest.raises(PolicyRefusal) as refused:
        check_may_verify(member, "resident_id_card", "hotel_check_in")
    assert (refused.value.code, refused.value.field) == (
        "certificate_not_permitted",
        "certificate_id",
    )
    assert "may ask for none" in refused.value.detail


def test_members_built_in_code_default_to_no_certificates(member_key: SigningKey) -> None:
    """A Member constructed without may_verify may ask for nothing, and says so in its JSON."""
    member = make_manifest(member_key).members[0]
    assert member.may_verify == NO_CERTIFICATES
    assert member.to_json()["policy"]["may_verify"] == {"certificate_types": [], "purposes": []}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            change_at(["resident_id_card"], *MAY_VERIFY),
            r"policy\.may_verify is missing or not a dict",
        ),
        (
            change_at("resident_id_card", *MAY_VERIFY, "certificate_types"),
            r"policy\.may_verify\.certificate_types is missing or not a list",
        ),
        (
            change_at(..., *MAY_VERIFY, "certificate_types"),
            r"policy\.may_verify\.certificate_types is missing",
        ),
        (
            change_at({"matter": True}, *MAY_VERIFY, "purposes"),
            r"policy\.may_verify\.purposes is missing or not a list",
        ),
        (change_at(..., *MAY_VERIFY, "purposes"), r"policy\.may_verify\.purposes is missing"),
        (
            change_at(["resident_id_card", "passport"], *MAY_VERIFY, "certificate_types"),
            r"policy\.may_verify\.certificate_types\[1\] is 'passport', not one of "
            r"resident_id_card, ",
        ),
        (
            change_at([7], *MAY_VERIFY, "certificate_types"),
            r"policy\.may_verify\.certificate_types\[0\] is 7",
        ),
        (
            change_at(["hotel_check_in", "sightseeing"], *MAY_VERIFY, "purposes"),
            r"policy\.may_verify\.purposes\[1\] is 'sightseeing', not one of hotel_check_in, "
            r".*matter",
        ),
        (
            # A matter code itself is not a token: "matter" stands for all of them.
            change_at([MATTER_CODE], *MAY_VERIFY, "purposes"),
            r"policy\.may_verify\.purposes\[0\]",
        ),
        (
            change_at([None], *MAY_VERIFY, "purposes"),
            r"policy\.may_verify\.purposes\[0\] is None",
        ),
        (
            change_at(["matter"], *MAY_VERIFY, "purpose"),
            r"policy\.may_verify\.purpose is not a field here",
        ),
    ],
    ids=[
        "may-verify-list",
        "types-string",
        "no-types",
        "purposes-object",
        "no-purposes",
        "unknown-type",
        "type-number",
        "unknown-purpose",
        "matter-code-as-token",
        "purpose-null",
        "misspelt-key",
    ],
)
def test_a_malformed_may_verify_is_refused_naming_the_field(
    member_key: SigningKey,
    governance: SigningKey,
    change: Callable[[dict[str, Any]], None],
    named: str,
) -> None:
    """A properly signed manifest with an ill-formed may_verify is ManifestMalformed naming
    the member and the entry at fault."""
    signed = sign_manifest(restricted(member_key), governance)
    with pytest.raises(ManifestMalformed, match=r"manifest\.members\[0\]\." + named):
        verify_manifest(resign(signed, governance, change), [governance.verify_key], now=NOW)


def test_an_unknown_name_built_in_code_is_refused_not_dropped(
    member_key: SigningKey, governance: SigningKey
) -> None:
    """to_json keeps a name it does not know, so signing such a permission yields a manifest
    that verify_manifest (run before every publish) refuses, instead of the name vanishing."""
    manifest = make_manifest(member_key)
    permission = VerifyPermission(frozenset({"resident_id_card", "passport"}), frozenset({MATTER}))
    bad = manifest.with_member(replace(manifest.members[0], may_verify=permission))
    assert permission.to_json()["certificate_types"] == ["resident_id_card", "passport"]
    with pytest.raises(ManifestMalformed, match=r"certificate_types\[1\] is 'passport'"):
        verify_manifest(sign_manifest(bad, governance), [governance.verify_key], now=NOW)


def test_mesh_init_lets_every_member_ask_for_everything(tmp_path: Path) -> None:
    """mesh init writes DEFAULT_MAY_VERIFY for every member: all seven types, every scene and
    "matter", in the signed file itself."""
    assert DEFAULT_MAY_VERIFY.certificate_types == frozenset(TYPES)
    assert len(DEFAULT_MAY_VERIFY.certificate_types) == 7
    assert DEFAULT_MAY_VERIFY.purposes == frozenset((*SCENES, MATTER))
    manifest = init_mesh(tmp_path / "mesh", now=NOW, platforms=False)
    assert all(m.may_verify == DEFAULT_MAY_VERIFY for m in manifest.members)
    document = json.loads((tmp_path / "mesh" / "manifest.json").read_bytes())
    for member in document["manifest"]["members"]:
        assert member["policy"]["may_verify"] == {
            "certificate_types": list(TYPES),
            "purposes": list(PURPOSE_TOKENS),
        }


def test_manifest_show_json_lists_may_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yrd manifest show --json`` shows each member's certificate policy."""
    # show checks expiry against the wall clock, so the mesh is made now, not at NOW.
    mesh = tmp_path / "mesh"
    init_mesh(mesh, now=time.time(), platforms=False)
    code = main(["manifest", "show", "--dir", str(mesh), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    members = json.loads(out)["members"]
    assert {tuple(m["policy"]["may_verify"]["purposes"]) for m in members} == {PURPOSE_TOKENS}


# -- the one check -----------------------------------------------------------------------------


def test_purpose_tokens_name_scenes_by_themselves_and_everything_else_matter() -> None:
    """A scene is its own token; a matter code, or anything else that is not a scene, is
    "matter" (its form is the disclosure policy's question, asked later)."""
    for scene in SCENES:
        assert purpose_token(scene) == scene
    assert purpose_token(MATTER_CODE) == MATTER
    assert purpose_token("sightseeing") == MATTER


def test_certificate_type_of_reads_the_identifiers_type_code() -> None:
    """Each of the seven types is recognised from its identifier; a foreign type code is None."""
    for name in TYPES:
        certificate_id = parse_certificate_id(sample_json(name)["certificate_id"])
        assert certificate_type_of(certificate_id) == name
    card = parse_certificate_id(sample_json("resident_id_card")["certificate_id"])
    # The ministry that defines ID cards, with a sequence number it never gave a type.
    foreign = make_certificate_id(card.type_code[:18] + "999", card.issuer_code, "X0001")
    assert certificate_type_of(foreign) is None


@pytest.mark.parametrize(
    ("certificate_type", "purpose", "refused_field"),
    [
        ("resident_id_card", "hotel_check_in", None),
        ("resident_id_card", MATTER_CODE, None),
        ("driving_licence", "roadside_vehicle_inspection", "purpose"),
        ("marriage_certificate", MATTER_CODE, "certificate_id"),
        ("marriage_certificate", "roadside_vehicle_inspection", "certificate_id"),
        (None, "hotel_check_in", "certificate_id"),
    ],
    ids=["listed-both", "matter", "scene-not-listed", "type-not-listed", "neither", "no-type"],
)
def test_check_may_verify_needs_both_the_type_and_the_purpose_listed(
    certificate_type: Any, purpose: str, refused_field: str | None
) -> None:
    """A request passes only when its type and its purpose's token are both listed; a
    refusal is certificate_not_permitted naming certificate_id (the type) or purpose."""
    member = member_with({"resident_id_card", "driving_licence"}, {"hotel_check_in", MATTER})
    if refused_field is None:
        check_may_verify(member, certificate_type, purpose)
        return
    with pytest.raises(PolicyRefusal) as refused:
        check_may_verify(member, certificate_type, purpose)
    assert refused.value.code == "certificate_not_permitted"
    assert refused.value.field == refused_field
    assert refused.value.detail.startswith(f"{refused_field}: ")
    assert member.province in refused.value.detail


def test_matter_alone_does_not_allow_scenes_nor_scenes_matters() -> None:
    """ "matter" covers matter codes only; a scene covers only itself."""
    only_matters = member_with({"resident_id_card"}, {MATTER})
    with pytest.raises(PolicyRefusal, match="scene hotel_check_in"):
        check_may_verify(only_matters, "resident_id_card", "hotel_check_in")
    only_hotels = member_with({"resident_id_card"}, {"hotel_check_in"})
    with pytest.raises(PolicyRefusal, match="a matter code"):
        check_may_verify(only_hotels, "resident_id_card", MATTER_CODE)
