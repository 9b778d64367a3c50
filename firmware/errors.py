"""Errors of the daemon layer."""

from __future__ import annotations

from drivers.errors import VigilError


class FirmwareError(VigilError):
    """Root of the firmware package's errors."""


class ConfigError(FirmwareError, ValueError):
    """The configuration is invalid. The message names the file and the key."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        super().__init__(message)


class SelfTestError(FirmwareError, RuntimeError):
    """A start-up self-test failed (models, store or camera), so READY is never sent."""


class ControlError(FirmwareError, ConnectionError):
    """The local control socket could not be reached or answered badly."""
