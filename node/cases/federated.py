"""The federated matter catalog: this province's own catalog and every peer's as announced,
read from the store in one place.

Peers' catalogs arrive as signed ``catalog_announce`` messages (``node.cases.announce``)
and are kept in the store; each is parsed once per announcement and cached by its message
id, so looking a matter up (every new case, every verification purpose) costs a small read.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from node.cases.catalog import Catalog, Matter, matter_code_province, parse_catalog
from node.store import catalogs
from node.store.catalogs import HeldCatalog
from node.store.database import Database


class FederatedCatalog:
    def __init__(self, own: Catalog, db: Callable[[], Database]) -> None:
        self.own = own
        self._db = db
        self._parsed: dict[str, tuple[str, Catalog]] = {}
        """Per peer province: the held announcement's message id and its parsed catalog."""

    def find_matter(self, code: str) -> Matter | None:
        """A matter of the federated catalog: our own, or as its province announced it."""
        province = matter_code_province(code) if len(code) == 31 else None
        if province == self.own.province:
            return self.own.get(code)
        if province is None:
            return None
        conn = self._db().reader()
        message_id = catalogs.held_message_id(conn, province)
        cached = self._parsed.get(province)
        if cached is None or cached[0] != message_id:
            held = catalogs.held(conn, province)
            if held is None:
                return None
            cached = (held.message_id, self._parse(held))
        return cached[1].get(code)

    def peers(self) -> list[tuple[Catalog, float]]:
        """Every peer catalog this node holds, with when it was announced."""
        result = []
        for held in catalogs.all_held(self._db().reader()):
            if held.province == self.own.province:
                continue
            cached = self._parsed.get(held.province)
            catalog = cached[1] if cached and cached[0] == held.message_id else self._parse(held)
            result.append((catalog, held.received_at))
        return result

    def _parse(self, held: HeldCatalog) -> Catalog:
        catalog = parse_catalog(json.loads(held.document), held.province)
        self._parsed[held.province] = (held.message_id, catalog)
        return catalog
