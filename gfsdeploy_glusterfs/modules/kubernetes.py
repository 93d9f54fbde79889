"""Kubernetes objects, node labels, deletion by selector and cluster facts, all
through ``kubectl`` on the master (the task's host).

How an object converges (docs/KUBERNETES.md has the whole story):

- **Server-side apply** with the field manager ``gfsdeploy``: the API server
  records which fields gfsdeploy set, so a field removed from a template is
  removed from the live object (and shown as a ``-`` line in the plan).
- **The plan asks the server**: one ``kubectl apply --server-side --dry-run=server``
  per task, batched with the reads, gives the object exactly as apply would leave
  it; the plan is the difference from the live object. A field the server will
  not change in place (422 "field is immutable") makes the change a ``-/+``
  replace naming that field, decided in the plan — never a 422 in the middle of
  an apply.
- **Ownership**: every object gfsdeploy creates carries the label
  ``app.kubernetes.io/managed-by=gfsdeploy``; only such objects are ever deleted.
  An object of the same name made by someone else is refused, merged
  (``existing: merge``: only our fields, nothing removed, not marked) or adopted
  (``existing: adopt``: replaced by our manifest and marked).
- **Waiting is not a change**: a task whose objects exist but are not Ready yet
  plans nothing; apply waits for them (:meth:`Kubernetes.settle`).

Servers older than 1.16 have no server-side apply: there the module falls back to
``kubectl apply`` (client-side, its last-applied annotation is the record of what
gfsdeploy set) and plans from the live object alone.
"""

from __future__ import annotations

import base64
import json
import re
import secrets as _random
import time
from dataclasses import dataclass, field

from gfsdeploy_glusterfs import manifests
from gfsdeploy import secrets
from gfsdeploy.batch import JointProbe
from gfsdeploy.errors import ModuleError, PlaybookError, PreflightError
from gfsdeploy.modules.base import (ADD, CHANGE, DESTROY, REPLACE, UNKNOWN, WARN, Change, Module, Param,
                                    TaskContext, TaskResult, q, qjoin)
from gfsdeploy.transport.base import Result
from gfsdeploy_glusterfs.validate import k8s_label_value, k8s_name

#: the field manager gfsdeploy's server-side applies use
MANAGER = "gfsdeploy"
#: the label on everything gfsdeploy creates; only objects carrying it are deleted
MANAGED_BY_KEY, MANAGED_BY_VALUE = "app.kubernetes.io/managed-by", "gfsdeploy"
MANAGED_BY = f"{MANAGED_BY_KEY}={MANAGED_BY_VALUE}"
#: kubectl's record of a client-side apply (servers without server-side apply)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

CLUSTER_SCOPED = {"Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
                  "APIService", "CSIDriver", "CSINode", "VolumeAttachment"}
#: metadata the server owns; never compared even when a manifest carries it
SERVER_METADATA = {"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
                   "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}
#: kinds that are run once: a failed one is deleted and created again
RUN_ONCE_KINDS = {"Job", "Pod"}
#: kinds never deleted to be re-created, whatever forces it: that would lose data
NEVER_REPLACED = {"PersistentVolumeClaim", "PersistentVolume", "Namespace"}
#: what servers refuse to change in place, for plans made without the server's dry run
#: (values only known after apply, or servers without server-side apply)
IMMUTABLE = {
    "Deployment": ("spec.selector",), "DaemonSet": ("spec.selector",), "StatefulSet": ("spec.selector",),
    "ReplicaSet": ("spec.selector",), "Job": ("spec.selector", "spec.template"),
    "Service": ("spec.clusterIP",), "PersistentVolumeClaim": ("spec.storageClassName", "spec.accessModes"),
    "StorageClass": ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"),
    "Pod": ("spec.volumes", "spec.containers", "spec.nodeName", "spec.restartPolicy"),
}
EXISTING_MODES = ("refuse", "merge", "adopt")
WAIT_MODES = ("none", "ready", "complete", "exists")
ABSENT = "(absent)"

_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_SELECTOR = re.compile(r"^[A-Za-z0-9._/=!,() -]{1,500}$")
_KIND_LIST = re.compile(r"^[A-Za-z0-9.]+$")


# -- objects -----------------------------------------------------------------------
def group_of(obj: dict) -> str:
    api = str(obj.get("apiVersion", ""))
    return api.split("/")[0] if "/" in api else ""


def ref(obj: dict) -> str:
    """kubectl's TYPE/NAME, with the API group so names never clash (``deployment.apps/heketi``)."""
    group = group_of(obj)
    kind = str(obj["kind"]).lower()
    return f"{kind}.{group}/{obj['metadata']['name']}" if group else f"{kind}/{obj['metadata']['name']}"


def namespace_of(obj: dict) -> str:
    return "" if obj.get("kind") in CLUSTER_SCOPED else obj.get("metadata", {}).get("namespace") or "default"


def key(obj: dict) -> tuple[str, str, str]:
    return (str(obj.get("kind")), namespace_of(obj), str(obj.get("metadata", {}).get("name")))


def describe(obj: dict) -> str:
    ns = namespace_of(obj)
    name = obj["metadata"]["name"]
    return f"{obj['kind']} {ns}/{name}" if ns else f"{obj['kind']} {name}"


def managed(obj: dict | None) -> bool:
    """Whether gfsdeploy created (or adopted) this live object."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE


def unmarked(obj: dict) -> dict:
    """The object without gfsdeploy's ownership label (what ``existing: merge`` applies)."""
    out = json.loads(json.dumps(obj))
    labels = out.get("metadata", {}).get("labels")
    if labels is not None:
        labels.pop(MANAGED_BY_KEY, None)
        if not labels:
            out["metadata"].pop("labels")
    return out


def normalize(objects: list, namespace: str | None, where: dict) -> list[dict]:
    """Check each object's shape and names, give namespaced ones the task's namespace
    when they name none, turn Secret ``stringData`` into ``data`` (what the server
    stores) and mark each as gfsdeploy's (``app.kubernetes.io/managed-by``)."""
    out = []
    for obj in objects:
        if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
            raise PlaybookError(f"not a Kubernetes object (needs apiVersion and kind): {str(obj)[:200]}",
                                field="definition", fix="give a manifest, a list of them or a `v1 List`", **where)
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise PlaybookError(f"{obj['kind']}: metadata must be a mapping", field="definition", **where)
        name = meta.get("name")
        problem = k8s_name(name)
        if problem:
            raise PlaybookError(f"{obj['kind']}: {problem}", field="definition",
                                fix="set metadata.name to a valid Kubernetes name", **where)
        if obj["kind"] not in CLUSTER_SCOPED:
            meta.setdefault("namespace", namespace or "default")
            problem = k8s_name(meta["namespace"])
            if problem:
                raise PlaybookError(f"{obj['kind']} {name}: namespace {problem}", field="namespace", **where)
        if obj["kind"] == "Secret" and isinstance(obj.get("stringData"), dict):
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        for server_field in SERVER_METADATA:
            meta.pop(server_field, None)
        obj.pop("status", None)
        labels = meta.setdefault("labels", {})
        if not isinstance(labels, dict):
            raise PlaybookError(f"{describe(obj)}: metadata.labels must be a mapping", field="definition", **where)
        labels[MANAGED_BY_KEY] = MANAGED_BY_VALUE
        out.append(obj)
    return out


def register_secret_values(objects: list[dict]) -> None:
    """Secret data never reaches output: register both the base64 and the plain form."""
    from gfsdeploy.templating import is_unknown

    for obj in objects:
        if obj.get("kind") == "Secret":
            for value in (obj.get("data") or {}).values():
                if is_unknown(value):   # "(known after apply)" is no secret
                    continue
                secrets.register(value)
                try:
                    secrets.register(base64.b64decode(str(value)).decode())
                except (ValueError, UnicodeDecodeError):
                    pass


# -- differences ------------------------------------------------------------------------
def _same(desired, live) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired == live
    if isinstance(desired, (int, float, str)) and isinstance(live, (int, float, str)):
        return str(desired) == str(live)   # intOrString: targetPort 8080 vs "8080"
    return False


def _ignored(path: str, key_: str) -> bool:
    return (path == "" and key_ == "status") or (path == "metadata" and key_ in SERVER_METADATA) or \
        (path == "metadata.annotations" and key_ == LAST_APPLIED)


def field_diff(desired, live, path: str = "") -> list[tuple[str, object, object]]:
    """(path, live value, desired value) for every field the manifest sets that the
    live object lacks or holds differently. Fields only on the live side are ignored."""
    out = []
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [(path, live if live is not None else ABSENT, desired)]
        for k, v in desired.items():
            if _ignored(path, k):
                continue
            sub = f"{path}.{k}" if path else k
            if k not in live:
                out.append((sub, ABSENT, v))
            else:
                out.extend(field_diff(v, live[k], sub))
        return out
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [(path, live if live is not None else ABSENT, desired)]
        for i, (d, l) in enumerate(zip(desired, live)):
            out.extend(field_diff(d, l, f"{path}[{i}]"))
        return out
    return [] if _same(desired, live) else [(path, live, desired)]


def object_diff(before, after, path: str = "") -> list[tuple[str, object, object]]:
    """(path, before, after) for every field that differs, both ways: a field only in
    ``before`` is removed (after = ABSENT), one only in ``after`` is added."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for k in list(before) + [k for k in after if k not in before]:
            if _ignored(path, k):
                continue
            sub = f"{path}.{k}" if path else k
            if k not in after:
                out.append((sub, before[k], ABSENT))
            elif k not in before:
                out.append((sub, ABSENT, after[k]))
            else:
                out.extend(object_diff(before[k], after[k], sub))
        return out
    if isinstance(before, list) and isinstance(after, list) and before and after and \
            all(isinstance(x, dict) for x in before + after):
        item_key = _item_key(before, after)
        if item_key:   # a keyed list (containers, env, volumes, ports…): item by item
            old = {str(x[item_key]): x for x in before}
            new = {str(x[item_key]): x for x in after}
            out = []
            for name in list(old) + [n for n in new if n not in old]:
                sub = f"{path}[{item_key}={name}]"
                if name not in new:
                    out.append((sub, old[name], ABSENT))
                elif name not in old:
                    out.append((sub, ABSENT, new[name]))
                else:
                    out.extend(object_diff(old[name], new[name], sub))
            return out
        if len(before) == len(after):
            out = []
            for i, (b, a) in enumerate(zip(before, after)):
                out.extend(object_diff(b, a, f"{path}[{i}]"))
            return out
    return [] if _same(after, before) else [(path, before, after)]


def _item_key(before: list[dict], after: list[dict]) -> str | None:
    """A field that names every item of a list uniquely on both sides (``name``, ``mountPath``…)."""
    for candidate in ("name", "mountPath", "containerPort", "port", "type", "ip"):
        if all(candidate in x for x in before + after) and \
                all(len({str(x[candidate]) for x in side}) == len(side) for side in (before, after)):
            return candidate
    return None


def removed_since_last_apply(desired: dict, live: dict) -> list[tuple[str, object, object]]:
    """Client-side apply's record: fields the last apply set that the manifest no
    longer sets (kubectl's three-way merge removes them)."""
    text = (((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED))
    try:
        last = json.loads(text) if text else None
    except ValueError:
        last = None
    if not isinstance(last, dict):
        return []
    gone = []

    def walk(previous, wanted, current, path):
        if not isinstance(previous, dict):
            return
        wanted = wanted if isinstance(wanted, dict) else {}
        for k, v in previous.items():
            if _ignored(path, k):
                continue
            sub = f"{path}.{k}" if path else k
            here = current.get(k, ABSENT) if isinstance(current, dict) else ABSENT
            if isinstance(v, dict):
                walk(v, wanted.get(k), here, sub)   # a map the last apply set: its own fields, one by one
            elif k not in wanted and here is not ABSENT:
                gone.append((sub, here, ABSENT))
    walk(last, desired, live, "")
    return gone


def _show(value) -> str:
    if value is ABSENT or value == ABSENT:
        return ABSENT
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 120 else text[:117] + "..."


def _is_secret_path(kind: str, path: str) -> bool:
    return kind == "Secret" and (path == "data" or path.startswith("data.") or path.startswith("data[")
                                 or path == "stringData" or path.startswith("stringData."))


def diff_lines(kind: str, fields: list[tuple[str, object, object]], forces: tuple = ()) -> tuple[str, bool]:
    """The plan's lines, Terraform's way: ``+ path: new``, ``- path: old``,
    ``~ path: old -> new``; ``# forces replacement`` after a field that forces it.
    Secret data is never shown."""
    lines, sensitive = [], False
    for path, old, new in fields:
        secret = _is_secret_path(kind, path)
        sensitive |= secret
        shown_old = (secrets.MASK if secret else _show(old)) if old is not ABSENT and old != ABSENT else ABSENT
        shown_new = (secrets.MASK if secret else _show(new)) if new is not ABSENT and new != ABSENT else ABSENT
        if old is ABSENT or old == ABSENT:
            line = f"+ {path}: {shown_new}"
        elif new is ABSENT or new == ABSENT:
            line = f"- {path}: {shown_old}"
        else:
            line = f"~ {path}: {shown_old} -> {shown_new}"
        if any(_inside(path, f) for f in forces):
            line += "   # forces replacement"
        lines.append(line)
    return "\n".join(lines), sensitive


def _unknown_fields(value, path: str = ""):
    """(path, value) of every string in a manifest that holds a value only known after apply."""
    from gfsdeploy.templating import is_unknown

    if isinstance(value, dict):
        for k, item in value.items():
            yield from _unknown_fields(item, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, f"{path}[{index}]")
    elif isinstance(value, str) and is_unknown(value):
        yield path, value


def has_unknown(obj) -> bool:
    return next(_unknown_fields(obj), None) is not None


def _get(obj, path: str):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ABSENT
        cur = cur[part]
    return cur


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top + ".") or path.startswith(top + "[")


def immutable_changes(obj: dict, live: dict) -> list[str]:
    """Fields a server refuses to change in place that differ (no dry run available)."""
    out = []
    for path in IMMUTABLE.get(obj.get("kind"), ()):
        want = _get(obj, path)
        if want is ABSENT:
            continue
        if field_diff(want, _get(live, path), path):
            out.append(path)
    return out


def keep_allocated(obj: dict, live: dict) -> dict:
    """``obj`` with the values the server allocated when ``live`` was created and will
    not change (a Service's clusterIP, a Job's selector and pod labels), so that
    replacing ``live`` by ``obj`` (adoption) keeps them."""
    out = json.loads(json.dumps(obj))
    spec, live_spec = out.get("spec") or {}, live.get("spec") or {}
    if obj.get("kind") == "Service":
        for k in ("clusterIP", "clusterIPs"):
            if k not in spec and k in live_spec:
                spec[k] = live_spec[k]
    if obj.get("kind") == "Job":
        if "selector" not in spec and "selector" in live_spec:
            spec["selector"] = live_spec["selector"]
        live_labels = ((live_spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        for k, v in live_labels.items():
            if k in ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid",
                     "batch.kubernetes.io/job-name"):
                labels.setdefault(k, v)
    if obj.get("kind") == "PersistentVolumeClaim" and "volumeName" not in spec and "volumeName" in live_spec:
        spec["volumeName"] = live_spec["volumeName"]
    return out


# -- readiness ---------------------------------------------------------------------------
def _conditions(obj: dict) -> dict:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def _observed(obj: dict) -> bool:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return generation is None or observed is None or observed >= generation


#: the taints every DaemonSet pod tolerates (the DaemonSet controller adds them)
_DAEMON_TOLERATED = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                     "node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
                     "node.kubernetes.io/pid-pressure", "node.kubernetes.io/unschedulable",
                     "node.kubernetes.io/network-unavailable")


def _tolerated(taint: dict, tolerations: list) -> bool:
    if taint.get("effect") not in ("NoSchedule", "NoExecute") or taint.get("key") in _DAEMON_TOLERATED:
        return True
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and str(t.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def daemon_nodes(daemonset: dict, nodes: list[dict]) -> list[str] | None:
    """The Ready nodes a DaemonSet surely runs a pod on: its nodeSelector's labels, no
    taint its pods do not tolerate (None: its template has a node affinity, not read
    here). Its status lags a node's new label: this says how many pods it must have."""
    pod = ((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}
    if (pod.get("affinity") or {}).get("nodeAffinity"):
        return None
    selector = pod.get("nodeSelector") or {}
    tolerations = pod.get("tolerations") or []
    out = []
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (node.get("status") or {}).get("conditions") or [])
        taints = (node.get("spec") or {}).get("taints") or []
        if ready and all(labels.get(k) == v for k, v in selector.items()) \
                and all(_tolerated(t, tolerations) for t in taints):
            out.append((node.get("metadata") or {}).get("name", ""))
    return out


def readiness(obj: dict | None, mode: str, nodes: list[dict] | None = None) -> tuple[str, str]:
    """("ready" | "waiting" | "failed", what was seen) for ``wait: ready|complete|exists``;
    ``nodes``, when read with it, lets a DaemonSet's lagging status be caught."""
    if obj is None:
        return "waiting", "not found"
    if mode == "exists":
        return "ready", "exists"
    kind = obj.get("kind")
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled") or 0
        ready = status.get("numberReady") or 0
        updated = status.get("updatedNumberScheduled", ready) or 0
        seen = f"{ready}/{desired} ready"
        if desired == 0:
            selector = (((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {})
            shown = ",".join(f"{k}={v}" for k, v in selector.items())
            return "waiting", seen + (f" (no node is labelled {shown})" if shown else " (no pods scheduled)")
        eligible = daemon_nodes(obj, nodes) if nodes is not None else None
        if eligible is not None and desired < len(eligible):
            return "waiting", (f"{seen}; {len(eligible)} Ready nodes match its node selector "
                               f"(the DaemonSet controller has not scheduled them all yet)")
        ok = _observed(obj) and ready >= desired and updated >= desired
        return ("ready" if ok else "waiting"), seen
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas") or 0
        updated = (status.get("updatedReplicas", ready) or 0) if kind == "Deployment" else ready
        progressing = _conditions(obj).get("Progressing") or {}
        if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
            return "failed", f"{ready}/{want} ready; {progressing.get('message') or 'progress deadline exceeded'}"
        ok = _observed(obj) and ready >= want and updated >= want
        return ("ready" if ok else "waiting"), f"{ready}/{want} ready"
    if kind == "Job":
        conditions = _conditions(obj)
        seen = (f"{status.get('succeeded') or 0}/{spec.get('completions', 1)} succeeded, "
                f"{status.get('failed') or 0} failed")
        if (conditions.get("Failed") or {}).get("status") == "True":
            c = conditions["Failed"]
            return "failed", f"{seen}: {c.get('reason') or 'Failed'} {c.get('message') or ''}".strip()
        if (conditions.get("Complete") or {}).get("status") == "True":
            return "ready", seen
        return "waiting", seen
    if kind == "Pod":
        phase = status.get("phase") or "Pending"
        if phase == "Failed":
            return "failed", f"phase Failed {status.get('reason') or ''} {status.get('message') or ''}".strip()
        if phase == "Succeeded":
            return "ready", "phase Succeeded"
        if mode == "ready" and (_conditions(obj).get("Ready") or {}).get("status") == "True":
            return "ready", "Ready"
        return "waiting", f"phase {phase}"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase") or "Pending"
        if phase == "Lost":
            return "failed", "phase Lost"
        return ("ready" if phase == "Bound" else "waiting"), f"phase {phase}"
    if kind == "Namespace":
        phase = status.get("phase") or "Active"
        return ("ready" if phase == "Active" else "waiting"), f"phase {phase}"
    return "ready", "exists"


def pod_selector(obj: dict) -> str | None:
    """A label selector for the pods an object runs (for failure diagnostics)."""
    if obj.get("kind") == "Pod":
        return None
    labels = ((obj.get("spec") or {}).get("selector") or {})
    labels = labels.get("matchLabels", labels) if isinstance(labels, dict) else {}
    if not labels and obj.get("kind") == "Job":
        labels = {"job-name": obj["metadata"]["name"]}
    if not labels or not all(isinstance(v, str) for v in labels.values()):
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def pod_summary(pod: dict) -> str:
    """One line per pod: where it runs, its phase and why it is not Ready."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName") or "(unscheduled)"
    parts = [f"pod {meta.get('name')} on {node}: {status.get('phase') or 'Pending'}"]
    if status.get("reason") or status.get("message"):
        parts.append(f"{status.get('reason') or ''} {status.get('message') or ''}".strip())
    for c in status.get("conditions") or []:
        if c.get("status") != "True" and (c.get("reason") or c.get("message")):
            parts.append(f"{c.get('type')}={c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip())
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        for what in ("waiting", "terminated"):
            if what in state:
                s = state[what]
                code = f" exit {s.get('exitCode')}" if "exitCode" in s else ""
                parts.append(f"container {cs.get('name')} {what} {s.get('reason') or ''}{code} "
                             f"{s.get('message') or ''}".strip())
    return "; ".join(parts)



# -- kubectl ---------------------------------------------------------------------------------
#: kubeconfig when none is given: kubeadm's admin.conf if readable, else the become user's own
DEFAULT_KUBECONFIG = ('"$(if [ -r /etc/kubernetes/admin.conf ]; then echo /etc/kubernetes/admin.conf; '
                      'else echo "$HOME/.kube/config"; fi)"')


def kubectl_prefix(args: dict) -> str:
    """The shell words that start every kubectl call of a task: the ``kubectl`` binary
    and the ``kubeconfig`` (default: /etc/kubernetes/admin.conf if it exists, else
    ~/.kube/config of the user the task runs as)."""
    binary = q(args.get("kubectl") or "kubectl")
    if args.get("kubeconfig"):
        return f"{binary} --kubeconfig {q(args['kubeconfig'])}"
    return f"{binary} --kubeconfig {DEFAULT_KUBECONFIG}"


def kubectl(args: dict, *words) -> str:
    return kubectl_prefix(args) + (" " + qjoin(words) if words else "")


def _ns_args(ns: str) -> list[str]:
    return ["-n", ns] if ns else []


def heredoc(text: str) -> str:
    """``<<'TOKEN'`` + text: a quoted heredoc (no expansion) whose delimiter cannot occur in ``text``."""
    while True:
        token = "GFS_EOF_" + _random.token_hex(6)
        if token not in text:
            return f"<<'{token}'\n{text}\n{token}"


def _document(objects: list[dict]) -> str:
    if len(objects) == 1:
        return json.dumps(objects[0], ensure_ascii=False)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, ensure_ascii=False)


SERVER_SIDE = ["--server-side", f"--field-manager={MANAGER}", "--force-conflicts"]


def apply_script(args: dict, objects: list[dict], *, dry_run: bool = False) -> str:
    """Server-side apply of ``objects`` (one kubectl process), or its dry run (prints them as applied)."""
    extra = ["--dry-run=server", "-o", "json"] if dry_run else []
    return f"{kubectl(args, 'apply', *SERVER_SIDE, *extra, '-f', '-')} {heredoc(_document(objects))}"


def client_apply_script(args: dict, objects: list[dict]) -> str:
    """Client-side ``kubectl apply`` (servers without server-side apply)."""
    return f"{kubectl(args, 'apply', '-f', '-')} {heredoc(_document(objects))}"


def delete_script(args: dict, obj: dict, *, wait: bool = False) -> str:
    return kubectl(args, "delete", ref(obj), *_ns_args(namespace_of(obj)), "--ignore-not-found",
                   f"--wait={'true' if wait else 'false'}")


def replace_put_script(args: dict, obj: dict, *, dry_run: bool = False, client_side: bool = False) -> str:
    """``kubectl replace`` (HTTP PUT): the object becomes exactly ``obj`` (adoption)."""
    extra = ["--dry-run=server", "-o", "json"] if dry_run else ["-o", "json"]
    if client_side:
        extra.append("--save-config")
    else:
        extra += [f"--field-manager={MANAGER}", "--show-managed-fields"]
    return f"{kubectl(args, 'replace', *extra, '-f', '-')} {heredoc(json.dumps(obj, ensure_ascii=False))}"


def get_probes(args: dict, objects: list[dict], prefix: str = "get") -> dict[str, str]:
    """One ``kubectl get`` per namespace (cluster-scoped objects ride along with the first)."""
    groups: dict[str, list[str]] = {}
    for obj in objects:
        groups.setdefault(namespace_of(obj), []).append(ref(obj))
    if "" in groups and len(groups) > 1:
        cluster = groups.pop("")
        first = next(iter(groups))
        groups[first] = cluster + groups[first]
    return {f"{prefix} {ns or '(cluster)'}": KubectlGet(args, refs, ns) for ns, refs in groups.items()}


def nodes_probe(args: dict, objects: list[dict]) -> dict[str, str]:
    """The Node objects, read with a DaemonSet that is waited for (see daemon_nodes)."""
    if args.get("state", "present") != "present" or (args.get("wait") or "none") != "ready" \
            or not any(o.get("kind") == "DaemonSet" for o in objects):
        return {}
    return {"nodes": kubectl(args, "get", "nodes", "-o", "json")}


def read_nodes(result, ctx) -> list[dict] | None:
    """The nodes ``nodes_probe`` read; None when it was not read or may not be (a user
    without the right to list nodes: the DaemonSet's status alone decides, as before)."""
    if result is None or result.rc != 0:
        return None
    return parse_objects(result.stdout, ctx.host.name, ctx.task_name)


def parse_get(results: dict, host: str, task: str) -> list[dict]:
    """Live objects out of ``kubectl get -o json`` results (object, List or nothing)."""
    live = []
    for name, result in results.items():
        if result.rc != 0:
            raise ModuleError(f"{name.split()[0]} failed (exit {result.rc}): {result.stderr.strip()[-1500:]}",
                              host=host, task=task,
                              fix="check that kubectl on the master reaches the API server "
                                  "(kubeconfig, server address) and knows these kinds")
        live.extend(parse_objects(result.stdout, host, task))
    return live


def parse_objects(text: str, host: str = "", task: str = "") -> list[dict]:
    text = text.strip()
    if not text:
        return []
    try:
        return manifests.flatten(json.loads(text))
    except json.JSONDecodeError:
        raise ModuleError(f"kubectl printed something that is not JSON: {text[:300]}",
                          host=host, task=task) from None


class KubectlGet(JointProbe):
    """``kubectl get REF… -n NS -o json --ignore-not-found`` of one step; the gets of
    several steps through the same kubectl, kubeconfig and namespace are one process."""

    def __new__(cls, args: dict, refs: list[str], ns: str):
        self = super().__new__(cls, kubectl(args, "get", *refs, *_ns_args(ns), "-o", "json", "--ignore-not-found"))
        self.kube = {"kubectl": args.get("kubectl"), "kubeconfig": args.get("kubeconfig")}
        self.refs, self.ns = list(refs), ns
        self.joint_key = (kubectl_prefix(args), ns)
        return self

    @classmethod
    def join(cls, probes: list) -> str:
        refs = list(dict.fromkeys(r for p in probes for r in p.refs))
        return kubectl(probes[0].kube, "get", *refs, *_ns_args(probes[0].ns), "-o", "json", "--ignore-not-found")

    @classmethod
    def part(cls, probes: list, whole: Result) -> list[Result]:
        """Each step gets the objects it asked for: by their ``ref``; an object asked
        for in another spelling (``deployments/x``, a short name) by its name."""
        objects = parse_objects(whole.stdout)
        asked = {r for p in probes for r in p.refs}
        out = []
        for probe in probes:
            names = {r.partition("/")[2] for r in probe.refs}
            mine = [o for o in objects if ref(o) in probe.refs or
                    (ref(o) not in asked and (o.get("metadata") or {}).get("name") in names)]
            out.append(Result(0, _document(mine) if mine else "", whole.stderr))
        return out


class KubectlDryRun(JointProbe):
    """The server-side dry run of one step's objects; those of several steps through the
    same kubectl and kubeconfig are one process (one object list), unless two steps
    name the same object."""

    def __new__(cls, args: dict, objects: list[dict]):
        self = super().__new__(cls, apply_script(args, objects, dry_run=True))
        self.kube = {"kubectl": args.get("kubectl"), "kubeconfig": args.get("kubeconfig")}
        self.objects = objects
        self.joint_key = kubectl_prefix(args)
        return self

    @classmethod
    def join(cls, probes: list) -> str | None:
        objects = [o for p in probes for o in p.objects]
        if len({key(o) for o in objects}) != len(objects):
            return None
        return apply_script(probes[0].kube, objects, dry_run=True)

    @classmethod
    def part(cls, probes: list, whole: Result) -> list[Result]:
        """Each step gets its own objects as the server would apply them. A step whose
        objects are not all in the answer reads as refused: it then asks object by
        object, as when its own dry run fails."""
        applied = {key(o): o for o in parse_objects(whole.stdout)}
        out = []
        for probe in probes:
            mine = [applied.get(key(o)) for o in probe.objects]
            out.append(Result(0, _document(mine), whole.stderr) if all(m is not None for m in mine) else
                       Result(1, "", "the joined dry run did not return every object of this step"))
        return out


@dataclass
class Refusal:
    """The API server refused (in a dry run) to apply one object."""

    reason: str                 # Invalid, NotFound, Conflict, BadRequest, Forbidden, …
    message: str
    fields: list[str] = field(default_factory=list)      # what the server names
    immutable: list[str] = field(default_factory=list)   # of those, what cannot change in place

    @property
    def namespace_missing(self) -> bool:
        return self.reason == "NotFound" and self.message.startswith("namespaces ")


_ERROR = re.compile(r"Error from server \((\w+)\): (.*)")
_INVALID = re.compile(r"^The \S+ (\"[^\"]*\" is invalid: .*)")
_CAUSE = re.compile(r"(?:^|, |: )([a-z][A-Za-z0-9]*(?:\.[a-zA-Z0-9]+|\[\d+\])*): "
                    r"(Invalid value|Forbidden|Unsupported value|Required value|Duplicate value|Not found)")
_IMMUTABLE = ("field is immutable", "is immutable", "updates to ", "pod updates may not change",
              "Forbidden: updates to")


def parse_refusal(stderr: str) -> Refusal | None:
    """The first server error kubectl printed, with the fields it names."""
    for line in stderr.splitlines():
        found = _ERROR.search(line)
        invalid = _INVALID.search(line)
        if found:
            reason, message = found.group(1), found.group(2).strip()
        elif invalid:   # kubectl's own wording of a 422 for one object
            reason, message = "Invalid", invalid.group(1).strip()
        else:
            continue
        detail = message.split(" is invalid: ", 1)[-1]
        fields, immutable = [], []
        causes = list(_CAUSE.finditer(detail))
        for i, cause in enumerate(causes):
            end = causes[i + 1].start() if i + 1 < len(causes) else len(detail)
            text = detail[cause.start():end]
            fields.append(cause.group(1))
            if any(word in text for word in _IMMUTABLE):
                immutable.append(cause.group(1))
        return Refusal(reason, message, fields, immutable)
    return None


def server_side_unsupported(stderr: str) -> bool:
    """kubectl or the server has no server-side apply (Kubernetes < 1.16)."""
    text = stderr.lower()
    return ("server-side apply not available" in text or "unknown flag: --server-side" in text
            or "application/apply-patch+yaml" in text)


# -- the module ---------------------------------------------------------------------------------
_KUBECTL = {"kubectl": Param(default="kubectl", help="kubectl on the master (a path if it is not on PATH)"),
            "kubeconfig": Param(help="kubeconfig on the master (default: /etc/kubernetes/admin.conf if it "
                                     "exists, else ~/.kube/config of the user the task runs as)")}


@dataclass
class KubeState:
    """What ``Kubernetes.read`` found: the live objects and what the server said it
    would make of the manifest."""

    live: dict = field(default_factory=dict)       # key -> live object
    applied: dict = field(default_factory=dict)    # key -> as server-side apply would leave it (dry run)
    adopted: dict = field(default_factory=dict)    # key -> as adoption (replace) would leave it (dry run)
    refused: dict = field(default_factory=dict)    # key -> Refusal (dry run)
    server_side: bool = True                       # False: the server has no server-side apply
    nodes: list | None = None                      # the Node objects (read for a DaemonSet's wait)


@dataclass
class Op:
    """What apply does for one change: ``apply`` (server-side), ``client-apply``,
    ``replace`` (delete, wait, apply), ``adopt`` (replace by the manifest, then own
    every field), ``client-adopt``, ``delete``."""

    verb: str
    obj: dict


class Kubernetes(Module):
    """Ensure Kubernetes objects exist (or not) exactly as the manifest says, then wait for them."""

    cheap_reads = False  # every probe is a kubectl process
    name = "kubernetes"
    aliases = ("k8s",)
    params = {
        "definition": Param(type="raw", help="a manifest, a list of them or a `v1 List`"),
        "template": Param(type="path", help="a manifest template under templates/ (rendered into definition)"),
        "namespace": Param(check="k8s_name", help="namespace for objects that name none"),
        "state": Param(default="present", choices=("present", "absent")),
        "existing": Param(default="refuse", choices=EXISTING_MODES,
                          help="an object of the same name not created by gfsdeploy: refuse (default), "
                               "merge (apply our fields only) or adopt (make it exactly the manifest)"),
        "wait": Param(default="none", choices=WAIT_MODES),
        "wait_timeout": Param(type="int", default=300),
        "wait_interval": Param(type="int", default=2),
        **_KUBECTL,
    }

    def resources(self, args: dict) -> set[str]:
        return {"kubernetes"}

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        if (args.get("definition") is None) == (args.get("template") is None):
            raise PlaybookError("module 'kubernetes' needs exactly one of `definition` and `template`",
                                field="definition", fix="give the objects inline or name a template", **(where or {}))
        if args.get("definition") is not None:
            args["definition"] = normalize(manifests.flatten(args["definition"]), args.get("namespace"), where or {})
        return args

    def prepare(self, args, ctx):
        """Render ``template`` into ``definition`` (the objects, checked and marked)."""
        if args.get("template"):
            from gfsdeploy.templating import UNKNOWN_MARK

            where = {"host": ctx.host.name, "task": ctx.task_name}
            text = ctx.render_file(args["template"])
            if text.strip() == UNKNOWN_MARK:
                raise ModuleError(f"template {args['template']} computes with a value known only after apply, "
                                  "so its objects cannot be planned", **where,
                                  fix="in manifest templates, let such values (registered results, facts of "
                                      "objects not created yet) reach the JSON only through `| tojson`")
            doc = manifests.parse(text, args["template"])
            args = {**args, "definition": normalize(manifests.flatten(doc), args.get("namespace"), where)}
        register_secret_values(self.objects(args))
        return args

    @staticmethod
    def objects(args) -> list[dict]:
        if args.get("definition") is None:
            raise ModuleError("template not rendered (prepare() was not called)")
        return args["definition"]

    def probes(self, args, host):
        objects = self.objects(args)
        probes = get_probes(args, objects)
        known = [o for o in objects if not has_unknown(o)]
        if args.get("state") == "present" and known:
            probes["dry-run"] = KubectlDryRun(args, known)
        probes.update(nodes_probe(args, objects))
        return probes

    def read(self, args, facts, ctx) -> KubeState:
        gets = {k: v for k, v in facts.items() if k.startswith("get ")}
        state = KubeState(live={key(o): o for o in parse_get(gets, ctx.host.name, ctx.task_name)})
        state.nodes = read_nodes(facts.get("nodes"), ctx)
        dry = facts.get("dry-run")
        if args.get("state") != "present" or dry is None:
            return state
        known = [o for o in self.objects(args) if not has_unknown(o)]
        if dry.rc == 0:
            state.applied = {key(o): o for o in parse_objects(dry.stdout, ctx.host.name, ctx.task_name)}
        elif server_side_unsupported(dry.stderr):
            state.server_side = False
        else:   # something was refused: ask object by object which one and why (one more round trip)
            each = ctx.transport.read_many({str(i): apply_script(args, [o], dry_run=True)
                                            for i, o in enumerate(known)})
            for i, obj in enumerate(known):
                result = each[str(i)]
                if result.rc == 0:
                    state.applied.update({key(o): o for o in parse_objects(result.stdout, ctx.host.name,
                                                                           ctx.task_name)})
                else:
                    state.refused[key(obj)] = parse_refusal(result.stderr) or \
                        Refusal("Unknown", result.stderr.strip()[-800:] or f"kubectl exited {result.rc}")
        if args.get("existing") == "adopt" and state.server_side:
            foreign = [o for o in known if key(o) in state.live and not managed(state.live[key(o)])
                       and key(o) not in state.refused]
            if foreign:   # what adoption (a replace by the manifest) would make of them
                previews = ctx.transport.read_many({
                    str(i): replace_put_script(args, keep_allocated(o, state.live[key(o)]), dry_run=True)
                    for i, o in enumerate(foreign)})
                for i, obj in enumerate(foreign):
                    result = previews[str(i)]
                    if result.rc == 0:
                        state.adopted.update({key(o): o for o in parse_objects(result.stdout, ctx.host.name,
                                                                               ctx.task_name)})
                    else:
                        state.refused[key(obj)] = parse_refusal(result.stderr) or \
                            Refusal("Unknown", result.stderr.strip()[-800:] or f"kubectl exited {result.rc}")
        return state

    def plan(self, args, state, host):
        state = state if isinstance(state, KubeState) else KubeState()
        return [c for obj in self.objects(args) for c in plan_object(args, obj, state, host.name)]

    def apply(self, args, changes, ctx):
        ops = [c.data["op"] for c in changes if c.action != WARN and isinstance(c.data.get("op"), Op)]
        scripts: list[str] = []
        pending: list[dict] = []      # consecutive server-side applies: one kubectl process

        def flush():
            if pending:
                scripts.append(apply_script(args, list(pending)))
                pending.clear()
            if scripts:
                ctx.run("set -e\n" + "\n".join(scripts) + "\n",
                        what="; ".join(c.action + " " + c.resource for c in changes if c.action != WARN))
                scripts.clear()

        for op in ops:
            if op.verb == "apply":
                pending.append(op.obj)
                continue
            if pending:
                scripts.append(apply_script(args, list(pending)))
                pending.clear()
            if op.verb == "client-apply":
                scripts.append(client_apply_script(args, [op.obj]))
            elif op.verb == "delete":
                scripts.append(delete_script(args, op.obj))
            elif op.verb == "replace":
                scripts += [delete_script(args, op.obj, wait=True), apply_script(args, [op.obj])]
            elif op.verb == "client-replace":
                scripts += [delete_script(args, op.obj, wait=True), client_apply_script(args, [op.obj])]
            elif op.verb == "client-adopt":
                scripts.append(replace_put_script(args, op.obj, client_side=True))
            elif op.verb == "adopt":
                flush()
                adopt(args, op.obj, ctx)
        flush()
        objects = self.objects(args)
        seen = {}
        if args.get("state") == "present" and (args.get("wait") or "none") != "none":
            seen = wait_for(args, objects, ctx)
        return TaskResult(changed=bool(ops), msg=f"{len(ops)} object(s) created/updated/deleted" if ops else "",
                          data={"objects": [describe(o) for o in objects], "status": seen})

    def settle(self, args, state, ctx):
        """Nothing to change, but apply waits until the objects are ready."""
        wait = args.get("wait") or "none"
        if args.get("state") != "present" or wait == "none":
            return None
        objects = self.objects(args)
        live = state.live if isinstance(state, KubeState) else {}
        nodes = state.nodes if isinstance(state, KubeState) else None
        seen = {describe(o): readiness(live.get(key(o)), wait, nodes) for o in objects}
        if all(s == "ready" for s, _ in seen.values()):
            return TaskResult(changed=False, data={"objects": list(seen), "status": {k: w for k, (_, w) in seen.items()}})
        return TaskResult(changed=False, data={"objects": list(seen), "status": wait_for(args, objects, ctx)})


def plan_object(args: dict, obj: dict, state: KubeState, host: str) -> list[Change]:
    """Pure: one manifest object + what was read → its change (or none)."""
    kind = obj["kind"]
    k = key(obj)
    current = state.live.get(k)
    resource = f"kubernetes {describe(obj)}"
    secret = kind == "Secret"
    client = not state.server_side
    if args.get("state") == "absent":
        if current is None:
            return []
        if not managed(current):
            return [Change(WARN, f"{resource} was not created by gfsdeploy (no label {MANAGED_BY}): left as is")]
        return [Change(DESTROY, resource, data={"op": Op("delete", obj)})]
    refusal = state.refused.get(k)
    if refusal is not None and not refusal.namespace_missing and not refusal.immutable:
        raise ModuleError(f"the API server refuses {describe(obj)} ({refusal.reason}): {refusal.message}",
                          host=host, fix="correct the manifest (the server's dry run refused it; nothing was changed)")
    if current is None:
        lines = [f"+ {path}: {value}" for path, value in _unknown_fields(obj)]
        if kind == "Service" and "clusterIP" not in (obj.get("spec") or {}):
            lines.append(f"+ spec.clusterIP: {UNKNOWN}")
        return [Change(ADD, resource, diff="\n".join(lines), sensitive=secret,
                       data={"op": Op("client-apply" if client else "apply", obj)})]
    foreign = not managed(current)
    mode = args.get("existing") or "refuse"
    if foreign and mode == "refuse":
        raise PreflightError(
            f"{describe(obj)} exists but was not created by gfsdeploy (it has no label {MANAGED_BY})",
            host=host, field="existing",
            fix="delete it, or let the task take it over (`existing: adopt`: it becomes exactly the manifest) "
                "or add only the manifest's fields (`existing: merge`)")
    forces = list(refusal.immutable) if refusal is not None and refusal.immutable else []
    if not forces and (client or k not in state.applied):
        forces = immutable_changes(obj, current)
    if forces:
        if kind in NEVER_REPLACED:
            raise PreflightError(
                f"{describe(obj)}: {', '.join(forces)} cannot be changed in place, and gfsdeploy never deletes "
                f"a {kind} to create it again (what it holds would be lost)", host=host,
                fix="put the old value back in the manifest, or migrate by hand")
        fields = field_diff(obj, current)
        for f in forces:   # a selector or parameters the user writes whole: show what goes, too
            if f not in ("spec", "spec.template") and _get(obj, f) is not ABSENT:
                fields = [d for d in fields if not _inside(d[0], f)] + object_diff(_get(current, f), _get(obj, f), f)
        text, sensitive = diff_lines(kind, fields, tuple(forces))
        header = f"# {', '.join(forces)} cannot be changed in place: deleted and created again"
        return [Change(REPLACE, resource, diff=header + ("\n" + text if text else ""), sensitive=sensitive,
                       data={"op": Op("client-replace" if client else "replace", obj)})]
    if foreign and mode == "adopt":
        after = state.adopted.get(k)
        fields = object_diff(current, after) if after is not None else field_diff(obj, current)
        text, sensitive = diff_lines(kind, fields)
        header = "# adopt: made without gfsdeploy; afterwards exactly the manifest, owned by gfsdeploy"
        return [Change(CHANGE, resource, diff=header + ("\n" + text if text else ""), sensitive=sensitive,
                       data={"op": Op("client-adopt" if client else "adopt", keep_allocated(obj, current))})]
    wait = args.get("wait") or "none"
    if kind in RUN_ONCE_KINDS and wait != "none":
        seen, what = readiness(current, wait)
        if seen == "failed":
            return [Change(REPLACE, resource, diff=f"# status: failed ({what}) forces replacement: "
                                                   f"a failed {kind} is deleted and run again",
                           data={"op": Op("client-replace" if client else "replace", obj)})]
    send = unmarked(obj) if foreign else obj
    if k in state.applied:
        fields = object_diff(current, state.applied[k])
        if foreign:   # merge: the ownership label is not added to someone else's object
            fields = [f for f in fields if f[0] != f"metadata.labels.{MANAGED_BY_KEY}"]
    else:
        fields = field_diff(send, current) + (removed_since_last_apply(send, current) if client else [])
    if not fields:
        return []
    text, sensitive = diff_lines(kind, fields)
    return [Change(CHANGE, resource, diff=text, sensitive=sensitive,
                   data={"op": Op("client-apply" if client else "apply", send)})]


#: managers whose fields an adoption leaves to them (controllers, the kubelet)
_CONTROLLERS = ("kube-", "kubelet")


def merge_fields(a: dict, b: dict) -> dict:
    """The union of two managedFields ``fieldsV1`` trees."""
    out = json.loads(json.dumps(a))
    for k, v in (b or {}).items():
        out[k] = merge_fields(out.get(k) or {}, v) if v else out.get(k, {})
    return out


def adopt(args: dict, obj: dict, ctx: TaskContext) -> None:
    """Make a live object someone else created exactly ``obj`` and gfsdeploy's own:
    replace it (PUT), then hand every field its writers set to gfsdeploy's
    server-side-apply manager, so that later applies remove what the manifest drops."""
    result = ctx.run(replace_put_script(args, obj), what=f"adopt {describe(obj)} (kubectl replace)")
    live = parse_objects(result.stdout, ctx.host.name, ctx.task_name)
    owned: dict = {}
    for entry in ((live[0].get("metadata") or {}).get("managedFields") or []) if live else []:
        if entry.get("subresource") or str(entry.get("manager", "")).startswith(_CONTROLLERS):
            continue
        owned = merge_fields(owned, entry.get("fieldsV1") or {})
    patch = {"metadata": {"managedFields": [{"manager": MANAGER, "operation": "Apply",
                                             "apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1",
                                             "fieldsV1": owned}]}}
    ctx.run(kubectl(args, "patch", ref(obj), *_ns_args(namespace_of(obj)), "--type", "merge",
                    "-p", json.dumps(patch)), what=f"adopt {describe(obj)} (take over its fields)")


def wait_for(args: dict, objects: list[dict], ctx: TaskContext) -> dict[str, str]:
    """Poll until every object is ready/complete; progress on every change of what
    is seen; a failure or the timeout raises a ModuleError with the pods' state and
    their last events."""
    mode = args.get("wait") or "ready"
    timeout = float(args.get("wait_timeout") or 300)
    interval = max(float(args.get("wait_interval") or 2), 0.2)
    start = time.monotonic()
    last_shown: dict[str, tuple[str, float]] = {}
    seen: dict[str, str] = {}
    while True:
        read = ctx.transport.read_many({**get_probes(args, objects, "wait"), **nodes_probe(args, objects)})
        nodes = read_nodes(read.pop("nodes", None), ctx)
        live = {key(o): o for o in parse_get(read, ctx.host.name, ctx.task_name)}
        pending = []
        for obj in objects:
            current = live.get(key(obj))
            state, what = readiness(current, mode, nodes)
            seen[describe(obj)] = what
            if state == "failed":
                raise ModuleError(f"{describe(obj)} failed: {what}{pods_report(args, obj, current, ctx)}",
                                  host=ctx.host.name, task=ctx.task_name,
                                  fix="fix the cause shown above, then run apply again (the object is replaced)")
            if state != "ready":
                pending.append((obj, current, what))
        if not pending:
            return seen
        now = time.monotonic()
        for obj, _, what in pending:
            shown = last_shown.get(describe(obj))
            if shown is None or shown[0] != what or now - shown[1] >= 30:
                ctx.progress(f"waiting for {obj['kind']} {obj['metadata']['name']}: {what} "
                             f"({now - start:.0f}s of {timeout:.0f}s)")
                last_shown[describe(obj)] = (what, now)
        if now - start >= timeout:
            obj, current, what = pending[0]
            others = "".join(f"; also waiting for {describe(o)}: {w}" for o, _, w in pending[1:])
            raise ModuleError(f"timed out after {timeout:.0f}s waiting for {describe(obj)} to be {mode}: "
                              f"last seen {what}{others}{pods_report(args, obj, current, ctx)}",
                              host=ctx.host.name, task=ctx.task_name,
                              fix="fix what the pods and their events report (image, node labels, host "
                                  "packages), or raise wait_timeout; re-running apply continues from here")
        time.sleep(min(interval, max(timeout - (now - start), 0.1)))


def pods_report(args: dict, obj: dict, current: dict | None, ctx: TaskContext) -> str:
    """The pods behind an object, one line each, and each pod's last events
    (best effort: diagnostics only, never hides the real error)."""
    if current is None:
        return ""
    ns = namespace_of(obj)
    if obj["kind"] == "Pod":
        pods = [current]
    else:
        selector = pod_selector(current)
        if not selector:
            return ""
        try:
            result = ctx.transport.run(kubectl(args, "get", "pods", *_ns_args(ns), "-l", selector, "-o", "json"),
                                       kind="read")
            pods = manifests.flatten(json.loads(result.stdout)) if result.rc == 0 and result.stdout.strip() else []
        except Exception:  # noqa: BLE001 - a diagnostic must not hide the real error
            return ""
        if not pods:
            return f"\n  no pods match {selector}" + events_report(args, current, ns, ctx)
    lines = "".join("\n  " + pod_summary(p) for p in pods[:10])
    return lines + "".join(events_report(args, p, ns, ctx) for p in pods[:3])


def events_report(args: dict, involved: dict, ns: str, ctx: TaskContext, last: int = 5) -> str:
    """The last events about one object (ErrImagePull, FailedMount, FailedScheduling…)."""
    name = (involved.get("metadata") or {}).get("name")
    if not name:
        return ""
    try:
        result = ctx.transport.run(kubectl(args, "get", "events", *_ns_args(ns), "--field-selector",
                                           f"involvedObject.name={name}", "-o", "json"), kind="read")
        events = manifests.flatten(json.loads(result.stdout)) if result.rc == 0 and result.stdout.strip() else []
    except Exception:  # noqa: BLE001 - a diagnostic must not hide the real error
        return ""
    events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or
                                  (e.get("metadata") or {}).get("creationTimestamp") or ""))
    if not events:
        return ""
    kind = (involved.get("kind") or "object").lower()
    lines = [f"\n  last events of {kind} {name}:"]
    for event in events[-last:]:
        count = event.get("count") or 1
        lines.append(f"\n    {event.get('type') or 'Normal'} {event.get('reason') or ''}: "
                     f"{(event.get('message') or '').strip()}" + (f" (x{count})" if count > 1 else ""))
    return "".join(lines)


class KubernetesLabel(Module):
    """Ensure labels on Kubernetes nodes (``kubectl label node … --overwrite``)."""

    cheap_reads = False  # every probe is a kubectl process
    name = "kubernetes_label"
    params = {
        "nodes": Param(type="list", required=True, check="k8s_name", help="Kubernetes node names"),
        "labels": Param(type="dict", required=True, help="label: value"),
        "state": Param(default="present", choices=("present", "absent")),
        **_KUBECTL,
    }

    def resources(self, args: dict) -> set[str]:
        return {"kubernetes"}

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        for k, v in args["labels"].items():
            if not isinstance(k, str) or not _LABEL_KEY.match(k):
                raise PlaybookError(f"{k!r} is not a valid label key", field="labels", **(where or {}))
            problem = k8s_label_value(str(v))
            if problem:
                raise PlaybookError(problem, field="labels", **(where or {}))
        return args

    def probes(self, args, host):
        return {"nodes": kubectl(args, "get", "nodes", "-o", "json")}

    def read(self, args, facts, ctx) -> list[dict]:
        """The live Node objects."""
        return parse_get(facts, ctx.host.name, ctx.task_name)

    def plan(self, args, state, host):
        nodes = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in state or []}
        changes = []
        for node in args["nodes"]:
            if node not in nodes:
                raise PreflightError(
                    f"node {node!r} is not a Kubernetes node (kubectl get nodes shows: "
                    f"{', '.join(sorted(nodes)) or 'no nodes'}); the inventory name or `manage` must match",
                    host=host.name, field="nodes",
                    fix="use the node names exactly as `kubectl get nodes` prints them")
            current = nodes[node]
            if args.get("state") == "absent":
                drop = [k for k in args["labels"] if k in current]
                if drop:
                    changes.append(Change(DESTROY, f"node {node} label {' '.join(drop)}",
                                          diff="\n".join(f"- label {k}: {current[k]}" for k in drop),
                                          script=kubectl(args, "label", "node", node, *[f"{k}-" for k in drop])))
                continue
            want = {k: str(v) for k, v in args["labels"].items() if current.get(k) != str(v)}
            if want:
                changes.append(Change(CHANGE, f"node {node} label " + " ".join(f"{k}={v}" for k, v in want.items()),
                                      diff="\n".join(f"+ label {k}: {v}" if k not in current else
                                                     f"~ label {k}: {current[k]} -> {v}" for k, v in want.items()),
                                      script=kubectl(args, "label", "node", node,
                                                     *[f"{k}={v}" for k, v in want.items()], "--overwrite")))
        return changes


class KubernetesDelete(Module):
    """Delete what a label selector matches (e.g. the heketi bootstrap), except ``keep``
    and except what gfsdeploy did not create (no ``app.kubernetes.io/managed-by=gfsdeploy``
    label): those are named in the plan and left alone.

    Deletes exactly the objects the plan listed, by name: owned objects (a
    Deployment's ReplicaSets and pods, a Job's pods) go with their owner."""

    cheap_reads = False  # every probe is a kubectl process
    name = "kubernetes_delete"
    params = {
        "kinds": Param(type="list", required=True, help="kubectl types, e.g. all,service,jobs,deployment,secret"),
        "selector": Param(required=True, help="label selector, e.g. deploy-heketi"),
        "namespace": Param(default="default", check="k8s_name"),
        "keep": Param(type="list", default=[], check="k8s_name", help="names never deleted"),
        **_KUBECTL,
    }

    def resources(self, args: dict) -> set[str]:
        return {"kubernetes"}

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        for kind in args["kinds"]:
            if not isinstance(kind, str) or not _KIND_LIST.match(kind):
                raise PlaybookError(f"{kind!r} is not a kubectl resource type", field="kinds", **(where or {}))
        if not _SELECTOR.match(str(args["selector"])):
            raise PlaybookError(f"{args['selector']!r} is not a label selector", field="selector", **(where or {}))
        return args

    def probes(self, args, host):
        return {"matching": kubectl(args, "get", ",".join(args["kinds"]), "-n", args["namespace"],
                                    "--selector", str(args["selector"]), "-o", "json")}

    def read(self, args, facts, ctx) -> list[dict]:
        """The live objects the selector matches."""
        return parse_get(facts, ctx.host.name, ctx.task_name)

    def plan(self, args, state, host):
        doomed, seen, changes = [], set(), []
        for obj in state or []:
            meta = obj.get("metadata") or {}
            if key(obj) in seen or meta.get("ownerReferences") or meta.get("name") in (args.get("keep") or []):
                continue
            seen.add(key(obj))
            if not managed(obj):
                changes.append(Change(WARN, f"kubernetes {describe(obj)} matches {args['selector']} but was not "
                                            f"created by gfsdeploy (no label {MANAGED_BY}): left as is"))
                continue
            doomed.append(obj)
        if not doomed:
            return changes
        return changes + [Change(DESTROY, f"kubernetes {describe(o)}", data={"op": Op("delete", o)}) for o in doomed]

    def apply(self, args, changes, ctx):
        """One ``kubectl delete`` of exactly the objects the changes name."""
        doomed = [c.data["op"].obj for c in changes if c.action == DESTROY and isinstance(c.data.get("op"), Op)]
        if not doomed:
            return TaskResult(changed=False)
        ctx.run(kubectl(args, "delete", *[ref(o) for o in doomed], "-n", args["namespace"], "--ignore-not-found"),
                what="; ".join(f"- kubernetes {describe(o)}" for o in doomed))
        return TaskResult(changed=True, msg=f"{len(doomed)} object(s) deleted")


def _is(item: str, obj: dict) -> bool:
    """Whether ``obj`` is what ``TYPE/NAME`` names (``deployment/x``, ``deployments.apps/x``…)."""
    kind, _, name = item.partition("/")
    kind = kind.lower().split(".")[0]
    return obj["metadata"]["name"] == name and str(obj.get("kind", "")).lower() in (kind, kind.rstrip("s"))


@dataclass
class ClusterFacts:
    """What ``kubernetes_facts`` read."""

    server: dict                       # kubectl version's serverVersion
    api_server: str = ""               # the API server URL kubectl reached
    kubeconfig: str = ""               # the kubeconfig it used
    nodes: list = field(default_factory=list)
    service: dict | None = None
    objects: dict = field(default_factory=dict)   # ref -> live object (or None)


class KubernetesFacts(Module):
    """Read the cluster: which API server kubectl reaches and its version (refusing
    >= 1.26), the nodes, a Service's ClusterIP and whether given objects exist."""

    cheap_reads = False  # every probe is a kubectl process
    name = "kubernetes_facts"
    read_only = True
    params = {
        "service": Param(check="k8s_name", help="Service whose ClusterIP to report"),
        "namespace": Param(default="default", check="k8s_name"),
        "objects": Param(type="list", default=[], help="TYPE/NAME to look up, e.g. deployment.apps/heketi"),
        **_KUBECTL,
    }

    def resources(self, args: dict) -> set[str]:
        return {"kubernetes"}

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        for item in args["objects"]:
            kind, _, name = str(item).partition("/")
            if not _KIND_LIST.match(kind) or k8s_name(name):
                raise PlaybookError(f"{item!r} is not TYPE/NAME", field="objects",
                                    fix="write e.g. deployment.apps/heketi", **(where or {}))
        return args

    def probes(self, args, host):
        config = q(args["kubeconfig"]) if args.get("kubeconfig") else DEFAULT_KUBECONFIG
        probes = {"version": kubectl(args, "version", "-o", "json"),
                  "nodes": kubectl(args, "get", "nodes", "-o", "json"),
                  "where": f"printf '%s\\n' {config}; "
                           + kubectl(args, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")}
        if args.get("service"):
            probes["service"] = KubectlGet(args, ["service/" + args["service"]], args["namespace"])
        if args.get("objects"):
            probes["objects"] = KubectlGet(args, [str(o) for o in args["objects"]], args["namespace"])
        return probes

    def read(self, args, facts, ctx) -> ClusterFacts:
        version, where = facts["version"], facts["where"]
        config, _, api_server = where.stdout.partition("\n")
        try:
            server = json.loads(version.stdout).get("serverVersion")
        except (json.JSONDecodeError, AttributeError):
            server = None
        if not server:
            raise ModuleError(f"kubectl did not reach the API server (exit {version.rc}; kubeconfig "
                              f"{config.strip() or '?'}): {version.stderr.strip()[-1500:]}",
                              host=ctx.host.name, task=ctx.task_name,
                              fix="set the inventory variable `kubeconfig` to a kubeconfig for this cluster "
                                  "on the master (kubeadm: /etc/kubernetes/admin.conf), and `kubectl` to its "
                                  "path if it is not on the PATH of the user the task runs as")
        rest = {k: v for k, v in facts.items() if k in ("nodes", "service")}
        live = parse_get(rest, ctx.host.name, ctx.task_name)
        found = parse_get({"objects": facts["objects"]}, ctx.host.name, ctx.task_name) if "objects" in facts else []
        objects = {item: next((o for o in found if _is(item, o)), None) for item in args.get("objects") or []}
        return ClusterFacts(server=server, api_server=api_server.strip(), kubeconfig=config.strip(),
                            nodes=[o for o in live if o.get("kind") == "Node"],
                            service=next((o for o in live if o.get("kind") == "Service"), None), objects=objects)

    def plan(self, args, state, host):
        manifests.check_supported(state.server)  # raises the refusal on >= 1.26
        return []

    def facts(self, args, state: ClusterFacts, *, check_mode: bool = False, host: str = "") -> dict:
        """The registered value: version, minor, api_server, kubeconfig, nodes, node_labels,
        cluster_ip, exists/managed per looked-up object."""
        minor = manifests.check_supported(state.server)
        cluster_ip = (state.service or {}).get("spec", {}).get("clusterIP")
        if args.get("service") and not cluster_ip:
            if not check_mode:
                raise ModuleError(f"Service {args['namespace']}/{args['service']} not found (or has no ClusterIP)",
                                  host=host, fix="create the Service first (task order), then read its facts")
            from gfsdeploy.templating import Unknown

            cluster_ip = Unknown()  # later tasks using it are planned "(known after apply)"
        return {"version": state.server.get("gitVersion", ""), "minor": minor,
                "api_server": state.api_server, "kubeconfig": state.kubeconfig,
                "nodes": [n["metadata"]["name"] for n in state.nodes],
                "node_labels": {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in state.nodes},
                "cluster_ip": cluster_ip,
                "exists": {r: o is not None for r, o in state.objects.items()},
                "managed": {r: managed(o) for r, o in state.objects.items()}}

    def report(self, args, state, ctx):
        data = self.facts(args, state, check_mode=ctx.check_mode, host=ctx.host.name)
        return TaskResult(changed=False, data=data,
                          msg=f"API server {state.api_server or '?'} (kubeconfig {state.kubeconfig or '?'}): "
                              f"Kubernetes {data['version']}")

    def apply(self, args, changes, ctx):
        state = self.read(args, ctx.transport.read_many(self.probes(args, ctx.host)), ctx)
        return self.report(args, state, ctx)


def storage_class_of(claim: dict) -> str | None:
    """The StorageClass a PersistentVolumeClaim uses (the field, or the beta annotation of old clusters)."""
    spec = claim.get("spec") or {}
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    return spec.get("storageClassName") or annotations.get("volume.beta.kubernetes.io/storage-class")


def describe_claim(claim: dict) -> str:
    meta, status = claim.get("metadata") or {}, claim.get("status") or {}
    size = ((status.get("capacity") or {}).get("storage") or
            (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage") or "?")
    volume = (claim.get("spec") or {}).get("volumeName")
    return (f"{meta.get('namespace') or 'default'}/{meta.get('name')} ({status.get('phase') or 'Pending'}, {size}"
            + (f", volume {volume}" if volume else "") + ")")


class KubernetesClaims(Module):
    """The PersistentVolumeClaims that use a StorageClass: removing the storage under
    them (teardown) would strand their data, so any claim not listed in ``allow``
    refuses the plan — unless ``force``, which turns the refusal into warnings."""

    cheap_reads = False  # every probe is a kubectl process
    name = "kubernetes_claims"
    read_only = True
    params = {
        "storageclass": Param(required=True, check="k8s_name", help="the StorageClass whose users to list"),
        "allow": Param(type="list", default=[], help="NAMESPACE/NAME of claims that may exist (the smoke test's)"),
        "force": Param(type="bool", default=False, help="warn instead of refusing"),
        **_KUBECTL,
    }

    def resources(self, args: dict) -> set[str]:
        return {"kubernetes"}

    def probes(self, args, host):
        return {"claims": kubectl(args, "get", "persistentvolumeclaims", "--all-namespaces", "-o", "json")}

    def read(self, args, facts, ctx) -> list[dict]:
        return [c for c in parse_get(facts, ctx.host.name, ctx.task_name) if c.get("kind") == "PersistentVolumeClaim"]

    def users(self, args, claims: list[dict]) -> list[dict]:
        allowed = set(args.get("allow") or [])
        return [c for c in claims if storage_class_of(c) == args["storageclass"] and
                f"{c['metadata'].get('namespace') or 'default'}/{c['metadata']['name']}" not in allowed]

    def plan(self, args, state, host):
        users = self.users(args, state or [])
        if not users:
            return []
        shown = ", ".join(describe_claim(c) for c in users)
        if not args.get("force"):
            raise PreflightError(
                f"{len(users)} volume claim(s) other than gfsdeploy's smoke test use StorageClass "
                f"{args['storageclass']}: {shown}. Removing GlusterFS and heketi would strand their data "
                f"(volumes nobody serves or can delete)", host=host.name,
                fix="move the data and delete those claims first, or re-run with --force to tear down anyway "
                    "(their volumes stay on the storage devices, unserved)")
        return [Change(WARN, f"volume claim {describe_claim(c)} uses StorageClass {args['storageclass']}: "
                             f"its data stays on the storage devices, unserved (--force)") for c in users]

    def report(self, args, state, ctx):
        users = self.users(args, state or [])
        return TaskResult(changed=False, data={"claims": [describe_claim(c) for c in users]})
