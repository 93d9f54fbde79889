"""Nodes: a network namespace each, plus mount/UTS/PID namespaces over an overlay root, running sshd.

Layers of a node's root, top first: its own tmpfs (writes), the lab's shared
base layer (sshd config, authorized key, apt pointed at the lab repo, packages
made missing), the host's ``/`` (read-only in effect).
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from gfsdeploy_glusterfs.lab.host import SBIN, run

# A node's container image store (what /var/lib/containerd is on a real node): `host` is a
# read-only bind of the host's `/` (the image every pod runs; it has glusterfs-server, which
# the node itself has not), next to the lab's extra image layers (`glusterfs`, `heketi`).
IMAGES = "/var/lib/gfsdeploy-lab/images"

SSHD_CONFIG = """\
# gfsdeploy lab node
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
AuthorizedKeysFile .ssh/authorized_keys
PidFile /run/sshd.pid
PrintMotd no
AcceptEnv LANG LC_*
MaxStartups 200:30:400
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
"""

# char devices every node gets in its own /dev: name -> (major, minor, mode)
DEV_NODES = {"null": (1, 3, 0o666), "zero": (1, 5, 0o666), "full": (1, 7, 0o666),
             "random": (1, 8, 0o666), "urandom": (1, 9, 0o666), "tty": (5, 0, 0o666),
             "fuse": (10, 229, 0o666)}


def whiteout(base: Path, path: str) -> None:
    """Hide host PATH in every node (an overlay whiteout in the base layer)."""
    target = base / os.path.realpath(os.path.dirname(path)).lstrip("/") / os.path.basename(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(target):
        os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def put(base: Path, path: str, text: str, mode: int = 0o644) -> None:
    """Place a file at PATH in the base layer (parents resolved through host symlinks like /bin)."""
    target = base / os.path.realpath(os.path.dirname(path)).lstrip("/") / os.path.basename(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    os.chmod(target, mode)


def hide_contents(base: Path, directory: str, keep=("lock", "partial")) -> None:
    """Whiteout every entry of a host directory (so the node sees it empty)."""
    if not os.path.isdir(directory):
        return
    for entry in os.listdir(directory):
        if entry not in keep:
            whiteout(base, os.path.join(directory, entry))


GLUSTERFS_POD = """#!/bin/sh
# gfsdeploy lab: run a command in this node's glusterfs pod (what `kubectl exec` into the
# pod does on a real cluster): its mount namespace and root, where glusterd's socket and
# the bricks are. Usage: glusterfs-pod COMMAND [ARG...]
pid=$(pgrep -xo glusterd) || { echo "glusterfs-pod: no glusterfs pod runs glusterd on this node" >&2; exit 1; }
exec nsenter -t "$pid" -m -n -r -w -- "$@"
"""

GLUSTER_CLI = """#!/bin/sh
# gfsdeploy lab: the gluster CLI of this node's glusterfs pod (see glusterfs-pod)
exec /usr/local/sbin/glusterfs-pod gluster "$@"
"""


def build_base(base: Path, *, lab_pubkey: str, repo_url: str, status_text: str,
               removed: set[str]) -> None:
    """Fill the shared base layer (BASE must be a fresh tmpfs: overlay whiteouts live there)."""
    # ssh: our own config, only the node's own host key, the lab key for root
    put(base, "/etc/ssh/sshd_config", SSHD_CONFIG)
    hide_contents(base, "/etc/ssh/sshd_config.d")
    for name in os.listdir("/etc/ssh"):
        if name.startswith("ssh_host_"):
            whiteout(base, f"/etc/ssh/{name}")
    (base / "root/.ssh").mkdir(parents=True, exist_ok=True)
    os.chmod(base / "root/.ssh", 0o700)
    os.chmod(base / "root", 0o700)
    put(base, "/root/.ssh/authorized_keys", lab_pubkey.strip() + "\n", 0o600)
    # a node's root gets a stock shell profile, not the host's (whose ~/.bashrc may run
    # tools such as pyenv on every ssh command, slowly and with host-wide locks)
    for name in (".bashrc", ".profile"):
        try:
            stock = Path("/etc/skel", name).read_text()
        except OSError:
            stock = ""
        put(base, f"/root/{name}", stock)
    # apt: only the lab repo, no host caches
    put(base, "/etc/apt/sources.list", f"deb [trusted=yes] {repo_url} ./\n")
    hide_contents(base, "/etc/apt/sources.list.d")
    hide_contents(base, "/var/lib/apt/lists")
    hide_contents(base, "/var/cache/apt/archives")
    for sub in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for name in ("pkgcache.bin", "srcpkgcache.bin"):
        if os.path.exists(f"/var/cache/apt/{name}"):
            whiteout(base, f"/var/cache/apt/{name}")
    # packages installs must not start daemons in a node that has no init system
    put(base, "/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
    # dpkg: the removed packages are not installed, and their files are gone
    put(base, "/var/lib/dpkg/status", _filtered(status_text, removed))
    info = "/var/lib/dpkg/info"
    for entry in os.listdir(info):
        pkg = entry.rsplit(".", 1)[0].split(":")[0]
        if pkg in removed:
            if entry.endswith(".list"):
                for line in Path(info, entry).read_text().splitlines():
                    if line and os.path.lexists(line) and not os.path.isdir(line):
                        whiteout(base, line)
            whiteout(base, f"{info}/{entry}")
    # state daemons keep on the host (e.g. glusterd's UUID) must not be shared by nodes
    for d in ("/var/lib/glusterd", "/var/log/glusterfs"):
        if os.path.isdir(d):
            hide_contents(base, d, keep=())
    # the lab's `kubectl exec` into the node's glusterfs pod: glusterd runs only there (the
    # node has no GlusterFS server), and its CLI must run in the pod's mount namespace and root
    put(base, "/usr/local/sbin/glusterfs-pod", GLUSTERFS_POD, 0o755)
    put(base, "/usr/local/sbin/gluster", GLUSTER_CLI, 0o755)
    # no DNS server is reachable from the lab: fail lookups at once (a local port that
    # refuses) instead of waiting for the host's nameserver to time out
    put(base, "/etc/resolv.conf", "# gfsdeploy lab: no DNS in the lab network\nnameserver 127.0.0.1\n"
                                  "options timeout:1 attempts:1\n")


def _filtered(status_text: str, removed: set[str]) -> str:
    from gfsdeploy_glusterfs.lab.aptrepo import filtered_status

    return filtered_status(status_text, removed)


def build_images(images: Path) -> None:
    """The lab's image layers, made once per lab at ``up`` (IMAGES in every node).

    ``glusterfs``: what the glusterfs image's build does on top of the host's files: pristine
    copies of /etc/glusterfs, /var/lib/glusterd and /var/log/glusterfs in ``<dir>_bkp`` (the pod
    restores them into the empty host paths mounted over those directories), and no
    geo-replication (gsyncd whited out: glusterd then skips ~20 Python runs at every start,
    which take 15-25 s on a loaded 2-core machine; the deployment does not use it).

    ``heketi``: the lab's heketi-cli stand-in as /usr/bin/heketi-cli (heketi's image ships the
    client beside the server; playbooks run it with `kubectl exec`).
    """
    (images / "host").mkdir(parents=True, exist_ok=True)
    layer = images / "glusterfs"
    # what the package ships there, never state of a glusterd that once ran on the host
    # (its glusterd.info would give every node the same UUID)
    shipped = {"/etc/glusterfs": None, "/var/lib/glusterd": ("groups", "hooks"), "/var/log/glusterfs": ()}
    for d, entries in shipped.items():
        target = layer / (d.lstrip("/") + "_bkp")
        target.mkdir(parents=True, exist_ok=True)
        names = os.listdir(d) if entries is None and os.path.isdir(d) else entries or ()
        for name in names:
            if os.path.lexists(os.path.join(d, name)):
                run(["cp", "-a", os.path.join(d, name), str(target)])
    for gsyncd in ("/usr/lib/x86_64-linux-gnu/glusterfs/gsyncd", "/usr/libexec/glusterfs/gsyncd"):
        if os.path.lexists(gsyncd):
            whiteout(layer, gsyncd)
    install_heketi_cli(images / "heketi")


def install_heketi_cli(layer: Path) -> Path:
    """Put the heketi-cli stand-in (one stdlib-only file) at LAYER/usr/bin/heketi-cli."""
    from gfsdeploy_glusterfs.lab import heketi_cli

    target = layer / "usr" / "bin" / "heketi-cli"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(Path(heketi_cli.__file__).read_bytes())
    target.chmod(0o755)
    return target


def boot_script(*, state: Path, node: str, ip: str, loop_rdev: tuple[int, int] | None,
                kubectl: str | None, machine_id: str) -> str:
    """The shell run as PID 1 of a node's new namespaces: build its root, start sshd, reap."""
    q = shlex.quote
    r = state / "nodes" / node
    m = r / "root"
    lines = [
        "set -eu",
        # our pid as the host sees it, for `down` and `exec` (/proc is still the host's here)
        f"while read -r k v rest; do [ \"$k\" = NSpid: ] && echo \"$v\" > {q(str(r / 'init.hostpid'))}; done < /proc/self/status",
        f"hostname {q(node)}",
        f"mount -t tmpfs -o mode=0755,size=16g tmpfs {q(str(r / 'rw'))}",
        f"mkdir {q(str(r / 'rw/upper'))} {q(str(r / 'rw/work'))}",
        f"mount -t overlay overlay -o lowerdir={state / 'base'}:/,upperdir={r / 'rw/upper'},"
        f"workdir={r / 'rw/work'} {q(str(m))}",
        f"M={q(str(m))}",
        "mount -t proc proc $M/proc",
        "mount -t sysfs sysfs $M/sys",
        "mount -t tmpfs -o mode=0755,size=64m,nosuid tmpfs $M/dev",
        "cd $M/dev",
    ]
    for name, (major, minor, mode) in DEV_NODES.items():
        lines.append(f"mknod -m {mode:o} {name} c {major} {minor}")
    if loop_rdev:
        lines.append(f"mknod -m 660 sdb b {loop_rdev[0]} {loop_rdev[1]}")
    lines += [
        "ln -s /proc/self/fd fd; ln -s /proc/self/fd/0 stdin; ln -s /proc/self/fd/1 stdout; ln -s /proc/self/fd/2 stderr",
        "mkdir pts shm; ln -s pts/ptmx ptmx",
        "mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts pts",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs shm",
        "cd /",
        "mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $M/run",
        "mkdir -p $M/run/sshd $M/run/lock",
        f"echo {q(node)} > $M/etc/hostname",
        f"printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' {q(node)} > $M/etc/hosts",
        f"echo {q(machine_id)} > $M/etc/machine-id",
        f"cp {q(str(r / 'ssh_host_ed25519_key'))} {q(str(r / 'ssh_host_ed25519_key.pub'))} $M/etc/ssh/",
        "chmod 600 $M/etc/ssh/ssh_host_ed25519_key",
    ]
    if kubectl:
        lines += ["mkdir -p $M/usr/local/bin $M/root/.kube",
                  f"cp {q(kubectl)} $M/usr/local/bin/kubectl",
                  f"cp {q(str(state / 'kubeconfig'))} $M/root/.kube/config",
                  "chmod 600 $M/root/.kube/config"]
    # the image store: read-only binds made while the host's `/` is still this namespace's root
    img = f"$M{IMAGES}"
    lines += [
        f"mkdir -p {img}",
        f"mount --bind -o ro {q(str(state / 'images'))} {img}",
        f"mount --bind / {img}/host",
        f"mount -o remount,bind,ro {img}/host",
    ]
    lines += [
        "cd $M; mkdir .oldroot; pivot_root . .oldroot; cd /; umount -l /.oldroot; rmdir /.oldroot",
        f"export PATH={SBIN} HOME=/root LANG=C.UTF-8",
        "set +e",
        "trap 'exit 0' TERM INT",
        "/usr/sbin/sshd -D -E /var/log/sshd.log </dev/null >/dev/null 2>&1 &",
        "echo ready",
        # PID 1: bash reaps orphans (daemons that double-fork) while it waits
        "while :; do sleep 3600 & wait $!; done",
    ]
    return "\n".join(lines) + "\n"


def setup_lab_netns(*, netns: str, bridge_ip: str, host_if: str, host_ip: str,
                    service_cidr: str) -> None:
    """The lab namespace with the bridge, and the host's single veth into it."""
    run(["ip", "netns", "add", netns])
    run(["ip", "-n", netns, "-batch", "-"], input="\n".join([
        "link set lo up",
        "link add br0 type bridge",
        f"addr add {bridge_ip}/24 dev br0",
        "link set br0 up",
    ]) + "\n")
    run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "host", "netns", netns])
    run(["ip", "-n", netns, "-batch", "-"], input="link set host master br0\nlink set host up\n")
    run(["ip", "-batch", "-"], input="\n".join([
        f"addr add {host_ip}/24 dev {host_if}",
        f"link set {host_if} up",
        f"route add {service_cidr} via {bridge_ip} dev {host_if}",
    ]) + "\n")


def setup_node_links(*, lab_netns: str, nodes) -> None:
    """Namespaces and veths for NODES (objects with name, ip, netns, veth), two `ip` calls."""
    cmds = []
    for n in nodes:
        cmds.append(f"netns add {n.netns}")
        cmds.append(f"link add {n.veth} netns {lab_netns} type veth peer name eth0 netns {n.netns}")
    run(["ip", "-batch", "-"], input="\n".join(cmds) + "\n", timeout=300)
    run(["ip", "-n", lab_netns, "-batch", "-"], input="".join(
        f"link set {n.veth} master br0\nlink set {n.veth} up\n" for n in nodes), timeout=300)


def setup_node_addr(node, gateway: str) -> None:
    run(["ip", "-n", node.netns, "-batch", "-"], input="\n".join([
        "link set lo up",
        f"addr add {node.ip}/24 dev eth0",
        "link set eth0 up",
        f"route add default via {gateway}",
    ]) + "\n")
