"""``yrd demo`` and ``yrd chaos`` on a mesh of replicas (``--store postgres --replicas N``),
and what they showed: a replica that leaves the platform to another is no problem."""

from __future__ import annotations

from monitoring.status import NodeAnswer, node_rows, problems

# --- status of a replica that leaves the platform to another --------------------------------


def test_a_replica_that_leaves_the_platform_to_another_is_not_finding_it_down() -> None:
    """A replica holding no platform lease says ``"up": null`` for the platform: no problem
    and "other replica's" in the table, where one that finds it down is both."""

    def answer(up: bool | None) -> NodeAnswer:
        status = {"province": "shanghai", "ready": True, "checks": {}, "peers": [],
                  "platform": {"up": up, "outbox_depth": 0, "dead_letters": 0}}  # fmt: skip
        return NodeAnswer("http://127.0.0.1:8201", status, name="shanghai#2")

    assert problems([answer(None)]) == []
    assert "other replica's" in node_rows([answer(None)], now=0.0)[0]
    assert problems([answer(False)]) == [
        "shanghai#2: its platform is not answering (?); 0 item(s) wait for it"
    ]
    assert "DOWN" in node_rows([answer(False)], now=0.0)[0]
