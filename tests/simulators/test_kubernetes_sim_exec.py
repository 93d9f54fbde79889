"""pods/exec's stream layer (streaming.py) without a lab: a client speaking RFC 6455 with
masked frames and the v5.channel.k8s.io channel bytes, against a local command. (The real
kubectl against pods in lab nodes: tests/lab/test_kubectl_exec.py.)"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading

from gfsdeploy_glusterfs.lab.simulators.kubernetes import streaming


def client_frame(data: bytes, opcode: int = streaming.OP_BIN) -> bytes:
    key = os.urandom(4)
    n = len(data)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def run(argv, protocol, to_send: list[bytes], stdin=True):
    server, client = socket.socketpair()
    client.settimeout(20)             # a stream that never ends fails the test instead of hanging it
    opts = {"command": argv, "stdin": stdin, "stdout": True, "stderr": True, "tty": False}
    ws = streaming.WebSocket(server.makefile("rb"), server.makefile("wb"))
    codes = []
    t = threading.Thread(target=lambda: codes.append(streaming.run_stream(ws, protocol, argv, dict(os.environ),
                                                                          opts)))
    t.start()
    for msg in to_send:
        client.sendall(client_frame(msg))
    reader = streaming.WebSocket(client.makefile("rb"), client.makefile("wb"))
    got: dict[int, bytes] = {}
    while True:
        msg = reader.recv()           # (answers the server's close; server frames are unmasked)
        if msg is None:
            break
        got[msg[0]] = got.get(msg[0], b"") + msg[1:]
    t.join(10)
    client.close()
    server.close()
    return codes[0], got


def test_stdin_until_closed_then_output_and_a_nonzero_status():
    code, got = run(["sh", "-c", "cat; echo err >&2; exit 4"], "v5.channel.k8s.io",
                    [bytes([streaming.STDIN]) + b"hello ", bytes([streaming.STDIN]) + b"world\n",
                     bytes([streaming.CLOSE, streaming.STDIN])])
    assert code == 4
    assert got[streaming.STDOUT] == b"hello world\n" and got[streaming.STDERR] == b"err\n"
    status = json.loads(got[streaming.ERROR])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]


def test_success_status_and_large_output():
    code, got = run(["head", "-c", "200000", "/dev/zero"], "v4.channel.k8s.io", [], stdin=False)
    assert code == 0 and len(got[streaming.STDOUT]) == 200000
    assert json.loads(got[streaming.ERROR]) == {"metadata": {}, "status": "Success"}


def test_handshake_helpers():
    # RFC 6455's own example key
    assert streaming.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert streaming.negotiate({"Upgrade": "websocket", "Sec-WebSocket-Protocol":
                                "v5.channel.k8s.io, v4.channel.k8s.io"}) == "v5.channel.k8s.io"
    assert streaming.negotiate({"Upgrade": "SPDY/3.1"}) is None
    opts = streaming.exec_options("command=sh&command=-c&command=echo+a%20b&container=c&stdout=true&tty=false")
    assert opts["command"] == ["sh", "-c", "echo a b"] and opts["container"] == "c" and not opts["stdin"]
