"""How every ``yrd`` command ends on the expected: a reader that closed the pipe, Ctrl-C, and
``--version``; the installed console script runs as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from node.cli.main import main
from node.mesh.access import create_mesh
from tests.nodes import free_base_port

YRD = str(Path(sys.executable).with_name("yrd"))
"""The console script of this checkout's editable install."""
BUDGET = 60.0


def test_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    """``yrd --version`` prints the version in the package metadata and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"yrd {metadata.version('yrd-node')}\n"


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``yrd manifest show | head -1`` with the reader gone before anything is written: exit
    141 (as SIGPIPE would), and nothing on stderr: no BrokenPipeError, no traceback."""
    mesh = tmp_path / "mesh"
    create_mesh(mesh, now=time.time(), base_port=free_base_port(), platforms=False)
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now meets a closed pipe, however fast the command is
    try:
        done = subprocess.run(
            [YRD, "manifest", "show", "--dir", str(mesh)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=BUDGET,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == 141


@pytest.mark.slow
def test_ctrl_c_ends_with_one_line() -> None:
    """Ctrl-C while ``yrd status`` waits for a node that accepted the connection but does not
    answer: exit 130 and one line on stderr, no traceback."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(BUDGET)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        # A shell's background job (how CI may run us) inherits SIGINT ignored, and Python
        # then keeps it ignored; a terminal's Ctrl-C reaches a command with it in force.
        process = subprocess.Popen(
            [YRD, "status", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            connection, _ = listener.accept()  # the command is now waiting for an answer
            with connection:
                process.send_signal(signal.SIGINT)
                _, err = process.communicate(timeout=BUDGET)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert err.decode() == "yrd: interrupted\n"
    assert process.returncode == 130
