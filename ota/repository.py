"""The vendor's side: keys, signed TUF metadata, and a static repository any web server can host.

Layout of a published repository (``consistent_snapshot`` on, so a CDN never serves a mix of
two releases and files are immutable once written)::

    REPO/metadata/1.root.json, 2.root.json, ...   every root version (clients walk the chain)
    REPO/metadata/N.targets.json                  what may be installed: hashes, lengths, and
                                                  Vigil's signed custom fields per target
    REPO/metadata/N.snapshot.json                 which targets version is current
    REPO/metadata/timestamp.json                  short-lived: which snapshot is current
    REPO/targets/<sha256>.<channel>/<file>        the bundles

Keys (Ed25519, PEM/PKCS8 files written 0600 by :func:`keygen`) and where each belongs:

* ``root-*.pem``: offline (vendor safe, HSM or air-gapped laptop); a threshold of them signs
  each new root, which is how any other key is rotated or revoked.
* ``targets.pem``: the release engineer's machine, used once per release (``vigil ota sign``).
* ``snapshot.pem`` and ``timestamp.pem``: online on the publishing host, which re-signs the
  timestamp every few hours (``vigil ota publish``) so units can tell a frozen mirror.

Nothing here runs on a unit.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    Key,
    Metadata,
    MetaFile,
    Role,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from ota.errors import OtaError

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
#: Default lifetimes. The timestamp is the freshness proof: short, re-signed by ``publish``.
EXPIRY = {"root": timedelta(days=365), "targets": timedelta(days=90),
          "snapshot": timedelta(days=14), "timestamp": timedelta(days=1)}
_SERIALIZER = JSONSerializer(compact=False)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load_signer(path: Path) -> CryptoSigner:
    """A signer from one PEM private key file written by :func:`keygen`."""
    try:
        key = load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        raise OtaError(f"cannot load signing key {path}: {e}") from e
    return CryptoSigner(key)


@dataclass
class KeySet:
    """The private keys found in one key directory (any subset of the roles)."""

    signers: dict[str, list[CryptoSigner]]

    @classmethod
    def load(cls, keydir: Path) -> KeySet:
        signers: dict[str, list[CryptoSigner]] = {r: [] for r in TOP_ROLES}
        for pem in sorted(keydir.glob("*.pem")):
            role = pem.stem.split("-", 1)[0]
            if role in signers:
                signers[role].append(load_signer(pem))
        return cls(signers)

    def for_role(self, role: str) -> list[CryptoSigner]:
        found = self.signers.get(role) or []
        if not found:
            raise OtaError(f"no {role} key in this key directory")
        return found


def keygen(keydir: Path, *, root_keys: int = 1, root_threshold: int = 1,
           root_expiry: timedelta = EXPIRY["root"]) -> Path:
    """New keys for every role and the first root metadata, signed by the root keys.

    Returns the path of ``1.root.json``: the trust anchor every unit is provisioned with.
    Refuses to overwrite an existing key (losing a root key loses the fleet).
    """
    if not 1 <= root_threshold <= root_keys:
        raise OtaError(f"root threshold {root_threshold} must be 1..{root_keys}")
    keydir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if any(keydir.glob("*.pem")):
        raise OtaError(f"{keydir} already holds keys: refusing to overwrite")
    signers: dict[str, list[CryptoSigner]] = {}
    names = [f"root-{i + 1}" for i in range(root_keys)] + ["targets", "snapshot", "timestamp"]
    for name in names:
        signer = CryptoSigner.generate_ed25519()
        _write_private(keydir / f"{name}.pem", signer.private_bytes)
        signers.setdefault(name.split("-")[0], []).append(signer)
    root = Root(expires=_now() + root_expiry, consistent_snapshot=True)
    for role, role_signers in signers.items():
        for s in role_signers:
            root.add_key(s.public_key, role)
    root.roles["root"].threshold = root_threshold
    md = Metadata(root)
    for s in signers["root"]:
        md.sign(s, append=True)
    out = keydir / "1.root.json"
    out.write_bytes(md.to_bytes(_SERIALIZER))
    return out


class VendorRepository:
    """A static TUF repository in a directory: add targets, publish, rotate keys."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta_dir = path / "metadata"
        self.targets_dir = path / "targets"

    # ---- reading ---------------------------------------------------------------------------
    def _latest_versioned(self, role: str) -> tuple[int, Path] | None:
        best: tuple[int, Path] | None = None
        for p in self.meta_dir.glob(f"*.{role}.json"):
            head = p.name.split(".", 1)[0]
            if head.isdigit() and (best is None or int(head) > best[0]):
                best = (int(head), p)
        return best

    def load(self, role: str) -> Metadata[Any]:
        if role == "timestamp":
            return Metadata.from_file(str(self.meta_dir / "timestamp.json"))
        found = self._latest_versioned(role)
        if found is None:
            raise OtaError(f"repository {self.path} has no {role} metadata")
        return Metadata.from_file(str(found[1]))

    def has(self, role: str) -> bool:
        if role == "timestamp":
            return (self.meta_dir / "timestamp.json").exists()
        return self._latest_versioned(role) is not None

    def targets(self) -> dict[str, TargetFile]:
        if not self.has("targets"):
            return {}
        return dict(self.load("targets").signed.targets)

    # ---- writing ---------------------------------------------------------------------------
    def init(self, root_json: Path) -> None:
        """Start a repository from the root made by :func:`keygen` (idempotent)."""
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        md = Metadata[Root].from_bytes(root_json.read_bytes())
        dest = self.meta_dir / f"{md.signed.version}.root.json"
        if not dest.exists():
            shutil.copyfile(root_json, dest)

    def _write(self, md: Metadata[Any], signers: Iterable[Signer]) -> Path:
        md.signatures.clear()
        for s in signers:
            md.sign(s, append=True)
        role = md.signed.type
        name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
        out = self.meta_dir / name
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(md.to_bytes(_SERIALIZER))
        os.replace(tmp, out)
        return out

    def add_targets(self, files: Mapping[str, Path], keys: KeySet, *,
                    custom: Mapping[str, Mapping[str, Any]] | None = None,
                    expires: timedelta = EXPIRY["targets"],
                    remove: Iterable[str] = ()) -> int:
        """Sign a new targets version holding ``files`` (target path -> local file).

        ``custom[target_path]`` becomes that target's signed custom metadata (Vigil reads the
        ``vigil`` object in it: version, kind, rollout, window, downgrade exception). Returns the
        new targets version. Bundles are copied under their hash-prefixed names.
        """
        if self.has("targets"):
            md = self.load("targets")
            md.signed.version += 1
        else:
            md = Metadata(Targets(expires=_now() + expires))
        md.signed.expires = _now() + expires
        for name in remove:
            md.signed.targets.pop(name, None)
        for name, local in files.items():
            extra = dict((custom or {}).get(name, {}))
            tf = TargetFile.from_file(name, str(local), ["sha256"])
            if extra:
                tf.unrecognized_fields["custom"] = extra
            md.signed.targets[name] = tf
            dirname, _, base = name.rpartition("/")
            dest = self.targets_dir / dirname / f"{tf.hashes['sha256']}.{base}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                shutil.copyfile(local, dest)
        self._write(md, keys.for_role("targets"))
        return int(md.signed.version)

    def publish(self, keys: KeySet, *, snapshot_expiry: timedelta = EXPIRY["snapshot"],
                timestamp_expiry: timedelta = EXPIRY["timestamp"]) -> dict[str, int]:
        """New snapshot (if targets moved) and a fresh timestamp; returns the versions.

        The timestamp names the snapshot with its length and hash, so a mirror cannot feed an
        endless or swapped snapshot; re-run it on a timer to keep units from seeing a freeze.
        """
        targets = self.load("targets")
        targets_version = int(targets.signed.version)
        snap_path = self._latest_versioned("snapshot")
        snap: Metadata[Any] | None = Metadata.from_file(str(snap_path[1])) if snap_path else None
        if snap is None or snap.signed.meta["targets.json"].version != targets_version:
            new = Snapshot(version=(snap.signed.version + 1) if snap else 1,
                           expires=_now() + snapshot_expiry)
            new.meta = {"targets.json": MetaFile(version=targets_version)}
            snap = Metadata(new)
            self._write(snap, keys.for_role("snapshot"))
        snap_bytes = (self.meta_dir / f"{snap.signed.version}.snapshot.json").read_bytes()
        ts_version = self.load("timestamp").signed.version + 1 if self.has("timestamp") else 1
        ts = Timestamp(version=ts_version, expires=_now() + timestamp_expiry,
                       snapshot_meta=MetaFile.from_data(snap.signed.version, snap_bytes,
                                                        ["sha256"]))
        self._write(Metadata(ts), keys.for_role("timestamp"))
        return {"targets": targets_version, "snapshot": int(snap.signed.version),
                "timestamp": ts_version}

    def rotate(self, role: str, new_keys: list[CryptoSigner], old_root: list[CryptoSigner],
               new_root: list[CryptoSigner] | None = None, threshold: int | None = None,
               expires: timedelta = EXPIRY["root"]) -> int:
        """A new root version that replaces ``role``'s keys (key rotation or revocation).

        It is signed by the old root keys (a threshold of them, so units trust the step) and,
        when the root keys themselves change, by the new ones too. Returns the root version.
        """
        md = self.load("root")
        root: Root = md.signed
        root.version += 1
        root.expires = _now() + expires
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        for s in new_keys:
            root.add_key(s.public_key, role)
        if threshold is not None:
            root.roles[role].threshold = threshold
        signers = list(old_root) + [s for s in (new_root or []) if s not in old_root]
        self._write(md, signers)
        return int(root.version)


def public_key_summary(root_json: bytes) -> dict[str, Any]:
    """Which key ids each role trusts, and thresholds (for `vigil ota inspect` and docs)."""
    root: Root = Metadata[Root].from_bytes(root_json).signed
    roles: dict[str, Role] = root.roles
    keys: dict[str, Key] = root.keys
    return {"version": root.version, "expires": root.expires.isoformat(),
            "roles": {n: {"threshold": r.threshold, "keyids": list(r.keyids),
                          "keytypes": sorted({keys[k].keytype for k in r.keyids})}
                      for n, r in roles.items()}}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
