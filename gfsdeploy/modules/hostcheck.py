"""``host_check`` (gfsdeploy, read-only): refuse a host whose kernel, cgroup hierarchy
or tool versions cannot run what the playbook deploys — before anything changes,
with the remedy — and say what it found (``-v``, ``--json``: the registered ``msg``).

Reads ``uname -r``, the filesystem type at ``/sys/fs/cgroup`` (``cgroup2fs``: v2;
``tmpfs``: v1, ``hybrid`` with a v2 hierarchy at ``/sys/fs/cgroup/unified``) and
``TOOL --version`` of each listed tool; a tool that is not installed is not judged
(another one may do its job). Versions compare numerically part by part; a
pre-release (``1.0.0-rc93``) sorts before its release.
"""

from __future__ import annotations

import re

from gfsdeploy.errors import PlaybookError, PreflightError
from gfsdeploy.modules.base import Change, HostInfo, Module, Param, TaskResult, q

_MODES = ("v1", "hybrid", "v2")
_TOOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class HostCheck(Module):
    name = "host_check"
    read_only = True
    params = {
        "cgroup": Param(type="list", default=list(_MODES), help="the cgroup modes that work: v1, hybrid, v2"),
        "kernel": Param(default="", help="the lowest kernel release that works, e.g. 4.15"),
        "tools": Param(type="dict", default={}, help="tool → lowest version that works, e.g. {runc: 1.0.0-rc93}"),
        "why": Param(default="", help="what needs these (shown with a refusal)"),
        "fix": Param(default="", help="the remedy (shown with a refusal)"),
    }

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        bad = [m for m in args["cgroup"] if m not in _MODES]
        if bad:
            raise PlaybookError(f"host_check cgroup modes must be among {', '.join(_MODES)}; got {', '.join(map(str, bad))}",
                                field="cgroup", **(where or {}), fix="e.g. `cgroup: [v1, hybrid]`")
        for tool in args["tools"]:
            if not _TOOL.match(str(tool)):
                raise PlaybookError(f"host_check tool {tool!r} is not a command name", field="tools",
                                    **(where or {}), fix="name commands, e.g. `tools: {runc: 1.0.0-rc93}`")
        return args

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        script = ('echo "kernel=$(uname -r)"\n'
                  'echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"\n'
                  '[ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] && echo cgroup_unified=yes\n')
        for tool in args["tools"]:
            script += (f"command -v {q(tool)} >/dev/null 2>&1 && "
                       f"echo \"tool {tool}=$({q(tool)} --version 2>&1 | head -n 3 | tr '\\n' ' ')\"\n")
        return {"host": script + "true"}

    def read(self, args, facts, ctx):
        self._state = parse(facts["host"].stdout)
        return self._state

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        problems = []
        mode = state["cgroup"]
        if mode and mode not in args["cgroup"]:
            problems.append(f"cgroup {mode} ({_describe(mode)}); works with: {', '.join(args['cgroup'])}")
        if args["kernel"] and state["kernel"] and compare(state["kernel"], str(args["kernel"])) < 0:
            problems.append(f"kernel {state['kernel']}, needs {args['kernel']} or newer")
        for tool, minimum in args["tools"].items():
            found = state["tools"].get(str(tool))
            if found and compare(found, str(minimum)) < 0:
                problems.append(f"{tool} {found}, needs {minimum} or newer")
        if problems:
            why = f" — {args['why']}" if args.get("why") else ""
            raise PreflightError(f"{host.name} cannot run this: " + "; ".join(problems) + why, host=host.name,
                                 fix=args.get("fix") or "upgrade the host, or run on hosts that meet these")
        return []

    def apply(self, args, changes, ctx):
        state = getattr(self, "_state", None)
        if state is None:
            return TaskResult(changed=False)
        return TaskResult(changed=False, msg=summary(state), data={"host": state})


def parse(text: str) -> dict:
    values, tools = {}, {}
    for line in text.splitlines():
        if line.startswith("tool "):
            name, _, output = line[5:].partition("=")
            version = _version_in(output)
            if version:
                tools[name] = version
        else:
            key, _, value = line.partition("=")
            values[key] = value.strip()
    fs = values.get("cgroup_fs", "")
    mode = "v2" if fs == "cgroup2fs" else ("hybrid" if values.get("cgroup_unified") == "yes" else "v1") \
        if fs == "tmpfs" else ("v2" if fs == "cgroup2fs" else "")
    return {"kernel": values.get("kernel", ""), "cgroup": mode, "tools": tools}


def summary(state: dict) -> str:
    parts = [f"cgroup {state['cgroup']} ({_describe(state['cgroup'])})" if state["cgroup"] else
             "cgroup unknown (/sys/fs/cgroup holds no cgroup filesystem)"]
    if state["kernel"]:
        parts.append(f"kernel {state['kernel']}")
    parts += [f"{name} {version}" for name, version in sorted(state["tools"].items())]
    return "; ".join(parts)


def _describe(mode: str) -> str:
    return {"v2": "unified hierarchy", "v1": "legacy hierarchy", "hybrid": "v1 controllers, v2 hierarchy alongside"}.get(mode, "?")


def _version_in(text: str) -> str:
    match = re.search(r"(?<![\w.])v?(\d+\.\d+(?:\.\d+)?(?:[-~+][0-9A-Za-z.]+)?)", text)
    return match.group(1) if match else ""


def _key(version: str) -> tuple:
    # "-rc93" upstream, "~rc93" in Debian's versions: both a pre-release
    main, _, pre = re.sub(r"^v", "", version).replace("~", "-", 1).partition("-")
    numbers = [int(p) for p in re.split(r"[.+~]", main) if p.isdigit()]
    numbers = (numbers + [0] * 4)[:4]
    # a pre-release (rc93) sorts before the release it precedes; a distribution suffix does not
    marker = (0, int(re.sub(r"\D", "", pre) or 0)) if re.match(r"(rc|alpha|beta|pre)", pre) else (1, 0)
    return numbers, marker


def compare(a: str, b: str) -> int:
    ka, kb = _key(a), _key(b)
    return (ka > kb) - (ka < kb)
