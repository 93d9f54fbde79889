"""The node side of the simulated kubelet: pods run INSIDE a lab node, as on a real node.

A lab node is a set of namespaces whose PID 1 the lab records in a pid file. From the
simulator (which runs in the host's mount namespace) a node is reached three ways:
its files through ``/proc/PID/root`` (volumes are written there, as a kubelet writes
``/var/lib/kubelet/pods/<uid>/volumes/...``), commands through ``nsenter`` (the glusterfs
volume plugin's ``mount -t glusterfs``, with the node's own ``mount.glusterfs``), and
containers: ``nsenter`` into the node, ``unshare --mount`` (plus ``--pid`` unless the pod
asks for ``hostPID``), an overlay of the image's layers from the node's image store as root,
the volumes bound in, ``chroot``. A container's processes are those in its mount namespace,
so stopping it stops what it daemonized too (a container runtime kills the container's
cgroup the same way).
"""
from __future__ import annotations

import ctypes
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from gfsdeploy_glusterfs.lab import procs
from gfsdeploy_glusterfs.lab.nodes import IMAGES

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KUBELET = "/var/lib/kubelet"
CLONE_NEWNET = 0x40000000


class NodeGone(Exception):
    pass


def image_layers(image: str) -> list[str]:
    """Overlay lower layers (node paths, top first) for IMAGE: the host's files, plus the
    glusterfs layer (the image's backup copies) for GlusterFS server images, or the heketi
    layer (the heketi-cli stand-in) for heketi images."""
    repo = (image or "").rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    layers = [f"{IMAGES}/host"]
    if "gluster" in repo and "heketi" not in repo:
        layers.insert(0, f"{IMAGES}/glusterfs")
    elif "heketi" in repo:
        layers.insert(0, f"{IMAGES}/heketi")
    return layers


# What the GlusterFS image runs when a pod gives no command: the real image boots systemd,
# whose gluster-setup.service restores the pristine <dir>_bkp copies into the (empty) host
# paths mounted over /etc/glusterfs, /var/lib/glusterd, /var/log/glusterfs and remounts
# heketi's bricks, then glusterd.service starts glusterd. No systemd in the lab: the same
# steps, then glusterd in the foreground, and a `systemctl` that answers `status glusterd`
# (the probes and heketi's node checks ask it) from glusterd itself.
GLUSTERFS_IMAGE_BOOT = r"""set -u
for d in /etc/glusterfs /var/lib/glusterd /var/log/glusterfs; do
  for f in "${d}_bkp"/*; do
    [ -e "$f" ] || continue
    [ -e "$d/${f##*/}" ] || cp -a "$f" "$d/" || exit 1
  done
done
if [ -s /var/lib/heketi/fstab ]; then
  mount -a --fstab /var/lib/heketi/fstab || echo "not every brick in /var/lib/heketi/fstab mounted" >&2
fi
mkdir -p /usr/local/sbin
printf '%s\n' '#!/bin/sh' \
  'case "${1:-}:${2:-}" in' \
  '  status:glusterd|status:glusterd.service|is-active:glusterd|is-active:glusterd.service)' \
  '    exec gluster --mode=script --timeout=10 pool list >/dev/null ;;' \
  'esac' \
  'exec /usr/bin/systemctl "$@"' > /usr/local/sbin/systemctl
chmod 755 /usr/local/sbin/systemctl
exec /usr/sbin/glusterd --no-daemon --pid-file=/var/run/glusterd.pid --log-level=INFO
"""


def image_command(image: str) -> list[str] | None:
    """The command an image of the lab's store runs when the pod names none (its
    ENTRYPOINT/CMD); None for images the lab has no such command for (simulated)."""
    if f"{IMAGES}/glusterfs" in image_layers(image):
        return ["/bin/bash", "-c", GLUSTERFS_IMAGE_BOOT]
    return None


def pod_dir(uid: str) -> str:
    return f"{KUBELET}/pods/{uid}"


def mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def in_mount_ns(namespaces: set[str]) -> list[int]:
    """Host PIDs of every process in one of NAMESPACES (mount namespace ids)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and mount_ns(int(entry)) in namespaces:
            found.append(int(entry))
    return found


class LabNode:
    """One lab node, seen from the host: its PID 1, its files, commands in its namespaces."""

    def __init__(self, name: str, pidfile: str):
        self.name = name
        self.pidfile = Path(pidfile)

    @property
    def pid(self) -> int:
        pid = procs.read_pid(self.pidfile)
        if pid is None:
            raise NodeGone(f"node {self.name} is not running")
        return pid

    def path(self, path: str) -> str:
        """PATH in the node's filesystem, as the host can open it."""
        return f"/proc/{self.pid}/root/{path.lstrip('/')}"

    def nsenter(self, net: bool = True) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-u", "-p"] + (["-n"] if net else []) + ["--"]

    def run(self, argv: list[str], *, net: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.nsenter(net) + argv, input=input, capture_output=True, text=True,
                                  timeout=timeout, env={"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"})
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, _text(exc.stdout),
                                               _text(exc.stderr) + f"\n(no answer within {timeout:.0f}s)")

    def mounts_below(self, prefix: str) -> list[str]:
        """Mount points at or below PREFIX in the node's mount namespace."""
        try:
            with open(f"/proc/{self.pid}/mountinfo") as fh:
                points = [line.split()[4] for line in fh]
        except (OSError, NodeGone):
            return []
        prefix = prefix.rstrip("/")
        return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def mount_glusterfs(node: LabNode, hosts: list[str], volume: str, target: str, log_file: str,
                    timeout: float = 60) -> subprocess.CompletedProcess:
    """What the in-tree glusterfs volume plugin does on a node: the node's own
    ``mount -t glusterfs`` of the first server, the others as backup volfile servers."""
    opts = ["log-level=ERROR", f"log-file={log_file}"]
    if len(hosts) > 1:
        opts.insert(0, "backup-volfile-servers=" + ":".join(hosts[1:]))
    script = 'mkdir -p "$1" "$(dirname "$4")" && exec mount -t glusterfs -o "$2" "$3" "$1"'
    return node.run(["sh", "-c", script, "sh", target, ",".join(opts), f"{hosts[0]}:{volume}", log_file],
                    timeout=timeout)


def container_argv(node: LabNode, *, uid: str, name: str, image: str, host_network: bool, host_pid: bool,
                   hostname: str, mounts: list[tuple[str, str, bool]], workdir: str,
                   command: list[str], own_net: bool = False) -> list[str]:
    """The argv that runs one container inside NODE. MOUNTS: (node path, container path, readOnly).
    OWN_NET: a network namespace of its own with only ``lo`` (where a simulated server can be
    given a localhost address: listen_in_netns)."""
    q = shlex.quote
    cdir = f"{pod_dir(uid)}/containers/{name}"
    root = f"{cdir}/root"
    lines = [
        "set -e",
        # the container's writable layer lives (and dies) in its own mount namespace
        f"mkdir -p {q(cdir)}",
        f"mount -t tmpfs -o mode=0755 container {q(cdir)}",
        f"mkdir {q(cdir)}/upper {q(cdir)}/work {q(root)}",
        f"mount -t overlay overlay -o lowerdir={':'.join(image_layers(image))},"
        f"upperdir={q(cdir)}/upper,workdir={q(cdir)}/work {q(root)}",
        f"mount --rbind /proc {q(root)}/proc" if host_pid else f"mount -t proc proc {q(root)}/proc",
        f"mount --rbind /dev {q(root)}/dev",
        f"mount --rbind /sys {q(root)}/sys",
        f"mount -t tmpfs -o mode=1777 tmpfs {q(root)}/tmp",
    ]
    if not host_network:
        lines.append(f"hostname {q(hostname)}")
    if own_net:
        lines.append("ip link set lo up")
    for src, dst, ro in mounts:
        target = q(root + "/" + dst.lstrip("/"))
        lines.append(f"if [ -d {q(src)} ]; then mkdir -p {target}; "
                     f"else mkdir -p \"$(dirname {target})\"; touch {target}; fi")
        lines.append(f"mount --rbind {q(src)} {target}")
        if ro:
            lines.append(f"mount -o remount,bind,ro {target}")
    lines.append(f'exec chroot {q(root)} /bin/sh -c \'cd "$0" && exec "$@"\' {q(workdir)} "$@"')
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if not host_network:
        unshare.append("--uts")
    if own_net and not host_network:
        unshare.append("--net")
    if not host_pid:
        unshare += ["--pid", "--fork", "--kill-child"]
    return node.nsenter(net=host_network) + unshare + ["sh", "-c", "\n".join(lines), "sh"] + list(command)


class ContainerProcess:
    """A running container: the nsenter process we started, its main process, its namespaces."""

    def __init__(self, popen: subprocess.Popen, node: LabNode, host_pid: bool):
        self.popen = popen
        self.node = node
        self.host_pid = host_pid
        self.namespaces: set[str] = set()
        self._main: int | None = None

    def main_pid(self) -> int | None:
        """The container's command (PID 1 of its PID namespace unless hostPID), once it runs
        in the container's own mount namespace; None before that or after it exited."""
        if self._main is not None:
            if procs.start_time(self._main) is None:
                return None
            return self._main
        chain = children(self.popen.pid)             # nsenter -> unshare (becomes sh, then the command)
        if chain and not self.host_pid:
            chain = children(chain[0])               # unshare --fork -> PID 1 of the new namespace
        if not chain:
            return None
        pid = chain[0]
        ns = mount_ns(pid)
        try:
            node_ns = mount_ns(self.node.pid)
        except NodeGone:
            return None
        if ns is None or ns == node_ns:
            return None                              # not yet in its own namespace
        self.namespaces.add(ns)
        self._main = pid
        return pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def exec_argv(self, argv: list[str]) -> list[str] | None:
        """kubectl exec: every namespace of the container, its root and working directory."""
        pid = self.main_pid()
        if pid is None:
            return None
        return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--"] + argv

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM the command, then SIGKILL whatever is left in the container's namespace."""
        self.main_pid()
        if self.popen.poll() is None and self._main:
            _kill(self._main, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        self.reap_leftovers()
        if self.popen.poll() is None:
            _kill(self.popen.pid, signal.SIGKILL)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def reap_leftovers(self) -> None:
        """Kill what the command left behind in the container's mount namespace (daemons it
        started: a runtime stops the whole container when its command exits)."""
        if not self.namespaces:
            return
        for _ in range(3):
            left = in_mount_ns(self.namespaces)
            if not left:
                return
            for pid in left:
                _kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def listen_in_netns(pid: int, address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket on ADDRESS inside the network namespace of process PID.

    A socket belongs to the network namespace it was made in, and setns(2) moves only the
    calling thread: a short-lived thread enters the namespace, makes the socket, leaves."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: dict = {}

    def work():
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into the network namespace of {pid}")
            try:
                result["sock"] = socket.create_server(address)
            finally:
                if libc.setns(own, CLONE_NEWNET) != 0:
                    result["stuck"] = True       # this thread ends here anyway
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=work, name=f"listen-in-netns-{pid}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
