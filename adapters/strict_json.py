"""Strict reading of JSON for the JSON dialects, on both sides of the wire.

A simulated platform reads requests with it and an adapter reads replies with it, so both
refuse the same things the same way. Rules kept:

1. Bytes are UTF-8 (else ``not_utf8``) holding one JSON object (else ``malformed_body``);
   ``NaN``, ``Infinity`` and a key repeated in one object are refused as malformed.
   Before anything is parsed, arrays and objects nested deeper than ``MAX_NESTING`` are
   ``too_deep`` (Python's parser would recurse into ``RecursionError``); while parsing, a
   number of more than ``MAX_NUMBER_DIGITS`` digits, or a fraction too large for a float,
   is ``number_too_large`` (Python's ``int()`` raises ``ValueError`` past 4,300 digits and
   ``float()`` makes ``inf`` of ``1e999``). Nothing else can come out of reading the bytes.
2. ``JsonObject`` hands out each field once, checked by kind; a required field that is
   absent or null is ``missing_field``, a value of the wrong kind ``invalid_field``, a code
   not in its table the caller's code (``unknown_code``, ``unknown_status``), a list of
   codes that is not a non-empty list ``invalid_field``, and ``finish()`` refuses every
   field nobody asked for (``unknown_field``).
3. Every refusal is a ``DialectError`` whose ``field`` is the dialect's own path
   (``applicant.certNo``, ``materials[1].fileHash``) and whose sentence never repeats the
   value (it may be personal data).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final, TypeVar

from adapters.records import MAX_NESTING, MappingFields, utf8
from node.platform.adapter import DialectError

T = TypeVar("T")

MAX_NUMBER_DIGITS: Final = 30
"""Most digits a JSON number may have (sign, point and exponent aside; rule 1). The longest
number any dialect writes is an epoch in milliseconds (13 digits); past 30 a number is
garbage or an attack, refused before ``int()`` or ``float()`` sees it."""

# A JSON string, or what is left of the text from an unterminated one: it always matches,
# possessively, so no text makes the search backtrack.
_STRING: Final = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
# What JSON writes outside strings besides brackets: dropped before brackets are counted.
_NOT_BRACKETS: Final = str.maketrans(dict.fromkeys(" \t\n\r,:0123456789+-.eEtruefalsn"))


def decode_json_object(data: bytes, *, what: str = "body") -> dict[str, Any]:
    """The JSON object in ``data`` (rule 1)."""
    text = utf8(data, what=what)
    _check_nesting(text, what)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_int=_integer,
            parse_float=_fraction,
        )
    except _NumberTooLarge:
        raise DialectError(
            "number_too_large",
            f"the {what} holds a number of more than {MAX_NUMBER_DIGITS} digits "
            "or too large for a float",
        ) from None
    except (json.JSONDecodeError, _Refused) as error:
        raise DialectError("malformed_body", f"the {what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise DialectError("malformed_body", f"the {what} must be a JSON object")
    return value


def _check_nesting(text: str, what: str) -> None:
    """Refuse arrays and objects nested deeper than ``MAX_NESTING`` (rule 1), counting the
    brackets outside strings, without parsing. In valid JSON the strings found here are the
    parser's; in invalid JSON the parser stops at the first error, before any deeper level
    than those counted here."""
    depth = 0
    for bracket in _STRING.sub("", text).translate(_NOT_BRACKETS):
        if bracket in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise DialectError(
                    "too_deep", f"the {what} nests arrays and objects deeper than {MAX_NESTING}"
                )
        elif bracket in "]}":
            depth -= 1


class _Refused(ValueError):
    pass


class _NumberTooLarge(ValueError):
    pass


def _integer(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_NUMBER_DIGITS:
        raise _NumberTooLarge
    return int(text)


def _fraction(text: str) -> float:
    if len(text) > 2 * MAX_NUMBER_DIGITS or sum(c.isdigit() for c in text) > MAX_NUMBER_DIGITS:
        raise _NumberTooLarge
    value = float(text)
    if not math.isfinite(value):
        raise _NumberTooLarge
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"key {key[:40]!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


class JsonObject(MappingFields):
    """One decoded JSON object, read field by field (rule 2; ``adapters.records``)."""

    what = "a JSON object"

    def text(self, name: str, *, max_length: int = 2000) -> str:
        value = self._required(name)
        if not isinstance(value, str):
            raise DialectError("invalid_field", "must be a string", field=self.path(name))
        if not value or len(value) > max_length:
            raise DialectError(
                "invalid_field", f"must be 1 to {max_length} characters", field=self.path(name)
            )
        return value

    def integer(self, name: str) -> int:
        value = self._required(name)
        # bool is an int subclass in Python; true is not a number in any dialect.
        if type(value) is not int:
            raise DialectError("invalid_field", "must be a whole number", field=self.path(name))
        return value

    def boolean(self, name: str) -> bool:
        value = self._required(name)
        if not isinstance(value, bool):
            raise DialectError("invalid_field", "must be true or false", field=self.path(name))
        return value

    def code(self, name: str, table: Mapping[Any, T], *, error: str = "unknown_code") -> T:
        """The meaning of a coded value; a code not in ``table`` is refused with ``error``."""
        return _meaning(self._required(name), table, self.path(name), error)

    def codes(self, name: str, table: Mapping[Any, T], *, error: str = "unknown_code") -> list[T]:
        """The meanings of a non-empty list of coded values (each refused as ``code`` would)."""
        value = self.raw(name)
        if not isinstance(value, list) or not value:
            raise DialectError(
                "invalid_field", "must be a non-empty list of codes", field=self.path(name)
            )
        return [
            _meaning(item, table, f"{self.path(name)}[{index}]", error)
            for index, item in enumerate(value)
        ]

    def passthrough(self, name: str) -> dict[str, Any]:
        """An object the dialect carries unchanged (empty if absent), checked to be one."""
        value = self.raw(name)
        if value is not None and not isinstance(value, dict):
            raise DialectError("invalid_field", "must be a JSON object", field=self.path(name))
        return dict(value) if value else {}

    def objects(self, name: str, *, max_items: int = 500) -> list[JsonObject]:
        value = self._required(name)
        if not isinstance(value, list):
            raise DialectError("invalid_field", "must be a list", field=self.path(name))
        if len(value) > max_items:
            raise DialectError(
                "invalid_field", f"must hold at most {max_items} items", field=self.path(name)
            )
        return [JsonObject(item, f"{self.path(name)}[{index}]") for index, item in enumerate(value)]


def _meaning(value: object, table: Mapping[Any, T], path: str, error: str) -> T:
    # bool is an int subclass in Python; true is not a code in any dialect.
    if isinstance(value, bool) or not isinstance(value, int | str) or value not in table:
        known = ", ".join(str(code) for code in table)
        raise DialectError(error, f"is not one of the codes {known}", field=path)
    return table[value]
