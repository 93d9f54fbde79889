"""kubectl reads of several steps in one kubectl process (kubernetes.KubectlGet,
KubectlDryRun through batch.read_joined), run for real through the local transport
against a stand-in kubectl that logs every call: each step reads what it would alone,
with one `get` and one dry run for all of them; a step whose object the server refuses
fails alone (the others keep their answers)."""

from __future__ import annotations

import json
import sys
import textwrap

from gfsdeploy import batch
from gfsdeploy.modules import get
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.local import LocalTransport

HOST = HostInfo(name="k8s-1")

KUBECTL = textwrap.dedent('''\
    import json, os, sys
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    with open(os.path.join(here, "calls.log"), "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\\n")
    live = json.load(open(os.path.join(here, "live.json")))
    args = sys.argv[3:]  # after --kubeconfig FILE
    def show(objs):
        if objs:
            print(json.dumps(objs[0] if len(objs) == 1 else {"apiVersion": "v1", "kind": "List", "items": objs}))
    if args[0] == "get":
        refs = [a for a in args[1:args.index("-o")] if "/" in a]
        found = []
        for r in refs:
            kind, name = r.split("/")
            if kind.split(".")[0] not in ("service", "deployment", "secret", "storageclass"):
                print(f'error: the server doesn\\'t have a resource type "{kind}"', file=sys.stderr)
                sys.exit(1)
            found += [o for o in live if o["kind"].lower() == kind.split(".")[0] and o["metadata"]["name"] == name]
        show(found)
    elif args[0] == "apply":
        doc = json.load(sys.stdin)
        objs = doc["items"] if doc.get("kind") == "List" else [doc]
        bad = [o for o in objs if o["metadata"]["name"].startswith("refused")]
        if bad:
            print(f'Error from server (Invalid): Service "{bad[0]["metadata"]["name"]}" is invalid: '
                  'spec.ports: Required value', file=sys.stderr)
            sys.exit(1)
        show([dict(o, status={"applied": True}) for o in objs])
''')


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}


def deployment(name):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1}}


def setup(tmp_path, live):
    (tmp_path / "kubectl").write_text(f"#!{sys.executable}\n" + KUBECTL)
    (tmp_path / "kubectl").chmod(0o755)
    (tmp_path / "live.json").write_text(json.dumps(live))
    (tmp_path / "kubeconfig").write_text("")
    return {"kubectl": str(tmp_path / "kubectl"), "kubeconfig": str(tmp_path / "kubeconfig")}


def steps(kube, definitions):
    module = get("kubernetes")
    return module, [module.validate({"definition": d, "wait": "none", **kube}) for d in definitions]


def read_all(module, all_args, transport, joined: bool):
    """Each step's state, from one batched read (joined or not)."""
    probes = {f"{i}\x1f{k}": v for i, a in enumerate(all_args) for k, v in module.probes(a, HOST).items()}
    answered = batch.read_joined(transport, probes) if joined else transport.read_many(probes)
    ctx = TaskContext(HOST, transport, task_name="t")
    return [module.read(a, {k.split("\x1f")[1]: r for k, r in answered.items() if k.startswith(f"{i}\x1f")}, ctx)
            for i, a in enumerate(all_args)]


def calls(tmp_path):
    path = tmp_path / "calls.log"
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return lines


def test_several_steps_read_with_one_get_and_one_dry_run_as_alone(tmp_path):
    kube = setup(tmp_path, [service("a"), deployment("a"), service("b")])
    module, all_args = steps(kube, [[service("a")], [deployment("a"), service("c")], [service("b")]])
    t = LocalTransport("h")
    alone = read_all(module, all_args, t, joined=False)
    assert len(calls(tmp_path)) == 6  # a get and a dry run per step
    joined = read_all(module, all_args, t, joined=True)
    made = calls(tmp_path)
    assert [c.split()[2] for c in made] == ["get", "apply"], made
    assert "service/a deployment.apps/a service/c service/b" in made[0]
    for one, both in zip(alone, joined):
        assert one.live == both.live and one.applied == both.applied and not both.refused
    assert sorted(joined[1].live) == [("Deployment", "default", "a")]  # not the Service a of step 0
    assert [k[2] for k in joined[1].applied] == ["a", "c"]


def test_a_refused_object_fails_only_its_step(tmp_path):
    kube = setup(tmp_path, [service("a")])
    module, all_args = steps(kube, [[service("a")], [service("refused-1")], [deployment("d")]])
    t = LocalTransport("h")
    states = read_all(module, all_args, t, joined=True)
    assert [list(s.applied) for s in (states[0], states[2])] == [[("Service", "default", "a")],
                                                                  [("Deployment", "default", "d")]]
    assert list(states[1].refused) == [("Service", "default", "refused-1")]
    assert "spec.ports" in states[1].refused[("Service", "default", "refused-1")].message


def test_a_kind_the_server_does_not_know_fails_only_its_step(tmp_path):
    kube = setup(tmp_path, [service("a")])
    module = get("kubernetes_facts")
    good = module.validate({"objects": ["service/a"], **kube})
    bad = module.validate({"objects": ["widget.example.com/x"], **kube})
    probes = {"good": module.probes(good, HOST)["objects"], "bad": module.probes(bad, HOST)["objects"]}
    got = batch.read_joined(LocalTransport("h"), probes)
    assert got["good"].rc == 0 and json.loads(got["good"].stdout)["metadata"]["name"] == "a"
    assert got["bad"].rc == 1 and "resource type" in got["bad"].stderr
