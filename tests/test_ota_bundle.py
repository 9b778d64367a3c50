"""Bundles: reproducible builds, and an unpacker that refuses every malicious archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from ota.bundle import MANIFEST, Limits, build, describe, read_manifest, unpack
from ota.errors import BundleRefused


def _tree(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("X = 1\n")
    (src / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "pkg" / "run.sh", 0o755)
    (src / "pkg" / "__pycache__").mkdir()
    (src / "pkg" / "__pycache__" / "junk.pyc").write_bytes(b"x")
    os.symlink("__init__.py", src / "pkg" / "alias.py")
    return src


def test_build_is_reproducible_and_round_trips(tmp_path):
    src = _tree(tmp_path)
    from datetime import UTC, datetime

    when = datetime(2026, 12, 1, tzinfo=UTC)
    m1 = build(tmp_path / "a.vbundle", name="vigil", version="1.2.0", kind="app",
               trees={"app": src}, created=when)
    build(tmp_path / "b.vbundle", name="vigil", version="1.2.0", kind="app",
          trees={"app": src}, created=when)
    assert (tmp_path / "a.vbundle").read_bytes() == (tmp_path / "b.vbundle").read_bytes()
    assert {f.path for f in m1.files} == {"app/pkg/__init__.py", "app/pkg/run.sh"}
    assert m1.links == {"app/pkg/alias.py": "__init__.py"}
    out = tmp_path / "slot"
    m = unpack(tmp_path / "a.vbundle", out)
    assert m == read_manifest(tmp_path / "a.vbundle")
    assert (out / "app/pkg/__init__.py").read_text() == "X = 1\n"
    assert os.access(out / "app/pkg/run.sh", os.X_OK)
    assert os.readlink(out / "app/pkg/alias.py") == "__init__.py"
    info = describe(tmp_path / "a.vbundle")
    assert info["version"] == "1.2.0" and info["files"] == 2


# ---- hand-made malicious archives -----------------------------------------------------------
def _manifest(files: dict[str, bytes], links: dict[str, str] | None = None, **over) -> bytes:
    doc = {"format": 1, "name": "vigil", "version": "9.9.9", "kind": "app",
           "created": "2026-12-01T00:00:00+00:00",
           "files": [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(),
                      "mode": 420} for p, d in files.items()],
           "links": links or {}}
    doc.update(over)
    return json.dumps(doc).encode()


def _evil(path: Path, entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]],
          manifest: bytes | None) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if manifest is not None:
            ti = tarfile.TarInfo(MANIFEST)
            ti.size = len(manifest)
            tar.addfile(ti, io.BytesIO(manifest))
        for e in entries:
            if isinstance(e, tuple):
                tar.addfile(e[0], io.BytesIO(e[1]))
            else:
                tar.addfile(e)
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


def _special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, link
    return ti


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "app/../../evil", "app/./x", "a\\b"])
def test_traversal_names_are_refused(tmp_path, name):
    b = _evil(tmp_path / "b", [_file(name, b"x")], _manifest({name: b"x"}))
    with pytest.raises(BundleRefused):
        unpack(b, tmp_path / "slot")
    assert not (tmp_path / "slot").exists()
    assert not (tmp_path / "evil").exists()


def test_traversal_entry_missing_from_the_manifest_is_refused(tmp_path):
    b = _evil(tmp_path / "b", [_file("../evil", b"x")], _manifest({}))
    with pytest.raises(BundleRefused):
        unpack(b, tmp_path / "slot")
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside", "../.."])
def test_symlinks_out_of_the_slot_are_refused(tmp_path, target):
    b = _evil(tmp_path / "b", [_special("app/l", tarfile.SYMTYPE, target)],
              _manifest({}, links={"app/l": target}))
    with pytest.raises(BundleRefused, match="symlink"):
        unpack(b, tmp_path / "slot")


def test_write_through_an_inside_symlink_is_refused(tmp_path):
    entries = [_special("app/d", tarfile.SYMTYPE, "."), _file("app/d/x", b"x")]
    b = _evil(tmp_path / "b", entries, _manifest({"app/d/x": b"x"}, links={"app/d": "."}))
    with pytest.raises(BundleRefused):
        unpack(b, tmp_path / "slot")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE,
                                  tarfile.LNKTYPE])
def test_device_nodes_fifos_and_hard_links_are_refused(tmp_path, kind):
    b = _evil(tmp_path / "b", [_special("app/dev", kind, "app/x")], _manifest({}))
    with pytest.raises(BundleRefused, match="refused"):
        unpack(b, tmp_path / "slot")


def test_declared_size_bomb_is_refused_before_reading(tmp_path):
    man = _manifest({"app/big": b""})
    doc = json.loads(man)
    doc["files"][0]["size"] = 10 << 30
    b = _evil(tmp_path / "b", [], json.dumps(doc).encode())
    with pytest.raises(BundleRefused, match=r"size|bytes"):
        unpack(b, tmp_path / "slot")


def test_entry_larger_than_its_manifest_line_is_refused(tmp_path):
    big = b"\0" * (4 << 20)  # compresses to almost nothing: a small bomb
    b = _evil(tmp_path / "b", [_file("app/big", big)], _manifest({"app/big": b"\0" * 10}))
    with pytest.raises(BundleRefused):
        unpack(b, tmp_path / "slot")
    assert not (tmp_path / "slot").exists()


def test_limits_cap_total_bytes_and_file_count(tmp_path):
    files = {f"app/f{i}": b"y" * 100 for i in range(20)}
    b = _evil(tmp_path / "b", [_file(n, d) for n, d in files.items()], _manifest(files))
    with pytest.raises(BundleRefused, match="files"):
        unpack(b, tmp_path / "s1", Limits(max_files=10))
    with pytest.raises(BundleRefused, match="bytes"):
        unpack(b, tmp_path / "s2", Limits(max_total_bytes=1000))
    unpack(b, tmp_path / "s3")


def test_truncated_archive_is_refused_and_cleaned(tmp_path):
    files = {"app/a": os.urandom(200_000), "app/b": b"b"}
    b = _evil(tmp_path / "b", [_file(n, d) for n, d in files.items()], _manifest(files))
    data = b.read_bytes()
    b.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleRefused):
        unpack(b, tmp_path / "slot")
    assert not (tmp_path / "slot").exists()


def test_missing_and_altered_entries_are_refused(tmp_path):
    files = {"app/a": b"a", "app/b": b"b"}
    b = _evil(tmp_path / "b", [_file("app/a", b"a")], _manifest(files))
    with pytest.raises(BundleRefused, match="missing"):
        unpack(b, tmp_path / "s1")
    b = _evil(tmp_path / "c", [_file("app/a", b"A"), _file("app/b", b"b")], _manifest(files))
    with pytest.raises(BundleRefused, match="differs"):
        unpack(b, tmp_path / "s2")


def test_duplicate_entries_and_a_missing_manifest_are_refused(tmp_path):
    files = {"app/a": b"a"}
    b = _evil(tmp_path / "b", [_file("app/a", b"a"), _file("app/a", b"a")], _manifest(files))
    with pytest.raises(BundleRefused, match="twice"):
        unpack(b, tmp_path / "s1")
    b = _evil(tmp_path / "c", [_file("app/a", b"a")], None)
    with pytest.raises(BundleRefused, match="first entry"):
        unpack(b, tmp_path / "s2")
    (tmp_path / "d").write_bytes(b"not a tarball at all")
    with pytest.raises(BundleRefused):
        unpack(tmp_path / "d", tmp_path / "s3")
