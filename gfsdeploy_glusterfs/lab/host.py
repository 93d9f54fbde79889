"""Host preflight and small process helpers for the lab (root, Linux, tools, free addresses)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys

from gfsdeploy.errors import GfsError

# tool -> Debian package that provides it
TOOLS = {
    "ip": "iproute2",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "losetup": "mount",
    "mount": "mount",
    "iptables": "iptables",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
}
SBIN = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")


class LabError(GfsError):
    """The local lab cannot be brought up, down or inspected."""


def which(tool: str) -> str | None:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":" + SBIN)


def missing_tools(tools=TOOLS) -> list[str]:
    """Names of required tools not found, as 'tool (apt package)'."""
    out = [f"{t} (apt package {pkg})" for t, pkg in tools.items() if not which(t)]
    if not os.path.exists("/usr/lib/openssh/sftp-server"):
        out.append("/usr/lib/openssh/sftp-server (apt package openssh-sftp-server)")
    return out


def preflight() -> None:
    """Refuse early, naming what is missing and how to get it."""
    if not sys.platform.startswith("linux"):
        raise LabError(f"the local lab needs Linux (this is {sys.platform})",
                       fix="use the Vagrant lab (Vagrantfile) on this machine instead")
    if os.geteuid() != 0:
        raise LabError("the local lab needs root (network namespaces, mounts, loop devices)",
                       fix="run it with sudo: sudo gfsdeploy lab ...")
    missing = missing_tools()
    if missing:
        pkgs = sorted({m.split("apt package ")[1].rstrip(")") for m in missing})
        raise LabError("missing tools: " + ", ".join(missing),
                       fix="apt-get install -y " + " ".join(pkgs))
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            raise LabError("the kernel has no overlay filesystem",
                           fix="load it (modprobe overlay) or use a kernel with CONFIG_OVERLAY_FS")


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise LabError(f"bad lab name {name!r}: expected 1-12 lowercase letters/digits, starting with a letter",
                       field="name", fix="pick e.g. --name gfslab")
    return name


def check_base(base: str) -> str:
    """BASE is the first two octets, e.g. 10.186: the lab uses BASE.0.0/24 and BASE.1.0/24."""
    parts = (base or "").split(".")
    if len(parts) != 2 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
        raise LabError(f"bad subnet base {base!r}: expected two octets like 10.186",
                       field="subnet", fix="pass e.g. --subnet 10.186")
    return ".".join(str(int(p)) for p in parts)


def lab_networks(base: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.ip_network(f"{base}.0.0/24"), ipaddress.ip_network(f"{base}.1.0/24")]


def route_conflicts(routes: list[dict], base: str) -> list[str]:
    """Host routes (``ip -j route`` objects) whose destination overlaps the lab's networks."""
    nets = lab_networks(base)
    out = []
    for r in routes:
        dst = r.get("dst", "")
        if dst in ("", "default") or ":" in dst:
            continue
        try:
            net = ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False)
        except ValueError:
            continue
        if net.prefixlen == 0:
            continue
        if any(net.overlaps(n) for n in nets):
            out.append(f"{dst} dev {r.get('dev', '?')}")
    return out


def host_routes() -> list[dict]:
    res = run(["ip", "-j", "route", "show"], check=True)
    return json.loads(res.stdout or "[]")


def run(argv, *, input=None, check=True, timeout=60, env=None) -> subprocess.CompletedProcess:
    """Run a host command; a failure becomes a LabError with the command and its stderr."""
    full_env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":" + SBIN)
    if env:
        full_env.update(env)
    try:
        res = subprocess.run(argv, input=input, capture_output=True, text=True,
                             timeout=timeout, env=full_env)
    except FileNotFoundError:
        raise LabError(f"command not found: {argv[0]}",
                       fix=f"apt-get install -y {TOOLS.get(argv[0], argv[0])}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from None
    if check and res.returncode != 0:
        raise LabError(f"command failed (exit {res.returncode}): {' '.join(argv)}\n"
                       f"  {res.stderr.strip()[:2000]}")
    return res


def preflight_basic() -> None:
    """What `down` and `status` need: Linux, root, `ip`."""
    if not sys.platform.startswith("linux"):
        raise LabError(f"the local lab needs Linux (this is {sys.platform})")
    if os.geteuid() != 0:
        raise LabError("the local lab needs root", fix="run it with sudo: sudo gfsdeploy lab ...")
    if not which("ip"):
        raise LabError("missing tool: ip (apt package iproute2)", fix="apt-get install -y iproute2")
