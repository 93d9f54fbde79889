#!/usr/bin/env python3
"""Where the controller's CPU goes in one `bench/controller.py one` measurement.

    pip install py-spy                                   # a sampling profiler (not a dependency)
    python3 bench/profile_controller.py --size 1000 --phase noop [--top 40]
    python3 bench/profile_controller.py --raw /tmp/x.txt --callees Runner._refresh --depth 2

Runs the measurement under ``py-spy record --gil`` (only the thread holding the
GIL is sampled, so the shares are shares of the controller's Python CPU, not of
threads waiting) and keeps only the samples of what `one` measures: the CLI's
``main`` and the runner's worker threads (the harness loading recordings and
writing the inventory is left out). Prints self and inclusive shares per
function; ``--callees NAME`` splits NAME's inclusive share by what it calls.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
_LOCATION = re.compile(r" \((.*)\)$")


def record(size: int, phase: str, rate: int, out: str) -> None:
    cmd = ["py-spy", "record", "--gil", "-r", str(rate), "-f", "raw", "-o", out, "--",
           sys.executable, str(BENCH / "controller.py"), "one", "--size", str(size), "--phase", phase]
    subprocess.run(cmd, check=True)


def stacks(raw: str):
    """(frames as 'function (file)', count) of the measured samples only."""
    for line in Path(raw).read_text().splitlines():
        if not line.strip():
            continue
        stack, n = line.rsplit(" ", 1)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        names = [f.split(" (")[0] for f in frames]
        if "_worker" in names or "StepScheduler._work" in names or any(f.startswith("main (") and "gfsdeploy/cli.py" in f for f in frames):
            yield [_short(f) for f in frames], int(n)


def _short(frame: str) -> str:
    m = _LOCATION.search(frame)
    if not m:
        return frame
    path = m.group(1)
    for cut in ("/gfsdeploy/", "/gfsdeploy_glusterfs/", "/lib/python3"):
        if cut in path:
            path = path[path.index(cut) + 1:]
            break
    return frame[: m.start()] + f" ({path})"


def report(raw: str, top: int, callees: str | None, depth: int) -> None:
    self_c, incl, split = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for frames, n in stacks(raw):
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
        if callees:
            names = [f.split(" (")[0] for f in frames]
            if callees in names:
                i = len(names) - 1 - names[::-1].index(callees)
                split[" > ".join(names[i + 1:i + 1 + depth]) or "<self>"] += n
    if not total:
        raise SystemExit(f"{raw}: no sample of the measured region")
    print(f"{total} samples of the measured region")
    if callees:
        whole = sum(split.values())
        print(f"--- {callees}: {whole * 100 / total:.1f}% inclusive, split by callee")
        for k, v in split.most_common(top):
            print(f"{v * 100 / total:5.1f}% {k}")
        return
    print("--- self")
    for k, v in self_c.most_common(top):
        print(f"{v * 100 / total:5.1f}% {k}")
    print("--- inclusive")
    for k, v in incl.most_common(top):
        print(f"{v * 100 / total:5.1f}% {k}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--phase", choices=("noop", "plan", "first"), default="noop")
    p.add_argument("--rate", type=int, default=200, help="samples per second (default 200)")
    p.add_argument("--raw", help="py-spy raw output: read it instead of recording (or where to keep it)")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--callees", help="a function name (e.g. Runner._refresh): split its share by callee")
    p.add_argument("--depth", type=int, default=1)
    args = p.parse_args(argv)
    raw = args.raw
    if not raw or not Path(raw).exists():
        raw = raw or tempfile.mkstemp(prefix="gfsctl-prof-", suffix=".txt")[1]
        record(args.size, args.phase, args.rate, raw)
        print(f"raw samples: {raw}", file=sys.stderr)
    report(raw, args.top, args.callees, args.depth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
