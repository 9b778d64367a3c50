"""The one error root of Vigil.

It lives in ``drivers`` because that is the bottom layer every other package may import
(firmware -> inference / storage / ota -> drivers). Each package hangs its own subtree off
:class:`VigilError`; where an error also matches a builtin category it inherits that too, so
callers can catch either (``ConfigError(VigilError, ValueError)``).
"""

from __future__ import annotations


class VigilError(Exception):
    """Root of every error Vigil raises on purpose."""


class DriverError(VigilError):
    """A hardware driver failed (device missing, I/O error, timeout)."""


class DeviceTimeout(DriverError, TimeoutError):
    """A device did not answer within its deadline."""
