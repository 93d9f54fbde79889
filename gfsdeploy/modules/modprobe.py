"""``modprobe``: load a kernel module now and keep it loaded across boots.

Ansible's community.general.modprobe arguments (name, state, params,
persistent), plus ``persistent_file`` so one file may list several modules,
``why`` (what fails later without the module, shown with the error) and ``on_unloadable``
(default: the host's ``kernel_modules_unloadable`` inventory variable):
a kernel that cannot load modules is a preflight failure unless the inventory
downgrades it to a warning, which still shows in plan and recap.
"""

from __future__ import annotations

from gfsdeploy.errors import PreflightError
from gfsdeploy.modules.base import ADD, DESTROY, WARN, Change, HostInfo, Module, Param, q

class Modprobe(Module):
    plans_from_reads = True  # (Module.plans_from_reads)
    name = "modprobe"
    params = {
        "name": Param(required=True, check="kernel_module"),
        "state": Param(default="present", choices=("present", "absent")),
        "params": Param(default=""),
        "persistent": Param(default="disabled", choices=("present", "absent", "disabled")),
        "persistent_file": Param(type="path", default="",
                                 help="default /etc/modules-load.d/NAME.conf"),
        # default: the inventory variable kernel_modules_unloadable, else fail
        "on_unloadable": Param(default=None, choices=("fail", "warn")),
        "why": Param(default="", help="what fails later without this module (shown with the error)"),
    }

    def resources(self, args: dict) -> set[str]:
        return {"kernel-module:" + args["name"], "file:/etc/modules-load.d", "file:/etc/modprobe.d"} | \
            ({"file:" + args["persistent_file"]} if args.get("persistent_file") else set())

    @staticmethod
    def files(args: dict) -> tuple[str, str]:
        name = args["name"]
        return (args.get("persistent_file") or f"/etc/modules-load.d/{name}.conf",
                f"/etc/modprobe.d/{name}.conf")

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        name = args["name"]
        load_file, options_file = self.files(args)
        probes = {
            "loaded": f"test -d /sys/module/{q(name)} && echo yes || echo no",
            # -n: dry run; resolves the module and its dependencies without loading
            "loadable": ("if [ ! -e /proc/modules ]; then echo 'no /proc/modules (kernel without loadable module support, or a container)'; exit 1; fi\n"
                         "command -v modprobe >/dev/null 2>&1 || { echo 'modprobe is not installed (kmod)'; exit 1; }\n"
                         f"modprobe -n {q(name)} 2>&1"),
        }
        if args.get("persistent", "disabled") != "disabled":
            probes["load_file"] = f"cat {q(load_file)} 2>/dev/null || echo __ABSENT__"
            if args.get("params"):
                probes["options_file"] = f"cat {q(options_file)} 2>/dev/null || echo __ABSENT__"
        return probes

    def read(self, args, facts, ctx):
        def text(key):
            result = facts.get(key)
            if result is None:
                return None
            return None if result.stdout.strip() == "__ABSENT__" else result.stdout

        loadable = facts["loadable"]
        return {
            "loaded": facts["loaded"].stdout.strip() == "yes",
            "loadable": loadable.rc == 0,
            "why": (loadable.stdout + loadable.stderr).strip().splitlines()[-1:] or ["modprobe failed"],
            "load_file": text("load_file"),
            "options_file": text("options_file"),
        }

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        name = args["name"]
        changes: list[Change] = []
        if args["state"] == "present" and not state["loaded"]:
            if state["loadable"]:
                changes.append(Change(ADD, f"kernel module {name} (load)",
                                      script=_load_script(name, args.get("params", ""))))
            else:
                why = state["why"][0] if isinstance(state["why"], list) else state["why"]
                message = f"kernel on {host.name} cannot load module {name}: {why}"
                if args.get("why"):
                    message += f" — {args['why']}"
                if on_unloadable(args, host) == "warn":
                    changes.append(Change(WARN, message))
                else:
                    raise PreflightError(
                        message, host=host.name,
                        fix=(f"load it on the host (`modprobe {name}`) or install the kernel's extra "
                             "modules package; on a lab/container kernel set the inventory variable "
                             "kernel_modules_unloadable: warn to continue with a warning"))
        elif args["state"] == "absent" and state["loaded"]:
            changes.append(Change(DESTROY, f"kernel module {name} (unload)",
                                  script=f"modprobe -r {q(name)}"))
        changes += self._persist(args, state)
        return changes

    def _persist(self, args: dict, state: dict) -> list[Change]:
        name = args["name"]
        load_file, options_file = self.files(args)
        mode = args.get("persistent", "disabled")
        if mode == "disabled":
            return []
        changes = []
        current = state.get("load_file")
        lines = (current or "").splitlines()
        listed = name in (line.split("#")[0].strip() for line in lines)
        if mode == "present" and not listed:
            action = ADD if current is None else "~"
            changes.append(Change(action, f"{load_file}: {name}", diff=f"+{name}",
                                  script=_append_line_script(load_file, name)))
        elif mode == "absent" and listed:
            changes.append(Change("~", f"{load_file}: {name}", diff=f"-{name}",
                                  script=_remove_line_script(load_file, name)))
        options = state.get("options_file")
        wanted = f"options {name} {args['params']}" if args.get("params") else ""
        if wanted:
            have = [line.strip() for line in (options or "").splitlines()]
            if mode == "present" and wanted not in have:
                changes.append(Change(ADD if options is None else "~", f"{options_file}: {wanted}",
                                      diff=f"+{wanted}",
                                      script=(f"mkdir -p /etc/modprobe.d\n"
                                              f"printf '%s\\n' {q(wanted)} > {q(options_file)}")))
            elif mode == "absent" and options is not None:
                changes.append(Change(DESTROY, options_file, script=f"rm -f {q(options_file)}"))
        return changes


def on_unloadable(args: dict, host: HostInfo) -> str:
    """The task's ``on_unloadable``, else the host's ``kernel_modules_unloadable``
    inventory variable (so the playbook stays plain Ansible), else ``fail``."""
    value = args.get("on_unloadable") or (host.vars or {}).get("kernel_modules_unloadable") or "fail"
    return "warn" if str(value).lower() == "warn" else "fail"


def _load_script(name: str, params: str) -> str:
    import shlex

    argv = " ".join(q(p) for p in shlex.split(params)) if params else ""
    return (f"out=$(modprobe {q(name)} {argv} 2>&1) || "
            f"{{ printf 'cannot load kernel module %s: %s\\n' {q(name)} \"$out\" >&2; exit 1; }}")


def _append_line_script(path: str, line: str) -> str:
    directory = path.rsplit("/", 1)[0] or "/"
    return (f"mkdir -p {q(directory)}\n"
            f"if [ -s {q(path)} ] && [ -n \"$(tail -c1 {q(path)})\" ]; then echo >> {q(path)}; fi\n"
            f"printf '%s\\n' {q(line)} >> {q(path)}")


def _remove_line_script(path: str, line: str) -> str:
    # rewrite without the exact line; keep everything else the user wrote
    return (f"tmp=$(mktemp) && grep -vx -e {q(line)} {q(path)} > \"$tmp\"; "
            f"cat \"$tmp\" > {q(path)} && rm -f \"$tmp\"")
