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
from gfsdeploy.errors import ModuleError
from gfsdeploy.modules.base import TaskContext
from gfsdeploy.transport.base import Result
from gfsdeploy_glusterfs.modules.kubernetes import (ClusterFacts, KubeState, Refusal, field_diff, key, normalize, parse_refusal,
                                                    readiness)

HOST = HostInfo(name="k8s-1")
MARK = {"app.kubernetes.io/managed-by": "gfsdeploy"}

DEPLOY = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "heketi", "labels": {"heketi": "deployment"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"heketi": "pod"}},
             "template": {"metadata": {"labels": {"heketi": "pod"}},
                          "spec": {"containers": [{"name": "heketi", "image": "heketi/heketi:9",
                                                   "env": [{"name": "A", "value": "1"}],
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
JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "copy", "namespace": "gfs"},
       "spec": {"template": {"spec": {"restartPolicy": "Never",
                                      "containers": [{"name": "c", "image": "heketi/heketi:9"}]}}}}
PVC = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "gfs"},
       "spec": {"storageClassName": "glusterfs", "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}}}}


def served(obj, *, ours=True, **status):
    """What the API server returns for ``obj``: defaults and server fields added, and
    gfsdeploy's ownership label when ``ours``."""
    live = copy.deepcopy(obj)
    if live["kind"] not in ("StorageClass",):
        live["metadata"].setdefault("namespace", "default")
    live["metadata"].update(uid="0b0e", resourceVersion="42", creationTimestamp="2024-01-01T00:00:00Z",
                            generation=1)
    if ours:
        live["metadata"]["labels"] = {**(live["metadata"].get("labels") or {}), **MARK}
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
    if value is DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


DROP = object()


def state_of(live, **extra) -> KubeState:
    """A KubeState as read() builds it: live objects by key, the dry run's answers."""
    by_key = lambda objs: {key(o): o for o in objs}  # noqa: E731
    return KubeState(live=by_key(live), applied=by_key(extra.get("applied", [])),
                     adopted=by_key(extra.get("adopted", [])), refused=extra.get("refused", {}),
                     server_side=extra.get("server_side", True))


def k8s_plan(args, live, **extra):
    module = get("kubernetes")
    args = module.validate({"wait": "none", **args})
    return module.plan(args, state_of(live, **extra), HOST)


IMMUTABLE_JOB = Refusal("Invalid", 'Job.batch "copy" is invalid: spec.template: Invalid value: '
                        'core.PodTemplateSpec{...}: field is immutable', ["spec.template"], ["spec.template"])

# (id, args, live objects, state extras, [(action, resource, diff substrings, sensitive)])
CASES = [
    ("missing -> +", {"definition": DEPLOY}, [], {},
     [("+", "kubernetes Deployment default/heketi", [], False)]),
    ("dry run equals live -> nothing", {"definition": DEPLOY}, [served(DEPLOY)], {"applied": [served(DEPLOY)]}, []),
    ("no dry run, manifest fields equal -> nothing", {"definition": DEPLOY}, [served(DEPLOY)], {}, []),
    ("changed image -> ~ from the dry run", {"definition": DEPLOY}, [served(DEPLOY)],
     {"applied": [served(with_changes(DEPLOY, ["spec", "template", "spec", "containers", 0, "image"], "heketi/heketi:10"))]},
     [("~", "kubernetes Deployment default/heketi",
       ['~ spec.template.spec.containers[name=heketi].image: "heketi/heketi:9" -> "heketi/heketi:10"'], False)]),
    ("label removed from the template -> - line", {"definition": DEPLOY},
     [served(with_changes(DEPLOY, ["metadata", "labels"], {"heketi": "deployment", "tier": "db"}))],
     {"applied": [served(DEPLOY)]},
     [("~", "kubernetes Deployment default/heketi", ['- metadata.labels.tier: "db"'], False)]),
    ("env var removed from the template -> - line",
     {"definition": with_changes(DEPLOY, ["spec", "template", "spec", "containers", 0, "env"], [])},
     [served(with_changes(DEPLOY, ["spec", "template", "spec", "containers", 0, "env"],
                          [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]))],
     {"applied": [served(DEPLOY)]},
     [("~", "kubernetes Deployment default/heketi",
       ['- spec.template.spec.containers[name=heketi].env[name=B]: {"name":"B","value":"2"}'], False)]),
    ("label added -> + line", {"definition": DEPLOY}, [served(DEPLOY)],
     {"applied": [served(with_changes(DEPLOY, ["metadata", "labels"], {"heketi": "deployment", "a": "b"}))]},
     [("~", "kubernetes Deployment default/heketi", ['+ metadata.labels.a: "b"'], False)]),
    ("service: clusterIP and protocol defaults ignored", {"definition": SERVICE}, [served(SERVICE)], {}, []),
    ("service missing: clusterIP known after apply", {"definition": SERVICE}, [], {},
     [("+", "kubernetes Service gfs/heketi", ["spec.clusterIP: (known after apply)"], False)]),
    ("task namespace applies", {"definition": DEPLOY, "namespace": "gfs"}, [served(DEPLOY)], {},
     [("+", "kubernetes Deployment gfs/heketi", [], False)]),
    ("StorageClass parameters refused in place -> -/+ naming the field",
     {"definition": with_changes(SC, ["parameters"], {"volumetype": "replicate:2"})}, [served(SC)],
     {"refused": {("StorageClass", "", "glusterfs"): Refusal(
         "Invalid", 'StorageClass.storage.k8s.io "glusterfs" is invalid: parameters: Forbidden: updates to '
                    'parameters are forbidden.', ["parameters"], ["parameters"])}},
     [("-/+", "kubernetes StorageClass glusterfs",
       ["# parameters cannot be changed in place", '~ parameters.volumetype: "replicate:3" -> "replicate:2"   '
                                                   '# forces replacement'], False)]),
    ("Job template refused in place -> -/+", {"definition": with_changes(JOB, ["spec", "template", "spec", "containers", 0,
                                                                             "image"], "heketi/heketi:10")},
     [served(JOB, succeeded=1)], {"refused": {("Job", "gfs", "copy"): IMMUTABLE_JOB}},
     [("-/+", "kubernetes Job gfs/copy", ["spec.template.spec.containers[0].image: \"heketi/heketi:9\" -> "
                                         "\"heketi/heketi:10\"   # forces replacement"], False)]),
    ("no dry run (old server): immutable selector from the table -> -/+",
     {"definition": with_changes(DEPLOY, ["spec", "selector"], {"matchLabels": {"app": "heketi"}})},
     [served(DEPLOY)], {"server_side": False},
     [("-/+", "kubernetes Deployment default/heketi", ["# spec.selector cannot be changed in place"], False)]),
    ("old server: a field the last apply set and the manifest dropped -> - line", {"definition": DEPLOY},
     [with_changes(served(with_changes(DEPLOY, ["metadata", "labels"], {"heketi": "deployment", "tier": "db"})),
                   ["metadata", "annotations"], {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                       with_changes(DEPLOY, ["metadata", "labels"], {"heketi": "deployment", "tier": "db"}))})],
     {"server_side": False},
     [("~", "kubernetes Deployment default/heketi", ['- metadata.labels.tier: "db"'], False)]),
    ("secret missing: sensitive", {"definition": SECRET}, [], {},
     [("+", "kubernetes Secret gfs/heketi-config-secret", [], True)]),
    ("secret data changed: diff hidden", {"definition": SECRET},
     [served(with_changes(SECRET, ["data"], {"heketi.json": "b2xk"}))], {"applied": [served(SECRET)]},
     [("~", "kubernetes Secret gfs/heketi-config-secret", ["~ data.heketi.json: (sensitive) -> (sensitive)"], True)]),
    ("secret equal", {"definition": SECRET}, [served(SECRET)], {"applied": [served(SECRET)]}, []),
    ("a v1 List: only the missing one", {"definition": {"apiVersion": "v1", "kind": "List", "items": [SERVICE, DEPLOY]}},
     [served(SERVICE)], {}, [("+", "kubernetes Deployment default/heketi", [], False)]),
    ("absent and ours -> -", {"definition": DEPLOY, "state": "absent"}, [served(DEPLOY)], {},
     [("-", "kubernetes Deployment default/heketi", [], False)]),
    ("absent, not created by gfsdeploy -> left as is (!)", {"definition": DEPLOY, "state": "absent"},
     [served(DEPLOY, ours=False)], {},
     [("!", "kubernetes Deployment default/heketi was not created by gfsdeploy "
            "(no label app.kubernetes.io/managed-by=gfsdeploy): left as is", [], False)]),
    ("absent and missing -> nothing", {"definition": DEPLOY, "state": "absent"}, [], {}, []),
    ("exists but not ready, wait=ready -> waiting is not a change",
     {"definition": DEPLOY, "wait": "ready"},
     [served(DEPLOY, observedGeneration=1, replicas=1, readyReplicas=0, updatedReplicas=1)], {}, []),
    ("failed Job, wait=complete -> -/+ run again", {"definition": JOB, "wait": "complete"},
     [served(JOB, failed=4, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])], {},
     [("-/+", "kubernetes Job gfs/copy", ["forces replacement", "BackoffLimitExceeded"], False)]),
    ("foreign object, existing=merge: our fields, no ownership label",
     {"definition": DEPLOY, "existing": "merge"}, [served(DEPLOY, ours=False)],
     {"applied": [with_changes(served(DEPLOY), ["spec", "replicas"], 2)]},
     [("~", "kubernetes Deployment default/heketi", ["~ spec.replicas: 1 -> 2"], False)]),
    ("foreign object, existing=adopt: becomes exactly the manifest",
     {"definition": DEPLOY, "existing": "adopt"},
     [served(with_changes(DEPLOY, ["metadata", "labels"], {"heketi": "deployment", "deploy-heketi": "support"}),
             ours=False)],
     {"adopted": [served(DEPLOY)]},
     [("~", "kubernetes Deployment default/heketi",
       ["# adopt:", '- metadata.labels.deploy-heketi: "support"',
        '+ metadata.labels.app.kubernetes.io/managed-by: "gfsdeploy"'], False)]),
    ("foreign object, existing=adopt, immutable selector -> -/+",
     {"definition": DEPLOY, "existing": "adopt"},
     [served(with_changes(DEPLOY, ["spec", "selector"], {"matchLabels": {"name": "heketi"}}), ours=False)],
     {"refused": {("Deployment", "default", "heketi"): Refusal(
         "Invalid", 'Deployment.apps "heketi" is invalid: spec.selector: Invalid value: '
                    'v1.LabelSelector{...}: field is immutable', ["spec.selector"], ["spec.selector"])}},
     [("-/+", "kubernetes Deployment default/heketi",
       ['- spec.selector.matchLabels.name: "heketi"   # forces replacement',
        '+ spec.selector.matchLabels.heketi: "pod"   # forces replacement'], False)]),
    ("namespace not there yet (made by an earlier task) -> +", {"definition": SERVICE}, [],
     {"refused": {("Service", "gfs", "heketi"): Refusal("NotFound", 'namespaces "gfs" not found')}},
     [("+", "kubernetes Service gfs/heketi", [], False)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kubernetes_plan(case):
    _, args, live, extra, expected = case
    changes = k8s_plan(args, live, **extra)
    assert [(c.action, c.resource) for c in changes] == [(e[0], e[1]) for e in expected]
    for change, (_, _, fragments, sensitive) in zip(changes, expected):
        for fragment in fragments:
            assert fragment in change.diff, (fragment, change.diff)
        assert change.sensitive is sensitive


@pytest.mark.parametrize("args,live,extra,error,words", [
    ({"definition": DEPLOY}, [served(DEPLOY, ours=False)], {}, PreflightError,
     ["exists but was not created by gfsdeploy", "existing: adopt"]),
    ({"definition": DEPLOY}, [served(DEPLOY)],
     {"refused": {("Deployment", "default", "heketi"): Refusal(
         "Invalid", 'Deployment.apps "heketi" is invalid: spec.replicas: Invalid value: -1: must be greater '
                    'than or equal to 0', ["spec.replicas"], [])}}, ModuleError,
     ["the API server refuses Deployment default/heketi (Invalid)", "spec.replicas"]),
    ({"definition": with_changes(PVC, ["spec", "storageClassName"], "other")}, [served(PVC)],
     {"refused": {("PersistentVolumeClaim", "gfs", "data"): Refusal(
         "Invalid", 'PersistentVolumeClaim "data" is invalid: spec: Forbidden: spec is immutable after creation',
         ["spec"], ["spec"])}}, PreflightError, ["never deletes a PersistentVolumeClaim"]),
])
def test_kubernetes_plan_refuses(args, live, extra, error, words):
    with pytest.raises(error) as err:
        k8s_plan(args, live, **extra)
    for word in words:
        assert word in str(err.value)


def test_changes_carry_what_apply_runs():
    """apply runs the operation each change names, with the object the plan showed."""
    [add] = k8s_plan({"definition": DEPLOY}, [])
    assert add.data["op"].verb == "apply" and add.data["op"].obj["metadata"]["labels"] == {"heketi": "deployment", **MARK}
    [merge] = k8s_plan({"definition": DEPLOY, "existing": "merge"}, [served(DEPLOY, ours=False)],
                       applied=[with_changes(served(DEPLOY), ["spec", "replicas"], 2)])
    assert MARK.keys().isdisjoint(merge.data["op"].obj["metadata"]["labels"])  # someone else's: not marked
    [adopt] = k8s_plan({"definition": SERVICE, "existing": "adopt"}, [served(SERVICE, ours=False)])
    assert adopt.data["op"].verb == "adopt" and adopt.data["op"].obj["spec"]["clusterIP"] == "10.96.0.20"
    [old] = k8s_plan({"definition": DEPLOY}, [], server_side=False)
    assert old.data["op"].verb == "client-apply"


def test_replace_counts_one_add_and_one_destroy():
    from gfsdeploy.output import render_plan, summary
    from gfsdeploy.session import Plan

    [change] = k8s_plan({"definition": JOB, "wait": "complete"},
                        [served(JOB, failed=4, conditions=[{"type": "Failed", "status": "True"}])])
    outcome = type("O", (), {"changes": [change], "status": "pending", "host": "k8s-1",
                             "task": type("T", (), {"label": "copy job"})()})()
    assert summary([outcome]) == {"add": 1, "change": 0, "destroy": 1, "warnings": 0}
    text = render_plan(Plan("inv", "pb", summary=summary([outcome]), outcomes=[outcome]))
    assert "-/+ kubernetes Job gfs/copy" in text and text.endswith("Plan: 1 to add, 0 to change, 1 to destroy.")


def test_secret_values_never_in_diff_or_json():
    secrets.reset()
    module = get("kubernetes")
    args = module.prepare(module.validate({"definition": SECRET}), _Ctx())
    changes = module.plan(args, state_of([served(with_changes(SECRET, ["data"], {"heketi.json": "b2xk"}))],
                                         applied=[served(SECRET)]), HOST)
    shown = json.dumps(changes[0].to_json())
    assert "eyJrZXkiOiAic2VjcmV0LW9uZSJ9" not in shown and "secret-one" not in shown and "b2xk" not in shown
    assert "secret-one" not in secrets.redact('heketi.json is {"key": "secret-one"}')
    secrets.reset()


class _Run:
    """A transport stand-in that records scripts and answers kubectl gets with nothing."""

    def __init__(self):
        self.scripts = []

    def run(self, script, timeout=None, kind="run"):
        self.scripts.append(script)
        return Result(0, "")

    def read_many(self, probes, timeout=None):
        return {k: Result(0, "") for k in probes}


def _apply(args, changes):
    module = get("kubernetes")
    transport = _Run()
    ctx = TaskContext(HOST, transport, task_name="t")
    module.apply(module.validate({"wait": "none", **args}), changes, ctx)
    return transport.scripts


def test_apply_runs_server_side_apply_in_one_process():
    changes = k8s_plan({"definition": {"apiVersion": "v1", "kind": "List", "items": [SERVICE, DEPLOY]}}, [])
    [script] = _apply({"definition": {"apiVersion": "v1", "kind": "List", "items": [SERVICE, DEPLOY]}}, changes)
    assert script.count("apply --server-side --field-manager=gfsdeploy --force-conflicts -f - <<'GFS_EOF_") == 1
    assert "--kubeconfig \"$(if [ -r /etc/kubernetes/admin.conf ]" in script
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)


def test_apply_replace_deletes_waits_then_applies():
    changes = k8s_plan({"definition": JOB, "wait": "complete"},
                       [served(JOB, failed=4, conditions=[{"type": "Failed", "status": "True"}])])
    [script] = _apply({"definition": JOB, "kubeconfig": "/etc/k.conf", "kubectl": "/opt/bin/kubectl"}, changes)
    delete, apply = script.splitlines()[1:3]
    assert delete == ("/opt/bin/kubectl --kubeconfig /etc/k.conf delete job.batch/copy -n gfs "
                      "--ignore-not-found --wait=true")
    assert apply.startswith("/opt/bin/kubectl --kubeconfig /etc/k.conf apply --server-side")


def test_hostile_values_stay_inside_the_heredoc(tmp_path):
    """A value full of shell syntax reaches kubectl byte for byte."""
    hostile = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "gfs"},
               "data": {"v": "$(touch /tmp/pwned) `id` ' \" \\ \nEOF\n"}}
    changes = k8s_plan({"definition": hostile}, [])
    fake = tmp_path / "kubectl"
    fake.write_text("#!/bin/sh\ncat > \"$(dirname \"$0\")/stdin\"\n")
    fake.chmod(0o755)
    [script] = _apply({"definition": hostile, "kubectl": str(fake), "kubeconfig": "/dev/null"}, changes)
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


def _node(name, labels, ready=True, taints=()):
    return {"kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {"taints": list(taints)},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


GLUSTER_DS = {"kind": "DaemonSet", "metadata": {"generation": 1},
              "spec": {"template": {"spec": {"nodeSelector": {"storagenode": "glusterfs"}}}},
              "status": {"desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3,
                         "observedGeneration": 1}}
G = {"storagenode": "glusterfs"}
DS_NODE_CASES = [
    # a fourth node just labelled: the status still says 3/3 (its controller lags the label)
    ([_node(f"k8s-{i}", G) for i in range(1, 5)], GLUSTER_DS,
     ("waiting", "3/3 ready; 4 Ready nodes match its node selector "
                 "(the DaemonSet controller has not scheduled them all yet)")),
    ([_node(f"k8s-{i}", G) for i in range(1, 4)] + [_node("k8s-4", {})], GLUSTER_DS, ("ready", "3/3 ready")),
    # a node that is not Ready, or tainted beyond what the pods tolerate, is not counted
    ([_node(f"k8s-{i}", G) for i in range(1, 4)] + [_node("k8s-4", G, ready=False)], GLUSTER_DS,
     ("ready", "3/3 ready")),
    ([_node(f"k8s-{i}", G) for i in range(1, 4)]
     + [_node("k8s-4", G, taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])],
     GLUSTER_DS, ("ready", "3/3 ready")),
    # ... unless the template tolerates it; a cordon (unschedulable) never stops a DaemonSet pod
    ([_node(f"k8s-{i}", G) for i in range(1, 4)]
     + [_node("k8s-4", G, taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])],
     {**GLUSTER_DS, "spec": {"template": {"spec": {"nodeSelector": G, "tolerations": [
         {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}}},
     ("waiting", "3/3 ready; 4 Ready nodes match its node selector "
                 "(the DaemonSet controller has not scheduled them all yet)")),
    ([_node(f"k8s-{i}", G) for i in range(1, 4)]
     + [_node("k8s-4", G, taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])],
     GLUSTER_DS, ("waiting", "3/3 ready; 4 Ready nodes match its node selector "
                             "(the DaemonSet controller has not scheduled them all yet)")),
    # a node affinity is not evaluated here: the status alone decides
    ([_node(f"k8s-{i}", G) for i in range(1, 5)],
     {**GLUSTER_DS, "spec": {"template": {"spec": {"nodeSelector": G, "affinity": {"nodeAffinity": {"x": 1}}}}}},
     ("ready", "3/3 ready")),
]


@pytest.mark.parametrize("nodes,ds,expected", DS_NODE_CASES)
def test_daemonset_readiness_counts_the_nodes_it_must_run_on(nodes, ds, expected):
    assert readiness(ds, "ready", nodes) == expected


def test_daemonset_wait_reads_the_nodes_with_it():
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "glusterfs", "namespace": "gfs"},
          "spec": {"template": {"spec": {"nodeSelector": G}}}}
    module = get("kubernetes")
    probes = module.probes(module.validate({"definition": ds, "wait": "ready"}), HOST)
    assert probes["nodes"].endswith("get nodes -o json")
    assert "nodes" not in module.probes(module.validate({"definition": ds}), HOST)
    args = module.validate({"definition": ds, "wait": "ready"})
    listed = json.dumps({"kind": "List", "apiVersion": "v1", "items": [_node("k8s-1", G)]})
    state = module.read(args, {"get gfs": Result(0, json.dumps(ds)), "nodes": Result(0, listed)}, _Ctx())
    assert [n["metadata"]["name"] for n in state.nodes] == ["k8s-1"]
    # a user who may not list nodes: the DaemonSet's status alone decides, as before
    forbidden = Result(1, "", 'Error from server (Forbidden): nodes is forbidden: User "dev" cannot list '
                              'resource "nodes" in API group "" at the cluster scope')
    state = module.read(args, {"get gfs": Result(0, json.dumps(ds)), "nodes": forbidden}, _Ctx())
    assert state.nodes is None and list(state.live) == [key(ds)]


NODES = [{"kind": "Node", "apiVersion": "v1", "metadata": {"name": f"k8s-{i}", "labels": labels}}
         for i, labels in ((1, {"storagenode": "glusterfs"}), (2, {}), (3, {"storagenode": "other"}))]
K = "kubectl --kubeconfig /etc/kubernetes/admin.conf"

LABEL_CASES = [
    ({"nodes": ["k8s-1"], "labels": {"storagenode": "glusterfs"}}, []),
    ({"nodes": ["k8s-1", "k8s-2", "k8s-3"], "labels": {"storagenode": "glusterfs"}},
     [("~", "node k8s-2 label storagenode=glusterfs", "+ label storagenode: glusterfs",
       f"{K} label node k8s-2 storagenode=glusterfs --overwrite"),
      ("~", "node k8s-3 label storagenode=glusterfs", "~ label storagenode: other -> glusterfs",
       f"{K} label node k8s-3 storagenode=glusterfs --overwrite")]),
    ({"nodes": ["k8s-1", "k8s-2"], "labels": {"storagenode": "glusterfs"}, "state": "absent"},
     [("-", "node k8s-1 label storagenode", "- label storagenode: glusterfs",
       f"{K} label node k8s-1 storagenode-")]),
]


@pytest.mark.parametrize("args,expected", LABEL_CASES)
def test_kubernetes_label_plan(args, expected):
    module = get("kubernetes_label")
    changes = module.plan(module.validate({**args, "kubeconfig": "/etc/kubernetes/admin.conf"}), NODES, HOST)
    assert [(c.action, c.resource, c.diff, c.script) for c in changes] == expected


def test_kubernetes_label_unknown_node_is_a_preflight_error():
    module = get("kubernetes_label")
    with pytest.raises(PreflightError) as err:
        module.plan(module.validate({"nodes": ["k8s-4"], "labels": {"storagenode": "glusterfs"}}), NODES, HOST)
    assert "node 'k8s-4' is not a Kubernetes node (kubectl get nodes shows: k8s-1, k8s-2, k8s-3)" in str(err.value)
    assert "`manage` must match" in str(err.value)


def _item(kind, name, api="v1", owned=False, ours=True):
    meta = {"name": name, "namespace": "gfs", "labels": {"deploy-heketi": "support", **(MARK if ours else {})}}
    if owned:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "x"}]
    return {"apiVersion": api, "kind": kind, "metadata": meta}


BOOTSTRAP = [_item("Pod", "deploy-heketi-abc", owned=True), _item("Service", "deploy-heketi"),
             _item("Deployment", "deploy-heketi", "apps/v1"), _item("ReplicaSet", "deploy-heketi-1", "apps/v1", owned=True),
             _item("Job", "heketi-storage-copy-job", "batch/v1"), _item("Service", "heketi-storage-endpoints"),
             _item("Service", "deploy-heketi"), _item("Secret", "heketi-storage-secret"),
             # kubespray's production heketi Service carries deploy-heketi=support too: never ours to delete
             _item("Service", "heketi", ours=False)]


def test_kubernetes_delete_deletes_only_what_gfsdeploy_created():
    module = get("kubernetes_delete")
    args = module.validate({"kinds": ["all", "service", "jobs", "deployment", "secret"], "selector": "deploy-heketi",
                            "namespace": "gfs", "keep": ["heketi-storage-endpoints"],
                            "kubeconfig": "/etc/kubernetes/admin.conf"})
    assert module.probes(args, HOST) == {
        "matching": f"{K} get all,service,jobs,deployment,secret -n gfs --selector deploy-heketi -o json"}
    changes = module.plan(args, BOOTSTRAP, HOST)
    assert [(c.action, c.resource) for c in changes] == [
        ("!", "kubernetes Service gfs/heketi matches deploy-heketi but was not created by gfsdeploy "
              "(no label app.kubernetes.io/managed-by=gfsdeploy): left as is"),
        ("-", "kubernetes Service gfs/deploy-heketi"), ("-", "kubernetes Deployment gfs/deploy-heketi"),
        ("-", "kubernetes Job gfs/heketi-storage-copy-job"), ("-", "kubernetes Secret gfs/heketi-storage-secret")]
    transport = _Run()
    module.apply(args, changes, TaskContext(HOST, transport, task_name="t"))
    assert transport.scripts == [f"{K} delete service/deploy-heketi deployment.apps/deploy-heketi "
                                 "job.batch/heketi-storage-copy-job secret/heketi-storage-secret -n gfs --ignore-not-found"]
    assert module.plan(args, [BOOTSTRAP[5]], HOST) == []


def _facts_state(git_version, service_ip=None, objects=None):
    service = ({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "heketi"}, "spec": {"clusterIP": service_ip}}
               if service_ip else None)
    return ClusterFacts(server={"major": "1", "minor": git_version.split(".")[1], "gitVersion": git_version},
                        api_server="https://10.0.0.1:6443", kubeconfig="/etc/kubernetes/admin.conf",
                        nodes=NODES, service=service, objects=objects or {})


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
    args = module.validate({"service": "heketi", "namespace": "gfs", "objects": ["deployment.apps/heketi"]})
    state = _facts_state("v1.25.3", "10.96.0.20", {"deployment.apps/heketi": served(DEPLOY, ours=False)})
    assert module.plan(args, state, HOST) == []
    facts = module.facts(args, state)
    assert facts["version"] == "v1.25.3" and facts["minor"] == 25 and facts["cluster_ip"] == "10.96.0.20"
    assert facts["nodes"] == ["k8s-1", "k8s-2", "k8s-3"] and facts["api_server"] == "https://10.0.0.1:6443"
    assert facts["exists"] == {"deployment.apps/heketi": True} and facts["managed"] == {"deployment.apps/heketi": False}
    from gfsdeploy.templating import is_unknown

    assert is_unknown(module.facts(args, _facts_state("v1.11.0"), check_mode=True)["cluster_ip"])
    result = module.report(args, state, _Ctx())
    assert result.msg == "API server https://10.0.0.1:6443 (kubeconfig /etc/kubernetes/admin.conf): Kubernetes v1.25.3"


def test_kubernetes_facts_read_parses_kubectl_output():
    module = get("kubernetes_facts")
    args = module.validate({"objects": ["deployment/heketi", "service/gone"]})
    facts = {"version": Result(0, json.dumps({"clientVersion": {}, "serverVersion": {"gitVersion": "v1.25.3"}})),
             "where": Result(0, "/root/.kube/config\nhttps://10.0.0.1:6443"),
             "nodes": Result(0, json.dumps({"kind": "List", "apiVersion": "v1", "items": NODES})),
             "objects": Result(0, json.dumps(served(DEPLOY)))}
    state = module.read(args, facts, _Ctx())
    assert state.server["gitVersion"] == "v1.25.3" and len(state.nodes) == 3
    assert state.api_server == "https://10.0.0.1:6443" and state.kubeconfig == "/root/.kube/config"
    assert state.objects["deployment/heketi"]["kind"] == "Deployment" and state.objects["service/gone"] is None


def test_kubernetes_facts_names_the_kubeconfig_when_kubectl_reaches_nothing():
    module = get("kubernetes_facts")
    facts = {"version": Result(1, "", "The connection to the server localhost:8080 was refused"),
             "where": Result(0, "/root/.kube/config\n"), "nodes": Result(1, "", "refused")}
    with pytest.raises(ModuleError) as err:
        module.read(module.validate({}), facts, _Ctx())
    assert "kubeconfig /root/.kube/config" in str(err.value) and "localhost:8080 was refused" in str(err.value)
    assert "`kubeconfig`" in str(err.value)


def test_probes_get_per_namespace_and_one_dry_run():
    module = get("kubernetes")
    args = module.validate({"definition": [SC, SERVICE, DEPLOY, SECRET], "kubeconfig": "/etc/kubernetes/admin.conf"})
    probes = module.probes(args, HOST)
    assert probes["get gfs"] == (f"{K} get storageclass.storage.k8s.io/glusterfs service/heketi "
                                 "secret/heketi-config-secret -n gfs -o json --ignore-not-found")
    assert probes["get default"] == f"{K} get deployment.apps/heketi -n default -o json --ignore-not-found"
    assert probes["dry-run"].startswith(f"{K} apply --server-side --field-manager=gfsdeploy --force-conflicts "
                                        "--dry-run=server -o json -f - <<'GFS_EOF_")
    assert sorted(probes) == ["dry-run", "get default", "get gfs"]


REFUSALS = [
    ('Error from server (Invalid): Job.batch "j" is invalid: spec.template: Invalid value: '
     'core.PodTemplateSpec{...}: field is immutable', "Invalid", ["spec.template"], ["spec.template"]),
    ('Error from server (Invalid): StorageClass.storage.k8s.io "glusterfs" is invalid: parameters: Forbidden: '
     'updates to parameters are forbidden.', "Invalid", ["parameters"], ["parameters"]),
    ('Error from server (Invalid): Deployment.apps "x" is invalid: spec.replicas: Invalid value: -1: must be '
     'greater than or equal to 0, spec.selector: Invalid value: v1.LabelSelector{}: field is immutable',
     "Invalid", ["spec.replicas", "spec.selector"], ["spec.selector"]),
    ('Error from server (NotFound): namespaces "gfs" not found', "NotFound", [], []),
    ('The Deployment "heketi" is invalid: spec.selector: Invalid value: {"matchLabels": {"app": "heketi"}}: '
     'field is immutable', "Invalid", ["spec.selector"], ["spec.selector"]),
]


@pytest.mark.parametrize("stderr,reason,fields,immutable", REFUSALS)
def test_parse_refusal(stderr, reason, fields, immutable):
    refusal = parse_refusal("Warning: something\n" + stderr + "\n")
    assert (refusal.reason, refusal.fields, refusal.immutable) == (reason, fields, immutable)


def test_bad_names_are_refused():
    from gfsdeploy.errors import PlaybookError
    with pytest.raises(PlaybookError):
        normalize([with_changes(DEPLOY, ["metadata", "name"], "Bad Name; rm -rf /")], None, {})


def test_normalize_marks_objects_as_gfsdeploys():
    [obj] = normalize([SERVICE], None, {})
    assert obj["metadata"]["labels"] == MARK


class _Ctx:
    task_name = "t"
    host = HOST
    check_mode = False


def test_every_kubectl_step_of_the_shipped_playbooks_takes_kubectl_and_kubeconfig():
    """Operators set `kubectl` and `kubeconfig` once in the inventory; a step that forgot
    them would reach another cluster, or none."""
    import yaml
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "playbooks"
    seen = 0

    def tasks(items):
        for item in items or []:
            yield item
            for key in ("block", "rescue", "always"):
                yield from tasks(item.get(key))

    for path in sorted(root.glob("*.yaml")):
        for play in yaml.safe_load(path.read_text()) or []:
            for task in tasks(play.get("tasks")):
                for module in ("kubernetes", "kubernetes_facts", "kubernetes_label", "kubernetes_delete",
                               "heketi_existing"):
                    if module in task:
                        seen += 1
                        args = task[module]
                        assert "kubectl" in args and "kubeconfig" in args, (path.name, task.get("name"))
    assert seen >= 15


def _claim(ns, name, sc, phase="Bound", beta=False):
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
             "spec": {"resources": {"requests": {"storage": "5Gi"}}, "volumeName": f"pvc-{name}"},
             "status": {"phase": phase, "capacity": {"storage": "5Gi"}}}
    if beta:
        claim["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": sc}
    else:
        claim["spec"]["storageClassName"] = sc
    return claim


CLAIMS = [_claim("default", "gfsdeploy-smoke-test", "glusterfs"), _claim("apps", "user-data", "glusterfs"),
          _claim("apps", "old-style", "glusterfs", beta=True), _claim("apps", "elsewhere", "local-path")]


def test_claims_on_the_storageclass_refuse_a_teardown():
    module = get("kubernetes_claims")
    args = module.validate({"storageclass": "glusterfs", "allow": ["default/gfsdeploy-smoke-test"]})
    with pytest.raises(PreflightError) as err:
        module.plan(args, CLAIMS, HOST)
    text = str(err.value)
    assert ("2 volume claim(s) other than gfsdeploy's smoke test use StorageClass glusterfs: "
            "apps/user-data (Bound, 5Gi, volume pvc-user-data), apps/old-style (Bound, 5Gi, volume pvc-old-style)") in text
    assert "--force" in text and "elsewhere" not in text and "smoke-test (" not in text
    assert module.plan(args, CLAIMS[:1] + CLAIMS[3:], HOST) == []


def test_claims_with_force_are_warnings():
    module = get("kubernetes_claims")
    args = module.validate({"storageclass": "glusterfs", "allow": ["default/gfsdeploy-smoke-test"], "force": True})
    changes = module.plan(args, CLAIMS, HOST)
    assert [c.action for c in changes] == ["!", "!"]
    assert "apps/user-data (Bound, 5Gi, volume pvc-user-data) uses StorageClass glusterfs" in changes[0].resource
    assert module.report(args, CLAIMS, _Ctx()).data["claims"][0].startswith("apps/user-data")
