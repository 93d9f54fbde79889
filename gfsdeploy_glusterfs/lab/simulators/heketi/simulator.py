"""A heketi SIMULATOR for the lab — not heketi.

It serves heketi's REST API (the subset gk-deploy and the glusterfs
provisioner use) with heketi's JSON shapes, status codes, error texts, JWT
authentication and async queue, and keeps its database in a JSON file so a
deployment that forgets the DB migration really ends with an empty heketi.

A volume is a directory ``STATE_DIR/volumes/<name>/``: the Kubernetes simulator
mounts it into pods as "the gluster volume". No LVM, no glusterd.

Fault switches are read from ``faults_path`` (JSON) on every request::

    {"hello_fails": true,                      # /hello answers 500
     "unavailable": true,                      # every request answers 503
     "device_add_fails": {"k8s-2": "/dev/sdb"},  # or a list, or {"/dev/sdb": "message"}
     "node_add_fails": {"k8s-3": "message"},
     "volume_create_fails": true,              # or a message, or {"name": "message"}
     "op_delay": 0.5}                          # seconds an async operation stays pending

With ``STATE_DIR/devices.json`` = ``{"k8s-1": {"/dev/sdb": "/dev/loop3"}}`` a device
add probes the backing device with ``blkid -p`` and fails like heketi on a dirty
disk, unless ``destroydata`` was asked (then ``wipefs --all`` cleans it first).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets as _random
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gfsdeploy_glusterfs import jwt

GiB_KiB = 1024 * 1024
HELLO = "Hello from Heketi"
DB_VOLUME = "heketidbstorage"
_DEVICE_NAME = re.compile(r"^/[a-zA-Z0-9_.:/-]+$")
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_UUID = re.compile(r"^[0-9a-f]{32}$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
CONFLICT = "The target exists, contains other items, or is in use."
SETUP_FAILED = "Setup of device {name} failed (already initialized or contains data?): "


class SimError(Exception):
    """An HTTP error answer: status and heketi's text."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


def _new_id() -> str:
    return _random.token_hex(16)


def _is_host(value) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST.match(value))


def _empty_db() -> dict:
    return {"simulator": "gfsdeploy heketi simulator", "version": 1,
            "clusters": {}, "nodes": {}, "devices": {}, "volumes": {}, "bricks": {}}


class HeketiSimulator:
    """heketi's REST API on ``listen`` (port 0 picks a free port), DB in ``db_path``."""

    def __init__(self, config: dict, db_path: str, listen: tuple[str, int], state_dir: str,
                 faults_path: str | None = None, *, op_delay: float = 0.2, device_size_gib: int = 100):
        self.config = config or {}
        self.db_path = db_path
        self.listen = listen
        self.state_dir = state_dir
        self.faults_path = faults_path
        self.op_delay = op_delay
        self.device_size_gib = device_size_gib
        self.use_auth = bool(self.config.get("use_auth", False))
        keys = (self.config.get("jwt") or {})
        self.keys = {who: (keys.get(who) or {}).get("key") for who in ("admin", "user")}
        self.keys = {who: key for who, key in self.keys.items() if key}
        self.db = _empty_db()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status): what tests read
        self._lock = threading.RLock()
        self._queue: dict[str, dict] = {}
        self._timers: list[threading.Timer] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> "HeketiSimulator":
        self.load()
        if not os.path.exists(self.db_path) or os.path.getsize(self.db_path) == 0:
            self.save()  # heketi creates its DB file at start
        os.makedirs(os.path.join(self.state_dir, "volumes"), exist_ok=True)
        handler = type("HeketiSimHandler", (_Handler,), {"sim": self})
        self._server = ThreadingHTTPServer(tuple(self.listen), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="heketi-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2] if self._server else self.listen
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    # -- database ---------------------------------------------------------------
    def load(self) -> None:
        """Load the DB file (missing or empty: an empty heketi)."""
        with self._lock:
            if not os.path.exists(self.db_path) or os.path.getsize(self.db_path) == 0:
                self.db = _empty_db()
                return
            with open(self.db_path, encoding="utf-8") as handle:
                data = json.load(handle)  # a corrupt DB stops heketi from starting, too
            db = _empty_db()
            for key in ("clusters", "nodes", "devices", "volumes", "bricks"):
                db[key] = dict(data.get(key) or {})
            self.db = db

    def save(self) -> None:
        with self._lock:
            os.makedirs(os.path.dirname(os.path.abspath(self.db_path)), exist_ok=True)
            tmp = f"{self.db_path}.tmp{os.getpid()}.{threading.get_ident()}"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(self.db, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.db_path)

    def faults(self) -> dict:
        if not self.faults_path:
            return {}
        try:
            with open(self.faults_path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- request handling --------------------------------------------------------
    def handle(self, method: str, path: str, headers, body: bytes):
        """Return (status, headers dict, body bytes)."""
        faults = self.faults()
        if faults.get("unavailable"):
            return 503, {}, b"simulated outage (heketi simulator fault 'unavailable')\n"
        path = path.split("?", 1)[0]
        if path == "/hello" and method == "GET":
            fail = faults.get("hello_fails")
            if fail:
                text = fail if isinstance(fail, str) else "simulated failure (heketi simulator fault 'hello_fails')"
                return 500, {}, (text + "\n").encode()
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, HELLO.encode()
        if self.use_auth:
            problem = self._authenticate(method, path, headers)
            if problem:
                return problem[0], {}, (problem[1] + "\n").encode()
        try:
            return self._route(method, path, body, faults)
        except SimError as exc:
            return exc.status, {}, (exc.text + "\n").encode()

    def _authenticate(self, method: str, path: str, headers):
        auth = headers.get("Authorization") or ""
        if not auth:
            return 401, "Required authorization token not found"
        parts = auth.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return 400, "Authorization header format must be Bearer {token}"
        try:
            claims = jwt.verify_heketi(parts[1], self.keys, method, path)
        except jwt.JwtError as exc:
            text = str(exc)
            if text == "Invalid qsh claim in token":
                return 401, text
            return 401, f"Invalid JWT token: {text}"
        if claims.get("iss") == "user" and path != "/volumes":  # heketi's exact rule
            return 401, "Administrator access required"
        return None

    def _route(self, method: str, path: str, body: bytes, faults: dict):
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise SimError(404, "404 page not found")
        kind, ident = parts[0], (parts[1] if len(parts) > 1 else None)
        if len(parts) > 2:
            raise SimError(404, "404 page not found")
        if kind == "backup" and ident == "db" and method == "GET":
            with self._lock:
                self.save()
                with open(self.db_path, "rb") as handle:
                    data = handle.read()
            return 200, {"Content-Type": "application/octet-stream",
                         "Content-Disposition": 'attachment; filename="heketi.db"'}, data
        if kind == "queue" and ident and method == "GET":
            return self._queue_status(ident)
        table = {
            ("clusters", False, "GET"): lambda: self._json({"clusters": sorted(self.db["clusters"])}),
            ("clusters", False, "POST"): lambda: self._cluster_create(body),
            ("clusters", True, "GET"): lambda: self._json(self._cluster_info(ident)),
            ("clusters", True, "DELETE"): lambda: self._cluster_delete(ident),
            ("nodes", False, "POST"): lambda: self._node_add(body, faults),
            ("nodes", True, "GET"): lambda: self._json(self._node_info(ident)),
            ("nodes", True, "DELETE"): lambda: self._node_delete(ident),
            ("devices", False, "POST"): lambda: self._device_add(body, faults),
            ("devices", True, "GET"): lambda: self._json(self._device_info(ident)),
            ("devices", True, "DELETE"): lambda: self._device_delete(ident),
            ("volumes", False, "GET"): lambda: self._json({"volumes": sorted(self.db["volumes"])}),
            ("volumes", False, "POST"): lambda: self._volume_create(body, faults),
            ("volumes", True, "GET"): lambda: self._json(self._volume_info(ident)),
            ("volumes", True, "DELETE"): lambda: self._volume_delete(ident),
        }
        action = table.get((kind, ident is not None, method))
        if action is None:
            if any(k == kind and has == (ident is not None) for k, has, _ in table):
                raise SimError(405, "Method Not Allowed")
            raise SimError(404, "404 page not found")
        with self._lock:
            return action()

    @staticmethod
    def _json(obj, status: int = 200):
        return status, {"Content-Type": "application/json; charset=UTF-8"}, (json.dumps(obj) + "\n").encode()

    @staticmethod
    def _parse(body: bytes) -> dict:
        try:
            data = json.loads(body or b"")
        except ValueError:
            raise SimError(422, "request unable to be parsed") from None
        if not isinstance(data, dict):
            raise SimError(422, "request unable to be parsed")
        return data

    # -- async queue --------------------------------------------------------------
    def _async(self, operation, faults: dict):
        """heketi's AsyncHttpRedirectFunc: 202 now, the result later at /queue/ID."""
        op_id = _new_id()
        entry = {"done": False, "status": 0, "location": "", "text": ""}
        self._queue[op_id] = entry

        def run():
            with self._lock:
                try:
                    location = operation()
                    entry.update(done=True, status=303 if location else 204, location=location or "")
                except SimError as exc:
                    entry.update(done=True, status=500, text=exc.text)
                except Exception as exc:  # a simulator bug must still answer, like heketi's 500
                    entry.update(done=True, status=500, text=f"simulator error: {exc}")

        delay = faults.get("op_delay", self.op_delay)
        try:
            delay = max(0.0, float(delay))
        except (TypeError, ValueError):
            delay = self.op_delay
        timer = threading.Timer(delay, run)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        return 202, {"Location": f"/queue/{op_id}"}, b""

    def _queue_status(self, op_id: str):
        with self._lock:
            entry = self._queue.get(op_id)
            if entry is None:
                raise SimError(404, "Id not found")
            if not entry["done"]:
                return 200, {"X-Pending": "true"}, b""
            del self._queue[op_id]  # heketi forgets a finished operation once it is read
            if entry["status"] == 303:
                return 303, {"Location": entry["location"]}, b""
            if entry["status"] == 204:
                return 204, {}, b""
            return 500, {}, (entry["text"] + "\n").encode()

    # -- clusters -------------------------------------------------------------------
    def _cluster_info(self, cluster_id: str) -> dict:
        cluster = self.db["clusters"].get(cluster_id)
        if cluster is None:
            raise SimError(404, "Id not found")
        return {"id": cluster_id, "nodes": sorted(cluster["nodes"]), "volumes": sorted(cluster["volumes"]),
                "block": cluster.get("block", True), "file": cluster.get("file", True), "blockvolumes": []}

    def _cluster_create(self, body: bytes):
        data = self._parse(body) if body else {}
        cluster_id = _new_id()
        file_, block = data.get("file", True), data.get("block", True)
        if not data:
            file_ = block = True
        self.db["clusters"][cluster_id] = {"id": cluster_id, "nodes": [], "volumes": [],
                                           "file": bool(file_), "block": bool(block)}
        self.save()
        return self._json(self._cluster_info(cluster_id), 201)

    def _cluster_delete(self, cluster_id: str):
        cluster = self.db["clusters"].get(cluster_id)
        if cluster is None:
            raise SimError(404, "Id not found")
        if cluster["nodes"] or cluster["volumes"]:
            raise SimError(409, CONFLICT)
        del self.db["clusters"][cluster_id]
        self.save()
        return 200, {}, b""

    # -- nodes ---------------------------------------------------------------------
    def _node_info(self, node_id: str) -> dict:
        node = self.db["nodes"].get(node_id)
        if node is None:
            raise SimError(404, "Id not found")
        info = {"zone": node["zone"], "hostnames": node["hostnames"], "cluster": node["cluster"],
                "id": node_id, "state": node.get("state", "online"),
                "devices": [self._device_info(d) for d in node["devices"]]}
        if node.get("tags"):
            info["tags"] = node["tags"]
        return info

    def _hostname_owner(self, kind: str, host: str, ignore: str = "") -> str | None:
        for node in self.db["nodes"].values():
            if node["id"] != ignore and host in node["hostnames"][kind]:
                return node["id"]
        return None

    def _node_add(self, body: bytes, faults: dict):
        data = self._parse(body)
        hostnames = data.get("hostnames") or {}
        manage, storage = hostnames.get("manage") or [], hostnames.get("storage") or []
        if not isinstance(manage, list) or not manage:
            raise SimError(400, "Manage hostname missing")
        if not isinstance(storage, list) or not storage:
            raise SimError(400, "Storage hostname missing")
        zone = data.get("zone")
        if not zone:
            raise SimError(400, "Zone cannot be zero or value is missing")
        if not isinstance(zone, int) or isinstance(zone, bool) or zone < 1:
            raise SimError(400, "zone: must be no less than 1.")
        for kind, names in (("manage", manage), ("storage", storage)):
            for name in names:
                if name == "":
                    raise SimError(400, "Hostname cannot be an empty string")
                if not _is_host(name):
                    raise SimError(400, f"hostnames: ({kind}: {names} is not a valid {kind} hostname.).")
        cluster_id = data.get("cluster") or ""
        if not _UUID.match(str(cluster_id)):
            raise SimError(400, f"cluster: {cluster_id} is not a valid UUID.")
        if cluster_id not in self.db["clusters"]:
            raise SimError(404, "Cluster id does not exist")
        self._check_hostnames(manage, storage)
        node_id = _new_id()
        fail = faults.get("node_add_fails") or {}

        def operation():
            self._check_hostnames(manage, storage)  # a concurrent add may have won
            if isinstance(fail, dict) and manage[0] in fail:
                message = fail[manage[0]]
                raise SimError(500, message if isinstance(message, str) else
                               "peer probe: failed: Probe returned with Transport endpoint is not connected")
            cluster = self.db["clusters"].get(cluster_id)
            if cluster is None:
                raise SimError(500, "Id not found")
            self.db["nodes"][node_id] = {"id": node_id, "cluster": cluster_id, "zone": zone,
                                         "hostnames": {"manage": list(manage), "storage": list(storage)},
                                         "state": "online", "devices": [], "tags": data.get("tags") or {}}
            cluster["nodes"].append(node_id)
            self.save()
            return f"/nodes/{node_id}"

        return self._async(operation, faults)

    def _check_hostnames(self, manage, storage):
        for kind, names in (("manage", manage), ("storage", storage)):
            for name in names:
                owner = self._hostname_owner(kind, name)
                if owner:
                    raise SimError(409, f"Hostname {name} already used by node with id {owner}")

    def _node_delete(self, node_id: str):
        node = self.db["nodes"].get(node_id)
        if node is None:
            raise SimError(404, "Id not found")
        if node["devices"]:
            raise SimError(409, CONFLICT)

        def operation():
            if node_id in self.db["nodes"]:
                cluster = self.db["clusters"].get(node["cluster"])
                if cluster and node_id in cluster["nodes"]:
                    cluster["nodes"].remove(node_id)
                del self.db["nodes"][node_id]
                self.save()
            return None

        return self._async(operation, {})

    # -- devices ----------------------------------------------------------------------
    def _brick_info(self, brick_id: str) -> dict:
        brick = self.db["bricks"][brick_id]
        return {k: brick[k] for k in ("id", "path", "device", "node", "volume", "size")}

    def _device_info(self, device_id: str) -> dict:
        device = self.db["devices"].get(device_id)
        if device is None:
            raise SimError(404, "Id not found")
        return {"name": device["name"], "storage": dict(device["storage"]), "id": device_id,
                "state": device.get("state", "online"),
                "bricks": [self._brick_info(b) for b in device["bricks"]]}

    def _device_add(self, body: bytes, faults: dict):
        data = self._parse(body)
        name = data.get("name") or ""
        if not name:
            raise SimError(400, "name: cannot be blank.")
        if not isinstance(name, str) or not _DEVICE_NAME.match(name):
            raise SimError(400, "name: must be in a valid format.")
        node_id = str(data.get("node") or "")
        if not _UUID.match(node_id):
            raise SimError(400, f"node: {node_id} is not a valid UUID.")
        destroy = bool(data.get("destroydata", False))
        node = self.db["nodes"].get(node_id)
        if node is None:
            raise SimError(404, "Node id does not exist")
        self._check_device(node, name)
        device_id = _new_id()
        manage = node["hostnames"]["manage"][0]
        failing = self._device_fault(faults.get("device_add_fails"), manage, name)

        def operation():
            current = self.db["nodes"].get(node_id)
            if current is None:
                raise SimError(500, "Id not found")
            self._check_device(current, name)
            if failing is not None:
                raise SimError(500, failing)
            total_kib = self._prepare_backing(manage, name, destroy)
            self.db["devices"][device_id] = {
                "id": device_id, "name": name, "node": node_id, "state": "online",
                "storage": {"total": total_kib, "free": total_kib, "used": 0}, "bricks": []}
            current["devices"].append(device_id)
            self.save()
            return None  # heketi answers 204 for a device add

        return self._async(operation, faults)

    def _check_device(self, node: dict, name: str):
        for device_id in node["devices"]:
            if self.db["devices"][device_id]["name"] == name:
                raise SimError(409, f"Device {name} is already used on node {node['id']} by device {device_id}")

    @staticmethod
    def _device_fault(spec, manage: str, name: str) -> str | None:
        """The heketi error text to fail this device add with, or None."""
        if not isinstance(spec, dict) or manage not in spec:
            return None
        chosen = spec[manage]
        default = SETUP_FAILED.format(name=name) + f"  Device {name} excluded by a filter.\n"
        if chosen is True or chosen == "*":
            return default
        if isinstance(chosen, str):
            return default if chosen == name else None
        if isinstance(chosen, list):
            return default if name in chosen else None
        if isinstance(chosen, dict) and name in chosen:
            message = chosen[name]
            return message if isinstance(message, str) and message else default
        return None

    def _backing(self, manage: str, name: str) -> str | None:
        try:
            with open(os.path.join(self.state_dir, "devices.json"), encoding="utf-8") as handle:
                mapping = json.load(handle)
        except (OSError, ValueError):
            return None
        return ((mapping or {}).get(manage) or {}).get(name)

    def _prepare_backing(self, manage: str, name: str, destroy: bool) -> int:
        """Check (or wipe) the lab's backing device like heketi's pvcreate would; return KiB."""
        backing = self._backing(manage, name)
        if not backing:
            return self.device_size_gib * GiB_KiB
        if not os.path.exists(backing):
            raise SimError(500, SETUP_FAILED.format(name=name) + f"  Device {name} not found.")
        if destroy:
            wiped = subprocess.run(["wipefs", "--all", backing], capture_output=True, text=True)
            if wiped.returncode != 0:
                raise SimError(500, SETUP_FAILED.format(name=name) +
                               f"wipefs: error: {name}: {wiped.stderr.strip().split(': ')[-1]}")
        probe = subprocess.run(["blkid", "-p", "-o", "export", backing], capture_output=True, text=True)
        found = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
        kind = found.get("TYPE") or found.get("PTTYPE")
        if kind == "LVM2_member":
            raise SimError(500, SETUP_FAILED.format(name=name) +
                           f'  Can\'t initialize physical volume "{name}" of volume group '
                           f'"vg_{_new_id()}" without -ff\n  {name}: physical volume not initialized.')
        if kind:
            raise SimError(500, f"Initializing device {name} failed (already initialized or contains data?): "
                                f"WARNING: {kind} signature detected on {name} at offset 0. Wipe it? [y/n]: [n]\n"
                                f"  Aborted wiping of {kind}.\n  1 existing signature left on the device.")
        try:
            fd = os.open(backing, os.O_RDONLY)
            try:
                size = os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
        except OSError:
            size = 0
        return size // 1024 if size else self.device_size_gib * GiB_KiB

    def _device_delete(self, device_id: str):
        device = self.db["devices"].get(device_id)
        if device is None:
            raise SimError(404, "Id not found")
        if device["bricks"]:
            raise SimError(409, CONFLICT)

        def operation():
            if device_id in self.db["devices"]:
                node = self.db["nodes"].get(device["node"])
                if node and device_id in node["devices"]:
                    node["devices"].remove(device_id)
                del self.db["devices"][device_id]
                self.save()
            return None

        return self._async(operation, {})

    # -- volumes ------------------------------------------------------------------------
    def volume_dir(self, name: str) -> str:
        return os.path.join(self.state_dir, "volumes", name)

    def _volume_info(self, volume_id: str) -> dict:
        volume = self.db["volumes"].get(volume_id)
        if volume is None:
            raise SimError(404, "Id not found")
        info = {k: v for k, v in volume.items() if k != "bricks"}
        info["bricks"] = [self._brick_info(b) for b in volume["bricks"]]
        return info

    def _volume_create(self, body: bytes, faults: dict):
        data = self._parse(body)
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise SimError(400, "size: must be no less than 1.")
        name = data.get("name") or ""
        if name and (not isinstance(name, str) or not _VOLUME_NAME.match(name)):
            raise SimError(400, "name: must be in a valid format.")
        durability = data.get("durability") or {}
        kind = durability.get("type") or "none"
        if kind == "replicate":
            replica = int((durability.get("replicate") or {}).get("replica") or 3)
        elif kind == "none":
            replica = 1
        else:
            raise SimError(400, f"Durability type {kind} is not supported by the heketi simulator")
        if not self.db["clusters"]:
            raise SimError(400, "No clusters configured")
        wanted = data.get("clusters") or []
        for cluster_id in wanted:
            if cluster_id not in self.db["clusters"]:
                raise SimError(404, f"Cluster id {cluster_id} not found")
        volume_id = _new_id()
        name = name or f"vol_{volume_id}"
        fail = faults.get("volume_create_fails")

        def operation():
            if fail and (not isinstance(fail, dict) or name in fail):
                message = fail.get(name) if isinstance(fail, dict) else fail
                raise SimError(500, message if isinstance(message, str) and message else
                               "volume create: simulated failure (heketi simulator fault 'volume_create_fails')")
            candidates = [c for c in (wanted or sorted(self.db["clusters"]))
                          if not any(self.db["volumes"][v]["name"] == name
                                     for v in self.db["clusters"][c]["volumes"])]
            if not candidates:
                raise SimError(500, f"Name {name} is already in use in all available clusters")
            for cluster_id in candidates:
                placement = self._allocate(cluster_id, size * GiB_KiB, replica)
                if placement:
                    break
            else:
                raise SimError(500, "No space")
            self._create_volume(volume_id, name, size, replica, kind, cluster_id, placement)
            return f"/volumes/{volume_id}"

        return self._async(operation, faults)

    def _allocate(self, cluster_id: str, kib: int, replica: int):
        """One brick per node on its emptiest device with room; None if fewer than ``replica`` nodes fit."""
        choices = []
        for node_id in self.db["clusters"][cluster_id]["nodes"]:
            node = self.db["nodes"][node_id]
            devices = [self.db["devices"][d] for d in node["devices"]
                       if self.db["devices"][d]["storage"]["free"] >= kib
                       and self.db["devices"][d].get("state", "online") == "online"]
            if devices and node.get("state", "online") == "online":
                choices.append((node, max(devices, key=lambda d: d["storage"]["free"])))
        if len(choices) < replica:
            return None
        choices.sort(key=lambda pair: -pair[1]["storage"]["free"])
        return choices[:replica]

    def _create_volume(self, volume_id, name, size, replica, kind, cluster_id, placement):
        kib = size * GiB_KiB
        bricks, hosts = [], []
        for node, device in placement:
            brick_id = _new_id()
            self.db["bricks"][brick_id] = {
                "id": brick_id, "device": device["id"], "node": node["id"], "volume": volume_id, "size": kib,
                "path": f"/var/lib/heketi/mounts/vg_{device['id']}/brick_{brick_id}/brick"}
            device["bricks"].append(brick_id)
            device["storage"]["free"] -= kib
            device["storage"]["used"] += kib
            bricks.append(brick_id)
            hosts.append(node["hostnames"]["storage"][0])
        durability = {"type": kind, "replicate": {"replica": replica} if kind == "replicate" else {},
                      "disperse": {}}
        self.db["volumes"][volume_id] = {
            "size": size, "name": name, "durability": durability, "snapshot": {"enable": False, "factor": 1},
            "id": volume_id, "cluster": cluster_id, "gid": 0, "glustervolumeoptions": [], "block": False,
            "mount": {"glusterfs": {"hosts": hosts, "device": f"{hosts[0]}:{name}",
                                    "options": {"backup-volfile-servers": ",".join(hosts[1:])}}},
            "blockinfo": {}, "bricks": bricks}
        self.db["clusters"][cluster_id]["volumes"].append(volume_id)
        os.makedirs(self.volume_dir(name), exist_ok=True)
        self.save()

    def _volume_delete(self, volume_id: str):
        volume = self.db["volumes"].get(volume_id)
        if volume is None:
            raise SimError(404, "Id not found")
        if volume["name"] == DB_VOLUME:
            raise SimError(409, "Cannot delete volume containing the Heketi database")

        def operation():
            if volume_id not in self.db["volumes"]:
                return None
            for brick_id in volume["bricks"]:
                brick = self.db["bricks"].pop(brick_id, None)
                device = self.db["devices"].get(brick["device"]) if brick else None
                if device:
                    device["bricks"].remove(brick_id)
                    device["storage"]["free"] += brick["size"]
                    device["storage"]["used"] -= brick["size"]
            cluster = self.db["clusters"].get(volume["cluster"])
            if cluster and volume_id in cluster["volumes"]:
                cluster["volumes"].remove(volume_id)
            del self.db["volumes"][volume_id]
            shutil.rmtree(self.volume_dir(volume["name"]), ignore_errors=True)
            self.save()
            return None

        return self._async(operation, {})


class _Handler(BaseHTTPRequestHandler):
    sim: HeketiSimulator
    server_version = "heketi-simulator"

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self.sim.handle(self.command, self.path, self.headers, body)
        except Exception as exc:  # never hang a client on a simulator bug
            status, headers, payload = 500, {}, f"simulator error: {exc}\n".encode()
        self.sim.requests.append((self.command, self.path, status))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Type" not in headers and payload:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = _serve

    def log_message(self, format, *args):  # keep test output quiet
        pass
