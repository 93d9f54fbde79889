"""Server-side Table output (what `kubectl get` prints) for the SIMULATED API server.

kubectl asks for `as=Table`; the real server computes the columns. These are
the usual columns of the kinds the lab uses; other kinds get NAME and AGE.
"""
from __future__ import annotations

import datetime


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    then = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    secs = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    secs = max(secs, 0)
    if secs < 120:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60}s" if secs < 600 else f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h{(secs % 3600) // 60}m" if secs < 8 * 3600 else f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _pod_status(p: dict) -> str:
    st = p.get("status", {})
    if p["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for cs in st.get("containerStatuses") or []:
        state = cs.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            return state["waiting"]["reason"]
        if "terminated" in state and st.get("phase") not in ("Succeeded",):
            return state["terminated"].get("reason") or "Error"
    if st.get("phase") == "Succeeded":
        return "Completed"
    if st.get("phase") == "Pending" and not p.get("spec", {}).get("nodeName"):
        return "Pending"
    return st.get("phase") or "Pending"


def _pod(p):
    st = p.get("status", {})
    css = st.get("containerStatuses") or []
    total = len(p.get("spec", {}).get("containers") or [])
    ready = sum(1 for c in css if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in css)
    return [f"{ready}/{total}", _pod_status(p), restarts, age(p["metadata"].get("creationTimestamp")),
            st.get("podIP") or "<none>", p.get("spec", {}).get("nodeName") or "<none>", "<none>", "<none>"]


def _node(n):
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
    status = "Ready" if ready else "NotReady"
    if n.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (n["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/")) or ["<none>"]
    info = n.get("status", {}).get("nodeInfo", {})
    ip = next((a["address"] for a in n.get("status", {}).get("addresses", []) if a["type"] == "InternalIP"),
              "<none>")
    return [status, ",".join(roles), age(n["metadata"].get("creationTimestamp")), info.get("kubeletVersion", ""),
            ip, "<none>", info.get("osImage", ""), info.get("kernelVersion", ""),
            info.get("containerRuntimeVersion", "")]


def _svc(s):
    spec = s.get("spec", {})
    ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []) or "<none>"
    sel = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>"
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", "<none>", ports,
            age(s["metadata"].get("creationTimestamp")), sel]


def _deploy(d):
    st, spec = d.get("status", {}), d.get("spec", {})
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), age(d["metadata"].get("creationTimestamp"))]


def _ds(d):
    st = d.get("status", {})
    sel = ",".join(f"{k}={v}" for k, v in
                   ((d.get("spec", {}).get("template", {}).get("spec", {}) or {}).get("nodeSelector") or {}).items())
    return [st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0), sel or "<none>",
            age(d["metadata"].get("creationTimestamp"))]


def _rs(r):
    st = r.get("status", {})
    return [r.get("spec", {}).get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            age(r["metadata"].get("creationTimestamp"))]


def _job(j):
    st = j.get("status", {})
    conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
    status = "Complete" if conds.get("Complete") == "True" else "Failed" if conds.get("Failed") == "True" \
        else "Running"
    duration = ""
    if st.get("startTime"):
        end = st.get("completionTime")
        duration = age(st["startTime"]) if not end else _span(st["startTime"], end)
    return [status, f"{st.get('succeeded', 0)}/{j.get('spec', {}).get('completions', 1)}",
            duration, age(j["metadata"].get("creationTimestamp"))]


def _span(start: str, end: str) -> str:
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    secs = int((datetime.datetime.strptime(end, fmt) - datetime.datetime.strptime(start, fmt)).total_seconds())
    return f"{max(secs, 0)}s" if secs < 120 else f"{secs // 60}m"


def _pvc(c):
    st, spec = c.get("status", {}), c.get("spec", {})
    return [st.get("phase", "Pending"), spec.get("volumeName") or "",
            (st.get("capacity") or {}).get("storage", ""), _modes(st.get("accessModes")),
            spec.get("storageClassName") or (c["metadata"].get("annotations") or {}).get(
                "volume.beta.kubernetes.io/storage-class", "<unset>"),
            "<unset>", age(c["metadata"].get("creationTimestamp"))]


def _modes(modes):
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


def _pv(v):
    spec, st = v.get("spec", {}), v.get("status", {})
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace')}/{ref.get('name')}" if ref else ""
    return [(spec.get("capacity") or {}).get("storage", ""), _modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", ""), st.get("phase", ""), claim,
            spec.get("storageClassName", ""), "<unset>", st.get("reason", ""),
            age(v["metadata"].get("creationTimestamp"))]


def _secret(s):
    return [s.get("type", "Opaque"), len(s.get("data") or {}), age(s["metadata"].get("creationTimestamp"))]


def _ep(e):
    addrs = [f"{a['ip']}:{p['port']}" for sub in e.get("subsets") or [] for a in sub.get("addresses") or []
             for p in sub.get("ports") or [{"port": 0}]]
    text = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [text or "<none>", age(e["metadata"].get("creationTimestamp"))]


def _sc(s):
    return [s.get("provisioner", ""), s.get("reclaimPolicy", "Delete"), s.get("volumeBindingMode", "Immediate"),
            str(bool(s.get("allowVolumeExpansion"))).lower(), age(s["metadata"].get("creationTimestamp"))]


def _event(e):
    io = e.get("involvedObject", {})
    return [age(e.get("lastTimestamp")), e.get("type", ""), e.get("reason", ""),
            f"{io.get('kind', '').lower()}/{io.get('name', '')}", e.get("message", "")]


def _ns(n):
    return [n.get("status", {}).get("phase", "Active"), age(n["metadata"].get("creationTimestamp"))]


def _c(name, typ="string", prio=0):
    return {"name": name, "type": typ, "format": "name" if name == "Name" else "", "description": name,
            "priority": prio}


COLUMNS = {
    "pods": ([_c("Ready"), _c("Status"), _c("Restarts", "integer"), _c("Age"), _c("IP", prio=1),
              _c("Node", prio=1), _c("Nominated Node", prio=1), _c("Readiness Gates", prio=1)], _pod),
    "nodes": ([_c("Status"), _c("Roles"), _c("Age"), _c("Version"), _c("Internal-IP", prio=1),
               _c("External-IP", prio=1), _c("OS-Image", prio=1), _c("Kernel-Version", prio=1),
               _c("Container-Runtime", prio=1)], _node),
    "services": ([_c("Type"), _c("Cluster-IP"), _c("External-IP"), _c("Port(s)"), _c("Age"),
                  _c("Selector", prio=1)], _svc),
    "deployments": ([_c("Ready"), _c("Up-to-date", "integer"), _c("Available", "integer"), _c("Age")], _deploy),
    "daemonsets": ([_c("Desired", "integer"), _c("Current", "integer"), _c("Ready", "integer"),
                    _c("Up-to-date", "integer"), _c("Available", "integer"), _c("Node Selector"), _c("Age")], _ds),
    "replicasets": ([_c("Desired", "integer"), _c("Current", "integer"), _c("Ready", "integer"), _c("Age")], _rs),
    "jobs": ([_c("Status"), _c("Completions"), _c("Duration"), _c("Age")], _job),
    "persistentvolumeclaims": ([_c("Status"), _c("Volume"), _c("Capacity"), _c("Access Modes"),
                                _c("StorageClass"), _c("VolumeAttributesClass"), _c("Age")], _pvc),
    "persistentvolumes": ([_c("Capacity"), _c("Access Modes"), _c("Reclaim Policy"), _c("Status"), _c("Claim"),
                           _c("StorageClass"), _c("VolumeAttributesClass"), _c("Reason"), _c("Age")], _pv),
    "secrets": ([_c("Type"), _c("Data", "integer"), _c("Age")], _secret),
    "endpoints": ([_c("Endpoints"), _c("Age")], _ep),
    "storageclasses": ([_c("Provisioner"), _c("ReclaimPolicy"), _c("VolumeBindingMode"),
                        _c("AllowVolumeExpansion"), _c("Age")], _sc),
    "events": ([_c("Last Seen"), _c("Type"), _c("Reason"), _c("Object"), _c("Message")], _event),
    "namespaces": ([_c("Status"), _c("Age")], _ns),
}


def table(res, items: list[dict], rv: str, include: str = "Object") -> dict:
    cols, fn = COLUMNS.get(res.plural, ([_c("Age")], lambda o: [age(o["metadata"].get("creationTimestamp"))]))
    rows = []
    for obj in items:
        row = {"cells": [obj["metadata"]["name"]] + fn(obj)}
        if include == "Object":
            row["object"] = obj
        elif include == "Metadata":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": [_c("Name")] + cols, "rows": rows}
