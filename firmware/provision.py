"""Provisioning a unit: config file, device KEK, mTLS key + CSR, console password, signed cert.

Everything here is a function of a :class:`ProvisionRequest` and the file system; the prompts
and printing live in :mod:`firmware.cli.cmd_provision`. The order of :func:`provision` is chosen so
that a failure at any step leaves the old configuration in place:

1. merge the request into the existing config (if any) and write it to a temporary file;
2. validate that file with :func:`firmware.config.load` (the daemon's own validator); an invalid
   result raises :class:`ConfigError` and nothing else is touched;
3. create the KEK if absent (an existing one is kept; ``rotate_kek`` destroys it, see
   docs/provisioning.md), then the TLS key if absent, then the CSR;
4. ``os.replace`` the config into place.

Key material is never returned, printed or logged: results carry paths and public data only.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drivers import files
from drivers.camera import BACKENDS
from drivers.clock import Clock, SystemClock
from firmware import audit_journal, config
from firmware.errors import ConfigError, FirmwareError

log = logging.getLogger(__name__)

#: Where the systemd unit keeps state (StateDirectory=vigil); written explicitly into the config
#: because provisioning runs from a shell where $STATE_DIRECTORY is not set.
DEFAULT_STATE_DIR = Path("/var/lib/vigil")
CONFIG_MODE = 0o640  # root:vigil; holds the console password hash
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
CAMERA_BACKENDS = BACKENDS


class ProvisionError(FirmwareError, RuntimeError):
    """Provisioning could not be completed; the previous configuration is unchanged."""


class DaemonRunning(ProvisionError):
    """A destructive step was asked for while the daemon answers on its control socket."""


class CertificateMismatch(ProvisionError, ValueError):
    """A signed certificate does not belong to this device's key, or is not usable."""


@dataclass(frozen=True)
class Owner:
    """Who the daemon runs as (the unit's ``User=``/``Group=``): its files must be theirs."""

    uid: int
    gid: int


@dataclass(frozen=True)
class ProvisionRequest:
    """What to set. ``None`` keeps the existing value (or the default on a fresh unit)."""

    out: Path
    camera_id: str | None = None
    site: tuple[float, float] | None = None
    site_name: str | None = None
    camera_backend: str | None = None
    camera_source: str | None = None
    camera_size: tuple[int, int] | None = None  # width, height in pixels
    # the reading zone (x, y, width, height) in frame pixels; (0, 0, 0, 0) = the whole frame
    zone: tuple[int, int, int, int] | None = None
    state_dir: Path | None = None
    console_password: str | None = field(default=None, repr=False)
    console_user: str | None = None  # the installer's own name for the local console account
    console_port: str | None = None
    uplink_endpoint: str | None = None
    ca_file: Path | None = None
    organisation: str | None = None
    rotate_kek: bool = False
    rotate_tls_key: bool = False
    owner: Owner | None = None
    config_group: int | None = None


@dataclass(frozen=True)
class ProvisionResult:
    config_path: Path
    config_replaced: bool  # an older file was there and has been replaced
    kek_file: Path
    kek_created: bool
    kek_rotated: bool
    store_files_destroyed: tuple[Path, ...]
    tls_key_file: Path
    tls_key_created: bool
    csr_file: Path
    csr_pem: str
    cert_file: Path
    cert_present: bool


# ---------------------------------------------------------------------------------- TOML


def _check_finite(section: str, keys: Mapping[str, Any]) -> None:
    for k, v in keys.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ProvisionError(f"[{section}] {k}: cannot write non-finite number {v!r}")


def dumps_config(data: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """Our config shape (tables of scalars and lists) as TOML. ``None`` values are left out.

    A document read by :func:`read_existing` keeps the operator's comments and layout;
    ``header`` (for a new file) goes first, as comment lines.
    """
    if isinstance(data, tomlkit.TOMLDocument):
        doc = data
    else:
        doc = tomlkit.document()
        for section, keys in data.items():
            if not isinstance(keys, Mapping):
                raise ProvisionError(f"[{section}] must be a table")
            table = tomlkit.table()
            for k, v in keys.items():
                if v is not None:
                    table.add(k, list(v) if isinstance(v, tuple) else v)
            doc.add(section, table)
    for section, keys in doc.items():
        if isinstance(keys, Mapping):
            _check_finite(section, keys)
    comments = "".join(f"# {h}\n" if h else "#\n" for h in header.splitlines())
    return comments + ("\n" if comments else "") + tomlkit.dumps(doc).lstrip("\n")


# ---------------------------------------------------------------------------------- files


def _ids(owner: Owner | None, group: int | None = None) -> dict[str, int]:
    if owner is not None:
        return {"uid": owner.uid, "gid": owner.gid}
    return {"gid": group} if group is not None else {}


def write_atomic(path: Path, data: bytes, mode: int, owner: Owner | None = None,
                 group: int | None = None) -> None:
    """:func:`drivers.files.write_atomic`, owned by the daemon's user (or group)."""
    files.write_atomic(path, data, mode, **_ids(owner, group))


def _ensure_private_dir(path: Path, owner: Owner | None) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)


def _check_private_file(path: Path, what: str) -> None:
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise ProvisionError(f"{what} {path} is not a regular file")
    if st.st_mode & 0o077:
        raise ProvisionError(f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be "
                             "0600. Find out who changed it before trusting the key.")


# ---------------------------------------------------------------------------------- config


def read_existing(path: Path) -> tomlkit.TOMLDocument:
    """The current file as an editable document, comments kept (empty when absent)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read existing config: {e.strerror or e}",
                          path=str(path)) from e
    try:
        return tomlkit.parse(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomlkit.exceptions.ParseError) as e:
        raise ConfigError(f"{path}: existing config is not valid TOML ({e}); move it aside "
                          "and provision again", path=str(path)) from e


def merge_request(existing: Mapping[str, Any], req: ProvisionRequest,
                  password_hash: str | None) -> tomlkit.TOMLDocument:
    """The new config: the existing document (comments kept) with the request's values laid
    over it. Pure: ``existing`` is not changed."""
    data = tomlkit.parse(tomlkit.dumps(existing)) if isinstance(existing, tomlkit.TOMLDocument) \
        else tomlkit.document()
    if not isinstance(existing, tomlkit.TOMLDocument):
        for k, v in existing.items():
            data[k] = dict(v)

    def table(section: str) -> Any:
        if section not in data:
            data[section] = tomlkit.table()
        return data[section]

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            table(section)[key] = value

    unit = table("unit")
    put("unit", "camera_id", req.camera_id)
    if req.state_dir is not None:
        put("unit", "state_dir", str(req.state_dir))
    elif not unit.get("state_dir"):
        unit["state_dir"] = str(DEFAULT_STATE_DIR)
    if req.site is not None:
        put("unit", "site_latitude", float(req.site[0]))
        put("unit", "site_longitude", float(req.site[1]))
    put("unit", "site_name", req.site_name)
    put("camera", "backend", req.camera_backend)
    put("camera", "source", req.camera_source)
    if req.camera_size is not None:
        put("camera", "width", int(req.camera_size[0]))
        put("camera", "height", int(req.camera_size[1]))
    if req.zone is not None:
        for key, value in zip(("zone_x", "zone_y", "zone_width", "zone_height"), req.zone,
                              strict=True):
            put("inference", key, int(value))
    if password_hash is not None:
        put("console", "password_hash", password_hash)
        put("console", "enabled", True)
    put("console", "user", req.console_user)
    put("console", "port", req.console_port)
    state_dir = Path(data["unit"]["state_dir"])
    if req.uplink_endpoint is not None:
        tls = tls_paths(state_dir)
        uplink = table("uplink")
        uplink["endpoint"] = req.uplink_endpoint
        uplink.setdefault("key_file", str(tls.key))
        uplink.setdefault("cert_file", str(tls.cert))
        uplink.setdefault("ca_file", str(tls.ca))
        uplink["device_id"] = data["unit"].get("camera_id", "sim-1")
    if req.ca_file is not None and "uplink" in data:
        data["uplink"]["ca_file"] = str(req.ca_file)
    for k in [k for k, v in data.items() if not v]:
        del data[k]
    return data


@dataclass(frozen=True)
class TlsPaths:
    key: Path
    csr: Path
    cert: Path
    ca: Path


def tls_paths(state_dir: Path) -> TlsPaths:
    d = state_dir / "tls"
    return TlsPaths(d / "device.key", d / "device.csr", d / "device.crt", d / "agency-ca.pem")


def _tls_for(settings: config.Settings, data: Mapping[str, Any]) -> TlsPaths:
    """The uplink's configured paths when there is an [uplink], else the defaults."""
    default = tls_paths(settings.unit.resolved_state_dir())
    up = data.get("uplink", {})
    return TlsPaths(Path(up.get("key_file", default.key)), default.csr,
                    Path(up.get("cert_file", default.cert)), Path(up.get("ca_file", default.ca)))


# ---------------------------------------------------------------------------------- keys


def _daemon_answers(settings: config.Settings) -> bool:
    from firmware.console.control import request
    from firmware.errors import ControlError

    sock = Path(settings.status.socket)
    if not sock.exists():
        return False
    try:
        request(sock, "ping", timeout_s=2.0)
    except ControlError:
        return False
    return True


def _destroy_file(path: Path) -> bool:
    """Overwrite then unlink. On flash the overwrite may land elsewhere (wear levelling); the
    unlink is what the filesystem honours, the overwrite only helps on simple media."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\x00" * size)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    return True


def _store_files(store_path: Path) -> list[Path]:
    names = [store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")]
    names += sorted(store_path.parent.glob(store_path.name + ".corrupt-*"))
    return [p for p in names if p.exists()]


@dataclass(frozen=True)
class KekOutcome:
    path: Path
    created: bool
    rotated: bool  # an old key existed and was destroyed
    store_files_destroyed: tuple[Path, ...]


def ensure_kek(settings: config.Settings, rotate: bool, owner: Owner | None) -> KekOutcome:
    """Create the KEK when absent; keep an existing one unless ``rotate``.

    Rotation destroys the store first, then the old KEK (a crash in between leaves the old key
    with an empty store, which starts), then creates the new key.
    """
    from storage.errors import KeySourceError
    from storage.tpm import SEALED_PRIV, SEALED_PUB, key_source_for

    kek = Path(settings.keys.kek_file)
    _ensure_private_dir(kek.parent, owner)
    sealed = [kek.parent / SEALED_PUB, kek.parent / SEALED_PRIV]  # a KEK sealed by a TPM
    destroyed: list[Path] = []
    existed = kek.exists() or kek.is_symlink() or any(p.exists() for p in sealed)
    if existed and not rotate:
        if kek.exists() or kek.is_symlink():
            _check_private_file(kek, "KEK file")
        return KekOutcome(kek, False, False, ())
    if existed:
        if _daemon_answers(settings):
            raise DaemonRunning("the daemon is running: stop it (systemctl stop vigil) before "
                                "rotating the KEK")
        for p in _store_files(Path(settings.store.path)):
            p.unlink()
            destroyed.append(p)
        for p in (kek, *sealed):
            if p.exists() or p.is_symlink():
                _destroy_file(p)
        files.fsync_dir(kek.parent)
        log.warning("device KEK destroyed; the store was deleted with it",
                    extra={"store_files": [str(p) for p in destroyed]})
    # The unit's TPM seals the new KEK where it has one; else the 0600 file (storage/tpm.py).
    source = key_source_for(kek, settings.keys.tpm_tcti or None, settings.keys.source)
    try:
        source.load_kek()  # creates it (file: O_EXCL, 0600 from the start, fsynced)
    except (OSError, KeySourceError) as e:
        raise ProvisionError(f"cannot create the KEK at {kek}: {e}") from e
    if owner is not None:
        for p in (kek, *sealed):
            if p.exists():
                os.chown(p, owner.uid, owner.gid)
    return KekOutcome(kek, True, existed, tuple(destroyed))


def ensure_tls_key(path: Path, rotate: bool, owner: Owner | None
                   ) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """The device's mTLS key (ECDSA P-256): loaded when present, else generated (0600)."""
    _ensure_private_dir(path.parent, owner)
    if path.exists() and not rotate:
        _check_private_file(path, "TLS key")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as e:
            raise ProvisionError(f"TLS key {path} cannot be loaded (use --rotate-tls-key to "
                                 "replace it)") from e
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ProvisionError(f"TLS key {path} is not an EC key")
        return key, False
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(path, pem, PRIVATE_MODE, owner)
    del pem
    return key, True


def build_csr(key: ec.EllipticCurvePrivateKey, camera_id: str,
              organisation: str | None = None) -> str:
    """A PEM CSR naming the unit (CN = camera id) for the agency CA to sign as a client cert."""
    names = [x509.NameAttribute(NameOID.COMMON_NAME, camera_id)]
    if organisation:
        names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(names))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


# ---------------------------------------------------------------------------------- the flow


def _journal(state_dir: Path, owner: Owner | None, clock: Clock,
             steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Each step into the journal the daemon moves into the audit chain at its next start
    (firmware/audit_journal.py): provisioning runs while the daemon is stopped, and a KEK
    rotation destroys the store the chain was in."""
    for action, result, detail in steps:
        audit_journal.note(state_dir, action, result, detail, clock,
                           uid=-1 if owner is None else owner.uid,
                           gid=-1 if owner is None else owner.gid)


def provision(req: ProvisionRequest, password_hash: str | None = None) -> ProvisionResult:
    """Run the whole flow (see the module docstring). ``password_hash`` is the console hash
    already derived from ``req.console_password`` (the caller hashes, so tests can use cheap
    parameters); when it is ``None`` and a password is given, it is hashed here."""
    from firmware.console import auth as console_auth

    if req.camera_backend is not None and req.camera_backend not in CAMERA_BACKENDS:
        raise ConfigError(f"camera backend must be one of {', '.join(CAMERA_BACKENDS)}")
    if req.console_password is not None and password_hash is None:
        password_hash = console_auth.hash_password(req.console_password)
    out = Path(req.out)
    existed = out.exists()
    data = merge_request(read_existing(out), req, password_hash)
    header = ("Vigil unit configuration, written by `vigil provision`.\n"
              "Holds the console password hash: keep it root:vigil 0640.")
    text = dumps_config(data, "" if existed else header).encode("utf-8")
    tmp = files.write_temp(out, text, CONFIG_MODE, **_ids(None, req.config_group))
    try:
        try:
            settings = config.load(tmp)  # the daemon's own validator, on the exact bytes
        except ConfigError as e:
            raise ConfigError(str(e).replace(str(tmp), str(out)), path=str(out),
                              key=e.key) from e
        state_dir = settings.unit.resolved_state_dir()
        _ensure_private_dir(state_dir, req.owner)
        kek = ensure_kek(settings, req.rotate_kek, req.owner)
        tls = _tls_for(settings, data)
        key, key_created = ensure_tls_key(tls.key, req.rotate_tls_key, req.owner)
        csr_pem = build_csr(key, settings.unit.camera_id, req.organisation)
        del key
        write_atomic(tls.csr, csr_pem.encode("ascii"), PUBLIC_MODE, req.owner)
        if req.ca_file is not None and "uplink" not in data:
            log.warning("--ca-file has no effect without an [uplink] section")
        os.replace(tmp, out)
        files.fsync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _journal(state_dir, req.owner, SystemClock(), [
        ("provision.config", "replaced" if existed else "written",
         {"config": str(out), "config_sha256": audit_journal.config_sha256(str(out))}),
        ("provision.kek", "rotated" if kek.rotated else "created" if kek.created else "kept",
         {"store_files_destroyed": len(kek.store_files_destroyed)}),
        ("provision.tls_key", "rotated" if key_created and req.rotate_tls_key else
         "created" if key_created else "kept", {}),
    ])
    log.info("unit provisioned", extra={"config": str(out), "kek_created": kek.created,
                                        "kek_rotated": kek.rotated,
                                        "tls_key_created": key_created})
    return ProvisionResult(
        config_path=out, config_replaced=existed, kek_file=kek.path, kek_created=kek.created,
        kek_rotated=kek.rotated, store_files_destroyed=kek.store_files_destroyed,
        tls_key_file=tls.key, tls_key_created=key_created,
        csr_file=tls.csr, csr_pem=csr_pem, cert_file=tls.cert, cert_present=tls.cert.exists(),
    )


@dataclass(frozen=True)
class InstalledCert:
    cert_file: Path
    ca_file: Path | None
    subject: str
    not_after: dt.datetime


def install_certificate(
    config_path: Path, cert_pem: bytes, clock: Clock, ca_pem: bytes | None = None,
    owner: Owner | None = None,
) -> InstalledCert:
    """Install the certificate the agency signed from our CSR (and optionally its CA).

    Refused unless the certificate's public key is this device's key, it is valid now, and (when
    a CA is given) it was issued by that CA. Paths come from the validated config.
    """
    settings = config.load(config_path)
    data = read_existing(config_path)
    tls = _tls_for(settings, data)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise CertificateMismatch(f"not a PEM certificate: {e}") from e
    try:
        key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ProvisionError(f"device key {tls.key} cannot be loaded: {e}") from e
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise CertificateMismatch("the certificate is for a different key than this device's "
                                  f"({tls.key}); was it signed from this unit's CSR?")
    del key
    now = clock.utcnow()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateMismatch(
            f"the certificate is valid {cert.not_valid_before_utc.isoformat()} .. "
            f"{cert.not_valid_after_utc.isoformat()}, not now ({now.isoformat()}); check the "
            "unit's clock")
    if ca_pem is not None:
        try:
            ca = x509.load_pem_x509_certificate(ca_pem)
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError) as e:
            raise CertificateMismatch(f"the certificate was not issued by the given CA: {e}"
                                      ) from e
        except Exception as e:  # InvalidSignature carries no message
            raise CertificateMismatch("the certificate's signature does not verify against "
                                      "the given CA") from e
        write_atomic(tls.ca, ca.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE, owner)
    write_atomic(tls.cert, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE, owner)
    _journal(settings.unit.resolved_state_dir(), owner, clock, [
        ("provision.certificate", "installed",
         {"subject": cert.subject.rfc4514_string(),
          "not_after": cert.not_valid_after_utc.isoformat(), "ca_installed": ca_pem is not None}),
    ])
    return InstalledCert(tls.cert, tls.ca if ca_pem is not None else None,
                         cert.subject.rfc4514_string(), cert.not_valid_after_utc)
