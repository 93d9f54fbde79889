"""``service``: a daemon running (or not) and started at boot (or not).

systemctl when systemd is PID 1, otherwise the SysV ``service`` command. A
unit that does not exist counts as stopped and disabled, so "this daemon
must not run" is a no-op on a host that does not have it.

Where systemd is installed but not running (a chroot, an image being built, a
container) ``systemctl enable``/``is-enabled`` still work on the unit files, so
"started at boot" is managed with them; starting or stopping falls back to the
SysV script when there is one.
"""

from __future__ import annotations

from gfsdeploy.errors import ModuleError
from gfsdeploy.modules.base import ADD, CHANGE, DESTROY, Change, HostInfo, Module, Param, q


class Service(Module):
    plans_from_reads = True  # (Module.plans_from_reads)
    name = "service"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "name": Param(required=True),
        "state": Param(choices=("started", "stopped", "restarted", "reloaded")),
        "enabled": Param(type="bool"),
        # systemd hosts: Ansible's service hands this on to its systemd backend
        "daemon_reload": Param(type="bool", default=False, aliases=("daemon-reload",)),
    }

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        name = q(args["name"])
        unit = q(args["name"] if "." in args["name"] else args["name"] + ".service")
        return {"service": (
            "if [ \"$(cat /proc/1/comm 2>/dev/null)\" = systemd ] && command -v systemctl >/dev/null 2>&1; then\n"
            "  echo init=systemd\n"
            f"  if systemctl cat {unit} >/dev/null 2>&1; then echo exists=yes; else echo exists=no; fi\n"
            f"  echo active=$(systemctl is-active {unit} 2>/dev/null)\n"
            f"  echo enabled=$(systemctl is-enabled {unit} 2>/dev/null)\n"
            f"elif command -v systemctl >/dev/null 2>&1 && e=$(systemctl is-enabled {unit} 2>/dev/null) || [ -n \"$e\" ]; then\n"
            "  echo init=systemd-offline\n"
            "  echo exists=yes\n"
            "  echo enabled=$e\n"
            f"  if [ -x /etc/init.d/{name} ] && service {name} status >/dev/null 2>&1; then echo active=active; else echo active=inactive; fi\n"
            "else\n"
            "  echo init=sysv\n"
            f"  if [ -x /etc/init.d/{name} ]; then echo exists=yes; else echo exists=no; fi\n"
            f"  if [ -x /etc/init.d/{name} ] && service {name} status >/dev/null 2>&1; then echo active=active; else echo active=inactive; fi\n"
            f"  if ls /etc/rc[2345].d/S*{name} >/dev/null 2>&1; then echo enabled=enabled; else echo enabled=disabled; fi\n"
            "fi")}

    def read(self, args, facts, ctx):
        return parse_status(facts["service"].stdout)

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        name, want = args["name"], args.get("state")
        systemd = state["init"] == "systemd"
        running = state["active"] in _RUNNING
        enabled = state["enabled"] in _ENABLED
        if not state["exists"]:
            if want in ("started", "restarted", "reloaded") or args.get("enabled"):
                # an earlier task may install it in this same run: the plan cannot know yet.
                # Its script reads the service again when it runs and does what is still to
                # do (it may then join a batch after that install), or fails plainly if the
                # service is still missing
                return [Change(CHANGE, f"service {name} {want or 'enabled'}",
                               diff=f"service {name} is not installed yet (known after apply)",
                               script=self._on_node(args, host), data={"on_node": True})]
            return []
        changes = []
        if args.get("daemon_reload") and systemd:  # first, so a changed unit file is what starts
            changes.append(Change(CHANGE, "systemd daemon-reload", script="systemctl daemon-reload"))

        def ctl(verb):
            return _ctl(state["init"], name, host, verb)

        if want == "started" and not running:
            changes.append(Change(ADD, f"service {name} (start)", script=ctl("start")))
        elif want == "stopped" and running:
            changes.append(Change(DESTROY, f"service {name} (stop)", script=ctl("stop")))
        elif want in ("restarted", "reloaded"):
            verb = "restart" if want == "restarted" or not running else "reload"
            changes.append(Change(CHANGE, f"service {name} ({verb})", script=ctl(verb)))
        if args.get("enabled") is not None and args["enabled"] != enabled:
            if state["enabled"] == "static" or (state["enabled"] == "masked" and args["enabled"]):
                raise ModuleError(f"service {name} is {state['enabled']}; it cannot be "
                                  f"{'enabled' if args['enabled'] else 'disabled'}", host=host.name,
                                  fix=f"unmask it (`systemctl unmask {name}`) or drop `enabled:`")
            changes.append(Change(CHANGE, f"service {name} (boot)",
                                  diff=f"enabled: {str(enabled).lower()} -> {str(args['enabled']).lower()}",
                                  script=_boot(state["init"], name, args["enabled"])))
        return changes

    def decides_on_node(self, args, changes) -> bool:
        return any(c.data.get("on_node") for c in changes)

    def apply(self, args, changes, ctx):
        result = super().apply(args, changes, ctx)
        if self.decides_on_node(args, changes):  # it says itself whether it did anything
            lines = result.stdout.splitlines(keepends=True)
            result.changed = any(line.strip() == _CHANGED for line in lines)
            result.stdout = "".join(line for line in lines if line.strip() != _CHANGED)
        return result

    def _on_node(self, args: dict, host: HostInfo) -> str:
        """The script of a service not installed when planned: it reads the service when it
        runs (the probe), fails if it is still missing, else does what :meth:`plan` would
        plan then (the same commands, chosen by the init it finds), printing a marker for
        each thing it changed."""
        name, want = args["name"], args.get("state")
        full = name if "." in name else name + ".service"  # (systemctl's name for it, as the probe's)
        missing = q(f"service {name} does not exist on {host.name}: install the package that provides it first")

        def ctl(verb):  # the command plan makes for the init found when it runs
            return (f'case "$__i" in systemd) {_ctl("systemd", full, host, verb)} ;; '
                    f'systemd-offline) {_ctl("systemd-offline", name, host, verb)} ;; '
                    f'*) {_ctl("sysv", name, host, verb)} ;; esac')

        def boot(enable):
            return f'case "$__i" in systemd|systemd-offline) {_boot("systemd", full, enable)} ;; ' \
                   f'*) {_boot("sysv", name, enable)} ;; esac'

        running, enabled = "|".join(_RUNNING), "|".join(_ENABLED)
        lines = [f"__s=$( {self.probes(args, host)['service']}\n)",
                 "__v() { printf '%s\\n' \"$__s\" | sed -n \"s/^$1=//p\" | head -n 1; }",
                 f"[ \"$(__v exists)\" = yes ] || {{ echo {missing} >&2; exit 1; }}",
                 "__i=$(__v init); __a=$(__v active); __e=$(__v enabled)"]
        if args.get("daemon_reload"):
            lines.append(f"if [ \"$__i\" = systemd ]; then systemctl daemon-reload; echo {_CHANGED}; fi")
        if want == "started":
            lines.append(f"case \"$__a\" in {running}) ;; *) {ctl('start')}; echo {_CHANGED} ;; esac")
        elif want == "stopped":
            lines.append(f"case \"$__a\" in {running}) {ctl('stop')}; echo {_CHANGED} ;; esac")
        elif want == "restarted":
            lines.append(f"{ctl('restart')}; echo {_CHANGED}")
        elif want == "reloaded":
            lines.append(f"case \"$__a\" in {running}) {ctl('reload')} ;; *) {ctl('restart')} ;; esac; "
                         f"echo {_CHANGED}")
        if args.get("enabled") is not None:  # (as plan: static cannot be disabled, masked not enabled)
            if args["enabled"]:
                stuck = q(f"service {name} is masked; it cannot be enabled")
                lines.append(f"case \"$__e\" in {enabled}) ;; masked) echo {stuck} >&2; exit 1 ;; "
                             f"*) {boot(True)}; echo {_CHANGED} ;; esac")
            else:
                stuck = q(f"service {name} is static; it cannot be disabled")
                lines.append(f"case \"$__e\" in static) echo {stuck} >&2; exit 1 ;; "
                             f"{enabled}) {boot(False)}; echo {_CHANGED} ;; esac")
        return "\n".join(lines)


#: the states ``systemctl is-active`` / ``is-enabled`` give for running / started at boot
_RUNNING = ("active", "activating", "reloading")
_ENABLED = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")


def _ctl(init: str, name: str, host: HostInfo, verb: str) -> str:
    """The command that starts/stops/restarts/reloads ``name`` on a host of this ``init``."""
    unit = q(name)
    if init == "systemd":
        return f"systemctl {verb} {unit}"
    if init == "systemd-offline":  # systemd installed but not PID 1: only a SysV script can start it
        return (f"if [ -x /etc/init.d/{unit} ]; then service {unit} {verb}; else "
                f"echo 'cannot {verb} {name} on {host.name}: systemd is not running (not PID 1)' >&2; exit 1; fi")
    return f"service {unit} {verb}"


def _boot(init: str, name: str, enable: bool) -> str:
    """The command that makes ``name`` start at boot (or not) on a host of this ``init``."""
    unit = q(name)
    if init in ("systemd", "systemd-offline"):
        return f"systemctl {'enable' if enable else 'disable'} {unit}"
    if enable:
        return f"if command -v update-rc.d >/dev/null; then update-rc.d {unit} defaults; else chkconfig {unit} on; fi"
    return f"if command -v update-rc.d >/dev/null; then update-rc.d {unit} disable; else chkconfig {unit} off; fi"


#: what the script of a service not installed when planned prints for each thing it changed
_CHANGED = "__GFSDEPLOY_SERVICE_CHANGED__"


def parse_status(text: str) -> dict:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {"init": values.get("init", "sysv"), "exists": values.get("exists") == "yes",
            "active": values.get("active", "").strip() or "inactive",
            "enabled": values.get("enabled", "").strip() or "disabled"}
