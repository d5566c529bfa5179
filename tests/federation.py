"""Test federations made in memory: members, their signing keys, and a signed manifest."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from node.protocol.envelope import Sealed, header, seal
from node.trust.keys import SigningKey
from node.trust.manifest import PROVINCES, KeyEntry, Manifest, Member, sign_manifest
from node.trust.suites import ED25519_SUITE, Suite
from node.wire import pb

NOW = 1_800_000_000.0  # 2027-01-15, a fixed clock for sans-I/O tests
DAY = 86400.0


def node_id(province: str) -> str:
    return f"node-{PROVINCES[province][0]}"


@dataclass
class Federation:
    keys: dict[str, SigningKey]
    manifest: Manifest
    governance: SigningKey = field(default_factory=SigningKey.generate)

    def key(self, province: str) -> SigningKey:
        return self.keys[province]

    def signed(self) -> bytes:
        return sign_manifest(self.manifest, self.governance)

    def replace_member(self, province: str, **changes: object) -> None:
        member = self.manifest.member_for_province(province)
        assert member is not None
        self.manifest = self.manifest.with_member(replace(member, **changes))  # type: ignore[arg-type]


def make_federation(
    provinces: tuple[str, ...] = ("shanghai", "jiangsu", "zhejiang", "anhui"),
    *,
    now: float = NOW,
    may_send: frozenset[str] = frozenset({"heartbeat", "probe"}),
    version: int = 1,
    endpoints: dict[str, str] | None = None,
    suites: dict[str, Suite] | None = None,
) -> Federation:
    """Members signing with Ed25519 keys, or with the suite ``suites`` names for them."""
    keys = {p: SigningKey.generate((suites or {}).get(p, ED25519_SUITE)) for p in provinces}
    members = tuple(
        Member(
            node_id=node_id(p),
            province=p,
            code=PROVINCES[p][0],
            endpoint=(endpoints or {}).get(p, f"127.0.0.1:{7101 + i}"),
            keys=(KeyEntry(keys[p].key_id, keys[p].verify_key, now - DAY, now + 365 * DAY),),
            may_send=may_send,
        )
        for i, p in enumerate(provinces)
    )
    manifest = Manifest(
        federation="yangtze-delta-test",
        version=version,
        issued_at=now - 60,
        expires_at=now + 90 * DAY,
        members=members,
    )
    return Federation(keys, manifest)


def probe_message(
    sender: str,
    recipient: str,
    *,
    now: float = NOW,
    message_id: str | None = None,
    sequence: int = 1,
) -> pb.Message:
    return pb.Message(
        header=header(
            sender=node_id(sender),
            recipient=node_id(recipient),
            now=now,
            manifest_version=1,
            message_id=message_id,
        ),
        probe=pb.Probe(sequence=sequence),
    )


def sealed_probe(
    fed: Federation,
    sender: str,
    recipient: str,
    *,
    now: float = NOW,
    key: SigningKey | None = None,
    message_id: str | None = None,
    sequence: int = 1,
) -> Sealed:
    message = probe_message(sender, recipient, now=now, message_id=message_id, sequence=sequence)
    return seal(message, key or fed.key(sender))
