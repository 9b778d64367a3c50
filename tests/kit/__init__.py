"""The test kit: record builders, a store opener, the plaintext benchmark suite, the crash
writer. Used by tests/, hil/ and bench/; never imported by the product, and not in its wheel
(package discovery in pyproject.toml lists the product packages only)."""

from firmware.benchmarks.workload import make_alert, make_read, random_plate
from tests.kit.stores import open_store

__all__ = ["make_alert", "make_read", "open_store", "random_plate"]
