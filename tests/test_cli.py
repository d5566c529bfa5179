"""The ``yrd`` command, run in-process through ``main(argv)``: mesh init, manifest show, sign,
rotate and revoke, audit verify, and federation status against live nodes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from node.api.service import start_http
from node.cli.main import main
from node.mesh.layout import load_governance_key, read_manifest
from node.runtime.config import load_config
from node.store import outbox
from node.trust.keys import load_signing_key
from node.trust.manifest import format_time, verify_manifest
from node.wire import pb
from tests.nodes import (
    config_for,
    eventually,
    free_base_port,
    make_mesh,
    running,
    settled,
    tokens_of,
)

PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``yrd ARGV`` in-process: its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``directory`` with its bytes, mode and mtime."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def mesh4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A four-province mesh made by ``yrd mesh init``."""
    directory = tmp_path / "mesh"
    code, _, err = run(capsys, "mesh", "init", str(directory), "--base-port", str(free_base_port()))
    assert code == 0, err
    return directory


# -- mesh init -----------------------------------------------------------------------------


def test_mesh_init_creates_mesh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``yrd mesh init DIR`` writes the CA, governance key, manifest and one config, signing
    key and TLS pair per province, private keys 0600."""
    directory = tmp_path / "mesh"
    code, out, err = run(
        capsys, "mesh", "init", str(directory), "--base-port", str(free_base_port())
    )
    assert code == 0, err
    assert "manifest version 1" in out and "4 provinces" in out
    assert read_manifest(directory).version == 1
    for province in PROVINCES:
        folder = directory / province
        assert load_config(folder / "node.toml", {}).province == province
        for secret in ("signing.key", "tls.key"):
            assert stat.S_IMODE((folder / secret).stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "governance/governance.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "ca/ca.key").stat().st_mode) == 0o600


def test_mesh_init_twice_refused_and_changes_nothing(
    mesh4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second ``yrd mesh init`` on the same folder fails, says why, and leaves every file
    (and the folder beside it) exactly as it was."""
    before = snapshot(mesh4)
    siblings = sorted(p.name for p in mesh4.parent.iterdir())
    code, out, err = run(capsys, "mesh", "init", str(mesh4))
    assert code != 0
    assert out == ""
    assert "already exists and is not empty" in err
    assert snapshot(mesh4) == before
    assert sorted(p.name for p in mesh4.parent.iterdir()) == siblings


# -- manifest ------------------------------------------------------------------------------


def test_manifest_show(mesh4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``yrd manifest show`` prints the verified version and all four provinces."""
    code, out, err = run(capsys, "manifest", "show", "--dir", str(mesh4))
    assert code == 0, err
    assert "version 1" in out and "signature verified" in out
    for province in PROVINCES:
        assert province in out


def test_manifest_show_json(mesh4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``yrd manifest show --json`` prints one JSON document with the members."""
    code, out, err = run(capsys, "manifest", "show", "--dir", str(mesh4), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["version"] == 1
    assert document["expired"] is False
    assert [m["province"] for m in document["members"]] == list(PROVINCES)
    assert [m["code"] for m in document["members"]] == ["310000", "320000", "330000", "340000"]


def test_manifest_show_refuses_tampered(mesh4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest whose endpoint was edited after signing is reported as untrustworthy."""
    path = mesh4 / "manifest.json"
    document = json.loads(path.read_bytes())
    document["manifest"]["members"][1]["endpoint"] = "203.0.113.9:7102"
    path.write_text(json.dumps(document), encoding="utf-8")
    for extra in ((), ("--json",)):
        code, out, err = run(capsys, "manifest", "show", "--dir", str(mesh4), *extra)
        assert code != 0
        assert out == ""
        assert "cannot be trusted" in err and "signature" in err


def write_draft(mesh: Path, path: Path, **changes: Any) -> dict[str, Any]:
    draft: dict[str, Any] = json.loads((mesh / "manifest.json").read_bytes())["manifest"]
    draft.update(changes)
    path.write_text(json.dumps(draft), encoding="utf-8")
    return draft


def test_manifest_sign(mesh4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``yrd manifest sign`` turns a draft (the manifest body, version bumped) into a file that
    verifies under the governance key."""
    draft, out_file = tmp_path / "draft.json", tmp_path / "out.json"
    write_draft(mesh4, draft, version=2)
    key = mesh4 / "governance/governance.key"
    code, out, err = run(
        capsys,
        "manifest",
        "sign",
        "--governance-key",
        str(key),
        "--in",
        str(draft),
        "--out",
        str(out_file),
    )
    assert code == 0, err
    assert "version 2" in out
    governance = load_governance_key(mesh4).verify_key
    signed = verify_manifest(out_file.read_bytes(), [governance], now=None)
    assert signed.version == 2
    assert signed.members == read_manifest(mesh4).members


def test_manifest_sign_keeps_the_drafts_issued_at_and_refuses_a_whole_signed_file(
    mesh4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The body to hand-edit is the ``"manifest"`` object: signing the whole signed file is
    refused saying so, nothing written; a draft is signed as it is, its ``issued_at`` kept."""
    key = str(mesh4 / "governance/governance.key")
    out_file = tmp_path / "out.json"
    whole = mesh4 / "manifest.json"
    code, out, err = run(
        capsys, "manifest", "sign", "--governance-key", key, "--in", str(whole),
        "--out", str(out_file),
    )  # fmt: skip
    assert code == 2 and out == ""
    assert 'the body to edit and sign is its "manifest" object alone' in err
    assert not out_file.exists()
    draft = tmp_path / "draft.json"
    body = write_draft(mesh4, draft, version=2)
    code, _, err = run(
        capsys, "manifest", "sign", "--governance-key", key, "--in", str(draft),
        "--out", str(out_file),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out_file.read_text())["manifest"]["issued_at"] == body["issued_at"]


@pytest.mark.parametrize("missing", ["federation", "expires_at", "members"])
def test_manifest_sign_refuses_draft_missing_field(
    mesh4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str
) -> None:
    """A draft without a required field is not signed: non-zero exit, the message names the
    field, and no output file is written."""
    draft, out_file = tmp_path / "draft.json", tmp_path / "out.json"
    body = write_draft(mesh4, draft, version=2)
    del body[missing]
    draft.write_text(json.dumps(body), encoding="utf-8")
    key = mesh4 / "governance/governance.key"
    code, out, err = run(
        capsys,
        "manifest",
        "sign",
        "--governance-key",
        str(key),
        "--in",
        str(draft),
        "--out",
        str(out_file),
    )
    assert code != 0
    assert out == ""
    assert f"manifest.{missing}" in err
    assert not out_file.exists()


def test_manifest_sign_unwritable_out_is_clear(
    mesh4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An --out path in a folder that does not exist is a one-line error, not a traceback."""
    draft, out_file = tmp_path / "draft.json", tmp_path / "absent" / "out.json"
    write_draft(mesh4, draft, version=2)
    key = mesh4 / "governance/governance.key"
    code, out, err = run(
        capsys,
        "manifest",
        "sign",
        "--governance-key",
        str(key),
        "--in",
        str(draft),
        "--out",
        str(out_file),
    )
    assert code != 0
    assert out == ""
    assert f"cannot write {out_file}" in err
    assert not out_file.parent.exists()


def test_manifest_rotate_key(mesh4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``yrd manifest rotate-key`` publishes version 2 with the new key listed and points the
    province's node.toml at signing-2.key."""
    old_key = load_config(mesh4 / "shanghai/node.toml", {}).paths.signing_key
    code, out, err = run(
        capsys, "manifest", "rotate-key", "--dir", str(mesh4), "--province", "shanghai"
    )
    assert code == 0, err
    assert "version 2" in out and "SIGHUP" in out
    old_id = load_signing_key(old_key).key_id
    old_entry = read_manifest(mesh4).member_for_province("shanghai").key(old_id)  # type: ignore[union-attr]
    assert old_entry is not None
    # What stays valid, and until when: the old key's new end, seven days from now.
    assert (
        f"Its previous key {old_id} stays valid until {format_time(old_entry.not_after)} (7 days)"
        in out
    )
    manifest = read_manifest(mesh4)
    assert manifest.version == 2
    config = load_config(mesh4 / "shanghai/node.toml", {})
    assert config.paths.signing_key.name == "signing-2.key"
    assert stat.S_IMODE(config.paths.signing_key.stat().st_mode) == 0o600
    member = manifest.member_for_province("shanghai")
    assert member is not None and len(member.keys) == 2
    assert old_key.exists()


def test_manifest_revoke_unknown_key_refused(
    mesh4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Revoking a key id the province does not have fails with a clear message and publishes
    nothing."""
    before = snapshot(mesh4)
    unknown = "ed25519:" + "0" * 32
    code, out, err = run(
        capsys,
        "manifest",
        "revoke-key",
        "--dir",
        str(mesh4),
        "--province",
        "shanghai",
        "--key-id",
        unknown,
    )
    assert code != 0
    assert out == ""
    assert unknown in err and "not a signing key of shanghai" in err
    assert snapshot(mesh4) == before
    assert read_manifest(mesh4).version == 1


def revoke(capsys: pytest.CaptureFixture[str], mesh: Path, key_id: str, *extra: str) -> Any:
    return run(
        capsys,
        "manifest",
        "revoke-key",
        "--dir",
        str(mesh),
        "--province",
        "shanghai",
        "--key-id",
        key_id,
        *extra,
    )


def test_revoking_the_key_a_node_signs_with_needs_force(
    mesh4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``revoke-key`` of the key Shanghai's node.toml signs with (its node not running) is
    refused (exit 1, nothing published) saying what would follow and the safe way (rotate
    first); with ``--force`` it is published and the output names the rotation that
    recovers."""
    in_use = load_signing_key(mesh4 / "shanghai/signing.key").key_id
    before = snapshot(mesh4)
    code, out, err = revoke(capsys, mesh4, in_use)
    assert (code, out) == (1, "")
    # No node runs: node.toml says which key, and the message says the node did not answer.
    assert f"not revoked: shanghai's node signs with {in_use} now (shanghai/node.toml; its " in err
    assert "is not running)" in err
    assert "every peer refuse shanghai's messages (key_revoked)" in err
    rotate = f"yrd manifest rotate-key --dir {mesh4} --province shanghai"
    assert rotate in err and "--force" in err
    assert snapshot(mesh4) == before

    code, out, err = revoke(capsys, mesh4, in_use, "--force")
    assert (code, err) == (0, "")
    assert "revoked in manifest version 2" in out
    assert "refuses shanghai's messages signed with that key (key_revoked)" in out
    assert rotate in out
    member = read_manifest(mesh4).member_for_province("shanghai")
    assert member is not None and member.key(in_use).revoked  # type: ignore[union-attr]

    # The way out: a rotation says the old key stays revoked, not that it stays valid.
    code, out, err = run(
        capsys, "manifest", "rotate-key", "--dir", str(mesh4), "--province", "shanghai"
    )
    assert code == 0, err
    assert f"Its previous key {in_use} stays revoked" in out and "stays valid" not in out
    assert "version 3" in out


def test_revoking_a_key_the_node_has_moved_off_needs_no_force(
    mesh4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After ``rotate-key`` the old key is revoked without ``--force``."""
    old = load_signing_key(mesh4 / "shanghai/signing.key").key_id
    code, _, err = run(
        capsys, "manifest", "rotate-key", "--dir", str(mesh4), "--province", "shanghai"
    )
    assert code == 0, err
    code, out, err = revoke(capsys, mesh4, old)
    assert (code, err) == (0, "")
    assert "revoked in manifest version 3" in out and "rotate-key" not in out


@pytest.mark.parametrize("unsafe", ["shanghai/signing.key", "governance/governance.key"])
def test_manifest_rotate_key_refuses_unsafe_key_file(
    mesh4: Path, capsys: pytest.CaptureFixture[str], unsafe: str
) -> None:
    """A group-readable node or governance key stops rotate-key with the chmod that fixes it,
    and nothing is published or written."""
    (mesh4 / unsafe).chmod(0o644)
    before = snapshot(mesh4)
    code, out, err = run(
        capsys, "manifest", "rotate-key", "--dir", str(mesh4), "--province", "shanghai"
    )
    assert code != 0
    assert out == ""
    assert "readable by group or others" in err and "chmod 600" in err
    assert "Traceback" not in err
    assert snapshot(mesh4) == before


def test_manifest_rotate_key_refuses_broken_config(
    mesh4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node.toml that is not TOML stops rotate-key naming the file; nothing is published."""
    config = mesh4 / "shanghai" / "node.toml"
    config.write_text(config.read_text(encoding="utf-8") + "garbage [\n", encoding="utf-8")
    before = snapshot(mesh4)
    code, out, err = run(
        capsys, "manifest", "rotate-key", "--dir", str(mesh4), "--province", "shanghai"
    )
    assert code != 0
    assert out == ""
    assert "node.toml is not valid TOML" in err
    assert snapshot(mesh4) == before


# -- audit verify --------------------------------------------------------------------------


async def exchange(mesh: Path, probes: int = 3) -> None:
    """Two real nodes exchange ``probes`` probes each way, all receipted, then stop."""
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        bodies = [("probe", pb.Probe(sequence=i)) for i in range(probes)]
        ids = [(sh, i) for i in await sh.courier.send("jiangsu", bodies)]
        ids += [(js, i) for i in await js.courier.send("shanghai", bodies)]

        def delivered() -> bool:
            states = [outbox.get(n.db.reader(), i) for n, i in ids]
            return all(s is not None and s.state == "delivered" for s in states)

        await eventually(delivered)


@pytest.fixture
async def exchanged(tmp_path: Path) -> Path:
    """A two-province mesh whose stores hold a real, stopped exchange."""
    mesh = make_mesh(tmp_path)
    await exchange(mesh)
    return mesh


async def yrd(*argv: str) -> int:
    """``yrd ARGV`` in a worker thread: commands that run their own event loop need one."""
    return await asyncio.to_thread(main, list(argv))


def audit_rows(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT * FROM audit ORDER BY seq").fetchall()


async def test_audit_verify_intact(exchanged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a real exchange both stores' evidence logs verify: exit 0, "intact"."""
    for province in ("shanghai", "jiangsu"):
        capsys.readouterr()
        assert await yrd("audit", "verify", "--store", str(exchanged / province / "node.db")) == 0
        out = capsys.readouterr().out
        assert "intact" in out
        # manifest; 3 probes, 1 catalog announcement and 1 revocation list sent, with their
        # 5 receipts; and the same 5 received, with the 5 receipts sent for them
        assert "21 entries" in out


def tamper_body(store: Path, seq: int) -> None:
    """Flip one byte of an entry's body behind the node's back (append-only trigger dropped)."""
    with sqlite3.connect(store) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        [body] = conn.execute("SELECT body FROM audit WHERE seq = ?", (seq,)).fetchone()
        edited = bytes([body[0] ^ 0x01]) + bytes(body[1:])
        conn.execute("UPDATE audit SET body = ? WHERE seq = ?", (edited, seq))
    conn.close()


async def test_audit_verify_names_tampered_entry(
    exchanged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One changed body byte makes ``yrd audit verify`` exit 1 and name that entry's seq, in
    text and in ``--json``."""
    store = exchanged / "shanghai" / "node.db"
    rows_before = len(audit_rows(store))
    seq = 4
    tamper_body(store, seq)

    capsys.readouterr()
    assert await yrd("audit", "verify", "--store", str(store)) == 1
    out = capsys.readouterr().out
    assert f"BROKEN at entry {seq}" in out
    assert "hash does not match" in out

    assert await yrd("audit", "verify", "--store", str(store), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["first_bad_seq"] == seq
    assert report["entries"] == seq - 1
    assert "hash" in report["reason"]
    assert len(audit_rows(store)) == rows_before  # verify only reads


async def test_audit_verify_json_intact(
    exchanged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yrd audit verify --json`` on an intact store reports ok with no bad entry."""
    capsys.readouterr()
    store = exchanged / "jiangsu" / "node.db"
    assert await yrd("audit", "verify", "--store", str(store), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "ok": True,
        "entries": len(audit_rows(store)),
        "first_bad_seq": None,
        "reason": report["reason"],
        "witnesses": report["witnesses"],
        "checkpoints": report["checkpoints"],
        "last_bad_seq": None,
        "witnessed": report["checkpoints"] > 0,
        "peers_asked": [],  # with --config only
    }
    # only the peer can have cosigned this log (on its shutdown checkpoint, if it got through)
    assert set(report["witnesses"]) <= {"shanghai"}
    assert report["checkpoints"] >= len(report["witnesses"])


def test_audit_verify_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store path that does not exist is a clear error, and no file is created there."""
    missing = tmp_path / "nowhere" / "node.db"
    code, out, err = run(capsys, "audit", "verify", "--store", str(missing))
    assert code != 0
    assert out == ""
    assert str(missing) in err and "does not exist" in err
    assert not missing.exists() and not missing.parent.exists()


def test_audit_verify_not_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not a SQLite store is a clear error, and the file is left as it was."""
    path = tmp_path / "node.db"
    path.write_bytes(b"not a database at all" * 100)
    code, out, err = run(capsys, "audit", "verify", "--store", str(path))
    assert code != 0
    assert out == ""
    assert str(path) in err and "not a database" in err
    assert path.read_bytes() == b"not a database at all" * 100


# -- status --------------------------------------------------------------------------------


def urls(mesh: Path, provinces: Sequence[str] = ("shanghai", "jiangsu")) -> list[str]:
    return [f"http://{config_for(mesh, p).http_listen}" for p in provinces]


async def test_status_table_for_healthy_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``yrd status URL URL`` prints an aligned link table and "healthy" once heartbeats are
    up both ways, and ``--json`` says healthy with both nodes' status."""
    mesh = make_mesh(tmp_path)
    # Nodes named by URL are asked with YRD_HTTP_TOKEN: the mesh's read-only viewer token.
    monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(config_for(mesh, "shanghai"))["read"])
    async with (
        running(config_for(mesh, "jiangsu")) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        runners = [await start_http(sh), await start_http(js)]
        try:
            await eventually(lambda: settled(sh, js))
            capsys.readouterr()
            assert await yrd("status", *urls(mesh)) == 0
            out = capsys.readouterr().out
            assert await yrd("status", "--json", *urls(mesh)) == 0
            document = json.loads(capsys.readouterr().out)
        finally:
            for runner in runners:
                await runner.cleanup()

    all_lines = out.splitlines()
    # The per-node table (readiness, expiries) comes first, then the link table.
    assert all_lines[0].split()[:2] == ["node", "ready"]
    node_rows = [line.split() for line in all_lines[2:4]]
    assert [r[:2] for r in node_rows] == [["shanghai", "yes"], ["jiangsu", "yes"]]
    lines = all_lines[all_lines.index(next(x for x in all_lines if x.startswith("from"))) :]
    assert lines[0].split() == [
        "from",
        "to",
        "link",
        "rtt",
        "ms",
        "backlog",
        "oldest",
        "s",
        "circuit",
        "dead",
        "cosigned",
        "last",
        "success",
        "refused",
    ]
    assert set(lines[1]) <= {"-", " "}
    rows = [line.split() for line in lines[2:4]]
    assert [r[:3] for r in rows] == [["shanghai", "jiangsu", "up"], ["jiangsu", "shanghai", "up"]]
    assert all(r[6] == "closed" for r in rows)
    # No checkpoint yet (the interval is a minute): no witness has cosigned.
    assert all(r[8] == "never" for r in rows), rows
    # Heartbeats flowing keep "last success" current: seconds ago, never blank.
    assert all(r[9:] == [r[9], "s", "ago"] and int(r[9]) < 60 for r in rows), rows
    assert "healthy" in lines
    assert document["healthy"] is True and document["problems"] == []
    assert [n["province"] for n in document["nodes"]] == ["shanghai", "jiangsu"]


async def test_status_with_node_stopped_is_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one node stopped, ``yrd status`` exits 1 and names the unreachable node and the
    link that stopped answering; ``--json`` says healthy false."""
    mesh = make_mesh(tmp_path)
    # Nodes named by URL are asked with YRD_HTTP_TOKEN: the mesh's read-only viewer token.
    monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(config_for(mesh, "shanghai"))["read"])
    async with running(config_for(mesh, "shanghai")) as sh:
        sh_http = await start_http(sh)
        try:
            async with running(config_for(mesh, "jiangsu")) as js:
                js_http = await start_http(js)
                await eventually(lambda: sh.peers.link("jiangsu").up)
                await js_http.cleanup()
            await eventually(lambda: not sh.peers.link("jiangsu").up)
            capsys.readouterr()
            assert await yrd("status", *urls(mesh)) == 1
            out = capsys.readouterr().out
            assert await yrd("status", "--json", *urls(mesh)) == 1
            document = json.loads(capsys.readouterr().out)
        finally:
            await sh_http.cleanup()

    jiangsu_url = urls(mesh)[1]
    where = jiangsu_url.removeprefix("http://")
    assert "UNHEALTHY" in out
    silent = f"{jiangsu_url}: node not answering at {where} (connection refused: nothing listens"
    assert silent in out
    assert "shanghai→jiangsu: peer not answering heartbeats" in out
    assert "ClientConnectorError" not in out
    assert document["healthy"] is False
    assert any(p.startswith(silent) for p in document["problems"])
    assert document["nodes"][1] == {
        "url": jiangsu_url,
        "province": None,
        "error": "connection refused: nothing listens there",
    }
