"""A running federation node: the wiring of store, trust, gRPC, delivery and HTTP.

Start-up refuses, with a message that says what to fix, when: a key file is unsafe or
malformed, the TLS certificate is for another node, the store is corrupt or unreachable, the
manifest on disk is unsigned, tampered or older than the one the store last recorded, this
node's signing key is not listed for it, or another replica of this node (another endpoint of
its own in the manifest) answers that it runs on another store (``node.runtime.replicas``). An
*expired* manifest does not stop start-up: the node comes up not ready and refuses all
traffic, so operators can see it and replace the manifest (SIGHUP reloads it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from monitoring.metrics import (
    UNKNOWN_PEER,
    NodeMetrics,
)
from node.cases.announce import CATALOG_HANDLERS, announce_catalog
from node.cases.calendar import WorkingCalendar, load_holidays
from node.cases.catalog import load_catalog
from node.cases.exchange import CaseExchange
from node.cases.federated import FederatedCatalog
from node.cases.views import CaseViews
from node.certificates.library import PlatformLibrary, StoreLibrary
from node.certificates.recognition import CertificateRecognition
from node.delivery.worker import PeerWorker
from node.peers.checkpoints import LogWitnessing
from node.peers.courier import Courier
from node.peers.heartbeat import Heartbeat
from node.peers.inbound import InboundProcessor
from node.peers.peer import Peer
from node.peers.registry import PeerRegistry, TaskFactory
from node.platform.config import PlatformConfig, PlatformConfigError
from node.platform.link import PlatformLink
from node.protocol.checks import CheckLimits
from node.protocol.faults import Refusal
from node.runtime.config import ConfigError, NodeConfig
from node.runtime.credentials import (
    Credentials,
    load_manifest,
    observe_credentials,
    read_credentials,
    record_manifest,
)
from node.runtime.health import Health
from node.runtime.history import History
from node.runtime.replicas import SiblingCheck
from node.runtime.startup import (
    StartupError,
    check_own_certificate,
    check_own_key,
    reload_failure_reason,
)
from node.runtime.supervisor import Supervisor
from node.store import leases, log_tree, outbox
from node.store.database import Database, StoreError, held_store_id
from node.store.lock import StoreLock
from node.transport.admission import PeerAdmission
from node.transport.client import PeerChannel
from node.transport.server import EnvelopeReceiver, FederationServer, start_server
from node.trust.keys import KeyFileError, load_signing_key
from node.trust.manifest import ManifestError, Member, verify_manifest
from node.trust.tls import TlsMaterial

log = logging.getLogger(__name__)

Clock = Callable[[], float]

SHUTDOWN_STEP_LIMIT = 5.0
"""Seconds a shutdown step beyond the gRPC grace may take before the node moves on: a
graceful stop must end even if a library call never returns."""


async def _bounded(work: Awaitable[object], seconds: float, step: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        log.error("shutdown step overran its limit; moving on", extra={"step": step})


class Node:
    def __init__(self, config: NodeConfig, *, clock: Clock = time.time) -> None:
        self.config = config
        self.clock = clock
        self.metrics = NodeMetrics()
        self.stopping = False
        self.replica_problem: str | None = None
        """Why a replica of this node found after start runs on another store, if one does
        (``node.runtime.replicas``): readiness names the store with it."""
        self.replica_id = leases.new_owner(config.node_id)
        """This process among the replicas of this node sharing its store: the owner of the
        leases it holds (``node.store.leases``)."""
        self._db: Database | None = None
        self._credentials: Credentials | None = None
        self._grpc: FederationServer | None = None
        self.admission = PeerAdmission(config.peer_limits, on_refused=self._refused_at_door)
        """The federation port's door: per-peer caps and suspension of abusive peers."""
        self.tasks = Supervisor(
            on_start=lambda name: self.metrics.task_restarts.labels(name).inc(0),
            on_restart=lambda name: self.metrics.task_restarts.labels(name).inc(),
        )
        """Every long-lived task of this node; a failed one is restarted after a back-off."""
        self._lock = StoreLock(config.paths.store, identity=config.node_id)
        self._tls: TlsMaterial | None = None
        self.health = Health(self)
        """Readiness, status, metric snapshots and maintenance mode."""
        self.history = History(
            metrics=self.metrics,
            outboxes=self.health.outbox_snapshots,
            cases=self.health.case_snapshot,
            clock=clock,
        )
        """The last hour of traffic, backlogs, latency and cases, for the dashboard."""
        self.peers = PeerRegistry(
            node_id=config.node_id,
            tls=self._started_tls,
            max_message_bytes=config.max_message_bytes,
            signing_key=lambda: self.credentials.signing_key,
            addresses=config.peer_addresses,
            new_worker=self._new_worker,
            heartbeat=self._heartbeat,
            start=self.tasks.start,
            cancel=self.tasks.cancel,
        )
        """The peers the manifest lists, each with its channel, worker and link."""
        self.courier = Courier(
            node_id=config.node_id,
            db=lambda: self.db,
            clock=clock,
            credentials=lambda: self.credentials,
            peers=self.peers,
            metrics=self.metrics,
            limits=CheckLimits(config.max_message_bytes),
        )
        """The one way this node sends to its peers."""
        self.catalog = load_catalog(config.province)
        """The cross-province matters this node's province handles."""
        self.calendar = WorkingCalendar(load_holidays(config.holiday_tables))
        """Working days for case deadlines; its tables end is published (metric, status)."""
        self.metrics.holiday_tables_end.set(self.calendar.covered_until(clock()))
        self.catalogs = FederatedCatalog(self.catalog, lambda: self.db)
        """Our catalog and every peer's as announced: the one reader of peers' catalogs."""
        self.case_views = CaseViews(lambda: self.db, clock)
        """Cases as the REST API and the status view show them."""
        self.cases = CaseExchange(self, self.calendar, courier=self.courier, catalogs=self.catalogs)
        self.certificates = CertificateRecognition(
            node_id=config.node_id,
            province=config.province,
            db=lambda: self.db,
            clock=clock,
            credentials=lambda: self.credentials,
            courier=self.courier,
            peers=self.peers,
            library=StoreLibrary(lambda: self.db),
            find_matter=self.cases.find_matter,
            metrics=self.metrics,
        )
        self.checkpoints = LogWitnessing(
            node_id=config.node_id,
            province=config.province,
            db=lambda: self.db,
            clock=clock,
            credentials=lambda: self.credentials,
            courier=self.courier,
            peers=self.peers,
            metrics=self.metrics,
            interval=config.checkpoint_interval_seconds,
            lease=self.lease(leases.CHECKPOINTS),
        )
        """Checkpoints of our evidence log cosigned by the peers, and theirs we cosign."""
        self.platform: PlatformLink | None = None
        """The link to this node's own province platform, when one is configured."""
        self.inbound: EnvelopeReceiver = InboundProcessor(
            node_id=config.node_id,
            db=lambda: self.db,
            clock=clock,
            credentials=lambda: self.credentials,
            metrics=self.metrics,
            links=self.peers.link,
            limits=CheckLimits(config.max_message_bytes, config.clock_window_seconds),
            stopping=lambda: self.stopping,
            handlers=CATALOG_HANDLERS
            | self.cases.handlers()
            | self.certificates.handlers()
            | self.checkpoints.handlers(),
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

    def _started_tls(self) -> TlsMaterial:
        assert self._tls is not None, "node not started"
        return self._tls

    def _new_worker(self, member: Member, channel: PeerChannel) -> PeerWorker:
        worker = PeerWorker(
            peer=member.province,
            peer_node_id=member.node_id,
            db=self.db,
            channel=channel,
            settle=self.courier.settler(member.node_id),
            config=self.config.delivery,
            clock=self.clock,
            observer=self.courier,
            on_settled=self.cases.on_settled,
            lease=self.lease(leases.outbox_lease(member.province)),
        )
        # What the store remembers, so "last success" is not blank after a restart until
        # the first heartbeat; the link keeps it current from then on.
        worker.link.remembered_success(outbox.last_delivered_at(self.db.reader(), member.province))
        return worker

    def lease(self, name: str) -> leases.LeaseClaim:
        """This replica's hold on the lease ``name``."""
        return leases.LeaseClaim(
            lambda: self.db,
            name,
            self.replica_id,
            clock=self.clock,
            config=self.config.leases,
            metrics=self.metrics,
        )

    def _heartbeat(self, peer: Peer) -> TaskFactory:
        return Heartbeat(
            peer,
            courier=self.courier,
            db=lambda: self.db,
            clock=self.clock,
            metrics=self.metrics,
            interval=self.config.heartbeat_interval_seconds,
        ).run

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        try:
            key = load_signing_key(config.paths.signing_key)
            tls = TlsMaterial.load(
                config.paths.ca_cert, config.paths.tls_cert, config.paths.tls_key
            )
            check_own_certificate(tls.cert_pem, config.node_id, str(config.paths.tls_cert))
            # Signature and form first, so a bad manifest never leaves a new store behind;
            # the version is compared with the held one once the store is open.
            on_disk = verify_manifest(
                config.paths.manifest.read_bytes(), config.governance_keys, now=None
            )
        except Exception as exc:
            raise StartupError(str(exc)) from exc
        self._lock.acquire()
        try:
            # Before the store is opened (a replica on the wrong database leaves it as it
            # was) and before the federation port opens (it serves nothing).
            siblings = SiblingCheck.of(config, Credentials(on_disk, key), tls, self.clock)
            told = await siblings.run(
                own_listen=config.grpc_listen, held=lambda: held_store_id(config.paths.store)
            )
            self._db = await Database.open(config.paths.store)
        except BaseException:
            self._lock.release()
            raise
        try:
            # A store from before the evidence tree: its entries become the first leaves.
            await self._db.write(log_tree.catch_up)
            manifest = await load_manifest(self._db, config, self.clock)
            check_own_key(manifest, config.node_id, key, self.clock())
        except (ManifestError, StartupError) as exc:
            await self._db.close()
            self._lock.release()
            raise StartupError(str(exc)) from exc
        self._credentials = Credentials(manifest, key)
        self._tls = tls
        observe_credentials(self.metrics, self._credentials, config.node_id, tls)
        self.health.watch(self.metrics)
        self.db.observe_write = self.metrics.store_write_latency.observe
        self._grpc = await start_server(
            self.inbound,
            config.grpc_listen,
            tls,
            max_message_bytes=config.max_message_bytes,
            admission=self.admission,
        )
        await self.peers.sync(manifest)
        if config.platform is not None:
            self._connect_platform(config.platform)
        await self._announce_catalog()
        await self._publish_revocations()
        self.tasks.start("revocation-lists", self._revocation_loop)
        self.tasks.start("certificate-checks", self.cases.checks.run)
        self.tasks.start("store-watch", self.health.watch_store)
        self.tasks.start("history", self.history.run)
        self.tasks.start("checkpoints", self.checkpoints.run)
        if any(answer.store_id is None for answer in told):
            found, store_id = self._replica_on_another_store, self.db.store_id
            self.tasks.start("replica-check", lambda: siblings.recheck(told, store_id, found))
        log.info(
            "node started",
            extra={
                "node_id": config.node_id,
                "grpc_port": self.grpc_port,
                "manifest_version": manifest.version,
            },
        )

    async def _announce_catalog(self) -> None:
        """Announce our catalog to the peers that lack it; at start and after every reload.
        Nothing is announced on an expired manifest (the first reload onto a current one
        catches up)."""
        manifest = self.credentials.manifest
        if manifest.expired_at(self.clock()):
            return
        await announce_catalog(
            self.catalog,
            courier=self.courier,
            peers=list(self.peers),
            me=manifest.member(self.config.node_id),
            conn=self.db.reader(),
        )

    def _connect_platform(self, config: PlatformConfig) -> None:
        """The adapter named in the config, its library as ours, and the feed and delivery
        loops; the platform may be down now, the loops wait for it."""
        from adapters.registry import dialect

        try:
            credentials = config.credentials()
        except PlatformConfigError as exc:
            raise ConfigError(str(exc)) from exc
        adapter = dialect(config.adapter).make_adapter(config.url, credentials=credentials)
        self.platform = PlatformLink(
            adapter,
            config,
            province=self.config.province,
            db=lambda: self.db,
            clock=self.clock,
            cases=self.cases,
            refused_records=self.metrics.platform_records_refused,
            poll_lease=self.lease(leases.PLATFORM_POLL),
            delivery_lease=self.lease(leases.PLATFORM_DELIVERY),
        )
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

    @property
    def store_lock(self) -> StoreLock:
        """Who holds the store: readiness fails while this process does not."""
        return self._lock

    def _replica_on_another_store(self, problem: str) -> None:
        self.replica_problem = problem

    async def reload(self) -> None:
        """SIGHUP: re-read node.toml's signing key and the manifest; keep the old on error."""
        try:
            fresh = read_credentials(self.config, self.credentials.manifest, self.clock())
        except (ManifestError, StartupError, ConfigError, KeyFileError, OSError, ValueError) as exc:
            reason = reload_failure_reason(exc)
            self.metrics.manifest_reload_failures.labels(reason).inc()
            log.error(
                "reload refused; keeping the manifest and key in force",
                extra={"reason": reason, "detail": str(exc)},
            )
            raise
        manifest = fresh.manifest
        if manifest.version != self.credentials.manifest.version:
            await self.db.write(lambda c: record_manifest(c, manifest, self.clock()))
        self._credentials = fresh
        observe_credentials(self.metrics, fresh, self.config.node_id, self._tls)
        await self.peers.sync(manifest)
        await self._announce_catalog()
        log.info(
            "reloaded",
            extra={"manifest_version": manifest.version, "key_id": fresh.signing_key.key_id},
        )

    async def stop(self) -> None:
        """Stop accepting, finish in-flight calls within the grace period, flush the store."""
        self.stopping = True
        grace = self.config.shutdown_grace_seconds
        # A last checkpoint, of the log as the node leaves it, while the peers are still linked
        # and before the server stops: peers stopping at the same moment still answer it only
        # while their servers run (a stopping node cosigns, see ``peers.inbound``).
        if self._credentials is not None and self._db is not None:
            last = self.checkpoints.try_checkpoint()
            await _bounded(last, SHUTDOWN_STEP_LIMIT, "last checkpoint")
        if self._grpc is not None:
            await _bounded(self._grpc.stop(grace), grace + SHUTDOWN_STEP_LIMIT, "grpc server stop")
        await self.peers.close(lambda work, step: _bounded(work, SHUTDOWN_STEP_LIMIT, step))
        await _bounded(self.tasks.stop(), SHUTDOWN_STEP_LIMIT, "background tasks")
        if self.platform is not None:
            await _bounded(self.platform.adapter.close(), SHUTDOWN_STEP_LIMIT, "platform adapter")
        # The store is flushed without a limit: what was promised must be written.
        if self._db is not None:
            await _bounded(self._release_leases(), SHUTDOWN_STEP_LIMIT, "release leases")
            await self._db.close()
        self._lock.release()
        log.info("node stopped", extra={"node_id": self.config.node_id})

    async def _release_leases(self) -> None:
        """Hand this replica's jobs to the other replicas now, not when its leases lapse."""
        now = self.clock()
        try:
            await self.db.write(lambda c: leases.release_all(c, self.replica_id, now=now))
        except StoreError as error:  # they lapse on their own
            log.warning("leases not released", extra={"error": str(error)})

    # -- waking ----------------------------------------------------------------------------

    def platform_wake(self) -> None:
        """New items are committed in the platform outbox."""
        if self.platform is not None:
            self.platform.notify()
