"""How the federation status view judges health from the nodes' answers."""

from __future__ import annotations

from typing import Any

from monitoring.status import NodeAnswer, problems


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
    silent = NodeAnswer("http://127.0.0.1:8102", None, "unreachable: ClientConnectorError")
    expected = "http://127.0.0.1:8102: no status (unreachable: ClientConnectorError)"
    assert problems([silent]) == [expected]


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
