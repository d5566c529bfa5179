"""Case test material: valid submissions for a matter, and reading a case's signed history."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import date
from typing import Any

from node.cases.catalog import Matter, load_catalog
from node.identifiers import make_id_number
from node.protocol.envelope import statement_of
from node.runtime.node import Node
from node.trust.manifest import Manifest
from node.wire import pb


def matter_of(province: str, index: int = 0) -> Matter:
    """A matter that ``province`` handles, from its packaged catalog."""
    return load_catalog(province).matters[index]


def case_body(matter: Matter, *, seed: int = 1) -> dict[str, Any]:
    """A valid submission for ``matter``: a resident applicant and every material uploaded."""
    rng = random.Random(seed)
    return {
        "matter_code": matter.code,
        "handler": matter.handler,
        "mode": matter.modes[0],
        "applicant": {
            "name": "张三",
            "code_type": "111",
            "code": make_id_number(rng, division="310104", birth=date(1990, 5, 17), sex="male"),
        },
        "materials": [
            {"name": m.name, "sha256": hashlib.sha256(f"{seed}:{m.name}".encode()).hexdigest()}
            for m in matter.materials
        ],
    }


def status_of(node: Node, case_id: str) -> str | None:
    row = (
        node.db.reader()
        .execute("SELECT status FROM cases WHERE case_id = ?", (case_id,))
        .fetchone()
    )
    return None if row is None else str(row[0])


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_record(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A case history with each envelope replaced by the message it signs: what both sides
    must agree on once a message has been re-sent after a lost reply (the sender keeps the
    batch its reply came back for, the receiver the one it stored first)."""
    return [
        {
            k: pb.Envelope.FromString(unb64(v)).message if k in ("evidence", "request") else v
            for k, v in entry.items()
        }
        for entry in history
    ]


def signature_holds(envelope_b64: str, manifest: Manifest) -> bool:
    """Whether a history entry's envelope verifies under a key the manifest lists, signed on
    its own or in its batch (its proof leading to the root the batch signature is over)."""
    envelope = pb.Envelope.FromString(unb64(envelope_b64))
    key = manifest.all_keys().get(envelope.key_id)
    statement = statement_of(envelope)
    return key is not None and statement is not None and key.verify(envelope.signature, statement)
