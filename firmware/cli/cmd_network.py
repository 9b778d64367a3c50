"""`vigil unit-network`: the sandbox's IP allow-list drop-in, derived from the configuration."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any


def cmd_unit_network(args: argparse.Namespace) -> int:
    from drivers import files
    from firmware import config
    from firmware.app import ip_allow

    try:
        settings = config.resolve(args.config)
    except config.ConfigError as e:
        print(f"vigil: config error: {e}", file=sys.stderr)
        return config.EX_CONFIG
    hosts = ip_allow.endpoint_hosts(settings)
    try:
        addresses = ip_allow.allow_list(hosts, ip_allow.nameservers())
    except (OSError, socket.gaierror) as e:
        print(f"vigil unit-network: cannot resolve the endpoints: {e}", file=sys.stderr)
        return 1
    text = ip_allow.dropin(addresses, hosts)
    if args.write is None:
        sys.stdout.write(text)
        return 0
    files.write_atomic(Path(args.write), text.encode(), 0o644)
    print(f"{args.write}: {len(addresses)} addresses; run `systemctl daemon-reload` and restart")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("unit-network", help="print (or --write) the IPAddressAllow= drop-in "
                       "for vigil.service, derived from the configured endpoints")
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--write", nargs="?", const="/etc/systemd/system/vigil.service.d/network.conf",
                   default=None, metavar="PATH",
                   help="write the drop-in (default path: the unit's drop-in directory)")
    p.set_defaults(func=cmd_unit_network)
