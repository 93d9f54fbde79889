"""The whole deployment (docs/PROCEDURE.md) through the real CLI, over real
SSH, against the Kubernetes and heketi simulators. Results are checked
independently: kubectl on the master (run inside the node, not by gfsdeploy)
and heketi's REST API straight from the host."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.trust.helpers import assert_no_secret

pytestmark = pytest.mark.lab

SITE = "playbooks/site.yaml"
EXPECTED_OBJECTS = [
    "daemonset.apps/glusterfs", "serviceaccount/heketi-service-account", "secret/heketi-config-secret",
    "service/heketi", "deployment.apps/heketi", "endpoints/heketi-storage-endpoints",
    "service/heketi-storage-endpoints", "secret/heketi-storageclass-secret",
]


def gfs(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=timeout)


def kubectl(lab, *args) -> str:
    return lab.exec("k8s-1", ["kubectl", *args], check=True).stdout


def heketi_keys(lab) -> dict:
    return json.loads((lab.state_dir / "heketi-keys.json").read_text())


def heketi_client(lab):
    from gfsdeploy_glusterfs.heketi_client import HeketiClient

    ip = json.loads(kubectl(lab, "get", "service", "heketi", "-o", "json"))["spec"]["clusterIP"]
    return HeketiClient(f"http://{ip}:8080", "admin", heketi_keys(lab)["heketi_admin_key"])


def fault_file(lab, name: str):
    return lab.state_dir / "sim" / "kubernetes-apiserver-simulator" / name


def set_faults(lab, kubernetes: dict | None = None, heketi: dict | None = None):
    fault_file(lab, "faults.json").write_text(json.dumps(kubernetes or {}))
    fault_file(lab, "heketi-faults.json").write_text(json.dumps(heketi or {}))


def test_whole_deployment(fresh_lab):
    lab, inv = fresh_lab, str(fresh_lab.inventory_path)
    outputs = {}

    plan = gfs("plan", inv)
    outputs["plan"] = plan.stdout + plan.stderr
    assert plan.returncode == 2, plan.stdout + plan.stderr
    for line in ["+ kubernetes DaemonSet default/glusterfs", "+ kubernetes Deployment default/deploy-heketi",
                 "+ kubernetes Job default/heketi-storage-copy-job", "+ kubernetes Deployment default/heketi",
                 "+ kubernetes StorageClass glusterfs", "~ node k8s-2 label storagenode=glusterfs"]:
        assert line in plan.stdout, line
    # heketi's address only exists once its Service does: shown where it is used
    assert "url=http://(known after apply):8080" in plan.stdout
    assert "parameters.resturl: http://(known after apply):8080" in plan.stdout
    assert "\x00" not in plan.stdout
    assert "Plan: " in plan.stdout.splitlines()[-1]
    assert kubectl(lab, "get", "daemonset", "-o", "name").strip() == ""  # plan changed nothing

    apply = gfs("apply", inv)
    outputs["apply"] = apply.stdout + apply.stderr
    assert apply.returncode == 0, apply.stdout + apply.stderr

    # -- independent checks: kubectl on the master ---------------------------------------------
    names = kubectl(lab, "get", "all,secret,sa,endpoints", "-o", "name")
    for obj in EXPECTED_OBJECTS:
        assert obj in names, (obj, names)
    assert "deploy-heketi" not in names  # the bootstrap is gone
    assert "heketi-storage-copy-job" not in names
    ds = json.loads(kubectl(lab, "get", "daemonset", "glusterfs", "-o", "json"))
    assert ds["status"]["numberReady"] == 3 == ds["status"]["desiredNumberScheduled"]
    for node in ("k8s-1", "k8s-2", "k8s-3"):
        labels = json.loads(kubectl(lab, "get", "node", node, "-o", "json"))["metadata"]["labels"]
        assert labels.get("storagenode") == "glusterfs"
    sc = json.loads(kubectl(lab, "get", "storageclass", "glusterfs", "-o", "json"))
    heketi_ip = json.loads(kubectl(lab, "get", "service", "heketi", "-o", "json"))["spec"]["clusterIP"]
    assert sc["provisioner"] == "kubernetes.io/glusterfs"
    assert sc["parameters"]["resturl"] == f"http://{heketi_ip}:8080"
    assert sc["parameters"]["volumetype"] == "replicate:3"
    pvc = json.loads(kubectl(lab, "get", "pvc", "gfsdeploy-smoke-test", "-o", "json"))
    assert pvc["status"]["phase"] == "Bound"
    pod = json.loads(kubectl(lab, "get", "pod", "gfsdeploy-smoke-test", "-o", "json"))
    assert pod["status"]["phase"] == "Succeeded"

    # -- independent checks: heketi's API, from the host ---------------------------------------
    client = heketi_client(lab)
    topology = client.topology()
    assert len(topology["clusters"]) == 1
    nodes = topology["clusters"][0]["nodes"]
    assert sorted(n["hostnames"]["manage"][0] for n in nodes) == ["k8s-1", "k8s-2", "k8s-3"]
    assert sorted(n["hostnames"]["storage"][0] for n in nodes) == sorted(n.ip for n in lab.nodes)
    assert all([d["name"] for d in n["devices"]] == ["/dev/sdb"] for n in nodes)
    volumes = [client.volume(v)["name"] for v in client.volumes()]
    assert volumes.count("heketidbstorage") == 1
    assert len(volumes) == 2  # + the smoke test's PVC

    # -- idempotence ----------------------------------------------------------------------------
    again = gfs("plan", inv)
    outputs["plan2"] = again.stdout + again.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    second = gfs("apply", inv, "--json")
    outputs["apply2"] = second.stdout + second.stderr
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    for name, host in data["hosts"].items():
        assert host["counts"]["changed"] == 0, name
        assert host["commands"]["run"] == 0, (name, host["commands"])  # no create/update/delete at all
    assert [client.volume(v)["name"] for v in client.volumes()].count("heketidbstorage") == 1

    # -- secrets never shown ------------------------------------------------------------------------
    assert_no_secret(outputs, list(heketi_keys(lab).values()))

    # -- teardown: refused while a user's volume claim uses the StorageClass -----------------------
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "user-data"},
             "spec": {"storageClassName": "glusterfs", "accessModes": ["ReadWriteMany"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    lab.exec("k8s-1", ["sh", "-c", f"echo '{json.dumps(claim)}' | kubectl create -f -"], check=True)
    for _ in range(60):
        if json.loads(kubectl(lab, "get", "pvc", "user-data", "-o", "json")).get("status", {}).get("phase") == "Bound":
            break
        time.sleep(1)
    refused = gfs("teardown", inv, "--yes")
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out
    assert "volume claim(s) other than gfsdeploy's smoke test use StorageClass glusterfs: default/user-data (Bound" in out
    assert "--force" in out and "Nothing was changed." in out
    assert "daemonset.apps/glusterfs" in kubectl(lab, "get", "daemonset", "-o", "name")

    # -- like terraform destroy: the plan, then a typed yes ------------------------------------------
    unconfirmed = gfs("teardown", inv, "--force")           # no terminal, no --yes
    out = unconfirmed.stdout + unconfirmed.stderr
    assert unconfirmed.returncode == 1, out
    assert "- kubernetes DaemonSet default/glusterfs" in out and "! volume claim default/user-data" in out
    assert "no terminal to confirm it" in out and "--yes" in out
    answered_no = on_a_terminal(["teardown", inv, "--force"], "no\n")
    assert answered_no.returncode == 1 and "Only 'yes' will be accepted" in answered_no.stdout, answered_no
    assert "Teardown cancelled: nothing was changed." in answered_no.stderr
    assert "daemonset.apps/glusterfs" in kubectl(lab, "get", "daemonset", "-o", "name")

    down = on_a_terminal(["teardown", inv, "--force"], "yes\n")
    assert down.returncode == 0, down.stdout + down.stderr
    left = kubectl(lab, "get", "all,secret,sa,storageclass,pvc", "-o", "name")
    for obj in ["daemonset.apps/glusterfs", "deployment.apps/heketi", "storageclass.storage.k8s.io/glusterfs",
                "secret/heketi-config-secret", "persistentvolumeclaim/gfsdeploy-smoke-test"]:
        assert obj not in left, left
    assert "persistentvolumeclaim/user-data" in left   # the user's claim is never gfsdeploy's to delete
    assert lab.exec("k8s-2", ["wipefs", "-n", "/dev/sdb"]).returncode == 0  # no --wipe-devices: disk untouched


def on_a_terminal(args, answer: str):
    """Run the CLI with a pseudo-terminal as stdin and type ``answer``."""
    import os
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gfsdeploy", *args], stdin=follower, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    os.close(follower)
    os.write(leader, answer.encode())
    try:
        out, err = proc.communicate(timeout=900)
    finally:
        os.close(leader)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("fault,message", [
    ({"kubernetes": {"pod_never_ready": ["glusterfs"]}}, "DaemonSet glusterfs"),
    ({"kubernetes": {"job_fails": ["heketi-storage-copy-job"]}}, "heketi-storage-copy-job"),
    ({"heketi": {"device_add_fails": {"k8s-2": "/dev/sdb"}}}, "/dev/sdb"),
])
def test_fault_then_fix_then_converge(fault, message, tmp_path_factory):
    from tests.conftest import make_lab

    lab = make_lab(tmp_path_factory, 3)
    try:
        inv = str(lab.inventory_path)
        set_faults(lab, **fault)
        failed = gfs("apply", inv, "-e", "gluster_wait_timeout=20")
        out = failed.stdout + failed.stderr
        assert failed.returncode == 1, out
        assert message in out and "Traceback" not in out
        assert "k8s-1" in out  # names the host

        set_faults(lab)  # the cause is fixed
        fixed = gfs("apply", inv)
        out = fixed.stdout + fixed.stderr
        assert fixed.returncode == 0, out
        assert "AlreadyExists" not in out
        client = heketi_client(lab)
        names = [client.volume(v)["name"] for v in client.volumes()]
        assert names.count("heketidbstorage") == 1, names
        topology = client.topology()
        assert len(topology["clusters"]) == 1
        assert sum(len(n["devices"]) for n in topology["clusters"][0]["nodes"]) == 3
        assert gfs("plan", inv).returncode == 0
    finally:
        lab.down()
