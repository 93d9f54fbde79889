#!/usr/bin/env python3
"""Benchmark Ansible modules run by gfsdeploy (Ansible's module protocol) against
ansible-playbook running the very same modules, on the local lab.

The workload (bench/ansible_module_workload.yaml) holds only ansible-core modules
gfsdeploy has no native module for: 9 module runs per host (cron x6, known_hosts x2,
getent). Per run, from fresh nodes (state removed through lab.exec, not over SSH):

- gfsdeploy ``cold``: first apply with the module cache on the nodes removed (the
  packed modules are shipped), then ``first`` (fresh state, cache warm), ``noop``
  (re-apply, nothing to do) and ``dry`` (``plan``);
- ansible-playbook ``first``, ``noop`` and ``dry`` (``--check``), pipelining and
  ControlPersist on (its fastest settings).

Each first apply is verified on the first and last node (the crontab, the cron.d
file, the known_hosts file). Ratios are taken within each run, medians reported.

    sudo python3 bench/ansible_module.py --nodes 3 --runs 5

Prints a markdown table; writes bench/ansible_module_results/<timestamp>.json (committed).
ansible-core comes from bench/run.py's venv under ~/.cache/gfsdeploy-bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import run as common  # noqa: E402 - bench/run.py: Timed, the lab, the ansible venv

WORKLOAD = BENCH / "ansible_module_workload.yaml"
TASKS_PER_HOST = 9
RESET = """crontab -r 2>/dev/null; rm -f /etc/cron.d/gfsbench /root/.ssh/gfsbench_known_hosts; true"""
CLEAR_CACHE = "rm -rf /root/.cache/gfsdeploy/ansible-modules"
VERIFY = r"""
echo "crontab $(crontab -l 2>/dev/null | grep -c '^[0-9].* /usr/local/bin/')"
echo "crond $(grep -c '^@' /etc/cron.d/gfsbench 2>/dev/null)"
echo "known $(grep -c '^bench[12].example ssh-ed25519' /root/.ssh/gfsbench_known_hosts 2>/dev/null)"
"""
WANT = {"crontab": "4", "crond": "2", "known": "2"}


def free_base() -> str:
    """A 10.X base no host route uses (other labs may be up on this machine)."""
    import subprocess

    routes = json.loads(subprocess.run(["ip", "-j", "route"], capture_output=True, text=True).stdout or "[]")
    used = {r.get("dst", "").split(".")[1] for r in routes if r.get("dst", "").startswith("10.")}
    return next(f"10.{x}" for x in range(178, 251) if str(x) not in used)


def on_nodes(lab, script: str) -> None:
    for node in lab.nodes:
        res = lab.exec(node.name, ["sh", "-c", script])
        if res.returncode != 0:
            raise RuntimeError(f"{script!r} failed on {node.name}: {res.stderr}")


def verify(lab, tool: str) -> None:
    for node in {lab.nodes[0].name, lab.nodes[-1].name}:
        got = dict(line.split(" ", 1) for line in lab.exec(node, ["sh", "-c", VERIFY]).stdout.splitlines())
        if got != WANT:
            raise RuntimeError(f"{tool} did not produce the workload on {node}: {got}")


def gfsdeploy(inventory: Path, phase: str, forks: int):
    command = "plan" if phase == "dry" else "apply"
    res = common.Timed([sys.executable, "-m", "gfsdeploy", command, str(inventory), "-p", str(WORKLOAD), "--json",
                        "--forks", str(forks)], cwd=ROOT)
    if res.rc not in ((0, 2) if command == "plan" else (0,)):
        raise res.fail(f"gfsdeploy {command}")
    data = json.loads(res.stdout)
    if any(h["failed"] or h["unreachable"] for h in data["hosts"].values()):
        raise res.fail(f"gfsdeploy {command} (a host failed)")
    s = data["summary"]
    rts = [h["round_trips"] for h in data["hosts"].values()]
    return res, {"changes": s["add"] + s["change"] + s["destroy"], "round_trips_max": max(rts)}


def ansible(runner, phase: str):
    argv = [str(runner.exe), "-i", str(runner.inv), str(WORKLOAD)]
    if phase == "dry":
        argv.append("--check")
    res = common.Timed(argv, env=runner.env, cwd=ROOT)
    if res.rc != 0:
        raise res.fail(f"ansible-playbook {phase}")
    import re

    recap = re.findall(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", res.stdout, re.M)
    if not recap or any(int(u) or int(f) for _, _, u, f in recap):
        raise res.fail(f"ansible-playbook {phase} (recap)")
    return res, {"changes": sum(int(c) for _, c, _, _ in recap)}


def one_run(lab, inventory: Path, runner, forks: int, log) -> dict:
    out = {"floor": common.floor(lab), "gfsdeploy": {}, "ansible": {}}
    on_nodes(lab, RESET + "; " + CLEAR_CACHE)
    from gfsdeploy.ansible_protocol import shipped

    Path(shipped.path).unlink(missing_ok=True)   # the controller forgets what the nodes had, too
    for phase in ("cold", "first", "noop", "dry"):
        if phase == "first":
            on_nodes(lab, RESET)   # fresh state, the module cache stays
        timed, info = gfsdeploy(inventory, phase, forks)
        out["gfsdeploy"][phase] = {"wall": timed.wall, "maxrss_mb": timed.maxrss_mb, **info}
        if phase in ("cold", "first"):
            verify(lab, "gfsdeploy")
        log(f"  gfsdeploy {phase:5s} {timed.wall:7.2f}s  {info}")
    on_nodes(lab, RESET)
    for phase in ("first", "noop", "dry"):
        timed, info = ansible(runner, phase)
        out["ansible"][phase] = {"wall": timed.wall, "maxrss_mb": timed.maxrss_mb, **info}
        if phase == "first":
            verify(lab, "ansible")
        log(f"  ansible   {phase:5s} {timed.wall:7.2f}s  {info}")
    if out["gfsdeploy"]["noop"]["changes"] or out["ansible"]["noop"]["changes"]:
        raise RuntimeError(f"a re-apply was not a no-op: {out}")
    g, a = out["gfsdeploy"], out["ansible"]
    out["ratios"] = {f"ansible_{p}_over_gfsdeploy": a[p]["wall"] / g[p]["wall"] for p in ("first", "noop", "dry")}
    out["ratios"]["gfsdeploy_cold_over_first"] = g["cold"]["wall"] / g["first"]["wall"]
    return out


def summarize(runs: list[dict]) -> dict:
    def med(values):
        return statistics.median(values)

    out = {"floor": med(r["floor"] for r in runs), "ratios": {}, "gfsdeploy": {}, "ansible": {}}
    for tool in ("gfsdeploy", "ansible"):
        for phase in runs[0][tool]:
            out[tool][phase] = {k: med(r[tool][phase][k] for r in runs) for k in runs[0][tool][phase]}
    for key in runs[0]["ratios"]:
        out["ratios"][key] = med(r["ratios"][key] for r in runs)
    return out


def table(size: int, s: dict, n: int) -> str:
    g, a, r = s["gfsdeploy"], s["ansible"], s["ratios"]
    rows = [f"| nodes | tool (n={n}) | first apply | no-op re-apply | dry run | round trips/host first · no-op · dry |",
            "|---:|---|---:|---:|---:|---|",
            f"| {size} | gfsdeploy, modules not yet on the nodes | {g['cold']['wall']:.2f} s | | | "
            f"{g['cold']['round_trips_max']:.0f} |",
            f"| {size} | gfsdeploy | {g['first']['wall']:.2f} s | {g['noop']['wall']:.2f} s | {g['dry']['wall']:.2f} s | "
            f"{g['first']['round_trips_max']:.0f} · {g['noop']['round_trips_max']:.0f} · "
            f"{g['dry']['round_trips_max']:.0f} |",
            f"| {size} | ansible-playbook | {a['first']['wall']:.2f} s | {a['noop']['wall']:.2f} s | "
            f"{a['dry']['wall']:.2f} s | |",
            f"| {size} | ansible / gfsdeploy | {r['ansible_first_over_gfsdeploy']:.2f}x | "
            f"{r['ansible_noop_over_gfsdeploy']:.2f}x | {r['ansible_dry_over_gfsdeploy']:.2f}x | |",
            f"| {size} | floor: parallel `ssh node true` | | {s['floor']:.2f} s | | 1 |"]
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--name", default="gfsbenchmod")
    p.add_argument("--base", default=None, help="lab subnet base (default: a free 10.X)")
    p.add_argument("--keep", action="store_true", help="leave the lab up")
    p.add_argument("--out", help="results JSON (default bench/ansible_module_results/<timestamp>.json)")
    args = p.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {"started": stamp, "command": " ".join(["bench/ansible_module.py"] + (argv or sys.argv[1:])),
               "machine": common.machine(), "load_before": os.getloadavg(), "tasks_per_host": TASKS_PER_HOST}
    lab = common.bring_up(args.name, args.base or free_base(), args.nodes, log)
    runner = common.Ansible(lab, lab.inventory_path, args.nodes)
    results["versions"] = {"gfsdeploy": common.tool_version("gfsdeploy", None),
                           "ansible-core": common.tool_version("ansible", runner.exe)}
    runs = []
    try:
        for i in range(args.runs):
            log(f"{args.nodes} nodes, run {i + 1}/{args.runs}")
            runs.append(one_run(lab, lab.inventory_path, runner, max(50, args.nodes), log))
    finally:
        runner.close()
        if not args.keep:
            lab.down()
    results["runs"] = runs
    results["summary"] = summarize(runs)
    results["load_after"] = os.getloadavg()
    out = Path(args.out) if args.out else BENCH / "ansible_module_results" / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(table(args.nodes, results["summary"], len(runs)))
    print(f"\nmachine: {results['machine']}; versions: {results['versions']}; load {results['load_before']} -> "
          f"{results['load_after']}; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
