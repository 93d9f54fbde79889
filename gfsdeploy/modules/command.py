"""Ansible's ``command`` and ``shell``, and ``debug``.

``command`` runs an argument vector without a shell (the free-form string is split
with :func:`shlex.split`, then ``$VAR`` and ``~`` are expanded as Ansible does);
``shell`` runs the string through ``/bin/sh -c`` (or ``executable``). Both are
idempotent only through ``creates``/``removes`` (one ``test -e`` probe) — otherwise
the plan says it will run (``~ command: …``), as Terraform does for a provisioner.
The command never reads the script that ``sh -s`` is executing: its stdin is
``/dev/null`` or the ``stdin`` argument.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
import shlex
import time

from gfsdeploy.errors import PlaybookError
from gfsdeploy.modules.base import CHANGE, Change, HostInfo, Module, Param, TaskContext, TaskResult, q, qjoin

#: ``k=v`` words Ansible takes out of a command/shell free-form string
_INLINE = ("creates", "removes", "chdir", "executable", "stdin")
_GLOB = re.compile(r"[*?]|\[[\w.-]+\]")


def split_inline(cmd: str, keys=_INLINE) -> tuple[str, dict]:
    """``"make creates=/x chdir=/src"`` → ``("make", {"creates": "/x", "chdir": "/src"})``."""
    found = {}
    pattern = re.compile(r"(?:(?<=\s)|^)(%s)=(\"[^\"]*\"|'[^']*'|\S+)(?=\s|$)" % "|".join(keys))

    def take(m):
        value = m.group(2)
        if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
            value = value[1:-1]
        found[m.group(1)] = value
        return ""

    rest = pattern.sub(take, cmd)
    return re.sub(r"\s+$", "", re.sub(r"^\s+", "", rest)), found


def glob_word(pattern: str) -> str:
    """Quote ``pattern`` for sh but keep ``*``, ``?`` and simple ``[abc]`` as globs
    (Ansible's ``creates`` is a glob)."""
    out, last = [], 0
    for m in _GLOB.finditer(pattern):
        if m.start() > last:
            out.append(q(pattern[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    if last < len(pattern):
        out.append(q(pattern[last:]))
    return "".join(out) or "''"


_VAR = re.compile(r"\$(\w+|\{\w+\})")


def expand_word(arg: str) -> str:
    """Quote one argv word the way Ansible's command module treats it: ``~`` and
    ``$VAR``/``${VAR}`` expand (an unset variable stays as written, like Python's
    ``os.path.expandvars``); nothing else is special."""
    prefix = ""
    m = re.match(r"~[\w.-]*(?=/|$)", arg)
    if m:
        prefix, arg = m.group(0), arg[m.end():]
        if arg.startswith("/"):
            prefix, arg = prefix + "/", arg[1:]
    parts, last = [], 0
    for m in _VAR.finditer(arg):
        if m.start() > last:
            parts.append(q(arg[last:m.start()]))
        name = m.group(1).strip("{}")
        parts.append(f'"${{{name}-\\{m.group(0)}}}"' if "{" not in m.group(0)
                     else f'"${{{name}-\\${{{name}\\}}}}"')
        last = m.end()
    if last < len(arg):
        parts.append(q(arg[last:]))
    return prefix + "".join(parts) if (prefix or parts) else "''"


class _Run(Module):
    """What command and shell share: creates/removes probes, chdir, stdin, the result."""

    free_form = "cmd"
    common = {
        "chdir": Param("path"),
        "creates": Param("path"),
        "removes": Param("path"),
        "stdin": Param("str"),
        "stdin_add_newline": Param("bool", default=True),
        "strip_empty_ends": Param("bool", default=True),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        args = dict(args)
        if isinstance(args.get("cmd"), str):
            rest, inline = split_inline(args["cmd"], [k for k in _INLINE if k in self.params])
            args["cmd"] = rest
            for key, value in inline.items():
                args.setdefault(key, value)
        out = super().validate(args, where=where)
        if not out.get("cmd") and not out.get("argv"):
            raise PlaybookError(f"{self.name}: no command given", field="cmd",
                                fix=f"write `{self.name}: the command` or give `cmd:`", **(where or {}))
        if out.get("cmd") and out.get("argv"):
            raise PlaybookError(f"{self.name}: cmd and argv are mutually exclusive", field="argv",
                                fix="keep only one of them", **(where or {}))
        return out

    def _guard_path(self, args: dict, key: str) -> str | None:
        path = args.get(key)
        if path and args.get("chdir") and not path.startswith("/"):
            path = posixpath.join(args["chdir"], path)
        return path

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        out = {}
        for key in ("creates", "removes"):
            path = self._guard_path(args, key)
            if path:
                out[key] = (f"for f in {glob_word(path)}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then "
                            "echo yes; exit 0; fi; done; echo no")
        return out

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        return {key: facts[key].stdout.strip() == "yes" for key in ("creates", "removes") if key in facts}

    def command_line(self, args: dict) -> str:
        raise NotImplementedError

    def shown(self, args: dict) -> str:
        return args.get("cmd") or " ".join(args.get("argv") or [])

    def script(self, args: dict) -> str:
        lines = []
        if args.get("chdir"):
            lines.append(f"cd -- {q(args['chdir'])} || exit 1")
        if args.get("stdin") is not None:
            data = str(args["stdin"]) + ("\n" if args.get("stdin_add_newline", True) else "")
            encoded = base64.encodebytes(data.encode()).decode()
            lines.append(f"base64 -d <<'GFSDEPLOY_EOF' | {self.command_line(args)}\n{encoded}GFSDEPLOY_EOF")
        else:
            lines.append(f"{self.command_line(args)} </dev/null")
        return "\n".join(lines)

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        state = state or {}
        if args.get("creates") and state.get("creates"):
            return []
        if args.get("removes") and not state.get("removes", False):
            return []
        diff = f"chdir: {args['chdir']}" if args.get("chdir") else ""
        return [Change(CHANGE, f"{self.name}: {self.shown(args)}", diff=diff, script=self.script(args))]

    def registered_cmd(self, args: dict):
        """Ansible's ``cmd``: the argv for command, the string for shell."""
        shown = self.shown(args)
        return args.get("argv") or (shlex.split(shown) if self.name == "command" else shown)

    def unchanged(self, args: dict, state) -> TaskResult:
        if args.get("creates"):
            msg, stdout = (f"Did not run command since '{args['creates']}' exists",
                           f"skipped, since {args['creates']} exists")
        elif args.get("removes"):
            msg, stdout = (f"Did not run command since '{args['removes']}' does not exist",
                           f"skipped, since {args['removes']} does not exist")
        else:
            msg = stdout = ""
        return TaskResult(changed=False, rc=0, stdout=stdout, msg=msg, register={
            "rc": 0, "stdout": stdout, "stderr": "", "stdout_lines": stdout.splitlines(), "stderr_lines": [],
            "cmd": self.registered_cmd(args), "start": None, "end": None, "delta": None, "msg": msg})

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        shown = self.shown(args)
        if not changes:
            return self.unchanged(args, None)
        started = time.time()
        result = ctx.exec(changes[0].script)
        ended = time.time()
        stdout, stderr = result.stdout, result.stderr
        if args.get("strip_empty_ends", True):
            stdout, stderr = stdout.rstrip("\r\n"), stderr.rstrip("\r\n")
        failed = result.rc != 0
        msg = ""
        if failed:
            msg = f"non-zero return code {result.rc}: {shown}"
            if stderr.strip():
                msg += "\n  stderr: " + stderr.strip()[-2000:]
        data = {"cmd": self.registered_cmd(args),
                "start": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
                "end": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended)),
                "delta": "%.6f" % (ended - started)}
        return TaskResult(changed=True, failed=failed, rc=result.rc, stdout=stdout, stderr=stderr, msg=msg,
                          register={"rc": result.rc, "stdout": stdout, "stderr": stderr,
                                    "stdout_lines": stdout.splitlines(), "stderr_lines": stderr.splitlines(),
                                    "msg": msg, **data})


class Command(_Run):
    """``command``: an argv, no shell (pipes, ``>``, ``&&`` are plain arguments)."""

    name = "command"
    params = {"cmd": Param("str", aliases=("_raw_params",)), "argv": Param("list"), **_Run.common}

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if out.get("cmd"):
            try:
                shlex.split(out["cmd"])
            except ValueError as exc:
                raise PlaybookError(f"command: cannot split {out['cmd']!r}: {exc}", field="cmd",
                                    fix="close the quote, or use argv: [...]", **(where or {})) from None
        return out

    def command_line(self, args: dict) -> str:
        argv = [str(a) for a in args["argv"]] if args.get("argv") else shlex.split(args["cmd"])
        return " ".join(expand_word(a) for a in argv)


class Shell(_Run):
    """``shell``: the string through ``/bin/sh -c`` (or ``executable``)."""

    name = "shell"
    params = {"cmd": Param("str", aliases=("_raw_params",)), "executable": Param("path"), **_Run.common}

    def command_line(self, args: dict) -> str:
        return qjoin([args.get("executable") or "/bin/sh", "-c", args["cmd"]])


class Raw(Shell):
    """``raw``: the string as the host's shell gets it (no Python needed on the host: the
    step that bootstraps one uses it). Always a change; plan runs it only with
    ``check_mode: false``, like Ansible, whose check mode skips raw."""

    name = "raw"
    params = {"cmd": Param("str", aliases=("_raw_params",)), "executable": Param("path")}

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        result = super().apply(args, changes, ctx)
        # Ansible's raw registers only these (no cmd/start/end/delta)
        keep = ("rc", "stdout", "stderr", "stdout_lines", "stderr_lines", "msg")
        result.register = {k: v for k, v in (result.register or {}).items() if k in keep and (k != "msg" or v)}
        return result


class Debug(Module):
    """``debug``: print ``msg`` or a variable's value; changes nothing."""

    name = "debug"
    read_only = True
    params = {"msg": Param("raw", default="Hello world!"), "var": Param("str"), "verbosity": Param("int", default=0)}

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        return []

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        if args.get("var"):
            name = args["var"]
            value = lookup(ctx.variables, name)
            text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
            return TaskResult(msg=f"{name}: {text}", data={name: value})
        msg = args.get("msg")
        return TaskResult(msg=msg if isinstance(msg, str) else json.dumps(msg, indent=2, default=str))


def lookup(variables: dict, path: str):
    """``a.b[0]['c']`` in ``variables``; Ansible's ``VARIABLE IS NOT DEFINED!`` if missing."""
    value = variables
    for part in re.findall(r"[^.\[\]'\"]+", path):
        try:
            value = value[int(part)] if isinstance(value, list) and part.isdigit() else value[part]
        except (KeyError, IndexError, TypeError):
            return "VARIABLE IS NOT DEFINED!"
    return value
