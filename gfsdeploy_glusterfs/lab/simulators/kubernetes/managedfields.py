"""Field ownership (``metadata.managedFields``) and server-side apply of the SIMULATED API server.

What the real server does and kubectl users notice, for the object kinds the lab
uses:

- every write records which *manager* (``?fieldManager=``, e.g. ``kubectl-create``,
  ``gfsdeploy``) set which fields, as ``fieldsV1`` trees (``f:`` field, ``k:`` list
  item by key, ``v:`` set member, ``.`` the item itself);
- ``PATCH`` with ``application/apply-patch+yaml`` (server-side apply) merges the
  applied configuration into the live object, **removes fields the manager applied
  before and no longer applies** (unless another manager owns them), and refuses
  with 409 to change a value another manager owns unless ``force=true``, which
  takes the field over;
- an object without managedFields (made before server-side apply existed) gets a
  ``before-first-apply`` manager owning everything at its first apply;
- a write that sets ``metadata.managedFields`` explicitly replaces them (``[{}]``
  clears them).

The schema knowledge (which lists are maps keyed by a field, which fields are
atomic) is a small table: enough for Pods, workloads, Services, Secrets,
ConfigMaps, RBAC, StorageClasses and PVCs.
"""
from __future__ import annotations

import copy
import json

from .store import ApiError, now

#: lists that are maps keyed by these fields (when present in the item)
LIST_KEYS = {
    "containers": ("name",), "initContainers": ("name",), "ephemeralContainers": ("name",),
    "env": ("name",), "volumes": ("name",), "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",), "imagePullSecrets": ("name",), "hostAliases": ("ip",),
    "conditions": ("type",), "ownerReferences": ("uid",),
    "ports": ("containerPort", "port", "protocol"),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
#: key fields the server defaults, so an applied item without them still matches
KEY_DEFAULTS = {"protocol": "TCP"}
#: lists of unique scalars
SET_LISTS = {"finalizers"}
#: fields owned and replaced as a whole (label selectors, nodeSelector)
ATOMIC = {"selector", "nodeSelector"}
#: top-level metadata fields that are tracked
TRACKED_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")
BEFORE_FIRST_APPLY = "before-first-apply"


# --- paths -----------------------------------------------------------------------

def _key_of(item: dict, keys: tuple) -> dict:
    found = {k: item[k] for k in keys if k in item}
    for k, default in KEY_DEFAULTS.items():
        if k in keys and k not in found and len(found) >= 1:
            found[k] = default
    return found


def _key_element(item: dict, keys: tuple) -> str:
    return "k:" + json.dumps(_key_of(item, keys), sort_keys=True, separators=(",", ":"))


def _is_assoc(name: str | None, value: list) -> tuple | None:
    keys = LIST_KEYS.get(name or "")
    if keys and value and all(isinstance(i, dict) and _key_of(i, keys) for i in value):
        return keys
    return None


def fieldset(value, path: tuple = (), name: str | None = None) -> set[tuple]:
    """The paths a value sets: leaves, list items (by key) and their fields."""
    if name in ATOMIC or not isinstance(value, (dict, list)):
        return {path}
    if isinstance(value, dict):
        if not value:
            return {path}
        out: set[tuple] = set()
        for k, v in value.items():
            out |= fieldset(v, path + ("f:" + k,), k)
        return out
    if name in SET_LISTS:
        return {path + ("v:" + json.dumps(v, separators=(",", ":")),) for v in value} or {path}
    keys = _is_assoc(name, value)
    if not keys:
        return {path}
    out = set()
    for item in value:
        item_path = path + (_key_element(item, keys),)
        out.add(item_path)
        for k, v in item.items():
            out |= fieldset(v, item_path + ("f:" + k,), k)
    return out


def object_fieldset(obj: dict) -> set[tuple]:
    """What an object (a request body or an applied configuration) sets, as paths."""
    out: set[tuple] = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "status"):
            continue
        if k == "metadata":
            for mk in TRACKED_METADATA:
                if mk in (v or {}):
                    out |= fieldset(v[mk], ("f:metadata", "f:" + mk), mk)
            continue
        out |= fieldset(v, ("f:" + k,), k)
    return out


def encode(paths: set[tuple]) -> dict:
    """Paths -> a fieldsV1 tree."""
    tree: dict = {}
    owned = set(paths)
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    def mark(node: dict, prefix: tuple):
        for element, child in node.items():
            if element == ".":
                continue
            p = prefix + (element,)
            if child:
                mark(child, p)
                if p in owned:
                    child["."] = {}
    mark(tree, ())
    return tree


def decode(tree: dict, prefix: tuple = ()) -> set[tuple]:
    """A fieldsV1 tree -> paths."""
    out: set[tuple] = set()
    for element, child in (tree or {}).items():
        if element == ".":
            out.add(prefix)
        elif not child:
            out.add(prefix + (element,))
        else:
            out |= decode(child, prefix + (element,))
    return out


def _find_item(items: list, element: str) -> int | None:
    if element.startswith("k:"):
        want = json.loads(element[2:])
        for i, item in enumerate(items):
            if isinstance(item, dict) and _key_of(item, tuple(want)) == want:
                return i
        return None
    if element.startswith("v:"):
        want = json.loads(element[2:])
        return items.index(want) if want in items else None
    if element.startswith("i:"):
        i = int(element[2:])
        return i if i < len(items) else None
    return None


_MISSING = object()


def get_at(obj, path: tuple):
    cur = obj
    for element in path:
        if element.startswith("f:") and isinstance(cur, dict):
            cur = cur.get(element[2:], _MISSING)
        elif isinstance(cur, list):
            i = _find_item(cur, element)
            cur = cur[i] if i is not None else _MISSING
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def remove_at(obj, path: tuple) -> None:
    if not path:
        return
    parent = get_at(obj, path[:-1])
    last = path[-1]
    if isinstance(parent, dict) and last.startswith("f:"):
        parent.pop(last[2:], None)
    elif isinstance(parent, list):
        i = _find_item(parent, last)
        if i is not None:
            parent.pop(i)


def show(path: tuple) -> str:
    """A path as the real server prints it in conflicts: ``.spec.containers[name="x"].image``."""
    out = ""
    for element in path:
        if element.startswith("f:"):
            out += "." + element[2:]
        elif element.startswith("k:"):
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(element[2:]).items()) + "]"
        else:
            out += "[" + element[2:] + "]"
    return out


# --- merging -----------------------------------------------------------------------

def merge(live, applied, name: str | None = None):
    """Server-side apply's merge: maps field by field, keyed lists item by item,
    everything else (scalars, atomic lists and maps) replaced."""
    if name in ATOMIC or not isinstance(applied, (dict, list)):
        return copy.deepcopy(applied)
    if isinstance(applied, dict):
        out = copy.deepcopy(live) if isinstance(live, dict) else {}
        for k, v in applied.items():
            out[k] = merge(out.get(k), v, k)
        return out
    if name in SET_LISTS:
        out = list(live) if isinstance(live, list) else []
        return out + [copy.deepcopy(v) for v in applied if v not in out]
    keys = _is_assoc(name, applied)
    if not keys or not isinstance(live, list):
        return copy.deepcopy(applied)
    out = copy.deepcopy(live)
    for item in applied:
        i = _find_item(out, _key_element(item, keys))
        if i is None:
            out.append(copy.deepcopy(item))
        else:
            out[i] = merge(out[i], item, None)
    return out


# --- managedFields entries -------------------------------------------------------------

def entries(obj: dict) -> list[dict]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def owners(obj: dict) -> dict[tuple[str, str], set[tuple]]:
    """(manager, operation) -> paths, from the object's managedFields."""
    out: dict = {}
    for e in entries(obj):
        if not e or e.get("subresource"):
            continue
        out[(e.get("manager", ""), e.get("operation", "Update"))] = decode(e.get("fieldsV1") or {})
    return out


def set_owners(obj: dict, table: dict, api_version: str, previous: list[dict]) -> None:
    stamps = {(e.get("manager"), e.get("operation")): (e.get("time"), decode(e.get("fieldsV1") or {}))
              for e in previous if e and not e.get("subresource")}
    keep = [e for e in previous if e and e.get("subresource")]
    out = []
    for (manager, operation), paths in table.items():
        if not paths:
            continue
        entry = {"manager": manager, "operation": operation, "apiVersion": api_version,
                 "time": _stamp(stamps.get((manager, operation)), paths), "fieldsType": "FieldsV1",
                 "fieldsV1": encode(paths)}
        out.append(entry)
    obj.setdefault("metadata", {})["managedFields"] = out + keep


def _stamp(before: tuple | None, paths: set) -> str:
    """An entry's time changes only when what it owns does (a no-op apply changes nothing)."""
    return before[0] if before and before[1] == paths and before[0] else now()


def _prune(table: dict, obj: dict) -> dict:
    return {who: {p for p in paths if get_at(obj, p) is not _MISSING} for who, paths in table.items()}


def explicit(old: dict | None, new: dict) -> list[dict] | None:
    """managedFields a write sets on purpose (None: it did not touch them)."""
    given = (new.get("metadata") or {}).get("managedFields")
    if given is None or (old is not None and given == entries(old)):
        return None
    return [e for e in given if e]


def _changed(old: dict, new: dict, path: tuple) -> bool:
    if path and path[-1].startswith("k:"):   # a keyed item is "set" when it appears
        return get_at(old, path) is _MISSING
    return get_at(old, path) != get_at(new, path)


def track_update(old: dict | None, new: dict, manager: str | None, api_version: str) -> None:
    """A create/update/patch by ``manager`` owns the fields it set or changed."""
    given = explicit(old, new)
    if given is not None:
        new["metadata"]["managedFields"] = given
        return
    previous = entries(old) if old is not None else []
    if not manager:
        new["metadata"]["managedFields"] = previous
        return
    if old is not None and not previous:
        new["metadata"]["managedFields"] = []   # the server does not track until the first apply
        return
    table = owners(old) if old is not None else {}
    changed = {p for p in object_fieldset(new) if old is None or _changed(old, new, p)}
    for who in table:
        table[who] = table[who] - changed
    table[(manager, "Update")] = table.get((manager, "Update"), set()) | changed
    set_owners(new, _prune(table, new), api_version, previous)


def apply(live: dict | None, applied: dict, manager: str, force: bool, api_version: str) -> dict:
    """Server-side apply of ``applied`` by ``manager`` onto ``live`` (None: create).

    Returns the object to store (defaulting and validation still to come)."""
    applied = copy.deepcopy(applied)
    applied.get("metadata", {}).pop("managedFields", None)
    new_set = object_fieldset(applied)
    if live is None:
        obj = copy.deepcopy(applied)
        set_owners(obj, {(manager, "Apply"): new_set}, api_version, [])
        return obj
    table = owners(live)
    if not entries(live):
        table = {(BEFORE_FIRST_APPLY, "Update"): object_fieldset(live)}
    mine = (manager, "Apply")
    old_set = table.get(mine, set())
    conflicts = []
    for path in sorted(new_set):
        if any(p[:len(path)] == path and p != path for p in new_set):
            continue   # not a leaf of what is applied
        want, have = get_at(applied, path), get_at(live, path)
        if have is _MISSING or want == have:
            continue
        for who, paths in table.items():
            if who != mine and path in paths:
                conflicts.append((who, path))
    if conflicts and not force:
        if len(conflicts) == 1:
            (who, _), path = conflicts[0]
            text = f'Apply failed with 1 conflict: conflict with "{who}" using {api_version}: {show(path)}'
        else:
            text = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(
                f'conflict with "{who}" using {api_version}: {show(p)}' for (who, _), p in conflicts)
        raise ApiError(409, "Conflict", text,
                       {"causes": [{"reason": "FieldManagerConflict", "field": show(p),
                                    "message": f'conflict with "{who}" using {api_version}'}
                                   for (who, _), p in conflicts]})
    for who, path in conflicts:
        table[who] = {p for p in table[who] if p[:len(path)] != path}
    others = set().union(*[paths for who, paths in table.items() if who != mine])
    obj = copy.deepcopy(live)
    for path in sorted(old_set - new_set, key=len):
        if path in others or any(p[:len(path)] == path for p in others):
            continue
        remove_at(obj, path)
    obj = merge(obj, {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")})
    table[mine] = new_set
    set_owners(obj, _prune(table, obj), api_version, entries(live))
    return obj
