"""Checks of GlusterFS itself, made the way an operator would on the nodes: plain `ssh`, then
`nsenter` into the glusterfs pod (its mount namespace and root, where glusterd's socket and
the bricks are). Nothing here goes through gfsdeploy or the simulators."""

from __future__ import annotations

import json
import shlex
import subprocess
import time

IN_POD = 'nsenter -t "$(pgrep -x glusterd)" -m -n -r -w -- '


def ssh(lab, node: str, script: str, timeout: float = 60, text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(lab.ssh_argv(node) + [script], capture_output=True, text=text, timeout=timeout)


def gluster(lab, node: str, *args: str) -> str:
    res = ssh(lab, node, IN_POD + "gluster --mode=script " + shlex.join(args))
    assert res.returncode == 0, f"{node}: gluster {' '.join(args)}: {res.stdout}{res.stderr}"
    return res.stdout


def in_pod_bytes(lab, node: str, path: str) -> bytes:
    """A file as the glusterfs pod on NODE sees it (bricks are mounted there)."""
    res = ssh(lab, node, IN_POD + "cat " + shlex.quote(path), text=False)
    assert res.returncode == 0, f"{node}:{path}: {res.stderr.decode(errors='replace')}"
    return res.stdout


def volume_info(lab, node: str, volume: str) -> dict:
    """`gluster volume info VOLUME`: {'Type': ..., 'Status': ..., 'bricks': [(ip, path), ...]}."""
    out = gluster(lab, node, "volume", "info", volume)
    info: dict = {"bricks": []}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key.startswith("Brick") and key[5:].isdigit():
            host, _, path = value.partition(":")
            info["bricks"].append((host, path))
        elif key and value:
            info.setdefault(key, value)
    return info


def volume_names(lab, node: str) -> list[str]:
    return gluster(lab, node, "volume", "list").split()


def peers(lab, node: str) -> dict[str, str]:
    """`gluster pool list`: {hostname: state}."""
    out = gluster(lab, node, "pool", "list").splitlines()[1:]
    return {line.split()[1]: line.split()[2] for line in out if line.strip()}


def node_of_ip(lab, ip: str) -> str:
    return next(n.name for n in lab.nodes if n.ip == ip)


def kubectl(lab, *args: str) -> str:
    return lab.exec("k8s-1", ["kubectl", *args], check=True).stdout


def kubectl_json(lab, *args: str) -> dict:
    return json.loads(kubectl(lab, *args, "-o", "json"))


def heketi_pod(lab) -> dict:
    pods = [p for p in kubectl_json(lab, "get", "pods", "-l", "heketi=pod")["items"]
            if p["status"].get("phase") == "Running"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def glusterfs_mounts(lab, node: str) -> list[str]:
    """`mount | grep glusterfs` on NODE (the kubelet's FUSE mounts)."""
    res = ssh(lab, node, "mount | grep glusterfs || true")
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line.strip()]


def wait_for(fn, timeout: float, what: str, step: float = 1.0):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last}")
