"""The device KEK sealed by a TPM 2.0, through tpm2-tools (Debian's ``tpm2-tools``).

The KEK is a TPM *sealed data object* under the owner hierarchy's storage primary key. The
primary key is not stored: it is re-derived on every load from the TPM's owner seed and a fixed
template (``tpm2_createprimary`` is deterministic), so the only files are the sealed object's
public and private parts (``kek.tpm.pub``, ``kek.tpm.priv``, 0600 beside where the key file
would be). The private part is encrypted under a key that never leaves the TPM: the card alone,
or a copy of it, no longer yields the KEK; the TPM of this unit has to unseal it.

Why tpm2-tools and not tpm2-pytss: tpm2-pytss builds against the tss2 development headers with
a C compiler and cffi at install time, and adds a few MB of resident memory to a daemon at its
budget; the KEK is loaded once at start, so four short subprocesses (about 60 ms with a
software TPM, ``tests/test_storage_tpm.py``) cost nothing at run time.

Not done here: no PCR policy (the KEK unseals for whoever can talk to this TPM as this user, not
only for a measured boot), no parameter encryption on the TPM bus (a discrete TPM's bus can be
sniffed while the KEK is unsealed), and an existing file KEK is not migrated into the TPM (a
unit provisioned with a file key keeps it; see :func:`key_source_for`).
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
from collections.abc import Sequence
from pathlib import Path

from drivers import files
from storage.errors import KeySourceError
from storage.keys import KEK_BYTES, FileKeySource, KeySource

log = logging.getLogger(__name__)

#: The resource-managed TPM device of a Linux unit that has one.
TPM_DEVICE = Path("/dev/tpmrm0")
#: Environment variable naming another TPM transport (``swtpm:host=...,port=...`` in tests, a
#: ``device:/dev/tpm0`` without the kernel's resource manager).
TCTI_ENV = "VIGIL_TPM_TCTI"
SEALED_PUB = "kek.tpm.pub"
SEALED_PRIV = "kek.tpm.priv"
_TOOLS = ("tpm2_createprimary", "tpm2_create", "tpm2_load", "tpm2_unseal", "tpm2_flushcontext")
_PRIMARY = ("-C", "o", "-g", "sha256", "-G", "ecc")


class TpmError(KeySourceError):
    """A tpm2-tools command failed (no TPM, a cleared TPM, sealed files from another TPM)."""


class TpmKeySource:
    """A KEK sealed to this unit's TPM 2.0. Created (random, sealed, checked) on first use."""

    def __init__(self, directory: Path, tcti: str, *, timeout_s: float = 30.0) -> None:
        self._dir = Path(directory)
        self._tcti = tcti
        self._timeout_s = timeout_s

    def describe(self) -> str:
        return f"tpm:{self._tcti}"

    def __repr__(self) -> str:
        return f"TpmKeySource({str(self._dir)!r}, {self._tcti!r})"

    @property
    def sealed(self) -> bool:
        return (self._dir / SEALED_PUB).is_file() and (self._dir / SEALED_PRIV).is_file()

    def load_kek(self) -> bytes:
        if not self.sealed:
            self._create()
        kek = self._unseal()
        if len(kek) != KEK_BYTES:
            raise TpmError(f"the TPM unsealed {len(kek)} bytes, expected {KEK_BYTES}")
        return kek

    def _create(self) -> None:
        import tempfile  # only on a unit with a TPM: the daemon's RSS is at its budget

        kek = secrets.token_bytes(KEK_BYTES)
        self._dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="vigil-tpm-") as tmp:
            t = Path(tmp)
            self._tool(t, "tpm2_createprimary", *_PRIMARY, "-c", "primary.ctx", "-Q")
            self._tool(t, "tpm2_create", "-C", "primary.ctx", "-i", "-", "-u", SEALED_PUB,
                       "-r", SEALED_PRIV, "-Q", stdin=kek)
            for name in (SEALED_PUB, SEALED_PRIV):
                files.write_atomic(self._dir / name, (t / name).read_bytes(), 0o600)
        files.fsync_dir(self._dir)
        if self._unseal() != kek:  # never keep a sealed KEK that does not come back
            raise TpmError("the sealed KEK did not unseal to the key just sealed")
        del kek
        log.info("created device KEK sealed by the TPM", extra={"key_source": self.describe()})

    def _unseal(self) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="vigil-tpm-") as tmp:
            t = Path(tmp)
            self._tool(t, "tpm2_createprimary", *_PRIMARY, "-c", "primary.ctx", "-Q")
            self._tool(t, "tpm2_load", "-C", "primary.ctx", "-u", str(self._dir / SEALED_PUB),
                       "-r", str(self._dir / SEALED_PRIV), "-c", "kek.ctx", "-Q")
            return self._tool(t, "tpm2_unseal", "-c", "kek.ctx")

    def _tool(self, cwd: Path, name: str, *args: str, stdin: bytes | None = None) -> bytes:
        """Run one tpm2-tools command, then flush the transient objects it left loaded (a TPM
        without a resource manager holds only three)."""
        env = {**os.environ, "TPM2TOOLS_TCTI": self._tcti}
        try:
            done = _run([name, *args], cwd, env, stdin, self._timeout_s)
            _run(["tpm2_flushcontext", "-t"], cwd, env, None, self._timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TpmError(f"{name} could not run ({type(e).__name__}: {e})") from e
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-2:]
            raise TpmError(f"{name} failed (exit {done.returncode}) on {self.describe()}: "
                           + " / ".join(tail))
        return done.stdout


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str], stdin: bytes | None,
         timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(list(argv), cwd=cwd, env=env, input=stdin, capture_output=True,
                          timeout=timeout_s, check=False)


def tools_installed() -> bool:
    import shutil

    return all(shutil.which(t) for t in _TOOLS)


def key_source_for(kek_file: Path, tcti: str | None = None, mode: str = "auto") -> KeySource:
    """The KEK source this unit uses (``[keys] source``), chosen in this one place, with a
    logged reason.

    ``auto``: a TPM (``tcti``, else ``$VIGIL_TPM_TCTI``, else ``/dev/tpmrm0`` when present)
    with tpm2-tools installed seals the KEK, unless the unit already has a file KEK (a unit
    provisioned before keeps it: moving a key that data is encrypted under is a provisioning
    step, not a start-up side effect); otherwise the 0600 file next to the data, the fallback.
    ``file``: always the file. ``tpm``: always the TPM (no fallback: a unit meant to have its
    key sealed must not quietly write it to the card).
    """
    kek_file = Path(kek_file)
    if mode == "file":
        return FileKeySource(kek_file)
    tcti = tcti or os.environ.get(TCTI_ENV) or (
        f"device:{TPM_DEVICE}" if TPM_DEVICE.exists() or mode == "tpm" else None)
    source = TpmKeySource(kek_file.parent, tcti) if tcti else None
    if mode == "tpm" and source is not None:
        return source
    if source is not None and source.sealed:
        return source
    if source is not None and not kek_file.exists() and tools_installed():
        return source
    why = ("no TPM" if tcti is None else "tpm2-tools not installed" if not tools_installed()
           else "this unit already has a file KEK")
    log.info("device KEK in a file", extra={"key_source": f"file:{kek_file}", "why": why})
    return FileKeySource(kek_file)
