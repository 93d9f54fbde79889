#!/usr/bin/env python3
"""Start-up cost: `gfsdeploy --version`, `import gfsdeploy`, the engine's modules, and what
the SSH transport adds (paramiko, and Fabric for comparison).

    python3 bench/startup.py [--runs 15] [--out bench/results/startup.json]

Each command runs RUNS times in a fresh interpreter with byte-code compiled first
(an installed wheel has it; PYTHONDONTWRITEBYTECODE would make every run compile
the sources instead). Reported: the minimum and median wall time, the minimum CPU
time (user+sys, less sensitive to other load on the machine), the bare
interpreter (`python -c pass`, whose site-packages hooks are the environment's,
not gfsdeploy's) and, from `python -X importtime`, gfsdeploy's own import time
and its largest imports.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "python -c pass": ["-c", "pass"],
    "gfsdeploy --version": ["-m", "gfsdeploy", "--version"],
    "import gfsdeploy": ["-c", "import gfsdeploy"],
    "import gfsdeploy.runner (the engine)": ["-c", "import gfsdeploy.runner"],
    "import gfsdeploy.transport.ssh (+paramiko)": ["-c", "import gfsdeploy.transport.ssh"],
    "import paramiko": ["-c", "import paramiko"],
    "import fabric": ["-c", "import fabric"],
    "import networkx": ["-c", "import networkx"],
}


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    e["PYTHONPATH"] = str(ROOT)
    return e


def measure(args: list[str], runs: int) -> dict:
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, *args], env=env(), capture_output=True, cwd=ROOT)
        if proc.returncode != 0 and b"ModuleNotFoundError" in proc.stderr:
            return {"skipped": "not installed"}
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        if proc.returncode != 0:
            return {"error": proc.stderr.decode(errors="replace")[-300:]}
    return {"wall_min_s": round(min(walls), 4), "wall_median_s": round(statistics.median(walls), 4),
            "cpu_min_s": round(min(cpus), 4)}


def importtime(args: list[str], runs: int = 5) -> dict:
    """gfsdeploy's own cumulative import time (top-level gfsdeploy* entries) and the biggest imports."""
    best = None
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-X", "importtime", *args], env=env(), capture_output=True,
                              text=True, cwd=ROOT)
        rows = []
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if m:
                rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
        own = sum(c for c, depth, name in rows if depth <= 1 and name.split(".")[0] in ("gfsdeploy",))
        interpreter = ("site", "encodings", "io", "_frozen_importlib_external", "zipimport", "_signal",
                       "abc", "codecs", "stat", "posixpath", "os", "_sitebuiltins", "genericpath")
        top = sorted(((c, n) for c, depth, n in rows
                      if n.split(".")[0] not in interpreter and not n.startswith("__editable__")
                      and n not in args[-1].split()), reverse=True)[:8]
        if best is None or own < best["gfsdeploy_imports_s"]:
            best = {"gfsdeploy_imports_s": round(own / 1e6, 4),
                    "largest": [{"module": n, "cumulative_s": round(c / 1e6, 4)} for c, n in top]}
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "startup.json"))
    args = parser.parse_args()
    compileall.compile_dir(str(ROOT / "gfsdeploy"), quiet=1)
    results = {}
    for label, argv in CASES.items():
        results[label] = measure(argv, args.runs)
        if label.startswith(("gfsdeploy", "import gfsdeploy")):
            results[label]["importtime"] = importtime(argv)
        print(f"{label:45s} {json.dumps({k: v for k, v in results[label].items() if k != 'importtime'})}")
        if "importtime" in results[label]:
            print(f"{'':45s} gfsdeploy's own imports: {results[label]['importtime']['gfsdeploy_imports_s']} s")
    data = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_before": os.getloadavg(), "runs": args.runs, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"raw results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
