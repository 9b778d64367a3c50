"""Runnable store benchmark: ``.venv/bin/python bench/store_bench.py [--quick]`` (JSON out).

The figures of ``vigil bench store --json`` plus the plaintext baseline (``plaintext_reads_per_s``,
``encryption_cost_ratio``): the same store code with the test kit's plaintext cipher suite,
which the product does not ship.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware.benchmarks.store import run
from tests.kit.plaintext import PlainSuite

if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:], plaintext_suite=PlainSuite()), indent=2))
