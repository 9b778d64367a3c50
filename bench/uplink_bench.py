"""Runnable uplink + hotlist benchmarks: ``.venv/bin/python bench/uplink_bench.py [--quick]``.

Prints JSON: ``uplink`` (the same figures as ``vigil bench uplink --json``) and ``hotlist``
(1,000,000-entry match bench). ``--only uplink`` or ``--only hotlist`` runs one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware.benchmarks import hotlist, uplink

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=("uplink", "hotlist"))
    a = p.parse_args()
    out = {}
    if a.only in (None, "uplink"):
        out["uplink"] = uplink.run(quick=a.quick)
    if a.only in (None, "hotlist"):
        out["hotlist"] = hotlist.run(quick=a.quick)
    print(json.dumps(out, indent=2))
