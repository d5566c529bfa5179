"""Certificates: the seven types, validation from JSON, holder checks and effective status."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest

from node.cases.catalog import CERTIFICATE_TYPES
from node.certificates.model import (
    COMMON_FIELDS,
    TYPES,
    Certificate,
    CertificateError,
    CertificateStatus,
    CertificateType,
    check_holder,
    china_date,
    disclosable_fields,
    effective_status,
    field_label,
    parse_certificate,
    to_json,
)
from node.identifiers import make_certificate_id, make_credit_code
from tests.certificate_samples import (
    COMPANY,
    LI_MINGHUA,
    OTHER_PERSON,
    SUZHOU_POLICE,
    TODAY,
    WANG_JING,
    XUHUI_POLICE,
    anhui_area_code_card,
    sample,
    sample_json,
)

ALL_TYPES: list[CertificateType] = list(TYPES)


def refusal(data: dict[str, Any]) -> CertificateError:
    with pytest.raises(CertificateError) as caught:
        parse_certificate(data)
    return caught.value


def with_check(cert_id: str, check: str) -> str:
    return cert_id[:-1] + check


# --- the type table -------------------------------------------------------------------------


def test_types_are_the_catalog_types_with_their_chinese_names() -> None:
    """The model lists exactly the catalog's seven types, named as the catalog names them."""
    assert list(TYPES) == list(CERTIFICATE_TYPES)
    assert {name: spec.chinese_name for name, spec in TYPES.items()} == dict(CERTIFICATE_TYPES)
    assert TYPES["driving_licence"].chinese_name == "机动车驾驶证"


def test_holder_code_types_follow_who_holds_each_type() -> None:
    """A business licence is held under a credit code, a vehicle licence under either, the rest
    under an ID number."""
    assert TYPES["business_licence"].holder_code_types == ("001",)
    assert TYPES["vehicle_licence"].holder_code_types == ("111", "001")
    persons = [name for name, spec in TYPES.items() if spec.holder_code_types == ("111",)]
    assert sorted(persons) == sorted(set(TYPES) - {"business_licence", "vehicle_licence"})


def test_every_field_has_a_chinese_label_and_no_face_field_shadows_metadata() -> None:
    """Each disclosable field has a Chinese label, and face names never reuse metadata names."""
    common = {spec.name for spec in COMMON_FIELDS}
    for name, spec in TYPES.items():
        assert not common & set(spec.field_names), name
        for field in disclosable_fields(name):
            label = field_label(name, field)
            assert label and not label.isascii(), (name, field)
    assert field_label("resident_id_card", "id_number") == "公民身份号码"
    assert field_label("marriage_certificate", "valid_until") == "有效期截止日期"


def test_type_codes_are_distinct_and_well_formed() -> None:
    """Each type has its own 21-character type code, usable in a certificate identifier."""
    codes = [spec.type_code for spec in TYPES.values()]
    assert len(set(codes)) == len(codes)
    for code in codes:
        make_certificate_id(code, XUHUI_POLICE, "A1")


# --- parsing valid certificates -------------------------------------------------------------


@pytest.mark.parametrize("certificate_type", ALL_TYPES)
def test_every_sample_round_trips_through_json(certificate_type: CertificateType) -> None:
    """A valid certificate of each type parses, and its JSON form parses back to an equal one."""
    certificate = sample(certificate_type)
    assert certificate.type == certificate_type
    assert parse_certificate(to_json(certificate)) == certificate


def test_parsed_certificate_keeps_metadata_and_canonical_values() -> None:
    """Parsing keeps the metadata, derives the issuing province and upper-cases a typed x."""
    data = sample_json("resident_id_card")
    data["holder_code"] = data["holder_code"].lower()
    certificate = parse_certificate(data)
    assert certificate.issuer_province == "shanghai"
    assert certificate.issued_on == date(2015, 3, 2)
    assert certificate.valid_until == date(2035, 3, 2)
    assert certificate.status is CertificateStatus.VALID
    assert certificate.holder_code == LI_MINGHUA
    assert to_json(certificate)["issuer_province"] == "shanghai"


def test_long_term_certificate_has_no_valid_until() -> None:
    """A business licence with valid_until null or absent is long-term (长期)."""
    data = sample_json("business_licence")
    del data["valid_until"]
    assert parse_certificate(data).valid_until is None
    assert to_json(parse_certificate(data))["valid_until"] is None


def test_optional_face_field_may_be_absent() -> None:
    """A birth medical certificate without a father is valid; one without a mother is not."""
    data = sample_json("birth_medical_certificate")
    del data["fields"]["father_name"], data["fields"]["father_id_number"]
    assert "father_name" not in parse_certificate(data).fields
    del data["fields"]["mother_name"]
    error = refusal(data)
    assert (error.code, error.field) == ("missing_field", "fields.mother_name")


def test_fields_are_read_only() -> None:
    """A certificate's face cannot be changed after validation; equal certificates hash equal."""
    certificate = sample("resident_id_card")
    assert {certificate, sample("resident_id_card")} == {certificate}
    with pytest.raises(TypeError):
        certificate.fields["name"] = "王静"  # type: ignore[index]


def test_disclosable_values_include_metadata() -> None:
    """Disclosable values are the face plus authority and validity, in disclosable order."""
    values = sample("business_licence").disclosable_values()
    assert list(values) == list(disclosable_fields("business_licence"))
    assert values["credit_code"] == COMPANY
    assert values["issuing_authority"] == "上海市浦东新区市场监督管理局"
    assert values["valid_until"] is None


# --- refusals: type, identifier, issuer -----------------------------------------------------


def test_unknown_type_is_refused() -> None:
    """A type outside the seven is unknown_type on field type."""
    data = sample_json("resident_id_card")
    data["type"] = "passport"
    error = refusal(data)
    assert (error.code, error.field) == ("unknown_type", "type")


def test_identifier_with_wrong_check_character_is_refused() -> None:
    """A certificate identifier whose MOD 37,36 check character is wrong is refused by name."""
    data = sample_json("resident_id_card")
    right = data["certificate_id"][-1]
    data["certificate_id"] = with_check(data["certificate_id"], "0" if right != "0" else "1")
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_certificate_id", "certificate_id")
    assert "wrong check character" in str(error)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda text: text.replace("1.2.156.3005.2.", "1.2.156.3005.9."), "must start with"),
        (lambda text: text.rsplit(".", 2)[0] + ".01." + text[-1], "three digits"),
        (lambda text: text.replace(".SH0A17C3.", ".SH0-17C3."), "serial"),
        (lambda text: text.replace(".SH0A17C3", ""), "parts"),
    ],
    ids=["prefix", "version", "serial", "missing-part"],
)
def test_identifier_with_malformed_part_is_refused(change: Any, words: str) -> None:
    """An identifier with a malformed part is invalid_certificate_id and says which part."""
    data = sample_json("resident_id_card")
    data["certificate_id"] = change(data["certificate_id"])
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_certificate_id", "certificate_id")
    assert words in str(error)


def test_identifier_of_another_type_is_refused() -> None:
    """A driving-licence identifier on a resident ID card is type_mismatch."""
    data = sample_json("resident_id_card")
    data["certificate_id"] = sample_json("driving_licence")["certificate_id"]
    data["issuing_authority_code"] = sample_json("driving_licence")["issuing_authority_code"]
    error = refusal(data)
    assert (error.code, error.field) == ("type_mismatch", "certificate_id")


def test_issuer_outside_the_federation_is_unknown_issuer() -> None:
    """A certificate issued in Beijing (division 110000) is unknown_issuer, not malformed."""
    beijing = make_credit_code(random.Random(5), division="110105")
    data = sample_json("resident_id_card")
    data["certificate_id"] = str(
        make_certificate_id(TYPES["resident_id_card"].type_code, beijing, "BJ1")
    )
    data["issuing_authority_code"] = beijing
    error = refusal(data)
    assert (error.code, error.field) == ("unknown_issuer", "certificate_id")


def test_stated_issuer_province_must_match_the_identifier() -> None:
    """An issuer_province that is not the identifier's province is issuer_mismatch."""
    data = sample_json("resident_id_card")
    data["issuer_province"] = "zhejiang"
    error = refusal(data)
    assert (error.code, error.field) == ("issuer_mismatch", "issuer_province")


def test_authority_code_must_be_the_identifiers_issuer_code() -> None:
    """An authority credit code other than the identifier's issuer code is inconsistent."""
    data = sample_json("resident_id_card")
    data["issuing_authority_code"] = SUZHOU_POLICE
    error = refusal(data)
    assert (error.code, error.field) == ("inconsistent_field", "issuing_authority_code")


def test_area_code_identifier_needs_an_authority_in_the_same_province() -> None:
    """An Anhui area-code identifier is accepted with an Anhui authority, not a Jiangsu one."""
    data = anhui_area_code_card()
    assert parse_certificate(data).issuer_province == "anhui"
    data["issuing_authority_code"] = SUZHOU_POLICE
    error = refusal(data)
    assert (error.code, error.field) == ("inconsistent_field", "issuing_authority_code")


# --- refusals: holder -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("certificate_type", "code_type"),
    [("business_licence", "111"), ("resident_id_card", "001"), ("marriage_certificate", "001")],
)
def test_holder_code_type_wrong_for_the_type_is_refused(
    certificate_type: CertificateType, code_type: str
) -> None:
    """A holder code type the type does not allow is holder_code_type_not_allowed."""
    data = sample_json(certificate_type)
    data["holder_code_type"] = code_type
    error = refusal(data)
    assert (error.code, error.field) == ("holder_code_type_not_allowed", "holder_code_type")


def test_unknown_holder_code_type_is_refused() -> None:
    """A holder code type other than 111 and 001 is invalid_code_type."""
    data = sample_json("resident_id_card")
    data["holder_code_type"] = "414"
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_code_type", "holder_code_type")


def test_holder_id_number_with_wrong_check_character_is_refused() -> None:
    """An ID number whose MOD 11-2 check character is wrong is invalid_id_number."""
    data = sample_json("resident_id_card")
    code = data["holder_code"]
    data["holder_code"] = code[:-1] + ("0" if code[-1] != "0" else "1")
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_id_number", "holder_code")
    assert code not in str(error)


def test_holder_credit_code_with_wrong_check_character_is_refused() -> None:
    """A credit code whose MOD 31 check character is wrong is invalid_credit_code."""
    data = sample_json("business_licence")
    code = data["holder_code"]
    data["holder_code"] = code[:-1] + ("0" if code[-1] != "0" else "1")
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_credit_code", "holder_code")


def test_holder_not_named_on_the_face_is_refused() -> None:
    """A holder code or name that the face does not carry is inconsistent_field."""
    data = sample_json("resident_id_card")
    data["holder_code"] = OTHER_PERSON
    error = refusal(data)
    assert (error.code, error.field) == ("inconsistent_field", "holder_code")
    data = sample_json("resident_id_card")
    data["holder_name"] = "王静"
    error = refusal(data)
    assert (error.code, error.field) == ("inconsistent_field", "holder_name")
    assert "王静" not in str(error)


def test_either_spouse_may_hold_the_marriage_certificate() -> None:
    """The wife holds the same marriage certificate under her own ID number."""
    data = sample_json("marriage_certificate")
    data.update(holder_name="王静", holder_code=WANG_JING)
    assert parse_certificate(data).holder_code == WANG_JING


def test_vehicle_licence_may_be_held_by_a_company() -> None:
    """A company-owned vehicle's licence is held under the company's credit code."""
    data = sample_json("vehicle_licence")
    data.update(holder_name="上海澄明信息科技有限公司", holder_code_type="001", holder_code=COMPANY)
    data["fields"]["owner"] = "上海澄明信息科技有限公司"
    assert parse_certificate(data).holder_code_type == "001"


def test_check_holder_accepts_the_holder_and_refuses_anyone_else() -> None:
    """A request naming the holder passes; another valid code is holder_mismatch; a typo is
    reported as a bad ID number."""
    certificate = sample("resident_id_card")
    check_holder(certificate, LI_MINGHUA.lower())
    with pytest.raises(CertificateError) as caught:
        check_holder(certificate, OTHER_PERSON)
    assert (caught.value.code, caught.value.field) == ("holder_mismatch", "holder_code")
    assert OTHER_PERSON not in str(caught.value)
    with pytest.raises(CertificateError) as caught:
        check_holder(certificate, LI_MINGHUA[:-1] + ("0" if LI_MINGHUA[-1] != "0" else "1"))
    assert caught.value.code == "invalid_id_number"


# --- refusals: face fields and dates --------------------------------------------------------


def test_missing_face_field_is_refused() -> None:
    """A required face field that is absent is missing_field, named with its path."""
    data = sample_json("driving_licence")
    del data["fields"]["vehicle_classes"]
    error = refusal(data)
    assert (error.code, error.field) == ("missing_field", "fields.vehicle_classes")


def test_unknown_face_field_is_refused() -> None:
    """A face field the type does not have is unknown_field, never ignored."""
    data = sample_json("resident_id_card")
    data["fields"]["photo"] = "..."
    error = refusal(data)
    assert (error.code, error.field) == ("unknown_field", "fields.photo")


def test_metadata_inside_fields_is_refused_with_a_hint() -> None:
    """valid_until inside fields is unknown_field and says it is metadata."""
    data = sample_json("driving_licence")
    data["fields"]["valid_until"] = "2032-08-01"
    error = refusal(data)
    assert (error.code, error.field) == ("unknown_field", "fields.valid_until")
    assert "metadata" in str(error)


def test_missing_and_unknown_top_level_keys_are_refused() -> None:
    """A missing status is missing_field; an extra top-level key is unknown_field."""
    data = sample_json("resident_id_card")
    del data["status"]
    assert (refusal(data).code, refusal(data).field) == ("missing_field", "status")
    data = sample_json("resident_id_card")
    data["colour"] = "red"
    assert (refusal(data).code, refusal(data).field) == ("unknown_field", "colour")


def test_unknown_status_is_refused() -> None:
    """A status outside valid, suspended, revoked and expired is invalid_status."""
    data = sample_json("resident_id_card")
    data["status"] = "cancelled"
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_status", "status")


@pytest.mark.parametrize(
    ("key", "value"),
    [("issued_on", "2015/03/02"), ("valid_from", "2015-02-30"), ("valid_until", "20350302")],
)
def test_bad_dates_are_refused(key: str, value: str) -> None:
    """A date not written YYYY-MM-DD, or not a real date, is invalid_date on its field."""
    data = sample_json("resident_id_card")
    data[key] = value
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_date", key)


def test_validity_window_must_not_end_before_it_starts() -> None:
    """valid_until before valid_from is invalid_date on valid_until."""
    data = sample_json("resident_id_card")
    data["valid_until"] = "2015-03-01"
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_date", "valid_until")


def test_bad_face_date_is_refused() -> None:
    """A face date that is not real is invalid_date with the field's path."""
    data = sample_json("business_licence")
    data["fields"]["established_on"] = "2019-13-01"
    error = refusal(data)
    assert (error.code, error.field) == ("invalid_date", "fields.established_on")


def test_face_birth_date_and_sex_must_agree_with_the_id_number() -> None:
    """A birth date or sex that contradicts the ID number is inconsistent_field."""
    data = sample_json("resident_id_card")
    data["fields"]["birth_date"] = "1990-05-18"
    assert (refusal(data).code, refusal(data).field) == ("inconsistent_field", "fields.birth_date")
    data = sample_json("driving_licence")
    data["fields"]["sex"] = "female"
    assert (refusal(data).code, refusal(data).field) == ("inconsistent_field", "fields.sex")


@pytest.mark.parametrize(
    ("certificate_type", "field", "value", "code"),
    [
        ("vehicle_licence", "plate_number", "沪AI2345", "invalid_field"),
        ("vehicle_licence", "vin", "LSVAU2180N2123456", "invalid_field"),
        ("vehicle_licence", "vin", "LSVAU2187N212345", "invalid_field"),
        ("driving_licence", "vehicle_classes", "C7", "invalid_field"),
        ("driving_licence", "vehicle_classes", "C1C1", "invalid_field"),
        ("resident_id_card", "sex", "男", "invalid_field"),
        ("resident_id_card", "name", " 李明华", "invalid_field"),
        ("resident_id_card", "address", "x" * 201, "invalid_field"),
        ("birth_medical_certificate", "born_at", "2024-03-08 06:42", "invalid_date"),
        ("marriage_certificate", "wife_id_number", WANG_JING[:-1] + "Y", "invalid_id_number"),
        ("business_licence", "credit_code", COMPANY[:-1] + "I", "invalid_credit_code"),
    ],
)
def test_face_values_are_checked_by_kind(
    certificate_type: CertificateType, field: str, value: str, code: str
) -> None:
    """Each face value is checked by its kind and refused with its path."""
    data = sample_json(certificate_type)
    data["fields"][field] = value
    error = refusal(data)
    assert (error.code, error.field) == (code, f"fields.{field}")


def test_refusals_never_repeat_personal_data() -> None:
    """Sentences name fields but not the ID numbers or names that were refused."""
    data = sample_json("marriage_certificate")
    data["fields"]["husband_id_number"] = OTHER_PERSON
    error = refusal(data)
    assert error.code == "inconsistent_field"
    for secret in (OTHER_PERSON, LI_MINGHUA, "李明华"):
        assert secret not in str(error)


# --- effective status -----------------------------------------------------------------------


def test_valid_certificate_past_its_validity_is_expired() -> None:
    """A certificate stored as valid is expired the day after valid_until, not on it."""
    certificate = sample("residence_permit")
    assert certificate.valid_until == date(2026, 1, 10)
    assert effective_status(certificate, date(2026, 1, 10)) is CertificateStatus.VALID
    assert effective_status(certificate, date(2026, 1, 11)) is CertificateStatus.EXPIRED


@pytest.mark.parametrize("status", ["revoked", "suspended", "expired"])
def test_stored_non_valid_status_stands(status: str) -> None:
    """Revoked, suspended and expired certificates report that status, in or out of validity."""
    certificate = sample("driving_licence", status=status)
    assert effective_status(certificate, TODAY).value == status
    assert effective_status(certificate, date(2040, 1, 1)).value == status


def test_long_term_certificate_never_expires() -> None:
    """A certificate without valid_until stays valid."""
    assert effective_status(sample("marriage_certificate"), date(2099, 1, 1)).value == "valid"


def test_china_date_is_beijing_time() -> None:
    """16:30 UTC on 31 May is already 1 June in Beijing."""
    assert china_date(datetime(2025, 5, 31, 16, 30, tzinfo=UTC).timestamp()) == date(2025, 6, 1)
    assert china_date(datetime(2025, 5, 31, 15, 59, tzinfo=UTC).timestamp()) == date(2025, 5, 31)


def test_constructing_directly_runs_the_same_checks() -> None:
    """A Certificate built in code is checked like one parsed from JSON."""
    valid = sample("resident_id_card")
    with pytest.raises(CertificateError) as caught:
        Certificate(
            certificate_id=valid.certificate_id,
            type=valid.type,
            issuing_authority=valid.issuing_authority,
            issuing_authority_code=valid.issuing_authority_code,
            holder_name=valid.holder_name,
            holder_code_type="111",
            holder_code=valid.holder_code,
            issued_on=valid.issued_on,
            valid_from=valid.valid_from,
            valid_until=valid.valid_until,
            status=CertificateStatus.VALID,
            fields={**valid.fields, "ethnicity": ""},
        )
    assert (caught.value.code, caught.value.field) == ("invalid_field", "fields.ethnicity")
