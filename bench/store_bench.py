"""Runnable store benchmark: ``.venv/bin/python bench/store_bench.py [--quick]`` (JSON out).

The same figures as ``vigil bench store --json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware.benchmarks.store import run  # noqa: E402

if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
