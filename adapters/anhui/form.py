"""The Anhui platform's form scheme: nested values as indexed keys, and strict reading.

Requests to the Anhui platform are ``application/x-www-form-urlencoded``; its replies are
JSON. Both carry the same tree of values, so one reader serves the platform (reading a form)
and the adapter (reading a reply). Rules kept:

1. Every scalar is text. A form has nothing else; a JSON reply writes every scalar as a JSON
   string as well (``"xh": "3"``), and a number, boolean or null where text belongs is
   ``invalid_field``. An empty value is the same as an absent one.
2. Nesting is written into the key: ``sqr.xm`` is field ``xm`` of object ``sqr``;
   ``cl[0].mc`` is field ``mc`` of item 0 of list ``cl``; ``blfs[1]`` is item 1 of a list of
   text. A key is dot-separated segments ``name`` or ``name[index]``; a name is a lower-case
   ASCII letter then ASCII letters and digits; an index is a decimal number without leading
   zeros. Indexes of one list run 0, 1, 2 … without gaps. An empty list is sent as no keys at
   all. The dotted path of a key is also how a refusal names the field at fault.
3. The body is UTF-8, and so is every percent-escape in it (``%E5%BC%A0`` is 张); GBK or any
   other encoding is refused as ``not_utf8``. A pair without ``=``, an empty pair, a ``%``
   not followed by two hex digits, a key outside the grammar, a key given twice and two keys
   that disagree about a value's shape (``cl=x`` and ``cl[0].mc=y``) are ``malformed_body``.
4. ``FormFields`` hands out each field once, checked by kind; ``finish()`` refuses every
   field nobody asked for (``unknown_field``). Sentences never repeat values (they may be
   names and ID numbers).

``encode_form`` writes a tree (objects, lists, text) as a form body; ``parse_form`` reads
one back to the same tree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode

from adapters.records import MappingFields, utf8
from node.platform.adapter import DialectError

T = TypeVar("T")

MAX_FIELDS: Final = 2000
MAX_DEPTH: Final = 4
MAX_INDEX: Final = 999

_SEGMENT: Final = re.compile(r"([a-z][A-Za-z0-9]{0,39})(?:\[(0|[1-9][0-9]{0,2})\])?")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NUMBER: Final = re.compile(r"0|[1-9][0-9]{0,17}")


# --- bytes <-> tree -------------------------------------------------------------------------


class _Slots(dict[int, Any]):
    """A list while a form is being read: items by index, checked for gaps at the end."""


def parse_form(data: bytes) -> dict[str, Any]:
    """The tree of values in a form body (rules 2 and 3)."""
    text = utf8(data, what="form body")
    if _BAD_ESCAPE.search(text):
        raise DialectError("malformed_body", "a % must be followed by two hexadecimal digits")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise DialectError(
            "not_utf8", "a percent-escaped value of the form body is not UTF-8"
        ) from None
    except ValueError:
        raise DialectError(
            "malformed_body",
            f"the form body must be key=value pairs joined by & (at most {MAX_FIELDS})",
        ) from None
    tree: dict[str, Any] = {}
    for key, value in pairs:
        _insert(tree, key, value)
    result = _finalise(tree, "")
    assert isinstance(result, dict)
    return result


def _insert(tree: dict[str, Any], key: str, value: str) -> None:
    segments = key.split(".")
    parsed = [_SEGMENT.fullmatch(segment) for segment in segments]
    if len(segments) > MAX_DEPTH or not all(parsed):
        raise DialectError(
            "malformed_body",
            "a key is dot-separated names, each optionally with an [index]",
            field=key[:80],
        )
    node: dict[Any, Any] = tree
    for position, match in enumerate(parsed):
        assert match is not None
        name, index = match.group(1), match.group(2)
        last = position == len(parsed) - 1
        if index is not None:
            slots = node.setdefault(name, _Slots())
            if not isinstance(slots, _Slots):
                raise _shape_conflict(key)
            node, name = slots, int(index)
        if last:
            if name in node:
                raise _shape_conflict(key)
            node[name] = value
        else:
            child = node.setdefault(name, {})
            if type(child) is not dict:
                raise _shape_conflict(key)
            node = child


def _shape_conflict(key: str) -> DialectError:
    return DialectError(
        "malformed_body",
        "this key is given twice, or disagrees with another key about the value's shape",
        field=key[:80],
    )


def _finalise(value: Any, path: str) -> Any:
    if isinstance(value, _Slots):
        for expected in range(len(value)):
            if expected not in value:
                raise DialectError(
                    "malformed_body",
                    "list indexes must run 0, 1, 2 … without gaps",
                    field=f"{path}[{expected}]",
                )
        return [_finalise(value[index], f"{path}[{index}]") for index in range(len(value))]
    if isinstance(value, dict):
        return {
            name: _finalise(item, f"{path}.{name}" if path else name)
            for name, item in value.items()
        }
    return value


def encode_form(tree: Mapping[str, Any]) -> bytes:
    """A tree of objects, lists and text as a form body, keys in the tree's order (rule 2)."""
    return urlencode(list(_flatten(tree, "")), encoding="utf-8").encode("ascii")


def _flatten(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for name, item in value.items():
            yield from _flatten(item, f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value
    else:
        raise TypeError(f"{path}: a form holds only text, objects and lists")


# --- reading a tree field by field ----------------------------------------------------------


class FormFields(MappingFields):
    """One object of a form or of a JSON reply, read field by field (rules 1 and 4;
    ``adapters.records``); its dotted paths are the form's keys."""

    def has(self, name: str) -> bool:
        value = self._data.get(name)
        return value is not None and value != ""

    def text(self, name: str, *, max_length: int = 2000) -> str:
        value = self.raw(name)
        if value is None or value == "":
            raise DialectError("missing_field", "is required", field=self.path(name))
        if not isinstance(value, str):
            raise DialectError("invalid_field", "must be text", field=self.path(name))
        if len(value) > max_length:
            raise DialectError(
                "invalid_field", f"must be at most {max_length} characters", field=self.path(name)
            )
        return value

    def integer(self, name: str) -> int:
        """A whole number written as decimal text without sign or leading zeros."""
        value = self.text(name, max_length=18)
        if not _NUMBER.fullmatch(value):
            raise DialectError(
                "invalid_field",
                "must be a whole number in decimal digits, without leading zeros",
                field=self.path(name),
            )
        return int(value)

    def code(self, name: str, table: Mapping[str, T], *, error: str = "unknown_label") -> T:
        """The meaning of a label; one not in ``table`` is refused with ``error``."""
        value = self.text(name, max_length=40)
        if value not in table:
            known = "、".join(table)
            raise DialectError(error, f"is not one of {known}", field=self.path(name))
        return table[value]

    def objects(self, name: str, *, max_items: int = 500) -> list[FormFields]:
        """A list of objects; absent is the empty list (rule 2)."""
        return [
            FormFields(item, f"{self.path(name)}[{index}]")
            for index, item in enumerate(self._list(name, max_items))
        ]

    def codes(self, name: str, table: Mapping[str, T], *, error: str = "unknown_label") -> list[T]:
        """The meanings of a list of labels, each at most once (so no longer than ``table``);
        absent is the empty list (rule 2). Every item must be text before any is looked up."""
        items = self._list(name, len(table))
        for index, item in enumerate(items):
            if not isinstance(item, str) or not item or len(item) > 200:
                raise DialectError(
                    "invalid_field",
                    "must be text of 1 to 200 characters",
                    field=f"{self.path(name)}[{index}]",
                )
        for index, item in enumerate(items):
            if item not in table:
                known = "、".join(table)
                raise DialectError(
                    error, f"is not one of {known}", field=f"{self.path(name)}[{index}]"
                )
        return [table[item] for item in items]

    def _list(self, name: str, max_items: int) -> list[Any]:
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise DialectError("invalid_field", "must be a list", field=self.path(name))
        if len(value) > max_items:
            raise DialectError(
                "invalid_field", f"must hold at most {max_items} items", field=self.path(name)
            )
        return value
