"""The case exchange: cross-province cases between this node and its peers.

How a case travels (DESIGN.md §6):
1. The accepting node (收件地) takes a submission from its platform, stores the case and
   queues a signed ``CaseSubmit`` to the handling node, in one transaction.
2. The handling node (办理地) stores the case with its signed receipt. That receipt is the
   case's update 1, ``deliver``, on both sides: the accepting node records it when the
   receipt reaches it, the handling node when it signs it, so both hold the same bytes.
3. The handling node numbers every later update of the cases it handles. Its own actions
   (accept, reject, request_supplement, complete, deny) are applied there and sent as signed
   ``CaseUpdate`` messages. The accepting side's actions (supplement, withdraw, evaluate)
   travel as a signed ``CaseAction`` request; the handling node applies it to its current
   state and sends it back numbered as a ``CaseUpdate`` naming the request, or refuses it
   with a signed fault (illegal_transition, wrong_side) that the accepting node records as
   the request's answer. One authority numbers each case, so the two sides never race.
4. The accepting node applies updates in sequence order (``CaseSequencer``): an early one is
   stored and held until the ones before it arrive, an exact duplicate changes nothing, a
   different update under a known number is refused.
5. The handling node derives the due time from its history (acceptance starts the clock,
   supplement requests pause it) and every update carries the due time after it.

Text from this side's platform or REST API (an event's reason and comment, a submission's
names) is judged by ``node.text.clean_text`` and kept in Unicode normal form C as it comes
in; a peer's text was judged, unchanged, by the receiver's checks.

Every change happens inside the store transaction that records the message causing it, so
a crash leaves either all of it or none. Everything the node learns or sends about a case
also sits in the evidence log.

The exchange reads messages and events and refuses what does not hold; what it records of a
case (steps 3 to 5) is the ``CaseLedger`` (``ledger``), and a platform's events and what the
platform is told are parsed and built in ``events``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from node.cases.calendar import WorkingCalendar
from node.cases.catalog import Matter
from node.cases.certificate_checks import CertificateChecks
from node.cases.events import inbound_case, parse_event
from node.cases.federated import FederatedCatalog
from node.cases.ledger import CaseLedger
from node.cases.lifecycle import (
    MAX_CASE_ID_LENGTH,
    Action,
    CaseUpdate,
    InvalidCaseField,
    Role,
    Status,
    TransitionRefused,
    apply_update,
    is_case_id,
    open_case,
)
from node.cases.submission import CaseInputError, parse_new_case
from node.cases.wire import (
    delivered,
    exact,
    from_action,
    from_update,
    instant,
    submit_body,
    to_action,
    to_submit,
)
from node.identifiers import IdentifierError
from node.peers.courier import Courier
from node.peers.inbound import PayloadHandler, Received
from node.protocol.checks import Authenticated
from node.protocol.faults import FaultCode, Refusal
from node.store import cases
from node.store import platform as platform_store
from node.store.cases import CaseRow
from node.store.connection import Connection
from node.store.outbox import OutboxItem
from node.trust.manifest import PROVINCES, format_time

if TYPE_CHECKING:
    from monitoring.metrics import NodeMetrics
    from node.cases.catalog import Catalog
    from node.certificates.recognition import CertificateRecognition
    from node.delivery.worker import Settlement
    from node.store.database import Database

log = logging.getLogger(__name__)


_REFUSAL_FAULTS = {
    "illegal_transition": FaultCode.ILLEGAL_TRANSITION,
    "wrong_side": FaultCode.WRONG_SIDE,
    "sequence_conflict": FaultCode.SEQUENCE_CONFLICT,
    "sequence_too_far_ahead": FaultCode.SEQUENCE_GAP,
}


CASE_PAYLOADS = frozenset({"case_submit", "case_update", "case_action"})
"""The payload types a case is made of; any other settlement is none of a case's business."""


class CaseNotFound(LookupError):
    pass


class CaseConflict(Exception):
    """A request conflicts with what is stored (an Idempotency-Key reused with another body,
    a request already waiting for the handler's answer)."""

    def __init__(self, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field


class CaseConfig(Protocol):
    @property
    def province(self) -> str: ...

    @property
    def platform(self) -> object | None:
        """Set when the node has a province platform to hand cases to."""


class CaseNode(Protocol):
    """What the case service still reads of the node it runs in, by name: a structural view,
    so cases never import the runtime. (Giving it each part on its own is the next step.)"""

    @property
    def config(self) -> CaseConfig: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def certificates(self) -> CertificateRecognition: ...

    @property
    def metrics(self) -> NodeMetrics: ...

    @property
    def db(self) -> Database: ...

    def clock(self) -> float: ...

    def platform_wake(self) -> None: ...


class CaseExchange:
    def __init__(
        self,
        node: CaseNode,
        calendar: WorkingCalendar,
        *,
        courier: Courier,
        catalogs: FederatedCatalog,
    ) -> None:
        self._node = node
        self._courier = courier
        self._catalogs = catalogs
        self._ledger = CaseLedger(
            db=lambda: node.db,
            courier=courier,
            calendar=calendar,
            metrics=node.metrics,
            platform_wake=node.platform_wake if node.config.platform is not None else None,
        )
        self.checks = CertificateChecks(node, apply=self._ledger.apply)
        """The certificate materials of cases, checked with their issuers."""

    @property
    def me(self) -> str:
        return self._node.config.province

    def handlers(self) -> dict[str, PayloadHandler]:
        """How this service takes its payload types from peers (see ``peers.inbound``)."""
        return {
            "case_submit": PayloadHandler(validate=self.validate_submit, effect=self.on_submit),
            "case_update": PayloadHandler(validate=self.validate_update, effect=self.on_update),
            "case_action": PayloadHandler(validate=self.validate_action, effect=self.on_action),
        }

    # -- submitting (accepting side) ---------------------------------------------------------

    def find_matter(self, code: str) -> Matter | None:
        """A matter of the federated catalog: our own, or as its province announced it."""
        return self._catalogs.find_matter(code)

    async def submit(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> tuple[CaseRow, bool]:
        """Store a new case and queue it for its handler; return it and whether it is new.

        Raises CaseInputError for a bad body and CaseConflict for a key reused with another.
        """
        node = self._node
        case = parse_new_case(body, find_matter=self.find_matter, me=self.me)
        await self.checks.check_applicant(case)
        canonical = json.dumps(case.to_json(), sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode()).digest()
        now = exact(node.clock())
        case_id = new_case_id(self.me, now)
        open_case(by=Role.ACCEPTING)
        sealed = self._courier.seal(
            case.handler, [("case_submit", to_submit(case_id, case, now))], correlation_id=case_id
        )[0]
        row = CaseRow(
            case_id=case_id,
            role=Role.ACCEPTING.value,
            accepting=self.me,
            handling=case.handler,
            matter_code=case.matter.code,
            mode=case.mode,
            promised_days=case.matter.promised_days,
            submission=sealed.envelope,
            status=Status.SUBMITTED.value,
            applied=0,
            due_at=None,
            submitted_at=now,
            updated_at=now,
            concluded_at=None,
            evaluation_level=None,
            problem="",
            idempotency_key=idempotency_key,
            request_digest=digest if idempotency_key else None,
        )

        def store(conn: Connection) -> tuple[CaseRow, bool]:
            # The insert claims the key: the same request at two replicas at once is stored
            # once, and both answer with that case.
            if cases.insert_case(conn, row):
                self._courier.enqueue(conn, case.handler, [sealed], correlation_id=case_id)
                return row, True
            assert idempotency_key is not None, "only a key can make an insert a no-op"
            prior = cases.by_idempotency_key(conn, idempotency_key)
            assert prior is not None
            if prior.request_digest != digest:
                raise CaseConflict(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request body",
                    field="Idempotency-Key",
                )
            return prior, False

        stored, created = await node.db.write(store)
        if created:
            log.info(
                "case submitted",
                extra={"case_id": case_id, "peer": case.handler, "message_id": sealed.message_id},
            )
        return stored, created

    # -- events from this side's platform ----------------------------------------------------

    async def act(
        self, case_id: str, body: Mapping[str, Any], *, platform_event: str | None = None
    ) -> tuple[CaseRow, str | None]:
        """Apply (handling side) or request (accepting side) an action from our platform.

        Returns the case and, for a request sent to the handler, its message id. Raises
        CaseNotFound, CaseInputError (malformed event), TransitionRefused (not allowed now,
        or not for this side) and CaseConflict (a request already awaits its answer).
        """
        node = self._node
        action, reason, result, evaluation = parse_event(body)
        now = exact(node.clock())

        def change(conn: Connection) -> tuple[CaseRow, str | None, str]:
            case = cases.get_for_change(conn, case_id)
            if case is None:
                raise CaseNotFound(case_id)
            if platform_event is not None and not platform_store.record_event(
                conn, event_id=platform_event, case_id=case_id, outcome="applied", at=now
            ):
                return case, None, ""  # taken before, or by another replica at once
            side = Role(case.role)
            update = CaseUpdate(
                case_id=case_id,
                sequence=case.applied + 1,
                action=action,
                by=side,
                at=now,
                reason=reason,
                result=result,
                evaluation=evaluation,
            )
            apply_update(Status(case.status), update)
            if side is Role.HANDLING and action is Action.ACCEPT:
                _check_materials(cases.certificate_checks(conn, case_id))
            if side is Role.HANDLING:
                self._ledger.apply(conn, case, update, send=True)
                return _reload(conn, case_id), None, case.accepting
            pending = [r for r in cases.requests(conn, case_id) if r.state == "pending"]
            if pending:
                raise CaseConflict(
                    "request_pending",
                    f"the handler has not yet answered this case's {pending[0].action} request "
                    f"({pending[0].message_id}); send the next action after it",
                )
            sealed = self._courier.seal(
                case.handling,
                [("case_action", to_action(case_id, action, now, reason, evaluation))],
                correlation_id=case_id,
            )[0]
            self._courier.enqueue(conn, case.handling, [sealed], correlation_id=case_id)
            cases.add_request(
                conn, message_id=sealed.message_id, case_id=case_id, action=action.value, at=now
            )
            return case, sealed.message_id, case.handling

        case, request_id, peer = await node.db.write(change)
        if not peer:  # a platform event taken before
            return case, request_id
        log.info(
            "case action",
            extra={"case_id": case_id, "peer": peer, "action": action.value, "request": request_id},
        )
        return case, request_id

    # -- inbound (inside the storing transaction) --------------------------------------------

    def validate_submit(self, message: Authenticated) -> None:
        submit = message.message.case_submit
        field = "body.case_submit"
        if not is_case_id(submit.case_id):
            raise _invalid(
                message,
                f"{field}.case_id",
                f"must be 1 to {MAX_CASE_ID_LENGTH} ASCII letters, digits and hyphens",
            )
        if not submit.case_id.startswith(f"{message.sender.code}-"):
            raise _invalid(message, f"{field}.case_id", "must start with the sender's code")
        matter = self._node.catalog.get(submit.matter_code)
        if matter is None:
            raise _invalid(
                message, f"{field}.matter_code", f"{self.me} does not handle this matter code"
            )
        try:
            parse_new_case(
                submit_body(submit, self.me),
                find_matter=self._node.catalog.get,
                me=message.sender.province,
            )
        except CaseInputError as error:
            raise _invalid(message, f"{field}.{error.field}", error.detail) from None

    def on_submit(self, conn: Connection, received: Received) -> None:
        message = received.message
        submit = message.message.case_submit
        if cases.get(conn, submit.case_id) is not None:
            raise Refusal(
                FaultCode.SEQUENCE_CONFLICT,
                f"case {submit.case_id} already exists here",
                field="body.case_submit.case_id",
                message_id=message.message_id,
                digest=message.digest,
            )
        matter = self._node.catalog.get(submit.matter_code)
        assert matter is not None, "validate_submit checked it"
        submitted_at = instant(submit.submitted_at)
        row = CaseRow(
            case_id=submit.case_id,
            role=Role.HANDLING.value,
            accepting=message.sender.province,
            handling=self.me,
            matter_code=submit.matter_code,
            mode=submit.mode,
            promised_days=matter.promised_days,
            submission=message.envelope,
            status=Status.SUBMITTED.value,
            applied=0,
            due_at=None,
            submitted_at=submitted_at,
            updated_at=received.received_at,
            concluded_at=None,
            evaluation_level=None,
            problem="",
            idempotency_key=None,
            request_digest=None,
        )
        cases.insert_case(conn, row)
        checks = [m for m in submit.materials if m.WhichOneof("source") == "certificate_id"]
        for material in checks:
            cases.add_certificate_check(
                conn,
                case_id=row.case_id,
                material=material.name,
                certificate_id=material.certificate_id,
                holder_code=material.holder_code or submit.applicant.code,
            )
        if checks:
            self._node.db.after_commit(self.checks.due)
        inbound = inbound_case(row, submit)
        self._ledger.tell_platform(conn, "case", row.case_id, inbound, received.received_at)
        deliver = delivered(row.case_id, received.receipt)
        self._ledger.apply(conn, row, deliver, evidence=received.receipt)
        log.info("case received", extra={"case_id": row.case_id, "peer": row.accepting})

    def validate_update(self, message: Authenticated) -> None:
        try:
            from_update(message.message.case_update)
        except (InvalidCaseField, IdentifierError) as error:
            raise _invalid(message, f"body.case_update.{error.field}", str(error)) from None

    def on_update(self, conn: Connection, received: Received) -> None:
        message = received.message
        update, request_id, due_at = from_update(message.message.case_update)
        case = self._case_of(conn, message, update.case_id, Role.ACCEPTING)
        try:
            self._ledger.offer(conn, case, update, request_id, due_at, message.envelope)
        except TransitionRefused as refusal:
            raise _refusal(message, refusal) from None

    def validate_action(self, message: Authenticated) -> None:
        try:
            from_action(message.message.case_action, 1)
        except (InvalidCaseField, IdentifierError) as error:
            raise _invalid(message, f"body.case_action.{error.field}", str(error)) from None

    def on_action(self, conn: Connection, received: Received) -> None:
        message = received.message
        action = message.message.case_action
        case = self._case_of(conn, message, action.case_id, Role.HANDLING)
        update = from_action(action, case.applied + 1)
        try:
            apply_update(Status(case.status), update)
        except TransitionRefused as refusal:
            raise _refusal(message, refusal) from None
        self._ledger.apply(
            conn,
            case,
            update,
            send=True,
            request=message.envelope,
            request_id=message.message_id,
        )
        log.info(
            "case action applied",
            extra={"case_id": case.case_id, "peer": case.accepting, "action": action.action},
        )

    # -- answers to what we sent (inside the transaction that settles it) ------------------

    def on_settled(
        self, conn: Connection, item: OutboxItem, settlement: Settlement, at: float
    ) -> None:
        from node.delivery.worker import Outcome

        if item.payload_type not in CASE_PAYLOADS:
            return
        if settlement.outcome is Outcome.DELIVERED and settlement.sent:
            # Both sides' histories hold the same signed form of each message: ours as sent.
            cases.resign(conn, item.correlation_id, held=item.envelope, sent=settlement.sent)
        if item.payload_type not in ("case_submit", "case_action"):
            return  # the only settlements that mean something for a case
        case = cases.get_for_change(conn, item.correlation_id)
        if case is None or case.role != Role.ACCEPTING.value:
            return
        if item.payload_type == "case_submit":
            if settlement.outcome is Outcome.DELIVERED:
                deliver = delivered(case.case_id, settlement.reply)
                self._ledger.offer(conn, case, deliver, "", None, settlement.reply)
            else:
                cases.set_problem(
                    conn,
                    case.case_id,
                    f"the handler refused the case: {settlement.code}: {settlement.reason}",
                    at,
                )
                log.error(
                    "handler refused a case",
                    extra={"case_id": case.case_id, "peer": case.handling, "code": settlement.code},
                )
        elif item.payload_type == "case_action" and settlement.outcome is not Outcome.DELIVERED:
            cases.answer_request(
                conn,
                item.message_id,
                state="refused",
                at=at,
                fault_code=settlement.code,
                fault_text=settlement.reason,
            )

    # -- the case a peer's message names ----------------------------------------------------

    def _case_of(
        self, conn: Connection, message: Authenticated, case_id: str, role: Role
    ) -> CaseRow:
        case = cases.get_for_change(conn, case_id)
        if case is None:
            raise Refusal(
                FaultCode.UNKNOWN_CASE,
                f"no case {case_id} is known here",
                field="case_id",
                message_id=message.message_id,
                digest=message.digest,
            )
        if case.role != role.value or case.peer != message.sender.province:
            raise Refusal(
                FaultCode.WRONG_SIDE,
                f"case is {case.status}; {message.sender.province} is not this case's "
                f"{'handling' if role is Role.ACCEPTING else 'accepting'} side",
                field="case_id",
                message_id=message.message_id,
                digest=message.digest,
            )
        return case


def new_case_id(province: str, now: float) -> str:
    """``<accepting GB/T 2260 code>-<yyyymmdd>-<16 hex>``: unique without coordination."""
    code = PROVINCES[province][0]
    day = format_time(now)[:10].replace("-", "")
    return f"{code}-{day}-{secrets.token_hex(8)}"


def _check_materials(checks: Sequence[cases.CertificateCheck]) -> None:
    """Refuse acceptance while a certificate material is unverified or rejected."""
    for check in checks:
        if check.state == "pending":
            raise CaseConflict(
                "material_check_pending",
                f"{check.material} is still being verified with its issuer; accept after it",
                field="materials",
            )
        if check.state == "rejected":
            raise CaseConflict(
                "material_rejected",
                f"{check.material} failed verification ({check.reason})",
                field="materials",
            )


def _reload(conn: Connection, case_id: str) -> CaseRow:
    case = cases.get(conn, case_id)
    assert case is not None
    return case


def _invalid(message: Authenticated, field: str, detail: str) -> Refusal:
    return Refusal(
        FaultCode.INVALID_PAYLOAD,
        detail,
        field=field,
        message_id=message.message_id,
        digest=message.digest,
    )


def _refusal(message: Authenticated, refusal: TransitionRefused) -> Refusal:
    code = _REFUSAL_FAULTS.get(refusal.code, FaultCode.INVALID_PAYLOAD)
    return Refusal(
        code,
        f"{refusal.detail} (current status {refusal.current.value}, attempted "
        f"{refusal.action.value})",
        field=refusal.field,
        message_id=message.message_id,
        digest=message.digest,
    )
