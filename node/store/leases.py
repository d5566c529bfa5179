"""Leases: which replica of this node does a job only one process may do at a time.

Several replicas of a province's node (processes with the same identity) may share one
PostgreSQL store. Most of what they do is safe in any number (every receiver is idempotent,
every write is a transaction), but four jobs are not: sending a peer its outbox (per-case
order holds only with one sender per peer), reading the province platform's feeds, handing
the platform what waits for it, and signing checkpoints of the shared evidence log (two
signed at once could reach a witness out of order). Each is done under a lease: a row of
``leases`` named for the job (``outbox_lease(peer)``, ``PLATFORM_POLL``,
``PLATFORM_DELIVERY``, ``CHECKPOINTS``) with its owner, a replica id unique to one process
(``new_owner``), and when it lapses.

Rules kept here:
- One sender per peer (a per-peer sender lease, not per-row claims): only the holder of
  ``outbox:<peer>`` sends that peer's pending rows, in ``seq`` order, so case updates keep
  their per-case order. Rows are never claimed one by one: the outbox and its cursor stay
  the whole truth, so a replica that takes a lapsed lease over resumes from the store, and
  what the dead holder had in flight is still pending and sent again (the receiver
  deduplicates by message id and answers with the receipt it gave the first time).
- ``take`` gets a lease that is free, lapsed or the caller's own; ``renew`` extends the
  caller's live lease and refuses anyone else (``LeaseNotHeld``, nothing changes);
  ``release`` lapses it at once, so a replica that stops hands its jobs over without waiting.
- On PostgreSQL a lease row is read ``FOR UPDATE SKIP LOCKED``: a writer never waits on a
  lease row (its one writer thread would stall every write it makes); a row locked by
  another transaction counts as taken, this time round. The replicas' own transactions take
  turns anyway (``postgres.WRITE_LOCK``), so that is a session outside them (an operator's).
  On SQLite the write transaction is exclusive already, so the same statements without the
  lock clause are enough.
- A holder asks the store again before any work past its renewal time (``LeaseClaim``),
  ``renew_seconds`` after its last write and well before the lease lapses
  (``duration_seconds``): another replica can take the lease over only once the holder has
  stopped renewing it for a whole lease. Work that outlasts the lease (a batch stuck for
  longer) may be sent twice; the receiver's deduplication makes that harmless. A holder
  renews each time its loop comes round (each batch; an idle delivery worker every 5 s, so
  a lease must be longer); one backing off from an unreachable peer for longer than a
  lease lets it go, and another replica tries the peer meanwhile.
- Times are the replicas' clocks (wall time, the node's injected clock). Replicas' clocks
  must agree to well within ``duration_seconds - renew_seconds`` (NTP does): a larger skew
  could let a replica take a lease its holder still works under.
- A takeover is logged once and counted (``LeaseClaim``'s ``metrics``): the lease, the
  holder it was taken from, whether that holder released it or let it lapse, how long it had
  been free and the takeover's delay: the time since the holder last renewed it (for a lapsed
  lease, how long it was free plus the lease's duration, as this replica's ``[leases]`` has
  it; replicas of a province share one) or released it. A released lease is told apart by
  its ``acquired_at``: ``release`` sets it to the moment of release, equal to its
  ``expires_at``, which no held lease's ever is.
- A wake-up is one process's: rows another replica queues for a peer are seen by the
  sender-lease holder at its next batch, or its next idle tick (5 s) when it is idle.

Row functions take a ``Connection`` and run inside a ``Database.write`` job; ``LeaseClaim``
is one replica's hold on one lease, asked before each piece of work.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from node.store import postgres
from node.store.connection import Connection
from node.store.database import Database, StoreError

log = logging.getLogger(__name__)

PLATFORM_POLL = "platform-poll"
"""The lease of reading the province platform's feeds."""
PLATFORM_DELIVERY = "platform-delivery"
"""The lease of handing the province platform what waits in the platform outbox."""
CHECKPOINTS = "checkpoints"
"""The lease of signing checkpoints of the shared evidence log for the witnesses."""

_COLUMNS = "name, owner, expires_at, acquired_at"


def outbox_lease(peer: str) -> str:
    """The name of the lease of sending ``peer`` its outbox."""
    return f"outbox:{peer}"


def new_owner(node_id: str) -> str:
    """A replica id for this process: the node's id, the pid and a random part, so two
    replicas (even on two machines with the same pid) never share one."""
    return f"{node_id}/{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaseConfig:
    """How long a replica's leases last: the ``[leases]`` section of ``node.toml``."""

    duration_seconds: float = 15.0
    """How long a lease lasts from its last renewal: how long a dead replica's jobs wait
    before another replica takes them over."""
    renew_seconds: float = 5.0
    """How often a holder renews while it works; well under ``duration_seconds``."""

    def problem(self) -> str | None:
        """Why these values cannot work (None when they can)."""
        if self.renew_seconds <= 0:
            return f"'renew_seconds' must be more than 0, not {self.renew_seconds}"
        if self.duration_seconds <= self.renew_seconds:
            return (
                f"'duration_seconds' ({self.duration_seconds}) must be more than "
                f"'renew_seconds' ({self.renew_seconds}): a lease must outlive its renewal"
            )
        return None


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    """The replica id of the holder (``new_owner``)."""
    expires_at: float
    """When the lease lapses unless renewed; free for anyone from then on."""
    acquired_at: float
    """When the holder took it (renewals keep it); once released, when it was released."""

    def held_by(self, owner: str, now: float) -> bool:
        return self.owner == owner and now < self.expires_at

    @property
    def released(self) -> bool:
        """Its holder released it (rather than stopped renewing it)."""
        return self.acquired_at >= self.expires_at


@dataclass(frozen=True)
class Takeover:
    """A lease another replica held, taken by this one."""

    name: str
    previous: str
    """The replica id of the holder it was taken from."""
    cause: str
    """``lapsed``: the holder stopped renewing it (died, froze, lost its store);
    ``released``: the holder handed it over as it stopped."""
    free_seconds: float
    """How long the lease had been free (lapsed or released) when it was taken."""
    delay_seconds: float
    """How long the job went undone: since the holder's last renewal (a lapsed lease: free
    for ``free_seconds`` after a whole lease's duration) or its release."""

    @classmethod
    def of(cls, before: Lease, *, now: float, duration: float) -> Takeover:
        """The takeover at ``now`` of ``before``, a lease of ``duration`` seconds."""
        free = max(0.0, now - before.expires_at)
        if before.released:
            return cls(before.name, before.owner, "released", free, free)
        return cls(before.name, before.owner, "lapsed", free, free + duration)


class TakeoverMetrics(Protocol):
    def lease_taken_over(self, lease: str, cause: str, delay_seconds: float) -> None:
        """Count one takeover of ``lease`` and observe its delay."""


class LeaseNotHeld(StoreError):
    """A renewal by a replica that does not hold the lease (any more); nothing changed."""

    code = "lease_not_held"

    def __init__(self, name: str, owner: str, holder: Lease | None) -> None:
        who = "nobody" if holder is None else holder.owner
        super().__init__(f"lease {name!r} is not held by {owner} (held by {who}); not renewed")
        self.holder = holder


def _lease(row: Any) -> Lease:
    return Lease(str(row[0]), str(row[1]), float(row[2]), float(row[3]))


def _check(name: str, owner: str, duration: float) -> None:
    if not name or not owner:
        raise ValueError("a lease needs a name and an owner")
    if duration <= 0:
        raise ValueError(f"a lease's duration must be more than 0, not {duration}")


def current(conn: Connection, name: str) -> Lease | None:
    """The lease as last written (lapsed or not), or None if it was never taken."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM leases WHERE name = ?",  # noqa: S608
        (name,),
    ).fetchone()
    return None if row is None else _lease(row)


def take(conn: Connection, name: str, owner: str, *, now: float, duration: float) -> Lease | None:
    """Take (or keep) the lease for ``duration`` if it is free, lapsed or ``owner``'s; return
    the lease as it now stands, whoever holds it. None: another replica's transaction is
    writing the row right now (PostgreSQL), so it is not ours this time."""
    _check(name, owner, duration)
    row = _lock_row(conn, name)
    if row is _BUSY:
        return None
    if row is None:
        inserted = conn.execute(
            f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?) "  # noqa: S608
            f"ON CONFLICT (name) DO NOTHING RETURNING {_COLUMNS}",
            (name, owner, now + duration, now),
        ).fetchone()
        # A conflict: another replica made the row in the same moment, and holds it.
        return None if inserted is None else _lease(inserted)
    lease = _lease(row)
    if lease.owner != owner and now < lease.expires_at:
        return lease
    acquired = lease.acquired_at if lease.held_by(owner, now) else now
    conn.execute(
        "UPDATE leases SET owner = ?, expires_at = ?, acquired_at = ? WHERE name = ?",
        (owner, now + duration, acquired, name),
    )
    return Lease(name, owner, now + duration, acquired)


def renew(conn: Connection, name: str, owner: str, *, now: float, duration: float) -> Lease:
    """Extend ``owner``'s live lease to ``now + duration``; ``LeaseNotHeld`` (and no change)
    when it is not ``owner``'s, or has lapsed (another replica may have worked under it)."""
    _check(name, owner, duration)
    row = conn.execute(
        f"UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND expires_at > ? "  # noqa: S608
        f"RETURNING {_COLUMNS}",
        (now + duration, name, owner, now),
    ).fetchone()
    if row is None:
        raise LeaseNotHeld(name, owner, current(conn, name))
    return _lease(row)


def release(conn: Connection, name: str, owner: str, *, now: float) -> bool:
    """Lapse ``owner``'s lease at ``now`` so another replica may take it at once; False
    (nothing changes) when ``owner`` does not hold it."""
    changed = conn.execute(
        "UPDATE leases SET expires_at = ?, acquired_at = ? "
        "WHERE name = ? AND owner = ? AND expires_at > ?",
        (now, now, name, owner, now),
    ).rowcount
    return changed > 0


def release_all(conn: Connection, owner: str, *, now: float) -> int:
    """Lapse every lease ``owner`` holds (a replica stopping); return how many."""
    return conn.execute(
        "UPDATE leases SET expires_at = ?, acquired_at = ? WHERE owner = ? AND expires_at > ?",
        (now, now, owner, now),
    ).rowcount


def all_leases(conn: Connection) -> list[Lease]:
    """Every lease as last written, by name (for status views)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM leases ORDER BY name")  # noqa: S608
    return [_lease(row) for row in rows]


class _Busy:
    """The row exists but another transaction holds its lock (PostgreSQL)."""


_BUSY = _Busy()


def _lock_row(conn: Connection, name: str) -> Any:
    """The lease's row, locked for this transaction; None when there is none; ``_BUSY``
    when another replica's transaction holds it (PostgreSQL: skipped, never waited for)."""
    if not isinstance(conn, postgres.PgConnection):
        return conn.execute(
            f"SELECT {_COLUMNS} FROM leases WHERE name = ?",  # noqa: S608
            (name,),
        ).fetchone()
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM leases WHERE name = ? FOR UPDATE SKIP LOCKED",  # noqa: S608
        (name,),
    ).fetchone()
    if row is not None:
        return row
    exists = conn.execute("SELECT 1 FROM leases WHERE name = ?", (name,)).fetchone()
    return _BUSY if exists is not None else None


Clock = Callable[[], float]


class LeaseClaim:
    """One replica's hold on one lease, asked before each piece of work (``hold``).

    Writes only when due: taking the lease, renewing it ``renew_seconds`` after the last
    write, or, while another replica holds it, looking again every ``renew_seconds`` (or when
    the holder's lease would lapse, if sooner). Between those, ``hold`` answers from what it
    last wrote or read. Taking the lease from another replica is logged and counted in
    ``metrics``."""

    def __init__(
        self,
        db: Callable[[], Database],
        name: str,
        owner: str,
        *,
        clock: Clock,
        config: LeaseConfig,
        metrics: TakeoverMetrics | None = None,
    ) -> None:
        self.name = name
        self.owner = owner
        self._db = db
        self._clock = clock
        self._config = config
        self._metrics = metrics
        self._renew_at = float("-inf")
        """Until then the lease is ours without asking the store."""
        self._expires_at = float("-inf")
        """When our lease lapses, as last written."""
        self._look_at = float("-inf")
        """Another replica holds the lease; not worth asking again before then."""

    @property
    def held(self) -> bool:
        """Whether this replica held the lease when last asked and may still work under it."""
        return self._clock() < self._renew_at

    async def hold(self) -> bool:
        """Whether this replica holds the lease now (taking or renewing it when due). A store
        that cannot be asked counts as not held: work that needs the lease waits."""
        now = self._clock()
        if now < self._renew_at:
            return True
        if now < self._look_at:
            return False
        duration = self._config.duration_seconds
        try:
            if now < self._expires_at:
                try:
                    lease: Lease | None = await self._db().write(
                        lambda c: renew(c, self.name, self.owner, now=now, duration=duration)
                    )
                except LeaseNotHeld as lost:
                    log.warning("lease lost", extra={"lease": self.name, "reason": str(lost)})
                    lease = await self._take(now, duration)
            else:
                lease = await self._take(now, duration)
        except StoreError as error:
            self._forget()
            log.warning(
                "lease not checked; waiting", extra={"lease": self.name, "error": str(error)}
            )
            return False
        if lease is not None and lease.held_by(self.owner, now):
            self._expires_at = lease.expires_at
            self._renew_at = min(now + self._config.renew_seconds, lease.expires_at)
            self._look_at = float("-inf")
            return True
        self._forget()
        # Held by another: look again after a renewal interval (a holder that stops releases
        # its lease, and that is seen then), or when it would lapse if that comes first.
        self._look_at = now + self._config.renew_seconds
        if lease is not None:
            self._look_at = min(self._look_at, lease.expires_at)
        return False

    async def _take(self, now: float, duration: float) -> Lease | None:
        def taking(conn: Connection) -> tuple[Lease | None, Lease | None]:
            return current(conn, self.name), take(
                conn, self.name, self.owner, now=now, duration=duration
            )

        before, lease = await self._db().write(taking)
        if (
            before is not None
            and before.owner != self.owner
            and lease is not None
            and lease.held_by(self.owner, now)
        ):
            self._taken_over(Takeover.of(before, now=now, duration=duration))
        return lease

    def _taken_over(self, takeover: Takeover) -> None:
        log.log(
            logging.WARNING if takeover.cause == "lapsed" else logging.INFO,
            "lease taken over",
            extra={
                "lease": takeover.name,
                "owner": self.owner,
                "previous": takeover.previous,
                "cause": takeover.cause,
                "free_seconds": round(takeover.free_seconds, 3),
                "delay_seconds": round(takeover.delay_seconds, 3),
            },
        )
        if self._metrics is not None:
            self._metrics.lease_taken_over(takeover.name, takeover.cause, takeover.delay_seconds)

    def _forget(self) -> None:
        self._renew_at = self._expires_at = float("-inf")
