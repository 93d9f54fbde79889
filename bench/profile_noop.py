#!/usr/bin/env python3
"""Where a gfsdeploy no-op `apply` spends its time (the profile in docs/BENCHMARKS.md).

    sudo python3 bench/profile_noop.py INVENTORY [--top 25]

INVENTORY must already be converged (e.g. `bench/run.py --keep` leaves the lab
applied; its inventory is /run/gfsdeploy-lab/gfsbench/bench-inventory.yaml).
Prints: the interpreter+import cost (`python -X importtime`), a wall-clock
split of the run (imports, loading, SSH connect, the batched read, the rest),
and cProfile's top entries with the worker threads' profiles merged in (plain
cProfile only sees the main thread, which just waits for the workers).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = str(ROOT / "bench" / "workload.yaml")


def importtime(inventory: str) -> list[tuple[int, str]]:
    """(cumulative µs, module) of the top-level imports of `python -m gfsdeploy apply`."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "gfsdeploy", "apply", inventory, "-p", PLAYBOOK,
                          "--json"], capture_output=True, text=True, cwd=ROOT)
    rows = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 1:  # top level only
            rows.append((int(m.group(2)), m.group(4)))
    return sorted(rows, reverse=True)


def wall(argv: list[str], n: int = 3) -> str:
    """Median wall time and median CPU (user+sys of the child) of ``n`` runs."""
    times, cpus = [], []
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return f"{sorted(times)[n // 2]:.3f}s wall, {sorted(cpus)[n // 2]:.3f}s CPU (median of {n})"


def profile(inventory: str, top: int) -> str:
    """cProfile of an in-process no-op apply, one profiler per worker thread, merged."""
    sys.path.insert(0, str(ROOT))
    main_prof = cProfile.Profile()
    main_prof.enable()
    from gfsdeploy import cli, runner
    from gfsdeploy.transport import ssh

    profiles, timings, lock = [], {"connect": [], "read": []}, threading.Lock()
    execute, connect, read_many = runner.Runner._execute, ssh.SSHTransport.connect, ssh.SSHTransport.read_many

    def timed(kind, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                with lock:
                    timings[kind].append(time.perf_counter() - t0)
        return wrapper

    def profiled_execute(self, step):
        prof = cProfile.Profile()
        prof.enable()
        try:
            return execute(self, step)
        finally:
            prof.disable()
            with lock:
                profiles.append(prof)

    runner.Runner._execute = profiled_execute
    ssh.SSHTransport.connect = timed("connect", connect)
    ssh.SSHTransport.read_many = timed("read", read_many)
    t0 = time.perf_counter()
    sys.stdout = io.StringIO()
    try:
        rc = cli.main(["apply", inventory, "-p", PLAYBOOK, "--json"])
    finally:
        sys.stdout = sys.__stdout__
    total = time.perf_counter() - t0
    main_prof.disable()
    stats = pstats.Stats(main_prof)
    for prof in profiles:
        stats.add(prof)
    buf = io.StringIO()
    stats.stream = buf
    stats.sort_stats("tottime").print_stats(top)
    buf.write("\n--- by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(top)
    head = (f"in-process no-op apply: rc={rc}, {total:.3f}s after imports; "
            f"connect per host (max) {max(timings['connect'], default=0):.3f}s, "
            f"batched read per host (max) {max(timings['read'], default=0):.3f}s, "
            f"{len(timings['read'])} read(s), {len(profiles)} step(s)\n")
    return head + buf.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inventory")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    inv = os.path.abspath(args.inventory)
    # as installed: bytecode cached (PYTHONDONTWRITEBYTECODE would compile every module each run)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    print(f"machine load: {os.getloadavg()[0]:.1f} (1 min)")
    print(f"python startup alone: {wall([sys.executable, '-c', 'pass'])}")
    print(f"`python -m gfsdeploy --version`: {wall([sys.executable, '-m', 'gfsdeploy', '--version'])}")
    print(f"no-op `gfsdeploy apply --json`: {wall([sys.executable, '-m', 'gfsdeploy', 'apply', inv, '-p', PLAYBOOK, '--json'])}")
    rows = importtime(inv)
    print(f"\n-X importtime, top-level imports (total {sum(us for us, _ in rows) / 1e6:.3f}s):")
    for us, mod in rows[:15]:
        print(f"  {us / 1000:8.1f} ms  {mod}")
    print()
    print(profile(inv, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
