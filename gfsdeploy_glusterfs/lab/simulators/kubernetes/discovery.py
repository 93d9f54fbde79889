"""Resource table and discovery documents of the Kubernetes API server SIMULATOR.

Only legacy discovery (APIVersions, APIGroupList, APIResourceList) is served;
aggregated discovery is answered with the legacy document (plain
application/json), which kubectl accepts and falls back on.
Group/versions are gated on the simulated Kubernetes version like the real
server: extensions/v1beta1 workloads only < 1.16, storage.k8s.io/v1beta1 < 1.22.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str          # "" for core
    version: str
    kind: str
    plural: str         # also the storage key: one store per plural
    namespaced: bool
    short: tuple = ()
    categories: tuple = ()
    subresources: tuple = ()   # e.g. ("status", "log")
    min_version: tuple = (1, 0)
    max_version: tuple = (99, 0)   # exclusive

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """Name used in Status messages: 'deployments.apps', 'pods'."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()


_ALL = ("all",)
RESOURCES: list[Resource] = [
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",), subresources=("status",)),
    Resource("", "v1", "Node", "nodes", False, ("no",), subresources=("status",)),
    Resource("", "v1", "Pod", "pods", True, ("po",), _ALL, ("status", "log", "exec")),
    Resource("", "v1", "Service", "services", True, ("svc",), _ALL, ("status",)),
    Resource("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), subresources=("status",)),
    Resource("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), subresources=("status",)),
    Resource("", "v1", "Event", "events", True, ("ev",)),
    Resource("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), _ALL, ("status",), (1, 9)),
    Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",), _ALL, ("status",), (1, 9)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), _ALL, ("status",), (1, 9)),
    Resource("extensions", "v1beta1", "DaemonSet", "daemonsets", True, ("ds",), _ALL, ("status",), max_version=(1, 16)),
    Resource("extensions", "v1beta1", "Deployment", "deployments", True, ("deploy",), _ALL, ("status",), max_version=(1, 16)),
    Resource("extensions", "v1beta1", "ReplicaSet", "replicasets", True, ("rs",), _ALL, ("status",), max_version=(1, 16)),
    Resource("batch", "v1", "Job", "jobs", True, (), _ALL, ("status",)),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False, min_version=(1, 8)),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, min_version=(1, 8)),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, min_version=(1, 8)),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", True, min_version=(1, 8)),
    Resource("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",), min_version=(1, 6)),
    Resource("storage.k8s.io", "v1beta1", "StorageClass", "storageclasses", False, ("sc",), max_version=(1, 22)),
]


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.lstrip("v").split("-")[0].split(".")
    nums = [int(p) for p in parts] + [0, 0, 0]
    return nums[0], nums[1], nums[2]


# what discovery says of a subresource that is not the object itself: (kind, verbs)
SUBRESOURCE_SHAPE = {"log": ("Pod", ["get"]), "exec": ("PodExecOptions", ["create", "get"])}


@dataclass

class Discovery:
    """The resource set served for one simulated Kubernetes version."""
    version: str
    resources: list[Resource] = field(default_factory=list)

    def __post_init__(self):
        v = parse_version(self.version)[:2]
        self.resources = [r for r in RESOURCES if r.min_version <= v < r.max_version]

    def find(self, group: str, version: str, plural: str) -> Resource | None:
        for r in self.resources:
            if r.group == group and r.version == version and r.plural == plural:
                return r
        return None

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        for r in self.resources:
            if r.group_version == api_version and r.kind == kind:
                return r
        return None

    def preferred(self, plural: str) -> Resource:
        """The resource used internally for a storage key (first = preferred)."""
        return next(r for r in self.resources if r.plural == plural)

    def group_versions(self, group: str) -> list[str]:
        seen = []
        for r in self.resources:
            if r.group == group and r.version not in seen:
                seen.append(r.version)
        return seen

    def groups(self) -> list[str]:
        seen = []
        for r in self.resources:
            if r.group and r.group not in seen:
                seen.append(r.group)
        return seen

    # --- documents -------------------------------------------------------
    def version_doc(self) -> dict:
        major, minor, patch = parse_version(self.version)
        return {
            "major": str(major), "minor": str(minor),
            "gitVersion": f"v{major}.{minor}.{patch}",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": "gfsdeploy-simulator",
            "compiler": "gc",
            "platform": "linux/amd64 (gfsdeploy kubernetes-apiserver-simulator)",
        }

    def api_versions(self, server_ip: str) -> dict:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_ip}]}

    def api_group(self, group: str) -> dict:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.group_versions(group)]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions,
                "preferredVersion": versions[0]}

    def api_group_list(self) -> dict:
        groups = [self.api_group(g) for g in self.groups()]
        for g in groups:
            del g["kind"], g["apiVersion"]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict | None:
        rs = [r for r in self.resources if r.group == group and r.version == version]
        if not rs:
            return None
        out = []
        for r in rs:
            entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                     "kind": r.kind, "verbs": VERBS}
            if r.short:
                entry["shortNames"] = list(r.short)
            if r.categories:
                entry["categories"] = list(r.categories)
            out.append(entry)
            for sub in r.subresources:
                kind, verbs = SUBRESOURCE_SHAPE.get(sub, (r.kind, ["get", "patch", "update"]))
                out.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                            "kind": kind, "verbs": verbs})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}

    # --- OpenAPI v3 ------------------------------------------------------
    # Just enough for kubectl's field-validation check: a PATCH operation per
    # kind declaring the `fieldValidation` query parameter, so kubectl leaves
    # validation to the server (which accepts unknown fields: not checked here)
    # instead of downloading full schemas. No --validate=false needed; `kind: List`
    # files are validated client-side against /openapi/v2 (see protobuf.py).
    def openapi_v3_root(self) -> dict:
        paths = {}
        gvs = [("", "v1")] + [(g, v) for g in self.groups() for v in self.group_versions(g)]
        for group, version in gvs:
            key = f"apis/{group}/{version}" if group else f"api/{version}"
            doc = json.dumps(self.openapi_v3_gv(group, version), sort_keys=True).encode()
            # kubectl caches these documents on disk by this hash: it must change with the content
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={hashlib.sha512(doc).hexdigest()[:64]}"}
        return {"paths": paths}

    def openapi_v3_gv(self, group: str, version: str) -> dict | None:
        rs = [r for r in self.resources if r.group == group and r.version == version]
        if not rs:
            return None
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        paths = {}
        for r in rs:
            item = f"{prefix}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced \
                else f"{prefix}/{r.plural}/{{name}}"
            gvk = {"group": r.group, "version": r.version, "kind": r.kind}
            op = {"operationId": f"patch{r.kind}", "parameters": params,
                  "responses": {"200": {"description": "OK"}},
                  "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk}
            paths[item] = {"patch": op}
        return {"openapi": "3.0.0",
                "info": {"title": "Kubernetes API (gfsdeploy simulator)", "version": f"v{self.version}"},
                "paths": paths, "components": {"schemas": {}}}
