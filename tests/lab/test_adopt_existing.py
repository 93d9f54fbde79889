"""Adopting a deployment gfsdeploy did not make, through the real CLI over real SSH:
objects shaped like gk-deploy's and kubespray's former heketi role's are created with
plain kubectl on the master; the plan names who made them and either refuses (another
admin key) or shows how each object changes (-/+ where a selector differs), apply
adopts them without a 422, never deletes kubespray's production heketi Service (it
carries deploy-heketi=support), and a second plan has nothing to do. Checked with
kubectl on the master and heketi's API, not through gfsdeploy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.foreign_deployments import gk_deploy, kubespray, kubespray_storageclass

pytestmark = pytest.mark.lab

OURS = ["daemonset/glusterfs", "deployment/heketi", "service/heketi", "secret/heketi-config-secret",
        "serviceaccount/heketi-service-account", "secret/heketi-storageclass-secret"]


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=900)


def kubectl(lab, *args, stdin=None, check=True):
    argv = lab.ssh_argv("k8s-1") + ["kubectl " + " ".join(args)]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def get(lab, what):
    return json.loads(kubectl(lab, "get", what, "-o", "json"))


def keys(lab):
    inv = lab.inventory_path.read_text()
    import yaml

    values = yaml.safe_load(inv)["all"]["vars"]
    return values["heketi_admin_key"], values["heketi_user_key"]


def replace_with(lab, objects):
    """Remove gfsdeploy's objects of the same names and create the foreign ones (kubectl create)."""
    kubectl(lab, "delete", *OURS, "clusterrolebinding/heketi-gluster-admin", "storageclass/glusterfs",
            "--ignore-not-found", "--wait=true")
    kubectl(lab, "create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))


def test_existing_deployments_are_refused_or_adopted(fresh_lab):
    lab, inv = fresh_lab, str(fresh_lab.inventory_path)
    admin, user = keys(lab)
    first = gfs("apply", inv, "-e", "gluster_smoke_test=false")
    assert first.returncode == 0, first.stdout + first.stderr

    # gk-deploy's shapes with another admin key: refused in the plan, nothing changed
    replace_with(lab, gk_deploy("default", "not-the-inventory-key", user))
    before = get(lab, "deployment/heketi")
    refused = gfs("plan", inv, "-e", "gluster_smoke_test=false")
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out
    assert "made by gk-deploy (gluster-kubernetes)" in out
    assert "uses another heketi admin key than the inventory's heketi_admin_key" in out
    assert "env HEKETI_ADMIN_KEY of Deployment default/heketi" in out
    assert "not-the-inventory-key" not in out and "Traceback" not in out
    after = get(lab, "deployment/heketi")   # (its controller writes status meanwhile)
    assert (after["spec"], after["metadata"]["labels"], after["metadata"]["generation"]) == \
        (before["spec"], before["metadata"]["labels"], before["metadata"]["generation"])

    # kubespray's shapes with the inventory's key: adopted
    kubectl(lab, "delete", "clusterrolebinding/heketi-sa-view")
    replace_with(lab, kubespray("default", admin, user))
    heketi_ip = get(lab, "service/heketi")["spec"]["clusterIP"]
    kubectl(lab, "create", "-f", "-", stdin=json.dumps(kubespray_storageclass(heketi_ip, admin)))
    plan = gfs("plan", inv, "-e", "gluster_smoke_test=false")
    text = plan.stdout
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert ("! existing GlusterFS deployment in namespace default made by kubespray's former heketi role "
            "(contrib/network-storage/heketi): gfsdeploy adopts it") in text
    assert "-/+ kubernetes DaemonSet default/glusterfs" in text and "-/+ kubernetes Deployment default/heketi" in text
    assert '- spec.selector.matchLabels.name: "heketi"   # forces replacement' in text
    assert "~ kubernetes Service default/heketi" in text and '- metadata.labels.deploy-heketi: "support"' in text
    assert "! kubernetes Service default/heketi matches deploy-heketi but was not created by gfsdeploy" in text
    assert "422" not in text

    done = gfs("apply", inv, "-e", "gluster_smoke_test=false")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is invalid" not in done.stdout + done.stderr
    service = get(lab, "service/heketi")
    assert service["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "gfsdeploy"
    assert "deploy-heketi" not in service["metadata"]["labels"]
    assert service["spec"]["clusterIP"] == heketi_ip                  # adopted in place, not re-created
    heketi = get(lab, "deployment/heketi")
    assert heketi["spec"]["selector"] == {"matchLabels": {"heketi": "pod"}}
    assert heketi["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "gfsdeploy"
    assert get(lab, "daemonset/glusterfs")["spec"]["selector"]["matchLabels"] == {"glusterfs": "pod",
                                                                                 "glusterfs-node": "pod"}
    assert get(lab, "secret/heketi-db-backup")["metadata"]["name"] == "heketi-db-backup"   # left as is
    assert get(lab, "storageclass/gluster")["parameters"]["restuserkey"]                    # left as is
    from gfsdeploy_glusterfs.heketi_client import HeketiClient

    client = HeketiClient(f"http://{heketi_ip}:8080", "admin", admin)
    assert [client.volume(v)["name"] for v in client.volumes()].count("heketidbstorage") == 1

    again = gfs("plan", inv, "-e", "gluster_smoke_test=false")
    assert again.returncode == 0, again.stdout + again.stderr
