"""Simulated kube-controller-manager + scheduler: one pass per tick.

DaemonSet (one pod per node matching nodeSelector), Deployment -> ReplicaSet
-> pods, Job (pod until Complete/Failed), scheduler (bare pods onto nodes),
Endpoints for Services with selectors, garbage collection by ownerReferences,
and the in-tree glusterfs provisioner (PVC -> heketi -> PV, bound).
"""
from __future__ import annotations

import copy
import datetime
import hashlib
import json
import threading

from . import provisioner
from .store import ApiError, now

SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(tmpl: dict) -> str:
    digest = hashlib.sha256(json.dumps(tmpl, sort_keys=True).encode()).digest()
    return "".join(SAFE[b % len(SAFE)] for b in digest[:10])


def pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def node_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions") or [])


def owned_by(obj: dict, uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _seconds_since(ts: str) -> float:
    then = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()


def set_condition(conds: list, ctype: str, status: str, reason: str, message: str) -> list:
    """Update a condition list keeping timestamps unless status/reason change (no status churn)."""
    conds = copy.deepcopy(conds or [])
    for c in conds:
        if c["type"] == ctype:
            if c["status"] != status or (c.get("reason") or "") != (reason or ""):
                c.update(status=status, reason=reason, message=message, lastTransitionTime=now(),
                         lastUpdateTime=now())
            return conds
    conds.append({"type": ctype, "status": status, "reason": reason, "message": message,
                  "lastTransitionTime": now(), "lastUpdateTime": now()})
    return conds


class Controllers:
    def __init__(self, sim):
        self.sim = sim
        self.api = sim.api
        self.rr = 0
        self.provisioning: set[str] = set()
        self.notified: set[str] = set()
        self._lock = threading.Lock()

    def shutdown(self):
        pass

    def tick(self):
        self.gc()
        self.namespaces()
        self.daemonsets()
        self.deployments()
        self.replicasets()
        self.jobs()
        self.schedule()
        self.endpoints()
        self.claims()

    # --- helpers ---------------------------------------------------------
    def _list(self, plural, ns=None):
        return self.api.store.list(plural, ns)[0]

    def _new_pod(self, owner: dict, kind: str, api_version: str, tmpl: dict, prefix: str,
                 node: str | None = None, labels: dict | None = None) -> None:
        tmeta = copy.deepcopy(tmpl.get("metadata") or {})
        pod = {"metadata": {"generateName": prefix + "-",
                            "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
                            "annotations": tmeta.get("annotations") or {},
                            "ownerReferences": [{"apiVersion": api_version, "kind": kind,
                                                 "name": owner["metadata"]["name"],
                                                 "uid": owner["metadata"]["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": copy.deepcopy(tmpl.get("spec") or {})}
        if node:
            pod["spec"]["nodeName"] = node
        ns = owner["metadata"]["namespace"]
        try:
            made = self.api.create(self.api.res("pods"), ns, pod)
            self.sim.log(f"{kind} {ns}/{owner['metadata']['name']}: created pod {made['metadata']['name']}"
                         + (f" on {node}" if node else ""))
            self.api.event(owner, kind, "SuccessfulCreate", f"Created pod: {made['metadata']['name']}")
        except ApiError as err:
            self.api.event(owner, kind, "FailedCreate", f"Error creating: {err.message}", "Warning")

    def _delete(self, plural, obj, why=""):
        try:
            self.api.delete(self.api.res(plural), obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            self.sim.log(f"deleted {plural} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']} {why}")
        except ApiError:
            pass

    # --- garbage collector -----------------------------------------------
    def gc(self):
        with self.api.store.cond:
            uids = {o["metadata"]["uid"] for o in self.api.store.objs.values()}
        for plural in ("pods", "replicasets", "endpoints", "services", "secrets"):
            for obj in self._list(plural):
                refs = obj["metadata"].get("ownerReferences") or []
                if refs and not any(r.get("uid") in uids for r in refs):
                    self._delete(plural, obj, "(garbage collected: owner gone)")

    def namespaces(self):
        """Every namespace gets its `default` ServiceAccount (serviceaccount controller)."""
        for ns in self._list("namespaces"):
            name = ns["metadata"]["name"]
            if self.api.store.find("serviceaccounts", name, "default") is None:
                try:
                    self.api.create(self.api.res("serviceaccounts"), name, {"metadata": {"name": "default"}})
                except ApiError:
                    pass

    # --- DaemonSet -------------------------------------------------------
    def daemonsets(self):
        # a cordon does not move DaemonSet pods: they tolerate node.kubernetes.io/unschedulable
        nodes = [n for n in self._list("nodes") if node_ready(n)]
        for ds in self._list("daemonsets"):
            meta, spec = ds["metadata"], ds["spec"]
            gen = str(meta.get("generation", 1))
            tmpl = spec.get("template") or {}
            selector = (tmpl.get("spec") or {}).get("nodeSelector") or {}
            eligible = [n["metadata"]["name"] for n in nodes
                        if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
            pods = [p for p in self._list("pods", meta["namespace"]) if owned_by(p, meta["uid"])]
            by_node = {}
            for p in pods:
                node = p["spec"].get("nodeName")
                stale = (p["metadata"].get("labels") or {}).get("pod-template-generation") != gen
                finished = p.get("status", {}).get("phase") in ("Failed", "Succeeded")
                if node not in eligible or stale or node in by_node or finished:
                    self._delete("pods", p, f"(daemonset {meta['name']})")
                    continue
                by_node[node] = p
            for node in eligible:
                if node not in by_node:
                    self._new_pod(ds, "DaemonSet", "apps/v1", tmpl, meta["name"], node,
                                  {"pod-template-generation": gen, "controller-revision-hash": template_hash(tmpl)})
            ready = sum(1 for p in by_node.values() if pod_ready(p))
            status = {"currentNumberScheduled": len(by_node), "desiredNumberScheduled": len(eligible),
                      "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                      "updatedNumberScheduled": len(by_node), "observedGeneration": int(gen)}
            if len(eligible) - ready > 0:
                status["numberUnavailable"] = len(eligible) - ready
            self.api.set_status("daemonsets", meta["namespace"], meta["name"], status)

    # --- Deployment ------------------------------------------------------
    def deployments(self):
        for d in self._list("deployments"):
            meta, spec = d["metadata"], d["spec"]
            ns, name = meta["namespace"], meta["name"]
            tmpl = spec.get("template") or {}
            h = template_hash(tmpl)
            owned = [rs for rs in self._list("replicasets", ns) if owned_by(rs, meta["uid"])]
            new = next((rs for rs in owned if rs["metadata"].get("labels", {}).get("pod-template-hash") == h), None)
            revision = max([int((rs["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision", "0")) for rs in owned] + [0])
            if new is None:
                rs_tmpl = copy.deepcopy(tmpl)
                rs_tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
                sel = copy.deepcopy(spec["selector"])
                sel.setdefault("matchLabels", {})["pod-template-hash"] = h
                rs = {"metadata": {"name": f"{name}-{h}", "labels": rs_tmpl["metadata"]["labels"],
                                   "annotations": {"deployment.kubernetes.io/revision": str(revision + 1),
                                                   "deployment.kubernetes.io/desired-replicas":
                                                       str(spec.get("replicas", 1))},
                                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                        "uid": meta["uid"], "controller": True,
                                                        "blockOwnerDeletion": True}]},
                      "spec": {"replicas": spec.get("replicas", 1), "selector": sel, "template": rs_tmpl}}
                try:
                    new = self.api.create(self.api.res("replicasets"), ns, rs)
                    self.api.event(d, "Deployment", "ScalingReplicaSet",
                                   f"Scaled up replica set {rs['metadata']['name']} to {spec.get('replicas', 1)}")
                    revision += 1
                except ApiError as err:
                    self.api.event(d, "Deployment", "FailedCreate", err.message, "Warning")
                    continue
            else:
                want = spec.get("replicas", 1)
                self.api.mutate("replicasets", ns, new["metadata"]["name"],
                                lambda o: o["spec"].__setitem__("replicas", want))
                revision = int((new["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 1))
            for rs in owned:
                if rs["metadata"]["uid"] != new["metadata"]["uid"] and rs["spec"].get("replicas", 0):
                    self.api.mutate("replicasets", ns, rs["metadata"]["name"],
                                    lambda o: o["spec"].__setitem__("replicas", 0))
            owned = [rs for rs in self._list("replicasets", ns) if owned_by(rs, meta["uid"])]
            new = next((rs for rs in owned if rs["metadata"]["uid"] == new["metadata"]["uid"]), new)
            nst = new.get("status", {})
            total = sum(rs.get("status", {}).get("replicas", 0) for rs in owned)
            ready = sum(rs.get("status", {}).get("readyReplicas", 0) for rs in owned)
            avail = sum(rs.get("status", {}).get("availableReplicas", 0) for rs in owned)
            want = spec.get("replicas", 1)
            conds = d.get("status", {}).get("conditions") or []
            if avail >= want:
                conds = set_condition(conds, "Available", "True", "MinimumReplicasAvailable",
                                      "Deployment has minimum availability.")
            else:
                conds = set_condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                                      "Deployment does not have minimum availability.")
            done = nst.get("availableReplicas", 0) >= want and total == want
            if done:
                conds = set_condition(conds, "Progressing", "True", "NewReplicaSetAvailable",
                                      f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.')
            elif _seconds_since(new["metadata"]["creationTimestamp"]) > spec.get("progressDeadlineSeconds", 600):
                conds = set_condition(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                                      f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.')
            else:
                conds = set_condition(conds, "Progressing", "True", "ReplicaSetUpdated",
                                      f'ReplicaSet "{new["metadata"]["name"]}" is progressing.')
            status = {"observedGeneration": meta.get("generation", 1), "replicas": total,
                      "updatedReplicas": nst.get("replicas", 0), "readyReplicas": ready,
                      "availableReplicas": avail, "conditions": conds}
            if total - avail > 0:
                status["unavailableReplicas"] = total - avail
            for k in ("readyReplicas", "availableReplicas"):
                if not status[k]:
                    del status[k]
            self.api.mutate("deployments", ns, name, lambda o: o["metadata"].setdefault("annotations", {})
                            .__setitem__("deployment.kubernetes.io/revision", str(revision)))
            self.api.set_status("deployments", ns, name, status)

    # --- ReplicaSet ------------------------------------------------------
    def replicasets(self):
        for rs in self._list("replicasets"):
            meta, spec = rs["metadata"], rs["spec"]
            pods = [p for p in self._list("pods", meta["namespace"]) if owned_by(p, meta["uid"])
                    and p.get("status", {}).get("phase") not in ("Failed", "Succeeded")]
            for p in self._list("pods", meta["namespace"]):
                if owned_by(p, meta["uid"]) and p.get("status", {}).get("phase") in ("Failed", "Succeeded"):
                    self._delete("pods", p, "(replicaset: pod finished)")
            want = spec.get("replicas", 1)
            for _ in range(want - len(pods)):
                self._new_pod(rs, "ReplicaSet", "apps/v1", spec.get("template") or {}, meta["name"])
            extra = sorted(pods, key=pod_ready)[:max(0, len(pods) - want)]
            for p in extra:
                self._delete("pods", p, "(replicaset scaled down)")
            pods = [p for p in pods if p not in extra]
            ready = sum(1 for p in pods if pod_ready(p))
            status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                      "observedGeneration": meta.get("generation", 1)}
            if ready:
                status.update(readyReplicas=ready, availableReplicas=ready)
            self.api.set_status("replicasets", meta["namespace"], meta["name"], status)

    # --- Job -------------------------------------------------------------
    def jobs(self):
        for job in self._list("jobs"):
            meta, spec = job["metadata"], job["spec"]
            ns, name = meta["namespace"], meta["name"]
            st = copy.deepcopy(job.get("status") or {})
            conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
            pods = [p for p in self._list("pods", ns) if owned_by(p, meta["uid"])]
            phase = [p.get("status", {}).get("phase") for p in pods]
            succeeded, failed = phase.count("Succeeded"), phase.count("Failed")
            active = [p for p in pods if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
            if conds.get("Complete") == "True" or conds.get("Failed") == "True":
                for p in active:
                    self._delete("pods", p, "(job finished)")
                continue
            if succeeded >= spec.get("completions", 1):
                st["conditions"] = set_condition(st.get("conditions"), "Complete", "True", "", "")
                for c in st["conditions"]:
                    c.pop("reason"), c.pop("message")
                st["completionTime"] = now()
                self.api.event(job, "Job", "Completed", "Job completed")
            elif failed > spec.get("backoffLimit", 6):
                st["conditions"] = set_condition(st.get("conditions"), "Failed", "True", "BackoffLimitExceeded",
                                                 "Job has reached the specified backoff limit")
                self.api.event(job, "Job", "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                               "Warning")
            elif not active:
                self._new_pod(job, "Job", "batch/v1", spec.get("template") or {}, name)
                st.setdefault("startTime", now())
                active = [None]
            st["active"] = len(active)
            st["ready"] = sum(1 for p in active if p and pod_ready(p))
            st.update(succeeded=succeeded, failed=failed)
            for k in ("active", "succeeded", "failed"):
                if not st[k]:
                    del st[k]
            self.api.set_status("jobs", ns, name, st)

    # --- scheduler -------------------------------------------------------
    def schedule(self):
        nodes = [n for n in self._list("nodes") if node_ready(n) and not n["spec"].get("unschedulable")]
        for pod in self._list("pods"):
            if pod["spec"].get("nodeName") or pod.get("status", {}).get("phase") != "Pending":
                continue
            sel = pod["spec"].get("nodeSelector") or {}
            fit = [n["metadata"]["name"] for n in nodes
                   if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            why = "didn't match Pod's node affinity/selector"
            if fit:
                apart = [n for n in fit if n not in self._anti_affine_nodes(pod, nodes)]
                fit, why = apart, "didn't match pod anti-affinity rules"
            if not fit:
                msg = (f"0/{len(self._list('nodes'))} nodes are available: {len(self._list('nodes'))} node(s) "
                       f"{why}.")
                st = copy.deepcopy(pod.get("status", {}))
                st["conditions"] = set_condition(st.get("conditions"), "PodScheduled", "False", "Unschedulable",
                                                 msg)
                if st != pod.get("status"):
                    self.api.set_status("pods", ns, name, st)
                    self.api.event(pod, "Pod", "FailedScheduling", msg, "Warning")
                continue
            node = fit[self.rr % len(fit)]
            self.rr += 1
            self.api.mutate("pods", ns, name, lambda o: o["spec"].__setitem__("nodeName", node))
            self.api.event(pod, "Pod", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")

    def _anti_affine_nodes(self, pod: dict, nodes: list[dict]) -> set[str]:
        """Nodes POD may not go to under requiredDuringScheduling pod anti-affinity: its own
        terms against the pods already placed, and theirs against it (the rule is symmetric)."""
        topology = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes}
        placed = [p for p in self._list("pods") if p["spec"].get("nodeName")
                  and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
                  and p["metadata"]["uid"] != pod["metadata"]["uid"]]
        banned: set[str] = set()

        def ban(term, node):
            key = term.get("topologyKey") or "kubernetes.io/hostname"
            value = (topology.get(node) or {}).get(key)
            banned.update(n for n, labels in topology.items() if value is not None and labels.get(key) == value)

        for term in _anti_affinity_terms(pod):
            for other in placed:
                if _term_selects(term, pod, other):
                    ban(term, other["spec"]["nodeName"])
        for other in placed:
            for term in _anti_affinity_terms(other):
                if _term_selects(term, other, pod):
                    ban(term, other["spec"]["nodeName"])
        return banned

    # --- Endpoints -------------------------------------------------------
    def endpoints(self):
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in self._list("services")}
        for ep in self._list("endpoints"):
            key = (ep["metadata"]["namespace"], ep["metadata"]["name"])
            managed = "endpoints.kubernetes.io/last-change-trigger-time" in (ep["metadata"].get("annotations") or {})
            if managed and (key not in services or not services[key]["spec"].get("selector")):
                self._delete("endpoints", ep, "(service gone)")
        for (ns, name), svc in services.items():
            sel = svc["spec"].get("selector")
            if not sel or name == "kubernetes" and ns == "default":
                continue
            pods = [p for p in self._list("pods", ns)
                    if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())
                    and p.get("status", {}).get("podIP") and p["status"].get("phase") == "Running"]
            ready, notready = [], []
            for p in sorted(pods, key=lambda p: p["status"]["podIP"]):
                addr = {"ip": p["status"]["podIP"], "nodeName": p["spec"].get("nodeName"),
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                      "uid": p["metadata"]["uid"]}}
                (ready if pod_ready(p) else notready).append(addr)
            ports = []
            for sp in svc["spec"].get("ports") or []:
                port = {"port": _target_port(sp, pods), "protocol": sp.get("protocol", "TCP")}
                if sp.get("name"):
                    port["name"] = sp["name"]
                ports.append(port)
            subsets = []
            if ready or notready:
                sub = {"ports": ports}
                if ready:
                    sub["addresses"] = ready
                if notready:
                    sub["notReadyAddresses"] = notready
                subsets.append(sub)
            cur = self.api.store.find("endpoints", ns, name)
            if cur is None:
                try:
                    self.api.create(self.api.res("endpoints"), ns, {
                        "metadata": {"name": name, "labels": svc["metadata"].get("labels") or {},
                                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": now()}},
                        "subsets": subsets})
                except ApiError:
                    pass
            elif (cur.get("subsets") or []) != subsets:
                def upd(o, subsets=subsets):
                    o["subsets"] = subsets
                    o["metadata"].setdefault("annotations", {})[
                        "endpoints.kubernetes.io/last-change-trigger-time"] = now()
                self.api.mutate("endpoints", ns, name, upd)

    # --- PVC provisioning through heketi ---------------------------------
    def claims(self):
        classes = {c["metadata"]["name"]: c for c in self._list("storageclasses")}
        default = next((c for c in classes.values() if (c["metadata"].get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class") == "true"), None)
        for pvc in self._list("persistentvolumeclaims"):
            if pvc.get("status", {}).get("phase") != "Pending" or pvc["spec"].get("volumeName"):
                continue
            cname = pvc["spec"].get("storageClassName") or (pvc["metadata"].get("annotations") or {}).get(
                "volume.beta.kubernetes.io/storage-class")
            sc = classes.get(cname) if cname else default
            if sc is None:
                if cname:
                    self.api.event(pvc, "PersistentVolumeClaim", "ProvisioningFailed",
                                   f'storageclass.storage.k8s.io "{cname}" not found', "Warning")
                continue
            if sc.get("provisioner") != "kubernetes.io/glusterfs":
                continue
            if self.sim.gluster_removed:
                if pvc["metadata"]["uid"] in self.notified:
                    continue
                self.notified.add(pvc["metadata"]["uid"])
                self.api.event(pvc, "PersistentVolumeClaim", "ExternalProvisioning",
                               'waiting for a volume to be created, either by external provisioner '
                               '"kubernetes.io/glusterfs" or manually created by system administrator')
                continue
            uid = pvc["metadata"]["uid"]
            with self._lock:
                if uid in self.provisioning:
                    continue
                self.provisioning.add(uid)
            threading.Thread(target=self._provision, args=(pvc, sc), daemon=True,
                             name=f"k8s-sim-provision-{pvc['metadata']['name']}").start()
        for pv in self._list("persistentvolumes"):
            ref = pv["spec"].get("claimRef")
            if not ref or pv.get("status", {}).get("phase") != "Bound":
                continue
            if self.api.store.find("persistentvolumeclaims", ref["namespace"], ref["name"]) is None:
                if pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                    uid = pv["metadata"]["uid"]
                    with self._lock:
                        if uid in self.provisioning:
                            continue
                        self.provisioning.add(uid)
                    threading.Thread(target=self._reclaim, args=(pv,), daemon=True).start()
                else:
                    self.api.set_status("persistentvolumes", "", pv["metadata"]["name"], {"phase": "Released"})

    def _provision(self, pvc: dict, sc: dict):
        try:
            if self.sim.fault("provision_fails", pvc["metadata"]["name"]):
                raise provisioner.ProvisionError("simulated fault provision_fails")
            provisioner.provision(self.api, self.sim, pvc, sc)
        except provisioner.ProvisionError as err:
            self.api.event(pvc, "PersistentVolumeClaim", "ProvisioningFailed",
                           f'Failed to provision volume with StorageClass "{sc["metadata"]["name"]}": {err}',
                           "Warning")
            self.sim.log(f"provisioning {pvc['metadata']['name']} failed: {err}")
            threading.Event().wait(3)    # retry backoff
        finally:
            with self._lock:
                self.provisioning.discard(pvc["metadata"]["uid"])

    def _reclaim(self, pv: dict):
        try:
            provisioner.reclaim(self.api, self.sim, pv)
        except provisioner.ProvisionError as err:
            self.api.set_status("persistentvolumes", "", pv["metadata"]["name"],
                                {"phase": "Failed", "message": str(err)})
            self.sim.log(f"reclaiming {pv['metadata']['name']} failed: {err}")
        finally:
            with self._lock:
                self.provisioning.discard(pv["metadata"]["uid"])


def _anti_affinity_terms(pod: dict) -> list[dict]:
    anti = ((pod["spec"].get("affinity") or {}).get("podAntiAffinity") or {})
    return list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _term_selects(term: dict, owner: dict, other: dict) -> bool:
    """Does TERM (of pod OWNER) select pod OTHER (its namespaces, its label selector)?"""
    namespaces = term.get("namespaces") or [owner["metadata"]["namespace"]]
    if other["metadata"]["namespace"] not in namespaces:
        return False
    labels = other["metadata"].get("labels") or {}
    selector = term.get("labelSelector") or {}
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values or op == "NotIn" and labels.get(key) in values \
                or op == "Exists" and key not in labels or op == "DoesNotExist" and key in labels:
            return False
    return bool(selector)


def _target_port(sp: dict, pods: list) -> int:
    tp = sp.get("targetPort", sp.get("port"))
    if isinstance(tp, int) or (isinstance(tp, str) and tp.isdigit()):
        return int(tp)
    for p in pods:
        for c in p["spec"].get("containers") or []:
            for cp in c.get("ports") or []:
                if cp.get("name") == tp:
                    return cp["containerPort"]
    return sp.get("port")

