#!/usr/bin/env python3
"""Start-up cost: `gfsdeploy --version`, `import gfsdeploy`, the engine's modules, and what
the SSH transport adds (paramiko, and Fabric for comparison).

    python3 bench/startup.py [--runs 15] [--out bench/results/startup.json]

Each command runs RUNS times in a fresh interpreter with byte-code compiled first
(an installed wheel has it; PYTHONDONTWRITEBYTECODE would make every run compile
the sources instead), round-robin over the cases, at real-time priority when run as
root (``chrt -f 50``: on a shared machine nothing then preempts it, so its wall time
is close to an idle machine's). Reported: the minimum and median wall time, the minimum CPU
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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "python -c pass": ["-c", "pass"],
    "gfsdeploy --version": ["-m", "gfsdeploy", "--version"],
    "import gfsdeploy": ["-c", "import gfsdeploy"],
    "import gfsdeploy.cli (every command)": ["-c", "import gfsdeploy.cli"],
    "import gfsdeploy.runner (the engine)": ["-c", "import gfsdeploy.runner"],
    "the engine + session + output (what plan/apply import before loading)":
        ["-c", "import gfsdeploy.cli, gfsdeploy.session, gfsdeploy.output, gfsdeploy.runner"],
    "+ the modules of the bench workload": ["-c", "import gfsdeploy.runner, gfsdeploy.session, gfsdeploy.output\n"
                                           "from gfsdeploy import modules\n"
                                           "[modules.get(m) for m in ('blockinfile', 'copy', 'iptables', 'file', "
                                           "'template')]"],
    "+ every module (engine and content)": ["-c", "import gfsdeploy.runner\nfrom gfsdeploy import modules\n"
                                            "modules.names()"],
    "import gfsdeploy.transport.ssh (+paramiko)": ["-c", "import gfsdeploy.transport.ssh"],
    "import paramiko": ["-c", "import paramiko"],
    "import fabric": ["-c", "import fabric"],
    "gfsdeploy plan: 1 local host, 1 copy task (the whole command)":
        ["-m", "gfsdeploy", "plan", "{tmp}/inventory.yaml", "-p", "{tmp}/playbook.yaml"],
    "what an SSH plan imports (engine, workload modules, paramiko)":
        ["-c", "import gfsdeploy.cli, gfsdeploy.session, gfsdeploy.output, gfsdeploy.runner, "
               "gfsdeploy.transport.ssh\nfrom gfsdeploy import modules\n"
               "[modules.get(m) for m in ('blockinfile', 'copy', 'iptables', 'file', 'template')]"],
}


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    e["PYTHONPATH"] = str(ROOT)
    return e


#: run each child with a real-time priority (root): on a shared, loaded machine its wall time
#: is then close to an idle machine's (nothing preempts it), though the other core's
#: load still competes for caches and memory
REALTIME = ["chrt", "-f", "50"]


def run_once(args: list[str], realtime: bool = False) -> tuple[float, float, str | None]:
    """(wall, cpu, error) of one fresh interpreter running ARGS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([*(REALTIME if realtime else []), sys.executable, *args], env=env(), capture_output=True,
                          cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    error = None
    if proc.returncode not in (0, 2):  # (2: a plan with changes)
        error = "not installed" if b"ModuleNotFoundError" in proc.stderr else \
            proc.stderr.decode(errors="replace")[-300:]
    return wall, cpu, error


def measure_all(cases: dict, runs: int, realtime: bool = False) -> dict:
    """Every case RUNS times, round-robin (a burst of load on the shared machine then
    hits every case alike, not one of them)."""
    walls: dict = {k: [] for k in cases}
    cpus: dict = {k: [] for k in cases}
    errors: dict = {}
    for _ in range(runs):
        for label, argv in cases.items():
            if label in errors:
                continue
            wall, cpu, error = run_once(argv, realtime)
            if error:
                errors[label] = error
                continue
            walls[label].append(wall)
            cpus[label].append(cpu)
    out = {}
    for label in cases:
        if label in errors:
            out[label] = {"skipped" if errors[label] == "not installed" else "error": errors[label]}
            continue
        out[label] = {"wall_min_s": round(min(walls[label]), 4),
                      "wall_median_s": round(statistics.median(walls[label]), 4),
                      "cpu_min_s": round(min(cpus[label]), 4),
                      "cpu_median_s": round(statistics.median(cpus[label]), 4)}
    return out


def importtime(args: list[str], runs: int = 5, realtime: bool = False) -> dict:
    """gfsdeploy's own cumulative import time (top-level gfsdeploy* entries) and the biggest imports."""
    best = None
    for _ in range(runs):
        proc = subprocess.run([*(REALTIME if realtime else []), sys.executable, "-X", "importtime", *args],
                              env=env(), capture_output=True,
                              text=True, cwd=ROOT)
        rows = []
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if m:
                rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
        own = sum(c for c, depth, name in rows if depth <= 1 and name.split(".")[0] in ("gfsdeploy",))
        every = sum(c for c, depth, name in rows if depth <= 1 and not name.startswith("__editable__")
                    and name not in ("site", "encodings", "zipimport", "_frozen_importlib_external", "io",
                                     "abc", "codecs", "_signal", "_sitebuiltins", "posixpath", "os",
                                     "stat", "genericpath", "_distutils_hack", "certifi",
                                     "importlib.readers", "importlib.util", "importlib.machinery"))
        interpreter = ("site", "encodings", "io", "_frozen_importlib_external", "zipimport", "_signal",
                       "abc", "codecs", "stat", "posixpath", "os", "_sitebuiltins", "genericpath")
        top = sorted(((c, n) for c, depth, n in rows
                      if n.split(".")[0] not in interpreter and not n.startswith("__editable__")
                      and n not in args[-1].split()), reverse=True)[:8]
        if best is None or own < best["gfsdeploy_imports_s"]:
            best = {"gfsdeploy_imports_s": round(own / 1e6, 4), "all_imports_s": round(every / 1e6, 4),
                    "largest": [{"module": n, "cumulative_s": round(c / 1e6, 4)} for c, n in top]}
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "startup.json"))
    parser.add_argument("--no-realtime", action="store_true",
                        help="do not run the children at real-time priority (default when root and chrt exist)")
    args = parser.parse_args()
    realtime = not args.no_realtime and os.geteuid() == 0 and shutil.which("chrt") is not None
    compileall.compile_dir(str(ROOT / "gfsdeploy"), quiet=1)
    compileall.compile_dir(str(ROOT / "gfsdeploy_glusterfs"), quiet=1)
    tmp = tempfile.mkdtemp(prefix="gfs-startup-")
    Path(tmp, "inventory.yaml").write_text("all:\n  hosts:\n    local:\n      ansible_connection: local\n"
                                           f"      gfsdeploy_lock_dir: {tmp}/lock\n")
    Path(tmp, "playbook.yaml").write_text("- hosts: all\n  tasks:\n    - copy:\n        dest: " + tmp +
                                          "/out.txt\n        content: \"hello\\n\"\n")
    cases = {label: [a.replace("{tmp}", tmp) for a in argv] for label, argv in CASES.items()}
    load_before = os.getloadavg()
    results = measure_all(cases, args.runs, realtime)
    for label, argv in cases.items():
        if label != "python -c pass" and "cpu_min_s" in results[label]:
            results[label]["importtime"] = importtime(argv, realtime=realtime)
        shown = {k: v for k, v in results[label].items() if k != "importtime"}
        print(f"{label}\n    {json.dumps(shown)}")
        if "importtime" in results[label]:
            it = results[label]["importtime"]
            print(f"    imports (-X importtime, min): all {it['all_imports_s']} s, gfsdeploy's own "
                  f"{it['gfsdeploy_imports_s']} s")
    data = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
            "runs": args.runs, "realtime_priority": realtime, "method": "each case RUNS times round-robin in a fresh interpreter, byte-code "
                                         "compiled; CPU = user+sys of the child; importtime: min over 5 runs",
            "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, indent=1) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"raw results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
