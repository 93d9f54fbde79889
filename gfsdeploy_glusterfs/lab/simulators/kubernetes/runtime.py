"""Simulated kubelet: pod containers as real processes, probes really run.

With lab nodes (``--node-pidfiles``) a pod runs INSIDE its node (``nodeside``): its
containers in the node's namespaces (``hostNetwork``: the node's network; ``hostPID``:
the node's PIDs), the image from the node's image store, volumes in the node's filesystem:
  secret/configMap/emptyDir -> /var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~<kind>/<name>
  hostPath                  -> the node's own path
  glusterfs, and persistentVolumeClaim bound to a glusterfs PV
                            -> mounted there by the node's `mount -t glusterfs` (FUSE); a node
                               without glusterfs-client fails the mount, as a real one does
Without lab nodes (the simulator alone, for API tests) containers run on the host in a
private mount namespace over an overlay of `/`, volumes under STATE/pods/, and glusterfs
volumes cannot be mounted at all.

Probes: exec probes run in the container (``nsenter`` into all its namespaces), httpGet
probes of a simulated heketi are sent to it; readiness and liveness follow the probe's
timing fields; a container without a readiness probe is Ready ~ready_delay after start.
Images containing "heketi" (without a command) run a HeketiSimulator in-process, its DB in
the pod's volumes (through the node's mounts: its glusterfs volume is a real one); images
without a command are simulated as running.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from . import nodeside
from .controllers import pod_ready
from .store import ApiError, now

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
# the process of a container whose server the simulator plays in-process (heketi): it only
# holds the container's namespaces, root and mounts for exec
HOLDER = ["sh", "-c", 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done']
MOUNT_BACKOFF_MAX = 30.0


class MountError(Exception):
    pass


class Probe:
    """One readiness or liveness probe loop of a running container, in its own thread."""

    def __init__(self, spec: dict, check, name: str):
        self.spec = spec
        self.check = check               # (timeout seconds) -> (passed, what it said)
        self.ok = False                  # readiness: Ready; liveness: not (yet) failed
        self.failed = False              # failureThreshold consecutive failures
        self.last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"probe-{name}", daemon=True)
        self._thread.start()

    def _loop(self):
        spec = self.spec
        period = max(1.0, float(spec.get("periodSeconds", 10)))
        timeout = max(1.0, float(spec.get("timeoutSeconds", 1)))
        need_ok = max(1, int(spec.get("successThreshold", 1)))
        need_fail = max(1, int(spec.get("failureThreshold", 3)))
        oks = fails = 0
        if self._stop.wait(float(spec.get("initialDelaySeconds", 0))):
            return
        while not self._stop.is_set():
            try:
                good, self.last = self.check(timeout)
            except Exception as exc:  # noqa: BLE001 - a probe that cannot run has failed
                good, self.last = False, f"probe error: {exc}"
            oks, fails = (oks + 1, 0) if good else (0, fails + 1)
            if oks >= need_ok:
                self.ok, self.failed = True, False
            if fails >= need_fail:
                self.ok, self.failed = False, True
            if self._stop.wait(period):
                return

    def stop(self):
        self._stop.set()


class Container:
    def __init__(self, spec: dict):
        self.spec = spec
        self.name = spec["name"]
        self.proc: subprocess.Popen | None = None
        self.cp: nodeside.ContainerProcess | None = None
        self.heketi = None
        self.simulated = False
        self.started_at: str | None = None
        self.started_mono = 0.0
        self.finished_at: str | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self.restarts = 0
        self.next_start = 0.0
        self.last_state: dict = {}
        self.readiness: Probe | None = None
        self.liveness: Probe | None = None

    def stop_probes(self):
        for probe in (self.readiness, self.liveness):
            if probe is not None:
                probe.stop()
        self.readiness = self.liveness = None


class PodRun:
    def __init__(self, pod: dict, directory: str, node: nodeside.LabNode | None):
        self.uid = pod["metadata"]["uid"]
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.node_name = pod["spec"].get("nodeName", "")
        self.dir = directory                     # logs (and volumes without lab nodes), on the host
        self.node = node
        self.host_network = bool(pod["spec"].get("hostNetwork"))
        self.host_pid = bool(pod["spec"].get("hostPID"))
        self.mounts: list[tuple[str, str, str, bool]] = []   # (container, source, mountPath, readOnly)
        self.node_mounts: list[str] = []         # glusterfs mounts the kubelet made on the node
        self.containers: dict[str, Container] = {}
        self.start_ts = now()
        self.pod_ip = ""
        self.host_ip = ""
        self.done = False

    def host_path(self, source: str) -> str:
        """A volume source as the simulator (host side) can open it."""
        return self.node.path(source) if self.node else source


class _Setup:
    """A pod's volumes being prepared in a thread (a glusterfs mount can take seconds)."""

    def __init__(self, fn):
        self.result = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True, name="k8s-sim-pod-setup")
        self.thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except Exception as exc:  # noqa: BLE001 - reported as the pod's waiting reason
            self.error = exc


class Runtime:
    def __init__(self, sim):
        self.sim = sim
        self.api = sim.api
        self.runs: dict[str, PodRun] = {}
        self.setups: dict[str, _Setup] = {}
        self.retry_at: dict[str, tuple[float, float]] = {}   # uid -> (next attempt, backoff)
        self.waiting_msg: dict[str, str] = {}
        self.lo_ips: set[str] = set()
        self.next_pod_ip = 2
        self.pod_net = ipaddress.ip_network("10.244.0.0/16")
        self._lock = threading.RLock()

    # --- main loop -------------------------------------------------------
    def tick(self):
        pods = self.api.store.list("pods")[0]
        alive = {p["metadata"]["uid"] for p in pods}
        for uid in list(self.runs):          # first stop what is gone: a replacement may need its address
            if uid not in alive:
                self._teardown(self.runs.pop(uid))
        for pod in pods:
            uid = pod["metadata"]["uid"]
            phase = pod.get("status", {}).get("phase")
            if not pod["spec"].get("nodeName"):
                continue
            run = self.runs.get(uid)
            if run is None:
                if phase in ("Succeeded", "Failed"):
                    continue
                run = self._setup(pod)
                if run is None:
                    continue
            self._supervise(pod, run)
            self._write_status(pod, run)
            if run.done:
                self._teardown(run)
                del self.runs[uid]
        for uid in list(self.waiting_msg):
            if uid not in alive:
                del self.waiting_msg[uid]
        for uid in list(self.setups):
            if uid not in alive and not self.setups[uid].thread.is_alive():
                setup = self.setups.pop(uid)
                if setup.result is not None:
                    self._teardown(setup.result)
        self._sync_lo()

    def shutdown(self):
        for run in list(self.runs.values()):
            self._teardown(run)
        self.runs.clear()
        for ip in list(self.lo_ips):
            self._lo("del", ip)

    def read_log(self, ns: str, name: str, container: str | None) -> bytes:
        pod = self.api.store.find("pods", ns, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        cname = container or pod["spec"]["containers"][0]["name"]
        path = os.path.join(self._pod_dir(pod), f"{cname}.log")
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return b""

    # --- exec (kubectl exec, heketi's kubernetes executor; probes use the same namespaces) ----
    def exec_target(self, ns: str, pod_name: str, argv: list[str],
                    container: str | None = None) -> tuple[list[str], dict]:
        """The argv running ARGV in a container of a running pod (nsenter into every namespace
        of the container, its root and working directory) and the container's environment;
        ExecError, with the kubelet's words, when the pod or container does not run."""
        with self._lock:
            run = next((r for r in self.runs.values() if r.ns == ns and r.name == pod_name), None)
        if run is None:
            raise ExecError(f'container not found ("{container or "?"}")' if container else
                            f'pod "{pod_name}" is not running (no container to exec in)')
        ctr = run.containers.get(container) if container else next(iter(run.containers.values()), None)
        if ctr is None or ctr.exit_code is not None or (ctr.cp is None and not ctr.simulated):
            raise ExecError(f'container not found ("{container or (ctr.name if ctr else "?")}")')
        if ctr.cp is None:
            raise ExecError(f'container "{ctr.name}" of pod {pod_name} is simulated (its image has no command '
                            "in this lab: no process to exec in)")
        full = ctr.cp.exec_argv(argv)
        if full is None:
            raise ExecError(f'container not found ("{ctr.name}")')
        return full, self._env(self.api.store.find("pods", ns, pod_name) or {}, run, ctr)

    def exec(self, ns: str, pod_name: str, argv: list[str], timeout: float,
             container: str | None = None) -> subprocess.CompletedProcess:
        """Run ARGV in a container of a running pod to its end (exec_target)."""
        full, env = self.exec_target(ns, pod_name, argv, container)
        try:
            return subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            return subprocess.CompletedProcess(full, 124, out, f"command timed out after {timeout:.0f}s")

    def pods_on_node(self, ns: str, label_key: str, node: str) -> list[dict]:
        return [p for p in self.api.store.list("pods", ns)[0]
                if label_key in (p["metadata"].get("labels") or {}) and p["spec"].get("nodeName") == node]

    # --- setup -----------------------------------------------------------
    def _pod_dir(self, pod) -> str:
        m = pod["metadata"]
        return os.path.join(self.sim.state_dir, "pods", f"{m['namespace']}_{m['name']}_{m['uid'][:8]}")

    def _waiting(self, pod, reason: str, message: str, event_reason: str = "FailedMount"):
        uid = pod["metadata"]["uid"]
        st = dict(pod.get("status", {}))
        st["containerStatuses"] = [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                                    "restartCount": 0, "started": False,
                                    "state": {"waiting": {"reason": reason}}}
                                   for c in pod["spec"]["containers"]]
        st["hostIP"] = self._node_ip(pod["spec"]["nodeName"])
        st.setdefault("startTime", now())
        st["phase"] = "Pending"
        from .controllers import set_condition
        st["conditions"] = set_condition(st.get("conditions"), "PodScheduled", "True", "", "")
        self.api.set_status("pods", pod["metadata"]["namespace"], pod["metadata"]["name"], st)
        if self.waiting_msg.get(uid) != message:
            self.waiting_msg[uid] = message
            self.api.event(pod, "Pod", event_reason, message, "Warning")

    def _node_ip(self, node: str) -> str:
        n = self.api.store.find("nodes", "", node)
        for a in (n or {}).get("status", {}).get("addresses", []):
            if a["type"] == "InternalIP":
                return a["address"]
        return ""

    def _setup(self, pod) -> PodRun | None:
        """Prepare the pod (in a thread: mounts may be slow); the PodRun once it is ready."""
        uid = pod["metadata"]["uid"]
        name = pod["metadata"]["name"]
        if self.sim.fault("image_pull_fails", name):
            image = pod["spec"]["containers"][0].get("image", "")
            self._waiting(pod, "ErrImagePull", f'Failed to pull image "{image}": rpc error: code = NotFound desc = '
                                               f'failed to pull and unpack image "{image}": not found '
                                               "(simulated fault image_pull_fails)", "Failed")
            return None
        setup = self.setups.get(uid)
        if setup is None:
            retry = self.retry_at.get(uid)
            if retry and time.monotonic() < retry[0]:
                return None
            directory = self._pod_dir(pod)
            node = self.sim.lab_nodes.get(pod["spec"]["nodeName"])
            run = PodRun(pod, directory, node)
            self.setups[uid] = _Setup(lambda: self._prepare(pod, run))
            return None
        if setup.thread.is_alive():
            return None
        del self.setups[uid]
        if setup.error is not None:
            delay = min(MOUNT_BACKOFF_MAX, (self.retry_at.get(uid, (0, 0.5))[1]) * 2)
            self.retry_at[uid] = (time.monotonic() + delay, delay)
            reason, message = (("ContainerCreating", str(setup.error)) if isinstance(setup.error, MountError)
                               else ("CreateContainerConfigError", f"Error: {setup.error}"))
            self._waiting(pod, reason, message,
                          "FailedMount" if isinstance(setup.error, MountError) else "Failed")
            return None
        run = setup.result
        self.retry_at.pop(uid, None)
        if self._is_heketi(pod) and self.sim.manage_lo and not self._heketi_services(pod):
            self._release_node_mounts(run)
            self._waiting(pod, "ContainerCreating", "simulator: waiting for a Service selecting this heketi pod "
                                                    "(the simulated heketi listens on the Service ClusterIP)",
                          "Waiting")
            return None
        with self._lock:
            self.runs[run.uid] = run
        self.waiting_msg.pop(run.uid, None)
        self.sim.log(f"kubelet: starting pod {run.ns}/{run.name} on {run.node_name}")
        return run

    def _prepare(self, pod, run: PodRun) -> PodRun:
        try:
            volumes = self._volumes(pod, run)
        except BaseException:
            self._release_node_mounts(run)
            raise
        for c in pod["spec"]["containers"]:
            run.containers[c["name"]] = Container(c)
            for vm in c.get("volumeMounts") or []:
                src = volumes.get(vm["name"])
                if src is None:
                    self._release_node_mounts(run)
                    raise ValueError(f'cannot find volume "{vm["name"]}" to mount into container "{c["name"]}"')
                if vm.get("subPath"):
                    src = os.path.join(src, vm["subPath"])
                    os.makedirs(run.host_path(src), exist_ok=True)
                run.mounts.append((c["name"], src, vm["mountPath"], bool(vm.get("readOnly"))))
        run.host_ip = self._node_ip(pod["spec"]["nodeName"])
        run.pod_ip = run.host_ip if run.host_network else self._alloc_pod_ip()
        if run.node is not None:
            self._kubelet_files(pod, run)
        return run

    def _alloc_pod_ip(self) -> str:
        with self._lock:
            ip = str(self.pod_net.network_address + self.next_pod_ip)
            self.next_pod_ip += 1
        return ip

    def _volume_dir(self, run: PodRun, kind: str, vname: str) -> str:
        """Where volume VNAME lives: the node path (lab nodes) or a host directory."""
        if run.node is not None:
            return f"{nodeside.pod_dir(run.uid)}/volumes/kubernetes.io~{kind}/{vname}"
        return os.path.join(run.dir, "volumes", vname)

    def _volumes(self, pod, run: PodRun) -> dict[str, str]:
        """Materialize every volume; MountError says why it cannot be mounted (pod stays ContainerCreating)."""
        out = {}
        ns = pod["metadata"]["namespace"]
        name = pod["metadata"]["name"]
        for vol in pod["spec"].get("volumes") or []:
            vname = vol["name"]
            if "secret" in vol or "configMap" in vol:
                src = vol.get("secret") or vol.get("configMap")
                plural = "secrets" if "secret" in vol else "configmaps"
                path = self._volume_dir(run, plural[:-1], vname)
                ref = src.get("secretName") or src.get("name")
                obj = self.api.store.find(plural, ns, ref)
                if obj is None:
                    if src.get("optional"):
                        os.makedirs(run.host_path(path), exist_ok=True)
                        out[vname] = path
                        continue
                    raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : {plural[:-1]} '
                                     f'"{ref}" not found')
                if plural == "secrets":
                    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                else:
                    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
                    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
                where = run.host_path(path)
                shutil.rmtree(where, ignore_errors=True)
                os.makedirs(where, exist_ok=True)
                items = src.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : couldn\'t find key '
                                         f'{item["key"]} in {plural[:-1]} {ns}/{ref}')
                    target = os.path.join(where, item["path"])
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as fh:
                        fh.write(data[item["key"]])
                    os.chmod(target, item.get("mode", src.get("defaultMode", 0o644)))
                out[vname] = path
            elif "emptyDir" in vol or "projected" in vol or "downwardAPI" in vol:
                path = self._volume_dir(run, "empty-dir", vname)
                os.makedirs(run.host_path(path), exist_ok=True)
                out[vname] = path
            elif "hostPath" in vol:
                out[vname] = self._host_path(pod, run, vname, vol["hostPath"])
            elif "glusterfs" in vol:
                out[vname] = self._gluster_mount(pod, run, vname, ns, vol["glusterfs"]["endpoints"],
                                                 vol["glusterfs"]["path"])
            elif "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                pvc = self.api.store.find("persistentvolumeclaims", ns, claim)
                if pvc is None:
                    raise MountError(f'persistentvolumeclaim "{claim}" not found')
                if pvc.get("status", {}).get("phase") != "Bound":
                    raise MountError(f'pod has unbound immediate PersistentVolumeClaims (claim "{claim}")')
                pv = self.api.store.find("persistentvolumes", "", pvc["spec"]["volumeName"])
                gl = (pv or {}).get("spec", {}).get("glusterfs")
                if not gl:
                    raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : the simulator only '
                                     "mounts glusterfs persistent volumes")
                out[vname] = self._gluster_mount(pod, run, vname, gl.get("endpointsNamespace") or ns,
                                                 gl["endpoints"], gl["path"])
            else:
                self.sim.log(f"kubelet: pod {ns}/{name}: volume {vname} of an unsimulated type, using an empty dir")
                path = self._volume_dir(run, "empty-dir", vname)
                os.makedirs(run.host_path(path), exist_ok=True)
                out[vname] = path
        return out

    def _host_path(self, pod, run: PodRun, vname: str, spec: dict) -> str:
        path = spec["path"]
        if run.node is None:   # never the simulator host's own path
            hp = os.path.join(self.sim.state_dir, "nodes", pod["spec"]["nodeName"], "hostpath", path.lstrip("/"))
            os.makedirs(hp, exist_ok=True)
            return hp
        where = run.node.path(path)
        kind = spec.get("type") or ""
        if kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice") and not os.path.exists(where):
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : hostPath type check failed: '
                             f"{path} is not a {kind.lower()}")
        if not os.path.lexists(where):
            if kind == "FileOrCreate":
                os.makedirs(os.path.dirname(where), exist_ok=True)
                open(where, "a").close()
            else:   # "" (no check) and DirectoryOrCreate: the runtime creates a missing directory
                os.makedirs(where, exist_ok=True)
        return path

    def _gluster_mount(self, pod, run: PodRun, vname, ns, endpoints, volume) -> str:
        if self.sim.gluster_removed:
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : no volume plugin matched: the '
                             "in-tree glusterfs volume plugin was removed in Kubernetes 1.26")
        if self.sim.fault("mount_fails", pod["metadata"]["name"]):
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : mount failed: mount failed: exit '
                             "status 32 ... Output: mount: unknown filesystem type 'glusterfs' "
                             "(simulated fault mount_fails)")
        ep = self.api.store.find("endpoints", ns, endpoints)
        if ep is None:
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : endpoints "{endpoints}" not found')
        hosts = [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
        if not hosts:
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : failed to get any endpoint '
                             f'addresses from endpoints "{endpoints}"')
        if run.node is None:
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : this simulator runs without lab '
                             "nodes (--node-pidfiles): a glusterfs volume is mounted only by a node's "
                             "mount.glusterfs")
        target = self._volume_dir(run, "glusterfs", vname)
        log_file = (f"{nodeside.KUBELET}/plugins/kubernetes.io/glusterfs/{vname}/"
                    f"{run.name}-glusterfs.log")
        if target in run.node.mounts_below(target):
            return target
        res = nodeside.mount_glusterfs(run.node, hosts, volume, target, log_file)
        if res.returncode != 0:
            args = f"-t glusterfs -o {','.join(['log-level=ERROR', 'log-file=' + log_file])} {hosts[0]}:{volume} {target}"
            msg = (f'MountVolume.SetUp failed for volume "{vname}" : mount failed: mount failed: exit status '
                   f"{res.returncode}\nMounting command: mount\nMounting arguments: {args}\n"
                   f"Output: {(res.stdout + res.stderr).strip()}")
            tail = self._log_tail(run.node, log_file)
            if tail:
                msg += f"\n\nthe following error information was pulled from the glusterfs log to help " \
                       f"diagnose this issue: {tail}"
            raise MountError(msg)
        run.node_mounts.append(target)
        self.sim.log(f"kubelet: {run.node_name}: mounted glusterfs {hosts[0]}:{volume} for {run.ns}/{run.name}")
        return target

    @staticmethod
    def _log_tail(node: nodeside.LabNode, log_file: str) -> str:
        try:
            with open(node.path(log_file), errors="replace") as fh:
                lines = [line.strip() for line in fh if line.strip()]
        except OSError:
            return ""
        return "\n".join(lines[-2:])

    def _kubelet_files(self, pod, run: PodRun):
        """/etc/hosts and /etc/resolv.conf of every container, as the kubelet manages them."""
        base = nodeside.pod_dir(run.uid)
        hosts = run.node.path(f"{base}/etc-hosts")
        if run.host_network:
            try:
                with open(run.node.path("/etc/hosts")) as fh:
                    text = fh.read()
            except OSError:
                text = "127.0.0.1\tlocalhost\n"
        else:
            text = (f"# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                    f"ip6-loopback\n{run.pod_ip}\t{run.name}\n")
        os.makedirs(os.path.dirname(hosts), exist_ok=True)
        with open(hosts, "w") as fh:
            fh.write(text)
        for cname in run.containers:
            run.mounts.append((cname, f"{base}/etc-hosts", "/etc/hosts", False))
            if os.path.exists(run.node.path("/etc/resolv.conf")):
                run.mounts.append((cname, "/etc/resolv.conf", "/etc/resolv.conf", True))

    # --- heketi pods ----------------------------------------------------
    @staticmethod
    def _is_heketi(pod) -> bool:
        return any("heketi" in (c.get("image") or "") and not c.get("command") for c in pod["spec"]["containers"])

    def _heketi_services(self, pod) -> list[dict]:
        labels = pod["metadata"].get("labels") or {}
        return [s for s in self.api.store.list("services", pod["metadata"]["namespace"])[0]
                if s["spec"].get("selector") and s["spec"].get("clusterIP") not in (None, "None")
                and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())]

    def _start_heketi(self, pod, run: PodRun, ctr: Container):
        try:
            from ..heketi import HeketiSimulator, PodExecutor
        except ImportError as exc:
            raise RuntimeError(f"heketi simulator not available: {exc}") from None
        mounts = sorted([(dst, src) for cname, src, dst, _ in run.mounts if cname == ctr.name],
                        key=lambda m: -len(m[0]))

        def host_path(p: str) -> str | None:
            for dst, src in mounts:
                if p == dst or p.startswith(dst.rstrip("/") + "/"):
                    return run.host_path(os.path.join(src, os.path.relpath(p, dst)))
            return None

        config = None
        for dst, src in mounts:
            cand = os.path.join(run.host_path(src), "heketi.json")
            if os.path.isfile(cand):
                with open(cand) as fh:
                    config = json.load(fh)
                break
        if config is None:
            raise RuntimeError("heketi.json not found in any mounted volume (secret heketi-config-secret?)")
        db = (config.get("glusterfs") or {}).get("db", "/var/lib/heketi/heketi.db")
        db_path = host_path(db)
        if db_path is None:   # not on a volume: the container's own (throwaway) filesystem
            db_path = os.path.join(run.dir, f"{ctr.name}-rootfs", db.lstrip("/"))
        os.makedirs(os.path.dirname(db_path), exist_ok=True)
        port = int(config.get("port", 8080))
        if self.sim.manage_lo:
            svc = self._heketi_services(pod)[0]
            sport = next((p["port"] for p in svc["spec"].get("ports") or []
                          if str(p.get("targetPort", p["port"])) == str(port)), port)
            self._lo("add", svc["spec"]["clusterIP"])
            listen = (svc["spec"]["clusterIP"], sport)
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                listen = ("127.0.0.1", s.getsockname()[1])
        env = {e["name"]: str(e.get("value", "")) for e in ctr.spec.get("env") or [] if "value" in e}
        namespace = env.get("HEKETI_KUBE_NAMESPACE") or run.ns
        executor = PodExecutor(self, namespace)
        hk = HeketiSimulator(config, db_path, listen, self.sim.state_dir, faults_path=self.sim.heketi_faults_file,
                             executor=executor, fstab=env.get("HEKETI_FSTAB", "/var/lib/heketi/fstab"),
                             snapshot_limit=int(env.get("HEKETI_SNAPSHOT_LIMIT") or 0),
                             log=lambda msg: self._append_log(run, ctr, msg + "\n"))
        hk.start()
        ctr.heketi = hk
        url = f"http://{listen[0]}:{listen[1]}"
        self.api.mutate("pods", run.ns, run.name, lambda o: o["metadata"].setdefault("annotations", {})
                        .__setitem__("simulator.gfsdeploy.dev/heketi-url", url))
        self._append_log(run, ctr, f"[k8s-sim] simulated heketi listening on {url}, db {db}\n")
        self.sim.log(f"kubelet: pod {run.ns}/{run.name}: heketi simulator on {url} (db {db_path})")

    def _heketi_on_localhost(self, run: PodRun, ctr: Container, timeout: float = 60):
        """The simulated heketi also listens on 127.0.0.1:<its port> in its container's own
        network namespace: what heketi-cli inside the pod reaches by default."""
        cp, heketi = ctr.cp, ctr.heketi
        deadline = time.monotonic() + timeout
        while cp is not None and heketi is not None and time.monotonic() < deadline:
            pid = cp.main_pid()
            if pid is not None:
                port = int(heketi.config.get("port") or 8080)
                try:
                    heketi.serve_on(nodeside.listen_in_netns(pid, ("127.0.0.1", port)))
                    self._append_log(run, ctr, f"[k8s-sim] heketi also on http://localhost:{port} "
                                               "inside the container\n")
                except OSError as exc:
                    self._append_log(run, ctr, f"[k8s-sim] heketi not on localhost:{port} in the "
                                               f"container: {exc}\n")
                return
            if cp.poll() is not None:
                return
            time.sleep(0.1)

    # --- processes -------------------------------------------------------
    def _argv(self, pod, run: PodRun, ctr: Container, command: list[str] | None = None,
              own_net: bool = False) -> list[str]:
        spec = ctr.spec
        cmd = command if command is not None else list(spec.get("command") or []) + list(spec.get("args") or [])
        workdir = spec.get("workingDir") or "/"
        mounts = [(src, dst, ro) for cname, src, dst, ro in run.mounts if cname == ctr.name]
        if run.node is not None:
            return nodeside.container_argv(
                run.node, uid=run.uid, name=ctr.name, image=spec.get("image", ""), host_network=run.host_network,
                host_pid=run.host_pid, hostname=run.name, mounts=mounts, workdir=workdir, command=cmd,
                own_net=own_net)
        cdir = os.path.join(run.dir, f"ctr-{ctr.name}")
        if not ROOT or not shutil.which("unshare"):
            if mounts:
                raise RuntimeError("the simulated runtime needs root (mount namespaces) for volumeMounts")
            return ["sh", "-c", f"cd {shlex.quote(workdir)} && exec \"$@\"", "sh"] + cmd
        for sub in ("upper", "work", "root"):
            os.makedirs(os.path.join(cdir, sub), exist_ok=True)
        root = os.path.join(cdir, "root")
        q = shlex.quote
        lines = ["set -e",
                 f"mount -t overlay overlay -o lowerdir=/,upperdir={q(cdir)}/upper,workdir={q(cdir)}/work {q(root)}",
                 f"mount --rbind /proc {q(root)}/proc", f"mount --rbind /dev {q(root)}/dev",
                 f"mount --rbind /sys {q(root)}/sys", f"mount -t tmpfs tmpfs {q(root)}/tmp"]
        for src, dst, ro in mounts:
            target = q(root + "/" + dst.lstrip("/"))
            lines.append(f"mkdir -p {target}" if os.path.isdir(src) else f"touch {target}")
            lines.append(f"mount --bind {q(src)} {target}")
            if ro:
                lines.append(f"mount -o remount,bind,ro {target}")
        lines.append(f'exec chroot {q(root)} sh -c "cd {q(workdir)} && exec \\"\\$@\\"" sh "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines), "sh"] + cmd
        netns = self.sim.node_netns.get(pod["spec"]["nodeName"])
        if run.host_network and netns:
            argv = ["ip", "netns", "exec", netns] + argv
        return argv

    def _env(self, pod, run: PodRun, ctr: Container) -> dict:
        env = {"PATH": nodeside.PATH, "HOME": "/root", "HOSTNAME": run.name}
        ns = run.ns
        fields = {"metadata.name": run.name, "metadata.namespace": ns, "status.podIP": run.pod_ip,
                  "spec.nodeName": run.node_name, "status.hostIP": run.host_ip,
                  "metadata.uid": run.uid}
        for e in ctr.spec.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
                continue
            vf = e.get("valueFrom") or {}
            if "fieldRef" in vf:
                env[e["name"]] = fields.get(vf["fieldRef"]["fieldPath"], "")
            elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                plural = "secrets" if "secretKeyRef" in vf else "configmaps"
                obj = self.api.store.find(plural, ns, ref["name"]) or {}
                val = (obj.get("data") or {}).get(ref["key"])
                if val is not None:
                    env[e["name"]] = base64.b64decode(val).decode(errors="replace") if plural == "secrets" else val
        return env

    def _start(self, pod, run: PodRun, ctr: Container):
        ctr.started_at, ctr.started_mono = now(), time.monotonic()
        ctr.exit_code, ctr.finished_at, ctr.reason = None, None, ""
        name = pod["metadata"]["name"]
        spec = ctr.spec
        image = spec.get("image", "")
        self.api.event(pod, "Pod", "Pulled", f'Container image "{image}" already present on machine '
                                             "(simulated: the host's filesystem is the image)")
        self.api.event(pod, "Pod", "Created", f"Created container {ctr.name}")
        self.api.event(pod, "Pod", "Started", f"Started container {ctr.name}")
        if self.sim.fault("job_fails", name) or self.sim.fault("pod_fails", name):
            self._finish(ctr, 1, "Error")
            self._append_log(run, ctr, "[k8s-sim] simulated fault: container exits 1\n")
            return
        holder = False
        try:
            if "heketi" in (spec.get("image") or "") and not spec.get("command"):
                if ctr.heketi is not None:          # a restart: the old one goes first
                    ctr.heketi.stop()
                    ctr.heketi = None
                self._start_heketi(pod, run, ctr)
                self._start_probes(run, ctr)
                if run.node is None:
                    return
                # heketi answers in-process; the container is still a real one (its image,
                # mounts and a localhost where heketi listens) for `kubectl exec heketi-cli …`
                argv = self._argv(pod, run, ctr, command=HOLDER, own_net=True)
                holder = True
            elif not spec.get("command") and not spec.get("args") and run.node is not None \
                    and nodeside.image_command(spec.get("image", "")):
                argv = self._argv(pod, run, ctr, command=nodeside.image_command(spec.get("image", "")))
            elif not spec.get("command") and not spec.get("args"):
                ctr.simulated = True
                self._append_log(run, ctr, f"[k8s-sim] image {spec.get('image')!r} has no command: simulated as "
                                           "running\n")
                return
            else:
                argv = self._argv(pod, run, ctr)
        except Exception as exc:   # any start failure (bad heketi DB, missing tool) is the container's
            self._append_log(run, ctr, f"[k8s-sim] cannot start container: {exc}\n")
            self.api.event(pod, "Pod", "Failed", f"Error: {exc}", "Warning")
            self._finish(ctr, 128, "StartError")
            return
        os.makedirs(run.dir, exist_ok=True)
        log = open(os.path.join(run.dir, f"{ctr.name}.log"), "ab")
        ctr.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=self._env(pod, run, ctr), start_new_session=True)
        log.close()
        if run.node is not None:
            ctr.cp = nodeside.ContainerProcess(ctr.proc, run.node, run.host_pid)
            if holder:
                threading.Thread(target=self._heketi_on_localhost, args=(run, ctr), daemon=True,
                                 name=f"heketi-localhost-{run.name}").start()
            else:
                self._start_probes(run, ctr)
        self.sim.log(f"kubelet: pod {run.ns}/{name} container {ctr.name} pid {ctr.proc.pid}: "
                     f"{' '.join(spec.get('command') or []) + ' ' + ' '.join(spec.get('args') or [])}")

    def _append_log(self, run, ctr, text):
        os.makedirs(run.dir, exist_ok=True)
        with open(os.path.join(run.dir, f"{ctr.name}.log"), "a") as fh:
            fh.write(text)

    @staticmethod
    def _finish(ctr: Container, code: int, reason: str | None = None):
        ctr.exit_code = code
        ctr.finished_at = now()
        ctr.reason = reason or ("Completed" if code == 0 else "Error")

    def _supervise(self, pod, run: PodRun):
        policy = pod["spec"].get("restartPolicy", "Always")
        os.makedirs(run.dir, exist_ok=True)
        for ctr in run.containers.values():
            if ctr.started_at is None and time.monotonic() >= ctr.next_start:
                self._start(pod, run, ctr)
            if ctr.cp is not None:
                ctr.cp.main_pid()                      # learn its namespace while it runs
                if ctr.liveness is not None and ctr.liveness.failed and ctr.proc.poll() is None:
                    self.api.event(pod, "Pod", "Unhealthy", f"Liveness probe failed: {ctr.liveness.last}",
                                   "Warning")
                    self.api.event(pod, "Pod", "Killing", f"Container {ctr.name} failed liveness probe, "
                                                          "will be restarted")
                    ctr.stop_probes()
                    ctr.cp.stop()
            if ctr.proc is not None and ctr.exit_code is None:
                code = ctr.proc.poll()
                if code is not None:
                    if ctr.cp is not None:
                        ctr.cp.reap_leftovers()        # what it daemonized dies with it
                    ctr.stop_probes()
                    self._finish(ctr, code if code >= 0 else 128 - code)
                    ctr.proc = None
                    self.sim.log(f"kubelet: pod {run.ns}/{run.name} container {ctr.name} exited {ctr.exit_code}")
            if ctr.exit_code is not None and ctr.started_at is not None:
                restart = policy == "Always" or (policy == "OnFailure" and ctr.exit_code != 0)
                if restart:
                    ctr.last_state = {"terminated": {"exitCode": ctr.exit_code, "reason": ctr.reason,
                                                     "startedAt": ctr.started_at, "finishedAt": ctr.finished_at}}
                    ctr.restarts += 1
                    ctr.started_at = None
                    ctr.cp = None
                    ctr.reason = "CrashLoopBackOff"
                    ctr.next_start = time.monotonic() + min(10.0, 1.0 * ctr.restarts)

    def _write_status(self, pod, run: PodRun):
        from .controllers import set_condition
        statuses, all_done, any_failed = [], True, False
        ready_all = True
        name = pod["metadata"]["name"]
        never_ready = self.sim.fault("pod_never_ready", name)
        for ctr in run.containers.values():
            cs = {"name": ctr.name, "image": ctr.spec.get("image", ""), "imageID": "",
                  "containerID": f"gfsdeploy-sim://{run.uid[:8]}-{ctr.name}", "restartCount": ctr.restarts}
            if ctr.last_state:
                cs["lastState"] = ctr.last_state
            if ctr.started_at is None:
                cs.update(ready=False, started=False,
                          state={"waiting": {"reason": ctr.reason or "ContainerCreating"}})
                all_done = False
                ready_all = False
            elif ctr.exit_code is not None:
                cs.update(ready=False, started=False, state={"terminated": {
                    "exitCode": ctr.exit_code, "reason": ctr.reason, "startedAt": ctr.started_at,
                    "finishedAt": ctr.finished_at}})
                any_failed |= ctr.exit_code != 0
                ready_all = False
            else:
                ready = self._ready(ctr) and not never_ready
                cs.update(ready=ready, started=True, state={"running": {"startedAt": ctr.started_at}})
                all_done = False
                ready_all &= ready
            statuses.append(cs)
        st = dict(pod.get("status", {}))
        if all_done and run.containers:
            st["phase"] = "Failed" if any_failed else "Succeeded"
            run.done = True
        else:
            st["phase"] = "Running"
        conds = st.get("conditions")
        for ctype, ok in (("Initialized", True), ("Ready", ready_all), ("ContainersReady", ready_all),
                          ("PodScheduled", True)):
            reason = "" if ok else ("PodCompleted" if all_done else "ContainersNotReady")
            conds = set_condition(conds, ctype, "True" if ok else "False", reason,
                                  "" if ok else f"containers with unready status: "
                                                f"[{' '.join(c['name'] for c in statuses if not c['ready'])}]")
        for c in conds:
            c.pop("lastUpdateTime", None)
            if not c.get("reason"):
                c.pop("reason", None)
            if not c.get("message"):
                c.pop("message", None)
        st.update(conditions=conds, containerStatuses=statuses, hostIP=run.host_ip, podIP=run.pod_ip,
                  podIPs=[{"ip": run.pod_ip}], startTime=st.get("startTime") or run.start_ts)
        was_ready = pod_ready(pod)
        self.api.set_status("pods", run.ns, run.name, st)
        if ready_all and not was_ready:
            self.sim.log(f"kubelet: pod {run.ns}/{run.name} Ready")

    # --- probes ----------------------------------------------------------
    def _ready(self, ctr: Container) -> bool:
        if ctr.readiness is not None:
            return ctr.readiness.ok
        return time.monotonic() - ctr.started_mono >= self.sim.ready_delay

    def _start_probes(self, run: PodRun, ctr: Container):
        """Readiness and liveness loops for probes the simulator can really run: exec probes
        in containers running inside a lab node, httpGet probes of a simulated heketi."""
        for kind in ("readinessProbe", "livenessProbe"):
            spec = ctr.spec.get(kind) or {}
            check = self._probe_check(run, ctr, spec)
            if check is None:
                continue
            probe = Probe(spec, check, f"{run.name}-{ctr.name}-{kind}")
            if kind == "readinessProbe":
                ctr.readiness = probe
            else:
                ctr.liveness = probe

    def _probe_check(self, run: PodRun, ctr: Container, spec: dict):
        if "exec" in spec and ctr.cp is not None:
            command = list(spec["exec"].get("command") or [])

            def check(timeout: float, probe_ctr=ctr) -> tuple[bool, str]:
                full = probe_ctr.cp.exec_argv(command) if probe_ctr.cp else None
                if full is None:
                    return False, "container not running"
                try:
                    res = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                                         env={"PATH": nodeside.PATH, "HOME": "/root"})
                except subprocess.TimeoutExpired:
                    return False, f"command timed out after {timeout:.0f}s"
                return res.returncode == 0, (res.stdout + res.stderr).strip()[-300:]
            return check
        if "httpGet" in spec and ctr.heketi is not None:
            path = spec["httpGet"].get("path", "/")

            def check(timeout: float, probe_ctr=ctr) -> tuple[bool, str]:
                if probe_ctr.heketi is None:
                    return False, "not running"
                host, port = probe_ctr.heketi.address
                try:
                    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as resp:
                        return 200 <= resp.status < 400, f"HTTP {resp.status}"
                except (OSError, urllib.error.URLError) as exc:
                    return False, f"Get http://{host}:{port}{path}: {exc}"
            return check
        return None

    # --- teardown --------------------------------------------------------
    def _teardown(self, run: PodRun):
        for ctr in run.containers.values():
            ctr.stop_probes()
            if ctr.cp is not None:
                ctr.cp.stop()
            elif ctr.proc is not None and ctr.proc.poll() is None:
                try:
                    os.killpg(ctr.proc.pid, signal.SIGTERM)
                    ctr.proc.wait(timeout=2)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(ctr.proc.pid, signal.SIGKILL)
                        ctr.proc.wait(timeout=2)
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        pass
            if ctr.heketi is not None:
                try:
                    ctr.heketi.stop()
                except Exception as exc:   # a stop failure must not kill the kubelet loop
                    self.sim.log(f"kubelet: stopping heketi of {run.name} failed: {exc}")
                ctr.heketi = None
        self._release_node_mounts(run)
        self.sim.log(f"kubelet: pod {run.ns}/{run.name} torn down")

    def _release_node_mounts(self, run: PodRun):
        """Unmount what the kubelet mounted for the pod on its node, then remove the pod's
        directory there — only once nothing is mounted below it (never delete through a mount)."""
        if run.node is None:
            return
        base = nodeside.pod_dir(run.uid)
        for target in reversed(run.node_mounts):
            res = run.node.run(["umount", target], timeout=30)
            if res.returncode != 0:
                run.node.run(["umount", "-l", target], timeout=30)
        run.node_mounts.clear()
        try:
            if run.node.mounts_below(base):
                self.sim.log(f"kubelet: {run.node_name}: {base} still has mounts, left in place")
                return
            run.node.run(["rm", "-rf", "--one-file-system", base], timeout=60)
        except nodeside.NodeGone:
            pass

    # --- ClusterIPs on lo ------------------------------------------------
    def _sync_lo(self):
        if not self.sim.manage_lo:
            return
        want = {s["spec"].get("clusterIP") for s in self.api.store.list("services")[0]} - {None, "None", ""}
        for ip in want - self.lo_ips:
            self._lo("add", ip)
        for ip in self.lo_ips - want:
            self._lo("del", ip)

    def _lo(self, op: str, ip: str):
        if op == "add" and ip in self.lo_ips or op == "del" and ip not in self.lo_ips:
            return
        r = subprocess.run(["ip", "addr", op, f"{ip}/32", "dev", "lo"], capture_output=True, text=True)
        if r.returncode == 0 or "File exists" in r.stderr or "Cannot assign" in r.stderr:
            (self.lo_ips.add if op == "add" else self.lo_ips.discard)(ip)
            self.sim.log(f"{op} ClusterIP {ip} on lo")
        else:
            self.sim.log(f"ip addr {op} {ip}/32 dev lo failed: {r.stderr.strip()}")


class ExecError(Exception):
    """The pod or container to exec in is not running."""
