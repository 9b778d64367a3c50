"""Merge the reviewed contact sheets into the committed labels (training/realscenes/plates.jsonl).

Every plate gets the text a person read on its contact sheet (``-`` = unreadable, stored as
``null``), its region, both recognizers' proposals, and how the label was reached: ``consensus``
(both recognizers agreed and the person confirmed it), ``eye`` (the person's reading differs from
at least one recognizer) or ``unreadable``.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.merge --work training/work/realscenes
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

LABELS = Path(__file__).resolve().parent / "plates.jsonl"
REGIONS = {"us", "eu", "br", "other", "unknown"}
TEXT = re.compile(r"^[A-Z0-9]{1,10}$")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    a = p.parse_args()
    cands = {}
    for line in (a.work / "candidates.jsonl").read_text().splitlines():
        r = json.loads(line)
        cands[r["id"]] = r
    reviewed: dict[str, tuple[str | None, str]] = {}
    for f in sorted((a.work / "review").glob("sheet_*.tsv")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise SystemExit(f"{f}:{n}: want id<TAB>text<TAB>region, got {line!r}")
            pid, text, region = (x.strip() for x in parts)
            region = region.lower()
            if pid not in cands or region not in REGIONS:
                raise SystemExit(f"{f}:{n}: unknown id or region in {line!r}")
            if text != "-" and not TEXT.match(text):
                raise SystemExit(f"{f}:{n}: text must be A-Z0-9 (1-10) or '-', got {text!r}")
            reviewed[pid] = (None if text == "-" else text, region)
    missing = sorted(set(cands) - set(reviewed))
    if missing:
        raise SystemExit(f"{len(missing)} plates not reviewed, e.g. {missing[:5]}")
    methods: Counter[str] = Counter()
    with LABELS.open("w") as out:
        for pid in sorted(cands):
            c = cands[pid]
            text, region = reviewed[pid]
            if text is None:
                method = "unreadable"
            elif c["agree"] and c["paddle"] == text:
                method = "consensus"
            else:
                method = "eye"
            methods[method] += 1
            out.write(
                json.dumps(
                    {
                        "scene": c["scene"],
                        "box_index": c["box_index"],
                        "box": c["box"],
                        "text": text,
                        "region": region,
                        "method": method,
                        "paddle": c["paddle"],
                        "tesseract": c["tesseract"],
                    }
                )
                + "\n"
            )
    print(f"{len(cands)} plates: {dict(methods)} -> {LABELS}")


if __name__ == "__main__":
    main()
