"""The certificate materials of cases, checked with their issuers (电子证照核验).

Two checks, both through the certificate service's ``verify`` with a typed question:
- accepting side, before a new case is stored: an applicant who hands in a certificate as
  their own must be its holder, by name (``check_applicant``);
- handling side, as cases arrive: every certificate material is verified; one that is not
  valid rejects the case (不予受理) through the lifecycle (``run``), one whose issuer cannot
  answer now stays pending and is tried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from node.cases.lifecycle import Action, CaseUpdate, Role
from node.cases.submission import CaseInputError, NewCase, applicant_holds
from node.cases.wire import exact, submitted
from node.certificates.verification import VerificationRefused, VerifyQuestion
from node.store import cases
from node.store.cases import CaseRow
from node.store.connection import Connection

if TYPE_CHECKING:
    from node.cases.exchange import CaseNode

log = logging.getLogger(__name__)

CHECK_RETRY = 2.0
"""How often pending certificate checks are retried when their issuer did not answer."""

Apply = Callable[[Connection, CaseRow, CaseUpdate], None]


class CertificateChecks:
    def __init__(self, node: CaseNode, *, apply: Callable[..., None]) -> None:
        self._node = node
        self._apply = apply
        """The case ledger's way to apply (and send) an update: a failed check rejects."""
        self._due = asyncio.Event()
        self._due.set()  # whatever a crash left pending

    def due(self) -> None:
        """New checks are committed: run them now rather than at the next retry."""
        self._due.set()

    async def check_applicant(self, case: NewCase) -> None:
        """The applicant is the holder of the certificates they hand in as their own: each
        such material's issuer is asked whether the applicant's name is the name on it
        (never disclosing it), before anything is stored or handed off; a certificate in
        another name, or another holder's, is ``applicant_mismatch``.

        An issuer that cannot answer now does not hold the case up, and any other refusal
        (not found, revoked) is not decided here: the handler checks every certificate
        material again, the name included, before it can accept."""
        for index, material in enumerate(case.materials):
            if material.certificate_id is None or not applicant_holds(material, case):
                continue
            question = VerifyQuestion(
                certificate_id=material.certificate_id,
                holder_code=case.applicant.code,
                purpose=case.matter.code,
                requester=case.matter.department,
                holder_name=case.applicant.name,
            )
            certificates = self._node.certificates
            try:
                answer = await certificates.verify(certificates.request(question))
            except VerificationRefused as refusal:
                if refusal.code == "holder_mismatch":
                    raise CaseInputError(
                        "applicant_mismatch",
                        f"materials[{index}].certificate_id",
                        f"the applicant is not the holder of {material.name}, which they hand "
                        "in as their own",
                    ) from None
                continue
            if answer.holder_name_matches is False:
                raise CaseInputError(
                    "applicant_mismatch",
                    "applicant.name",
                    f"is not the name on materials[{index}] ({material.name}), which the "
                    "applicant hands in as their own",
                )

    async def run(self) -> None:
        """Verify the certificate materials of the cases this node handles, as they arrive.

        A material whose certificate is not valid, or that the issuer refuses to attest, is
        rejected with its reason, and the case with it (不予受理): the applicant uploads
        nothing for such a material, so the formal review cannot pass. So is one whose type
        this node's manifest policy does not let it ask for with a matter as the purpose
        (``certificate_not_permitted``): ``verify`` refuses it here, before anything is
        sent, and the governance decision stands until a new manifest changes it. A check
        that cannot reach the issuer stays pending and is tried again.
        """
        while True:
            try:
                async with asyncio.timeout(CHECK_RETRY):
                    await self._due.wait()
            except TimeoutError:
                pass
            self._due.clear()
            for check in cases.certificate_checks(self._node.db.reader(), pending_only=True):
                await self._check(check)

    async def _check(self, check: cases.CertificateCheck) -> None:
        node = self._node
        case = cases.get(node.db.reader(), check.case_id)
        if case is None:
            return
        matter = node.catalog.get(case.matter_code)
        applicant = submitted(case).applicant
        question = VerifyQuestion(
            certificate_id=check.certificate_id,
            holder_code=check.holder_code,
            purpose=case.matter_code,
            requester=matter.department if matter else "",
            holder_name=applicant.name if check.holder_code == applicant.code else "",
        )
        certificates = node.certificates
        try:
            answer = await certificates.verify(certificates.request(question))
        except VerificationRefused as refusal:
            if refusal.retry_later:
                log.warning(
                    "certificate check postponed",
                    extra={"case_id": case.case_id, "code": refusal.code},
                )
                return
            state, status, reason, attestation = (
                "rejected",
                "",
                f"{refusal.code}: {refusal.detail}",
                "",
            )
        else:
            status = answer.status
            attestation = answer.attestation
            state = "verified" if status == "valid" else "rejected"
            reason = "" if state == "verified" else f"the certificate is {status}"
            if answer.holder_name_matches is False:
                state, reason = "rejected", "applicant_mismatch: the applicant's name is not on it"
        now = exact(node.clock())

        def record(conn: Connection) -> None:
            cases.settle_certificate_check(
                conn,
                case_id=check.case_id,
                material=check.material,
                state=state,
                status=status,
                reason=reason,
                attestation=attestation,
                at=now,
            )
            current = cases.get_for_change(conn, check.case_id)
            if state != "rejected" or current is None or current.status != "delivered":
                return
            update = CaseUpdate(
                case_id=current.case_id,
                sequence=current.applied + 1,
                action=Action.REJECT,
                by=Role.HANDLING,
                at=now,
                reason=f"电子证照核验未通过：{check.material}（{reason}）",
            )
            self._apply(conn, current, update, send=True)

        await node.db.write(record)
        log.info(
            "certificate material checked",
            extra={"case_id": case.case_id, "material_state": state, "status": status},
        )
