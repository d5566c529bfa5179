"""How a running node is doing: readiness checks, the status view and metric snapshots.

``Health`` reads the node's parts and changes nothing but maintenance mode; the REST API's
/readyz, /v1/status and /v1/maintenance and the metrics collectors ask it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from monitoring.metrics import (
    CaseSnapshot,
    EndpointSnapshot,
    NodeMetrics,
    PeerSnapshot,
    StoreSnapshot,
)
from node.cases.lifecycle import Status
from node.delivery.circuit import CircuitState
from node.peers.checkpoints import WitnessRefusal
from node.runtime.startup import StartupError, check_own_key
from node.store import cases as cases_store
from node.store import outbox
from node.store.checkpoints import last_cosigned_by_witness
from node.store.connection import Connection
from node.store.database import StoreError, probe_write
from node.trust.manifest import format_time
from node.trust.tls import certificate_not_after

if TYPE_CHECKING:
    from node.runtime.node import Node

log = logging.getLogger(__name__)

CIRCUIT_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}

IDLE_DOOR: dict[str, object] = {
    "streams": 0,
    "calls": 0,
    "suspended": False,
    "suspended_for_seconds": 0.0,
    "suspensions": 0,
}
"""A peer's place at our federation port before it has called (``PeerAdmission.view``)."""


STORE_WATCH_INTERVAL = 1.0
"""Seconds between write attempts while the store refuses writes."""


class Health:
    """Readiness, status and snapshots of one node, and its maintenance switch."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.maintenance_since: float | None = None

    def watch(self, metrics: NodeMetrics) -> None:
        """Have ``metrics`` read the snapshots below at each scrape."""
        metrics.watch_store(self.outbox_snapshots, self.store_snapshot)
        metrics.watch_cases(self.case_snapshot)
        metrics.watch_endpoints(self.endpoint_snapshots)
        metrics.watch_revocation_lists(self.revocation_ages)
        metrics.watch_platform(self.platform_snapshot)

    async def watch_store(self) -> None:
        """While the store refuses writes (disk full, I/O error, locked), try a tiny write
        every second. Once writes commit again, by that write or by any other, end the other
        tasks' back-off, so work resumes at once rather than when each back-off runs out."""
        node = self._node
        failing = False
        while True:
            await asyncio.sleep(STORE_WATCH_INTERVAL)
            if node.db.write_problem() is not None:
                failing = True
                try:
                    await node.db.write(probe_write(node.clock()))
                except StoreError:
                    continue
            if failing:
                failing = False
                log.warning("the store takes writes again; resuming work")
                node.tasks.wake()

    def store_snapshot(self) -> StoreSnapshot | None:
        db = self._node.open_store
        if db is None:
            return None
        size = db.size_bytes()
        return StoreSnapshot(
            db.commits,
            db.jobs_committed,
            db.commit_seconds_total,
            size,
            writable=db.write_problem() is None,
        )

    def case_snapshot(self) -> CaseSnapshot | None:
        if self._node.open_store is None:
            return None
        conn = self._node.db.reader()
        return CaseSnapshot(
            by_status=cases_store.counts(conn),
            overdue=cases_store.overdue_counts(conn, self._node.clock()),
            evaluations=cases_store.evaluation_counts(conn),
            provinces=(self._node.config.province, *sorted(self._node.peers)),
            statuses=tuple(status.value for status in Status),
        )

    def endpoint_snapshots(self) -> list[EndpointSnapshot]:
        """Each endpoint of each peer (every replica of its node), as calls last found it."""
        return [
            EndpointSnapshot(
                province,
                health.endpoint,
                health.state.value,
                i == peer.channel.current,
                health.failures,
            )
            for province, peer in sorted(self._node.peers.items())
            for i, health in enumerate(peer.channel.health)
        ]

    def outbox_snapshots(self) -> dict[str, PeerSnapshot]:
        if self._node.open_store is None:
            return {}
        conn = self._node.db.reader()
        now = self._node.clock()
        depths = outbox.depths(conn)
        result = {}
        for province in self._node.peers:
            count, oldest = depths.get(province, (0, None))
            link = self._node.peers[province].worker.link
            result[province] = PeerSnapshot(
                depth=count,
                oldest_pending_age_seconds=max(0.0, now - oldest) if oldest else 0.0,
                dead_letters=outbox.dead_count(conn, province),
                circuit_state=CIRCUIT_GAUGE[link.circuit],
                retry_interval_seconds=link.retry_interval,
                suspended=self._node.admission.suspended(self._node.peers[province].node_id),
            )
        return result

    def platform_snapshot(self) -> dict[str, float] | None:
        if self._node.platform is None or self._node.open_store is None:
            return None
        shown = self._node.platform.status()
        snapshot = {
            "yrd_platform_outbox_depth": shown["outbox_depth"],
            "yrd_platform_oldest_pending_age_seconds": shown["oldest_pending_age_seconds"],
            "yrd_platform_dead_letters": shown["dead_letters"],
        }
        # A replica that holds neither platform lease does not talk to the platform, so it
        # has nothing to tell of its health (and must not be counted as finding it down).
        if self._node.platform.talks_to_platform:
            snapshot["yrd_platform_up"] = 1.0 if shown["up"] else 0.0
        return snapshot

    def revocation_ages(self) -> dict[str, float]:
        if self._node.open_store is None:
            return {}
        return self._node.certificates.list_ages()

    def readiness(self) -> dict[str, str]:
        """Each readiness check and its verdict: "ok" or what is wrong."""
        checks: dict[str, str] = {}
        now = self._node.clock()
        db = self._node.open_store
        if db is None:
            checks["store"] = "store is not open"
        else:
            # Never a wait for the server: on PostgreSQL a probe thread asks it, and a
            # server that does not answer fails this check rather than stalling /healthz.
            checks["store"] = (
                db.read_problem()
                or db.write_problem()
                or self._node.store_lock.problem
                or self._node.replica_problem
                or "ok"
            )
        credentials_now = self._node.loaded_credentials
        if credentials_now is None:
            checks["manifest"] = checks["keys"] = "not loaded"
        else:
            manifest = credentials_now.manifest
            checks["manifest"] = (
                f"manifest version {manifest.version} expired at {format_time(manifest.expires_at)}"
                if manifest.expired_at(now)
                else "ok"
            )
            try:
                check_own_key(manifest, self._node.config.node_id, credentials_now.signing_key, now)
                checks["keys"] = "ok"
            except StartupError as exc:
                checks["keys"] = str(exc)
        tls = self._node.tls_material
        if tls is None:
            checks["tls"] = "not loaded"
        else:
            not_after = certificate_not_after(tls.cert_pem)
            checks["tls"] = (
                f"TLS certificate expired at {format_time(not_after)}" if now >= not_after else "ok"
            )
        checks["grpc"] = "ok" if self._node.serving else "not serving"
        checks["tasks"] = "; ".join(self._node.tasks.problems()) or "ok"
        checks["maintenance"] = (
            f"maintenance mode since {format_time(self.maintenance_since)}"
            if self.maintenance_since is not None
            else "ok"
        )
        return checks

    def expiries(self) -> dict[str, str | None]:
        """When what this node runs on ends: manifest, signing key, TLS certificate, and the
        holiday tables that case deadlines are counted with."""
        credentials = self._node.credentials
        member = credentials.manifest.member(self._node.config.node_id)
        key = member.key(credentials.signing_key.key_id) if member else None
        tls = self._node.tls_material
        cert = certificate_not_after(tls.cert_pem) if tls else None
        return {
            "manifest": format_time(credentials.manifest.expires_at),
            "signing_key": format_time(key.not_after) if key else None,
            "tls_certificate": format_time(cert) if cert is not None else None,
            "holiday_tables": format_time(self._node.calendar.covered_until(self._node.clock())),
        }

    def set_maintenance(self, on: bool) -> None:
        """Maintenance mode: the node keeps working but reports not ready, so load balancers
        and operators' checks route around it while it is serviced."""
        self.maintenance_since = (self.maintenance_since or self._node.clock()) if on else None
        log.warning("maintenance mode " + ("on" if on else "off"))

    def status(self) -> dict[str, object]:
        snapshots = self.outbox_snapshots()
        manifest = self._node.credentials.manifest
        now = self._node.clock()
        inbound = self._node.admission.view()
        peers = []
        cosigned = last_cosigned_by_witness(self._node.db.reader())
        refusals = self._node.checkpoints.refusals
        for province, peer in sorted(self._node.peers.items()):
            link = peer.worker.link
            snap = snapshots.get(province, PeerSnapshot(0, 0.0, 0))
            peers.append(
                {
                    "peer": province,
                    "node_id": peer.node_id,
                    "up": link.up,
                    "rtt_ms": round(link.rtt_seconds * 1000, 2) if link.rtt_seconds else None,
                    "outbox_depth": snap.depth,
                    "oldest_pending_age_seconds": round(snap.oldest_pending_age_seconds, 3),
                    "circuit": link.circuit.value,
                    "retry_interval_seconds": round(link.retry_interval, 3),
                    "dead_letters": snap.dead_letters,
                    "last_success_at": format_time(link.last_success_at)
                    if link.last_success_at
                    else None,
                    "last_received_at": format_time(link.last_received_at)
                    if link.last_received_at
                    else None,
                    "last_heartbeat_at": format_time(link.last_heartbeat_at)
                    if link.last_heartbeat_at
                    else None,
                    "last_error": link.last_error,
                    "refusal": link.refusal.to_json() if link.refusal else None,
                    "inbound": inbound.get(peer.node_id, IDLE_DOOR),
                    "cosigned": _cosigned(cosigned.get(province)),
                    "checkpoint_refused": _checkpoint_refused(refusals.get(province)),
                    "endpoints": peer.channel.endpoint_status(),
                }
            )
        readiness = self.readiness()
        by_type = _inbox_by_type(self._node.db.reader())
        return {
            "node_id": self._node.config.node_id,
            "province": self._node.config.province,
            "listen": {
                "grpc": self._node.config.grpc_listen,
                "http": self._node.config.http_listen,
            },
            "ready": all(v == "ok" for v in readiness.values()),
            "checks": readiness,
            "manifest": {
                "version": manifest.version,
                "expires_at": format_time(manifest.expires_at),
                "expired": manifest.expired_at(now),
            },
            "expiries": self.expiries(),
            "signing_key_id": self._node.credentials.signing_key.key_id,
            "store_id": self._node.db.store_id,
            "peers": peers,
            "dead_letters": sum(s.dead_letters for s in snapshots.values()),
            "overdue_cases": self._node.case_views.overdue_count(),
            "cases": _case_counts(self._node.db.reader()),
            "satisfaction": self._node.case_views.satisfaction(),
            "platform": self._node.platform.status() if self._node.platform else None,
            "inbox_messages": sum(by_type.values()),
            "inbox_by_type": by_type,
        }


def _cosigned(last: tuple[int, float] | None) -> dict[str, Any] | None:
    """The last checkpoint of our log a witness cosigned: its size, and when."""
    if last is None:
        return None
    return {"tree_size": last[0], "at": format_time(last[1])}


def _checkpoint_refused(refusal: WitnessRefusal | None) -> dict[str, Any] | None:
    """The witness's refusals of our log since it last cosigned, and the latest one."""
    if refusal is None:
        return None
    return {
        "count": refusal.count,
        "at": format_time(refusal.at),
        "code": refusal.code,
        "reason": refusal.reason,
    }


def _case_counts(conn: Connection) -> dict[str, dict[str, int]]:
    shown: dict[str, dict[str, int]] = {}
    for (role, status), n in sorted(cases_store.counts(conn).items()):
        shown.setdefault(role, {})[status] = n
    return shown


def _inbox_by_type(conn: Connection) -> dict[str, int]:
    rows = conn.execute("SELECT payload_type, count(*) FROM inbox GROUP BY payload_type")
    return {str(kind): int(n) for kind, n in rows}
