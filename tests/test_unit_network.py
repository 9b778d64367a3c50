"""The sandbox's IP allow-list (IPAddressDeny=any in vigil.service) derived from the
configuration by `vigil unit-network`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from firmware import config
from firmware.app import ip_allow

ROOT = Path(__file__).resolve().parents[1]
TLS = ('ca_file = "/etc/vigil/ca.pem"\ncert_file = "/etc/vigil/c.pem"\n'
       'key_file = "/etc/vigil/k.pem"\n')


def _settings(tmp_path: Path, extra: str) -> config.Settings:
    cfg = tmp_path / "vigil.toml"
    cfg.write_text(config.SIMULATION_CONFIG.read_text() + extra)
    return config.load(cfg)


def test_hosts_come_from_the_configured_endpoints(tmp_path: Path) -> None:
    s = _settings(tmp_path,
                  '[uplink]\nendpoint = "https://ingest.agency.example:8443/x"\n' + TLS)
    assert ip_allow.endpoint_hosts(s) == ["ingest.agency.example"]
    assert ip_allow.endpoint_hosts(config.simulation_defaults()) == []


def test_allow_list_resolves_names_keeps_addresses_and_adds_dns() -> None:
    fake = {"ingest.agency.example": ["203.0.113.7", "2001:db8::7"]}
    got = ip_allow.allow_list(["ingest.agency.example", "198.51.100.2"],
                              ["127.0.0.53", "192.0.2.53", "fe80::1%eth0", "junk"],
                              resolver=fake.__getitem__)
    assert got == ["192.0.2.53", "198.51.100.2", "203.0.113.7", "2001:db8::7", "fe80::1"]
    text = ip_allow.dropin(got, ["ingest.agency.example"])
    assert "[Service]\nIPAddressAllow=192.0.2.53 198.51.100.2" in text


def test_cli_prints_the_dropin(tmp_path: Path) -> None:
    cfg = tmp_path / "vigil.toml"
    cfg.write_text(config.SIMULATION_CONFIG.read_text()
                   + '[uplink]\nendpoint = "https://192.0.2.10/"\n' + TLS)
    out = subprocess.run([sys.executable, "-m", "firmware.cli", "unit-network", "--config",
                          str(cfg), "--write", str(tmp_path / "network.conf")], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert "network.conf" in out.stdout
    text = (tmp_path / "network.conf").read_text()
    assert "IPAddressAllow=" in text and "192.0.2.10" in text
