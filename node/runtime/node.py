"""A running federation node: the wiring of store, trust, gRPC, delivery and HTTP.

Start-up refuses, with a message that says what to fix, when: a key file is unsafe or
malformed, the store is corrupt, the manifest on disk is unsigned, tampered or older than
the one the store last recorded, or this node's signing key is not listed for it. An
*expired* manifest does not stop start-up: the node comes up not ready and refuses all
traffic, so operators can see it and replace the manifest (SIGHUP reloads it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message as ProtoMessage

from monitoring.metrics import (
    UNKNOWN_PEER,
    NodeMetrics,
)
from node.cases.announce import catalog_digest, store_announce, to_announce, validate_announce
from node.cases.calendar import WorkingCalendar, load_holidays
from node.cases.catalog import load_catalog
from node.cases.exchange import CaseExchange
from node.certificates.library import PlatformLibrary, StoreLibrary
from node.certificates.recognition import CertificateRecognition
from node.delivery.circuit import PeerLink
from node.delivery.worker import BATCH_TIMEOUT, Outcome, PeerWorker, Settlement
from node.platform.link import PlatformLink
from node.protocol.checks import CheckLimits, check_reply
from node.protocol.envelope import Sealed, header, seal
from node.protocol.faults import FaultCode, Refusal
from node.runtime.config import ConfigError, NodeConfig, PlatformConfig, load_config
from node.runtime.health import Health
from node.runtime.heartbeat import HEARTBEAT_TIMEOUT, heartbeat_loop
from node.runtime.inbound import InboundProcessor
from node.runtime.startup import StartupError, check_own_key, reload_failure_reason
from node.runtime.supervisor import Supervisor
from node.store import audit, log_tree, outbox
from node.store.database import Database, StoreError, probe_write
from node.store.lock import StoreLock
from node.store.outbox import OutboxItem
from node.transport.admission import PeerAdmission
from node.transport.client import PeerChannel
from node.transport.server import FederationServer, start_server
from node.trust.keys import KeyFileError, SigningKey, load_signing_key
from node.trust.manifest import Manifest, ManifestError, Member, format_time, verify_manifest
from node.trust.tls import TlsMaterial, certificate_not_after
from node.wire import pb

log = logging.getLogger(__name__)

Clock = Callable[[], float]

SHUTDOWN_STEP_LIMIT = 5.0
"""Seconds a shutdown step beyond the gRPC grace may take before the node moves on: a
graceful stop must end even if a library call never returns."""

_DECISION_CODES = frozenset(code.value for code in FaultCode if code.is_decision)

STORE_WATCH_INTERVAL = 1.0
"""Seconds between write attempts while the store refuses writes."""

CHANNEL_RETIRE_GRACE = BATCH_TIMEOUT + HEARTBEAT_TIMEOUT + 5.0
"""How long a replaced channel lives on for the calls already made on it."""


@dataclass(frozen=True)
class Credentials:
    """What this node trusts and signs with; swapped as a whole on reload."""

    manifest: Manifest
    signing_key: SigningKey


@dataclass
class Peer:
    province: str
    node_id: str
    channel: PeerChannel
    worker: PeerWorker
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    """Its delivery worker and heartbeat loop."""


async def _bounded(work: Awaitable[object], seconds: float, step: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        log.error("shutdown step overran its limit; moving on", extra={"step": step})


def held_manifest(conn: sqlite3.Connection) -> bytes | None:
    """The manifest file bytes this node last recorded in its evidence log."""
    row = conn.execute(
        "SELECT body FROM audit WHERE kind = 'manifest' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return bytes(row[0]) if row else None


class Node:
    def __init__(self, config: NodeConfig, *, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self.metrics = NodeMetrics()
        self.peers: dict[str, Peer] = {}
        self.stopping = False
        self._links: dict[str, PeerLink] = {}
        self._db: Database | None = None
        self._credentials: Credentials | None = None
        self._grpc: FederationServer | None = None
        self.admission = PeerAdmission(config.peer_limits, on_refused=self._refused_at_door)
        """The federation port's door: per-peer caps and suspension of abusive peers."""
        self.tasks = Supervisor(
            on_start=lambda name: self.metrics.task_restarts.labels(name).inc(0),
            on_restart=self._task_restarted,
        )
        """Every long-lived task of this node; a failed one is restarted after a back-off."""
        self._lock = StoreLock(config.paths.store)
        self._tls: TlsMaterial | None = None
        self.health = Health(self)
        """Readiness, status, metric snapshots and maintenance mode."""
        self.catalog = load_catalog(config.province)
        """The cross-province matters this node's province handles."""
        self.cases = CaseExchange(self, WorkingCalendar(load_holidays(config.holiday_tables)))
        self.certificates = CertificateRecognition(self, StoreLibrary(lambda: self.db))
        self.platform: PlatformLink | None = None
        """The link to this node's own province platform, when one is configured."""
        self.inbound = InboundProcessor(
            self,
            effects={
                "catalog_announce": store_announce,
                "case_submit": self.cases.on_submit,
                "case_update": self.cases.on_update,
                "case_action": self.cases.on_action,
                "revocation_list": self.certificates.on_list,
            },
            validators={
                "catalog_announce": validate_announce,
                "case_submit": self.cases.validate_submit,
                "case_update": self.cases.validate_update,
                "case_action": self.cases.validate_action,
                "certificate_verify": self.certificates.validate_verify,
                "revocation_list": self.certificates.validate_list,
            },
            responders={
                "certificate_verify": self.certificates.answer_verify,
                "revocation_list_request": self.certificates.answer_list_request,
            },
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def db(self) -> Database:
        assert self._db is not None, "node not started"
        return self._db

    @property
    def credentials(self) -> Credentials:
        assert self._credentials is not None, "node not started"
        return self._credentials

    @property
    def open_store(self) -> Database | None:
        """The store while it is open; None before start and after stop."""
        if self._db is None or self._db.closed:
            return None
        return self._db

    @property
    def loaded_credentials(self) -> Credentials | None:
        """The manifest and key in force, or None before they are loaded."""
        return self._credentials

    @property
    def tls_material(self) -> TlsMaterial | None:
        return self._tls

    @property
    def serving(self) -> bool:
        """The federation port is up and the node is not shutting down."""
        return self._grpc is not None and not self.stopping

    @property
    def grpc_port(self) -> int:
        assert self._grpc is not None
        return self._grpc.port

    def link(self, province: str) -> PeerLink:
        peer = self.peers.get(province)
        if peer is not None:
            return peer.worker.link
        return self._links.setdefault(province, PeerLink(province))

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        try:
            key = load_signing_key(config.paths.signing_key)
            tls = TlsMaterial.load(
                config.paths.ca_cert, config.paths.tls_cert, config.paths.tls_key
            )
            # Signature and form first, so a bad manifest never leaves a new store behind;
            # the version is compared with the held one once the store is open.
            verify_manifest(config.paths.manifest.read_bytes(), config.governance_keys, now=None)
        except Exception as exc:
            raise StartupError(str(exc)) from exc
        self._lock.acquire()
        try:
            self._db = await Database.open(config.paths.store)
        except BaseException:
            self._lock.release()
            raise
        try:
            # A store from before the evidence tree: its entries become the first leaves.
            await self._db.write(log_tree.catch_up)
            manifest = await self._load_manifest()
            check_own_key(manifest, config.node_id, key, self.clock())
        except (ManifestError, StartupError) as exc:
            await self._db.close()
            self._lock.release()
            raise StartupError(str(exc)) from exc
        self._credentials = Credentials(manifest, key)
        self._tls = tls
        self._observe_manifest()
        self.metrics.watch_store(self.health.outbox_snapshots, self.health.store_snapshot)
        self.db.observe_write = self.metrics.store_write_latency.observe
        self.metrics.watch_cases(self.health.case_snapshot)
        self.metrics.watch_revocation_lists(self.health.revocation_ages)
        self.metrics.watch_platform(self.health.platform_snapshot)
        self._grpc = await start_server(
            self.inbound,
            config.grpc_listen,
            tls,
            max_message_bytes=config.max_message_bytes,
            admission=self.admission,
        )
        await self._sync_peers(manifest)
        if config.platform is not None:
            self._connect_platform(config.platform)
        await self._announce_catalog()
        await self._publish_revocations()
        self.tasks.start("revocation-lists", self._revocation_loop)
        self.tasks.start("certificate-checks", self.cases.run_certificate_checks)
        self.tasks.start("store-watch", self._watch_store)
        log.info(
            "node started",
            extra={
                "node_id": config.node_id,
                "grpc_port": self.grpc_port,
                "manifest_version": manifest.version,
            },
        )

    def _channel(self, member: Member) -> PeerChannel:
        assert self._tls is not None
        return PeerChannel(
            member.node_id,
            member.endpoint,
            self._tls,
            max_message_bytes=self.config.max_message_bytes,
            address=self.config.peer_addresses.get(member.province),
        )

    async def _sync_peers(self, manifest: Manifest) -> None:
        """Make the peers match the manifest: a new member gets a delivery worker and
        heartbeats, a moved endpoint a new channel. A member that left is no longer
        contacted; what waits for it stays in the outbox, visible to operators."""
        for member in manifest.members:
            if member.node_id == self.config.node_id:
                continue
            peer = self.peers.get(member.province)
            if peer is None:
                channel = self._channel(member)
                worker = PeerWorker(
                    peer=member.province,
                    peer_node_id=member.node_id,
                    db=self.db,
                    channel=channel,
                    settle=self._settler(member.node_id),
                    config=self.config.delivery,
                    clock=self.clock,
                    observer=self,
                    on_settled=self.cases.on_settled,
                )
                # What the store remembers, so "last success" is not blank after a restart
                # until the first heartbeat; the link keeps it current from then on.
                worker.link.last_success_at = outbox.last_delivered_at(
                    self.db.reader(), member.province
                )
                peer = Peer(member.province, member.node_id, channel, worker)
                self.peers[member.province] = peer
                peer.tasks = [
                    self.tasks.start(f"deliver-{member.province}", worker.run),
                    self.tasks.start(
                        f"heartbeat-{member.province}",
                        functools.partial(heartbeat_loop, self, peer),
                    ),
                ]
            elif peer.channel.endpoint != member.endpoint:
                old = peer.channel
                peer.channel = self._channel(member)
                peer.worker.use_channel(peer.channel)
                # Calls already on the old channel finish or time out first: closing it
                # under them would cancel the worker or heartbeat awaiting them.
                self.tasks.start(
                    f"retire-channel-{member.province}",
                    functools.partial(old.close, grace=CHANNEL_RETIRE_GRACE),
                )
                log.info("peer endpoint changed", extra={"peer": member.province})
        members = {m.province for m in manifest.members}
        for province in [p for p in self.peers if p not in members]:
            await self._drop_peer(self.peers.pop(province))
            log.warning("peer left the federation", extra={"peer": province})

    async def _announce_catalog(self) -> None:
        """Queue our catalog for every peer that has not had this very catalog queued before.

        Runs at start and after every reload; nothing is announced on an expired manifest
        (the first reload onto a current one catches up)."""
        manifest = self.credentials.manifest
        me = manifest.member(self.config.node_id)
        if manifest.expired_at(self.clock()):
            return
        if me is None or "catalog_announce" not in me.may_send:
            log.warning("the manifest does not let this node announce its catalog")
            return
        correlation = f"catalog:{catalog_digest(self.catalog)}"
        for province in self.peers:
            if not outbox.sent_before(
                self.db.reader(),
                peer=province,
                payload_type="catalog_announce",
                correlation_id=correlation,
            ):
                await self.send(
                    province,
                    [("catalog_announce", to_announce(self.catalog))],
                    correlation_id=correlation,
                )

    async def _drop_peer(self, peer: Peer) -> None:
        await self.tasks.cancel(peer.tasks)
        await peer.channel.close()

    def _connect_platform(self, config: PlatformConfig) -> None:
        """The adapter named in the config, its library as ours, and the feed and delivery
        loops; the platform may be down now, the loops wait for it."""
        from adapters.registry import dialect

        adapter = dialect(config.adapter).make_adapter(config.url, credentials=config.credentials())
        self.platform = PlatformLink(self, adapter, config)
        self.certificates.library = PlatformLibrary(adapter)
        self.tasks.start("platform-polls", self.platform.run_polls)
        self.tasks.start("platform-deliveries", self.platform.run_deliveries)

    async def _revocation_loop(self) -> None:
        """Publish our revocation list when it changes (checked every refresh), and pull each
        peer's, so a list missed while a link was down still arrives."""
        while True:
            await asyncio.sleep(self.config.revocation_refresh_seconds)
            await self._publish_revocations()
            for province in list(self.peers):
                await self.certificates.pull(province)

    async def _publish_revocations(self) -> None:
        if self.credentials.manifest.expired_at(self.clock()):
            return
        try:
            await self.certificates.publish()
        except Refusal as refusal:
            # A manifest whose policy does not let us send lists: say so, keep going.
            log.warning("revocation list not published", extra={"reason": refusal.text})

    def _peer_name(self, identity: str) -> str:
        """A TLS identity as a metric label: the member's province, or "unknown"."""
        if self._credentials is not None:
            member = self._credentials.manifest.member(identity)
            if member is not None:
                return member.province
        return UNKNOWN_PEER

    def _refused_at_door(self, identity: str, reason: str) -> None:
        self.metrics.door_refusals.labels(self._peer_name(identity), reason).inc()

    def _task_restarted(self, name: str) -> None:
        self.metrics.task_restarts.labels(name).inc()

    async def _watch_store(self) -> None:
        """While the store refuses writes (disk full, I/O error, locked), try a tiny write
        every second. Once writes commit again, by that write or by any other, end the other
        tasks' back-off, so work resumes at once rather than when each back-off runs out."""
        failing = False
        while True:
            await asyncio.sleep(STORE_WATCH_INTERVAL)
            if self.db.write_problem() is not None:
                failing = True
                try:
                    await self.db.write(probe_write(self.clock()))
                except StoreError:
                    continue
            if failing:
                failing = False
                log.warning("the store takes writes again; resuming work")
                self.tasks.wake()

    async def _load_manifest(self) -> Manifest:
        """Load the manifest file, refusing one older than what the store last recorded."""
        anchors = self.config.governance_keys
        held_bytes = held_manifest(self.db.reader())
        held = verify_manifest(held_bytes, anchors, now=None) if held_bytes else None
        data = self.config.paths.manifest.read_bytes()
        manifest = verify_manifest(data, anchors, now=None, current=held)
        if held is None or manifest.version != held.version:
            await self.db.write(lambda c: self._record_manifest(c, manifest))
        if manifest.expired_at(self.clock()):
            log.error(
                "manifest has expired; refusing all traffic until a current one is loaded",
                extra={
                    "manifest_version": manifest.version,
                    "expired_at": format_time(manifest.expires_at),
                },
            )
        return manifest

    def _record_manifest(self, conn: sqlite3.Connection, manifest: Manifest) -> None:
        audit.append(
            conn,
            direction="local",
            peer="",
            message_id=f"manifest-v{manifest.version}",
            kind="manifest",
            body=manifest.raw,
            recorded_at=self.clock(),
        )

    def _observe_manifest(self) -> None:
        """Publish what this node trusts and signs with, and until when."""
        credentials = self.credentials
        manifest = credentials.manifest
        self.metrics.manifest_version.set(manifest.version)
        self.metrics.manifest_expiry.set(manifest.expires_at)
        member = manifest.member(self.config.node_id)
        entry = member.key(credentials.signing_key.key_id) if member else None
        if entry is not None:
            self.metrics.signing_key_expiry.set(entry.not_after)
        if self._tls is not None:
            self.metrics.tls_certificate_expiry.set(certificate_not_after(self._tls.cert_pem))

    async def reload(self) -> None:
        """SIGHUP: re-read node.toml's signing key and the manifest; keep the old on error."""
        try:
            fresh = load_config(self.config.source, {}) if self.config.source else self.config
            key = load_signing_key(fresh.paths.signing_key)
            data = fresh.paths.manifest.read_bytes()
            manifest = verify_manifest(
                data,
                self.config.governance_keys,
                now=self.clock(),
                current=self.credentials.manifest,
            )
            check_own_key(manifest, self.config.node_id, key, self.clock())
        except (ManifestError, StartupError, ConfigError, KeyFileError, OSError, ValueError) as exc:
            reason = reload_failure_reason(exc)
            self.metrics.manifest_reload_failures.labels(reason).inc()
            log.error(
                "reload refused; keeping the manifest and key in force",
                extra={"reason": reason, "detail": str(exc)},
            )
            raise
        if manifest.version != self.credentials.manifest.version:
            await self.db.write(lambda c: self._record_manifest(c, manifest))
        self._credentials = Credentials(manifest, key)
        self._observe_manifest()
        await self._sync_peers(manifest)
        await self._announce_catalog()
        log.info("reloaded", extra={"manifest_version": manifest.version, "key_id": key.key_id})

    async def stop(self) -> None:
        """Stop accepting, finish in-flight calls within the grace period, flush the store."""
        self.stopping = True
        grace = self.config.shutdown_grace_seconds
        if self._grpc is not None:
            await _bounded(self._grpc.stop(grace), grace + SHUTDOWN_STEP_LIMIT, "grpc server stop")
        for peer in self.peers.values():
            await _bounded(self._drop_peer(peer), SHUTDOWN_STEP_LIMIT, f"closing {peer.province}")
        await _bounded(self.tasks.stop(), SHUTDOWN_STEP_LIMIT, "background tasks")
        if self.platform is not None:
            await _bounded(self.platform.adapter.close(), SHUTDOWN_STEP_LIMIT, "platform adapter")
        # The store is flushed without a limit: what was promised must be written.
        if self._db is not None:
            await self._db.close()
        self._lock.release()
        log.info("node stopped", extra={"node_id": self.config.node_id})

    # -- sending ----------------------------------------------------------------------------

    async def send(
        self, province: str, bodies: Sequence[tuple[str, ProtoMessage]], *, correlation_id: str = ""
    ) -> list[str]:
        """Seal messages to a peer and commit them to its outbox; return their message ids.

        When this returns, the messages are durable and will be delivered.
        """
        sealed = self.seal_to(province, bodies, correlation_id=correlation_id)
        await self.db.write(
            lambda conn: self.enqueue(conn, province, sealed, correlation_id=correlation_id)
        )
        return [s.message_id for s in sealed]

    def seal_to(
        self, province: str, bodies: Sequence[tuple[str, ProtoMessage]], *, correlation_id: str = ""
    ) -> list[Sealed]:
        """Sign messages for a peer, as the manifest policy allows; nothing is stored yet."""
        credentials = self.credentials
        manifest = credentials.manifest
        me = manifest.member(self.config.node_id)
        peer = self.peers.get(province)
        if peer is None or me is None:
            raise ValueError(f"{province!r} is not a peer of this node")
        now = self.clock()
        if manifest.expired_at(now):
            raise Refusal(FaultCode.MANIFEST_EXPIRED, "this node's manifest has expired")
        sealed: list[Sealed] = []
        for kind, body in bodies:
            if kind not in me.may_send:
                raise Refusal(
                    FaultCode.PAYLOAD_NOT_ALLOWED,
                    f"the manifest policy does not allow this node to send {kind}",
                    field="body",
                )
            message = pb.Message(
                header=header(
                    sender=self.config.node_id,
                    recipient=peer.node_id,
                    now=now,
                    manifest_version=manifest.version,
                    correlation_id=correlation_id,
                ),
            )
            getattr(message, kind).CopyFrom(body)
            sealed.append(seal(message, credentials.signing_key))
        return sealed

    def enqueue(
        self,
        conn: sqlite3.Connection,
        province: str,
        sealed: Sequence[Sealed],
        *,
        correlation_id: str = "",
    ) -> None:
        """Put sealed messages in a peer's outbox and the evidence log, inside ``conn``'s
        transaction (a write job); the peer's worker wakes once it has committed."""
        now = self.clock()
        for s in sealed:
            outbox.enqueue(
                conn,
                peer=province,
                message_id=s.message_id,
                payload_type=s.payload_type,
                envelope=s.envelope,
                digest=s.digest,
                created_at=now,
                correlation_id=correlation_id,
            )
        audit.append_many(
            conn,
            [
                audit.Record("sent", province, s.message_id, "envelope", s.envelope, now)
                for s in sealed
            ],
        )
        self.db.after_commit(functools.partial(self.wake, province))

    def platform_wake(self) -> None:
        """New items are committed in the platform outbox."""
        if self.platform is not None:
            self.platform.notify()

    def wake(self, province: str) -> None:
        """New rows are committed in this peer's outbox: its worker sends them now."""
        peer = self.peers.get(province)
        if peer is not None:
            peer.worker.notify()

    def _settler(self, peer_node_id: str) -> Callable[[bytes, OutboxItem], Settlement]:
        def settle(raw: bytes, item: OutboxItem) -> Settlement:
            credentials = self.credentials
            try:
                reply = check_reply(
                    raw,
                    peer=peer_node_id,
                    manifest=credentials.manifest,
                    me=self.config.node_id,
                    now=self.clock(),
                    request_id=item.message_id,
                    request_digest=item.digest,
                    limits=CheckLimits(self.config.max_message_bytes),
                )
            except Refusal as refusal:
                # An answer we cannot trust settles nothing: keep the row and try again.
                return Settlement(
                    Outcome.RETRY, b"", f"bad_reply_{refusal.code.value}", refusal.text
                )
            if reply.payload_type != "fault":
                return Settlement(Outcome.DELIVERED, raw)
            fault = reply.message.fault
            try:
                permanent = FaultCode(fault.code).is_permanent
            except ValueError:
                permanent = True
            outcome = Outcome.PARKED if permanent else Outcome.RETRY
            if fault.code in _DECISION_CODES:
                outcome = Outcome.DECLINED
            return Settlement(outcome, raw, fault.code, fault.text)

        return settle

    # DeliveryObserver
    def delivered(self, item: OutboxItem, settlement: Settlement, now: float) -> None:
        self.metrics.messages_sent.labels(item.peer, item.payload_type).inc()
        self.metrics.last_sent.labels(item.peer).set(now)
        self.metrics.delivery_latency.labels(item.peer).observe(max(0.0, now - item.created_at))

    def refused(self, item: OutboxItem, settlement: Settlement) -> None:
        self.metrics.messages_refused.labels(
            item.peer, item.payload_type, settlement.code, "outbound"
        ).inc()
        log.warning(
            "peer refused our message",
            extra={
                "peer": item.peer,
                "message_id": item.message_id,
                "code": settlement.code,
                "outcome": settlement.outcome.value,
            },
        )
