"""Simulated kubelet: a tiny container runtime using the host's filesystem as the image.

A container with a command runs as a real subprocess in a private mount
namespace (`unshare --mount --propagation private`): an overlay of / (writes
stay per container), /proc /dev /sys bound in, and each volumeMount bound
from its backing directory, then chroot. Volumes:
  secret/configMap -> STATE/pods/<pod>/volumes/<vol>/ (keys as files)
  emptyDir         -> STATE/pods/<pod>/volumes/<vol>/
  hostPath         -> STATE/nodes/<node>/hostpath/<path>  (never the real host path)
  glusterfs        -> STATE/volumes/<path>/  (made by the heketi simulator; missing = mount error)
  persistentVolumeClaim -> the bound PV's glusterfs path, as above
Images containing "heketi" (without a command) run a HeketiSimulator
in-process; images without a command are simulated as running (e.g. the
glusterfs pods). Pods become Ready ~ready_delay after start.
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
import time
import urllib.error
import urllib.request

from .controllers import pod_ready
from .store import ApiError, now

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


class MountError(Exception):
    pass


class Container:
    def __init__(self, spec: dict):
        self.spec = spec
        self.name = spec["name"]
        self.proc: subprocess.Popen | None = None
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
        self.probed_at = 0.0
        self.probe_ok = False


class PodRun:
    def __init__(self, pod: dict, directory: str):
        self.uid = pod["metadata"]["uid"]
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.dir = directory
        self.mounts: list[tuple[str, str, str, bool]] = []   # (container, source dir, mountPath, readOnly)
        self.containers: dict[str, Container] = {}
        self.start_ts = now()
        self.pod_ip = ""
        self.host_ip = ""
        self.done = False


class Runtime:
    def __init__(self, sim):
        self.sim = sim
        self.api = sim.api
        self.runs: dict[str, PodRun] = {}
        self.waiting_msg: dict[str, str] = {}
        self.lo_ips: set[str] = set()
        self.next_pod_ip = 2
        self.pod_net = ipaddress.ip_network("10.244.0.0/16")

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
        directory = self._pod_dir(pod)
        run = PodRun(pod, directory)
        name = pod["metadata"]["name"]
        try:
            volumes = self._volumes(pod, directory)
        except MountError as err:
            self._waiting(pod, "ContainerCreating", str(err))
            return None
        if self.sim.fault("image_pull_fails", name):
            image = pod["spec"]["containers"][0].get("image", "")
            self._waiting(pod, "ErrImagePull", f'Failed to pull image "{image}": rpc error: code = NotFound desc = '
                                               f'failed to pull and unpack image "{image}": not found '
                                               "(simulated fault image_pull_fails)", "Failed")
            return None
        for c in pod["spec"]["containers"]:
            run.containers[c["name"]] = Container(c)
            for vm in c.get("volumeMounts") or []:
                src = volumes.get(vm["name"])
                if src is None:
                    self._waiting(pod, "CreateContainerConfigError",
                                  f'Error: cannot find volume "{vm["name"]}" to mount into container "{c["name"]}"')
                    return None
                if vm.get("subPath"):
                    src = os.path.join(src, vm["subPath"])
                    os.makedirs(src, exist_ok=True)
                run.mounts.append((c["name"], src, vm["mountPath"], bool(vm.get("readOnly"))))
        run.host_ip = self._node_ip(pod["spec"]["nodeName"])
        run.pod_ip = run.host_ip if pod["spec"].get("hostNetwork") else self._alloc_pod_ip()
        if self._is_heketi(pod) and self.sim.manage_lo and not self._heketi_services(pod):
            self._waiting(pod, "ContainerCreating", "simulator: waiting for a Service selecting this heketi pod "
                                                    "(the simulated heketi listens on the Service ClusterIP)",
                          "Waiting")
            return None
        self.runs[run.uid] = run
        self.waiting_msg.pop(run.uid, None)
        self.sim.log(f"kubelet: starting pod {run.ns}/{name} on {pod['spec']['nodeName']}")
        return run

    def _alloc_pod_ip(self) -> str:
        ip = str(self.pod_net.network_address + self.next_pod_ip)
        self.next_pod_ip += 1
        return ip

    def _volumes(self, pod, directory) -> dict[str, str]:
        """Materialize every volume; MountError says why it cannot be mounted (pod stays ContainerCreating)."""
        out = {}
        ns = pod["metadata"]["namespace"]
        name = pod["metadata"]["name"]
        for vol in pod["spec"].get("volumes") or []:
            vname = vol["name"]
            path = os.path.join(directory, "volumes", vname)
            if "secret" in vol or "configMap" in vol:
                src = vol.get("secret") or vol.get("configMap")
                plural = "secrets" if "secret" in vol else "configmaps"
                ref = src.get("secretName") or src.get("name")
                obj = self.api.store.find(plural, ns, ref)
                if obj is None:
                    if src.get("optional"):
                        os.makedirs(path, exist_ok=True)
                        out[vname] = path
                        continue
                    raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : {plural[:-1]} '
                                     f'"{ref}" not found')
                if plural == "secrets":
                    data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
                else:
                    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
                    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
                shutil.rmtree(path, ignore_errors=True)
                os.makedirs(path, exist_ok=True)
                items = src.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : couldn\'t find key '
                                         f'{item["key"]} in {plural[:-1]} {ns}/{ref}')
                    target = os.path.join(path, item["path"])
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as fh:
                        fh.write(data[item["key"]])
                    os.chmod(target, item.get("mode", src.get("defaultMode", 0o644)))
                out[vname] = path
            elif "emptyDir" in vol or "projected" in vol or "downwardAPI" in vol:
                os.makedirs(path, exist_ok=True)
                out[vname] = path
            elif "hostPath" in vol:
                node = pod["spec"]["nodeName"]
                hp = os.path.join(self.sim.state_dir, "nodes", node, "hostpath",
                                  vol["hostPath"]["path"].lstrip("/"))
                os.makedirs(hp, exist_ok=True)
                out[vname] = hp
            elif "glusterfs" in vol:
                out[vname] = self._gluster_dir(pod, vname, ns, vol["glusterfs"]["endpoints"],
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
                out[vname] = self._gluster_dir(pod, vname, gl.get("endpointsNamespace") or ns,
                                               gl["endpoints"], gl["path"])
            else:
                self.sim.log(f"kubelet: pod {ns}/{name}: volume {vname} of an unsimulated type, using an empty dir")
                os.makedirs(path, exist_ok=True)
                out[vname] = path
        return out

    def _gluster_dir(self, pod, vname, ns, endpoints, vpath) -> str:
        if self.sim.gluster_removed:
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : no volume plugin matched: the '
                             "in-tree glusterfs volume plugin was removed in Kubernetes 1.26")
        if self.sim.fault("mount_fails", pod["metadata"]["name"]):
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : mount failed: mount failed: exit '
                             "status 32 ... Output: mount: unknown filesystem type 'glusterfs' "
                             "(simulated fault mount_fails)")
        if self.api.store.find("endpoints", ns, endpoints) is None:
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : endpoints "{endpoints}" not found')
        d = os.path.join(self.sim.state_dir, "volumes", vpath)
        if not os.path.isdir(d):
            raise MountError(f'MountVolume.SetUp failed for volume "{vname}" : mount failed: mount failed: exit '
                             f"status 1 ... Mount failed. Please check the log file for more details. "
                             f"(glusterfs volume {vpath!r} does not exist: failed to fetch volume file "
                             f"(key:/{vpath}))")
        return d

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
            from ..heketi import HeketiSimulator
        except ImportError as exc:
            raise RuntimeError(f"heketi simulator not available: {exc}") from None
        mounts = sorted([(dst, src) for cname, src, dst, _ in run.mounts if cname == ctr.name],
                        key=lambda m: -len(m[0]))

        def host_path(p: str) -> str | None:
            for dst, src in mounts:
                if p == dst or p.startswith(dst.rstrip("/") + "/"):
                    return os.path.join(src, os.path.relpath(p, dst))
            return None

        config = None
        for dst, src in mounts:
            cand = os.path.join(src, "heketi.json")
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
        hk = HeketiSimulator(config, db_path, listen, self.sim.state_dir, faults_path=self.sim.heketi_faults_file)
        hk.start()
        ctr.heketi = hk
        url = f"http://{listen[0]}:{listen[1]}"
        self.api.mutate("pods", run.ns, run.name, lambda o: o["metadata"].setdefault("annotations", {})
                        .__setitem__("simulator.gfsdeploy.dev/heketi-url", url))
        with open(os.path.join(run.dir, f"{ctr.name}.log"), "a") as fh:
            fh.write(f"[k8s-sim] simulated heketi listening on {url}, db {db_path}\n")
        self.sim.log(f"kubelet: pod {run.ns}/{run.name}: heketi simulator on {url} (db {db_path})")

    # --- processes -------------------------------------------------------
    def _argv(self, pod, run: PodRun, ctr: Container) -> list[str]:
        spec = ctr.spec
        cmd = list(spec.get("command") or []) + list(spec.get("args") or [])
        cdir = os.path.join(run.dir, f"ctr-{ctr.name}")
        mounts = [(src, dst, ro) for cname, src, dst, ro in run.mounts if cname == ctr.name]
        workdir = spec.get("workingDir") or "/"
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
        if pod["spec"].get("hostNetwork") and netns:
            argv = ["ip", "netns", "exec", netns] + argv
        return argv

    def _env(self, pod, run: PodRun, ctr: Container) -> dict:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "HOSTNAME": run.name}
        ns = run.ns
        fields = {"metadata.name": run.name, "metadata.namespace": ns, "status.podIP": run.pod_ip,
                  "spec.nodeName": pod["spec"]["nodeName"], "status.hostIP": run.host_ip,
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
        try:
            if "heketi" in (spec.get("image") or "") and not spec.get("command"):
                self._start_heketi(pod, run, ctr)
                return
            if not spec.get("command") and not spec.get("args"):
                ctr.simulated = True
                self._append_log(run, ctr, f"[k8s-sim] image {spec.get('image')!r} has no command: simulated as "
                                           "running\n")
                return
            argv = self._argv(pod, run, ctr)
        except Exception as exc:   # any start failure (bad heketi DB, missing tool) is the container's
            self._append_log(run, ctr, f"[k8s-sim] cannot start container: {exc}\n")
            self.api.event(pod, "Pod", "Failed", f"Error: {exc}", "Warning")
            self._finish(ctr, 128, "StartError")
            return
        log = open(os.path.join(run.dir, f"{ctr.name}.log"), "ab")
        ctr.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=self._env(pod, run, ctr), start_new_session=True)
        log.close()
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
            if ctr.proc is not None and ctr.exit_code is None:
                code = ctr.proc.poll()
                if code is not None:
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
                ready = (time.monotonic() - ctr.started_mono >= self.sim.ready_delay) and not never_ready \
                    and self._probe(ctr)
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

    def _probe(self, ctr: Container) -> bool:
        """readinessProbe httpGet, really sent for simulated heketi (so a failing /hello keeps it unready);
        other containers are Ready after ready_delay. Probed at most once a second."""
        probe = (ctr.spec.get("readinessProbe") or {}).get("httpGet")
        if ctr.heketi is None or not probe:
            return True
        if time.monotonic() - ctr.probed_at < 1.0:
            return ctr.probe_ok
        ctr.probed_at = time.monotonic()
        host, port = ctr.heketi.address
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{probe.get('path', '/')}", timeout=1) as resp:
                ctr.probe_ok = 200 <= resp.status < 400
        except (OSError, urllib.error.URLError):
            ctr.probe_ok = False
        return ctr.probe_ok

    def _teardown(self, run: PodRun):
        for ctr in run.containers.values():
            if ctr.proc is not None and ctr.proc.poll() is None:
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
        self.sim.log(f"kubelet: pod {run.ns}/{run.name} torn down")

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
