"""The master-node steps of docs/PROCEDURE.md (heketi bootstrap to StorageClass) against the
simulator run as the lab runs it: a subprocess with --manage-lo inside a private network
namespace, heketi pods reached on their Service ClusterIP. (The DB move through a real
GlusterFS volume is tested in tests/lab/.)"""
from __future__ import annotations

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


def hello(prefix, url) -> str:
    r = subprocess.run(prefix + [sys.executable, "-c", "import sys, urllib.request; "
                                 "print(urllib.request.urlopen(sys.argv[1] + '/hello', timeout=5).read().decode())", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def lo_addrs(prefix) -> str:
    return subprocess.run(prefix + ["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout


def test_heketi_answers_on_its_service_cluster_ip(netsim, tmp_path):
    k, prefix, state = netsim
    (tmp_path / "heketi.json").write_text(json.dumps(HEKETI_JSON))
    k("create", "-f", manifest("heketi-service-account.json"))
    k("create", "secret", "generic", "heketi-config-secret", f"--from-file={tmp_path / 'heketi.json'}")
    k("create", "-f", manifest("heketi-bootstrap.json"))
    k("rollout", "status", "deployment/deploy-heketi", "--timeout=30s")
    boot_ip = k.json("get", "svc", "deploy-heketi")["spec"]["clusterIP"]
    assert f"{boot_ip}/32" in lo_addrs(prefix)
    assert hello(prefix, f"http://{boot_ip}:8080") == "Hello from Heketi"
    k("delete", "all,service,jobs,deployment,secret", "--selector=deploy-heketi")
    wait_until(lambda: f"{boot_ip}/32" not in lo_addrs(prefix), what="bootstrap ClusterIP removed from lo")
