"""The slots on disk, and the only code that changes them.

Layout under the OTA root (``<state_dir>/ota`` by default)::

    slots/a/, slots/b/     an unpacked bundle each; ``.complete`` (its manifest) once verified
    current -> slots/X     what the service runs (ExecStart goes through this link)
    committed -> slots/Y   the last version that passed the health gate (ExecStartPre runs
                           ``vigil ota boot`` from here)
    state.json             the :class:`~ota.slots.SlotState`, written atomically
    downloads/             resumable partial downloads

Crash safety comes from one ordering rule: the new state is written (temp file, fsync,
``os.replace``, directory fsync) *before* any action that follows from it, and every action is
idempotent and re-derived from the state by :meth:`SlotFS.boot`. A SIGKILL anywhere therefore
leaves either the old state (and untouched links) or the new state, whose links ``boot`` puts
right. A link is switched with one ``rename(2)`` of a fresh symlink over the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from drivers import files
from drivers.files import fsync_dir
from ota.bundle import BundleManifest
from ota.errors import OtaError, SlotTransitionError
from ota.slots import (
    SLOTS,
    Action,
    Boot,
    Discard,
    Event,
    HealthFailed,
    Phase,
    PointCommitted,
    PointCurrent,
    SlotState,
    step,
)

log = logging.getLogger(__name__)

COMPLETE = ".complete"


def atomic_write(path: Path, data: bytes) -> None:
    """:func:`drivers.files.write_atomic` with the mode the slot files always had."""
    files.write_atomic(path, data, 0o644)


class SlotFS:
    """Carries out slot actions on a directory. ``on_step(name)`` is called before each
    filesystem step: tests use it to kill the process at every point."""

    def __init__(self, root: Path, on_step: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.state_path = root / "state.json"
        self.on_step = on_step or (lambda _name: None)

    def slot_dir(self, slot: str) -> Path:
        return self.root / "slots" / slot

    # ---- state -----------------------------------------------------------------------------
    def init(self, running_version: str, adopt: Path | None = None) -> SlotState:
        """First start: the running version becomes slot ``a``, committed.

        ``adopt`` (optional) is a directory holding the running application, linked as slot
        ``a``; without it slot ``a`` is an empty marker (the factory image runs from elsewhere).
        """
        for s in SLOTS:
            self.slot_dir(s).mkdir(parents=True, exist_ok=True)
        if adopt is not None and not any(self.slot_dir("a").iterdir()):
            (self.slot_dir("a") / "app").symlink_to(adopt.resolve())
        self._mark(self.slot_dir("a"), json.dumps({"version": running_version,
                                                   "adopted": True}).encode())
        state = SlotState(version_a=running_version, floor=running_version,
                          last=f"initialised with {running_version}")
        self.save(state)
        self._point("current", "a")
        self._point("committed", "a")
        return state

    def load(self) -> SlotState | None:
        try:
            return SlotState.from_dict(json.loads(self.state_path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as e:
            raise SlotTransitionError(f"{self.state_path} is unreadable: {e}") from e

    def save(self, state: SlotState) -> None:
        self.on_step("save")
        atomic_write(self.state_path, json.dumps(state.to_dict(), indent=1).encode())

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while checking, staging and switching: the daemon's worker and an installer's
        ``vigil ota install-usb`` never stage at the same time. Never waits: raises
        :class:`~ota.errors.OtaError` when the other one holds it (the kernel drops the lock
        of a killed holder)."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise OtaError("another OTA install is in progress on this unit") from e
            yield
        finally:
            os.close(fd)

    # ---- slots and links -------------------------------------------------------------------
    def is_complete(self, slot: str) -> bool:
        return (self.slot_dir(slot) / COMPLETE).is_file()

    def _mark(self, d: Path, data: bytes) -> None:
        self.on_step("mark_complete")
        atomic_write(d / COMPLETE, data)

    def mark_complete(self, slot: str, manifest: BundleManifest) -> None:
        fsync_dir(self.slot_dir(slot))
        self._mark(self.slot_dir(slot), manifest.to_json())

    def discard(self, slot: str) -> None:
        """Empty a slot: first un-mark it (so a half-removed slot is never used), then remove."""
        d = self.slot_dir(slot)
        self.on_step("unmark")
        (d / COMPLETE).unlink(missing_ok=True)
        if d.exists():
            fsync_dir(d)
        self.on_step("remove")
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True, exist_ok=True)

    def link_target(self, name: str) -> str | None:
        try:
            return Path(os.readlink(self.root / name)).name
        except OSError:
            return None

    def _point(self, name: str, slot: str) -> None:
        if self.link_target(name) == slot:
            return
        self.on_step(f"point_{name}")
        tmp = self.root / f".{name}.new"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path("slots") / slot)
        os.replace(tmp, self.root / name)
        fsync_dir(self.root)

    def execute(self, actions: tuple[Action, ...]) -> None:
        for a in actions:
            if isinstance(a, Discard):
                self.discard(a.slot)
            elif isinstance(a, PointCurrent):
                self._point("current", a.slot)
            elif isinstance(a, PointCommitted):
                self._point("committed", a.slot)

    def apply(self, state: SlotState, event: Event) -> tuple[SlotState, tuple[Action, ...]]:
        """One transition: persist the new state, then carry out the filesystem actions.
        Returns them all; the caller handles Restart and Report."""
        new, actions = step(state, event)
        self.save(new)
        self.execute(actions)
        return new, actions

    # ---- start-up --------------------------------------------------------------------------
    def boot(self, now_utc: datetime) -> tuple[SlotState, tuple[Action, ...]]:
        """What ``vigil ota boot`` does before each service start (from the committed slot).

        Puts the links where the state says (finishing a switch a kill interrupted), never
        leaves ``current`` on an incomplete slot, discards an interrupted staging, and counts
        the start of a version on trial (rolling back past the deadline or boot limit).
        """
        state = self.load()
        if state is None:
            raise SlotTransitionError(f"no slot state at {self.state_path}: run `vigil ota "
                                      "init` at installation")
        for stale in (".current.new", ".committed.new", *(p.name for p in
                                                           self.root.glob(".state.json.tmp*"))):
            (self.root / stale).unlink(missing_ok=True)
        extra: tuple[Action, ...] = ()
        if state.phase is Phase.TRIAL and not self.is_complete(state.active):
            state, extra = self.apply(state, HealthFailed("the trial slot is incomplete"))
        self.execute((PointCommitted(state.committed), PointCurrent(state.active)))
        new, actions = self.apply(state, Boot(now_utc))
        return new, extra + actions

