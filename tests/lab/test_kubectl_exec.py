"""`kubectl exec` and `kubectl cp` against the lab's Kubernetes API (pods/exec over WebSocket,
channel protocol v5), with the real kubectl on the master node, run over plain ssh. What ran
in the container is checked from the node itself (the container's root through /proc), and
what the real API server refuses is refused with its words.

One small pod on the session lab (deleted at the end): lean."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import time

import pytest

pytestmark = pytest.mark.lab

MARK = "4217"   # a container command unique on the node, to find its process from the node
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "exec-probe", "namespace": "default"},
       "spec": {"nodeName": "k8s-2", "containers": [
           {"name": "main", "image": "busybox", "workingDir": "/srv",
            "env": [{"name": "GREETING", "value": "from the pod spec"}],
            "command": ["sh", "-c", f"mkdir -p /srv; exec sleep {MARK}00"]},
           {"name": "side", "image": "busybox", "command": ["sleep", f"{MARK}01"]}]}}


def ssh(lab, node: str, script: str, input: bytes | None = None, timeout: float = 120):
    return subprocess.run(lab.ssh_argv(node) + [script], input=input, capture_output=True, timeout=timeout)


def kubectl(lab, *args: str, input: bytes | None = None):
    return ssh(lab, "k8s-1", "kubectl " + shlex.join(args), input=input)


@pytest.fixture(scope="module")
def pod(lab):
    res = kubectl(lab, "apply", "-f", "-", input=json.dumps(POD).encode())
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 120
    while True:
        got = kubectl(lab, "get", "pod", "exec-probe", "-o", "json")
        if got.returncode == 0 and json.loads(got.stdout)["status"].get("phase") == "Running" and \
                all(c.get("ready") for c in json.loads(got.stdout)["status"].get("containerStatuses", [])):
            break
        assert time.monotonic() < deadline, got.stdout[-2000:]
        time.sleep(0.5)
    yield "exec-probe"
    kubectl(lab, "delete", "pod", "exec-probe", "--wait=false")


def container_pid(lab, mark: str) -> str:
    res = ssh(lab, "k8s-2", f"pgrep -x -f {shlex.quote('sleep ' + mark)}")
    assert res.returncode == 0, res.stderr
    return res.stdout.split()[0].decode()


def test_exec_streams_output_and_exit_code(lab, pod):
    res = kubectl(lab, "exec", pod, "-c", "main", "--", "sh", "-c",
                  'echo "out $GREETING in $(pwd)"; echo err >&2; exit 3')
    assert res.returncode == 3, res.stderr
    assert res.stdout == b"out from the pod spec in /srv\n"
    assert b"err\n" in res.stderr and b"command terminated with exit code 3" in res.stderr
    # the second container is another one: its own process, same pod
    res = kubectl(lab, "exec", pod, "-c", "side", "--", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert res.returncode == 0 and res.stdout.decode().strip() == f"sleep {MARK}01", res


def test_exec_stdin_and_cp_land_in_the_container(lab, pod, tmp_path):
    res = kubectl(lab, "exec", "-i", pod, "-c", "main", "--", "sh", "-c", "cat > /srv/from-stdin; wc -c < /srv/from-stdin",
                  input=b"line one\nline two\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == b"18"
    blob = bytes(range(256)) * 1200                        # ~300 KB: several WebSocket messages
    assert ssh(lab, "k8s-1", "cat > /tmp/exec-blob", input=blob).returncode == 0
    res = kubectl(lab, "cp", "/tmp/exec-blob", f"{pod}:/srv/blob", "-c", "main")
    assert res.returncode == 0, res.stderr
    # read back by another path: the container's root from its node, no kubectl involved
    root = f"/proc/{container_pid(lab, MARK + '00')}/root"
    got = ssh(lab, "k8s-2", f"cat {root}/srv/blob; cat {root}/srv/from-stdin")
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(got.stdout).digest() == hashlib.sha256(blob + b"line one\nline two\n").digest()
    # and out of the pod again (tar's output on stdout)
    res = kubectl(lab, "cp", f"{pod}:/srv/blob", "/tmp/exec-blob-back", "-c", "main")
    assert res.returncode == 0, res.stderr
    back = ssh(lab, "k8s-1", "cat /tmp/exec-blob-back; rm -f /tmp/exec-blob /tmp/exec-blob-back")
    assert back.stdout == blob


def test_refusals_use_the_api_servers_words(lab, pod):
    res = kubectl(lab, "exec", "no-such-pod", "--", "true")
    assert res.returncode == 1
    assert b'Error from server (NotFound): pods "no-such-pod" not found' in res.stderr
    # what the API server itself answers (kubectl checks container names before asking)
    base = f"/api/v1/namespaces/default/pods/{pod}/exec?command=true&stdout=true"
    res = kubectl(lab, "get", "--raw", base + "&container=nope")
    assert res.returncode == 1 and b"container nope is not valid for pod exec-probe" in res.stderr, res.stderr
    res = kubectl(lab, "get", "--raw", base)
    assert res.returncode == 1 and b"a container name must be specified for pod exec-probe, " \
                                   b"choose one of: [main side]" in res.stderr, res.stderr
    res = kubectl(lab, "get", "--raw", base + "&container=main")      # no WebSocket upgrade asked
    assert res.returncode == 1 and b"Upgrade request required" in res.stderr, res.stderr
