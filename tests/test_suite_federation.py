"""Mixed and national-suite federations end to end, as processes: ``yrd demo --suite``.

A mesh of two SM2 provinces (Shanghai, Zhejiang) and two Ed25519 provinces runs the whole
demo: signed heartbeats and probes on all twelve links, cases entered at the platforms on
every directed pair to their conclusion, online certificate checks with consent, a revoked
certificate refused, presentations verified offline against the issuers' revocation lists,
every evidence log verified. Then evidence bundles across the suite boundary (SM2 message,
Ed25519 receipt; Ed25519 message, SM2 receipt; SM2 both ways) are checked by the checker of
tests/test_evidence.py, which verifies SM2 with snowland-smx and SM3 with OpenSSL, sharing no
code with the node.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.test_evidence import check_bundle, evidence, keys_of
from tests.test_mesh import assert_demo_passed, run_demo

pytestmark = pytest.mark.slow


def exchanged(store: Path, direction: str, peer: str) -> list[str]:
    """Ids of messages this store's node sent to / received from ``peer``, answered."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT message_id FROM audit WHERE direction = ? AND peer = ? AND kind = 'envelope' "
            "AND message_id IN (SELECT message_id FROM audit WHERE kind = 'reply') ORDER BY seq",
            (direction, peer),
        ).fetchall()
    return [row[0] for row in rows]


def key_suites(bundle: dict[str, object]) -> tuple[str, str]:
    message, receipt = bundle["signature"], bundle["receipt"]["signature"]  # type: ignore[index]
    return message["key_id"].split(":")[0], receipt["key_id"].split(":")[0]  # type: ignore[index]


def test_a_mixed_mesh_runs_the_demo_and_its_evidence_verifies_independently(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "mesh"
    result = run_demo(directory, "--suite", "shanghai=sm2,zhejiang=sm2")
    assert_demo_passed(result, directory)
    assert (
        "signing suites: shanghai sm2, jiangsu ed25519, zhejiang sm2, anhui ed25519; "
        "governance key ed25519"
    ) in result.stdout
    keys = keys_of(directory / "manifest.json")
    crossings = {
        ("shanghai", "jiangsu"): ("sm2", "ed25519"),
        ("jiangsu", "zhejiang"): ("ed25519", "sm2"),
        ("zhejiang", "shanghai"): ("sm2", "sm2"),
        ("anhui", "jiangsu"): ("ed25519", "ed25519"),
    }
    for (sender, receiver), suites in crossings.items():
        sent = exchanged(directory / sender / "node.db", "sent", receiver)
        assert len(sent) >= 25, f"{sender} → {receiver}: {len(sent)} messages"
        for message_id in (sent[0], sent[-1]):
            for province, direction, peer in (
                (sender, "sent", receiver),
                (receiver, "received", sender),
            ):
                shown = evidence(directory / province / "node.db", message_id)
                assert shown.returncode == 0, shown.stderr
                bundle = json.loads(shown.stdout)
                assert (bundle["direction"], bundle["peer"]) == (direction, peer)
                assert key_suites(bundle) == suites
                check_bundle(bundle, keys)


def test_an_sm2_federation_runs_the_demo(tmp_path: Path) -> None:
    """``yrd demo --suite sm2``: every member and the governance key SM2, all of it works."""
    directory = tmp_path / "mesh"
    result = run_demo(directory, "--suite", "sm2")
    assert_demo_passed(result, directory)
    assert "governance key sm2" in result.stdout
    document = json.loads((directory / "manifest.json").read_bytes())
    assert document["signature"]["key_id"].startswith("sm2:")
    [message_id, *_] = exchanged(directory / "anhui" / "node.db", "sent", "shanghai")
    bundle = json.loads(evidence(directory / "anhui" / "node.db", message_id).stdout)
    assert key_suites(bundle) == ("sm2", "sm2")
    check_bundle(bundle, keys_of(directory / "manifest.json"))
