"""heketi's kubernetes executor, for the heketi simulator: commands run in the glusterfs pods.

As heketi does it: the pod is the one in heketi's namespace with the label key
``glusterfs-node`` whose ``spec.nodeName`` is the node's ``manage`` hostname (the DaemonSet
mode); the command runs as ``timeout <N>m bash -c "<command>"`` in its first container, and
a failure's text is the command's stderr (else a generic exit-status message).
"""
from __future__ import annotations

LABEL_KEY = "glusterfs-node"


class ExecFailure(Exception):
    """A command that could not run or exited non-zero; str() is what heketi reports."""


class PodExecutor:
    """Runs commands in the glusterfs pod of a node through the Kubernetes simulator's kubelet."""

    def __init__(self, runtime, namespace: str):
        self.runtime = runtime           # Kubernetes simulator Runtime: pods_on_node(), exec()
        self.namespace = namespace

    def pod(self, host: str) -> str:
        pods = [p for p in self.runtime.pods_on_node(self.namespace, LABEL_KEY, host)
                if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        if not pods:
            raise ExecFailure(f"Unable to find a GlusterFS pod on host {host} with a label key {LABEL_KEY}")
        return pods[-1]["metadata"]["name"]

    def run(self, host: str, command: str, timeout_minutes: int = 10) -> str:
        """stdout of COMMAND in HOST's glusterfs pod; ExecFailure when it fails."""
        pod = self.pod(host)
        argv = ["timeout", f"{timeout_minutes}m", "bash", "-c", command]
        try:
            res = self.runtime.exec(self.namespace, pod, argv, timeout=timeout_minutes * 60 + 60)
        except Exception as exc:  # noqa: BLE001 - the pod/container is not running: the exec fails
            raise ExecFailure(f"Unable to setup a session with {pod}: {exc}") from None
        if res.returncode == 124:
            raise ExecFailure("timeout")
        if res.returncode != 0:
            raise ExecFailure(res.stderr.strip() or
                              f"command terminated with non-zero exit code: exit status {res.returncode}")
        return res.stdout


class NoExecutor:
    """A heketi without glusterfs pods to run commands in (the simulator alone)."""

    def run(self, host: str, command: str, timeout_minutes: int = 10) -> str:
        raise ExecFailure(f"Unable to find a GlusterFS pod on host {host} with a label key {LABEL_KEY}")

