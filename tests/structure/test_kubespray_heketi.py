"""Opt-in: the former kubespray heketi contrib playbook (kubespray's history, the
parent of the commit that removed contrib/network-storage/heketi) loads and plans
unchanged against the lab; its `kube` module runs through Ansible's module
protocol from kubespray's library/ (found through kubespray's ansible.cfg).

Run with KUBESPRAY_DIR pointing at such a kubespray tree (it is not part of this
repository):  KUBESPRAY_DIR=/path/to/kubespray python3 -m pytest tests/structure/test_kubespray_heketi.py
The committed test of the same features on a role tree of ours is test_rolesite.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBESPRAY = os.environ.get("KUBESPRAY_DIR")
PLAYBOOK = "contrib/network-storage/heketi/heketi.yml"

pytestmark = pytest.mark.skipif(not KUBESPRAY, reason="opt-in: set KUBESPRAY_DIR to a kubespray tree with "
                                                      "contrib/network-storage/heketi")


def kubespray_inventory(lab_inventory: Path, out: Path) -> Path:
    """The lab's hosts in kubespray's groups, with the variables its heketi playbook reads."""
    lab = yaml.safe_load(lab_inventory.read_text())["all"]
    v = lab["vars"]
    hosts = {name: {"ansible_host": h["ansible_host"], "ip": h["ansible_host"]} for name, h in lab["hosts"].items()}
    first = sorted(hosts)[0]
    data = {"all": {
        "vars": {**{k: v[k] for k in ("ansible_user", "ansible_ssh_private_key_file", "gfsdeploy_known_hosts",
                                      "heketi_admin_key", "heketi_user_key")},
                 "sensitive_vars": ["heketi_admin_key", "heketi_user_key"],
                 "kernel_modules_unloadable": "warn",  # the lab's kernel loads no modules
                 "bin_dir": "/usr/local/bin", "kube_config_dir": "/etc/kubernetes",
                 "glusterfs_daemonset": {"readiness_probe": {"timeout_seconds": 3, "initial_delay_seconds": 3},
                                         "liveness_probe": {"timeout_seconds": 3, "initial_delay_seconds": 10}}},
        "hosts": hosts,
        "children": {"k8s_cluster": {"children": {
            "kube_control_plane": {"hosts": {first: None}},
            "kube_node": {"hosts": {h: None for h in hosts}},
            "heketi-node": {"vars": {"disk_volume_device_1": "/dev/sdb"}, "hosts": {h: None for h in hosts}}}}}}}
    out.write_text(yaml.safe_dump(data))
    return out


def gfs(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=900, cwd=cwd, env=env)


def test_kubespray_heketi_loads_and_plans_unchanged(lab, tmp_path):
    base = Path(KUBESPRAY)
    assert (base / PLAYBOOK).exists(), f"{base / PLAYBOOK} missing: KUBESPRAY_DIR must hold the heketi contrib"
    inv = kubespray_inventory(Path(lab.inventory_path), tmp_path / "kubespray-lab.yaml")
    graph = gfs("graph", str(inv), "-p", PLAYBOOK, cwd=base)
    assert graph.returncode == 0, graph.stdout + graph.stderr
    assert "role provision, contrib/network-storage/heketi/roles/provision/tasks/bootstrap.yml" in graph.stdout
    plan = gfs("plan", str(inv), "-p", PLAYBOOK, "-v", cwd=base)
    out = plan.stdout + plan.stderr
    assert plan.returncode == 2, out
    assert "Error" not in out and "internal error" not in out, out
    assert "+ file /etc/kubernetes/glusterfs-daemonset.json" in out
    assert "+ file /etc/kubernetes/topology.json" in out
    assert "include_tasks bootstrap.yml" in out and "known only after apply" in out
    assert "library/kube.py" in out and "Ansible module protocol" in out
    # what the lab already has is read, not guessed: the master's kubectl answered
    assert "<= command: /usr/local/bin/kubectl get service heketi-storage-endpoints" in out
    key = yaml.safe_load(Path(lab.inventory_path).read_text())["all"]["vars"]["heketi_admin_key"]
    assert str(key) not in out  # sensitive_vars: the admin key never shows
    as_json = gfs("plan", str(inv), "-p", PLAYBOOK, "--json", cwd=base)
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert {h["round_trips"] for h in data["hosts"].values()} <= {1, 2}
