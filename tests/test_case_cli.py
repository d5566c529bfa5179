"""``yrd case submit|show|list|event`` against two live nodes (Shanghai accepting, Jiangsu
handling) on their configured HTTP ports; the command runs in-process in a worker thread."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from node.api.service import start_http
from node.certificates.model import TYPES
from node.cli.main import main
from node.identifiers import make_certificate_id
from node.runtime.node import Node
from node.trust.keys import load_signing_key
from tests import lifecycle_oracle as oracle
from tests.cases import case_body, matter_of, status_of
from tests.nodes import (
    cli_env,
    config_for,
    eventually,
    free_base_port,
    known_url,
    make_mesh,
    running,
    settled,
    tokens_of,
)

MATTER = matter_of("jiangsu")  # 户籍类证明开具: a certificate material and two uploads


def on_screen(line: str, column: int, width: int) -> str:
    """The characters of ``line`` shown from terminal ``column`` on, ``width`` columns."""
    shown, at = "", 0
    for ch in line:
        if column <= at < column + width:
            shown += ch
        at += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return shown


@asynccontextmanager
async def live(tmp_path: Path) -> AsyncIterator[tuple[Path, Node, str, Node, str]]:
    """Shanghai and Jiangsu running, each serving HTTP on its configured port, links up."""
    mesh = make_mesh(tmp_path)
    async with (
        running(
            config_for(
                mesh,
                "shanghai",
            )
        ) as sh,
        running(config_for(mesh, "jiangsu")) as js,
    ):
        runners = [await start_http(sh), await start_http(js)]
        try:
            await eventually(lambda: settled(sh, js))
            yield (
                mesh,
                sh,
                known_url(sh.config),
                js,
                known_url(js.config),
            )
        finally:
            for runner in runners:
                await runner.cleanup()


async def yrd(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``yrd ARGV`` in a worker thread (it runs its own event loop): exit code, stdout, stderr."""
    capsys.readouterr()
    token = cli_env(argv)
    with pytest.MonkeyPatch.context() as env:
        if token is not None and "YRD_HTTP_TOKEN" not in os.environ:
            env.setenv("YRD_HTTP_TOKEN", token)
        code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def submitted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, js: Node, seed: int
) -> str:
    """A case submitted at ``url`` through ``--body`` and delivered to Jiangsu: its id."""
    body = tmp_path / f"case-{seed}.json"
    body.write_text(json.dumps(case_body(MATTER, seed=seed)), encoding="utf-8")
    code, out, err = await yrd(capsys, "case", "submit", "--url", url, "--body", str(body))
    assert code == 0, err
    case_id = out.split()[1]
    await eventually(lambda: status_of(js, case_id) == "delivered")
    return case_id


def material_flags(tmp_path: Path) -> tuple[list[str], str, str]:
    """Flags naming the matter's materials three ways; the certificate id and a file's digest."""
    certificate = str(make_certificate_id(TYPES["resident_id_card"].type_code, "310104", "SH01"))
    upload = tmp_path / "form.pdf"
    upload.write_bytes(b"%PDF-1.7 application form")
    names = [m.name for m in MATTER.materials]
    flags = [
        f"--material={names[0]}=cert:{certificate}",
        f"--material-file={names[1]}={upload}",
        f"--material={names[2]}=sha256:{'ab' * 32}",
    ]
    return flags, certificate, hashlib.sha256(upload.read_bytes()).hexdigest()


async def test_submit_with_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Flags become a case at the accepting node carrying a certificate id, a file's SHA-256
    and a given digest, and a retry with the same Idempotency-Key returns the same case."""
    flags, certificate, digest = material_flags(tmp_path)
    applicant = case_body(MATTER)["applicant"]
    async with live(tmp_path) as (_, _, sh_url, js, _):
        argv = [
            "case",
            "submit",
            "--url",
            sh_url,
            "--matter",
            MATTER.code,
            "--handler",
            "jiangsu",
            "--mode",
            MATTER.modes[1],
            "--applicant-name",
            applicant["name"],
            "--code-type",
            "111",
            "--code",
            applicant["code"],
            *flags,
            "--idempotency-key",
            "cli-1",
        ]
        code, out, err = await yrd(capsys, *argv)
        assert code == 0, err
        fields = dict(line.split(None, 1) for line in out.splitlines())
        assert fields["status"] == "submitted"
        assert fields["handler"] == "jiangsu"
        assert fields["matter"] == f"{MATTER.code} ({MATTER.modes[1]})"
        case_id = fields["case"]
        assert applicant["code"] not in out

        code, again, err = await yrd(capsys, *argv)
        assert code == 0, err
        assert again.split()[1] == case_id and "already created" in again

        await eventually(lambda: status_of(js, case_id) is not None)
        code, out, err = await yrd(capsys, "case", "show", case_id, "--url", sh_url, "--json")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["mode"] == MATTER.modes[1]
        assert shown["materials"] == [
            {"name": MATTER.materials[0].name, "certificate_id": certificate},
            {"name": MATTER.materials[1].name, "sha256": digest},
            {"name": MATTER.materials[2].name, "sha256": "ab" * 32},
        ]


async def test_submit_with_body_file_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--body FILE`` and ``--body -`` submit the JSON as given; ``--json`` prints the case."""
    async with live(tmp_path) as (_, sh, sh_url, _, _):
        body = tmp_path / "case.json"
        body.write_text(json.dumps(case_body(MATTER, seed=2), ensure_ascii=False), "utf-8")
        code, out, err = await yrd(
            capsys, "case", "submit", "--url", sh_url, "--body", str(body), "--json"
        )
        assert code == 0, err
        from_file = json.loads(out)
        assert from_file["status"] == "submitted" and from_file["role"] == "accepting"
        assert from_file["applicant"] == case_body(MATTER, seed=2)["applicant"]

        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(case_body(MATTER, seed=3))))
        code, out, err = await yrd(capsys, "case", "submit", "--url", sh_url, "--body", "-")
        assert code == 0, err
        from_stdin = out.split()[1]
        assert from_stdin != from_file["case_id"]
        assert status_of(sh, from_stdin) is not None


async def test_submit_flags_and_body_together_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body and submission flags together, or flags missing, exit 2 before anything is sent."""
    body = tmp_path / "case.json"
    body.write_text(json.dumps(case_body(MATTER)), "utf-8")
    unused = "http://127.0.0.1:9"  # nothing is asked: the command line is refused first
    code, out, err = await yrd(
        capsys, "case", "submit", "--url", unused, "--body", str(body), "--matter", MATTER.code
    )
    assert (code, out) == (2, "")
    assert "not both" in err
    code, out, err = await yrd(capsys, "case", "submit", "--url", unused, "--matter", MATTER.code)
    assert (code, out) == (2, "")
    assert "missing --handler" in err and "--material" in err


async def test_bad_submission_names_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ID number with a wrong check digit exits 1 with the problem's code and field, without
    echoing the number, and stores no case."""
    applicant = case_body(MATTER)["applicant"]
    wrong = applicant["code"][:-1] + ("0" if applicant["code"][-1] != "0" else "1")
    flags, _, _ = material_flags(tmp_path)
    async with live(tmp_path) as (_, sh, sh_url, _, _):
        code, out, err = await yrd(
            capsys,
            "case",
            "submit",
            "--url",
            sh_url,
            "--matter",
            MATTER.code,
            "--handler",
            "jiangsu",
            "--applicant-name",
            "张三",
            "--code-type",
            "111",
            "--code",
            wrong,
            *flags,
        )
        assert code == 1
        assert out == ""
        assert err.startswith("yrd: invalid_id_number: ")
        assert err.rstrip().endswith("(field: applicant.code)")
        assert wrong not in err
        assert sh.db.reader().execute("SELECT count(*) FROM cases").fetchone()[0] == 0


async def test_list_filters_pages_and_mesh_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``case list`` shows an aligned table (each matter by name and code) filtered by role,
    peer, status and overdue, pages with --limit/--all, picks the node by --mesh --province,
    and a bad filter exits 1."""
    async with live(tmp_path) as (mesh, _, sh_url, js, js_url):
        ids = [await submitted(capsys, tmp_path, sh_url, js, seed) for seed in range(3)]

        code, out, err = await yrd(
            capsys, "case", "list", "--url", sh_url, "--role", "accepting", "--peer", "jiangsu"
        )
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == [
            "case",
            "role",
            "peer",
            "matter",
            "status",
            "due",
            "overdue",
            "updated",
        ]
        assert set(lines[1]) <= {"-", " "}
        rows = [line.split() for line in lines[2:5]]
        assert [r[0] for r in rows] == list(reversed(ids))
        # The matter's name from the catalog beside its code, as the demo's summary shows it.
        assert all(
            r[1:4] == ["accepting", "jiangsu", f"{MATTER.name}({MATTER.code})"] for r in rows
        )
        assert lines[-1] == "3 cases"
        # Every row's columns start where the header's do, on screen: a matter's name is in
        # characters two columns wide.
        starts = [lines[0].index(h) for h in ("role", "peer", "status")]
        assert all(on_screen(line, s - 2, 2) == "  " for line in lines[2:5] for s in starts)

        code, out, err = await yrd(
            capsys,
            "case",
            "list",
            "--mesh",
            str(mesh),
            "--province",
            "jiangsu",
            "--role",
            "handling",
            "--status",
            "delivered",
            "--json",
        )
        assert code == 0, err
        handled = json.loads(out)["cases"]
        assert {c["case_id"] for c in handled} == set(ids)
        assert all(c["role"] == "handling" for c in handled)
        # --dir is the same as --mesh, as in yrd mesh up, load and chaos.
        again = ["case", "list", "--dir", str(mesh), "--province", "jiangsu", "--role", "handling"]
        code, out, err = await yrd(capsys, *again, "--status", "delivered", "--json")
        assert code == 0, err
        assert json.loads(out)["cases"] == handled

        code, out, err = await yrd(capsys, "case", "list", "--url", js_url, "--role", "accepting")
        assert (code, out.splitlines()[-1]) == (0, "0 cases")
        code, out, err = await yrd(capsys, "case", "list", "--url", sh_url, "--overdue", "--json")
        assert json.loads(out) == {"cases": [], "next_cursor": None}

        code, out, err = await yrd(capsys, "case", "list", "--url", sh_url, "--limit", "1")
        assert code == 0, err
        assert "1 case; more after --cursor" in out
        code, out, err = await yrd(
            capsys, "case", "list", "--url", sh_url, "--limit", "1", "--all", "--json"
        )
        assert code == 0, err
        document = json.loads(out)
        assert [c["case_id"] for c in document["cases"]] == list(reversed(ids))
        assert document["next_cursor"] is None

        code, out, err = await yrd(capsys, "case", "list", "--url", sh_url, "--status", "done")
        assert (code, out) == (1, "")
        assert err.startswith("yrd: invalid_query: ") and "(field: status)" in err

        code, out, err = await yrd(capsys, "case", "list", "--mesh", str(mesh))
        assert (code, out) == (2, "")
        assert "--province" in err


async def test_show_history_and_masks_applicant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``case show`` prints the header, the signed history rows and the masked applicant, never
    the full name or ID number; ``--json`` gives the full record."""
    applicant = case_body(MATTER, seed=0)["applicant"]
    code_number = applicant["code"]
    async with live(tmp_path) as (_, sh, sh_url, js, js_url):
        js_key = load_signing_key(js.config.paths.signing_key).key_id
        case_id = await submitted(capsys, tmp_path, sh_url, js, 0)
        code, _, err = await yrd(capsys, "case", "event", case_id, "accept", "--url", js_url)
        assert code == 0, err
        await eventually(lambda: status_of(sh, case_id) == "accepted")
        code, out, err = await yrd(capsys, "case", "show", case_id, "--url", sh_url)
        assert code == 0, err
        code, raw, err = await yrd(capsys, "case", "show", case_id, "--url", sh_url, "--json")
        assert code == 0, err

    assert code_number not in out and applicant["name"] not in out
    assert code_number[6:14] not in out  # not even the birth date
    header = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    assert header["case"] == case_id
    assert header["status"] == "accepted"
    assert header["role"] == "accepting"
    assert header["route"] == "shanghai → jiangsu"
    assert header["matter"] == MATTER.code
    assert header["applicant"] == f"张* (111 {code_number[:6]}{'*' * 8}{code_number[-4:]})"
    assert header["overdue"] == "no"
    assert header["allowed"] == "withdraw"
    assert header["evaluation"] == "-"

    full = json.loads(raw)
    assert full["applicant"] == applicant
    assert [h["action"] for h in full["history"]] == ["deliver", "accept"]
    assert header["due"].startswith(full["due_at"])

    history = out[out.index("\nhistory\n") + len("\nhistory\n") :].splitlines()
    assert history[0].split() == ["seq", "action", "by", "at", "detail", "signer"]
    rows = [line.split() for line in history[2:4]]
    assert [r[:4] for r in rows] == [
        ["1", "deliver", "accepting", full["history"][0]["at"]],
        ["2", "accept", "handling", full["history"][1]["at"]],
    ]
    # Both updates are signed by Jiangsu, the case's one numbering authority: its receipt
    # (update 1) and its acceptance.
    assert [r[-1] for r in rows] == [js_key[: len("ed25519:") + 8]] * 2


async def test_events_handler_applies_accepting_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The handler's events apply at once and print the new status; the accepting side's
    evaluation is a request (202) that prints its message id and lands in the history."""
    async with live(tmp_path) as (_, sh, sh_url, js, js_url):
        case_id = await submitted(capsys, tmp_path, sh_url, js, 5)
        code, out, err = await yrd(capsys, "case", "event", case_id, "accept", "--url", js_url)
        assert code == 0, err
        expected = oracle.legal_actions("accepted", "handling", oracle.REST_ACTIONS)
        assert out == f"{case_id}: accepted (next: {', '.join(expected)})\n"
        code, out, err = await yrd(
            capsys,
            "case",
            "event",
            case_id,
            "complete",
            "--document-sha256",
            "cd" * 32,
            "--url",
            js_url,
        )
        assert code == 0, err
        assert out == f"{case_id}: completed\n"
        await eventually(lambda: status_of(sh, case_id) == "completed")

        code, out, err = await yrd(
            capsys,
            "case",
            "event",
            case_id,
            "evaluate",
            "--level",
            "4",
            "--comment",
            "办得快",
            "--url",
            sh_url,
        )
        assert code == 0, err
        assert out.startswith(f"{case_id}: evaluate requested (message id ")
        assert out.rstrip().endswith("the handler's answer will follow")
        message_id = out.split("(message id ")[1].split(")")[0]
        await eventually(lambda: status_of(sh, case_id) == "evaluated")

        code, out, err = await yrd(capsys, "case", "show", case_id, "--url", sh_url)
        assert code == 0, err
        code, raw, err = await yrd(capsys, "case", "show", case_id, "--url", sh_url, "--json")
    assert [r["message_id"] for r in json.loads(raw)["requests"]] == [message_id]
    assert "evaluation  4 满意" in out
    assert "result: document sha256:cdcdcdcdcdcdcdcd…" in out
    assert "evaluation: 4 满意 “办得快”" in out
    assert "\nrequests\n" not in out  # the one request was applied


async def test_refused_event_exits_1_with_problem_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An action for the other side, an illegal transition and an unknown case each exit 1
    printing the problem's code, and change nothing."""
    async with live(tmp_path) as (_, sh, sh_url, js, js_url):
        case_id = await submitted(capsys, tmp_path, sh_url, js, 6)
        await eventually(lambda: status_of(sh, case_id) == "delivered")
        code, out, err = await yrd(capsys, "case", "event", case_id, "accept", "--url", sh_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: wrong_side: ")
        code, out, err = await yrd(
            capsys, "case", "event", case_id, "evaluate", "--level", "3", "--url", sh_url
        )
        assert (code, out) == (1, "")
        assert err.startswith("yrd: illegal_transition: ")
        code, out, err = await yrd(capsys, "case", "event", case_id, "reject", "--url", js_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: missing_field: ") and "(field: reason)" in err
        code, out, err = await yrd(capsys, "case", "show", "310000-20260101-00", "--url", sh_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: unknown_case: ")
        assert status_of(sh, case_id) == status_of(js, case_id) == "delivered"


async def test_unreachable_node_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL where no node listens exits 2 with one line naming where and why, for every
    command."""
    url = f"http://127.0.0.1:{free_base_port(1) + 1000}"
    for argv in (
        ("case", "list", "--url", url),
        ("case", "show", "310000-20260101-00", "--url", url),
        ("case", "event", "310000-20260101-00", "withdraw", "--url", url),
    ):
        code, out, err = await yrd(capsys, *argv)
        assert (code, out) == (2, ""), argv
        where = url.removeprefix("http://")
        assert err == f"yrd: the node is not answering at {where} (connection refused: " + (
            "nothing listens there)\n"
        )


async def test_bearer_token_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node named by URL refuses the command (exit 1, unauthorized) with a token not in
    force, and answers it once YRD_HTTP_TOKEN carries one of its own."""
    async with live(tmp_path) as (_, sh, sh_url, _, _):
        monkeypatch.setenv("YRD_HTTP_TOKEN", "yrd_" + "A" * 43)
        code, out, err = await yrd(capsys, "case", "list", "--url", sh_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: unauthorized: ")
        monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(sh.config)["platform"])
        code, out, err = await yrd(capsys, "case", "list", "--url", sh_url)
        assert code == 0, err
        assert out.splitlines()[-1] == "0 cases"
