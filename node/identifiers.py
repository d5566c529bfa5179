"""National identifier forms: resident ID numbers, credit codes and certificate identifiers.

Three forms arrive from outside (REST bodies, peer messages, provincial platforms) and are
validated on every input (DESIGN.md §7, DOMAIN.md "Check characters"):

- resident ID number, GB 11643: 18 characters, 17 digits and a MOD 11-2 check character
  (0-9 or X); characters 7-14 are the birth date;
- unified social credit code, GB 32100: 18 characters from ``0-9 A-H J-N P-R T-U W-Y``,
  characters 3-8 the administrative division, the last a MOD 31 check character;
- certificate identifier (证照标识), GB/T 36904 as provinces build it:
  ``1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>`` with an ISO/IEC 7064
  MOD 37,36 check character over type + issuer + serial + version.

Rules this module keeps:

- A validator returns the canonical form (upper case) or raises ``IdentifierError`` with a
  stable ``code``, the ``field`` at fault (the caller names it) and a sentence that says
  what is wrong. The sentence never repeats the value: ID numbers are personal data and
  errors end up in logs and problem documents. It may show one offending character.
- Lower-case letters are accepted and upper-cased (a hand-typed ``x`` in an ID number is
  common). Nothing else is cleaned: spaces and dashes are refused, because these values
  travel between machines and one canonical form keeps digests and lookups exact.
- Check characters come from python-stdnum; this module adds what stdnum does not check
  (or checks differently) and the messages. Each difference is explained where it is made.
- "Malformed" and "outside the federation" are different answers: ``parse_certificate_id``
  accepts a well-formed identifier from any province, and ``issuer_province`` refuses one
  whose issuer is not Shanghai, Jiangsu, Zhejiang or Anhui with ``unknown_issuer``.
"""

from __future__ import annotations

import functools
import random
import string
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from stdnum.cn import ric, uscc
from stdnum.iso7064 import mod_37_36

from node.vocabulary import PROVINCES

IdentifierErrorCode = Literal[
    "invalid_id_number",
    "invalid_credit_code",
    "invalid_certificate_id",
    "unknown_issuer",
    "invalid_code_type",
    "invalid_matter_code",
]
IssuerCodeKind = Literal["credit_code", "area_code"]
Sex = Literal["male", "female"]

PROVINCE_PREFIXES: Final = {province.code[:2]: name for name, province in PROVINCES.items()}
"""First two digits of a GB/T 2260 division → the federation member's name."""

MATTER_CODE_LENGTH: Final = 31
"""A matter code: an 18-character credit code and 13 digits (``validate_matter_code``)."""

CODE_TYPE_ID_NUMBER: Final = "111"
CODE_TYPE_CREDIT_CODE: Final = "001"

CERTIFICATE_ID_PREFIX: Final = "1.2.156.3005.2"
MAX_SERIAL_LENGTH: Final = 40
"""Serials are variable length; 40 is well above any seen in practice and bounds the input."""

_DIGITS: Final = frozenset(string.digits)
_ID_CHECK_CHARACTERS: Final = frozenset("0123456789X")
# GB 32100 leaves out I, O, S, V and Z (easily misread as 1, 0, 5, U and 2).
_CREDIT_CODE_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_CODE_CHARACTERS: Final = frozenset(_CREDIT_CODE_ALPHABET)
_SERIAL_CHARACTERS: Final = frozenset(string.digits + string.ascii_uppercase)
_EARLIEST_BIRTH: Final = date(1900, 1, 1)
_ID_LENGTH: Final = 18
_CREDIT_CODE_LENGTH: Final = 18
_TYPE_CODE_LENGTH: Final = 21
_AREA_CODE_LENGTH: Final = 6
# prefix + type + 18-character issuer + longest serial + version + check, and the 5 dots.
_MAX_CERTIFICATE_ID_LENGTH: Final = (
    len(CERTIFICATE_ID_PREFIX) + _TYPE_CODE_LENGTH + 18 + MAX_SERIAL_LENGTH + 3 + 1 + 5
)


class IdentifierError(ValueError):
    """An identifier was refused.

    ``code`` is stable and machine-readable; ``field`` names the input at fault;
    ``detail`` (also ``str(error)``) is a sentence that names the field and never contains
    the refused value.
    """

    def __init__(self, code: IdentifierErrorCode, detail: str, *, field: str = "code") -> None:
        super().__init__(detail)
        self.code: IdentifierErrorCode = code
        self.field = field
        self.detail = detail


def _ordinal(position: int) -> str:
    return f"character {position}"


# --- resident ID numbers (GB 11643) ---------------------------------------------------------


def validate_id_number(value: str, *, field: str = "code", today: date | None = None) -> str:
    """Return the canonical (upper-case) form of a resident ID number, or refuse it.

    ``today`` bounds the birth date (no births in the future); it defaults to the local date
    and is a parameter so that tests need no clock.
    """

    def refuse(detail: str) -> IdentifierError:
        return IdentifierError("invalid_id_number", f"{field}: {detail}", field=field)

    if not isinstance(value, str):
        raise refuse("the ID number must be a string")
    number = value.upper()
    if len(number) != _ID_LENGTH:
        raise refuse(f"the ID number has {len(number)} characters; it must have {_ID_LENGTH}")
    for index, char in enumerate(number[:-1]):
        if char not in _DIGITS:
            raise refuse(f"{_ordinal(index + 1)} of the ID number must be a digit")
    if number[-1] not in _ID_CHECK_CHARACTERS:
        raise refuse(f"{_ordinal(_ID_LENGTH)} of the ID number must be a digit or X")
    # stdnum.cn.ric.validate would also look the first six digits up in its own copy of the
    # division list; DOMAIN.md asks for the check character and a real birth date only, and
    # divisions are renamed and merged faster than any copy is updated. So the check
    # character comes from stdnum and the date is checked here, with a message of our own.
    expected = ric.calc_check_digit(number)
    if number[-1] != expected:
        raise refuse(f"wrong check character {number[-1]} (expected {expected}) in the ID number")
    digits = number[6:14]
    try:
        birth = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise refuse(f"birth date {digits} in the ID number is not a real date") from None
    if birth < _EARLIEST_BIRTH:
        raise refuse(f"birth date {digits} in the ID number is before 1900")
    if birth > (today or date.today()):
        raise refuse(f"birth date {digits} in the ID number is in the future")
    return number


def make_id_number(rng: random.Random, *, division: str, birth: date, sex: Sex) -> str:
    """A valid ID number for seeding and tests: the order code is odd for men, even for women."""
    _require_division(division)
    if sex not in ("male", "female"):
        raise ValueError(f"sex must be 'male' or 'female', not {sex!r}")
    order = rng.randrange(1, 999, 2) if sex == "male" else rng.randrange(2, 999, 2)
    body = f"{division}{birth:%Y%m%d}{order:03d}"
    # calc_check_digit ignores the last character, so any placeholder will do.
    return body + ric.calc_check_digit(body + "0")


# --- unified social credit codes (GB 32100) -------------------------------------------------


def validate_credit_code(value: str, *, field: str = "code") -> str:
    """Return the canonical (upper-case) form of a unified social credit code, or refuse it."""

    def refuse(detail: str) -> IdentifierError:
        return IdentifierError("invalid_credit_code", f"{field}: {detail}", field=field)

    if not isinstance(value, str):
        raise refuse("the credit code must be a string")
    code = value.upper()
    if len(code) != _CREDIT_CODE_LENGTH:
        raise refuse(
            f"the credit code has {len(code)} characters; it must have {_CREDIT_CODE_LENGTH}"
        )
    # stdnum.cn.uscc.validate demands digits in characters 1-8, but GB 32100 lets the first
    # (registering authority) be a letter too: A, N and Y are in use. Only characters 3-8,
    # the administrative division, are digits by definition, and the federation routes on
    # them, so that is what is checked here; the check character comes from stdnum.
    for index, char in enumerate(code):
        if char not in _CREDIT_CODE_CHARACTERS:
            raise refuse(
                f"{_ordinal(index + 1)} of the credit code is not one of 0-9 A-H J-N P-R T-U W-Y"
            )
        if 2 <= index < 8 and char not in _DIGITS:
            raise refuse(
                f"{_ordinal(index + 1)} of the credit code must be a digit "
                "(characters 3-8 are the administrative division)"
            )
    expected = uscc.calc_check_digit(code[:-1])
    if code[-1] != expected:
        raise refuse(f"wrong check character {code[-1]} (expected {expected}) in the credit code")
    return code


def division_of_credit_code(code: str, *, field: str = "code") -> str:
    """The six-digit administrative division inside a credit code (characters 3-8)."""
    return validate_credit_code(code, field=field)[2:8]


def make_credit_code(rng: random.Random, *, division: str) -> str:
    """A valid credit code for seeding and tests, registered in ``division``.

    The first two characters are a common authority/entity pair (9 1 = market regulator /
    enterprise, and so on); the nine organisation characters are drawn from the alphabet.
    """
    _require_division(division)
    head = rng.choice(("91", "92", "93", "11", "12", "13", "51", "52", "53", "Y1"))
    organisation = "".join(rng.choice(_CREDIT_CODE_ALPHABET) for _ in range(9))
    body = head + division + organisation
    return body + uscc.calc_check_digit(body)


# --- matter codes (实施编码) -------------------------------------------------------------------


def validate_matter_code(value: object, *, field: str = "code") -> str:
    """Check a matter code's shape and check character; return it unchanged.

    A matter code (implementation code of the cross-province catalog) is the implementing
    body's unified social credit code (check character verified) followed by 13 digits,
    written in upper case: 31 characters. Refusals are ``invalid_matter_code``.
    """

    def refuse(detail: str) -> IdentifierError:
        return IdentifierError("invalid_matter_code", f"{field}: {detail}", field=field)

    if not isinstance(value, str):
        raise refuse(f"expected a string, got {type(value).__name__}")
    if len(value) != MATTER_CODE_LENGTH:
        raise refuse(
            f"a matter code has {MATTER_CODE_LENGTH} characters (an 18-character credit code "
            f"and 13 digits), not {len(value)}"
        )
    if value != value.upper():
        raise refuse("a matter code is written in upper case")
    try:
        validate_credit_code(value[:_CREDIT_CODE_LENGTH], field=field)
    except IdentifierError as error:
        sentence = error.detail.removeprefix(f"{error.field}: ")
        raise refuse(f"characters 1-18 (the implementing body's credit code): {sentence}") from None
    for index, char in enumerate(value[_CREDIT_CODE_LENGTH:], start=_CREDIT_CODE_LENGTH + 1):
        if char not in _DIGITS:
            raise refuse(f"character {index} of a matter code must be a digit")
    return value


# --- holder codes ---------------------------------------------------------------------------


def validate_holder_code(
    code_type: str, value: str, *, field: str = "code", type_field: str = "code_type"
) -> str:
    """Validate a holder code by its type: ``111`` resident ID number, ``001`` credit code."""
    if code_type == CODE_TYPE_ID_NUMBER:
        return validate_id_number(value, field=field)
    if code_type == CODE_TYPE_CREDIT_CODE:
        return validate_credit_code(value, field=field)
    raise IdentifierError(
        "invalid_code_type",
        f"{type_field}: the holder code type must be {CODE_TYPE_ID_NUMBER!r} (resident ID "
        f"number) or {CODE_TYPE_CREDIT_CODE!r} (unified social credit code)",
        field=type_field,
    )


# --- administrative divisions ---------------------------------------------------------------


def province_of_division(division: str) -> str | None:
    """The federation province of a six-digit division, or None (outside it, or not a division)."""
    if len(division) != _AREA_CODE_LENGTH or not set(division) <= _DIGITS:
        return None
    return PROVINCE_PREFIXES.get(division[:2])


def _require_division(division: str) -> None:
    if len(division) != _AREA_CODE_LENGTH or not set(division) <= _DIGITS:
        raise ValueError("division must be six digits")


# --- certificate identifiers (证照标识) -------------------------------------------------------


@dataclass(frozen=True)
class CertificateId:
    """A certificate identifier, always valid: construction checks every part and the check.

    Build one with ``parse_certificate_id`` (from text) or ``make_certificate_id`` (which
    computes the check character).
    """

    type_code: str
    """21 characters: the defining ministry's credit code and a three-digit sequence."""
    issuer_code: str
    """The issuing authority's 18-character credit code, or a 6-digit area code."""
    issuer_code_kind: IssuerCodeKind
    """Which of the two the issuer code is (one Anhui system uses area codes)."""
    serial: str
    """Upper-case letters and digits, 1 to ``MAX_SERIAL_LENGTH`` characters."""
    version: str
    """Three digits, increasing on change or re-issue."""
    check: str
    """ISO/IEC 7064 MOD 37,36 over type + issuer + serial + version."""

    def __post_init__(self) -> None:
        field = "certificate_id"
        kind = _check_parts(self.type_code, self.issuer_code, self.serial, self.version, field)
        if kind != self.issuer_code_kind:
            raise _certificate_error(
                field,
                f"issuer_code_kind is {self.issuer_code_kind} but the issuer code is a {kind}",
            )
        _require_check(
            self.type_code, self.issuer_code, self.serial, self.version, self.check, field
        )

    def __str__(self) -> str:
        return ".".join(
            (
                CERTIFICATE_ID_PREFIX,
                self.type_code,
                self.issuer_code,
                self.serial,
                self.version,
                self.check,
            )
        )

    @property
    def issuer_division(self) -> str:
        """The issuer's six-digit administrative division."""
        if self.issuer_code_kind == "credit_code":
            return self.issuer_code[2:8]
        return self.issuer_code

    @property
    def issuer_province(self) -> str | None:
        """The federation province that issued the certificate, or None if outside it."""
        return province_of_division(self.issuer_division)


def parse_certificate_id(value: str, *, field: str = "certificate_id") -> CertificateId:
    """Parse and validate a certificate identifier in its dotted national form.

    Any well-formed identifier is returned, whichever province issued it; ask
    ``issuer_province`` whether the issuer is a federation member. Identifiers already seen
    are answered from a bounded cache (a ``CertificateId`` is immutable): a node checks the
    same certificates again and again, and each check is two credit codes and a MOD 37,36
    check character. A refusal is never cached.
    """
    if not isinstance(value, str):
        raise _certificate_error(field, "the certificate identifier must be a string")
    return _parse_certificate_id(value, field)


@functools.lru_cache(maxsize=8192)
def _parse_certificate_id(value: str, field: str) -> CertificateId:
    if len(value) > _MAX_CERTIFICATE_ID_LENGTH:
        raise _certificate_error(
            field,
            f"the certificate identifier has {len(value)} characters; "
            f"at most {_MAX_CERTIFICATE_ID_LENGTH} are possible",
        )
    text = value.upper()
    prefix = CERTIFICATE_ID_PREFIX + "."
    if not text.startswith(prefix):
        raise _certificate_error(field, f"the certificate identifier must start with {prefix}")
    parts = text[len(prefix) :].split(".")
    if len(parts) != 5:
        raise _certificate_error(
            field,
            f"the certificate identifier has {len(parts)} parts after {CERTIFICATE_ID_PREFIX}; "
            "it must have 5 (type, issuer, serial, version, check)",
        )
    type_code, issuer_code, serial, version, check = parts
    kind = _check_parts(type_code, issuer_code, serial, version, field)
    _require_check(type_code, issuer_code, serial, version, check, field)
    return CertificateId(type_code, issuer_code, kind, serial, version, check)


def make_certificate_id(
    type_code: str, issuer_code: str, serial: str, version: str = "001"
) -> CertificateId:
    """A certificate identifier with its check character computed (for seeding and simulation)."""
    type_code, issuer_code, serial = type_code.upper(), issuer_code.upper(), serial.upper()
    kind = _check_parts(type_code, issuer_code, serial, version, "certificate_id")
    check = mod_37_36.calc_check_digit(type_code + issuer_code + serial + version)
    return CertificateId(type_code, issuer_code, kind, serial, version, check)


def issuer_province(cert_id: CertificateId, *, field: str = "certificate_id") -> str:
    """The federation province that issued ``cert_id``; ``unknown_issuer`` if none did."""
    province = cert_id.issuer_province
    if province is None:
        raise IdentifierError(
            "unknown_issuer",
            f"{field}: the certificate was issued in division {cert_id.issuer_division}, "
            "which is outside the federation (Shanghai, Jiangsu, Zhejiang, Anhui)",
            field=field,
        )
    return province


def _certificate_error(field: str, detail: str) -> IdentifierError:
    return IdentifierError("invalid_certificate_id", f"{field}: {detail}", field=field)


def _check_parts(
    type_code: str, issuer_code: str, serial: str, version: str, field: str
) -> IssuerCodeKind:
    """Check the four checked parts of an identifier; return which kind of issuer code it has."""
    if len(type_code) != _TYPE_CODE_LENGTH:
        raise _certificate_error(
            field,
            f"the type code has {len(type_code)} characters; it must have {_TYPE_CODE_LENGTH} "
            "(a credit code and a three-digit sequence)",
        )
    try:
        validate_credit_code(type_code[:18], field=field)
    except IdentifierError as error:
        raise _certificate_error(field, _inner("type code", error)) from None
    if not set(type_code[18:]) <= _DIGITS:
        raise _certificate_error(field, "the type code must end in three digits")

    kind: IssuerCodeKind
    if len(issuer_code) == _AREA_CODE_LENGTH:
        if not set(issuer_code) <= _DIGITS:
            raise _certificate_error(field, "a six-character issuer code must be six digits")
        kind = "area_code"
    elif len(issuer_code) == _CREDIT_CODE_LENGTH:
        try:
            validate_credit_code(issuer_code, field=field)
        except IdentifierError as error:
            raise _certificate_error(field, _inner("issuer code", error)) from None
        kind = "credit_code"
    else:
        raise _certificate_error(
            field,
            f"the issuer code has {len(issuer_code)} characters; it must be an "
            "18-character credit code or a 6-digit area code",
        )

    if not 1 <= len(serial) <= MAX_SERIAL_LENGTH:
        raise _certificate_error(
            field, f"the serial has {len(serial)} characters; it must have 1 to {MAX_SERIAL_LENGTH}"
        )
    for index, char in enumerate(serial):
        if char not in _SERIAL_CHARACTERS:
            raise _certificate_error(
                field, f"{_ordinal(index + 1)} of the serial is not an upper-case letter or digit"
            )
    if len(version) != 3 or not set(version) <= _DIGITS:
        raise _certificate_error(field, "the version must be three digits")
    return kind


def _require_check(
    type_code: str, issuer_code: str, serial: str, version: str, check: str, field: str
) -> None:
    if len(check) != 1:
        raise _certificate_error(
            field, f"the check part has {len(check)} characters; it must be one letter or digit"
        )
    expected = mod_37_36.calc_check_digit(type_code + issuer_code + serial + version)
    if check != expected:
        raise _certificate_error(
            field, f"wrong check character {check} (expected {expected}) in the identifier"
        )


def _inner(part: str, error: IdentifierError) -> str:
    """Re-word a credit-code refusal as a refusal of one part of an identifier."""
    sentence = error.detail.removeprefix(f"{error.field}: ")
    return f"{part}: {sentence}"
