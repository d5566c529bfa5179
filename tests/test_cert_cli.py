"""``yrd cert verify|usage|import`` and ``yrd presentation issue|verify`` against two live nodes
(Shanghai issues the card, Jiangsu checks it) on their configured HTTP ports; the command
runs in-process in a worker thread."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from node.api.service import start_http
from node.cli.main import main
from node.identifiers import make_certificate_id, parse_certificate_id
from node.runtime.node import Node
from tests.certificate_samples import LI_MINGHUA, OTHER_PERSON, sample_json
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

CARD = sample_json("resident_id_card")
CARD_ID = CARD["certificate_id"]
MASKED = f"{LI_MINGHUA[:6]}{'*' * 8}{LI_MINGHUA[-4:]}"


@asynccontextmanager
async def live(tmp_path: Path) -> AsyncIterator[tuple[Path, Node, str, Node, str]]:
    """Shanghai and Jiangsu running, each serving HTTP on its configured port, links up, and
    revocation lists refreshed every 0.2 s."""
    mesh = make_mesh(tmp_path)
    fast = {"revocation_refresh_seconds": 0.2}
    async with (
        running(config_for(mesh, "shanghai", **fast)) as sh,
        running(config_for(mesh, "jiangsu", **fast)) as js,
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


def card_file(tmp_path: Path, *cards: object, name: str = "card.json") -> Path:
    """One card as a JSON object, or several as an array."""
    path = tmp_path / name
    document = cards[0] if len(cards) == 1 else list(cards)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def header(out: str) -> dict[str, str]:
    """The ``key  value`` lines before the first blank line."""
    pairs = (line.split("  ", 1) for line in out.split("\n\n")[0].splitlines())
    return {key.strip(): value.strip() for key, value in pairs}


async def test_import_verify_and_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card imported at Shanghai is verified from Jiangsu for status alone and, with consent,
    for fields shown in a table with the ID number masked; a refusal exits 1 naming its code
    and field; Shanghai's usage table lists each disclosure and Jiangsu's usage is refused."""
    async with live(tmp_path) as (mesh, _, sh_url, _, js_url):
        one = str(card_file(tmp_path, CARD))
        code, out, err = await yrd(capsys, "cert", "import", one, "--url", sh_url)
        assert (code, err) == (0, "")
        assert out == f"{CARD_ID}  imported  (resident_id_card, valid)\n"

        parts = parse_certificate_id(CARD_ID)
        licence = sample_json("driving_licence")
        other = make_certificate_id(parts.type_code, parts.issuer_code, "SH02")
        wrong = {**CARD, "certificate_id": str(other), "status": "lost"}
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([licence, wrong])))
        code, out, err = await yrd(capsys, "cert", "import", "-", "--url", sh_url)
        assert code == 1
        assert out == f"{licence['certificate_id']}  imported  (driving_licence, valid)\n"
        assert err.startswith("yrd: invalid_status: ")
        assert err.rstrip().endswith("(field: [1].status)")

        ask = ["cert", "verify", CARD_ID, "--holder", LI_MINGHUA, "--purpose", "hotel_check_in"]
        code, out, err = await yrd(capsys, *ask, "--mesh", str(mesh), "--province", "jiangsu")
        assert code == 0, err
        shown = header(out)
        assert shown["status"] == "valid" and shown["issuer"] == "shanghai"
        assert shown["holder"] == MASKED and shown["cached"] == "no"
        assert shown["valid"] == "yes" and "valid until" not in shown
        assert shown["checked"] and shown["answer good until"] >= shown["checked"]
        assert out.endswith("\ndisclosed: status only\n")

        code, out, err = await yrd(capsys, *ask, "--field", "name", "--url", js_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: consent_required: ")
        assert err.rstrip().endswith("(field: consent)")

        fields = ["--field", "name", "--field", "id_number", "--field", "address"]
        # The holder consents at their own province's platform; Shanghai's node signs.
        expires = time.strftime(
            "%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600 + 600)
        )
        grant_argv = ["cert", "consent", "--holder", LI_MINGHUA, "--purpose", "hotel_check_in",
                      *fields, "--certificate", CARD_ID, "--expires", expires]  # fmt: skip
        code, out, err = await yrd(capsys, *grant_argv, "--url", sh_url)
        assert code == 0, err
        grant = out.strip()
        assert "for hotel_check_in (name, id_number, address) until" in err
        assert LI_MINGHUA not in err
        code, out, err = await yrd(capsys, *grant_argv, "--url", sh_url, "--json")
        grant_id = json.loads(out)["grant_id"]
        assert grant_id.startswith("cg-")
        consent = ["--consent", grant]
        argv = [*ask, *fields, *consent, "--requester", "南京市某酒店", "--url", js_url]
        code, out, err = await yrd(capsys, *argv)
        assert code == 0, err
        first_grant_id = json.loads(
            (await yrd(capsys, "cert", "usage", CARD_ID, "--url", sh_url, "--json"))[1]
        )["usage"][0]["consent_grant_id"]
        assert LI_MINGHUA not in out and LI_MINGHUA[6:14] not in out
        table = out[out.index("\ndisclosed\n") + len("\ndisclosed\n") :].splitlines()
        assert table[0].split() == ["field", "label", "value"]
        assert [row.split() for row in table[2:]] == [
            ["name", "姓名", CARD["fields"]["name"]],
            ["address", "住址", CARD["fields"]["address"]],
            ["id_number", "公民身份号码", MASKED],
        ]  # the card's face order, whatever the answer's
        code, out, err = await yrd(capsys, *argv, "--json")
        assert code == 0, err
        answer = json.loads(out)
        assert answer["cached"] is True and answer["fields"]["id_number"] == LI_MINGHUA

        code, out, err = await yrd(capsys, "cert", "usage", CARD_ID, "--url", sh_url)
        assert code == 0, err
        lines = out.splitlines()
        columns = ["at", "requester province", "requester", "purpose", "fields", "consent"]
        assert [h.strip() for h in lines[0].split("  ") if h.strip()] == [*columns, "status"]
        rows = [line.split() for line in lines[2:4]]
        disclosed = "status,name,address,id_number"
        assert [r[1:] for r in rows] == [
            [
                "jiangsu",
                "南京市某酒店",
                "hotel_check_in",
                disclosed,
                first_grant_id,
                "valid",
            ],
            ["jiangsu", "-", "hotel_check_in", "status", "-", "valid"],
        ]
        assert lines[-1] == f"2 checks of {CARD_ID} (issued in shanghai)"
        code, out, err = await yrd(capsys, "cert", "usage", CARD_ID, "--url", sh_url, "--json")
        assert code == 0, err
        assert json.loads(out)["usage"][0]["consent_grant_id"] == first_grant_id

        code, out, err = await yrd(capsys, "cert", "usage", CARD_ID, "--url", js_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: not_issuer: ") and "(field: certificate_id)" in err


async def test_presentations_and_revocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shanghai issues a presentation that Jiangsu verifies (exit 0) with the revocation list's
    age and version; a tampered token and a stranger's request exit 1; once the card is
    revoked and Jiangsu holds the newer list the same token exits 3 and no new one is issued."""
    async with live(tmp_path) as (mesh, _, sh_url, js, js_url):
        one = str(card_file(tmp_path, CARD))
        code, _, err = await yrd(capsys, "cert", "import", one, "--url", sh_url)
        assert code == 0, err
        issue = ["presentation", "issue", CARD_ID, "--holder", LI_MINGHUA]
        code, out, err = await yrd(capsys, *issue, "--url", sh_url)
        assert code == 0, err
        shown = header(out)
        token = out.rstrip().splitlines()[-1]
        assert shown["certificate"] == CARD_ID and shown["size"] == f"{len(token)} bytes"
        assert shown["expires"].endswith("Z")
        code, out, err = await yrd(capsys, *issue, "--url", sh_url, "--json")
        assert code == 0, err
        assert json.loads(out)["size_bytes"] == len(json.loads(out)["token"])

        code, out, err = await yrd(
            capsys, "presentation", "issue", CARD_ID, "--holder", OTHER_PERSON, "--url", sh_url
        )
        assert (code, out) == (1, "")
        assert err.startswith("yrd: holder_mismatch: ") and "(field: holder_code)" in err

        await eventually(lambda: js.certificates.held_list("shanghai") is not None)
        code, out, err = await yrd(capsys, "presentation", "verify", token, "--url", js_url)
        assert code == 0, err
        shown = header(out)
        assert (shown["valid"], shown["status"], shown["issuer"]) == ("yes", "valid", "shanghai")
        assert shown["revocation list"].startswith("version ")
        assert [row.split() for row in out.split("\ndisclosed\n")[1].splitlines()[2:]] == [
            ["name", "姓名", CARD["fields"]["name"]],
            ["sex", "性别", "male"],
        ]

        tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
        code, out, err = await yrd(capsys, "presentation", "verify", tampered, "--url", js_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: bad_signature: ") and "(field: token)" in err

        held = js.certificates.held_list("shanghai")
        assert held is not None
        revoked = card_file(tmp_path, {**CARD, "status": "revoked"}, name="revoked.json")
        code, out, err = await yrd(capsys, "cert", "import", str(revoked), "--url", sh_url)
        assert code == 0, err
        assert out.endswith("(resident_id_card, revoked)\n")

        def newer_list() -> bool:
            now_held = js.certificates.held_list("shanghai")
            return now_held is not None and now_held.version > held.version

        await eventually(newer_list)
        monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
        code, out, err = await yrd(
            capsys, "presentation", "verify", "-", "--mesh", str(mesh), "--province", "jiangsu"
        )
        assert (code, err) == (3, "")
        shown = header(out)
        assert (shown["valid"], shown["status"]) == ("NO", "revoked")
        code, out, err = await yrd(
            capsys, "presentation", "verify", token, "--url", js_url, "--json"
        )
        assert code == 3
        checked = json.loads(out)
        assert checked["valid"] is False
        assert checked["revocation_list_version"] > held.version

        code, out, err = await yrd(capsys, *issue, "--url", sh_url)
        assert (code, out) == (1, "")
        assert err.startswith("yrd: certificate_not_valid: ")

        # Online verification of the revoked card agrees with the offline check: exit 3, and
        # no "valid until" beside "revoked" (the attestation's lifetime is the answer's).
        ask = ["cert", "verify", CARD_ID, "--holder", LI_MINGHUA, "--purpose", "hotel_check_in"]
        code, out, err = await yrd(capsys, *ask, "--url", js_url)
        assert (code, err) == (3, "")
        shown = header(out)
        assert (shown["valid"], shown["status"]) == ("NO", "revoked")
        assert "valid until" not in out
        code, out, err = await yrd(capsys, *ask, "--url", js_url, "--json")
        assert (code, json.loads(out)["status"]) == (3, "revoked")


async def test_import_stops_when_the_node_refuses_the_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a token that may not import (the platform's) an array import stops at the first
    refusal (it names no field, so every certificate would meet it) and exits 1; with the
    operator's token in YRD_HTTP_TOKEN all are imported."""
    cards = str(card_file(tmp_path, CARD, sample_json("driving_licence")))
    async with live(tmp_path) as (_, sh, sh_url, _, _):
        monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(sh.config)["platform"])
        code, out, err = await yrd(capsys, "cert", "import", cards, "--url", sh_url)
        assert (code, out) == (1, "")
        first, stopped = err.splitlines()
        assert first.startswith("yrd: forbidden: ") and first.endswith("(field: [0])")
        assert stopped == "yrd: stopped; 1 more not sent"
        monkeypatch.setenv("YRD_HTTP_TOKEN", tokens_of(sh.config)["operator"])
        code, out, err = await yrd(capsys, "cert", "import", cards, "--url", sh_url, "--json")
        assert (code, err) == (0, "")
        assert [c["index"] for c in json.loads(out)["imported"]] == [0, 1]


async def test_command_line_problems_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A consent expiry without a zone, a file that is not JSON and an array holding
    something other than certificates exit 2 before anything is sent."""
    unused = "http://127.0.0.1:9"  # nothing is asked: the command line is refused first
    grant = ["cert", "consent", "--holder", LI_MINGHUA, "--purpose", "hotel_check_in"]
    with pytest.raises(SystemExit) as exited:
        await yrd(
            capsys, *grant, "--field", "name", "--expires", "2099-12-01T18:00:00", "--url", unused
        )
    assert exited.value.code == 2
    assert "needs a zone" in capsys.readouterr().err

    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    code, out, err = await yrd(capsys, "cert", "import", str(broken), "--url", unused)
    assert (code, out) == (2, "") and "not JSON" in err
    code, out, err = await yrd(
        capsys, "cert", "import", str(card_file(tmp_path, CARD, "x")), "--url", unused
    )
    assert (code, out) == (2, "") and "item [1] is not a certificate object" in err


UNREACHABLE_COMMANDS = (
    ("cert", "verify", CARD_ID, "--holder", LI_MINGHUA, "--purpose", "hotel_check_in"),
    ("cert", "usage", CARD_ID),
    ("cert", "consent", "--holder", LI_MINGHUA, "--purpose", "hotel_check_in", "--field", "name"),
    ("cert", "import", "CARD_FILE"),
    ("presentation", "issue", CARD_ID, "--holder", LI_MINGHUA),
    ("presentation", "verify", "AQAB"),
    ("case", "list"),
)


async def test_unreachable_node_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A URL where no node listens exits 2 with one line naming where and why, for every
    command; no transport library's exception text, no traceback."""
    port = free_base_port(1) + 1000
    card = str(card_file(tmp_path, CARD))
    for argv in UNREACHABLE_COMMANDS:
        argv = tuple(card if a == "CARD_FILE" else a for a in argv)
        code, out, err = await yrd(capsys, *argv, "--url", f"http://127.0.0.1:{port}")
        assert (code, out) == (2, ""), argv
        assert err == (
            f"yrd: the node is not answering at 127.0.0.1:{port} "
            "(connection refused: nothing listens there)\n"
        ), argv


async def test_an_issuer_that_is_down_is_not_checked_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Verifying a Shanghai card at Jiangsu while Shanghai's node is down exits 2 (the exit
    table's "not checked"), with one line naming Shanghai's node; no gRPC status, no address."""
    mesh = make_mesh(tmp_path)
    async with running(config_for(mesh, "jiangsu")) as js:
        runner = await start_http(js)
        try:
            code, out, err = await yrd(
                capsys, "cert", "verify", CARD_ID, "--holder", LI_MINGHUA,
                "--purpose", "hotel_check_in", "--url", known_url(js.config),
            )  # fmt: skip
        finally:
            await runner.cleanup()
    assert (code, out) == (2, "")
    assert err == (
        f"yrd: {CARD_ID} not checked: the issuer's node (shanghai) did not answer; ask "
        "again once it is up\n"
    )


async def test_a_stopped_mesh_node_is_named_with_the_command_that_starts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``--mesh DIR --province P`` and P's node down, every command names P, where it
    should answer, and ``yrd mesh up --dir DIR`` (no ``yrd mesh up`` keeps DIR's mesh)."""
    mesh = make_mesh(tmp_path)
    http = config_for(mesh, "jiangsu").http_listen
    card = str(card_file(tmp_path, CARD))
    for argv in UNREACHABLE_COMMANDS:
        argv = tuple(card if a == "CARD_FILE" else a for a in argv)
        code, out, err = await yrd(capsys, *argv, "--mesh", str(mesh), "--province", "jiangsu")
        assert (code, out) == (2, ""), argv
        assert err == (
            f"yrd: the jiangsu node is not answering at {http} (connection refused: nothing "
            f"listens there); start it: yrd mesh up --dir {mesh}\n"
        ), argv


@pytest.mark.parametrize("folder", ["nosuch", "empty", "file"])
async def test_a_folder_that_is_no_mesh_says_so_and_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], folder: str
) -> None:
    """``--mesh``/``--dir`` naming a missing folder, an empty one or a file says "not a mesh
    folder" and ``yrd mesh init DIR``, and names no file inside it; nothing is asked or
    changed."""
    where = tmp_path / folder
    if folder == "empty":
        where.mkdir()
    elif folder == "file":
        where.write_text("x")
    for argv in (
        ("cert", "usage", CARD_ID, "--province", "jiangsu", "--mesh"),
        ("case", "list", "--province", "jiangsu", "--mesh"),
        ("status", "--mesh"),
        ("catalog", "--mesh"),
        ("load", "--dir"),
        ("manifest", "show", "--dir"),
        ("manifest", "rotate-key", "--province", "jiangsu", "--dir"),
        ("manifest", "revoke-key", "--province", "jiangsu", "--key-id", "ed25519:00", "--dir"),
    ):
        code, out, err = await yrd(capsys, *argv, str(where))
        assert (code, out) == (2, ""), argv
        assert f"{where} is not a mesh folder (" in err, argv
        assert f"; create one with: yrd mesh init {where}" in err, argv
        assert "governance" not in err and "manifest.json" not in err


async def test_verify_file_in_bulk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``cert verify --file`` asks every question of a CSV file or of JSON lines through the
    bulk route, a line each (no holder code shown) and a count; a refused question exits 1
    and is recorded nowhere; a malformed file exits 2 naming its line, and nothing is sent."""
    async with live(tmp_path) as (_, sh, sh_url, _, js_url):
        code, _, err = await yrd(
            capsys, "cert", "import", str(card_file(tmp_path, CARD)), "--url", sh_url
        )
        assert code == 0, err
        questions = tmp_path / "checks.csv"
        questions.write_text(
            "certificate_id,holder_code,purpose,requester,fields\n"
            f"{CARD_ID},{LI_MINGHUA},hotel_check_in,前台一,\n"
            f"{CARD_ID},{OTHER_PERSON},hotel_check_in,前台二,\n"
            f"{CARD_ID},{LI_MINGHUA},hotel_check_in,前台三,name;address\n"
            f"{CARD_ID},{LI_MINGHUA},hotel_check_in,前台四,\n",
            encoding="utf-8",
        )
        argv = ["cert", "verify", "--file", str(questions), "--url", js_url, "--batch-size", "3"]
        code, out, err = await yrd(capsys, *argv)
        assert (code, err) == (1, "")
        lines = out.splitlines()
        assert lines[0].split() == ["2", CARD_ID, "valid", "valid", "status", "only"]
        assert lines[1].split()[:4] == ["3", CARD_ID, "refused", "holder_mismatch"]
        assert lines[2].split()[:4] == ["4", CARD_ID, "refused", "consent_required"]
        assert lines[3].split()[:3] == ["5", CARD_ID, "valid"]
        assert lines[-1] == "4 questions: 2 valid, 0 not valid, 0 not checked, 2 refused"
        assert LI_MINGHUA not in out and OTHER_PERSON not in out
        usage = sh.certificates.usage(CARD_ID)["usage"]
        assert sorted(r["requester"] for r in usage) == ["前台一", "前台四"]

        jsonl = tmp_path / "checks.jsonl"
        ask = {"certificate_id": CARD_ID, "holder_code": LI_MINGHUA, "purpose": "hotel_check_in"}
        jsonl.write_text(json.dumps(ask) + "\n\n" + json.dumps({**ask, "requester": "前台五"}))
        code, out, err = await yrd(capsys, "cert", "verify", "--file", str(jsonl), "--url", js_url,
                                   "--json")  # fmt: skip
        assert (code, err) == (0, "")
        results = json.loads(out)["results"]
        assert [r["result"]["status"] for r in results] == ["valid", "valid"]

        before = len(sh.certificates.usage(CARD_ID)["usage"])
        broken = tmp_path / "broken.jsonl"
        broken.write_text(json.dumps({**ask, "requester": "前台六"}) + "\n[1, 2]\n")
        code, out, err = await yrd(capsys, "cert", "verify", "--file", str(broken), "--url", js_url)
        assert (code, out) == (2, "")
        assert f"{broken}:2: a line must hold one JSON object" in err
        wrong_column = tmp_path / "wrong.csv"
        wrong_column.write_text("certificate_id,holder,purpose\n")
        code, _, err = await yrd(capsys, "cert", "verify", "--file", str(wrong_column), "--url",
                                 js_url)  # fmt: skip
        assert code == 2 and "unknown column 'holder'" in err
        code, _, err = await yrd(capsys, "cert", "verify", CARD_ID, "--file", str(jsonl),
                                 "--url", js_url)  # fmt: skip
        assert code == 2 and "CERTIFICATE_ID goes without it" in err
        code, _, err = await yrd(capsys, "cert", "verify", CARD_ID, "--url", js_url)
        assert code == 2 and "or --file" in err
        assert len(sh.certificates.usage(CARD_ID)["usage"]) == before
