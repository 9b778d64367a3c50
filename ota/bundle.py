"""Update bundles: a versioned, reproducible tar.gz with a manifest, and an unpacker that trusts
nothing in it.

A bundle's first member is ``vigil-bundle.json``: name, version, kind (``app`` = the whole
application: code, locked wheels, models, unit files; ``model`` = models only), and every file
with its size, SHA-256 and mode, plus the relative symlinks. The bundle file itself is verified
against the signed targets metadata (length and SHA-256, :mod:`ota.client`) before this module
reads a byte; the per-file hashes are a second check that also catches a builder bug.

:func:`unpack` streams the archive once and refuses (:class:`~ota.errors.BundleRefused`), before
writing the offending entry: absolute names and ``..``, symlinks that leave the slot, hard
links, device nodes, FIFOs, entries not in the manifest or differing from it, duplicates, more
files or bytes than the limits (size bombs, checked against the declared sizes before reading
and against the bytes actually written), and truncated archives.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ota import versions
from ota.errors import BundleRefused

MANIFEST = "vigil-bundle.json"
FORMAT = 1
KINDS = ("app", "model")
#: Never packed: caches, VCS and build leftovers, local environments.
SKIP_NAMES = frozenset({"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache",
                        ".ruff_cache", "build", "dist", ".hypothesis"})
SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What a unit accepts; a bundle that declares more is refused before unpacking."""

    max_total_bytes: int = 1 << 30
    max_file_bytes: int = 512 << 20
    max_files: int = 50_000
    max_manifest_bytes: int = 8 << 20


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class BundleFile:
    path: str
    size: int
    sha256: str
    mode: int = 0o644


@dataclass(frozen=True)
class BundleManifest:
    name: str
    version: str
    kind: str
    created: str
    files: tuple[BundleFile, ...]
    links: Mapping[str, str] = field(default_factory=dict)
    format: int = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        d = asdict(self)
        d["files"] = [asdict(f) for f in self.files]
        d["links"] = dict(self.links)
        return json.dumps(d, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> BundleManifest:
        try:
            d = json.loads(data)
            if d.get("format") != FORMAT:
                raise BundleRefused(f"bundle format {d.get('format')!r} is not {FORMAT}")
            files = tuple(BundleFile(str(f["path"]), int(f["size"]), str(f["sha256"]),
                                     int(f.get("mode", 0o644))) for f in d["files"])
            links = {str(k): str(v) for k, v in dict(d.get("links", {})).items()}
            m = cls(str(d["name"]), str(d["version"]), str(d["kind"]), str(d["created"]),
                    files, links)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise BundleRefused(f"bundle manifest is malformed: {e}") from e
        versions.parse(m.version)
        if m.kind not in KINDS:
            raise BundleRefused(f"bundle kind {m.kind!r} not in {KINDS}")
        if len(m.files) + len(m.links) > limits.max_files:
            raise BundleRefused(f"bundle declares {len(m.files)} files (limit "
                                f"{limits.max_files})")
        if m.total_bytes > limits.max_total_bytes:
            raise BundleRefused(f"bundle declares {m.total_bytes} bytes (limit "
                                f"{limits.max_total_bytes})")
        seen: set[str] = set()
        for f in m.files:
            _check_name(f.path)
            if f.size < 0 or f.size > limits.max_file_bytes:
                raise BundleRefused(f"{f.path}: size {f.size} outside 0..{limits.max_file_bytes}")
            if f.path in seen:
                raise BundleRefused(f"{f.path} is listed twice")
            seen.add(f.path)
        for path, target in m.links.items():
            _check_name(path)
            _check_link(path, target)
        return m


def _check_name(name: str) -> str:
    if not name or "\0" in name or "\\" in name or name.startswith("/"):
        raise BundleRefused(f"entry name {name!r} is absolute or malformed")
    norm = posixpath.normpath(name)
    if norm != name.rstrip("/") or norm.startswith("..") or "/../" in f"/{norm}/" or norm == ".":
        raise BundleRefused(f"entry name {name!r} leaves the slot or is not normalised")
    return norm


def _check_link(path: str, target: str) -> None:
    if not target or target.startswith("/") or "\0" in target:
        raise BundleRefused(f"symlink {path} -> {target!r} is absolute")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith(("../", "/")):
        raise BundleRefused(f"symlink {path} -> {target} points out of the slot")


# ---- building (vendor side) -----------------------------------------------------------------
def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_NAMES and not d.endswith(SKIP_SUFFIXES))
        for name in sorted(filenames):
            if not name.endswith(SKIP_SUFFIXES):
                yield Path(dirpath) / name


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def collect(trees: Mapping[str, Path]) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """Files and relative symlinks of each tree under its prefix in the bundle."""
    files: list[tuple[str, Path]] = []
    links: dict[str, str] = {}
    for prefix, root in sorted(trees.items()):
        if root.is_file():
            files.append((f"{prefix}/{root.name}", root))
            continue
        for p in _walk(root):
            rel = f"{prefix}/{p.relative_to(root).as_posix()}"
            if p.is_symlink():
                target = os.readlink(p)
                _check_link(rel, target)
                links[rel] = target
            elif p.is_file():
                files.append((rel, p))
    return files, links


def build(out: Path, *, name: str, version: str, kind: str, trees: Mapping[str, Path],
          created: datetime | None = None) -> BundleManifest:
    """Write a bundle of ``trees`` (prefix in the bundle -> directory or file) to ``out``.

    Reproducible: sorted entries, zero mtimes/owners, gzip without a timestamp, so the same
    inputs give the same bytes (and deltas between releases stay small).
    """
    versions.parse(version)
    if kind not in KINDS:
        raise BundleRefused(f"kind {kind!r} not in {KINDS}")
    files, links = collect(trees)
    entries = tuple(BundleFile(rel, p.stat().st_size, _sha256_file(p),
                               0o755 if os.access(p, os.X_OK) else 0o644) for rel, p in files)
    when = (created or datetime.now(UTC)).replace(microsecond=0).isoformat()
    manifest = BundleManifest(name, version, kind, when, entries, links)
    BundleManifest.from_json(manifest.to_json())  # the builder obeys the unit's rules too
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0,
                                                  compresslevel=6) as gz:
        write_tar(gz, manifest, dict(files))
    os.replace(tmp, out)
    return manifest


def write_tar(fileobj: IO[bytes] | gzip.GzipFile, manifest: BundleManifest,
              sources: Mapping[str, Path]) -> None:
    """The uncompressed tar stream of a bundle (also the base of binary deltas)."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        data = manifest.to_json()
        tar.addfile(_info(MANIFEST, len(data), 0o644), io.BytesIO(data))
        for f in manifest.files:
            with sources[f.path].open("rb") as src:
                tar.addfile(_info(f.path, f.size, f.mode), src)
        for path, target in sorted(manifest.links.items()):
            info = _info(path, 0, 0o777)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


def _info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# ---- reading (unit side) --------------------------------------------------------------------
def _open(bundle: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(str(bundle), mode="r|*")  # gzip (bundles) or plain (deltas)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleRefused(f"{bundle.name} is not a bundle: {e}") from e


def _read_manifest(tar: tarfile.TarFile, limits: Limits) -> BundleManifest:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isreg():
        raise BundleRefused(f"the first entry is not {MANIFEST}")
    if first.size > limits.max_manifest_bytes:
        raise BundleRefused(f"{MANIFEST} is {first.size} bytes (limit "
                            f"{limits.max_manifest_bytes})")
    f = tar.extractfile(first)
    assert f is not None
    return BundleManifest.from_json(f.read(), limits)


def read_manifest(bundle: Path, limits: Limits = DEFAULT_LIMITS) -> BundleManifest:
    """The manifest alone (for `vigil ota inspect` and policy checks); reads one entry."""
    try:
        with _open(bundle) as tar:
            return _read_manifest(tar, limits)
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as e:
        raise BundleRefused(f"{bundle.name}: {e}") from e


def unpack(bundle: Path, dest: Path, limits: Limits = DEFAULT_LIMITS) -> BundleManifest:
    """Unpack into the empty directory ``dest``; on any refusal ``dest`` is removed again."""
    if dest.exists() and any(dest.iterdir()):
        raise BundleRefused(f"{dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with _open(bundle) as tar:
            manifest = _read_manifest(tar, limits)
            _extract(tar, manifest, dest, limits)
    except BundleRefused:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise BundleRefused(f"{bundle.name} is damaged or truncated: {e}") from e
    return manifest


def _extract(tar: tarfile.TarFile, manifest: BundleManifest, dest: Path, limits: Limits) -> None:
    expected = {f.path: f for f in manifest.files}
    done: set[str] = set()
    written = 0
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while (member := tar.next()) is not None:
            name = _check_name(member.name)
            if name in done:
                raise BundleRefused(f"{name} appears twice")
            if member.issym():
                if manifest.links.get(name) != member.linkname:
                    raise BundleRefused(f"symlink {name} is not in the manifest as such")
                _check_link(name, member.linkname)
                _mkparents(dest, name)
                os.symlink(member.linkname, dest / name)
            elif member.isreg():
                spec = expected.get(name)
                if spec is None:
                    raise BundleRefused(f"{name} is not in the manifest")
                if member.size != spec.size:
                    raise BundleRefused(f"{name}: {member.size} bytes, manifest says {spec.size}")
                written += member.size
                if written > min(limits.max_total_bytes, manifest.total_bytes):
                    raise BundleRefused("more bytes than the manifest declares")
                src = tar.extractfile(member)
                assert src is not None
                _write_file(dest, name, src, spec)
            elif member.isdir():
                continue  # directories come from file paths; their modes are ours
            else:
                kind = ("hard link" if member.islnk() else "device node"
                        if member.ischr() or member.isblk() else "FIFO" if member.isfifo()
                        else f"type {member.type!r}")
                raise BundleRefused(f"{name}: {kind} entries are refused")
            done.add(name)
        missing = (set(expected) | set(manifest.links)) - done
        if missing:
            raise BundleRefused(f"truncated: {len(missing)} manifest entries missing, e.g. "
                                f"{sorted(missing)[0]}")
        os.fsync(root_fd)
    finally:
        os.close(root_fd)


def _mkparents(dest: Path, name: str) -> None:
    parent = dest
    for part in name.split("/")[:-1]:
        parent = parent / part
        if parent.is_symlink():
            raise BundleRefused(f"{name}: a parent directory is a symlink")
        parent.mkdir(mode=0o755, exist_ok=True)


def _write_file(dest: Path, name: str, src: IO[bytes], spec: BundleFile) -> None:
    _mkparents(dest, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(dest / name, flags, 0o755 if spec.mode & 0o111 else 0o644)
    h = hashlib.sha256()
    n = 0
    with os.fdopen(fd, "wb") as out:
        while block := src.read(_CHUNK):
            n += len(block)
            if n > spec.size:
                raise BundleRefused(f"{name}: more bytes than declared")
            h.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if n != spec.size or h.hexdigest() != spec.sha256:
        raise BundleRefused(f"{name}: content differs from the manifest (truncated or altered)")


def describe(bundle: Path) -> dict[str, Any]:
    """What `vigil ota inspect` prints: the file's hash and size, and the manifest."""
    m = read_manifest(bundle)
    top: dict[str, int] = {}
    for f in m.files:
        head = f.path.split("/", 1)[0]
        top[head] = top.get(head, 0) + f.size
    return {"file": str(bundle), "bytes": bundle.stat().st_size,
            "sha256": _sha256_file(bundle), "name": m.name, "version": m.version,
            "kind": m.kind, "created": m.created, "files": len(m.files),
            "links": len(m.links), "unpacked_bytes": m.total_bytes, "by_top_dir": top}
