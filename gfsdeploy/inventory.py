"""Ansible's YAML inventory (``all: {vars, hosts, children}``), with the
connection variables checked at load time so a typo fails here, with file and
line, not halfway through an apply. Content packages check their own host
variables through their ``inventory_loaded`` hook."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field

from gfsdeploy import validate
from gfsdeploy.errors import InventoryError
from gfsdeploy.yamlload import Node, load, position

GROUP_KEYS = {"hosts", "vars", "children"}
_SUBSCRIPT = re.compile(r"^(.+)\[(-?\d*)(?::(\d*))?\]$")


@dataclass
class Host:
    name: str
    vars: dict = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    file: str = ""
    line: int = 0

    # -- connection settings (Ansible's names) --------------------------------
    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", 22))

    @property
    def user(self) -> str | None:
        return self.vars.get("ansible_user")

    @property
    def key_file(self) -> str | None:
        return self.vars.get("ansible_ssh_private_key_file")

    @property
    def become(self) -> bool:
        return _truthy(self.vars.get("ansible_become", False))

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection", "ssh"))


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1", "y")
    return bool(value)


@dataclass
class Inventory:
    path: str
    hosts: dict[str, Host]
    groups: dict[str, list[str]]

    def select(self, pattern: str | list, *, where: dict | None = None) -> list[str]:
        """Hosts matching an Ansible host pattern (``all``, groups, hosts, globs,
        ``a:b``, ``!x``, ``&y``), in inventory order."""
        if isinstance(pattern, list):
            pattern = ",".join(str(p) for p in pattern)
        terms = [t.strip() for t in re.split(r",|:(?![^\[]*\])", str(pattern)) if t.strip()]
        selected: list[str] = []
        for term in terms:
            op = term[0] if term[0] in "!&" else ""
            name = term[1:] if op else term
            matched = self._match(name)
            if not matched and not any(c in name for c in "*?["):
                raise InventoryError(
                    f"no host or group named {name!r} in the inventory", **(where or {}),
                    fix=f"known groups: {', '.join(sorted(self.groups))}; hosts: {', '.join(self.hosts)}")
            if op == "!":
                selected = [h for h in selected if h not in matched]
            elif op == "&":
                selected = [h for h in selected if h in matched]
            else:
                selected += [h for h in matched if h not in selected]
        return [h for h in self.hosts if h in selected]

    def _match(self, name: str) -> list[str]:
        sub = _SUBSCRIPT.match(name)
        if sub and sub.group(1) in self.groups:  # Ansible's group[0], group[1:3]
            members = self.groups[sub.group(1)]
            if sub.group(3) is None:
                index = int(sub.group(2))
                return members[index:index + 1] if -len(members) <= index < len(members) else []
            start = int(sub.group(2) or 0)
            end = int(sub.group(3)) if sub.group(3) else len(members)
            return members[start:end]
        if name in self.groups:
            return list(self.groups[name])
        if name in self.hosts:
            return [name]
        return [h for h in self.hosts if fnmatch.fnmatch(h, name)] + \
            [h for g, members in self.groups.items() if fnmatch.fnmatch(g, name) for h in members]

    def magic(self) -> dict:
        """Ansible's ``groups`` and ``hostvars`` (``inventory_hostname`` etc. are per host)."""
        return {"groups": {g: list(m) for g, m in self.groups.items()},
                "hostvars": {name: host.vars for name, host in self.hosts.items()}}


def load_inventory(path: str) -> Inventory:
    data = load(path, InventoryError, what="inventory")
    if not isinstance(data, dict) or not data:
        raise InventoryError("the inventory must be a YAML mapping with a top-level `all:` group",
                             file=path, line=getattr(data, "line", 1) or 1,
                             fix="start the file with `all:` and put `hosts:`, `vars:`, `children:` under it")
    hosts: dict[str, Host] = {}
    groups: dict[str, list[str]] = {}
    group_vars: dict[str, tuple[int, dict]] = {}  # name -> (depth, vars)
    host_vars: dict[str, dict] = {}
    host_groups: dict[str, list[str]] = {}

    def walk(name: str, body, depth: int, parents: list[str], where: dict):
        if name in parents:
            raise InventoryError(f"group {name!r} contains itself", **where, fix="remove the cycle in `children:`")
        if body is None:
            body = Node()
        if not isinstance(body, dict):
            raise InventoryError(f"group {name!r} must be a mapping with hosts/vars/children, got {type(body).__name__}",
                                 **where, fix="write `hosts:`, `vars:` or `children:` under the group name")
        for key in body:
            if key not in GROUP_KEYS:
                raise InventoryError(f"unknown key {key!r} in group {name!r}", **position(body, key), field=key,
                                     fix="a group has only `hosts:`, `vars:` and `children:`; host variables go "
                                         "under the host, group variables under `vars:`")
        members = groups.setdefault(name, [])
        gv = body.get("vars") or {}
        if not isinstance(gv, dict):
            raise InventoryError(f"`vars` of group {name!r} must be a mapping", **position(body, "vars"),
                                 fix="write `key: value` pairs under `vars:`")
        old = group_vars.get(name, (depth, {}))
        group_vars[name] = (max(old[0], depth), {**old[1], **gv})
        hs = body.get("hosts") or {}
        if isinstance(hs, list):
            raise InventoryError(f"`hosts` of group {name!r} is a list; the YAML inventory uses a mapping",
                                 **position(body, "hosts"), fix="write each host as `name:` (with its variables "
                                 "indented below, or nothing) instead of `- name`")
        if not isinstance(hs, dict):
            raise InventoryError(f"`hosts` of group {name!r} must be a mapping of host names",
                                 **position(body, "hosts"), fix="write each host as `name:` on its own line")
        for host_name, hv in hs.items():
            host_name = str(host_name)
            problem = validate.hostname(host_name)
            if problem:
                raise InventoryError(f"bad host name: {problem}", **position(hs, host_name),
                                     fix="use the machine's short hostname; put its address in ansible_host")
            if hv is not None and not isinstance(hv, dict):
                raise InventoryError(f"host {host_name!r}: variables must be a mapping, got {hv!r}",
                                     **position(hs, host_name), fix="write `key: value` pairs under the host")
            if host_name not in hosts:
                hosts[host_name] = Host(host_name, file=path, line=position(hs, host_name).get("line", 0))
                host_vars[host_name] = {}
                host_groups[host_name] = []
            host_vars[host_name].update(hv or {})
            for g in [*parents, name]:
                if g not in host_groups[host_name]:
                    host_groups[host_name].append(g)
                if host_name not in groups.setdefault(g, []):
                    groups[g].append(host_name)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise InventoryError(f"`children` of group {name!r} must be a mapping of group names",
                                 **position(body, "children"), fix="write each child group as `name:`")
        for child, child_body in children.items():
            walk(str(child), child_body, depth + 1, [*parents, name], position(children, child))
            for h in groups[str(child)]:
                if h not in members:
                    members.append(h)
                for g in [*parents, name]:
                    if g not in host_groups[h]:
                        host_groups[h].append(g)
                    if h not in groups[g]:
                        groups[g].append(h)

    top = list(data)
    if top != ["all"]:
        extra = [k for k in top if k != "all"]
        if "all" not in data:
            raise InventoryError("the inventory has no top-level `all:` group", **position(data, top[0]),
                                 fix="indent your groups under `all:` → `children:`")
        raise InventoryError(f"unexpected top-level key {extra[0]!r}", **position(data, extra[0]),
                             fix="put groups under `all:` → `children:`")
    walk("all", data["all"], 0, [], position(data, "all"))
    groups["all"] = list(hosts)
    groups.setdefault("ungrouped", [h for h in hosts if host_groups[h] == ["all"]])
    base = os.path.dirname(os.path.abspath(path))
    for name, host in hosts.items():
        merged: dict = {}
        for g, (_, gv) in sorted(((g, group_vars[g]) for g in host_groups[name] if g in group_vars),
                                 key=lambda item: (item[1][0], item[0])):
            merged.update(gv)
        merged.update(host_vars[name])
        for key in ("ansible_ssh_private_key_file", "gfsdeploy_known_hosts"):
            if merged.get(key) and not os.path.isabs(os.path.expanduser(str(merged[key]))):
                merged[key] = os.path.join(base, str(merged[key]))
        host.vars = merged
        host.groups = [g for g in host_groups[name] if g != "all"]
        _check_host(host, hosts_node_position(data, name, path, host.line))
    return Inventory(path=path, hosts=hosts, groups=groups)


def hosts_node_position(data, name, path, line) -> dict:
    return {"file": path, "line": line}


def _check_host(host: Host, where: dict) -> None:
    v = host.vars

    def bad(field, problem, fix):
        raise InventoryError(f"host {host.name}: {problem}", **where, field=field, fix=fix)

    if "ansible_host" in v and validate.host_or_ip(v["ansible_host"]):
        bad("ansible_host", validate.host_or_ip(v["ansible_host"]), "give an IP address or a resolvable hostname")
    if "ansible_port" in v and validate.port(v["ansible_port"]):
        bad("ansible_port", validate.port(v["ansible_port"]), "give the SSH port as a number, e.g. 22")
    if "ansible_user" in v and (not isinstance(v["ansible_user"], str) or not v["ansible_user"].strip()
                                or any(c in v["ansible_user"] for c in " \t\n'\"$`;&|<>")):
        bad("ansible_user", f"{v['ansible_user']!r} is not a user name", "give a plain login name, e.g. root")
    from gfsdeploy.transport.sshconfig import check_variables

    for field_name, problem, fix in check_variables(v):
        bad(field_name, problem, fix)
