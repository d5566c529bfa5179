"""Disclosure policy: which fields of which certificate a purpose may see, and when.

Every certificate check carries a purpose (用证事由): a matter code from the federated
catalog, or a named scene (``SCENES``). ``decide_disclosure`` answers one request with the
fields to disclose or a ``PolicyRefusal``. Rules kept, in the order they are checked:

1. The purpose is a scene name or a 31-character matter code (``invalid_purpose``); a
   matter code must be in the federated catalog passed in (``unknown_matter``).
2. The purpose must be allowed for the certificate type (``purpose_not_allowed``), even for
   status alone: a check is tied to the matter or scene it serves, and a hotel has no
   business asking whether a guest's marriage certificate is valid.
   - A matter allows the types its materials name, and each of them whole: disclosable
     fields are ``model.disclosable_fields`` (the face plus authority and validity).
     Mutual recognition (免于提交) replaces the copy of the certificate the applicant would
     otherwise hand in, and that copy showed the whole face. The catalog does not say which
     face fields a matter needs; a narrower allowance needs a ``fields`` list on catalog
     materials first.
   - A scene allows the types and fields in ``SCENES``, chosen as the least the verifier
     needs; each choice is explained there.
3. Each requested field must be a disclosable field of the type (``unknown_field``) and
   inside the purpose's allowance (``field_not_allowed``). A field outside the allowance is
   refused, never silently dropped: a requester that asked for more than it may see has a
   bug or a wrong purpose, and a partial answer would hide both. Repeats are ignored.
4. ``status`` is always disclosed and needs no consent. Any other field needs the holder's
   consent: a grant a member node signed (``consent.ConsentGrant``, already read and its
   signature checked; ``consent_required`` without one) for the same purpose
   (``consent_purpose_mismatch``), unexpired at ``now`` (``consent_expired``: expired at
   ``expires_at`` exactly), by this holder (``consent_holder_mismatch``), allowing every
   requested field (``consent_fields_mismatch``), and, where the grant names them, for this
   certificate (``consent_certificate_mismatch``) and this requesting authority
   (``consent_requester_mismatch``). A grant sent with a status-only request is not needed
   and not recorded.
5. ``PRESENTATION_FIELDS`` are what an offline presentation (亮证) carries: the least that
   lets someone looking at the holder recognise the certificate, since anyone who scans
   the QR code reads them without asking anyone.
6. Checked before rule 1, by the callers rather than ``decide_disclosure``: the federation
   manifest says which certificate types and purposes each member may ask for at all
   (``check_may_verify``, ``certificate_not_permitted``).
   Purposes are named there by ``purpose_token``: a scene by its name, and every matter
   code by the one token ``MATTER`` (matter codes are many and change with the catalogs).
   Types and purposes are allowed independently; rules 1-4 still decide whether a purpose
   fits a type. The requester checks its own policy before it sends anything, the issuer
   checks the requester's before it reads its library, both with this one function.

Refusals carry a stable ``code``, the ``field`` at fault and a sentence that never repeats
personal data. Nothing here reads a clock: ``now`` is epoch seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, Protocol

from node.certificates.model import (
    TYPES,
    Certificate,
    CertificateType,
    disclosable_fields,
    is_certificate_type,
)
from node.identifiers import MATTER_CODE_LENGTH, IdentifierError, validate_matter_code
from node.vocabulary import MATTER, PURPOSE_TOKENS, SCENE_NAMES, Refused, Scene

if TYPE_CHECKING:
    from node.certificates.consent import ConsentGrant
    from node.identifiers import CertificateId
    from node.trust.manifest import Member

__all__ = [
    "MATTER",
    "PRESENTATION_FIELDS",
    "PURPOSE_TOKENS",
    "SCENES",
    "STATUS",
    "CatalogMaterial",
    "CatalogMatter",
    "Disclosure",
    "MatterLookup",
    "PolicyRefusal",
    "Scene",
    "allowed_fields",
    "certificate_type_of",
    "check_may_verify",
    "decide_disclosure",
    "purpose_token",
]

PolicyRefusalCode = Literal[
    "invalid_purpose",
    "unknown_matter",
    "unknown_type",
    "purpose_not_allowed",
    "unknown_field",
    "field_not_allowed",
    "consent_required",
    "consent_purpose_mismatch",
    "consent_expired",
    "consent_holder_mismatch",
    "consent_fields_mismatch",
    "consent_certificate_mismatch",
    "consent_requester_mismatch",
    "certificate_not_permitted",
]

STATUS: Final = "status"
"""The one field every allowed purpose sees, without consent (rule 4)."""


@dataclass(frozen=True)
class SceneSpec:
    chinese_name: str
    allowance: Mapping[CertificateType, tuple[str, ...]]


SCENES: Final[Mapping[Scene, SceneSpec]] = MappingProxyType(
    {
        # The guest register hotels keep for public security (旅客住宿登记) needs who the
        # guest is and where they live. Sex and birth date are inside the ID number, so they
        # add nothing; ethnicity is sensitive and not needed to identify anyone. Only the
        # resident ID card: the other types are not identity documents for check-in.
        "hotel_check_in": SceneSpec(
            "宾馆旅馆住宿登记",
            {"resident_id_card": ("name", "id_number", "address")},
        ),
        # An officer at the roadside (机动车路面查验) matches the driver to the licence (name,
        # number), the licence to the vehicle (classes; first issue for the probation year)
        # and the vehicle to its papers (plate, type, VIN, engine number, owner, use, the
        # inspection date in valid_until).
        "roadside_vehicle_inspection": SceneSpec(
            "机动车路面查验",
            {
                "driving_licence": (
                    "name",
                    "licence_number",
                    "vehicle_classes",
                    "first_issued_on",
                    "valid_until",
                ),
                "vehicle_licence": (
                    "plate_number",
                    "vehicle_type",
                    "owner",
                    "use_character",
                    "brand_model",
                    "vin",
                    "engine_number",
                    "valid_until",
                ),
            },
        ),
        # A violation is booked against a licence number (points) and a plate (the vehicle
        # and its owner); nothing about the vehicle's build is needed.
        "traffic_violation_handling": SceneSpec(
            "交通违法处理",
            {
                "driving_licence": ("name", "licence_number", "vehicle_classes"),
                "vehicle_licence": ("plate_number", "vehicle_type", "owner"),
            },
        ),
    }
)
"""Named scenes of the 2020 mutual-recognition consensus and what each may see (rule 2)."""

if tuple(SCENES) != SCENE_NAMES:  # pragma: no cover - guards the two tables
    raise RuntimeError("SCENES and node.vocabulary.SCENE_NAMES name different scenes")

# MATTER (the manifest's token for every matter code, rule 6) and PURPOSE_TOKENS (what a
# member's manifest policy may list: each scene, and MATTER) are node.vocabulary's.


class CatalogMaterial(Protocol):
    """What the policy reads of a catalog material: the certificate type it names, if any."""

    @property
    def certificate_type(self) -> str | None: ...


class CatalogMatter(Protocol):
    """What the policy reads of a catalog matter (``node.cases.catalog.Matter`` is one)."""

    @property
    def materials(self) -> Sequence[CatalogMaterial]: ...


MatterLookup = Callable[[str], CatalogMatter | None]
"""A matter of the federated catalog by its code, or None (``node.cases`` supplies it)."""

PRESENTATION_FIELDS: Final[Mapping[CertificateType, tuple[str, ...]]] = MappingProxyType(
    {
        # Name and sex match the person in front of the verifier; the ID number is bound by
        # a digest in the presentation, not printed.
        "resident_id_card": ("name", "sex"),
        # A business licence's face is public (国家企业信用信息公示系统).
        "business_licence": ("company_name", "credit_code", "legal_representative"),
        "driving_licence": ("name", "vehicle_classes", "valid_until"),
        "vehicle_licence": ("plate_number", "vehicle_type", "valid_until"),
        "marriage_certificate": ("registered_on", "husband_name", "wife_name"),
        # A residence permit's benefits are bound to the issuing city.
        "residence_permit": ("name", "issuing_authority", "valid_until"),
        "birth_medical_certificate": ("child_name", "sex", "born_at"),
    }
)
"""The fields an offline presentation carries, per type, in field order (rule 5)."""


class PolicyRefusal(Refused):
    """A disclosure was refused; nothing may be disclosed for this request.

    ``code`` is stable and machine-readable; ``field`` names the request part at fault
    (``purpose``, ``fields[2]``, ``consent.expires_at``); ``detail`` (also ``str(error)``)
    starts with it.
    """

    def __init__(self, code: PolicyRefusalCode, field: str, sentence: str) -> None:
        super().__init__(code, f"{field}: {sentence}", field=field)
        self.code: PolicyRefusalCode = code


@dataclass(frozen=True)
class Disclosure:
    """What one request may see: ``status`` always, and ``fields`` (none if status only)."""

    certificate_type: CertificateType
    purpose: str
    fields: tuple[str, ...]
    """Requested fields other than ``status``, in the type's field order, no repeats."""
    consent_grant_id: str | None
    """The grant that allowed ``fields``; None when only status is disclosed."""

    def values(self, certificate: Certificate) -> dict[str, str | None]:
        """The disclosed fields' values (``status`` excluded: the caller knows the date)."""
        if certificate.type != self.certificate_type:
            raise ValueError(
                f"this disclosure is for a {self.certificate_type}, not a {certificate.type}"
            )
        every = certificate.disclosable_values()
        return {name: every[name] for name in self.fields}


def allowed_fields(
    certificate_type: CertificateType, purpose: str, *, find_matter: MatterLookup
) -> tuple[str, ...]:
    """The fields ``purpose`` may see of ``certificate_type`` besides status (rules 1-2)."""
    if not is_certificate_type(certificate_type):
        raise PolicyRefusal(
            "unknown_type",
            "certificate_type",
            f"not a certificate type (one of {', '.join(TYPES)})",
        )
    if not isinstance(purpose, str):
        raise PolicyRefusal("invalid_purpose", "purpose", "must be a string")
    if purpose in SCENES:
        scene = SCENES[purpose]  # type: ignore[index]  # checked just above
        allowance = scene.allowance.get(certificate_type)
        if allowance is None:
            raise PolicyRefusal(
                "purpose_not_allowed",
                "purpose",
                f"{purpose} ({scene.chinese_name}) does not check a {certificate_type}; it "
                f"checks {_types(scene.allowance)}",
            )
        return allowance
    matter = matter_for_purpose(purpose, find_matter)
    required = [m.certificate_type for m in matter.materials if m.certificate_type is not None]
    if certificate_type not in required:
        raise PolicyRefusal(
            "purpose_not_allowed",
            "purpose",
            f"matter {purpose} does not take a {certificate_type} as a material"
            + (f"; it takes {_types(required)}" if required else ""),
        )
    return disclosable_fields(certificate_type)


def purpose_token(purpose: str) -> str:
    """How the manifest names ``purpose``: a scene by itself, anything else as ``MATTER``.

    Whatever is not a scene claims to be a matter code; whether it is a well-formed one of
    the catalog is rule 1's question, asked after the manifest's (rule 6).
    """
    return purpose if purpose in SCENES else MATTER


def certificate_type_of(certificate_id: CertificateId) -> CertificateType | None:
    """The type the identifier's type code names, or None if it names none of ``TYPES``."""
    code = certificate_id.type_code
    return next((name for name, spec in TYPES.items() if spec.type_code == code), None)


def check_may_verify(
    member: Member, certificate_type: CertificateType | None, purpose: str
) -> None:
    """Refuse (``certificate_not_permitted``) unless ``member``'s manifest policy lets it ask
    for a ``certificate_type`` with ``purpose`` (rule 6); the one answer to that question,
    for the requester and the issuer alike.

    ``None`` stands for a type code of no federation type, which no policy can list. The
    field at fault is ``certificate_id`` (the type is read from it) or ``purpose``.
    """
    allowed = member.may_verify
    if certificate_type is None or certificate_type not in allowed.certificate_types:
        asked = (
            "a certificate of this type code, which is none of the federation's types"
            if certificate_type is None
            else f"a {certificate_type}"
        )
        raise PolicyRefusal(
            "certificate_not_permitted",
            "certificate_id",
            f"the federation manifest does not let {member.province} ask for {asked}; it "
            f"may ask for {_listing(allowed.certificate_types, TYPES)}",
        )
    token = purpose_token(purpose)
    if token not in allowed.purposes:
        asked = "a matter code" if token == MATTER else f"the scene {token}"
        raise PolicyRefusal(
            "certificate_not_permitted",
            "purpose",
            f"the federation manifest does not let {member.province} ask for certificates "
            f"for {asked}; its purposes are {_listing(allowed.purposes, PURPOSE_TOKENS)}",
        )


def _listing(chosen: Iterable[str], order: Iterable[str]) -> str:
    """``chosen`` in the table's ``order``, or "none"."""
    picked = set(chosen)
    return ", ".join(name for name in order if name in picked) or "none"


def decide_disclosure(
    certificate_type: CertificateType,
    purpose: str,
    requested_fields: Iterable[str],
    consent: ConsentGrant | None,
    now: float,
    *,
    find_matter: MatterLookup,
    holder_code: str,
    certificate_id: str,
    requester: str = "",
) -> Disclosure:
    """Decide one request: the fields to disclose, or a ``PolicyRefusal`` (rules 1-4).

    ``find_matter`` looks a matter code up in the federated catalog; ``holder_code``,
    ``certificate_id`` and ``requester`` are what the request names, checked against the
    grant.
    """
    allowance = allowed_fields(certificate_type, purpose, find_matter=find_matter)
    known = disclosable_fields(certificate_type)
    wanted: set[str] = set()
    for index, name in enumerate(requested_fields):
        if name == STATUS:
            continue
        if name not in known:
            raise PolicyRefusal(
                "unknown_field",
                f"fields[{index}]",
                f"a {certificate_type} has no field {_show(name)}",
            )
        if name not in allowance:
            raise PolicyRefusal(
                "field_not_allowed",
                f"fields[{index}]",
                f"{name} of a {certificate_type} is not disclosed for {purpose}; "
                f"it may see {', '.join((STATUS, *allowance))}",
            )
        wanted.add(name)
    if not wanted:
        return Disclosure(certificate_type, purpose, (), None)
    fields = tuple(name for name in known if name in wanted)
    grant = _check_consent(consent, purpose, now, holder_code, fields, certificate_id, requester)
    return Disclosure(certificate_type, purpose, fields, grant.grant_id)


def _check_consent(
    consent: ConsentGrant | None,
    purpose: str,
    now: float,
    holder_code: str,
    fields: tuple[str, ...],
    certificate_id: str,
    requester: str,
) -> ConsentGrant:
    if consent is None:
        raise PolicyRefusal(
            "consent_required",
            "consent",
            "fields other than status need the holder's consent: a grant a member node signed "
            "(POST /v1/consents at the holder's platform's node)",
        )
    if consent.purpose != purpose:
        raise PolicyRefusal(
            "consent_purpose_mismatch",
            "consent.grant",
            "the holder consented to another purpose than the one this request names",
        )
    if now >= consent.expires_at:
        raise PolicyRefusal(
            "consent_expired",
            "consent.grant",
            f"consent {consent.grant_id} has expired; ask the holder again",
        )
    if consent.holder_code.upper() != holder_code.upper():
        raise PolicyRefusal(
            "consent_holder_mismatch",
            "consent.grant",
            "the consent was granted by someone other than the holder this request names",
        )
    beyond = [name for name in fields if name not in consent.fields]
    if beyond:
        raise PolicyRefusal(
            "consent_fields_mismatch",
            "consent.grant",
            f"the holder did not consent to disclose {', '.join(beyond)}",
        )
    if consent.certificate_id is not None and consent.certificate_id != certificate_id:
        raise PolicyRefusal(
            "consent_certificate_mismatch",
            "consent.grant",
            "the consent covers another certificate than the one this request names",
        )
    if consent.requester is not None and consent.requester != requester:
        raise PolicyRefusal(
            "consent_requester_mismatch",
            "consent.grant",
            "the consent covers another requesting authority than the one asking",
        )
    return consent


def matter_for_purpose(purpose: str, find_matter: MatterLookup) -> CatalogMatter:
    """The catalog matter a 31-character purpose names; PolicyRefusal otherwise."""
    if len(purpose) != MATTER_CODE_LENGTH:
        raise PolicyRefusal(
            "invalid_purpose",
            "purpose",
            f"is neither a scene ({', '.join(SCENES)}) nor a {MATTER_CODE_LENGTH}-character "
            "matter code",
        )
    try:
        validate_matter_code(purpose, field="purpose")
    except IdentifierError as error:
        raise PolicyRefusal(
            "invalid_purpose", "purpose", error.detail.removeprefix("purpose: ")
        ) from None
    matter = find_matter(purpose)
    if matter is None:
        raise PolicyRefusal(
            "unknown_matter", "purpose", f"matter {purpose} is not in the federated catalog"
        )
    return matter


def _types(types: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(types))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
