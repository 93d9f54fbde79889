"""Simulated in-tree `kubernetes.io/glusterfs` provisioner: PVC -> heketi volume -> PV.

Talks to heketi's REST API exactly like the real controller-manager plugin:
JWT (HS256; iss, iat, exp, qsh = hex(sha256("METHOD&path"))), POST /volumes,
then polls the 202 Location queue until 303 -> the volume. Creates the
per-claim Endpoints/Service `glusterfs-dynamic-<claim uid>` and the PV.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

from .store import ApiError


class ProvisionError(Exception):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_token(user: str, key: str, method: str, path: str, ttl: int = 600) -> str:
    """heketi's JWT: qsh binds the token to one METHOD&path."""
    now = int(time.time())
    claims = {"iss": user, "iat": now, "exp": now + ttl,
              "qsh": hashlib.sha256(f"{method}&{path}".encode()).hexdigest()}
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def heketi_call(base: str, user: str, key: str, method: str, path: str, body: dict | None = None,
                timeout: float = 10.0) -> tuple[int, dict, bytes]:
    url = base.rstrip("/") + path
    upath = urllib.parse.urlsplit(url).path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "bearer " + jwt_token(user, key, method, upath))
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers or {}), err.read()
    except (urllib.error.URLError, OSError) as err:
        raise ProvisionError(f"failed to create volume: {method} {url}: {getattr(err, 'reason', err)}") from None


def heketi_async(base, user, key, method, path, body=None, deadline: float = 60.0) -> bytes:
    """Do a call that may answer 202 + Location: /queue/ID; follow until done."""
    code, headers, data = heketi_call(base, user, key, method, path, body)
    if code not in (200, 201, 202, 204):
        raise ProvisionError(f"failed to create volume: {data.decode(errors='replace').strip() or code}")
    if code != 202:
        return data
    loc = headers.get("Location") or headers.get("location")
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        code, headers, data = heketi_call(base, user, key, "GET", loc)
        if code == 200 and (headers.get("X-Pending") or headers.get("x-pending")) == "true":
            time.sleep(0.3)
            continue
        if code == 303:
            result = headers.get("Location") or headers.get("location")
            code, headers, data = heketi_call(base, user, key, "GET", result)
            if code != 200:
                raise ProvisionError(f"failed to get volume: {data.decode(errors='replace').strip()}")
            return data
        if code in (200, 204):
            return data
        raise ProvisionError(f"failed to create volume: {data.decode(errors='replace').strip() or code}")
    raise ProvisionError("failed to create volume: timed out waiting for heketi")


def class_credentials(api, sc: dict) -> tuple[str, str, str]:
    params = sc.get("parameters") or {}
    url = params.get("resturl")
    if not url:
        raise ProvisionError("failed to create volume: resturl is required")
    if not re.match(r"^https?://", url):
        url = "http://" + url
    user = params.get("restuser", "")
    key = params.get("restuserkey", "")
    if params.get("secretName"):
        ns = params.get("secretNamespace", "default")
        secret = api.store.find("secrets", ns, params["secretName"])
        if secret is None:
            raise ProvisionError(f'failed to get secret {ns}/{params["secretName"]}: secrets '
                                 f'"{params["secretName"]}" not found')
        raw = (secret.get("data") or {}).get("key")
        if raw is None:
            raise ProvisionError(f"no secret key 'key' in secret {ns}/{params['secretName']}")
        key = base64.b64decode(raw).decode()
    return url, user, key


def replica_count(sc: dict) -> int:
    vt = (sc.get("parameters") or {}).get("volumetype", "replicate:3")
    m = re.match(r"^replicate:(\d+)$", vt.strip())
    if not m:
        raise ProvisionError(f"error parsing volumetype {vt!r}: only 'replicate:N' is simulated")
    n = int(m.group(1))
    if n < 2:
        raise ProvisionError(f"invalid replica count {n}: replica count must be greater than 1")
    return n


def _gib(quantity: str) -> int:
    m = re.match(r"^(\d+)([KMGT]i?)?$", quantity or "1Gi")
    if not m:
        return 1
    n, unit = int(m.group(1)), m.group(2) or ""
    factor = {"": 1, "K": 1e3, "Ki": 1024, "M": 1e6, "Mi": 1024**2, "G": 1e9, "Gi": 1024**3,
              "T": 1e12, "Ti": 1024**4}[unit]
    return max(1, -(-int(n * factor) // 1024**3))


def provision(api, sim, pvc: dict, sc: dict) -> None:
    url, user, key = class_credentials(api, sc)
    replicas = replica_count(sc)
    size = _gib(pvc["spec"].get("resources", {}).get("requests", {}).get("storage", "1Gi"))
    ns, cname, cuid = pvc["metadata"]["namespace"], pvc["metadata"]["name"], pvc["metadata"]["uid"]
    prefix = (sc.get("parameters") or {}).get("volumenameprefix")
    body = {"size": size, "durability": {"type": "replicate", "replicate": {"replica": replicas}}}
    if prefix:
        body["name"] = f"{prefix}_{ns}_{cname}_{cuid[:8]}"
    sim.log(f"provisioner: creating heketi volume for claim {ns}/{cname} at {url}")
    vol = json.loads(heketi_async(url, user, key, "POST", "/volumes", body) or b"{}")
    hosts = (((vol.get("mount") or {}).get("glusterfs") or {}).get("hosts")) or []
    vname = vol.get("name") or f"vol_{vol.get('id', '')}"
    epname = f"glusterfs-dynamic-{cuid}"
    owner = [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": cname, "uid": cuid}]
    for plural, obj in (
            ("endpoints", {"metadata": {"name": epname, "labels": {"gluster.kubernetes.io/provisioned-for-pvc": cname},
                                        "ownerReferences": owner},
                           "subsets": [{"addresses": [{"ip": h} for h in hosts], "ports": [{"port": 1}]}]}),
            ("services", {"metadata": {"name": epname, "labels": {"gluster.kubernetes.io/provisioned-for-pvc": cname},
                                       "ownerReferences": owner},
                          "spec": {"ports": [{"port": 1, "protocol": "TCP"}]}})):
        try:
            api.create(api.res(plural), ns, obj)
        except ApiError as err:
            if err.code != 409:
                raise ProvisionError(f"failed to create {plural} {epname}: {err.message}") from None
    pvname = f"pvc-{cuid}"
    pv = {"metadata": {"name": pvname, "annotations": {
              "pv.kubernetes.io/provisioned-by": "kubernetes.io/glusterfs",
              "gluster.kubernetes.io/heketi-volume-id": vol.get("id", ""),
              "gluster.org/type": "file", "Description": "Gluster-Internal: Dynamically provisioned PV"}},
          "spec": {"capacity": {"storage": f"{size}Gi"},
                   "accessModes": pvc["spec"].get("accessModes") or ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                   "storageClassName": sc["metadata"]["name"],
                   "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns,
                                "name": cname, "uid": cuid},
                   "glusterfs": {"endpoints": epname, "endpointsNamespace": ns, "path": vname}}}
    try:
        api.create(api.res("persistentvolumes"), "", pv)
    except ApiError as err:
        if err.code != 409:
            raise ProvisionError(err.message) from None
    api.set_status("persistentvolumes", "", pvname, {"phase": "Bound"})

    def bind(o):
        o["spec"]["volumeName"] = pvname
        o["metadata"].setdefault("annotations", {}).update({
            "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes",
            "volume.beta.kubernetes.io/storage-provisioner": "kubernetes.io/glusterfs"})
    api.mutate("persistentvolumeclaims", ns, cname, bind)
    api.set_status("persistentvolumeclaims", ns, cname, {
        "phase": "Bound", "accessModes": pv["spec"]["accessModes"], "capacity": {"storage": f"{size}Gi"}})
    api.event(pvc, "PersistentVolumeClaim", "ProvisioningSucceeded",
              f"Successfully provisioned volume {pvname} using kubernetes.io/glusterfs")
    sim.log(f"provisioner: claim {ns}/{cname} bound to {pvname} (heketi volume {vname})")


def reclaim(api, sim, pv: dict) -> None:
    """reclaimPolicy Delete: delete the heketi volume, then the PV."""
    sc = api.store.find("storageclasses", "", pv["spec"].get("storageClassName", ""))
    vid = (pv["metadata"].get("annotations") or {}).get("gluster.kubernetes.io/heketi-volume-id")
    if sc is not None and vid:
        url, user, key = class_credentials(api, sc)
        heketi_async(url, user, key, "DELETE", f"/volumes/{vid}")
    try:
        api.delete(api.res("persistentvolumes"), "", pv["metadata"]["name"])
    except ApiError:
        pass
    sim.log(f"provisioner: deleted {pv['metadata']['name']} (heketi volume {vid})")
