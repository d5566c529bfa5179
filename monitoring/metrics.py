"""The node's Prometheus metrics, one registry per node.

Rules kept here:
- Names carry the ``yrd_`` prefix and base units; counters end in ``_total``.
- Label values are bounded: peers are province names (``unknown`` for anything not in the
  manifest), payload types are ``Message.body`` field names, codes are ``FaultCode`` values.
  No message ids, case ids, names or ID numbers ever become label values.
- Values that live in the store or in a peer's link state (outbox depth, oldest pending age,
  dead letters, circuit, back-off) are read at scrape time by a collector, so they can never
  drift from the truth or lag a scrape behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

UNKNOWN_PEER = "unknown"

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
)


@dataclass(frozen=True)
class StoreSnapshot:
    commits: int
    """Group commits (transactions) since the node started."""
    jobs: int
    """Write jobs committed since the node started (several per commit under load)."""
    commit_seconds: float
    """Time spent running and committing those transactions."""
    size_bytes: int
    """The store file and its write-ahead log on disk."""
    writable: bool = True
    """False while the store refuses writes (disk full, I/O error, locked)."""


@dataclass(frozen=True)
class PeerSnapshot:
    """One peer's delivery state as it is at scrape time."""

    depth: int
    oldest_pending_age_seconds: float
    dead_letters: int
    circuit_state: int = 0
    """0 closed, 1 half-open, 2 open."""
    retry_interval_seconds: float = 0.0
    suspended: bool = False
    """Whether this node refuses the peer's streams and calls for now (refusable traffic)."""


CASE_DURATION_BUCKETS = (
    1,
    10,
    60,
    600,
    3600,
    4 * 3600,
    86400,
    3 * 86400,
    7 * 86400,
    15 * 86400,
    30 * 86400,
    60 * 86400,
)
"""A case runs from seconds (the demo) to the weeks of a promised time limit."""


TAKEOVER_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300)
"""A released lease is taken within a renewal interval (seconds), a lapsed one after a whole
lease's duration (15 s by default) and up to a renewal interval more."""


@dataclass(frozen=True)
class CaseSnapshot:
    """The node's cases as they are at scrape time."""

    by_status: Mapping[tuple[str, str], int]
    """(role, status) -> cases."""
    overdue: Mapping[tuple[str, str], int]
    """(role, peer province) -> open cases past their due time."""
    evaluations: Mapping[tuple[str, int], int]
    """(handling province, level 1-5) -> evaluations."""
    provinces: tuple[str, ...] = ()
    """This node's province and its peers: every series exists from the first scrape, at 0
    until something happens, so alerts and panels see 0 rather than no data."""
    statuses: tuple[str, ...] = ()


class _CaseCollector(Collector):
    def __init__(self, read: Callable[[], CaseSnapshot | None]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        snap = self._read()
        cases = GaugeMetricFamily(
            "yrd_cases",
            "Cases this node takes part in, by role and status.",
            labels=["role", "status"],
        )
        overdue = GaugeMetricFamily(
            "yrd_cases_overdue",
            "Open cases past their due time, by role and peer province.",
            labels=["role", "peer"],
        )
        evaluations = GaugeMetricFamily(
            "yrd_case_evaluations",
            "Evaluations (好差评) recorded, by handling province and level "
            "(5 非常满意 … 1 非常不满意).",
            labels=["handling", "level"],
        )
        if snap is not None:
            roles = ("accepting", "handling")
            by_status = {(r, s): 0 for r in roles for s in snap.statuses} | dict(snap.by_status)
            late = {(r, p): 0 for r in roles for p in snap.provinces[1:]} | dict(snap.overdue)
            rated = {(p, level): 0 for p in snap.provinces for level in range(1, 6)}
            rated |= dict(snap.evaluations)
            for (role, status), n in sorted(by_status.items()):
                cases.add_metric([role, status], n)
            for (role, peer), n in sorted(late.items()):
                overdue.add_metric([role, peer], n)
            for (handling, level), n in sorted(rated.items()):
                evaluations.add_metric([handling, str(level)], n)
        yield from (cases, overdue, evaluations)


class _PlatformCollector(Collector):
    def __init__(self, read: Callable[[], Mapping[str, float] | None]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        snap = self._read()
        if snap is None:
            return
        for name, help_text in (
            (
                "yrd_platform_up",
                "Whether the province platform answered the last poll or delivery.",
            ),
            ("yrd_platform_outbox_depth", "Items waiting to be handed to the province platform."),
            (
                "yrd_platform_oldest_pending_age_seconds",
                "Age of the oldest item waiting for the province platform.",
            ),
            ("yrd_platform_dead_letters", "Deliveries the province platform refused, parked."),
        ):
            if name in snap:  # a replica that does not talk to the platform has no "up"
                yield GaugeMetricFamily(name, help_text, value=snap[name])


class _RevocationCollector(Collector):
    def __init__(self, read: Callable[[], Mapping[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "yrd_revocation_list_age_seconds",
            "Seconds since the held revocation list of each issuing province was issued.",
            labels=["issuer"],
        )
        for issuer, seconds in sorted(self._read().items()):
            age.add_metric([issuer], seconds)
        yield age


@dataclass(frozen=True)
class EndpointSnapshot:
    """One endpoint of a peer, for the endpoint metrics (labels: province and address only)."""

    peer: str
    endpoint: str
    state: str
    """``untried``, ``healthy`` or ``failed`` (``node.transport.client.EndpointState``)."""
    current: bool
    failures: int


class _EndpointCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[EndpointSnapshot]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["peer", "endpoint"]
        up = GaugeMetricFamily(
            "yrd_peer_endpoint_up",
            "1 when the last call to this endpoint of the peer was answered, 0 when it failed "
            "in transport; absent until it is called.",
            labels=labels,
        )
        current = GaugeMetricFamily(
            "yrd_peer_endpoint_current",
            "1 for each endpoint of the peer that a lane of traffic goes to now.",
            labels=labels,
        )
        failures = CounterMetricFamily(
            "yrd_peer_endpoint_failures",
            "Transport failures of calls to this endpoint of the peer.",
            labels=labels,
        )
        for snap in self._read():
            names = [snap.peer, snap.endpoint]
            if snap.state != "untried":
                up.add_metric(names, 1.0 if snap.state == "healthy" else 0.0)
            current.add_metric(names, 1.0 if snap.current else 0.0)
            failures.add_metric(names, snap.failures)
        yield from (up, current, failures)


@dataclass(frozen=True)
class WitnessedSnapshot:
    """A peer's evidence log as this node witnesses it, read from the store at scrape time
    (so every replica of a node shows the same, whichever one cosigned)."""

    cosigned_at: float | None
    """When this node last cosigned a checkpoint of the peer's log; None if it never did."""
    pending: int
    """Heads of the peer's log other witnesses showed this node that the peer has not yet
    proven consistent with what this node cosigned."""
    oldest_pending_age_seconds: float
    """Since the oldest of those heads was cosigned by the witness that showed it (0 when
    none is pending)."""


@dataclass(frozen=True)
class EvidenceSnapshot:
    """This node's evidence log and the peers' logs it witnesses, at scrape time."""

    uncovered_entries: int
    """Entries of this node's log past its Merkle tree (after a gap or a broken link the tree
    stops growing, so no checkpoint covers them)."""
    witnessed: Mapping[str, WitnessedSnapshot]
    """By peer province."""


class _EvidenceCollector(Collector):
    def __init__(self, read: Callable[[], EvidenceSnapshot | None]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        snap = self._read()
        uncovered = GaugeMetricFamily(
            "yrd_evidence_entries_uncovered",
            "Entries of this node's evidence log its Merkle tree does not cover (after a gap "
            "or a broken link the tree stops growing): no checkpoint can anchor them.",
        )
        cosigned = GaugeMetricFamily(
            "yrd_witnessed_log_cosigned_timestamp_seconds",
            "When this node, as its witness, last cosigned a checkpoint of the peer's evidence "
            "log (Unix time); absent until it first does.",
            labels=["peer"],
        )
        pending = GaugeMetricFamily(
            "yrd_witnessed_heads_pending",
            "Heads of the peer's evidence log that other witnesses showed this node and the "
            "peer has not yet proven consistent with what this node cosigned.",
            labels=["peer"],
        )
        age = GaugeMetricFamily(
            "yrd_witnessed_heads_pending_oldest_age_seconds",
            "Age of the oldest head of the peer's log pending here, from when the witness "
            "that showed it cosigned it (0 when none is pending).",
            labels=["peer"],
        )
        if snap is not None:
            uncovered.add_metric([], snap.uncovered_entries)
            for peer, witnessed in sorted(snap.witnessed.items()):
                if witnessed.cosigned_at is not None:
                    cosigned.add_metric([peer], witnessed.cosigned_at)
                pending.add_metric([peer], witnessed.pending)
                age.add_metric([peer], witnessed.oldest_pending_age_seconds)
        yield from (uncovered, cosigned, pending, age)


class _StoreCollector(Collector):
    def __init__(
        self,
        read: Callable[[], Mapping[str, PeerSnapshot]],
        store: Callable[[], StoreSnapshot | None],
    ) -> None:
        self._read = read
        self._store = store

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._store()
        if stats is not None:
            yield CounterMetricFamily(
                "yrd_store_commits", "Store transactions committed.", value=stats.commits
            )
            yield CounterMetricFamily(
                "yrd_store_write_jobs", "Store write jobs committed.", value=stats.jobs
            )
            yield GaugeMetricFamily(
                "yrd_store_size_bytes",
                "Size of the store file and its write-ahead log.",
                value=stats.size_bytes,
            )
            yield CounterMetricFamily(
                "yrd_store_commit_seconds",
                "Time the store's writer spent running and committing transactions.",
                value=stats.commit_seconds,
            )
            yield GaugeMetricFamily(
                "yrd_store_writable",
                "1 while the store takes writes, 0 while it refuses them (disk full, I/O error).",
                value=1 if stats.writable else 0,
            )
        depth = GaugeMetricFamily(
            "yrd_outbox_depth", "Messages waiting for delivery to a peer.", labels=["peer"]
        )
        age = GaugeMetricFamily(
            "yrd_outbox_oldest_pending_age_seconds",
            "Age of the oldest message waiting for delivery to a peer.",
            labels=["peer"],
        )
        dead = GaugeMetricFamily(
            "yrd_dead_letters",
            "Messages parked after exhausting delivery, waiting for an operator.",
            labels=["peer"],
        )
        circuit = GaugeMetricFamily(
            "yrd_peer_circuit_state",
            "Delivery circuit per peer: 0 closed, 1 half-open, 2 open.",
            labels=["peer"],
        )
        retry = GaugeMetricFamily(
            "yrd_peer_retry_interval_seconds",
            "Current delivery back-off interval per peer (0 when healthy).",
            labels=["peer"],
        )
        suspended = GaugeMetricFamily(
            "yrd_peer_suspended",
            "1 while this node refuses a peer's streams and calls for sending refusable traffic.",
            labels=["peer"],
        )
        for peer, snap in sorted(self._read().items()):
            depth.add_metric([peer], snap.depth)
            age.add_metric([peer], snap.oldest_pending_age_seconds)
            dead.add_metric([peer], snap.dead_letters)
            circuit.add_metric([peer], snap.circuit_state)
            retry.add_metric([peer], snap.retry_interval_seconds)
            suspended.add_metric([peer], 1 if snap.suspended else 0)
        yield from (depth, age, dead, circuit, retry, suspended)


class NodeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_sent = Counter(
            "yrd_messages_sent_total",
            "Messages delivered to a peer and acknowledged by its signed receipt.",
            ["peer", "type"],
            registry=r,
        )
        self.messages_received = Counter(
            "yrd_messages_received_total",
            "Messages accepted from a peer (re-deliveries not counted).",
            ["peer", "type"],
            registry=r,
        )
        self.messages_duplicate = Counter(
            "yrd_messages_duplicate_total",
            "Re-deliveries answered with the original receipt.",
            ["peer", "type"],
            registry=r,
        )
        self.messages_refused = Counter(
            "yrd_messages_refused_total",
            "Messages refused, by who refused them (direction inbound: this node refused "
            "a peer's message; outbound: a peer refused ours).",
            ["peer", "type", "code", "direction"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "yrd_delivery_latency_seconds",
            "From the moment a message is committed to the outbox to its verified receipt.",
            ["peer"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.peer_up = Gauge(
            "yrd_peer_up", "1 when the peer answered the last heartbeat.", ["peer"], registry=r
        )
        self.heartbeat_rtt = Gauge(
            "yrd_heartbeat_rtt_seconds",
            "Round trip of the last answered heartbeat.",
            ["peer"],
            registry=r,
        )
        self.manifest_version = Gauge(
            "yrd_manifest_version", "Version of the federation manifest in force.", registry=r
        )
        self.manifest_expiry = Gauge(
            "yrd_manifest_expiry_timestamp_seconds",
            "When the manifest in force expires (Unix time).",
            registry=r,
        )
        self.signing_key_expiry = Gauge(
            "yrd_signing_key_expiry_timestamp_seconds",
            "When the signing key this node uses stops being valid (Unix time).",
            registry=r,
        )
        self.tls_certificate_expiry = Gauge(
            "yrd_tls_certificate_expiry_timestamp_seconds",
            "When this node's TLS certificate expires (Unix time).",
            registry=r,
        )
        self.holiday_tables_end = Gauge(
            "yrd_holiday_tables_end_timestamp_seconds",
            "When the holiday tables this node counts working days with end (Unix time): no "
            "due time past it can be computed until the next year's table is loaded.",
            registry=r,
        )
        self.last_sent = Gauge(
            "yrd_peer_last_delivery_timestamp_seconds",
            "When a message to the peer was last receipted (Unix time).",
            ["peer"],
            registry=r,
        )
        self.last_received = Gauge(
            "yrd_peer_last_receive_timestamp_seconds",
            "When a message from the peer was last accepted (Unix time).",
            ["peer"],
            registry=r,
        )
        self.checkpoint_cosigned_size = Gauge(
            "yrd_checkpoint_cosigned_tree_size",
            "Entries of this node's evidence log in the last checkpoint the witness peer cosigned.",
            ["peer"],
            registry=r,
        )
        self.checkpoint_cosigned_at = Gauge(
            "yrd_checkpoint_cosigned_timestamp_seconds",
            "When the witness peer last cosigned a checkpoint of this node's log (Unix time).",
            ["peer"],
            registry=r,
        )
        self.checkpoint_witness_since = Gauge(
            "yrd_checkpoint_witness_since_timestamp_seconds",
            "Since when this node has asked the witness peer to cosign its log, and witnessed "
            "the peer's (its start, Unix time): the age of a witness that never cosigned, and "
            "of a peer that never sent a checkpoint, is counted from here.",
            ["peer"],
            registry=r,
        )
        self.checkpoints_refused = Counter(
            "yrd_checkpoints_refused_total",
            "Checkpoints of the peer's log this node refused as its witness: they did not "
            "extend the one cosigned before (a rewrite or a fork), or did not verify; and "
            "split views of the peer's log found when witnesses compare heads.",
            ["peer"],
            registry=r,
        )
        self.checkpoints_refused_by_peer = Counter(
            "yrd_checkpoints_refused_by_peer_total",
            "Checkpoints of this node's log the witness peer refused as not extending the one "
            "it cosigned before (a signed log_inconsistent fault).",
            ["peer"],
            registry=r,
        )
        self.store_write_latency = Histogram(
            "yrd_store_write_latency_seconds",
            "Time from a write being queued to its transaction being durable (group commit).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.case_duration = Histogram(
            "yrd_case_duration_seconds",
            "End-to-end case time, submission to outcome, seen by the accepting side.",
            ["handling", "outcome"],
            buckets=CASE_DURATION_BUCKETS,
            registry=r,
        )
        self.certificate_verifications = Counter(
            "yrd_certificate_verifications_total",
            "Online certificate verifications asked by this node, by result (the status "
            "attested or the refusal code) and purpose (a scene, or 'matter').",
            ["result", "purpose"],
            registry=r,
        )
        self.certificate_disclosures = Counter(
            "yrd_certificate_disclosures_total",
            "Attestations this node signed about its province's certificates, by requester.",
            ["requester"],
            registry=r,
        )
        self.presentations_issued = Counter(
            "yrd_presentations_issued_total", "Offline presentations this node signed.", registry=r
        )
        self.consents_granted = Counter(
            "yrd_consents_granted_total",
            "Consent grants this node signed for holders of its province platform.",
            registry=r,
        )
        self.presentations_checked = Counter(
            "yrd_presentations_checked_total",
            "Offline presentations checked here, by result (status or refusal code).",
            ["result"],
            registry=r,
        )
        self.platform_records_refused = Counter(
            "yrd_platform_records_refused_total",
            "Records of the province platform's feeds the node could not take, by feed "
            "(applications, events) and code.",
            ["feed", "code"],
            registry=r,
        )
        self.http_refusals = Counter(
            "yrd_http_refusals_total",
            "REST requests refused before their handler ran, by route pattern and reason "
            "(misdirected_request, unauthorized, forbidden).",
            ["route", "reason"],
            registry=r,
        )
        self.door_refusals = Counter(
            "yrd_peer_door_refusals_total",
            "Streams and calls of a peer refused before any message was read, by reason "
            "(too_many_streams, too_many_calls, peer_suspended).",
            ["peer", "reason"],
            registry=r,
        )
        self.task_restarts = Counter(
            "yrd_task_restarts_total",
            "Background tasks restarted after an unexpected failure, by task name.",
            ["task"],
            registry=r,
        )
        self.lease_takeovers = Counter(
            "yrd_lease_takeovers_total",
            "Leases (jobs only one replica may do: outbox:<peer>, platform-poll, "
            "platform-delivery, checkpoints) this replica took from another, by lease and cause "
            "(lapsed: the holder stopped renewing it; released: it handed the lease over).",
            ["lease", "cause"],
            registry=r,
        )
        self.lease_takeover_delay = Histogram(
            "yrd_lease_takeover_delay_seconds",
            "How long a lease's job went undone before this replica took it over: from the "
            "previous holder's last renewal (lapsed) or its release (released).",
            ["lease", "cause"],
            buckets=TAKEOVER_BUCKETS,
            registry=r,
        )
        self.manifest_reload_failures = Counter(
            "yrd_manifest_reload_failures_total",
            "Manifest reloads refused (bad signature, older version, expired, malformed).",
            ["reason"],
            registry=r,
        )

    def lease_taken_over(self, lease: str, cause: str, delay_seconds: float) -> None:
        """One lease taken from another replica (``node.store.leases.TakeoverMetrics``)."""
        self.lease_takeovers.labels(lease, cause).inc()
        self.lease_takeover_delay.labels(lease, cause).observe(delay_seconds)

    def watch_platform(self, read: Callable[[], Mapping[str, float] | None]) -> None:
        self.registry.register(_PlatformCollector(read))

    def watch_revocation_lists(self, read: Callable[[], Mapping[str, float]]) -> None:
        """Seconds since each held revocation list was issued, by issuing province."""
        self.registry.register(_RevocationCollector(read))

    def watch_endpoints(self, read: Callable[[], Iterable[EndpointSnapshot]]) -> None:
        """Each peer endpoint's health (``yrd_peer_endpoint_*``)."""
        self.registry.register(_EndpointCollector(read))

    def watch_evidence(self, read: Callable[[], EvidenceSnapshot | None]) -> None:
        """The evidence log's coverage and the peers' logs this node witnesses
        (``yrd_evidence_*``, ``yrd_witnessed_*``)."""
        self.registry.register(_EvidenceCollector(read))

    def watch_cases(self, read: Callable[[], CaseSnapshot | None]) -> None:
        self.registry.register(_CaseCollector(read))

    def watch_store(
        self,
        read: Callable[[], Mapping[str, PeerSnapshot]],
        store: Callable[[], StoreSnapshot | None],
    ) -> None:
        self.registry.register(_StoreCollector(read, store))
