"""Table-driven plan tests for the kubectl modules: args + live state → changes."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from gfsdeploy import secrets
from gfsdeploy.errors import PreflightError
from gfsdeploy.modules import get
from gfsdeploy.modules.base import HostInfo
from gfsdeploy_glusterfs.modules.kubernetes import field_diff, normalize, readiness
from gfsdeploy.transport.base import Result

HOST = HostInfo(name="k8s-1")

DEPLOY = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "heketi", "labels": {"heketi": "deployment"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"heketi": "pod"}},
             "template": {"metadata": {"labels": {"heketi": "pod"}},
                          "spec": {"containers": [{"name": "heketi", "image": "heketi/heketi:9",
                                                   "ports": [{"containerPort": 8080}]}]}}},
}
SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "heketi", "namespace": "gfs"},
           "spec": {"selector": {"heketi": "pod"}, "ports": [{"port": 8080, "targetPort": 8080}]}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "heketi-config-secret", "namespace": "gfs"},
          "data": {"heketi.json": "eyJrZXkiOiAic2VjcmV0LW9uZSJ9"}}
SC = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "glusterfs"},
      "provisioner": "kubernetes.io/glusterfs", "parameters": {"volumetype": "replicate:3"}}


def served(obj, **status):
    """What the API server returns for ``obj``: defaults and server fields added."""
    live = copy.deepcopy(obj)
    live["metadata"].setdefault("namespace", "default") if live["kind"] not in ("StorageClass",) else None
    live["metadata"].update(uid="0b0e", resourceVersion="42", creationTimestamp="2024-01-01T00:00:00Z",
                            generation=1)
    if live["kind"] == "Deployment":
        c = live["spec"]["template"]["spec"]["containers"][0]
        c.update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
        c["ports"][0]["protocol"] = "TCP"
        live["spec"].update(revisionHistoryLimit=10, progressDeadlineSeconds=600)
        live["status"] = {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}
    if live["kind"] == "Service":
        live["spec"].update(clusterIP="10.96.0.20", type="ClusterIP", sessionAffinity="None")
        live["spec"]["ports"][0]["protocol"] = "TCP"
    if status:
        live["status"] = status
    return live


def with_changes(obj, path, value):
    out = copy.deepcopy(obj)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def k8s_plan(args, live):
    module = get("kubernetes")
    args = module.validate({"wait": "none", **args})
    return module.plan(args, {"live": live}, HOST)


# (id, args, live objects, [(action, resource, diff substrings, sensitive)])
CASES = [
    ("missing -> +", {"definition": DEPLOY}, [],
     [("+", "kubernetes Deployment default/heketi", [], False)]),
    ("equal -> nothing", {"definition": DEPLOY}, [served(DEPLOY)], []),
    ("changed image -> ~ with field diff", {"definition": DEPLOY},
     [served(with_changes(DEPLOY, ["spec", "template", "spec", "containers"],
                          [{"name": "heketi", "image": "heketi/heketi:8", "ports": [{"containerPort": 8080}]}]))],
     [("~", "kubernetes Deployment default/heketi",
       ['spec.template.spec.containers[0].image: "heketi/heketi:8" -> "heketi/heketi:9"'], False)]),
    ("changed replicas", {"definition": with_changes(DEPLOY, ["spec", "replicas"], 2)}, [served(DEPLOY)],
     [("~", "kubernetes Deployment default/heketi", ["spec.replicas: 1 -> 2"], False)]),
    ("label missing on live", {"definition": with_changes(DEPLOY, ["metadata", "labels"], {"heketi": "deployment", "a": "b"})},
     [served(DEPLOY)], [("~", "kubernetes Deployment default/heketi", ['metadata.labels.a: (absent) -> "b"'], False)]),
    ("extra live label ignored", {"definition": DEPLOY},
     [served(with_changes(DEPLOY, ["metadata", "labels"], {"heketi": "deployment", "extra": "x"}))], []),
    ("service: clusterIP and protocol defaults ignored", {"definition": SERVICE}, [served(SERVICE)], []),
    ("service missing: clusterIP known after apply", {"definition": SERVICE}, [],
     [("+", "kubernetes Service gfs/heketi", ["spec.clusterIP: (known after apply)"], False)]),
    ("task namespace applies", {"definition": DEPLOY, "namespace": "gfs"}, [served(DEPLOY)],
     [("+", "kubernetes Deployment gfs/heketi", [], False)]),
    ("cluster-scoped StorageClass equal", {"definition": SC}, [served(SC)], []),
    ("StorageClass volumetype changed", {"definition": with_changes(SC, ["parameters"], {"volumetype": "replicate:2"})},
     [served(SC)], [("~", "kubernetes StorageClass glusterfs",
                     ['parameters.volumetype: "replicate:3" -> "replicate:2"'], False)]),
    ("secret missing: sensitive", {"definition": SECRET}, [],
     [("+", "kubernetes Secret gfs/heketi-config-secret", [], True)]),
    ("secret data changed: diff hidden", {"definition": SECRET},
     [served(with_changes(SECRET, ["data"], {"heketi.json": "b2xk"}))],
     [("~", "kubernetes Secret gfs/heketi-config-secret", ["data.heketi.json: (sensitive) -> (sensitive)"], True)]),
    ("secret equal", {"definition": SECRET}, [served(SECRET)], []),
    ("a v1 List: only the missing one", {"definition": {"apiVersion": "v1", "kind": "List", "items": [SERVICE, DEPLOY]}},
     [served(SERVICE)], [("+", "kubernetes Deployment default/heketi", [], False)]),
    ("absent and present -> -", {"definition": DEPLOY, "state": "absent"}, [served(DEPLOY)],
     [("-", "kubernetes Deployment default/heketi", [], False)]),
    ("absent and missing -> nothing", {"definition": DEPLOY, "state": "absent"}, [], []),
    ("exists but not ready, wait=ready -> wait-only ~",
     {"definition": DEPLOY, "wait": "ready"},
     [served(DEPLOY, observedGeneration=1, replicas=1, readyReplicas=0, updatedReplicas=1)],
     [("~", "kubernetes Deployment default/heketi", ["status: 0/1 ready -> ready (apply waits)"], False)]),
    ("ready and wait=ready -> nothing", {"definition": DEPLOY, "wait": "ready"}, [served(DEPLOY)], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kubernetes_plan(case):
    _, args, live, expected = case
    changes = k8s_plan(args, live)
    assert [(c.action, c.resource) for c in changes] == [(e[0], e[1]) for e in expected]
    for change, (_, _, fragments, sensitive) in zip(changes, expected):
        for fragment in fragments:
            assert fragment in change.diff
        assert change.sensitive is sensitive


def test_secret_values_never_in_diff_or_json():
    secrets.reset()
    module = get("kubernetes")
    args = module.prepare(module.validate({"definition": SECRET}), _Ctx())
    changes = module.plan(args, {"live": [served(with_changes(SECRET, ["data"], {"heketi.json": "b2xk"}))]}, HOST)
    shown = json.dumps(changes[0].to_json())
    assert "eyJrZXkiOiAic2VjcmV0LW9uZSJ9" not in shown and "secret-one" not in shown
    assert "secret-one" not in secrets.redact('heketi.json is {"key": "secret-one"}')
    secrets.reset()


def test_failed_job_is_replaced_and_changed_job_recreated():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "copy", "namespace": "gfs"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "heketi/heketi:9"}]}}}}
    failed = served(job, failed=4, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    [change] = k8s_plan({"definition": job, "wait": "complete"}, [failed])
    assert change.action == "~" and "delete" in change.script and "create --validate=false -f -" in change.script
    done = served(job, succeeded=1, conditions=[{"type": "Complete", "status": "True"}])
    assert k8s_plan({"definition": job, "wait": "complete"}, [done]) == []


def test_scripts_create_or_patch_never_plain_create():
    """A change guarded by a fresh get: patch if it exists by now, else create."""
    [add] = k8s_plan({"definition": DEPLOY}, [])
    assert "get deployment.apps/heketi -n default -o name" in add.script
    assert "patch deployment.apps/heketi -n default --type merge" in add.script
    assert "create --validate=false -f - <<'GFS_EOF_" in add.script
    subprocess.run(["sh", "-n"], input=add.script.encode(), check=True)


def test_hostile_values_stay_inside_the_heredoc(tmp_path):
    """A value full of shell syntax reaches kubectl byte for byte."""
    hostile = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "gfs"},
               "data": {"v": "$(touch /tmp/pwned) `id` ' \" \\ \nEOF\n"}}
    [add] = k8s_plan({"definition": hostile}, [])
    fake = tmp_path / "kubectl"
    fake.write_text("#!/bin/sh\nif [ \"$1\" = get ]; then exit 1; fi\ncat > \"$(dirname \"$0\")/stdin\"\n")
    fake.chmod(0o755)
    script = add.script.replace("kubectl ", f"{fake} ")
    subprocess.run(["sh", "-s"], input=script.encode(), check=True)
    assert json.loads((tmp_path / "stdin").read_text())["data"] == hostile["data"]


FIELD_CASES = [
    ({"a": 1}, {"a": 1, "b": 2}, []),
    ({"a": 1}, {"a": "1"}, []),
    ({"a": True}, {"a": "true"}, [("a", "true", True)]),
    ({"a": [1, 2]}, {"a": [1]}, [("a", [1], [1, 2])]),
    ({"metadata": {"resourceVersion": "1", "name": "x"}}, {"metadata": {"resourceVersion": "9", "name": "x"}}, []),
    ({"status": {"phase": "Bound"}}, {"status": {"phase": "Pending"}}, []),
    ({"spec": {"x": {"y": 1}}}, {"spec": {}}, [("spec.x", "(absent)", {"y": 1})]),
]


@pytest.mark.parametrize("desired,live,expected", FIELD_CASES)
def test_field_diff(desired, live, expected):
    assert field_diff(desired, live) == expected


READY_CASES = [
    ({"kind": "DaemonSet", "metadata": {"generation": 1}, "spec": {"template": {"spec": {"nodeSelector": {"storagenode": "glusterfs"}}}},
      "status": {"desiredNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "observedGeneration": 1}},
     "ready", ("waiting", "2/3 ready")),
    ({"kind": "DaemonSet", "metadata": {}, "spec": {}, "status": {"desiredNumberScheduled": 3, "numberReady": 3}},
     "ready", ("ready", "3/3 ready")),
    ({"kind": "DaemonSet", "metadata": {}, "spec": {"template": {"spec": {"nodeSelector": {"storagenode": "glusterfs"}}}},
      "status": {"desiredNumberScheduled": 0}},
     "ready", ("waiting", "0/0 ready (no node is labelled storagenode=glusterfs)")),
    ({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
      "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1}}, "ready", ("waiting", "1/1 ready")),
    ({"kind": "Job", "metadata": {}, "spec": {}, "status": {"failed": 4, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}},
     "complete", ("failed", "0/1 succeeded, 4 failed: BackoffLimitExceeded Job has reached the specified backoff limit")),
    ({"kind": "Pod", "metadata": {}, "status": {"phase": "Succeeded"}}, "complete", ("ready", "phase Succeeded")),
    ({"kind": "PersistentVolumeClaim", "metadata": {}, "status": {"phase": "Pending"}}, "ready", ("waiting", "phase Pending")),
    (None, "exists", ("waiting", "not found")),
]


@pytest.mark.parametrize("obj,mode,expected", READY_CASES)
def test_readiness(obj, mode, expected):
    assert readiness(obj, mode) == expected


NODES = [{"kind": "Node", "apiVersion": "v1", "metadata": {"name": f"k8s-{i}", "labels": labels}}
         for i, labels in ((1, {"storagenode": "glusterfs"}), (2, {}), (3, {"storagenode": "other"}))]

LABEL_CASES = [
    ({"nodes": ["k8s-1"], "labels": {"storagenode": "glusterfs"}}, []),
    ({"nodes": ["k8s-1", "k8s-2", "k8s-3"], "labels": {"storagenode": "glusterfs"}},
     [("~", "node k8s-2 label storagenode=glusterfs", "label storagenode: (absent) -> glusterfs",
       "kubectl label node k8s-2 storagenode=glusterfs --overwrite"),
      ("~", "node k8s-3 label storagenode=glusterfs", "label storagenode: other -> glusterfs",
       "kubectl label node k8s-3 storagenode=glusterfs --overwrite")]),
    ({"nodes": ["k8s-1", "k8s-2"], "labels": {"storagenode": "glusterfs"}, "state": "absent"},
     [("-", "node k8s-1 label storagenode", "label storagenode: glusterfs -> (absent)",
       "kubectl label node k8s-1 storagenode-")]),
]


@pytest.mark.parametrize("args,expected", LABEL_CASES)
def test_kubernetes_label_plan(args, expected):
    module = get("kubernetes_label")
    changes = module.plan(module.validate(args), {"nodes": NODES}, HOST)
    assert [(c.action, c.resource, c.diff, c.script) for c in changes] == expected


def test_kubernetes_label_unknown_node_is_a_preflight_error():
    module = get("kubernetes_label")
    with pytest.raises(PreflightError) as err:
        module.plan(module.validate({"nodes": ["k8s-4"], "labels": {"storagenode": "glusterfs"}}), {"nodes": NODES}, HOST)
    assert "node 'k8s-4' is not a Kubernetes node (kubectl get nodes shows: k8s-1, k8s-2, k8s-3)" in str(err.value)
    assert "`manage` must match" in str(err.value)


def _item(kind, name, api="v1", owned=False):
    meta = {"name": name, "namespace": "gfs", "labels": {"deploy-heketi": "support"}}
    if owned:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x"}]
    return {"apiVersion": api, "kind": kind, "metadata": meta}


BOOTSTRAP = [_item("Pod", "deploy-heketi-abc", owned=True), _item("Service", "deploy-heketi"),
             _item("Deployment", "deploy-heketi", "apps/v1"), _item("ReplicaSet", "deploy-heketi-1", "apps/v1", owned=True),
             _item("Job", "heketi-storage-copy-job", "batch/v1"), _item("Service", "heketi-storage-endpoints"),
             _item("Service", "deploy-heketi"), _item("Secret", "heketi-storage-secret")]


def test_kubernetes_delete_plan_keeps_and_skips_owned():
    module = get("kubernetes_delete")
    args = module.validate({"kinds": ["all", "service", "jobs", "deployment", "secret"], "selector": "deploy-heketi",
                            "namespace": "gfs", "keep": ["heketi-storage-endpoints"]})
    assert module.probes(args, HOST) == {
        "matching": "kubectl get all,service,jobs,deployment,secret -n gfs --selector deploy-heketi -o json"}
    changes = module.plan(args, {"live": BOOTSTRAP}, HOST)
    assert [(c.action, c.resource) for c in changes] == [
        ("-", "kubernetes Service gfs/deploy-heketi"), ("-", "kubernetes Deployment gfs/deploy-heketi"),
        ("-", "kubernetes Job gfs/heketi-storage-copy-job"), ("-", "kubernetes Secret gfs/heketi-storage-secret")]
    assert changes[0].script == ("kubectl delete service/deploy-heketi deployment.apps/deploy-heketi "
                                 "job.batch/heketi-storage-copy-job secret/heketi-storage-secret -n gfs --ignore-not-found")
    assert module.plan(args, {"live": [BOOTSTRAP[5]]}, HOST) == []


def _facts_state(git_version, service_ip=None):
    service = ({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "heketi"}, "spec": {"clusterIP": service_ip}}
               if service_ip else None)
    return {"server": {"major": "1", "minor": git_version.split(".")[1], "gitVersion": git_version},
            "nodes": NODES, "service": service}


@pytest.mark.parametrize("version", ["v1.26.0", "v1.30.2", "v1.10.0"])
def test_kubernetes_facts_refuses_unsupported(version):
    module = get("kubernetes_facts")
    with pytest.raises(PreflightError) as err:
        module.plan(module.validate({}), _facts_state(version), HOST)
    if version != "v1.10.0":
        assert "in-tree GlusterFS volume plugin and provisioner were removed in Kubernetes 1.26" in str(err.value)
        assert "kadalu" in str(err.value)


def test_kubernetes_facts_values():
    module = get("kubernetes_facts")
    args = module.validate({"service": "heketi", "namespace": "gfs"})
    state = _facts_state("v1.25.3", "10.96.0.20")
    assert module.plan(args, state, HOST) == []
    facts = module.facts(args, state)
    assert facts["version"] == "v1.25.3" and facts["minor"] == 25 and facts["cluster_ip"] == "10.96.0.20"
    assert facts["nodes"] == ["k8s-1", "k8s-2", "k8s-3"]
    from gfsdeploy.templating import is_unknown

    assert is_unknown(module.facts(args, _facts_state("v1.11.0"), check_mode=True)["cluster_ip"])


def test_kubernetes_facts_read_parses_kubectl_output():
    module = get("kubernetes_facts")
    args = module.validate({})
    facts = {"version": Result(0, json.dumps({"clientVersion": {}, "serverVersion": {"gitVersion": "v1.25.3"}})),
             "nodes": Result(0, json.dumps({"kind": "List", "apiVersion": "v1", "items": NODES}))}
    state = module.read(args, facts, _Ctx())
    assert state["server"]["gitVersion"] == "v1.25.3" and len(state["nodes"]) == 3


def test_probe_is_one_kubectl_get_per_namespace():
    module = get("kubernetes")
    args = module.validate({"definition": [SC, SERVICE, DEPLOY, SECRET]})
    assert module.probes(args, HOST) == {
        "get gfs": "kubectl get storageclass.storage.k8s.io/glusterfs service/heketi secret/heketi-config-secret "
                   "-n gfs -o json --ignore-not-found",
        "get default": "kubectl get deployment.apps/heketi -n default -o json --ignore-not-found"}


def test_bad_names_are_refused():
    from gfsdeploy.errors import PlaybookError
    with pytest.raises(PlaybookError):
        normalize([with_changes(DEPLOY, ["metadata", "name"], "Bad Name; rm -rf /")], None, {})


class _Ctx:
    task_name = "t"
    host = HOST
    check_mode = False
