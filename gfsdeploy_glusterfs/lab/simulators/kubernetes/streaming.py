"""pods/exec: the streaming subresource, over WebSocket with Kubernetes' channel protocol.

kubectl (1.30 on) opens ``GET /api/v1/namespaces/NS/pods/NAME/exec?command=…&container=…
&stdin=…&stdout=…&stderr=…&tty=…`` as a WebSocket (RFC 6455) asking for the subprotocol
``v5.channel.k8s.io`` (or ``v4.channel.k8s.io``); it falls back to SPDY only when the server
refuses the upgrade. Every binary message starts with one channel byte: 0 stdin, 1 stdout,
2 stderr, 3 error (a metav1.Status sent once, when the command ended), 4 terminal resize,
255 close (v5 only: ``255 0`` = the client closed its stdin — how `kubectl cp` ends tar's
input). A non-zero exit is a Failure status with reason NonZeroExitCode and the code in
details.causes[{reason: ExitCode, message: "N"}]; kubectl exits with that code.

The command runs in the pod's container as the simulated kubelet runs exec probes
(``Runtime.exec_target``: nsenter into every namespace of the container, its root and cwd,
the container's environment). What the real API server and kubelet refuse is refused here
with their messages: a pod that does not exist, a container not in the pod, a pod with no
node, a container that is not running.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import threading
import urllib.parse

from .store import ApiError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
TRUE = ("true", "1", "True")


class WebSocket:
    """The server end of one RFC 6455 connection (client frames are masked, ours are not)."""

    def __init__(self, rfile, wfile):
        self.rfile = rfile
        self.wfile = wfile
        self._wlock = threading.Lock()
        self.closed = False

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        key = self._read(4) if masked else b""
        data = self._read(n)
        if masked:
            data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
        return fin, opcode, data

    def recv(self) -> bytes | None:
        """The next data message; None once the client closed (or the connection broke)."""
        parts: list[bytes] = []
        try:
            while True:
                fin, opcode, data = self._frame()
                if opcode == OP_PING:
                    self.send(data, OP_PONG)
                    continue
                if opcode == OP_PONG:
                    continue
                if opcode == OP_CLOSE:
                    self.close()
                    return None
                parts.append(data)
                if fin:
                    return b"".join(parts)
        except (EOFError, OSError, ValueError):
            self.closed = True
            return None

    def send(self, data: bytes, opcode: int = OP_BIN) -> bool:
        head = bytes([0x80 | opcode])
        n = len(data)
        if n < 126:
            head += bytes([n])
        elif n < 1 << 16:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        with self._wlock:
            if self.closed and opcode != OP_CLOSE:
                return False
            try:
                self.wfile.write(head + data)
                self.wfile.flush()
                return True
            except OSError:
                self.closed = True
                return False

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.send(struct.pack("!H", code), OP_CLOSE)
            self.closed = True


def exec_options(raw_query: str) -> dict:
    """PodExecOptions from the query string (``command`` repeats: one argv word each)."""
    q = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
    last = {k: v[-1] for k, v in q.items()}
    return {"command": q.get("command", []), "container": last.get("container", ""),
            "stdin": last.get("stdin") in TRUE, "stdout": last.get("stdout") in TRUE,
            "stderr": last.get("stderr") in TRUE, "tty": last.get("tty") in TRUE}


def check_request(store, ns: str, name: str, opts: dict) -> dict:
    """What the API server checks before it proxies the stream to the kubelet; the pod."""
    pod = store.find("pods", ns, name)
    if pod is None:
        raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
    names = [c["name"] for c in pod["spec"].get("containers") or []]
    container = opts["container"]
    if not container:
        if len(names) != 1:
            raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                              f"choose one of: [{' '.join(names)}]")
        container = opts["container"] = names[0]
    if container not in names:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
    if not pod["spec"].get("nodeName"):
        raise ApiError(400, "BadRequest", f"pod {name} does not have a host assigned")
    if not opts["command"]:
        raise ApiError(400, "BadRequest", "you must specify at least one command for the container")
    if not (opts["stdin"] or opts["stdout"] or opts["stderr"]):
        raise ApiError(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr")
    if opts["tty"]:
        raise ApiError(400, "BadRequest", "tty=true is not served by the lab's simulated kubelet (it has no "
                                          "terminal to give): run kubectl exec without -t/--tty")
    return pod


def negotiate(headers) -> str | None:
    """The channel subprotocol to speak, or None when this is no WebSocket upgrade we serve."""
    if "websocket" not in (headers.get("Upgrade") or "").lower():
        return None
    offered = [p.strip() for p in (headers.get("Sec-WebSocket-Protocol") or "").split(",")]
    return next((p for p in PROTOCOLS if p in offered), None)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def exit_status(code: int, command: list[str]) -> dict:
    """The metav1.Status the kubelet sends on the error channel when the command ended."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def run_stream(ws: WebSocket, protocol: str, argv: list[str], env: dict, opts: dict) -> int:
    """Run ARGV, wiring its stdin/stdout/stderr to the channels; send the status; the exit code."""
    try:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if opts["stdin"] else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        ws.send(bytes([ERROR]) + json.dumps({"metadata": {}, "status": "Failure",
                                             "message": f"exec failed: {exc}"}).encode())
        ws.close()
        return 126

    def pump(stream, channel: int, wanted: bool):
        while True:
            data = os.read(stream.fileno(), 65536)
            if not data:
                break
            if wanted:
                ws.send(bytes([channel]) + data)
        stream.close()

    pumps = [threading.Thread(target=pump, args=(proc.stdout, STDOUT, opts["stdout"]), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, STDERR, opts["stderr"]), daemon=True)]
    for t in pumps:
        t.start()
    done = threading.Event()

    def close_stdin():
        if proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def from_client():
        while True:
            msg = ws.recv()
            if msg is None:                       # the client went away: so does its command
                close_stdin()
                if not done.is_set() and proc.poll() is None:
                    proc.kill()
                return
            if not msg:
                continue
            channel, data = msg[0], msg[1:]
            if channel == STDIN and proc.stdin is not None and not proc.stdin.closed:
                try:
                    proc.stdin.write(data)
                    proc.stdin.flush()
                except OSError:                    # the command stopped reading
                    close_stdin()
            elif channel == CLOSE and protocol.startswith("v5") and data[:1] == bytes([STDIN]):
                close_stdin()

    reader = threading.Thread(target=from_client, daemon=True)
    reader.start()
    code = proc.wait()
    for t in pumps:
        t.join()
    done.set()
    close_stdin()
    code = code if code >= 0 else 128 - code
    ws.send(bytes([ERROR]) + json.dumps(exit_status(code, opts["command"])).encode())
    ws.close()
    return code
