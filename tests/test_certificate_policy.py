"""Disclosure policy: purposes, field allowances and the holder's consent."""

from __future__ import annotations

import pytest

from node.cases.catalog import PROVINCES, Material, Matter, load_catalog, merge
from node.certificates.consent import ConsentGrant
from node.certificates.model import TYPES, CertificateType, disclosable_fields
from node.certificates.policy import (
    PRESENTATION_FIELDS,
    SCENES,
    Disclosure,
    PolicyRefusal,
    allowed_fields,
    decide_disclosure,
)
from tests.certificate_samples import LI_MINGHUA, NOW, OTHER_PERSON, sample

NEWBORN = "11310000007580968C2000172004000"
TRAFFIC_FINE = "1132000000733103XN2000175012000"
MATTERS = {
    NEWBORN: Matter(
        code=NEWBORN,
        name="异地新生儿入户",
        name_en="Household registration of a newborn",
        handler="shanghai",
        modes=("全程网办",),
        materials=(
            Material("出生医学证明", "certificate", "birth_medical_certificate"),
            Material("父母双方居民身份证", "certificate", "resident_id_card"),
            Material("结婚证", "certificate", "marriage_certificate"),
            Material("户口簿", "upload"),
        ),
        promised_days=5,
        department="上海市公安局",
    ),
}
HOTEL = "hotel_check_in"


EVERY_FIELD = tuple(dict.fromkeys(f for t in TYPES for f in disclosable_fields(t)))
CERTIFICATE = "1.2.156.3005.2.11100000000013338W001.11310000MB2C92725Y.SH0001.001.9"


def consent(
    purpose: str = HOTEL,
    *,
    expires_at: float = NOW + 600,
    holder_code: str = LI_MINGHUA,
    fields: tuple[str, ...] = EVERY_FIELD,
    certificate_id: str | None = None,
    requester: str | None = None,
) -> ConsentGrant:
    """A grant as ``consent.read_grant`` gives it once its signature held."""
    return ConsentGrant(
        "G-20250601-000042",
        "node-310000",
        holder_code,
        purpose,
        fields,
        NOW - 600,
        expires_at,
        certificate_id=certificate_id,
        requester=requester,
    )


def decide(
    certificate_type: CertificateType,
    purpose: str,
    fields: list[str],
    grant: ConsentGrant | None,
    now: float,
    *,
    find_matter: object,
    holder_code: str = LI_MINGHUA,
    certificate_id: str = CERTIFICATE,
    requester: str = "",
) -> Disclosure:
    """``decide_disclosure`` about LI_MINGHUA's certificate unless told otherwise."""
    return decide_disclosure(
        certificate_type,
        purpose,
        fields,
        grant,
        now,
        find_matter=find_matter,  # type: ignore[arg-type]
        holder_code=holder_code,
        certificate_id=certificate_id,
        requester=requester,
    )


def refused(
    certificate_type: CertificateType,
    purpose: str,
    fields: list[str],
    grant: ConsentGrant | None = None,
    now: float = NOW,
    **extra: str,
) -> PolicyRefusal:
    with pytest.raises(PolicyRefusal) as caught:
        decide(certificate_type, purpose, fields, grant, now, find_matter=MATTERS.get, **extra)
    return caught.value


# --- status and consent ---------------------------------------------------------------------


def test_status_alone_needs_no_consent() -> None:
    """Asking only for status is answered without consent and discloses no other field."""
    decided = decide("resident_id_card", HOTEL, ["status"], None, NOW, find_matter=MATTERS.get)
    assert decided == Disclosure("resident_id_card", HOTEL, (), None)
    assert decide("resident_id_card", HOTEL, [], None, NOW, find_matter=MATTERS.get) == decided


def test_fields_with_consent_are_disclosed_in_field_order() -> None:
    """With consent for the purpose, the requested fields come back once each, in field order."""
    decided = decide(
        "resident_id_card",
        HOTEL,
        ["status", "address", "name", "address"],
        consent(),
        NOW,
        find_matter=MATTERS.get,
    )
    assert decided.fields == ("name", "address")
    assert decided.consent_grant_id == "G-20250601-000042"


def test_fields_without_consent_are_refused() -> None:
    """Any field beyond status without consent is consent_required on field consent."""
    error = refused("resident_id_card", HOTEL, ["status", "name"])
    assert (error.code, error.field) == ("consent_required", "consent")


def test_expired_consent_is_refused() -> None:
    """Consent is void from its expires_at instant onwards."""
    grant = consent(expires_at=NOW)
    error = refused("resident_id_card", HOTEL, ["name"], grant)
    assert (error.code, error.field) == ("consent_expired", "consent.grant")
    decided = decide("resident_id_card", HOTEL, ["name"], grant, NOW - 1, find_matter=MATTERS.get)
    assert decided.fields == ("name",)


def test_consent_for_another_purpose_is_refused() -> None:
    """Consent given for one purpose does not cover another."""
    error = refused("resident_id_card", HOTEL, ["name"], consent(NEWBORN))
    assert (error.code, error.field) == ("consent_purpose_mismatch", "consent.grant")


def test_consent_of_another_holder_is_refused() -> None:
    """A grant covers only requests about the holder who gave it (whatever the case)."""
    grant = consent(holder_code=LI_MINGHUA)
    decided = decide(
        "resident_id_card",
        HOTEL,
        ["name"],
        grant,
        NOW,
        find_matter=MATTERS.get,
        holder_code=LI_MINGHUA.lower(),
    )
    assert decided.fields == ("name",)
    error = refused("resident_id_card", HOTEL, ["name"], grant, holder_code=OTHER_PERSON)
    assert (error.code, error.field) == ("consent_holder_mismatch", "consent.grant")
    assert OTHER_PERSON not in str(error)


def test_fields_beyond_the_grant_are_refused() -> None:
    """A grant for name does not cover address, though the purpose would allow it."""
    error = refused("resident_id_card", HOTEL, ["name", "address"], consent(fields=("name",)))
    assert (error.code, error.field) == ("consent_fields_mismatch", "consent.grant")
    assert "address" in str(error)


def test_grant_for_another_certificate_or_requester_is_refused() -> None:
    """A grant that names a certificate or a requesting authority covers only those."""
    other = CERTIFICATE[:-1] + "X"
    error = refused("resident_id_card", HOTEL, ["name"], consent(certificate_id=other))
    assert error.code == "consent_certificate_mismatch"
    error = refused(
        "resident_id_card", HOTEL, ["name"], consent(requester="某酒店"), requester="另一酒店"
    )
    assert error.code == "consent_requester_mismatch"
    decided = decide(
        "resident_id_card",
        HOTEL,
        ["name"],
        consent(certificate_id=CERTIFICATE, requester="某酒店"),
        NOW,
        find_matter=MATTERS.get,
        requester="某酒店",
    )
    assert decided.consent_grant_id == "G-20250601-000042"


# --- purposes and allowances ----------------------------------------------------------------


def test_purpose_not_allowed_for_the_type_is_refused_even_for_status() -> None:
    """A hotel may not ask about a driving licence, not even its status."""
    error = refused("driving_licence", HOTEL, ["status"])
    assert (error.code, error.field) == ("purpose_not_allowed", "purpose")
    assert "resident_id_card" in str(error)


def test_matter_not_taking_the_type_is_refused() -> None:
    """A matter whose materials do not name the type is purpose_not_allowed."""
    error = refused("vehicle_licence", NEWBORN, ["status"])
    assert (error.code, error.field) == ("purpose_not_allowed", "purpose")


def test_field_outside_the_allowance_is_refused_not_dropped() -> None:
    """Hotel check-in asking for ethnicity is field_not_allowed naming the request position."""
    error = refused("resident_id_card", HOTEL, ["name", "ethnicity"], consent())
    assert (error.code, error.field) == ("field_not_allowed", "fields[1]")
    assert "ethnicity" in str(error)


def test_field_the_type_does_not_have_is_refused() -> None:
    """A field no certificate of the type has is unknown_field."""
    error = refused("resident_id_card", HOTEL, ["plate_number"], consent())
    assert (error.code, error.field) == ("unknown_field", "fields[0]")


def test_matter_sees_every_disclosable_field_of_its_certificate_types() -> None:
    """A matter that takes a type as material may see that type's face and validity."""
    for certificate_type in ("birth_medical_certificate", "marriage_certificate"):
        assert allowed_fields(
            certificate_type, NEWBORN, find_matter=MATTERS.get
        ) == disclosable_fields(certificate_type)
    decided = decide(
        "marriage_certificate",
        NEWBORN,
        ["wife_name", "certificate_number"],
        consent(NEWBORN),
        NOW,
        find_matter=MATTERS.get,
    )
    assert decided.fields == ("certificate_number", "wife_name")


def test_matter_code_not_in_the_catalog_is_unknown_matter() -> None:
    """A well-formed matter code the federated catalog lacks is unknown_matter."""
    error = refused("driving_licence", TRAFFIC_FINE, ["status"])
    assert (error.code, error.field) == ("unknown_matter", "purpose")


@pytest.mark.parametrize(
    "purpose", ["hotel", "", NEWBORN[:-1] + "X", NEWBORN[:17] + "0" + NEWBORN[18:]]
)
def test_purpose_that_is_neither_scene_nor_matter_code_is_refused(purpose: str) -> None:
    """An unknown scene name or a malformed matter code is invalid_purpose."""
    error = refused("resident_id_card", purpose, ["status"])
    assert (error.code, error.field) == ("invalid_purpose", "purpose")


def test_roadside_inspection_sees_what_the_officer_compares() -> None:
    """Roadside inspection sees licence classes and the vehicle's VIN, but not the holder's
    address."""
    grant = consent("roadside_vehicle_inspection")
    licence = decide(
        "driving_licence",
        "roadside_vehicle_inspection",
        ["vehicle_classes", "valid_until"],
        grant,
        NOW,
        find_matter=MATTERS.get,
    )
    assert licence.fields == ("vehicle_classes", "valid_until")
    vehicle = decide(
        "vehicle_licence",
        "roadside_vehicle_inspection",
        ["vin"],
        grant,
        NOW,
        find_matter=MATTERS.get,
    )
    assert vehicle.fields == ("vin",)
    error = refused("driving_licence", "roadside_vehicle_inspection", ["address"], grant)
    assert error.code == "field_not_allowed"


def test_traffic_violation_handling_does_not_see_the_vin() -> None:
    """Handling a violation needs the plate and owner, not the vehicle's build."""
    grant = consent("traffic_violation_handling")
    error = refused("vehicle_licence", "traffic_violation_handling", ["owner", "vin"], grant)
    assert (error.code, error.field) == ("field_not_allowed", "fields[1]")


def test_every_packaged_matter_allows_the_types_it_takes() -> None:
    """Every certificate material of every packaged catalog is allowed for its matter."""
    federated = {matter.code: matter for matter in merge(load_catalog(p) for p in PROVINCES)}
    checked = 0
    for code, matter in federated.items():
        for material in matter.materials:
            if material.certificate_type is not None:
                allowed_fields(material.certificate_type, code, find_matter=federated.get)
                checked += 1
    assert checked > 0


def test_scene_and_presentation_tables_name_real_fields() -> None:
    """Every scene and presentation field exists on its type; every type can be presented."""
    for scene in SCENES.values():
        for certificate_type, fields in scene.allowance.items():
            assert set(fields) <= set(disclosable_fields(certificate_type))
    assert set(PRESENTATION_FIELDS) == set(TYPES)
    for certificate_type, fields in PRESENTATION_FIELDS.items():
        order = disclosable_fields(certificate_type)
        assert set(fields) <= set(order)
        assert list(fields) == sorted(fields, key=order.index), certificate_type


def test_disclosure_values_pick_only_the_decided_fields() -> None:
    """A disclosure applied to a certificate yields exactly its fields' values."""
    certificate = sample("resident_id_card")
    decided = decide(
        "resident_id_card", HOTEL, ["name", "id_number"], consent(), NOW, find_matter=MATTERS.get
    )
    assert decided.values(certificate) == {"name": "李明华", "id_number": LI_MINGHUA}
    with pytest.raises(ValueError, match="resident_id_card"):
        decided.values(sample("driving_licence"))


def test_purpose_that_is_not_text_is_refused() -> None:
    """A purpose decoded from JSON as a list is invalid_purpose, not a crash."""
    error = refused("resident_id_card", ["hotel_check_in"], ["status"])  # type: ignore[arg-type]
    assert (error.code, error.field) == ("invalid_purpose", "purpose")
