"""The differential harness: the same playbook under ``ansible-playbook`` and under
``gfsdeploy apply``/``plan``, against lab nodes, and the resulting states side by side.

A lab of ``2 × N`` nodes is split in two *sides* of N nodes: Ansible drives the first
half, gfsdeploy the second. Both sides get an inventory with the same host names
(``node1`` … ``nodeN``) and the same variables, so ``inventory_hostname`` and every
templated value are identical; only the address (and the kernel hostname) differ, and
:meth:`Compat.state` replaces those with ``<ip>`` / ``<hostname>`` before comparing.
Every playbook runs on both sides, so the two halves share one history: a test module
runs many small playbooks on one lab (``reset`` scripts clean up between them).

What is compared (:meth:`Compat.run_both`):

- the hosts' state, read independently of both tools (``nsenter`` into each node, not
  SSH): files (type, mode, owner, group, content or sha256, link target; directories
  optionally as a tree), command outputs (``iptables -S``, ``getent``, ``findmnt`` …);
- registered values: the harness appends a last play that writes every name in
  ``registered`` to a file on the node (``copy`` of a mapping: JSON, under both tools), then
  compares them key by key, minus the keys that are volatile by nature (``start``,
  ``delta`` …) and those a test lists in ``ignore`` (with its reason);
- per task and host: changed / failed / skipped, from Ansible's results (a small
  callback plugin, ``callback_plugins/compat_log.py``) and gfsdeploy's ``--json``;
- with ``recap=True``, the recap's counts per host (ok, changed, unreachable, failed,
  skipped, rescued, ignored: Ansible's from its stats, gfsdeploy's from ``--json``),
  minus Ansible's implicit fact gathering;
- with ``twice=True`` (default), a second run under both tools and the same comparison
  (it is where idempotence shows: neither side may change what the other does not).

:meth:`Compat.plan_vs_check` compares ``gfsdeploy plan --json`` with
``ansible-playbook --check --diff``: per task and host "would change", and the content
lines of the diffs (``+``/``-`` lines of a file diff; ``field: old -> new`` lines of an
attribute change, compared by the new value).

How a test module uses it::

    pytestmark = pytest.mark.lab

    def test_lineinfile(compat):
        pair = compat.run_both(PLAYBOOK, state=Spec(files=["/etc/compat/x.conf"]),
                               registered=["r"], reset="rm -rf /etc/compat")
        pair.assert_same()
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DUMP_TASK = "compat: dump registered values"
DUMP_PATH = "/var/tmp/gfsdeploy-compat-registered.json"
#: register keys that differ between any two runs, or that only one tool computes by design
VOLATILE = {"start", "end", "delta", "invocation", "warnings", "deprecations", "diff", "_ansible_no_log",
            "ansible_facts", "skip_reason", "exception"}


def ansible_playbook() -> str | None:
    """ansible-playbook from this interpreter's environment (the ``test`` extra), else PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.exists():
        return str(beside)
    return shutil.which("ansible-playbook")


# -- what to read from a node ----------------------------------------------------------
@dataclass
class Spec:
    """What :meth:`Compat.state` reads. ``files``: paths (shell globs allowed); ``trees``:
    directories listed recursively with every entry's attributes; ``commands``: label →
    shell snippet (rc and stdout compared)."""

    files: list = field(default_factory=list)
    trees: list = field(default_factory=list)
    commands: dict = field(default_factory=dict)


_READ = r'''
import base64, glob, grp, hashlib, json, os, pwd, stat, sys
spec = json.load(sys.stdin)
def name(getter, ident):
    try:
        return getter(ident)[0]
    except KeyError:
        return str(ident)
def one(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"type": "absent"}
    out = {"mode": "%04o" % stat.S_IMODE(st.st_mode), "owner": name(pwd.getpwuid, st.st_uid),
           "group": name(grp.getgrgid, st.st_gid)}
    if stat.S_ISLNK(st.st_mode):
        out = {"type": "link", "target": os.readlink(path)}
    elif stat.S_ISDIR(st.st_mode):
        out["type"] = "directory"
    elif stat.S_ISREG(st.st_mode):
        out["type"] = "file"
        data = open(path, "rb").read()
        try:
            out["content"] = data.decode() if len(data) <= 262144 else None
        except UnicodeDecodeError:
            out["content"] = None
        if out["content"] is None:
            out["sha256"] = hashlib.sha256(data).hexdigest()
    else:
        out["type"] = "other"
    return out
files = {}
for pattern in spec["files"]:
    found = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
    for path in found or [pattern]:
        files[path] = one(path)
for top in spec["trees"]:
    files[top] = one(top)
    for base, dirs, names in os.walk(top):
        dirs.sort()
        for entry in sorted(dirs + names):
            files[os.path.join(base, entry)] = one(os.path.join(base, entry))
print(json.dumps(files))
'''


# -- results of one run ------------------------------------------------------------------
@dataclass
class Run:
    """One tool's run: exit code, output, and per (task, host) its status
    (``ok``/``changed``/``failed``/``skipped``/``ignored``) and result."""

    tool: str
    rc: int
    stdout: str
    stderr: str
    tasks: dict = field(default_factory=dict)     # (task, host) -> status
    results: dict = field(default_factory=dict)   # (task, host) -> Ansible result / gfsdeploy step
    registered: dict = field(default_factory=dict)  # host -> {name: value}
    state: dict = field(default_factory=dict)     # host -> {"files": …, "commands": …}
    recap: dict = field(default_factory=dict)     # host -> the recap's counts

    def output(self) -> str:
        """The run's output for a failure message (in full only when the tool failed)."""
        if self.rc in (0, 2) and not self.stderr.strip():
            return f"--- {self.tool} exit {self.rc}"
        out = self.stdout
        if out.lstrip().startswith("{"):  # gfsdeploy --json: the errors are what matters
            out = "\n".join(line for line in out.splitlines() if '"error": "' in line)
        return f"--- {self.tool} exit {self.rc}\n{out[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"

    def changed(self) -> dict:
        return {k: v for k, v in self.tasks.items() if v == "changed"}


@dataclass
class Pair:
    """Ansible's run and gfsdeploy's (and the second runs with ``twice``)."""

    ansible: Run
    gfsdeploy: Run
    again: "Pair | None" = None
    ignore: tuple = ()
    recap: bool = False   # compare the recap's counts too

    def differences(self) -> list[str]:
        out = []
        a, g = self.ansible, self.gfsdeploy
        if (a.rc == 0) != (g.rc == 0):
            out.append(f"exit codes: ansible-playbook {a.rc}, gfsdeploy {g.rc}")
        out += _per_host("task status", *_comparable(a.tasks, g.tasks))
        if self.recap:
            out += _per_host("recap", a.recap, g.recap)
        out += _per_host("registered", _strip(a.registered, self.ignore), _strip(g.registered, self.ignore))
        out += _per_host("state", a.state, g.state)
        if self.again is not None:
            out += [f"second run: {line}" for line in self.again.differences()]
        return out

    def assert_same(self) -> None:
        problems = self.differences()
        if problems:
            raise AssertionError("ansible-playbook and gfsdeploy differ:\n  " + "\n  ".join(problems) +
                                 "\n" + self.ansible.output() + "\n" + self.gfsdeploy.output())


def _comparable(a: dict, g: dict) -> tuple[dict, dict]:
    """Per-host statuses of both runs, minus what only one tool reports and means "did not
    run": Ansible's implicit fact gathering (gfsdeploy reads facts in its batched read),
    and a step one side reports as skipped that the other does not report at all (a
    handler nobody notified, a run_once step on the other hosts)."""
    a = {k: v for k, v in a.items() if k[0] != "Gathering Facts"}
    a2 = {k: v for k, v in a.items() if not (v == "skipped" and k not in g)}
    g2 = {k: v for k, v in g.items() if not (v == "skipped" and k not in a)}
    return _by_host(a2), _by_host(g2)


def _meta_tasks(playbook: str) -> set:
    """The names of a playbook's ``meta`` tasks (blocks and handlers included)."""
    names: set = set()

    def walk(tasks):
        for task in tasks or []:
            if not isinstance(task, dict):
                continue
            if "meta" in task or "ansible.builtin.meta" in task:
                names.add(task.get("name"))
            for key in ("block", "rescue", "always"):
                walk(task.get(key))

    try:
        plays = yaml.safe_load(textwrap.dedent(playbook)) or []
    except yaml.YAMLError:  # (tags only Ansible's loader knows: nothing to leave out)
        plays = []
    for play in plays if isinstance(plays, list) else []:
        if isinstance(play, dict):
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                walk(play.get(key))
    names.discard(None)
    return names


def _by_host(tasks: dict) -> dict:
    out: dict = {}
    for (task, host), status in tasks.items():
        out.setdefault(host, {})[task] = status
    return out


def _per_host(what: str, a: dict, b: dict) -> list[str]:
    """Differences host by host; hosts with the same differences are reported once."""
    groups: dict = {}
    for host in sorted(set(a) | set(b)):
        lines = tuple(_diff_maps(what, a.get(host), b.get(host)))
        if lines:
            groups.setdefault(lines, []).append(host)
    out = []
    for lines, hosts in groups.items():
        out += [f"[{', '.join(hosts)}] {line}" for line in lines]
    return out


def _strip(value, ignore=()):
    if isinstance(value, dict):
        return {k: _strip(v, ignore) for k, v in value.items() if k not in VOLATILE and k not in ignore}
    if isinstance(value, list):
        return [_strip(v, ignore) for v in value]
    return value


def _diff_maps(what: str, a, b, path: str = "") -> list[str]:
    """Readable differences between two JSON-like values (ansible's first)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"{what} {where}: gfsdeploy has none; ansible-playbook: {_short(a[key])}")
            elif key not in a:
                out.append(f"{what} {where}: ansible-playbook has none; gfsdeploy: {_short(b[key])}")
            else:
                out += _diff_maps(what, a[key], b[key], where)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _diff_maps(what, x, y, f"{path}[{i}]")
        return out
    if a != b:
        if isinstance(a, str) and isinstance(b, str) and ("\n" in a or "\n" in b):
            diff = "\n      ".join(difflib.unified_diff(a.splitlines(), b.splitlines(), "ansible-playbook",
                                                         "gfsdeploy", lineterm=""))
            return [f"{what} {path}:\n      {diff}"]
        return [f"{what} {path}: ansible-playbook {_short(a)} != gfsdeploy {_short(b)}"]
    return []


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 300 else text[:300] + "…"


# -- the harness --------------------------------------------------------------------------
class Compat:
    """Two sides of a lab (see the module docstring)."""

    def __init__(self, lab, workdir: Path, hosts: int = 2):
        if len(lab.nodes) < 2 * hosts:
            raise ValueError(f"a lab of {2 * hosts} nodes is needed, this one has {len(lab.nodes)}")
        self.lab = lab
        self.workdir = Path(workdir)
        self.names = [f"node{i + 1}" for i in range(hosts)]
        self.sides = {"ansible": lab.nodes[:hosts], "gfsdeploy": lab.nodes[hosts:2 * hosts]}
        self.exe = ansible_playbook()
        self.counter = 0

    # -- inventories and runs ---------------------------------------------------------
    def node(self, side: str, host: str):
        return self.sides[side][self.names.index(host)]

    def inventory(self, side: str, vars: dict | None = None, groups: dict | None = None,
                  host_vars: dict | None = None) -> Path:
        """An Ansible YAML inventory of this side: ``node1..N`` at the side's addresses.
        ``groups``: group → host names; ``host_vars``: host → vars (the same on both sides)."""
        hosts = {}
        for name, node in zip(self.names, self.sides[side]):
            hosts[name] = {"ansible_host": node.ip, **((host_vars or {}).get(name) or {})}
        data = {"all": {"vars": {"ansible_user": "root",
                                 "ansible_ssh_private_key_file": str(self.lab.key_path),
                                 "ansible_python_interpreter": "/usr/bin/python3",
                                 "gfsdeploy_known_hosts": str(self.lab.known_hosts_path),
                                 **(vars or {})},
                        "hosts": hosts}}
        if groups:
            data["all"]["children"] = {g: {"hosts": {h: {} for h in members}} for g, members in groups.items()}
        path = self.workdir / f"inventory-{side}-{self.counter}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def write_playbook(self, text: str, *, registered=(), name: str = "playbook") -> Path:
        """The playbook file (``text`` dedented), plus the play that dumps ``registered``."""
        self.counter += 1
        text = textwrap.dedent(text).strip("\n") + "\n"
        if registered:
            mapping = ", ".join(f"{n!r}: ({n} if {n} is defined else 'UNDEFINED')" for n in registered)
            text += textwrap.dedent(f"""\
                - hosts: all
                  gather_facts: false
                  tasks:
                    - name: "{DUMP_TASK}"
                      copy:
                        dest: {DUMP_PATH}
                        content: "{{{{ {{{mapping}}} }}}}"
                """)
        path = self.workdir / f"{name}-{self.counter}.yaml"
        path.write_text(text)
        return path

    def ansible(self, playbook: Path, inventory: Path, *, check: bool = False, diff: bool = False,
                extra_vars: dict | None = None) -> Run:
        if not self.exe:
            raise RuntimeError("ansible-playbook is not installed (pip install ansible-core: the `test` extra)")
        log = self.workdir / f"ansible-{self.counter}-{'check' if check else 'run'}.jsonl"
        log.unlink(missing_ok=True)
        tmp = self.workdir / "ansible-tmp"
        tmp.mkdir(exist_ok=True)
        cfg = tmp / "ansible.cfg"  # empty: no user or system configuration leaks in
        cfg.touch()
        ssh_args = (f"-F /dev/null -o UserKnownHostsFile={self.lab.known_hosts_path} "
                    "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes "
                    "-o ControlMaster=auto -o ControlPersist=30s")
        env = dict(os.environ, COMPAT_LOG=str(log), ANSIBLE_HOME=str(tmp / "home"),
                   ANSIBLE_CALLBACK_PLUGINS=str(HERE / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="compat_log", ANSIBLE_SSH_ARGS=ssh_args,
                   ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp / "cp"), ANSIBLE_PIPELINING="True",
                   ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_RETRY_FILES_ENABLED="False",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp / "local"), ANSIBLE_CONFIG=str(cfg),
                   ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_SYSTEM_WARNINGS="False")
        argv = [self.exe, "-i", str(inventory), str(playbook)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.workdir, timeout=600)
        run = Run("ansible-playbook", proc.returncode, proc.stdout, proc.stderr)
        if log.exists():
            for line in log.read_text().splitlines():
                record = json.loads(line)
                if "recap" in record:
                    run.recap = record["recap"]
                    continue
                key = (record["task"], record["host"])
                run.tasks[key] = record["status"]
                run.results[key] = record["result"]
            for (task, host), status in run.tasks.items():  # gfsdeploy reads facts in its batched read
                if task == "Gathering Facts" and status == "ok" and host in run.recap:
                    run.recap[host]["ok"] -= 1
        return run

    def gfsdeploy(self, playbook: Path, inventory: Path, *, mode: str = "apply",
                  extra_vars: dict | None = None) -> Run:
        argv = [sys.executable, "-m", "gfsdeploy", mode, str(inventory), "-p", str(playbook), "--json"]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.workdir, timeout=600)
        run = Run("gfsdeploy", proc.returncode, proc.stdout, proc.stderr)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return run
        for host, info in (data.get("hosts") or {}).items():
            run.recap[host] = dict(info.get("counts") or {})
            for step in info.get("steps", []):
                status = step["status"]
                if status == "ok" and (step.get("error") or "").startswith("(ignored)"):
                    status = "ignored"
                # a failure a rescue handled is a failed task for Ansible too (recap: rescued=1)
                status = {"pending": "changed", "blocked": "skipped", "rescued": "failed"}.get(status, status)
                key = (step["task"], host)
                if key in run.tasks and run.tasks[key] != status:
                    status = "changed" if "changed" in (status, run.tasks[key]) else status
                run.tasks[key] = status
                run.results[key] = step
        return run

    # -- reading the nodes -----------------------------------------------------------------
    def exec(self, side: str, host: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
        node = self.node(side, host)
        res = self.lab.exec(node.name, ["sh", "-c", script], timeout=60)
        if check and res.returncode != 0:
            raise RuntimeError(f"{script!r} on {node.name} ({side}/{host}) exited {res.returncode}: {res.stderr}")
        return res

    def each(self, script: str) -> None:
        """Run ``script`` on every node of both sides (setup and reset between playbooks)."""
        for side in self.sides:
            for host in self.names:
                self.exec(side, host, script)

    def normalise(self, side: str, host: str, value):
        node = self.node(side, host)
        text = json.dumps(value)
        text = re.sub(rf"(?<![\d.]){re.escape(node.ip)}(?![\d])", "<ip>", text)
        text = re.sub(rf"\b{re.escape(node.name)}\b", "<hostname>", text)
        return json.loads(text)

    def state(self, side: str, spec: Spec, hosts=None) -> dict:
        out = {}
        for host in hosts or self.names:
            node = self.node(side, host)
            res = self.lab.exec(node.name, ["/usr/bin/python3", "-c", _READ],
                                input=json.dumps({"files": spec.files, "trees": spec.trees}), timeout=60)
            if res.returncode != 0:
                raise RuntimeError(f"reading state on {node.name} failed: {res.stderr}")
            got = {"files": json.loads(res.stdout)} if spec.files or spec.trees else {}
            if spec.commands:
                got["commands"] = {}
                for label, script in spec.commands.items():
                    r = self.lab.exec(node.name, ["sh", "-c", script], timeout=60)
                    got["commands"][label] = {"rc": r.returncode, "stdout": r.stdout}
            out[host] = self.normalise(side, host, got)
        return out

    def registered(self, side: str, hosts=None) -> dict:
        out = {}
        for host in hosts or self.names:
            res = self.exec(side, host, f"cat {DUMP_PATH} 2>/dev/null; rm -f {DUMP_PATH}", check=False)
            try:
                out[host] = self.normalise(side, host, json.loads(res.stdout)) if res.stdout.strip() else None
            except ValueError:
                out[host] = {"unparsable dump": res.stdout[:500]}
        return out

    # -- the comparisons -------------------------------------------------------------------
    def run_both(self, playbook: str, *, state: Spec | None = None, registered=(), vars: dict | None = None,
                 groups: dict | None = None, host_vars: dict | None = None, reset: str | None = None,
                 twice: bool = True, ignore=(), hosts=None, side_vars: dict | None = None,
                 recap: bool = False) -> Pair:
        """Run ``playbook`` under both tools (after ``reset`` on every node); return the
        :class:`Pair` (call ``assert_same()``). ``ignore``: register keys not compared;
        ``recap``: compare the recap's counts per host too;
        ``side_vars``: side → vars of that side only (e.g. a controller path per tool)."""
        if reset:
            self.each(reset)
        path = self.write_playbook(playbook, registered=registered)
        metas = _meta_tasks(playbook)  # Ansible's callbacks see no result of a meta task that ran
        inv = {side: self.inventory(side, {**(vars or {}), **((side_vars or {}).get(side) or {})}, groups,
                                    host_vars) for side in self.sides}
        spec = state or Spec()

        def once() -> Pair:
            runs = {}
            for side, tool in (("ansible", self.ansible), ("gfsdeploy", self.gfsdeploy)):
                run = tool(path, inv[side])
                run.tasks = {k: v for k, v in run.tasks.items() if k[0] != DUMP_TASK and k[0] not in metas}
                run.state = self.state(side, spec, hosts)
                if registered:
                    run.registered = self.registered(side, hosts)
                runs[side] = run
            return Pair(runs["ansible"], runs["gfsdeploy"], ignore=tuple(ignore), recap=recap)

        first = once()
        if twice:
            first.again = once()
        return first

    def plan_vs_check(self, playbook: str, *, vars: dict | None = None, groups: dict | None = None,
                      host_vars: dict | None = None, reset: str | None = None) -> "Check":
        """``ansible-playbook --check --diff`` on one side, ``gfsdeploy plan --json`` on the
        other, from the same state (after ``reset``); nothing may change on either side."""
        if reset:
            self.each(reset)
        path = self.write_playbook(playbook, name="check")
        a = self.ansible(path, self.inventory("ansible", vars, groups, host_vars), check=True, diff=True)
        g = self.gfsdeploy(path, self.inventory("gfsdeploy", vars, groups, host_vars), mode="plan")
        return Check(a, g)


# -- plan vs --check --diff ------------------------------------------------------------------
_FIELD = re.compile(r"^(\w+): (?:(.*?) -> )?(.*)$")


def ansible_diff_lines(result: dict) -> tuple[list[str], dict]:
    """(content lines, {field: new value}) from an Ansible result's ``diff``
    (``before``/``after`` text or mappings; loops: every item's)."""
    diffs = []
    for item in [result, *(result.get("results") or [])]:
        d = item.get("diff") if isinstance(item, dict) else None
        if d:
            diffs += d if isinstance(d, list) else [d]
    lines, fields = [], {}
    for d in diffs:
        before, after = d.get("before"), d.get("after")
        if isinstance(before, dict) or isinstance(after, dict):
            before, after = before or {}, after or {}
            for key in set(before) | set(after):
                if key != "path" and before.get(key) != after.get(key):
                    fields[key] = _norm_field(key, after.get(key))
            continue
        if before is None and after is None:
            continue
        for line in difflib.unified_diff(str(before or "").splitlines(), str(after or "").splitlines(), lineterm=""):
            if line[:1] in "+-" and not line.startswith(("+++", "---")):
                lines.append(line)
    return sorted(lines), fields


def gfsdeploy_diff_lines(step: dict) -> tuple[list[str], dict]:
    lines, fields = [], {}
    for change in step.get("changes", []):
        if change["action"] == "!":
            continue
        for line in (change.get("diff") or "").splitlines():
            if line.startswith(("+++", "---", "@@", "\\")):
                continue
            if line[:1] in "+-":
                lines.append(line)
                continue
            m = _FIELD.match(line)
            if m:
                fields[m.group(1)] = _norm_field(m.group(1), m.group(3))
    return sorted(lines), fields


def _norm_field(key: str, value):
    if key == "mode" and value is not None:
        try:
            return "%04o" % (int(value, 8) if isinstance(value, str) else int(value))
        except ValueError:
            return value
    return None if value is None else str(value)


@dataclass
class Check:
    ansible: Run
    gfsdeploy: Run

    def would_change(self, run: Run) -> dict:
        """(task, host) → would it change (or run at apply). Ansible skips command/shell in
        check mode with "would have run": that is gfsdeploy's ``~ command`` or, when the
        task says ``changed_when: false``, its ``<= command`` (both run on apply)."""
        out = {}
        for key, status in run.tasks.items():
            if key[0] == "Gathering Facts":  # Ansible's implicit setup; gfsdeploy's facts come with its reads
                continue
            if status in ("changed", "ok"):
                out[key] = status == "changed"
                # gfsdeploy's "<=": a command that runs at apply but changes nothing (changed_when:
                # false) — Ansible's check mode skips it with "would have run"
                changes = run.results.get(key, {}).get("changes") or []
                if run.tool == "gfsdeploy" and any(c.get("action") == "<=" for c in changes):
                    out[key] = True
            elif status == "skipped" and "would have run" in str(run.results.get(key, {}).get("msg", "")):
                out[key] = True
        return out

    def differences(self, *, fields: tuple = ("mode", "owner", "group")) -> list[str]:
        out = []
        if self.ansible.rc != 0:
            out.append(f"ansible-playbook --check failed (exit {self.ansible.rc})")
        if self.gfsdeploy.rc not in (0, 2):
            out.append(f"gfsdeploy plan failed (exit {self.gfsdeploy.rc})")
        a, g = self.would_change(self.ansible), self.would_change(self.gfsdeploy)
        out += _per_host("would change", _by_host(a), _by_host(g))
        for key in sorted(set(a) & set(g)):
            if not (a[key] and g[key]):
                continue
            a_lines, a_fields = ansible_diff_lines(self.ansible.results[key])
            g_lines, g_fields = gfsdeploy_diff_lines(self.gfsdeploy.results[key])
            if a_lines != g_lines:
                out += _diff_maps(f"diff of {key[0]!r} @ {key[1]}", "\n".join(a_lines), "\n".join(g_lines))
            for name in fields:
                if name in a_fields and name in g_fields and a_fields[name] != g_fields[name]:
                    out.append(f"diff of {key[0]!r} @ {key[1]}: {name} -> ansible {a_fields[name]}, "
                               f"gfsdeploy {g_fields[name]}")
        return out

    def assert_same(self, **kw) -> None:
        problems = self.differences(**kw)
        if problems:
            raise AssertionError("gfsdeploy plan and ansible-playbook --check --diff differ:\n  " +
                                 "\n  ".join(problems) + "\n" + self.ansible.output() + "\n" +
                                 self.gfsdeploy.output())


# -- Ansible collections (ansible.posix …) -----------------------------------------------------
def has_collections() -> bool:
    """ansible.posix and community.general are installed (PyPI's ``ansible``: the test extra)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(f"ansible_collections.{c}") is not None
                   for c in ("ansible.posix", "community.general"))
    except ModuleNotFoundError:
        return False


def run_local_both(tmp_path: Path, playbook: str, hosts: tuple = ("localhost",), gfsdeploy_args: tuple = (),
                   fails: bool = False, prepare=None, host_vars: dict | None = None,
                   ansible_args: tuple = ()) -> dict:
    """``playbook`` (in ``tmp_path``, beside its templates/ and vars files) under
    ansible-playbook and ``gfsdeploy apply`` on local hosts (``connection: local``, no
    lab), each tool with its own directory ``dir``: ``{tool: Path of that directory}``.
    ``fails``: both must exit non-zero (a host fails), else both must succeed.
    ``prepare(dir)``: fills each tool's directory before its run. Each tool's output is
    left in ``tmp_path/<tool>.log``. ``host_vars``: host →
    its variables (the same for both tools; a host may connect otherwise than locally)."""
    exe = ansible_playbook()
    assert exe, "ansible-playbook is missing: install the `test` extra (ansible-core)"
    pb = tmp_path / "pb.yaml"
    pb.write_text(playbook)
    out = {}
    for tool in ("ansible", "gfsdeploy"):
        d = tmp_path / tool
        d.mkdir()
        if prepare is not None:
            prepare(d)
        inv = tmp_path / f"inv-{tool}.yaml"
        inv.write_text(json.dumps({"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "gfsdeploy_lock_dir": f"{tmp_path}/lock-{tool}", "dir": str(d)},
            "hosts": {h: dict((host_vars or {}).get(h) or {}) for h in hosts}}}))
        if tool == "ansible":
            cfg = tmp_path / "ansible.cfg"
            cfg.touch()
            env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_HOME=str(tmp_path / "ah"), ANSIBLE_NOCOLOR="1",
                       ANSIBLE_LOCAL_TEMP=str(tmp_path / "at"))
            argv = [exe, "-i", str(inv), str(pb), *ansible_args]
        else:
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            argv = [sys.executable, "-m", "gfsdeploy", "apply", str(inv), "-p", str(pb), *gfsdeploy_args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        (tmp_path / f"{tool}.log").write_text(proc.stdout + proc.stderr)
        assert (proc.returncode != 0) is fails, (tool, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        out[tool] = d
    return out
