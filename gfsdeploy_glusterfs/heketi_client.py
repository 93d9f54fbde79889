"""A small client for heketi's REST API (no heketi-cli needed on any host).

Every request but ``/hello`` carries a fresh JWT (see :mod:`gfsdeploy_glusterfs.jwt`).
Slow calls answer ``202`` with ``Location: /queue/ID``; :meth:`_wait` polls it
until heketi answers 303 (the result is at ``Location``), 204 (done, no body)
or 500 (the error text). Redirects are followed by hand because each hop needs
its own token (the ``qsh`` claim covers the path).

Errors are :class:`HeketiError`: the HTTP status, the path and heketi's own
message — never the key, which is registered with the redactor.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from gfsdeploy import secrets
from gfsdeploy_glusterfs import jwt
from gfsdeploy.errors import ModuleError


class HeketiError(ModuleError):
    """heketi refused or failed a request (``status`` None: not reachable)."""

    def __init__(self, message: str, *, status: int | None = None, path: str = "",
                 heketi_message: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.status = status
        self.path = path
        self.heketi_message = heketi_message


class HeketiUnreachable(HeketiError):
    """No HTTP answer at all (connection refused, timeout, tunnel down)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # we follow 303s ourselves, with a new token


def default_opener():
    return urllib.request.build_opener(_NoRedirect())


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str:
        return (self.headers.get(name) if self.headers is not None else None) or ""

    def text(self) -> str:
        return self.body.decode(errors="replace").strip()

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


def _refused(exc: BaseException) -> bool:
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, ConnectionRefusedError) or getattr(reason, "errno", None) == errno.ECONNREFUSED


class HeketiClient:
    """``HeketiClient("http://10.96.0.5:8080", "admin", key).clusters()``."""

    def __init__(self, base_url: str, user: str = "admin", key: str | None = None, timeout: float = 30.0,
                 opener=None, *, poll_interval: float = 0.5, op_timeout: float = 600.0,
                 retries: int = 5, retry_delay: float = 1.0):
        self.base_url = base_url.rstrip("/")
        self.user = user
        self._key = key
        secrets.register(key)
        self.timeout = timeout
        self.opener = opener or default_opener()
        self.poll_interval = poll_interval
        self.op_timeout = op_timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.requests = 0  # counted for tests: "a second apply sends nothing"
        self.writes = 0    # POST/DELETE sent

    # -- transport ------------------------------------------------------------
    def _send(self, method: str, path: str, body=None) -> Response:
        """One HTTP exchange. Retries a refused connection (nothing was sent, so it is
        safe for any method) and, for GET only, other connection failures."""
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        attempt = 0
        while True:
            attempt += 1
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Accept", "application/json")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            if self._key is not None and path != "/hello":
                token = jwt.heketi_token(self.user, self._key, method, urllib.parse.urlsplit(url).path)
                request.add_header("Authorization", "bearer " + token)
            self.requests += 1
            if method in ("POST", "DELETE", "PUT"):
                self.writes += 1
            try:
                with self.opener.open(request, timeout=self.timeout) as reply:
                    response = Response(reply.status, reply.headers, reply.read())
            except urllib.error.HTTPError as exc:
                response = Response(exc.code, exc.headers, exc.read() if exc.fp else b"")
            except (urllib.error.URLError, OSError, socket.timeout, http.client.HTTPException) as exc:
                retry = _refused(exc) or method == "GET"
                if retry and attempt <= self.retries:
                    time.sleep(self.retry_delay * attempt)
                    continue
                reason = getattr(exc, "reason", exc)
                raise HeketiUnreachable(
                    f"heketi at {self.base_url} is not reachable ({method} {path}): {reason}",
                    path=path,
                    fix="check that the heketi pod is Ready and its Service answers "
                        "(kubectl get pods,svc -l heketi or deploy-heketi)") from None
            if response.status == 429 and attempt <= self.retries:  # heketi throttling
                time.sleep(float(response.header("Retry-After") or self.retry_delay))
                continue
            return response

    def _fail(self, method: str, path: str, response: Response, what: str = "") -> HeketiError:
        message = response.text()[:2000] or "(no message)"
        text = f"heketi answered {response.status} to {method} {path}"
        if what:
            text = f"{what}: {text}"
        fix = None
        if response.status == 401:
            fix = "check the heketi admin key in the inventory against heketi.json (heketi-config-secret)"
        return HeketiError(f"{text}: {message}", status=response.status, path=path,
                           heketi_message=message, fix=fix)

    def request(self, method: str, path: str, body=None, *, what: str = "", raw: bool = False):
        """Send a request; wait for the async queue when heketi answers 202.
        Returns the decoded JSON (or bytes when ``raw``), None for 204."""
        response = self._send(method, path, body)
        if response.status == 202:
            location = response.header("Location")
            if not location:
                raise HeketiError(f"heketi answered 202 to {method} {path} without a Location header",
                                  status=202, path=path)
            return self._wait(location, method, path, what)
        return self._result(method, path, response, what, raw)

    def _result(self, method, path, response: Response, what: str, raw: bool = False):
        if response.status == 303:
            return self.request("GET", self._path(response.header("Location")), what=what, raw=raw)
        if response.status == 204:
            return None
        if 200 <= response.status < 300:
            return response.body if raw else response.json()
        raise self._fail(method, path, response, what)

    def _path(self, location: str) -> str:
        parts = urllib.parse.urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _wait(self, location: str, method: str, path: str, what: str):
        queue = self._path(location)
        deadline = time.monotonic() + self.op_timeout
        while True:
            response = self._send("GET", queue)
            if response.status == 200 and response.header("X-Pending").lower() == "true":
                if time.monotonic() > deadline:
                    raise HeketiError(f"{what or method + ' ' + path}: heketi still busy after "
                                      f"{self.op_timeout:.0f}s ({queue})", path=path,
                                      fix="look at the heketi pod's log; re-run apply when it is done")
                time.sleep(self.poll_interval)
                continue
            if response.status == 500 or response.status >= 400:
                # the operation failed: report the original request, heketi's text
                raise self._fail(method, path, response, what)
            return self._result(method, path, response, what)

    # -- API ------------------------------------------------------------------
    def hello(self) -> str:
        response = self._send("GET", "/hello")
        if response.status != 200:
            raise self._fail("GET", "/hello", response)
        return response.text()

    def clusters(self) -> list[str]:
        return (self.request("GET", "/clusters") or {}).get("clusters") or []

    def cluster(self, cluster_id: str) -> dict:
        return self.request("GET", f"/clusters/{cluster_id}")

    def create_cluster(self, *, file: bool = True, block: bool = True) -> dict:
        return self.request("POST", "/clusters", {"file": file, "block": block}, what="create cluster")

    def delete_cluster(self, cluster_id: str) -> None:
        self.request("DELETE", f"/clusters/{cluster_id}", what=f"delete cluster {cluster_id}")

    def node(self, node_id: str) -> dict:
        return self.request("GET", f"/nodes/{node_id}")

    def add_node(self, cluster_id: str, manage: str, storage: str, zone: int = 1,
                 tags: dict | None = None) -> dict:
        body = {"zone": int(zone), "cluster": cluster_id,
                "hostnames": {"manage": [manage], "storage": [storage]}}
        if tags:
            body["tags"] = tags
        return self.request("POST", "/nodes", body, what=f"add node {manage}")

    def delete_node(self, node_id: str) -> None:
        self.request("DELETE", f"/nodes/{node_id}", what=f"delete node {node_id}")

    def device(self, device_id: str) -> dict:
        return self.request("GET", f"/devices/{device_id}")

    def add_device(self, node_id: str, name: str, destroydata: bool = False, *, node_name: str = "") -> None:
        body = {"node": node_id, "name": name}
        if destroydata:
            body["destroydata"] = True
        self.request("POST", "/devices", body, what=f"add device {name} on node {node_name or node_id}")

    def delete_device(self, device_id: str) -> None:
        self.request("DELETE", f"/devices/{device_id}", what=f"delete device {device_id}")

    def volumes(self) -> list[str]:
        return (self.request("GET", "/volumes") or {}).get("volumes") or []

    def volume(self, volume_id: str) -> dict:
        return self.request("GET", f"/volumes/{volume_id}")

    def volumes_named(self, name: str) -> list[dict]:
        return [v for v in (self.volume(i) for i in self.volumes()) if v and v.get("name") == name]

    def create_volume(self, size: int, name: str, replica: int = 3, *, clusters: list | None = None) -> dict:
        body = {"size": int(size), "name": name,
                "durability": {"type": "replicate", "replicate": {"replica": int(replica)}}}
        if clusters:
            body["clusters"] = list(clusters)
        return self.request("POST", "/volumes", body, what=f"create volume {name}")

    def delete_volume(self, volume_id: str) -> None:
        self.request("DELETE", f"/volumes/{volume_id}", what=f"delete volume {volume_id}")

    def backup_db(self) -> bytes:
        return self.request("GET", "/backup/db", raw=True) or b""

    def topology(self) -> dict:
        """heketi has no topology endpoint: walk clusters → nodes (with devices) and volumes.
        Shape of heketi's TopologyInfoResponse: ``{"clusters": [{"id", "nodes": [...], "volumes": [...]}]}``."""
        out = []
        for cluster_id in self.clusters():
            info = self.cluster(cluster_id) or {}
            out.append({
                "id": cluster_id,
                "file": info.get("file", True), "block": info.get("block", True),
                "nodes": [self.node(n) for n in info.get("nodes") or []],
                "volumes": [self.volume(v) for v in info.get("volumes") or []],
            })
        return {"clusters": out}
