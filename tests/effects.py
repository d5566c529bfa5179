"""Exactly once, counted on every effect a message has, not on the inbox's primary key.

The inbox's ``PRIMARY KEY (sender, message_id)`` makes received ids unique by construction,
so counting them proves nothing about what a message *did*. These helpers read the stores of
a mesh (every node's ``node.db`` and every simulated platform's ``platform.db``, read-only, by
plain SQL over the schema rather than through the node's own store code) and count each
effect against what caused it:

- **evidence entries per message**: every audit entry (direction, peer, message, kind)
  exists once; each outbox row has its sent envelope and, once delivered, its received
  reply; each inbox row its received envelope and its sent reply.
- **receipts per message**: every outbox row is delivered, and the reply the sender holds
  is byte for byte the one the receiver stored and logged (a second, re-signed receipt would
  differ), a signed receipt for exactly that message and digest.
- **case updates per sequence number**: each case is on both sides with updates 1..n, all
  applied, the same on both; the handler sent exactly one update message per number above 1,
  the accepting node one submission; each request of the accepting side was applied as
  exactly one update on each side (or refused, as none).
- **platform deliveries per update**: each node queued one delivery per applied update (and
  one per case it handles) for its platform, all delivered, and the simulated platform's own
  record holds exactly those updates with those actions and exactly those cases.
- **usage records per disclosure**: each attestation an issuer signed for a peer has one
  usage record, each usage record one disclosure (a peer's request answered with an
  attestation, or a question this node asked itself), and each attestation a requester
  received is recorded once at the issuer.

A failure names the province, the message or case id and the effect; nothing personal.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.mesh.layout import read_manifest
from node.protocol.checks import check_reply
from node.protocol.faults import Refusal
from node.runtime.config import load_config
from node.trust.manifest import Manifest
from node.wire import pb

EFFECTS = ("evidence entries", "receipts", "case updates", "platform deliveries", "usage records")
"""The effects counted, in the order reports show them."""
SHOWN = 12
"""Violations listed in an assertion message; the rest are counted."""

EvidenceKey = tuple[str, str, str, str]
"""(direction, peer province, message id, kind) of an audit entry."""


@dataclass(frozen=True)
class NodeFiles:
    province: str
    node_id: str
    store: Path
    platform: Path | None
    """The simulated platform's ``platform.db``, when the node has a platform."""


def mesh_files(directory: Path) -> list[NodeFiles]:
    """The stores of every member of the mesh at ``directory``."""
    files = []
    for member in read_manifest(directory).members:
        config = load_config(directory / member.province / "node.toml", {})
        platform = directory / member.province / "platform.db"
        files.append(
            NodeFiles(
                member.province,
                member.node_id,
                config.paths.store,
                platform if config.platform is not None else None,
            )
        )
    return files


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        yield conn


# -- what the stores hold ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """An outbox row."""

    peer: str
    message_id: str
    payload_type: str
    correlation_id: str
    envelope: bytes
    digest: bytes
    state: str
    delivered_at: float | None
    reply: bytes | None


@dataclass(frozen=True)
class Update:
    case_id: str
    sequence: int
    action: str
    by_role: str
    applied: bool
    request_id: str
    evidence: bytes


@dataclass(frozen=True)
class Case:
    role: str
    status: str
    applied: int


@dataclass(frozen=True)
class Usage:
    message_id: str
    certificate_id: str
    requester_province: str


@dataclass(frozen=True)
class NodeRecord:
    """What one node's store holds, read at one moment."""

    files: NodeFiles
    evidence: Counter[EvidenceKey]
    evidence_bodies: dict[EvidenceKey, bytes]
    outbox: list[Sent]
    inbox: dict[tuple[str, str], tuple[str, bytes]]
    """(sender node id, message id) -> (payload type, the reply stored for it)."""
    cases: dict[str, Case]
    updates: dict[str, list[Update]]
    """Case id -> its updates by sequence number."""
    requests: list[tuple[str, str, str]]
    """The accepting side's requests: (message id, case id, state)."""
    platform_outbox: list[tuple[str, str, dict[str, Any], str]]
    """(kind, case id, payload, state) of what waits for, or went to, the platform."""
    usage: list[Usage]

    @property
    def province(self) -> str:
        return self.files.province

    @classmethod
    def read(cls, files: NodeFiles) -> NodeRecord:
        with read_only(files.store) as conn:
            conn.execute("BEGIN")  # one snapshot for every table
            evidence: Counter[EvidenceKey] = Counter()
            bodies: dict[EvidenceKey, bytes] = {}
            for direction, peer, message_id, kind, body in conn.execute(
                "SELECT direction, peer, message_id, kind, body FROM audit "
                "WHERE direction != 'local' ORDER BY seq"
            ):
                key = (direction, peer, message_id, kind)
                evidence[key] += 1
                bodies.setdefault(key, bytes(body))
            outbox = [
                Sent(peer, mid, kind, corr, bytes(env), bytes(dig), state, at, _bytes(reply))
                for peer, mid, kind, corr, env, dig, state, at, reply in conn.execute(
                    "SELECT peer, message_id, payload_type, correlation_id, envelope, digest, "
                    "state, delivered_at, reply FROM outbox ORDER BY seq"
                )
            ]
            inbox = {
                (sender, mid): (kind, bytes(reply))
                for sender, mid, kind, reply in conn.execute(
                    "SELECT sender, message_id, payload_type, reply FROM inbox"
                )
            }
            cases = {
                case_id: Case(role, status, applied)
                for case_id, role, status, applied in conn.execute(
                    "SELECT case_id, role, status, applied FROM cases"
                )
            }
            updates: dict[str, list[Update]] = {}
            for case_id, sequence, action, by_role, applied, detail, evidence_bytes in conn.execute(
                "SELECT case_id, sequence, action, by_role, applied, detail, evidence "
                "FROM case_updates ORDER BY case_id, sequence"
            ):
                request_id = str(json.loads(detail).get("request_id", ""))
                updates.setdefault(case_id, []).append(
                    Update(
                        case_id,
                        sequence,
                        action,
                        by_role,
                        bool(applied),
                        request_id,
                        bytes(evidence_bytes),
                    )
                )
            requests = list(conn.execute("SELECT message_id, case_id, state FROM case_requests"))
            platform_outbox = [
                (kind, case_id, json.loads(payload), state)
                for kind, case_id, payload, state in conn.execute(
                    "SELECT kind, case_id, payload, state FROM platform_outbox ORDER BY seq"
                )
            ]
            usage = [
                Usage(*row)
                for row in conn.execute(
                    "SELECT message_id, certificate_id, requester_province FROM certificate_usage"
                )
            ]
        return cls(
            files,
            evidence,
            bodies,
            outbox,
            inbox,
            cases,
            updates,
            requests,
            platform_outbox,
            usage,
        )


@dataclass(frozen=True)
class PlatformRecord:
    """What a simulated platform holds of what its node delivered to it."""

    inbound_cases: set[str]
    notices: dict[tuple[str, int], str]
    """(case id, sequence) -> action; the platform keys notices by both."""

    @classmethod
    def read(cls, path: Path) -> PlatformRecord:
        with read_only(path) as conn:
            conn.execute("BEGIN")
            cases = {row[0] for row in conn.execute("SELECT case_id FROM inbound_cases")}
            notices = {
                (case_id, int(sequence)): str(json.loads(body)["action"])
                for case_id, sequence, body in conn.execute(
                    "SELECT case_id, sequence, body FROM notices"
                )
            }
        return cls(cases, notices)


def _bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


def signed_message(envelope: bytes) -> bytes:
    """The Message bytes an envelope signs: what both sides must agree on, whether the
    signature is the message's own or its batch's."""
    return pb.Envelope.FromString(envelope).message


def body_of(envelope: bytes) -> pb.Message:
    return pb.Message.FromString(pb.Envelope.FromString(envelope).message)


# -- the count -----------------------------------------------------------------------------------


@dataclass
class EffectReport:
    counted: Counter[str] = field(default_factory=Counter)
    """Effect -> how many were counted (each one found exactly once)."""
    violations: list[str] = field(default_factory=list)
    unreceived_disclosures: int = 0
    """Attestations an issuer signed and recorded whose requester never recorded the answer
    (its call died with a killed node): a disclosure made once, never a second one."""

    def summary(self) -> str:
        counted = ", ".join(f"{self.counted[e]} {e}" for e in EFFECTS)
        return f"{counted}; {len(self.violations)} violation(s)"

    def problems(self) -> str:
        shown = self.violations[:SHOWN]
        more = len(self.violations) - len(shown)
        return "\n".join(shown + ([f"… and {more} more"] if more > 0 else []))


def count_effects(directory: Path) -> EffectReport:
    """Every effect in the mesh at ``directory``, counted against what caused it. Read when
    the mesh is quiet (nothing pending anywhere); what is still moving shows as violations."""
    files = mesh_files(directory)
    nodes = [NodeRecord.read(f) for f in files]
    platforms = {f.province: PlatformRecord.read(f.platform) for f in files if f.platform}
    return judge(nodes, platforms, read_manifest(directory))


def assert_exactly_once(directory: Path) -> EffectReport:
    """``count_effects``, failing with the first violations if there is any."""
    report = count_effects(directory)
    assert not report.violations, report.problems()
    return report


def judge(
    nodes: Sequence[NodeRecord], platforms: Mapping[str, PlatformRecord], manifest: Manifest
) -> EffectReport:
    report = EffectReport()
    by_province = {n.province: n for n in nodes}
    for node in nodes:
        _evidence(node, by_province, report)
        for receiver in nodes:
            if receiver is not node:
                _receipts(node, receiver, manifest, report)
        if node.province in platforms:
            _platform(node, platforms[node.province], report)
        _usage(node, nodes, report)
    _case_updates(nodes, report)
    return report


def _evidence(node: NodeRecord, nodes: Mapping[str, NodeRecord], report: EffectReport) -> None:
    p = node.province
    for (direction, peer, message_id, kind), n in sorted(node.evidence.items()):
        if n != 1:
            report.violations.append(
                f"{p}: {n} evidence entries '{direction} {kind}' for message {message_id} ({peer})"
            )
    report.counted["evidence entries"] += sum(1 for n in node.evidence.values() if n == 1)
    needed: list[EvidenceKey] = []
    for sent in node.outbox:
        needed.append(("sent", sent.peer, sent.message_id, "envelope"))
        if sent.state == "delivered":
            needed.append(("received", sent.peer, sent.message_id, "reply"))
    provinces = {n.files.node_id: n.province for n in nodes.values()}
    for sender, message_id in node.inbox:
        peer = provinces.get(sender, sender)
        needed += [("received", peer, message_id, "envelope"), ("sent", peer, message_id, "reply")]
    for key in needed:
        if key not in node.evidence:
            direction, peer, message_id, kind = key
            report.violations.append(
                f"{p}: no evidence entry '{direction} {kind}' for message {message_id} ({peer})"
            )


def _receipts(
    sender: NodeRecord, receiver: NodeRecord, manifest: Manifest, report: EffectReport
) -> None:
    """Each message ``sender`` queued for ``receiver`` holds the one receipt the receiver
    made: the same Message bytes on both sides and in both evidence logs, each copy's
    signature valid. (The copies' signatures may differ: a re-delivered message's receipt
    travels again in another reply batch, signed with that batch.)"""
    link = f"{sender.province} → {receiver.province}"
    for sent in sender.outbox:
        if sent.peer != receiver.province:
            continue
        what = f"{link}: message {sent.message_id} ({sent.payload_type})"
        if sent.state != "delivered" or sent.reply is None:
            report.violations.append(f"{what} is {sent.state}, not delivered")
            continue
        held = receiver.inbox.get((sender.files.node_id, sent.message_id))
        if held is None:
            report.violations.append(f"{what} is delivered, but the receiver has no record")
            continue
        logged = (
            sender.evidence_bodies.get(("received", receiver.province, sent.message_id, "reply")),
            receiver.evidence_bodies.get(("sent", sender.province, sent.message_id, "reply")),
        )
        # A missing evidence entry is _evidence's to report; here, every copy must agree.
        copies = {sent.reply, held[1], *(body for body in logged if body is not None)}
        if len({signed_message(copy) for copy in copies}) != 1:
            report.violations.append(
                f"{what}: {len(copies)} different receipts between the two outboxes, inboxes "
                "and evidence logs"
            )
            continue
        try:
            for copy in sorted(copies):
                reply = check_reply(
                    copy,
                    peer=receiver.files.node_id,
                    manifest=manifest,
                    me=sender.files.node_id,
                    now=sent.delivered_at or 0.0,
                    request_id=sent.message_id,
                    request_digest=sent.digest,
                )
        except Refusal as refusal:
            report.violations.append(f"{what}: its receipt fails its checks: {refusal.text}")
            continue
        if reply.payload_type != "receipt" or reply.message.receipt.digest != sent.digest:
            report.violations.append(f"{what}: answered with a {reply.payload_type}, no receipt")
            continue
        report.counted["receipts"] += 1


def _case_updates(nodes: Sequence[NodeRecord], report: EffectReport) -> None:
    case_ids = sorted({c for n in nodes for c in n.cases})
    for case_id in case_ids:
        holders = [n for n in nodes if case_id in n.cases]
        handlers = [n for n in holders if n.cases[case_id].role == "handling"]
        accepters = [n for n in holders if n.cases[case_id].role == "accepting"]
        if len(handlers) != 1 or len(accepters) != 1:
            report.violations.append(
                f"case {case_id}: held as {[n.cases[case_id].role for n in holders]} by "
                f"{[n.province for n in holders]}, not once on each side"
            )
            continue
        handler, accepter = handlers[0], accepters[0]
        histories = []
        for node in (accepter, handler):
            updates = node.updates.get(case_id, [])
            numbers = [u.sequence for u in updates]
            where = f"case {case_id} at {node.province}"
            if numbers != list(range(1, len(numbers) + 1)):
                report.violations.append(
                    f"{where}: update numbers {numbers}, not 1..{len(numbers)}"
                )
            if not all(u.applied for u in updates) or node.cases[case_id].applied != len(updates):
                report.violations.append(
                    f"{where}: {len(updates)} updates held, "
                    f"{sum(u.applied for u in updates)} applied, "
                    f"the case says {node.cases[case_id].applied}"
                )
            histories.append(
                [(u.sequence, u.action, u.by_role, signed_message(u.evidence)) for u in updates]
            )
        if histories[0] != histories[1]:
            report.violations.append(
                f"case {case_id}: {[h[1] for h in histories[0]]} at {accepter.province}, "
                f"{[h[1] for h in histories[1]]} at {handler.province}"
            )
        _update_messages(case_id, handler, accepter, report)
        _requests_applied(case_id, handler, accepter, report)
        report.counted["case updates"] += sum(len(h) for h in histories)


def _update_messages(
    case_id: str, handler: NodeRecord, accepter: NodeRecord, report: EffectReport
) -> None:
    """One submission message per case; one update message per number above 1 (number 1,
    ``deliver``, is the handler's receipt of the submission), each the evidence of its update."""
    submissions = [
        s
        for s in accepter.outbox
        if s.payload_type == "case_submit" and s.correlation_id == case_id
    ]
    if len(submissions) != 1:
        report.violations.append(
            f"case {case_id}: {len(submissions)} submission messages from {accepter.province}"
        )
    sent = [
        s for s in handler.outbox if s.payload_type == "case_update" and s.correlation_id == case_id
    ]
    per_number = Counter(body_of(s.envelope).case_update.sequence for s in sent)
    numbers = [u.sequence for u in handler.updates.get(case_id, []) if u.sequence > 1]
    for number in sorted(set(numbers) | set(per_number)):
        if per_number[number] != 1 or number not in numbers:
            report.violations.append(
                f"case {case_id}: {per_number[number]} update messages for update {number} "
                f"from {handler.province}"
                + ("" if number in numbers else " (no such update in its history)")
            )
    evidence = Counter(
        body_of(u.evidence).header.message_id
        for u in handler.updates.get(case_id, [])
        if u.sequence > 1
    )
    if evidence != Counter(s.message_id for s in sent):
        report.violations.append(
            f"case {case_id}: the updates' evidence is not the update messages "
            f"{handler.province} sent, one each"
        )


def _requests_applied(
    case_id: str, handler: NodeRecord, accepter: NodeRecord, report: EffectReport
) -> None:
    for message_id, request_case, state in accepter.requests:
        if request_case != case_id:
            continue
        expected = {"applied": 1, "refused": 0}.get(state)
        if expected is None:
            report.violations.append(f"case {case_id}: request {message_id} is still {state}")
            continue
        for node in (accepter, handler):
            applied = sum(u.request_id == message_id for u in node.updates.get(case_id, []))
            if applied != expected:
                report.violations.append(
                    f"case {case_id}: request {message_id} ({state}) applied as {applied} "
                    f"updates at {node.province}"
                )


def _platform(node: NodeRecord, platform: PlatformRecord, report: EffectReport) -> None:
    p = node.province
    applied = {
        (case_id, u.sequence): u.action
        for case_id, updates in node.updates.items()
        for u in updates
        if u.applied
    }
    handled = {c for c, case in node.cases.items() if case.role == "handling"}
    notices = Counter(
        (c, int(payload["sequence"]))
        for kind, c, payload, _ in node.platform_outbox
        if kind == "notice"
    )
    told = Counter(c for kind, c, _, _ in node.platform_outbox if kind == "case")
    for (case_id, number), n in sorted(notices.items()):
        if n != 1:
            report.violations.append(
                f"{p}: {n} platform deliveries of update {number} of case {case_id}"
            )
    for case_id, n in sorted(told.items()):
        if n != 1:
            report.violations.append(f"{p}: {n} platform deliveries of case {case_id}")
    for case_id, number in sorted(applied.keys() - notices.keys()):
        report.violations.append(
            f"{p}: update {number} of case {case_id} never went to the platform"
        )
    for case_id, number in sorted(notices.keys() - applied.keys()):
        report.violations.append(
            f"{p}: the platform was told of update {number} of case {case_id}, which is not applied"
        )
    for case_id in sorted(handled - told.keys()):
        report.violations.append(f"{p}: case {case_id} never went to the platform")
    for kind, case_id, _, state in node.platform_outbox:
        if state != "delivered":
            report.violations.append(
                f"{p}: a platform delivery ({kind}) of case {case_id} is {state}"
            )
    if platform.notices != applied:
        differ = sorted(set(platform.notices.items()) ^ set(applied.items()))
        report.violations.append(
            f"{p}: the platform holds {len(platform.notices)} updates, the node applied "
            f"{len(applied)}; they differ at {differ[:3]}"
        )
    if platform.inbound_cases != handled:
        report.violations.append(
            f"{p}: the platform holds {len(platform.inbound_cases)} inbound cases, the node "
            f"handles {len(handled)}"
        )
    report.counted["platform deliveries"] += sum(n == 1 for n in notices.values())
    report.counted["platform deliveries"] += sum(n == 1 for n in told.values())


def _usage(issuer: NodeRecord, nodes: Iterable[NodeRecord], report: EffectReport) -> None:
    """用证记录: one per attestation signed, none without one."""
    p = issuer.province
    records = Counter(u.message_id for u in issuer.usage)
    disclosed = {
        message_id
        for (_, message_id), (kind, reply) in issuer.inbox.items()
        if kind == "certificate_verify" and body_of(reply).WhichOneof("body") == "attestation"
    }
    asked_here = {
        key[2]
        for key in issuer.evidence
        if key[0] == "sent" and key[1] == p and key[3] == "envelope"
    }
    for usage in issuer.usage:
        own = usage.requester_province == p
        if usage.message_id not in (asked_here if own else disclosed):
            report.violations.append(
                f"{p}: usage record for request {usage.message_id} "
                f"({usage.requester_province}) without an attestation for it"
            )
    for message_id in sorted(disclosed | {u.message_id for u in issuer.usage}):
        if records[message_id] != 1:
            report.violations.append(
                f"{p}: {records[message_id]} usage records for request {message_id}"
            )
    received: set[str] = set()
    for requester in nodes:
        if requester is issuer:
            continue
        for key, body in requester.evidence_bodies.items():
            direction, peer, message_id, kind = key
            if (direction, peer, kind) != ("received", p, "reply"):
                continue
            if body_of(body).WhichOneof("body") != "attestation":
                continue
            received.add(message_id)
            if records[message_id] != 1:
                report.violations.append(
                    f"{requester.province} holds an attestation of {p} for request {message_id}, "
                    f"recorded {records[message_id]} times at {p}"
                )
    report.counted["usage records"] += sum(n == 1 for n in records.values())
    report.unreceived_disclosures += len(disclosed - received)
