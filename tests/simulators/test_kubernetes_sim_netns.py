"""The master-node steps of docs/PROCEDURE.md (heketi bootstrap to StorageClass) against the simulator run as the lab runs it:
a subprocess with --manage-lo inside a private network namespace, heketi pods
reached on their Service ClusterIP, the heketi DB really moved by the copy job."""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from test_kubernetes_sim_helpers import HEKETI_JSON, Kubectl, kubectl_binaries, manifest, needs_root, wait_until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARIES = kubectl_binaries()
pytestmark = [needs_root,
              pytest.mark.skipif(not BINARIES, reason="no real kubectl binary"),
              pytest.mark.skipif(not shutil.which("nsenter") or not shutil.which("ip"), reason="needs nsenter, ip")]

HEKETI_SCRIPT = r"""
import json, sys
from gfsdeploy_glusterfs.lab.simulators.kubernetes.provisioner import heketi_async, heketi_call
url, op = sys.argv[1], sys.argv[2]
call = lambda m, p, b=None: heketi_async(url, "admin", "adminkey", m, p, b)
if op == "setup":
    cluster = json.loads(call("POST", "/clusters", {}))
    for i, ip in enumerate(["10.186.0.10", "10.186.0.11", "10.186.0.12"]):
        node = json.loads(call("POST", "/nodes", {"cluster": cluster["id"], "zone": 1,
                                                   "hostnames": {"manage": [f"k8s-{i+1}"], "storage": [ip]}}))
        call("POST", "/devices", {"node": node["id"], "name": "/dev/sdb", "destroydata": True})
    call("POST", "/volumes", {"size": 2, "name": "heketidbstorage",
                              "durability": {"type": "replicate", "replicate": {"replica": 3}}})
    code, _, db = heketi_call(url, "admin", "adminkey", "GET", "/backup/db")
    assert code == 200, code
    sys.stdout.buffer.write(db)
else:
    vols = [json.loads(call("GET", "/volumes/" + v))["name"] for v in json.loads(call("GET", "/volumes"))["volumes"]]
    clusters = json.loads(call("GET", "/clusters"))["clusters"]
    print(json.dumps({"volumes": vols, "clusters": clusters}))
"""


@pytest.fixture
def netsim(tmp_path):
    state = tmp_path / "state"
    cmd = ("ip link set lo up && exec " + sys.executable + " -m gfsdeploy_glusterfs.lab.simulators.kubernetes "
           f"--listen 127.0.0.1:6443 --state {state} --nodes k8s-1=10.186.0.10,k8s-2=10.186.0.11,k8s-3=10.186.0.12 "
           "--service-cidr 10.186.1.0/24 --version 1.25.16 --manage-lo --ready-delay 0.3")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", cmd], env={**os.environ, "PYTHONPATH": REPO},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    prefix = ["nsenter", "-t", str(proc.pid), "-n"]
    k = Kubectl(BINARIES[0], "http://127.0.0.1:6443", str(tmp_path), prefix=prefix)
    wait_until(lambda: k("get", "nodes", check=False).returncode == 0, what="simulator up")
    yield k, prefix, str(state)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def heketi(prefix, url, op) -> bytes:
    r = subprocess.run(prefix + [sys.executable, "-c", HEKETI_SCRIPT, url, op], capture_output=True,
                       env={**os.environ, "PYTHONPATH": REPO}, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def lo_addrs(prefix) -> str:
    return subprocess.run(prefix + ["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout


def test_heketi_db_moves_through_the_copy_job(netsim, tmp_path):
    k, prefix, state = netsim
    (tmp_path / "heketi.json").write_text(json.dumps(HEKETI_JSON))
    k("create", "-f", manifest("heketi-service-account.json"))
    k("create", "secret", "generic", "heketi-config-secret", f"--from-file={tmp_path / 'heketi.json'}")
    k("create", "-f", manifest("heketi-bootstrap.json"))
    k("rollout", "status", "deployment/deploy-heketi", "--timeout=30s")
    boot_ip = k.json("get", "svc", "deploy-heketi")["spec"]["clusterIP"]
    assert f"{boot_ip}/32" in lo_addrs(prefix)
    db = heketi(prefix, f"http://{boot_ip}:8080", "setup")

    storage = json.load(open(manifest("heketi-storage.json")))
    storage["items"][0]["data"]["heketi.db"] = base64.b64encode(db).decode()
    (tmp_path / "storage.json").write_text(json.dumps(storage))
    k("create", "-f", str(tmp_path / "storage.json"))
    k("wait", "--for=condition=complete", "job/heketi-storage-copy-job", "--timeout=30s")
    with open(os.path.join(state, "volumes", "heketidbstorage", "heketi.db"), "rb") as fh:
        assert fh.read() == db

    k("delete", "all,service,jobs,deployment,secret", "--selector=deploy-heketi")
    wait_until(lambda: f"{boot_ip}/32" not in lo_addrs(prefix), what="bootstrap ClusterIP removed from lo")

    k("create", "-f", manifest("heketi-deployment.json"))
    k("rollout", "status", "deployment/heketi", "--timeout=30s")
    ip = k.json("get", "svc", "heketi")["spec"]["clusterIP"]
    got = json.loads(heketi(prefix, f"http://{ip}:8080", "check"))
    assert got["volumes"] == ["heketidbstorage"] and len(got["clusters"]) == 1
