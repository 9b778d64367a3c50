"""Console access from the command line.

* `vigil console-accounts-sign`, `vigil console-service-sign`, `vigil console-keygen`: the
  agency's and the vendor's side, run on their own machines (the unit holds only public keys);
* `vigil console-user add|remove|list`: the unit's own account list, for a local administrator
  (root or the service user) on the unit. Every change is written to the audit chain *before*
  the list is replaced (the actor is `cli:<login name>`), and the list is MACed under a key
  derived from the unit's KEK, so it cannot be edited on the card without the key.

Exit status: 0 done, 1 refused (bad input, bad key), 2 usage, 78 bad config.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.console import accounts
from firmware.console import auth as console_auth
from storage.roles import ROLES, Role

#: ``config path -> (settings, open store)``, supplied by ``firmware.cli.main``.
SettingsAndStore = Callable[[Path | None], tuple[Any, Any]]


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             settings_and_store: SettingsAndStore) -> None:
    a = subparsers.add_parser(
        "console-accounts-sign", help="sign a per-person console account list (agency/vendor)",
        description="Reads lines 'NAME ROLE HASH' (hashes from `vigil console-passwd`) and "
        "writes the signed list for [console] accounts_file. Roles: " + ", ".join(ROLES) + ".")
    a.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    a.add_argument("--version", type=int, required=True,
                   help="list version (raise it with every change)")
    a.add_argument("list", type=Path, help="the unsigned list ('-' for stdin)")
    a.set_defaults(func=cmd_accounts_sign)

    s = subparsers.add_parser(
        "console-service-sign", help="answer a unit's field-service challenge (vendor)",
        description="Prints the line to type at the unit's 'response:' prompt.")
    s.add_argument("--key", type=Path, required=True, help="the vendor's Ed25519 private key")
    s.add_argument("--person", required=True, help="the field engineer's login name")
    s.add_argument("--role", choices=ROLES, default=Role.TECHNICIAN.value)
    s.add_argument("challenge", help="the challenge the unit shows")
    s.set_defaults(func=cmd_service_sign)

    k = subparsers.add_parser(
        "console-keygen", help="make an Ed25519 key pair for signing console access",
        description="Writes the private key (PEM, 0600) and prints the public key for "
        "[console] accounts_key or service_key.")
    k.add_argument("--out", type=Path, required=True, help="private key file to create")
    k.set_defaults(func=cmd_keygen)

    u = subparsers.add_parser(
        "console-user", help="add, remove or list people in the unit's own console accounts",
        description="The unit's own account list (beside the signed one): each change is "
        "audited before it is made. Passwords come from stdin (asked twice on a terminal).")
    u.add_argument("--config", type=Path, help="config file (default: as `vigil run`)")
    usub = u.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add", help="add a person, or set their role and password")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    rm = usub.add_parser("remove", help="remove a person")
    rm.add_argument("name")
    usub.add_parser("list", help="names and roles")
    u.set_defaults(func=lambda a: cmd_console_user(a, settings_and_store))


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise accounts.AccountError(f"cannot read private key {path}: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise accounts.AccountError(f"{path} is not an Ed25519 private key")
    return key


def cmd_accounts_sign(args: argparse.Namespace, out: TextIO | None = None,
                      err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        text = sys.stdin.read() if str(args.list) == "-" else args.list.read_text("utf-8")
        rows = [tuple(line.split()) for line in text.splitlines() if line.strip()]
        if any(len(r) != 3 for r in rows):
            raise accounts.AccountError("each line must be 'NAME ROLE HASH'")
        key = _private_key(args.key)
        blob = accounts.sign_accounts(key, args.version, [(r[0], r[1], r[2]) for r in rows],
                                      datetime.now(UTC))
        accounts.parse_accounts(blob, key.public_key())  # the unit's own check, before shipping
    except (OSError, accounts.AccountError) as e:
        print(f"vigil: {e}", file=err)
        return 1
    out.write(blob.decode("utf-8"))
    return 0


def cmd_service_sign(args: argparse.Namespace, out: TextIO | None = None,
                     err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        line = accounts.sign_service_response(_private_key(args.key), args.challenge,
                                              args.person, Role(args.role))
    except accounts.AccountError as e:
        print(f"vigil: {e}", file=err)
        return 1
    print(line, file=out)
    return 0


def cmd_keygen(args: argparse.Namespace, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    from drivers import files

    out, err = out or sys.stdout, err or sys.stderr
    if args.out.exists():
        print(f"vigil: {args.out} exists; not overwritten", file=err)
        return 1
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    files.write_atomic(args.out, pem, 0o600)
    print(accounts.public_key_text(key), file=out)
    return 0


def cmd_console_user(args: argparse.Namespace, settings_and_store: SettingsAndStore,
                     stdin: TextIO | None = None, out: TextIO | None = None,
                     err: TextIO | None = None) -> int:
    from drivers import files
    from firmware.cli.cmd_provision import _prompt_password, _read_password_stdin

    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    settings, store = settings_and_store(args.config)
    state_dir = Path(settings.unit.resolved_state_dir())
    path = state_dir / accounts.LOCAL_FILE
    with store:
        key = store.derive_key(accounts.LOCAL_KEY_PURPOSE)
        try:
            current = (accounts.parse_local_accounts(path.read_bytes(), key) if path.exists()
                       else None)
            rows = accounts.rows_of(current) if current is not None else []
            if args.action == "list":
                for name, listed_role, _hash in rows:
                    print(f"{name} {listed_role}", file=out)
                return 0
            others = [r for r in rows if r[0] != args.name]
            role: str | None
            if args.action == "remove":
                if len(others) == len(rows):
                    raise accounts.AccountError(f"no account {args.name!r} in {path}")
                rows, role = others, None
            else:
                password = (_prompt_password(err) if stdin.isatty()
                            else _read_password_stdin(stdin))
                role = args.role
                rows = [*others, (args.name, role, console_auth.hash_password(password))]
            # Above the floor too: after a damaged file was deleted, a new list must still be
            # newer than every one the console has accepted.
            floor = store.version_floors().get(accounts.FLOOR_PREFIX + "local")
            version = max(current.version if current is not None else 0, floor) + 1
            blob = accounts.seal_local_accounts(key, version, rows, datetime.now(UTC))
            accounts.parse_local_accounts(blob, key)  # what the console will check
        except (OSError, accounts.AccountError, console_auth.PasswordHashError) as e:
            print(f"vigil: {e}", file=err)
            return 1
        except KeyboardInterrupt:
            return 130
        action = "console.account_added" if args.action == "add" else "console.account_removed"
        detail = {"name": args.name, "role": role, "version": version}
        actor = f"cli:{getpass.getuser()}"
        # Audited first: a change that cannot be audited is not made.
        store.audit(actor, "admin", action, "local admin command", "ok", detail)
        try:
            # As root, the file goes to the daemon's user (the owner of its state directory).
            owner = state_dir.stat() if os.geteuid() == 0 else None
            files.write_atomic(path, blob, 0o600, uid=owner.st_uid if owner else -1,
                               gid=owner.st_gid if owner else -1)
        except OSError as e:
            store.audit(actor, "admin", action, "local admin command", "failed",
                        {**detail, "error": str(e)})
            print(f"vigil: cannot write {path}: {e}", file=err)
            return 1
    print(f"{path}: version {version}, {len(rows)} account(s)", file=err)
    return 0
