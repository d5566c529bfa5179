from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from node.mesh.layout import (
    DEFAULT_MAY_SEND,
    KeyInUse,
    MeshDirectoryNotEmpty,
    ProvincePorts,
    init_mesh,
    load_governance_key,
    node_id_for,
    ports_for,
    publish_manifest,
    read_manifest,
    revoke_signing_key,
    rotate_signing_key,
)
from node.runtime.config import load_config
from node.trust.keys import KeyFileError, VerifyKey, load_signing_key, parse_public_key
from node.trust.manifest import ManifestExpired, load_manifest, parse_time
from node.trust.tls import TlsMaterial, certificate_node_id

PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")
DAY = 86400.0
# Whole seconds: the manifest keeps times to the second.
NOW = float(int(time.time()))


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    directory = tmp_path / "mesh"
    init_mesh(directory, now=NOW)
    return directory


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def governance_anchor(directory: Path) -> VerifyKey:
    return parse_public_key((directory / "governance/governance.pub").read_text().strip())


def test_ports_default_and_shift_with_the_base_port() -> None:
    """Defaults are 7101-7104, 8101-8104 and 9101-9104 in province order; the base moves all."""
    assert [ports_for(i) for i in range(4)] == [
        ProvincePorts(grpc=7101 + i, http=8101 + i, platform=9101 + i) for i in range(4)
    ]
    assert ports_for(2, base_port=20001) == ProvincePorts(grpc=20003, http=21003, platform=22003)
    with pytest.raises(ValueError, match="outside"):
        ports_for(0, base_port=64000)


def test_node_ids_carry_the_gb_t_2260_code() -> None:
    """A node id is node- and the province's administrative code; unknown names are refused."""
    assert [node_id_for(p) for p in PROVINCES] == [
        "node-310000",
        "node-320000",
        "node-330000",
        "node-340000",
    ]
    with pytest.raises(ValueError, match="fujian"):
        node_id_for("fujian")


def test_init_creates_every_file(mesh: Path) -> None:
    """mesh init writes the CA, the governance key pair, the manifest and each province's folder."""
    expected = {
        "ca/ca.crt",
        "ca/ca.key",
        "governance/governance.key",
        "governance/governance.pub",
        "manifest.json",
    }
    for province in PROVINCES:
        expected |= {
            f"{province}/{name}"
            for name in (
                "node.toml",
                "signing.key",
                "tls.key",
                "tls.crt",
                "platform-credentials.json",
            )
        }
    assert set(files_under(mesh)) == expected
    assert not [p for p in mesh.parent.iterdir() if p != mesh], "no staging folder left behind"


def test_every_private_key_file_is_owner_only(mesh: Path) -> None:
    """Every *.key file and every platform's credentials in the mesh has mode 0600."""
    keys = sorted([*mesh.rglob("*.key"), *mesh.rglob("platform-credentials.json")])
    assert len(keys) == 2 + 3 * len(PROVINCES)
    assert {str(k.relative_to(mesh)): k.stat().st_mode & 0o777 for k in keys} == {
        str(k.relative_to(mesh)): 0o600 for k in keys
    }


def test_every_folder_of_the_mesh_is_owner_only(mesh: Path) -> None:
    """DIR and every folder in it (the CA, the governance key, each province's keys and,
    once running, its stores and logs) have mode 0700."""
    folders = [mesh, *(p for p in mesh.rglob("*") if p.is_dir())]
    assert len(folders) == 3 + len(PROVINCES)
    assert {str(f.relative_to(mesh)): f.stat().st_mode & 0o777 for f in folders} == {
        str(f.relative_to(mesh)): 0o700 for f in folders
    }


def test_governance_pub_is_base64_text_of_the_governance_key(mesh: Path) -> None:
    """governance.pub is the governance key's public half as one line of base64."""
    text = (mesh / "governance/governance.pub").read_text()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert governance_anchor(mesh).key_id == load_governance_key(mesh).key_id


@pytest.mark.parametrize("index_province", list(enumerate(PROVINCES)))
def test_node_config_loads_and_names_existing_files(
    mesh: Path, index_province: tuple[int, str]
) -> None:
    """Each node.toml loads, every path in it except the store exists, and its keys fit."""
    index, province = index_province
    config = load_config(mesh / province / "node.toml", env={})
    assert config.node_id == node_id_for(province)
    assert config.province == province
    assert config.grpc_listen == f"127.0.0.1:{7101 + index}"
    assert config.http_listen == f"127.0.0.1:{8101 + index}"
    assert [k.key_id for k in config.governance_keys] == [governance_anchor(mesh).key_id]
    paths = config.paths
    for path in (paths.manifest, paths.signing_key, paths.tls_key, paths.tls_cert, paths.ca_cert):
        assert path.is_file(), path
    assert paths.store == (mesh / province / "node.db").resolve()
    manifest = load_manifest(paths.manifest, config.governance_keys, now=NOW)
    member = manifest.member(config.node_id)
    assert member is not None
    assert [k.key_id for k in member.keys] == [load_signing_key(paths.signing_key).key_id]
    tls = TlsMaterial.load(paths.ca_cert, paths.tls_cert, paths.tls_key)
    assert certificate_node_id(tls.cert_pem) == config.node_id


def test_manifest_verifies_with_the_governance_pub(tmp_path: Path) -> None:
    """The manifest is version 1, signed by the governance key, and lists every province."""
    manifest = init_mesh(tmp_path / "mesh", now=NOW, manifest_days=30, key_days=100)
    mesh = tmp_path / "mesh"
    loaded = load_manifest(mesh / "manifest.json", [governance_anchor(mesh)], now=NOW)
    assert loaded == manifest == read_manifest(mesh, now=NOW)
    assert loaded.version == 1
    assert loaded.issued_at == NOW
    assert loaded.expires_at == NOW + 30 * DAY
    assert [(m.province, m.code, m.node_id, m.endpoint) for m in loaded.members] == [
        ("shanghai", "310000", "node-310000", "127.0.0.1:7101"),
        ("jiangsu", "320000", "node-320000", "127.0.0.1:7102"),
        ("zhejiang", "330000", "node-330000", "127.0.0.1:7103"),
        ("anhui", "340000", "node-340000", "127.0.0.1:7104"),
    ]
    for member in loaded.members:
        (key,) = member.keys
        assert (key.not_before, key.not_after, key.revoked) == (NOW - 60, NOW + 100 * DAY, False)
        assert member.may_send == frozenset(DEFAULT_MAY_SEND)


def test_base_port_moves_endpoints_and_listeners(tmp_path: Path) -> None:
    """With another base port the manifest endpoints and node.toml listeners move with it."""
    manifest = init_mesh(tmp_path / "mesh", now=NOW, base_port=17101)
    assert [m.endpoint for m in manifest.members] == [f"127.0.0.1:{17101 + i}" for i in range(4)]
    config = load_config(tmp_path / "mesh" / "anhui" / "node.toml", env={})
    assert (config.grpc_listen, config.http_listen) == ("127.0.0.1:17104", "127.0.0.1:18104")


def test_init_takes_a_subset_of_provinces(tmp_path: Path) -> None:
    """A two-province mesh has two members and two folders, ports by position."""
    manifest = init_mesh(tmp_path / "mesh", now=NOW, provinces=("zhejiang", "anhui"))
    assert [(m.node_id, m.endpoint) for m in manifest.members] == [
        ("node-330000", "127.0.0.1:7101"),
        ("node-340000", "127.0.0.1:7102"),
    ]
    assert not (tmp_path / "mesh" / "shanghai").exists()


def test_init_into_an_existing_empty_folder(tmp_path: Path) -> None:
    """An existing empty folder is fine to initialise."""
    (tmp_path / "mesh").mkdir()
    init_mesh(tmp_path / "mesh", now=NOW)
    assert (tmp_path / "mesh" / "manifest.json").is_file()


def test_init_refuses_a_non_empty_folder_and_changes_nothing(mesh: Path) -> None:
    """A second init over an existing mesh is refused and leaves every byte as it was."""
    before = files_under(mesh)
    with pytest.raises(MeshDirectoryNotEmpty, match="not empty") as raised:
        init_mesh(mesh, now=NOW)
    assert isinstance(raised.value, FileExistsError)
    assert files_under(mesh) == before
    assert [p.name for p in mesh.parent.iterdir()] == ["mesh"]


def test_init_refuses_unknown_or_repeated_provinces(tmp_path: Path) -> None:
    """Bad province lists are refused before anything is written."""
    with pytest.raises(ValueError, match="fujian"):
        init_mesh(tmp_path / "mesh", now=NOW, provinces=("shanghai", "fujian"))
    with pytest.raises(ValueError, match="distinct"):
        init_mesh(tmp_path / "mesh", now=NOW, provinces=("anhui", "anhui"))
    assert list(tmp_path.iterdir()) == []


def test_rotate_adds_a_key_and_overlaps_the_old_one(mesh: Path) -> None:
    """Rotation publishes the new key, ends the old one after the overlap, and moves the node."""
    config_path = mesh / "jiangsu" / "node.toml"
    old_id = load_signing_key(mesh / "jiangsu" / "signing.key").key_id
    later = NOW + 10 * DAY
    other_lines = [
        line for line in config_path.read_text().splitlines() if "signing_key" not in line
    ]

    new_id = rotate_signing_key(mesh, "jiangsu", now=later, overlap_days=3, key_days=200)

    manifest = read_manifest(mesh, now=later)
    assert manifest.version == 2
    assert manifest.issued_at == later
    member = manifest.member_for_province("jiangsu")
    assert member is not None
    assert [k.key_id for k in member.keys] == [old_id, new_id]
    old, new = member.keys
    assert old.not_after == later + 3 * DAY
    assert (new.not_before, new.not_after, new.revoked) == (later - 60, later + 200 * DAY, False)
    assert old.usable_at(later + 3 * DAY)
    assert not old.usable_at(later + 3 * DAY + 1)

    config = load_config(config_path, env={})
    assert config.paths.signing_key == (mesh / "jiangsu" / "signing-2.key").resolve()
    assert load_signing_key(config.paths.signing_key).key_id == new_id
    assert (mesh / "jiangsu" / "signing-2.key").stat().st_mode & 0o777 == 0o600
    assert [
        line for line in config_path.read_text().splitlines() if "signing_key" not in line
    ] == other_lines
    shanghai = manifest.member_for_province("shanghai")
    assert shanghai is not None
    assert len(shanghai.keys) == 1


def test_rotate_twice_numbers_the_files_and_retires_the_current_key(mesh: Path) -> None:
    """A second rotation writes signing-3.key and shortens the key the node signed with."""
    first = rotate_signing_key(mesh, "anhui", now=NOW)
    second = rotate_signing_key(mesh, "anhui", now=NOW + DAY, overlap_days=1)
    member = read_manifest(mesh, now=NOW + DAY).member_for_province("anhui")
    assert member is not None
    assert [k.key_id for k in member.keys][1:] == [first, second]
    assert member.keys[0].not_after == NOW + 7 * DAY, "the first key keeps its earlier end"
    assert member.keys[1].not_after == NOW + 2 * DAY
    config = load_config(mesh / "anhui" / "node.toml", env={})
    assert config.paths.signing_key.name == "signing-3.key"
    assert read_manifest(mesh, now=NOW + DAY).version == 3


def test_rotate_refuses_an_unknown_province(mesh: Path) -> None:
    """Rotating a province the manifest does not list is refused and publishes nothing."""
    with pytest.raises(ValueError, match="fujian"):
        rotate_signing_key(mesh, "fujian", now=NOW)
    assert read_manifest(mesh, now=NOW).version == 1


def test_revoke_marks_the_key_revoked(mesh: Path) -> None:
    """A revoked key is marked so in the next manifest version and verifies nothing."""
    key_id = load_signing_key(mesh / "zhejiang" / "signing.key").key_id
    manifest = revoke_signing_key(mesh, "zhejiang", key_id, now=NOW + 5, force=True)
    assert manifest == read_manifest(mesh, now=NOW + 5)
    assert manifest.version == 2
    member = manifest.member_for_province("zhejiang")
    assert member is not None
    key = member.key(key_id)
    assert key is not None
    assert key.revoked
    assert not key.usable_at(NOW + 5)
    assert revoke_signing_key(mesh, "zhejiang", key_id, now=NOW + 6).version == 2


def test_revoke_refuses_the_key_in_use_or_the_last_usable_one(mesh: Path) -> None:
    """Without force, the key a province's node.toml names is refused, and so is a
    province's last usable key when DIR holds no node.toml for it; nothing is published.
    After a rotation the old key is revoked without force."""
    key_id = load_signing_key(mesh / "zhejiang" / "signing.key").key_id
    with pytest.raises(KeyInUse, match=r"zhejiang's node signs with .* now"):
        revoke_signing_key(mesh, "zhejiang", key_id, now=NOW + 5)
    anhui = load_signing_key(mesh / "anhui" / "signing.key").key_id
    (mesh / "anhui" / "node.toml").unlink()
    with pytest.raises(KeyInUse, match="only usable signing key of anhui"):
        revoke_signing_key(mesh, "anhui", anhui, now=NOW + 5)
    assert read_manifest(mesh, now=NOW + 5).version == 1
    rotate_signing_key(mesh, "zhejiang", now=NOW + 6)
    assert revoke_signing_key(mesh, "zhejiang", key_id, now=NOW + 7).version == 3


def test_revoke_refuses_unknown_province_or_key(mesh: Path) -> None:
    """An unknown province or key id is refused with its name in the message."""
    key_id = load_signing_key(mesh / "zhejiang" / "signing.key").key_id
    with pytest.raises(ValueError, match="fujian"):
        revoke_signing_key(mesh, "fujian", key_id, now=NOW)
    with pytest.raises(ValueError, match="ed25519:nope"):
        revoke_signing_key(mesh, "zhejiang", "ed25519:nope", now=NOW)
    with pytest.raises(ValueError, match=key_id):
        revoke_signing_key(mesh, "anhui", key_id, now=NOW)
    assert read_manifest(mesh, now=NOW).version == 1


def test_publish_bumps_the_version_and_refuses_a_stale_base(mesh: Path) -> None:
    """Publishing writes version + 1; publishing from an older copy is refused."""
    base = read_manifest(mesh, now=NOW)
    published = publish_manifest(mesh, base, now=NOW + 1)
    assert (published.version, published.issued_at) == (2, NOW + 1)
    assert json.loads((mesh / "manifest.json").read_bytes())["manifest"]["version"] == 2
    with pytest.raises(ValueError, match="version 2"):
        publish_manifest(mesh, base, now=NOW + 2)
    assert read_manifest(mesh, now=NOW + 2) == published
    assert not (mesh / "manifest.json.tmp").exists()


def test_publish_refuses_a_manifest_that_would_already_be_expired(mesh: Path) -> None:
    """A manifest past its expiry is not written: nodes would refuse it."""
    base = read_manifest(mesh, now=NOW)
    before = (mesh / "manifest.json").read_bytes()
    with pytest.raises(ManifestExpired):
        publish_manifest(mesh, base, now=base.expires_at)
    assert (mesh / "manifest.json").read_bytes() == before


def test_governance_key_is_refused_when_others_can_read_it(mesh: Path) -> None:
    """A governance key with mode 0644 cannot sign anything."""
    (mesh / "governance/governance.key").chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_governance_key(mesh)


def test_manifest_times_are_utc_seconds(mesh: Path) -> None:
    """The manifest file states its times as UTC to the second."""
    body = json.loads((mesh / "manifest.json").read_bytes())["manifest"]
    assert parse_time(body["issued_at"], "issued_at") == NOW
