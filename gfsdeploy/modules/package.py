"""``package`` (and ``apt``, ``yum``, ``dnf``): install only what is missing, in one command.

The OS family comes from the host facts (``HostInfo.os_family``); the package
manager's own query tool is the probe (``dpkg-query`` on Debian/Ubuntu,
``rpm -q`` on RHEL). Names are not mapped here — the playbook's variables pick
the package name per family, as in Ansible.
"""

from __future__ import annotations

from gfsdeploy.errors import ModuleError, PreflightError
from gfsdeploy.modules.base import ADD, CHANGE, DESTROY, Change, HostInfo, Module, Param, TaskResult, qjoin

INSTALL_TIMEOUT = 1800.0
_APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
_STATES = {"installed": "present", "removed": "absent"}


class Package(Module):
    name = "package"
    #: the family this module name insists on (apt/yum/dnf); None: whatever the host has
    family: str | None = None
    params = {
        "name": Param(type="list", required=True, aliases=("pkg",), check="package"),
        "state": Param(default="present", choices=("present", "installed", "absent", "removed", "latest")),
        "update_cache": Param(type="bool", default=False),
    }

    def host_family(self, host: HostInfo) -> str:
        family = (host.os_family or "unknown").lower()
        if self.family and family not in (self.family, "unknown"):
            raise PreflightError(f"module {self.name!r} manages {self.family} packages but {host.name} "
                                 f"is {host.os_family} ({host.os_id})", host=host.name,
                                 fix="use the generic `package` module or a `when: ansible_os_family == ...` condition")
        return self.family or family

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        names = [str(n) for n in args["name"]]
        family = self.host_family(host)
        probes = {"tool": "for t in apt-get dnf yum; do command -v $t >/dev/null 2>&1 && echo $t; done; true"}
        if family == "debian":
            probes["installed"] = f"dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\\n' {qjoin(names)} 2>/dev/null; true"
            if _state(args) == "latest":
                probes["upgradable"] = f"LC_ALL=C apt-cache policy {qjoin(names)}"
        else:
            probes["installed"] = f"rpm -q --qf '%{{NAME}} installed\\n' {qjoin(names)}; true"
            if _state(args) == "latest":
                probes["upgradable"] = ("if command -v dnf >/dev/null 2>&1; then m=dnf; else m=yum; fi\n"
                                        f"$m -q check-update {qjoin(names)}; true")
        return probes

    def read(self, args, facts, ctx):
        tools = facts["tool"].stdout.split()
        installed = set()
        for line in facts["installed"].stdout.splitlines():
            bits = line.split()
            if len(bits) == 2 and bits[1] == "installed":
                installed.add(bits[0].split(":")[0])
        upgradable = set()
        if "upgradable" in facts:
            upgradable = _parse_upgradable(facts["upgradable"].stdout, self.host_family(ctx.host))
        return {"tools": tools, "installed": sorted(installed), "upgradable": sorted(upgradable)}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        family = self.host_family(host)
        names = [str(n) for n in args["name"]]
        installed = set(state["installed"])
        wanted = _state(args)
        manager = _manager(family, state["tools"], host)
        if wanted in ("present", "latest"):
            missing = [n for n in names if n not in installed]
            changes = []
            if missing:
                prefix = ""
                if args.get("update_cache"):
                    prefix = (f"{_APT} update\n" if manager == "apt-get" else f"{manager} -q -y makecache\n")
                command = (f"{_APT} install {qjoin(missing)}" if manager == "apt-get"
                           else f"{manager} -y -q install {qjoin(missing)}")
                changes.append(Change(ADD, f"packages {', '.join(missing)}",
                                      diff=("(apt-get update first)" if prefix and manager == "apt-get" else
                                            "(refresh the package cache first)" if prefix else ""),
                                      script=prefix + command, data={"install": missing}))
            if wanted == "latest":
                old = [n for n in names if n in installed and n in state["upgradable"]]
                if old:
                    command = (f"{_APT} install --only-upgrade {qjoin(old)}" if manager == "apt-get"
                               else f"{manager} -y -q upgrade {qjoin(old)}")
                    changes.append(Change(CHANGE, f"packages {', '.join(old)} (upgrade)", script=command,
                                          data={"upgrade": old}))
            return changes
        present = [n for n in names if n in installed]
        if not present:
            return []
        command = (f"{_APT} remove {qjoin(present)}" if manager == "apt-get"
                   else f"{manager} -y -q remove {qjoin(present)}")
        return [Change(DESTROY, f"packages {', '.join(present)}", script=command, data={"remove": present})]

    def apply(self, args, changes, ctx):
        if not changes:
            return TaskResult(changed=False)
        out, err = [], []
        for change in changes:
            verb = ("installing" if "install" in change.data else
                    "upgrading" if "upgrade" in change.data else "removing")
            names = change.data.get("install") or change.data.get("upgrade") or change.data.get("remove")
            ctx.progress(f"{verb} {', '.join(names)} on {ctx.host.name}…")
            result = ctx.run("set -e\n" + change.script + "\n", timeout=INSTALL_TIMEOUT,
                             what=change.script.splitlines()[-1])
            out.append(result.stdout)
            err.append(result.stderr)
        return TaskResult(changed=True, rc=0, stdout="".join(out), stderr="".join(err))


class Apt(Package):
    name = "apt"
    family = "debian"
    params = {**Package.params,
              "state": Param(default="present", choices=("present", "installed", "absent", "latest"))}


class Yum(Package):
    name = "yum"
    family = "redhat"


class Dnf(Package):
    name = "dnf"
    family = "redhat"


def _state(args: dict) -> str:
    return _STATES.get(args.get("state", "present"), args.get("state", "present"))


def _manager(family: str, tools: list[str], host: HostInfo) -> str:
    if family == "debian" and "apt-get" in tools:
        return "apt-get"
    if family == "redhat":
        for tool in ("dnf", "yum"):
            if tool in tools:
                return tool
    raise ModuleError(f"no package manager for OS family {family!r} on {host.name} "
                      f"(found: {', '.join(tools) or 'none of apt-get, dnf, yum'})", host=host.name,
                      fix="check the node's OS; gfsdeploy manages Debian/Ubuntu (apt) and RHEL/CentOS/Rocky (dnf/yum)")


def _parse_upgradable(text: str, family: str) -> set[str]:
    found = set()
    if family == "debian":
        name = installed = None
        for line in text.splitlines():
            if line and not line.startswith(" ") and line.endswith(":"):
                name, installed = line[:-1], None
            elif line.strip().startswith("Installed:"):
                installed = line.split(":", 1)[1].strip()
            elif line.strip().startswith("Candidate:") and name:
                candidate = line.split(":", 1)[1].strip()
                if installed not in (None, "(none)") and candidate not in ("(none)", installed):
                    found.add(name)
    else:
        for line in text.splitlines():
            bits = line.split()
            if len(bits) == 3 and "." in bits[0] and not line.startswith(" "):
                found.add(bits[0].rsplit(".", 1)[0])
    return found

