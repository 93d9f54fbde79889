"""The SIMULATED API server's verbs (create/get/list/replace/patch/delete), used by
the HTTP layer and by the simulated controllers alike, so both go through the
same admission (defaulting, validation, immutable fields)."""
from __future__ import annotations

import copy
import json

import yaml

from . import managedfields

from .admission import Admission
from .discovery import Discovery
from .store import ApiError, Store, json_patch, merge_patch, now


class Api:
    def __init__(self, version: str, service_cidr: str):
        self.discovery = Discovery(version)
        self.store = Store()
        self.admission = Admission(self.store, service_cidr)
        self.faults: dict = {}
        self.log = lambda msg: None

    def res(self, plural: str):
        return self.discovery.preferred(plural)

    # --- verbs -----------------------------------------------------------
    # ``manager``: the field manager a client names (``?fieldManager=``); None for the
    # simulated controllers, whose writes are not tracked. ``dry_run``: validate and
    # return what would be stored, store nothing (``?dryRun=All``).
    def create(self, res, ns: str, obj: dict, *, manager: str | None = None, dry_run: bool = False) -> dict:
        with self.store.cond:     # admission + store in one step (ClusterIP allocation must not race)
            return self._create(res, ns, obj, manager, dry_run)

    def _create(self, res, ns: str, obj: dict, manager: str | None = None, dry_run: bool = False) -> dict:
        if res.namespaced and res.plural != "namespaces" and not self.store.find("namespaces", "", ns):
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})
        obj = self.admission.on_create(res, ns if res.namespaced else "", obj)
        if manager or (obj.get("metadata") or {}).get("managedFields") is not None:
            managedfields.track_update(None, obj, manager, res.group_version)
        return self.store.create(res, ns if res.namespaced else "", obj, dry_run=dry_run)

    def replace(self, res, ns: str, name: str, obj: dict, sub: str | None = None, *,
                manager: str | None = None, dry_run: bool = False) -> dict:
        with self.store.cond:
            return self._replace(res, ns, name, obj, sub, manager, dry_run)

    def _replace(self, res, ns: str, name: str, obj: dict, sub: str | None = None,
                 manager: str | None = None, dry_run: bool = False) -> dict:
        ns = ns if res.namespaced else ""
        old = self.store.get(res, ns, name)
        obj.setdefault("metadata", {}).setdefault("name", name)
        if "managedFields" not in obj["metadata"] and sub != "status":
            obj["metadata"]["managedFields"] = copy.deepcopy(old["metadata"].get("managedFields") or [])
        new = self.admission.on_update(res, ns, obj, old, sub)
        if sub != "status":
            managedfields.track_update(old, new, manager, res.group_version)
        return self.store.update(res, ns, new, dry_run=dry_run)

    def patch(self, res, ns: str, name: str, body: bytes, ctype: str, sub: str | None = None, *,
              manager: str | None = None, force: bool = False, dry_run: bool = False) -> dict:
        with self.store.cond:
            return self._patch(res, ns, name, body, ctype, sub, manager, force, dry_run)

    def _patch(self, res, ns: str, name: str, body: bytes, ctype: str, sub: str | None = None,
               manager: str | None = None, force: bool = False, dry_run: bool = False) -> dict:
        ns = ns if res.namespaced else ""
        if "apply-patch" in ctype:
            return self._apply(res, ns, name, body, manager, force, dry_run)
        old = self.store.get(res, ns, name)
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"error decoding patch: {exc}") from None
        if "json-patch" in ctype:
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "the server rejected our request due to an error in our "
                                                  "request: json patch must be a list")
            new = json_patch(old, patch)
        elif "merge-patch" in ctype:
            new = merge_patch(old, patch, strategic="strategic" in ctype)
        else:
            raise ApiError(415, "UnsupportedMediaType", self._media_types(ctype))
        if not isinstance(patch, dict) or "resourceVersion" not in (patch.get("metadata") or {}):
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = self.admission.on_update(res, ns, new, old, sub)
        if sub != "status":
            managedfields.track_update(old, new, manager, res.group_version)
        return self.store.update(res, ns, new, dry_run=dry_run)

    def _media_types(self, ctype: str) -> str:
        accepted = ["application/json-patch+json", "application/merge-patch+json",
                    "application/strategic-merge-patch+json"]
        if self.server_side_apply:
            accepted.append("application/apply-patch+yaml")
        return ("the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(accepted) + f" (got {ctype})")

    @property
    def server_side_apply(self) -> bool:
        """Server-side apply is served from Kubernetes 1.16 (beta, on by default) on."""
        from .discovery import parse_version
        return parse_version(self.discovery.version)[:2] >= (1, 16)

    def _apply(self, res, ns: str, name: str, body: bytes, manager: str | None, force: bool,
               dry_run: bool) -> dict:
        """Server-side apply (``PATCH`` with ``application/apply-patch+yaml``): create the
        object if missing, else merge what the manager applies and drop what it no longer
        applies; another manager's value is a 409 conflict unless ``force``."""
        if not self.server_side_apply:
            raise ApiError(415, "UnsupportedMediaType", self._media_types("application/apply-patch+yaml"))
        if not manager:
            raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                           "Required value: is required for apply patch")
        try:
            applied = yaml.safe_load(body or b"")
        except yaml.YAMLError as exc:
            raise ApiError(400, "BadRequest", f"error decoding YAML: {exc}") from None
        if not isinstance(applied, dict):
            raise ApiError(400, "BadRequest", "the body of an apply patch must be an object")
        if applied.get("apiVersion") != res.group_version or applied.get("kind") != res.kind:
            raise ApiError(400, "BadRequest", f"the apiVersion and kind of the applied object "
                                              f"({applied.get('apiVersion')}, {applied.get('kind')}) do not "
                                              f"match the request ({res.group_version}, {res.kind})")
        meta = applied.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        meta["name"] = name
        if res.namespaced:
            if meta.get("namespace", ns) != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
            meta["namespace"] = ns
        old = self.store.find(res.plural, ns, name)
        if old is None:
            obj = managedfields.apply(None, applied, manager, force, res.group_version)
            fields = obj["metadata"].pop("managedFields")
            if res.namespaced and res.plural != "namespaces" and not self.store.find("namespaces", "", ns):
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
            obj = self.admission.on_create(res, ns, obj)
            obj["metadata"]["managedFields"] = fields
            return self.store.create(res, ns, obj, dry_run=dry_run)
        new = managedfields.apply(old, applied, manager, force, res.group_version)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = self.admission.on_update(res, ns, new, old, None)
        return self.store.update(res, ns, new, dry_run=dry_run)

    def delete(self, res, ns: str, name: str, propagation: str = "Background", *, dry_run: bool = False) -> dict:
        with self.store.cond:
            return self._delete(res, ns, name, propagation, dry_run)

    def _delete(self, res, ns: str, name: str, propagation: str, dry_run: bool = False) -> dict:
        ns = ns if res.namespaced else ""
        gone = self.store.delete(res, ns, name, dry_run=dry_run)
        if dry_run:
            return gone
        uid = gone["metadata"]["uid"]
        if propagation == "Orphan":
            for plural in ("pods", "replicasets", "endpoints", "services"):
                for child in self.store.list(plural)[0]:
                    refs = child["metadata"].get("ownerReferences") or []
                    keep = [r for r in refs if r.get("uid") != uid]
                    if len(keep) != len(refs):
                        child["metadata"]["ownerReferences"] = keep
                        self.store.update(self.res(plural), child["metadata"].get("namespace", ""), child, False)
        if res.plural == "namespaces":
            for (plural, ons, oname) in list(self.store.objs):
                if ons == name:
                    try:
                        self.store.delete(self.res(plural), ons, oname)
                    except ApiError:
                        pass
        return gone

    # --- helpers for the simulated controllers ---------------------------
    def set_status(self, plural: str, ns: str, name: str, status: dict) -> dict | None:
        """Write status only if it changed; returns the object or None when gone."""
        res = self.res(plural)
        with self.store.cond:
            cur = self.store.find(plural, ns, name)
            if cur is None:
                return None
            if cur.get("status") == status:
                return cur
            cur["status"] = status
            return self.store.update(res, ns, cur, check_rv=False)

    def mutate(self, plural: str, ns: str, name: str, fn) -> dict | None:
        """Read-modify-write under the store lock (controllers only)."""
        res = self.res(plural)
        with self.store.cond:
            cur = self.store.find(plural, ns, name)
            if cur is None:
                return None
            new = copy.deepcopy(cur)
            fn(new)
            if new == cur:
                return cur
            return self.store.update(res, ns, new, check_rv=False)

    def event(self, obj: dict, kind: str, reason: str, message: str, etype: str = "Normal") -> None:
        """Record an Event like the real components do (kubectl describe shows them)."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        for ev in self.store.list("events", ns)[0]:
            io = ev.get("involvedObject", {})
            if io.get("uid") == meta.get("uid") and ev.get("reason") == reason and ev.get("message") == message:
                ev["count"] = ev.get("count", 1) + 1
                ev["lastTimestamp"] = now()
                self.store.update(self.res("events"), ns, ev, False)
                return
        res = self.res("events")
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": f"{meta['name']}.{abs(hash((reason, message, now()))) % 16**16:016x}",
                           "namespace": ns},
              "involvedObject": {"kind": kind, "namespace": meta.get("namespace", ""), "name": meta["name"],
                                 "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion", "v1")},
              "reason": reason, "message": message, "type": etype, "count": 1,
              "source": {"component": "gfsdeploy-simulator"},
              "firstTimestamp": now(), "lastTimestamp": now()}
        try:
            self.store.create(res, ns, ev)
        except ApiError:
            pass
        self.log(f"event {etype} {kind}/{meta['name']} {reason}: {message}")
