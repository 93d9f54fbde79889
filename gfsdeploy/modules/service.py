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
    name = "service"
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
        offline = state["init"] == "systemd-offline"
        running = state["active"] in ("active", "activating", "reloading")
        enabled = state["enabled"] in ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
        if not state["exists"]:
            if want in ("started", "restarted", "reloaded") or args.get("enabled"):
                # an earlier task may install it in this same run: the plan cannot know yet;
                # apply reads again and fails plainly if it is still missing
                script = (f"echo 'service {name} does not exist on {host.name}: install the package that "
                          f"provides it first' >&2; exit 1")
                return [Change(CHANGE, f"service {name} {want or 'enabled'}",
                               diff=f"service {name} is not installed yet (known after apply)", script=script)]
            return []
        changes = []
        if args.get("daemon_reload") and systemd:  # first, so a changed unit file is what starts
            changes.append(Change(CHANGE, "systemd daemon-reload", script="systemctl daemon-reload"))
        unit = q(name)

        def ctl(verb):
            if systemd:
                return f"systemctl {verb} {unit}"
            if offline:  # systemd installed but not PID 1: only a SysV script can start it
                return (f"if [ -x /etc/init.d/{unit} ]; then service {unit} {verb}; else "
                        f"echo 'cannot {verb} {name} on {host.name}: systemd is not running (not PID 1)' >&2; exit 1; fi")
            return f"service {unit} {verb}"

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
            if systemd or offline:
                script = f"systemctl {'enable' if args['enabled'] else 'disable'} {unit}"
            elif args["enabled"]:
                script = f"if command -v update-rc.d >/dev/null; then update-rc.d {unit} defaults; else chkconfig {unit} on; fi"
            else:
                script = f"if command -v update-rc.d >/dev/null; then update-rc.d {unit} disable; else chkconfig {unit} off; fi"
            changes.append(Change(CHANGE, f"service {name} (boot)",
                                  diff=f"enabled: {str(enabled).lower()} -> {str(args['enabled']).lower()}",
                                  script=script))
        return changes


def parse_status(text: str) -> dict:
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {"init": values.get("init", "sysv"), "exists": values.get("exists") == "yes",
            "active": values.get("active", "").strip() or "inactive",
            "enabled": values.get("enabled", "").strip() or "disabled"}
