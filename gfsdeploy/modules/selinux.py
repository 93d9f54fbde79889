"""``seboolean`` (ansible.posix.seboolean): an SELinux boolean on or off, now and
(``persistent: true``) across reboots.

With Ansible's meaning: ``persistent`` compares the policy store's value (what
the next boot loads) and writes it with ``setsebool -P``, which also sets the
running value; without it, only the running value is compared and set. A host
without SELinux (or with it disabled) is an error unless ``ignore_selinux_state``.

Reads: ``getsebool NAME`` for the running value; the store's value from
``semanage boolean -l`` (``NAME (on , off)``: running, then stored) where
policycoreutils' semanage is installed, else from the store's ``booleans.local``
(``NAME=1``, written by ``setsebool -P``) — absent there means "policy default",
which is planned as a change that records the value explicitly.
"""

from __future__ import annotations

import re

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import CHANGE, Change, HostInfo, Module, Param, TaskResult, q

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SETSEBOOL_TIMEOUT = 600.0  # setsebool -P rebuilds the policy: tens of seconds on small VMs


class Seboolean(Module):
    name = "seboolean"
    params = {
        "name": Param(required=True),
        "state": Param(type="bool", required=True),
        "persistent": Param(type="bool", default=False),
        "ignore_selinux_state": Param(type="bool", default=False),
    }

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        if not _NAME.match(args["name"]):
            raise PlaybookError(f"{args['name']!r} is not an SELinux boolean name", field="name", **(where or {}),
                                fix="use a name from `getsebool -a`, e.g. virt_use_fusefs")
        return args

    def resources(self, args: dict) -> set[str]:
        return {"selinux-boolean:" + args["name"]}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        name = q(args["name"])
        probe = (
            "if command -v getenforce >/dev/null 2>&1; then echo \"mode=$(getenforce)\"; "
            "elif [ -r /sys/fs/selinux/enforce ]; then echo mode=enabled; else echo mode=Disabled; fi\n"
            f"command -v getsebool >/dev/null 2>&1 && getsebool {name} 2>&1 | sed 's/^/running: /'\n")
        if args["persistent"]:
            probe += (
                "if command -v semanage >/dev/null 2>&1; then\n"
                f"  semanage boolean -l 2>/dev/null | grep -E '^'{name}'[[:space:]]' | sed 's/^/semanage: /'\n"
                "else\n"
                "  t=$(sed -n 's/^SELINUXTYPE=//p' /etc/selinux/config 2>/dev/null); t=${t:-targeted}\n"
                "  for f in /var/lib/selinux/$t/active/booleans.local /etc/selinux/$t/active/booleans.local "
                "/etc/selinux/$t/modules/active/booleans.local; do\n"
                f"    [ -r \"$f\" ] && {{ echo store=yes; sed -n 's/^'{name}'[[:space:]]*=[[:space:]]*/stored: /p' \"$f\"; break; }}\n"
                "  done\n"
                "fi\n")
        return {"seboolean": probe + "true"}

    def read(self, args, facts, ctx):
        return parse_state(facts["seboolean"].stdout)

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        name, want = args["name"], bool(args["state"])
        if state["mode"] == "disabled":
            if args["ignore_selinux_state"]:
                if not args["persistent"]:
                    return []
            else:
                raise ModuleError(f"SELinux is disabled on {host.name}; cannot set boolean {name}", host=host.name,
                                  fix="run this task only where SELinux is enabled "
                                      "(`when: ansible_selinux.status == 'enabled'`)")
        if state["running"] is None and state["mode"] != "disabled":
            raise ModuleError(f"SELinux boolean {name} does not exist on {host.name} "
                              f"({state['error'] or 'getsebool not found'})", host=host.name,
                              fix="check the name with `getsebool -a`; install policycoreutils if getsebool is missing")
        word = "on" if want else "off"
        if args["persistent"]:
            stored = state["stored"]
            if stored == want and (state["running"] in (want, None)):
                return []
            was = "unknown (policy default)" if stored is None else ("on" if stored else "off")
            return [Change(CHANGE, f"SELinux boolean {name} (persistent)",
                           diff=f"{name}: {was} -> {word}", script=f"setsebool -P {q(name)} {word}")]
        if state["running"] == want:
            return []
        return [Change(CHANGE, f"SELinux boolean {name}", diff=f"{name}: {'on' if state['running'] else 'off'} -> {word}",
                       script=f"setsebool {q(name)} {word}")]

    def apply(self, args, changes, ctx):
        if not changes:
            return TaskResult(changed=False)
        if args["persistent"]:
            ctx.progress(f"setsebool -P {args['name']} (rebuilds the SELinux policy; can take a minute)")
        result = ctx.run("set -e\n" + "\n".join(c.script for c in changes) + "\n", timeout=SETSEBOOL_TIMEOUT,
                         what=changes[0].script)
        return TaskResult(changed=True, rc=result.rc, stdout=result.stdout, stderr=result.stderr)


def parse_state(text: str) -> dict:
    state: dict = {"mode": "disabled", "running": None, "stored": None, "error": ""}
    for line in text.splitlines():
        if line.startswith("mode="):
            mode = line[5:].strip().lower()
            state["mode"] = "disabled" if mode in ("disabled", "") else mode
        elif line.startswith("running: "):
            match = re.search(r"-->\s*(on|off)\s*$", line)
            if match:
                state["running"] = match.group(1) == "on"
            else:
                state["error"] = line[len("running: "):].strip()
        elif line.startswith("semanage: "):
            match = re.search(r"\(\s*(on|off)\s*,\s*(on|off)\s*\)", line)
            if match:
                state["stored"] = match.group(2) == "on"
                if state["running"] is None:
                    state["running"] = match.group(1) == "on"
        elif line.startswith("stored: "):
            state["stored"] = line[len("stored: "):].strip().lower() in ("1", "true", "on")
    return state
