"""The adapter interface: how a node talks to its own province's platform (DESIGN.md §8).

An adapter speaks one platform's dialect over HTTP and gives the node province-neutral
values. Rules every adapter keeps:

1. The node is the client; the platform is a server the adapter calls. Polls return what
   happened since an opaque cursor the adapter gave before (``None``: from the beginning),
   and the next cursor. The node stores the cursor only after it has durably taken every
   item of the page, so a crash re-reads a page, never skips one.
2. What the platform sends is translated into the REST API's shapes (DESIGN.md §9), so the
   node checks it with exactly the rules its REST API applies: an ``Application.body`` is a
   ``POST /v1/cases`` body, a ``PlatformEvent.body`` a ``POST /v1/cases/{id}/events`` body.
3. A record the adapter cannot translate (a missing field, an unknown status code or label,
   a bad time format) is returned as a ``Malformed`` in its place, naming the platform's
   reference, the field and why, so one bad record neither stops the feed nor vanishes.
   A reply that is not the dialect at all (bad signature, malformed body, non-UTF-8, an XML
   entity bomb, nesting too deep, a number too long, an HTML page) raises ``DialectError``
   naming the platform: nothing of it is used. Whatever fails while a reply is read is a
   ``DialectError`` (or ``PlatformUnavailable``), never another exception, so no reply can
   stop the node's polling.
4. Deliveries into the platform (``deliver_case``, ``deliver_update``,
   ``reject_application``) are idempotent on the case id (and the update's sequence) or on
   the application's reference: the node retries until the platform took it, and a
   platform that is down or answers 5xx raises ``PlatformUnavailable`` so the node keeps
   the item queued. A 4xx refusal raises ``DialectError``: retrying cannot help.
5. Times are epoch seconds (float) here, whatever the dialect writes.
6. An adapter never logs names or ID numbers.
7. Every application read from the platform is answered exactly once: ``acknowledge`` with
   the case it became, or ``reject_application`` with an ``ApplicationRefusal`` (never
   both). The federation refuses an application its checks refuse (a wrong check digit, an
   unknown matter, a missing material …) and one whose record the adapter could not
   translate (a ``Malformed`` of the applications feed that names its reference). A
   ``Malformed`` whose reference could not be read (``UNNAMED``) cannot be answered: the
   node only logs and counts it. So it does with a ``Malformed`` of the event feed: an
   event is not an application, and the platform's people see on the case whether it
   took effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.certificates.library import CertificateSourceError


class PlatformUnavailable(CertificateSourceError):
    """The platform did not answer, timed out or answered 5xx; try again later."""


class DialectError(CertificateSourceError):
    """The platform's answer or request is not valid in its dialect; retrying cannot help.

    ``code`` is stable and machine-readable (e.g. ``malformed_body``, ``bad_signature``,
    ``unknown_status``, ``bad_time``, ``missing_field``, ``not_utf8``, ``forbidden_xml``,
    ``too_deep``, ``number_too_large``, ``html_reply``, ``malformed_reply``), ``field``
    names the dialect's field at fault when there is one, and ``platform`` the province
    whose platform answered (set by the adapter; empty on the platform's own side).
    """

    def __init__(self, code: str, detail: str, *, field: str = "", platform: str = "") -> None:
        super().__init__(code, detail, field)
        self.code = code
        self.detail = detail
        self.field = field
        self.platform = platform

    def __str__(self) -> str:
        named = f"the {self.platform} platform: " if self.platform else ""
        at = f" (field {self.field})" if self.field else ""
        return f"{named}{self.code}: {self.detail}{at}"


@dataclass(frozen=True)
class Application:
    """A cross-province application entered at this platform (this province accepts it)."""

    reference: str
    """The platform's own application number; the node keys idempotency on it."""
    body: Mapping[str, Any]
    """A ``POST /v1/cases`` body: matter_code, handler, mode, applicant, materials."""


@dataclass(frozen=True)
class PlatformEvent:
    """Something the platform's people did on a federation case: an officer's decision on a
    case this province handles, or the applicant's supplement, withdrawal or evaluation on
    a case this province accepted."""

    event_id: str
    """Unique in the platform's event feed; the node applies each event once."""
    case_id: str
    body: Mapping[str, Any]
    """A ``POST /v1/cases/{id}/events`` body: action, reason?, result?, level?, comment?"""


UNNAMED = "?"
"""The reference of a ``Malformed`` whose own id could not be read (rules 3 and 7)."""


@dataclass(frozen=True)
class Malformed:
    """A record of a feed the adapter could not translate (rule 3)."""

    reference: str
    """The platform's id of the record (application number or event id), or ``UNNAMED``."""
    code: str
    field: str
    detail: str


@dataclass(frozen=True)
class ApplicationRefusal:
    """Why the federation refused an application entered at the platform (rule 7)."""

    code: str
    """Stable and machine-readable: the node's refusal of the application
    (``invalid_id_number``, ``unknown_matter``, ``missing_material``,
    ``certificate_type_mismatch``, ``reference_reused`` …) or the adapter's of its record
    (``unknown_code``, ``bad_time``, ``missing_field`` …)."""
    field: str
    """The field at fault, or ``""``: a path in the ``POST /v1/cases`` body
    (``applicant.code``), which the adapter writes as its dialect names it, unless
    ``in_dialect``."""
    reason: str
    """A sentence for the people at the window; it never repeats a value (a name, an ID
    number)."""
    in_dialect: bool = False
    """Whether ``field`` is already the dialect's path (the adapter's own ``Malformed``),
    sent as it is."""


@dataclass(frozen=True)
class Page:
    items: Sequence[Application | PlatformEvent | Malformed]
    cursor: str | None
    """Where the next poll starts; unchanged when nothing new arrived."""


@dataclass(frozen=True)
class InboundCase:
    """A case another province accepted for this province to handle."""

    case_id: str
    accepting: str
    """The accepting province: shanghai, jiangsu, zhejiang or anhui."""
    matter_code: str
    mode: str
    applicant: Mapping[str, str]
    """name, code_type ("111" or "001"), code."""
    materials: Sequence[Mapping[str, str]]
    """Each: name and sha256, or name and certificate_id."""
    submitted_at: float


@dataclass(frozen=True)
class CaseNotice:
    """An applied update of a case this province takes part in, for its platform."""

    case_id: str
    sequence: int
    action: str
    """deliver, accept, reject, request_supplement, supplement, complete, deny, withdraw,
    evaluate."""
    by: str
    """accepting or handling."""
    status: str
    """The case's status after the update."""
    at: float
    reason: str = ""
    result: Mapping[str, str] | None = None
    evaluation: Mapping[str, Any] | None = None
    """level (1-5) and comment."""
    due_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class ProvinceAdapter(Protocol):
    """One province platform, in its dialect (rules in the module docstring)."""

    async def poll_applications(self, cursor: str | None) -> Page:
        """New cross-province applications entered at the platform."""
        ...

    async def acknowledge(self, reference: str, case_id: str) -> None:
        """Tell the platform which federation case its application became."""
        ...

    async def reject_application(self, reference: str, refusal: ApplicationRefusal) -> None:
        """Tell the platform that the federation refused its application (rule 7), with
        the code, the field at fault and the reason; idempotent on ``reference``."""
        ...

    async def poll_events(self, cursor: str | None) -> Page:
        """New officer and applicant actions on federation cases."""
        ...

    async def deliver_case(self, case: InboundCase) -> None:
        """Hand the platform a case to handle; idempotent on ``case_id``."""
        ...

    async def deliver_update(self, notice: CaseNotice) -> None:
        """Tell the platform about an applied update; idempotent on (case_id, sequence)."""
        ...

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None:
        """A certificate of the platform's library in ``node.certificates.model.to_json``
        form (status as the library holds it), or None if the library has no such id."""
        ...

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]:
        """Every certificate of the library that is revoked or suspended now: each
        ``{"certificate_id", "status": "revoked"|"suspended", "since": epoch seconds,
        "reason"}``, the input of the issuer's signed revocation list."""
        ...

    async def list_matters(self) -> Sequence[Mapping[str, Any]]:
        """The platform's cross-province matters, in the catalog's JSON form."""
        ...

    async def close(self) -> None: ...
