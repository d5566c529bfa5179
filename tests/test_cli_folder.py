"""One way to name a mesh folder (``node.cli.folder_arg``): ``DIR`` or ``--dir DIR`` in
every command that takes one; two different folders, or none where one is needed, is a
usage error; and ``mesh init`` prints the mesh's real ports, dashboard URL and curl lines."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from node.cli.folder_arg import resolve_folder
from node.cli.main import build_parser, main
from tests.nodes import free_base_port


def parsed(*argv: str) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    resolve_folder(args)
    return args


@pytest.mark.parametrize(
    "command",
    [
        ("mesh", "init"),
        ("mesh", "up"),
        ("mesh", "link"),
        ("manifest", "show"),
        ("manifest", "rotate-key", "--province", "jiangsu"),
        ("load",),
        ("chaos",),
        ("demo",),
    ],
)
def test_dir_and_dash_dir_name_the_same_folder(command: tuple[str, ...]) -> None:
    assert parsed(*command, "mesh/").dir == Path("mesh")
    assert parsed(*command, "--dir", "mesh/").dir == Path("mesh")
    assert parsed(*command, "mesh", "--dir", "mesh/").dir == Path("mesh")


@pytest.mark.parametrize(
    "command",
    [
        ("mesh", "init"),
        ("mesh", "up"),
        ("mesh", "stop", "jiangsu"),
        ("mesh", "start", "jiangsu"),
        ("mesh", "link", "shanghai:jiangsu"),
        ("manifest", "show"),
        ("manifest", "rotate-key", "--province", "jiangsu"),
        ("manifest", "revoke-key", "--province", "jiangsu", "--key-id", "ed25519:00"),
        ("load",),
        ("chaos",),
        ("demo",),
    ],
)
def test_dash_mesh_names_the_folder_wherever_dash_dir_does(command: tuple[str, ...]) -> None:
    """``--mesh DIR``, the spelling ``status``, ``case`` and ``cert`` teach, is accepted by
    every command that takes a mesh folder, and names the same folder as ``--dir``."""
    assert parsed(*command, "--mesh", "mesh/").dir == Path("mesh")
    assert parsed(*command, "--mesh", "mesh/", "--dir", "mesh").dir == Path("mesh")


def test_stop_start_and_link_keep_their_own_arguments_with_either_form(tmp_path: Path) -> None:
    for action in ("stop", "start"):
        for argv in (
            ("mesh", action, "mesh/", "jiangsu"),
            ("mesh", action, "--dir", "mesh/", "jiangsu"),
            ("mesh", action, "jiangsu", "--dir", "mesh/"),
        ):
            args = parsed(*argv)
            assert (args.dir, args.province) == (Path("mesh"), "jiangsu")
    for argv in (
        ("mesh", "link", "mesh/", "shanghai:jiangsu"),
        ("mesh", "link", "--dir", "mesh/", "shanghai:jiangsu"),
    ):
        args = parsed(*argv)
        assert (args.dir, args.link) == (Path("mesh"), "shanghai:jiangsu")
    folder = tmp_path / "mesh"
    folder.mkdir()
    assert parsed("mesh", "link", "--dir", str(folder)).link is None


def test_catalog_takes_the_folder_as_dir_dash_dir_or_dash_mesh() -> None:
    for argv in (("catalog", "mesh"), ("catalog", "--dir", "mesh"), ("catalog", "--mesh", "mesh")):
        args = parsed(*argv)
        assert (args.mesh, args.url) == (Path("mesh"), None)
    assert parsed("catalog", "--url", "http://127.0.0.1:8101").mesh is None


@pytest.mark.parametrize(
    "argv",
    [
        ("mesh", "up", "mesh/", "--dir", "other/"),
        ("mesh", "stop", "mesh/", "jiangsu", "--dir", "other/"),
        ("manifest", "show", "a", "--dir", "b"),
    ],
)
def test_two_different_folders_are_a_usage_error(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parsed(*argv)
    assert exited.value.code == 2
    assert "two mesh folders named" in capsys.readouterr().err


def test_no_folder_where_one_is_needed_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["mesh", "up"])
    assert exited.value.code == 2
    assert "name the mesh folder: DIR or --dir DIR" in capsys.readouterr().err
    assert parsed("demo").dir is None and parsed("chaos").dir is None


def test_mesh_init_prints_its_ports_dashboard_and_curl_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = free_base_port()
    directory = tmp_path / "mesh"
    assert main(["mesh", "init", "--dir", str(directory), "--base-port", str(base)]) == 0
    out = capsys.readouterr().out
    for i, province in enumerate(("shanghai", "jiangsu", "zhejiang", "anhui")):
        row = next(line for line in out.splitlines() if line.startswith(province))
        for port in (base + i, base + 1000 + i, base + 2000 + i):
            assert f"127.0.0.1:{port}" in row
    https = ",".join(f"http://127.0.0.1:{base + 1000 + i}" for i in range(4))
    assert f"http://127.0.0.1:{base + 1000}/?mesh={https}" in out
    assert f"VIEWER=$(cat {directory / 'viewer.token'})" in out
    assert f"http://127.0.0.1:{base + 1000}/v1/status" in out
    assert f"yrd mesh up --dir {directory}" in out
