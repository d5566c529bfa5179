"""Request signing of the Zhejiang dialect (浙里办 open platform), without I/O.

Every request to the open platform (``/zlb/open/…``) carries four headers, and the platform
checks them before it reads anything else:

- ``X-App-Key``: the caller's app key (应用标识).
- ``X-Timestamp``: when it was signed, in whole milliseconds since the epoch.
- ``X-Nonce``: 8 to 64 characters from ``[A-Za-z0-9_-]``, new for every request.
- ``X-Signature``: lower-case hex HMAC-SHA256, keyed with the app secret (UTF-8), of

      METHOD "\\n" TARGET "\\n" TIMESTAMP "\\n" NONCE "\\n" hex(SHA-256(body))

  where ``METHOD`` is upper case, ``TARGET`` is the request target exactly as it is sent
  on the request line (path and, if any, ``?`` and the query string, percent-encoding
  untouched; no scheme or host) and the body digest is over the raw body bytes (the digest
  of no bytes for a GET).

Rules the platform keeps (``SignatureCheck``), in this order, each refusal a
``PlatformRefusal`` with its own code, and nothing of the request read or stored:

1. All four headers present and of their form, else ``unsigned_request`` (401).
2. The app key is the one the platform knows, else ``unknown_app_key`` (403).
3. The timestamp is within ``WINDOW_SECONDS`` of the platform's clock, either way, else
   ``stale_timestamp`` (401).
4. The signature matches (compared in constant time), else ``bad_signature`` (401).
5. The nonce was not used by a correctly signed request within the window, else
   ``replayed_nonce`` (401). A nonce is remembered only once its request passed 1-4, and
   forgotten when its timestamp leaves the window (a replay after that fails rule 3).
   The memory is the running process's: a restarted platform forgets, which is harmless
   for a simulation and is said here so nobody copies it into a real one.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Final

from adapters.simulation.platform import PlatformRefusal

APP_KEY_HEADER: Final = "X-App-Key"
TIMESTAMP_HEADER: Final = "X-Timestamp"
NONCE_HEADER: Final = "X-Nonce"
SIGNATURE_HEADER: Final = "X-Signature"
WINDOW_SECONDS: Final = 300

_NONCE: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
_TIMESTAMP: Final = re.compile(r"[0-9]{1,16}")
_SIGNATURE: Final = re.compile(r"[0-9a-f]{64}")


def string_to_sign(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes the signature covers (module docstring)."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), target, timestamp, nonce, digest)).encode("utf-8")


def sign(app_secret: str, method: str, target: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The ``X-Signature`` value of a request."""
    message = string_to_sign(method, target, timestamp, nonce, body)
    return hmac.new(app_secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(
    app_key: str,
    app_secret: str,
    method: str,
    target: str,
    body: bytes,
    *,
    now: float,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four signing headers of a request made at ``now`` (epoch seconds); a fresh random
    nonce unless one is given."""
    timestamp = str(round(now * 1000))
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    return {
        APP_KEY_HEADER: app_key,
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(app_secret, method, target, timestamp, nonce, body),
    }


class SignatureCheck:
    """The platform's check of one app's signed requests (rules in the module docstring)."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        *,
        clock: Callable[[], float],
        window: float = WINDOW_SECONDS,
    ) -> None:
        if not app_key or not app_secret:
            raise ValueError("the app key and the app secret must not be empty")
        self._app_key = app_key.encode("utf-8")
        self._app_secret = app_secret
        self._clock = clock
        self._window = window
        self._seen: set[str] = set()
        self._expiry: list[tuple[float, str]] = []
        """(timestamp, nonce) of every remembered nonce, a heap: oldest first."""

    def verify(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> None:
        """Pass a correctly signed, fresh request; raise ``PlatformRefusal`` otherwise."""
        app_key = _header(headers, APP_KEY_HEADER, None)
        timestamp = _header(headers, TIMESTAMP_HEADER, _TIMESTAMP)
        nonce = _header(headers, NONCE_HEADER, _NONCE)
        given = _header(headers, SIGNATURE_HEADER, _SIGNATURE)
        if not hmac.compare_digest(app_key.encode("utf-8"), self._app_key):
            raise PlatformRefusal(
                "unknown_app_key",
                "the platform knows no app with this key",
                field=APP_KEY_HEADER,
                status=403,
            )
        now = self._clock()
        signed_at = int(timestamp) / 1000
        if abs(now - signed_at) > self._window:
            raise PlatformRefusal(
                "stale_timestamp",
                f"the request was signed more than {self._window:g} seconds from the "
                "platform's clock (check the caller's clock and that X-Timestamp is in "
                "milliseconds)",
                field=TIMESTAMP_HEADER,
                status=401,
            )
        expected = sign(self._app_secret, method, target, timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode("ascii"), given.encode("ascii")):
            raise PlatformRefusal(
                "bad_signature",
                "the signature does not match the request (method, target, timestamp, "
                "nonce and body digest, keyed with the app secret)",
                field=SIGNATURE_HEADER,
                status=401,
            )
        self._forget_before(now - self._window)
        if nonce in self._seen:
            raise PlatformRefusal(
                "replayed_nonce",
                "this nonce was already used; sign every request with a new one",
                field=NONCE_HEADER,
                status=401,
            )
        self._seen.add(nonce)
        heapq.heappush(self._expiry, (signed_at, nonce))

    def remembered(self) -> int:
        """How many nonces the check holds now (rule 5 bounds it by the window)."""
        return len(self._seen)

    def _forget_before(self, oldest: float) -> None:
        while self._expiry and self._expiry[0][0] < oldest:
            _, nonce = heapq.heappop(self._expiry)
            self._seen.discard(nonce)


def _header(headers: Mapping[str, str], name: str, form: re.Pattern[str] | None) -> str:
    value = headers.get(name, "")
    if not value or (form is not None and form.fullmatch(value) is None):
        raise PlatformRefusal(
            "unsigned_request",
            f"every request must carry {APP_KEY_HEADER}, {TIMESTAMP_HEADER} (milliseconds), "
            f"{NONCE_HEADER} (8-64 of A-Z a-z 0-9 _ -) and {SIGNATURE_HEADER} (64 hex digits); "
            f"{name} is missing or not of its form",
            field=name,
            status=401,
        )
    return value
