"""Choosing suites for a mesh: ``yrd mesh init --suite``, ``yrd manifest rotate-key --suite``
from one suite to the other with the usual overlap, ``yrd manifest show`` naming each key's
suite, key files 0600 naming their suite (read back by OpenSSL), and bad specs and keys
refused with a sentence and nothing created."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from node.mesh.layout import load_governance_key, read_manifest
from node.mesh.suite_choice import parse_suite_choice
from node.runtime.config import load_config
from node.trust.keys import load_signing_key, read_private_file
from node.trust.manifest import (
    MANIFEST_PREFIX,
    ManifestMalformed,
    canonical_json,
    verify_manifest,
)
from node.trust.suites import ED25519_SUITE, SM2_SUITE, load_private_pem
from tests.nodes import free_base_port
from tests.test_cli import PROVINCES, run

NOW_TOLERANCE = 60.0


def init(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    directory = tmp_path / "mesh"
    code, _, err = run(
        capsys, "mesh", "init", str(directory), "--base-port", str(free_base_port()), *extra
    )
    assert code == 0, err
    return directory


def suites_of(directory: Path) -> dict[str, list[str]]:
    manifest = read_manifest(directory)
    return {m.province: [k.verify_key.suite.name for k in m.keys] for m in manifest.members}


def test_suite_specs_parse_to_what_they_say() -> None:
    everyone = parse_suite_choice("sm2")
    assert [everyone.of(p).name for p in PROVINCES] == ["sm2"] * 4
    assert everyone.governance is SM2_SUITE
    mixed = parse_suite_choice("shanghai=sm2, zhejiang = sm2,jiangsu=ed25519")
    assert [mixed.of(p).name for p in PROVINCES] == ["sm2", "ed25519", "sm2", "ed25519"]
    assert mixed.governance is ED25519_SUITE
    assert parse_suite_choice("anhui=sm2,governance=sm2").governance is SM2_SUITE


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("rsa", "unknown signature suite 'rsa'; known suites: ed25519, sm2"),
        ("fujian=sm2", "'fujian', which is neither a province"),
        ("shanghai=sm2,shanghai=ed25519", "names shanghai twice"),
        ("shanghai=sm2,jiangsu", "'jiangsu' is not PROVINCE=SUITE"),
        ("shanghai=", "'shanghai=' is not PROVINCE=SUITE"),
        ("jiangsu=sm9", "unknown signature suite 'sm9'"),
        (" ", "--suite is empty"),
    ],
)
def test_a_bad_suite_spec_is_a_usage_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, said: str
) -> None:
    directory = tmp_path / "mesh"
    with pytest.raises(SystemExit) as exited:
        run(capsys, "mesh", "init", str(directory), "--suite", spec)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_mesh_init_per_member_suites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--suite shanghai=sm2,zhejiang=sm2``: those two sign with SM2 (65-byte points in the
    manifest, sm2: key ids, PKCS#8 files naming SM2, 0600), the others and the governance
    key with Ed25519; the output says who signs with what."""
    capsys.readouterr()
    directory = tmp_path / "mesh"
    code, out, err = run(
        capsys,
        "mesh",
        "init",
        str(directory),
        "--base-port",
        str(free_base_port()),
        "--suite",
        "shanghai=sm2,zhejiang=sm2",
    )
    assert code == 0, err
    assert (
        "signing suites: shanghai sm2, jiangsu ed25519, zhejiang sm2, anhui ed25519; "
        "governance key ed25519"
    ) in out
    assert suites_of(directory) == {
        "shanghai": ["sm2"],
        "jiangsu": ["ed25519"],
        "zhejiang": ["sm2"],
        "anhui": ["ed25519"],
    }
    manifest = read_manifest(directory)
    for member in manifest.members:
        [entry] = member.keys
        path = load_config(directory / member.province / "node.toml", {}).paths.signing_key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        suite, _ = load_private_pem(read_private_file(path))
        assert suite is entry.verify_key.suite
        assert load_signing_key(path).key_id == entry.key_id
        assert entry.key_id.startswith(f"{suite.name}:")
        assert len(entry.verify_key.public_bytes) == suite.public_length
    governance = json.loads((directory / "manifest.json").read_bytes())["signature"]["key_id"]
    assert governance.startswith("ed25519:")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_mesh_init_sm2_throughout_and_openssl_reads_the_key_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--suite sm2``: every member and the governance key SM2; the manifest verifies under
    the SM2 governance key, and OpenSSL names each key file's algorithm SM2."""
    directory = init(tmp_path, capsys, "--suite", "sm2")
    assert set(map(tuple, suites_of(directory).values())) == {("sm2",)}
    document = json.loads((directory / "manifest.json").read_bytes())
    assert document["signature"]["key_id"].startswith("sm2:")
    public = (directory / "governance/governance.pub").read_text().strip()
    assert len(base64.b64decode(public)) == 65
    for path in [directory / "governance/governance.key", directory / "anhui/signing.key"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        shown = subprocess.run(
            ["openssl", "pkey", "-in", str(path), "-noout", "-text"],
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert "SM2" in shown


def test_rotate_key_moves_a_province_to_sm2_with_overlap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yrd manifest rotate-key --suite sm2`` on an Ed25519 mesh: version 2 lists the new SM2
    key beside the old Ed25519 one (valid seven days more), node.toml names the new file,
    and ``manifest show`` names each key's suite, as text and as JSON."""
    directory = init(tmp_path, capsys)
    old = load_signing_key(load_config(directory / "jiangsu/node.toml", {}).paths.signing_key)
    code, out, err = run(
        capsys,
        "manifest",
        "rotate-key",
        "--dir",
        str(directory),
        "--province",
        "jiangsu",
        "--suite",
        "sm2",
    )
    assert code == 0, err
    new = load_signing_key(load_config(directory / "jiangsu/node.toml", {}).paths.signing_key)
    assert new.suite is SM2_SUITE and new.key_id.startswith("sm2:")
    assert f"jiangsu signs with {new.key_id} from now on" in out
    assert f"Its previous key {old.key_id} stays valid until" in out and "(7 days)" in out
    manifest = read_manifest(directory)
    assert manifest.version == 2
    member = manifest.member_for_province("jiangsu")
    assert member is not None
    assert [k.key_id for k in member.keys] == [old.key_id, new.key_id]
    old_entry, new_entry = member.keys
    assert old_entry.not_after <= manifest.issued_at + 7 * 86400 + NOW_TOLERANCE
    assert new_entry.usable_at(manifest.issued_at) and old_entry.usable_at(manifest.issued_at)

    code, out, err = run(capsys, "manifest", "show", "--dir", str(directory))
    assert code == 0, err
    assert "suite" in out.splitlines()[3]
    jiangsu_rows = [line.split() for line in out.splitlines() if line.startswith("jiangsu")]
    assert [(row[4], row[5]) for row in jiangsu_rows] == [
        ("ed25519", old.key_id),
        ("sm2", new.key_id),
    ]
    code, out, err = run(capsys, "manifest", "show", "--dir", str(directory), "--json")
    assert code == 0, err
    shown = next(m for m in json.loads(out)["members"] if m["province"] == "jiangsu")
    assert [k["suite"] for k in shown["signing_keys"]] == ["ed25519", "sm2"]

    # Without --suite a rotation keeps the suite the province signs with now.
    code, _, err = run(
        capsys, "manifest", "rotate-key", "--dir", str(directory), "--province", "jiangsu"
    )
    assert code == 0, err
    latest = load_signing_key(load_config(directory / "jiangsu/node.toml", {}).paths.signing_key)
    assert latest.suite is SM2_SUITE and latest.key_id != new.key_id


def test_rotate_key_to_an_unknown_suite_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = init(tmp_path, capsys)
    before = (directory / "manifest.json").read_bytes()
    with pytest.raises(SystemExit) as exited:
        run(capsys, "manifest", "rotate-key", "--dir", str(directory), "--province", "anhui",
            "--suite", "sm3")  # fmt: skip
    assert exited.value.code == 2
    assert "unknown signature suite 'sm3'" in capsys.readouterr().err
    assert (directory / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (directory / "anhui").glob("signing*")) == ["signing.key"]


def test_a_manifest_listing_an_sm2_point_off_the_curve_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A member key whose point is not on sm2p256v1 makes the manifest unusable, with the
    field named, even when the governance signature over it is good."""
    directory = init(tmp_path, capsys, "--suite", "shanghai=sm2")
    document = json.loads((directory / "manifest.json").read_bytes())
    entry = document["manifest"]["members"][0]["signing_keys"][0]
    point = bytearray(base64.b64decode(entry["public_key"]))
    point[-1] ^= 1  # y no longer matches x
    entry["public_key"] = base64.b64encode(bytes(point)).decode()
    governance = load_governance_key(directory)
    document["signature"]["value"] = base64.b64encode(
        governance.sign(MANIFEST_PREFIX + canonical_json(document["manifest"]))
    ).decode()
    with pytest.raises(ManifestMalformed, match="not a point on the sm2p256v1 curve") as refused:
        verify_manifest(json.dumps(document).encode(), [governance.verify_key], now=None)
    assert "members[0].signing_keys[0].public_key" in str(refused.value)
