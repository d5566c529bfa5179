"""A member's replicas in the manifest: ``endpoints`` lists every replica's gRPC endpoint,
a manifest without it reads and verifies exactly as before, and a malformed list is refused
naming the entry."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from node.trust.keys import SigningKey
from node.trust.manifest import ManifestMalformed, ManifestSignatureInvalid, sign_manifest
from node.trust.manifest import verify_manifest as verify
from tests.test_manifest import NOW, edit, make_manifest, resign

REPLICAS = ("127.0.0.1:7101", "127.0.0.1:7201", "127.0.0.1:7301")


GOVERNANCE = SigningKey.generate()
MEMBER_KEY = SigningKey.generate()


def test_a_member_with_one_endpoint_is_signed_as_before() -> None:
    """Without replicas the signed body has no ``endpoints`` key, so signatures made before
    replicas existed still verify; the member's endpoints are its one endpoint."""
    manifest = make_manifest(MEMBER_KEY)
    data = sign_manifest(manifest, GOVERNANCE)
    assert "endpoints" not in json.loads(data)["manifest"]["members"][0]
    loaded = verify(data, [GOVERNANCE.verify_key], now=NOW)
    assert loaded.members[0].endpoints == ("127.0.0.1:7101",)
    assert loaded == manifest


def test_every_replica_endpoint_round_trips_in_order() -> None:
    """A member with three replicas lists them all, the first being ``endpoint`` (what an old
    reader dials); verifying gives them back in order."""
    base = make_manifest(MEMBER_KEY)
    member = replace(base.members[0], replica_endpoints=REPLICAS)
    data = sign_manifest(base.with_member(member), GOVERNANCE)
    body = json.loads(data)["manifest"]["members"][0]
    assert body["endpoint"] == REPLICAS[0]
    assert body["endpoints"] == list(REPLICAS)
    loaded = verify(data, [GOVERNANCE.verify_key], now=NOW)
    assert loaded.members[0].endpoints == REPLICAS
    assert loaded.members[0].endpoint == REPLICAS[0]


def test_a_list_of_only_the_endpoint_reads_as_one_endpoint() -> None:
    """``"endpoints": [endpoint]`` (written by another tool) is the same member as none."""
    manifest = make_manifest(MEMBER_KEY)
    data = resign(
        sign_manifest(manifest, GOVERNANCE),
        GOVERNANCE,
        lambda body: body["members"][0].update(endpoints=["127.0.0.1:7101"]),
    )
    assert verify(data, [GOVERNANCE.verify_key], now=NOW) == manifest


def test_an_added_replica_under_the_old_signature_is_refused() -> None:
    """``endpoints`` is signed: adding one under the original signature fails verification."""
    data = sign_manifest(make_manifest(MEMBER_KEY), GOVERNANCE)

    def add(document: dict[str, Any]) -> None:
        document["manifest"]["members"][0]["endpoints"] = ["127.0.0.1:7101", "203.0.113.7:1"]

    with pytest.raises(ManifestSignatureInvalid):
        verify(edit(data, add), [GOVERNANCE.verify_key], now=NOW)


@pytest.mark.parametrize(
    ("endpoints", "named"),
    [
        ("127.0.0.1:7101", r"members\[0\].endpoints is missing or not a list"),
        ([], r"members\[0\].endpoints must list 1 to 64"),
        (["127.0.0.1:7101"] * 65, r"members\[0\].endpoints must list 1 to 64"),
        (["127.0.0.1:7101", 7201], r"endpoints\[1\] is 7201, not a host:port"),
        (["127.0.0.1:7101", "127.0.0.1"], r"endpoints\[1\] is '127.0.0.1', not a host:port"),
        (["127.0.0.1:7101", ":7201"], r"endpoints\[1\] is ':7201', not a host:port"),
        (["127.0.0.1:7101", "h:0"], r"endpoints\[1\] is 'h:0', not a host:port"),
        (["127.0.0.1:7101", "h:70000"], r"endpoints\[1\] is 'h:70000', not a host:port"),
        (["127.0.0.1:7101", "127.0.0.1:7101"], "lists one endpoint twice"),
        (["127.0.0.1:7201", "127.0.0.1:7101"], r"endpoints\[0\] is '127.0.0.1:7201'; it must"),
    ],
    ids=[
        "string",
        "empty",
        "too-many",
        "number",
        "no-port",
        "no-host",
        "port-0",
        "port-too-big",
        "twice",
        "first-not-endpoint",
    ],
)
def test_a_malformed_endpoint_list_is_refused_naming_the_entry(endpoints: Any, named: str) -> None:
    """A properly signed manifest whose ``endpoints`` is not a list of distinct host:port
    addresses starting with ``endpoint`` is ManifestMalformed naming the entry."""
    data = resign(
        sign_manifest(make_manifest(MEMBER_KEY), GOVERNANCE),
        GOVERNANCE,
        lambda body: body["members"][0].update(endpoints=endpoints),
    )
    with pytest.raises(ManifestMalformed, match=named):
        verify(data, [GOVERNANCE.verify_key], now=NOW)
