#!/usr/bin/python3
"""heketi-cli for the lab: a stand-in for heketi's command-line client (stdlib only).

The lab has no heketi binary; its heketi pods run the heketi simulator. Playbooks written for
real clusters drive heketi with ``kubectl exec <heketi pod> -- heketi-cli ...``, so the lab's
heketi image carries this program as /usr/bin/heketi-cli. It behaves as heketi-cli does for the
subcommands real playbooks use — same options (``--server/-s``, ``--user``, ``--secret``,
``--json`` and the environment variables HEKETI_CLI_SERVER/USER/KEY), same output, same
``Error: ...`` lines on stderr and exit status 255 — and talks to the server only through
heketi's REST API (a JWT per request, the 202 + /queue polling + 303 flow). What it does not
implement it refuses by name (exit 255), it never ignores it. Facts it relies on: docs/LAB.md
("The lab's heketi-cli").
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

PROG = "heketi-cli"
VERSION = "(gfsdeploy lab stand-in)"
DEFAULT_SERVER = "http://localhost:8080"
DB_VOLUME = "heketidbstorage"
DB_VOLUME_OPTIONS = [
    "performance.stat-prefetch off", "performance.write-behind off", "performance.open-behind off",
    "performance.quick-read off", "performance.strict-o-direct on", "performance.read-ahead off",
    "performance.io-cache off", "performance.readdir-ahead off", "user.heketi.dbstoragelevel 1",
]
GIB_KIB = 1024 * 1024
POLL_DELAY = 0.4        # seconds between two polls of a pending operation (heketi's client: 400 ms)


class CliError(Exception):
    """What heketi-cli prints as ``Error: <text>`` before exiting 255."""


# ---------------------------------------------------------------------------- HTTP + JWT
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(user: str, key: str, method: str, path: str, now: float | None = None) -> str:
    """heketi's JWT: HS256, issuer = user, 5 minutes, qsh = sha256("METHOD&path")."""
    issued = int(now if now is not None else time.time())
    claims = {"exp": issued + 300, "iat": issued, "iss": user,
              "qsh": hashlib.sha256(f"{method}&{path}".encode()).hexdigest()}
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _q(ident: str) -> str:
    """An id as one path segment (an id holding '/' or '?' must not reach another endpoint)."""
    return urllib.parse.quote(ident, safe="")


class Reply:
    def __init__(self, status: int, headers, data: bytes):
        self.status, self.headers, self.data = status, headers, data

    def error(self) -> CliError:
        """The server's text as the error (heketi's client reads the body)."""
        text = self.data.decode(errors="replace").strip()
        if not text:
            text = (f"server did not provide a message (status {self.status}: "
                    f"{http.client.responses.get(self.status, '')})")
        return CliError(text)

    def json(self):
        try:
            return json.loads(self.data or b"null")
        except ValueError:
            raise CliError(f"unexpected answer from the server (not JSON): {self.data[:200]!r}") from None


class Client:
    """heketi's REST API: every request signed, async operations polled to their end."""

    def __init__(self, server: str, user: str, key: str, *, insecure: bool = False, cafiles=()):
        self.server = server.rstrip("/")
        self.user, self.key = user, key
        parts = urllib.parse.urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f'parse "{server}/clusters": unsupported server URL (want http://HOST:PORT)')
        self.ssl = None
        if parts.scheme == "https":
            self.ssl = ssl.create_default_context()
            for cafile in cafiles:
                self.ssl.load_verify_locations(cafile)
            if insecure:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE

    def _send(self, method: str, url: str, body: bytes | None) -> Reply:
        parts = urllib.parse.urlsplit(url)
        path = parts.path or "/"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname, port, timeout=600, context=self.ssl)
        else:
            conn = http.client.HTTPConnection(parts.hostname, port, timeout=600)
        headers = {"Authorization": "bearer " + token(self.user, self.key, method, path)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers)
            answer = conn.getresponse()
            return Reply(answer.status, answer.headers, answer.read())
        except ConnectionRefusedError:
            raise CliError(f'{method.capitalize()} "{url}": dial tcp {parts.hostname}:{port}: '
                           "connect: connection refused") from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise CliError(f'{method.capitalize()} "{url}": {reason}') from None
        finally:
            conn.close()

    def call(self, method: str, path: str, body=None) -> Reply:
        """One request; a 303 is followed with a GET (a new token each), as Go's client does."""
        url = self.server + path
        data = None if body is None else json.dumps(body).encode()
        for _ in range(10):
            reply = self._send(method, url, data)
            if reply.status not in (301, 302, 303, 307, 308) or not reply.headers.get("Location"):
                return reply
            url = urllib.parse.urljoin(url, reply.headers["Location"])
            method, data = "GET", None
        raise CliError(f'Get "{url}": stopped after 10 redirects')

    def wait(self, accepted: Reply) -> Reply:
        """Poll the operation a 202 points at until it is no longer pending."""
        location = accepted.headers.get("Location")
        if not location:
            raise CliError("server answered 202 without a Location to poll")
        url = urllib.parse.urljoin(self.server + "/", location)
        path = url[len(self.server):] if url.startswith(self.server) else urllib.parse.urlsplit(url).path
        while True:
            reply = self.call("GET", path)
            if reply.headers.get("X-Pending") == "true":
                if reply.status != 200:
                    raise reply.error()
                time.sleep(POLL_DELAY)
                continue
            return reply

    def get(self, path: str) -> dict:
        reply = self.call("GET", path)
        if reply.status != 200:
            raise reply.error()
        data = reply.json()
        if not isinstance(data, dict):
            raise CliError(f"unexpected answer from the server for {path}: {reply.data[:200]!r}")
        return data

    def post_sync(self, path: str, body, status: int = 201):
        reply = self.call("POST", path, body)
        if reply.status != status:
            raise reply.error()
        return reply.json() if reply.data.strip() else None

    def async_op(self, method: str, path: str, body=None, final: int = 200):
        reply = self.call(method, path, body)
        if reply.status != 202:
            raise reply.error()
        reply = self.wait(reply)
        if reply.status != final:
            raise reply.error()
        return reply.json() if final == 200 else None

    # heketi's client calls, by name
    def clusters(self) -> list[str]:
        return self.get("/clusters").get("clusters") or []

    def cluster(self, cid: str) -> dict:
        return go_cluster(self.get(f"/clusters/{_q(cid)}"))

    def node(self, nid: str) -> dict:
        return go_node(self.get(f"/nodes/{_q(nid)}"))

    def device(self, did: str) -> dict:
        return go_device(self.get(f"/devices/{_q(did)}"))

    def volume(self, vid: str) -> dict:
        return go_volume(self.get(f"/volumes/{_q(vid)}"))

    def volumes(self) -> list[str]:
        return self.get("/volumes").get("volumes") or []

    def state(self, kind: str, ident: str, state: str) -> None:
        reply = self.call("POST", f"/{kind}/{_q(ident)}/state", {"state": state, "healcheck": ""})
        if reply.status == 202:
            reply = self.wait(reply)
            if reply.status not in (200, 204):
                raise reply.error()
        elif reply.status not in (200, 204):
            raise reply.error()

    def topology(self) -> dict:
        """heketi's client assembles the topology from the cluster, volume and node calls."""
        out = []
        for cid in self.clusters():
            info = self.cluster(cid)
            volumes = [v for v in (self.volume(vid) for vid in info.get("volumes") or []) if v.get("cluster") == cid]
            nodes = [self.node(nid) for nid in info.get("nodes") or []]
            out.append({"volumes": volumes, "nodes": nodes, "id": info["id"] or cid,
                        "block": info["block"], "file": info["file"]})
        return {"clusters": out}


# ---------------------------------------------------------------------------- heketi's types
# heketi-cli decodes the server's answer into heketi's Go types and encodes them again for
# --json: fields in the types' order, `omitempty` fields left out when empty, maps sorted.
def _pick(src: dict, fields) -> dict:
    out = {}
    for name, empty_ok in fields:
        value = src.get(name)
        if value in (None, "", 0, False, [], {}) and not empty_ok:
            continue
        out[name] = dict(sorted(value.items())) if isinstance(value, dict) and name in ("tags", "options") else value
    return out


def go_brick(b: dict) -> dict:
    return _pick(b, [("id", 1), ("path", 1), ("device", 1), ("node", 1), ("volume", 1), ("size", 1)])


def go_device(d: dict) -> dict:
    out = _pick(d, [("name", 1), ("tags", 0)])
    out["storage"] = _pick(d.get("storage") or {}, [("total", 1), ("free", 1), ("used", 1)])
    out.update(_pick(d, [("id", 1), ("paths", 0), ("pv_uuid", 0), ("state", 1)]))
    out["bricks"] = [go_brick(b) for b in d.get("bricks") or []]
    return out


def go_node(n: dict) -> dict:
    names = n.get("hostnames") or {}
    out = {"zone": n.get("zone", 0), "hostnames": {"manage": names.get("manage") or [],
                                                   "storage": names.get("storage") or []}}
    out.update(_pick(n, [("cluster", 1), ("tags", 0), ("id", 1), ("state", 1)]))
    out["devices"] = [go_device(d) for d in n.get("devices") or []]
    return out


def _number(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def go_volume(v: dict) -> dict:
    durability = v.get("durability") or {}
    out = _pick(v, [("size", 1), ("clusters", 0), ("name", 1)])
    out["durability"] = {**_pick(durability, [("type", 0)]),
                         "replicate": _pick(durability.get("replicate") or {}, [("replica", 0)]),
                         "disperse": _pick(durability.get("disperse") or {}, [("data", 0), ("redundancy", 0)])}
    out.update(_pick(v, [("gid", 0), ("glustervolumeoptions", 0), ("block", 0)]))
    snapshot = v.get("snapshot") or {}
    out["snapshot"] = {"enable": bool(snapshot.get("enable")), "factor": _number(snapshot.get("factor") or 0)}
    out.update(_pick(v, [("id", 1), ("cluster", 1)]))
    fs = ((v.get("mount") or {}).get("glusterfs") or {})
    out["mount"] = {"glusterfs": {"hosts": fs.get("hosts"), "device": fs.get("device", ""),
                                  "options": None if fs.get("options") is None else dict(sorted(fs["options"].items()))}}
    out["blockinfo"] = _pick(v.get("blockinfo") or {}, [("freesize", 0), ("reservedsize", 0),
                                                        ("blockvolume", 0), ("restriction", 0)])
    out["bricks"] = [go_brick(b) for b in v.get("bricks") or []]
    return out


def go_cluster(c: dict) -> dict:
    return {"id": c.get("id", ""), "nodes": c.get("nodes") or [], "volumes": c.get("volumes") or [],
            "block": bool(c.get("block")), "file": bool(c.get("file")), "blockvolumes": c.get("blockvolumes") or []}


# ---------------------------------------------------------------------------- output
class Out:
    def __init__(self, stdout, stderr):
        self.stdout, self.stderr = stdout, stderr

    def write(self, text: str) -> None:
        self.stdout.write(text)

    def json(self, obj) -> None:
        """Go's json.Marshal: compact, <>& escaped, no newline at the end."""
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        self.stdout.write(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _state(value) -> str:
    return "removed" if value == "failed" else str(value or "")


def _gib(kib) -> int:
    return int(kib or 0) // GIB_KIB


def _go_bool(value) -> str:
    return "true" if value else "false"


def _mount(volume: dict) -> tuple[str, str]:
    fs = ((volume.get("mount") or {}).get("glusterfs") or {})
    options = "".join(f"{k}={v}" for k, v in sorted((fs.get("options") or {}).items()))
    return fs.get("device", ""), options


def _volume_text(v: dict) -> str:
    durability = v.get("durability") or {}
    kind = durability.get("type", "")
    bricks = v.get("bricks") or []
    replica = int((durability.get("replicate") or {}).get("replica") or 0)
    disperse = durability.get("disperse") or {}
    width = int(disperse.get("data") or 0) + int(disperse.get("redundancy") or 0)
    count = {"none": len(bricks), "replicate": len(bricks) // replica if replica else 0,
             "disperse": len(bricks) // width if width else 0}.get(kind, 0)
    block = v.get("blockinfo") or {}
    device, options = _mount(v)
    lines = [f"Name: {v.get('name', '')}", f"Size: {v.get('size', 0)}", f"Volume Id: {v.get('id', '')}",
             f"Cluster Id: {v.get('cluster', '')}", f"Mount: {device}", f"Mount Options: {options}",
             f"Block: {_go_bool(v.get('block'))}", f"Free Size: {block.get('freesize', 0)}",
             f"Reserved Size: {block.get('reservedsize', 0)}",
             f"Block Hosting Restriction: {block.get('restriction', '')}",
             f"Block Volumes: [{' '.join(block.get('blockvolume') or [])}]",
             f"Durability Type: {kind}", f"Distribute Count: {count}"]
    if kind == "replicate":
        lines.append(f"Replica Count: {replica}")
    elif kind == "disperse":
        lines += [f"Disperse Data Count: {disperse.get('data', 0)}",
                  f"Disperse Redundancy Count: {disperse.get('redundancy', 0)}"]
    text = "\n".join(lines) + "\n"
    snapshot = v.get("snapshot") or {}
    if snapshot.get("enable"):
        text += f"Snapshot Factor: {float(snapshot.get('factor') or 1):.2f}\n"
    return text


def _node_text(n: dict) -> str:
    names = n.get("hostnames") or {}
    text = (f"Node Id: {n.get('id', '')}\nState: {_state(n.get('state'))}\nCluster Id: {n.get('cluster', '')}\n"
            f"Zone: {n.get('zone', 0)}\nManagement Hostname: {(names.get('manage') or [''])[0]}\n"
            f"Storage Hostname: {(names.get('storage') or [''])[0]}\n")
    if n.get("tags"):
        text += "Tags:\n" + "".join(f"  {k}: {v}\n" for k, v in n["tags"].items())
    return text


def _tags(tags: dict) -> str:
    return "".join(f" {k}:{v}" for k, v in sorted(tags.items()))


def _topology_text(topo: dict) -> str:
    """heketi-cli's topology report (its own mix of tabs and spaces)."""
    out = []
    for c in topo["clusters"]:
        out.append(f"\nCluster Id: {c['id']}\n\n    File:  {_go_bool(c['file'])}\n    Block: {_go_bool(c['block'])}\n\n"
                   "    Volumes:\n")
        for v in c["volumes"]:
            durability = v.get("durability") or {}
            device, options = _mount(v)
            out.append(f"\n\tName: {v.get('name', '')}\n\tSize: {v.get('size', 0)}\n\tId: {v.get('id', '')}\n"
                       f"\tCluster Id: {v.get('cluster', '')}\n\tMount: {device}\n\tMount Options: {options}\n"
                       f"\tDurability Type: {durability.get('type', '')}")
            if durability.get("type") == "replicate":
                out.append(f"\n\tReplica: {(durability.get('replicate') or {}).get('replica', 0)}")
            elif durability.get("type") == "disperse":
                dis = durability.get("disperse") or {}
                out.append(f"\n\tDisperse Data: {dis.get('data', 0)}\n\tDisperse Redundancy: {dis.get('redundancy', 0)}")
            snapshot = v.get("snapshot") or {}
            if snapshot.get("enable"):
                out.append(f"\n\tSnapshot: Enabled\n\tSnapshot Factor: {float(snapshot.get('factor') or 1):.2f}\n")
            else:
                out.append("\n\tSnapshot: Disabled\n")
            out.append("\n\t\tBricks:")
            for b in v.get("bricks") or []:
                out.append(f"\n\t\t\tId: {b.get('id', '')}\n\t\t\tPath: {b.get('path', '')}\n"
                           f"\t\t\tSize (GiB): {_gib(b.get('size'))}\n\t\t\tNode: {b.get('node', '')}\n"
                           f"\t\t\tDevice: {b.get('device', '')}\n")
            out.append("\n")
        out.append("\n    Nodes:\n")
        for n in c["nodes"]:
            names = n.get("hostnames") or {}
            out.append(f"\n\tNode Id: {n.get('id', '')}\n\tState: {_state(n.get('state'))}\n"
                       f"\tCluster Id: {n.get('cluster', '')}\n\tZone: {n.get('zone', 0)}\n"
                       f"\tManagement Hostnames: {', '.join(names.get('manage') or [])}\n"
                       f"\tStorage Hostnames: {', '.join(names.get('storage') or [])}")
            if n.get("tags"):
                out.append(f"\n\tTags:{_tags(n['tags'])}\n")
            out.append("\n\tDevices:")
            for d in n.get("devices") or []:
                storage = d.get("storage") or {}
                out.append(f"\n\t\tId:{d.get('id', ''):<35}State:{_state(d.get('state')):<10}"
                           f"Size (GiB):{_gib(storage.get('total')):<8}Used (GiB):{_gib(storage.get('used')):<8}"
                           f"Free (GiB):{_gib(storage.get('free')):<8}")
                if d.get("tags"):
                    out.append(f"\n\t\t\tTags:{_tags(d['tags'])}\n")
                paths = d.get("paths") or []
                out.append(f"\n\t\t\tKnown Paths:{''.join(' ' + p for p in paths)}\n" if paths
                           else f"\n\t\t\tKnown Paths: {d.get('name', '')}\n")
                out.append("\n\t\t\tBricks:")
                for b in d.get("bricks") or []:
                    out.append(f"\n\t\t\t\tId:{b.get('id', ''):<35}Size (GiB):{_gib(b.get('size')):<8}"
                               f"Path: {b.get('path', '')}")
            out.append("\n")
    return "".join(out) + "\n"


# ---------------------------------------------------------------------------- commands
def cluster_list(c: Client, o: Out, opts, args):
    ids = c.clusters()
    if opts["json"]:
        return o.json({"clusters": ids})
    o.write("Clusters:\n")
    for cid in ids:
        info = c.cluster(cid)
        usage = ("[file]" if info.get("file") else "") + ("[block]" if info.get("block") else "")
        o.write(f"Id:{cid} {usage or '[]'}\n")


def cluster_info(c: Client, o: Out, opts, args):
    info = c.cluster(_id(args, "Cluster id missing"))
    if opts["json"]:
        return o.json(info)
    o.write(f"Cluster id: {info['id']}\nNodes:\n" + "\n".join(info.get("nodes") or []) +
            "\nVolumes:\n" + "\n".join(info.get("volumes") or []) +
            f"\nBlock: {_go_bool(info.get('block'))}\n\nFile: {_go_bool(info.get('file'))}\n")


def cluster_create(c: Client, o: Out, opts, args):
    info = go_cluster(c.post_sync("/clusters", {"file": opts["file"], "block": opts["block"]}))
    if opts["json"]:
        return o.json(info)
    o.write(f"Cluster id: {info['id']}\n")


def cluster_delete(c: Client, o: Out, opts, args):
    cid = _id(args, "Cluster id missing")
    reply = c.call("DELETE", f"/clusters/{_q(cid)}")
    if reply.status != 200:
        raise reply.error()
    o.write(f"Cluster {cid} deleted\n")


def node_list(c: Client, o: Out, opts, args):
    for cid in c.clusters():
        for nid in c.cluster(cid).get("nodes") or []:
            o.write(f"Id:{nid}\tCluster:{cid}\n")


def node_info(c: Client, o: Out, opts, args):
    info = c.node(_id(args, "Node id missing"))
    if opts["json"]:
        return o.json(info)
    o.write(_node_text(info) + "Devices:\n")
    for d in info.get("devices") or []:
        storage = d.get("storage") or {}
        o.write(f"Id:{d.get('id', ''):<35}Name:{d.get('name', ''):<20}State:{_state(d.get('state')):<10}"
                f"Size (GiB):{_gib(storage.get('total')):<8}Used (GiB):{_gib(storage.get('used')):<8}"
                f"Free (GiB):{_gib(storage.get('free')):<8}Bricks:{len(d.get('bricks') or []):<8}\n")


def node_add(c: Client, o: Out, opts, args):
    for key, missing in (("zone", "Missing zone"), ("management-host-name", "Missing management hostname"),
                         ("storage-host-name", "Missing storage hostname"), ("cluster", "Missing cluster id")):
        if not opts[key]:
            raise CliError(missing)
    info = go_node(c.async_op("POST", "/nodes", {"zone": opts["zone"], "cluster": opts["cluster"],
                                                 "hostnames": {"manage": [opts["management-host-name"]],
                                                               "storage": [opts["storage-host-name"]]}}))
    if opts["json"]:
        return o.json(info)
    o.write("Node information:\n" + _node_text(info))


def node_delete(c: Client, o: Out, opts, args):
    nid = _id(args, "Node id missing")
    c.async_op("DELETE", f"/nodes/{_q(nid)}", final=204)
    o.write(f"Node {nid} deleted\n")


def _state_command(kind: str, state: str, word: str, missing: str):
    def run(c: Client, o: Out, opts, args):
        ident = _id(args, missing)
        c.state(kind, ident, state)
        o.write(f"{kind[:-1].capitalize()} {ident} is now {word}\n")
    return run


def device_add(c: Client, o: Out, opts, args):
    if not opts["name"]:
        raise CliError("Missing device name")
    if not opts["node"]:
        raise CliError("Missing node id")
    c.async_op("POST", "/devices", {"name": opts["name"], "node": opts["node"],
                                    "destroydata": opts["destroy-existing-data"]}, final=204)
    o.write("Device added successfully\n")


def device_info(c: Client, o: Out, opts, args):
    info = c.device(_id(args, "Device id missing"))
    if opts["json"]:
        return o.json(info)
    storage = info.get("storage") or {}
    o.write(f"Device Id: {info.get('id', '')}\nState: {_state(info.get('state'))}\n"
            f"Size (GiB): {_gib(storage.get('total'))}\nUsed (GiB): {_gib(storage.get('used'))}\n"
            f"Free (GiB): {_gib(storage.get('free'))}\nCreate Path: {info.get('name', '')}\n"
            f"Physical Volume UUID: {info.get('pv_uuid', '')}\nKnown Paths: {' '.join(info.get('paths') or [])}\n")
    if info.get("tags"):
        o.write("Tags:\n" + "".join(f"  {k}: {v}\n" for k, v in info["tags"].items()))
    o.write("Bricks:\n")
    for b in info.get("bricks") or []:
        o.write(f"Id:{b.get('id', ''):<35}Size (GiB):{_gib(b.get('size')):<8}Path: {b.get('path', '')}\n")


def device_delete(c: Client, o: Out, opts, args):
    did = _id(args, "Device id missing")
    if opts["force-forget"]:
        raise CliError("--force-forget is not implemented by the lab's heketi-cli stand-in")
    c.async_op("DELETE", f"/devices/{_q(did)}", final=204)
    o.write(f"Device {did} deleted\n")


def volume_list(c: Client, o: Out, opts, args):
    ids = c.volumes()
    if opts["json"]:
        return o.json({"volumes": ids})
    for vid in ids:
        info = c.volume(vid)
        o.write(f"Id:{vid:<35} Cluster:{info.get('cluster', ''):<35} Name:{info.get('name', '')}"
                f"{' [block]' if info.get('block') else ''}\n")


def volume_info(c: Client, o: Out, opts, args):
    info = c.volume(_id(args, "Volume id missing"))
    if opts["json"]:
        return o.json(info)
    o.write(_volume_text(info))


def volume_create(c: Client, o: Out, opts, args):
    if not opts["size"]:
        raise CliError("Missing volume size")
    for refused in ("persistent-volume", "persistent-volume-file", "persistent-volume-endpoint"):
        if opts[refused]:
            raise CliError(f"--{refused} is not implemented by the lab's heketi-cli stand-in")
    request = {"size": opts["size"], "name": opts["name"],
               "durability": {"type": opts["durability"], "replicate": {"replica": opts["replica"]},
                              "disperse": {"data": opts["disperse-data"], "redundancy": opts["redundancy"]}},
               "snapshot": {"enable": False, "factor": 0}}
    if opts["clusters"]:
        request["clusters"] = opts["clusters"].split(",")
    if opts["gluster-volume-options"]:
        request["glustervolumeoptions"] = opts["gluster-volume-options"].split(",")
    if opts["gid"]:
        request["gid"] = opts["gid"]
    if opts["block"]:
        request["block"] = True
    if opts["snapshot-factor"] > 1.0:
        request["snapshot"] = {"enable": True, "factor": opts["snapshot-factor"]}
    info = go_volume(c.async_op("POST", "/volumes", request))
    if opts["json"]:
        return o.json(info)
    o.write(_volume_text(info))


def volume_delete(c: Client, o: Out, opts, args):
    vid = _id(args, "Volume id missing")
    c.async_op("DELETE", f"/volumes/{_q(vid)}", final=204)
    o.write(f"Volume {vid} deleted\n")


def topology_info(c: Client, o: Out, opts, args):
    if opts["template"]:
        raise CliError("--template is not implemented by the lab's heketi-cli stand-in (Go templates)")
    topo = c.topology()
    if opts["json"]:
        return o.json(topo)
    o.write(_topology_text(topo))


def _topology_file(path: str) -> list:
    if not path:
        raise CliError("Missing configuration file")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError:
        raise CliError("Unable to open config file") from None
    except ValueError:
        raise CliError("Unable to parse config file") from None
    clusters = data.get("clusters") if isinstance(data, dict) else None
    if not isinstance(clusters, list) or not all(isinstance(x, dict) for x in clusters):
        raise CliError("Unable to parse config file")
    for cluster in clusters:
        for node in cluster.get("nodes") or []:
            manage = (((node or {}).get("node") or {}).get("hostnames") or {}).get("manage")
            if not isinstance(manage, list) or not manage:
                raise CliError("Unable to parse config file: a node without hostnames.manage")
            devices = []
            for device in node.get("devices") or []:   # older files list device names as strings
                devices.append({"name": device} if isinstance(device, str) else dict(device or {}))
            node["devices"] = devices
    return clusters


def topology_load(c: Client, o: Out, opts, args):
    """Add what the file has and heketi has not: a node is matched by its first management
    hostname, a device by node and name; what exists is reported "Found"."""
    clusters = _topology_file(opts["json"])
    try:
        known = c.topology()
    except CliError as exc:
        raise CliError(f"Unable to get topology information: {exc}") from None
    nodes = {(n.get("hostnames") or {}).get("manage", [""])[0]: n for cl in known["clusters"] for n in cl["nodes"]}
    created = []
    try:
        for cluster in clusters:
            cluster_id = None
            for entry in cluster.get("nodes") or []:
                request = dict(entry["node"])
                manage = request["hostnames"]["manage"][0]
                node = nodes.get(manage)
                if node is not None:
                    o.write(f"\tFound node {manage} on cluster {node.get('cluster')}\n")
                    try:
                        cluster_id = c.cluster(node["cluster"])["id"]
                    except CliError:
                        o.write("Unable to get cluster information\n")
                        raise CliError("Unable to get cluster information") from None
                else:
                    if cluster_id is None:
                        o.write("Creating cluster ... ")
                        flags = {"file": cluster.get("file", True) is not False,
                                 "block": cluster.get("block", True) is not False}
                        cluster_id = c.post_sync("/clusters", flags)["id"]
                        created.append(cluster_id)
                        o.write(f"ID: {cluster_id}\n")
                        if flags["file"]:
                            o.write("\tAllowing file volumes on cluster.\n")
                        if flags["block"]:
                            o.write("\tAllowing block volumes on cluster.\n")
                    o.write(f"\tCreating node {manage} ... ")
                    request["cluster"] = cluster_id
                    try:
                        node = go_node(c.async_op("POST", "/nodes", request))
                    except CliError as exc:
                        o.write(f"Unable to create node: {exc}\n")
                        continue
                    o.write(f"ID: {node['id']}\n")
                have = {d.get("name") for d in node.get("devices") or []}
                for device in entry["devices"]:
                    name = device.get("name", "")
                    if name in have:
                        o.write(f"\t\tFound device {name}\n")
                        continue
                    o.write(f"\t\tAdding device {name} ... ")
                    body = {"name": name, "node": node["id"], "destroydata": bool(device.get("destroydata"))}
                    if device.get("tags"):
                        body["tags"] = device["tags"]
                    try:
                        c.async_op("POST", "/devices", body, final=204)
                        o.write("OK\n")
                    except CliError as exc:
                        o.write(f"Unable to add device: {exc}\n")
    finally:
        for cluster_id in created:   # a cluster this run made and nothing joined goes away again
            try:
                info = c.cluster(cluster_id)
                if not info.get("nodes") and not info.get("volumes"):
                    c.call("DELETE", f"/clusters/{cluster_id}")
            except CliError:
                pass


def _storage_list(volume: dict, db: bytes, image: str, selector: str) -> dict:
    """The Kubernetes List heketi-cli writes: the DB as a Secret, Endpoints + Service naming the
    volume's hosts, and a Job that copies the DB onto the new volume."""
    meta = {"name": "heketi-storage-secret", "creationTimestamp": None, "labels": {"deploy-heketi": "support"}}
    secret = {"kind": "Secret", "apiVersion": "v1", "metadata": meta,
              "data": {"heketi.db": base64.b64encode(db).decode()}}
    hosts = ((volume.get("mount") or {}).get("glusterfs") or {}).get("hosts") or []
    endpoints = {"kind": "Endpoints", "apiVersion": "v1",
                 "metadata": {"name": "heketi-storage-endpoints", "creationTimestamp": None},
                 "subsets": [{"addresses": [{"ip": host}], "ports": [{"port": 1}]} for host in hosts]}
    service = {"kind": "Service", "apiVersion": "v1",
               "metadata": {"name": "heketi-storage-endpoints", "creationTimestamp": None},
               "spec": {"ports": [{"port": 1, "targetPort": 0}]}, "status": {"loadBalancer": {}}}
    pod_spec = {"volumes": [{"name": "heketi-storage", "glusterfs": {"endpoints": "heketi-storage-endpoints",
                                                                    "path": volume.get("name", DB_VOLUME)}},
                            {"name": "heketi-storage-secret", "secret": {"secretName": "heketi-storage-secret"}}],
                "containers": [{"name": "heketi", "image": image, "command": ["cp", "/db/heketi.db", "/heketi"],
                                "resources": {},
                                "volumeMounts": [{"name": "heketi-storage", "mountPath": "/heketi"},
                                                 {"name": "heketi-storage-secret", "mountPath": "/db"}]}],
                "restartPolicy": "Never"}
    key_value = selector.split("=")
    if selector and len(key_value) == 2:
        pod_spec["nodeSelector"] = {key_value[0]: key_value[1]}
    job = {"kind": "Job", "apiVersion": "batch/v1",
           "metadata": {"name": "heketi-storage-copy-job", "creationTimestamp": None,
                        "labels": {"deploy-heketi": "support"}},
           "spec": {"parallelism": 1, "completions": 1,
                    "template": {"metadata": {"name": "heketi-storage-copy-job", "creationTimestamp": None},
                                 "spec": pod_spec}},
           "status": {}}
    return {"kind": "List", "apiVersion": "v1", "items": [secret, endpoints, service, job]}


def setup_storage(c: Client, o: Out, opts, args):
    """Create the heketidbstorage volume and write the List that moves heketi's DB onto it."""
    durability = opts["durability"]
    if durability not in ("none", "replicate", "disperse"):
        raise CliError(f"Unknown durability type {durability}")
    if durability == "disperse":
        raise CliError("Durability disperse is not supported for heketi database storage")
    for cid in c.clusters():
        for vid in c.cluster(cid).get("volumes") or []:
            if c.volume(vid).get("name") == DB_VOLUME:
                raise CliError(f"Volume {DB_VOLUME} already exists")
    options = (opts["gluster-volume-options"].split(",") + ["user.heketi.dbstoragelevel custom"]
               if opts["gluster-volume-options"] else list(DB_VOLUME_OPTIONS))
    if opts["append-volume-options"]:
        options += opts["append-volume-options"].split(",")
    request = {"size": 2, "name": DB_VOLUME, "glustervolumeoptions": options,
               "durability": {"type": durability,
                              "replicate": {"replica": opts["replica"]} if durability == "replicate" else {}},
               "snapshot": {"enable": False, "factor": 0}}
    volume = go_volume(c.async_op("POST", "/volumes", request))
    try:
        reply = c.call("GET", "/backup/db")
        if reply.status != 200:
            raise CliError(f"ERROR: {reply.error()}\nUnable to get database from Heketi server")
        listing = _storage_list(volume, reply.data, opts["image"], opts["node-selector"])
        o.write(f"Saving {opts['listfile']}\n")
        try:
            with open(opts["listfile"], "w", encoding="utf-8") as handle:
                handle.write(json.dumps(listing, indent=2))
        except OSError as exc:
            raise CliError(f"open {opts['listfile']}: {(exc.strerror or str(exc)).lower()}") from None
    except CliError:
        o.stderr.write("Cleaning up\n")
        try:
            c.async_op("DELETE", f"/volumes/{volume['id']}", final=204)
        except CliError:
            pass
        raise


def _id(args: list[str], missing: str) -> str:
    if not args:
        raise CliError(missing)
    return args[0]


# ---------------------------------------------------------------------------- the command line
class Cmd:
    def __init__(self, run, flags: dict | None = None, short: dict | None = None, nargs: int = 0,
                 aliases: tuple = ()):
        self.run, self.flags, self.short = run, flags or {}, short or {}
        self.nargs, self.aliases = nargs, aliases


GLOBAL = {"server": "", "secret": "", "user": "", "json": False, "insecure-tls": False, "tls-cert": []}
GLOBAL_SHORT = {"s": "server", "I": "insecure-tls", "C": "tls-cert"}
ROOT_FLAGS = {"version": False, "help": False}
ROOT_SHORT = {"v": "version", "h": "help"}

TREE = {
    "cluster": {
        "list": Cmd(cluster_list), "info": Cmd(cluster_info, nargs=1),
        "create": Cmd(cluster_create, {"block": True, "file": True}), "delete": Cmd(cluster_delete, nargs=1),
    },
    "node": {
        "list": Cmd(node_list), "info": Cmd(node_info, nargs=1), "delete": Cmd(node_delete, nargs=1),
        "add": Cmd(node_add, {"zone": 0, "cluster": "", "management-host-name": "", "storage-host-name": ""}),
        "enable": Cmd(_state_command("nodes", "online", "online", "Node id missing"), nargs=1),
        "disable": Cmd(_state_command("nodes", "offline", "offline", "Node id missing"), nargs=1),
        "remove": Cmd(_state_command("nodes", "failed", "removed", "Node id missing"), nargs=1),
    },
    "device": {
        "add": Cmd(device_add, {"name": "", "node": "", "destroy-existing-data": False}),
        "info": Cmd(device_info, nargs=1), "delete": Cmd(device_delete, {"force-forget": False}, nargs=1),
        "enable": Cmd(_state_command("devices", "online", "online", "device id missing"), nargs=1),
        "disable": Cmd(_state_command("devices", "offline", "offline", "device id missing"), nargs=1),
        "remove": Cmd(_state_command("devices", "failed", "removed", "Device id missing"), nargs=1),
    },
    "volume": {
        "list": Cmd(volume_list), "info": Cmd(volume_info, nargs=1), "delete": Cmd(volume_delete, nargs=1),
        "create": Cmd(volume_create, {"size": 0, "name": "", "durability": "replicate", "replica": 3,
                                      "disperse-data": 4, "redundancy": 2, "snapshot-factor": 1.0,
                                      "clusters": "", "gluster-volume-options": "", "gid": 0, "block": False,
                                      "persistent-volume": False, "persistent-volume-file": "",
                                      "persistent-volume-endpoint": ""}),
    },
    "topology": {
        "info": Cmd(topology_info, {"template": ""}, {"T": "template"}),
        "load": Cmd(topology_load, {"json": ""}, {"j": "json"}),
    },
    "setup-openshift-heketi-storage": Cmd(
        setup_storage, {"listfile": "heketi-storage.json", "image": "heketi/heketi:dev", "durability": "replicate",
                        "replica": 3, "gluster-volume-options": "", "append-volume-options": "",
                        "node-selector": ""},
        aliases=("setup-heketi-db-storage", "setup-kubernetes-heketi-storage")),
}
# heketi-cli has these too; the stand-in names them and refuses them
NOT_HERE = {
    (): ("blockvolume", "brick", "db", "loglevel", "server"),
    ("cluster",): ("setflags",),
    ("node",): ("settags", "rmtags", "deltags", "removetags"),
    ("device",): ("resync", "settags", "rmtags", "deltags", "removetags"),
    ("volume",): ("expand", "clone", "endpoint", "set-block-hosting-restriction"),
}


def _child(group: dict, name: str):
    if name in group:
        return name, group[name]
    for key, value in group.items():
        if isinstance(value, Cmd) and name in value.aliases:
            return key, value
    return None, None


def _flagset(path: list[str], node) -> tuple[dict, dict]:
    flags, short = dict(GLOBAL), dict(GLOBAL_SHORT)
    if not path:
        flags.update(ROOT_FLAGS)
        short.update(ROOT_SHORT)
    else:
        flags["help"] = False
        short["h"] = "help"
    if isinstance(node, Cmd):   # a command's own flag wins over a global one of the same name
        flags.update(node.flags)
        short.update(node.short)
    return flags, short


def _resolve(argv: list[str]):
    """The command path and the argv indexes of its words (cobra's way: flags may come anywhere;
    an unknown ``--flag`` without ``=`` takes the next word as its value)."""
    path, node, used, i = [], TREE, set(), 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            break
        if tok.startswith("-") and len(tok) > 1:
            flags, short = _flagset(path, node)
            if tok.startswith("--"):
                takes_value = "=" not in tok and not isinstance(flags.get(tok[2:]), bool)
            else:
                takes_value = len(tok) == 2 and not isinstance(flags.get(short.get(tok[1], "")), bool)
            i += 2 if takes_value else 1
            continue
        if not isinstance(node, dict):
            break
        key, child = _child(node, tok)
        if child is None:
            return path, node, used, tok
        path.append(key)
        used.add(i)
        node = child
        i += 1
    return path, node, used, None


def _convert(name: str, kind, text: str):
    try:
        if isinstance(kind, bool):
            low = text.lower()
            if low in ("1", "t", "true"):
                return True
            if low in ("0", "f", "false"):
                return False
            raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')
        if isinstance(kind, int):
            try:
                return int(text, 10)
            except ValueError:
                raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None
        if isinstance(kind, float):
            try:
                return float(text)
            except ValueError:
                raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax') from None
    except ValueError as exc:
        raise CliError(f'invalid argument "{text}" for "--{name}" flag: {exc}') from None
    return text


def _parse(argv: list[str], path: list[str], node, used: set):
    flags, short = _flagset(path, node)
    values = {k: (list(v) if isinstance(v, list) else v) for k, v in flags.items()}
    positional, i = [], 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            positional += argv[i:]
            break
        if not tok.startswith("-") or tok == "-":
            if i - 1 not in used:
                positional.append(tok)
            continue
        if tok.startswith("--"):
            name, eq, text = tok[2:].partition("=")
            if name not in flags:
                raise CliError(f"unknown flag: --{name}")
        else:
            letter, rest = tok[1], tok[2:]
            if letter not in short:
                raise CliError(f"unknown shorthand flag: '{letter}' in {tok}")
            name = short[letter]
            eq, text = ("=", rest[1:]) if rest.startswith("=") else (("=", rest) if rest else ("", ""))
            if rest and isinstance(flags[name], bool) and not rest.startswith("="):
                raise CliError(f"unknown shorthand flag: '{rest[0]}' in {tok}")
        kind = flags[name]
        if not eq:
            if isinstance(kind, bool):
                values[name] = True
                continue
            if i >= len(argv):
                raise CliError(f"flag needs an argument: --{name}")
            text = argv[i]
            i += 1
        if isinstance(kind, list):
            values[name] += [t for t in text.split(",") if t]
        else:
            values[name] = _convert(name, kind, text)
    return values, positional


def _usage(path: list[str], node) -> str:
    name = " ".join([PROG] + path)
    if isinstance(node, dict):
        subs = sorted(node) + sorted(NOT_HERE.get(tuple(path), ()))
        lines = [f"Usage:\n  {name} [command]\n", "Available Commands:"]
        lines += [f"  {s}" + ("" if s in node else "   (not in the lab's stand-in)") for s in subs]
    else:
        lines = [f"Usage:\n  {name} [flags]\n", "Flags:"] + [f"  --{f}" for f in sorted(node.flags)]
    lines += ["", "Global Flags:", "  -s, --server string   Heketi server (env HEKETI_CLI_SERVER, default "
              f"{DEFAULT_SERVER})", "      --user string     Heketi user (env HEKETI_CLI_USER)",
              "      --secret string   Secret key for the user (env HEKETI_CLI_KEY)",
              "      --json            Print response as JSON",
              "", "This heketi-cli is the gfsdeploy lab's stand-in for heketi's client (docs/LAB.md)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, stdout=None, stderr=None, environ=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    environ = os.environ if environ is None else environ
    out = Out(stdout, stderr)
    try:
        path, node, used, word = _resolve(argv)
        if isinstance(node, dict) and word is not None:   # before its flags: they may be that command's
            where = " ".join([PROG] + path)
            if word in NOT_HERE.get(tuple(path), ()):
                raise CliError(f'"{where} {word}" is not implemented by the lab\'s heketi-cli stand-in '
                               f"(it implements: {', '.join(sorted(node))})")
            hint = "" if path else f"\nRun '{PROG} --help' for usage."
            raise CliError(f'unknown command "{word}" for "{where}"{hint}')
        values, positional = _parse(argv, path, node, used)
        if values.get("help"):
            out.write(_usage(path, node))
            return 0
        if isinstance(node, dict):
            if positional:
                raise CliError(f'unexpected argument "{positional[0]}" for "{" ".join([PROG] + path)}"')
            if not path and values.get("version"):
                out.write(f"{PROG} {VERSION}\n")
                return 0
            out.write(_usage(path, node))
            return 0
        if len(positional) > node.nargs:
            extra = positional[node.nargs]
            raise CliError(f'unexpected argument "{extra}" for "{" ".join([PROG] + path)}"')
        server = values["server"] or environ.get("HEKETI_CLI_SERVER") or DEFAULT_SERVER
        user = values["user"] or environ.get("HEKETI_CLI_USER", "")
        key = values["secret"] or environ.get("HEKETI_CLI_KEY", "")
        client = Client(server, user, key, insecure=values["insecure-tls"], cafiles=values["tls-cert"])
        node.run(client, out, values, positional)
        stdout.flush()
        return 0
    except CliError as exc:
        stdout.flush()
        stderr.write(f"Error: {exc}\n")
        stderr.flush()
        return 255
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
