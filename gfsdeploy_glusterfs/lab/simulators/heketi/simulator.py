"""A heketi SIMULATOR for the lab — not heketi, but its work is real.

It serves heketi's REST API (the subset gk-deploy, the glusterfs provisioner and
heketi's own clients use) with heketi's JSON shapes, status codes, error texts, JWT
authentication and async queue, and keeps its database in a JSON file (in the lab: on
the heketi pod's volume, so a deployment that forgets the DB migration really ends
with an empty heketi).

GlusterFS work goes through the glusterfs pods, as heketi's kubernetes executor does it
(``executor.PodExecutor``): ``systemctl status glusterd`` before a node joins,
``gluster peer probe`` from a node already in the cluster, a filesystem on each device
(device-mapper is not available in the lab: one XFS filesystem per device, mounted at
``/var/lib/heketi/mounts/vg_<device id>`` and listed in heketi's fstab, where heketi
would make an LVM volume group and a thin LV per brick), a directory per brick on it, and
``gluster volume create <name> replica N host:brick ...`` + ``start``. What the REST API
refuses, it refuses as heketi does (replica above 3, device delete before the device
failed, hostnames already used, ...).

Fault switches are read from ``faults_path`` (JSON) on every request::

    {"hello_fails": true,                      # /hello answers 500
     "unavailable": true,                      # every request answers 503
     "device_add_fails": {"k8s-2": "/dev/sdb"},  # or a list, or {"/dev/sdb": "message"}
     "node_add_fails": {"k8s-3": "message"},
     "volume_create_fails": true,              # or a message, or {"name": "message"}
     "op_delay": 0.5}                          # seconds an async operation stays pending
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets as _random
import shlex
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gfsdeploy_glusterfs import jwt
from gfsdeploy_glusterfs.lab.simulators.heketi.executor import ExecFailure, NoExecutor

GiB_KiB = 1024 * 1024
HELLO = "Hello from Heketi"
DB_VOLUME = "heketidbstorage"
_DEVICE_NAME = re.compile(r"^/[a-zA-Z0-9_.:/-]+$")
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_UUID = re.compile(r"^[0-9a-f]{32}$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
CONFLICT = "The target exists, contains other items, or is in use."
SETUP_FAILED = "Setup of device {name} failed (already initialized or contains data?): "
MOUNTS = "/var/lib/heketi/mounts"
MOUNT_OPTS = "rw,inode64,noatime,nouuid"
GLUSTER = "gluster --mode=script --timeout=600"
STATES = ("online", "offline", "failed")


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
                 faults_path: str | None = None, *, op_delay: float = 0.2, executor=None,
                 fstab: str = "/var/lib/heketi/fstab", snapshot_limit: int = 0, log=None):
        self.config = config or {}
        self.db_path = db_path
        self.listen = listen
        self.state_dir = state_dir
        self.faults_path = faults_path
        self.op_delay = op_delay
        self.executor = executor or NoExecutor()
        self.fstab = fstab
        self.log = log or (lambda msg: None)
        self.snapshot_limit = snapshot_limit
        self.use_auth = bool(self.config.get("use_auth", False))
        keys = (self.config.get("jwt") or {})
        self.keys = {who: (keys.get(who) or {}).get("key") for who in ("admin", "user")}
        self.keys = {who: key for who, key in self.keys.items() if key}
        self.db = _empty_db()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status): what tests read
        self._lock = threading.RLock()          # the DB
        self._queue_lock = threading.Lock()
        self._queue: dict[str, dict] = {}
        self._timers: list[threading.Timer] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._handler = None
        self._extra: list = []                  # (server, thread) of serve_on sockets

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> "HeketiSimulator":
        self.load()
        if not os.path.exists(self.db_path) or os.path.getsize(self.db_path) == 0:
            self.save()  # heketi creates its DB file at start
        self._handler = handler = type("HeketiSimHandler", (_Handler,), {"sim": self})
        self._server = ThreadingHTTPServer(tuple(self.listen), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="heketi-simulator", daemon=True)
        self._thread.start()
        return self

    def serve_on(self, sock) -> None:
        """Answer on one more, already listening, socket too (e.g. localhost in a pod's netns)."""
        server = ThreadingHTTPServer(sock.getsockname()[:2], self._handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="heketi-simulator-extra", daemon=True)
        thread.start()
        self._extra.append((server, thread))

    def stop(self) -> None:
        for server, thread in self._extra:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._extra.clear()
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
            # operations that were running when this DB was saved never finished
            for volume_id in [v for v, vol in db["volumes"].items() if vol.get("pending")]:
                self._forget_volume(volume_id)
            for kind in ("nodes", "devices"):
                for ident in [i for i, entry in db[kind].items() if entry.get("pending")]:
                    del db[kind][ident]

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
        if len(parts) == 3 and parts[2] == "state" and kind in ("nodes", "devices") and method == "POST":
            with self._lock:
                return self._set_state(kind, ident, body)
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
            ("volumes", False, "GET"): lambda: self._volume_list(),
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
            try:
                location = operation()
                result = dict(done=True, status=303 if location else 204, location=location or "")
            except SimError as exc:
                result = dict(done=True, status=500, text=exc.text)
            except Exception as exc:  # a simulator bug must still answer, like heketi's 500
                result = dict(done=True, status=500, text=f"simulator error: {exc}")
            with self._queue_lock:
                entry.update(result)

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
        with self._queue_lock:
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

    # -- running commands in the glusterfs pods ---------------------------------------
    def _exec(self, host: str, commands: list[str], timeout_minutes: int = 10) -> list[str]:
        """Run COMMANDS one by one in HOST's glusterfs pod (stop at the first failure, whose
        text becomes the operation's error, as in heketi)."""
        out = []
        for command in commands:
            self.log(f"[heketi-sim] {host}: {command}")
            try:
                out.append(self.executor.run(host, command, timeout_minutes))
            except ExecFailure as exc:
                self.log(f"[heketi-sim] {host}: failed: {exc}")
                raise SimError(500, str(exc)) from None
        return out

    def _glusterd_ok(self, host: str) -> bool:
        """heketi's node check: `systemctl status glusterd` in the node's glusterfs pod."""
        try:
            self.executor.run(host, "systemctl status glusterd", 10)
            return True
        except ExecFailure as exc:
            self.log(f"[heketi-sim] {host}: glusterd check failed: {exc}")
            return False

    def _verified_manage_host(self, cluster_id: str, exclude: str = "") -> str | None:
        """A node of the cluster whose glusterd answers (heketi runs gluster commands there)."""
        for node_id in self.db["clusters"][cluster_id]["nodes"]:
            node = self.db["nodes"].get(node_id)
            if node and node_id != exclude and node.get("state", "online") == "online":
                host = node["hostnames"]["manage"][0]
                if self._glusterd_ok(host):
                    return host
        return None

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
        # heketi answers these synchronously: with nodes in the cluster, one of them must run
        # glusterd (it probes the new node); a first node must run glusterd itself
        peer = ""
        if self.db["clusters"][cluster_id]["nodes"]:
            peer = self._verified_manage_host(cluster_id)
            if not peer:
                raise SimError(400, "None of the nodes in cluster has glusterd running")
        elif not self._glusterd_ok(manage[0]):
            raise SimError(400, "New Node doesn't have glusterd running")
        node_id = _new_id()
        fail = faults.get("node_add_fails") or {}
        # registered now (hostnames taken), in the cluster only once the probe worked
        self.db["nodes"][node_id] = {"id": node_id, "cluster": cluster_id, "zone": zone,
                                     "hostnames": {"manage": list(manage), "storage": list(storage)},
                                     "state": "online", "devices": [], "tags": data.get("tags") or {},
                                     "pending": True}

        def operation():
            try:
                if isinstance(fail, dict) and manage[0] in fail:
                    message = fail[manage[0]]
                    raise SimError(500, message if isinstance(message, str) else
                                   "peer probe: failed: Probe returned with Transport endpoint is not connected")
                if peer:
                    self._exec(peer, [f"{GLUSTER} peer probe {shlex.quote(storage[0])}"])
                    self._wait_connected(cluster_id, storage[0])
                    if self.snapshot_limit > 0:
                        self._exec(peer, [f"{GLUSTER} snapshot config snap-max-hard-limit {self.snapshot_limit}"])
            except SimError:
                with self._lock:
                    self.db["nodes"].pop(node_id, None)
                raise
            with self._lock:
                cluster = self.db["clusters"].get(cluster_id)
                node = self.db["nodes"].get(node_id)
                if cluster is None or node is None:
                    raise SimError(500, "Id not found")
                node.pop("pending", None)
                cluster["nodes"].append(node_id)
                self.save()
            return f"/nodes/{node_id}"

        return self._async(operation, faults)

    def _wait_connected(self, cluster_id: str, storage: str, timeout: float = 30.0) -> None:
        """After a probe, until every member lists the new peer as Connected (bounded).

        glusterd answers `peer probe` once the probing node has its new friend; the other
        members learn of it a moment later. A volume create in that moment fails with
        "Staging failed on A. Error: Host B not connected" — a window the lab's deployment
        steps, seconds apart, hit on a fast machine. heketi itself does not wait here; the lab
        does, so that its runs do not depend on that race (docs/LAB.md)."""
        with self._lock:
            members = [self.db["nodes"][n]["hostnames"]["manage"][0]
                       for n in self.db["clusters"][cluster_id]["nodes"]
                       if n in self.db["nodes"] and self.db["nodes"][n].get("state", "online") == "online"]
        deadline = time.monotonic() + timeout
        for host in members:
            while True:
                try:
                    listing = self.executor.run(host, f"{GLUSTER} pool list", 1)
                except ExecFailure:
                    listing = ""
                if any(line.split()[1:3] == [storage, "Connected"] for line in listing.splitlines()
                       if len(line.split()) >= 3):
                    break
                if time.monotonic() > deadline:
                    self.log(f"[heketi-sim] {host}: {storage} not Connected after {timeout:.0f}s; going on")
                    return
                time.sleep(0.5)

    def _check_hostnames(self, manage, storage):
        for kind, names in (("manage", manage), ("storage", storage)):
            for name in names:
                owner = self._hostname_owner(kind, name)
                if owner:
                    raise SimError(409, f"Hostname {name} already used by node with id {owner}")

    def _node_delete(self, node_id: str):
        node = self.db["nodes"].get(node_id)
        if node is None or node.get("pending"):
            raise SimError(404, "Id not found")
        if node["devices"]:
            raise SimError(409, f"Unable to delete node [{node_id}] because it contains devices")
        peer = self._verified_manage_host(node["cluster"], exclude=node_id)

        def operation():
            if peer:   # heketi logs a failed detach and goes on
                try:
                    self._exec(peer, [f"{GLUSTER} peer detach {shlex.quote(node['hostnames']['storage'][0])}"])
                except SimError:
                    pass
            with self._lock:
                if node_id in self.db["nodes"]:
                    cluster = self.db["clusters"].get(node["cluster"])
                    if cluster and node_id in cluster["nodes"]:
                        cluster["nodes"].remove(node_id)
                    del self.db["nodes"][node_id]
                    self.save()
            return None

        return self._async(operation, {})

    def _set_state(self, kind: str, ident: str, body: bytes):
        """POST /nodes/{id}/state, /devices/{id}/state: online <-> offline, offline -> failed
        (heketi then moves the bricks away; the simulator only allows it without bricks)."""
        table = self.db[kind]
        entry = table.get(ident)
        if entry is None or entry.get("pending"):
            raise SimError(404, "Id not found")
        want = self._parse(body).get("state")
        if want not in STATES:
            raise SimError(400, "state: must be a valid value.")
        have = entry.get("state", "online")
        allowed = {"online": ("online", "offline"), "offline": ("online", "offline", "failed"),
                   "failed": ("failed", "offline")}[have]
        if want not in allowed:
            raise SimError(400, f"Cannot move {kind[:-1]} from state {have} to state {want}")
        bricks = (entry["bricks"] if kind == "devices"
                  else [b for d in entry["devices"] for b in self.db["devices"][d]["bricks"]])
        if want == "failed" and bricks:
            raise SimError(500, f"Unable to remove {kind[:-1]} {ident}: it has {len(bricks)} brick(s) and the "
                                "heketi simulator does not move bricks to other devices")
        entry["state"] = want
        self.save()
        return 200, {}, b""

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
        if node is None or node.get("pending"):
            raise SimError(404, "Node id does not exist")
        self._check_device(node, name)
        device_id = _new_id()
        manage = node["hostnames"]["manage"][0]
        failing = self._device_fault(faults.get("device_add_fails"), manage, name)
        # registered now (the name is taken), on the node once its filesystem is made
        self.db["devices"][device_id] = {"id": device_id, "name": name, "node": node_id, "state": "online",
                                         "storage": {"total": 0, "free": 0, "used": 0}, "bricks": [],
                                         "pending": True}

        def operation():
            try:
                if failing is not None:
                    raise SimError(500, failing)
                total_kib = self._device_setup(manage, name, device_id, destroy)
            except SimError:
                with self._lock:
                    self.db["devices"].pop(device_id, None)
                raise
            with self._lock:
                current = self.db["nodes"].get(node_id)
                device = self.db["devices"].get(device_id)
                if current is None or device is None:
                    raise SimError(500, "Id not found")
                device.pop("pending", None)
                device["storage"] = {"total": total_kib, "free": total_kib, "used": 0}
                current["devices"].append(device_id)
                self.save()
            return None  # heketi answers 204 for a device add

        return self._async(operation, faults)

    def _check_device(self, node: dict, name: str):
        for device_id, device in self.db["devices"].items():
            if device["node"] == node["id"] and device["name"] == name:
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

    def _device_setup(self, host: str, name: str, device_id: str, destroy: bool) -> int:
        """Make DEVICE a brick store in HOST's glusterfs pod; its size in KiB.

        heketi: `wipefs --all` (destroydata), `pvcreate` (refusing a device with a signature),
        `vgcreate vg_<id>`. Here: the same wipe and refusal, then one XFS filesystem for the
        device, mounted at MOUNTS/vg_<id> and recorded in heketi's fstab (the glusterfs pod
        mounts it again after a restart)."""
        dev = shlex.quote(name)
        if destroy:
            try:
                self._exec(host, [f"wipefs --all {dev}"], 5)
            except SimError as exc:
                raise SimError(500, SETUP_FAILED.format(name=name) + exc.text) from None
        probe = self._exec(host, [f"test -b {dev} || {{ echo 'Device {name} not found.' >&2; exit 1; }}; "
                                  f"blkid -p -o export {dev} || true"], 5)[0]
        found = dict(line.split("=", 1) for line in probe.splitlines() if "=" in line)
        kind = found.get("TYPE") or found.get("PTTYPE")
        if kind == "LVM2_member":
            raise SimError(500, SETUP_FAILED.format(name=name) +
                           f'  Can\'t initialize physical volume "{name}" of volume group '
                           f'"vg_{_new_id()}" without -ff\n  {name}: physical volume not initialized.')
        if kind:
            raise SimError(500, f"Initializing device {name} failed (already initialized or contains data?): "
                                f"WARNING: {kind} signature detected on {name} at offset 0. Wipe it? [y/n]: [n]\n"
                                f"  Aborted wiping of {kind}.\n  1 existing signature left on the device.")
        mount = f"{MOUNTS}/vg_{device_id}"
        fstab = shlex.quote(self.fstab)
        out = self._exec(host, [
            f"mkfs.xfs -q -i size=512 -n size=8192 {dev}",
            f"mkdir -p {mount}",
            f"mkdir -p \"$(dirname {fstab})\" && echo {shlex.quote(f'{name} {mount} xfs {MOUNT_OPTS} 1 2')} >> {fstab}",
            f"mount -o {MOUNT_OPTS} {dev} {mount}",
            f"df -k --output=size {mount} | tail -n 1",
        ], 5)
        return int(out[-1].strip())

    def _device_delete(self, device_id: str):
        device = self.db["devices"].get(device_id)
        if device is None or device.get("pending"):
            raise SimError(404, "Id not found")
        if device.get("state", "online") != "failed":
            raise SimError(400, f"device: {device_id} is not in failed state")
        if device["bricks"]:
            raise SimError(409, f"Unable to delete device [{device_id}] because it contains bricks")
        node = self.db["nodes"][device["node"]]
        host = node["hostnames"]["manage"][0]

        def operation():
            mount = f"{MOUNTS}/vg_{device_id}"
            self._exec(host, [
                f"if mountpoint -q {mount}; then umount {mount}; fi",
                f"sed -i.save '\\#^[^ ]* {mount} #d' {shlex.quote(self.fstab)}",
                f"rmdir {mount} 2>/dev/null || true",
                f"wipefs --all {shlex.quote(device['name'])}",
            ], 5)
            with self._lock:
                if device_id in self.db["devices"]:
                    current = self.db["nodes"].get(device["node"])
                    if current and device_id in current["devices"]:
                        current["devices"].remove(device_id)
                    del self.db["devices"][device_id]
                    self.save()
            return None

        return self._async(operation, {})

    # -- volumes ------------------------------------------------------------------------
    def _volume_info(self, volume_id: str) -> dict:
        volume = self.db["volumes"].get(volume_id)
        if volume is None or volume.get("pending"):
            raise SimError(404, "Id not found")
        info = {k: v for k, v in volume.items() if k not in ("bricks", "pending")}
        info["bricks"] = [self._brick_info(b) for b in volume["bricks"]]
        return info

    def _volume_list(self):
        return self._json({"volumes": sorted(v for v, vol in self.db["volumes"].items() if not vol.get("pending"))})

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
        elif kind == "disperse":
            raise SimError(400, "Durability type disperse is not supported by the heketi simulator")
        else:
            raise SimError(400, "Unknown durability type")
        if kind == "replicate" and replica > 3:
            raise SimError(400, "Invalid replica value")
        if not self.db["clusters"]:
            raise SimError(400, "No clusters configured")
        wanted = data.get("clusters") or []
        for cluster_id in wanted:
            if cluster_id not in self.db["clusters"]:
                raise SimError(400, f"Cluster id {cluster_id} not found")
        volume_id = _new_id()
        name = name or f"vol_{volume_id}"
        fail = faults.get("volume_create_fails")

        def operation():
            if fail and (not isinstance(fail, dict) or name in fail):
                message = fail.get(name) if isinstance(fail, dict) else fail
                raise SimError(500, message if isinstance(message, str) and message else
                               "volume create: simulated failure (heketi simulator fault 'volume_create_fails')")
            with self._lock:
                candidates = [c for c in (wanted or sorted(self.db["clusters"]))
                              if not any(self.db["volumes"][v]["name"] == name
                                         for v in self.db["clusters"][c]["volumes"])
                              and not any(v["name"] == name and v.get("pending") for v in self.db["volumes"].values())]
                if not candidates:
                    raise SimError(500, f"Name {name} is already in use in all available clusters")
                for cluster_id in candidates:
                    placement = self._allocate(cluster_id, size * GiB_KiB, replica)
                    if placement:
                        break
                else:
                    raise SimError(500, "No space")
                self._reserve_volume(volume_id, name, size, replica, kind, cluster_id, placement)
            try:
                self._gluster_volume_create(volume_id)
            except SimError:
                with self._lock:
                    self._forget_volume(volume_id)
                raise
            with self._lock:
                self.db["volumes"][volume_id].pop("pending", None)
                self.db["clusters"][cluster_id]["volumes"].append(volume_id)
                self.save()
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

    def _reserve_volume(self, volume_id, name, size, replica, kind, cluster_id, placement):
        kib = size * GiB_KiB
        bricks, hosts = [], []
        for node, device in placement:
            brick_id = _new_id()
            self.db["bricks"][brick_id] = {
                "id": brick_id, "device": device["id"], "node": node["id"], "volume": volume_id, "size": kib,
                "path": f"{MOUNTS}/vg_{device['id']}/brick_{brick_id}/brick"}
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
            "blockinfo": {}, "bricks": bricks, "pending": True}

    def _forget_volume(self, volume_id):
        volume = self.db["volumes"].pop(volume_id, None)
        if volume is None:
            return
        for brick_id in volume["bricks"]:
            brick = self.db["bricks"].pop(brick_id, None)
            device = self.db["devices"].get(brick["device"]) if brick else None
            if device and brick_id in device["bricks"]:
                device["bricks"].remove(brick_id)
                device["storage"]["free"] += brick["size"]
                device["storage"]["used"] -= brick["size"]
        cluster = self.db["clusters"].get(volume["cluster"])
        if cluster and volume_id in cluster["volumes"]:
            cluster["volumes"].remove(volume_id)

    def _brick_hosts(self, volume: dict) -> list[tuple[str, str, dict]]:
        """(manage host, storage host, brick) for every brick of VOLUME."""
        out = []
        for brick_id in volume["bricks"]:
            brick = self.db["bricks"][brick_id]
            node = self.db["nodes"][brick["node"]]
            out.append((node["hostnames"]["manage"][0], node["hostnames"]["storage"][0], brick))
        return out

    def _gluster_volume_create(self, volume_id: str):
        """Bricks on their nodes, then `gluster volume create` + `start` from the first one."""
        with self._lock:
            volume = dict(self.db["volumes"][volume_id])
            bricks = self._brick_hosts(volume)
        made = []
        try:
            for manage, _storage, brick in bricks:
                mount = brick["path"].rsplit("/", 1)[0]
                self._exec(manage, [f"mkdir -p {mount}", f"mkdir {brick['path']}"])
                made.append((manage, mount))
            layout = f"replica {volume['durability']['replicate']['replica']} " \
                if volume["durability"]["type"] == "replicate" else ""
            spec = " ".join(f"{storage}:{brick['path']}" for _, storage, brick in bricks)
            self._exec(bricks[0][0], [f"{GLUSTER} volume create {volume['name']} {layout}{spec}",
                                      f"{GLUSTER} volume start {volume['name']}"])
        except SimError:
            try:   # heketi's cleanup: the volume (if it got that far), then the bricks
                self._exec(bricks[0][0], [f"{GLUSTER} volume delete {volume['name']} || true"])
            except SimError:
                pass
            for manage, mount in made:
                try:
                    self._exec(manage, [f"rm -rf {mount}"])
                except SimError:
                    pass
            raise

    def _volume_delete(self, volume_id: str):
        volume = self.db["volumes"].get(volume_id)
        if volume is None or volume.get("pending"):
            raise SimError(404, "Id not found")
        if volume["name"] == DB_VOLUME:
            raise SimError(409, "Cannot delete volume containing the Heketi database")
        bricks = self._brick_hosts(volume)

        def operation():
            host = bricks[0][0]
            self._exec(host, [f"{GLUSTER} volume stop {volume['name']} force",
                              f"{GLUSTER} volume delete {volume['name']}"])
            for manage, _storage, brick in bricks:
                self._exec(manage, [f"rm -rf {brick['path'].rsplit('/', 1)[0]}"])
            with self._lock:
                self._forget_volume(volume_id)
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
