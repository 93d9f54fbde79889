"""``firewalld`` (ansible.posix.firewalld): open or close ports and services in a zone,
in firewalld's permanent configuration, its runtime, or both.

Ansible's meaning of the switches: ``permanent: true`` writes the permanent
configuration (survives ``firewall-cmd --reload`` and reboots); ``immediate``
applies it to the running firewall too; ``permanent: false`` (the default) is
runtime only. A raw iptables rule does not survive ``--reload`` and, on the
nftables backend, does not get past firewalld's reject — on a host where
firewalld runs, this is the module that opens a port (docs/TARGETS.md).

Presence is read with ``firewall-cmd --list-ports/--list-services`` (runtime and
``--permanent``); a port counts as open when a listed range of the same protocol
covers it, as ``--query-port`` answers. Without ``zone:`` the zone is the host's
default zone, named explicitly in the plan and in the commands.
"""

from __future__ import annotations

import re

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import ADD, DESTROY, Change, HostInfo, Module, Param, TaskResult, q

_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?/(tcp|udp|sctp|dccp)$")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_ZONE = re.compile(r"^[A-Za-z0-9_-]{1,17}$")
#: ansible.posix.firewalld arguments gfsdeploy does not implement: refused by name
_NOT_IMPLEMENTED = ("rich_rule", "source", "interface", "masquerade", "icmp_block", "icmp_block_inversion",
                    "timeout", "target", "port_forward", "forward", "protocol")


class Firewalld(Module):
    name = "firewalld"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "port": Param(help="PORT/PROTOCOL or PORT-PORT/PROTOCOL, e.g. 24007-24008/tcp"),
        "service": Param(help="a firewalld service name, e.g. nfs"),
        "zone": Param(help="default: the host's default zone"),
        "permanent": Param(type="bool", default=False),
        "immediate": Param(type="bool", default=False),
        "offline": Param(type="bool", default=False),
        "state": Param(required=True, choices=("enabled", "disabled", "present", "absent")),
        **{name: Param(type="raw") for name in _NOT_IMPLEMENTED},
    }

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        where = where or {}
        for name in _NOT_IMPLEMENTED:
            if args.get(name) is not None:
                raise PlaybookError(f"gfsdeploy's firewalld does not implement {name!r}", field=name, **where,
                                    fix="open ports or services only (port:/service:), or use a command task")
        if args["state"] in ("present", "absent"):
            raise PlaybookError("firewalld state present/absent manages whole zones; gfsdeploy does not implement it",
                                field="state", **where, fix="use state: enabled or state: disabled with port: or service:")
        if bool(args.get("port")) == bool(args.get("service")):
            raise PlaybookError("firewalld needs exactly one of `port` or `service`", **where,
                                fix="e.g. `port: 24007-24008/tcp`")
        if args.get("port"):
            match = _PORT.match(str(args["port"]))
            if not match or int(match.group(1)) > 65535 or int(match.group(2) or 0) > 65535 or \
                    (match.group(2) and int(match.group(2)) < int(match.group(1))):
                raise PlaybookError(f"firewalld port {args['port']!r} is not PORT/PROTOCOL or PORT-PORT/PROTOCOL",
                                    field="port", **where, fix="write e.g. 24007/tcp or 49152-49251/tcp")
        if args.get("service") and not _SERVICE.match(str(args["service"])):
            raise PlaybookError(f"firewalld service {args['service']!r} is not a service name", field="service",
                                **where, fix="use a name from `firewall-cmd --get-services`")
        if args.get("zone") and not _ZONE.match(str(args["zone"])):
            raise PlaybookError(f"firewalld zone {args['zone']!r} is not a zone name", field="zone", **where,
                                fix="use a name from `firewall-cmd --get-zones`")
        return args

    def resources(self, args: dict) -> set[str]:
        return {"firewalld"}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        what = "ports" if args.get("port") else "services"
        zone = q(args["zone"]) if args.get("zone") else ""
        return {"firewalld": (
            "command -v firewall-cmd >/dev/null 2>&1 || { echo installed=no; exit 0; }\n"
            "echo installed=yes\n"
            "if firewall-cmd --state >/dev/null 2>&1; then\n"
            "  echo state=running\n"
            f"  z={zone or '$(firewall-cmd --get-default-zone)'}\n"
            '  echo "zone=$z"\n'
            f'  echo "runtime=$(firewall-cmd --zone="$z" --list-{what})"\n'
            f'  echo "permanent=$(firewall-cmd --permanent --zone="$z" --list-{what})"\n'
            "else\n"
            "  echo state=stopped\n"
            "  if command -v firewall-offline-cmd >/dev/null 2>&1; then\n"
            f"    z={zone or '$(firewall-offline-cmd --get-default-zone)'}\n"
            '    echo "zone=$z"\n'
            f'    echo "permanent=$(firewall-offline-cmd --zone="$z" --list-{what})"\n'
            "  fi\n"
            "fi")}

    def read(self, args, facts, ctx):
        return parse_state(facts["firewalld"].stdout)

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        if not state["installed"]:
            raise ModuleError(f"firewalld is not installed on {host.name}", host=host.name,
                              fix="skip this task where firewalld does not run (`when: gfsdeploy_firewall == 'firewalld'`)")
        running = state["state"] == "running"
        permanent = bool(args["permanent"])
        runtime = bool(args["immediate"]) or not permanent
        if not running:
            if not (args["offline"] and permanent):
                raise ModuleError(f"firewalld is not running on {host.name}: runtime changes need the daemon",
                                  host=host.name, fix="start it (`systemctl start firewalld`), or set "
                                                      "`permanent: true` and `offline: true` to change only its configuration")
            runtime = False
        zone = state.get("zone") or args.get("zone") or "public"
        kind, item = ("port", args["port"]) if args.get("port") else ("service", args["service"])
        enable = args["state"] == "enabled"
        todo = []
        if permanent and _has(kind, item, state.get("permanent", [])) != enable:
            todo.append("permanent")
        if runtime and _has(kind, item, state.get("runtime", [])) != enable:
            todo.append("runtime")
        if not todo:
            return []
        verb = "add" if enable else "remove"
        lines = []
        for where in todo:
            if where == "runtime":
                lines.append(f"firewall-cmd --zone={q(zone)} --{verb}-{kind}={q(item)}")
            elif running:
                lines.append(f"firewall-cmd --permanent --zone={q(zone)} --{verb}-{kind}={q(item)}")
            else:
                lines.append(f"firewall-offline-cmd --zone={q(zone)} --{verb}-{kind}={q(item)}")
        return [Change(ADD if enable else DESTROY, f"firewalld {kind} {item} in zone {zone} "
                                                   f"({' + '.join(todo)})",
                       script="\n".join(lines), data={"where": todo})]

    def apply(self, args, changes, ctx):
        if not changes:
            return TaskResult(changed=False)
        result = ctx.run("set -e\n" + "\n".join(c.script for c in changes) + "\n", what=changes[0].resource)
        return TaskResult(changed=True, rc=result.rc, stdout=result.stdout, stderr=result.stderr)


def parse_state(text: str) -> dict:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {"installed": values.get("installed") == "yes", "state": values.get("state", "stopped"),
            "zone": values.get("zone", "").strip(),
            "runtime": values.get("runtime", "").split(), "permanent": values.get("permanent", "").split()}


def _has(kind: str, item: str, listed: list[str]) -> bool:
    if kind == "service":
        return item in listed
    want = _PORT.match(item)
    lo, hi, proto = int(want.group(1)), int(want.group(2) or want.group(1)), want.group(3)
    for entry in listed:
        have = _PORT.match(entry)
        if have and have.group(3) == proto and int(have.group(1)) <= lo and hi <= int(have.group(2) or have.group(1)):
            return True
    return False
