"""Replicas of one node share one store: the start-up check that finds out.

A replica cannot see another replica's database, so it asks. Rules kept here:
- A node's *siblings* are the other endpoints of its own member in the manifest: every one
  of ``endpoints`` but its own ``[grpc] listen``. A node with one endpoint has none, and
  asks nothing.
- Before it opens its store (so a refused start leaves it untouched) and before its
  federation port opens, a starting node asks every sibling at once, over mutual TLS as its
  own identity, which store it runs on: a signed ``replica_probe``, answered with
  a signed ``replica_store`` holding the sibling's store id (``Database.store_id``) and the
  digest of the probe. The reply is checked like any peer's reply (signed by a key the
  manifest lists for this node, addressed to us, answering that very probe).
- A sibling that answers with another store id than the one this node's store holds (read
  without opening it: ``database.held_store_id``) runs on another database: the node
  refuses to start (``StoreMismatch``), naming both ids and the sibling's endpoint. So does
  one answering while this node's store has no id (new, or from before store ids): it
  cannot be the sibling's.
- A sibling that cannot be reached in ``PROBE_TIMEOUT``, answers with a fault (its own
  store away, or a node too old to know the probe), or whose reply fails the checks proves
  nothing either way: it is logged, and start-up goes on. A replica that was down checks
  the others when it starts itself.
- Two replicas started at the very same moment may each find the other not serving yet. So
  once it serves, a node asks the siblings that told it nothing again, every
  ``RECHECK_SECONDS``, until each has told its store; one on another store is logged as an
  error and fails this node's readiness, naming the store (it is running already: it is
  not stopped, but load balancers and operators see it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from node.protocol.checks import CheckLimits, check_reply
from node.protocol.envelope import header, seal
from node.protocol.faults import Refusal
from node.runtime.config import NodeConfig
from node.runtime.credentials import Credentials
from node.runtime.startup import StartupError
from node.transport.client import PeerChannel
from node.transport.errors import SignedRefusal, TransportError
from node.trust.tls import TlsMaterial
from node.wire import pb

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
"""Seconds a sibling has to answer before it counts as not reachable."""
RECHECK_SECONDS = 10.0
"""Seconds between the asks, once the node serves, of siblings that told nothing at start."""


class StoreMismatch(StartupError):
    """A sibling replica runs on another store than this one."""


@dataclass(frozen=True)
class SiblingAnswer:
    """What one sibling said of its store."""

    endpoint: str
    store_id: str | None
    """Its store id, or None when it gave none (``reason`` says why)."""
    reason: str = ""


@dataclass(frozen=True)
class SiblingCheck:
    """How this node asks its siblings (module rules): as whom, with what, how long."""

    node_id: str
    credentials: Credentials
    tls: TlsMaterial
    clock: Callable[[], float]
    limits: CheckLimits
    timeout: float = PROBE_TIMEOUT

    @classmethod
    def of(
        cls,
        config: NodeConfig,
        credentials: Credentials,
        tls: TlsMaterial,
        clock: Callable[[], float],
    ) -> SiblingCheck:
        """The check a node of ``config`` makes, as itself, with its message limits."""
        limits = CheckLimits(config.max_message_bytes, config.clock_window_seconds)
        return cls(config.node_id, credentials, tls, clock, limits)

    def endpoints(self, own_listen: str) -> list[str]:
        """The other endpoints of this node in the manifest, in its order."""
        member = self.credentials.manifest.member(self.node_id)
        if member is None:
            return []
        return [endpoint for endpoint in member.endpoints if endpoint != own_listen]

    async def run(
        self, *, own_listen: str, held: Callable[[], Awaitable[str | None]]
    ) -> list[SiblingAnswer]:
        """Ask every sibling at once; ``StoreMismatch`` when one runs on another store than
        the one ``held()`` names (asked only when a sibling named one). Returns what each
        said."""
        answers = await asyncio.gather(*(self.ask(e) for e in self.endpoints(own_listen)))
        told = any(a.store_id is not None for a in answers)
        judge(self.node_id, await held() if told else None, answers)
        return list(answers)

    async def recheck(
        self, told: Sequence[SiblingAnswer], store_id: str, found: Callable[[str], None]
    ) -> None:
        """Ask the siblings that did not tell their store in ``told`` again, every
        ``RECHECK_SECONDS``, until each has; tell ``found`` why, for each one on another
        store than ``store_id``."""
        waiting = [answer.endpoint for answer in told if answer.store_id is None]
        while waiting:
            await asyncio.sleep(RECHECK_SECONDS)
            answers = await asyncio.gather(*(self.ask(e) for e in waiting))
            waiting = [a.endpoint for a in answers if a.store_id is None]
            for answer in answers:
                if answer.store_id is not None and answer.store_id != store_id:
                    problem = mismatch(self.node_id, store_id, [answer])
                    log.error("replica on another store", extra={"reason": problem})
                    found(problem)

    async def ask(self, endpoint: str) -> SiblingAnswer:
        """Ask the replica at ``endpoint`` which store it runs on."""
        message = pb.Message(
            header=header(
                sender=self.node_id,
                recipient=self.node_id,
                now=self.clock(),
                manifest_version=self.credentials.manifest.version,
            ),
            replica_probe=pb.ReplicaProbe(),
        )
        probe = seal(message, self.credentials.signing_key)
        channel = PeerChannel(
            self.node_id,
            endpoint,
            self.tls,
            max_message_bytes=self.limits.max_message_bytes,
            signing_key=lambda: self.credentials.signing_key,
        )
        try:
            try:
                raw = await channel.deliver(probe.envelope, timeout=self.timeout)
            except SignedRefusal as refusal:
                raw = refusal.envelope
        except TransportError as error:
            return SiblingAnswer(endpoint, None, f"not reachable: {error.detail}")
        finally:
            await channel.close()
        try:
            reply = check_reply(
                raw,
                peer=self.node_id,
                manifest=self.credentials.manifest,
                me=self.node_id,
                now=self.clock(),
                request_id=probe.message_id,
                request_digest=probe.digest,
                limits=self.limits,
            )
        except Refusal as refusal:
            said = f"{refusal.code.value}: {refusal.text}"
            return SiblingAnswer(endpoint, None, f"its reply failed the checks: {said}")
        body = reply.message
        if reply.payload_type == "replica_store":
            return SiblingAnswer(endpoint, body.replica_store.store_id)
        if reply.payload_type == "fault":
            said = f"{body.fault.code}: {body.fault.text}"
            return SiblingAnswer(endpoint, None, f"it refused: {said}")
        return SiblingAnswer(endpoint, None, f"it answered with {reply.payload_type or 'nothing'}")


def judge(node_id: str, store_id: str | None, answers: Sequence[SiblingAnswer]) -> None:
    """Refuse the start when a sibling runs on another store than ``store_id`` (None: this
    node's store has no id yet, so is no sibling's); log the siblings that said nothing
    that tells."""
    for answer in answers:
        if answer.store_id is None:
            log.warning(
                "replica not checked; starting anyway (it checks this one when it starts)",
                extra={"endpoint": answer.endpoint, "reason": answer.reason},
            )
        elif answer.store_id == store_id:
            log.info("replica shares this store", extra={"endpoint": answer.endpoint})
    others = [a for a in answers if a.store_id is not None and a.store_id != store_id]
    if others:
        raise StoreMismatch(
            mismatch(node_id, store_id, others) + "; this one's store was left untouched"
        )


def mismatch(node_id: str, store_id: str | None, others: Sequence[SiblingAnswer]) -> str:
    """What is wrong when siblings run on other stores, and what to do."""
    named = "; ".join(f"the replica at {a.endpoint} runs on store {a.store_id}" for a in others)
    mine = (
        f"this one runs on store {store_id}"
        if store_id is not None
        else "this one's store has no store id (a new store, one from before store ids, "
        "or one it cannot read)"
    )
    return (
        f"replicas of {node_id} must share one store, but {mine} and {named}: another "
        f"database. Give every replica of {node_id} the same [store] url"
    )
