"""A member's signing key revoked under it, on three real nodes: what the operator sees
(``yrd status``, the dashboard, the reload metric) and the way back (rotate, reload); and
the reason a refused reload is counted under."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from node.api.service import start_http
from node.cli.main import main
from node.mesh.auth import mesh_session
from node.mesh.layout import read_manifest
from node.runtime.config import ConfigError
from node.runtime.node import Node
from node.runtime.startup import OwnKeyUnusable, StartupError, reload_failure_reason
from node.trust.keys import KeyFileError, load_signing_key
from node.trust.manifest import ManifestDowngrade, ManifestSignatureInvalid
from tests.nodes import config_for, eventually, make_mesh, running, settled

PROVINCES = ("shanghai", "jiangsu", "zhejiang")


async def yrd(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[tuple[Path, dict[str, Node]]]:
    directory = make_mesh(tmp_path, PROVINCES)
    async with AsyncExitStack() as stack:
        nodes: dict[str, Node] = {}
        for province in PROVINCES:
            node = await stack.enter_async_context(running(config_for(directory, province)))
            stack.push_async_callback((await start_http(node)).cleanup)
            nodes[province] = node
        await eventually(lambda: settled(*nodes.values()), timeout=60)
        yield directory, nodes


def refused_by_peer(node: Node, peer: str, code: str) -> bool:
    refusal = node.peers.link(peer).refusal
    return refusal is not None and refusal.by_peer and refusal.code == code


async def test_a_node_whose_key_is_revoked_is_shown_refused_with_the_way_out(
    mesh: tuple[Path, dict[str, Node]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Jiangsu's key in use, revoked with --force and loaded: Jiangsu's reload is counted as
    signing_key_revoked; status names key_revoked on each of its links and flags Jiangsu as
    refused by every peer, with the rotation to run; so does the dashboard. After rotate-key
    and a reload everywhere, every link is up again and status is healthy."""
    directory, nodes = mesh
    jiangsu = nodes["jiangsu"]
    in_use = load_signing_key(jiangsu.config.paths.signing_key).key_id
    revoke = ["manifest", "revoke-key", "--dir", str(directory), "--province", "jiangsu",
              "--key-id", in_use]  # fmt: skip
    code, _, err = await yrd(capsys, *revoke)
    assert code == 1 and "not revoked" in err
    code, _, err = await yrd(capsys, *revoke, "--force")
    assert code == 0, err

    for province in ("shanghai", "zhejiang"):
        await nodes[province].reload()
    with pytest.raises(StartupError, match="revoked"):
        await jiangsu.reload()
    failures = jiangsu.metrics.manifest_reload_failures
    assert failures.labels("signing_key_revoked")._value.get() == 1
    assert failures.labels("startup_error")._value.get() == 0

    await eventually(
        lambda: all(refused_by_peer(jiangsu, p, "key_revoked") for p in ("shanghai", "zhejiang"))
    )
    code, out, _ = await yrd(capsys, "status", "--mesh", str(directory))
    assert code == 1
    problems = out[out.index("UNHEALTHY:") :].splitlines()[1:]
    assert problems[0] == (
        "  - jiangsu: EVERY peer refuses its messages (key_revoked); its signing key is "
        f"revoked: yrd manifest rotate-key --dir {directory} --province jiangsu, then SIGHUP "
        "every node"
    )
    assert any(
        p.startswith("  - jiangsu→shanghai: shanghai refuses jiangsu's messages: key_revoked")
        for p in problems
    )
    assert not any(p.startswith("  - jiangsu→") and "not answering" in p for p in problems)
    rows = [line.split() for line in out.splitlines() if line.startswith("jiangsu ")]
    link = next(r for r in rows if r[1] == "shanghai")
    assert link[2] == "REFUSED" and link[-3:] == ["key_revoked", "(by", "shanghai)"]
    code, out, _ = await yrd(capsys, "status", "--mesh", str(directory), "--json")
    peers = {p["province"]: p for p in json.loads(out)["nodes"]}["jiangsu"]["peers"]
    assert {p["peer"]: p["refusal"]["code"] for p in peers} == {
        "shanghai": "key_revoked",
        "zhejiang": "key_revoked",
    }

    urls = ",".join(f"http://{nodes[p].config.http_listen}" for p in PROVINCES)
    async with (
        mesh_session(directory) as session,
        session.get(f"http://{jiangsu.config.http_listen}/?mesh={urls}") as response,
    ):
        page = await response.text()
    cell = re.search(r'data-link="jiangsu-zhejiang">(.*?)</td>', page, re.S)
    assert cell is not None and "refused by zhejiang: key_revoked" in cell.group(1)
    assert "every peer refuses it: key_revoked" in page

    # The way out, as README's "Operating trust" says: rotate, then load it everywhere.
    code, out, err = await yrd(
        capsys, "manifest", "rotate-key", "--dir", str(directory), "--province", "jiangsu"
    )
    assert code == 0, err
    assert f"previous key {in_use} stays revoked" in out
    for node in nodes.values():
        await node.reload()
    assert jiangsu.credentials.manifest.version == read_manifest(directory).version
    await eventually(lambda: settled(*nodes.values()), timeout=60)
    assert all(n.peers.link(p).refusal is None for n in nodes.values() for p in n.peers)
    code, out, _ = await yrd(capsys, "status", "--mesh", str(directory))
    assert code == 0 and out.endswith("\nhealthy\n"), out


async def test_revoke_key_asks_the_running_node_which_key_it_signs_with(
    mesh: tuple[Path, dict[str, Node]], capsys: pytest.CaptureFixture[str]
) -> None:
    """After rotate-key and before any SIGHUP, Shanghai's running node still signs with the
    old key though node.toml names the new one: revoking the old key is refused without
    --force, naming the running node as the source. Once the node has reloaded, the same
    revocation is published and says which key the running node signs with."""
    directory, nodes = mesh
    shanghai = nodes["shanghai"]
    old = shanghai.credentials.signing_key.key_id
    code, _, err = await yrd(
        capsys, "manifest", "rotate-key", "--dir", str(directory), "--province", "shanghai"
    )
    assert code == 0, err
    revoke = ["manifest", "revoke-key", "--dir", str(directory), "--province", "shanghai",
              "--key-id", old]  # fmt: skip
    where = shanghai.config.http_listen
    code, out, err = await yrd(capsys, *revoke)
    assert (code, out) == (1, "")
    assert (
        f"not revoked: shanghai's node signs with {old} now "
        f"(as its running node at {where} says)" in err
    )

    await shanghai.reload()
    new = shanghai.credentials.signing_key.key_id
    assert new != old
    code, out, err = await yrd(capsys, *revoke)
    assert code == 0, err
    assert f"shanghai's node signs with {new} (as its running node at {where} says)" in out


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OwnKeyUnusable("signing key … is revoked", "signing_key_revoked"), "signing_key_revoked"),
        (ConfigError("node.toml is not valid TOML"), "config_invalid"),
        (KeyFileError("signing.key is readable by group or others"), "signing_key_unreadable"),
        (FileNotFoundError(2, "No such file or directory"), "file_missing"),
        (PermissionError(13, "Permission denied"), "file_unreadable"),
        (ManifestDowngrade("version 1 is older than 2"), "manifest_downgrade"),
        (ManifestSignatureInvalid("altered"), "manifest_signature_invalid"),
    ],
)
def test_a_refused_reload_is_counted_under_what_was_wrong(error: Exception, reason: str) -> None:
    """The reload metric's reason says what was wrong, never the generic startup_error."""
    assert reload_failure_reason(error) == reason


async def test_a_broken_node_toml_on_reload_is_counted_and_keeps_the_node(
    tmp_path: Path,
) -> None:
    """A node.toml that no longer parses refuses the reload (counted as config_invalid); the
    manifest and key in force stay."""
    directory = make_mesh(tmp_path)
    config = config_for(directory, "shanghai")
    async with running(config) as node:
        assert config.source is not None
        config.source.write_text(config.source.read_text() + "garbage [\n")
        with pytest.raises(ConfigError):
            await node.reload()
        assert node.metrics.manifest_reload_failures.labels("config_invalid")._value.get() == 1
        assert node.credentials.manifest.version == 1
