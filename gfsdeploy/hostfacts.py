"""Host facts, Ansible's names and shapes: read by one shell snippet that rides in
the same batched round trip as every task's state, parsed on the controller,
gathered once per run and cached between runs (so the next run can render
fact-dependent tasks before it has talked to the host).

``gather(text)`` gives what Ansible's ``ansible_facts`` holds (keys without the
``ansible_`` prefix); ``inject(facts)`` the ``ansible_*`` variables playbooks use.
Which facts exist and where each comes from: docs/ANSIBLE-STRUCTURE.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import time

from gfsdeploy.modules.base import HostInfo

_SECTIONS = [
    # small files are read by the shell itself (_READ: no process each); /proc/sys/kernel/
    # osrelease and hostname are what `uname -r` and `hostname` print
    ("os", "__rd /etc/os-release || __rd /usr/lib/os-release"),
    ("debian_version", "__rd /etc/debian_version"),
    ("uname", "__rd /proc/sys/kernel/ostype; { __rd /proc/sys/kernel/osrelease || uname -r; }; uname -m; "
              "__rd /proc/sys/kernel/hostname; __rd /proc/sys/kernel/version"),
    ("hostname", "__rd /proc/sys/kernel/hostname || hostname"),
    # Python's socket.getfqdn(), which Ansible uses: the host name's address (the first
    # field of the first line), looked up back (the first line of that answer)
    ("fqdn", "h=; IFS= read -r h < /proc/sys/kernel/hostname || h=$(hostname); "
             "a=$(getent hosts \"$h\"); a=${a%%[[:space:]]*}; r=; [ -z \"$a\" ] || r=$(getent hosts \"$a\"); "
             "r=${r%%\"$__nl\"*}; if [ -n \"$r\" ]; then printf '%s\\n' \"$r\"; else echo \"- $h\"; fi"),
    ("meminfo", "cat /proc/meminfo 2>/dev/null"),
    ("cpuinfo", "grep -E '^(processor|vendor_id|model name|physical id|core id|cpu cores|siblings)' /proc/cpuinfo"
                " 2>/dev/null"),
    ("nproc", "nproc 2>/dev/null"),
    ("route4", "ip -4 route get 8.8.8.8 2>/dev/null | head -n 1"),
    ("route6", "ip -6 route get 2404:6800:4003:c02::64 2>/dev/null | head -n 1"),
    ("addr", "ip -o addr show 2>/dev/null"),
    ("link", "ip -o link show 2>/dev/null"),
    ("mounts", "cat /proc/mounts 2>/dev/null"),
    ("df", "df -P -k 2>/dev/null"),
    # sysfs attributes read with the shell's own `read` (no process per attribute: a host
    # with a hundred loop devices took 0.7 s with `$(cat …)`)
    ("blocks", "for d in /sys/block/*; do [ -e \"$d\" ] || continue; n=${d##*/}; "
               "s=; r=; q=; l=; m=; "
               "IFS= read -r s < $d/size; IFS= read -r r < $d/removable; "
               "IFS= read -r q < $d/queue/rotational; IFS= read -r l < $d/queue/logical_block_size; "
               "IFS= read -r m < $d/device/model; "
               "printf 'D %s %s %s %s %s|%s\\n' \"$n\" \"$s\" \"$r\" \"$q\" \"$l\" \"$m\"; "
               "for p in $d/$n*; do [ -e \"$p/partition\" ] || continue; s=; t=; "
               "IFS= read -r s < $p/size; IFS= read -r t < $p/start; "
               "printf 'P %s %s %s %s\\n' \"$n\" \"${p##*/}\" \"$s\" \"$t\"; "
               "done; done"),
    ("env", "env"),
    # what Ansible's service_mgr rule looks at (service_mgr() below; docs/ANSIBLE-STRUCTURE.md):
    # PID 1's name; only when that is not to be trusted, the rest (no process on a systemd host)
    ("service_mgr", "c=; IFS= read -r c < /proc/1/comm; echo \"comm=$c\"; "
                    "[ -n \"$c\" ] || echo \"ps=$(ps -p 1 -o comm | tail -n 1)\"; "
                    "case $c in ''|init|*sh) "
                    "[ -L /sbin/init ] && echo \"init=$(readlink /sbin/init)\"; "
                    "p=$PATH:/sbin:/usr/sbin:/usr/local/sbin; while [ -n \"$p\" ]; do d=${p%%:*}; "
                    "for t in systemctl initctl; do [ -f \"$d/$t\" ] && [ -x \"$d/$t\" ] && echo \"$t=yes\"; "
                    "done; [ \"$p\" = \"$d\" ] && p= || p=${p#*:}; done; "
                    "for d in /run/systemd/system /dev/.run/systemd /dev/.systemd /etc/init /etc/init.d /etc/dinit.d; "
                    "do [ -d \"$d/\" ] && echo \"dir=$d\"; done; [ -e /sbin/openrc ] && echo openrc=yes;; esac"),
    ("user", "id -u; id -g; id -un; echo \"$HOME\"; echo \"$SHELL\""),
    ("date", "date +'%s %z %Z'"),
    ("pkg", "for p in apt-get dnf yum zypper apk pacman; do command -v $p >/dev/null 2>&1 && { echo $p; break; }; done"),
    # cgroup hierarchy, SELinux, the active firewall manager, PID 1 (key=value lines)
    ("targets", r"""echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
[ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] && echo cgroup_unified=yes
if command -v getenforce >/dev/null 2>&1; then echo "selinux=$(getenforce 2>/dev/null)"
elif [ -r /sys/fs/selinux/enforce ]; then x=; IFS= read -r x < /sys/fs/selinux/enforce; echo "selinux_enforce=$x"; fi
[ -r /etc/selinux/config ] && sed -n -e 's/^SELINUX=/selinux_config=/p' -e 's/^SELINUXTYPE=/selinux_type=/p' /etc/selinux/config
x=; IFS= read -r x < /proc/1/comm; echo "pid1=$x"
if command -v firewall-cmd >/dev/null 2>&1; then
  if systemctl is-active --quiet firewalld.service 2>/dev/null || pgrep -x firewalld >/dev/null 2>&1; then echo firewalld=running; else echo firewalld=stopped; fi
fi
if command -v ufw >/dev/null 2>&1; then echo "ufw=$(sed -n 's/^ENABLED=//p' /etc/ufw/ufw.conf 2>/dev/null | tr -d '\"')"; fi"""),
    ("cmdline", "__rd /proc/cmdline"),
    ("uptime", "__rd /proc/uptime"),
    ("resolv", "grep -E '^(nameserver|search|domain)' /etc/resolv.conf 2>/dev/null"),
    ("machine_id", "__rd /etc/machine-id"),
    ("python", "for p in python3 /usr/libexec/platform-python python; do command -v $p 2>/dev/null && break; done"),
    ("local", "for f in /etc/ansible/facts.d/*.fact; do [ -f \"$f\" ] || continue; echo \"F ${f##*/}\"; "
              "if [ -x \"$f\" ]; then \"$f\"; else cat \"$f\"; fi; echo; done"),
]
MARK = "@@gfsfacts@@"
#: a small file's lines, printed by the shell (a last line without its newline gets one)
_READ = ("__rd() { while IFS= read -r __l || [ -n \"$__l\" ]; do printf '%s\\n' \"$__l\"; done < \"$1\"; }\n"
         "__nl='\n'\n")
def _probe(names=None) -> str:
    return _READ + "\n".join(f"echo '{MARK} {name}'; {{ {cmd}; }} 2>/dev/null" for name, cmd in _SECTIONS
                             if names is None or name in names) + "\ntrue"


#: every fact (a host whose facts are variables: a play gathers them, or `setup` runs)
FACTS_PROBE = _probe()
#: what modules plan with (HostInfo: the distribution, cgroups, SELinux, the firewall, PID 1),
#: for a host no play gathers facts of — as with Ansible's ``gather_facts: false``, nothing
#: else is read (a third of the sections' processes, and the host's environment, uptime and
#: memory never leave it)
INFO_PROBE = _probe(("os", "debian_version", "targets"))

_REDHAT = {"rhel", "centos", "rocky", "almalinux", "fedora", "ol", "amzn", "scientific", "cloudlinux"}
_DEBIAN = {"debian", "ubuntu", "linuxmint", "raspbian", "pop", "kali", "devuan"}
_DISTRO_NAMES = {"debian": "Debian", "ubuntu": "Ubuntu", "centos": "CentOS", "rhel": "RedHat", "rocky": "Rocky",
                 "almalinux": "AlmaLinux", "fedora": "Fedora", "ol": "OracleLinux", "amzn": "Amazon",
                 "linuxmint": "Linux Mint", "opensuse-leap": "openSUSE Leap", "sles": "SLES", "alpine": "Alpine",
                 "arch": "Archlinux", "raspbian": "Debian", "scientific": "Scientific", "pop": "Pop!_OS"}
_FAMILIES = {"Debian": "Debian", "Ubuntu": "Debian", "Linux Mint": "Debian", "Pop!_OS": "Debian",
             "CentOS": "RedHat", "RedHat": "RedHat", "Rocky": "RedHat", "AlmaLinux": "RedHat", "Fedora": "RedHat",
             "OracleLinux": "RedHat", "Amazon": "RedHat", "Scientific": "RedHat",
             "openSUSE Leap": "Suse", "SLES": "Suse", "Alpine": "Alpine", "Archlinux": "Archlinux"}


def sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.split("\n"):
        if line.startswith(MARK + " "):
            current = line[len(MARK) + 1:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v).strip("\n") for k, v in out.items()}


def _os_release(text: str) -> dict:
    fields = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip()] = value.strip().strip('"').strip("'")
    return fields


def gather(text: str) -> dict:
    """Ansible's ``ansible_facts`` (no prefix) from the probe's output. A section
    that could not be read is left out, as Ansible leaves out what it cannot find."""
    if MARK not in text:  # an os-release text cached by an older version
        text = f"{MARK} os\n{text}"
    s = sections(text)
    facts = _os_facts(s)
    _other_facts(s, facts)
    return facts


def _os_facts(s: dict) -> dict:
    """The distribution facts (what :func:`host_info` needs) from the probe's sections."""
    facts: dict = {}
    osr = _os_release(s.get("os", ""))
    os_id = osr.get("ID", "").lower()
    like = set(osr.get("ID_LIKE", "").lower().split())
    distro = _DISTRO_NAMES.get(os_id, osr.get("NAME", os_id.capitalize() or "Unknown").split()[0] if osr else "Unknown")
    if os_id == "rhel":
        distro = "RedHat"
    family = _FAMILIES.get(distro)
    if family is None:
        family = "Debian" if like & {"debian", "ubuntu"} else "RedHat" if like & {"rhel", "fedora", "centos"} \
            else "Suse" if "suse" in like else distro
    version = osr.get("VERSION_ID", "")
    facts.update(distribution=distro, os_family=family, distribution_version=version,
                 distribution_major_version=version.split(".")[0] if version else "",
                 distribution_release=osr.get("VERSION_CODENAME") or osr.get("UBUNTU_CODENAME") or "",
                 distribution_file_variety=family)
    if os_id == "debian" and version and "." not in version:
        debian_version = _read_debian_version(s)
        if debian_version:
            facts["distribution_version"] = debian_version
    return facts


def _other_facts(s: dict, facts: dict) -> None:
    """Every fact but the distribution's (added to ``facts``)."""
    uname = s.get("uname", "").splitlines()
    if len(uname) >= 4:
        facts.update(system=uname[0], kernel=uname[1], architecture=uname[2], machine=uname[2], nodename=uname[3],
                     kernel_version=uname[4] if len(uname) > 4 else "")
        if facts["architecture"] == "aarch64":
            facts["userspace_architecture"] = "aarch64"
    hostname = s.get("hostname", "").strip()
    if hostname:
        facts["hostname"] = hostname.split(".")[0]
    names = s.get("fqdn", "").split()[1:]  # "address canonical aliases…" (or "- hostname")
    fqdn = next((n for n in names if "." in n), names[0] if names else hostname)
    if fqdn:
        facts["fqdn"] = fqdn
        facts["domain"] = fqdn.split(".", 1)[1] if "." in fqdn else ""
    _memory(s.get("meminfo", ""), facts)
    _processors(s.get("cpuinfo", ""), s.get("nproc", ""), facts)
    _network(s.get("addr", ""), s.get("link", ""), s.get("route4", ""), s.get("route6", ""), facts)
    _mounts(s.get("mounts", ""), s.get("df", ""), facts)
    _devices(s.get("blocks", ""), facts)
    env = {}
    for line in s.get("env", "").splitlines():
        key, eq, value = line.partition("=")
        if eq and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            env[key] = value
    if env:
        facts["env"] = env
    if "service_mgr" in s:
        facts["service_mgr"] = service_mgr(s["service_mgr"], facts)
    user = s.get("user", "").splitlines()
    if len(user) >= 3:
        facts.update(user_uid=_int(user[0]), user_gid=_int(user[1]), user_id=user[2],
                     user_dir=user[3] if len(user) > 3 else "", user_shell=user[4] if len(user) > 4 else "")
    _date(s.get("date", ""), facts)
    pkg = s.get("pkg", "").strip()
    if pkg:
        facts["pkg_mgr"] = {"apt-get": "apt"}.get(pkg, pkg)
    more = _key_values(s.get("targets", ""))
    if more:
        selinux = selinux_mode(more)
        if selinux in ("enforcing", "permissive"):
            config = more.get("selinux_config", "").strip('"').lower()
            facts["selinux"] = {"status": "enabled", "mode": selinux, "config_mode": config or selinux,
                                "type": more.get("selinux_type", "").strip('"') or "targeted"}
        else:
            facts["selinux"] = {"status": "disabled"}
    cmdline = s.get("cmdline", "").strip()
    if cmdline:
        facts["cmdline"] = {k: (v if eq else True) for k, eq, v in (w.partition("=") for w in cmdline.split())}
        facts["proc_cmdline"] = facts["cmdline"]
    up = s.get("uptime", "").split()
    if up:
        facts["uptime_seconds"] = int(float(up[0]))
    dns: dict = {}
    for line in s.get("resolv", "").splitlines():
        words = line.split()
        if len(words) >= 2:
            if words[0] == "nameserver":
                dns.setdefault("nameservers", []).append(words[1])
            elif words[0] == "search":
                dns["search"] = words[1:]
            elif words[0] == "domain":
                dns["domain"] = words[1]
    if dns:
        facts["dns"] = dns
    if s.get("machine_id", "").strip():
        facts["machine_id"] = s["machine_id"].strip()
    python = s.get("python", "").strip().splitlines()
    if python:
        facts["python"] = {"executable": python[0]}
    facts["local"] = _local_facts(s.get("local", ""))


#: PID 1 names Ansible reports under another name
_PID1_NAMES = {"procd": "openwrt_init", "runit-init": "runit", "svscan": "svc", "openrc-init": "openrc"}


def service_mgr(text: str, facts: dict) -> str:
    """Ansible's ``service_mgr`` from the probe's section: PID 1's name, unless it is
    ``init`` or ends in ``sh`` (a shell: a container's PID 1 — not to be trusted); then
    by OS, and on Linux: systemd when systemctl is installed and /run/systemd/system (or
    /dev/.run/systemd, /dev/.systemd) is a directory, upstart when initctl is installed
    and /etc/init/ exists, openrc when /sbin/openrc exists, systemd when systemctl is
    installed and /sbin/init is a link to ``systemd``, sysvinit when /etc/init.d/ exists,
    dinit when /etc/dinit.d/ exists; else ``service``."""
    seen: dict = {}
    dirs = set()
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if key == "dir":
            dirs.add(value.strip())
        elif eq:
            seen[key] = value
    pid1 = seen.get("comm", "").strip() or None
    if pid1 is None:  # /proc/1/comm unreadable: ps, unless it printed a header, a PID or nothing
        ps = seen.get("ps", "").strip()
        pid1 = ps if ps and ps != "COMMAND" and not re.match(r" *[0-9]+ ", seen.get("ps", "")) else None
    if pid1 is None and seen.get("init"):
        pid1 = seen["init"]
    if pid1 is not None:
        pid1 = pid1.rstrip("/").rsplit("/", 1)[-1].strip()
    if pid1 and pid1 != "init" and not pid1.endswith("sh"):
        return _PID1_NAMES.get(pid1, pid1)
    system, distribution = facts.get("system", ""), facts.get("distribution", "")
    if "BSD" in system or system in ("Bitrig", "DragonFly"):
        return "bsdinit"
    if system in ("AIX", "SunOS"):
        return {"AIX": "src", "SunOS": "smf"}[system]
    if distribution in ("OpenWrt", "SMGL"):
        return {"OpenWrt": "openwrt_init", "SMGL": "simpleinit_msb"}[distribution]
    if system not in ("Linux", ""):  # unknown (uname unreadable): gfsdeploy's hosts are Linux
        return "service"
    systemctl = seen.get("systemctl") == "yes"
    if systemctl and dirs & {"/run/systemd/system", "/dev/.run/systemd", "/dev/.systemd"}:
        return "systemd"
    if seen.get("initctl") == "yes" and "/etc/init" in dirs:
        return "upstart"
    if seen.get("openrc") == "yes":
        return "openrc"
    if systemctl and seen.get("init", "").rstrip("/").rsplit("/", 1)[-1] == "systemd":
        return "systemd"
    if "/etc/init.d" in dirs:
        return "sysvinit"
    if "/etc/dinit.d" in dirs:
        return "dinit"
    return "service"


def _key_values(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            out[key.strip()] = value.strip()
    return out


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
    """What gfsdeploy adds where Ansible has no fact: ``gfsdeploy_cgroup_version``,
    ``gfsdeploy_cgroup_mode``, ``gfsdeploy_firewall`` (docs/TARGETS.md)."""
    if not info.cgroup and not info.selinux and not info.firewall:
        return {}  # facts not read yet (or an old cache entry)
    return {"gfsdeploy_cgroup_version": 2 if info.cgroup == "v2" else 1 if info.cgroup in ("v1", "hybrid") else 0,
            "gfsdeploy_cgroup_mode": info.cgroup or "unknown", "gfsdeploy_firewall": info.firewall or "none"}


def _read_debian_version(s: dict) -> str:
    """Debian's point release (12.5) from /etc/debian_version, as Ansible reports it."""
    text = s.get("debian_version", "").strip()
    return text if re.match(r"^\d+(\.\d+)*$", text) else ""


def _int(text: str) -> int | str:
    try:
        return int(text.strip())
    except ValueError:
        return text.strip()


def _memory(text: str, facts: dict) -> None:
    mem = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            mem[key.strip()] = int(parts[0]) // 1024  # kB -> MB
    if "MemTotal" not in mem:
        return
    free = mem.get("MemFree", 0)
    nocache_free = free + mem.get("Buffers", 0) + mem.get("Cached", 0)
    facts.update(memtotal_mb=mem["MemTotal"], memfree_mb=free, swaptotal_mb=mem.get("SwapTotal", 0),
                 swapfree_mb=mem.get("SwapFree", 0))
    facts["memory_mb"] = {
        "real": {"total": mem["MemTotal"], "free": free, "used": mem["MemTotal"] - free},
        "nocache": {"free": nocache_free, "used": mem["MemTotal"] - nocache_free},
        "swap": {"total": mem.get("SwapTotal", 0), "free": mem.get("SwapFree", 0),
                 "used": mem.get("SwapTotal", 0) - mem.get("SwapFree", 0), "cached": mem.get("SwapCached", 0)}}


def _processors(text: str, nproc: str, facts: dict) -> None:
    processor: list = []
    sockets, cores_per_socket, siblings = set(), 0, 0
    count = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            count += 1
            processor.append(value)
        elif key in ("vendor_id", "model name"):
            processor.append(value)
        elif key == "physical id":
            sockets.add(value)
        elif key == "cpu cores":
            cores_per_socket = _int(value) if isinstance(_int(value), int) else 0
        elif key == "siblings":
            siblings = _int(value) if isinstance(_int(value), int) else 0
    if not count:
        return
    socket_count = len(sockets) or 1
    cores = cores_per_socket or 1
    facts.update(processor=processor, processor_count=socket_count, processor_cores=cores,
                 processor_threads_per_core=max(1, (siblings // cores) if siblings and cores else 1),
                 processor_vcpus=count)
    n = _int(nproc) if nproc.strip() else count
    facts["processor_nproc"] = n if isinstance(n, int) else count


def _network(addr: str, link: str, route4: str, route6: str, facts: dict) -> None:
    ifaces: dict[str, dict] = {}
    for line in link.splitlines():
        m = re.match(r"^\d+:\s+([^:@]+)(?:@[^:]+)?:\s+<([^>]*)>(.*)$", line)
        if not m:
            continue
        name, flags, rest = m.group(1), m.group(2).split(","), m.group(3)
        info = ifaces.setdefault(name, {"device": name})
        info["active"] = "UP" in flags or "LOWER_UP" in flags
        info["promisc"] = "PROMISC" in flags
        mtu = re.search(r"\bmtu (\d+)", rest)
        if mtu:
            info["mtu"] = int(mtu.group(1))
        mac = re.search(r"link/(\w+) ([0-9a-f:]{17})", rest)
        if mac:
            info["macaddress"] = mac.group(2)
            info["type"] = {"ether": "ether", "loopback": "loopback"}.get(mac.group(1), mac.group(1))
        elif "link/loopback" in rest:
            info["type"] = "loopback"
    all4, all6 = [], []
    for line in addr.splitlines():
        m = re.match(r"^\d+:\s+(\S+)\s+(inet6?)\s+(\S+)(.*)$", line)
        if not m:
            continue
        name, family, cidr, rest = m.group(1), m.group(2), m.group(3), m.group(4)
        info = ifaces.setdefault(name, {"device": name})
        try:
            net = ipaddress.ip_interface(cidr)
        except ValueError:
            continue
        if family == "inet":
            entry = {"address": str(net.ip), "netmask": str(net.network.netmask), "network": str(net.network.network_address),
                     "prefix": str(net.network.prefixlen)}
            brd = re.search(r"\bbrd (\S+)", rest)
            if brd:
                entry["broadcast"] = brd.group(1)
            if "ipv4" in info:
                info.setdefault("ipv4_secondaries", []).append(entry)
            else:
                info["ipv4"] = entry
            if not net.ip.is_loopback:
                all4.append(str(net.ip))
        else:
            scope = re.search(r"\bscope (\S+)", rest)
            info.setdefault("ipv6", []).append({"address": str(net.ip), "prefix": str(net.network.prefixlen),
                                                "scope": scope.group(1) if scope else ""})
            if not net.ip.is_loopback:
                all6.append(str(net.ip))
    if not ifaces:
        return
    facts["interfaces"] = sorted(ifaces)
    for name, info in ifaces.items():
        facts[re.sub(r"[^A-Za-z0-9_]", "_", name)] = info
    facts["all_ipv4_addresses"] = all4
    facts["all_ipv6_addresses"] = all6
    for key, text in (("default_ipv4", route4), ("default_ipv6", route6)):
        m = re.search(r"\bdev (\S+)", text)
        if not m or m.group(1) not in ifaces:
            facts[key] = {}
            continue
        dev = m.group(1)
        info = ifaces[dev]
        src = re.search(r"\bsrc (\S+)", text)
        via = re.search(r"\bvia (\S+)", text)
        entry: dict = {"interface": dev, "alias": dev, "gateway": via.group(1) if via else ""}
        if key == "default_ipv4" and "ipv4" in info:
            entry.update(info["ipv4"])
        elif key == "default_ipv6" and info.get("ipv6"):
            entry.update(info["ipv6"][0])
        if src:
            entry["address"] = src.group(1)
        for k in ("macaddress", "mtu", "type"):
            if k in info:
                entry[k] = info[k]
        facts[key] = entry


_PSEUDO = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "pstore", "debugfs",
           "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "bpf", "autofs", "binfmt_misc", "rpc_pipefs",
           "nsfs", "efivarfs", "selinuxfs"}


def _mounts(mounts: str, df: str, facts: dict) -> None:
    sizes = {}
    for line in df.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 6 and parts[1].isdigit():
            sizes[parts[-1]] = (int(parts[1]) * 1024, int(parts[3]) * 1024 if parts[3].isdigit() else 0)
    out = []
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        device, mount, fstype, options = parts[0], _unescape(parts[1]), parts[2], parts[3]
        if fstype in _PSEUDO or fstype == "tmpfs" and not device.startswith("/"):
            continue
        # device-backed, network ("server:/export") and FUSE file systems, as Ansible lists them
        if not (device.startswith("/") or ":" in device or fstype.startswith("fuse.")
                or fstype in ("overlay", "zfs", "btrfs", "nfs", "nfs4", "cifs")):
            continue
        total, avail = sizes.get(mount, (0, 0))
        out.append({"mount": mount, "device": device, "fstype": fstype, "options": options,
                    "size_total": total, "size_available": avail})
    facts["mounts"] = out


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _human(sectors: int, sector_size: int = 512) -> str:
    size = float(sectors) * sector_size
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1024 or unit == "PB":
            return f"{size:.2f} {unit}" if unit != "bytes" else f"{int(size)} bytes"
        size /= 1024
    return ""


def _devices(text: str, facts: dict) -> None:
    devices: dict = {}
    for line in text.splitlines():
        if line.startswith("D "):
            head, _, model = line[2:].partition("|")
            parts = head.split()
            if len(parts) < 2 or not parts[1].isdigit():
                continue
            name, sectors = parts[0], int(parts[1])
            sector_size = int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else 512
            devices[name] = {"sectors": str(sectors), "sectorsize": str(sector_size),
                             "size": _human(sectors, 512), "removable": parts[2] if len(parts) > 2 else "0",
                             "rotational": parts[3] if len(parts) > 3 else "", "model": model.strip() or None,
                             "partitions": {}, "holders": [], "links": {}}
        elif line.startswith("P "):
            parts = line[2:].split()
            if len(parts) >= 3 and parts[0] in devices and parts[2].isdigit():
                devices[parts[0]]["partitions"][parts[1]] = {
                    "sectors": parts[2], "size": _human(int(parts[2])), "start": parts[3] if len(parts) > 3 else ""}
    facts["devices"] = devices


def _date(text: str, facts: dict) -> None:
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return
    epoch = int(parts[0])
    offset = parts[1] if len(parts) > 1 else "+0000"
    sign = -1 if offset.startswith("-") else 1
    try:
        shift = sign * (int(offset[1:3]) * 3600 + int(offset[3:5]) * 60)
    except ValueError:
        shift = 0
    t = time.gmtime(epoch + shift)
    u = time.gmtime(epoch)
    facts["date_time"] = {
        "epoch": str(epoch), "date": time.strftime("%Y-%m-%d", t), "time": time.strftime("%H:%M:%S", t),
        "year": time.strftime("%Y", t), "month": time.strftime("%m", t), "day": time.strftime("%d", t),
        "hour": time.strftime("%H", t), "minute": time.strftime("%M", t), "second": time.strftime("%S", t),
        "weekday": time.strftime("%A", t), "weekday_number": time.strftime("%w", t),
        "weeknumber": time.strftime("%W", t), "iso8601": time.strftime("%Y-%m-%dT%H:%M:%SZ", u),
        "iso8601_basic_short": time.strftime("%Y%m%dT%H%M%S", t), "tz": parts[2] if len(parts) > 2 else "",
        "tz_offset": offset}


def _local_facts(text: str) -> dict:
    out: dict = {}
    name, lines = None, []

    def flush():
        if name is None:
            return
        body = "\n".join(lines).strip()
        key = name[:-5] if name.endswith(".fact") else name
        try:
            out[key] = json.loads(body)
        except ValueError:
            import configparser

            parser = configparser.ConfigParser()
            try:
                parser.read_string(body)
                out[key] = {sec: dict(parser.items(sec)) for sec in parser.sections()}
            except configparser.Error:
                out[key] = "error loading fact - please check content"

    for line in text.splitlines():
        if line.startswith("F "):
            flush()
            name, lines = line[2:].strip(), []
        else:
            lines.append(line)
    flush()
    return out


def inject(facts: dict, info: HostInfo | None = None) -> dict:
    """The ``ansible_*`` variables (plus ``ansible_facts``) for a host's facts, and
    gfsdeploy's own ``gfsdeploy_*`` ones."""
    out = {f"ansible_{k}": v for k, v in facts.items()}
    out["ansible_facts"] = facts
    if info is not None:
        out.update(facts_vars(info))
    return out


def read(name: str, text: str, host_vars: dict, *, facts: bool = True) -> tuple[dict | None, HostInfo]:
    """The facts probe's output as (ansible_facts, the HostInfo modules plan with).
    ``facts=False``: the HostInfo only (None for the facts: a run whose plays gather no
    facts reads only the distribution's; the devices of a host with many loop devices
    were most of the parsing)."""
    if not facts:  # (a thousand hosts of one distribution answer the same text: parsed once)
        known = _INFO_OF_TEXT.get(text)
        if known is not None:
            return None, dataclasses.replace(known, name=name, vars=host_vars)
    given = text
    if MARK not in text:  # an os-release text cached by an older version
        text = f"{MARK} os\n{text}"
    s = sections(text)
    found = _os_facts(s)
    info = host_info(name, found, host_vars)
    if facts:
        _other_facts(s, found)
    more = _key_values(s.get("targets", ""))
    if more:
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
    if not facts:
        if len(_INFO_OF_TEXT) >= 64:
            _INFO_OF_TEXT.clear()
        _INFO_OF_TEXT[given] = dataclasses.replace(info, name="", vars={})
    return (found if facts else None), info


#: the facts probe's text -> the HostInfo it gives (but the host's name and variables)
_INFO_OF_TEXT: dict = {}


def host_info(name: str, facts: dict, host_vars: dict) -> HostInfo:
    """What modules plan with: OS family/id/version (lower case)."""
    family = {"Debian": "debian", "RedHat": "redhat"}.get(facts.get("os_family", ""), "unknown")
    os_id = {v: k for k, v in _DISTRO_NAMES.items()}.get(facts.get("distribution", ""), "unknown")
    if facts.get("distribution") == "RedHat":
        os_id = "rhel"
    if facts.get("distribution") == "Debian":
        os_id = "debian"
    version = facts.get("distribution_version", "")
    if os_id == "debian":  # os-release's VERSION_ID (12), not the point release
        version = facts.get("distribution_major_version", version)
    return HostInfo(name=name, os_family=family, os_id=os_id, os_version=version, vars=host_vars)


def parse_facts(name: str, text: str, host_vars: dict) -> HostInfo:
    """The HostInfo of the probe's output."""
    return read(name, text, host_vars)[1]


class HostFactsCache:
    """``~/.cache/gfsdeploy/facts``: the facts probe's output last seen per host address.

    A host's file is written only when its facts differ from what this object last read
    from it or wrote to it (a digest, per file): a converged run rewrote every host's
    file with the very same text."""

    def __init__(self, directory: str | None = None):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        self.directory = directory or os.path.join(base, "gfsdeploy", "facts")
        self._held: dict = {}   # path -> sha256 of the facts text the file holds (as far as we know)

    def _path(self, host) -> str:
        key = hashlib.sha256(f"{host.address}:{host.port}:{host.name}".encode()).hexdigest()[:32]
        return os.path.join(self.directory, key + ".json")

    def get(self, host) -> str | None:
        path = self._path(host)
        self._held.pop(path, None)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        if data.get("facts") and data.get("host") == host.name:  # (an old format is rewritten)
            self._held[path] = _digest(data["facts"])
        return data.get("facts") or data.get("os_release")

    def put(self, host, text: str) -> None:
        path = self._path(host)
        digest = _digest(text)
        if self._held.get(path) == digest:
            return  # the file holds these facts already
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            tmp = path + f".{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"host": host.name, "facts": text}, handle)
            os.replace(tmp, path)
            self._held[path] = digest
        except OSError:
            pass  # a cache, nothing more


def _digest(text) -> str:
    return hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()
