"""What the commands that ask nodes say when nodes are down or the folder is wrong: province
names, what is down, the command that starts it; never a transport library's exception
text, a table of URLs, or a file inside the folder."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from node.api.service import start_http
from node.cli.main import main
from node.mesh.access import create_mesh
from tests.nodes import config_for, eventually, free_base_port, make_mesh, running, settled

PROVINCES = ("shanghai", "jiangsu", "zhejiang", "anhui")
NOTHING_LISTENS = "connection refused: nothing listens there"


async def yrd(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def stopped_mesh(tmp_path: Path) -> Path:
    """Four provinces made by ``yrd mesh init``'s code, none of them running."""
    directory = tmp_path / "mesh"
    create_mesh(directory, now=time.time(), base_port=free_base_port(), platforms=False)
    return directory


def http_of(mesh: Path, province: str) -> str:
    return config_for(mesh, province).http_listen


async def test_status_with_every_node_down(
    stopped_mesh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1; a narrow node table naming each province NO ANSWER; one line per node saying
    where it should answer, why it does not and ``yrd mesh up --dir DIR``."""
    code, out, err = await yrd(capsys, "status", "--mesh", str(stopped_mesh))
    assert (code, err) == (1, "")
    rows = [line.split() for line in out.splitlines()[2:6]]
    assert [r[:3] for r in rows] == [[p, "NO", "ANSWER"] for p in PROVINCES]
    assert "http://" not in out and "Error" not in out
    tables = out[: out.index("UNHEALTHY")]
    # Every column is kept (blank) so the table reads like a healthy one; it fits 110 columns.
    assert max(len(line) for line in tables.splitlines()) <= 110
    for province in PROVINCES:
        assert (
            f"  - {province}: node not answering at {http_of(stopped_mesh, province)} "
            f"({NOTHING_LISTENS}); start it: yrd mesh up --dir {stopped_mesh}\n"
        ) in out
    code, out, _ = await yrd(capsys, "status", "--mesh", str(stopped_mesh), "--json")
    document = json.loads(out)
    assert [n["province"] for n in document["nodes"]] == list(PROVINCES)
    assert {n["error"] for n in document["nodes"]} == {NOTHING_LISTENS}


async def test_a_running_mesh_up_means_mesh_start(
    stopped_mesh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a ``yrd mesh up`` keeps the folder's mesh (``mesh.json`` names a live
    supervisor), a node that is down is started with ``yrd mesh start --dir DIR P``."""
    (stopped_mesh / "mesh.json").write_text(
        json.dumps({"supervisor_pid": os.getpid(), "nodes": []})
    )
    code, out, _ = await yrd(capsys, "status", "--mesh", str(stopped_mesh))
    assert code == 1
    assert f"start it: yrd mesh start --dir {stopped_mesh} jiangsu\n" in out
    code, _, err = await yrd(
        capsys, "case", "list", "--mesh", str(stopped_mesh), "--province", "anhui"
    )
    assert code == 2
    assert err == (
        f"yrd: the anhui node is not answering at {http_of(stopped_mesh, 'anhui')} "
        f"({NOTHING_LISTENS}); start it: yrd mesh start --dir {stopped_mesh} anhui\n"
    )


async def test_catalog_asks_the_first_node_that_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With Shanghai down and Jiangsu up, ``yrd catalog --mesh`` names Shanghai on stderr and
    prints Jiangsu's catalog, a type asked twice told apart by its material names; with
    both down it exits 2 naming each."""
    mesh = make_mesh(tmp_path)
    async with running(config_for(mesh, "jiangsu")) as js:
        runner = await start_http(js)
        try:
            code, out, err = await yrd(capsys, "catalog", "--mesh", str(mesh))
        finally:
            await runner.cleanup()
    assert code == 0
    assert err == (
        f"yrd: the shanghai node is not answering at {http_of(mesh, 'shanghai')} "
        f"({NOTHING_LISTENS}); start it: yrd mesh up --dir {mesh}\n"
    )
    newborn = next(line for line in out.splitlines() if "异地新生儿入户" in line)
    assert "resident_id_card (父亲居民身份证), resident_id_card (母亲居民身份证)" in newborn
    assert "birth_medical_certificate (" not in newborn  # a type asked once needs no name

    code, out, err = await yrd(capsys, "catalog", "--mesh", str(mesh))
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert [line.split(" node ")[0] for line in lines[:2]] == [
        "yrd: the shanghai",
        "yrd: the jiangsu",
    ]
    assert lines[2] == f"yrd: cannot get the catalog: no node of the mesh in {mesh} answers"


async def test_load_on_a_folder_without_a_mesh(
    tmp_path: Path, stopped_mesh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yrd load`` on a folder that is no mesh says so and how to make one; on a mesh folder
    whose mesh is not up, how to start it; neither names a file inside the folder."""
    code, out, err = await yrd(capsys, "load", "--dir", str(tmp_path / "nosuch"))
    assert (code, out) == (2, "")
    assert "is not a mesh folder (no such folder)" in err
    assert f"yrd mesh init {tmp_path / 'nosuch'}" in err and "mesh.json" not in err
    code, out, err = await yrd(capsys, "load", "--dir", str(stopped_mesh))
    assert (code, out) == (2, "")
    assert err == (
        f"yrd: no mesh is up in {stopped_mesh} (start one with: yrd mesh up --dir {stopped_mesh})\n"
    )


async def test_a_mesh_node_that_is_up_is_not_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The friendly line is for a node that is down only: with both nodes up and settled,
    status is healthy and names no start command."""
    mesh = make_mesh(tmp_path)
    async with (
        running(config_for(mesh, "shanghai")) as sh,
        running(config_for(mesh, "jiangsu")) as js,
    ):
        runners = [await start_http(sh), await start_http(js)]
        try:
            await eventually(lambda: settled(sh, js))
            code, out, _ = await yrd(capsys, "status", "--mesh", str(mesh))
        finally:
            for runner in runners:
                await runner.cleanup()
    assert code == 0 and out.endswith("\nhealthy\n"), out
    assert "start it" not in out and "NO ANSWER" not in out


async def test_node_maintenance_on_a_stopped_node(
    stopped_mesh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yrd node maintenance`` for a node that is down says where it should answer and the
    command that runs it."""
    config = stopped_mesh / "zhejiang" / "node.toml"
    code, out, err = await yrd(capsys, "node", "maintenance", "on", "--config", str(config))
    assert (code, out) == (2, "")
    assert err == (
        f"yrd: the node is not answering at {http_of(stopped_mesh, 'zhejiang')} "
        f"({NOTHING_LISTENS}); start it: yrd node run --config {config}\n"
    )
