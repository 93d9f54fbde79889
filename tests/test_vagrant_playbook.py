"""playbooks/kubernetes-lab.yaml: plain Ansible shape with gfsdeploy's modules
only, a task graph without cycles, and idempotent by construction — every
command either only reads (`changed_when: false`; a read that later steps use
also says `check_mode: false`, so `plan` runs it), or is guarded by
`creates:`, or by a `when:` on what a read found. The `when:` conditions are
evaluated here against what the probes print on a fresh VM (everything runs)
and on a working cluster (nothing runs)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOK = os.path.join(ROOT, "playbooks", "kubernetes-lab.yaml")
INVENTORY = os.path.join(ROOT, "inventory", "vagrant.yaml")

MODULES = {"copy", "template", "file", "lineinfile", "blockinfile", "command", "shell", "modprobe",
           "package", "service", "iptables", "assert"}
TASK_KEYS = {"name", "when", "loop", "notify", "register", "changed_when", "check_mode", "tags", "no_log", "needs",
             "id", "until", "retries", "delay"}
PLAY_KEYS = {"name", "hosts", "become", "vars", "tasks", "handlers"}


@pytest.fixture(scope="module")
def plays() -> list:
    with open(PLAYBOOK, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def inventory() -> dict:
    with open(INVENTORY, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def all_tasks(plays, handlers=True):
    for play in plays:
        for task in play["tasks"] + (play.get("handlers", []) if handlers else []):
            yield play, task


def module_of(task) -> str:
    (module,) = [k for k in task if k not in TASK_KEYS]
    return module


def args_of(task) -> dict:
    args = task[module_of(task)]
    return args if isinstance(args, dict) else {"cmd": args}


# -- shape ----------------------------------------------------------------------------

def test_plays_and_tasks_use_known_keys_and_one_module(plays):
    assert [p["hosts"] for p in plays] == ["all", "k8s_master", "all:!k8s_master", "k8s_master"]
    for play in plays:
        assert set(play) <= PLAY_KEYS, play["name"]
        assert play["become"] is True
    for play, task in all_tasks(plays):
        assert task.get("name"), task
        modules = [k for k in task if k not in TASK_KEYS]
        assert len(modules) == 1, f"{task['name']}: {modules}"
        assert modules[0] in MODULES, f"{task['name']}: {modules[0]}"


def test_notify_targets_exist(plays):
    for play, task in all_tasks(plays, handlers=False):
        names = {h["name"] for h in play.get("handlers", [])}
        for target in [task["notify"]] if isinstance(task.get("notify"), str) else task.get("notify", []):
            assert target in names, f"{task['name']} notifies unknown handler {target!r}"


def test_every_command_is_guarded(plays):
    """A command or shell task reads only, or has creates/removes, or a when."""
    for play, task in all_tasks(plays):
        if module_of(task) not in ("command", "shell"):
            continue
        args = args_of(task)
        guarded = (task.get("changed_when") is False or "creates" in args or "removes" in args
                   or "when" in task or task in play.get("handlers", []))
        assert guarded, f"{task['name']!r} would run (and report a change) on every apply"
        if task.get("register") and task.get("changed_when") is False and "until" not in task:
            # what it reads decides later steps: plan must run it (a read, nothing changes);
            # a wait (`until`) only holds the play until the cluster answers: not in plan
            assert task.get("check_mode") is False, f"{task['name']!r}: a registered read needs check_mode: false"


def test_registered_before_used(plays):
    seen: set = set()
    for play, task in all_tasks(plays, handlers=False):
        when = str(task.get("when", ""))
        for name in _registered_names(plays):
            if name in when and "hostvars" not in when:
                assert name in seen, f"{task['name']!r} uses {name} before it is registered"
        if task.get("register"):
            seen.add(task["register"])


def _registered_names(plays) -> set:
    return {t["register"] for _, t in all_tasks(plays) if t.get("register")}


def test_pinned_versions_and_guards(plays):
    tasks = {t["name"]: t for _, t in all_tasks(plays)}
    init_task = tasks["kubeadm init (a half-initialised control plane is reset first)"]
    init = args_of(init_task)
    # not `creates: admin.conf`: kubeadm writes it before the control plane is up
    assert "creates" not in init and init_task["when"] == "control_plane.stdout | trim != 'healthy'"
    assert "--kubernetes-version=v{{ k8s_release }}" in init["cmd"]
    assert "/readyz" in args_of(tasks["Read the control plane (healthy, half-initialised, or none)"])["cmd"]
    ready = tasks["The API server is ready after kubeadm init (readyz, and the node registered)"]
    assert ready["until"] == "control_plane_ready.rc == 0" and ready["retries"] * ready["delay"] >= 300
    # the key comes from a current repository and is checked, not trusted by its path
    key = args_of(tasks["Kubernetes package signing key (from a current repository, fingerprint checked)"])["cmd"]
    assert "{{ k8s_key_fingerprint }}" in key and "'^pub:e:'" in key
    join = args_of(tasks["kubeadm join"])
    assert join["creates"] == "/etc/kubernetes/kubelet.conf"
    token = tasks["Join command for the missing nodes (a bootstrap token valid 30 minutes)"]
    assert token["register"] == "join_command" and token["no_log"] is True
    # it creates a bootstrap token: a change, so not a read-only probe that `plan` would run
    assert "changed_when" not in token and "when" in token
    assert tasks["kubeadm join"]["no_log"] is True  # the command line carries the token


# -- rendering and conditions (the play vars are evaluated as Ansible does: lazily) ---

def _templar():
    from gfsdeploy import templating

    return templating.Templar([ROOT])


def host_vars(inventory, name):
    merged = dict(inventory["all"]["vars"])
    merged.update(inventory["all"]["hosts"][name])
    groups = {"all": list(inventory["all"]["hosts"])}
    for group, body in inventory["all"]["children"].items():
        groups[group] = list(body["hosts"])
    merged.update(inventory_hostname=name, groups=groups)
    return merged


def play_vars(templar, play, variables) -> dict:
    """Resolve play vars that refer to each other, as Ansible's lazy templating does."""
    resolved = dict(variables)
    resolved.update(play["vars"])
    for _ in range(10):
        before = dict(resolved)
        for key in play["vars"]:
            resolved[key] = templar.render(resolved[key], resolved)
        if resolved == before:
            return resolved
    raise AssertionError("play vars do not settle: " + repr({k: resolved[k] for k in play["vars"]}))


def test_play_vars_render(plays, inventory):
    templar = _templar()
    v = play_vars(templar, plays[0], host_vars(inventory, "k8s-2"))
    assert v["k8s_minor"] == "1.25"
    assert v["k8s_release"] == "1.25.16"
    assert v["k8s_apt_repo"] == "https://pkgs.k8s.io/core:/stable:/v1.25/deb/"
    assert v["k8s_pinned"] == "kubeadm=1.25.16-1.1 kubectl=1.25.16-1.1 kubelet=1.25.16-1.1"
    assert v["k8s_node_ip"] == "192.168.186.11"
    assert v["k8s_flannel_iface_regex"] == "^192[.]168[.]186[.]"
    assert v["k8s_untaint_master"] in (True, "True", "true")
    # an inventory can move to another minor and pin its own release
    other = {**host_vars(inventory, "k8s-2"), "kubernetes_version": "1.24"}
    assert play_vars(templar, plays[0], other)["k8s_pinned"].startswith("kubeadm=1.24.17-1.1 ")
    other["kubernetes_release"] = "1.24.3"
    assert play_vars(templar, plays[0], other)["k8s_package_version"] == "1.24.3-1.1"


def test_engine_resolves_play_vars_that_use_other_vars():
    """gfsdeploy must template play vars lazily (as Ansible) for this playbook."""
    templar = _templar()
    assert templar.render("{{ b }}", templar.resolve({"a": "1.25", "b": "v{{ a }}"})) == "v1.25"


FRESH = {  # what the probes print on a new VM (k8s-1 only knows itself)
    "k8s_key_state": "missing\n", "control_plane": "none\n",
    "kube_configs": "differs /root/.kube/config\ndiffers /home/vagrant/.kube/config\n",
    "swap_active": "/dev/sda5\n", "swap_fstab": "UUID=1234 none swap sw 0 0\n", "sysctl_now": "0\n0\n0\n",
    "k8s_installed": "", "apt_held": "", "flannel_ds": "", "k8s_nodes": "k8s-1",
    "master_taints": "node-role.kubernetes.io/control-plane",
}
WORKING = {  # ... and on a working cluster
    "k8s_key_state": "valid\n", "control_plane": "healthy\n",
    "kube_configs": "same /root/.kube/config\nsame /home/vagrant/.kube/config\n",
    "swap_active": "", "swap_fstab": "", "sysctl_now": "1\n1\n1\n",
    "k8s_installed": "kubeadm=1.25.16-1.1\nkubectl=1.25.16-1.1\nkubelet=1.25.16-1.1\n",
    "apt_held": "kubeadm\nkubectl\nkubelet\n", "flannel_ds": "daemonset.apps/kube-flannel-ds\n",
    "k8s_nodes": "k8s-1 k8s-2 k8s-3", "master_taints": "",
}


def _conditions(plays, inventory, probes: dict, join: dict) -> dict:
    """Task name -> [when result per host/item] for every task with a when."""
    templar = _templar()
    registered = {k: {"stdout": v, "changed": False} for k, v in probes.items()}
    registered["join_command"] = join
    hostvars = {h: {**host_vars(inventory, h), **registered} for h in inventory["all"]["hosts"]}
    out: dict = {}
    for play in plays:
        hosts = {"all": ["k8s-1", "k8s-2", "k8s-3"], "k8s_master": ["k8s-1"],
                 "all:!k8s_master": ["k8s-2", "k8s-3"]}[play["hosts"]]
        for host in hosts:
            v = play_vars(templar, play, {**host_vars(inventory, host), **registered, "hostvars": hostvars,
                                          "ansible_user": "vagrant"})
            for task in play["tasks"]:
                if "when" not in task:
                    continue
                for item in task.get("loop") or [None]:
                    result = templar.evaluate(task["when"], {**v, "item": item})
                    out.setdefault(task["name"], []).append(bool(result))
    return out


def test_fresh_vm_runs_every_step(plays, inventory):
    join = {"stdout": "kubeadm join 192.168.186.10:6443 --token abcdef.0123456789abcdef "
                      "--discovery-token-ca-cert-hash sha256:00", "changed": False}
    conditions = _conditions(plays, inventory, FRESH, join)
    skipped = [name for name, results in conditions.items() if not any(results)]
    assert skipped == []


def test_working_cluster_changes_nothing(plays, inventory):
    conditions = _conditions(plays, inventory, WORKING, {"skipped": True, "changed": False})
    would_run = [name for name, results in conditions.items() if any(results)]
    assert would_run == []


@pytest.mark.parametrize("state, runs", [("expired", True), ("other", True), ("unknown", True), ("valid", False)])
def test_an_expired_or_foreign_key_is_replaced(plays, inventory, state, runs):
    conditions = _conditions(plays, inventory, {**WORKING, "k8s_key_state": state + "\n"}, {"skipped": True})
    assert conditions["Kubernetes package signing key (from a current repository, fingerprint checked)"] == [runs] * 3


def test_a_half_initialised_control_plane_is_reset_and_initialised(plays, inventory):
    conditions = _conditions(plays, inventory, {**WORKING, "control_plane": "partial\n"}, {"skipped": True})
    assert conditions["kubeadm init (a half-initialised control plane is reset first)"] == [True]
    templar = _templar()
    task = next(t for _, t in all_tasks(plays) if t["name"].startswith("kubeadm init"))
    v = play_vars(templar, plays[1], {**host_vars(inventory, "k8s-1"), "control_plane": {"stdout": "partial\n"}})
    assert templar.render(args_of(task)["cmd"], v).startswith("kubeadm reset -f && kubeadm init ")
    v["control_plane"] = {"stdout": "none\n"}
    assert templar.render(args_of(task)["cmd"], v).startswith("kubeadm init ")


def test_untaint_only_the_taints_present(plays, inventory):
    probes = {**WORKING, "master_taints": "node-role.kubernetes.io/control-plane"}
    conditions = _conditions(plays, inventory, probes, {"skipped": True})
    assert conditions["Let pods (GlusterFS, heketi) run on the control-plane node too"] == [True, False]


def test_join_token_only_when_a_node_is_missing(plays, inventory):
    probes = {**WORKING, "k8s_nodes": "k8s-1 k8s-2"}
    conditions = _conditions(plays, inventory, probes, {"stdout": "kubeadm join x", "changed": False})
    assert conditions["Join command for the missing nodes (a bootstrap token valid 30 minutes)"] == [True]
    assert conditions["kubeadm join"] == [True, True]  # k8s-2 is then skipped by creates:


# -- the engine's own loader and graph --------------------------------------------------

def test_engine_loads_playbook_and_graph_is_acyclic():
    import networkx as nx

    from gfsdeploy.graph import build_graph
    from gfsdeploy.inventory import load_inventory
    from gfsdeploy.playbook import load_playbook

    playbook = load_playbook(PLAYBOOK)
    assert [len(p.tasks) for p in playbook.plays] == [23, 13, 1, 1]
    graph, tasks = build_graph(playbook, load_inventory(INVENTORY))
    reference = nx.DiGraph(graph.edges())  # networkx checks the engine's own graph
    reference.add_nodes_from(graph.nodes)
    assert nx.is_directed_acyclic_graph(reference)
    hosts_of = {}
    for step in graph.nodes:
        hosts_of.setdefault(tasks[step.task_id].name, set()).add(step.host)
    assert hosts_of["kubeadm init (a half-initialised control plane is reset first)"] == {"k8s-1"}
    assert hosts_of["kubeadm join"] == {"k8s-2", "k8s-3"}
    # joins wait for the token on the master, via the play order
    token = next(s for s in graph.nodes if tasks[s.task_id].register == "join_command")
    join = next(s for s in graph.nodes if tasks[s.task_id].name == "kubeadm join")
    assert nx.has_path(reference, token, join)


def test_ansible_syntax_check():
    """ansible-core is a test dependency: Ansible itself accepts the playbook."""
    done = subprocess.run(["ansible-playbook", "--syntax-check", "-i", INVENTORY, PLAYBOOK], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.lab
def test_plan_against_local_lab(lab):
    """`plan` of this playbook on the local lab's nodes."""
    done = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", str(lab.inventory_path), "-p", PLAYBOOK],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode in (0, 2), done.stdout[-3000:] + done.stderr[-3000:]
    assert "Plan:" in done.stdout


def test_rendered_commands_are_valid_shell(plays, inventory):
    """Every command renders for every host and parses: `sh -n` for shell, shlex for command."""
    import shlex

    templar = _templar()
    registered = {k: {"stdout": v} for k, v in FRESH.items()}
    registered["join_command"] = {"stdout": "kubeadm join 192.168.186.10:6443 --token a.b "
                                            "--discovery-token-ca-cert-hash sha256:00"}
    hostvars = {h: {**host_vars(inventory, h), **registered} for h in inventory["all"]["hosts"]}
    checked = 0
    for play, task in all_tasks(plays):
        if module_of(task) not in ("command", "shell"):
            continue
        for host in ("k8s-1", "k8s-2"):
            v = play_vars(templar, play, {**host_vars(inventory, host), **registered, "hostvars": hostvars,
                                          "ansible_user": "vagrant"})
            args = templar.render(args_of(task), {**v, "item": (task.get("loop") or [None])[0]})
            script = args["cmd"]
            assert "{{" not in script and "{%" not in script, script
            if module_of(task) == "shell":
                done = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, timeout=30)
                assert done.returncode == 0, f"{task['name']}: {done.stderr}"
            else:
                assert shlex.split(script)
            for key in ("creates", "removes"):
                if key in args:
                    assert args[key].startswith("/"), args[key]
            checked += 1
    assert checked > 20
