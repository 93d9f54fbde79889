"""HTTP layer of the Kubernetes API server SIMULATOR (stdlib ThreadingHTTPServer).

Routes the REST paths kubectl uses: discovery, /api/v1/..., /apis/G/V/...,
watch streams (chunked JSON events), status, log and exec (streaming.py) subresources, Table
output for `kubectl get`, and /simulator/faults for tests.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import protobuf, streaming, tables
from .runtime import ExecError
from .store import ApiError, dumps, parse_field_selector, parse_label_selector, labels_match, fields_match

NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gfsdeploy-kubernetes-apiserver-simulator"
    sim = None   # set by make_server

    def log_message(self, fmt, *args):
        self.sim.log("http " + (fmt % args))

    # --- plumbing --------------------------------------------------------
    def _send(self, code: int, body, ctype: str = "application/json"):
        data = body if isinstance(body, bytes) else dumps(body)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _json_body(self) -> dict:
        if "protobuf" in self.headers.get("Content-Type", ""):
            obj = protobuf.decode(self._body())
            if obj is not None:
                return obj
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                                        "accepted media types include: application/json "
                                                        "(this simulator speaks JSON only)")
        try:
            obj = json.loads(self._body() or b"{}")
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"error decoding request body: {exc}") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "request body must be a JSON object")
        return obj

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str):
        url = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        try:
            self._route(method, parts)
        except ApiError as err:
            self._send(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:   # keep serving; the log gets the trace
            import traceback
            self.sim.log("internal error: " + traceback.format_exc())
            try:
                self._send(500, ApiError(500, "InternalError", f"Internal error occurred: {exc}").status())
            except OSError:
                pass

    # --- routing ---------------------------------------------------------
    def _route(self, method: str, parts: list[str]):
        api = self.sim.api
        disc = api.discovery
        if method == "GET" and parts in (["healthz"], ["livez"], ["readyz"]):
            return self._send(200, b"ok", "text/plain")
        if method == "GET" and parts == ["version"]:
            return self._send(200, disc.version_doc())
        if parts[:2] == ["simulator", "faults"]:
            if method == "POST":
                self.sim.set_faults(self._json_body())
            return self._send(200, api.faults)
        if method == "GET" and parts == ["openapi", "v2"]:
            return self._send(200, protobuf.openapi_v2(disc.resources, disc.version),
                              "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        if method == "GET" and parts == ["openapi", "v3"]:
            return self._send(200, disc.openapi_v3_root())
        if method == "GET" and parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            doc = disc.openapi_v3_gv(parts[3] if len(parts) == 5 else "", parts[-1])
            if doc is None:
                raise NOT_FOUND
            return self._send(200, doc)
        if method == "GET" and parts == ["api"]:
            return self._send(200, disc.api_versions(self.sim.listen[0]))
        if method == "GET" and parts == ["apis"]:
            return self._send(200, disc.api_group_list())
        if method == "GET" and len(parts) == 2 and parts[0] == "apis" and disc.group_versions(parts[1]):
            return self._send(200, disc.api_group(parts[1]))
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise NOT_FOUND
        if not rest:
            doc = disc.resource_list(group, version)
            if method != "GET" or doc is None:
                raise NOT_FOUND
            return self._send(200, doc)
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and disc.find(group, version, rest[2]):
            ns, rest = rest[1], rest[2:]
        res = disc.find(group, version, rest[0])
        if res is None or len(rest) > 3:
            raise NOT_FOUND
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub and sub not in res.subresources:
            raise NOT_FOUND
        if res.namespaced and ns is None and (name or method == "POST"):
            raise NOT_FOUND
        if not res.namespaced and ns is not None:
            raise NOT_FOUND
        ns = ns or ""
        if method == "GET" and name is None:
            if watch_path or self.query.get("watch") in ("true", "1"):
                return self._watch(res, ns)
            return self._list(res, ns)
        if sub == "exec":
            if method not in ("GET", "POST"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                        "resource")
            return self._exec(ns, name)
        if method == "GET" and sub == "log":
            return self._send(200, self.sim.runtime.read_log(ns, name, self.query.get("container")),
                              "text/plain")
        if method == "GET":
            return self._send(200, self._out(res, api.store.get(res, ns, name)))
        manager = self.query.get("fieldManager") or None
        if method == "POST" and name is None:
            body = self._json_body()
            return self._send(201, self._out(res, api.create(res, ns, body, manager=manager or self._agent(),
                                                             dry_run=self._dry_run())))
        if method == "PUT" and name:
            body = self._json_body()
            return self._send(200, self._out(res, api.replace(res, ns, name, body, sub, manager=manager or self._agent(),
                                                              dry_run=self._dry_run())))
        if method == "PATCH" and name:
            ctype = self.headers.get("Content-Type", "")
            force = self.query.get("force") in ("true", "1")
            obj = api.patch(res, ns, name, self._body(), ctype, sub, manager=manager or
                            ("" if "apply-patch" in ctype else self._agent()), force=force, dry_run=self._dry_run())
            return self._send(200, self._out(res, obj))
        if method == "DELETE" and name:
            opts = self._json_body() if int(self.headers.get("Content-Length") or 0) else {}
            prop = opts.get("propagationPolicy") or self.query.get("propagationPolicy") or "Background"
            if opts.get("orphanDependents") is True:
                prop = "Orphan"
            return self._send(200, self._out(res, api.delete(res, ns, name, prop,
                                                             dry_run=self._dry_run(opts.get("dryRun")))))
        if method == "DELETE":
            labels = parse_label_selector(self.query.get("labelSelector"))
            fields = parse_field_selector(self.query.get("fieldSelector"))
            items, rv = api.store.list(res.plural, ns or None, labels, fields)
            dry_run = self._dry_run()
            for obj in items:
                api.delete(res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], dry_run=dry_run)
            return self._send(200, self._list_doc(res, items, rv))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                "resource")

    def _exec(self, ns: str, name: str):
        """pods/exec: checks as the API server makes them, then the WebSocket stream (streaming.py)."""
        opts = streaming.exec_options(urllib.parse.urlsplit(self.path).query)
        streaming.check_request(self.sim.api.store, ns, name, opts)
        try:   # the kubelet's refusal comes before any upgrade, whatever the stream protocol
            argv, env = self.sim.runtime.exec_target(ns, name, opts["command"], opts["container"])
        except ExecError as exc:
            raise ApiError(500, "InternalError", str(exc)) from None
        protocol = streaming.negotiate(self.headers)
        if protocol is None:
            # SPDY (or a plain request): this server speaks only WebSocket (kubectl >= 1.30
            # asks for it first and falls back to SPDY only when that upgrade is refused)
            raise ApiError(400, "BadRequest", "Upgrade request required (this simulated API server streams "
                                              "exec over WebSocket only: v5.channel.k8s.io, v4.channel.k8s.io)")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", streaming.accept_key(self.headers.get("Sec-WebSocket-Key", "")))
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        # the program only: its arguments may carry secrets (heketi-cli --secret KEY)
        self.sim.log(f"exec {ns}/{name} [{opts['container']}]: {opts['command'][0]} "
                     f"(+{len(opts['command']) - 1} arguments)")
        code = streaming.run_stream(streaming.WebSocket(self.rfile, self.wfile), protocol, argv, env, opts)
        self.sim.log(f"exec {ns}/{name} [{opts['container']}] exited {code}")

    def _agent(self) -> str:
        """The manager of a write that names none: the client's name from its User-Agent."""
        agent = self.headers.get("User-Agent", "") or "unknown"
        return agent.split("/")[0].split(" ")[0] or "unknown"

    def _dry_run(self, from_body=None) -> bool:
        """``?dryRun=All`` (or DeleteOptions.dryRun): served from Kubernetes 1.13 on."""
        values = list(from_body or [])
        if self.query.get("dryRun"):
            values.append(self.query["dryRun"])
        if not values:
            return False
        from .discovery import parse_version
        if parse_version(self.sim.api.discovery.version)[:2] < (1, 13):
            raise ApiError(400, "BadRequest", "the dryRun alpha feature is disabled")
        if any(v != "All" for v in values):
            raise ApiError(400, "BadRequest", f"Invalid value: {values!r}: supported values: \"All\"")
        return True

    # --- output ----------------------------------------------------------
    def _out(self, res, obj: dict) -> dict:
        obj["apiVersion"] = res.group_version
        obj["kind"] = res.kind
        if self._wants_table():
            return tables.table(res, [obj], obj["metadata"].get("resourceVersion", ""),
                                self.query.get("includeObject", "Object"))
        return obj

    def _wants_table(self) -> bool:
        return "as=Table" in self.headers.get("Accept", "")

    def _list_doc(self, res, items, rv):
        for obj in items:
            obj["apiVersion"] = res.group_version
            obj["kind"] = res.kind
        return {"kind": f"{res.kind}List", "apiVersion": res.group_version,
                "metadata": {"resourceVersion": rv}, "items": items}

    def _list(self, res, ns: str):
        labels = parse_label_selector(self.query.get("labelSelector"))
        fields = parse_field_selector(self.query.get("fieldSelector"))
        items, rv = self.sim.api.store.list(res.plural, ns or None, labels, fields)
        if self._wants_table():
            for obj in items:
                obj["apiVersion"], obj["kind"] = res.group_version, res.kind
            return self._send(200, tables.table(res, items, rv, self.query.get("includeObject", "Object")))
        return self._send(200, self._list_doc(res, items, rv))

    def _watch(self, res, ns: str):
        store = self.sim.api.store
        labels = parse_label_selector(self.query.get("labelSelector"))
        fields = parse_field_selector(self.query.get("fieldSelector"))
        timeout = float(self.query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        as_table = self._wants_table()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def match(obj):
            return obj is not None and (not ns or obj["metadata"].get("namespace") == ns) \
                and labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)

        def send(etype, obj):
            obj = json.loads(dumps(obj))
            obj["apiVersion"], obj["kind"] = res.group_version, res.kind
            if as_table:
                obj = tables.table(res, [obj], obj["metadata"]["resourceVersion"],
                                   self.query.get("includeObject", "Object"))
            data = dumps({"type": etype, "object": obj}) + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        start = self.query.get("resourceVersion") or "0"
        initial = self.query.get("sendInitialEvents") == "true"
        if start == "0" or initial:
            items, rv = store.list(res.plural, ns or None, labels, fields)
            for obj in items:
                send("ADDED", obj)
            pos = int(rv)
            if initial:   # WatchList: the end of the initial state is a BOOKMARK with this annotation
                mark = {"kind": res.kind, "apiVersion": res.group_version, "metadata": {
                    "resourceVersion": rv, "annotations": {"k8s.io/initial-events-end": "true"}}}
                data = dumps({"type": "BOOKMARK", "object": mark}) + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
        else:
            pos = int(start)
        while time.monotonic() < deadline and not store.closed:
            events, current = store.events_since(res.plural, pos)
            if events is None:
                gone = ApiError(410, "Expired", f"too old resource version: {pos} ({store.log[0][0]})")
                data = dumps({"type": "ERROR", "object": gone.status()}) + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                break
            for rv, _, etype, old, new in events:
                pos = rv
                was, now_ = match(old), match(new)
                if etype == "ADDED" and now_:
                    send("ADDED", new)
                elif etype == "DELETED" and was:
                    send("DELETED", new)
                elif etype == "MODIFIED":
                    if was and now_:
                        send("MODIFIED", new)
                    elif now_:
                        send("ADDED", new)
                    elif was:
                        send("DELETED", new)
            pos = max(pos, current)
            store.wait(pos, min(1.0, max(0.0, deadline - time.monotonic())))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(sim, listen: tuple[str, int]) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"sim": sim})
    return _Server(listen, handler)


def serve_in_thread(httpd) -> threading.Thread:
    t = threading.Thread(target=httpd.serve_forever, name="k8s-sim-http", daemon=True)
    t.start()
    return t
