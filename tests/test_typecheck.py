"""The product packages stay ``mypy --strict`` clean (settings in pyproject's [tool.mypy]).

Like tests/test_lint.py for ruff: firmware, storage, inference and drivers (and what they import)
are checked on every test run, so a misspelt settings field or an untyped seam fails here.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_mypy_strict_clean() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (install the dev extra)")
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_misspelt_setting_is_a_type_error(tmp_path: Path) -> None:
    """The typed Settings: ``settings.camera.backnd`` no longer passes as ``Any``."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (install the dev extra)")
    probe = tmp_path / "probe.py"
    probe.write_text("from firmware import config\n\n\n"
                     "def f(s: config.Settings) -> str:\n"
                     "    return s.camera.backnd\n")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--follow-imports=silent", str(probe)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1 and 'has no attribute "backnd"' in proc.stdout, proc.stdout
