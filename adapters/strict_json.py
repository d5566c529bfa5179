"""Strict reading of JSON for the JSON dialects, on both sides of the wire.

A simulated platform reads requests with it and an adapter reads replies with it, so both
refuse the same things the same way. Rules kept:

1. Bytes are UTF-8 (else ``not_utf8``) holding one JSON object (else ``malformed_body``);
   ``NaN``, ``Infinity`` and a key repeated in one object are refused as malformed.
2. ``JsonObject`` hands out each field once, checked by kind; a required field that is
   absent or null is ``missing_field``, a value of the wrong kind ``invalid_field``, a code
   not in its table the caller's code (``unknown_code``, ``unknown_status``), and
   ``finish()`` refuses every field nobody asked for (``unknown_field``).
3. Every refusal is a ``DialectError`` whose ``field`` is the dialect's own path
   (``applicant.certNo``, ``materials[1].fileHash``) and whose sentence never repeats the
   value (it may be personal data).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from node.platform.adapter import DialectError

T = TypeVar("T")


def decode_json_object(data: bytes, *, what: str = "body") -> dict[str, Any]:
    """The JSON object in ``data`` (rule 1)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DialectError(
            "not_utf8", f"the {what} is not UTF-8 (bad byte at offset {error.start})"
        ) from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (json.JSONDecodeError, _Refused) as error:
        raise DialectError("malformed_body", f"the {what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise DialectError("malformed_body", f"the {what} must be a JSON object")
    return value


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"key {key[:40]!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


class JsonObject:
    """One decoded JSON object, read field by field (rule 2)."""

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise DialectError("invalid_field", "must be a JSON object", field=path or "body")
        self._data = data
        self._path = path
        self._read: set[str] = set()

    def path(self, name: str) -> str:
        """The dialect path of a field of this object."""
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def raw(self, name: str) -> Any:
        """The value as decoded (None if absent), for kinds this class does not know."""
        self._read.add(name)
        return self._data.get(name)

    def _required(self, name: str) -> Any:
        value = self.raw(name)
        if value is None:
            raise DialectError("missing_field", "is required", field=self.path(name))
        return value

    def text(self, name: str, *, max_length: int = 2000) -> str:
        value = self._required(name)
        if not isinstance(value, str):
            raise DialectError("invalid_field", "must be a string", field=self.path(name))
        if not value or len(value) > max_length:
            raise DialectError(
                "invalid_field", f"must be 1 to {max_length} characters", field=self.path(name)
            )
        return value

    def optional_text(self, name: str, *, max_length: int = 2000) -> str | None:
        if self._absent(name):
            return None
        return self.text(name, max_length=max_length)

    def integer(self, name: str) -> int:
        value = self._required(name)
        # bool is an int subclass in Python; true is not a number in any dialect.
        if type(value) is not int:
            raise DialectError("invalid_field", "must be a whole number", field=self.path(name))
        return value

    def optional_integer(self, name: str) -> int | None:
        if self._absent(name):
            return None
        return self.integer(name)

    def boolean(self, name: str) -> bool:
        value = self._required(name)
        if not isinstance(value, bool):
            raise DialectError("invalid_field", "must be true or false", field=self.path(name))
        return value

    def code(self, name: str, table: Mapping[Any, T], *, error: str = "unknown_code") -> T:
        """The meaning of a coded value; a code not in ``table`` is refused with ``error``."""
        value = self._required(name)
        if isinstance(value, bool) or not isinstance(value, int | str) or value not in table:
            known = ", ".join(str(code) for code in table)
            raise DialectError(error, f"is not one of the codes {known}", field=self.path(name))
        return table[value]

    def obj(self, name: str) -> JsonObject:
        return JsonObject(self._required(name), self.path(name))

    def optional_obj(self, name: str) -> JsonObject | None:
        if self._absent(name):
            return None
        return self.obj(name)

    def objects(self, name: str, *, max_items: int = 500) -> list[JsonObject]:
        value = self._required(name)
        if not isinstance(value, list):
            raise DialectError("invalid_field", "must be a list", field=self.path(name))
        if len(value) > max_items:
            raise DialectError(
                "invalid_field", f"must hold at most {max_items} items", field=self.path(name)
            )
        return [JsonObject(item, f"{self.path(name)}[{index}]") for index, item in enumerate(value)]

    def finish(self) -> None:
        """Refuse the fields nobody read (rule 2)."""
        for key in self._data:
            if key not in self._read:
                raise DialectError(
                    "unknown_field", "is not a field here", field=self.path(str(key)[:60])
                )

    def _absent(self, name: str) -> bool:
        """Whether an optional field is absent or null (and mark it read either way)."""
        self._read.add(name)
        return not self.has(name)
