"""Moving a running province from Ed25519 to SM2 (``rotate_signing_key(..., suite=SM2)``)
while traffic flows both ways, on real nodes with mutual TLS and real stores: nothing is
refused or parked during the overlap, not even messages queued under the old key and sent
under the new one, and the old key is refused once its overlap has ended."""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from node.mesh.layout import DAY, rotate_signing_key
from node.protocol.envelope import seal
from node.protocol.faults import FaultCode
from node.store import inbox, outbox
from node.trust.keys import load_signing_key
from node.trust.suites import ED25519_SUITE, SM2_SUITE
from node.wire import pb
from tests.federation import probe_message
from tests.nodes import config_for, eventually, make_mesh, raw_channel, running, tls_of
from tests.test_exchange import call_raw, fault_code
from tests.test_rotation import stored_key_ids

ROUNDS = 6
PER_ROUND = 20


async def test_a_province_moves_from_ed25519_to_sm2_under_traffic(tmp_path: Path) -> None:
    mesh = make_mesh(tmp_path)
    old_key = load_signing_key(mesh / "shanghai" / "signing.key")
    assert old_key.suite is ED25519_SUITE
    shift = [0.0]

    def jiangsu_clock() -> float:
        return time.time() + shift[0]

    async with (
        running(config_for(mesh, "jiangsu"), clock=jiangsu_clock) as js,
        running(config_for(mesh, "shanghai")) as sh,
    ):
        sent_by_shanghai: list[str] = []
        sent_by_jiangsu: list[str] = []

        async def traffic(round_number: int) -> None:
            bodies = [
                ("probe", pb.Probe(sequence=round_number * PER_ROUND + i)) for i in range(PER_ROUND)
            ]
            sent_by_shanghai.extend(await sh.courier.send("jiangsu", bodies))
            sent_by_jiangsu.extend(await js.courier.send("shanghai", bodies))

        await traffic(0)
        new_key_id = rotate_signing_key(
            mesh, "shanghai", now=time.time(), overlap_days=1, suite=SM2_SUITE
        )
        await traffic(1)
        await js.reload()  # the receiver learns the new key first, as in any rotation
        await traffic(2)
        # Queued while the node signed with the old key (unsigned, named by SHA-256), still in
        # the outbox when the node moves to the new one: the worker signs its batch with the
        # SM2 key, and the receipt naming it by SM3 still settles it.
        held = sh.courier.seal("jiangsu", [("probe", pb.Probe(sequence=999))])
        await sh.reload()
        await sh.db.write(lambda conn: sh.courier.enqueue(conn, "jiangsu", held))
        crossed = held[0].message_id
        assert sh.credentials.signing_key.key_id == new_key_id
        assert sh.credentials.signing_key.suite is SM2_SUITE
        for round_number in range(3, ROUNDS):
            await traffic(round_number)

        expected = len(sent_by_shanghai) + 1

        def all_delivered() -> bool:
            return (
                inbox.count(js.db.reader(), payload_type="probe") == expected
                and outbox.depth(sh.db.reader(), "jiangsu")[0] == 0
                and inbox.count(sh.db.reader(), payload_type="probe") == len(sent_by_jiangsu)
                and outbox.depth(js.db.reader(), "shanghai")[0] == 0
            )

        await eventually(all_delivered)
        assert outbox.dead_count(sh.db.reader()) == 0 and outbox.dead_count(js.db.reader()) == 0
        received = (
            js.db.reader()
            .execute("SELECT envelope FROM inbox WHERE message_id = ?", (crossed,))
            .fetchone()
        )
        as_queued = pb.Envelope.FromString(held[0].envelope)
        assert (as_queued.signature, as_queued.key_id) == (b"", "")
        assert held[0].digest == ED25519_SUITE.hash(held[0].message)
        assert pb.Envelope.FromString(received[0]).key_id == new_key_id
        used = stored_key_ids(js.db.reader(), sh.config.node_id)
        assert {old_key.key_id, new_key_id} == set(used)
        assert used[-1] == new_key_id

        # The overlap ends a day after the rotation: then the old key is refused.
        shift[0] = DAY + 120
        stale = seal(probe_message("shanghai", "jiangsu", now=jiangsu_clock()), old_key)
        async with raw_channel(js.config, tls_of(mesh, "shanghai"), js.config.node_id) as ch:
            status, fault = await call_raw(ch, stale.envelope)
        assert status == grpc.StatusCode.UNAUTHENTICATED
        assert fault_code(fault) == FaultCode.KEY_NOT_CURRENT.value
        assert inbox.count(js.db.reader(), payload_type="probe") == expected
