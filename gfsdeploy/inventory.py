"""Ansible inventories: YAML (``all: {hosts, vars, children}``), INI
(:mod:`gfsdeploy.inventory_ini`), a directory of such files, or ``host1,host2,``;
with host ranges (``node[1:3]``), ``group_vars/`` and ``host_vars/`` beside the
inventory and beside the playbook, layered in Ansible's precedence order.
Connection variables are checked at load time so a typo fails here, with file and
line, not halfway through an apply. Content packages check their own host
variables through their ``inventory_loaded`` hook. See docs/INVENTORY.md.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field

from gfsdeploy import hostrange, validate
from gfsdeploy.deferred import Deferred
from gfsdeploy.errors import InventoryError
from gfsdeploy.varsfiles import VarsDirCache
from gfsdeploy.yamlload import Node, load, loads, position

GROUP_KEYS = {"hosts", "vars", "children"}
_SUBSCRIPT = re.compile(r"^(.+)\[(-?\d*)(?::(\d*))?\]$")
#: an inventory name: what Ansible accepts and a log line can show (an alias; the address is ansible_host)
_HOST_NAME = re.compile(r"^[A-Za-z0-9_\[][A-Za-z0-9_.:%@+\[\]-]*$")
#: inventory variables holding paths on the controller, relative to the inventory's directory
CONTROLLER_PATHS = ("ansible_ssh_private_key_file", "gfsdeploy_known_hosts")
#: file names in an inventory directory that are not inventory sources
_NOT_SOURCES = ("~", ".orig", ".bak", ".cfg", ".retry", ".pyc", ".pyo", ".swp", ".md", ".txt")


#: what a play may name to run on the controller when the inventory does not list it
IMPLICIT_LOCALHOST = ("localhost", "127.0.0.1")


@dataclass
class Host:
    name: str
    vars: dict = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    file: str = ""
    line: int = 0
    #: the host's own variables in the inventory file(s) (``vars`` is every layer merged)
    file_vars: dict = field(default_factory=dict)

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
class Group:
    name: str
    vars: dict = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)      # direct members, in order
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    file: str = ""
    line: int = 0
    depth: int = 0
    #: ``ansible_group_priority``: among groups of one depth, a higher priority merges later (wins)
    priority: int = 1


@dataclass
class Inventory:
    path: str
    hosts: dict[str, Host]
    #: every group's hosts, descendants included, in Ansible's order (``groups`` in templates)
    groups: dict[str, list[str]]
    group_objs: dict[str, Group] = field(default_factory=dict)
    #: directories whose group_vars/ and host_vars/ belong to the inventory
    var_dirs: list[str] = field(default_factory=list)
    playbook_dir: str | None = None
    _merged: bool = field(default=False, repr=False)  # every host's vars are merged for playbook_dir
    #: the inventory files read (one, or every file of an inventory directory)
    sources: list[str] = field(default_factory=list)
    _cache: VarsDirCache = field(default_factory=VarsDirCache, repr=False)

    def files(self) -> list[str]:
        """Every file the hosts' variables came from: the sources, then the group_vars/
        and host_vars/ files read (for a saved plan's check that nothing changed)."""
        return list(self.sources) + sorted(self._cache.paths())

    # -- variables -------------------------------------------------------------
    def sorted_groups(self, host: str) -> list[Group]:
        """The host's groups other than ``all``, in Ansible's merge order (depth,
        ``ansible_group_priority``, name): a child group's variables win over its parent's."""
        groups = [self.group_objs[g] for g in self.hosts[host].groups if g in self.group_objs and g != "all"]
        return sorted(groups, key=lambda g: (g.depth, g.priority, g.name))

    def host_layers(self, host: str, playbook_dir: str | None = None) -> list[tuple[str, dict]]:
        """The inventory-side variable layers of ``host``, lowest precedence first
        (Ansible's order): inventory-file group vars (all < parent < child),
        inventory group_vars/all, playbook group_vars/all, inventory group_vars/*,
        playbook group_vars/*, inventory-file host vars, inventory host_vars/*,
        playbook host_vars/*. Each label names where the layer came from."""
        return [(label, data) for label, data, _ in self._layers(host, playbook_dir)]

    def _playbook_dirs(self, playbook_dir: str | None) -> list[str]:
        """[playbook_dir], unless it is one of the inventory's own variable directories."""
        if not playbook_dir or os.path.realpath(playbook_dir) in {os.path.realpath(d) for d in self.var_dirs}:
            return []
        return [playbook_dir]

    def _layers(self, host: str, playbook_dir: str | None = None,
                pb_dirs: list[str] | None = None) -> list[tuple[str, dict, str]]:
        """(label, variables, directory relative controller paths are resolved against).
        ``pb_dirs``: ``_playbook_dirs(playbook_dir)``, when the caller has it already."""
        if playbook_dir is None:
            playbook_dir = self.playbook_dir
        inv_dirs = list(self.var_dirs)
        if pb_dirs is None:
            pb_dirs = self._playbook_dirs(playbook_dir)
        inv_base = inv_dirs[0] if inv_dirs else os.path.dirname(os.path.abspath(self.path))
        groups = self.sorted_groups(host)
        layers: list[tuple[str, dict, str]] = []
        if "all" in self.group_objs:
            layers.append(("inventory vars of group all", self.group_objs["all"].vars, inv_base))
        layers += [(f"inventory vars of group {g.name}", g.vars, inv_base) for g in groups]

        def from_dirs(dirs, kind, name):
            return [(path, data, d) for d in dirs for path, data in self._cache.entity(d, kind, name)]

        layers += from_dirs(inv_dirs, "group_vars", "all")
        layers += from_dirs(pb_dirs, "group_vars", "all")
        for g in groups:
            layers += from_dirs(inv_dirs, "group_vars", g.name)
        for g in groups:
            layers += from_dirs(pb_dirs, "group_vars", g.name)
        layers.append((f"inventory vars of host {host}", self.hosts[host].file_vars, inv_base))
        layers += from_dirs(inv_dirs, "host_vars", host)
        layers += from_dirs(pb_dirs, "host_vars", host)
        return [layer for layer in layers if layer[1]]

    def origin(self, host: str, key: str) -> dict:
        """``file``/``line`` of the layer that gives ``host`` its ``key`` (for errors)."""
        found: dict = {}
        for label, data in self.host_layers(host):
            if key in data:
                found = position(data, key) or ({"file": label} if os.sep in label else {})
        return found or {"file": self.hosts[host].file, "line": self.hosts[host].line}

    def use_playbook_dir(self, playbook_dir: str | None) -> None:
        """Merge the playbook's group_vars/ and host_vars/ into every host's ``vars``
        (call once the playbook is known; Ansible uses the top playbook's directory).
        Merged already for that directory: nothing to do (its files are read once a run)."""
        playbook_dir = os.path.abspath(playbook_dir) if playbook_dir else None
        if self._merged and playbook_dir == self.playbook_dir:
            return
        self.playbook_dir = playbook_dir
        self._merge()

    def _merge(self) -> None:
        pb_dirs = self._playbook_dirs(self.playbook_dir)  # (two realpaths a host, before)
        with self._cache.merging():
            for name, host in self.hosts.items():
                merged: dict = {}
                for _, data, base in self._layers(name, pb_dirs=pb_dirs):
                    for key, value in data.items():
                        if key in CONTROLLER_PATHS and value and isinstance(value, str) \
                                and not os.path.isabs(os.path.expanduser(value)) and "{{" not in value:
                            value = os.path.join(base, value)  # relative to the inventory (or playbook) directory
                        merged[key] = value
                host.vars = merged
                _check_host(self, host)
        self._merged = True

    # -- patterns --------------------------------------------------------------
    def select(self, pattern: str | list, *, where: dict | None = None) -> list[str]:
        """Hosts matching an Ansible host pattern (``all``, groups, hosts, globs,
        ``~regex``, ``a:b``, ``a,b``, ``!x``, ``&y``, ``group[0]``, ``group[1:3]``), in inventory order.
        As in Ansible, ``!x`` and ``&y`` apply after every plain term; alone, to ``all``."""
        if isinstance(pattern, list):
            pattern = ",".join(str(p) for p in pattern)
        terms = [t.strip() for t in re.split(r",|:(?![^\[]*\])", str(pattern)) if t.strip()]
        # as Ansible: the plain terms first, then the &s, then the !s, wherever they are written;
        # only &s and !s (`!b`): from every host
        plain = [t for t in terms if t[0] not in "!&"]
        terms = (plain or ["all"]) + [t for t in terms if t[0] == "&"] + [t for t in terms if t[0] == "!"]
        selected: dict[str, None] = {}  # (ordered, and O(1) to look into: 1,000s of hosts)
        for term in terms:
            op = term[0] if term[0] in "!&" else ""
            name = term[1:] if op else term
            matched = self._match(name)
            if not matched and name in IMPLICIT_LOCALHOST:
                matched = self._implicit_localhost(name)
            if not matched and not any(c in name for c in "*?[~"):
                raise InventoryError(
                    f"no host or group named {name!r} in the inventory", **(where or {}),
                    fix=f"known groups: {', '.join(sorted(self.groups))}; hosts: {', '.join(self.hosts)}")
            if op == "!":
                matched = set(matched)
                selected = {h: None for h in selected if h not in matched}
            elif op == "&":
                matched = set(matched)
                selected = {h: None for h in selected if h in matched}
            else:
                selected.update(dict.fromkeys(matched))
        return [h for h in self.hosts if h in selected]

    def limit(self, pattern: str) -> list[str]:
        """The hosts ``--limit`` leaves; none is an error, as in Ansible (a run that reads
        nothing would say "No changes")."""
        hosts = self.select(pattern, where={"field": "--limit"})
        if not hosts:
            raise InventoryError(f"--limit {pattern!r} leaves no host to run on", field="--limit",
                                 fix="name hosts or groups of the inventory; `!x` and `&y` narrow the others "
                                     "(`all:!x`, `web:&eu`)")
        return hosts

    def _implicit_localhost(self, name: str) -> list[str]:
        """Ansible's implicit localhost: a play naming ``localhost`` (absent from the
        inventory) runs on the controller, local connection, with the vars of group
        ``all`` and its own host_vars — but it is in no group, not even ``all``."""
        import sys

        host = Host(name, groups=[], file=self.path)
        self.hosts[name] = host
        merged: dict = {}
        for _, data, _base in self._layers(name):
            merged.update(data)
        merged["ansible_connection"] = "local"
        merged.setdefault("ansible_python_interpreter", sys.executable)
        host.vars = merged
        _check_host(self, host)
        return [name]

    def _match(self, name: str) -> list[str]:
        sub = _SUBSCRIPT.match(name)
        if sub and sub.group(1) in self.groups:  # Ansible's group[0], group[1:3]
            members = self.groups[sub.group(1)]
            if sub.group(3) is None:
                index = int(sub.group(2))
                return members[index:index + 1] if -len(members) <= index < len(members) else []
            start = int(sub.group(2) or 0)
            end = int(sub.group(3)) + 1 if sub.group(3) else len(members)
            return members[start:end]
        if name in self.groups:
            return list(self.groups[name])
        if name in self.hosts:
            return [name]
        if name.startswith("~"):
            try:
                regex = re.compile(name[1:])
            except re.error:
                return []
            return [h for h in self.hosts if regex.search(h)] + \
                [h for g, members in self.groups.items() if regex.search(g) for h in members]
        return [h for h in self.hosts if fnmatch.fnmatch(h, name)] + \
            [h for g, members in self.groups.items() if fnmatch.fnmatch(g, name) for h in members]

    def magic(self) -> dict:
        """Ansible's ``groups`` and ``hostvars`` (``inventory_hostname`` etc. are per host)."""
        return {"groups": {g: list(m) for g, m in self.groups.items()},
                "hostvars": {name: host.vars for name, host in self.hosts.items()}}


# -- building ----------------------------------------------------------------------
class Builder:
    """Collects groups, hosts and variables from one or more inventory sources."""

    def __init__(self):
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.hosts: dict[str, Host] = {}
        self._declared: set = {"all", "ungrouped"}
        self._child_where: dict = {}
        self._in_group: set = set()   # (group, host) pairs added: O(1) to look into

    def group(self, name: str, where: dict, *, declare: bool = True) -> Group:
        name = str(name)
        if not name or any(c.isspace() for c in name):
            raise InventoryError(f"invalid group name {name!r}", **where, fix="use letters, digits and _")
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name, file=where.get("file", ""), line=where.get("line", 0))
        if declare:
            self._declared.add(name)
        return group

    def is_declared(self, name: str) -> bool:
        return name in self._declared

    def _priority(self, group: Group, value, where: dict) -> None:
        try:
            group.priority = int(value)
        except (TypeError, ValueError):
            raise InventoryError(f"ansible_group_priority of group {group.name!r} must be a number, got {value!r}",
                                 **where, field="ansible_group_priority", fix="write e.g. ansible_group_priority=10") from None

    def set_group_var(self, name: str, key, value, where: dict) -> None:
        group = self.groups[name]
        if key == "ansible_group_priority":  # a property of the group, not a variable (as in Ansible)
            self._priority(group, value, where)
            return
        if not isinstance(group.vars, Node):
            group.vars = Node(group.vars)
            group.vars.file = where.get("file", "")
        group.vars[key] = value
        group.vars.key_lines[key] = where.get("line", 0)

    def set_group_vars(self, name: str, data: dict) -> None:
        group = self.groups[name]
        if "ansible_group_priority" in data:
            self._priority(group, data["ansible_group_priority"], position(data, "ansible_group_priority"))
            rest = Node({k: v for k, v in data.items() if k != "ansible_group_priority"})
            rest.file, rest.line = getattr(data, "file", ""), getattr(data, "line", 0)
            rest.key_lines = dict(getattr(data, "key_lines", {}))
            data = rest
        if not group.vars:
            group.vars = data
            return
        merged = Node({**group.vars, **data})
        merged.file = getattr(data, "file", "")
        merged.key_lines = {**getattr(group.vars, "key_lines", {}), **getattr(data, "key_lines", {})}
        group.vars = merged

    def add_child(self, parent: str, child: str, where: dict) -> None:
        p, c = self.groups[parent], self.groups[child]
        if child == "all":
            raise InventoryError("group `all` cannot be a child of another group", **where,
                                 fix="remove `all` from the children list")
        if child not in p.children:
            p.children.append(child)
            self._child_where[(parent, child)] = where
        if parent not in c.parents:
            c.parents.append(parent)

    def add_host(self, name: str, group: str, host_vars: dict, where: dict) -> None:
        name = str(name)
        if not _HOST_NAME.match(name):
            raise InventoryError(f"bad host name {name!r}", **where,
                                 fix="use letters, digits, '.', '-', '_'; put the address in ansible_host")
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = Host(name, file=where.get("file", ""), line=where.get("line", 0))
        if host_vars:
            if not isinstance(host.file_vars, Node):
                node = Node(host.file_vars)
                node.file = where.get("file", "")
                host.file_vars = node
            for key, value in host_vars.items():
                host.file_vars[key] = value
                line = host_vars.line_of(key) if isinstance(host_vars, Node) else where.get("line", 0)
                host.file_vars.key_lines[key] = line
        if (group, name) not in self._in_group:
            self._in_group.add((group, name))
            self.groups[group].hosts.append(name)

    def finish(self, path: str, var_dirs: list[str], sources: list[str] | None = None,
               playbook_dir: str | None = None) -> Inventory:
        groups = self.groups
        for name, group in groups.items():
            if name != "all" and not group.parents:
                self.add_child("all", name, {})
        self._depths()
        # a host in no group but all is in ungrouped (all itself lists no host directly)
        grouped = {h for g in groups.values() if g.name not in ("all", "ungrouped") for h in g.hosts}
        groups["ungrouped"].hosts = [h for h in self.hosts if h not in grouped]
        groups["all"].hosts = []
        members = {name: self._members(name) for name in groups}
        direct: dict[str, list[str]] = {}  # host -> the groups that list it, in the groups' order
        for group in groups.values():
            for h in group.hosts:
                direct.setdefault(h, []).append(group.name)
        for name, host in self.hosts.items():
            host.groups = [g for g in self._ancestry(direct.get(name, [])) if g != "all"]
        inventory = Inventory(path=path, hosts=self.hosts, groups=members, group_objs=groups, var_dirs=var_dirs,
                              sources=list(sources or []))
        inventory.use_playbook_dir(playbook_dir)
        return inventory

    def _depths(self) -> None:
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]):
            if state.get(name) == 1:
                cycle = trail[trail.index(name):] + [name]
                where = self._child_where.get((cycle[-2], cycle[-1]), {})
                raise InventoryError(f"group {name!r} contains itself: {' -> '.join(cycle)}", **where,
                                     fix="remove the cycle in the children sections")
            if state.get(name) == 2:
                return
            state[name] = 1
            for child in self.groups[name].children:
                group = self.groups[child]
                group.depth = max(group.depth, self.groups[name].depth + 1)
                visit(child, [*trail, name])
            state[name] = 2

        # depth can grow when a group is reached by a longer path: repeat until stable
        for _ in range(len(self.groups) + 1):
            before = {n: g.depth for n, g in self.groups.items()}
            state.clear()
            visit("all", [])
            for name in self.groups:
                if name not in state:
                    visit(name, [])
            if before == {n: g.depth for n, g in self.groups.items()}:
                break

    def _members(self, name: str) -> list[str]:
        """Ansible's order: the group's own hosts, then its descendants' level by level."""
        out: dict[str, None] = {}  # (ordered, O(1) to look into)
        seen_groups = {name}
        level = [name]
        while level:
            following = []
            for g in level:
                for h in self.groups[g].hosts:
                    if h not in out:
                        out[h] = None
                for child in self.groups[g].children:
                    if child not in seen_groups:
                        seen_groups.add(child)
                        following.append(child)
            level = following
        if name == "all":
            out.update(dict.fromkeys(h for h in self.hosts if h not in out))
        return list(out)

    def _ancestry(self, direct: list[str]) -> list[str]:
        """A host's groups: those listing it (``direct``), then their parents, breadth first."""
        out: list[str] = []
        stack = list(direct)
        while stack:
            g = stack.pop(0)
            if g in out:
                continue
            out.append(g)
            stack += self.groups[g].parents
        if "all" not in out:
            out.append("all")
        return out


# -- sources -----------------------------------------------------------------------
def load_inventory(path: str, playbook_dir: str | None = None) -> Inventory:
    """Load an inventory file (YAML or INI), a directory of them, or ``host1,host2,``.
    With ``playbook_dir``, the playbook's group_vars/ and host_vars/ are layered in too."""
    builder = Builder()
    var_dirs: list[str] = []
    sources: list[str] = []
    if not os.path.exists(path) and "," in path:
        for name in (n.strip() for n in path.split(",")):
            if name:
                host, port = hostrange.split_port(name)
                builder.add_host(host, "ungrouped", {"ansible_port": port} if port else {}, {"field": "inventory"})
    elif os.path.isdir(path):
        names = sorted(f for f in os.listdir(path)
                       if not f.startswith(".") and not f.endswith(_NOT_SOURCES)
                       and f not in ("group_vars", "host_vars") and os.path.isfile(os.path.join(path, f)))
        if not names:
            raise InventoryError("the inventory directory holds no inventory file", file=path,
                                 fix="put an INI or YAML inventory file in it")
        for name in names:
            _load_source(os.path.join(path, name), builder)
            sources.append(os.path.abspath(os.path.join(path, name)))
        var_dirs.append(os.path.abspath(path))
    else:
        _load_source(path, builder)
        var_dirs.append(os.path.dirname(os.path.abspath(path)))
        sources.append(os.path.abspath(path))
    return builder.finish(path, var_dirs, sources, playbook_dir)


def _load_source(path: str, builder: Builder) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext in (".yml", ".yaml", ".json"):
        _load_yaml(load(path, InventoryError, what="inventory"), path, builder)
        return
    if os.path.isfile(path) and os.access(path, os.X_OK) and not ext:
        raise InventoryError("executable (dynamic) inventory scripts are not supported", file=path,
                             fix="save the script's output: run it with --list and write it as a YAML inventory")
    from gfsdeploy.inventory_ini import load_ini

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise InventoryError("inventory not found", file=path, fix="check the path") from None
    except UnicodeDecodeError:
        raise InventoryError("inventory is not UTF-8 text", file=path, fix="save the file as UTF-8") from None
    except OSError as exc:
        raise InventoryError(f"cannot read inventory: {exc.strerror}", file=path) from None
    if ext != ".ini" and _looks_like_yaml_inventory(text, path):
        _load_yaml(loads(text, path, InventoryError), path, builder)
        return
    load_ini(text, path, builder)


def _looks_like_yaml_inventory(text: str, path: str) -> bool:
    """A file without a telling extension: YAML when it parses as a mapping of groups."""
    if re.search(r"^\s*\[", text, re.M) and not re.search(r"^\S[^:\n]*:\s*$", text, re.M):
        return False
    try:
        data = loads(text, path, InventoryError)
    except InventoryError:
        return False
    return isinstance(data, dict) and all(v is None or isinstance(v, dict) for v in data.values())


def _load_yaml(data, path: str, builder: Builder) -> None:
    if data is None:
        raise InventoryError("the inventory is empty: it needs a top-level `all:` group with hosts", file=path,
                             line=1, fix="start the file with `all:` and put `hosts:`, `vars:`, `children:` under it")
    if not isinstance(data, dict) or not data:
        raise InventoryError("the inventory must be a YAML mapping of groups (usually a top-level `all:`)",
                             file=path, line=getattr(data, "line", 1) or 1,
                             fix="start the file with `all:` and put `hosts:`, `vars:`, `children:` under it")

    def walk(name: str, body, parents: list[str], where: dict):
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
        builder.group(name, where)
        gv = body.get("vars") or {}
        if not isinstance(gv, dict):
            raise InventoryError(f"`vars` of group {name!r} must be a mapping", **position(body, "vars"),
                                 fix="write `key: value` pairs under `vars:`")
        if gv:
            builder.set_group_vars(name, gv)
        hs = body.get("hosts") or {}
        if isinstance(hs, list):
            raise InventoryError(f"`hosts` of group {name!r} is a list; the YAML inventory uses a mapping",
                                 **position(body, "hosts"), fix="write each host as `name:` (with its variables "
                                 "indented below, or nothing) instead of `- name`")
        if not isinstance(hs, dict):
            raise InventoryError(f"`hosts` of group {name!r} must be a mapping of host names",
                                 **position(body, "hosts"), fix="write each host as `name:` on its own line")
        for pattern, hv in hs.items():
            at = position(hs, pattern)
            if hv is not None and not isinstance(hv, dict):
                raise InventoryError(f"host {pattern!r}: variables must be a mapping, got {hv!r}",
                                     **at, fix="write `key: value` pairs under the host")
            host_name, port = hostrange.split_port(str(pattern))
            try:
                names = hostrange.expand(host_name)
            except hostrange.HostRangeError as exc:
                raise InventoryError(f"bad host range: {exc}", **at, fix="write e.g. node[1:3] or web[01:10]") from None
            for host in names:
                values = Node(hv or {})
                values.key_lines = dict(getattr(hv, "key_lines", {}))
                values.file = path
                if port is not None and "ansible_port" not in values:
                    values["ansible_port"] = port
                builder.add_host(host, name, values, at)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise InventoryError(f"`children` of group {name!r} must be a mapping of group names",
                                 **position(body, "children"), fix="write each child group as `name:`")
        for child, child_body in children.items():
            child = str(child)
            walk(child, child_body, [*parents, name], position(children, child))
            builder.add_child(name, child, position(children, child))

    if "plugin" in data and not isinstance(data.get("plugin"), dict):
        raise InventoryError(f"inventory plugins are not supported (plugin: {data['plugin']})", **position(data, "plugin"),
                             fix="write the hosts as a YAML or INI inventory (e.g. save the plugin's "
                                 "`ansible-inventory --list --yaml` output)")
    for top in data:
        if top in GROUP_KEYS:  # `hosts:` at the top: the `all:` line is missing
            raise InventoryError(f"no top-level `all:` group (`{top}:` is at the top of the file)",
                                 **position(data, top), fix="indent your groups and hosts under `all:`")
        walk(str(top), data[top], [], position(data, top))


def _check_host(inventory: Inventory, host: Host) -> None:
    v = host.vars

    def bad(field, problem, fix):
        raise InventoryError(f"host {host.name}: {problem}", **inventory.origin(host.name, field), field=field,
                             fix=fix)

    def plain(key):
        value = v[key]
        if isinstance(value, Deferred):
            value.fail()  # an undecryptable !vault value: say so
        return value

    if "ansible_host" in v and validate.host_or_ip(plain("ansible_host")) and "{{" not in str(v["ansible_host"]):
        bad("ansible_host", validate.host_or_ip(v["ansible_host"]), "give an IP address or a resolvable hostname")
    if "ansible_port" in v and validate.port(plain("ansible_port")) and "{{" not in str(v["ansible_port"]):
        bad("ansible_port", validate.port(v["ansible_port"]), "give the SSH port as a number, e.g. 22")
    if "ansible_user" in v and "{{" not in str(plain("ansible_user")) and (
            not isinstance(v["ansible_user"], str) or not v["ansible_user"].strip()
            or any(c in v["ansible_user"] for c in " \t\n'\"$`;&|<>")):
        bad("ansible_user", f"{v['ansible_user']!r} is not a user name", "give a plain login name, e.g. root")
    from gfsdeploy.transport.sshconfig import check_variables

    for field_name, problem, fix in check_variables(v):
        bad(field_name, problem, fix)
