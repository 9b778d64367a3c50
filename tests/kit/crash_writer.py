"""The crash-safety writer process of tests/test_storage_crash.py.

``python -m tests.kit.crash_writer DB KEK_HEX SEED`` writes reads forever and prints each
read_id on stdout (flushed) only after ``put_read`` returned: the line is the acknowledgement a
SIGKILL test checks against.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from drivers.clock import SystemClock
from storage.keys import MemoryKeySource
from tests.kit import make_alert, make_read, open_store


def crash_writer(db: str, kek_hex: str, seed: int) -> None:
    rng = random.Random(seed)
    keys = MemoryKeySource(bytes.fromhex(kek_hex))
    store = open_store(Path(db), keys, SystemClock(), checkpoint_every=7, group_commit_max=64)
    i = 0
    while True:
        read = make_read(
            rng, crop_bytes=rng.choice((0, 2000, 20000)), overview_bytes=rng.choice((0, 0, 30000))
        )
        alerts = [make_alert(read, rng=rng)] if i % 9 == 0 else []
        store.put_read(read, alerts)
        sys.stdout.write(read.read_id + "\n")
        sys.stdout.flush()
        if i % 5 == 0:
            store.audit("tester", "technician", "console.command", "crash test", "ok", {"i": i})
        if i % 11 == 0:
            batch = store.next_outbox_batch(5, 1 << 20)
            store.mark_sent([b.item_id for b in batch])
        i += 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python -m tests.kit.crash_writer DB KEK_HEX SEED")
    crash_writer(sys.argv[1], sys.argv[2], int(sys.argv[3]))
