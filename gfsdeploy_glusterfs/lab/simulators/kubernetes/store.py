"""Object store of the Kubernetes API server SIMULATOR: CRUD, resourceVersion, watch.

One global resourceVersion counter like etcd's revision; every change is
appended to an event log so a watch can resume from any recent
resourceVersion (older ones get 410 Gone, like the real server).
"""
from __future__ import annotations

import collections
import copy
import datetime
import json
import threading
import uuid


class ApiError(Exception):
    """A failure the HTTP layer turns into a real metav1.Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict:
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out


def not_found(res, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural})


def already_exists(res, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                    {"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; causes = [(field, message)] e.g. ('spec.clusterIP', 'Invalid value: ...: field is immutable')."""
    kind = f"{res.kind}.{res.group}" if res.group else res.kind
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}',
                    {"name": name, "group": res.group, "kind": res.kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]})


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- label and field selectors ------------------------------------------------

def _split_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur.strip())
    return terms


def parse_label_selector(text: str | None) -> list[tuple[str, str, list[str]]]:
    """'a=b,c!=d,e in (x,y),f notin (z),g,!h' -> [(key, op, values)] with op in = != in notin exists !exists."""
    reqs = []
    for term in _split_terms(text or ""):
        low = term
        if " notin " in low or " notin(" in low:
            key, rest = low.split("notin", 1)
            reqs.append((key.strip(), "notin", _set_values(rest)))
        elif " in " in low or " in(" in low:
            key, rest = low.split(" in", 1)
            reqs.append((key.strip(), "in", _set_values(rest)))
        elif "!=" in term:
            key, val = term.split("!=", 1)
            reqs.append((key.strip(), "!=", [val.strip()]))
        elif "==" in term:
            key, val = term.split("==", 1)
            reqs.append((key.strip(), "=", [val.strip()]))
        elif "=" in term:
            key, val = term.split("=", 1)
            reqs.append((key.strip(), "=", [val.strip()]))
        elif term.startswith("!"):
            reqs.append((term[1:].strip(), "!exists", []))
        else:
            reqs.append((term, "exists", []))
    return reqs


def _set_values(rest: str) -> list[str]:
    rest = rest.strip()
    if not (rest.startswith("(") and rest.endswith(")")):
        raise ApiError(400, "BadRequest", f"unable to parse requirement: found '{rest}', expected: '('")
    return [v.strip() for v in rest[1:-1].split(",") if v.strip()]


def labels_match(reqs, labels: dict | None) -> bool:
    labels = labels or {}
    for key, op, vals in reqs:
        has = key in labels
        val = labels.get(key)
        if op == "=" and val != vals[0]:
            return False
        if op == "!=" and has and val == vals[0]:
            return False
        if op == "in" and val not in vals:
            return False
        if op == "notin" and has and val in vals:
            return False
        if op == "exists" and not has:
            return False
        if op == "!exists" and has:
            return False
    return True


def selector_object_match(sel: dict | None, labels: dict | None) -> bool:
    """metav1.LabelSelector (matchLabels + matchExpressions); empty selector matches everything."""
    sel = sel or {}
    reqs = [(k, "=", [v]) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for e in sel.get("matchExpressions") or []:
        reqs.append((e["key"], ops[e["operator"]], e.get("values") or []))
    return labels_match(reqs, labels)


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    out = []
    for term in _split_terms(text or ""):
        for op in ("!=", "==", "="):
            if op in term:
                key, val = term.split(op, 1)
                out.append((key.strip(), "!=" if op == "!=" else "=", val.strip()))
                break
        else:
            raise ApiError(400, "BadRequest", f"invalid field selector: '{term}'")
    return out


def _dig(obj: dict, path: str):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def fields_match(reqs, obj: dict) -> bool:
    for key, op, val in reqs:
        got = _dig(obj, key)
        got = "" if got is None else str(got).lower() if isinstance(got, bool) else str(got)
        if (got == val) != (op == "="):
            return False
    return True


# --- patches ------------------------------------------------------------------

def merge_patch(target, patch, strategic: bool = False):
    """RFC 7386 merge patch; with ``strategic``, Kubernetes' strategic merge patch as
    kubectl sends it: lists with a merge key (containers, env, volumes, ports …) merge
    item by item (``$patch: delete`` removes one), ``$deleteFromPrimitiveList/F``
    removes values from a list of scalars, other ``$`` directives are dropped."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, val in patch.items():
        if strategic and key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [v for v in out[field] if v not in (val or [])]
            continue
        if strategic and key.startswith("$"):
            continue
        directive = val.get("$patch") if strategic and isinstance(val, dict) else None
        if val is None or directive == "delete":
            out.pop(key, None)
        elif directive == "replace":
            out[key] = {k: copy.deepcopy(v) for k, v in val.items() if not k.startswith("$")}
        elif isinstance(val, dict):
            out[key] = merge_patch(out.get(key), val, strategic)
        elif strategic and isinstance(val, list) and _merge_key(key, val, out.get(key)):
            out[key] = _merge_list(out.get(key) or [], val, _merge_key(key, val, out.get(key)))
        else:
            out[key] = copy.deepcopy(val)
    return out


def _merge_key(field: str, patch_items: list, live) -> str | None:
    """The strategic merge key of a list field (None: the list is replaced whole)."""
    from .managedfields import LIST_KEYS

    items = [i for i in patch_items + (live if isinstance(live, list) else []) if isinstance(i, dict)]
    if len(items) != len(patch_items) + (len(live) if isinstance(live, list) else 0):
        return None
    for candidate in LIST_KEYS.get(field, ()):
        if candidate != "protocol" and items and all(candidate in i for i in items):
            return candidate
    return None


def _merge_list(live: list, patch: list, key: str) -> list:
    out = copy.deepcopy(live)
    for item in patch:
        found = next((i for i, x in enumerate(out) if x.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if found is not None:
                out.pop(found)
        elif found is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
        else:
            out[found] = merge_patch(out[found], item, strategic=True)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(doc, ops: list):
    """RFC 6902 (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(doc)

    def parent(parts):
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def get(parts):
        cur = doc
        for p in parts:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur

    def add(parts, val):
        nonlocal doc
        if not parts:
            doc = val
            return
        par, last = parent(parts), parts[-1]
        if isinstance(par, list):
            par.insert(len(par) if last == "-" else int(last), val)
        else:
            par[last] = val

    def remove(parts):
        par, last = parent(parts), parts[-1]
        if isinstance(par, list):
            return par.pop(int(last))
        return par.pop(last)

    try:
        for op in ops:
            parts = _pointer(op["path"])
            kind = op["op"]
            if kind == "add":
                add(parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(parts)
            elif kind == "replace":
                get(parts)
                remove(parts) if parts else None
                add(parts, copy.deepcopy(op["value"]))
            elif kind == "move":
                val = get(_pointer(op["from"]))
                remove(_pointer(op["from"]))
                add(parts, val)
            elif kind == "copy":
                add(parts, copy.deepcopy(get(_pointer(op["from"]))))
            elif kind == "test":
                if get(parts) != op["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                                   f"request: test failed at {op['path']}")
            else:
                raise ApiError(400, "BadRequest", f"unknown JSON patch op {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                       f"jsonpatch failed: {exc!r}") from None
    return doc


# --- the store ----------------------------------------------------------------

class Store:
    """Objects keyed by (plural, namespace, name); thread-safe; watchable."""

    HISTORY = 50000

    def __init__(self):
        self.cond = threading.Condition(threading.RLock())
        self.rv = 100
        self.objs: dict[tuple[str, str, str], dict] = {}
        self.log: collections.deque = collections.deque(maxlen=self.HISTORY)  # (rv, plural, type, old, new)
        self.closed = False

    def _bump(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _record(self, plural, etype, old, new):
        self.log.append((self.rv, plural, etype, old, new))
        self.cond.notify_all()

    def get(self, res, ns: str, name: str) -> dict:
        with self.cond:
            obj = self.objs.get((res.plural, ns, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def find(self, plural: str, ns: str, name: str) -> dict | None:
        with self.cond:
            obj = self.objs.get((plural, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, plural: str, ns: str | None = None, labels=None, fields=None) -> tuple[list[dict], str]:
        with self.cond:
            items = [copy.deepcopy(o) for (p, n, _), o in sorted(self.objs.items())
                     if p == plural and (ns is None or n == ns)
                     and labels_match(labels or [], o["metadata"].get("labels"))
                     and fields_match(fields or [], o)]
            return items, str(self.rv)

    def create(self, res, ns: str, obj: dict, dry_run: bool = False) -> dict:
        """Store a new object; ``dry_run``: return what would be stored, store nothing."""
        with self.cond:
            meta = obj.setdefault("metadata", {})
            key = (res.plural, ns, meta["name"])
            if key in self.objs:
                raise already_exists(res, meta["name"])
            if res.namespaced:
                meta["namespace"] = ns
            meta["uid"] = meta.get("uid") or str(uuid.uuid4())   # admission may preset it (Job selector)
            meta["creationTimestamp"] = now()
            if "spec" in obj:
                meta["generation"] = 1
            for k in ("deletionTimestamp", "selfLink"):
                meta.pop(k, None)
            if dry_run:
                meta.pop("resourceVersion", None)
                return copy.deepcopy(obj)
            meta["resourceVersion"] = self._bump()
            self.objs[key] = copy.deepcopy(obj)
            self._record(res.plural, "ADDED", None, self.objs[key])
            return copy.deepcopy(obj)

    def update(self, res, ns: str, obj: dict, check_rv: bool = True, dry_run: bool = False) -> dict:
        """Replace; a stale metadata.resourceVersion gives 409 Conflict; none means unconditional."""
        with self.cond:
            name = obj["metadata"]["name"]
            key = (res.plural, ns, name)
            old = self.objs.get(key)
            if old is None:
                raise not_found(res, name)
            want = obj["metadata"].get("resourceVersion")
            if check_rv and want and want != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if obj == old:
                return copy.deepcopy(old)
            meta = obj["metadata"]
            for k in ("uid", "creationTimestamp", "namespace"):
                if k in old["metadata"]:
                    meta[k] = old["metadata"][k]
            if "generation" in old["metadata"]:
                gen = old["metadata"]["generation"]
                meta["generation"] = gen + 1 if obj.get("spec") != old.get("spec") else gen
            if dry_run:
                meta["resourceVersion"] = old["metadata"]["resourceVersion"]
                return copy.deepcopy(obj)
            meta["resourceVersion"] = self._bump()
            self.objs[key] = copy.deepcopy(obj)
            self._record(res.plural, "MODIFIED", old, self.objs[key])
            return copy.deepcopy(obj)

    def delete(self, res, ns: str, name: str, dry_run: bool = False) -> dict:
        with self.cond:
            key = (res.plural, ns, name)
            old = self.objs.get(key)
            if old is None:
                raise not_found(res, name)
            if dry_run:
                return copy.deepcopy(old)
            self.objs.pop(key)
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = self._bump()
            gone["metadata"]["deletionTimestamp"] = now()
            self._record(res.plural, "DELETED", old, gone)
            return copy.deepcopy(gone)

    def events_since(self, plural: str, rv: int) -> tuple[list | None, int]:
        """(changes after rv, current rv); None when rv is older than the kept history (410 Gone)."""
        with self.cond:
            if self.log and rv < self.log[0][0] - 1:
                return None, self.rv
            return [e for e in self.log if e[0] > rv and e[1] == plural], self.rv

    def wait(self, rv: int, timeout: float) -> None:
        with self.cond:
            if self.rv <= rv and not self.closed:
                self.cond.wait(timeout)

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
