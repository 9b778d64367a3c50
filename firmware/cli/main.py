"""The `vigil` command line. The only module (with the bench/read front-ends) that prints."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from firmware import config
from firmware.errors import ConfigError, ControlError

BENCH_AREAS = ("startup", "read", "pipeline", "store", "uplink", "hotlist", "ota", "soak")
#: `vigil run` builds only the parser's own commands: the daemon never imports the other
#: front-ends (provisioning's tomlkit and x509, evaluation's statistics: ~2.7 MB of its RSS).
DAEMON_COMMAND = "run"


def _load_settings(path: Path | None) -> config.Settings:
    try:
        return config.resolve(path)
    except ConfigError as e:
        print(f"vigil: config error: {e}", file=sys.stderr)
        raise SystemExit(config.EX_CONFIG) from e


def cmd_run(args: argparse.Namespace) -> int:
    from firmware.app import logsetup

    settings = _load_settings(args.config)
    logsetup.configure(settings.logging.level)
    from firmware.app.daemon import run_daemon

    return run_daemon(settings)


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        config.check_files(config.load(args.path))
    except ConfigError as e:
        print(f"vigil: config error: {e}", file=sys.stderr)
        return config.EX_CONFIG
    print(f"{args.path}: ok")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = _load_settings(args.config)
    out: dict[str, Any] = {"source": settings.source, **config.redacted(settings)}
    print(json.dumps(out, indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from firmware.app.daemon import control_socket_path
    from firmware.console.control import request

    path = args.socket or control_socket_path(_load_settings(args.config))
    try:
        result = request(path, "status")
    except ControlError as e:
        print(f"vigil: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"firmware.benchmarks.{args.area}")
    if args.protocol and args.area != "uplink":
        print("vigil: --protocol applies to `vigil bench uplink` only", file=sys.stderr)
        return 2
    if ((args.seconds is not None or args.out is not None or args.paced)
            and args.area != "soak"):
        print("vigil: --seconds, --out and --paced apply to `vigil bench soak` only",
              file=sys.stderr)
        return 2
    extra: dict[str, Any] = {"protocol": args.protocol} if args.protocol else {}
    if args.area == "soak":
        extra.update(seconds=args.seconds, out=args.out, paced=args.paced)
    result = module.run(quick=args.quick, **extra)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


def build_parser(optional: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigil", description="Vigil ALPR camera firmware")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon (simulation rig when no config is found)")
    run.add_argument("--config", type=Path, help="TOML config (default: $VIGIL_CONFIG, "
                     "/etc/vigil/vigil.toml, else the built-in simulation rig)")
    run.set_defaults(func=cmd_run)

    cfg = sub.add_parser("config", help="check or show configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a config file (exit 78 if invalid)")
    check.add_argument("path", type=Path)
    check.set_defaults(func=cmd_config_check)
    show = cfg_sub.add_parser("show", help="print the effective config, secrets redacted")
    show.add_argument("--config", type=Path)
    show.set_defaults(func=cmd_config_show)

    st = sub.add_parser("status", help="health of the running daemon as JSON")
    st.add_argument("--config", type=Path)
    st.add_argument("--socket", type=Path, help="control socket (default from config)")
    st.set_defaults(func=cmd_status)

    bench = sub.add_parser("bench", help="measure a hot path and print the figures")
    bench.add_argument("area", choices=BENCH_AREAS)
    bench.add_argument("--json", action="store_true", help="one JSON object on stdout")
    bench.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    bench.add_argument("--protocol", choices=("https", "mqtt"),
                       help="uplink only: measure over MQTT (HTTPS figures beside) or HTTPS")
    bench.add_argument("--seconds", type=float,
                       help="soak only: how long the daemon runs (default 600, 45 with --quick)")
    bench.add_argument("--out", type=Path, help="soak only: folder for the CSV and PNG")
    bench.add_argument("--paced", action="store_true",
                       help="soak only: replay at the camera's rate (10 fps), as on a road")
    bench.set_defaults(func=cmd_bench)

    if optional:
        _mount_optional(sub)
    return p


def _mount_optional(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Sub-commands owned by other packages' front-ends."""
    from inference import batch_read

    read = sub.add_parser("read", help="read plates in images, folders and videos to JSONL")
    batch_read.add_arguments(read)
    read.set_defaults(func=batch_read.run)

    from inference import eval_cli

    ev = sub.add_parser("eval", help="score end-to-end reads on a labelled dataset")
    eval_cli.add_arguments(ev)
    ev.set_defaults(func=eval_cli.run)

    from firmware.cli import cmd_storage

    cmd_storage.register(sub, _open_store_for_cli)

    from firmware.cli import cmd_provision

    cmd_provision.register(sub)

    from firmware.cli import cmd_console

    cmd_console.register(sub, _settings_and_store)

    from firmware.cli import cmd_network

    cmd_network.register(sub)

    from ota import cli as ota_cli

    def unit_ota(path: Path | None) -> Any:  # ota.settings.UnitOta
        from firmware.app.ota_glue import unit_ota

        return unit_ota(path)

    ota_cli.register(sub, unit_ota)


def _settings_and_store(config_path: Path | None):  # type: ignore[no-untyped-def]
    from firmware.app.daemon import open_store

    settings = _load_settings(config_path)
    return settings, open_store(settings)


def _open_store_for_cli(config_path: Path | None):  # type: ignore[no-untyped-def]
    from firmware.app.daemon import open_store

    return open_store(_load_settings(config_path))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(optional=argv[:1] != [DAEMON_COMMAND])
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)

