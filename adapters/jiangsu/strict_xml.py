"""Safe, strict XML for the Jiangsu dialect, on both sides of the wire.

The simulated platform reads requests with it and the adapter reads replies with it, so both
refuse the same things the same way; both write with ``to_xml``. Rules kept:

1. Bytes are UTF-8 (else ``not_utf8``), and an XML declaration, if there is one, declares
   UTF-8 (else ``not_utf8``). Parsing is defusedxml's with every document type declaration
   refused, so an entity declaration (the billion laughs, an external entity, a parameter
   entity) is ``forbidden_xml`` before anything is expanded or fetched; an element nested
   deeper than ``MAX_NESTING`` is ``too_deep`` as the parser reaches it, before the tree
   grows any deeper; anything expat cannot parse, including a reference to an undeclared
   entity, is ``malformed_body``. Untrusted bytes never reach ``xml.etree`` directly.
2. A document is elements only: no attributes (``unknown_field``), no namespaces, no text
   beside child elements (``invalid_field``; whitespace between elements is ignored). Its
   root is the element the caller expects (else ``malformed_body``).
3. ``XmlRecord`` hands out each child element once, checked by kind. A required element that
   is absent or empty is ``missing_field`` (an empty element means "absent", as JSON's null
   does); one that appears twice where one is expected is ``invalid_field``; a code outside
   its table is the caller's code (``unknown_code``, ``unknown_status``); ``finish()``
   refuses every element nobody asked for (``unknown_field``). Child order does not matter.
4. Every refusal is a ``DialectError`` whose ``field`` is the element's path below the root
   in XPath steps, positions counted from 1 (``sqr/zjhm``, ``cllb/cl[2]/sha256``), and whose
   sentence never repeats the value (it may be a name or an ID number).
5. ``to_xml`` escapes ``&``, ``<``, ``>`` and carriage returns (which a parser would fold
   into line feeds), and refuses a character XML 1.0 cannot carry (most C0 controls, U+FFFE,
   U+FFFF) with ``invalid_field``: a value goes out exactly as it will be read back, or not
   at all.
6. A list is an element named ``…lb`` (列表) whose items are the elements named without the
   ``lb`` (``<cllb><cl>…</cl><cl>…</cl></cllb>``); ``objects`` and ``codes`` read one, and
   ``element`` writes a tree of text, objects and such lists as elements.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias, TypeVar
from xml.etree.ElementTree import Element, TreeBuilder  # parsing is defusedxml's

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from adapters.records import MAX_NESTING, utf8
from node.platform.adapter import DialectError

T = TypeVar("T")

Node: TypeAlias = tuple[str, "str | Sequence[Node]"]
"""An element to write: its tag and either its text or its children, in order."""

DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_NUMBER_DIGITS: Final = 18

_DECLARED_ENCODING: Final = re.compile(
    r"""\A\ufeff?<\?xml\s[^>]*?\bencoding\s*=\s*["']([^"']*)["']"""
)
_UTF8_NAMES: Final = frozenset({"utf-8", "utf8"})
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_WHITESPACE: Final = " \t\r\n"
_NUMBER: Final = re.compile(f"0|[1-9][0-9]{{0,{MAX_NUMBER_DIGITS - 1}}}")


# --- reading ------------------------------------------------------------------------------


def read_document(data: bytes, root: str, *, what: str = "body") -> XmlRecord:
    """The document in ``data``, whose root must be ``<root>`` (rules 1 and 2)."""
    text = utf8(data, what=what)
    declared = _DECLARED_ENCODING.match(text)
    if declared is not None and declared[1].lower() not in _UTF8_NAMES:
        raise DialectError("not_utf8", f"the {what} must declare encoding UTF-8 or none")
    try:
        element = _parse(data)
    except DefusedXmlException:
        raise DialectError(
            "forbidden_xml",
            f"the {what} holds a document type or entity declaration, which is refused",
        ) from None
    except _TooDeep:
        raise DialectError(
            "too_deep", f"the {what} nests elements deeper than {MAX_NESTING}"
        ) from None
    except ParseError as error:
        raise DialectError(
            "malformed_body", f"the {what} is not well-formed XML: {error}"
        ) from None
    if element.tag != root:
        raise DialectError("malformed_body", f"the {what} must be a <{root}> document")
    record = XmlRecord(element)
    record._index()  # the root's shape (rule 2) is checked now, not at its first field
    return record


def _parse(data: bytes) -> Element:
    """The document's root element, parsed by defusedxml with no document type declaration
    and nesting bounded (rule 1)."""
    parser = DefusedXMLParser(
        target=_BoundedTree(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    parser.feed(data)
    return parser.close()


class _TooDeep(Exception):
    pass


class _BoundedTree:
    """The parser's tree builder, refusing an element nested deeper than ``MAX_NESTING``."""

    def __init__(self) -> None:
        self._tree = TreeBuilder()
        self._depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _TooDeep
        return self._tree.start(tag, attrs)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return self._tree.end(tag)

    def data(self, text: str) -> None:
        self._tree.data(text)

    def close(self) -> Element:
        return self._tree.close()


class XmlRecord:
    """One element whose children are fields, read field by field (rule 3)."""

    def __init__(self, element: Element, path: str = "") -> None:
        self._element = element
        self._path = path
        self._children: dict[str, list[Element]] | None = None
        self._read: set[str] = set()

    def path(self, name: str) -> str:
        """The dialect path of a child element."""
        return f"{self._path}/{name}" if self._path else name

    def peek(self, name: str) -> str | None:
        """The text of a child, unchecked and not marked read (to name a record in errors)."""
        child = self._element.find(name)
        return None if child is None or len(child) else child.text

    def has(self, name: str) -> bool:
        found = self._index().get(name, [])
        return bool(found) and not _empty(found[0])

    def text(self, name: str, *, max_length: int = 2000) -> str:
        return _leaf(self._required(name), self.path(name), max_length)

    def optional_text(self, name: str, *, max_length: int = 2000) -> str | None:
        if self._optional(name) is None:
            return None
        return self.text(name, max_length=max_length)

    def integer(self, name: str) -> int:
        value = self.text(name, max_length=MAX_NUMBER_DIGITS)
        if not _NUMBER.fullmatch(value):
            raise DialectError(
                "invalid_field", "must be a whole number in decimal digits", field=self.path(name)
            )
        return int(value)

    def code(self, name: str, table: Mapping[str, T], *, error: str = "unknown_code") -> T:
        """The meaning of a coded value; a code not in ``table`` is refused with ``error``."""
        return _meaning(self.text(name, max_length=64), table, self.path(name), error)

    def obj(self, name: str) -> XmlRecord:
        return XmlRecord(self._required(name), self.path(name))

    def optional_obj(self, name: str) -> XmlRecord | None:
        if self._optional(name) is None:
            return None
        return self.obj(name)

    def repeated(self, name: str, *, max_items: int = 500) -> list[XmlRecord]:
        """Every child named ``name`` (none is fine), each as a record ``name[i]``."""
        return [
            XmlRecord(child, self.path(f"{name}[{index}]"))
            for index, child in enumerate(self._all(name, max_items), 1)
        ]

    def objects(self, name: str, *, max_items: int = 500) -> list[XmlRecord]:
        """The item records of the list element ``name`` (present, possibly empty; rule 6)."""
        listed = self._list(name)
        records = listed.repeated(_item_tag(name), max_items=max_items)
        listed.finish()
        return records

    def codes(self, name: str, table: Mapping[str, T], *, error: str = "unknown_code") -> list[T]:
        """The meanings of the coded items of the list element ``name`` (rule 6)."""
        item = _item_tag(name)
        listed = self._list(name)
        elements = listed._all(item, 64)
        listed.finish()
        values = []
        for index, element in enumerate(elements, 1):
            path = listed.path(f"{item}[{index}]")
            values.append(_meaning(_leaf(element, path, 64), table, path, error))
        return values

    def finish(self) -> None:
        """Refuse the elements nobody read (rule 3)."""
        for tag in self._index():
            if tag not in self._read:
                raise DialectError(
                    "unknown_field", "is not an element here", field=self.path(tag[:60])
                )

    # -- plumbing ----------------------------------------------------------------------------

    def _index(self) -> dict[str, list[Element]]:
        if self._children is None:
            self._children = _children(self._element, self._path)
        return self._children

    def _all(self, name: str, max_items: int) -> list[Element]:
        self._read.add(name)
        found = self._index().get(name, [])
        if len(found) > max_items:
            raise DialectError(
                "invalid_field", f"may appear at most {max_items} times", field=self.path(name)
            )
        return found

    def _one(self, name: str) -> Element | None:
        found = self._all(name, 1)
        if not found:
            return None
        if found[0].attrib:
            raise DialectError(
                "unknown_field", "takes no attributes", field=_at(found[0], self.path(name))
            )
        return found[0]

    def _optional(self, name: str) -> Element | None:
        child = self._one(name)
        return None if child is None or _empty(child) else child

    def _required(self, name: str) -> Element:
        child = self._optional(name)
        if child is None:
            raise DialectError("missing_field", "is required", field=self.path(name))
        return child

    def _list(self, name: str) -> XmlRecord:
        # A list element is required but may be empty: an empty list is still a list.
        listed = self._one(name)
        if listed is None:
            raise DialectError("missing_field", "is required", field=self.path(name))
        return XmlRecord(listed, self.path(name))


def _children(element: Element, path: str) -> dict[str, list[Element]]:
    """The children of a record by tag, after checking it holds elements only (rule 2)."""
    where = path or str(element.tag)[:60]
    if element.attrib:
        raise DialectError("unknown_field", "takes no attributes", field=_at(element, where))
    stray = [element.text or ""] + [child.tail or "" for child in element]
    if any(text.strip(_XML_WHITESPACE) for text in stray):
        raise DialectError("invalid_field", "must hold elements, not text", field=where)
    children: dict[str, list[Element]] = {}
    for child in element:
        children.setdefault(str(child.tag), []).append(child)
    return children


def _leaf(element: Element, path: str, max_length: int) -> str:
    if element.attrib:
        raise DialectError("unknown_field", "takes no attributes", field=_at(element, path))
    if len(element):
        raise DialectError("invalid_field", "must be text, not elements", field=path)
    value = element.text or ""
    if not value:
        raise DialectError("missing_field", "is required", field=path)
    if len(value) > max_length:
        raise DialectError("invalid_field", f"must be 1 to {max_length} characters", field=path)
    return value


def _meaning(value: str, table: Mapping[str, T], path: str, error: str) -> T:
    if value not in table:
        raise DialectError(error, f"is not one of the codes {', '.join(table)}", field=path)
    return table[value]


def _item_tag(name: str) -> str:
    if not name.endswith("lb") or name == "lb":
        raise ValueError(f"<{name}> is not a list element (列表, …lb)")
    return name.removesuffix("lb")


def _at(element: Element, path: str) -> str:
    return f"{path}/@{next(iter(element.attrib))[:60]}"


def _empty(element: Element) -> bool:
    return not len(element) and not element.text


# --- writing ------------------------------------------------------------------------------


def element(tag: str, tree: Mapping[str, object]) -> Node:
    """``tree`` as the element ``<tag>``, children in the tree's order: text is a leaf, an
    object an element, a list (under a ``…lb`` name) its items (rule 6)."""
    return (tag, [_node(name, value) for name, value in tree.items()])


def _node(tag: str, value: object) -> Node:
    if isinstance(value, str):
        return (tag, value)
    if isinstance(value, Mapping):
        return element(tag, value)
    if isinstance(value, list):
        item = _item_tag(tag)
        return (tag, [_node(item, each) for each in value])
    raise TypeError(f"<{tag}> holds text, elements or a list, not {type(value).__name__}")


def to_xml(root: Node) -> bytes:
    """The UTF-8 document of ``root``, with an XML declaration (rule 5)."""
    out: list[str] = []
    _write(root, "", out)
    return DECLARATION + "".join(out).encode("utf-8")


def _write(node: Node, path: str, out: list[str]) -> None:
    tag, content = node
    if isinstance(content, str):
        if _NOT_XML_CHAR.search(content):
            raise DialectError(
                "invalid_field", "holds a character that XML 1.0 cannot carry", field=path or tag
            )
        escaped = (
            content.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace("\r", "&#13;")
        )
        out.append(f"<{tag}>{escaped}</{tag}>" if escaped else f"<{tag}/>")
        return
    out.append(f"<{tag}>")
    # Paths as the reader names them: below the root, a position on a repeated element.
    counts = Counter(child[0] for child in content)
    seen: Counter[str] = Counter()
    for child in content:
        step = child[0]
        if counts[step] > 1:
            seen[step] += 1
            step = f"{step}[{seen[step]}]"
        _write(child, f"{path}/{step}" if path else step, out)
    out.append(f"</{tag}>")
