"""The unit's update client: python-tuf's ngclient over our fetcher seam, plus Vigil's policy.

Why ngclient's ``Updater`` and not our own walk over the Metadata API: it is the reviewed
implementation of the TUF client workflow (root chain with threshold signatures and
``max_root_rotations``, rollback checks against the cached versions, expiry, snapshot/targets
consistency, length caps while streaming). Its trust core (``TrustedMetadataSet``) does no I/O;
everything we add on top is the pure :mod:`ota.policy`. What ngclient does not do for us, and
this module does: bundle downloads resume with range requests across restarts and link drops
(:func:`ota.fetch.download_resumable`) and are verified against the signed length and SHA-256
before anyone reads them.

Errors: :class:`~ota.errors.RepositoryRefused` (the repository's data is bad: unsigned,
replayed, expired, mixed, wrong hash) vs :class:`~ota.errors.DownloadFailed` (the link).
ngclient reads the system clock for expiry; it cannot be injected.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater, UpdaterConfig

from ota.errors import DownloadFailed, RepositoryRefused
from ota.fetch import ByteBudget, Transport, TransportFetcher, download_resumable
from ota.policy import Offer

log = logging.getLogger(__name__)

#: Hard caps on metadata sizes (endless data): far above a real repository's few kB.
CONFIG = UpdaterConfig(max_root_rotations=64, root_max_length=256_000,
                       timestamp_max_length=16_384, snapshot_max_length=256_000,
                       targets_max_length=1_000_000, app_user_agent="vigil")


def target_url(base_url: str, info: TargetFile) -> str:
    """Where a consistent-snapshot repository keeps a target: ``<dir>/<sha256>.<name>``."""
    dirname, sep, name = info.path.rpartition("/")
    return f"{base_url.rstrip('/')}/targets/{dirname}{sep}{info.hashes['sha256']}.{name}"


class UpdateClient:
    """Checks a repository for offers and fetches verified bundles.

    ``cache_dir`` keeps the trusted metadata between checks (that memory is what defeats
    replayed metadata and revoked keys); it is seeded once from ``trusted_root`` (the root the
    unit was provisioned with).
    """

    def __init__(self, base_url: str, cache_dir: Path, trusted_root: bytes,
                 transport: Transport, budget: ByteBudget | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.cache_dir = cache_dir
        self.trusted_root = trusted_root
        self.transport = transport
        self.budget = budget
        self._infos: dict[str, TargetFile] = {}

    def _updater(self) -> Updater:
        meta = self.cache_dir / "metadata"
        meta.mkdir(parents=True, exist_ok=True)
        bootstrap = None if (meta / "root.json").exists() else self.trusted_root
        try:
            return Updater(str(meta), f"{self.base_url}/metadata/",
                           target_base_url=f"{self.base_url}/targets/",
                           fetcher=TransportFetcher(self.transport, self.budget),
                           config=CONFIG, bootstrap=bootstrap)
        except tuf_exc.RepositoryError as e:
            raise RepositoryRefused(f"trusted root is invalid: {e}") from e

    def check(self, targets: Iterable[str]) -> dict[str, Offer]:
        """Refresh the metadata and return the offers found among ``targets`` (by path)."""
        updater = self._updater()
        offers: dict[str, Offer] = {}
        try:
            updater.refresh()
            for name in targets:
                info = updater.get_targetinfo(name)
                if info is None:
                    continue
                offers[name] = Offer.from_target(name, info.length, info.hashes, info.custom)
                self._infos[name] = info
        except tuf_exc.RepositoryError as e:
            raise RepositoryRefused(f"{type(e).__name__}: {e}") from e
        except tuf_exc.DownloadError as e:
            cause = e.__cause__
            if isinstance(cause, DownloadFailed):
                raise cause from e
            raise DownloadFailed(f"{type(e).__name__}: {e}") from e
        return offers

    def fetch(self, offer: Offer, dest_dir: Path,
              progress: Callable[[int, int], None] | None = None,
              stop: threading.Event | None = None) -> Path:
        """Download (resuming) and verify one offer; returns the verified file's path.

        A file that fails its hash is deleted (a partial download from a bad mirror must not be
        resumed) and :class:`RepositoryRefused` raised.
        """
        info = self._infos.get(offer.target)
        if info is None or info.hashes.get("sha256") != offer.sha256:
            raise RepositoryRefused(f"{offer.target} was not part of the last verified check")
        dest_dir.mkdir(parents=True, exist_ok=True)
        part = dest_dir / f"{offer.sha256}.part"
        final = dest_dir / f"{offer.sha256}.bundle"
        if final.exists() and _verified(info, final):
            return final
        download_resumable(self.transport, target_url(self.base_url, info), part, info.length,
                           budget=self.budget, progress=progress, stop=stop)
        if not _verified(info, part):
            part.unlink(missing_ok=True)
            raise RepositoryRefused(f"{offer.target}: length or SHA-256 differs from the signed "
                                    "targets metadata")
        os.replace(part, final)
        return final


def _verified(info: TargetFile, path: Path) -> bool:
    try:
        with path.open("rb") as f:
            info.verify_length_and_hashes(f)
    except (OSError, tuf_exc.LengthOrHashMismatchError):
        return False
    return True
