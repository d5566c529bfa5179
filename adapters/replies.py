"""What every adapter makes of its platform's replies, whatever the dialect.

``node.platform.adapter`` states the contract; these are the parts of it the four adapters
keep alike. Rules kept:

1. A feed record that does not translate becomes a ``Malformed`` in its place, naming the
   record by its reference when that is text of 1 to 200 characters, else ``UNNAMED``
   (``"?"``); the records around it come through.
2. A feed paged by position that is empty from the very start leaves the node's cursor
   unset (None) rather than storing the platform's ``"0"``.
3. A certificate is checked by the node's own model (``parse_certificate``) and a matter
   list by its catalog (``parse_catalog``): what the model refuses is a ``DialectError``
   (``invalid_certificate``, ``invalid_matter``), never half-taken.
4. A certificate lookup answered 404 with the dialect's ``not_found`` refusal naming the
   lookup's own certificate id field means "not in the library" (None); any other refusal,
   a 404 for an unknown route or one about another field or none included, is raised: a
   platform fault must not read as an empty library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from adapters.transport import Reply
from node.cases.catalog import CatalogError, matter_to_json, parse_catalog
from node.certificates.model import CertificateError, parse_certificate, to_json
from node.platform.adapter import UNNAMED, Application, DialectError, Malformed, PlatformEvent

R = TypeVar("R")

FeedRecord = Application | PlatformEvent
"""What a record of a feed translates to."""
FeedItem = FeedRecord | Malformed


def translate_feed(
    records: Iterable[R],
    read: Callable[[R], FeedRecord],
    reference: Callable[[R], object],
) -> list[FeedItem]:
    """Each record as ``read`` translates it, or as a ``Malformed`` naming it by
    ``reference`` (rule 1)."""
    items: list[FeedItem] = []
    for record in records:
        try:
            items.append(read(record))
        except DialectError as error:
            named = reference(record)
            shown = named if isinstance(named, str) and 0 < len(named) <= 200 else UNNAMED
            items.append(
                Malformed(reference=shown, code=error.code, field=error.field, detail=error.detail)
            )
    return items


def key(name: str) -> Callable[[object], object]:
    """The reference of a decoded record (a JSON object) under ``name``, if it is one."""

    def reference(record: object) -> object:
        return record.get(name) if isinstance(record, dict) else None

    return reference


def feed_cursor(sent: str | None, answered: str, *, empty: bool) -> str | None:
    """The node's next cursor of a feed paged by position (rule 2)."""
    if empty and sent is None and answered == "0":
        return None
    return answered


def checked_certificate(data: Mapping[str, Any], *, noun: str) -> Mapping[str, Any]:
    """A translated certificate as the node's model holds it (rule 3)."""
    try:
        return to_json(parse_certificate(data))
    except CertificateError as error:
        raise DialectError(
            "invalid_certificate", f"the {noun} is not a valid certificate: {error.detail}"
        ) from None


def certificate_lookup(
    read_error: Callable[[bytes, int], DialectError],
    read: Callable[[Reply], Mapping[str, Any]],
    *,
    noun: str,
    field: str,
) -> Callable[[Reply], Mapping[str, Any] | None]:
    """How a certificate lookup's reply is read: a certificate as ``read`` translates it,
    checked (rule 3), or None for "not in the library" (rule 4); ``read_error`` reads the
    dialect's refusal, and ``field`` is the name the platform's ``not_found`` gives the
    certificate id it was asked for."""

    def lookup(reply: Reply) -> Mapping[str, Any] | None:
        if reply.status == 404:
            error = read_error(reply.body, reply.status)
            if (error.code, error.field) == ("not_found", field):
                return None
            raise error
        return checked_certificate(read(reply), noun=noun)

    return lookup


def checked_matters(matters: list[dict[str, Any]], province: str) -> Sequence[Mapping[str, Any]]:
    """Translated matters as ``province``'s catalog holds them (rule 3)."""
    document = {"province": province, "version": 1, "matters": matters}
    try:
        catalog = parse_catalog(document, province)
    except CatalogError as error:
        raise DialectError(
            "invalid_matter", error.detail, field=error.field, platform=province
        ) from None
    return [matter_to_json(matter) for matter in catalog.matters]
