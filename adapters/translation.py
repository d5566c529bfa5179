"""Province-neutral translation steps, which each dialect parameterises with its own words.

The four dialects say the same things about the federation's values — a party and its
materials, a result, an evaluation, an inbound case, an update notice, an event, an
application, the federation's refusal of one, and the platform's receipts, a certificate
and its face (照面信息), a revocation, a matter — each in its own names, codes and formats.
The steps are written here once, as the methods of ``Translation``; a dialect
(``adapters/<province>/dialect.py``) declares its one ``Translation``: its field names
(``Names``), its code tables (``CodeTable``) and how it writes and reads instants, dates,
birth minutes, numbers and a notice's ``extra``. No I/O. Rules kept:

1. A record is read through the dialect's reader of one record (``adapters.records.Fields``:
   a JSON object, a form, an XML element), which hands out each field once, checked by
   kind, and refuses what is missing, unknown, of the wrong kind or left unread, naming the
   dialect's path. Every step reads a record's fields in one fixed order, so each dialect
   reports the same first fault of a record.
2. A code outside its table is refused with the reader's own error (``unknown_code``,
   ``unknown_label``), except a case or certificate status, which is ``unknown_status``. A
   code table maps one to one, so every value the federation has is written back as one code.
3. Writing gives an ordered ``dict`` in the dialect's names, with an optional value left out
   when it is absent (an acknowledgement not yet made is written as null where the
   translation says ``null``); reading what was written gives back the value written.
4. A material is an upload (its SHA-256) or a certificate (its identifier), never both; a
   listed revocation is of a revoked or suspended certificate; a certificate's face holds
   the fields its type (``node.certificates.model.TYPES``) names, written in the order the
   certificate holds them or, where the translation says so, in the type's order, and read
   in the type's order.
5. Sentences name fields, never values: these are names and ID numbers.
6. A refusal of an application carries its stable code, the kind of refusal that code is
   (``refusal_kind``: the applicant, the matter, a material, the record, other), written in
   the dialect's own codes, the field at fault as the dialect names it, and a sentence.
   Reading checks that the kind is the code's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from adapters.records import Fields
from node.certificates.model import TYPES, CertificateType, FieldSpec, TypeSpec
from node.platform.adapter import (
    Application,
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    PlatformEvent,
)

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class CodeTable(Mapping[K, V]):
    """A dialect's code table: its code → the federation's value, one to one (rule 2)."""

    def __init__(self, meanings: Mapping[K, V]) -> None:
        self._meanings = dict(meanings)
        self._codes = {value: code for code, value in self._meanings.items()}
        if len(self._codes) != len(self._meanings):
            raise ValueError("a code table maps its codes one to one")

    def __getitem__(self, code: K) -> V:
        return self._meanings[code]

    def __iter__(self) -> Iterator[K]:
        return iter(self._meanings)

    def __len__(self) -> int:
        return len(self._meanings)

    def __repr__(self) -> str:
        return f"CodeTable({self._meanings!r})"

    def code_of(self, value: V) -> K:
        """The dialect's code for one of the federation's values."""
        return self._codes[value]


CERTIFICATE_TYPES: Final[CodeTable[str, CertificateType]] = CodeTable(
    {spec.type_code: name for name, spec in TYPES.items()}
)
"""The national type code (21 characters) of each certificate type: every dialect's."""


REFUSAL_KINDS: Final = ("applicant", "matter", "material", "record", "other")
"""What a refusal of an application is about (rule 6), in the dialects' own codes."""
_KIND_OF_REFUSAL: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("invalid_applicant", "invalid_id_number", "invalid_credit_code", "invalid_code_type"),
        "applicant",
    ),
    **dict.fromkeys(
        ("unknown_matter", "wrong_handler", "handler_is_local", "invalid_mode"), "matter"
    ),
    **dict.fromkeys(
        (
            "missing_material",
            "unknown_material",
            "duplicate_material",
            "invalid_material",
            "invalid_digest",
            "invalid_certificate_id",
            "invalid_holder_code",
            "unknown_issuer",
            "certificate_type_mismatch",
        ),
        "material",
    ),
    # The record as the platform wrote it: incomplete, unreadable, or its number reused.
    **dict.fromkeys(
        (
            "missing_field",
            "invalid_field",
            "unknown_field",
            "unknown_code",
            "unknown_label",
            "unknown_status",
            "bad_time",
            "malformed_body",
            "not_utf8",
            # Text holding a control, format or invisible character (node.text).
            "invalid_text",
            "reference_reused",
        ),
        "record",
    ),
}
_REFUSAL_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


def refusal_kind(code: str) -> str:
    """The kind of refusal a stable code is (``REFUSAL_KINDS``); ``other`` for a code the
    table does not list."""
    return _KIND_OF_REFUSAL.get(code, "other")


F = TypeVar("F", bound=Fields)


@dataclass(frozen=True)
class Names:
    """A dialect's name for each field, by what the field holds (its README's vocabulary)."""

    # a party (the applicant) and a material
    party_name: str
    code_type: str
    """The holder code's type: 111 resident ID number, 001 unified social credit code."""
    code: str
    material_name: str
    certificate_id: str
    """A certificate's identifier, in a material, a result, a certificate and a revocation."""
    digest: str
    """An uploaded material's SHA-256."""
    # a result and an evaluation
    result_kind: str
    document_digest: str
    """A result document's SHA-256."""
    level: str
    comment: str
    # an inbound case
    case_id: str
    """The federation case id, also in notices, events and application records."""
    accepting: str
    matter_code: str
    mode: str
    applicant: str
    materials: str
    submitted_at: str
    # an update notice
    sequence: str
    action: str
    """Also an event's action."""
    by: str
    status: str
    notice_at: str
    reason: str
    """The reason or opinion, also an event's."""
    result: str
    evaluation: str
    due_at: str
    extra: str
    # an event
    event_id: str
    event_at: str
    # an application
    reference: str
    handler: str
    """The handling province, also a matter's."""
    entered_at: str
    acknowledged_at: str
    # a certificate
    type_code: str
    """The national type code, also of a matter's certificate material."""
    issuing_authority: str
    issuing_authority_code: str
    holder_name: str
    holder_code_type: str
    holder_code: str
    issued_on: str
    valid_from: str
    valid_until: str
    certificate_status: str
    face: str
    # a revocation (its certificate and status named as a certificate's)
    since: str
    revocation_reason: str
    # a matter (its code, handler and materials named as a case's)
    matter_name: str
    matter_name_en: str
    department: str
    modes: str
    material_kind: str
    promised_days: str
    # the federation's refusal of an application (rule 6)
    refusal_kind: str
    refusal_code: str
    refusal_field: str
    refusal_reason: str
    refused_at: str
    # the platform's receipts
    duplicate: str
    """Whether a delivery was already held (是否重复)."""
    type_name: str | None = None
    """The certificate type's Chinese name beside its code, where the dialect writes one."""


def read_optional(read: Callable[[F, str], T], fields: F, name: str) -> T | None:
    """``read``'s value of an optional field, or None when it is absent (marked read too)."""
    if not fields.has(name):
        fields.optional_text(name)
        return None
    return read(fields, name)


def read_certificate_type(fields: Fields, name: str) -> CertificateType:
    """A certificate type by its national type code (``CERTIFICATE_TYPES``)."""
    return fields.code(name, CERTIFICATE_TYPES)


def rename(field: str, names: Sequence[tuple[re.Pattern[str], str]]) -> str:
    """A field the engine names in its neutral form (``applicant.code``), renamed part by
    part as the dialect names it; what no pattern matches is kept."""
    for pattern, name in names:
        field = pattern.sub(name, field)
    return field


def refusal(status: int, read: Callable[[], tuple[str, str, str]]) -> DialectError:
    """A platform's refusal as a ``DialectError``: the code, sentence and field ``read``
    finds in its reply, or, when the reply is not in the dialect, one named by the status."""
    try:
        code, detail, field = read()
    except DialectError:
        return DialectError(f"http_{status}", f"the platform refused the request with {status}")
    return DialectError(code, f"the platform refused it ({status}): {detail}", field=field)


@dataclass(frozen=True)
class Translation(Generic[F]):
    """One dialect's words for the federation's values (names, code tables, formats) and
    the steps that translate between them, both ways (rules in the module docstring)."""

    names: Names
    statuses: CodeTable[Any, str]
    """Case statuses; one outside the table is ``unknown_status``."""
    actions: CodeTable[Any, str]
    roles: CodeTable[Any, str]
    modes: CodeTable[Any, str]
    provinces: CodeTable[Any, str]
    holder_code_types: CodeTable[Any, str]
    result_kinds: CodeTable[Any, str]
    material_kinds: CodeTable[Any, str]
    certificate_statuses: CodeTable[Any, str]
    """Certificate statuses; one outside the table is ``unknown_status``."""
    reasons: CodeTable[Any, str]
    sexes: CodeTable[Any, str]
    yes_no: CodeTable[Any, bool]
    refusal_kinds: CodeTable[Any, str]
    """The dialect's code of each of ``REFUSAL_KINDS``."""
    levels: CodeTable[Any, int] | None
    """Evaluation levels as codes, or None where the level is a number on the wire."""
    write_instant: Callable[[float], Any]
    """Epoch seconds as the dialect writes an instant."""
    read_instant: Callable[[F, str], float]
    write_date: Callable[[str], Any]
    """A calendar date (ISO ``yyyy-mm-dd``) as the dialect writes it."""
    read_date: Callable[[F, str], str]
    write_minute: Callable[[str], Any]
    """A face birth minute (``yyyy-mm-ddTHH:MM``, Beijing wall clock) as the dialect writes it."""
    read_minute: Callable[[F, str], str]
    write_number: Callable[[int], Any]
    """A whole number (an update's sequence, a matter's promised days) on the wire."""
    write_extra: Callable[[Mapping[str, Any]], Any]
    """A notice's ``extra``, carried unchanged."""
    read_extra: Callable[[F, str], dict[str, Any]]
    face_key: Callable[[FieldSpec], str]
    """The name of a face field in the dialect."""
    read_certificate_type: Callable[[F, str], CertificateType]
    long_term: str | None = None
    """How a certificate valid without end writes its end date (None: null, or absent)."""
    null: bool = False
    """Whether an application record writes an acknowledgement not yet made as null."""
    face_in_type_order: bool = False
    """Whether a certificate's face lists its fields in its type's order, or else in the
    order the certificate holds them (rule 4)."""

    # -- parties, materials, results and evaluations -----------------------------------------

    def party_to_dialect(self, party: Mapping[str, Any]) -> dict[str, str]:
        n = self.names
        return {
            n.party_name: party["name"],
            n.code_type: self.holder_code_types.code_of(party["code_type"]),
            n.code: party["code"],
        }

    def read_party(self, fields: F) -> dict[str, str]:
        n = self.names
        party = {
            "name": fields.text(n.party_name, max_length=100),
            "code_type": fields.code(n.code_type, self.holder_code_types),
            "code": fields.text(n.code, max_length=18),
        }
        fields.finish()
        return party

    def material_to_dialect(self, material: Mapping[str, Any]) -> dict[str, str]:
        n = self.names
        if "certificate_id" in material:
            return {n.material_name: material["name"], n.certificate_id: material["certificate_id"]}
        return {n.material_name: material["name"], n.digest: material["sha256"]}

    def read_material(self, fields: F) -> dict[str, str]:
        """An upload or a certificate, never both (rule 4)."""
        n = self.names
        name = fields.text(n.material_name, max_length=200)
        certificate_id = fields.optional_text(n.certificate_id, max_length=128)
        digest = fields.optional_text(n.digest, max_length=64)
        fields.finish()
        if certificate_id is not None and digest is None:
            return {"name": name, "certificate_id": certificate_id}
        if digest is not None and certificate_id is None:
            return {"name": name, "sha256": digest}
        raise DialectError(
            "missing_field" if certificate_id is None else "invalid_field",
            f"give exactly one of {n.digest} and {n.certificate_id}",
            field=fields.path(n.digest),
        )

    def _read_materials(self, fields: F) -> list[dict[str, str]]:
        return [
            self.read_material(item) for item in fields.objects(self.names.materials, max_items=50)
        ]

    def result_to_dialect(self, result: Mapping[str, Any]) -> dict[str, str]:
        n = self.names
        kind = self.result_kinds.code_of(result["kind"])
        if result["kind"] == "certificate":
            return {n.result_kind: kind, n.certificate_id: result["certificate_id"]}
        return {n.result_kind: kind, n.document_digest: result["document_sha256"]}

    def read_result(self, fields: F) -> dict[str, str]:
        n = self.names
        kind = fields.code(n.result_kind, self.result_kinds)
        if kind == "certificate":
            result = {"kind": kind, "certificate_id": fields.text(n.certificate_id, max_length=128)}
        else:
            digest = fields.text(n.document_digest, max_length=64)
            result = {"kind": kind, "document_sha256": digest}
        fields.finish()
        return result

    def evaluation_to_dialect(self, evaluation: Mapping[str, Any]) -> dict[str, Any]:
        n = self.names
        level = evaluation["level"]
        shape = {n.level: level if self.levels is None else self.levels.code_of(level)}
        if evaluation.get("comment"):
            shape[n.comment] = evaluation["comment"]
        return shape

    def read_evaluation(self, fields: F) -> dict[str, Any]:
        n = self.names
        if self.levels is None:
            level = fields.integer(n.level)
        else:
            level = fields.code(n.level, self.levels)
        evaluation: dict[str, Any] = {"level": level}
        comment = fields.optional_text(n.comment, max_length=500)
        if comment is not None:
            evaluation["comment"] = comment
        fields.finish()
        return evaluation

    # -- applications (entered at the platform) ----------------------------------------------

    def application_form(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A ``POST /v1/cases`` body as the citizen's form."""
        n = self.names
        return {
            n.matter_code: body["matter_code"],
            n.handler: self.provinces.code_of(body["handler"]),
            n.mode: self.modes.code_of(body["mode"]),
            n.applicant: self.party_to_dialect(body["applicant"]),
            n.materials: [self.material_to_dialect(material) for material in body["materials"]],
        }

    def read_application_form(self, fields: F) -> dict[str, Any]:
        """The ``POST /v1/cases`` body of a citizen's form; ``finish()`` is the caller's."""
        n = self.names
        return {
            "matter_code": fields.text(n.matter_code, max_length=64),
            "handler": fields.code(n.handler, self.provinces),
            "mode": fields.code(n.mode, self.modes),
            "applicant": self.read_party(fields.obj(n.applicant)),
            "materials": self._read_materials(fields),
        }

    def application_record(
        self,
        reference: str,
        body: Mapping[str, Any],
        submitted_at: float,
        case_id: str | None,
        acknowledged_at: float | None,
    ) -> dict[str, Any]:
        """One record of the applications feed: the form, its number and time, and the case
        it became once the node acknowledged it (rule 3)."""
        n = self.names
        record = {n.reference: reference, n.entered_at: self.write_instant(submitted_at)}
        record.update(self.application_form(body))
        if case_id is not None or self.null:
            record[n.case_id] = case_id
        if acknowledged_at is not None:
            record[n.acknowledged_at] = self.write_instant(acknowledged_at)
        elif self.null:
            record[n.acknowledged_at] = None
        return record

    def application_receipt(self, reference: str, submitted_at: float) -> dict[str, Any]:
        """What entering an application answers: its number, its time and its status."""
        n = self.names
        return {
            n.reference: reference,
            n.entered_at: self.write_instant(submitted_at),
            n.status: self.statuses.code_of("submitted"),
        }

    def acknowledgement(
        self, reference: str, case_id: str, acknowledged_at: float
    ) -> dict[str, Any]:
        """What the node's acknowledgement of an application answers."""
        n = self.names
        return {
            n.reference: reference,
            n.case_id: case_id,
            n.acknowledged_at: self.write_instant(acknowledged_at),
        }

    def read_application_record(self, fields: F) -> Application:
        n = self.names
        reference = fields.text(n.reference, max_length=64)
        self.read_instant(fields, n.entered_at)
        body = self.read_application_form(fields)
        fields.optional_text(n.case_id, max_length=128)
        read_optional(self.read_instant, fields, n.acknowledged_at)
        fields.finish()
        return Application(reference=reference, body=body)

    # -- the federation's refusal of an application (rule 6) --------------------------------

    def refusal_to_dialect(
        self, refusal: ApplicationRefusal, dialect_field: Callable[[str], str]
    ) -> dict[str, Any]:
        """A refusal as the node sends it; ``dialect_field`` names a field of the
        ``POST /v1/cases`` body in the dialect (a field already in it is sent as it is)."""
        n = self.names
        field = refusal.field if refusal.in_dialect else dialect_field(refusal.field)
        shape: dict[str, Any] = {
            n.refusal_kind: self.refusal_kinds.code_of(refusal_kind(refusal.code)),
            n.refusal_code: refusal.code,
        }
        if field:
            shape[n.refusal_field] = field
        shape[n.refusal_reason] = refusal.reason
        return shape

    def read_refusal(self, fields: F) -> ApplicationRefusal:
        """A refusal as the platform receives it, its field in the dialect's names; the kind
        must be the code's (rule 6)."""
        n = self.names
        kind = fields.code(n.refusal_kind, self.refusal_kinds)
        code = fields.text(n.refusal_code, max_length=64)
        if _REFUSAL_CODE.fullmatch(code) is None:
            raise DialectError(
                "invalid_field",
                "must be a stable code: a lower-case letter, then letters, digits and _",
                field=fields.path(n.refusal_code),
            )
        if kind != refusal_kind(code):
            wanted = self.refusal_kinds.code_of(refusal_kind(code))
            raise DialectError(
                "invalid_field",
                f"this refusal code is of kind {wanted}",
                field=fields.path(n.refusal_kind),
            )
        field = fields.optional_text(n.refusal_field, max_length=200) or ""
        reason = fields.text(n.refusal_reason, max_length=2000)
        fields.finish()
        return ApplicationRefusal(code, field, reason, in_dialect=True)

    def refusal_record(self, refusal: ApplicationRefusal, refused_at: float) -> dict[str, Any]:
        """A refusal the platform holds, as the applicant's view of the application shows it."""
        shape = self.refusal_to_dialect(refusal, lambda field: field)
        shape[self.names.refused_at] = self.write_instant(refused_at)
        return shape

    def refusal_receipt(
        self, reference: str, code: str, refused_at: float, *, duplicate: bool
    ) -> dict[str, Any]:
        """What the node's refusal of an application answers: the application, the code
        held, when, and whether the platform held that refusal already."""
        n = self.names
        return {
            n.reference: reference,
            n.refusal_code: code,
            n.refused_at: self.write_instant(refused_at),
            n.duplicate: self.yes_no.code_of(duplicate),
        }

    # -- events (the platform's people acted) ------------------------------------------------

    def event_record(
        self, event_id: str, case_id: str, body: Mapping[str, Any], created: float
    ) -> dict[str, Any]:
        """One record of the event feed from a ``POST /v1/cases/{id}/events`` body."""
        n = self.names
        record: dict[str, Any] = {
            n.event_id: event_id,
            n.case_id: case_id,
            n.action: self.actions.code_of(body["action"]),
            n.event_at: self.write_instant(created),
        }
        if body.get("reason"):
            record[n.reason] = body["reason"]
        if body.get("result") is not None:
            record[n.result] = self.result_to_dialect(body["result"])
        if "level" in body:
            record[n.evaluation] = self.evaluation_to_dialect(body)
        return record

    def read_event_record(self, fields: F) -> PlatformEvent:
        n = self.names
        event_id = fields.text(n.event_id, max_length=200)
        case_id = fields.text(n.case_id, max_length=128)
        body: dict[str, Any] = {"action": fields.code(n.action, self.actions)}
        self.read_instant(fields, n.event_at)
        reason = fields.optional_text(n.reason)
        if reason is not None:
            body["reason"] = reason
        result = fields.optional_obj(n.result)
        if result is not None:
            body["result"] = self.read_result(result)
        evaluation = fields.optional_obj(n.evaluation)
        if evaluation is not None:
            body.update(self.read_evaluation(evaluation))
        fields.finish()
        return PlatformEvent(event_id=event_id, case_id=case_id, body=body)

    # -- inbound cases and notices (the node delivers) ---------------------------------------

    def case_to_dialect(self, case: InboundCase) -> dict[str, Any]:
        n = self.names
        return {
            n.case_id: case.case_id,
            n.accepting: self.provinces.code_of(case.accepting),
            n.matter_code: case.matter_code,
            n.mode: self.modes.code_of(case.mode),
            n.applicant: self.party_to_dialect(case.applicant),
            n.materials: [self.material_to_dialect(material) for material in case.materials],
            n.submitted_at: self.write_instant(case.submitted_at),
        }

    def read_case(self, fields: F) -> InboundCase:
        n = self.names
        case = InboundCase(
            case_id=fields.text(n.case_id, max_length=128),
            accepting=fields.code(n.accepting, self.provinces),
            matter_code=fields.text(n.matter_code, max_length=64),
            mode=fields.code(n.mode, self.modes),
            applicant=self.read_party(fields.obj(n.applicant)),
            materials=self._read_materials(fields),
            submitted_at=self.read_instant(fields, n.submitted_at),
        )
        fields.finish()
        return case

    def delivery_receipt(
        self, case_id: str, sequence: int | None, *, duplicate: bool
    ) -> dict[str, Any]:
        """What a delivered case (``sequence`` None) or notice answers: what was delivered,
        and whether the platform held it already."""
        n = self.names
        receipt: dict[str, Any] = {n.case_id: case_id}
        if sequence is not None:
            receipt[n.sequence] = self.write_number(sequence)
        receipt[n.duplicate] = self.yes_no.code_of(duplicate)
        return receipt

    def notice_to_dialect(self, notice: CaseNotice) -> dict[str, Any]:
        n = self.names
        shape: dict[str, Any] = {
            n.case_id: notice.case_id,
            n.sequence: self.write_number(notice.sequence),
            n.action: self.actions.code_of(notice.action),
            n.by: self.roles.code_of(notice.by),
            n.status: self.statuses.code_of(notice.status),
            n.notice_at: self.write_instant(notice.at),
        }
        if notice.reason:
            shape[n.reason] = notice.reason
        if notice.result is not None:
            shape[n.result] = self.result_to_dialect(notice.result)
        if notice.evaluation is not None:
            shape[n.evaluation] = self.evaluation_to_dialect(notice.evaluation)
        if notice.due_at is not None:
            shape[n.due_at] = self.write_instant(notice.due_at)
        if notice.extra:
            shape[n.extra] = self.write_extra(notice.extra)
        return shape

    def read_notice(self, fields: F) -> CaseNotice:
        n = self.names
        case_id = fields.text(n.case_id, max_length=128)
        sequence = fields.integer(n.sequence)
        if sequence < 1:
            raise DialectError("invalid_field", "must be 1 or more", field=fields.path(n.sequence))
        action = fields.code(n.action, self.actions)
        by = fields.code(n.by, self.roles)
        status = fields.code(n.status, self.statuses, error="unknown_status")
        at = self.read_instant(fields, n.notice_at)
        reason = fields.optional_text(n.reason) or ""
        result = fields.optional_obj(n.result)
        evaluation = fields.optional_obj(n.evaluation)
        due_at = read_optional(self.read_instant, fields, n.due_at)
        extra = self.read_extra(fields, n.extra)
        fields.finish()
        return CaseNotice(
            case_id=case_id,
            sequence=sequence,
            action=action,
            by=by,
            status=status,
            at=at,
            reason=reason,
            result=None if result is None else self.read_result(result),
            evaluation=None if evaluation is None else self.read_evaluation(evaluation),
            due_at=due_at,
            extra=extra,
        )

    # -- certificates (电子证照) and revocations ---------------------------------------------

    def certificate_to_dialect(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A certificate in ``node.certificates.model.to_json`` form, in the dialect."""
        n = self.names
        spec = TYPES[data["type"]]
        shape: dict[str, Any] = {
            n.certificate_id: data["certificate_id"],
            n.type_code: spec.type_code,
        }
        if n.type_name is not None:
            shape[n.type_name] = spec.chinese_name
        until = data.get("valid_until")
        shape[n.issuing_authority] = data["issuing_authority"]
        shape[n.issuing_authority_code] = data["issuing_authority_code"]
        shape[n.holder_name] = data["holder_name"]
        shape[n.holder_code_type] = self.holder_code_types.code_of(data["holder_code_type"])
        shape[n.holder_code] = data["holder_code"]
        shape[n.issued_on] = self.write_date(data["issued_on"])
        shape[n.valid_from] = self.write_date(data["valid_from"])
        shape[n.valid_until] = self.long_term if until is None else self.write_date(until)
        shape[n.certificate_status] = self.certificate_statuses.code_of(data["status"])
        shape[n.face] = self._face_to_dialect(spec, data["fields"])
        return shape

    def _face_to_dialect(self, spec: TypeSpec, face: Mapping[str, str]) -> dict[str, Any]:
        if self.face_in_type_order:
            fields = [field for field in spec.fields if field.name in face]
        else:
            by_name = {field.name: field for field in spec.fields}
            fields = [by_name[name] for name in face]
        shape: dict[str, Any] = {}
        for field in fields:
            value: Any = face[field.name]
            if field.kind == "date":
                value = self.write_date(value)
            elif field.kind == "datetime":
                value = self.write_minute(value)
            elif field.kind == "sex":
                value = self.sexes.code_of(value)
            shape[self.face_key(field)] = value
        return shape

    def read_certificate(self, fields: F) -> dict[str, Any]:
        """The ``to_json`` form of a certificate (still to be checked by ``parse_certificate``)."""
        n = self.names
        certificate_id = fields.text(n.certificate_id, max_length=128)
        certificate_type = self.read_certificate_type(fields, n.type_code)
        spec = TYPES[certificate_type]
        if n.type_name is not None and fields.text(n.type_name, max_length=50) != spec.chinese_name:
            raise DialectError(
                "invalid_field",
                f"must be {spec.chinese_name}, the name of type code {n.type_code}",
                field=fields.path(n.type_name),
            )
        data: dict[str, Any] = {
            "certificate_id": certificate_id,
            "type": certificate_type,
            "issuing_authority": fields.text(n.issuing_authority, max_length=100),
            "issuing_authority_code": fields.text(n.issuing_authority_code, max_length=18),
            "holder_name": fields.text(n.holder_name, max_length=100),
            "holder_code_type": fields.code(n.holder_code_type, self.holder_code_types),
            "holder_code": fields.text(n.holder_code, max_length=18),
            "issued_on": self.read_date(fields, n.issued_on),
            "valid_from": self.read_date(fields, n.valid_from),
            "valid_until": self._read_valid_until(fields),
            "status": fields.code(
                n.certificate_status, self.certificate_statuses, error="unknown_status"
            ),
        }
        data["fields"] = self._read_face(fields.obj(n.face), spec.fields)
        fields.finish()
        return data

    def _read_valid_until(self, fields: F) -> str | None:
        name = self.names.valid_until
        if self.long_term is None:
            return read_optional(self.read_date, fields, name)
        if fields.text(name, max_length=64) == self.long_term:
            return None
        return self.read_date(fields, name)

    def _read_face(self, fields: F, specs: Sequence[FieldSpec]) -> dict[str, str]:
        face: dict[str, str] = {}
        for spec in specs:
            key = self.face_key(spec)
            if not fields.has(key):
                fields.optional_text(key)
                continue
            if spec.kind == "date":
                face[spec.name] = self.read_date(fields, key)
            elif spec.kind == "datetime":
                face[spec.name] = self.read_minute(fields, key)
            elif spec.kind == "sex":
                face[spec.name] = fields.code(key, self.sexes)
            else:
                face[spec.name] = fields.text(key, max_length=spec.max_length)
        fields.finish()
        return face

    def revocation_record(self, revocation: Mapping[str, Any]) -> dict[str, Any]:
        """A revoked or suspended certificate as the revocation list lists it."""
        n = self.names
        return {
            n.certificate_id: revocation["certificate_id"],
            n.certificate_status: self.certificate_statuses.code_of(revocation["status"]),
            n.since: self.write_instant(revocation["since"]),
            n.revocation_reason: self.reasons.code_of(revocation["reason"]),
        }

    def read_revocation(self, fields: F) -> dict[str, Any]:
        """``{"certificate_id", "status", "since" (epoch seconds), "reason"}`` of a listed
        certificate, which is revoked or suspended (rule 4)."""
        n = self.names
        certificate_id = fields.text(n.certificate_id, max_length=128)
        status = fields.code(
            n.certificate_status, self.certificate_statuses, error="unknown_status"
        )
        if status not in ("revoked", "suspended"):
            revoked = self.certificate_statuses.code_of("revoked")
            suspended = self.certificate_statuses.code_of("suspended")
            raise DialectError(
                "unknown_status",
                f"a listed certificate is revoked ({revoked}) or suspended ({suspended})",
                field=fields.path(n.certificate_status),
            )
        revocation = {
            "certificate_id": certificate_id,
            "status": status,
            "since": self.read_instant(fields, n.since),
            "reason": fields.code(n.revocation_reason, self.reasons),
        }
        fields.finish()
        return revocation

    # -- matters -----------------------------------------------------------------------------

    def matter_to_dialect(self, matter: Mapping[str, Any]) -> dict[str, Any]:
        """A matter in the catalog's JSON form as the matter list lists it."""
        n = self.names
        return {
            n.matter_code: matter["code"],
            n.matter_name: matter["name"],
            n.matter_name_en: matter["name_en"],
            n.handler: self.provinces.code_of(matter["handler"]),
            n.department: matter["department"],
            n.modes: [self.modes.code_of(mode) for mode in matter["modes"]],
            n.materials: [self._matter_material_to_dialect(m) for m in matter["materials"]],
            n.promised_days: self.write_number(matter["promised_days"]),
        }

    def _matter_material_to_dialect(self, material: Mapping[str, Any]) -> dict[str, Any]:
        n = self.names
        shape = {
            n.material_name: material["name"],
            n.material_kind: self.material_kinds.code_of(material["kind"]),
        }
        if material.get("certificate_type"):
            shape[n.type_code] = TYPES[material["certificate_type"]].type_code
        return shape

    def read_matter(self, fields: F) -> dict[str, Any]:
        """The catalog's JSON form of a listed matter (still to be checked by ``parse_catalog``)."""
        n = self.names
        modes = fields.codes(n.modes, self.modes)
        if not modes:
            raise DialectError(
                "missing_field", "must list at least one mode", field=fields.path(n.modes)
            )
        matter = {
            "code": fields.text(n.matter_code, max_length=64),
            "name": fields.text(n.matter_name, max_length=200),
            "name_en": fields.text(n.matter_name_en, max_length=200),
            "handler": fields.code(n.handler, self.provinces),
            "department": fields.text(n.department, max_length=200),
            "modes": modes,
            "materials": [self._read_matter_material(item) for item in fields.objects(n.materials)],
            "promised_days": fields.integer(n.promised_days),
        }
        fields.finish()
        return matter

    def _read_matter_material(self, fields: F) -> dict[str, Any]:
        n = self.names
        material: dict[str, Any] = {
            "name": fields.text(n.material_name, max_length=200),
            "kind": fields.code(n.material_kind, self.material_kinds),
        }
        if material["kind"] == "certificate":
            material["certificate_type"] = self.read_certificate_type(fields, n.type_code)
        fields.finish()
        return material
