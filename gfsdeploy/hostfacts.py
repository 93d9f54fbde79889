"""The few facts about a host that plans depend on (OS family, distribution,
cgroup version, SELinux mode, the active firewall manager, the init system),
read in the same round trip as everything else, and cached between runs so the
next run can render fact-dependent tasks before it has talked to the host.

What each fact is read from (docs/TARGETS.md explains why these):

- ``/etc/os-release`` — distribution and family;
- the filesystem type at ``/sys/fs/cgroup``: ``cgroup2fs`` is the unified (v2)
  hierarchy; ``tmpfs`` holds v1 controllers (``hybrid`` when a v2 hierarchy is also
  mounted at ``/sys/fs/cgroup/unified``);
- ``getenforce`` (else ``/sys/fs/selinux/enforce``) and ``/etc/selinux/config``;
- firewalld running (its unit active, or its process), ufw enabled
  (``ENABLED=yes`` in ``/etc/ufw/ufw.conf``, which is what ``ufw status`` reports);
- ``/proc/1/comm`` — systemd or not.
"""

from __future__ import annotations

import hashlib
import json
import os

from gfsdeploy.modules.base import HostInfo

FACTS_MARK = "#gfsdeploy-facts"
FACTS_PROBE = r"""cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo '#gfsdeploy-facts'
echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
[ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] && echo cgroup_unified=yes
if command -v getenforce >/dev/null 2>&1; then echo "selinux=$(getenforce 2>/dev/null)"
elif [ -r /sys/fs/selinux/enforce ]; then echo "selinux_enforce=$(cat /sys/fs/selinux/enforce)"; fi
[ -r /etc/selinux/config ] && sed -n -e 's/^SELINUX=/selinux_config=/p' -e 's/^SELINUXTYPE=/selinux_type=/p' /etc/selinux/config
echo "pid1=$(cat /proc/1/comm 2>/dev/null)"
if command -v firewall-cmd >/dev/null 2>&1; then
  if systemctl is-active --quiet firewalld.service 2>/dev/null || pgrep -x firewalld >/dev/null 2>&1; then echo firewalld=running; else echo firewalld=stopped; fi
fi
if command -v ufw >/dev/null 2>&1; then echo "ufw=$(sed -n 's/^ENABLED=//p' /etc/ufw/ufw.conf 2>/dev/null | tr -d '\"')"; fi
true"""

_REDHAT = {"rhel", "centos", "rocky", "almalinux", "fedora", "ol", "amzn"}
_DEBIAN = {"debian", "ubuntu", "linuxmint", "raspbian", "pop"}


def parse_facts(name: str, os_release: str, host_vars: dict) -> HostInfo:
    """The facts probe's output (os-release, then our own ``key=value`` lines after
    the mark) as a HostInfo. Output of an older probe (os-release only) still parses."""
    release, _, extra = os_release.partition(FACTS_MARK)
    fields = {}
    for line in release.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip()] = value.strip().strip('"').strip("'")
    more = {}
    for line in extra.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            more[key.strip()] = value.strip()
    os_id = fields.get("ID", "unknown").lower()
    like = set(fields.get("ID_LIKE", "").lower().split())
    if os_id in _DEBIAN or "debian" in like or "ubuntu" in like:
        family = "debian"
    elif os_id in _REDHAT or like & {"rhel", "fedora", "centos"}:
        family = "redhat"
    else:
        family = "unknown"
    info = HostInfo(name=name, os_family=family, os_id=os_id, os_version=fields.get("VERSION_ID", ""),
                    vars=host_vars)
    if extra:
        info.cgroup = cgroup_mode(more.get("cgroup_fs", ""), more.get("cgroup_unified") == "yes")
        info.selinux = selinux_mode(more)
        info.selinux_config = more.get("selinux_config", "").strip('"').lower()
        info.selinux_type = more.get("selinux_type", "").strip('"')
        info.service_mgr = more.get("pid1", "")
        if more.get("firewalld") == "running":
            info.firewall = "firewalld"
        elif more.get("ufw", "").lower() == "yes":
            info.firewall = "ufw"
        else:
            info.firewall = "none"
    return info


def cgroup_mode(fs_type: str, unified: bool) -> str:
    """``v2`` (cgroup2fs at /sys/fs/cgroup), ``hybrid`` (v1 controllers plus a v2
    hierarchy at /sys/fs/cgroup/unified), ``v1``; empty when unknown."""
    if fs_type == "cgroup2fs":
        return "v2"
    if fs_type == "tmpfs":
        return "hybrid" if unified else "v1"
    return ""


def selinux_mode(more: dict) -> str:
    """enforcing / permissive / disabled, from getenforce or the enforce switch."""
    if "selinux" in more:
        mode = more["selinux"].strip().lower()
        return mode if mode in ("enforcing", "permissive", "disabled") else "disabled"
    if "selinux_enforce" in more:
        return "enforcing" if more["selinux_enforce"].strip() == "1" else "permissive"
    return "disabled"


def facts_vars(info: HostInfo) -> dict:
    """The variables these facts give playbooks: Ansible's names where Ansible has the
    fact (``ansible_selinux``, ``ansible_service_mgr``), ``gfsdeploy_*`` where it has not."""
    out: dict = {}
    if not info.cgroup and not info.selinux and not info.firewall:
        return out  # facts not read yet (or an old cache entry)
    if info.selinux in ("enforcing", "permissive"):
        out["ansible_selinux"] = {"status": "enabled", "mode": info.selinux,
                                  "config_mode": info.selinux_config or info.selinux,
                                  "type": info.selinux_type or "targeted"}
    else:
        out["ansible_selinux"] = {"status": "disabled"}
    if info.service_mgr:
        out["ansible_service_mgr"] = info.service_mgr
    out["gfsdeploy_cgroup_version"] = 2 if info.cgroup == "v2" else 1 if info.cgroup in ("v1", "hybrid") else 0
    out["gfsdeploy_cgroup_mode"] = info.cgroup or "unknown"
    out["gfsdeploy_firewall"] = info.firewall or "none"
    return out


class HostFactsCache:
    """``~/.cache/gfsdeploy/facts``: the os-release text last seen per host address."""

    def __init__(self, directory: str | None = None):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        self.directory = directory or os.path.join(base, "gfsdeploy", "facts")

    def _path(self, host) -> str:
        key = hashlib.sha256(f"{host.address}:{host.port}:{host.name}".encode()).hexdigest()[:32]
        return os.path.join(self.directory, key + ".json")

    def get(self, host) -> str | None:
        try:
            with open(self._path(host), encoding="utf-8") as handle:
                return json.load(handle).get("os_release")
        except (OSError, ValueError):
            return None

    def put(self, host, os_release: str) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            path = self._path(host)
            tmp = path + f".{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"host": host.name, "os_release": os_release}, handle)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache, nothing more
