import sys

import pytest

from firmware.app import malloc_tuning


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_accepts_every_setting() -> None:
    # mallopt returns 0 for a parameter it does not know: a wrong constant fails here.
    assert malloc_tuning.tune() is True


def test_without_mallopt_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc_tuning.ctypes.util, "find_library", lambda name: None)
    assert malloc_tuning.tune() is False
