"""Defaulting and validation done by the SIMULATED API server before storing.

Mirrors what the real apiserver does that kubectl users notice: generated
names, ClusterIP allocation (immutable, kept on replace when omitted),
Secret stringData/base64, Job selector/labels, immutable fields -> 422.
"""
from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import random
import re
import uuid

from .store import ApiError, invalid

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


class Admission:
    def __init__(self, store, service_cidr: str):
        self.store = store
        self.cidr = ipaddress.ip_network(service_cidr, strict=False)

    # --- create ----------------------------------------------------------
    def on_create(self, res, ns: str, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        name = meta.get("name") or ""
        if not name:
            raise invalid(res, "", [("metadata.name", "Required value: name or generateName is required")])
        if not NAME_RE.match(name) or len(name) > 253:
            raise invalid(res, name, [("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                                                         "subdomain must consist of lower case alphanumeric "
                                                         "characters, '-' or '.'")])
        if meta.get("namespace") and res.namespaced and meta["namespace"] != ns:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                              "namespace sent on the request")
        meta.pop("resourceVersion", None)
        meta.pop("uid", None)
        if not res.namespaced:
            meta.pop("namespace", None)
        fn = getattr(self, f"_default_{res.plural}", None)
        if fn:
            fn(res, obj, None)
        return obj

    # --- update ----------------------------------------------------------
    def on_update(self, res, ns: str, obj: dict, old: dict, subresource: str | None) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") != old["metadata"]["name"]:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if subresource == "status":
            # a status write keeps everything but status
            keep = copy.deepcopy(old)
            keep["status"] = obj.get("status", {})
            keep["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            return keep
        if "status" in old and res.plural not in ("namespaces",):
            obj["status"] = copy.deepcopy(old["status"])     # main resource ignores status changes
        fn = getattr(self, f"_default_{res.plural}", None)
        if fn:
            fn(res, obj, old)
        return obj

    # --- per kind --------------------------------------------------------
    def _default_namespaces(self, res, obj, old):
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {"phase": "Active"})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def _default_pods(self, res, obj, old):
        spec = obj.setdefault("spec", {})
        if old is not None:
            for f in ("containers", "volumes", "nodeName", "restartPolicy"):
                if f in old.get("spec", {}) and spec.get(f) != old["spec"][f] and f != "containers":
                    raise invalid(res, obj["metadata"]["name"],
                                  [("spec", "Forbidden: pod updates may not change fields other than "
                                            "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, "
                                            "`spec.tolerations` (only additions to existing tolerations)")])
            return
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
        spec.setdefault("terminationGracePeriodSeconds", 30)
        for v in spec.get("volumes") or []:
            if len(v) == 1:
                v["emptyDir"] = {}
        for c in spec.get("containers") or []:
            c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
        if not spec.get("containers"):
            raise invalid(res, obj["metadata"]["name"], [("spec.containers", "Required value")])
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    def _default_services(self, res, obj, old):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if p.get("targetPort") in (None, 0, ""):   # unset, 0 or "": the port itself (API server default)
                p["targetPort"] = p.get("port")
        name = obj["metadata"]["name"]
        if old is not None:
            was = old["spec"].get("clusterIP")
            if not spec.get("clusterIP"):
                spec["clusterIP"] = was
            elif spec["clusterIP"] != was:
                raise invalid(res, name, [("spec.clusterIP", f'Invalid value: "{spec["clusterIP"]}": '
                                                             "field is immutable")])
            spec["clusterIPs"] = old["spec"].get("clusterIPs", [was])
            return
        want = spec.get("clusterIP")
        if want == "None":
            spec["clusterIPs"] = ["None"]
        else:
            spec["clusterIP"] = self._allocate_ip(res, name, want)
            spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        obj["status"] = {"loadBalancer": {}}

    def _allocate_ip(self, res, name, want: str | None) -> str:
        used, _ = self.store.list("services")
        taken = {s["spec"].get("clusterIP") for s in used}
        if want:
            try:
                addr = ipaddress.ip_address(want)
            except ValueError:
                raise invalid(res, name, [("spec.clusterIP", f'Invalid value: "{want}": must be a valid IP '
                                                             "address")]) from None
            if addr not in self.cidr:
                raise invalid(res, name, [("spec.clusterIPs", f'Invalid value: []string{{"{want}"}}: failed '
                                                              f"to allocate IP {want}: the provided IP "
                                                              f"({want}) is not in the valid range. The range "
                                                              f"of valid IPs is {self.cidr}")])
            if want in taken:
                raise invalid(res, name, [("spec.clusterIPs", f'Invalid value: []string{{"{want}"}}: failed '
                                                              f"to allocate IP {want}: provided IP is already "
                                                              "allocated")])
            return want
        hosts = list(self.cidr.hosts())
        for addr in hosts[1:]:      # .1 is the kubernetes service itself
            if str(addr) not in taken:
                return str(addr)
        raise ApiError(500, "InternalError", "Internal error occurred: failed to allocate a serviceIP: "
                                             "range is full")

    def _default_secrets(self, res, obj, old):
        obj.setdefault("type", "Opaque")
        data = obj.setdefault("data", {}) if ("data" in obj or "stringData" in obj) else None
        for key, val in (obj.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(str(val).encode()).decode()
        for key, val in (data or {}).items():
            try:
                base64.b64decode(val, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "BadRequest", f"illegal base64 data at input byte 0 (data.{key})") from None
        if obj.get("immutable") and old is not None and old.get("data") != obj.get("data"):
            raise invalid(res, obj["metadata"]["name"], [("data", "Forbidden: field is immutable when "
                                                                  "`immutable` is set")])

    def _default_configmaps(self, res, obj, old):
        pass

    def _default_persistentvolumeclaims(self, res, obj, old):
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        if old is not None:
            spec.setdefault("volumeName", old["spec"].get("volumeName"))
            if old["spec"].get("storageClassName") != spec.get("storageClassName"):
                raise invalid(res, obj["metadata"]["name"], [("spec", "Forbidden: spec is immutable after "
                                                                      "creation except resources.requests "
                                                                      "for bound claims")])
            return
        obj["status"] = {"phase": "Pending"}

    def _default_persistentvolumes(self, res, obj, old):
        obj.setdefault("spec", {}).setdefault("persistentVolumeReclaimPolicy", "Retain")
        if old is None:
            obj["status"] = {"phase": "Available"}

    def _default_storageclasses(self, res, obj, old):
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
        if old is not None:
            for f in ("parameters", "provisioner", "reclaimPolicy", "volumeBindingMode"):
                if obj.get(f) != old.get(f):
                    raise invalid(res, obj["metadata"]["name"], [(f, "Forbidden: updates to "
                                                                     f"{f} are forbidden.")])

    def _default_deployments(self, res, obj, old):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        self._workload_selector(res, obj, old)
        if old is None:
            obj["status"] = {}

    def _default_daemonsets(self, res, obj, old):
        spec = obj.setdefault("spec", {})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})
        self._workload_selector(res, obj, old)
        if old is None:
            obj["status"] = {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                             "numberMisscheduled": 0, "numberReady": 0}

    def _default_replicasets(self, res, obj, old):
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        self._workload_selector(res, obj, old)
        if old is None:
            obj["status"] = {"replicas": 0}

    def _workload_selector(self, res, obj, old):
        spec = obj["spec"]
        tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        name = obj["metadata"]["name"]
        if not spec.get("selector"):
            if res.group == "extensions" and tmpl_labels:
                spec["selector"] = {"matchLabels": dict(tmpl_labels)}
            elif old is not None:
                spec["selector"] = old["spec"].get("selector")
            else:
                raise invalid(res, name, [("spec.selector", "Required value")])
        from .store import selector_object_match
        if not selector_object_match(spec["selector"], tmpl_labels):
            raise invalid(res, name, [("spec.template.metadata.labels",
                                       f"Invalid value: {json.dumps(tmpl_labels)}: `selector` does not match "
                                       "template `labels`")])
        if old is not None and res.group == "apps" and old["spec"].get("selector") != spec["selector"]:
            raise invalid(res, name, [("spec.selector", f"Invalid value: {json.dumps(spec['selector'])}: "
                                                        "field is immutable")])

    def _default_jobs(self, res, obj, old):
        spec = obj.setdefault("spec", {})
        name = obj["metadata"]["name"]
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        tmpl = spec.setdefault("template", {})
        labels = tmpl.setdefault("metadata", {}).setdefault("labels", {})
        if old is not None:
            uid = old["metadata"]["uid"]
            spec.setdefault("selector", old["spec"].get("selector"))
        else:
            uid = obj["metadata"].get("uid") or str(uuid.uuid4())
            obj["metadata"]["uid"] = uid   # the store keeps a preset uid
        if not spec.get("manualSelector"):
            labels.setdefault("controller-uid", uid)
            labels.setdefault("job-name", name)
            spec.setdefault("selector", {"matchLabels": {"controller-uid": uid}})
        rp = (tmpl.get("spec") or {}).get("restartPolicy")
        if rp not in ("Never", "OnFailure"):
            raise invalid(res, name, [("spec.template.spec.restartPolicy",
                                       f'Unsupported value: "{rp or "Always"}": supported values: '
                                       '"OnFailure", "Never"')])
        if old is not None:
            if old["spec"].get("template") != spec.get("template"):
                raise invalid(res, name, [("spec.template", "Invalid value: core.PodTemplateSpec{...}: "
                                                            "field is immutable")])
            if old["spec"].get("selector") != spec.get("selector"):
                raise invalid(res, name, [("spec.selector", "Invalid value: field is immutable")])
        else:
            obj["status"] = {}
