"""The update trust core against the classic update attacks (TUF's threat list).

The repository is written by the vendor tools (`ota.repository`) into a directory and read by
the unit's client through the same fetcher seam a USB stick uses; an attacker here is whoever
controls that directory (a mirror, a CDN, the stick).
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from ota.client import UpdateClient
from ota.errors import BudgetExhausted, DownloadFailed, RepositoryRefused
from ota.fetch import ByteBudget, DirTransport, HttpTransport, Response, download_resumable
from ota.repository import KeySet, VendorRepository, keygen, load_signer

TARGET = "stable/app.vbundle"


def _custom(version: str, **extra: object) -> dict[str, object]:
    return {"vigil": {"version": version, "kind": "app", **extra}}


class Vendor:
    def __init__(self, tmp: Path, root_keys: int = 1, threshold: int = 1) -> None:
        self.keydir = tmp / "keys"
        self.root_json = keygen(self.keydir, root_keys=root_keys, root_threshold=threshold)
        self.keys = KeySet.load(self.keydir)
        self.repo = VendorRepository(tmp / "repo")
        self.repo.init(self.root_json)
        self.tmp = tmp

    def release(self, version: str, payload: bytes | None = None, **extra: object) -> Path:
        f = self.tmp / f"app-{version}.vbundle"
        f.write_bytes(payload if payload is not None else f"bundle {version}".encode() * 100)
        self.repo.add_targets({TARGET: f}, self.keys, custom={TARGET: _custom(version, **extra)})
        self.repo.publish(self.keys)
        return f

    def client(self, cache: Path) -> UpdateClient:
        return UpdateClient(str(self.repo.path), cache, self.root_json.read_bytes(),
                            DirTransport())


@pytest.fixture
def vendor(tmp_path):
    return Vendor(tmp_path)


def test_good_release_is_offered_and_fetched_verified(vendor, tmp_path):
    vendor.release("1.1.0")
    client = vendor.client(tmp_path / "unit")
    offers = client.check([TARGET, "stable/model.vbundle"])
    assert list(offers) == [TARGET]
    assert offers[TARGET].version == "1.1.0"
    path = client.fetch(offers[TARGET], tmp_path / "dl")
    assert path.read_bytes() == b"bundle 1.1.0" * 100


def test_arbitrary_software_wrong_hash_on_the_mirror_is_refused(vendor, tmp_path):
    vendor.release("1.1.0")
    client = vendor.client(tmp_path / "unit")
    offer = client.check([TARGET])[TARGET]
    served = next((vendor.repo.targets_dir / "stable").glob("*.app.vbundle"))
    data = bytearray(served.read_bytes())
    data[10] ^= 1  # same length, one bit flipped
    served.write_bytes(bytes(data))
    with pytest.raises(RepositoryRefused, match="SHA-256"):
        client.fetch(offer, tmp_path / "dl")
    assert not list((tmp_path / "dl").iterdir()), "nothing of a refused target is kept"


def test_metadata_signed_by_an_untrusted_key_is_refused(vendor, tmp_path):
    vendor.release("1.1.0")
    attacker = tmp_path / "attacker"
    keygen(attacker)
    evil = KeySet.load(attacker)
    vendor.repo.add_targets({TARGET: vendor.tmp / "app-1.1.0.vbundle"}, evil,
                            custom={TARGET: _custom("9.0.0")})
    vendor.repo.publish(vendor.keys)  # even with genuine snapshot/timestamp keys
    with pytest.raises(RepositoryRefused, match="Unsigned"):
        vendor.client(tmp_path / "unit").check([TARGET])


def test_replayed_old_metadata_is_refused_after_a_newer_was_seen(vendor, tmp_path):
    vendor.release("1.1.0")
    meta = vendor.repo.meta_dir
    old_timestamp = (meta / "timestamp.json").read_bytes()
    vendor.release("1.2.0")
    client = vendor.client(tmp_path / "unit")
    assert client.check([TARGET])[TARGET].version == "1.2.0"
    (meta / "timestamp.json").write_bytes(old_timestamp)  # a mirror replays yesterday
    with pytest.raises(RepositoryRefused, match="BadVersionNumber"):
        vendor.client(tmp_path / "unit").check([TARGET])


def test_expired_timestamp_freeze_is_refused(vendor, tmp_path):
    vendor.release("1.1.0")
    vendor.repo.publish(vendor.keys, timestamp_expiry=timedelta(seconds=-1))
    with pytest.raises(RepositoryRefused, match="Expired"):
        vendor.client(tmp_path / "unit").check([TARGET])


def test_mix_and_match_of_two_releases_is_refused(vendor, tmp_path):
    vendor.release("1.1.0")
    meta = vendor.repo.meta_dir
    vendor.release("1.2.0")
    # The mirror serves release 1's targets under release 2's name (snapshot says version 2).
    shutil.copyfile(meta / "1.targets.json", meta / "2.targets.json")
    with pytest.raises(RepositoryRefused, match=r"BadVersionNumber|version"):
        vendor.client(tmp_path / "unit").check([TARGET])


def test_snapshot_swapped_under_a_genuine_timestamp_is_refused(vendor, tmp_path):
    vendor.release("1.1.0")
    snap = vendor.repo.meta_dir / "1.snapshot.json"
    doc = json.loads(snap.read_text())
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"
    snap.write_text(json.dumps(doc))
    with pytest.raises(RepositoryRefused, match=r"LengthOrHashMismatch|Unsigned"):
        vendor.client(tmp_path / "unit").check([TARGET])


def test_endless_metadata_is_cut(vendor, tmp_path):
    vendor.release("1.1.0")
    (vendor.repo.meta_dir / "timestamp.json").write_bytes(b" " * 10_000_000)
    with pytest.raises(DownloadFailed):
        vendor.client(tmp_path / "unit").check([TARGET])


def test_endless_target_is_cut_at_the_signed_length(vendor, tmp_path):
    vendor.release("1.1.0")
    client = vendor.client(tmp_path / "unit")
    offer = client.check([TARGET])[TARGET]
    served = next((vendor.repo.targets_dir / "stable").glob("*.app.vbundle"))
    with served.open("ab") as f:
        f.write(b"x" * 1_000_000)
    with pytest.raises(DownloadFailed, match="more than the signed"):
        client.fetch(offer, tmp_path / "dl")


def test_root_threshold_and_key_rotation(tmp_path):
    vendor = Vendor(tmp_path, root_keys=3, threshold=2)
    vendor.release("1.1.0")
    client = vendor.client(tmp_path / "unit")
    assert client.check([TARGET])
    roots = sorted(vendor.keydir.glob("root-*.pem"))
    new_targets_dir = tmp_path / "newkeys"
    new_targets_dir.mkdir()
    from securesystemslib.signer import CryptoSigner

    new_targets = CryptoSigner.generate_ed25519()
    (new_targets_dir / "targets.pem").write_bytes(new_targets.private_bytes)
    # One root key alone (below the threshold) cannot rotate the targets key.
    vendor.repo.rotate("targets", [new_targets], [load_signer(roots[0])])
    with pytest.raises(RepositoryRefused, match=r"Unsigned|threshold"):
        vendor.client(tmp_path / "unit").check([TARGET])
    (vendor.repo.meta_dir / "2.root.json").unlink()
    # Two of three can; afterwards the old (say, stolen) targets key is worthless.
    vendor.repo.rotate("targets", [new_targets], [load_signer(p) for p in roots[:2]])
    stolen = vendor.keys
    vendor.repo.add_targets({TARGET: vendor.tmp / "app-1.1.0.vbundle"}, stolen,
                            custom={TARGET: _custom("6.6.6")})
    vendor.repo.publish(vendor.keys)
    with pytest.raises(RepositoryRefused, match="Unsigned"):
        vendor.client(tmp_path / "unit").check([TARGET])
    rotated = KeySet({**vendor.keys.signers, "targets": [new_targets]})
    vendor.repo.add_targets({TARGET: vendor.tmp / "app-1.1.0.vbundle"}, rotated,
                            custom={TARGET: _custom("1.3.0")})
    vendor.repo.publish(vendor.keys)
    assert vendor.client(tmp_path / "unit").check([TARGET])[TARGET].version == "1.3.0"


def test_unsigned_custom_fields_cannot_be_added_by_a_mirror(vendor, tmp_path):
    vendor.release("1.1.0", rollout_percent=0)
    targets = vendor.repo.meta_dir / "1.targets.json"
    md = Metadata.from_file(str(targets))
    md.signed.targets[TARGET].unrecognized_fields["custom"]["vigil"]["rollout_percent"] = 100
    targets.write_bytes(md.to_bytes())  # signature no longer matches
    with pytest.raises(RepositoryRefused):
        vendor.client(tmp_path / "unit").check([TARGET])


class _CutTransport:
    """Serves a file but breaks the link after ``cut`` bytes on the first request."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut, self.requests = data, cut, []

    def open(self, url: str, start: int = 0) -> Response:
        self.requests.append(start)
        first = len(self.requests) == 1

        def chunks():
            body = self.data[start:]
            for i in range(0, len(body), 1000):
                if first and start + i >= self.cut:
                    raise DownloadFailed("link dropped")
                yield body[i:i + 1000]

        return Response(206 if start else 200, chunks())

    def close(self) -> None:
        pass


def test_cut_download_resumes_from_where_it_stopped(tmp_path):
    data = bytes(range(250)) * 400
    t = _CutTransport(data, len(data) // 2)
    part = tmp_path / "x.part"
    with pytest.raises(DownloadFailed):
        download_resumable(t, "u", part, len(data))
    assert part.stat().st_size == len(data) // 2
    download_resumable(t, "u", part, len(data))
    assert part.read_bytes() == data
    assert t.requests == [0, len(data) // 2]


def test_byte_budget_stops_and_resumes_next_period(tmp_path):
    data = b"z" * 50_000
    now = [0.0]
    budget = ByteBudget(20_000, 3600.0, lambda: now[0])
    part = tmp_path / "y.part"
    with pytest.raises(BudgetExhausted):
        download_resumable(_CutTransport(data, 10**9), "u", part, len(data), budget=budget)
    assert 0 < part.stat().st_size <= 20_000
    now[0] = 7200.0
    with pytest.raises(BudgetExhausted):
        download_resumable(_CutTransport(data, 10**9), "u", part, len(data), budget=budget)
    now[0] = 14400.0
    download_resumable(_CutTransport(data, 10**9), "u", part, len(data), budget=budget)
    assert part.read_bytes() == data


def test_slow_retrieval_stall_times_out():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def stall():
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc")
        time.sleep(3)
        conn.close()

    threading.Thread(target=stall, daemon=True).start()
    t = HttpTransport(read_timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(DownloadFailed):
        download_resumable(t, f"http://127.0.0.1:{port}/x", Path("/tmp/never") / "p", 1000)
    assert time.monotonic() - t0 < 2.5
    t.close()
    srv.close()


def test_http_range_resume_against_a_real_server(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "f.bin").write_bytes(data)

    class Ranged(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(tmp_path), **k)

        def log_message(self, *a):
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            if not rng:
                return super().do_GET()
            start = int(rng.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ranged)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    part = tmp_path / "dl" / "f.part"
    part.parent.mkdir()
    part.write_bytes(data[:100_000])
    t = HttpTransport()
    download_resumable(t, f"http://127.0.0.1:{httpd.server_port}/f.bin", part, len(data))
    assert part.read_bytes() == data
    t.close()
    httpd.shutdown()
