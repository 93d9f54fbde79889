"""Issue 4 on the lab, over real SSH: fresh nodes → plan → apply → independent
checks → no-op → hand-made drift on one node → plan shows only that → apply
repairs it and keeps the user's line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab

PREPARE = "playbooks/prepare.yaml"
RULES = ["-A heketi -p tcp -m state --state NEW -m tcp --dport 24007 -j ACCEPT",
         "-A heketi -p tcp -m state --state NEW -m tcp --dport 24008 -j ACCEPT",
         "-A heketi -p tcp -m state --state NEW -m tcp --dport 2222 -j ACCEPT",
         "-A heketi -p tcp -m state --state NEW -m tcp --dport 49152:49251 -j ACCEPT"]


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=900)


def sh(lab, node, script):
    return lab.exec(node, ["sh", "-c", script], check=True).stdout


def test_prepare_on_fresh_lab(fresh_lab):
    lab, inv = fresh_lab, str(fresh_lab.inventory_path)
    names = [n.name for n in lab.nodes]

    plan = gfs("plan", inv, "-p", PREPARE, "--json")
    assert plan.returncode == 2, plan.stderr
    data = json.loads(plan.stdout)
    for name in names:
        resources = [c["resource"] for s in data["hosts"][name]["steps"] for c in s["changes"]]
        actions = {c["resource"]: c["action"] for s in data["hosts"][name]["steps"] for c in s["changes"]}
        assert "file /etc/modules-load.d/glusterfs.conf" in resources
        assert actions["file /etc/hosts"] == "~"
        assert any(r.startswith("packages ") and "glusterfs-client" in r and "lvm2" in r for r in resources)
        assert "iptables chain heketi" in resources
        assert sum(1 for r in resources if r.startswith("iptables -A heketi")) == 4
        assert "iptables -I INPUT -j heketi" in resources
        # the lab's kernel cannot load modules: a warning, shown, never silent
        assert sum(1 for a in actions.values() if a == "!") == 3
    # plan changed nothing
    assert "heketi" not in sh(lab, "k8s-1", "iptables -S")
    assert "k8s-2" not in sh(lab, "k8s-1", "grep -v 127.0 /etc/hosts || true")

    apply = gfs("apply", inv, "-p", PREPARE, "--json")
    assert apply.returncode == 0, apply.stdout[-3000:] + apply.stderr
    data = json.loads(apply.stdout)
    for name in names:
        host = data["hosts"][name]
        assert sum(c["action"] == "!" for s in host["steps"] for c in s["changes"]) == 3  # the warnings
        # the read, then every change in one script — the package install, the files, the
        # rules, their save, the boot unit and its enabling (the master also takes the
        # run's lock); main before: 13 on the master, 12 on the others
        assert host["round_trips"] <= (3 if name == "k8s-1" else 2), (name, host["round_trips"])

    for node in lab.nodes:
        hosts = sh(lab, node.name, "cat /etc/hosts")
        for other in lab.nodes:
            assert f"{other.ip} {other.name}" in hosts
        rules = sh(lab, node.name, "iptables -S")
        for rule in RULES + ["-A INPUT -j heketi"]:
            assert rules.count(rule) == 1, rules
        assert "install ok installed" in sh(lab, node.name, "dpkg -s glusterfs-client lvm2 | grep Status")
        assert sh(lab, node.name, "cat /etc/modules-load.d/glusterfs.conf") == "dm_thin_pool\ndm_snapshot\ndm_mirror\n"
        # persisted: the chain and its INPUT jump only, restored at boot by a unit
        saved = sh(lab, node.name, "cat /etc/iptables/gfsdeploy-heketi.rules")
        assert "-A heketi -p tcp" in saved and "-I INPUT -j heketi" in saved
        assert all(line.startswith(("*filter", ":heketi ", "-A heketi ", "-I INPUT -j heketi", "COMMIT"))
                   for line in saved.splitlines()), saved
        assert "gfsdeploy-iptables-heketi.service" in sh(
            lab, node.name, "ls /etc/systemd/system/multi-user.target.wants/")
    # nothing reached the host
    assert "heketi" not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout

    again = gfs("plan", inv, "-p", PREPARE)
    assert again.returncode == 0, again.stdout + again.stderr

    second = gfs("apply", inv, "-p", PREPARE, "--json")
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    for name in names:
        host = data["hosts"][name]
        assert host["counts"]["changed"] == 0
        # a second apply sends no changing command at all: only the one batched read
        assert host["commands"] == {"read": 1, "run": 0}, host["commands"]

    # drift by hand on k8s-2 only: one rule deleted, a user line added to /etc/hosts
    sh(lab, "k8s-2", "iptables -D heketi -p tcp -m state --state NEW -m tcp --dport 2222 -j ACCEPT")
    sh(lab, "k8s-2", "echo '192.0.2.7 my-own-line' >> /etc/hosts")
    drift = gfs("plan", inv, "-p", PREPARE, "--json")
    assert drift.returncode == 2, drift.stderr
    data = json.loads(drift.stdout)
    changed = {name: [(c["action"], c["resource"]) for s in data["hosts"][name]["steps"] for c in s["changes"]
                      if c["action"] != "!"] for name in names}
    assert changed["k8s-1"] == [] and changed["k8s-3"] == []
    assert ("+", "iptables -A heketi -p tcp --dport 2222 -m state --state NEW -j ACCEPT") in changed["k8s-2"]
    assert not any("/etc/hosts" in r for _, r in changed["k8s-2"])  # the user's line is not drift

    fix = gfs("apply", inv, "-p", PREPARE)
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert RULES[2] in sh(lab, "k8s-2", "iptables -S")
    assert "192.0.2.7 my-own-line" in sh(lab, "k8s-2", "cat /etc/hosts")
    assert gfs("plan", inv, "-p", PREPARE).returncode == 0
