"""Kubernetes objects, node labels, deletion by selector and cluster facts, all
through ``kubectl`` on the master (the task's host).

Reads are one ``kubectl get … -o json --ignore-not-found`` per namespace, batched
with the other probes of the run; the plan compares only the fields the manifest
sets (the server adds defaults and clusterIPs we never asked for); apply creates
what is missing and merge-patches what differs, each guarded by a fresh ``get``
so a re-run after partial success never meets AlreadyExists.
"""

from __future__ import annotations

import base64
import json
import re
import secrets as _random
import time

from gfsdeploy_glusterfs import manifests
from gfsdeploy import secrets
from gfsdeploy.errors import ModuleError, PlaybookError, PreflightError
from gfsdeploy.modules.base import (ADD, CHANGE, DESTROY, UNKNOWN, Change, Module, Param,
                                    TaskContext, TaskResult, q, qjoin)
from gfsdeploy_glusterfs.validate import k8s_label_value, k8s_name

CLUSTER_SCOPED = {"Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
                  "APIService", "CSIDriver", "CSINode", "VolumeAttachment"}
#: metadata the server owns; never compared even when a manifest carries it
SERVER_METADATA = {"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
                   "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}
#: kinds whose spec is immutable once created: a change means delete + create
RECREATE_KINDS = {"Job", "Pod"}
#: kinds updated with ``replace -f -`` (stdin, no argv size limit; no server-set spec to lose)
REPLACE_KINDS = {"Secret", "ConfigMap"}
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


def normalize(objects: list, namespace: str | None, where: dict) -> list[dict]:
    """Check each object's shape and names, give namespaced ones the task's namespace
    when they name none, and turn Secret ``stringData`` into ``data`` (what the server stores)."""
    out = []
    for obj in objects:
        if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
            raise PlaybookError(f"not a Kubernetes object (needs apiVersion and kind): {str(obj)[:200]}",
                                field="definition", fix="give a manifest, a list of them or a `v1 List`", **where)
        obj = json.loads(json.dumps(obj))
        meta = obj.setdefault("metadata", {})
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
        out.append(obj)
    return out


def register_secret_values(objects: list[dict]) -> None:
    """Secret data never reaches output: register both the base64 and the plain form."""
    for obj in objects:
        if obj.get("kind") == "Secret":
            for value in (obj.get("data") or {}).values():
                secrets.register(value)
                try:
                    secrets.register(base64.b64decode(str(value)).decode())
                except (ValueError, UnicodeDecodeError):
                    pass


# -- the field-level diff -------------------------------------------------------------
def _same(desired, live) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired == live
    if isinstance(desired, (int, float, str)) and isinstance(live, (int, float, str)):
        return str(desired) == str(live)   # intOrString: targetPort 8080 vs "8080"
    return False


def field_diff(desired, live, path: str = "") -> list[tuple[str, object, object]]:
    """(path, live value, desired value) for every field the manifest sets that the
    live object lacks or holds differently. Fields only on the live side are ignored."""
    out = []
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [(path, live if live is not None else ABSENT, desired)]
        for k, v in desired.items():
            if path == "" and k == "status":
                continue
            if path == "metadata" and k in SERVER_METADATA:
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


def _show(value) -> str:
    if value == ABSENT:
        return ABSENT
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 120 else text[:117] + "..."


def diff_lines(kind: str, fields: list[tuple[str, object, object]]) -> tuple[str, bool]:
    """The plan's ``path: old -> new`` lines; Secret data is never shown."""
    lines, sensitive = [], False
    for path, old, new in fields:
        if kind == "Secret" and (path == "data" or path.startswith("data.") or path.startswith("data[")):
            sensitive = True
            lines.append(f"{path}: {secrets.MASK if old != ABSENT else ABSENT} -> {secrets.MASK}")
        else:
            lines.append(f"{path}: {_show(old)} -> {_show(new)}")
    return "\n".join(lines), sensitive


# -- readiness ---------------------------------------------------------------------------
def _conditions(obj: dict) -> dict:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def _observed(obj: dict) -> bool:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return generation is None or observed is None or observed >= generation


def readiness(obj: dict | None, mode: str) -> tuple[str, str]:
    """("ready" | "waiting" | "failed", what was seen) for ``wait: ready|complete|exists``."""
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


# -- shell ---------------------------------------------------------------------------------
def kubectl_argv(args: dict) -> list[str]:
    argv = [args.get("kubectl") or "kubectl"]
    if args.get("kubeconfig"):
        argv += ["--kubeconfig", args["kubeconfig"]]
    return argv


def _ns_args(ns: str) -> list[str]:
    return ["-n", ns] if ns else []


def heredoc(text: str) -> tuple[str, str]:
    """A quoted heredoc delimiter that cannot occur in ``text`` (no expansion inside)."""
    while True:
        token = "GFS_EOF_" + _random.token_hex(6)
        if token not in text:
            return token, f"<<'{token}'\n{text}\n{token}"


def _body(obj: dict) -> str:
    return json.dumps({k: v for k, v in obj.items() if k != "status"}, ensure_ascii=False)


def create_or_update_script(args: dict, obj: dict) -> str:
    """Patch the object if it exists by now, else create it: never AlreadyExists.

    ``--validate=false``: the manifests are checked against Kubernetes' schemas by
    the test suite; the API server still validates every object it stores."""
    k = qjoin(kubectl_argv(args))
    ns = qjoin(_ns_args(namespace_of(obj)))
    r = q(ref(obj))
    body = _body(obj)
    if obj["kind"] in REPLACE_KINDS:
        _, doc = heredoc(body)
        update = f"  {k} replace --validate=false -f - {doc}\n"
    else:
        patch = {key_: v for key_, v in obj.items() if key_ not in ("status", "apiVersion", "kind")}
        _, doc = heredoc(json.dumps(patch, ensure_ascii=False))
        update = f"  {k} patch {r} {ns} --type merge -p \"$(cat {doc}\n)\"\n"
    _, create_doc = heredoc(body)
    return (f"if {k} get {r} {ns} -o name >/dev/null 2>&1; then\n{update}"
            f"else\n  {k} create --validate=false -f - {create_doc}\nfi")


def recreate_script(args: dict, obj: dict) -> str:
    k = qjoin(kubectl_argv(args))
    _, doc = heredoc(_body(obj))
    return (f"{k} delete {q(ref(obj))} {qjoin(_ns_args(namespace_of(obj)))} --ignore-not-found --wait=true\n"
            f"{k} create --validate=false -f - {doc}")


def delete_script(args: dict, obj: dict) -> str:
    return (f"{qjoin(kubectl_argv(args))} delete {q(ref(obj))} {qjoin(_ns_args(namespace_of(obj)))} "
            f"--ignore-not-found")


def get_probes(args: dict, objects: list[dict], prefix: str = "get") -> dict[str, str]:
    """One ``kubectl get`` per namespace (cluster-scoped objects ride along with the first)."""
    groups: dict[str, list[str]] = {}
    for obj in objects:
        groups.setdefault(namespace_of(obj), []).append(ref(obj))
    if "" in groups and len(groups) > 1:
        cluster = groups.pop("")
        first = next(iter(groups))
        groups[first] = cluster + groups[first]
    return {f"{prefix} {ns or '(cluster)'}": qjoin(kubectl_argv(args) + ["get", *refs, *_ns_args(ns),
                                                                          "-o", "json", "--ignore-not-found"])
            for ns, refs in groups.items()}


def parse_get(results: dict, host: str, task: str) -> list[dict]:
    """Live objects out of ``kubectl get -o json`` results (object, List or nothing)."""
    live = []
    for name, result in results.items():
        if result.rc != 0:
            raise ModuleError(f"{name.split()[0]} failed (exit {result.rc}): {result.stderr.strip()[-1500:]}",
                              host=host, task=task,
                              fix="check that kubectl on the master reaches the API server "
                                  "(kubeconfig, server address) and knows these kinds")
        text = result.stdout.strip()
        if not text:
            continue
        try:
            live.extend(manifests.flatten(json.loads(text)))
        except json.JSONDecodeError:
            raise ModuleError(f"kubectl printed something that is not JSON: {text[:300]}",
                              host=host, task=task) from None
    return live


# -- modules -------------------------------------------------------------------------------------
_KUBECTL = {"kubectl": Param(default="kubectl", help="kubectl on the master"),
            "kubeconfig": Param(type="path", help="kubeconfig on the master (default: kubectl's own)")}


def _unknown_fields(value, path: str = ""):
    """(path, value) of every string in a manifest that holds a value only known after apply."""
    from gfsdeploy.templating import is_unknown

    if isinstance(value, dict):
        for key, item in value.items():
            yield from _unknown_fields(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, f"{path}[{index}]")
    elif isinstance(value, str) and is_unknown(value):
        yield path, value


class Kubernetes(Module):
    """Ensure Kubernetes objects exist (or not) as the manifest says, then wait for them."""

    cheap_reads = False  # every probe is a kubectl process
    name = "kubernetes"
    aliases = ("k8s",)
    params = {
        "definition": Param(type="raw", help="a manifest, a list of them or a `v1 List`"),
        "template": Param(type="path", help="a manifest template under templates/"),
        "namespace": Param(check="k8s_name", help="namespace for objects that name none"),
        "state": Param(default="present", choices=("present", "absent")),
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
        return args

    def prepare(self, args, ctx):
        where = {"host": ctx.host.name, "task": ctx.task_name}
        if args.get("template"):
            doc = manifests.parse(ctx.render_file(args["template"]), args["template"])
        else:
            doc = args["definition"]
        objects = normalize(manifests.flatten(doc), args.get("namespace"), where)
        register_secret_values(objects)
        return {**args, "_objects": objects}

    @staticmethod
    def objects(args) -> list[dict]:
        if "_objects" in args:
            return args["_objects"]
        if args.get("template"):
            raise ModuleError("template not rendered (prepare() was not called)")
        return normalize(manifests.flatten(args.get("definition")), args.get("namespace"), {})

    def probes(self, args, host):
        return get_probes(args, self.objects(args))

    def read(self, args, facts, ctx):
        return {"live": parse_get(facts, ctx.host.name, ctx.task_name)}

    def plan(self, args, state, host):
        live = {key(o): o for o in (state or {}).get("live", [])}
        changes = []
        for obj in self.objects(args):
            current = live.get(key(obj))
            resource = f"kubernetes {describe(obj)}"
            secret = obj["kind"] == "Secret"
            if args.get("state") == "absent":
                if current is not None:
                    changes.append(Change(DESTROY, resource, script=delete_script(args, obj),
                                          data={"object": obj}))
                continue
            if current is None:
                lines = [f"{path}: {value}" for path, value in _unknown_fields(obj)]
                if obj["kind"] == "Service" and "clusterIP" not in (obj.get("spec") or {}):
                    lines.append(f"spec.clusterIP: {UNKNOWN}")
                diff = "\n".join(lines)
                changes.append(Change(ADD, resource, diff=diff, sensitive=secret,
                                      script=create_or_update_script(args, obj), data={"object": obj}))
                continue
            fields = field_diff(obj, current)
            wait = args.get("wait") or "none"
            seen, what = readiness(current, wait) if wait != "none" else ("ready", "")
            if fields:
                text, sensitive = diff_lines(obj["kind"], fields)
                if obj["kind"] in RECREATE_KINDS:
                    text += f"\n(replaced: a {obj['kind']}'s spec cannot be changed in place)"
                    script = recreate_script(args, obj)
                else:
                    script = create_or_update_script(args, obj)
                changes.append(Change(CHANGE, resource, diff=text, sensitive=sensitive, script=script,
                                      data={"object": obj}))
            elif seen == "failed" and obj["kind"] in RECREATE_KINDS:
                changes.append(Change(CHANGE, resource, diff=f"status: failed ({what}) -> run again\n"
                                      f"(replaced: a failed {obj['kind']} is deleted and created again)",
                                      script=recreate_script(args, obj), data={"object": obj}))
            elif seen != "ready":
                changes.append(Change(CHANGE, resource, diff=f"status: {what} -> {wait} (apply waits)",
                                      data={"object": obj, "wait_only": True}))
        return changes

    def apply(self, args, changes, ctx):
        scripts = [c.script for c in changes if c.script]
        if scripts:
            ctx.run("set -e\n" + "\n".join(scripts) + "\n",
                    what="; ".join(c.action + " " + c.resource for c in changes if c.script))
        objects = self.objects(args)
        seen = {}
        if args.get("state") == "present" and (args.get("wait") or "none") != "none":
            seen = wait_for(args, objects, ctx)
        return TaskResult(changed=bool(scripts),
                          msg=f"{len(scripts)} object(s) created/updated/deleted" if scripts else "",
                          data={"objects": [describe(o) for o in objects], "status": seen})


def wait_for(args: dict, objects: list[dict], ctx: TaskContext) -> dict[str, str]:
    """Poll until every object is ready/complete; progress on every change of what
    is seen; a failure or the timeout raises a ModuleError with the pods' state."""
    mode = args.get("wait") or "ready"
    timeout = float(args.get("wait_timeout") or 300)
    interval = max(float(args.get("wait_interval") or 2), 0.2)
    start = time.monotonic()
    last_shown: dict[str, tuple[str, float]] = {}
    seen: dict[str, str] = {}
    while True:
        live = {key(o): o for o in parse_get(ctx.transport.read_many(get_probes(args, objects, "wait")),
                                              ctx.host.name, ctx.task_name)}
        pending = []
        for obj in objects:
            current = live.get(key(obj))
            state, what = readiness(current, mode)
            seen[describe(obj)] = what
            if state == "failed":
                raise ModuleError(f"{describe(obj)} failed: {what}{_pods_report(args, obj, current, ctx)}",
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
                              f"last seen {what}{others}{_pods_report(args, obj, current, ctx)}",
                              host=ctx.host.name, task=ctx.task_name,
                              fix="fix what the pods report (image, node labels, host packages), "
                                  "or raise wait_timeout; re-running apply continues from here")
        time.sleep(min(interval, max(timeout - (now - start), 0.1)))


def _pods_report(args: dict, obj: dict, current: dict | None, ctx: TaskContext) -> str:
    """The pods behind an object, one line each (best effort: diagnostics only)."""
    if current is None:
        return ""
    if obj["kind"] == "Pod":
        return "\n  " + pod_summary(current)
    selector = pod_selector(current)
    if not selector:
        return ""
    cmd = qjoin(kubectl_argv(args) + ["get", "pods", *_ns_args(namespace_of(obj)), "-l", selector, "-o", "json"])
    try:
        result = ctx.transport.run(cmd, kind="read")
        pods = manifests.flatten(json.loads(result.stdout)) if result.rc == 0 and result.stdout.strip() else []
    except Exception:  # noqa: BLE001 - a diagnostic must not hide the real error
        return ""
    if not pods:
        return f"\n  no pods match {selector}"
    return "".join("\n  " + pod_summary(p) for p in pods[:10])


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
        return {"nodes": qjoin(kubectl_argv(args) + ["get", "nodes", "-o", "json"])}

    def read(self, args, facts, ctx):
        return {"nodes": parse_get(facts, ctx.host.name, ctx.task_name)}

    def plan(self, args, state, host):
        nodes = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in (state or {}).get("nodes", [])}
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
                                          diff="\n".join(f"label {k}: {current[k]} -> {ABSENT}" for k in drop),
                                          script=qjoin(kubectl_argv(args) + ["label", "node", node,
                                                                              *[f"{k}-" for k in drop]])))
                continue
            want = {k: str(v) for k, v in args["labels"].items() if current.get(k) != str(v)}
            if want:
                changes.append(Change(CHANGE, f"node {node} label " + " ".join(f"{k}={v}" for k, v in want.items()),
                                      diff="\n".join(f"label {k}: {current.get(k, ABSENT)} -> {v}"
                                                     for k, v in want.items()),
                                      script=qjoin(kubectl_argv(args) + ["label", "node", node,
                                                                          *[f"{k}={v}" for k, v in want.items()],
                                                                          "--overwrite"])))
        return changes


class KubernetesDelete(Module):
    """Delete what a label selector matches (e.g. the heketi bootstrap), except ``keep``.

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
        return {"matching": qjoin(kubectl_argv(args) + ["get", ",".join(args["kinds"]), "-n", args["namespace"],
                                                        "--selector", str(args["selector"]), "-o", "json"])}

    def read(self, args, facts, ctx):
        return {"live": parse_get(facts, ctx.host.name, ctx.task_name)}

    def plan(self, args, state, host):
        doomed, seen = [], set()
        for obj in (state or {}).get("live", []):
            meta = obj.get("metadata") or {}
            if key(obj) in seen or meta.get("ownerReferences") or meta.get("name") in (args.get("keep") or []):
                continue
            seen.add(key(obj))
            doomed.append(obj)
        if not doomed:
            return []
        changes = [Change(DESTROY, f"kubernetes {describe(o)}", data={"object": o}) for o in doomed]
        changes[0].script = qjoin(kubectl_argv(args) + ["delete", *[ref(o) for o in doomed],
                                                        "-n", args["namespace"], "--ignore-not-found"])
        return changes


class KubernetesFacts(Module):
    """Read the cluster: server version (refusing >= 1.26), nodes, a Service's ClusterIP."""

    cheap_reads = False  # every probe is a kubectl process
    name = "kubernetes_facts"
    read_only = True
    params = {
        "service": Param(check="k8s_name", help="Service whose ClusterIP to report"),
        "namespace": Param(default="default", check="k8s_name"),
        **_KUBECTL,
    }

    def resources(self, args: dict) -> set[str]:
        return {"kubernetes"}

    def probes(self, args, host):
        probes = {"version": qjoin(kubectl_argv(args) + ["version", "-o", "json"]),
                  "nodes": qjoin(kubectl_argv(args) + ["get", "nodes", "-o", "json"])}
        if args.get("service"):
            probes["service"] = qjoin(kubectl_argv(args) + ["get", "service/" + args["service"], "-n",
                                                            args["namespace"], "-o", "json", "--ignore-not-found"])
        return probes

    def read(self, args, facts, ctx):
        version = facts["version"]
        try:
            server = json.loads(version.stdout).get("serverVersion")
        except (json.JSONDecodeError, AttributeError):
            server = None
        if not server:
            raise ModuleError(f"kubectl version did not report the server's version (exit {version.rc}): "
                              f"{version.stderr.strip()[-1500:]}", host=ctx.host.name, task=ctx.task_name,
                              fix="check that kubectl on the master reaches the API server")
        rest = {k: v for k, v in facts.items() if k != "version"}
        live = parse_get(rest, ctx.host.name, ctx.task_name)
        state = {"server": server,
                 "nodes": [o for o in live if o.get("kind") == "Node"],
                 "service": next((o for o in live if o.get("kind") == "Service"), None)}
        self._state = state
        return state

    def plan(self, args, state, host):
        manifests.check_supported(state["server"])  # raises the refusal on >= 1.26
        return []

    def facts(self, args, state, *, check_mode: bool = False, host: str = "") -> dict:
        """The registered value: version, minor, nodes, node_labels, cluster_ip."""
        minor = manifests.check_supported(state["server"])
        service = state.get("service")
        cluster_ip = (service or {}).get("spec", {}).get("clusterIP")
        if args.get("service") and not cluster_ip:
            if not check_mode:
                raise ModuleError(f"Service {args['namespace']}/{args['service']} not found (or has no ClusterIP)",
                                  host=host, fix="create the Service first (task order), then read its facts")
            from gfsdeploy.templating import Unknown

            cluster_ip = Unknown()  # later tasks using it are planned "(known after apply)"
        nodes = state.get("nodes") or []
        return {"version": state["server"].get("gitVersion", ""), "minor": minor,
                "nodes": [n["metadata"]["name"] for n in nodes],
                "node_labels": {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes},
                "cluster_ip": cluster_ip}

    def apply(self, args, changes, ctx):
        state = getattr(self, "_state", None)
        if state is None:
            state = self.read(args, ctx.transport.read_many(self.probes(args, ctx.host)), ctx)
        return TaskResult(changed=False, data=self.facts(args, state, check_mode=ctx.check_mode,
                                                         host=ctx.host.name))
