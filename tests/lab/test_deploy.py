"""The whole deployment (docs/PROCEDURE.md) on a lab, through the real CLI over real SSH,
checked where it lands: GlusterFS itself (`gluster` in the nodes' glusterfs pods over plain
ssh, the bricks' files, the nodes' FUSE mounts), the Kubernetes API through kubectl on the
master (run inside the node, not by gfsdeploy), heketi's REST API straight from the host.

One 4-node lab for the module: the deployment covers k8s-1..3 first; later tests kill
glusterd, move heketi, add k8s-4 to the inventory, and tear down — in this order."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from tests.lab import glusterfs_checks as gc
from tests.trust.helpers import assert_no_secret

pytestmark = pytest.mark.lab
IN_POD_MOUNTPOINT = gc.IN_POD + "mountpoint -q {mount}"

EXPECTED_OBJECTS = [
    "daemonset.apps/glusterfs", "serviceaccount/heketi-service-account", "secret/heketi-config-secret",
    "service/heketi", "deployment.apps/heketi", "endpoints/heketi-storage-endpoints",
    "service/heketi-storage-endpoints", "secret/heketi-storageclass-secret",
]


def gfs(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=timeout)


def heketi_keys(lab) -> dict:
    return json.loads((lab.state_dir / "heketi-keys.json").read_text())


def heketi_client(lab):
    from gfsdeploy_glusterfs.heketi_client import HeketiClient

    ip = gc.kubectl_json(lab, "get", "service", "heketi")["spec"]["clusterIP"]
    return HeketiClient(f"http://{ip}:8080", "admin", heketi_keys(lab)["heketi_admin_key"])


def fault_file(lab, name: str):
    return lab.state_dir / "sim" / "kubernetes-apiserver-simulator" / name


def set_faults(lab, kubernetes: dict | None = None, heketi: dict | None = None):
    fault_file(lab, "faults.json").write_text(json.dumps(kubernetes or {}))
    fault_file(lab, "heketi-faults.json").write_text(json.dumps(heketi or {}))


def inventory_without(path, tmp_path, node: str):
    """The lab's inventory with NODE left out (a cluster that will grow later)."""
    inv = yaml.safe_load(path.read_text())
    del inv["all"]["hosts"][node]
    del inv["all"]["children"]["gluster"]["hosts"][node]
    out = tmp_path / f"without-{node}.yaml"
    out.write_text(yaml.safe_dump(inv, sort_keys=False))
    return str(out)


class Deployment:
    def __init__(self, lab, three: str, four: str):
        self.lab, self.three, self.four = lab, three, four
        self.outputs: dict[str, str] = {}
        self.db_bricks: list[tuple[str, str]] = []


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    from tests.conftest import make_lab

    lab = make_lab(tmp_path_factory, 4)
    try:
        yield Deployment(lab, inventory_without(lab.inventory_path, tmp_path_factory.mktemp("inv"), "k8s-4"),
                         str(lab.inventory_path))
    finally:
        lab.down()


def test_plan_then_apply(deployment):
    lab, inv, outputs = deployment.lab, deployment.three, deployment.outputs
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
    assert gc.kubectl(lab, "get", "daemonset", "-o", "name").strip() == ""  # plan changed nothing

    apply = gfs("apply", inv)
    outputs["apply"] = apply.stdout + apply.stderr
    assert apply.returncode == 0, apply.stdout + apply.stderr

    names = gc.kubectl(lab, "get", "all,secret,sa,endpoints", "-o", "name")
    for obj in EXPECTED_OBJECTS:
        assert obj in names, (obj, names)
    assert "deploy-heketi" not in names  # the bootstrap is gone
    assert "heketi-storage-copy-job" not in names
    sc = gc.kubectl_json(lab, "get", "storageclass", "glusterfs")
    heketi_ip = gc.kubectl_json(lab, "get", "service", "heketi")["spec"]["clusterIP"]
    assert sc["parameters"]["resturl"] == f"http://{heketi_ip}:8080"
    assert sc["parameters"]["volumetype"] == "replicate:3"


def test_glusterd_runs_in_each_pod_and_the_peers_are_connected(deployment):
    lab = deployment.lab
    ips = {n.name: n.ip for n in lab.nodes[:3]}
    for node in ips:
        assert gc.ssh(lab, node, "pgrep -x glusterd").stdout.strip(), f"no glusterd on {node}"
        # no glusterd package on the node: it is the pod's (the image's) glusterd
        assert gc.ssh(lab, node, "command -v glusterd || dpkg -s glusterfs-server").returncode != 0
        peers = gc.peers(lab, node)
        assert len(peers) == 3 and set(peers.values()) == {"Connected"}, (node, peers)
    assert gc.ssh(lab, "k8s-4", "pgrep -x glusterd").returncode != 0   # not a storage node (yet)


def test_heketidbstorage_is_a_replica_3_volume_on_the_three_nodes(deployment):
    lab = deployment.lab
    info = gc.volume_info(lab, "k8s-2", "heketidbstorage")
    assert info["Type"] == "Replicate" and info["Status"] == "Started", info
    assert info["Number of Bricks"] == "1 x 3 = 3"
    assert sorted(host for host, _ in info["bricks"]) == sorted(n.ip for n in lab.nodes[:3])
    deployment.db_bricks = info["bricks"]
    # the node's own `gluster` (the lab's stand-in for `kubectl exec` into its pod) answers the same
    plain = gc.ssh(lab, "k8s-3", "gluster --mode=script volume info heketidbstorage")
    assert plain.returncode == 0 and "Type: Replicate" in plain.stdout, plain.stdout + plain.stderr
    ip, path = info["bricks"][0]
    listed = gc.ssh(lab, gc.node_of_ip(lab, ip), f"glusterfs-pod ls {path}")
    assert "heketi.db" in listed.stdout.split(), listed.stdout + listed.stderr


def test_heketi_db_on_every_brick_is_what_heketi_reads(deployment):
    """The copy job wrote heketi.db through GlusterFS; the final heketi reads it through the
    FUSE mount of its own node; every brick holds the same bytes."""
    lab = deployment.lab
    pod = gc.heketi_pod(lab)
    node, uid = pod["spec"]["nodeName"], pod["metadata"]["uid"]
    mounts = gc.glusterfs_mounts(lab, node)
    target = f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~glusterfs/db"
    assert any(":heketidbstorage on " + target + " type fuse.glusterfs" in m for m in mounts), mounts
    through_mount = gc.ssh(lab, node, f"cat {target}/heketi.db", text=False).stdout
    db = json.loads(through_mount)
    assert sorted(n["hostnames"]["manage"][0] for n in db["nodes"].values()) == ["k8s-1", "k8s-2", "k8s-3"]
    assert [v["name"] for v in db["volumes"].values()].count("heketidbstorage") == 1
    for ip, path in gc.volume_info(lab, "k8s-1", "heketidbstorage")["bricks"]:
        assert gc.in_pod_bytes(lab, gc.node_of_ip(lab, ip), f"{path}/heketi.db") == through_mount, (ip, path)
    ip = gc.kubectl_json(lab, "get", "service", "heketi")["spec"]["clusterIP"]
    with urllib.request.urlopen(f"http://{ip}:8080/hello", timeout=10) as reply:
        assert reply.read() == b"Hello from Heketi"


def test_smoke_volume_written_on_one_node_read_on_another(deployment):
    lab = deployment.lab
    pvc = gc.kubectl_json(lab, "get", "pvc", "gfsdeploy-smoke-test")
    assert pvc["status"]["phase"] == "Bound"
    volume = gc.kubectl_json(lab, "get", "pv", pvc["spec"]["volumeName"])["spec"]["glusterfs"]["path"]
    writer = gc.kubectl_json(lab, "get", "pod", "gfsdeploy-smoke-test")
    reader = gc.kubectl_json(lab, "get", "pod", "gfsdeploy-smoke-test-reader")
    assert writer["status"]["phase"] == reader["status"]["phase"] == "Succeeded"
    wrote_on, read_on = writer["spec"]["nodeName"], reader["spec"]["nodeName"]
    assert wrote_on != read_on
    assert gc.kubectl(lab, "logs", "gfsdeploy-smoke-test-reader").strip() == \
        f"read on {read_on}: gfsdeploy-smoke-test written on {wrote_on}"
    info = gc.volume_info(lab, "k8s-3", volume)
    assert info["Type"] == "Replicate" and len(info["bricks"]) == 3
    ip, path = info["bricks"][0]
    assert gc.in_pod_bytes(lab, gc.node_of_ip(lab, ip), f"{path}/smoke") == \
        f"gfsdeploy-smoke-test written on {wrote_on}\n".encode()
    assert sorted(gc.volume_names(lab, "k8s-1")) == sorted(["heketidbstorage", volume])


def test_second_run_changes_nothing(deployment):
    lab, inv, outputs = deployment.lab, deployment.three, deployment.outputs
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
    # the master's reads that use registered results (the cluster's facts, heketi's
    # address) join the second batched read; kubectl reads asked twice run once
    assert data["hosts"]["k8s-1"]["round_trips"] <= 2, data["hosts"]["k8s-1"]
    assert gc.volume_names(lab, "k8s-1").count("heketidbstorage") == 1
    assert_no_secret(outputs, list(heketi_keys(lab).values()))


def test_glusterd_killed_then_heketi_restarted_on_another_node_loads_its_db(deployment):
    """glusterd dies on the heketi pod's node (its pod restarts it, bricks remounted from
    heketi's fstab); heketi's pod moves to another node and still loads its DB from the
    replica-3 volume."""
    lab = deployment.lab
    pod = gc.heketi_pod(lab)
    node = pod["spec"]["nodeName"]
    before = heketi_client(lab).topology()
    assert gc.ssh(lab, node, "pkill -KILL -x glusterd").returncode == 0
    gc.kubectl(lab, "cordon", node)
    try:
        gc.kubectl(lab, "delete", "pod", pod["metadata"]["name"])
        moved = gc.wait_for(lambda: [p for p in gc.kubectl_json(lab, "get", "pods", "-l", "heketi=pod")["items"]
                                     if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in p["status"].get("conditions") or [])],
                            120, "a Ready heketi pod")[0]
        assert moved["spec"]["nodeName"] != node
        assert heketi_client(lab).topology() == before
        assert any("heketidbstorage" in m for m in gc.glusterfs_mounts(lab, moved["spec"]["nodeName"]))
    finally:
        gc.kubectl(lab, "uncordon", node)
    # the glusterfs pod restarted glusterd; its brick is back online
    gpod = [p for p in gc.kubectl_json(lab, "get", "pods", "-l", "glusterfs-node=pod")["items"]
            if p["spec"]["nodeName"] == node][0]
    assert gpod["status"]["containerStatuses"][0]["restartCount"] >= 1
    ip = next(n.ip for n in lab.nodes if n.name == node)
    gc.wait_for(lambda: f"Brick {ip}:" in (out := gc.gluster(lab, node, "volume", "status", "heketidbstorage"))
                and "N/A" not in next(line for line in out.splitlines() if line.startswith(f"Brick {ip}:")),
                120, f"the brick on {node} online again")


def test_node_added_to_the_inventory_joins_through_gluster(deployment):
    lab = deployment.lab
    bricks = gc.volume_info(lab, "k8s-1", "heketidbstorage")["bricks"]
    apply = gfs("apply", deployment.four)
    deployment.outputs["grow"] = apply.stdout + apply.stderr
    assert apply.returncode == 0, apply.stdout + apply.stderr
    # the new node's firewall rules are reported as the changes they are
    for task in ("Firewall chain exists", "GlusterFS ports open in the chain", "INPUT jumps to the chain"):
        assert f"[k8s-4] changed: {task}" in apply.stdout, task
    k8s4 = next(n.ip for n in lab.nodes if n.name == "k8s-4")
    peers = gc.peers(lab, "k8s-1")
    assert len(peers) == 4 and set(peers.values()) == {"Connected"}, peers
    assert k8s4 in peers or "k8s-4" in peers
    assert len(gc.peers(lab, "k8s-4")) == 4
    # its device is heketi's: a filesystem mounted in its glusterfs pod and listed in heketi's fstab
    fstab = gc.in_pod_bytes(lab, "k8s-4", "/var/lib/heketi/fstab").decode()
    [(device, mount)] = [tuple(line.split()[:2]) for line in fstab.splitlines() if line.strip()]
    assert device == "/dev/sdb" and mount.startswith("/var/lib/heketi/mounts/vg_")
    assert gc.ssh(lab, "k8s-4", IN_POD_MOUNTPOINT.format(mount=mount)).returncode == 0
    topology = heketi_client(lab).topology()
    names = {n["hostnames"]["manage"][0]: n for n in topology["clusters"][0]["nodes"]}
    assert sorted(names) == ["k8s-1", "k8s-2", "k8s-3", "k8s-4"]
    assert [d["name"] for d in names["k8s-4"]["devices"]] == ["/dev/sdb"]
    # volumes untouched
    assert gc.volume_info(lab, "k8s-4", "heketidbstorage")["bricks"] == bricks


def test_teardown_refused_while_a_claim_uses_the_class_then_confirmed(deployment):
    lab, inv = deployment.lab, deployment.four
    # -- refused while a user's volume claim uses the StorageClass ---------------------------------
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "user-data"},
             "spec": {"storageClassName": "glusterfs", "accessModes": ["ReadWriteMany"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    lab.exec("k8s-1", ["sh", "-c", f"echo '{json.dumps(claim)}' | kubectl create -f -"], check=True)
    for _ in range(60):
        if gc.kubectl_json(lab, "get", "pvc", "user-data").get("status", {}).get("phase") == "Bound":
            break
        time.sleep(1)
    refused = gfs("teardown", inv, "--yes")
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out
    assert "volume claim(s) other than gfsdeploy's smoke test use StorageClass glusterfs: default/user-data (Bound" in out
    assert "--force" in out and "Nothing was changed." in out
    assert "daemonset.apps/glusterfs" in gc.kubectl(lab, "get", "daemonset", "-o", "name")

    # -- like terraform destroy: the plan, then a typed yes ------------------------------------------
    unconfirmed = gfs("teardown", inv, "--force")           # no terminal, no --yes
    out = unconfirmed.stdout + unconfirmed.stderr
    assert unconfirmed.returncode == 1, out
    assert "- kubernetes DaemonSet default/glusterfs" in out and "! volume claim default/user-data" in out
    assert "no terminal to confirm it" in out and "--yes" in out
    answered_no = on_a_terminal(["teardown", inv, "--force"], "no\n")
    assert answered_no.returncode == 1 and "Only 'yes' will be accepted" in answered_no.stdout, answered_no
    assert "Teardown cancelled: nothing was changed." in answered_no.stderr
    assert "daemonset.apps/glusterfs" in gc.kubectl(lab, "get", "daemonset", "-o", "name")

    down = on_a_terminal(["teardown", inv, "--force"], "yes\n")
    assert down.returncode == 0, down.stdout + down.stderr
    left = gc.kubectl(lab, "get", "all,secret,sa,storageclass,pvc", "-o", "name")
    for obj in ["daemonset.apps/glusterfs", "deployment.apps/heketi", "storageclass.storage.k8s.io/glusterfs",
                "secret/heketi-config-secret", "persistentvolumeclaim/gfsdeploy-smoke-test"]:
        assert obj not in left, left
    assert "persistentvolumeclaim/user-data" in left   # the user's claim is never gfsdeploy's to delete
    gc.wait_for(lambda: gc.ssh(lab, "k8s-2", "pgrep -x glusterd").returncode != 0, 30, "glusterd gone")
    # no --wipe-devices: heketi's filesystem stays on the disk
    assert "xfs" in gc.ssh(lab, "k8s-2", "blkid -p -o value -s TYPE /dev/sdb").stdout
    assert_no_secret(deployment.outputs, list(heketi_keys(lab).values()))


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


def test_glusterd_port_closed_fails_at_the_check_naming_node_and_port(tmp_path_factory):
    """A node's firewall drops TCP 24007 (an admin rule ahead of the deployment's ACCEPT):
    the deployment stops right after the glusterfs pods are up, naming the node and the port."""
    from tests.conftest import make_lab

    lab = make_lab(tmp_path_factory, 3)
    try:
        rule = "iptables -N heketi && iptables -A heketi -p tcp --dport 24007 -j DROP"
        assert gc.ssh(lab, "k8s-3", rule).returncode == 0
        failed = gfs("apply", str(lab.inventory_path))
        out = failed.stdout + failed.stderr
        assert failed.returncode == 1, out
        assert "Traceback" not in out
        assert "FAILED: glusterd reachable on every storage node (TCP 24007)" in out
        k8s3 = next(n.ip for n in lab.nodes if n.name == "k8s-3")
        assert f"k8s-3 ({k8s3}): TCP port 24007 (glusterd) does not answer from k8s-1" in out
        assert "Topology loaded" not in out.split("FAILED: glusterd reachable")[0]
    finally:
        lab.down()


@pytest.mark.parametrize("fault,message", [
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
        assert gc.volume_names(lab, "k8s-1").count("heketidbstorage") == 1
        client = heketi_client(lab)
        topology = client.topology()
        assert len(topology["clusters"]) == 1
        assert sum(len(n["devices"]) for n in topology["clusters"][0]["nodes"]) == 3
        assert gfs("plan", inv).returncode == 0
    finally:
        lab.down()
