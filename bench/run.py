#!/usr/bin/env python3
"""Benchmark gfsdeploy against ansible-playbook and pyinfra on the local lab.

One command: brings up a lab (gfsdeploy_glusterfs.lab.Lab), runs the same workload with
each tool (bench/workload.yaml for gfsdeploy and ansible-playbook,
bench/pyinfra_deploy.py for pyinfra), times first apply / no-op re-apply / dry
run, and the floor (a parallel `ssh node true`, OpenSSH, no ControlMaster).
Each tool starts from fresh nodes (bench/cleanup.sh through lab.exec) and is
checked afterwards on the first and last node, so a tool that silently did
nothing cannot win. Ratios are computed within each run, then the median over
runs is reported (the machine is shared and noisy).

    sudo python3 bench/run.py --nodes 3 --nodes 30 --runs 5

Prints a markdown table; writes bench/results/<timestamp>.json.
ansible-core and pyinfra are pip-installed into their own venvs under
~/.cache/gfsdeploy-bench/ (never into the project's environment).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("GFSBENCH_CACHE", Path.home() / ".cache" / "gfsdeploy-bench"))
TOOLS = ("gfsdeploy", "pyinfra", "ansible")  # the slowest last: a run stopped midway keeps the others
VENVS = {"ansible": ["ansible-core"], "pyinfra": ["pyinfra", "pyyaml"]}
PHASES = ("first", "noop", "dry")
TEMPLATED_FILES = 20
CHAIN_RULES = 4


# -- tools ---------------------------------------------------------------------------
def ensure_venv(tool: str, log) -> Path:
    """The tool's own venv (created on first use), so the project env stays clean."""
    venv = CACHE / tool
    exe = venv / "bin" / ("ansible-playbook" if tool == "ansible" else "pyinfra")
    if not exe.exists():
        log(f"installing {' '.join(VENVS[tool])} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *VENVS[tool]], check=True)
    return exe


def tool_version(tool: str, exe: Path | None) -> str:
    if tool == "gfsdeploy":
        from gfsdeploy import __version__
        return __version__
    pkg = "ansible-core" if tool == "ansible" else "pyinfra"
    out = subprocess.run([str(exe.parent / "python"), "-c",
                          f"import importlib.metadata as m; print(m.version({pkg!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip()


def _proc_status(pid: int) -> dict:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}


class Timed:
    """A finished child process: wall time, exit code, output, peak RSS (MiB), and the
    most threads its own process had alive at once (sampled every 20 ms from /proc)."""

    def __init__(self, argv, *, env=None, cwd=None, timeout=1800):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            self.threads_max = 0
            done = threading.Event()

            def sample():
                while not done.wait(0.02):
                    n = _proc_status(proc.pid).get("Threads", "").strip()
                    if n.isdigit():
                        self.threads_max = max(self.threads_max, int(n))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                done.set()
                killer.cancel()
            sampler.join()
            self.wall = time.perf_counter() - t0
            proc.returncode = self.rc = os.waitstatus_to_exitcode(status)
            # ru_maxrss of a reaped child: the largest single process of its tree (KiB on Linux)
            self.maxrss_mb = usage.ru_maxrss / 1024
            # CPU of the tool on the controller (user+sys of it and the children it waited for):
            # unlike the wall time, barely moved by the other processes sharing the cores
            self.cpu = usage.ru_utime + usage.ru_stime
            out.seek(0)
            err.seek(0)
            self.stdout = out.read().decode(errors="replace")
            self.stderr = err.read().decode(errors="replace")

    def fail(self, what: str) -> RuntimeError:
        return RuntimeError(f"{what} exited {self.rc}\n--- stdout (tail)\n{self.stdout[-3000:]}"
                            f"\n--- stderr (tail)\n{self.stderr[-3000:]}")


class Gfsdeploy:
    name = "gfsdeploy"

    def __init__(self, lab, inventory: Path, nodes: int, forks: int | None = None):
        self.inv = inventory
        self.forks = forks or max(50, nodes)
        # run as installed: with its bytecode cached, as pip leaves the other tools in
        # their venvs (PYTHONDONTWRITEBYTECODE would compile every module at every run)
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(self, phase: str):
        cmd = "plan" if phase == "dry" else "apply"
        res = Timed([sys.executable, "-m", "gfsdeploy", cmd, str(self.inv), "-p", str(BENCH / "workload.yaml"),
                     "--json", "--forks", str(self.forks)], cwd=ROOT, env=self.env)
        if res.rc not in ((0, 2) if cmd == "plan" else (0,)):
            raise res.fail(f"gfsdeploy {cmd}")
        data = json.loads(res.stdout)
        s = data["summary"]
        rts = [h["round_trips"] for h in data["hosts"].values()]
        if any(h["failed"] or h["unreachable"] for h in data["hosts"].values()):
            raise res.fail(f"gfsdeploy {cmd} (a host failed)")
        return res, {"changed": s["add"] + s["change"] + s["destroy"], "forks": self.forks,
                     "threads_max": res.threads_max,
                     "round_trips_max": max(rts), "round_trips_mean": sum(rts) / len(rts)}


class Ansible:
    name = "ansible"

    def __init__(self, lab, inventory: Path, nodes: int):
        self.exe = ensure_venv("ansible", print)
        self.inv = inventory
        self.tmp = Path(tempfile.mkdtemp(prefix="gfsbench-ansible-"))
        ssh_args = (f"-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={lab.known_hosts_path} "
                    f"-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes")
        self.env = dict(os.environ, ANSIBLE_HOME=str(CACHE / "ansible-home"), ANSIBLE_PIPELINING="True",
                        ANSIBLE_SSH_ARGS=ssh_args, ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.tmp / "cp"),
                        ANSIBLE_FORKS=str(max(5, nodes)), ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
                        ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_RETRY_FILES_ENABLED="False",
                        ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(self.tmp / "local"),
                        ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_SYSTEM_WARNINGS="False")

    def run(self, phase: str):
        argv = [str(self.exe), "-i", str(self.inv), str(BENCH / "workload.yaml")]
        if phase == "dry":
            argv.append("--check")
        res = Timed(argv, env=self.env, cwd=ROOT)
        if res.rc != 0:
            raise res.fail(f"ansible-playbook {phase}")
        recap = re.findall(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                           res.stdout, re.M)
        if not recap or any(int(u) or int(f) for _, _, u, f in recap):
            raise res.fail(f"ansible-playbook {phase} (recap)")
        return res, {"changed": sum(int(c) for _, c, _, _ in recap)}

    def close(self):
        """Stop the ControlPersist masters this run started."""
        for sock in (self.tmp / "cp").glob("*"):
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Pyinfra:
    name = "pyinfra"

    def __init__(self, lab, inventory: Path, nodes: int):
        self.exe = ensure_venv("pyinfra", print)
        self.env = dict(os.environ, GFSBENCH_INVENTORY=str(inventory))
        self.parallel = str(max(5, nodes))

    def run(self, phase: str):
        argv = [str(self.exe), "-y", "--parallel", self.parallel, "bench/pyinfra_inventory.py",
                "bench/pyinfra_deploy.py"]
        if phase == "dry":
            argv.append("--dry")
        res = Timed(argv, env=self.env, cwd=ROOT)
        if res.rc != 0:
            raise res.fail(f"pyinfra {phase}")
        m = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", res.stdout + res.stderr)
        if phase != "dry" and (not m or m.group(3) != "-"):
            raise res.fail(f"pyinfra {phase} (results)")
        changed = int(m.group(2)) if m and m.group(2).isdigit() else 0
        return res, {"changed": changed if phase != "dry" else None}


RUNNERS = {"gfsdeploy": Gfsdeploy, "ansible": Ansible, "pyinfra": Pyinfra}


# -- lab side ------------------------------------------------------------------------
VERIFY = r"""
b='# BEGIN gfsbench storage nodes'; e='# END gfsbench storage nodes'
echo "hosts_lines $(sed -n "/^$b\$/,/^$e\$/p" /etc/hosts | wc -l)"
echo "hosts_sum $(sed -n "/^$b\$/,/^$e\$/p" /etc/hosts | md5sum | cut -c1-12)"
echo "modules_sum $(md5sum < /etc/modules-load.d/gfsbench.conf | cut -c1-12) $(stat -c %a /etc/modules-load.d/gfsbench.conf)"
echo "dir_mode $(stat -c %a /etc/gfsbench)"
echo "files $(ls /etc/gfsbench | grep -c '^file-[0-9]*\.conf$')"
echo "files_sum $(cat $(ls /etc/gfsbench/file-*.conf | sort) | md5sum | cut -c1-12) $(stat -c %a /etc/gfsbench/file-7.conf)"
echo "chain_rules $(iptables -w -S gfsbench | grep -c -- '-j ACCEPT')"
echo "chain_sum $(iptables -w -S gfsbench | sort | md5sum | cut -c1-12)"
echo "input_jump $(iptables -w -S INPUT | grep -c -- '-j gfsbench$')"
"""


def reset(lab) -> None:
    """Undo the workload on every node (not over ssh), so the next first apply is fresh."""
    script = (BENCH / "cleanup.sh").read_text()
    with ThreadPoolExecutor(8) as pool:
        for node, res in zip(lab.nodes, pool.map(lambda n: lab.exec(n.name, ["sh", "-s"], input=script),
                                                 lab.nodes)):
            if res.returncode != 0:
                raise RuntimeError(f"cleanup failed on {node.name}: {res.stderr}")


def verify(lab, tool: str) -> dict:
    """The workload's state on the first and last node; raises if anything is missing."""
    out = {}
    for node in {lab.nodes[0].name, lab.nodes[-1].name}:
        res = lab.exec(node, ["sh", "-c", VERIFY])
        got = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
        want = {"hosts_lines": str(len(lab.nodes) + 2), "files": str(TEMPLATED_FILES),
                "chain_rules": str(CHAIN_RULES), "input_jump": "1", "dir_mode": "755"}
        bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        if bad or not got.get("modules_sum", "").endswith(" 644") or not got.get("files_sum", "").endswith(" 644"):
            raise RuntimeError(f"{tool} did not produce the workload on {node}: {bad or got}")
        out[node] = got
    return out


def floor(lab) -> float:
    """Parallel `ssh node true`: connection set-up + one round trip, OpenSSH, no multiplexing."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*lab.ssh_argv(n.name)[:-1], "-o", "ControlMaster=no", "-o", "ControlPath=none",
                               lab.ssh_argv(n.name)[-1], "true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n in lab.nodes]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"ssh floor failed: {err.decode()[-500:]}")
    return time.perf_counter() - t0


def mem_available_mib() -> float:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) / 1024


def lab_memory(lab) -> dict:
    """What the lab itself holds: the proportional set size (Pss) of every process in the lab's
    network namespaces (nodes' init and sshd, simulators, apt repo) and the host-visible tmpfs
    it mounted (base layer, images). Unlike MemAvailable, other work on the machine does not
    count."""
    inodes = set()
    for ns in [lab.netns] + [n.netns for n in lab.nodes]:
        try:
            inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
        except OSError:
            pass
    pss_kb = count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino not in inodes:
                continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss_kb += next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
            count += 1
        except OSError:
            continue
    tmpfs = 0
    for d in ("base", "images"):
        try:
            st = os.statvfs(lab.state_dir / d)
            tmpfs += (st.f_blocks - st.f_bfree) * st.f_frsize
        except OSError:
            pass
    return {"processes": count, "pss_mib": pss_kb / 1024, "tmpfs_mib": tmpfs / 2 ** 20}


def bring_up(name: str, base: str, nodes: int, log, lab_info: dict | None = None):
    """The lab (reused when it is already up with NODES nodes); LAB_INFO gets how long `up`
    took and how much memory the lab holds (MemAvailable before/after: tmpfs layers, sshd,
    namespaces, simulators)."""
    from gfsdeploy_glusterfs.lab import Lab

    lab = Lab(name, base, log=log)
    inv = lab.state_dir / "bench-inventory.yaml"
    if lab.is_up() and len(lab.nodes) == nodes and lab.inventory_path == inv and inv.exists():
        log(f"reusing lab {name} ({nodes} nodes)")
    else:
        if lab.is_up():
            lab.down()
        mem0, load0, t0 = mem_available_mib(), os.getloadavg(), time.perf_counter()
        lab.up(nodes=nodes, inventory_path=inv)
        up_s = time.perf_counter() - t0
        time.sleep(2)  # let the nodes' sshd settle before reading memory
        if lab_info is not None:
            lab_info.update(nodes=nodes, up_s=up_s, load_before_up=load0,
                            mem_available_drop_mib=mem0 - mem_available_mib(), memory=lab_memory(lab))
    return lab


def take_down(lab, lab_info: dict | None, log) -> None:
    t0 = time.perf_counter()
    lab.down()
    if lab_info is not None:
        lab_info["down_s"] = time.perf_counter() - t0
    log(f"lab {lab.name} down in {time.perf_counter() - t0:.1f}s")


# -- one run -------------------------------------------------------------------------
def one_run(lab, tools, runners, quick: bool, log, other_phases=PHASES, run=None, done=None) -> dict:
    """Floor, then each tool from fresh nodes: first apply (verified), no-op, dry run.
    Without "first" in OTHER_PHASES, ansible/pyinfra run on the nodes gfsdeploy left
    converged (their no-op must then report no change: the same end state). RUN (a dict
    the caller already holds) is filled as it goes; DONE() is called after each tool, so a
    run stopped midway keeps the tools that finished."""
    run = {} if run is None else run
    run.update({"load_start": os.getloadavg(), "floor": floor(lab), "tools": {}})
    for tool in tools:
        phases = PHASES if tool == "gfsdeploy" else other_phases
        if "first" in phases:
            reset(lab)
        r = runners[tool]
        res = {}
        for phase in phases:
            if quick and phase == "dry" and tool != "gfsdeploy":
                continue
            timed, info = r.run(phase)
            res[phase] = {"wall": timed.wall, "cpu": timed.cpu, "maxrss_mb": timed.maxrss_mb, **info}
            if phase == "first":
                res["verified"] = verify(lab, tool)
            log(f"  {tool:9s} {phase:5s} {timed.wall:7.2f}s  (CPU {timed.cpu:.2f}s)  {info}")
        if res.get("noop", {}).get("changed"):
            raise RuntimeError(f"{tool}'s re-apply was not a no-op: {res['noop']}")
        run["tools"][tool] = res
        _judge(run, log)
        if done:
            done()
    return run


def _judge(run: dict, log) -> None:
    """Ratios inside one run (and whether the tools left the same result on the nodes)."""
    if len([r for r in run["tools"].values() if "verified" in r]) > 1:  # the same result on the nodes, whoever applied it
        sums = {t: {n: {k: v for k, v in got.items() if k.endswith("_sum")} for n, got in res["verified"].items()}
                for t, res in run["tools"].items() if "verified" in res}
        run["identical_results"] = len({json.dumps(s, sort_keys=True) for s in sums.values()}) == 1
        if not run["identical_results"]:
            log(f"  WARNING: the tools left different results: {sums}")
    g = run["tools"].get("gfsdeploy")
    ratios = {}
    for tool, res in run["tools"].items():
        for phase in ("first", "noop"):
            if phase in res:
                ratios[f"{tool}_{phase}_over_floor"] = res[phase]["wall"] / run["floor"]
        if g and tool != "gfsdeploy":
            for phase in PHASES:
                if phase in res and phase in g:
                    ratios[f"{tool}_{phase}_over_gfsdeploy"] = res[phase]["wall"] / g[phase]["wall"]
    if g and "dry" in g:
        ratios["gfsdeploy_dry_over_noop"] = g["dry"]["wall"] / g["noop"]["wall"]
    if g and "first" in g and "noop" in g:
        ratios["gfsdeploy_first_over_noop"] = g["first"]["wall"] / g["noop"]["wall"]
    run["ratios"] = ratios
    run["load_end"] = os.getloadavg()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(size_runs: list[dict], tools) -> dict:
    out = {"floor": median(r["floor"] for r in size_runs), "tools": {}, "ratios": {}}
    for tool in tools:
        t = {}
        for phase in PHASES:
            vals = [r["tools"][tool].get(phase) for r in size_runs if tool in r["tools"]]
            if vals and all(vals):
                t[phase] = {k: median(v.get(k) for v in vals)
                            for k in vals[0] if isinstance(vals[0][k], (int, float)) and vals[0][k] is not None}
        out["tools"][tool] = t
    for key in {k for r in size_runs for k in r["ratios"]}:
        out["ratios"][key] = median(r["ratios"].get(key) for r in size_runs)
    out["runs_per_tool"] = {t: sum(t in r["tools"] for r in size_runs) for t in tools}
    # the 1-minute load average at the start of each run (other work shares the cores)
    out["load"] = median(r["load_start"][0] for r in size_runs if "load_start" in r)
    return out


# -- report --------------------------------------------------------------------------
def fmt(v, unit="", nd=2):
    return "-" if v is None else f"{v:.{nd}f}{unit}"


def table(results: dict) -> str:
    lines = ["| nodes | tool | first apply | no-op re-apply | dry run | first / floor | no-op / floor "
             "| first: tool / gfsdeploy | no-op: tool / gfsdeploy | peak RSS (no-op) | threads (max, first) "
             "| round trips/host first · no-op · dry |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for size, s in results["sizes"].items():
        load = s.get("load")
        lines.append(f"| {size} | floor: parallel `ssh node true` (n={sum('ratios' in r for r in results['runs'][size])}"
                     f"{f'; load {load:.1f}' if load is not None else ''}) | | {fmt(s['floor'], ' s')} | "
                     f"| | 1.00 | | | | | 1 |")
        for tool, t in s["tools"].items():
            r = s["ratios"]
            rt = threads = "-"
            if tool == "gfsdeploy":
                first = t.get("first", {})
                rt = (f"{fmt(first.get('round_trips_max'), nd=0)} (mean {fmt(first.get('round_trips_mean'))}) · "
                      + " · ".join(fmt(t.get(p, {}).get("round_trips_max"), nd=0) for p in ("noop", "dry")))
                threads = f"{fmt(first.get('threads_max'), nd=0)} (--forks {fmt(first.get('forks'), nd=0)})"
            one = "1.00" if tool == "gfsdeploy" else None
            n = s.get("runs_per_tool", {}).get(tool)
            lines.append(f"| {size} | {tool} (n={n}) | {fmt(t.get('first', {}).get('wall'), ' s')} "
                         f"| {fmt(t.get('noop', {}).get('wall'), ' s')} | {fmt(t.get('dry', {}).get('wall'), ' s')} "
                         f"| {fmt(r.get(f'{tool}_first_over_floor'))} | {fmt(r.get(f'{tool}_noop_over_floor'))} "
                         f"| {one or fmt(r.get(f'{tool}_first_over_gfsdeploy'))} "
                         f"| {one or fmt(r.get(f'{tool}_noop_over_gfsdeploy'))} "
                         f"| {fmt(t.get('noop', {}).get('maxrss_mb'), ' MiB', 0)} | {threads} | {rt} |")
    labs = [f"{size} nodes: lab up {fmt(li.get('up_s'), ' s', 1)}, down {fmt(li.get('down_s'), ' s', 1)}, "
            f"memory {fmt(li.get('memory', {}).get('pss_mib'), ' MiB', 0)} in "
            f"{li.get('memory', {}).get('processes', '-')} processes + "
            f"{fmt(li.get('memory', {}).get('tmpfs_mib'), ' MiB', 0)} tmpfs"
            for size, li in results.get("labs", {}).items() if li]
    if labs:
        lines += ["", "Labs: " + "; ".join(labs)]
    return "\n".join(lines)


def targets(results: dict) -> list[str]:
    """The issue's targets, each with its measured value."""
    out = []
    sizes = results["sizes"]
    for size, s in sizes.items():
        r, g = s["ratios"], s["tools"].get("gfsdeploy", {})
        if "noop" in g:
            rt = g["noop"]["round_trips_max"]
            out.append(f"{size} nodes: no-op round trips/host {rt:.0f} (target <= 2): {'met' if rt <= 2 else 'NOT met'}")
        if "first" in g:
            rt = g["first"]["round_trips_max"]
            out.append(f"{size} nodes: first apply round trips/host {rt:.0f} (target <= 3): "
                       f"{'met' if rt <= 3 else 'NOT met'}")
        v = r.get("gfsdeploy_first_over_noop")
        if v is not None:
            out.append(f"{size} nodes: gfsdeploy first apply / no-op {v:.2f}x (target <= 2x): "
                       f"{'met' if v <= 2 else 'NOT met'}")
        if "noop" in g:
            v = r["gfsdeploy_noop_over_floor"]
            out.append(f"{size} nodes: no-op / floor {v:.2f}x (target <= 3x): {'met' if v <= 3 else 'NOT met'}")
        for tool, need in (("ansible", 10), ("pyinfra", 2)):
            v = r.get(f"{tool}_noop_over_gfsdeploy")
            if v is not None:
                out.append(f"{size} nodes: {tool} no-op / gfsdeploy no-op {v:.2f}x (target >= {need}x): "
                           f"{'met' if v >= need else 'NOT met'}")
        cpus = [f"{tool} " + "/".join(fmt(t.get(p, {}).get("cpu"), " s") for p in ("first", "noop"))
                for tool, t in s["tools"].items() if t.get("noop", {}).get("cpu") is not None]
        if cpus:  # (information, no target: the controller's own CPU, less moved by the load than wall time)
            out.append(f"{size} nodes: controller CPU (user+sys, first apply/no-op): " + ", ".join(cpus))
        v = r.get("gfsdeploy_dry_over_noop")
        if v is not None:
            out.append(f"{size} nodes: gfsdeploy dry / no-op {v:.2f}x (target <= 1, i.e. no slower; "
                       f"within 5% noise: {'met' if v <= 1.05 else 'NOT met'})")
    keys = sorted(sizes, key=int)
    if len(keys) >= 2 and all("noop" in sizes[k]["tools"].get("gfsdeploy", {}) for k in keys):
        lo, hi = keys[0], keys[-1]
        v = sizes[hi]["tools"]["gfsdeploy"]["noop"]["wall"] / sizes[lo]["tools"]["gfsdeploy"]["noop"]["wall"]
        out.append(f"no-op {hi} nodes / {lo} nodes {v:.2f}x (target <= 3x): {'met' if v <= 3 else 'NOT met'}")
    return out


def machine() -> dict:
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "ssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()}


# -- main ----------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, action="append", help="lab size (repeat; default 3)")
    p.add_argument("--runs", type=int, default=5, help="runs per size (medians over them; default 5)")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    p.add_argument("--other-runs", type=int, default=None,
                   help="run ansible/pyinfra only in the first N runs (they take minutes at 30 nodes); "
                        "gfsdeploy and the floor run in all of them")
    p.add_argument("--other-phases", default=",".join(PHASES),
                   help="phases ansible/pyinfra run (default all); without 'first' they re-apply on the "
                        "nodes gfsdeploy converged")
    p.add_argument("--quick", action="store_true", help="smoke mode: other tools skip the dry run")
    p.add_argument("--name", default="gfsbench", help="lab name (default gfsbench)")
    p.add_argument("--base", default="10.177", help="lab subnet base (default 10.177)")
    p.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    p.add_argument("--out", help="results JSON (default bench/results/<timestamp>.json)")
    p.add_argument("--forks", type=int, default=None,
                   help="gfsdeploy --forks (default: the node count, at least 50)")
    args = p.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := [t for t in tools if t not in TOOLS]:
        p.error(f"unknown tools: {unknown}")
    if "gfsdeploy" in tools:
        tools = ["gfsdeploy"] + [t for t in tools if t != "gfsdeploy"]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {"started": stamp, "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + (argv or sys.argv[1:])),
               "machine": machine(), "versions": {}, "load_before": os.getloadavg(), "sizes": {}, "runs": {}}
    out = Path(args.out) if args.out else BENCH / "results" / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        """Written after every run, so a run stopped later (time, load) keeps what it measured."""
        results["targets"] = targets(results)
        out.write_text(json.dumps(results, indent=1))

    lab = None
    results["labs"] = {}
    try:
        for size in args.nodes or [3]:
            if lab is not None and not args.keep:
                take_down(lab, results["labs"].get(str(len(lab.nodes))), log)
            lab_info = results["labs"].setdefault(str(size), {})
            lab = bring_up(args.name, args.base, size, log, lab_info)
            inv = lab.inventory_path
            runners = {t: (RUNNERS[t](lab, inv, size, args.forks) if t == "gfsdeploy"
                           else RUNNERS[t](lab, inv, size)) for t in tools}
            for t in tools:
                results["versions"][t] = tool_version(t, getattr(runners[t], "exe", None))
            runs = results["runs"][str(size)] = []
            try:
                for i in range(args.runs):
                    log(f"{size} nodes, run {i + 1}/{args.runs}")
                    these = tools if args.other_runs is None or i < args.other_runs else ["gfsdeploy"]
                    runs.append({})

                    def done():
                        done_runs = [r for r in runs if "ratios" in r]
                        results["sizes"][str(size)] = summarize(done_runs, tools)
                        save()

                    one_run(lab, these, runners, args.quick, log,
                            tuple(p for p in PHASES if p in args.other_phases.split(",")), runs[-1], done)
            finally:
                for r in runners.values():
                    if hasattr(r, "close"):
                        r.close()
    finally:
        if lab is not None and not args.keep:
            take_down(lab, results["labs"].get(str(len(lab.nodes))), log)
        results["load_after"] = os.getloadavg()
        save()
    print(table(results))
    print()
    for line in results["targets"]:
        print("- " + line)
    print(f"\nmachine: {results['machine']}; versions: {results['versions']}; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
