"""`vigil ota ...`: the vendor's tools and the unit's boot step. Mounted by ``firmware.cli.main``.

Vendor side (a release machine, never a unit)::

    vigil ota keygen KEYDIR [--root-keys 3 --root-threshold 2]
    vigil ota build OUT --version V [--kind app|model] [--tree DIR] [--wheels DIR]
                    [--models DIR] [--units DIR]
    vigil ota sign REPO BUNDLE --keys KEYDIR [--channel stable] [--rollout-percent P]
                   [--window-utc HH:MM-HH:MM] [--allow-downgrade] [--min-version V]
                   [--delta-from OLD_BUNDLE]
    vigil ota publish REPO --keys KEYDIR [--timestamp-hours H] [--copy-to STICK]
    vigil ota inspect BUNDLE|REPO

Unit side::

    vigil ota init --version V [--root DIR] [--adopt DIR]   once, at installation
    vigil ota boot [--root DIR]        systemd ExecStartPre, from the committed slot
    vigil ota install-usb DIR [--config FILE]   an installer's offline update (a stick written
                                       by ``vigil ota publish --copy-to``)
    vigil ota state [--root DIR]       the slot state as JSON
    vigil ota overdue [--root DIR]     exit 0 when a trial is past its deadline (the deadline
                                       timer's ExecCondition; systemd/vigil-ota-deadline.*)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ota.errors import OtaError
from ota.settings import UnitOta

DEFAULT_ROOT = Path(os.environ.get("VIGIL_OTA_ROOT", "/var/lib/vigil/ota"))


UnitOtaLoader = Callable[[Path | None], UnitOta]


def _out(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_keygen(a: argparse.Namespace) -> int:
    from ota.repository import keygen, public_key_summary

    root = keygen(a.keydir, root_keys=a.root_keys, root_threshold=a.root_threshold)
    _out({"trust_anchor": str(root), **public_key_summary(root.read_bytes()),
          "next": "keep root-*.pem offline; provision every unit with 1.root.json"})
    return 0


def cmd_build(a: argparse.Namespace) -> int:
    from ota.bundle import build, describe

    trees = {k: v for k, v in (("app", a.tree), ("wheels", a.wheels), ("models", a.models),
                               ("systemd", a.units)) if v is not None}
    if not trees:
        raise OtaError("nothing to bundle: give --tree, --wheels, --models or --units")
    if a.kind == "model" and set(trees) != {"models"}:
        raise OtaError("a model bundle holds --models only")
    build(a.out, name=a.name, version=a.version, kind=a.kind, trees=trees)
    _out(describe(a.out))
    return 0


def cmd_sign(a: argparse.Namespace) -> int:
    from ota.bundle import read_manifest
    from ota.policy import parse_window
    from ota.repository import KeySet, VendorRepository

    repo = VendorRepository(a.repo)
    if not repo.has("root"):
        repo.init(a.keys / "1.root.json")
    manifest = read_manifest(a.bundle)
    target = f"{a.channel}/{manifest.kind}.vbundle"
    vigil: dict[str, Any] = {"version": manifest.version, "kind": manifest.kind,
                             "rollout_percent": a.rollout_percent}
    if a.window_utc:
        parse_window(a.window_utc)
        vigil["window_utc"] = a.window_utc
    if a.allow_downgrade:
        vigil["allow_downgrade"] = True
    if a.min_version:
        vigil["min_version"] = a.min_version
    files, custom = {target: a.bundle}, {target: {"vigil": vigil}}
    if a.delta_from is not None:
        from ota.delta import make_delta

        base = read_manifest(a.delta_from)
        delta = a.bundle.with_name(f"{a.bundle.name}.from-{base.version}.vdelta")
        fields = make_delta(a.delta_from, a.bundle, delta)
        name = f"{a.channel}/app-from-{base.version}.vdelta"
        files[name] = delta
        custom[name] = {"vigil": {"version": manifest.version, "kind": "app",
                                  "delta_from": base.version, **fields}}
    version = repo.add_targets(files, KeySet.load(a.keys), custom=custom,
                               expires=timedelta(days=a.expires_days))
    _out({"targets": sorted(files), "targets_version": version, "vigil": vigil,
          "next": f"vigil ota publish {a.repo} --keys <online keys>"})
    return 0


def cmd_publish(a: argparse.Namespace) -> int:
    from ota.repository import KeySet, VendorRepository

    repo = VendorRepository(a.repo)
    versions = repo.publish(KeySet.load(a.keys),
                            timestamp_expiry=timedelta(hours=a.timestamp_hours))
    out: dict[str, Any] = {"repository": str(a.repo), **versions,
                           "serve": "any static web server or CDN, with the directory as it is"}
    if a.copy_to is not None:
        # The same signed files, as they are: the unit verifies the copy exactly as online.
        for part in ("metadata", "targets"):
            shutil.copytree(a.repo / part, a.copy_to / part, dirs_exist_ok=True)
        out["copied_to"] = str(a.copy_to)
        out["install"] = f"on the unit: vigil ota install-usb {a.copy_to}"
    _out(out)
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    from ota.bundle import describe
    from ota.repository import VendorRepository, public_key_summary

    if a.path.is_dir():
        repo = VendorRepository(a.path)
        root = repo.load("root")
        targets = {name: {"length": t.length, "sha256": t.hashes.get("sha256"),
                          **(t.custom or {})} for name, t in repo.targets().items()}
        ts = repo.load("timestamp").signed if repo.has("timestamp") else None
        _out({"root": public_key_summary(root.to_bytes()), "targets": targets,
              "timestamp": None if ts is None else {"version": ts.version,
                                                    "expires": ts.expires.isoformat()}})
    else:
        _out(describe(a.path))
    return 0


def cmd_init(a: argparse.Namespace) -> int:
    from ota.slotfs import SlotFS

    fs = SlotFS(a.root)
    if fs.load() is not None:
        raise OtaError(f"{a.root} already holds slot state")
    _out(fs.init(a.version, adopt=a.adopt).to_dict())
    return 0


def cmd_boot(a: argparse.Namespace) -> int:
    """Before every start: fix links, count a trial start, roll back if it is time."""
    from ota.events import EventLog
    from ota.slotfs import SlotFS
    from ota.slots import Report

    now = datetime.now(UTC)
    state, actions = SlotFS(a.root).boot(now)
    for act in actions:
        print(f"vigil ota boot: {act}", file=sys.stderr)
        if isinstance(act, Report):  # the daemon that starts next reports it upstream
            EventLog(a.root).append(now, act.step, act.detail,
                                    "failed" if act.step in ("rolled_back", "stage_failed")
                                    else "ok", audited=False)
    _out({"active": state.active, "phase": state.phase.value, "version":
          state.running_version, "trial_boots": state.trial_boots, "last": state.last})
    return 0


def cmd_overdue(a: argparse.Namespace) -> int:
    """For the deadline timer's ``ExecCondition``: exit 0 when a trial is past its deadline plus
    ``--grace-s`` (the timer then restarts the service, and the boot check, which runs before
    the start, rolls back), 1 when there is nothing to do. Reads only; never moves a link
    itself, so it cannot race the version on trial writing its own verdict."""
    from ota.slotfs import SlotFS
    from ota.slots import overdue

    state = SlotFS(a.root).load()
    why = None if state is None else overdue(state, datetime.now(UTC), a.grace_s)
    if state is None or why is None:
        _out({"overdue": False, "phase": None if state is None else state.phase.value})
        return 1
    print(f"vigil ota overdue: trial of {state.target_version}: {why}; restarting the service "
          "(its boot check rolls back)", file=sys.stderr)
    _out({"overdue": True, "version": state.target_version, "why": why})
    return 0


def cmd_install_usb(a: argparse.Namespace, unit_ota: UnitOtaLoader) -> int:
    """An installer's offline update from a copy of the published repository (``vigil ota
    publish ... --copy-to``): the daemon's own code path over a directory, so the same TUF
    checks against the unit's trusted metadata, the same floor and downgrade rules and the
    same staging; only scheduling (rollout share, window, pending alert) does not apply. The
    switch puts the new version on trial; the running daemon sees it and restarts into it."""
    import dataclasses
    import threading

    from drivers.clock import SystemClock
    from ota.fetch import DirTransport
    from ota.slotfs import SlotFS
    from ota.worker import HealthSample, OtaWorker

    unit = unit_ota(a.config)
    stick = a.path.resolve()
    if not (stick / "metadata" / "timestamp.json").is_file():
        raise OtaError(f"{stick} holds no published repository (metadata/timestamp.json): "
                       f"write one with `vigil ota publish REPO --keys KEYS --copy-to DIR`")
    if not unit.settings.trusted_root:
        raise OtaError("[ota] trusted_root is not set: this unit has no vendor trust root")
    root = a.root or unit.root
    if SlotFS(root).load() is None:
        raise OtaError(f"no slot state at {root}: run `vigil ota init` at installation")
    owner = root.stat().st_uid
    if os.geteuid() != owner:
        raise OtaError(f"run this as the owner of {root} (uid {owner}; e.g. `sudo -u vigil "
                       "vigil ota install-usb ...`): files written as another user would "
                       "lock the daemon out of its own slots")
    settings = dataclasses.replace(unit.settings, repository=str(stick), auto_switch=True)
    restart: list[str] = []
    worker = OtaWorker(
        settings, root, unit.unit_id, SystemClock(),
        health=lambda: HealthSample(ready=True, fps=0.0, reads=0, uplink_ok=None),
        request_restart=restart.append, audit=lambda *_: None, transport=DirTransport(),
        installer=True)
    try:
        status = worker.install_now(threading.Event()).as_dict()
    finally:
        worker.close()
    status.pop("history", None)
    if status["step"] == "trial":
        _out({**status, "next": "the service restarts into it by itself within seconds "
              "(else: systemctl restart vigil); watch `vigil status` for committed"})
        return 0
    _out(status)
    if status["step"] == "up_to_date":
        return 0
    print(f"vigil ota install-usb: {status['step']}: {status['detail']}", file=sys.stderr)
    return 1


def cmd_state(a: argparse.Namespace) -> int:
    from ota.slotfs import SlotFS

    state = SlotFS(a.root).load()
    _out(None if state is None else state.to_dict())
    return 0


def _guard(fn: Any) -> Any:
    def run(a: argparse.Namespace) -> int:
        try:
            return int(fn(a))
        except OtaError as e:
            print(f"vigil ota: {e}", file=sys.stderr)
            return 1

    return run


def register(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
             unit_ota: UnitOtaLoader | None = None) -> None:
    """Mount ``vigil ota``. ``unit_ota`` reads the unit's ``[ota]`` section for the commands
    that act on the unit's updates (``install-usb``); without it they are not offered."""
    ota = sub.add_parser("ota", help="signed A/B updates: vendor tools and the unit's boot step")
    s = ota.add_subparsers(dest="ota_command", required=True)

    p = s.add_parser("keygen", help="new role keys and the first signed root (vendor)")
    p.add_argument("keydir", type=Path)
    p.add_argument("--root-keys", type=int, default=1)
    p.add_argument("--root-threshold", type=int, default=1)
    p.set_defaults(func=_guard(cmd_keygen))

    p = s.add_parser("build", help="a bundle from a source tree and/or a wheel set (vendor)")
    p.add_argument("out", type=Path)
    p.add_argument("--version", required=True)
    p.add_argument("--kind", choices=("app", "model"), default="app")
    p.add_argument("--name", default="vigil")
    p.add_argument("--tree", type=Path, help="application source tree (packed as app/)")
    p.add_argument("--wheels", type=Path, help="directory of locked wheels (wheels/)")
    p.add_argument("--models", type=Path, help="models and their manifests (models/)")
    p.add_argument("--units", type=Path, help="systemd unit files (systemd/)")
    p.set_defaults(func=_guard(cmd_build))

    p = s.add_parser("sign", help="add a bundle to the repository's signed targets (vendor)")
    p.add_argument("repo", type=Path)
    p.add_argument("bundle", type=Path)
    p.add_argument("--keys", type=Path, required=True, help="key directory (targets key)")
    p.add_argument("--channel", default="stable")
    p.add_argument("--rollout-percent", type=int, default=100, choices=range(101),
                   metavar="0..100", help="staged rollout share (canonical JSON: integers)")
    p.add_argument("--window-utc", help="maintenance window, e.g. 01:00-05:00")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="signed exception: units may install this below their version floor")
    p.add_argument("--min-version", help="oldest installed version this may update")
    p.add_argument("--expires-days", type=float, default=90.0)
    p.add_argument("--delta-from", type=Path, metavar="OLD_BUNDLE",
                   help="also sign a binary delta from this older app bundle")
    p.set_defaults(func=_guard(cmd_sign))

    p = s.add_parser("publish", help="sign snapshot + timestamp: a static repository (vendor)")
    p.add_argument("repo", type=Path)
    p.add_argument("--keys", type=Path, required=True, help="key directory (online keys)")
    p.add_argument("--timestamp-hours", type=float, default=24.0)
    p.add_argument("--copy-to", type=Path, metavar="DIR",
                   help="also copy the published repository here (an installer's USB stick; "
                   "give --timestamp-hours long enough for the installer's round)")
    p.set_defaults(func=_guard(cmd_publish))

    p = s.add_parser("inspect", help="describe a bundle or a repository")
    p.add_argument("path", type=Path)
    p.set_defaults(func=_guard(cmd_inspect))

    if unit_ota is not None:
        p = s.add_parser("install-usb", help="install an update from a USB copy of the "
                         "repository, verified as online (unit, installer)")
        p.add_argument("path", type=Path, help="the directory written by publish --copy-to")
        p.add_argument("--config", type=Path, help="the unit's configuration")
        p.add_argument("--root", type=Path, help="OTA root (default: from the configuration)")
        p.set_defaults(func=_guard(lambda a: cmd_install_usb(a, unit_ota)))

    for name, fn, hlp in (("init", cmd_init, "create the slot state (unit, once)"),
                          ("boot", cmd_boot, "pre-start check: links, trial count, rollback"),
                          ("state", cmd_state, "print the slot state"),
                          ("overdue", cmd_overdue, "exit 0 when a trial is past its deadline "
                           "(the deadline timer's condition)")):
        p = s.add_parser(name, help=hlp)
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
        if name == "overdue":
            p.add_argument("--grace-s", type=float, default=30.0,
                           help="past the deadline by this much: the version's own gate has "
                           "had its chance to roll back (default 30)")
        if name == "init":
            p.add_argument("--version", required=True)
            p.add_argument("--adopt", type=Path, help="the running application tree (slot a)")
        p.set_defaults(func=_guard(fn))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
