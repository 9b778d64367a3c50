"""`vigil provision`, `vigil install-cert`, `vigil console-passwd`: the installer's front-end.

Prompts (only on a terminal, only for what no flag gave) and printing live here; the work is
in :mod:`firmware.provision`. Exit status: 0 done, 78 the resulting config is invalid (the old
file is untouched), 1 anything else refused or failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import os
import pwd
import sys
from pathlib import Path
from typing import Any, TextIO

from drivers.camera import SENSOR_BACKENDS
from firmware import config, provision
from firmware.console import auth as console_auth
from firmware.errors import ConfigError

DEFAULT_OUT = Path("/etc/vigil/vigil.toml")
DAEMON_USER = "vigil"  # systemd/vigil.service: User=vigil Group=vigil


def _site(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected LAT,LON in degrees, e.g. 45.52,-122.68"
                                         ) from None
    return lat, lon


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected WIDTHxHEIGHT in pixels, e.g. 3840x2160"
                                         ) from None
    return w, h


def _zone(text: str) -> tuple[int, int, int, int]:
    if text.strip() == "none":
        return (0, 0, 0, 0)
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected X,Y,WIDTH,HEIGHT in frame pixels, e.g. "
                                         "1280,720,1280,720, or none") from None
    return x, y, w, h


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "provision", help="set up a new unit: config, device KEK, mTLS key + CSR, console login",
        description="Write the unit's config (validated before it replaces anything), create the "
        "device KEK and mTLS key if absent, and print the CSR for the agency to sign. "
        "Prompts on a terminal for what no flag gives.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"config file ({DEFAULT_OUT})")
    p.add_argument("--camera-id", help="identifier sent with every read (also the CSR's CN)")
    p.add_argument("--site", type=_site, metavar="LAT,LON", help="fixed site location")
    p.add_argument("--site-name", help="human name of the site")
    p.add_argument("--camera", choices=SENSOR_BACKENDS,
                   help="camera backend")
    p.add_argument("--camera-source", help="device, pipeline or camera index for the backend")
    p.add_argument("--camera-size", type=_size, metavar="WxH",
                   help="frame size the camera delivers, e.g. 3840x2160")
    p.add_argument("--zone", type=_zone, metavar="X,Y,W,H",
                   help="reading zone round the lanes, in frame pixels (cameras over 1920x1080: "
                   "about 1280x720 of it); 'none' = the whole frame")
    p.add_argument("--state-dir", type=Path,
                   help=f"durable state directory (default {provision.DEFAULT_STATE_DIR})")
    p.add_argument("--console-password-stdin", action="store_true",
                   help="read the console password from the first line of stdin")
    p.add_argument("--console-user",
                   help="your own login name for the local console account (role installer; "
                   "default 'installer'); everyone else comes from the signed account list")
    p.add_argument("--console-port", help="console serial device (default /dev/ttyAMA0)")
    p.add_argument("--uplink-endpoint", help="agency ingest URL; writes the [uplink] section")
    p.add_argument("--ca-file", type=Path, help="agency CA certificate for the [uplink] section")
    p.add_argument("--org", help="organisation name for the CSR subject")
    p.add_argument("--csr-out", type=Path, help="also write the CSR here (e.g. a USB stick)")
    p.add_argument("--user", help=f"user the daemon runs as; owns the KEK, key and state dir "
                   f"(default {DAEMON_USER} when run as root)")
    p.add_argument("--rotate-kek", action="store_true",
                   help="DESTROY the device KEK and the whole store with it, then make a new one")
    p.add_argument("--rotate-tls-key", action="store_true",
                   help="replace the mTLS key (the signed certificate stops matching)")
    p.add_argument("--no-input", action="store_true", help="never prompt")
    p.set_defaults(func=cmd_provision)

    c = subparsers.add_parser(
        "install-cert", help="install the certificate the agency signed from this unit's CSR")
    c.add_argument("--config", type=Path, default=DEFAULT_OUT)
    c.add_argument("--cert", type=Path, required=True, help="signed certificate (PEM)")
    c.add_argument("--ca", type=Path, help="agency CA (PEM): checked as the issuer and installed")
    c.add_argument("--user", help=f"owner of the installed files (default {DAEMON_USER} as root)")
    c.set_defaults(func=cmd_install_cert)

    h = subparsers.add_parser(
        "console-passwd", help="print a console password hash for [console] password_hash",
        description="Reads the password from stdin (prompts twice on a terminal) and prints "
        "its scrypt hash; the password itself is never printed.")
    h.set_defaults(func=cmd_console_passwd)


# ---------------------------------------------------------------------------------- helpers


def _owner(name: str | None, err: TextIO) -> provision.Owner | None:
    if name is None:
        if os.geteuid() != 0:
            return None  # files belong to whoever runs it (a developer, a test)
        try:
            pw = pwd.getpwnam(DAEMON_USER)
        except KeyError:
            print(f"vigil: warning: no user {DAEMON_USER!r}; keys and state stay owned by root, "
                  "so the daemon must run as root (pass --user to choose)", file=err)
            return None
        return provision.Owner(pw.pw_uid, pw.pw_gid)
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        print(f"vigil: user {name!r} does not exist (create it, or pass --user)", file=err)
        raise SystemExit(1) from None
    return provision.Owner(pw.pw_uid, pw.pw_gid)


def _config_group(owner: provision.Owner | None) -> int | None:
    return owner.gid if owner is not None else None


def _read_password_stdin(stdin: TextIO) -> str:
    line = stdin.readline()
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise console_auth.PasswordHashError("no password on stdin")
    return password


def _prompt_password(err: TextIO) -> str:
    while True:
        first = getpass.getpass("console password: ", stream=err)
        problem = console_auth.password_problem(first)
        if problem is not None:
            print(problem, file=err)
            continue
        if getpass.getpass("again: ", stream=err) == first:
            return first
        print("the two passwords differ; try again", file=err)


def _ask(question: str, err: TextIO, stdin: TextIO) -> str | None:
    err.write(f"{question}: ")
    err.flush()
    answer = stdin.readline().strip()
    return answer or None


def _interactive(args: argparse.Namespace, existing: dict[str, Any], err: TextIO,
                 stdin: TextIO) -> None:
    unit = existing.get("unit", {})
    if args.camera_id is None:
        current = unit.get("camera_id", "none")
        args.camera_id = _ask(f"camera id [{current}]", err, stdin)
    if args.site is None and "site_latitude" not in unit:
        while True:
            text = _ask("site LAT,LON (blank for a mobile unit)", err, stdin)
            if text is None:
                break
            try:
                args.site = _site(text)
                break
            except argparse.ArgumentTypeError as e:
                print(e, file=err)
    if args.camera is None and "camera" not in existing:
        while args.camera not in SENSOR_BACKENDS:
            args.camera = _ask(f"camera backend ({', '.join(SENSOR_BACKENDS)})", err, stdin) or (
                SENSOR_BACKENDS[0])
    if not args.console_password_stdin and "password_hash" not in existing.get("console", {}):
        args.console_password = _prompt_password(err)


# ---------------------------------------------------------------------------------- commands


def cmd_provision(args: argparse.Namespace, stdin: TextIO | None = None,
                  out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    args.console_password = None
    try:
        if args.console_password_stdin:
            args.console_password = _read_password_stdin(stdin)
        elif not args.no_input and stdin.isatty():
            _interactive(args, provision.read_existing(args.out), err, stdin)
        owner = _owner(args.user, err)
        req = provision.ProvisionRequest(
            out=args.out, camera_id=args.camera_id, site=args.site, site_name=args.site_name,
            camera_backend=args.camera, camera_source=args.camera_source, zone=args.zone,
            camera_size=args.camera_size,
            state_dir=args.state_dir, console_password=args.console_password,
            console_user=args.console_user, console_port=args.console_port,
            uplink_endpoint=args.uplink_endpoint,
            ca_file=args.ca_file, organisation=args.org, rotate_kek=args.rotate_kek,
            rotate_tls_key=args.rotate_tls_key, owner=owner,
            config_group=_config_group(owner),
        )
        result = provision.provision(req)
        if args.csr_out is not None:
            provision.write_atomic(args.csr_out, result.csr_pem.encode("ascii"),
                                   provision.PUBLIC_MODE)
    except ConfigError as e:
        print(f"vigil: config error: {e}", file=err)
        print("vigil: nothing was changed", file=err)
        return config.EX_CONFIG
    except (provision.ProvisionError, console_auth.PasswordHashError, OSError) as e:
        print(f"vigil: provisioning failed: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        print("\nvigil: interrupted; nothing was changed", file=err)
        return 130
    _report(result, args, out, err)
    return 0


def _report(r: provision.ProvisionResult, args: argparse.Namespace, out: TextIO,
            err: TextIO) -> None:
    print(f"config:   {r.config_path} ({'updated' if r.config_replaced else 'created'})", file=err)
    if r.kek_rotated:
        print(f"KEK:      {r.kek_file} ROTATED; destroyed "
              f"{len(r.store_files_destroyed)} store file(s)", file=err)
    else:
        print(f"KEK:      {r.kek_file} ({'created' if r.kek_created else 'kept'})", file=err)
    print(f"TLS key:  {r.tls_key_file} ({'created' if r.tls_key_created else 'kept'})",
          file=err)
    if r.tls_key_created and r.cert_present:
        print(f"warning:  {r.cert_file} was signed for the old key; install a new one",
              file=err)
    print(f"CSR:      {r.csr_file}" + (f" and {args.csr_out}" if args.csr_out else ""), file=err)
    if not r.cert_present or r.tls_key_created:
        print("next:     have the agency CA sign the CSR below, then run "
              "`vigil install-cert --cert signed.pem --ca agency-ca.pem`", file=err)
    out.write(r.csr_pem)


def cmd_install_cert(args: argparse.Namespace, err: TextIO | None = None) -> int:
    from drivers.clock import SystemClock

    err = err or sys.stderr
    try:
        cert = args.cert.read_bytes()
        ca = args.ca.read_bytes() if args.ca is not None else None
        done = provision.install_certificate(args.config, cert, SystemClock(), ca,
                                             _owner(args.user, err))
    except ConfigError as e:
        print(f"vigil: config error: {e}", file=err)
        return config.EX_CONFIG
    except (provision.ProvisionError, OSError) as e:
        print(f"vigil: certificate not installed: {e}", file=err)
        return 1
    print(f"installed {done.cert_file} ({done.subject}, valid until "
          f"{done.not_after.isoformat()})" + (f"; CA {done.ca_file}" if done.ca_file else ""),
          file=err)
    print("restart the daemon to use it: systemctl restart vigil", file=err)
    return 0


def cmd_console_passwd(args: argparse.Namespace, stdin: TextIO | None = None,
                       out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    try:
        password = _prompt_password(err) if stdin.isatty() else _read_password_stdin(stdin)
        print(console_auth.hash_password(password), file=out)
    except console_auth.PasswordHashError as e:
        print(f"vigil: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


__all__ = ["cmd_console_passwd", "cmd_install_cert", "cmd_provision", "register"]
