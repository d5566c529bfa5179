"""Reading one record of a dialect field by field: the interface every reader keeps, the
half of it that the readers of decoded mappings share, and the bytes' text.

A dialect's record is a JSON object (``adapters.strict_json.JsonObject``), an object of a
form or of a form dialect's JSON reply (``adapters.anhui.form.FormFields``) or an XML element
(``adapters.jiangsu.strict_xml.XmlRecord``); the translation steps (``adapters.translation``)
read any of them through ``Fields``. Rules kept:

1. Each field is handed out once, checked by kind, and named in a refusal by its path in the
   dialect; asking for an absent optional field marks it read as well.
2. ``finish()`` refuses every field nobody asked for (``unknown_field``): a record carries
   nothing the reader did not expect.
3. A refusal's sentence never repeats a value (it may be a name or an ID number).
4. Every dialect's bytes are UTF-8: any other byte is ``not_utf8``, naming its offset.
5. No dialect's document nests deeper than ``MAX_NESTING`` levels; a deeper one is refused
   as ``too_deep`` by its reader (``adapters.strict_json``, ``adapters.jiangsu.strict_xml``)
   before it is parsed into anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final, Protocol, Self, TypeVar

from node.platform.adapter import DialectError

T = TypeVar("T")

MAX_NESTING: Final = 32
"""Deepest nesting of a dialect's document (JSON arrays and objects, XML elements; rule 5).
The deepest record of any dialect (a page, a record, a certificate's face, its list, an item)
is under ten levels. Python's JSON parser recurses once a level and gives up near the
recursion limit (about a thousand, shared with the caller's stack) with ``RecursionError``,
so a bound far below that, checked first, keeps a hostile reply from reaching it."""


def utf8(data: bytes, *, what: str) -> str:
    """The text of ``data`` (rule 4); ``what`` names it in the refusal."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DialectError(
            "not_utf8", f"the {what} is not UTF-8 (bad byte at offset {error.start})"
        ) from None


class Fields(Protocol):
    """One record of a dialect, read field by field (rules 1 and 2)."""

    def path(self, name: str) -> str: ...

    def has(self, name: str) -> bool: ...

    def text(self, name: str, *, max_length: int = ...) -> str: ...

    def optional_text(self, name: str, *, max_length: int = ...) -> str | None: ...

    def integer(self, name: str) -> int: ...

    def code(self, name: str, table: Mapping[Any, T], *, error: str = ...) -> T: ...

    def codes(self, name: str, table: Mapping[Any, T]) -> list[T]: ...

    def obj(self, name: str) -> Self: ...

    def optional_obj(self, name: str) -> Self | None: ...

    def objects(self, name: str, *, max_items: int = ...) -> list[Self]: ...

    def finish(self) -> None: ...


class MappingFields:
    """A record held as a decoded mapping (a JSON object, a form's tree), read field by field
    (rules 1 and 2); a subclass says how each kind of value is written (``text`` …)."""

    what: ClassVar[str] = "an object"
    """What the record must be, as a refusal names it."""

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise DialectError("invalid_field", f"must be {self.what}", field=path or "body")
        self._data: Mapping[Any, Any] = data
        self._path = path
        self._read: set[str] = set()

    def path(self, name: str) -> str:
        """The dialect's dotted path of a field of this record."""
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def raw(self, name: str) -> Any:
        """The value as decoded (None if absent), marked read, for kinds not read otherwise."""
        self._read.add(name)
        return self._data.get(name)

    def text(self, name: str, *, max_length: int = 2000) -> str:
        raise NotImplementedError

    def optional_text(self, name: str, *, max_length: int = 2000) -> str | None:
        if self._absent(name):
            return None
        return self.text(name, max_length=max_length)

    def obj(self, name: str) -> Self:
        return type(self)(self._required(name), self.path(name))

    def optional_obj(self, name: str) -> Self | None:
        if self._absent(name):
            return None
        return self.obj(name)

    def finish(self) -> None:
        """Refuse the fields nobody read (rule 2)."""
        for key in self._data:
            if key not in self._read:
                raise DialectError(
                    "unknown_field", "is not a field here", field=self.path(str(key)[:60])
                )

    def _required(self, name: str) -> Any:
        value = self.raw(name)
        if value is None:
            raise DialectError("missing_field", "is required", field=self.path(name))
        return value

    def _absent(self, name: str) -> bool:
        """Whether an optional field is absent (and mark it read either way)."""
        self._read.add(name)
        return not self.has(name)
