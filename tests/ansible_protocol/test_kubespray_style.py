"""A playbook in the style of kubespray's former heketi contrib playbook — manifests laid
down with `template`, then handed to the playbook's own library module (a kube.py-style
AnsibleModule running kubectl) — against the lab's Kubernetes API, over real SSH: plan,
apply, a no-op plan; an object deleted behind its back shows up in the next plan.
The cluster is asked directly (kubectl in the master node), not through gfsdeploy.

The real kubespray playbook (roles, include_tasks, its own library/kube.py) runs in the
opt-in test at the end when GFSDEPLOY_KUBESPRAY names a local kubespray checkout (the
parent of commit ad26fe77f, where contrib/network-storage/heketi still exists)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
pytest.importorskip("ansible.module_utils.basic", reason="ansible-core (the `test` extra) packs modules")

DATA = Path(__file__).parent / "data" / "kubeapps"
ADMIN_KEY = "adm-7c1f09b2e5"


def gfs(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=timeout)


def kubectl(lab, *args) -> subprocess.CompletedProcess:
    return lab.exec("k8s-1", ["kubectl", *args], timeout=60)


def objects(lab) -> set:
    res = kubectl(lab, "get", "serviceaccount,configmap", "-l", "gfs-protocol", "-o", "name")
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


@pytest.fixture
def kubeapps(lab, tmp_path):
    inv = tmp_path / "inventory.yaml"
    # the admin key is declared sensitive where operators keep it: in the inventory
    text = Path(lab.inventory_path).read_text().replace("  vars:\n", f"  vars:\n    admin_key: !sensitive {ADMIN_KEY}\n", 1)
    assert ADMIN_KEY in text
    inv.write_text(text)
    yield str(inv)
    kubectl(lab, "delete", "serviceaccount,configmap", "-l", "gfs-protocol", "--ignore-not-found=true")
    lab.exec("k8s-1", ["rm", "-rf", "/etc/kubernetes/kubeapps"])


def test_plan_apply_noop_then_drift(lab, kubeapps):
    pb = str(DATA / "site.yaml")
    extra: list = []
    assert objects(lab) == set()

    plan = gfs("plan", kubeapps, "-p", pb, *extra)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    # the manifests do not exist yet: the module's check mode fails, after a pending change on the host
    assert "~ kubeapply GlusterFS" in plan.stdout and "~ kubeapply /etc/kubernetes/kubeapps/config.json" in plan.stdout
    assert "check mode failed, possibly until earlier changes are made: manifest not found" in plan.stdout
    assert objects(lab) == set()
    assert lab.exec("k8s-1", ["test", "-e", "/etc/kubernetes/kubeapps"]).returncode == 1

    apply = gfs("apply", kubeapps, "-p", pb, *extra)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert objects(lab) == {"serviceaccount/gfs-protocol-service-account", "configmap/gfs-protocol-config"}
    config = json.loads(kubectl(lab, "get", "configmap", "gfs-protocol-config", "-o", "json").stdout)
    assert config["data"] == {"nodes": "k8s-1,k8s-2,k8s-3", "admin": ADMIN_KEY}

    again = gfs("plan", kubeapps, "-p", pb, *extra)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout

    # drift: the module's check mode asks the API server, so the plan sees what is gone
    assert kubectl(lab, "delete", "configmap", "gfs-protocol-config").returncode == 0
    drift = gfs("plan", kubeapps, "-p", pb, *extra, "-v")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "+ kubeapply /etc/kubernetes/kubeapps/config.json" in drift.stdout
    assert '+  "kind": "ConfigMap",' in drift.stdout and "library/kubeapply.py" in drift.stdout
    assert gfs("apply", kubeapps, "-p", pb, *extra).returncode == 0
    assert "configmap/gfs-protocol-config" in objects(lab)
    for run in (plan, apply, again, drift):
        assert ADMIN_KEY not in run.stdout + run.stderr


KUBESPRAY = os.environ.get("GFSDEPLOY_KUBESPRAY")


@pytest.mark.skipif(not KUBESPRAY, reason="set GFSDEPLOY_KUBESPRAY to a kubespray checkout at the parent of "
                                          "ad26fe77f to run its heketi contrib playbook")
def test_real_kubespray_heketi_playbook(lab, tmp_path):
    """kubespray's own playbook and library/kube.py, unchanged, from kubespray's directory
    (its ansible.cfg names ./library): plan, apply (GlusterFS DaemonSet, the bootstrap heketi,
    `kubectl exec … heketi-cli` topology load and setup-openshift-heketi-storage, `kubectl cp`
    of heketi-storage.json out of the pod, the DB copy job, the real heketi, the StorageClass),
    a second apply that changes nothing, then a plan in which only kube.py's tasks remain
    (kube.py declares no check mode: known only after apply, never run by plan). The result is
    asked of the cluster directly: heketi's API, kubectl on the master, glusterd on a node."""
    from tests.lab import glusterfs_checks as gc
    from gfsdeploy_glusterfs.heketi_client import HeketiClient

    root = Path(KUBESPRAY)
    playbook = root / "contrib" / "network-storage" / "heketi" / "heketi.yml"
    assert playbook.exists() and (root / "library" / "kube.py").exists(), "not a kubespray checkout with heketi"
    import yaml

    inventory = yaml.safe_load(Path(lab.inventory_path).read_text())
    nodes = list(inventory["all"]["hosts"])
    for host in inventory["all"]["hosts"].values():
        host["ip"] = host["storage_ip"]                      # what kubespray inventories give each node
    inventory["all"]["vars"].update(
        bin_dir="/usr/local/bin", kube_config_dir="/etc/kubernetes",
        heketi_admin_key="adm-secret-1", heketi_user_key="usr-secret-1",
        sensitive_vars=["heketi_admin_key", "heketi_user_key"],
        # from the playbook's inventory.yml.sample
        glusterfs_daemonset={"readiness_probe": {"timeout_seconds": 3, "initial_delay_seconds": 3},
                             "liveness_probe": {"timeout_seconds": 3, "initial_delay_seconds": 10}})
    inventory["all"]["children"] = {
        "kube_control_plane": {"hosts": {nodes[0]: {}}},
        "heketi-node": {"hosts": {n: {"disk_volume_device_1": inventory["all"]["hosts"][n]["devices"][0]}
                                  for n in nodes}}}
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(inventory))
    for node in nodes:
        # a kubespray cluster's nodes have its config dir; the playbook writes manifests into it
        assert lab.exec(node, ["mkdir", "-p", "/etc/kubernetes"]).returncode == 0

    def run(*args):
        return subprocess.run([sys.executable, "-m", "gfsdeploy", *args, str(inv), "-p", str(playbook)],
                              capture_output=True, text=True, cwd=root, timeout=3600)

    plan = run("plan", "-v")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "library/kube.py" in plan.stdout
    apply = run("apply")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    # the cluster, asked directly: Kubernetes objects (kubectl on the master) ...
    made = kubectl(lab, "get", "daemonset/glusterfs", "serviceaccount/heketi-service-account", "deployment/heketi",
                   "service/heketi", "endpoints/heketi-storage-endpoints", "storageclass/gluster", "-o", "name")
    assert made.returncode == 0, made.stderr
    assert kubectl(lab, "get", "deployment/deploy-heketi", "-o", "name").returncode != 0   # bootstrap torn down
    # ... heketi's API (the production heketi, on its Service) ...
    ip = json.loads(kubectl(lab, "get", "service", "heketi", "-o", "json").stdout)["spec"]["clusterIP"]
    topology = HeketiClient(f"http://{ip}:8080", "admin", "adm-secret-1").topology()
    (cluster,) = topology["clusters"]
    assert sorted(n["hostnames"]["manage"][0] for n in cluster["nodes"]) == sorted(nodes)
    assert all([d["state"] for d in n["devices"]] == ["online"] for n in cluster["nodes"])
    (db,) = [v for v in cluster["volumes"] if v["name"] == "heketidbstorage"]
    # ... and GlusterFS itself, on a node: the volume heketi made, replicated on the three nodes
    # (kubespray's pod has its own PID namespace: the CLI runs in all of glusterd's namespaces)
    out = gc.ssh(lab, nodes[1], 'nsenter -t "$(pgrep -x glusterd)" -m -n -p -r -w -- '
                                "gluster --mode=script volume info heketidbstorage")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Type: Replicate" in out.stdout and "Status: Started" in out.stdout, out.stdout
    bricks = [line.split(":", 2)[1].strip() for line in out.stdout.splitlines() if line.startswith("Brick") and
              line[5:6].isdigit()]
    assert sorted(gc.node_of_ip(lab, host) for host in bricks) == sorted(nodes), out.stdout
    assert db["durability"]["replicate"]["replica"] == 3
    # a second apply changes nothing; the plan after it has only kube.py's unknowable tasks
    again = run("apply")
    assert again.returncode == 0, again.stdout + again.stderr
    recap = [line.split() for line in again.stdout.splitlines() if line.strip().startswith(tuple(nodes))]
    assert recap and all("changed=0" in line for line in recap), again.stdout
    # The plan after it claims no definite change: what remains is what a plan cannot know —
    # kube.py's tasks (no check mode), and steps whose condition, arguments or templated
    # content come from the playbook's kubectl reads (plain `command` + changed_when: false:
    # they run at apply only, as in Ansible's check mode, where they are skipped)
    noop = run("plan")
    assert noop.returncode in (0, 2), noop.stdout + noop.stderr
    entries: list[list[str]] = []
    for line in noop.stdout.splitlines():
        if line.lstrip().startswith(("+ ", "~ ", "- ", "-/+ ")) and "#" in line:
            entries.append([line])
        elif entries and line.startswith(" " * 6):
            entries[-1].append(line)
    assert any(e[0].lstrip().startswith("~ kube ") for e in entries), noop.stdout
    definite = [e for e in entries if not any("known after apply" in x or "known only after apply" in x
                                              for x in e)]
    assert not definite, noop.stdout
    for proc in (plan, apply, again, noop):
        assert "adm-secret-1" not in proc.stdout + proc.stderr
