#!/usr/bin/env python3
"""What this machine charges for waking a thread: the same piece of Python work, run
back to back and run with a wait between pieces, measured in CPU per piece.

    python3 bench/wake_cost.py [--pieces 300] [--out bench/results/wake-cost-….json]

The controller benchmark (bench/controller.py) waits a simulated round trip per host
(20 ms) while other workers run; a core left idle during a wait runs the next piece
slower (on the virtual machine these figures were measured on, ~40-70 % slower for a
1.3 ms piece). This separates that cost from the controller's own: the work is the
same in every row, only the waits differ. No gfsdeploy code runs here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def piece() -> int:
    """~1 ms of dict and str work (what a host's plan is made of, roughly)."""
    d: dict = {}
    total = 0
    for i in range(6000):
        d[str(i)] = i * 2
        total += len(str(i))
    return total


def measure(pieces: int, wait: float, how: str) -> float:
    """CPU milliseconds per piece, the pieces run on one thread with ``wait`` between them."""
    event = threading.Event()
    out = {}

    def loop():
        t0 = time.thread_time()
        for _ in range(pieces):
            piece()
            if wait:
                event.wait(wait) if how == "event" else time.sleep(wait)
        out["cpu"] = time.thread_time() - t0

    thread = threading.Thread(target=loop)
    thread.start()
    thread.join()
    return out["cpu"] / pieces * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    cases = [("back to back", 0.0, "event"), ("20 ms wait (Event.wait)", 0.02, "event"),
             ("20 ms wait (sleep)", 0.02, "sleep"), ("2 ms wait (sleep)", 0.002, "sleep")]
    rows = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):  # (alternated: the machine's speed drifts)
        for name, wait, how in cases:
            rows[name].append(round(measure(args.pieces, wait, how), 3))
    base = statistics.median(rows["back to back"])
    result = {"started": time.strftime("%Y%m%d-%H%M%S"), "pieces": args.pieces,
              "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
              "cpu_ms_per_piece": rows,
              "median_over_back_to_back": {k: round(statistics.median(v) / base, 3) for k, v in rows.items()}}
    for name, values in rows.items():
        print(f"{name:26s} {statistics.median(values):6.3f} ms CPU per piece  "
              f"x{result['median_over_back_to_back'][name]:.2f}")
    path = args.out or BENCH / "results" / f"wake-cost-{result['started']}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"raw results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
