"""The mesh folder: what ``yrd mesh init DIR`` writes, and the governance operations on it
(publishing a manifest, rotating and revoking a province's signing key).

Layout::

    DIR/ca/ca.crt, ca.key                    federation CA
    DIR/governance/governance.key, .pub      the key that signs the manifest
    DIR/manifest.json                        the signed manifest
    DIR/<province>/node.toml                 one node's config (paths relative to it)
    DIR/<province>/signing.key               signing key (signing-<n>.key after rotation)
    DIR/<province>/tls.key, tls.crt          TLS key and certificate (SAN = node id)
    DIR/<province>/node-<r>.toml             replica r's config (r = 2..N; ``--replicas N``)
    DIR/postgres/                            the mesh's PostgreSQL server (``--store postgres``)

Rules kept here:
- Every private key file is created 0600 (``write_private_file``), never chmod-ed later.
  Signing keys are PKCS#8 PEM files whose algorithm identifier names their suite (Ed25519,
  or SM2 on curve sm2p256v1), so ``openssl pkey`` reads them; each member's suite and the
  governance key's are chosen at init (``SuiteChoice``, ``--suite``) and a rotation may move
  a member to the other suite.
  DIR and every folder in it are 0700 (``PRIVATE_DIR_MODE``): they hold keys, tokens, and
  once the mesh runs, stores and logs with personal data (``yrd mesh up`` keeps those 0600).
- ``init_mesh`` writes everything or nothing: it builds the mesh in a hidden sibling folder
  and renames it into place, and refuses a DIR that exists and is not empty.
- Every published manifest is one version above the one it replaces, is checked by the same
  ``verify_manifest`` the nodes run before it is written, and replaces the file atomically.
- ``--store postgres --replicas N`` (``StoreChoice``): each province's store is a database
  of the mesh's own PostgreSQL server (``DIR/postgres``, ``postgres_server``), on a port
  chosen free at init and written into every node.toml's ``[store] url``; replica r of a
  province has its own config ``node-<r>.toml`` (replica 1 keeps ``node.toml``) in the
  province's folder: the same keys, certificate and database, its own gRPC and HTTP ports
  (replica 1's plus ``REPLICA_PORT_STEP`` × (r − 1)); the manifest lists every replica's
  gRPC endpoint under ``endpoints``. Replicas need the shared database: with SQLite (one
  file, one process) ``--replicas`` above 1 is refused.
- Rotation is an overlap: the new key is published first, then the node is pointed at it, and
  the old key keeps verifying until the overlap ends, so no message in flight is refused.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from node.mesh.postgres_server import SERVER_USER, free_port
from node.mesh.suite_choice import ED25519_THROUGHOUT, SuiteChoice
from node.runtime.config import load_config, render_config
from node.trust.keys import (
    SigningKey,
    VerifyKey,
    load_signing_key,
    parse_public_key,
    save_signing_key,
    write_private_file,
)
from node.trust.manifest import (
    PROVINCES,
    KeyEntry,
    Manifest,
    Member,
    VerifyPermission,
    load_manifest,
    sign_manifest,
    verify_manifest,
)
from node.trust.suites import Suite
from node.trust.tls import certificate_pem, create_ca, issue_node_certificate, private_key_pem
from node.vocabulary import CERTIFICATE_TYPES, PURPOSE_TOKENS

FEDERATION = "yangtze-river-delta"
DEFAULT_PROVINCES = tuple(PROVINCES)
"""A new mesh's members: every province, in GB/T 2260 order."""
DEFAULT_MAY_SEND = (
    "attestation",
    "case_action",
    "case_submit",
    "case_update",
    "catalog_announce",
    "certificate_verify",
    "checkpoint",
    "cosignature",
    "heads_request",
    "heartbeat",
    "probe",
    "revocation_list",
    "revocation_list_request",
    "witnessed_heads",
)
"""Payload types every member may send for now."""
DEFAULT_MAY_VERIFY = VerifyPermission(
    certificate_types=frozenset(CERTIFICATE_TYPES), purposes=frozenset(PURPOSE_TOKENS)
)
"""Every member may ask for every certificate type, for every scene and any matter; a
federation narrows this per member in its manifest."""

DAY = 86400.0
# A new signing key starts a minute early so a peer whose clock runs behind accepts it.
KEY_CLOCK_TOLERANCE = 60.0

MANIFEST_FILE = "manifest.json"
CA_CERT = Path("ca/ca.crt")
CA_KEY = Path("ca/ca.key")
GOVERNANCE_KEY = Path("governance/governance.key")
GOVERNANCE_PUB = Path("governance/governance.pub")
NODE_CONFIG = "node.toml"
PRIVATE_DIR_MODE = 0o700
"""DIR and each folder in it: owner-only (module rules)."""


class MeshDirectoryNotEmpty(FileExistsError):
    """``mesh init`` was pointed at a folder that already holds something."""


@dataclass(frozen=True)
class ProvincePorts:
    grpc: int
    """Federation gRPC server."""
    http: int
    """REST API, metrics and status."""
    platform: int
    """The simulated provincial platform the node talks to."""


PLATFORM_CREDENTIALS = "platform-credentials.json"
POSTGRES_DIR = "postgres"
"""The mesh's own PostgreSQL server's folder, in DIR (``--store postgres``)."""
MAX_REPLICAS = 9
"""Replicas per province: replica 10 would take the HTTP ports of replica 1."""
REPLICA_PORT_STEP = 100
"""Replica r listens on replica 1's gRPC and HTTP ports plus this × (r − 1)."""


@dataclass(frozen=True)
class StoreChoice:
    """Where a new mesh's nodes keep their stores, and how many replicas each province runs."""

    backend: str = "sqlite"
    """``sqlite`` (a file per node) or ``postgres`` (a database per province on the mesh's
    own server)."""
    replicas: int = 1

    def __post_init__(self) -> None:
        if self.backend not in ("sqlite", "postgres"):
            raise ValueError(f"store must be sqlite or postgres, not {self.backend!r}")
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be 1 to {MAX_REPLICAS}, not {self.replicas}")
        if self.replicas > 1 and self.backend != "postgres":
            raise ValueError(
                f"{self.replicas} replicas need a database they share: add --store postgres "
                "(a SQLite store is one file that one process holds)"
            )


ONE_SQLITE_NODE = StoreChoice()


def config_name(replica: int) -> str:
    """The config file of a province's replica ``replica`` (1 = ``node.toml``)."""
    return NODE_CONFIG if replica == 1 else f"node-{replica}.toml"


def replica_ports(ports: ProvincePorts, replica: int) -> ProvincePorts:
    """The ports of replica ``replica`` of the province whose first replica has ``ports``."""
    shift = REPLICA_PORT_STEP * (replica - 1)
    moved = ProvincePorts(grpc=ports.grpc + shift, http=ports.http + shift, platform=ports.platform)
    if moved.http > 65535:
        raise ValueError(f"replica {replica} would listen on port {moved.http}, above 65535")
    return moved


def platform_credentials() -> dict[str, str]:
    """Fresh secrets for a node and its simulated platform. One set serves every dialect:
    each side reads the keys its dialect uses (a token, an app key and secret)."""
    return {
        "access_token": secrets.token_urlsafe(24),
        "token": secrets.token_urlsafe(24),
        "app_key": "yrd-" + secrets.token_hex(8),
        "app_secret": secrets.token_urlsafe(32),
    }


def ports_for(province_index: int, base_port: int = 7101) -> ProvincePorts:
    """The ports of the ``province_index``-th province (0 = Shanghai) on one machine."""
    ports = ProvincePorts(
        grpc=base_port + province_index,
        http=base_port + 1000 + province_index,
        platform=base_port + 2000 + province_index,
    )
    if province_index < 0 or not (ports.grpc > 0 and ports.platform <= 65535):
        raise ValueError(
            f"base port {base_port} with province index {province_index} gives ports outside "
            "1-65535"
        )
    return ports


def node_id_for(province: str) -> str:
    """``node-`` and the province's GB/T 2260 code, e.g. ``node-310000`` for Shanghai."""
    try:
        code, _ = PROVINCES[province]
    except KeyError:
        raise ValueError(
            f"unknown province {province!r}; expected one of {', '.join(PROVINCES)}"
        ) from None
    return f"node-{code}"


def init_mesh(
    directory: Path,
    *,
    now: float,
    base_port: int = 7101,
    manifest_days: int = 90,
    key_days: int = 365,
    provinces: Sequence[str] = DEFAULT_PROVINCES,
    platforms: bool = True,
    suites: SuiteChoice = ED25519_THROUGHOUT,
    store: StoreChoice = ONE_SQLITE_NODE,
) -> Manifest:
    """Create a mesh folder for ``provinces`` and return its signed manifest (version 1);
    each member and the governance key sign with the suite ``suites`` gives them, and each
    province keeps its store and runs its replicas as ``store`` says (module rules).

    With ``platforms`` each node is configured for its province's simulated platform on the
    province's platform port, with fresh credentials both sides share
    (``<province>/platform-credentials.json``, 0600); without, nodes take cases through
    their REST API only and keep their certificate library in their store.
    """
    if len(set(provinces)) != len(provinces) or not provinces:
        raise ValueError(f"provinces must be distinct and not empty, not {list(provinces)}")
    for province in provinces:
        node_id_for(province)
    ports = [ports_for(i, base_port) for i in range(len(provinces))]
    replica_ports(ports[-1], store.replicas)  # the highest port of all still fits
    directory = directory.absolute()
    _refuse_non_empty(directory)

    directory.parent.mkdir(parents=True, exist_ok=True)
    # Built beside DIR and renamed into place, so a failure half-way leaves nothing behind;
    # mkdtemp makes it PRIVATE_DIR_MODE, and DIR keeps that mode once renamed.
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.init-", dir=directory.parent))
    try:
        manifest = _write_mesh(
            staging,
            now=now,
            ports=ports,
            provinces=provinces,
            manifest_days=manifest_days,
            key_days=key_days,
            platforms=platforms,
            suites=suites,
            store=store,
        )
        _refuse_non_empty(directory)
        # rename(2) replaces an empty directory and fails if one appeared with content.
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _refuse_non_empty(directory: Path) -> None:
    if directory.is_dir():
        if any(directory.iterdir()):
            raise MeshDirectoryNotEmpty(
                f"{directory} already exists and is not empty; mesh init writes only into a "
                "new or empty folder"
            )
    elif directory.exists():
        raise MeshDirectoryNotEmpty(f"{directory} exists and is not a folder")


def _write_mesh(
    root: Path,
    *,
    now: float,
    ports: Sequence[ProvincePorts],
    provinces: Sequence[str],
    manifest_days: int,
    key_days: int,
    platforms: bool,
    suites: SuiteChoice,
    store: StoreChoice,
) -> Manifest:
    ca_key, ca_cert = create_ca("Yangtze River Delta Federation CA", now=now)
    (root / CA_CERT).parent.mkdir(mode=PRIVATE_DIR_MODE)
    (root / GOVERNANCE_KEY).parent.mkdir(mode=PRIVATE_DIR_MODE)
    (root / CA_CERT).write_bytes(certificate_pem(ca_cert))
    write_private_file(root / CA_KEY, private_key_pem(ca_key))

    governance = SigningKey.generate(suites.governance)
    governance_text = governance.verify_key.text
    save_signing_key(governance, root / GOVERNANCE_KEY)
    (root / GOVERNANCE_PUB).write_text(governance_text + "\n", encoding="ascii")

    if store.backend == "postgres":
        (root / POSTGRES_DIR).mkdir(mode=PRIVATE_DIR_MODE)
    members = []
    mesh_ports = {
        p
        for port in ports
        for r in range(1, store.replicas + 1)
        for p in (replica_ports(port, r).grpc, replica_ports(port, r).http, port.platform)
    }
    database_port = None
    while store.backend == "postgres" and database_port in (None, *mesh_ports):
        database_port = free_port()
    for province, port in zip(provinces, ports, strict=True):
        node_id = node_id_for(province)
        folder = root / province
        folder.mkdir(mode=PRIVATE_DIR_MODE)
        signing = SigningKey.generate(suites.of(province))
        save_signing_key(signing, folder / "signing.key")
        tls_key, tls_cert = issue_node_certificate(ca_key, ca_cert, node_id, now=now)
        write_private_file(folder / "tls.key", private_key_pem(tls_key))
        (folder / "tls.crt").write_bytes(certificate_pem(tls_cert))
        if platforms:
            write_private_file(
                folder / PLATFORM_CREDENTIALS, json.dumps(platform_credentials()).encode()
            )
        everyone = [replica_ports(p, r) for p in ports for r in range(1, store.replicas + 1)]
        mine = [replica_ports(port, r) for r in range(1, store.replicas + 1)]
        for replica, listens in enumerate(mine, start=1):
            (folder / config_name(replica)).write_text(
                render_config(
                    node_id=node_id,
                    province=province,
                    governance_public_keys=[governance_text],
                    paths={
                        "manifest": f"../{MANIFEST_FILE}",
                        "signing_key": "signing.key",
                        "tls_key": "tls.key",
                        "tls_cert": "tls.crt",
                        "ca_cert": f"../{CA_CERT}",
                        "store": "node.db",
                    },
                    grpc_listen=f"127.0.0.1:{listens.grpc}",
                    http_listen=f"127.0.0.1:{listens.http}",
                    dashboard_peers=[
                        f"http://127.0.0.1:{p.http}" for p in everyone if p != listens
                    ],
                    platform_url=f"http://127.0.0.1:{port.platform}" if platforms else None,
                    platform_credentials=PLATFORM_CREDENTIALS if platforms else None,
                    store_url=None
                    if database_port is None
                    else (f"postgresql://{SERVER_USER}@127.0.0.1:{database_port}/{province}"),
                ),
                encoding="utf-8",
            )
        members.append(
            Member(
                node_id=node_id,
                province=province,
                code=PROVINCES[province][0],
                endpoint=f"127.0.0.1:{port.grpc}",
                replica_endpoints=tuple(f"127.0.0.1:{p.grpc}" for p in mine)
                if len(mine) > 1
                else (),
                keys=(_new_key_entry(signing, now=now, key_days=key_days),),
                may_send=frozenset(DEFAULT_MAY_SEND),
                may_verify=DEFAULT_MAY_VERIFY,
            )
        )

    manifest = Manifest(
        federation=FEDERATION,
        version=1,
        issued_at=now,
        expires_at=now + manifest_days * DAY,
        members=tuple(members),
    )
    data = sign_manifest(manifest, governance)
    checked = verify_manifest(data, [governance.verify_key], now=now)
    write_atomically(root / MANIFEST_FILE, data)
    return checked


def _new_key_entry(key: SigningKey, *, now: float, key_days: float) -> KeyEntry:
    return KeyEntry(
        key_id=key.key_id,
        verify_key=key.verify_key,
        not_before=now - KEY_CLOCK_TOLERANCE,
        not_after=now + key_days * DAY,
    )


def load_governance_key(directory: Path) -> SigningKey:
    """The private key that signs DIR's manifest (refused if group/other-readable)."""
    return load_signing_key(directory / GOVERNANCE_KEY)


def _governance_public(directory: Path) -> VerifyKey:
    """DIR's trust anchor; a missing file is an OSError, bad content a ValueError."""
    path = directory / GOVERNANCE_PUB
    try:
        return parse_public_key(path.read_bytes().decode("ascii").strip())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a governance public key: {exc}") from exc


def read_manifest(directory: Path, *, now: float | None = None) -> Manifest:
    """DIR's manifest, verified exactly as a node would with DIR's governance public key.

    ``now`` defaults to the wall clock; raises a ``ManifestError`` saying what is wrong.
    """
    return load_manifest(
        directory / MANIFEST_FILE,
        [_governance_public(directory)],
        now=time.time() if now is None else now,
    )


def publish_manifest(directory: Path, manifest: Manifest, *, now: float) -> Manifest:
    """Sign ``manifest`` as the next version with DIR's governance key and replace the file.

    ``manifest`` must be based on the version in DIR: publishing from a stale copy would
    silently undo someone else's change, so it is refused. Raises ``ManifestExpired`` (and
    writes nothing) if the result would already be expired at ``now``.
    """
    on_disk = _version_on_disk(directory)
    if on_disk is not None and on_disk != manifest.version:
        raise ValueError(
            f"cannot publish a change to manifest version {manifest.version}: "
            f"{directory / MANIFEST_FILE} is at version {on_disk}; re-read it and retry"
        )
    governance = load_governance_key(directory)
    next_manifest = replace(manifest, version=manifest.version + 1, issued_at=now, raw=b"")
    data = sign_manifest(next_manifest, governance)
    # The nodes' own check, run before writing, so a manifest they would refuse never lands.
    checked = verify_manifest(data, [governance.verify_key], now=now)
    write_atomically(directory / MANIFEST_FILE, data)
    return checked


def _version_on_disk(directory: Path) -> int | None:
    try:
        document = json.loads((directory / MANIFEST_FILE).read_bytes())
        version = document["manifest"]["version"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the version of {directory / MANIFEST_FILE}: {exc}") from exc
    if not isinstance(version, int):
        raise ValueError(f"{directory / MANIFEST_FILE} has a non-integer version {version!r}")
    return version


def _member(manifest: Manifest, province: str) -> Member:
    member = manifest.member_for_province(province)
    if member is None:
        raise ValueError(f"province {province!r} is not a member of the manifest")
    return member


def rotate_signing_key(
    directory: Path,
    province: str,
    *,
    now: float,
    overlap_days: float = 7,
    key_days: int = 365,
    suite: Suite | None = None,
) -> str:
    """Give ``province`` a new signing key of ``suite`` (by default the suite of the key it
    signs with now) and return its key id.

    The key the node signs with now (the one its node.toml names) stays valid for
    ``overlap_days`` more (never longer than it already was), so messages it signed before
    the switch still verify at their receivers.
    """
    manifest = read_manifest(directory, now=now)
    member = _member(manifest, province)
    config_path = directory / province / NODE_CONFIG
    current = load_signing_key(load_config(config_path, env={}).paths.signing_key)
    current_id = current.key_id
    old = member.key(current_id)
    if old is None:
        raise ValueError(
            f"{config_path} signs with {current_id}, which the manifest does not list for "
            f"{province}; fix the config before rotating"
        )

    new_key = SigningKey.generate(suite or current.suite)
    new_path = _next_key_path(directory / province)
    # Prepared first so that a node.toml this cannot rewrite stops the rotation before
    # anything is published.
    new_config = _config_pointing_at(config_path, new_path.name)
    save_signing_key(new_key, new_path)
    retired = replace(old, not_after=min(old.not_after, now + overlap_days * DAY))
    keys = tuple(retired if k.key_id == old.key_id else k for k in member.keys)
    updated = replace(member, keys=(*keys, _new_key_entry(new_key, now=now, key_days=key_days)))
    # Publish before switching the node: a node signing with a key its peers do not yet
    # know would have every message refused.
    try:
        publish_manifest(directory, manifest.with_member(updated), now=now)
    except BaseException:
        new_path.unlink()
        raise
    target = new_path.resolve()

    def still_loads(tmp: Path) -> None:
        # The node must still load the rewritten file and find the new key through it.
        if load_config(tmp, env={}).paths.signing_key != target:
            raise ValueError(f"rewriting {config_path} did not point it at {new_path.name}")

    write_atomically(config_path, new_config, check=still_loads)
    return new_key.key_id


def _next_key_path(folder: Path) -> Path:
    n = 2
    while (folder / f"signing-{n}.key").exists():
        n += 1
    return folder / f"signing-{n}.key"


_TABLE = re.compile(r"^\s*\[([^\]]*)\]")
_SIGNING_KEY = re.compile(r"^\s*signing_key\s*=")


def _config_pointing_at(config_path: Path, key_file: str) -> bytes:
    """node.toml's text with the ``signing_key`` line under ``[paths]`` naming ``key_file``.

    A line edit rather than a re-render, so an operator's other edits to the file survive.
    """
    lines = config_path.read_text(encoding="utf-8").splitlines(keepends=True)
    table = ""
    replaced = 0
    for i, line in enumerate(lines):
        header = _TABLE.match(line)
        if header:
            table = header.group(1).strip()
        elif table == "paths" and _SIGNING_KEY.match(line):
            lines[i] = f"signing_key = {json.dumps(key_file)}\n"
            replaced += 1
    if replaced != 1:
        raise ValueError(
            f"{config_path} has {replaced} signing_key lines under [paths]; expected one"
        )
    return "".join(lines).encode("utf-8")


class KeyInUse(ValueError):
    """Revoking this key would leave its member's node signing with a revoked key, so every
    peer would refuse all its messages; ``revoke_signing_key`` needs ``force`` for that."""

    def __init__(self, message: str, *, province: str, key_id: str) -> None:
        super().__init__(message)
        self.province = province
        self.key_id = key_id


def signing_key_in_use(directory: Path, province: str) -> str | None:
    """The key id ``DIR/<province>/node.toml`` signs with; None when DIR holds no config for
    that province (the governance folder of a real federation need not)."""
    config_path = directory / province / NODE_CONFIG
    if not config_path.exists():
        return None
    return load_signing_key(load_config(config_path, env={}).paths.signing_key).key_id


@dataclass(frozen=True)
class SigningKeyNow:
    """The key a province's node signs with now, and where that was learnt."""

    key_id: str | None
    """None when nothing says (no running node, no node.toml for the province)."""
    source: str
    """Where ``key_id`` was read, for the operator: the running node, or its node.toml."""


def signing_key_from_config(directory: Path, province: str) -> SigningKeyNow:
    """What ``DIR/<province>/node.toml`` names: the key the node signs with once it (re)loads."""
    return SigningKeyNow(signing_key_in_use(directory, province), f"{province}/{NODE_CONFIG}")


def revoke_signing_key(
    directory: Path,
    province: str,
    key_id: str,
    *,
    now: float,
    force: bool = False,
    signing_now: SigningKeyNow | None = None,
) -> Manifest:
    """Mark ``key_id`` of ``province`` revoked and publish; already revoked changes nothing.

    Nodes stop accepting the key the moment they load the result. Without ``force`` the key
    the province's node signs with now (``signing_now``: asked of the running node by the
    caller; by default what its node.toml names), or the province's last usable key, is
    refused with ``KeyInUse``: the way to retire it is ``rotate_signing_key`` first, then
    revoking the old key once the node has moved.
    """
    manifest = read_manifest(directory, now=now)
    member = _member(manifest, province)
    key = member.key(key_id)
    if key is None:
        raise ValueError(f"key {key_id!r} is not a signing key of {province}")
    if key.revoked:
        return manifest
    if not force:
        others = [k for k in member.keys if k.key_id != key_id and k.usable_at(now)]
        in_use = signing_now or signing_key_from_config(directory, province)
        if in_use.key_id == key_id:
            why = f"{province}'s node signs with {key_id} now ({in_use.source})"
        elif not others:
            why = f"{key_id} is the only usable signing key of {province}"
        else:
            why = ""
        if why:
            raise KeyInUse(why, province=province, key_id=key_id)
    keys = tuple(replace(k, revoked=True) if k.key_id == key_id else k for k in member.keys)
    return publish_manifest(directory, manifest.with_member(replace(member, keys=keys)), now=now)


def write_atomically(
    path: Path, data: bytes, *, check: Callable[[Path], None] | None = None
) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old file or the new, never a mix.

    ``check`` may inspect the written temporary file and raise to abandon the write.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk, or a crash could bring back the old file.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
