"""``ufw`` (community.general.ufw): rules of Ubuntu's Uncomplicated Firewall, and
whether it is enabled.

ufw keeps its rules in ``/etc/ufw/user.rules`` (IPv4) and ``user6.rules`` (IPv6),
each rule under a ``### tuple ###`` comment — ``allow tcp 24007:24008 0.0.0.0/0
any 0.0.0.0/0 in`` is action, protocol, destination port, destination, source
port, source, direction. That comment is the probe (a ``cat``, no Python
start-up): a rule is present when its tuple is in every file its addresses
belong to. Rules are added with ufw's own command (``ufw allow proto tcp from
any to any port 24007:24008``), which also loads them when ufw is active.
Enabled is ``ENABLED=yes`` in ``/etc/ufw/ufw.conf``, what ``ufw status`` reports.
"""

from __future__ import annotations

import ipaddress
import re

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import ADD, CHANGE, DESTROY, Change, HostInfo, Module, Param, TaskResult, qjoin

_PORT = re.compile(r"^\d{1,5}([:,]\d{1,5})*$")
#: community.general.ufw arguments gfsdeploy does not implement: refused by name
_NOT_IMPLEMENTED = ("default", "policy", "logging", "log", "insert", "insert_relative_to", "interface",
                    "interface_in", "interface_out", "route", "delete_comment")
_ANY4, _ANY6 = "0.0.0.0/0", "::/0"


class Ufw(Module):
    name = "ufw"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "rule": Param(choices=("allow", "deny", "limit", "reject")),
        "to_port": Param(aliases=("port",), help="a port, a range 24007:24008 (needs proto) or a list 80,443"),
        "from_port": Param(),
        "proto": Param(aliases=("protocol",), default="any",
                       choices=("any", "tcp", "udp", "ipv6", "esp", "ah", "gre", "igmp", "vrrp")),
        "from_ip": Param(aliases=("from", "src"), default="any"),
        "to_ip": Param(aliases=("to", "dest"), default="any"),
        "direction": Param(choices=("in", "incoming", "out", "outgoing", "routed")),
        "comment": Param(),
        "delete": Param(type="bool", default=False),
        "state": Param(choices=("enabled", "disabled", "reloaded", "reset")),
        **{name: Param(type="raw") for name in _NOT_IMPLEMENTED},
    }

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        where = where or {}
        for name in _NOT_IMPLEMENTED:
            if args.get(name) is not None:
                raise PlaybookError(f"gfsdeploy's ufw does not implement {name!r}", field=name, **where,
                                    fix="manage rules (rule:, port:, proto:, from_ip:, to_ip:) and state: enabled/disabled")
        if args.get("state") in ("reloaded", "reset"):
            raise PlaybookError(f"ufw state {args['state']!r} is not implemented by gfsdeploy", field="state",
                                **where, fix="use state: enabled or disabled")
        if not args.get("rule") and not args.get("state"):
            raise PlaybookError("ufw needs `rule:` (allow/deny/limit/reject) or `state:`", **where,
                                fix="e.g. `rule: allow`, `port: '24007:24008'`, `proto: tcp`")
        for key in ("to_port", "from_port"):
            value = args.get(key)
            if value is not None:
                value = args[key] = str(value)
                if not _PORT.match(value) or any(int(p) > 65535 for p in re.split(r"[:,]", value)):
                    raise PlaybookError(f"ufw {key} {value!r} is not a port, a range a:b or a list a,b",
                                        field=key, **where, fix="e.g. 24007, '24007:24008' or '80,443'")
                if re.search(r"[:,]", value) and args["proto"] not in ("tcp", "udp"):
                    raise PlaybookError(f"ufw needs proto: tcp or udp for the port range/list {value!r}",
                                        field="proto", **where, fix="add `proto: tcp`")
        for key in ("from_ip", "to_ip"):
            if str(args[key]) != "any":
                try:
                    ipaddress.ip_network(str(args[key]), strict=False)
                except ValueError:
                    raise PlaybookError(f"ufw {key} {args[key]!r} is not an address or network", field=key,
                                        **where, fix="write any, an address or a CIDR network") from None
        if args.get("comment") is not None and ("\n" in str(args["comment"]) or "'" in str(args["comment"])):
            raise PlaybookError("ufw comments cannot hold line breaks or single quotes", field="comment", **where,
                                fix="shorten the comment")
        return args

    def resources(self, args: dict) -> set[str]:
        return {"ufw", "iptables", "file:/etc/ufw"}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {"ufw": (
            "command -v ufw >/dev/null 2>&1 || { echo __NO_UFW__; exit 0; }\n"
            "echo \"enabled=$(sed -n 's/^ENABLED=//p' /etc/ufw/ufw.conf 2>/dev/null | tr -d '\\\"')\"\n"
            "for f in /etc/ufw/user.rules /etc/ufw/user6.rules; do\n"
            "  [ -r \"$f\" ] && sed -n \"s|^### tuple ### |${f##*/} |p\" \"$f\"\n"
            "done; true")}

    def read(self, args, facts, ctx):
        return parse_state(facts["ufw"].stdout)

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        if not state["installed"]:
            raise ModuleError(f"ufw is not installed on {host.name}", host=host.name,
                              fix="install it, or skip this task where ufw is not used (`when: gfsdeploy_firewall == 'ufw'`)")
        changes: list[Change] = []
        if args.get("rule"):
            changes += self._plan_rule(args, state)
        if args.get("state") == "enabled" and not state["enabled"]:
            changes.append(Change(ADD, "ufw enabled (loads its rules now and at boot)", script="ufw --force enable"))
        elif args.get("state") == "disabled" and state["enabled"]:
            changes.append(Change(DESTROY, "ufw disabled", script="ufw disable"))
        return changes

    def _plan_rule(self, args: dict, state: dict) -> list[Change]:
        families = _families(args)
        want = tuple_of(args)
        present = [want[:7] in {t[:7] for t in state["tuples"][f]} for f in families]
        same_comment = all(want in state["tuples"][f] for f in families)
        shown = " ".join(command_words(args))
        if args["delete"]:
            if not any(present):
                return []
            return [Change(DESTROY, f"ufw rule: {shown}", script=qjoin(["ufw", "delete"] + command_words(args)))]
        if all(present):
            if same_comment:
                return []
            return [Change(CHANGE, f"ufw rule: {shown}", diff=f"comment: -> {args.get('comment') or '(none)'}",
                           script=qjoin(["ufw"] + command_words(args)))]
        return [Change(ADD, f"ufw rule: {shown}", script=qjoin(["ufw"] + command_words(args)))]

    def apply(self, args, changes, ctx):
        if not changes:
            return TaskResult(changed=False)
        result = ctx.run("set -e\n" + "\n".join(c.script for c in changes) + "\n",
                         what="; ".join(c.resource for c in changes))
        return TaskResult(changed=True, rc=result.rc, stdout=result.stdout, stderr=result.stderr)


def _direction(args: dict) -> str:
    return {"incoming": "in", "outgoing": "out"}.get(args.get("direction") or "in", args.get("direction") or "in")


def _families(args: dict) -> list[str]:
    """Which rules files the rule lands in: both for any/any, else its addresses' family."""
    versions = {ipaddress.ip_network(str(args[k]), strict=False).version
                for k in ("from_ip", "to_ip") if str(args[k]) != "any"}
    if not versions:
        return ["user.rules", "user6.rules"]
    return ["user6.rules" if 6 in versions else "user.rules"]


def tuple_of(args: dict, family: str = "") -> tuple:
    """The rule as ufw writes its ``### tuple ###`` (addresses as the v4 file would hold them
    when ``any``; compared per family by :func:`parse_state`, which normalises ``any``)."""
    def addr(value):
        return "any" if str(value) == "any" else str(ipaddress.ip_network(str(value), strict=False))

    comment = args.get("comment")
    return (args["rule"], args["proto"], str(args.get("to_port") or "any"), addr(args["to_ip"]),
            str(args.get("from_port") or "any"), addr(args["from_ip"]), _direction(args),
            comment.encode().hex() if comment else "")


def command_words(args: dict) -> list[str]:
    """``allow in proto tcp from any to any port 24007:24008 comment '...'`` as argv."""
    words = [args["rule"]]
    if args.get("direction"):
        words.append(_direction(args))
    if args["proto"] != "any":
        words += ["proto", args["proto"]]
    words += ["from", str(args["from_ip"])]
    if args.get("from_port"):
        words += ["port", str(args["from_port"])]
    words += ["to", str(args["to_ip"])]
    if args.get("to_port"):
        words += ["port", str(args["to_port"])]
    if args.get("comment"):
        words += ["comment", str(args["comment"])]
    return words


def parse_state(text: str) -> dict:
    """The probe's output: enabled, and the tuples of each rules file with ``any`` for
    the family's any-address (0.0.0.0/0, ::/0)."""
    if text.strip() == "__NO_UFW__":
        return {"installed": False, "enabled": False, "tuples": {"user.rules": set(), "user6.rules": set()}}
    tuples: dict[str, set] = {"user.rules": set(), "user6.rules": set()}
    enabled = False
    for line in text.splitlines():
        if line.startswith("enabled="):
            enabled = line.split("=", 1)[1].strip().lower() == "yes"
            continue
        bits = line.split()
        if len(bits) < 8 or bits[0] not in tuples:
            continue
        fields = bits[1:8]
        comment = ""
        for extra in bits[8:]:
            if extra.startswith("comment="):
                comment = extra[len("comment="):]
        direction = fields[6].split("_", 1)[0]
        dst = "any" if fields[3] in (_ANY4, _ANY6) else fields[3]
        src = "any" if fields[5] in (_ANY4, _ANY6) else fields[5]
        tuples[bits[0]].add((fields[0], fields[1], fields[2], dst, fields[4], src, direction, comment))
    return {"installed": True, "enabled": enabled, "tuples": tuples}
