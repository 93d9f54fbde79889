"""Decode the few protobuf request bodies kubectl sends to the SIMULATED API server.

kubectl's typed-client commands (`kubectl create secret generic`,
`create clusterrolebinding`, `create namespace|serviceaccount|configmap`)
POST `application/vnd.kubernetes.protobuf` and do not fall back to JSON.
This decodes the k8s envelope and those kinds by field number (from
k8s.io/api generated.proto); other kinds get 415.
"""
from __future__ import annotations

import base64

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, object]]:
    """Raw (field number, value) pairs: ints for varints, bytes for length-delimited."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((num, val))
    return out


def _s(v) -> str:
    return v.decode()


def _map(entries, value=_s) -> dict:
    out = {}
    for raw in entries:
        kv = dict(fields(raw))
        out[_s(kv.get(1, b""))] = value(kv.get(2, b""))
    return out


def _msg(buf: bytes, spec: dict) -> dict:
    """spec: {num: (name, kind)} with kind str|int|bool|bytes|map|mapbytes|list_str|{...}|[{...}]."""
    out: dict = {}
    maps: dict = {}
    for num, val in fields(buf):
        if num not in spec:
            continue
        name, kind = spec[num]
        if kind == "str":
            if val:     # generated k8s protobuf writes every string, even empty ones
                out[name] = _s(val)
        elif kind == "int":
            out[name] = val
        elif kind == "bool":
            out[name] = bool(val)
        elif kind in ("map", "mapbytes"):
            maps.setdefault(name, (kind, []))[1].append(val)
        elif kind == "list_str":
            out.setdefault(name, []).append(_s(val))
        elif isinstance(kind, dict):
            out[name] = _msg(val, kind)
        elif isinstance(kind, list):
            out.setdefault(name, []).append(_msg(val, kind[0]))
    for name, (kind, entries) in maps.items():
        out[name] = _map(entries, _s if kind == "map" else lambda b: base64.b64encode(b).decode())
    return out


OWNER = {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
         6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")}
META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 11: ("labels", "map"),
        12: ("annotations", "map"), 13: ("ownerReferences", [OWNER]), 14: ("finalizers", "list_str")}
SUBJECT = {1: ("kind", "str"), 2: ("apiGroup", "str"), 3: ("name", "str"), 4: ("namespace", "str")}
ROLEREF = {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}
OBJREF = {2: ("namespace", "str"), 3: ("name", "str")}
KINDS = {
    "Secret": {1: ("metadata", META), 2: ("data", "mapbytes"), 3: ("type", "str"), 4: ("stringData", "map"),
               5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", META), 2: ("data", "map"), 3: ("binaryData", "mapbytes"),
                  4: ("immutable", "bool")},
    "ServiceAccount": {1: ("metadata", META), 2: ("secrets", [OBJREF]),
                       4: ("automountServiceAccountToken", "bool")},
    "Namespace": {1: ("metadata", META)},
    "ClusterRoleBinding": {1: ("metadata", META), 2: ("subjects", [SUBJECT]), 3: ("roleRef", ROLEREF)},
    "RoleBinding": {1: ("metadata", META), 2: ("subjects", [SUBJECT]), 3: ("roleRef", ROLEREF)},
}


def decode(body: bytes) -> dict | None:
    """The object as JSON-like dict, or None when the kind is not decodable here."""
    if not body.startswith(MAGIC):
        return None
    env = dict(fields(body[len(MAGIC):]))
    tm = dict(fields(env.get(1, b"")))
    api_version, kind = _s(tm.get(1, b"")), _s(tm.get(2, b""))
    spec = KINDS.get(kind)
    if spec is None:
        return None
    obj = _msg(env.get(2, b""), spec)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj


# --- encoding: a minimal OpenAPI v2 document ------------------------------------
# kubectl validates a `kind: List` file client-side against /openapi/v2, which it
# only reads as protobuf (gnostic openapi_v2.Document). The simulator serves one
# definition per kind, each an "arbitrary" schema (no type, no properties)
# tagged with x-kubernetes-group-version-kind: every object validates.

def _key(num: int, wt: int) -> bytes:
    return _uvarint(num << 3 | wt)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _key(num, 2) + _uvarint(len(data)) + data


def openapi_v2(resources, version: str) -> bytes:
    """Document{swagger=1, info=2{title=1, version=2}, paths=8, definitions=9{NamedSchema=1{name=1, value=2}}}."""
    defs = b""
    seen = set()
    kinds = [(r.group, r.version, r.kind) for r in resources] + [("", "v1", "List")]
    for group, ver, kind in kinds:
        if (group, ver, kind) in seen:
            continue
        seen.add((group, ver, kind))
        yaml = f"- group: \"{group}\"\n  kind: {kind}\n  version: {ver}\n"
        ext = _ld(1, "x-kubernetes-group-version-kind") + _ld(2, _ld(2, yaml))   # NamedAny{name, Any{yaml=2}}
        schema = _ld(4, f"{kind} (gfsdeploy simulator: not validated)") + _ld(31, ext)
        name = f"io.k8s.gfsdeploy-sim.{group or 'core'}.{ver}.{kind}"
        defs += _ld(1, _ld(1, name) + _ld(2, schema))
    info = _ld(1, "Kubernetes (gfsdeploy simulator)") + _ld(2, f"v{version}")
    return _ld(1, "2.0") + _ld(2, info) + _ld(8, b"") + _ld(9, defs)
