"""Fixtures shared by the unit tests (and, through hil/conftest.py, the HIL scenarios).

Builders and helpers that are not fixtures live in ``tests.kit``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil import mosquitto as mq
from hil.certs import TestPki, make_test_pki
from storage.store import Store
from tests.kit import open_store


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A CA, a server and a client certificate (mutual TLS), one set per test module."""
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An encrypted store on a fresh file, default settings, fake clock, closed afterwards."""
    s = open_store(tmp_path / "s.db")
    yield s
    s.close()


@pytest.fixture(scope="module")
def broker(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[mq.Mosquitto]:
    """A real Mosquitto on loopback: TLS, client certificates required, per-unit ACL
    (hil/mosquitto.py). Installed with apt-get when absent; skipped, with the reason, only where
    that cannot be done."""
    binary = mq.mosquitto_binary()
    if binary is None:
        pytest.skip(mq.MISSING_REASON)
    with mq.Mosquitto(pki, tmp_path_factory.mktemp("mosquitto"), binary) as b:
        yield b
