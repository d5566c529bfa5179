"""A new case as the accepting side's platform submits it, checked against the matter.

Rules kept here:
1. The matter is named by code and must be in the federated catalog; the named handler must
   be the province that announced it, and must not be this node's own province (a case
   handled where it was accepted is not cross-province).
2. The mode is one of the matter's modes; the matter's first mode when none is given.
3. The applicant is a person (code type ``111``, resident ID number, GB 11643 check digit
   and birth date) or an organisation (``001``, unified social credit code, GB 32100 check
   character), with a name.
4. The applicant's name and every material's name are free text, judged by
   ``node.text.clean_text`` (``invalid_text``: no control, format or invisible characters)
   and kept in Unicode normal form C. (A peer's submission reaches this check with its
   text already judged, unchanged, by the receiver's checks.)
5. Every material the matter requires is supplied exactly once, by its catalog name: an
   upload by the lower-case hex SHA-256 of the file; a certificate material either by a
   certificate identifier (免于提交: the handler fetches it by mutual recognition) or, when
   the applicant has no electronic certificate, by the digest of an uploaded copy. A name
   the matter does not list is refused.
6. Refusals raise ``CaseInputError`` with a stable code and the field at fault; the sentence
   never repeats the refused identifier (it may be personal data).

Pure and synchronous: the same function checks a body from the REST API and a submission
arriving from a peer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from node.cases.catalog import Matter, MatterLookup
from node.certificates.model import TYPES
from node.identifiers import IdentifierError, parse_certificate_id, validate_holder_code
from node.text import TextError, clean_text

MAX_NAME_LENGTH: Final = 100
MAX_MATERIALS: Final = 50
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_FIELDS: Final = frozenset({"matter_code", "handler", "mode", "applicant", "materials"})
_APPLICANT_FIELDS: Final = frozenset({"name", "code_type", "code"})
_MATERIAL_FIELDS: Final = frozenset({"name", "sha256", "certificate_id", "holder_code"})


class CaseInputError(ValueError):
    """A submitted case was refused; ``code`` is stable, ``field`` names the part at fault."""

    def __init__(self, code: str, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.code = code
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class Applicant:
    name: str
    code_type: str
    """``111`` resident ID number or ``001`` unified social credit code."""
    code: str


@dataclass(frozen=True)
class SuppliedMaterial:
    name: str
    sha256: str | None = None
    certificate_id: str | None = None
    """Canonical certificate identifier, when the material is fetched by mutual recognition."""
    holder_code: str | None = None
    """The certificate's holder when not the applicant (a parent's ID card for a newborn)."""


@dataclass(frozen=True)
class NewCase:
    matter: Matter
    mode: str
    applicant: Applicant
    materials: tuple[SuppliedMaterial, ...]

    @property
    def handler(self) -> str:
        return self.matter.handler

    def to_json(self) -> dict[str, Any]:
        """The canonical body: equal submissions give equal JSON (Idempotency-Key compares it)."""
        return {
            "matter_code": self.matter.code,
            "handler": self.matter.handler,
            "mode": self.mode,
            "applicant": {
                "name": self.applicant.name,
                "code_type": self.applicant.code_type,
                "code": self.applicant.code,
            },
            "materials": [_material_json(m) for m in self.materials],
        }


def _material_json(material: SuppliedMaterial) -> dict[str, str]:
    if material.sha256 is not None:
        return {"name": material.name, "sha256": material.sha256}
    shown = {"name": material.name, "certificate_id": material.certificate_id or ""}
    if material.holder_code is not None:
        shown["holder_code"] = material.holder_code
    return shown


def parse_new_case(body: Mapping[str, Any], *, find_matter: MatterLookup, me: str) -> NewCase:
    """Check a submission (decoded JSON) from province ``me``; raise CaseInputError."""
    _only(body, _FIELDS, "")
    code = body.get("matter_code")
    if not isinstance(code, str) or not code:
        raise CaseInputError("missing_field", "matter_code", "the matter's code is required")
    matter = find_matter(code)
    if matter is None:
        raise CaseInputError(
            "unknown_matter",
            "matter_code",
            "no province in the federated catalog announces this matter code",
        )
    handler = body.get("handler")
    if handler != matter.handler:
        raise CaseInputError(
            "wrong_handler",
            "handler",
            f"the matter is handled by {matter.handler}, not {_show(handler)}",
        )
    if matter.handler == me:
        raise CaseInputError(
            "handler_is_local",
            "handler",
            f"the matter is handled in {me} itself; only cross-province cases are exchanged",
        )
    mode = body.get("mode", matter.modes[0])
    if mode not in matter.modes:
        raise CaseInputError(
            "invalid_mode", "mode", f"the matter's modes are {', '.join(matter.modes)}"
        )
    return NewCase(
        matter=matter,
        mode=mode,
        applicant=_applicant(body.get("applicant")),
        materials=_materials(body.get("materials"), matter),
    )


def _text(value: str, field: str) -> str:
    """Free text in normal form C, or ``invalid_text`` naming ``field`` (rule 4)."""
    try:
        return clean_text(value, field=field, max_length=MAX_NAME_LENGTH)
    except TextError as error:
        raise CaseInputError(error.code, field, error.sentence) from None


def _applicant(data: object) -> Applicant:
    if not isinstance(data, Mapping):
        raise CaseInputError("missing_field", "applicant", "the applicant is required")
    _only(data, _APPLICANT_FIELDS, "applicant.")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise CaseInputError(
            "invalid_applicant",
            "applicant.name",
            f"the applicant's name is required, at most {MAX_NAME_LENGTH} characters",
        )
    name = _text(name, "applicant.name").strip()
    code_type, code = data.get("code_type"), data.get("code")
    if not isinstance(code_type, str) or not isinstance(code, str):
        field = "applicant.code_type" if not isinstance(code_type, str) else "applicant.code"
        raise CaseInputError("invalid_applicant", field, "expected a string")
    try:
        code = validate_holder_code(
            code_type, code, field="applicant.code", type_field="applicant.code_type"
        )
    except IdentifierError as error:
        raise CaseInputError(error.code, error.field, _sentence(error)) from None
    return Applicant(name, code_type, code)


def _materials(data: object, matter: Matter) -> tuple[SuppliedMaterial, ...]:
    if data is None:
        data = []
    if not isinstance(data, list):
        raise CaseInputError("invalid_material", "materials", "expected a list of materials")
    if len(data) > MAX_MATERIALS:
        raise CaseInputError("invalid_material", "materials", f"at most {MAX_MATERIALS}")
    required = {material.name: material for material in matter.materials}
    supplied: dict[str, SuppliedMaterial] = {}
    for index, entry in enumerate(data):
        path = f"materials[{index}]"
        if not isinstance(entry, Mapping):
            raise CaseInputError("invalid_material", path, "expected an object")
        _only(entry, _MATERIAL_FIELDS, f"{path}.")
        name = entry.get("name")
        if isinstance(name, str) and len(name) <= MAX_NAME_LENGTH:
            name = _text(name, f"{path}.name")
        if not isinstance(name, str) or name not in required:
            raise CaseInputError(
                "unknown_material",
                f"{path}.name",
                f"{_show(name)} is not a material of this matter; it needs: " + ", ".join(required),
            )
        if name in supplied:
            raise CaseInputError("duplicate_material", f"{path}.name", f"{name} is supplied twice")
        supplied[name] = _material(entry, name, required[name].kind, path)
        _check_type(supplied[name], required[name].certificate_type, f"{path}.certificate_id")
    missing = [name for name in required if name not in supplied]
    if missing:
        raise CaseInputError(
            "missing_material", "materials", "the matter also needs: " + ", ".join(missing)
        )
    return tuple(supplied[name] for name in required)


def _material(entry: Mapping[str, Any], name: str, kind: str, path: str) -> SuppliedMaterial:
    sha256, certificate_id = entry.get("sha256"), entry.get("certificate_id")
    holder_code = entry.get("holder_code")
    if holder_code is not None and certificate_id is None:
        raise CaseInputError(
            "invalid_material",
            f"{path}.holder_code",
            "only a certificate material (with certificate_id) names a holder",
        )
    if sha256 is not None and certificate_id is not None:
        raise CaseInputError(
            "invalid_material", path, "give either sha256 or certificate_id, not both"
        )
    if certificate_id is not None:
        if kind != "certificate":
            raise CaseInputError(
                "invalid_material",
                f"{path}.certificate_id",
                f"{name} is an upload; only certificate materials take a certificate_id",
            )
        if not isinstance(certificate_id, str):
            raise CaseInputError(
                "invalid_certificate_id", f"{path}.certificate_id", "expected a string"
            )
        try:
            parsed = parse_certificate_id(certificate_id, field=f"{path}.certificate_id")
        except IdentifierError as error:
            raise CaseInputError(error.code, error.field, _sentence(error)) from None
        holder = None
        if holder_code is not None:
            holder = _holder(holder_code, f"{path}.holder_code")
        return SuppliedMaterial(name, certificate_id=str(parsed), holder_code=holder)
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise CaseInputError(
            "invalid_digest",
            f"{path}.sha256",
            "the material's digest must be 64 lower-case hexadecimal characters (SHA-256)",
        )
    return SuppliedMaterial(name, sha256=sha256)


def _check_type(material: SuppliedMaterial, wanted: str | None, field: str) -> None:
    """A certificate handed in by identifier must be of the type the matter asks for."""
    if material.certificate_id is None or wanted is None:
        return
    spec = TYPES.get(wanted)  # type: ignore[call-overload]
    if (
        spec is not None
        and parse_certificate_id(material.certificate_id).type_code != spec.type_code
    ):
        raise CaseInputError(
            "certificate_type_mismatch",
            field,
            f"{material.name} must be a {wanted} ({spec.chinese_name}); this identifier is of "
            "another type",
        )


def _holder(value: object, field: str) -> str:
    """A holder code: a resident ID number or a unified social credit code."""
    if not isinstance(value, str):
        raise CaseInputError("invalid_holder_code", field, "expected a string")
    errors: list[IdentifierError] = []
    for code_type in ("111", "001"):
        try:
            return validate_holder_code(code_type, value, field=field)
        except IdentifierError as error:
            errors.append(error)
    looks_like_id_number = len(value) == 18 and value[:-1].isascii() and value[:-1].isdigit()
    first = errors[0] if looks_like_id_number else errors[-1]
    raise CaseInputError(first.code, field, _sentence(first))


def _only(data: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for key in data:
        if key not in allowed:
            raise CaseInputError(
                "unknown_field", f"{prefix}{key}", f"not a field here; known: {sorted(allowed)}"
            )


def _sentence(error: IdentifierError) -> str:
    return error.detail.removeprefix(f"{error.field}: ")


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) and len(value) <= 40 else type(value).__name__


def applicant_holds(material: SuppliedMaterial, case: NewCase) -> bool:
    """Whether the applicant hands ``material`` in as their own (no other holder named)."""
    return material.holder_code is None or material.holder_code == case.applicant.code
