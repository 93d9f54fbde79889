"""Ansible's INI inventory format (checked against ``ansible-inventory --list``).

::

    mail.example.com                  # before any section: ungrouped
    [web]
    web[01:03].example.com http_port=80 flags="[1, 2]"
    db_1:2222 ansible_host=10.0.0.5   # host:port sets ansible_port
    [web:vars]
    ntp = ntp1.example.com            # the rest of the line is the value
    [stack:children]
    web

Lines starting with ``#`` or ``;`` are comments. Host lines are split like a
shell (quotes, trailing ``# comment``); every word after the host is
``key=value``. Values, on host lines and in ``:vars`` sections, are Python
literals when they parse as one (``80``, ``True``, ``[1, 2]``, ``"x"``) and
strings otherwise (``true``, ``010``, ``a b``). A ``[g:children]`` section
defines ``g``; a ``[g:vars]`` section for a group defined nowhere is an error.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings

from gfsdeploy import hostrange
from gfsdeploy.errors import InventoryError
from gfsdeploy.yamlload import located

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^[^\s:\[\]=#;]+$")


def parse_value(text: str, where: dict | None = None):
    """An INI value: a Python literal when it is one, else the text (a template
    remembers its file and line, for errors)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = text
    if where and isinstance(value, str) and ("{{" in value or "{%" in value):
        value = located(value, where.get("file", ""), where.get("line", 0))
    return value


def load_ini(text: str, path: str, builder) -> None:
    """Feed the groups, hosts and variables of INI ``text`` into ``builder``
    (see :class:`gfsdeploy.inventory.Builder`)."""
    group = "ungrouped"
    kind = "hosts"
    pending: dict[str, int] = {}  # groups named by [g:vars] sections, and where

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = {"file": path, "line": number}
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            m = _SECTION.match(line)
            if not m:
                raise InventoryError(f"invalid section header {line!r}", **where,
                                     fix="write [group], [group:vars] or [group:children]")
            group, kind = m.group(1), m.group(2) or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InventoryError(f"section [{group}:{kind}] has an unknown type {kind!r}", **where,
                                     fix="a section is [group], [group:vars] or [group:children]")
            if kind == "vars" and not builder.is_declared(group):
                pending.setdefault(group, number)
            else:
                builder.group(group, where)  # [g] and [g:children] define g
            continue
        if kind == "hosts":
            _host_line(line, group, where, builder)
        elif kind == "vars":
            key, eq, value = line.partition("=")
            key = key.strip()
            if not eq or not key:
                raise InventoryError(f"expected key=value in [{group}:vars], got {line!r}", **where,
                                     fix="write one `name=value` per line")
            builder.group(group, where, declare=False)  # a [g:vars] section alone does not make g exist
            builder.set_group_var(group, key, parse_value(value.strip(), where), where)
        else:  # children
            if not _GROUP_NAME.match(line):
                raise InventoryError(f"expected a group name in [{group}:children], got {line!r}", **where,
                                     fix="write one group name per line (comments on their own line)")
            builder.group(line, where)
            builder.add_child(group, line, where)
    for name, number in pending.items():
        if not builder.is_declared(name):
            raise InventoryError(f"section [{name}:…] is for a group defined nowhere", file=path, line=number,
                                 fix=f"add a [{name}] section (it may be empty) or list {name} under a "
                                     "[parent:children] section")


def _host_line(line: str, group: str, where: dict, builder) -> None:
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(f"cannot parse the host line: {exc}", **where,
                             fix="close the quotes; quote values that contain spaces") from None
    if not words:
        return
    pattern, *assignments = words
    host_vars: dict = {}
    for word in assignments:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InventoryError(f"expected key=value after the host name, got {word!r}", **where,
                                 fix="write host variables as name=value (quote values with spaces)")
        host_vars[key] = parse_value(value, where)
    name, port = hostrange.split_port(pattern)
    try:
        names = hostrange.expand(name)
    except hostrange.HostRangeError as exc:
        raise InventoryError(f"bad host range: {exc}", **where, fix="write e.g. node[1:3] or web[01:10]") from None
    for host in names:
        values = dict(host_vars)
        if port is not None and "ansible_port" not in values:
            values["ansible_port"] = port
        builder.add_host(host, group, values, where)
