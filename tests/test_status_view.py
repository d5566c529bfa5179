"""How the federation status view judges health from the nodes' answers."""

from __future__ import annotations

from typing import Any

from monitoring.status import (
    NODE_HEADERS,
    NodeAnswer,
    ago,
    days_left,
    link_rows,
    node_rows,
    problems,
    refused_nodes,
)

DAY = 86400.0


def answer(circuit: str, *, up: bool = True, dead: int = 0, ready: bool = True) -> NodeAnswer:
    status: dict[str, Any] = {
        "province": "shanghai",
        "ready": ready,
        "checks": {"store": "ok" if ready else "store is closed"},
        "peers": [
            {
                "peer": "anhui",
                "up": up,
                "circuit": circuit,
                "dead_letters": dead,
                "last_error": "UNAVAILABLE: connection refused",
            },
        ],
    }
    return NodeAnswer("http://127.0.0.1:8101", status)


def test_open_circuit_is_a_problem_and_half_open_is_not() -> None:
    """An open circuit is reported with its last error; a half-open one (the peer answers
    again and a trial batch is under way) is not a fault."""
    assert problems([answer("closed")]) == []
    assert problems([answer("half_open")]) == []
    [found] = problems([answer("open")])
    assert "shanghai→anhui: delivery circuit open" in found and "connection refused" in found


def test_unreachable_node_dead_letters_and_not_ready_are_problems() -> None:
    """A silent peer, parked messages, a node not ready and a node that did not answer
    each give one sentence."""
    silent_peer = problems([answer("closed", up=False)])
    assert silent_peer == ["shanghai→anhui: peer not answering heartbeats"]
    assert problems([answer("closed", dead=2)]) == ["shanghai→anhui: 2 dead letter(s)"]
    not_ready = problems([answer("closed", ready=False)])
    assert not_ready == ["shanghai: not ready (store: store is closed)"]
    silent = NodeAnswer("http://127.0.0.1:8102", None, "connection refused")
    expected = "http://127.0.0.1:8102: node not answering at 127.0.0.1:8102 (connection refused)"
    assert problems([silent]) == [expected]


def test_a_silent_node_is_named_by_province_with_the_command_that_starts_it() -> None:
    """A node the mesh folder names is called by its province, with the start command the
    caller gives; its row says NO ANSWER and holds no URL or error text; it has no link rows."""
    silent = NodeAnswer("http://127.0.0.1:8102", None, "connection refused", name="jiangsu")
    hint = {"jiangsu": "yrd mesh start --dir mesh jiangsu"}.get
    assert problems([silent], hint) == [
        "jiangsu: node not answering at 127.0.0.1:8102 (connection refused); "
        "start it: yrd mesh start --dir mesh jiangsu"
    ]
    assert node_rows([silent]) == [["jiangsu", "NO ANSWER", *[""] * (len(NODE_HEADERS) - 2)]]
    assert link_rows([silent]) == []


def node(province: str, *links: dict[str, Any]) -> NodeAnswer:
    status = {"province": province, "ready": True, "checks": {}, "peers": list(links)}
    return NodeAnswer(f"http://{province}", status)


def link(peer: str, by: str | None = None, code: str = "key_revoked") -> dict[str, Any]:
    refusal = None if by is None else {"code": code, "by": by, "detail": "the key is revoked"}
    return {"peer": peer, "up": by is None, "circuit": "closed", "dead_letters": 0,
            "refusal": refusal}  # fmt: skip


def test_a_refused_link_says_who_refuses_and_why() -> None:
    """A link whose heartbeats a peer refuses names the fault code and the side that refuses,
    not "peer not answering heartbeats"; the link table says REFUSED with the code."""
    jiangsu = node("jiangsu", link("shanghai", by="peer"), link("zhejiang"))
    shanghai = node("shanghai", link("jiangsu", by="this_node"))
    found = problems([jiangsu, shanghai])
    assert (
        "jiangsu→shanghai: shanghai refuses jiangsu's messages: key_revoked (the key is revoked)"
        in found
    )
    assert (
        "shanghai→jiangsu: shanghai refuses jiangsu's answers: key_revoked (the key is revoked)"
        in found
    )
    assert not any("not answering" in p for p in found)
    rows = link_rows([jiangsu, shanghai], now=0.0)
    assert [r[:3] + r[-1:] for r in rows] == [
        ["jiangsu", "shanghai", "REFUSED", "key_revoked (by shanghai)"],
        ["jiangsu", "zhejiang", "up", ""],
        ["shanghai", "jiangsu", "REFUSED", "key_revoked (by shanghai)"],
    ]


def test_a_node_every_peer_refuses_is_flagged_first_with_the_way_out() -> None:
    """When each of a node's peers refuses it, seen from either side, one problem says so
    first, with the rotation that ends it; a node refused by some peers only is not flagged."""
    jiangsu = node("jiangsu", link("shanghai", by="peer"), link("zhejiang"))
    zhejiang = node("zhejiang", link("jiangsu", by="this_node"), link("shanghai"))
    assert refused_nodes([a.status for a in (jiangsu, zhejiang) if a.status]) == {
        "jiangsu": ["key_revoked"]
    }
    found = problems([jiangsu, zhejiang], mesh="mesh")
    assert found[0] == (
        "jiangsu: EVERY peer refuses its messages (key_revoked); its signing key is revoked: "
        "yrd manifest rotate-key --dir mesh --province jiangsu, then SIGHUP every node"
    )
    partly = node("jiangsu", link("shanghai", by="peer"), link("zhejiang"))
    assert refused_nodes([partly.status or {}]) == {}
    # The node table says it too, beside a readiness of its own that is fine.
    rows = {row[0]: row[-1] for row in node_rows([jiangsu, zhejiang])}
    assert "refused by every peer (key_revoked)" in rows["jiangsu"]
    assert "refused by every peer" not in rows["zhejiang"]


def test_days_left_is_whole_days_rounded_down() -> None:
    """One rounding everywhere: 89.9 days left is "89 d", the last hours "0 d", and a past
    moment EXPIRED."""
    assert days_left(89.9 * DAY, 0.0) == "89 d"
    assert days_left(90 * DAY, 0.0) == "90 d"
    assert days_left(1.5 * DAY, 0.0) == "1 d"
    assert days_left(3600.0, 0.0) == "0 d"
    assert days_left(0.0, 0.0) == "EXPIRED"
    assert days_left(0.0, 5.0) == "EXPIRED"


def test_last_success_is_shown_as_an_age() -> None:
    """The link table's "last success" is how long ago, or "never"."""
    assert ago(None, 0.0) == "never"
    assert ago("1970-01-01T00:00:00Z", 42.0) == "42 s ago"
    assert ago("1970-01-01T00:00:00Z", 600.0) == "10 min ago"
    assert ago("1970-01-01T00:00:00Z", 5 * 3600.0) == "5 h ago"
    assert ago("1970-01-01T00:00:00Z", 3 * DAY) == "3 days ago"


def test_platform_down_or_refusing_is_a_problem() -> None:
    """A node whose province platform does not answer, or refused deliveries, is unhealthy;
    a node without a platform, or with one that answers, is not."""
    healthy = answer("closed")
    assert healthy.status is not None
    healthy.status["platform"] = {"up": True, "outbox_depth": 0, "dead_letters": 0}
    assert problems([healthy]) == []
    down = answer("closed")
    assert down.status is not None
    down.status["platform"] = {
        "up": False,
        "outbox_depth": 3,
        "dead_letters": 1,
        "last_error": "connection refused",
    }
    found = problems([down])
    assert any("platform is not answering (connection refused); 3 item(s) wait" in p for p in found)
    assert any("platform refused 1 delivery" in p for p in found)


def test_a_witness_refusing_a_nodes_log_makes_the_federation_unhealthy() -> None:
    """A link whose peer refuses the node's checkpoints (log_inconsistent) shows REFUSED in
    the cosigned column, the node's "not ok" names the witness, and the verdict names it."""
    refused = {
        **link("jiangsu"),
        "cosigned": None,
        "checkpoint_refused": {
            "count": 3,
            "at": "2026-12-01T10:00:00Z",
            "code": "log_inconsistent",
            "reason": "the checkpoint does not extend the one cosigned before",
        },
    }
    shanghai = node("shanghai", refused)
    assert link_rows([shanghai], now=0.0)[0][8] == "REFUSED"
    assert (
        node_rows([shanghai], now=0.0)[0][-1] == "log refused by witness jiangsu (log_inconsistent)"
    )
    [problem] = problems([shanghai])
    assert problem.startswith("shanghai→jiangsu: jiangsu refuses to cosign shanghai's evidence log")
    assert "3 time(s)" in problem and "does not extend" in problem
    assert problems([node("shanghai", link("jiangsu"))]) == []
