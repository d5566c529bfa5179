"""Who may ask what: every route needs a token in force with a scope it admits, on a Host
the node answers for; refusals change nothing and are counted; tokens are kept as hashes."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api.access import OPEN, RULES
from node.api.app import build_app
from node.cli.main import main
from node.runtime.node import Node
from node.store import tokens
from tests.cases import case_body, matter_of
from tests.nodes import config_for, make_mesh, running, tokens_of

Client = TestClient[Any, Any]
SCOPES = ("platform", "operator", "read")


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    return make_mesh(tmp_path)


@asynccontextmanager
async def bare(mesh: Path, **changes: object) -> AsyncIterator[tuple[Node, Client]]:
    """A node and a client that sends no token unless told to."""
    async with running(config_for(mesh, "shanghai", **changes)) as node:
        async with TestClient(TestServer(build_app(node))) as client:
            yield node, client


def concrete(path: str) -> str:
    return path.replace("{case_id}", "310000-20260101-00000001").replace(
        "{certificate_id}", "1.2.156.3005.2.11100000000013338W001.11310000MB2C92725Y.SH0001.001.9"
    )


def footprint(node: Node) -> tuple[int, ...]:
    conn = node.db.reader()
    tables = ("cases", "case_updates", "outbox", "audit", "certificate_library", "api_tokens")
    return tuple(int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables)


def body_for(method: str, path: str) -> dict[str, Any] | None:
    if method == "GET":
        return None
    if path == "/v1/cases":
        return case_body(matter_of("jiangsu"))
    if path == "/v1/probes":
        return {"peer": "jiangsu", "count": 1}
    if path == "/v1/maintenance":
        return {"on": False}
    return {}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused_count(node: Node, route: str, reason: str) -> float:
    value = node.metrics.registry.get_sample_value(
        "yrd_http_refusals_total", {"route": route, "reason": reason}
    )
    return value or 0.0


async def test_every_route_has_a_rule(mesh: Path) -> None:
    """A route added without saying who may call it would be refused to everyone; this
    fails first, naming it."""
    async with running(config_for(mesh, "shanghai")) as node:
        app = build_app(node)
        routes = {
            (r.method, r.resource.canonical)
            for r in app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        }
    assert routes == set(RULES) | OPEN


@pytest.mark.parametrize(("method", "path"), sorted(RULES))
async def test_route_needs_a_token_of_its_scope(mesh: Path, method: str, path: str) -> None:
    """No token and a token not in force: 401 with WWW-Authenticate; a token whose scope the
    route does not admit: 403; none of them changes anything, each is counted. A token of an
    admitted scope gets past the door."""
    async with bare(mesh) as (node, client):
        held = tokens_of(node.config)
        url = concrete(path)
        body = body_for(method, path)
        for headers, status, reason in (
            ({}, 401, "unauthorized"),
            (auth("yrd_" + "x" * 43), 401, "unauthorized"),
            ({"Authorization": "Bearer"}, 401, "unauthorized"),
            ({"Authorization": held["platform"]}, 401, "unauthorized"),
        ):
            response = await client.request(method, url, json=body, headers=headers)
            assert response.status == status, (headers, await response.text())
            problem = await response.json()
            assert problem["code"] == reason
            assert "Bearer" in response.headers["WWW-Authenticate"]
        for scope in SCOPES:
            response = await client.request(method, url, json=body, headers=auth(held[scope]))
            if scope in RULES[(method, path)]:
                assert response.status not in (401, 403, 421), (scope, await response.text())
            else:
                assert response.status == 403, (scope, await response.text())
                problem = await response.json()
                assert problem["code"] == "forbidden"
                assert scope in problem["detail"]
        assert refused_count(node, path, "unauthorized") == 4


async def test_refused_writes_change_nothing(mesh: Path) -> None:
    """A case submission, an import, probes and maintenance refused at the door leave the
    store as it was, and the node stays ready."""
    async with bare(mesh) as (node, client):
        held = tokens_of(node.config)
        before = footprint(node)
        attempts = [
            ("POST", "/v1/cases", held["read"]),
            ("POST", "/v1/cases", held["operator"]),
            ("POST", "/v1/probes", held["platform"]),
            ("POST", "/v1/probes", None),
            ("PUT", "/v1/maintenance", held["platform"]),
            ("PUT", "/v1/maintenance", held["read"]),
            ("POST", "/v1/certificates", held["platform"]),
        ]
        for method, path, token in attempts:
            body = {"on": True} if path == "/v1/maintenance" else body_for(method, path)
            headers = auth(token) if token else {}
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status in (401, 403)
        assert footprint(node) == before
        assert node.health.maintenance_since is None
        assert (await client.get("/readyz")).status == 200


async def test_open_routes_need_no_token_and_readyz_says_no_more(mesh: Path) -> None:
    """Liveness, readiness and metrics answer without a token; readiness names a failing
    check but never its cause (that is in /v1/status, behind a token)."""
    async with bare(mesh) as (node, client):
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/metrics")).status == 200
        node.health.set_maintenance(True)
        answer = await client.get("/readyz")
        assert answer.status == 503
        body = await answer.json()
        assert body["checks"]["maintenance"] == "failing"
        assert set(body["checks"].values()) == {"ok", "failing"}
        status = await client.get("/v1/status", headers=auth(tokens_of(node.config)["read"]))
        assert (await status.json())["checks"]["maintenance"].startswith("maintenance mode")


async def test_host_must_be_the_nodes_own(mesh: Path) -> None:
    """A request naming another host (DNS rebinding) is 421 even with a good token, open
    routes included; the listen address and, on loopback, localhost are fine; a name in
    [http] allowed_hosts is too."""
    async with bare(mesh, allowed_hosts=("node-sh.example:443",)) as (node, client):
        token = tokens_of(node.config)["read"]
        port = client.port
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.2:{port}", ""):
            for path in ("/v1/status", "/healthz"):
                response = await client.get(path, headers={**auth(token), "Host": host})
                assert response.status == 421, (host, path)
                assert (await response.json())["code"] == "misdirected_request"
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            response = await client.get("/v1/status", headers={**auth(token), "Host": host})
            assert response.status == 200, host
        response = await client.get(
            "/v1/status", headers={**auth(token), "Host": "node-sh.example:443"}
        )
        assert response.status == 200
        assert refused_count(node, "/v1/status", "misdirected_request") == 4


async def test_basic_auth_carries_the_token_for_browsers(mesh: Path) -> None:
    """A browser opening the dashboard sends the token as HTTP Basic's password."""
    async with bare(mesh) as (node, client):
        token = tokens_of(node.config)["read"]
        basic = base64.b64encode(f"operator:{token}".encode()).decode()
        response = await client.get("/", headers={"Authorization": f"Basic {basic}"})
        assert response.status == 200
        wrong = base64.b64encode(b"operator:nope").decode()
        response = await client.get("/", headers={"Authorization": f"Basic {wrong}"})
        assert response.status == 401
        challenges = response.headers.getall("WWW-Authenticate")
        assert any(c.startswith("Basic") for c in challenges)
        assert any(c.startswith("Bearer") for c in challenges)


async def yrd(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_token_commands_make_list_and_revoke(
    mesh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`yrd token create` prints a new token once and it works at once; `list` shows names,
    scopes and states and no secret; `revoke` ends it with its next request."""
    config = str(mesh / "shanghai" / "node.toml")
    async with bare(mesh) as (_, client):
        code, out, err = await yrd(
            capsys, "token", "create", "--config", config, "--scope", "read", "--name", "grafana"
        )
        assert code == 0, err
        token = out.strip()
        assert tokens.TOKEN_PATTERN.fullmatch(token)
        assert "shown only now" in err
        assert (await client.get("/v1/status", headers=auth(token))).status == 200
        assert (await client.post("/v1/probes", json={}, headers=auth(token))).status == 403

        code, out, err = await yrd(capsys, "token", "list", "--config", config, "--json")
        assert code == 0, err
        listed = {t["name"]: t for t in json.loads(out)}
        assert set(listed) == {"platform", "operator", "viewer", "grafana"}
        assert listed["grafana"]["scope"] == "read"
        assert listed["grafana"]["revoked_at"] is None
        assert token not in out

        code, out, err = await yrd(
            capsys, "token", "create", "--config", config, "--scope", "read", "--name", "grafana"
        )
        assert code == 1
        assert "already in force" in err

        code, out, err = await yrd(
            capsys, "token", "revoke", "--config", config, "--name", "grafana"
        )
        assert code == 0, err
        assert (await client.get("/v1/status", headers=auth(token))).status == 401
        code, out, err = await yrd(
            capsys, "token", "revoke", "--config", config, "--name", "grafana"
        )
        assert code == 1
        code, out, err = await yrd(capsys, "token", "list", "--config", config)
        assert "revoked" in next(line for line in out.splitlines() if "grafana" in line)
    raw = (mesh / "shanghai" / "node.db").read_bytes()
    assert token.encode() not in raw
    assert tokens.token_hash(token) in raw


async def test_token_command_refuses_bad_input(
    mesh: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad name, an unknown scope or a node with no store are refused, nothing made."""
    config = str(mesh / "shanghai" / "node.toml")
    code, _, err = await yrd(
        capsys, "token", "create", "--config", config, "--scope", "read", "--name", "a b"
    )
    assert code == 2 and "token name" in err
    with pytest.raises(SystemExit) as exited:
        await yrd(capsys, "token", "create", "--config", config, "--scope", "root", "--name", "x")
    assert exited.value.code == 2
    moved = mesh / "shanghai" / "moved.toml"
    moved.write_text(
        (mesh / "shanghai" / "node.toml").read_text().replace('"node.db"', '"nowhere/node.db"')
    )
    code, _, err = await yrd(
        capsys, "token", "create", "--config", str(moved), "--scope", "read", "--name", "x"
    )
    assert code == 2 and "there is no store" in err
    assert not (mesh / "shanghai" / "nowhere").exists()


def test_mesh_tokens_are_private_files(mesh: Path) -> None:
    """`yrd mesh init` leaves each province its platform and operator tokens, and the mesh one
    viewer token, in files only their owner may read."""
    for path in (mesh / "shanghai" / "tokens.json", mesh / "viewer.token"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    held = json.loads((mesh / "shanghai" / "tokens.json").read_text())
    assert set(held) == {"platform", "operator"}
    assert all(tokens.TOKEN_PATTERN.fullmatch(t) for t in held.values())
