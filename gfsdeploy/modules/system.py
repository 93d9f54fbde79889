"""System state: ``sysctl``, ``mount``, ``user``, ``group``, ``systemd`` (``systemd_service``).

Same names, arguments, decisions and results as Ansible's modules (ansible.posix's
sysctl and mount, ansible.builtin's user, group and systemd_service); the facts they
follow are in docs/MODULES.md. Each reads the host in one probe, plans with a pure
function and runs only what differs.
"""

from __future__ import annotations

import re

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import (ADD, CHANGE, DESTROY, WARN, Change, HostInfo, Module, Param, TaskContext,
                                    TaskResult, q, qjoin)
from gfsdeploy.modules.files import FileState, parse_probe, plan_content, stat_probe

_TRUE = {"yes", "on", "1", "true", "y"}
_FALSE = {"no", "off", "0", "false", "n"}


def _parse_kv(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# -- sysctl --------------------------------------------------------------------------------
def sysctl_value(value) -> str:
    """Ansible's reading of ``value``: booleans are 1/0, strings are stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    if text.lower() in _TRUE:
        return "1"
    if text.lower() in _FALSE:
        return "0"
    return text.strip()


def sysctl_file_edit(text: str, name: str, value: str | None) -> tuple[str, str | None]:
    """The file as Ansible rewrites it (every line stripped; ``key=value`` lines
    normalised, the first of duplicates kept; ``name`` set, appended or, with
    ``value`` None, dropped) and the value the file held for ``name``."""
    out, seen, held = [], [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            out.append(line)
            continue
        key, val = (part.strip() for part in line.split("=", 1))
        if key == name and held is None:
            held = val
        if key in seen:
            continue
        seen.append(key)
        if key == name:
            if value is not None:
                out.append(f"{key}={value}")
        else:
            out.append(f"{key}={val}")
    if name not in seen and value is not None:
        out.append(f"{name}={value}")
    return "".join(line + "\n" for line in out), held


def _same_words(a, b) -> bool:
    return a is not None and b is not None and a.split() == b.split()


class Sysctl(Module):
    """``sysctl`` (ansible.posix): a kernel parameter in a sysctl file and, with
    ``sysctl_set``/``reload``, live."""
    plans_from_reads = True  # (Module.plans_from_reads)

    name = "sysctl"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "name": Param("str", required=True, aliases=("key",)),
        "value": Param("str", aliases=("val",)),
        "state": Param("str", default="present", choices=("present", "absent")),
        "reload": Param("bool", default=True),
        "sysctl_set": Param("bool", default=False),
        "ignoreerrors": Param("bool", default=False),
        "sysctl_file": Param("path", default="/etc/sysctl.conf"),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        raw = dict(args)
        out = super().validate(args, where=where)
        out["name"] = out["name"].strip()
        if not out["name"]:
            raise PlaybookError("sysctl: name cannot be blank", field="name", fix="give the key, e.g. "
                                "net.ipv4.ip_forward", **(where or {}))
        if out["state"] == "present":
            value = raw.get("value", raw.get("val"))
            if value is None or sysctl_value(value) == "":
                raise PlaybookError("sysctl: value cannot be blank with state=present", field="value",
                                    fix="give `value:`", **(where or {}))
            out["value"] = sysctl_value(value)
        if not re.fullmatch(r"[A-Za-z0-9_.*/-]+", out["name"]):
            raise PlaybookError(f"sysctl: {out['name']!r} is not a kernel parameter name", field="name",
                                fix="e.g. net.ipv4.ip_forward", **(where or {}))
        return out

    def resources(self, args: dict) -> set[str]:
        return {"file:" + args["sysctl_file"], "sysctl:" + args["name"]}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {"live": f"sysctl -n {q(args['name'])} 2>/dev/null || echo __gfsdeploy_missing__",
                "file": stat_probe(args["sysctl_file"])}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        live = facts["live"].stdout.strip()
        return {"live": None if live == "__gfsdeploy_missing__" else live,
                "file": parse_probe(args["sysctl_file"], facts["file"], ctx.host.name, ctx.task_name)}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        st = state["file"] if isinstance(state["file"], FileState) else FileState.from_dict(state["file"])
        if st.kind == "directory":
            raise ModuleError(f"sysctl_file {st.path} is a directory", host=host.name, fix="name a file")
        name, present = args["name"], args["state"] == "present"
        value = args.get("value") if present else None
        old = (st.content or b"").decode("utf-8", "surrogateescape")
        new, held = sysctl_file_edit(old, name, value)
        live = state.get("live")
        write = (held is None and present) or (held is not None and not present) or \
            (present and held != value)
        changed = write
        if not changed and args["reload"] and present and not _same_words(live, value):
            changed = True
        set_live = args["sysctl_set"] and present and live is not None and not _same_words(live, value)
        if args["sysctl_set"] and present and live is None:
            changed = True
        changes: list[Change] = []
        if write:
            changes += [c for c in plan_content(st, new.encode("utf-8", "surrogateescape"), {}, follow=True)
                        if c.action != WARN]
        ignore = "-e " if args["ignoreerrors"] else ""
        if set_live:
            changes.append(Change(CHANGE, f"sysctl {name} (live)", diff=f"{name}: {live} -> {value}",
                                  script=f"sysctl {ignore}-w {q(name + '=' + value)} >/dev/null"))
        if changed and args["reload"]:
            changes.append(Change(CHANGE, f"sysctl -p {args['sysctl_file']}",
                                  diff=f"{name}: {live} -> {value}" if present and not set_live and
                                  not _same_words(live, value) else "",
                                  script=f"sysctl {ignore}-p {q(args['sysctl_file'])} >/dev/null"))
        elif changed and not changes:
            changes.append(Change(CHANGE, f"sysctl {name}", diff=f"{name}: (unreadable) -> {value}"))
        return changes

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register={})

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        result = super().apply(args, changes, ctx)
        return TaskResult(changed=result.changed, register={})


# -- mount -----------------------------------------------------------------------------------
def fstab_escape(value: str) -> str:
    return value.replace("\\", "\\134").replace(" ", "\\040").replace("&", "\\046")


def fstab_edit(text: str, entry: dict | None, path: str, src: str | None = None) -> tuple[str, bool, bool]:
    """Ansible's set_mount/unset_mount on fstab text: ``(new text, changed, found)``.
    ``entry`` None removes the line(s) of ``path``."""
    name = fstab_escape(path)
    out, changed, found = [], False, False
    labels = ("src", "name", "fstype", "opts", "dump", "passno")
    for line in [x for x in re.split(r"(?<=\n)", text) if x]:
        if not line.endswith("\n"):
            line += "\n"
        fields = line.split("#")[0].split()
        if not line.strip() or line.strip().startswith("#") or len(fields) not in (4, 5, 6):
            out.append(line)
            continue
        current = {"dump": "0", "passno": "0", **dict(zip(labels, fields))}
        if current["name"] != name or (src is not None and current["name"] == "none" and
                                       current["fstype"] == "swap" and current["src"] != src):
            out.append(line)
            continue
        found = True
        if entry is None:
            changed = True
            continue
        differs = False
        for key in ("src", "fstype", "opts", "dump", "passno"):
            if current[key] != entry[key]:
                current[key] = entry[key]
                differs = True
        if differs:
            changed = True
            out.append("{src} {name} {fstype} {opts} {dump} {passno}\n".format(**current))
        else:
            out.append(line)
    if entry is not None and not found:
        out.append("{src} {name} {fstype} {opts} {dump} {passno}\n".format(**entry))
        changed = True
    return "".join(out), changed, found


class Mount(Module):
    """``mount`` (ansible.posix): an fstab entry and whether it is mounted now."""

    name = "mount"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "path": Param("path", required=True, aliases=("name",)),
        "src": Param("str"),
        "fstype": Param("str"),
        "opts": Param("str"),
        "dump": Param("str"),
        "passno": Param("str"),
        "state": Param("str", required=True, choices=("absent", "absent_from_fstab", "mounted", "present",
                                                     "unmounted", "remounted", "ephemeral")),
        "fstab": Param("path"),
        "boot": Param("bool", default=True),
        "backup": Param("bool", default=False),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        for state, needs in (("present", ("src", "fstype")), ("mounted", ("src", "fstype")),
                             ("ephemeral", ("src", "fstype"))):
            missing = [k for k in needs if out["state"] == state and not out.get(k)]
            if missing:
                raise PlaybookError(f"mount: state is {state} but all of the following are missing: "
                                    f"{', '.join(missing)}", field=missing[0],
                                    fix=f"add {' and '.join(f'`{m}:`' for m in missing)}", **(where or {}))
        if out["state"] == "ephemeral" and out.get("fstab"):
            raise PlaybookError("mount: fstab does not apply to state=ephemeral", field="fstab",
                                fix="drop `fstab:`", **(where or {}))
        if out["path"] != "/":
            out["path"] = out["path"].rstrip("/")
        return out

    def entry(self, args: dict) -> dict:
        opts = args.get("opts") or "defaults"
        if not args["boot"] and "noauto" not in opts.split(","):
            opts += ",noauto"
        return {k: fstab_escape(str(v)) for k, v in {
            "src": args.get("src") or "", "name": args["path"], "fstype": args.get("fstype") or "",
            "opts": opts, "dump": args.get("dump") or "0", "passno": args.get("passno") or "0"}.items()}

    def fstab(self, args: dict) -> str:
        return args.get("fstab") or "/etc/fstab"

    def resources(self, args: dict) -> set[str]:
        return {"file:" + self.fstab(args), "file:" + args["path"], "mounts"}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        path = q(args["path"])
        return {"fstab": stat_probe(self.fstab(args)),
                "mounted": f"findmnt -n -r -o SOURCE,FSTYPE,OPTIONS --mountpoint {path} 2>/dev/null | tail -n 1; "
                           f"if [ -e {path} ]; then echo __exists__; fi"}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        lines = facts["mounted"].stdout.splitlines()
        exists = "__exists__" in lines
        rows = [line for line in lines if line and line != "__exists__"]
        mounted = None
        if rows:
            parts = rows[-1].split(" ")
            bind = re.fullmatch(r".*\[(/.*)\]", parts[0])  # a bind mount: DEVICE[/source/dir]
            mounted = {"src": bind.group(1) if bind else parts[0], "fstype": parts[1] if len(parts) > 1 else "",
                       "opts": parts[2] if len(parts) > 2 else ""}
        return {"fstab": parse_probe(self.fstab(args), facts["fstab"], ctx.host.name, ctx.task_name),
                "mounted": mounted, "exists": exists}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        st = state["fstab"] if isinstance(state["fstab"], FileState) else FileState.from_dict(state["fstab"])
        path, want = args["path"], args["state"]
        mounted = state.get("mounted")
        entry = self.entry(args)
        fstab = self.fstab(args)
        flag = f" -T {q(fstab)}" if args.get("fstab") else ""
        old = (st.content or b"").decode("utf-8", "surrogateescape")
        changes: list[Change] = []

        def fstab_changes(new: str) -> list[Change]:
            return [c for c in plan_content(st, new.encode("utf-8", "surrogateescape"), {"backup": args["backup"]},
                                            mkdir=True) if c.action != WARN]

        if want in ("absent", "absent_from_fstab"):
            new, changed, _ = fstab_edit(old, None, path, args.get("src"))
            if changed:
                changes += fstab_changes(new)
                if want == "absent":
                    if mounted:
                        changes.append(Change(DESTROY, f"mount {path}", diff=f"unmount {mounted['src']}",
                                              script=f"umount {q(path)}"))
                    changes.append(Change(DESTROY, f"directory {path} (mount point)",
                                          script=f"if [ -d {q(path)} ]; then rmdir -- {q(path)}; fi"))
            return changes
        if want == "unmounted":
            if mounted:
                changes.append(Change(DESTROY, f"mount {path}", diff=f"unmount {mounted['src']}",
                                      script=f"umount {q(path)}"))
            return changes
        if want == "remounted":
            opts = args.get("opts")
            extra = f" -o {q('remount,' + opts)}" if opts and opts != "defaults" else " -o remount"
            return [Change(CHANGE, f"mount {path} (remount)", script=f"mount{flag}{extra} {q(path)}")]
        changed = False
        if want != "ephemeral":
            new, changed, _ = fstab_edit(old, entry, path, args.get("src"))
            if changed:
                changes += fstab_changes(new)
        if want == "present":
            return changes
        mkdir = [] if state.get("exists") else [Change(ADD, f"directory {path} (mount point)",
                                                       script=f"mkdir -p -- {q(path)}")]
        if want == "ephemeral":
            argv = ["mount", "-t", args["fstype"]]
            if args.get("opts") and args["opts"] != "defaults":
                argv += ["-o", args["opts"]]
            argv += [args["src"], path]
            if mounted and mounted["src"] != args["src"]:
                raise ModuleError(f"ephemeral mount point {path} is already mounted with a different source "
                                  f"({mounted['src']})", host=host.name,
                                  fix="unmount it first (state: unmounted) or use another path")
            if mounted:
                opts = "remount," + args["opts"] if args.get("opts") and args["opts"] != "defaults" else "remount"
                return [Change(CHANGE, f"mount {path} (remount)",
                               script=qjoin(["mount", "-o", opts, path]))]
            return mkdir + [Change(ADD, f"mount {path}", diff=f"{args['src']} ({args['fstype']})",
                                   script=qjoin(argv))]
        if mounted:
            if changed:
                opts = args.get("opts")
                extra = f" -o {q('remount,' + opts)}" if opts and opts != "defaults" else " -o remount"
                changes.append(Change(CHANGE, f"mount {path} (remount)", script=f"mount{flag}{extra} {q(path)}"))
            return changes
        return changes + mkdir + [Change(ADD, f"mount {path}", diff=f"{args['src']} ({args['fstype']})",
                                         script=f"mount{flag} {q(path)}")]

    def result(self, args: dict) -> dict:
        entry = self.entry(args)
        out = {"name": args["path"], "opts": entry["opts"], "dump": entry["dump"], "passno": entry["passno"],
               "boot": "yes" if args["boot"] else "no", "backup_file": "", "fstab": self.fstab(args)}
        for key in ("src", "fstype"):
            if args.get(key):
                out[key] = args[key]
        return out

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register=self.result(args))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        result = super().apply(args, changes, ctx)
        return TaskResult(changed=result.changed, register=self.result(args))


# -- group -------------------------------------------------------------------------------------
class Group(Module):
    """``group``: a local group present (with a gid) or absent."""

    name = "group"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "name": Param("str", required=True),
        "gid": Param("int"),
        "state": Param("str", default="present", choices=("present", "absent")),
        "system": Param("bool", default=False),
        "local": Param("bool", default=False),
        "non_unique": Param("bool", default=False),
        "force": Param("bool", default=False),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        _check_name("group", out["name"], where)
        if out["non_unique"] and out.get("gid") is None:
            raise PlaybookError("group: non_unique needs gid", field="gid", fix="add `gid:`", **(where or {}))
        return out

    def resources(self, args: dict) -> set[str]:
        return {"accounts"}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {"group": f"getent group {q(args['name'])} || true"}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        line = facts["group"].stdout.strip().splitlines()
        if not line:
            return {"exists": False}
        parts = line[0].split(":")
        return {"exists": True, "gid": int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        name = args["name"]
        if args["state"] == "absent":
            if not state["exists"]:
                return []
            argv = ["groupdel", *(["-f"] if args["force"] else []), name]
            return [Change(DESTROY, f"group {name}", script=qjoin(argv))]
        if not state["exists"]:
            argv = ["groupadd"]
            if args.get("gid") is not None:
                argv += ["-g", args["gid"]] + (["-o"] if args["non_unique"] else [])
            if args["system"]:
                argv.append("-r")
            diff = f"gid: {args['gid']}" if args.get("gid") is not None else ""
            return [Change(ADD, f"group {name}", diff=diff, script=qjoin([*argv, name]))]
        if args.get("gid") is not None and state.get("gid") != args["gid"]:
            argv = ["groupmod", "-g", args["gid"], *(["-o"] if args["non_unique"] else []), name]
            return [Change(CHANGE, f"group {name}", diff=f"gid: {state.get('gid')} -> {args['gid']}",
                           script=qjoin(argv))]
        return []

    def registered(self, args: dict, gid) -> dict:
        if args["state"] == "absent":
            return {"name": args["name"], "state": "absent"}
        return {"name": args["name"], "state": "present", "gid": gid, "system": args["system"]}

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register=self.registered(args, (state or {}).get("gid")))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        script = "set -e\n" + "\n".join(c.script for c in changes if c.script) + \
            f"\ngetent group {q(args['name'])} | cut -d: -f3 || true\n"
        done = ctx.run(script, what=changes[0].resource)
        gid = done.stdout.strip().splitlines()[-1:] or [""]
        return TaskResult(changed=True, register=self.registered(args, int(gid[0]) if gid[0].isdigit() else None))


def _check_name(kind: str, name: str, where):
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", name) or len(name) > 32:
        raise PlaybookError(f"{kind}: {name!r} is not a valid {kind} name", field="name",
                            fix="letters, digits, '_', '-', '.'; at most 32 characters", **(where or {}))


# -- user -----------------------------------------------------------------------------------------
class User(Module):
    """``user``: a local account (uid, primary and secondary groups, comment, home, shell,
    password hash) present or absent."""

    name = "user"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "name": Param("str", required=True, aliases=("user",)),
        "state": Param("str", default="present", choices=("present", "absent")),
        "uid": Param("int"),
        "group": Param("str"),
        "groups": Param("list"),
        "append": Param("bool", default=False),
        "comment": Param("str"),
        "home": Param("path"),
        "shell": Param("str"),
        "password": Param("str", sensitive=True),
        "update_password": Param("str", default="always", choices=("always", "on_create")),
        "create_home": Param("bool", default=True, aliases=("createhome",)),
        "move_home": Param("bool", default=False),
        "system": Param("bool", default=False),
        "remove": Param("bool", default=False),
        "force": Param("bool", default=False),
        "non_unique": Param("bool", default=False),
        "skeleton": Param("path"),
        "local": Param("bool", default=False),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        _check_name("user", out["name"], where)
        if out.get("groups") is not None:
            out["groups"] = [str(g).strip() for g in out["groups"] if str(g).strip()]
        return out

    def resources(self, args: dict) -> set[str]:
        return {"accounts", *(["file:" + args["home"]] if args.get("home") else [])}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        name = q(args["name"])
        lines = [f"if getent passwd {name}; then",
                 f"  echo \"groups=$(id -Gn {name} | tr ' ' ',')\"",
                 f"  echo \"shadow=$(getent shadow {name} | cut -d: -f2)\"",
                 f"  h=$(getent passwd {name} | cut -d: -f6); if [ -d \"$h\" ]; then echo home_exists=yes; fi",
                 "fi",
                 f"if getent group {name} >/dev/null; then echo own_group=yes; fi"]
        for g in [args.get("group"), *(args.get("groups") or [])]:
            if g:
                lines.append(f"if getent group {q(g)} >/dev/null; then echo group_exists={q(g)}; fi")
        if args.get("group"):
            lines.append(f"echo \"group_gid=$(getent group {q(args['group'])} | cut -d: -f3)\"")
        if args.get("home"):
            lines.append(f"if [ -d {q(args['home'])} ]; then echo want_home_exists=yes; fi")
        return {"user": "\n".join(lines)}

    def guards(self, args: dict, facts: dict, host: HostInfo) -> dict:
        """A user still to be created plans from its absence, a group of its own name
        (``useradd -N``) and its home; the groups it joins are checked by its own script
        (plan()), so a ``group`` task just before it in the batch leaves its plan standing."""
        from gfsdeploy.transport.base import Result

        seen = facts.get("user")
        if seen is None or args["state"] != "present" or seen.rc != 0 or seen.stderr:
            return super().guards(args, facts, host)
        state = parse_user(seen.stdout)
        if state.get("exists"):
            return super().guards(args, facts, host)
        name = q(args["name"])
        lines = [f"getent passwd {name} >/dev/null && echo exists",
                 f"getent group {name} >/dev/null && echo own_group=yes"]
        expected = "own_group=yes\n" if state.get("own_group") else ""
        if args.get("home"):
            lines.append(f"[ -d {q(args['home'])} ] && echo want_home_exists=yes")
            expected += "want_home_exists=yes\n" if state.get("want_home_exists") else ""
        return {"user": ("\n".join(lines) + "\ntrue", Result(0, expected, ""))}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        return parse_user(facts["user"].stdout)

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        name = args["name"]
        if args["state"] == "absent":
            if not state.get("exists"):
                return []
            argv = ["userdel", *(["-f"] if args["force"] else []), *(["-r"] if args["remove"] else []), name]
            return [Change(DESTROY, f"user {name}", script=qjoin(argv))]
        known = set(state.get("groups_exist") or [])
        missing = [g for g in [args.get("group"), *(args.get("groups") or [])]
                   if g and g not in known and not str(g).isdigit()]
        changes = [self._create(args, state)] if not state.get("exists") else self._modify(args, state)
        if missing and changes:
            # an earlier task of this run may create them: apply checks again, and fails plainly
            guard = "\n".join(f"getent group {q(g)} >/dev/null || {{ echo 'Group {g} does not exist' >&2; "
                              f"exit 1; }}" for g in missing)
            note = f"group(s) {', '.join(missing)} do not exist yet (known after apply)"
            changes[0].script = guard + "\n" + changes[0].script
            changes[0].diff = "\n".join(x for x in (changes[0].diff, note) if x)
        return changes

    def _create(self, args: dict, state: dict) -> Change:
        argv, diff = ["useradd"], []
        if args.get("uid") is not None:
            argv += ["-u", args["uid"]] + (["-o"] if args["non_unique"] else [])
            diff.append(f"uid: {args['uid']}")
        if args.get("group"):
            argv += ["-g", args["group"]]
            diff.append(f"group: {args['group']}")
        elif state.get("own_group"):
            argv.append("-N")
        if args.get("groups"):
            argv += ["-G", ",".join(args["groups"])]
            diff.append(f"groups: {','.join(args['groups'])}")
        for key, flag in (("comment", "-c"), ("home", "-d"), ("shell", "-s")):
            if args.get(key) is not None:
                argv += [flag, args[key]]
                diff.append(f"{key}: {args[key]}")
        if args.get("password") is not None:
            argv += ["-p", args["password"]]
            diff.append("password: (sensitive)")
        if args["create_home"]:
            argv.append("-m")
            if args.get("skeleton"):
                argv += ["-k", args["skeleton"]]
        else:
            argv.append("-M")
        if args["system"]:
            argv.append("-r")
        return Change(ADD, f"user {args['name']}", diff="\n".join(diff), script=qjoin([*argv, args["name"]]))

    def _modify(self, args: dict, state: dict) -> list[Change]:
        argv, diff = [], []
        if args.get("uid") is not None and args["uid"] != state["uid"]:
            argv += ["-u", args["uid"]] + (["-o"] if args["non_unique"] else [])
            diff.append(f"uid: {state['uid']} -> {args['uid']}")
        group = args.get("group")
        if group and group not in (state.get("group_name"), str(state["gid"])) and \
                state.get("group_gid") != str(state["gid"]):
            argv += ["-g", group]
            diff.append(f"group: {state.get('group_name') or state['gid']} -> {group}")
        if args.get("groups") is not None:
            current = [g for g in state.get("groups", []) if g != state.get("group_name")]
            wanted = list(args["groups"])
            if args["append"]:
                missing = [g for g in wanted if g not in current]
                if missing:
                    argv += ["-a", "-G", ",".join(missing)]
                    diff.append(f"groups: + {','.join(missing)}")
            elif set(current) != set(wanted):
                argv += ["-G", ",".join(wanted)]
                diff.append(f"groups: {','.join(current)} -> {','.join(wanted)}")
        for key, flag in (("comment", "-c"), ("home", "-d"), ("shell", "-s")):
            if args.get(key) is not None and args[key] != state[key]:
                argv += [flag, args[key]]
                if key == "home" and args["move_home"]:
                    argv.append("-m")
                diff.append(f"{key}: {state[key]} -> {args[key]}")
        if args.get("password") is not None and args["update_password"] == "always" and \
                args["password"] != state.get("shadow"):
            argv += ["-p", args["password"]]
            diff.append("password: (sensitive)")
        changes = []
        if argv:
            changes.append(Change(CHANGE, f"user {args['name']}", diff="\n".join(diff),
                                  script=qjoin(["usermod", *argv, args["name"]])))
        home = args.get("home") or state.get("home")
        home_exists = state.get("want_home_exists") if args.get("home") else state.get("home_exists")
        if args["create_home"] and home and not home_exists and not (args.get("move_home") and argv):
            skel = args.get("skeleton") or "/etc/skel"
            changes.append(Change(ADD, f"directory {home} (home of {args['name']})", script=(
                f"if [ -d {q(skel)} ]; then cp -a {q(skel)} {q(home)}; else mkdir -p {q(home)}; fi\n"
                f"chown -R {q(args['name'])}: {q(home)}")))
        return changes

    def registered(self, args: dict, state: dict, changed: bool) -> dict:
        out = {"name": args["name"], "state": args["state"]}
        if args["state"] == "absent":
            if changed:
                out.update(force=args["force"], remove=args["remove"])
            return out
        if changed and not state.get("existed"):
            out.update(system=args["system"], create_home=args["create_home"])
        elif state.get("existed"):
            out.update(append=args["append"], move_home=args["move_home"])
        if args.get("password") is not None:
            out["password"] = "NOT_LOGGING_PASSWORD"
        if state.get("exists"):
            out.update(uid=state["uid"], group=state["gid"], comment=state["comment"], home=state["home"],
                       shell=state["shell"])
            if args.get("groups") is not None:
                out["groups"] = ",".join(args["groups"])
        return out

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register=self.registered(args, {**state, "existed": state.get("exists")}, False))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        scripts = [c.script for c in changes if c.script]
        before = any(c.action != ADD or not c.resource.startswith("user ") for c in changes)
        probe = self.probes(args, ctx.host)["user"]
        done = ctx.run("set -e\n" + "\n".join(scripts) + "\necho GFSDEPLOY_AFTER\n" + probe + "\n",
                       what="; ".join(c.resource for c in changes))
        out, _, rest = done.stdout.partition("GFSDEPLOY_AFTER\n")
        register = self.registered(args, {**parse_user(rest), "existed": before}, True)
        for key, text in (("stdout", out), ("stderr", done.stderr)):
            if text:  # what useradd/usermod/userdel said, as Ansible reports it
                register.update({key: text, f"{key}_lines": text.splitlines()})
        return TaskResult(changed=True, register=register)


def parse_user(text: str) -> dict:
    state: dict = {"exists": False, "groups_exist": []}
    for line in text.splitlines():
        if line.count(":") >= 6 and "=" not in line.split(":")[0]:
            name, _, uid, gid, comment, home, shell = line.split(":", 6)
            state.update(exists=True, uid=int(uid), gid=int(gid), comment=comment, home=home, shell=shell)
        elif line.startswith("groups="):
            names = [g for g in line[7:].split(",") if g]
            state["group_name"] = names[0] if names else None
            state["groups"] = names[1:]
        elif line.startswith("shadow="):
            state["shadow"] = line[7:]
        elif line == "home_exists=yes":
            state["home_exists"] = True
        elif line == "want_home_exists=yes":
            state["want_home_exists"] = True
        elif line == "own_group=yes":
            state["own_group"] = True
        elif line.startswith("group_exists="):
            state["groups_exist"].append(line[13:])
        elif line.startswith("group_gid="):
            state["group_gid"] = line[10:]
    return state


# -- systemd ---------------------------------------------------------------------------------------
_SHOW = ("LoadState", "ActiveState", "SubState", "UnitFileState", "Id")
NOT_BOOTED = "System has not been booted with systemd as init system (PID 1). Can't operate."


class Systemd(Module):
    """``systemd`` / ``systemd_service``: a unit started/stopped/restarted/reloaded,
    enabled, masked, after an optional daemon-reload. On a host where systemd is not
    PID 1 (containers, the lab's nodes) it fails as Ansible does: systemctl cannot operate."""

    name = "systemd"
    aliases = ("systemd_service",)
    params = {
        "name": Param("str", aliases=("service", "unit")),
        "state": Param("str", choices=("started", "stopped", "restarted", "reloaded")),
        "enabled": Param("bool"),
        "masked": Param("bool"),
        "daemon_reload": Param("bool", default=False, aliases=("daemon-reload",)),
        "daemon_reexec": Param("bool", default=False, aliases=("daemon-reexec",)),
        "scope": Param("str", default="system", choices=("system", "user", "global")),
        "no_block": Param("bool", default=False),
        "force": Param("bool"),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if not out.get("name") and (out.get("state") or out.get("enabled") is not None or
                                    out.get("masked") is not None):
            raise PlaybookError("systemd: state, enabled or masked need name", field="name",
                                fix="add `name: UNIT`", **(where or {}))
        if not out.get("name") and not (out["daemon_reload"] or out["daemon_reexec"]):
            raise PlaybookError("systemd: one of name, daemon_reload, daemon_reexec is required",
                                field="name", fix="add `name: UNIT`", **(where or {}))
        return out

    def unit(self, args: dict) -> str:
        name = args["name"]
        return name if re.search(r"\.(service|socket|timer|mount|target|path|slice|scope|device|swap)$", name) \
            or "@" in name and not name.endswith("@") else name + ".service"

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        lines = ["if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo booted=yes; "
                 "else echo booted=no; fi"]
        if args.get("name"):
            scope = "" if args["scope"] == "system" else f"--{args['scope']} "
            props = ",".join(_SHOW)
            lines.append(f"if [ -d /run/systemd/system ]; then systemctl {scope}show {q(self.unit(args))} "
                         f"-p {props} 2>/dev/null; fi")
        return {"systemd": "\n".join(lines)}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        values = _parse_kv(facts["systemd"].stdout)
        return {"booted": values.pop("booted", "no") == "yes", "status": values}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        if not state["booted"]:
            raise ModuleError(f"systemd: {NOT_BOOTED}", host=host.name,
                              fix="this host does not run systemd (a container or chroot); use the "
                                  "`service` module, or run the task on a host booted with systemd")
        status = state.get("status") or {}
        scope = [] if args["scope"] == "system" else [f"--{args['scope']}"]
        changes: list[Change] = []
        unit = self.unit(args) if args.get("name") else ""
        ctl = ["systemctl", *scope]
        if args["daemon_reexec"]:
            changes.append(Change(CHANGE, "systemd daemon-reexec", script=qjoin([*ctl, "daemon-reexec"])))
        if args["daemon_reload"]:
            changes.append(Change(CHANGE, "systemd daemon-reload", script=qjoin([*ctl, "daemon-reload"])))
        if not unit:
            return changes
        loaded = status.get("LoadState", "not-found")
        if loaded == "not-found" and (args.get("state") or args.get("enabled")) and not args.get("masked"):
            return changes + [Change(CHANGE, f"unit {unit}", diff=f"unit {unit} is not installed yet "
                                     "(known after apply)",
                                     script=f"echo 'Could not find the requested service {unit}: host' >&2; exit 1")]
        masked = loaded == "masked" or status.get("UnitFileState") == "masked"
        if args.get("masked") is not None and args["masked"] != masked:
            verb = "mask" if args["masked"] else "unmask"
            changes.append(Change(CHANGE, f"unit {unit} ({verb})", diff=f"masked: {str(masked).lower()} -> "
                                  f"{str(args['masked']).lower()}", script=qjoin([*ctl, verb, unit])))
        if args.get("enabled") is not None:
            enabled = status.get("UnitFileState") in ("enabled", "enabled-runtime", "static", "alias",
                                                      "indirect", "generated")
            if enabled != args["enabled"]:
                verb = "enable" if args["enabled"] else "disable"
                changes.append(Change(CHANGE, f"unit {unit} (boot)", diff=f"enabled: {str(enabled).lower()} -> "
                                      f"{str(args['enabled']).lower()}", script=qjoin([*ctl, verb, unit])))
        running = status.get("ActiveState") in ("active", "activating", "reloading")
        nb = ["--no-block"] if args["no_block"] else []
        want = args.get("state")
        if want == "started" and not running:
            changes.append(Change(ADD, f"unit {unit} (start)", script=qjoin([*ctl, *nb, "start", unit])))
        elif want == "stopped" and running:
            changes.append(Change(DESTROY, f"unit {unit} (stop)", script=qjoin([*ctl, *nb, "stop", unit])))
        elif want in ("restarted", "reloaded"):
            verb = "restart" if want == "restarted" or not running else "reload"
            changes.append(Change(CHANGE, f"unit {unit} ({verb})", script=qjoin([*ctl, *nb, verb, unit])))
        return changes

    def registered(self, args: dict, status: dict) -> dict:
        out = {}
        if args.get("name"):
            out = {"name": args["name"], "status": status}
            if args.get("state"):
                out["state"] = args["state"]
            if args.get("enabled") is not None:
                out["enabled"] = args["enabled"]
        return out

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register=self.registered(args, (state or {}).get("status") or {}))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        result = super().apply(args, changes, ctx)
        status = {}
        if args.get("name"):
            status = self.read(args, ctx.transport.read_many(self.probes(args, ctx.host)), ctx)["status"]
        return TaskResult(changed=result.changed, register=self.registered(args, status))

