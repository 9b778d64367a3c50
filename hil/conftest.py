"""The HIL scenarios share the unit tests' fixtures (defined once, in tests/conftest.py)."""

from tests.conftest import broker, pki

__all__ = ["broker", "pki"]
