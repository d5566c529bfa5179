"""Node configuration: one TOML file per node (``node.toml``), read into frozen dataclasses.

Rules kept here:
- Relative paths in the file are relative to the file's own folder, so a mesh folder can be
  moved as a whole.
- The loader takes the environment as an argument instead of reading ``os.environ`` itself.
- The REST API's tokens live in the store (``yrd token``), never in this file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from node.delivery.config import DeliveryConfig as DeliveryConfig  # read here, used there
from node.delivery.retry import IDLE_TICK
from node.platform.config import PlatformConfig
from node.protocol.checks import DEFAULT_CLOCK_WINDOW, DEFAULT_MAX_MESSAGE_BYTES
from node.protocol.envelope import MAX_BATCH_MESSAGES
from node.store.connection import PostgresUrl, StoreLocation, store_location
from node.store.leases import LeaseConfig
from node.transport.admission import PeerLimits
from node.trust.keys import (
    VerifyKey,
    parse_public_key,
)

DEFAULT_MAX_PROBES = 1000
DEFAULT_MAX_PROBE_PAYLOAD = 4096
"""One probe request writes at most about 4 MB on each of two nodes."""


class ConfigError(Exception):
    """The configuration file is missing, malformed or unsafe; the message names the key."""


@dataclass(frozen=True)
class Paths:
    manifest: Path
    """The signed federation manifest."""
    signing_key: Path
    """This node's Ed25519 private key (PEM, mode 0600)."""
    tls_key: Path
    """The TLS private key (PEM, mode 0600)."""
    tls_cert: Path
    """The TLS certificate; its DNS SAN is the node id."""
    ca_cert: Path
    """The federation CA certificate that every peer's TLS certificate chains to."""
    store: StoreLocation
    """The store: a SQLite file (``[paths] store``), or a PostgreSQL database (``[store]
    url = "postgresql://…"``); exactly one of the two is given."""


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    """This node's id in the manifest and in its TLS certificate."""
    province: str
    """shanghai, jiangsu, zhejiang or anhui."""
    governance_keys: tuple[VerifyKey, ...]
    """Trust anchors: the public keys allowed to sign the manifest."""
    paths: Paths
    grpc_listen: str
    """host:port of the federation gRPC server."""
    http_listen: str
    """host:port of the REST API, metrics and status."""
    allowed_hosts: tuple[str, ...] = ()
    """``Host`` names (host:port) the REST API answers for besides its listen address."""
    dashboard_peers: tuple[str, ...] = ()
    """Peers' REST base URLs the dashboard's mesh view may ask, passing on the viewer's
    token (``[http] dashboard_peers``); any other URL is refused, so a token is never sent
    to a process that is not a known peer."""
    max_probes: int = DEFAULT_MAX_PROBES
    """Most probes one ``POST /v1/probes`` may send (``[http] max_probes``)."""
    max_probe_payload_bytes: int = DEFAULT_MAX_PROBE_PAYLOAD
    """Largest payload of one probe: with ``max_probes``, what one request may write."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    clock_window_seconds: float = DEFAULT_CLOCK_WINDOW
    heartbeat_interval_seconds: float = 5.0
    checkpoint_interval_seconds: float = 60.0
    """How often the node signs a checkpoint of its evidence log for its peers to cosign."""
    shutdown_grace_seconds: float = 10.0
    """How long in-flight calls may run after SIGTERM before they are cancelled."""
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    leases: LeaseConfig = field(default_factory=LeaseConfig)
    """How long the leases of replicas sharing one store last (``[leases]``): who sends
    each peer its outbox, who reads and feeds the platform (``node.store.leases``)."""
    peer_limits: PeerLimits = field(default_factory=PeerLimits)
    """What one peer may hold of the federation port (``[peer_limits]``)."""
    peer_addresses: Mapping[str, str] = field(default_factory=dict)
    """Where to dial a peer instead of its endpoint in the manifest, by province
    (``[peers.<province>] address = "host:port"``): a local relay, or the fault proxy of
    ``yrd mesh up --links``. Only the address changes: the peer must still present the TLS
    certificate of the manifest's node for it."""
    platform: PlatformConfig | None = None
    """Without one, the node's certificate library lives in its store and cases come only
    through the REST API."""
    revocation_refresh_seconds: float = 30.0
    """How often the node checks its library for revocations to publish, and pulls each
    peer's revocation list."""
    verify_batch_items: int = 500
    """Most items one ``POST /v1/certificates/verify-batch`` may ask (``[certificates]
    verify_batch_items``); a longer list is refused whole."""
    holiday_tables: tuple[Path, ...] = ()
    """Extra holiday tables (``[cases] holiday_tables``) for years the packaged ones do not
    cover, or to correct one; case deadlines count working days with them."""
    test_clock_file: Path | None = None
    """A file holding seconds to add to the machine's time (``test_clock_file``): a test
    clock that tests move a whole mesh's time on with, every node naming the same file
    (``node.runtime.clock``). Never set in a real deployment."""
    source: Path | None = None
    """The file this was read from."""


def _get(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key!r} must be a {kind.__name__}, not {value!r}")
    return value


def _opt(table: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    return _get(table, key, kind, where) if key in table else default


def _interval(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    """A period a loop sleeps between rounds: zero or less would make the loop spin."""
    value = float(_opt(table, key, float, default, where))
    if not (0 < value < math.inf):
        raise ConfigError(f"{where}: {key!r} must be a positive number of seconds, not {value!r}")
    return value


def parse_config(
    data: Mapping[str, Any], *, base: Path, env: Mapping[str, str], source: Path | None = None
) -> NodeConfig:
    where = str(source or "config")
    paths_table = _get(data, "paths", dict, where)
    files = {
        name: base / _get(paths_table, name, str, f"{where} [paths]")
        for name in ("manifest", "signing_key", "tls_key", "tls_cert", "ca_cert")
    }
    paths = Paths(**files, store=_store(data, paths_table, base, where))
    anchors = []
    for i, text in enumerate(_get(data, "governance_keys", list, where)):
        try:
            anchors.append(parse_public_key(str(text)))
        except ValueError as exc:
            raise ConfigError(f"{where}: governance_keys[{i}]: {exc}") from exc
    if not anchors:
        raise ConfigError(f"{where}: governance_keys must name at least one key")
    certificates = _opt(data, "certificates", dict, {}, where)
    verify_batch_items = _opt(
        certificates, "verify_batch_items", int, 500, f"{where} [certificates]"
    )
    if verify_batch_items < 1:
        raise ConfigError(f"{where} [certificates]: verify_batch_items must be at least 1")
    grpc_t = _get(data, "grpc", dict, where)
    http_t = _get(data, "http", dict, where)
    delivery = _section(data, "delivery", DeliveryConfig(), where)
    if not 1 <= delivery.batch_size <= MAX_BATCH_MESSAGES:
        raise ConfigError(
            f"{where} [delivery]: 'batch_size' must be 1 to {MAX_BATCH_MESSAGES} (the most "
            f"messages a peer takes in one frame), not {delivery.batch_size}"
        )
    leases = _section(data, "leases", LeaseConfig(), where)
    if (problem := leases.problem()) is not None:
        raise ConfigError(f"{where} [leases]: {problem}")
    if leases.duration_seconds <= IDLE_TICK:
        raise ConfigError(
            f"{where} [leases]: 'duration_seconds' must be more than {IDLE_TICK} s, the idle "
            f"tick at which an idle holder renews, not {leases.duration_seconds}"
        )
    peer_limits = _section(data, "peer_limits", PeerLimits(), where)
    for name in ("max_streams", "max_calls", "stream_backlog", "refusals_to_suspend"):
        if getattr(peer_limits, name) < 1:
            raise ConfigError(f"{where} [peer_limits]: {name!r} must be at least 1")
    platform = _platform(_opt(data, "platform", dict, None, where), base, f"{where} [platform]")
    cases_t = _opt(data, "cases", dict, {}, where)
    holiday_tables = tuple(
        base / str(name) for name in _opt(cases_t, "holiday_tables", list, [], f"{where} [cases]")
    )
    http_listen = _get(http_t, "listen", str, f"{where} [http]")
    test_clock = _opt(data, "test_clock_file", str, None, where)
    province = _get(data, "province", str, where)
    peer_addresses = _peer_addresses(_opt(data, "peers", dict, {}, where), province, where)
    if "token" in http_t:
        raise ConfigError(
            f"{where} [http]: 'token' is no longer read: the REST API's tokens are made with "
            "`yrd token create --config node.toml --scope S --name N`; remove the key"
        )
    hosts = _opt(http_t, "allowed_hosts", list, [], f"{where} [http]")
    dashboard_peers = _opt(http_t, "dashboard_peers", list, [], f"{where} [http]")
    if not all(isinstance(u, str) and u for u in dashboard_peers):
        raise ConfigError(f"{where} [http]: 'dashboard_peers' must be a list of base URLs")
    if not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError(f"{where} [http]: 'allowed_hosts' must be a list of host:port names")
    return NodeConfig(
        node_id=_get(data, "node_id", str, where),
        province=province,
        governance_keys=tuple(anchors),
        paths=paths,
        grpc_listen=_get(grpc_t, "listen", str, f"{where} [grpc]"),
        http_listen=http_listen,
        allowed_hosts=tuple(hosts),
        dashboard_peers=tuple(dashboard_peers),
        max_probes=_opt(http_t, "max_probes", int, DEFAULT_MAX_PROBES, f"{where} [http]"),
        max_probe_payload_bytes=_opt(
            http_t, "max_probe_payload_bytes", int, DEFAULT_MAX_PROBE_PAYLOAD, f"{where} [http]"
        ),
        max_message_bytes=_opt(
            grpc_t, "max_message_bytes", int, DEFAULT_MAX_MESSAGE_BYTES, f"{where} [grpc]"
        ),
        clock_window_seconds=_opt(data, "clock_window_seconds", float, DEFAULT_CLOCK_WINDOW, where),
        heartbeat_interval_seconds=_interval(data, "heartbeat_interval_seconds", 5.0, where),
        checkpoint_interval_seconds=_interval(data, "checkpoint_interval_seconds", 60.0, where),
        shutdown_grace_seconds=_opt(data, "shutdown_grace_seconds", float, 10.0, where),
        delivery=delivery,
        leases=leases,
        peer_limits=peer_limits,
        peer_addresses=peer_addresses,
        holiday_tables=holiday_tables,
        test_clock_file=None if test_clock is None else base / test_clock,
        platform=platform,
        revocation_refresh_seconds=_opt(
            certificates, "revocation_refresh_seconds", float, 30.0, f"{where} [certificates]"
        ),
        verify_batch_items=verify_batch_items,
        source=source,
    )


Section = TypeVar("Section")


def _store(
    data: Mapping[str, Any], paths_table: Mapping[str, Any], base: Path, where: str
) -> StoreLocation:
    """``[paths] store`` (a SQLite file) or ``[store] url`` (PostgreSQL): exactly one."""
    store_t = _opt(data, "store", dict, {}, where)
    unknown = sorted(set(store_t) - {"url"})
    if unknown:
        raise ConfigError(f"{where} [store]: unknown key {unknown[0]!r} (only 'url' is read)")
    if "url" in store_t:
        if "store" in paths_table:
            raise ConfigError(
                f"{where}: both [paths] 'store' and [store] 'url' are given; keep one (a SQLite "
                "file, or a PostgreSQL database)"
            )
        location = store_location(_get(store_t, "url", str, f"{where} [store]"))
        if not isinstance(location, PostgresUrl):
            raise ConfigError(
                f"{where} [store]: 'url' must be a postgresql:// URL, not {location}; a SQLite "
                "store is [paths] 'store'"
            )
        return location
    if "store" not in paths_table:
        raise ConfigError(
            f"{where}: missing the store: [paths] 'store' (a SQLite file) or [store] 'url' "
            "(a postgresql:// URL)"
        )
    store_file: str = _get(paths_table, "store", str, f"{where} [paths]")
    return base / store_file


def _section(data: Mapping[str, Any], name: str, defaults: Section, where: str) -> Section:
    """A table of settings read into a frozen dataclass, each key optional."""
    table = _opt(data, name, dict, {}, where)
    fields = dataclasses.fields(defaults)  # type: ignore[arg-type]
    unknown = set(table) - {f.name for f in fields}
    if unknown:
        raise ConfigError(f"{where} [{name}]: unknown key {sorted(unknown)[0]!r}")
    values = {
        f.name: _opt(
            table,
            f.name,
            type(getattr(defaults, f.name)),
            getattr(defaults, f.name),
            f"{where} [{name}]",
        )
        for f in fields
    }
    return dataclasses.replace(defaults, **values)  # type: ignore[type-var]


def _peer_addresses(table: Mapping[str, Any], province: str, where: str) -> dict[str, str]:
    """``[peers.<province>] address`` tables: host:port to dial each named peer at."""
    addresses = {}
    for peer, entry in table.items():
        at = f"{where} [peers.{peer}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} [peers]: {peer!r} must be a table ([peers.{peer}])")
        unknown = sorted(set(entry) - {"address"})
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r}")
        if peer == province:
            raise ConfigError(f"{at}: a node does not dial itself; name a peer's province")
        address = _get(entry, "address", str, at)
        host, colon, port = address.rpartition(":")
        if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"{at}: 'address' must be host:port, not {address!r}")
        addresses[peer] = address
    return addresses


def _platform(table: Mapping[str, Any] | None, base: Path, where: str) -> PlatformConfig | None:
    if table is None:
        return None
    credentials = _opt(table, "credentials_file", str, None, where)
    return PlatformConfig(
        adapter=_get(table, "adapter", str, where),
        url=_get(table, "url", str, where),
        credentials_file=base / credentials if credentials else None,
        poll_interval_seconds=_opt(table, "poll_interval_seconds", float, 0.5, where),
        retry_max_seconds=_opt(table, "retry_max_seconds", float, 60.0, where),
    )


def load_config(path: Path, env: Mapping[str, str]) -> NodeConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(data, base=path.resolve().parent, env=env, source=path)


def render_config(
    *,
    node_id: str,
    province: str,
    governance_public_keys: list[str],
    paths: Mapping[str, str],
    grpc_listen: str,
    http_listen: str,
    platform_url: str | None = None,
    platform_credentials: str | None = None,
    dashboard_peers: Sequence[str] = (),
    store_url: str | None = None,
) -> str:
    """A node.toml text with every default written out, for ``yrd mesh init``.

    ``paths`` maps manifest, signing_key, tls_key, tls_cert, ca_cert and store to paths
    relative to the file's folder; with ``store_url`` the store is that PostgreSQL database
    (``[store] url``) and ``paths`` names no store. With ``platform_url`` the node reaches
    its province's platform through the adapter of its own province's dialect.
    """
    d = DeliveryConfig()
    leases = LeaseConfig()
    limits = PeerLimits()

    def q(text: str) -> str:
        return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string

    lines = [
        "# Federation node configuration (yrd node run --config THIS_FILE).",
        "# Relative paths are relative to this file's folder.",
        f"node_id = {q(node_id)}",
        f"province = {q(province)}",
        "# Public keys allowed to sign the federation manifest (base64 Ed25519).",
        f"governance_keys = [{', '.join(q(k) for k in governance_public_keys)}]",
        f"clock_window_seconds = {DEFAULT_CLOCK_WINDOW}",
        "heartbeat_interval_seconds = 5.0",
        "checkpoint_interval_seconds = 60.0",
        "shutdown_grace_seconds = 10.0",
        "",
        "[paths]",
        *(
            f"{name} = {q(paths[name])}"
            for name in ("manifest", "signing_key", "tls_key", "tls_cert", "ca_cert", "store")
            if name != "store" or store_url is None
        ),
        "",
        *(["[store]", f"url = {q(store_url)}", ""] if store_url is not None else []),
        "[grpc]",
        f"listen = {q(grpc_listen)}",
        f"max_message_bytes = {DEFAULT_MAX_MESSAGE_BYTES}",
        "",
        "[http]",
        "# Every route but /healthz, /readyz and /metrics needs a token (yrd token create).",
        f"listen = {q(http_listen)}",
        "# Host names (host:port) besides the listen address that clients may use.",
        "allowed_hosts = []",
        "# Peers' REST URLs the dashboard's mesh view may ask with the viewer's own token.",
        f"dashboard_peers = [{', '.join(q(u) for u in dashboard_peers)}]",
        "# What one POST /v1/probes may send: count, and bytes of payload per probe.",
        f"max_probes = {DEFAULT_MAX_PROBES}",
        f"max_probe_payload_bytes = {DEFAULT_MAX_PROBE_PAYLOAD}",
        "",
        "[delivery]",
        f"batch_size = {d.batch_size}",
        f"retry_initial_seconds = {d.retry_initial_seconds}",
        f"retry_max_seconds = {d.retry_max_seconds}",
        f"dead_letter_after_seconds = {d.dead_letter_after_seconds}",
        "",
        "[leases]",
        "# Replicas sharing one store: one sends each peer its outbox, one reads and feeds the",
        "# platform, each under a lease renewed while it works; a dead one's lapse and are taken",
        "# over after duration_seconds.",
        f"duration_seconds = {leases.duration_seconds}",
        f"renew_seconds = {leases.renew_seconds}",
        "",
        "[peer_limits]",
        "# What one peer may hold of this node's federation port; past it, RESOURCE_EXHAUSTED.",
        f"max_streams = {limits.max_streams}",
        f"max_calls = {limits.max_calls}",
        f"stream_backlog = {limits.stream_backlog}",
        "# A peer refused for good this often within the window is suspended for a while.",
        f"refusals_to_suspend = {limits.refusals_to_suspend}",
        f"refusal_window = {limits.refusal_window}",
        f"suspend_seconds = {limits.suspend_seconds}",
        "",
        "# To dial a peer somewhere other than its endpoint in the manifest (a relay, a test",
        "# proxy), add a table per peer; its TLS certificate is still checked as the manifest's:",
        "# [peers.jiangsu]",
        '# address = "127.0.0.1:7302"',
        "",
    ]
    if platform_url is not None:
        lines += [
            "[platform]",
            "# The province platform, in its own dialect (adapters/<adapter>/README.md).",
            f"adapter = {q(province)}",
            f"url = {q(platform_url)}",
            *([f"credentials_file = {q(platform_credentials)}"] if platform_credentials else []),
            "poll_interval_seconds = 0.5",
            "",
        ]
    return "\n".join(lines)
