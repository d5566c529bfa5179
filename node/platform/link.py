"""The node's side of its own province platform: reading its feeds, handing it what arrives.

Rules kept here (the adapter's own rules are in ``node.platform.adapter``):
1. Applications entered at the platform become cases through ``CaseExchange.submit`` with
   the Idempotency-Key ``platform:<reference>``, then are acknowledged with the case id; a
   feed page is re-read after a crash or an outage, and re-reading changes nothing.
   An application the exchange refuses (``CaseInputError``, ``CaseConflict``), or whose
   record the adapter could not translate (a ``Malformed`` naming its reference), is
   recorded by its reference as taken and refused, and its ``ApplicationRefusal`` (code,
   field, reason) queued for the platform, in one transaction: read again, it is neither
   submitted nor refused again, and it is never acknowledged. A ``Malformed`` without a
   reference, and one of the event feed, cannot be answered: it is logged and counted.
2. Platform events become case actions through ``CaseExchange.act``, each recorded by its
   event id in the transaction that applies it, so an event read twice is applied once.
   An event the lifecycle refuses is recorded as refused and logged; one that cannot apply
   yet (an acceptance while a certificate check still runs) is kept, with every later event
   of the same case behind it, and tried again in order at each poll; neither stops the
   feed. A feed's cursor is stored only after every item of the
   page was taken.
3. What the platform must learn (inbound cases, applied updates, refused applications) is
   queued in the store by the transaction that causes it and delivered in order by
   ``run_deliveries``: a platform that is down or answers 5xx is retried with exponential
   back-off and jitter, and the item waits, visible in status and metrics, until the
   platform takes it. A 4xx refusal parks the item for an operator: retrying the same
   request cannot help.
4. Nothing here logs names or ID numbers: references, case ids and codes only.
5. Where replicas of the node share one store, one of them reads the feeds and one hands the
   platform its items, each under a lease (``node.store.leases``: ``PLATFORM_POLL``,
   ``PLATFORM_DELIVERY``); the others wait and take over a lease that lapses. An event read
   by two replicas all the same (a takeover mid-page) is applied once: its id is claimed in
   the transaction that applies it (rule 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from node.cases.exchange import CaseConflict, CaseNotFound
from node.cases.lifecycle import TransitionRefused
from node.cases.submission import CaseInputError
from node.delivery.retry import DrainLoop
from node.platform.adapter import (
    UNNAMED,
    Application,
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    Malformed,
    PlatformEvent,
    PlatformUnavailable,
    ProvinceAdapter,
)
from node.platform.config import PlatformConfig
from node.store import platform as store
from node.store.connection import Connection
from node.store.database import Database
from node.store.leases import LeaseClaim
from node.transport.admission import RefusalLog
from node.trust.manifest import format_time

if TYPE_CHECKING:
    from prometheus_client import Counter

    from node.store.cases import CaseRow

log = logging.getLogger(__name__)

RETRY_LATER = frozenset({"material_check_pending"})
"""Refusals of an event that will pass once the node has finished something of its own."""
DELIVERY_RETRY_INITIAL = 0.2
"""Seconds before the first retry of a delivery the platform did not take."""
MAX_PAGES = 20
"""Pages read from one feed in one poll before the other feed gets its turn."""
MAX_REASON = 1000
"""Longest refusal sentence sent to the platform, in characters."""


@dataclass
class PlatformState:
    up: bool = False
    last_error: str = ""
    last_poll_at: float | None = None
    last_delivery_at: float | None = None


def _conflict_refusal(error: CaseConflict) -> ApplicationRefusal:
    """A submission's conflict as the platform understands it: the Idempotency-Key it
    knows nothing of is its own application number."""
    if error.code == "idempotency_key_reused":
        return ApplicationRefusal(
            "reference_reused",
            "reference",
            "this application number was already submitted with different content",
        )
    return ApplicationRefusal(error.code, error.field or "", error.detail)


class CaseDesk(Protocol):
    """What the link asks of the case service: a new case, an action on one."""

    async def submit(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> tuple[CaseRow, bool]: ...

    async def act(
        self, case_id: str, body: Mapping[str, Any], *, platform_event: str | None = None
    ) -> tuple[CaseRow, str | None]: ...


class PlatformLink:
    def __init__(
        self,
        adapter: ProvinceAdapter,
        config: PlatformConfig,
        *,
        province: str,
        db: Callable[[], Database],
        clock: Callable[[], float],
        cases: CaseDesk,
        refused_records: Counter,
        poll_lease: LeaseClaim | None = None,
        delivery_lease: LeaseClaim | None = None,
    ) -> None:
        self.adapter = adapter
        self._poll_lease = poll_lease
        self._delivery_lease = delivery_lease
        """Rule 5; None: this process is the only one (always ours)."""
        self.config = config
        self._province = province
        self._db = db
        self._clock = clock
        self._cases = cases
        self._refused_records = refused_records
        """yrd_platform_records_refused, by feed and code."""
        self.state = PlatformState()
        self._dialect_log = RefusalLog()
        self._deliveries = DrainLoop(
            self.deliver_pending,
            retry_on=PlatformUnavailable,
            initial=DELIVERY_RETRY_INITIAL,
            maximum=config.retry_max_seconds,
            on_backoff=lambda error, _interval: self._down(error),
        )

    @property
    def talks_to_platform(self) -> bool:
        """Whether this replica reads or feeds the platform now (rule 5): only then does
        ``state`` say anything about the platform's health."""
        return any(
            lease is None or lease.held for lease in (self._poll_lease, self._delivery_lease)
        )

    def notify(self) -> None:
        """New items wait in the platform outbox."""
        self._deliveries.notify()

    # -- reading the platform ------------------------------------------------------------

    async def run_polls(self) -> None:
        while True:
            try:
                if self._poll_lease is None or await self._poll_lease.hold():
                    await self.poll_once()
            except PlatformUnavailable as error:
                self._down(error)
            except DialectError as error:
                self._down(error)
                # Once per code and interval: a broken platform answers every poll.
                self._dialect_log.warn(
                    "platform answered outside its dialect",
                    peer=f"{self._province} platform",
                    reason=error.code,
                )
            await asyncio.sleep(self.config.poll_interval_seconds)

    async def poll_once(self) -> None:
        await self._drain_feed("applications")
        await self._drain_feed("events")
        await self.retry_deferred()
        self.state.up = True
        self.state.last_poll_at = self._clock()

    async def _drain_feed(self, feed: str) -> None:
        for _ in range(MAX_PAGES):
            cursor = store.cursor(self._db().reader(), feed)
            if feed == "applications":
                page = await self.adapter.poll_applications(cursor)
            else:
                page = await self.adapter.poll_events(cursor)
            for item in page.items:
                if isinstance(item, Malformed):
                    await self._malformed(feed, item)
                elif isinstance(item, Application):
                    await self._take_application(item)
                elif isinstance(item, PlatformEvent):
                    await self._take_event(item)
            if page.cursor is not None and page.cursor != cursor:
                await self._save_cursor(feed, page.cursor)
            if not page.items:
                return

    async def _save_cursor(self, feed: str, value: str) -> None:
        at = self._clock()
        await self._db().write(lambda conn: store.save_cursor(conn, feed, value, at))

    async def _malformed(self, feed: str, item: Malformed) -> None:
        if feed == "applications" and item.reference != UNNAMED:
            if self._taken_and_refused(item.reference):
                return
            refusal = ApplicationRefusal(item.code, item.field, item.detail, in_dialect=True)
            await self._refuse_application(item.reference, refusal)
            return
        self._refused_records.labels(feed, item.code).inc()
        log.warning(
            "platform record not in its dialect",
            extra={"feed": feed, "reference": item.reference, "code": item.code,
                   "field": item.field, "reason": item.detail},
        )  # fmt: skip

    async def _take_application(self, item: Application) -> None:
        if self._taken_and_refused(item.reference):
            return
        try:
            case, created = await self._cases.submit(
                item.body, idempotency_key=f"platform:{item.reference}"
            )
        except CaseInputError as error:
            refusal = ApplicationRefusal(error.code, error.field, error.detail)
            await self._refuse_application(item.reference, refusal)
            return
        except CaseConflict as error:
            await self._refuse_application(item.reference, _conflict_refusal(error))
            return
        await self.adapter.acknowledge(item.reference, case.case_id)
        if created:
            log.info(
                "platform application submitted",
                extra={"reference": item.reference, "case_id": case.case_id},
            )

    def _taken_and_refused(self, reference: str) -> bool:
        """Whether the application was refused when read before (rule 1)."""
        return store.application_outcome(self._db().reader(), reference) is not None

    async def _refuse_application(self, reference: str, refusal: ApplicationRefusal) -> None:
        """Record the application as taken and refused and queue the refusal for the
        platform, in one transaction (rule 1)."""
        at = self._clock()
        payload = {
            "code": refusal.code,
            "field": refusal.field,
            "reason": refusal.reason[:MAX_REASON],
            "in_dialect": refusal.in_dialect,
        }

        def record(conn: Connection) -> bool:
            queued = store.refuse_application(conn, reference=reference, refusal=payload, at=at)
            if queued:
                self._db().after_commit(self.notify)
            return queued

        if not await self._db().write(record):
            return
        self._refused_records.labels("applications", refusal.code).inc()
        log.warning(
            "platform application refused",
            extra={"reference": reference, "code": refusal.code, "field": refusal.field},
        )

    async def _take_event(self, item: PlatformEvent) -> None:
        # A case's events apply in the order the platform wrote them: behind a deferred
        # one, the next waits too (an officer completes right after accepting).
        if store.has_deferred(self._db().reader(), item.case_id):
            await self._defer(item)
            return
        await self._apply_event(item)

    async def _apply_event(self, item: PlatformEvent) -> bool:
        """Apply one event; False when it had to be deferred (again)."""
        try:
            await self._cases.act(item.case_id, item.body, platform_event=item.event_id)
        except CaseConflict as error:
            if error.code in RETRY_LATER:
                await self._defer(item)
                return False
            await self._refused_event(item, error.code)
        except (CaseNotFound, CaseInputError, TransitionRefused) as error:
            code = "unknown_case" if isinstance(error, CaseNotFound) else error.code
            await self._refused_event(item, code)
        return True

    async def _defer(self, item: PlatformEvent) -> None:
        """Valid but not yet applicable: kept and tried again, the feed moves on."""
        at = self._clock()
        body = dict(item.body)
        await self._db().write(
            lambda conn: store.record_event(
                conn,
                event_id=item.event_id,
                case_id=item.case_id,
                outcome=store.DEFERRED,
                at=at,
                body=body,
            )
        )

    async def retry_deferred(self) -> None:
        """Try again the events deferred before, each case's in order (rule 2)."""
        blocked: set[str] = set()
        for event_id, case_id, body in store.deferred_events(self._db().reader()):
            if case_id in blocked:
                continue
            if not await self._apply_event(PlatformEvent(event_id, case_id, body)):
                blocked.add(case_id)

    async def _refused_event(self, item: PlatformEvent, code: str) -> None:
        """Record the event as taken, refused, so it is not applied when read again."""
        at = self._clock()
        outcome = f"refused:{code}"
        await self._db().write(
            lambda conn: store.record_event(
                conn, event_id=item.event_id, case_id=item.case_id, outcome=outcome, at=at
            )
        )
        self._refused_records.labels("events", code).inc()
        log.warning(
            "platform event refused",
            extra={"event_id": item.event_id, "case_id": item.case_id, "code": code},
        )

    # -- handing the platform what arrived ---------------------------------------------------

    async def run_deliveries(self) -> None:
        await self._deliveries.run()

    async def deliver_pending(self) -> None:
        """Hand every pending item to the platform in order; raise PlatformUnavailable to
        back off with the head item still pending."""
        while items := store.pending(self._db().reader()):
            if self._delivery_lease is not None and not await self._delivery_lease.hold():
                return  # another replica hands the platform its items
            for item in items:
                try:
                    await self._deliver(item.kind, item.payload)
                except PlatformUnavailable as error:
                    await self._settle(item.seq, None, str(error))
                    raise
                except DialectError as error:
                    await self._settle(item.seq, "dead", str(error))
                    named = {"case_id": item.case_id}
                    if item.kind == store.REFUSAL:
                        named = {"reference": item.payload["reference"]}
                    log.error(
                        "platform refused a delivery; parked",
                        extra={**named, "kind": item.kind, "code": error.code},
                    )
                    continue
                await self._settle(item.seq, "delivered", "")
                self.state.up = True
                self.state.last_delivery_at = self._clock()

    async def _settle(self, seq: int, state: str | None, error: str) -> None:
        """Record one attempt: delivered, parked (dead), or failed for now (None)."""
        at = self._clock()

        def record(conn: Connection) -> None:
            if state is None:
                store.failed_attempt(conn, seq, error)
            else:
                store.settle(conn, seq, state=state, at=at, error=error)

        await self._db().write(record)

    async def _deliver(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "case":
            await self.adapter.deliver_case(InboundCase(**payload))
        elif kind == store.REFUSAL:
            refusal = ApplicationRefusal(**payload["refusal"])
            await self.adapter.reject_application(payload["reference"], refusal)
        else:
            await self.adapter.deliver_update(CaseNotice(**payload))

    def _down(self, error: BaseException | None) -> None:
        if self.state.up:
            log.warning("platform unreachable", extra={"error": str(error)})
        self.state.up = False
        self.state.last_error = str(error)

    # -- views ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self._clock()
        waiting, oldest, dead = store.depth(self._db().reader())
        state = self.state
        return {
            "adapter": self.config.adapter,
            "url": self.config.url,
            # None: another replica reads and feeds the platform; this one knows nothing of it.
            "up": state.up if self.talks_to_platform else None,
            "outbox_depth": waiting,
            "oldest_pending_age_seconds": round(now - oldest, 3) if oldest else 0.0,
            "dead_letters": dead,
            "last_poll_at": format_time(state.last_poll_at) if state.last_poll_at else None,
            "last_delivery_at": format_time(state.last_delivery_at)
            if state.last_delivery_at
            else None,
            "last_error": state.last_error,
        }
