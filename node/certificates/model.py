"""Electronic certificates (电子证照): the seven types of Yangtze Delta mutual recognition.

A ``Certificate`` is the metadata every implementation carries (DOMAIN.md "Metadata") plus
the type's face fields (照面信息). Construction checks everything, so a ``Certificate`` in
hand is always valid; ``parse_certificate`` builds one from a JSON-like dict and
``to_json`` gives that dict back. Rules kept:

1. ``TYPES`` is the one table of types (kept in ``certificate_types``, re-exported here):
   stable name, Chinese name (from the matter catalog's ``CERTIFICATE_TYPES``), national
   type code, the holder-code types allowed (``111`` resident ID number, ``001`` unified
   social credit code) and the face fields, each with its Chinese label, kind and whether it
   is required. Field names never change meaning; new fields are appended (presentations
   refer to fields by position).
2. The identifier's type code must be the type's code (``type_mismatch``). The type codes
   here are made up in the national form (a ministry's credit code + a three-digit
   sequence), as the matter catalog's credit codes are; they are not the real ones.
3. The issuing province comes from the identifier (``issuer_province``); a certificate
   issued outside the federation is ``unknown_issuer``. When the identifier's issuer code is
   a credit code it is the issuing authority's code; when it is an area code (one Anhui
   system), the authority's code must at least lie in the same province.
4. The holder-code type must be one the type allows (a business licence is held by a
   company, ``001``; a vehicle licence by a person or a company; every other type by a
   person, ``111``); the code is checked by ``validate_holder_code``.
5. Face fields: every required field present, none unknown, each value checked by its kind
   and kept in canonical text (dates ``YYYY-MM-DD``, ID numbers upper case, free text in
   Unicode normal form C). Free text (names, authorities, addresses) is judged by
   ``node.text.clean_text``: no control, format or invisible characters (``invalid_text``).
   The face's issuing authority (签发机关, 登记机关) and validity period (有效期限) are the
   certificate's own ``issuing_authority``, ``valid_from`` and ``valid_until``, not repeated
   in ``fields``; they are disclosable under those names (``COMMON_FIELDS``).
6. The face must name the holder: the holder's name and code equal one of the type's
   holder bindings (the card holder's name and ID number, either spouse, either parent of a
   newborn, the vehicle owner's name). A face ID number agrees with the face's birth date
   and sex (GB 11643: characters 7-14, and an odd 17th digit for men).
7. Dates are real ISO dates; ``valid_until`` is ``None`` for a long-term (长期) certificate
   and otherwise not before ``valid_from`` or ``issued_on``.
8. ``effective_status``: revoked and suspended stand; a certificate stored as valid is
   expired the day after ``valid_until``. Dates are China Standard Time (``china_date``).
9. Every refusal is a ``CertificateError`` with a stable ``code``, the ``field`` at fault
   and a sentence that starts with that field. Sentences never repeat values: faces hold
   names and ID numbers, and errors end up in logs and problem documents. Identifier
   refusals keep ``node.identifiers``' codes (``invalid_id_number`` …).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final, Literal

from node.certificates.certificate_types import (
    COMMON_FIELDS,
    MAX_TEXT_LENGTH,
    TYPES,
    FieldSpec,
    HolderCodeType,
    TypeSpec,
    disclosable_fields,
    field_label,
    is_certificate_type,
)
from node.identifiers import (
    CODE_TYPE_CREDIT_CODE,
    CODE_TYPE_ID_NUMBER,
    CertificateId,
    IdentifierError,
    IdentifierErrorCode,
    parse_certificate_id,
    province_of_division,
    validate_credit_code,
    validate_holder_code,
    validate_id_number,
)
from node.identifiers import issuer_province as identifier_province
from node.text import TextError, clean_text
from node.vocabulary import CertificateType, Refused

__all__ = [
    "COMMON_FIELDS",
    "TYPES",
    "Certificate",
    "CertificateError",
    "CertificateStatus",
    "CertificateType",
    "FieldSpec",
    "TypeSpec",
    "check_holder",
    "china_date",
    "disclosable_fields",
    "effective_status",
    "field_label",
    "is_certificate_type",
    "parse_certificate",
    "to_json",
]

CertificateErrorCode = (
    Literal[
        "unknown_type",
        "type_mismatch",
        "holder_code_type_not_allowed",
        "holder_mismatch",
        "missing_field",
        "unknown_field",
        "invalid_field",
        "invalid_date",
        "invalid_status",
        "inconsistent_field",
        "issuer_mismatch",
        "invalid_text",
    ]
    | IdentifierErrorCode
)

CHINA_STANDARD_TIME: Final = timezone(timedelta(hours=8), "CST")
"""Certificate dates are calendar dates in Beijing time (UTC+8, no daylight saving)."""


_COMMON_NAMES: Final = frozenset(spec.name for spec in COMMON_FIELDS)


class CertificateStatus(enum.Enum):
    """The canonical status set; provinces' own labels are mapped to it by their adapters."""

    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


class CertificateError(Refused, ValueError):
    """A certificate was refused.

    ``code`` is stable and machine-readable; ``field`` names the input at fault
    (``fields.id_number``); ``detail`` (also ``str(error)``) starts with that field and
    never contains the refused value.
    """

    def __init__(self, code: CertificateErrorCode, field: str, sentence: str) -> None:
        super().__init__(code, f"{field}: {sentence}", field=field)
        self.code: CertificateErrorCode = code

    @classmethod
    def from_identifier(cls, error: IdentifierError) -> CertificateError:
        """The same refusal, with ``node.identifiers``' code and field kept."""
        return cls(error.code, error.field, error.detail.removeprefix(f"{error.field}: "))


def china_date(epoch: float) -> date:
    """The calendar date in Beijing at ``epoch`` seconds."""
    return datetime.fromtimestamp(epoch, CHINA_STANDARD_TIME).date()


# --- the certificate ------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """One electronic certificate; always valid (construction checks rules 2-7)."""

    certificate_id: CertificateId
    type: CertificateType
    issuing_authority: str
    """颁发机构: the authority's name as printed (签发机关, 登记机关 …)."""
    issuing_authority_code: str
    """The issuing authority's unified social credit code."""
    holder_name: str
    holder_code_type: HolderCodeType
    holder_code: str
    """Canonical (upper case); checked by its type."""
    issued_on: date
    valid_from: date
    valid_until: date | None
    """None for a long-term (长期) certificate."""
    status: CertificateStatus
    """As stored by the issuer; ``effective_status`` adds expiry."""
    fields: Mapping[str, str] = field(hash=False)
    """Face fields by name, canonical text; kept read-only (and left out of the hash)."""

    def __post_init__(self) -> None:
        if not is_certificate_type(self.type):
            raise CertificateError(
                "unknown_type", "type", f"not a certificate type (one of {', '.join(TYPES)})"
            )
        spec = TYPES[self.type]
        self._check_identifier(spec)
        for name in ("issuing_authority", "holder_name"):
            object.__setattr__(self, name, _text(getattr(self, name), name, MAX_TEXT_LENGTH))
        object.__setattr__(self, "holder_code", self._checked_holder_code(spec))
        self._check_dates()
        if not isinstance(self.status, CertificateStatus):
            raise CertificateError("invalid_status", "status", "must be a CertificateStatus")
        if not isinstance(self.fields, Mapping):
            raise CertificateError("invalid_field", "fields", "must be a mapping of face fields")
        object.__setattr__(self, "fields", MappingProxyType(_checked_fields(spec, self.fields)))
        self._check_identities(spec)
        self._check_holder_binding(spec)

    @property
    def issuer_province(self) -> str:
        """The federation province that issued the certificate (from its identifier)."""
        province = self.certificate_id.issuer_province
        assert province is not None  # checked at construction
        return province

    @property
    def spec(self) -> TypeSpec:
        return TYPES[self.type]

    def disclosable_values(self) -> dict[str, str | None]:
        """Every disclosable field's value, in ``disclosable_fields`` order; None = absent/长期."""
        values: dict[str, str | None] = {
            name: self.fields.get(name) for name in self.spec.field_names
        }
        values["issuing_authority"] = self.issuing_authority
        values["issued_on"] = self.issued_on.isoformat()
        values["valid_from"] = self.valid_from.isoformat()
        values["valid_until"] = None if self.valid_until is None else self.valid_until.isoformat()
        return values

    def _check_identifier(self, spec: TypeSpec) -> None:
        cert_id = self.certificate_id
        if not isinstance(cert_id, CertificateId):
            raise CertificateError(
                "invalid_certificate_id", "certificate_id", "must be a CertificateId"
            )
        if cert_id.type_code != spec.type_code:
            raise CertificateError(
                "type_mismatch",
                "certificate_id",
                f"the identifier's type code is not the type code of {self.type} "
                f"({spec.type_code})",
            )
        try:
            province = identifier_province(cert_id)
            authority = validate_credit_code(
                self.issuing_authority_code, field="issuing_authority_code"
            )
        except IdentifierError as error:
            raise CertificateError.from_identifier(error) from None
        object.__setattr__(self, "issuing_authority_code", authority)
        if cert_id.issuer_code_kind == "credit_code":
            if authority != cert_id.issuer_code:
                raise CertificateError(
                    "inconsistent_field",
                    "issuing_authority_code",
                    "is not the issuer code in the certificate identifier",
                )
        elif province_of_division(authority[2:8]) != province:
            raise CertificateError(
                "inconsistent_field",
                "issuing_authority_code",
                f"the authority is not in {province}, where the identifier says the "
                "certificate was issued",
            )

    def _checked_holder_code(self, spec: TypeSpec) -> str:
        code_type = self.holder_code_type
        if code_type in (CODE_TYPE_ID_NUMBER, CODE_TYPE_CREDIT_CODE) and (
            code_type not in spec.holder_code_types
        ):
            allowed = " or ".join(repr(allowed) for allowed in spec.holder_code_types)
            raise CertificateError(
                "holder_code_type_not_allowed",
                "holder_code_type",
                f"a {self.type} is held under holder code type {allowed}, not {code_type!r}",
            )
        try:
            return validate_holder_code(
                code_type, self.holder_code, field="holder_code", type_field="holder_code_type"
            )
        except IdentifierError as error:
            raise CertificateError.from_identifier(error) from None

    def _check_dates(self) -> None:
        for name in ("issued_on", "valid_from"):
            if not _is_date(getattr(self, name)):
                raise CertificateError("invalid_date", name, "must be a date")
        until = self.valid_until
        if until is None:
            return
        if not _is_date(until):
            raise CertificateError("invalid_date", "valid_until", "must be a date or None (长期)")
        if until < self.valid_from:
            raise CertificateError("invalid_date", "valid_until", "is before valid_from")
        if until < self.issued_on:
            raise CertificateError("invalid_date", "valid_until", "is before issued_on")

    def _check_identities(self, spec: TypeSpec) -> None:
        for number_field, birth_field, sex_field in spec.identity_checks:
            number = self.fields[number_field]
            if self.fields[birth_field].replace("-", "") != number[6:14]:
                raise CertificateError(
                    "inconsistent_field",
                    f"fields.{birth_field}",
                    f"is not the birth date in fields.{number_field}",
                )
            sex = "male" if int(number[16]) % 2 else "female"
            if self.fields[sex_field] != sex:
                raise CertificateError(
                    "inconsistent_field",
                    f"fields.{sex_field}",
                    f"does not agree with the 17th character of fields.{number_field}",
                )

    def _check_holder_binding(self, spec: TypeSpec) -> None:
        by_code = [
            (name_field, code_field)
            for name_field, code_field in spec.holder_bindings
            if code_field is None or self.fields.get(code_field) == self.holder_code
        ]
        if not by_code:
            faces = " or ".join(f"fields.{code}" for _, code in spec.holder_bindings if code)
            raise CertificateError(
                "inconsistent_field", "holder_code", f"is not the number in {faces}"
            )
        if not any(self.fields.get(name_field) == self.holder_name for name_field, _ in by_code):
            faces = " or ".join(f"fields.{name}" for name, _ in by_code)
            raise CertificateError(
                "inconsistent_field", "holder_name", f"is not the name in {faces}"
            )


def effective_status(certificate: Certificate, today: date) -> CertificateStatus:
    """The status to report on ``today``: a valid certificate past ``valid_until`` is expired."""
    if (
        certificate.status is CertificateStatus.VALID
        and certificate.valid_until is not None
        and today > certificate.valid_until
    ):
        return CertificateStatus.EXPIRED
    return certificate.status


def check_holder(
    certificate: Certificate, holder_code: object, *, field: str = "holder_code"
) -> None:
    """Refuse a request whose holder code is malformed or is not the certificate's holder's.

    The code is checked by the certificate's holder-code type first, so a typo is reported
    as a bad check character rather than as someone else's certificate.
    """
    if not isinstance(holder_code, str):
        raise CertificateError("holder_mismatch", field, "must be a string")
    try:
        code = validate_holder_code(certificate.holder_code_type, holder_code, field=field)
    except IdentifierError as error:
        raise CertificateError.from_identifier(error) from None
    if code != certificate.holder_code:
        raise CertificateError(
            "holder_mismatch", field, "is not the holder of the requested certificate"
        )


_NAME_DOTS = str.maketrans({"•": "·", "‧": "·", "・": "·", "．": "·", ".": "·"})


def same_name(given: str, on_certificate: str) -> bool:
    """Whether ``given`` is the name ``on_certificate`` as people write it: compatibility
    forms (full-width letters) folded, spaces dropped, the middle dots of minority and
    foreign names (买买提·艾力) read as one, Latin letters without case."""

    def canonical(name: str) -> str:
        folded = unicodedata.normalize("NFKC", name).translate(_NAME_DOTS)
        return "".join(folded.split()).casefold()

    return bool(given.strip()) and canonical(given) == canonical(on_certificate)


# --- JSON -----------------------------------------------------------------------------------

_REQUIRED_KEYS: Final = (
    "certificate_id", "type", "issuing_authority", "issuing_authority_code", "holder_name",
    "holder_code_type", "holder_code", "issued_on", "valid_from", "status", "fields",
)  # fmt: skip
_OPTIONAL_KEYS: Final = ("valid_until", "issuer_province")
_DATE_TEXT: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_TEXT: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")


def parse_certificate(data: object) -> Certificate:
    """Build a ``Certificate`` from its JSON form (as ``to_json`` writes it), or refuse it.

    ``valid_until`` may be null or absent (长期); ``issuer_province``, if present, must be
    the province the identifier names.
    """
    if not isinstance(data, dict):
        raise CertificateError("invalid_field", "certificate", "must be a JSON object")
    for key in data:
        if key not in _REQUIRED_KEYS and key not in _OPTIONAL_KEYS:
            raise CertificateError("unknown_field", str(key)[:60], "is not a certificate field")
    for key in _REQUIRED_KEYS:
        if key not in data:
            raise CertificateError("missing_field", key, "is required")
    certificate_type = data["type"]
    if not is_certificate_type(certificate_type):
        raise CertificateError(
            "unknown_type", "type", f"not a certificate type (one of {', '.join(TYPES)})"
        )
    try:
        cert_id = parse_certificate_id(_string(data, "certificate_id"))
        province = identifier_province(cert_id)
    except IdentifierError as error:
        raise CertificateError.from_identifier(error) from None
    if "issuer_province" in data and data["issuer_province"] != province:
        raise CertificateError(
            "issuer_mismatch",
            "issuer_province",
            f"the certificate identifier says the issuer is in {province}",
        )
    status_text = _string(data, "status")
    try:
        status = CertificateStatus(status_text)
    except ValueError:
        choices = ", ".join(status.value for status in CertificateStatus)
        raise CertificateError("invalid_status", "status", f"must be one of {choices}") from None
    until = data.get("valid_until")
    face = data["fields"]
    if not isinstance(face, dict):
        raise CertificateError("invalid_field", "fields", "must be a JSON object")
    code_type = _string(data, "holder_code_type")
    return Certificate(
        certificate_id=cert_id,
        type=certificate_type,
        issuing_authority=_string(data, "issuing_authority"),
        issuing_authority_code=_string(data, "issuing_authority_code"),
        holder_name=_string(data, "holder_name"),
        holder_code_type=code_type,  # type: ignore[arg-type]  # checked at construction
        holder_code=_string(data, "holder_code"),
        issued_on=_date(data["issued_on"], "issued_on"),
        valid_from=_date(data["valid_from"], "valid_from"),
        valid_until=None if until is None else _date(until, "valid_until"),
        status=status,
        fields=face,
    )


def to_json(certificate: Certificate) -> dict[str, Any]:
    """The certificate's JSON form; ``parse_certificate`` reads it back to an equal one."""
    return {
        "certificate_id": str(certificate.certificate_id),
        "type": certificate.type,
        "issuer_province": certificate.issuer_province,
        "issuing_authority": certificate.issuing_authority,
        "issuing_authority_code": certificate.issuing_authority_code,
        "holder_name": certificate.holder_name,
        "holder_code_type": certificate.holder_code_type,
        "holder_code": certificate.holder_code,
        "issued_on": certificate.issued_on.isoformat(),
        "valid_from": certificate.valid_from.isoformat(),
        "valid_until": (
            None if certificate.valid_until is None else certificate.valid_until.isoformat()
        ),
        "status": certificate.status.value,
        "fields": dict(certificate.fields),
    }


# --- field checks ---------------------------------------------------------------------------

_VEHICLE_CLASS: Final = re.compile(r"A[1-3]|B[12]|C[1-6]|[DEFMNP]")
# 省、自治区、直辖市 abbreviations, the issuing office's letter, then five characters (six
# for new-energy plates); I and O are never used in the serial.
_PLATE: Final = re.compile(
    "[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][A-HJ-NP-Z0-9]{5,6}"
)
_VIN_VALUES: Final = {
    **{str(digit): digit for digit in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def _checked_fields(spec: TypeSpec, face: Mapping[Any, object]) -> dict[str, str]:
    for key in face:
        if not isinstance(key, str) or spec.field_spec(key) is None:
            shown = str(key)[:60]
            hint = " (it is certificate metadata)" if shown in _COMMON_NAMES else ""
            raise CertificateError(
                "unknown_field", f"fields.{shown}", f"is not a face field of {spec.name}{hint}"
            )
    checked: dict[str, str] = {}
    for field_spec in spec.fields:
        path = f"fields.{field_spec.name}"
        if field_spec.name not in face:
            if field_spec.required:
                raise CertificateError("missing_field", path, f"is required on a {spec.name}")
            continue
        checked[field_spec.name] = _field_value(field_spec, face[field_spec.name], path)
    return checked


def _field_value(spec: FieldSpec, value: object, path: str) -> str:
    if not isinstance(value, str):
        raise CertificateError("invalid_field", path, "must be a string")
    try:
        if spec.kind == "id_number":
            return validate_id_number(value, field=path)
        if spec.kind == "credit_code":
            return validate_credit_code(value, field=path)
    except IdentifierError as error:
        raise CertificateError.from_identifier(error) from None
    if spec.kind == "text":
        return _text(value, path, spec.max_length)
    if spec.kind == "date":
        return _date(value, path).isoformat()
    if spec.kind == "datetime":
        return _datetime(value, path)
    if spec.kind == "sex":
        if value not in ("male", "female"):
            raise CertificateError("invalid_field", path, "must be 'male' (男) or 'female' (女)")
        return value
    if spec.kind == "vehicle_classes":
        return _vehicle_classes(value, path)
    if spec.kind == "plate_number":
        if not _PLATE.fullmatch(value):
            raise CertificateError(
                "invalid_field",
                path,
                "is not a plate number (province abbreviation, office letter, 5 or 6 "
                "letters and digits without I or O)",
            )
        return value
    return _vin(value, path)


def _text(value: object, path: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise CertificateError("invalid_field", path, "must be a string")
    if not value.strip():
        raise CertificateError("invalid_field", path, "must not be empty")
    if value != value.strip():
        raise CertificateError("invalid_field", path, "must not start or end with white space")
    try:
        text = clean_text(value, field=path)
    except TextError as error:
        raise CertificateError("invalid_text", path, error.sentence) from None
    if len(text) > max_length:
        raise CertificateError(
            "invalid_field", path, f"has {len(text)} characters; at most {max_length} are allowed"
        )
    return text


def _string(data: Mapping[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise CertificateError("invalid_field", key, "must be a string")
    return value


def _is_date(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _date(value: object, path: str) -> date:
    # date.fromisoformat also takes 20240101 and 2024-W01-1; one canonical form is kept.
    if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
        raise CertificateError("invalid_date", path, "must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CertificateError("invalid_date", path, "is not a real date") from None


def _datetime(value: str, path: str) -> str:
    if not _DATETIME_TEXT.fullmatch(value):
        raise CertificateError(
            "invalid_date", path, "must be a Beijing-time minute written YYYY-MM-DDTHH:MM"
        )
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise CertificateError("invalid_date", path, "is not a real date and time") from None
    return value


def _vehicle_classes(value: str, path: str) -> str:
    classes = _VEHICLE_CLASS.findall(value)
    if not classes or "".join(classes) != value:
        raise CertificateError(
            "invalid_field",
            path,
            "must be driving-licence classes such as C1 or A2D "
            "(A1-A3, B1, B2, C1-C6, D, E, F, M, N, P)",
        )
    if len(set(classes)) != len(classes):
        raise CertificateError("invalid_field", path, "lists a vehicle class twice")
    return value


def _vin(value: str, path: str) -> str:
    """A vehicle identification number with its GB 16735 (ISO 3779) check character."""
    vin = value.upper()
    if len(vin) != 17 or any(char not in _VIN_VALUES for char in vin):
        raise CertificateError(
            "invalid_field",
            path,
            "must be 17 letters and digits without I, O or Q (a vehicle identification number)",
        )
    remainder = sum(_VIN_VALUES[char] * w for char, w in zip(vin, _VIN_WEIGHTS, strict=True)) % 11
    expected = "X" if remainder == 10 else str(remainder)
    if vin[8] != expected:
        raise CertificateError(
            "invalid_field",
            path,
            f"wrong check character {vin[8]} (expected {expected}) in the 9th position",
        )
    return vin
