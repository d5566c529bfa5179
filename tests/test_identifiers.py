"""National identifier forms: ID numbers, credit codes and certificate identifiers."""

from __future__ import annotations

import random
import string
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum.cn import ric, uscc
from stdnum.iso7064 import mod_37_36

from node.identifiers import (
    CertificateId,
    IdentifierError,
    Sex,
    division_of_credit_code,
    issuer_province,
    make_certificate_id,
    make_credit_code,
    make_id_number,
    parse_certificate_id,
    province_of_division,
    validate_credit_code,
    validate_holder_code,
    validate_id_number,
)

TODAY = date(2025, 6, 1)
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# Replacement characters for single-character changes: all that a typo or a bad encoder could
# produce, including lower case, punctuation and a dot.
CHANGES = string.digits + string.ascii_uppercase + string.ascii_lowercase + ".-# "

divisions = st.from_regex(r"[0-9]{6}", fullmatch=True)
births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
rngs = st.integers(min_value=0, max_value=2**32).map(random.Random)


def id_number(body17: str) -> str:
    """Complete 17 digits with their correct check character."""
    return body17 + ric.calc_check_digit(body17 + "0")


def credit_code(body17: str) -> str:
    return body17 + uscc.calc_check_digit(body17)


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    sex: Sex = draw(st.sampled_from(["male", "female"]))
    return make_id_number(draw(rngs), division=draw(divisions), birth=draw(births), sex=sex)


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    return make_credit_code(draw(rngs), division=draw(divisions))


@st.composite
def certificate_ids(draw: st.DrawFn) -> CertificateId:
    type_code = draw(credit_codes()) + draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    issuer = draw(st.one_of(credit_codes(), divisions))
    serial = draw(st.from_regex(r"[0-9A-Z]{1,40}", fullmatch=True))
    version = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    return make_certificate_id(type_code, issuer, serial, version)


def changed(value: str, position: int, replacement: str) -> str:
    return value[:position] + replacement + value[position + 1 :]


# --- resident ID numbers ----------------------------------------------------------------------


@given(id_numbers())
def test_generated_id_numbers_validate_and_round_trip(number: str) -> None:
    """A generated ID number validates to itself, and its lower-case form to the same."""
    assert validate_id_number(number) == number
    assert validate_id_number(number.lower()) == number


@given(id_numbers(), st.data())
def test_any_single_character_change_to_an_id_number_is_refused(
    number: str, data: st.DataObject
) -> None:
    """Changing any one character of a valid ID number is caught, without echoing it."""
    position = data.draw(st.integers(min_value=0, max_value=len(number) - 1))
    replacement = data.draw(st.sampled_from(CHANGES))
    assume(replacement.upper() != number[position])
    bad = changed(number, position, replacement)
    with pytest.raises(IdentifierError) as caught:
        validate_id_number(bad)
    assert caught.value.code == "invalid_id_number"
    assert bad not in str(caught.value)
    assert number not in str(caught.value)


@given(id_numbers())
def test_id_number_sex_digit_follows_the_requested_sex(number: str) -> None:
    """The generator's order code is odd for men and even for women, never 000."""
    rng = random.Random(number)
    male = make_id_number(rng, division="310115", birth=date(1990, 1, 1), sex="male")
    female = make_id_number(rng, division="310115", birth=date(1990, 1, 1), sex="female")
    assert int(male[16]) % 2 == 1
    assert int(female[16]) % 2 == 0
    assert female[14:17] != "000"


def test_lower_case_x_check_character_is_accepted_and_upper_cased() -> None:
    """An ID number whose check character is X is accepted as x and returned with X."""
    number = next(
        candidate
        for order in range(1000)
        if (candidate := id_number(f"32050219850712{order:03d}")).endswith("X")
    )
    assert validate_id_number(number.lower(), today=TODAY) == number


@pytest.mark.parametrize(
    ("birth", "valid"),
    [("20240229", True), ("20230229", False), ("20000229", True), ("19000229", False)],
)
def test_february_29_is_a_date_only_in_leap_years(birth: str, valid: bool) -> None:
    """Feb 29 passes in a leap year and is not a real date otherwise (1900 was not leap)."""
    number = id_number(f"340104{birth}123")
    if valid:
        assert validate_id_number(number, today=TODAY) == number
    else:
        with pytest.raises(IdentifierError, match=f"birth date {birth} .* not a real date"):
            validate_id_number(number, today=TODAY)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (id_number("11010119900307123")[:-1], "has 17 characters; it must have 18"),
        (id_number("11010119900307123") + "1", "has 19 characters"),
        ("", "has 0 characters"),
        ("1101011990A307123X", "character 11 of the ID number must be a digit"),
        ("11010119900307123A", "character 18 of the ID number must be a digit or X"),
        (" " + id_number("11010119900307123")[1:], "character 1 of the ID number must be a"),
        (id_number("11010119990231123"), "birth date 19990231 in the ID number is not a real"),
        (id_number("11010118991231123"), "birth date 18991231 in the ID number is before 1900"),
        (id_number("11010120250602123"), "birth date 20250602 in the ID number is in the future"),
        (id_number("11010119901307123"), "birth date 19901307 in the ID number is not a real"),
    ],
)
def test_bad_id_numbers_say_what_is_wrong_without_echoing_the_number(
    value: str, fragment: str
) -> None:
    """Each kind of bad ID number gets invalid_id_number and a sentence naming the fault."""
    with pytest.raises(IdentifierError) as caught:
        validate_id_number(value, field="applicant.code", today=TODAY)
    error = caught.value
    assert error.code == "invalid_id_number"
    assert error.field == "applicant.code"
    assert str(error).startswith("applicant.code: ")
    assert fragment in error.detail
    if value.strip():
        assert value.strip() not in str(error)


def test_wrong_check_character_names_the_expected_one() -> None:
    """A wrong check character is named with the expected one, and the number is not echoed."""
    good = id_number("11010119900307123")
    wrong = "1" if good[-1] != "1" else "2"
    with pytest.raises(IdentifierError) as caught:
        validate_id_number(good[:-1] + wrong, today=TODAY)
    assert caught.value.detail == (
        f"code: wrong check character {wrong} (expected {good[-1]}) in the ID number"
    )


def test_birth_on_today_is_accepted() -> None:
    """A child born today has a valid ID number (the bound is 'not after today')."""
    number = id_number(f"310101{TODAY:%Y%m%d}002")
    assert validate_id_number(number, today=TODAY) == number


def test_non_string_id_number_is_refused_with_a_code() -> None:
    """A JSON number in place of the ID number string is an invalid_id_number, not a crash."""
    with pytest.raises(IdentifierError) as caught:
        validate_id_number(110101199003071234, today=TODAY)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_id_number"


# --- unified social credit codes --------------------------------------------------------------


@given(credit_codes())
def test_generated_credit_codes_validate_and_round_trip(code: str) -> None:
    """A generated credit code validates to itself, and its lower-case form to the same."""
    assert validate_credit_code(code) == code
    assert validate_credit_code(code.lower()) == code


@given(credit_codes(), st.data())
def test_any_single_character_change_to_a_credit_code_is_refused(
    code: str, data: st.DataObject
) -> None:
    """Changing any one character of a valid credit code is caught by format or check."""
    position = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    replacement = data.draw(st.sampled_from(CHANGES))
    assume(replacement.upper() != code[position])
    with pytest.raises(IdentifierError) as caught:
        validate_credit_code(changed(code, position, replacement))
    assert caught.value.code == "invalid_credit_code"


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_credit_code_letters_outside_gb_32100_are_refused_by_position(letter: str) -> None:
    """I, O, S, V and Z are not in the GB 32100 alphabet; the message gives the position."""
    value = changed(credit_code("91310000MA1FL0000"), 10, letter)
    with pytest.raises(IdentifierError, match="character 11 of the credit code is not one of"):
        validate_credit_code(value)


def test_credit_code_division_must_be_digits() -> None:
    """A letter among characters 3-8 (the division) is refused even if the check fits."""
    with pytest.raises(IdentifierError, match=r"character 4 .* must be a digit"):
        validate_credit_code(credit_code("913A0000MA1FL0000"))


@pytest.mark.parametrize("head", ["N2", "Y1", "A1"])
def test_credit_codes_with_a_letter_authority_are_accepted(head: str) -> None:
    """Registering-authority letters (N agriculture, Y other, A military) are valid first chars."""
    code = credit_code(f"{head}330106MA2B00000")
    assert validate_credit_code(code) == code


def test_credit_code_wrong_check_and_length() -> None:
    """A wrong check character and a wrong length each give invalid_credit_code."""
    good = credit_code("91320500MA1N00000")
    wrong = "0" if good[-1] != "0" else "1"
    with pytest.raises(IdentifierError, match=rf"wrong check character {wrong} \(expected"):
        validate_credit_code(good[:-1] + wrong)
    with pytest.raises(IdentifierError, match="has 17 characters"):
        validate_credit_code(good[:-1])


def test_division_of_credit_code_is_characters_3_to_8() -> None:
    """The division inside a credit code is its characters 3-8."""
    assert division_of_credit_code(credit_code("91330106MA2B00000")) == "330106"


@pytest.mark.parametrize(
    ("division", "province"),
    [
        ("310115", "shanghai"),
        ("320500", "jiangsu"),
        ("330106", "zhejiang"),
        ("340100", "anhui"),
        ("440000", None),
        ("110000", None),
        ("3101", None),
        ("31011A", None),
    ],
)
def test_province_of_division(division: str, province: str | None) -> None:
    """The first two digits of a six-digit division name the province, if it is a member."""
    assert province_of_division(division) == province


# --- holder codes -----------------------------------------------------------------------------


def test_holder_code_types_dispatch_to_their_validator() -> None:
    """Type 111 is checked as an ID number and 001 as a credit code."""
    person = id_number("31011519900101123")
    company = credit_code("91310000MA1FL0000")
    assert validate_holder_code("111", person.lower()) == person
    assert validate_holder_code("001", company) == company
    with pytest.raises(IdentifierError) as caught:
        validate_holder_code("111", company)
    assert caught.value.code == "invalid_id_number"
    with pytest.raises(IdentifierError) as caught:
        validate_holder_code("001", person, field="holder_code")
    assert (caught.value.code, caught.value.field) == ("invalid_credit_code", "holder_code")


def test_unknown_holder_code_type_names_the_type_field() -> None:
    """A holder code type other than 111 or 001 is invalid_code_type on the type's field."""
    with pytest.raises(IdentifierError) as caught:
        validate_holder_code("002", "whatever", type_field="applicant.code_type")
    assert caught.value.code == "invalid_code_type"
    assert caught.value.field == "applicant.code_type"


# --- certificate identifiers ------------------------------------------------------------------

MINISTRY = credit_code("11100000MB0000000") + "001"
ISSUER_SH = credit_code("11310000MB0000000")
ISSUER_GD = credit_code("11440300MB0000000")


@given(certificate_ids())
def test_generated_certificate_ids_parse_and_round_trip(cert: CertificateId) -> None:
    """A generated identifier parses back to itself, from upper or lower case."""
    text = str(cert)
    assert text.startswith("1.2.156.3005.2.")
    assert parse_certificate_id(text) == cert
    assert parse_certificate_id(text.lower()) == cert
    # Independent of the module: the check verifies over the parts after the prefix, no dots.
    assert mod_37_36.is_valid("".join(text.split(".")[5:]))


@given(certificate_ids(), st.data())
def test_any_single_character_change_to_a_certificate_id_is_refused(
    cert: CertificateId, data: st.DataObject
) -> None:
    """Changing any one character of a valid identifier makes it malformed, never another id."""
    text = str(cert)
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    replacement = data.draw(st.sampled_from(CHANGES))
    assume(replacement.upper() != text[position])
    with pytest.raises(IdentifierError) as caught:
        parse_certificate_id(changed(text, position, replacement))
    assert caught.value.code == "invalid_certificate_id"


def test_certificate_id_parts_and_province() -> None:
    """The parts of an identifier are exposed, and its issuer's province found from them."""
    cert = make_certificate_id(MINISTRY, ISSUER_SH, "sh2024000123", "002")
    assert cert.serial == "SH2024000123"
    assert cert.issuer_code_kind == "credit_code"
    assert cert.issuer_division == "310000"
    assert cert.issuer_province == "shanghai"
    assert issuer_province(cert) == "shanghai"
    assert str(cert).split(".")[5:] == [MINISTRY, ISSUER_SH, "SH2024000123", "002", cert.check]


def test_area_code_issuer_is_accepted_and_recorded() -> None:
    """A 6-digit area code in the issuer place (one Anhui system) parses as an area_code issuer."""
    cert = make_certificate_id(MINISTRY, "340104", "AH0001")
    parsed = parse_certificate_id(str(cert))
    assert parsed.issuer_code_kind == "area_code"
    assert parsed.issuer_division == "340104"
    assert issuer_province(parsed) == "anhui"


@pytest.mark.parametrize("issuer", [ISSUER_GD, "440000"])
def test_issuer_outside_the_federation_is_unknown_not_malformed(issuer: str) -> None:
    """A well-formed identifier from Guangdong parses, then gets unknown_issuer."""
    cert = parse_certificate_id(str(make_certificate_id(MINISTRY, issuer, "GD1")))
    assert cert.issuer_province is None
    with pytest.raises(IdentifierError) as caught:
        issuer_province(cert, field="certificate_id")
    assert caught.value.code == "unknown_issuer"
    assert caught.value.field == "certificate_id"
    assert "440" in caught.value.detail


def _good() -> str:
    return str(make_certificate_id(MINISTRY, ISSUER_SH, "ABC123"))


def _with_part(index: int, part: str) -> str:
    parts = _good().split(".")
    parts[index] = part
    return ".".join(parts)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1.2.156.3005.3." + _good()[len("1.2.156.3005.2.") :], "must start with 1.2.156.3005.2."),
        (_good() + ".X", "has 6 parts"),
        (_good().rsplit(".", 1)[0], "has 4 parts"),
        (_with_part(5, MINISTRY[:-1]), "type code has 20 characters"),
        (_with_part(5, MINISTRY[:-3] + "0A1"), "type code must end in three digits"),
        (_with_part(5, changed(MINISTRY, 17, "#")), "type code: character 18 of the credit"),
        (_with_part(6, "3100001"), "issuer code has 7 characters"),
        (_with_part(6, "3100A0"), "six-character issuer code must be six digits"),
        (_with_part(6, changed(ISSUER_SH, 0, "Z")), "issuer code: character 1 of the credit"),
        (_with_part(7, ""), "serial has 0 characters"),
        (f"1.2.156.3005.2.{MINISTRY}.310000.{'A' * 41}.001.0", "serial has 41 characters"),
        (_with_part(7, "AB-1"), "character 3 of the serial is not an upper-case letter or digit"),
        (_with_part(8, "01"), "version must be three digits"),
        (_with_part(9, "AB"), "check part has 2 characters"),
        ("1" * 200, "has 200 characters"),
    ],
)
def test_bad_certificate_ids_say_which_part_is_wrong(value: str, fragment: str) -> None:
    """Each malformed identifier gets invalid_certificate_id and a sentence naming the part."""
    with pytest.raises(IdentifierError) as caught:
        parse_certificate_id(value, field="materials[0].certificate_id")
    error = caught.value
    assert error.code == "invalid_certificate_id"
    assert error.field == "materials[0].certificate_id"
    assert fragment in error.detail


def test_wrong_certificate_check_character_names_the_expected_one() -> None:
    """A wrong MOD 37,36 check character is reported with the expected one."""
    good = _good()
    wrong = "0" if good[-1] != "0" else "1"
    with pytest.raises(IdentifierError, match=rf"wrong check character {wrong} \(expected"):
        parse_certificate_id(good[:-1] + wrong)


def test_certificate_id_cannot_be_built_inconsistent() -> None:
    """Constructing a CertificateId directly checks the check character and the issuer kind."""
    cert = make_certificate_id(MINISTRY, ISSUER_SH, "ABC123")
    wrong = "0" if cert.check != "0" else "1"
    with pytest.raises(IdentifierError, match="wrong check character"):
        CertificateId(MINISTRY, ISSUER_SH, "credit_code", "ABC123", "001", wrong)
    with pytest.raises(
        IdentifierError, match="issuer_code_kind is area_code but the issuer code is a credit_code"
    ):
        CertificateId(MINISTRY, ISSUER_SH, "area_code", "ABC123", "001", cert.check)
