#!/usr/bin/env python3
"""The controller's own cost per host, up to 1,000 hosts, with no host at all.

Every host is ``ansible_connection: recorded`` (gfsdeploy/transport/recorded.py):
its probes are answered from a recording made on a real lab node, after a
configurable latency per round trip (``--latency``, the network and the remote
shell), and its changes are logged and answered with exit 0. The controller
does everything it does for real hosts — loads the inventory, renders every
template, plans, builds every change script, schedules up to ``--forks`` steps
at once, prints the JSON result — so what is measured is the controller's CPU,
memory and threads, for the bench workload (bench/workload.yaml):

- ``plan``: hosts in their fresh state (everything to add)
- ``first``: ``apply`` on fresh hosts (plan pass, then every change)
- ``noop``: ``apply`` on converged hosts (nothing to change)

Commands:

    sudo python3 bench/controller.py record --sizes 10            # once: recordings (needs the lab, root)
    python3 bench/controller.py derive --sizes 100,1000           # converged recordings of more hosts
    python3 bench/controller.py run --sizes 10,100,1000 --latency 0.02 --repeat 3
    python3 bench/controller.py one --size 100 --phase noop        # one measurement (what run repeats)
    python3 bench/controller.py compare --base 1f2d4c2 --rounds 6   # that commit and this tree, alternated
    python3 bench/controller.py waits --rounds 3                    # the same work with and without waits

``record`` brings up a small lab (``--lab-nodes``, default 10) and converges each
lab node, in turn, as one of the benchmark's hosts (its name and storage IP;
the rest of the inventory is the real 10/100/1,000-host one, so the hosts block
lists every host), recording what a no-op plan reads; one fresh node gives the
fresh state every host shares. Recordings go to ``~/.cache/gfsdeploy-bench/controller``
(tens of MB at 1,000 hosts: not committed); ``run`` writes
bench/results/controller-<timestamp>.json (committed) and prints a table.

``compare`` alternates ``one`` between a commit (checked out in a temporary git
worktree) and the working tree, ``--rounds`` times each, optionally pinned to one CPU
(``--cpu``): on a shared virtual machine the same code measures up to 1.5x apart
from one minute to the next, so two versions are only compared run against run
(bench/results/compare-<timestamp>.json).

Each measurement runs in a fresh interpreter (``one``): the recordings are loaded
first, then the peak RSS is reset (``/proc/self/clear_refs``) and the CLI's
``main`` runs in-process with ``--json``. Reported per run: process CPU
(user+sys, every thread) and wall time of ``main``, peak RSS over the RSS
before it, the most threads alive at once (sampled every 10 ms), round trips
per host, and the changes counted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# the engine measured: this tree, or another checkout (`compare` measures a commit with this harness)
sys.path.insert(0, os.environ.get("GFSCTL_ENGINE") or str(ROOT))

CACHE = Path(os.environ.get("GFSBENCH_CACHE", Path.home() / ".cache" / "gfsdeploy-bench")) / "controller"
WORKLOAD = BENCH / "workload.yaml"
PHASES = ("plan", "first", "noop")
#: the bench workload's changes on a fresh host: hosts block (a change: the file exists),
#: modules file, chain, 4 rules, INPUT jump, directory, 20 files
CHANGES_PER_HOST = 29
#: the lock's script answers that it was taken (a recorded host runs nothing)
LOCK_ANSWER = {"match": r"echo ACQUIRED", "rc": 0, "stdout": "ACQUIRED\n", "stderr": "",
               "note": "the run's lock (bench/controller.py)"}


def host_names(size: int) -> list[str]:
    return [f"n{i:04d}" for i in range(1, size + 1)]


def storage_ip(name: str) -> str:
    i = int(name[1:])
    return f"10.200.{i // 200}.{i % 200 + 10}"


def inventory(size: int, per_host: dict | None = None, all_vars: dict | None = None) -> dict:
    """The benchmark's inventory of SIZE hosts; PER_HOST adds variables to some hosts."""
    hosts = {}
    for name in host_names(size):
        hosts[name] = {"storage_ip": storage_ip(name), **((per_host or {}).get(name) or {})}
    return {"all": {"vars": dict(all_vars or {}), "hosts": hosts,
                    "children": {"gluster": {"hosts": {n: None for n in hosts}}}}}


def write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def recordings_dir(size: int) -> Path:
    return CACHE / f"converged-{size}"


def fresh_recording() -> Path:
    return CACHE / "fresh.json"


# -- record (root, lab) ----------------------------------------------------------------
def record(sizes: list[int], lab_nodes: int, name: str, base: str, keep: bool, log) -> None:
    """Fresh recording (one reset node) and a converged recording per host and size."""
    import yaml

    from gfsdeploy.session import Options, Session
    from gfsdeploy.transport.recorded import Recording, record as record_plan

    sys.path.insert(0, str(BENCH))
    from run import bring_up, reset  # the comparison benchmark's lab helpers

    lab = bring_up(name, base, lab_nodes, log)
    try:
        lab_vars = yaml.safe_load(Path(lab.inventory_path).read_text())["all"]["vars"]
        nodes = lab.nodes
        work = Path(tempfile.mkdtemp(prefix="gfsctl-"))
        CACHE.mkdir(parents=True, exist_ok=True)

        def mapped(size, names):
            return inventory(size, {n: {"ansible_host": nodes[i].ip} for i, n in enumerate(names)}, lab_vars)

        log("fresh state: reset every node, record a plan of n0001 on the first")
        reset(lab)
        inv = write_yaml(work / "fresh.yaml", mapped(max(sizes), ["n0001"]))
        paths = record_plan(str(inv), str(WORKLOAD), str(work / "fresh"), limit=["n0001"])
        data = json.loads(Path(paths["n0001"]).read_text())
        data["runs"] = [LOCK_ANSWER]
        fresh_recording().write_text(json.dumps(data, indent=1) + "\n")
        Recording.load(str(fresh_recording()))  # it must load
        for size in sizes:
            out = recordings_dir(size)
            names = host_names(size)
            todo = [n for n in names if not (out / f"{n}.json").exists()]
            log(f"{size} hosts: {len(todo)} to record ({len(names) - len(todo)} already in {out})")
            started = time.monotonic()
            for at in range(0, len(todo), len(nodes)):
                batch = todo[at:at + len(nodes)]
                inv = write_yaml(work / f"round-{size}.yaml", mapped(size, batch))
                with Session(str(inv), str(WORKLOAD), Options(limit=",".join(batch), forks=len(batch))) as s:
                    recap = s.apply()
                if not recap.ok:
                    raise RuntimeError(f"converging {batch} failed: {recap.failures}")
                tmp = work / "round"
                shutil.rmtree(tmp, ignore_errors=True)
                for host, path in record_plan(str(inv), str(WORKLOAD), str(tmp), limit=batch).items():
                    out.mkdir(parents=True, exist_ok=True)
                    shutil.move(path, out / f"{host}.json")
                done = at + len(batch)
                if done % 100 < len(nodes) or done == len(todo):
                    rate = (time.monotonic() - started) / done
                    log(f"  {done}/{len(todo)} ({rate:.2f} s per host)")
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if not keep:
            lab.down()


# -- derive (no lab): converged recordings of more hosts from the recorded ones --------------
#: the hosts block's markers in /etc/hosts (bench/workload.yaml)
HOSTS_BEGIN, HOSTS_END = "# BEGIN gfsbench storage nodes\n", "# END gfsbench storage nodes\n"
#: a host past the 4 peers every template lists: its files name only itself and those 4
MODEL = "n0005"


def _patch_file_probe(stdout: str, patch) -> str:
    """A files probe's answer (``P path``, ``S …|size``, ``C`` + base64) with its content
    passed through PATCH(path, bytes) -> bytes (size line and base64 re-made)."""
    import base64

    lines = stdout.splitlines(keepends=True)
    if not lines or not lines[0].startswith("P ") or "C\n" not in lines:
        return stdout
    path = lines[0][2:].rstrip("\n")
    at = lines.index("C\n")
    content = base64.b64decode("".join(lines[at + 1:]))
    new = patch(path, content)
    if new == content:
        return stdout
    head = []
    for line in lines[:at]:
        if line.startswith("S regular file|"):
            line = line.rsplit("|", 1)[0] + f"|{len(new)}\n"
        head.append(line)
    return "".join(head) + "C\n" + base64.encodebytes(new).decode()


def derive(sizes: list[int], source: int, log) -> None:
    """Converged recordings of SIZE hosts made from the SOURCE-host ones the lab recorded
    (``record``): every host of a size has the same hosts block (all hosts: rewritten
    here), and its templated files differ from those of a recorded host only by its
    name and storage IP (hosts past the first 4 are made from n0005, the first 4 from
    themselves). No host is contacted. The no-op then reports no change, or the
    benchmark says so: a wrong derivation cannot pass unnoticed."""
    src = recordings_dir(source)
    if not (src / f"{MODEL}.json").exists():
        raise SystemExit(f"no recording {src / (MODEL + '.json')} (run `bench/controller.py record --sizes {source}`)")
    for size in sizes:
        if size == source:
            continue
        names = host_names(size)
        block = "".join(f"{storage_ip(n)} {n}\n" for n in names).encode()
        out = recordings_dir(size)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            model = name if int(name[1:]) < int(MODEL[1:]) else MODEL
            data = json.loads((src / f"{model}.json").read_text())
            old_name, old_ip = model.encode(), storage_ip(model).encode()
            new_name, new_ip = name.encode(), storage_ip(name).encode()

            def patch(path, content):
                if path == "/etc/hosts":
                    begin, end = HOSTS_BEGIN.encode(), HOSTS_END.encode()
                    a, b = content.index(begin) + len(begin), content.index(end)
                    return content[:a] + block + content[b:]
                if path.startswith("/etc/gfsbench/") and model != name:
                    return content.replace(old_name, new_name).replace(old_ip, new_ip)
                return content

            for entry in data["reads"]:
                entry["stdout"] = _patch_file_probe(entry["stdout"], patch)
            (out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        log(f"{size} hosts: {len(names)} converged recordings derived in {out}")


# -- one measurement (a fresh interpreter) --------------------------------------------------
class _ThreadPeak:
    """The most threads alive at once while it is entered, seen at every thread start
    (a thread count only grows when one starts): no sampling thread, whose wake-ups
    every few milliseconds were counted as the controller's CPU."""

    def __enter__(self):
        self.max = threading.active_count()
        self._start = start = threading.Thread.start
        peak = self

        def counting(thread, *args, **kwargs):
            start(thread, *args, **kwargs)
            peak.max = max(peak.max, threading.active_count())

        threading.Thread.start = counting
        return self

    def __exit__(self, *exc):
        threading.Thread.start = self._start


def _rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


#: the reference work: the same Python on every machine, whatever the engine's version
_REFERENCE_TEMPLATE = ("# {{ name }}\n{% for h in hosts if h != name %}{{ h }}={{ ips[h] }}\n{% endfor %}"
                       "{{ conf | dictsort | map('join', '=') | join(',') }}\n")


def reference_ms() -> float:
    """CPU of a fixed piece of work like the engine's (Jinja renders, dict and string work),
    in this interpreter: the machine's speed at the moment of a measurement. The same code
    measures up to 2x apart on this shared virtual machine from one session to the next;
    CPU per host over this figure compares runs of different sessions. Least of 3."""
    import jinja2

    template = jinja2.Environment().from_string(_REFERENCE_TEMPLATE)
    hosts = [f"h{i:04d}" for i in range(12)]
    ips = {h: f"10.0.{i // 250}.{i % 250}" for i, h in enumerate(hosts)}
    best = None
    for _ in range(3):
        t0 = time.process_time()
        for i in range(2000):
            conf = {f"k{j}": str(i * j) for j in range(8)}
            text = template.render(name=hosts[i % 12], hosts=hosts, ips=ips, conf=conf)
            json.dumps({"text": text, "lines": text.splitlines(), "n": len(text)})
        took = (time.process_time() - t0) * 1000
        best = took if best is None else min(best, took)
    return round(best, 2)


def one(size: int, phase: str, latency: float, forks: int) -> dict:
    """Run the CLI in this process on SIZE recorded hosts; what it cost."""
    from gfsdeploy.transport.recorded import load_shared

    names = host_names(size)
    if phase == "noop":
        paths = {n: str(recordings_dir(size) / f"{n}.json") for n in names}
        missing = [p for p in paths.values() if not os.path.exists(p)]
        if missing:
            raise SystemExit(f"no recording {missing[0]} (run `bench/controller.py record` first)")
    else:
        if not fresh_recording().exists():
            raise SystemExit(f"no recording {fresh_recording()} (run `bench/controller.py record` first)")
        paths = {n: str(fresh_recording()) for n in names}
    work = Path(tempfile.mkdtemp(prefix="gfsctl-one-"))
    inv = write_yaml(work / "inventory.yaml",
                     inventory(size, {n: {"gfsdeploy_recording": p} for n, p in paths.items()},
                               {"ansible_connection": "recorded", "gfsdeploy_recording_latency": latency}))
    for p in set(paths.values()):
        load_shared(p)  # the recordings are the hosts, not the controller: loaded before measuring
    from gfsdeploy.cli import main

    argv = ["plan" if phase == "plan" else "apply", str(inv), "-p", str(WORKLOAD), "--json", "--forks", str(forks)]
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak RSS starts again from here
    rss_before = _rss_kib()
    # stdout is a file, as for a real run (a StringIO would count the whole --json text,
    # ~33 KiB per host at 1,000 hosts, as the controller's memory)
    out = open(work / "stdout.json", "w+", encoding="utf-8")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(out), _ThreadPeak() as threads:
        rc = main(argv)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    peak = _rss_kib("VmHWM")
    out.seek(0)
    text = out.read()
    out.close()
    shutil.rmtree(work, ignore_errors=True)
    reference = reference_ms()  # (after main: the measurement is not disturbed)
    data = json.loads(text)
    hosts = data.get("hosts") or {}
    rts = [h.get("round_trips", 0) for h in hosts.values()]
    summary = data.get("summary") or {}
    changes = sum(summary.get(k, 0) for k in ("add", "change", "destroy"))
    failed = [h for h, v in hosts.items() if v.get("failed") or v.get("unreachable")]
    want_rc = (2,) if phase == "plan" else (0,)
    problem = None
    if rc not in want_rc or failed:
        problem = f"exit {rc}, failed hosts {failed[:3]}: {text[-500:]}"
    elif phase == "noop" and changes:
        problem = f"the no-op reported {changes} changes"
    elif phase != "noop" and changes != size * CHANGES_PER_HOST:
        problem = f"{changes} changes, expected {size * CHANGES_PER_HOST}"
    import gfsdeploy

    return {"size": size, "phase": phase, "latency_s": latency, "forks": forks, "exit": rc, "problem": problem,
            "engine": str(Path(gfsdeploy.__file__).resolve().parent.parent),
            "cpu_s": round(cpu, 4), "wall_s": round(wall, 4), "cpu_ms_per_host": round(cpu / size * 1000, 3),
            "rss_before_kib": rss_before, "peak_rss_kib": peak,
            "kib_per_host": round((peak - rss_before) / size, 1), "threads_max": threads.max,
            "round_trips_max": max(rts) if rts else None,
            "round_trips_mean": round(sum(rts) / len(rts), 3) if rts else None,
            "changes": changes, "reference_ms": reference}


# -- ssh: threads and reconnects with real connections (a private sshd, no lab) -----------
SSHD_CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
AuthorizedKeysFile {root}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PidFile {root}/sshd.pid
MaxSessions 1000
MaxStartups 1000
"""


def ssh_run(hosts: int, forks: int, limits: list[str], log) -> dict:
    """HOSTS inventory hosts that are all this machine's private sshd (127.0.0.1): real
    paramiko connections, one per host. Each host writes one file (first apply) and
    reads it again (no-op). Per case: the most threads alive at once, SSH connections
    opened, CPU and wall, with the runner's connection limit (``forks``) and without it."""
    import socket

    if os.geteuid() != 0:
        raise SystemExit("the ssh measurement runs sshd as root")
    root = Path(tempfile.mkdtemp(prefix="gfsctl-ssh-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    shutil.copy(root / "id.pub", root / "authorized_keys")
    (root / "sshd_config").write_text(SSHD_CONFIG.format(port=port, root=root))
    kind, key = (root / "host_key.pub").read_text().split()[:2]
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {kind} {key}\n")
    os.makedirs("/run/sshd", exist_ok=True)
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")],
                            stderr=subprocess.DEVNULL)
    out = {"hosts": hosts, "forks": forks, "cases": {}}
    try:
        time.sleep(0.5)
        names = [f"s{i:04d}" for i in range(1, hosts + 1)]
        inv = write_yaml(root / "inventory.yaml", {"all": {
            "vars": {"ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "root",
                     "ansible_ssh_private_key_file": str(root / "id"),
                     "gfsdeploy_known_hosts": str(root / "known_hosts")},
            "hosts": {n: {"gfsdeploy_lock_dir": str(root / "locks" / n)} for n in names}}})
        pb = root / "playbook.yaml"
        pb.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n"
                      f"    - copy: {{dest: \"{root}/out/{{{{ inventory_hostname }}}}\", content: \"x\\n\"}}\n")
        for limit in limits:
            (root / "out").mkdir(exist_ok=True)
            (root / "locks").mkdir(exist_ok=True)
            for phase in ("first", "noop"):
                proc = subprocess.run([sys.executable, str(Path(__file__)), "ssh-one", "--inventory", str(inv),
                                       "--playbook", str(pb), "--forks", str(forks), "--limit-connections", limit],
                                      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr[-2000:])
                got = json.loads(proc.stdout.strip().splitlines()[-1])
                out["cases"][f"{phase}, connections {'<= --forks' if limit == 'forks' else 'unlimited'}"] = got
                log(f"{hosts} hosts {phase:5s} connections {limit:9s}: {got}")
            shutil.rmtree(root / "out", ignore_errors=True)
    finally:
        sshd.terminate()
        sshd.wait(5)
        shutil.rmtree(root, ignore_errors=True)
    return out


def ssh_one(inventory_path: str, playbook_path: str, forks: int, limit: str) -> dict:
    import gfsdeploy.transport as transport_pkg
    from gfsdeploy.transport import ssh as ssh_mod

    if limit == "none":
        original = transport_pkg.Connections.__init__

        def unlimited(self, *a, **kw):
            kw["max_open"] = None
            original(self, *a, **kw)

        transport_pkg.Connections.__init__ = unlimited
    opened = {"n": 0}
    connect = ssh_mod.SSHTransport.connect

    def counting(self):
        was = self.is_open
        connect(self)
        opened["n"] += not was and self.is_open

    ssh_mod.SSHTransport.connect = counting
    from gfsdeploy.cli import main

    buf = io.StringIO()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(buf), _ThreadPeak() as threads:
        rc = main(["apply", inventory_path, "-p", playbook_path, "--json", "--forks", str(forks)])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    data = json.loads(buf.getvalue())
    rts = [h["round_trips"] for h in data["hosts"].values()]
    return {"exit": rc, "threads_max": threads.max, "connections_opened": opened["n"],
            "cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "round_trips_max": max(rts),
            "changes": sum(data["summary"].get(k, 0) for k in ("add", "change", "destroy")),
            "errors": [str(e)[:300] for e in data.get("errors", [])[:2]]}


# -- run: every size and phase, repeated ---------------------------------------------------
def fit(points: list[tuple[int, float]]) -> dict:
    """Least-squares line through (hosts, value): the marginal cost per host and the fixed part."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return {"per_host": slope, "fixed": my - slope * mx}


def run(sizes: list[int], phases: list[str], latency: float, forks: int, repeat: int, out: Path | None, log) -> dict:
    import compileall

    for package in ("gfsdeploy", "gfsdeploy_glusterfs"):  # byte-code once, as an installed wheel has it
        compileall.compile_dir(str(ROOT / package), quiet=1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {"started": stamp, "command": " ".join(["bench/controller.py", *sys.argv[1:]]),
               "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                           "kernel": platform.release()},
               "latency_s": latency, "forks": forks, "repeat": repeat, "load_before": os.getloadavg(),
               "runs": [], "medians": {}}
    for r in range(repeat):
        for size in sizes:
            for phase in phases:
                proc = subprocess.run([sys.executable, str(Path(__file__)), "one", "--size", str(size), "--phase",
                                       phase, "--latency", str(latency), "--forks", str(forks)],
                                      capture_output=True, text=True, cwd=ROOT,
                                      env=dict(os.environ, PYTHONPATH=str(ROOT)))
                if proc.returncode != 0:
                    raise RuntimeError(f"{size} hosts {phase}: {proc.stderr[-2000:]}")
                got = json.loads(proc.stdout.strip().splitlines()[-1])
                got["repeat"] = r
                got["load"] = os.getloadavg()[0]
                results["runs"].append(got)
                log(f"run {r + 1}/{repeat} {size:5d} hosts {phase:5s}: cpu {got['cpu_s']:7.2f} s "
                    f"({got['cpu_ms_per_host']:.2f} ms/host) wall {got['wall_s']:6.2f} s  "
                    f"+{got['kib_per_host']:.0f} KiB/host  threads {got['threads_max']}  "
                    f"round trips {got['round_trips_max']}" + (f"  PROBLEM: {got['problem']}" if got["problem"] else ""))
    for phase in phases:
        rows = {}
        for size in sizes:
            these = [x for x in results["runs"] if x["size"] == size and x["phase"] == phase]
            rows[str(size)] = {k: statistics.median(x[k] for x in these)
                               for k in ("cpu_s", "wall_s", "cpu_ms_per_host", "kib_per_host", "threads_max",
                                         "round_trips_max", "peak_rss_kib", "rss_before_kib", "reference_ms")
                               if all(k in x for x in these)}
            rows[str(size)]["problems"] = sorted({x["problem"] for x in these if x["problem"]})
        cpu_fit = fit([(int(s), v["cpu_s"]) for s, v in rows.items()])
        mem_fit = fit([(int(s), (v["peak_rss_kib"] - v["rss_before_kib"])) for s, v in rows.items()])
        results["medians"][phase] = {"sizes": rows, "cpu_ms_per_host_marginal": round(cpu_fit["per_host"] * 1000, 3),
                                     "cpu_s_fixed": round(cpu_fit["fixed"], 3),
                                     "kib_per_host_marginal": round(mem_fit["per_host"], 1)}
    results["load_after"] = os.getloadavg()
    path = out or BENCH / "results" / f"controller-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"\nraw results: {path}")
    return results


def table(results: dict) -> str:
    lines = [f"latency {results['latency_s'] * 1000:.0f} ms per round trip, --forks {results['forks']}, "
             f"medians of {results['repeat']}",
             *([f"reference work (bench/controller.py reference_ms, the machine's speed): "
                f"{statistics.median(x['reference_ms'] for x in results['runs']):.0f} ms"]
               if results["runs"] and all("reference_ms" in x for x in results["runs"]) else []),
             "",
             "| phase | hosts | CPU | CPU per host | wall | peak RSS over start | per host | threads (max) "
             "| round trips/host |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for phase, m in results["medians"].items():
        for size, v in m["sizes"].items():
            lines.append(f"| {phase} | {size} | {v['cpu_s']:.2f} s | {v['cpu_ms_per_host']:.2f} ms | {v['wall_s']:.2f} s "
                         f"| {(v['peak_rss_kib'] - v['rss_before_kib']) / 1024:.1f} MiB | {v['kib_per_host']:.0f} KiB "
                         f"| {v['threads_max']:.0f} | {v['round_trips_max']:.0f} |")
        lines.append(f"| {phase} | marginal | | {m['cpu_ms_per_host_marginal']:.2f} ms | | | "
                     f"{m['kib_per_host_marginal']:.0f} KiB | | |")
    return "\n".join(lines)


def compare(base: str, size: int, phase: str, rounds: int, cpu: str | None, out: Path | None, log,
            latency: float = 0.02, forks: int = 50) -> dict:
    """``one`` for the commit ``base`` and for this tree, alternated ``rounds`` times (the
    engine of each; this tree's harness and workload for both)."""
    import compileall

    work = Path(tempfile.mkdtemp(prefix="gfsctl-compare-"))
    tree = work / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), base], check=True)
    try:
        trees = {"base": tree, "this": ROOT}
        for where in trees.values():
            for package in ("gfsdeploy", "gfsdeploy_glusterfs"):
                compileall.compile_dir(str(where / package), quiet=1)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        results = {"started": stamp, "command": " ".join(["bench/controller.py", *sys.argv[1:]]),
                   "base": base, "this": f"{head} (working tree)", "size": size, "phase": phase, "cpu": cpu,
                   "latency_s": latency, "forks": forks,
                   "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
                   "load_before": os.getloadavg(), "runs": []}
        for r in range(rounds):
            for name, where in trees.items():
                # (this tree's harness and workload for both: only the engine differs)
                cmd = [sys.executable, str(BENCH / "controller.py"), "one", "--size", str(size), "--phase", phase,
                       "--latency", str(latency), "--forks", str(forks)]
                if cpu is not None:
                    cmd = ["taskset", "-c", cpu, *cmd]
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=where,
                                      env=dict(os.environ, GFSCTL_ENGINE=str(where)))
                if proc.returncode != 0:
                    raise RuntimeError(f"{name}: {proc.stderr[-2000:]}")
                got = json.loads(proc.stdout.strip().splitlines()[-1])
                if got.get("engine") != str(Path(where).resolve()):
                    raise RuntimeError(f"{name}: measured the engine in {got.get('engine')}, not {where}")
                got.update(tree=name, round=r, load=os.getloadavg()[0])
                results["runs"].append(got)
                log(f"round {r + 1}/{rounds} {name:4s}: {got['cpu_ms_per_host']:.2f} ms/host"
                    + (f"  PROBLEM: {got['problem']}" if got["problem"] else ""))
        for name in trees:
            values = [x["cpu_ms_per_host"] for x in results["runs"] if x["tree"] == name]
            results[name + "_ms_per_host"] = {"min": min(values), "median": statistics.median(values),
                                             "max": max(values)}
        pairs = [t["cpu_ms_per_host"] / b["cpu_ms_per_host"] for b, t in
                 zip(results["runs"][0::2], results["runs"][1::2])]
        results["ratio_this_to_base"] = {"median": round(statistics.median(pairs), 3), "each": [round(x, 3) for x in pairs]}
        path = out or BENCH / "results" / f"compare-{stamp}.json"
        path.write_text(json.dumps(results, indent=1) + "\n")
        b, t = results["base_ms_per_host"], results["this_ms_per_host"]
        log(f"{base}: median {b['median']:.2f} ms/host (min {b['min']:.2f}); this tree: median {t['median']:.2f} "
            f"(min {t['min']:.2f}); run against run: x{results['ratio_this_to_base']['median']:.2f}")
        print(f"raw results: {path}")
        return results
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(work, ignore_errors=True)


#: (label, latency, forks, pinned): the same no-op with and without waits, threads, one CPU
WAIT_SETTINGS = (("work alone", 0.0, 1, False), ("50 workers, no wait", 0.0, 50, False),
                 ("one worker, 20 ms waits", 0.02, 1, False), ("50 workers, 20 ms waits (run's setting)", 0.02, 50, False),
                 ("50 workers, 20 ms waits, pinned to one CPU", 0.02, 50, True))


def waits(size: int, rounds: int, out: Path | None, log) -> dict:
    """What waiting costs the same work: ``one`` (fresh interpreters, this tree) with and
    without simulated round trips, with one and with 50 workers, and pinned to one CPU
    (``taskset -c 0``), alternated ``rounds`` times."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {"started": stamp, "command": " ".join(["bench/controller.py", *sys.argv[1:]]), "size": size,
               "phase": "noop", "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
               "runs": []}
    for r in range(rounds):
        for label, latency, forks, pinned in WAIT_SETTINGS:
            cmd = [sys.executable, str(BENCH / "controller.py"), "one", "--size", str(size), "--phase", "noop",
                   "--latency", str(latency), "--forks", str(forks)]
            proc = subprocess.run((["taskset", "-c", "0"] if pinned else []) + cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{label}: {proc.stderr[-2000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            got.update(setting=label, pinned=pinned, round=r, load=os.getloadavg()[0])
            results["runs"].append(got)
            log(f"round {r + 1}/{rounds} {label:45s} {got['cpu_ms_per_host']:.2f} ms/host, wall {got['wall_s']:.1f} s"
                f", reference {got.get('reference_ms', 0):.0f} ms")
    results["median_ms_per_host"] = {label: statistics.median(x["cpu_ms_per_host"] for x in results["runs"]
                                                              if x["setting"] == label)
                                     for label, *_ in WAIT_SETTINGS}
    path = out or BENCH / "results" / f"waits-{stamp}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    for label, value in results["median_ms_per_host"].items():
        log(f"{label:45s} median {value:.2f} ms/host")
    print(f"raw results: {path}")
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="make the recordings (root: brings up a lab)")
    r.add_argument("--sizes", default="10,100,1000")
    r.add_argument("--lab-nodes", type=int, default=10)
    r.add_argument("--name", default="gfsctl")
    r.add_argument("--base", default="10.178")
    r.add_argument("--keep", action="store_true", help="leave the lab up")
    m = sub.add_parser("run", help="measure every size and phase")
    m.add_argument("--sizes", default="10,100,1000")
    m.add_argument("--phases", default=",".join(PHASES))
    m.add_argument("--latency", type=float, default=0.02, help="seconds per round trip (default 0.02)")
    m.add_argument("--forks", type=int, default=50)
    m.add_argument("--repeat", type=int, default=3)
    m.add_argument("--out", type=Path)
    d = sub.add_parser("derive", help="converged recordings of more hosts from the recorded ones (no lab)")
    d.add_argument("--sizes", default="100,1000")
    d.add_argument("--source", type=int, default=10, help="the recorded size to derive from (default 10)")
    o = sub.add_parser("one", help="one measurement, in this interpreter (prints JSON)")
    o.add_argument("--size", type=int, required=True)
    o.add_argument("--phase", choices=PHASES, required=True)
    o.add_argument("--latency", type=float, default=0.02)
    o.add_argument("--forks", type=int, default=50)
    c = sub.add_parser("compare", help="a commit and this tree, measured alternately (one size and phase)")
    c.add_argument("--base", required=True, help="the commit to compare with")
    c.add_argument("--size", type=int, default=1000)
    c.add_argument("--phase", choices=PHASES, default="noop")
    c.add_argument("--rounds", type=int, default=6)
    c.add_argument("--cpu", help="run each measurement pinned to these CPUs (taskset -c), e.g. 0")
    c.add_argument("--latency", type=float, default=0.02, help="seconds per round trip (--latency 0 --forks 1: "
                   "the work alone, without the machine's cost of waking threads)")
    c.add_argument("--forks", type=int, default=50)
    c.add_argument("--out", type=Path)
    w = sub.add_parser("waits", help="the same no-op with and without waits, one or 50 workers, pinned or not")
    w.add_argument("--size", type=int, default=1000)
    w.add_argument("--rounds", type=int, default=3)
    w.add_argument("--out", type=Path)
    sh = sub.add_parser("ssh", help="threads and reconnects with real SSH connections (root: a private sshd)")
    sh.add_argument("--hosts", type=int, default=200)
    sh.add_argument("--forks", type=int, default=50)
    sh.add_argument("--limits", default="forks,none")
    sh.add_argument("--out", type=Path)
    so = sub.add_parser("ssh-one", help=argparse.SUPPRESS)
    so.add_argument("--inventory", required=True)
    so.add_argument("--playbook", required=True)
    so.add_argument("--forks", type=int, default=50)
    so.add_argument("--limit-connections", choices=("forks", "none"), default="forks")
    args = p.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    sizes = [int(s) for s in getattr(args, "sizes", "").split(",") if s.strip()]
    if args.cmd == "record":
        record(sizes, args.lab_nodes, args.name, args.base, args.keep, log)
    elif args.cmd == "ssh":
        got = ssh_run(args.hosts, args.forks, args.limits.split(","), log)
        got.update(when=time.strftime("%Y%m%d-%H%M%S"), load=os.getloadavg(),
                   command=" ".join(["bench/controller.py", *sys.argv[1:]]))
        path = args.out or BENCH / "results" / f"controller-ssh-{got['when']}.json"
        path.write_text(json.dumps(got, indent=1) + "\n")
        print(f"raw results: {path}")
    elif args.cmd == "ssh-one":
        print(json.dumps(ssh_one(args.inventory, args.playbook, args.forks, args.limit_connections)))
    elif args.cmd == "derive":
        derive(sizes, args.source, log)
    elif args.cmd == "waits":
        waits(args.size, args.rounds, args.out, log)
    elif args.cmd == "compare":
        compare(args.base, args.size, args.phase, args.rounds, args.cpu, args.out, log, args.latency, args.forks)
    elif args.cmd == "run":
        run(sizes, [x for x in args.phases.split(",") if x], args.latency, args.forks, args.repeat, args.out, log)
    else:
        print(json.dumps(one(args.size, args.phase, args.latency, args.forks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
