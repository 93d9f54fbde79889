"""The Kubernetes API server SIMULATOR as one object: API + HTTP + controllers + pod runtime.

Not a Kubernetes: a stand-in for the gfsdeploy lab that the real kubectl talks
to unchanged. Every log line starts with "[k8s-sim]".
"""
from __future__ import annotations

import json
import os
import threading
import time

from .api import Api
from .server import make_server, serve_in_thread
from .store import now

# Fault switches (match by object-name prefix), see README in __init__:
FAULT_KEYS = ("pod_never_ready", "job_fails", "pod_fails", "mount_fails", "provision_fails", "image_pull_fails")


class Simulator:
    def __init__(self, listen: tuple[str, int], state_dir: str, nodes: dict[str, str],
                 service_cidr: str = "10.186.1.0/24", version: str = "1.25.16",
                 faults_file: str | None = None, manage_lo: bool = False, tick: float = 0.3,
                 ready_delay: float = 1.0, node_netns: dict[str, str] | None = None,
                 heketi_faults_file: str | None = None, node_pidfiles: dict[str, str] | None = None):
        self.listen = listen
        self.state_dir = os.path.abspath(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.nodes = nodes
        self.version = version
        from .discovery import parse_version
        self.gluster_removed = parse_version(version)[:2] >= (1, 26)   # in-tree plugin + provisioner gone
        self.faults_file = faults_file
        self.manage_lo = manage_lo
        self.tick = tick
        self.ready_delay = ready_delay
        self.node_netns = node_netns or {}
        from .nodeside import LabNode
        # lab nodes pods really run in (their PID 1 in a pid file); without: the simulator alone
        self.lab_nodes = {name: LabNode(name, path) for name, path in (node_pidfiles or {}).items()}
        self.heketi_faults_file = heketi_faults_file
        self._log_lock = threading.Lock()
        self._logf = open(os.path.join(self.state_dir, "kubernetes-apiserver-simulator.log"), "a")
        self.api = Api(version, service_cidr)
        self.api.log = self.log
        self.api.faults = {k: [] for k in FAULT_KEYS}
        self._stop = threading.Event()
        self.httpd = None
        self._threads: list[threading.Thread] = []
        from .controllers import Controllers
        from .runtime import Runtime
        self.runtime = Runtime(self)
        self.controllers = Controllers(self)

    # --- lifecycle -------------------------------------------------------
    def start(self) -> "Simulator":
        self._bootstrap()
        self.httpd = make_server(self, self.listen)
        self.listen = self.httpd.server_address[:2]
        self._threads.append(serve_in_thread(self.httpd))
        t = threading.Thread(target=self._loop, name="k8s-sim-controllers", daemon=True)
        t.start()
        self._threads.append(t)
        self.log(f"Kubernetes API server SIMULATOR v{self.version} listening on "
                 f"http://{self.listen[0]}:{self.listen[1]} (state {self.state_dir})")
        return self

    def stop(self) -> None:
        self._stop.set()
        self.api.store.close()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self.runtime.shutdown()
        self.controllers.shutdown()
        self.log("stopped")
        self._logf.close()

    def url(self) -> str:
        return f"http://{self.listen[0]}:{self.listen[1]}"

    def log(self, msg: str) -> None:
        line = f"{now()} [k8s-sim] {msg}\n"
        with self._log_lock:
            if not self._logf.closed:
                self._logf.write(line)
                self._logf.flush()

    # --- faults ----------------------------------------------------------
    def set_faults(self, faults: dict) -> None:
        clean = {k: [] for k in FAULT_KEYS}
        for k, v in (faults or {}).items():
            if k in clean:
                clean[k] = [str(x) for x in (v if isinstance(v, list) else [v])]
        if clean != self.api.faults:
            self.log(f"faults now {json.dumps(clean)}")
        self.api.faults = clean

    def fault(self, key: str, name: str) -> bool:
        return any(name.startswith(prefix) for prefix in self.api.faults.get(key, []))

    def _read_faults_file(self):
        if not self.faults_file:
            return
        try:
            with open(self.faults_file) as fh:
                self.set_faults(json.load(fh))
        except FileNotFoundError:
            self.set_faults({})
        except (OSError, ValueError) as exc:
            self.log(f"faults file {self.faults_file} unreadable, keeping previous faults: {exc}")

    # --- internals -------------------------------------------------------
    def _bootstrap(self):
        api = self.api
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            api.create(api.res("namespaces"), "", {"metadata": {"name": ns}})
        for name in ("cluster-admin", "admin", "edit", "view"):
            api.create(api.res("clusterroles"), "", {"metadata": {"name": name}, "rules": []})
        for ns in ("default", "kube-system"):
            api.create(api.res("serviceaccounts"), ns, {"metadata": {"name": "default"}})
        first = str(list(api.admission.cidr.hosts())[0])
        api.create(api.res("services"), "default", {
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": first, "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}})
        for name, ip in self.nodes.items():
            api.create(api.res("nodes"), "", self._node(name, ip))

    def _node(self, name: str, ip: str) -> dict:
        ts = now()
        return {
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"},
                "annotations": {"gfsdeploy.dev/simulated": "true"}},
            "spec": {"podCIDR": ""},
            "status": {
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status (simulated)",
                     "lastHeartbeatTime": ts, "lastTransitionTime": ts}],
                "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "nodeInfo": {"kubeletVersion": f"v{self.version}", "kubeProxyVersion": f"v{self.version}",
                             "osImage": "gfsdeploy simulated node", "kernelVersion": os.uname().release,
                             "containerRuntimeVersion": "gfsdeploy-sim://1", "operatingSystem": "linux",
                             "architecture": "amd64"}}}

    def _loop(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._read_faults_file()
                self.controllers.tick()
                self.runtime.tick()
            except Exception:
                import traceback
                self.log("controller error: " + traceback.format_exc())
            self._stop.wait(max(0.05, self.tick - (time.monotonic() - started)))
