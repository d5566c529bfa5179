"""Catalog announcements on the wire: a province's matters as a signed ``CatalogAnnounce``.

Rules kept here:
- What travels is validated by the same ``parse_catalog`` that checks the packaged files, so
  a peer's catalog is held to exactly the rules our own is; a bad announcement is refused as
  ``invalid_payload`` naming the field, before anything is stored.
- An announcement speaks for its sender's province only: every matter's handler is the
  sender, and the codes must lie in that province.
- A node announces each distinct catalog once per peer (keyed by the digest of its content),
  through the outbox like any message, so a restart does not repeat it and an outage does
  not lose it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from node.cases.catalog import Catalog, CatalogError, parse_catalog, to_json
from node.peers.courier import Courier
from node.peers.inbound import PayloadHandler, Received
from node.protocol.checks import Authenticated
from node.protocol.faults import FaultCode, Refusal
from node.store import catalogs, outbox
from node.store.connection import Connection
from node.trust.manifest import PROVINCES, Member
from node.wire import pb

log = logging.getLogger(__name__)

_KIND_TO_WIRE = {"upload": pb.Material.KIND_UPLOAD, "certificate": pb.Material.KIND_CERTIFICATE}
_KIND_FROM_WIRE = {wire: name for name, wire in _KIND_TO_WIRE.items()}
_PROVINCE_BY_CODE = {code: name for name, (code, _) in PROVINCES.items()}


def catalog_digest(catalog: Catalog) -> str:
    """A stable digest of the catalog's content, naming one announcement of it."""
    canonical = json.dumps(to_json(catalog), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def to_announce(catalog: Catalog) -> pb.CatalogAnnounce:
    return pb.CatalogAnnounce(
        province=PROVINCES[catalog.province][0],
        version=catalog.version,
        matters=[
            pb.Matter(
                code=matter.code,
                name=matter.name,
                name_en=matter.name_en,
                modes=list(matter.modes),
                materials=[
                    pb.Material(
                        name=material.name,
                        kind=_KIND_TO_WIRE[material.kind],
                        certificate_type=material.certificate_type or "",
                    )
                    for material in matter.materials
                ],
                promised_days=matter.promised_days,
                department=matter.department,
            )
            for matter in catalog.matters
        ],
    )


def from_announce(announce: pb.CatalogAnnounce) -> Catalog:
    """The announced catalog, validated; raises CatalogError naming the bad field."""
    province = _PROVINCE_BY_CODE.get(announce.province)
    if province is None:
        raise CatalogError(
            "invalid_catalog", "province", f"{announce.province!r} is not a member's GB/T 2260 code"
        )
    document: dict[str, Any] = {
        "province": province,
        "version": announce.version,
        "matters": [
            {
                "code": matter.code,
                "name": matter.name,
                "name_en": matter.name_en,
                "handler": province,
                "department": matter.department,
                "modes": list(matter.modes),
                "materials": [_material(material) for material in matter.materials],
                "promised_days": matter.promised_days,
            }
            for matter in announce.matters
        ],
    }
    return parse_catalog(document, province)


def _material(material: pb.Material) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "name": material.name,
        # An unknown enum value becomes a name parse_catalog refuses, with the field named.
        "kind": _KIND_FROM_WIRE.get(material.kind, f"kind {material.kind}"),
    }
    if material.certificate_type:
        shape["certificate_type"] = material.certificate_type
    return shape


def validate_announce(message: Authenticated) -> None:
    """Payload validation for ``catalog_announce`` (the last receiver check)."""
    announce = message.message.catalog_announce
    if announce.province != message.sender.code:
        raise Refusal(
            FaultCode.INVALID_PAYLOAD,
            f"catalog_announce.province {announce.province!r} is not the sender's province "
            f"({message.sender.code}); a province announces only its own matters",
            field="body.catalog_announce.province",
            message_id=message.message_id,
            digest=message.digest,
        )
    try:
        from_announce(announce)
    except CatalogError as exc:
        raise Refusal(
            FaultCode.INVALID_PAYLOAD,
            f"catalog_announce: {exc}",
            field=f"body.catalog_announce.{exc.field}",
            message_id=message.message_id,
            digest=message.digest,
        ) from exc


def store_announce(conn: Connection, received: Received) -> None:
    """The effect of an accepted announcement: keep it unless a newer version is held."""
    message = received.message
    catalog = from_announce(message.message.catalog_announce)
    catalogs.record(
        conn,
        province=catalog.province,
        version=catalog.version,
        document=json.dumps(to_json(catalog), ensure_ascii=False),
        message_id=message.message_id,
        received_at=message.message.header.sent_at.ToSeconds(),
    )


CATALOG_HANDLERS = {
    "catalog_announce": PayloadHandler(validate=validate_announce, effect=store_announce),
}
"""How this node takes a peer's catalog announcement (see ``peers.inbound``)."""


async def announce_catalog(
    catalog: Catalog,
    *,
    courier: Courier,
    peers: Iterable[str],
    me: Member | None,
    conn: Connection,
) -> None:
    """Queue our catalog for every peer that has not had this very catalog queued before.

    ``me`` is this node's member entry in the manifest in force (None when not listed); the
    caller announces nothing on an expired manifest."""
    if me is None or "catalog_announce" not in me.may_send:
        log.warning("the manifest does not let this node announce its catalog")
        return
    correlation = f"catalog:{catalog_digest(catalog)}"
    for province in peers:
        if not outbox.sent_before(
            conn, peer=province, payload_type="catalog_announce", correlation_id=correlation
        ):
            await courier.send(
                province, [("catalog_announce", to_announce(catalog))], correlation_id=correlation
            )
