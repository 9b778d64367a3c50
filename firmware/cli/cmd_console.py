"""`vigil console-accounts-sign`, `vigil console-service-sign`: the agency's and the vendor's
side of console access, run on their own machines (never on the unit: the unit holds only the
public keys).

Exit status: 0 done, 1 refused (bad input, bad key), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.console import accounts
from storage.roles import ROLES, Role


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
