"""What must hold after a disturbed run (``yrd chaos``), each a verdict with its numbers.

The checks are plain functions over what the nodes answered (each case as both sides show it
at ``GET /v1/cases/{id}``, each node's ``GET /v1/status``) and the evidence-log reports, so
tests drive them with dictionaries. Rule kept: a failure names the case or node at fault by
id and province only, never by anything personal.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from node.mesh.load import CONCLUDED_STATUSES
from node.store.audit import AuditReport
from node.wire import pb

SHOWN: Final = 5
"""Failing cases named per verdict; the rest are counted."""
LOCAL_FIELDS: Final = frozenset({"applied"})
"""History fields that are one node's bookkeeping, not part of the signed record."""


@dataclass(frozen=True)
class Verdict:
    number: int
    name: str
    ok: bool
    detail: str
    """The figures, in a sentence."""
    failures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "failures": list(self.failures),
        }


@dataclass(frozen=True)
class CaseSides:
    """One case whose submission was answered 201, as each of its two nodes shows it."""

    case_id: str
    accepting: str
    handling: str
    at_accepting: Mapping[str, Any] | None
    at_handling: Mapping[str, Any] | None
    """None: that node does not know the case."""


def _named(failures: Sequence[str]) -> tuple[str, ...]:
    shown = tuple(failures[:SHOWN])
    if len(failures) > SHOWN:
        shown += (f"… and {len(failures) - SHOWN} more",)
    return shown


def on_both_sides(cases: Sequence[CaseSides], *, unanswered: int) -> Verdict:
    """(1) Every case answered 201 exists at its accepting and its handling node, concluded
    on both; and no submission was left without an answer (it could be a case unseen)."""
    failures = []
    for case in cases:
        pair = f"{case.case_id} {case.accepting} → {case.handling}"
        for side, view in (("accepting", case.at_accepting), ("handling", case.at_handling)):
            if view is None:
                failures.append(f"{pair}: MISSING at its {side} node")
            elif view["status"] not in CONCLUDED_STATUSES:
                failures.append(f"{pair}: {view['status']} at its {side} node, not concluded")
    if unanswered:
        failures.append(f"{unanswered} submission(s) never answered")
    both = sum(c.at_accepting is not None and c.at_handling is not None for c in cases)
    if not cases:
        failures.append("no submission was answered 201: there is nothing to check")
    return Verdict(
        1,
        "cases on both sides",
        not failures,
        f"{both} of {len(cases)} cases answered 201 are at both their nodes; "
        f"{sum(_concluded(c) for c in cases)} concluded on both sides"
        + (f"; {unanswered} submission(s) unanswered" if unanswered else ""),
        _named(failures),
    )


def _concluded(case: CaseSides) -> bool:
    return all(
        view is not None and view["status"] in CONCLUDED_STATUSES
        for view in (case.at_accepting, case.at_handling)
    )


SIGNED_FIELDS: Final = ("evidence", "request")
"""History fields holding a signed envelope (URL-safe base64), compared by what they sign."""


def _signed(entry: Mapping[str, Any]) -> dict[str, Any]:
    signed = {k: v for k, v in entry.items() if k not in LOCAL_FIELDS}
    for field in SIGNED_FIELDS:
        if isinstance(signed.get(field), str):
            signed[field] = _message_of(signed[field])
    return signed


def _message_of(envelope_b64: str) -> bytes:
    """The message an envelope signs. Two sides may hold it under different signatures of
    the same key: a message re-sent after a lost reply travels in another batch, and the
    sender keeps the form its reply came back for, the receiver the form it stored first.
    The signatures themselves are checked by ``evidence_intact``."""
    padded = envelope_b64 + "=" * (-len(envelope_b64) % 4)
    return pb.Envelope.FromString(base64.urlsafe_b64decode(padded)).message


def _submission(view: Mapping[str, Any]) -> tuple[bytes, Any] | None:
    shown = view.get("submission")
    if not isinstance(shown, Mapping) or not isinstance(shown.get("envelope"), str):
        return None
    return _message_of(shown["envelope"]), shown.get("key_id")


def same_history(cases: Sequence[CaseSides]) -> Verdict:
    """(2) Both sides hold the same signed record: the same signed submission and, update
    by update, the same number, action, signed message and signing key."""
    failures = []
    updates = 0
    compared = 0
    for case in cases:
        a, h = case.at_accepting, case.at_handling
        if a is None or h is None:
            continue
        compared += 1
        ours, theirs = a.get("history", []), h.get("history", [])
        updates += len(ours)
        if _submission(a) != _submission(h):
            failures.append(f"{case.case_id}: the two sides hold different submission envelopes")
        elif len(ours) != len(theirs):
            failures.append(
                f"{case.case_id}: {len(ours)} updates at {case.accepting}, "
                f"{len(theirs)} at {case.handling}"
            )
        else:
            for mine, other in zip(ours, theirs, strict=True):
                if _signed(mine) != _signed(other):
                    fields = sorted(
                        k
                        for k in _signed(mine).keys() | _signed(other).keys()
                        if mine.get(k) != other.get(k)
                    )
                    failures.append(
                        f"{case.case_id}: update {mine.get('sequence')} differs "
                        f"({', '.join(fields)})"
                    )
                    break
    return Verdict(
        2,
        "same signed history",
        not failures and compared == len(cases),
        f"{compared - len(failures)} of {len(cases)} cases identical on both sides: "
        f"submission and {updates} signed updates (number, action, envelope, key)",
        _named(failures),
    )


def numbered_once(cases: Sequence[CaseSides]) -> Verdict:
    """(3) On each side the update numbers run 1, 2, … n: none twice, none missing, and n
    is the number the node says it applied."""
    failures = []
    numbers = 0
    for case in cases:
        for side, view in ((case.accepting, case.at_accepting), (case.handling, case.at_handling)):
            if view is None:
                continue
            sequence = [int(e["sequence"]) for e in view.get("history", [])]
            numbers += len(sequence)
            expected = list(range(1, len(sequence) + 1))
            if sequence != expected:
                twice = sorted({n for n in sequence if sequence.count(n) > 1})
                gaps = sorted(set(expected) - set(sequence))
                failures.append(
                    f"{case.case_id} at {side}: numbers {sequence}"
                    + (f", {twice} twice" if twice else "")
                    + (f", {gaps} missing" if gaps else "")
                )
            elif view.get("sequence") != len(sequence):
                failures.append(
                    f"{case.case_id} at {side}: {len(sequence)} updates held, "
                    f"{view.get('sequence')} applied"
                )
    return Verdict(
        3,
        "update numbers",
        not failures,
        f"{numbers} update numbers on both sides of {len(cases)} cases: "
        f"{'none twice, no gaps' if not failures else f'{len(failures)} case side(s) wrong'}",
        _named(failures),
    )


def no_dead_letters(statuses: Mapping[str, Mapping[str, Any] | None]) -> Verdict:
    """(4) Nothing parked in any outbox: to a peer, or to the node's own platform."""
    failures = []
    links = platforms = parked = 0
    for province, status in statuses.items():
        if status is None:
            failures.append(f"{province}: no status")
            continue
        for link in status.get("peers", []):
            links += 1
            parked += link.get("dead_letters", 0)
            if link.get("dead_letters"):
                failures.append(f"{province}→{link['peer']}: {link['dead_letters']} dead letter(s)")
        platform = status.get("platform")
        if platform:
            platforms += 1
            parked += platform.get("dead_letters", 0)
            if platform.get("dead_letters"):
                failures.append(f"{province}→platform: {platform['dead_letters']} dead letter(s)")
    return Verdict(
        4,
        "no dead letters",
        not failures,
        f"{parked} dead letters in {links} peer outboxes and {platforms} platform outboxes",
        _named(failures),
    )


def evidence_intact(
    reports: Mapping[str, AuditReport], exit_codes: Mapping[str, int | None]
) -> Verdict:
    """(5) Every node stopped cleanly (exit 0) and its evidence log verifies: the hash chain
    and every signature (``yrd audit verify``)."""
    failures = [
        f"{province}: BROKEN at entry {r.first_bad_seq}: {r.reason}"
        for province, r in reports.items()
        if not r.ok
    ]
    failures += [
        f"{province} node exited with {code} on SIGTERM"
        for province, code in exit_codes.items()
        if code != 0
    ]
    intact = sum(r.ok for r in reports.values())
    return Verdict(
        5,
        "evidence logs",
        not failures and bool(reports),
        f"{intact} of {len(reports)} evidence logs verify "
        f"({sum(r.entries for r in reports.values())} entries, chain and signatures), "
        f"after a stop with exit codes " + ", ".join(f"{p} {c}" for p, c in exit_codes.items()),
        _named(failures),
    )


def recovered(drained_after: float | None, settled_after: float | None, limit: float) -> Verdict:
    """(6) After the heal, every outbox drains and every case concludes within ``limit``."""
    drained = f"{drained_after:.1f} s" if drained_after is not None else "never"
    settled = f"{settled_after:.1f} s" if settled_after is not None else "never"
    return Verdict(
        6,
        "recovery",
        drained_after is not None and settled_after is not None,
        f"outboxes drained {drained} after the heal, every case concluded and both sides "
        f"equal {settled} after (limit {limit:.0f} s)",
    )
