"""The revocation-list exchange between issuers (DESIGN.md §7, rule 4).

An issuer publishes its revocation list, signed and versioned, to every peer whenever the
revoked or suspended certificates of its library change, and at least every
``REPUBLISH_AFTER`` so its age says how fresh it is; peers also pull it periodically. A node
keeps only a newer version than the one it holds. The lists held here outrank a cached
attestation (``requester``) and let offline presentations be checked (``offline``).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Collection

from node.certificates.held_lists import HeldLists
from node.certificates.issuers import manifest_issuer_keys
from node.certificates.library import CertificateLibrary, LibraryUnavailable
from node.certificates.revocation import (
    RevocationEntry,
    RevocationError,
    RevocationList,
    read_revocation_list,
    sign_revocation_list,
)
from node.peers.courier import AskFailed, Courier, CredentialsView
from node.peers.inbound import Answer, PayloadHandler, Received
from node.protocol.checks import Authenticated
from node.protocol.faults import FaultCode, Refusal
from node.store import certificates as store
from node.store.certificates import HeldList
from node.store.connection import Connection
from node.store.database import Database
from node.trust.manifest import PROVINCES
from node.wire import pb

log = logging.getLogger(__name__)

REPUBLISH_AFTER = 3600.0
PULL_TIMEOUT = 10.0
_CODE_OF_PROVINCE = {name: code for name, (code, _) in PROVINCES.items()}
_PROVINCE_OF_CODE = {code: name for name, code in _CODE_OF_PROVINCE.items()}


class RevocationExchange:
    """This node's revocation list and the lists of its peers it holds."""

    def __init__(
        self,
        *,
        province: str,
        db: Callable[[], Database],
        clock: Callable[[], float],
        credentials: Callable[[], CredentialsView],
        courier: Courier,
        peers: Collection[str],
        library: Callable[[], CertificateLibrary],
    ) -> None:
        self.me = province
        self._db = db
        self._clock = clock
        self._credentials = credentials
        self._courier = courier
        self._peers = peers
        self._library = library
        self.lists = HeldLists(lambda: self._db().reader())

    def handlers(self) -> dict[str, PayloadHandler]:
        """The revocation-list payloads peers send (see ``peers.inbound``)."""
        return {
            "revocation_list": PayloadHandler(validate=self.validate_list, effect=self.on_list),
            "revocation_list_request": PayloadHandler(respond=self.answer_list_request),
        }

    def held_list(self, province: str) -> RevocationList | None:
        """The newest list of ``province`` held here, checked (``HeldLists``)."""
        try:
            return self.lists.checked(province, self._credentials().manifest, self._clock())
        except RevocationError as error:
            # Held lists were checked on arrival; a key revoked since then voids them.
            log.warning(
                "held revocation list no longer verifies",
                extra={"peer": province, "reason": str(error)},
            )
            return None

    async def publish(self) -> bool:
        """Sign and announce a new version of our list if the library changed or the held one
        is older than REPUBLISH_AFTER; return whether one was published."""
        try:
            entries = await self._library().revocations()
        except LibraryUnavailable as error:
            log.warning("cannot read revocations from the library", extra={"reason": str(error)})
            return False
        now = self._clock()
        current = self.held_list(self.me)
        listed = {(str(e.certificate_id), e.status) for e in entries}
        if current is not None:
            same = listed == {(str(e.certificate_id), e.status) for e in current.entries}
            if same and now - current.issued_at < REPUBLISH_AFTER:
                return False
        version = 1 if current is None else current.version + 1
        issued_at = math.floor(now)
        revocations = RevocationList(
            self.me, version, issued_at, tuple(_clamped(e, issued_at) for e in entries)
        )
        signed = sign_revocation_list(revocations, self._credentials().signing_key)
        announce = pb.RevocationListAnnounce(
            province=_CODE_OF_PROVINCE[self.me], signed_list=signed, version=version
        )
        courier = self._courier
        correlation = f"revocation-list:{version}"
        sealed = {
            province: courier.seal(
                province, [("revocation_list", announce)], correlation_id=correlation
            )
            for province in self._peers
        }

        mine = HeldList(self.me, version, signed, issued_at, now)

        def record(conn: Connection) -> bool:
            if not _keep(conn, mine):
                return False
            for province, messages in sealed.items():
                courier.enqueue(conn, province, messages, correlation_id=correlation)
            return True

        if not await self._db().write(record):
            # Another replica sharing the store published this version at the same moment:
            # its list is the one held and sent, never two lists under one version.
            return False
        self.lists.kept(mine)
        log.info("revocation list published", extra={"version": version, "count": len(entries)})
        return True

    def validate_list(self, message: Authenticated) -> None:
        announce = message.message.revocation_list
        try:
            self._read_announce(announce, message.sender.province)
        except (RevocationError, ValueError) as error:
            raise Refusal(
                FaultCode.INVALID_PAYLOAD,
                f"revocation_list: {error}",
                field="body.revocation_list.signed_list",
                message_id=message.message_id,
                digest=message.digest,
            ) from None

    def _read_announce(self, announce: pb.RevocationListAnnounce, sender: str) -> RevocationList:
        if _PROVINCE_OF_CODE.get(announce.province) != sender:
            raise ValueError(f"province {announce.province!r} is not the sender's ({sender})")
        keys = manifest_issuer_keys(self._credentials().manifest, self._clock())
        revocations = read_revocation_list(announce.signed_list, keys)
        if revocations.issuer_province != sender or revocations.version != announce.version:
            raise ValueError("the signed list's issuer or version differs from the announcement")
        return revocations

    def on_list(self, conn: Connection, received: Received) -> None:
        message = received.message
        revocations = self._read_announce(message.message.revocation_list, message.sender.province)
        held = HeldList(
            revocations.issuer_province,
            revocations.version,
            message.message.revocation_list.signed_list,
            revocations.issued_at,
            received.received_at,
        )
        if _keep(conn, held):
            self._db().after_commit(functools.partial(self.lists.kept, held))

    async def answer_list_request(self, message: Authenticated, now: float) -> Answer:
        held = self.lists.held(self.me)
        announce = pb.RevocationListAnnounce(province=_CODE_OF_PROVINCE[self.me])
        if held is not None:
            announce.signed_list = held.signed
            announce.version = held.version
        return Answer(("revocation_list", announce), store=False)

    async def pull(self, province: str) -> bool:
        """Ask a peer for its current list; keep it if newer. Return whether it was kept."""
        if province not in self._peers:
            return False
        held = self.lists.held(province)
        request = pb.RevocationListRequest(held_version=held.version if held else 0)
        try:
            answered = await self._courier.ask(
                province, "revocation_list_request", request, timeout=PULL_TIMEOUT, record=False
            )
        except (AskFailed, Refusal) as error:
            log.info("revocation list pull failed", extra={"peer": province, "error": str(error)})
            return False
        reply = answered.reply
        if reply.payload_type != "revocation_list" or not reply.message.revocation_list.signed_list:
            return False
        try:
            revocations = self._read_announce(reply.message.revocation_list, province)
        except (RevocationError, ValueError) as error:
            log.warning(
                "peer's revocation list refused", extra={"peer": province, "reason": str(error)}
            )
            return False
        pulled = HeldList(
            province,
            revocations.version,
            reply.message.revocation_list.signed_list,
            revocations.issued_at,
            self._clock(),
        )
        kept = await self._db().write(lambda conn: _keep(conn, pulled))
        # Kept in memory even when the store held it already (another replica stored it).
        self.lists.kept(pulled)
        return kept

    def list_ages(self) -> dict[str, float]:
        """Seconds since each held list was issued, by issuing province."""
        now = self._clock()
        return {
            h.province: max(0.0, now - h.issued_at) for h in store.held_lists(self._db().reader())
        }


def _keep(conn: Connection, held: HeldList) -> bool:
    return store.keep_list(
        conn,
        province=held.province,
        version=held.version,
        signed=held.signed,
        issued_at=held.issued_at,
        received_at=held.received_at,
    )


def _clamped(entry: RevocationEntry, issued_at: int) -> RevocationEntry:
    if entry.since <= issued_at:
        return entry
    return RevocationEntry(entry.certificate_id, entry.status, issued_at, entry.reason)
