"""The IP allow-list of the unit's sandbox, derived from the configuration.

``vigil.service`` denies every IP address (``IPAddressDeny=any``) but loopback. The addresses
the daemon must reach come from its configuration, so the list is derived from it and installed
as a drop-in (``/etc/systemd/system/vigil.service.d/network.conf``) by ``vigil unit-network``:

* the hosts of ``[uplink] endpoint`` (HTTPS: reads, alerts, hotlists, audit heads) and
  ``[uplink] mqtt_broker``, and of ``[ota] repository`` when OTA is enabled;
* the DNS servers of ``/etc/resolv.conf`` that are not loopback (names are resolved by the
  daemon's own process, so its queries must get out).

A name is resolved when the drop-in is written: an endpoint whose addresses change needs the
drop-in written again (``vigil unit-network --write`` then ``systemctl daemon-reload``), or the
agency publishes fixed addresses. An endpoint given as an IP address is taken as is.
Pure apart from :func:`resolve` and :func:`nameservers`, which the caller passes in.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from firmware import config

DROPIN = Path("/etc/systemd/system/vigil.service.d/network.conf")


def endpoint_hosts(settings: config.Settings) -> list[str]:
    """Host names (or addresses) the configuration sends to, in a stable order."""
    urls = [settings.uplink.endpoint, settings.uplink.mqtt_broker]
    if settings.ota.enabled:
        urls.append(settings.ota.repository)
    hosts = [urlsplit(u).hostname for u in urls if u]
    return sorted({h for h in hosts if h})


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to now (system resolver)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return []
    return [ln.split()[1] for ln in lines if ln.startswith("nameserver") and len(ln.split()) > 1]


def allow_list(hosts: Iterable[str], dns: Iterable[str],
               resolver: Callable[[str], list[str]] = resolve) -> list[str]:
    """The addresses to allow: each host's (an address is kept as is), and the non-loopback
    DNS servers. Sorted, no duplicates; loopback is already allowed by the unit."""
    out: set[str] = set()
    for h in hosts:
        try:
            out.add(str(ipaddress.ip_address(h)))
        except ValueError:
            out.update(resolver(h))
    for d in dns:
        try:
            addr = ipaddress.ip_address(d.split("%")[0])
        except ValueError:
            continue
        if not addr.is_loopback:
            out.add(str(addr))
    return sorted(out, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))


def dropin(addresses: list[str], hosts: list[str]) -> str:
    """The drop-in's text."""
    lines = ["# Written by `vigil unit-network` from the configuration; write it again when an",
             "# endpoint's addresses change. Hosts: " + (", ".join(hosts) or "none"),
             "[Service]"]
    if addresses:
        lines.append("IPAddressAllow=" + " ".join(addresses))
    return "\n".join(lines) + "\n"
