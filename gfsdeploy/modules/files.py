"""Ansible's file modules: ``copy``, ``template``, ``file``, ``lineinfile``, ``blockinfile``.

Same names, arguments and results as Ansible, so a playbook means the same thing
under ``ansible-playbook`` and gfsdeploy. Each file is read with ONE probe
(type, mode, owner, group and the content as base64, capped at :data:`CAP`);
``plan`` computes the new content with pure functions (Ansible's ``present()`` /
``absent()`` logic for lineinfile, the marker logic for blockinfile) and shows a
unified diff. Writes are atomic: the content goes to a temp file in the target's
directory (as a base64 quoted heredoc — never interpolated into a shell line),
gets its mode and owner, then ``mv -f`` replaces the target, so an interrupted
apply leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import base64
import difflib
import functools
import hashlib
import json
import os
import posixpath
import re
import shlex
from dataclasses import dataclass

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import (ADD, CHANGE, DESTROY, UNKNOWN, WARN, Change, HostInfo, Module, Param,
                                    TaskContext, TaskResult, q)
from gfsdeploy.transport.base import Result

#: files bigger than this are compared by sha256 only (no diff, no lineinfile)
CAP = 1 << 20
_EOF = "GFSDEPLOY_EOF"  # heredoc delimiter: '_' is not in the base64 alphabet


# -- state --------------------------------------------------------------------------
@dataclass
class FileState:
    """What one probe tells about a path. ``content`` is None when not read
    (not asked, not a regular file, or bigger than :data:`CAP`)."""

    path: str
    kind: str = "absent"        # absent, file, directory, other
    mode: str = ""              # "0644"
    owner: str = ""
    uid: str = ""
    group: str = ""
    gid: str = ""
    size: int = 0
    content: bytes | None = None
    sha256: str = ""            # the content's digest when it was not read (over the cap)
    link_target: str = ""       # set when the path itself is a symlink
    #: the link's own attributes (``mode|owner|uid|group|gid|size``), read back after apply
    link_stat: str = ""
    #: read for ``plan`` (not apply): a missing file may still come from an earlier task
    planning: bool = False

    @property
    def exists(self) -> bool:
        return self.kind != "absent"

    @classmethod
    def from_dict(cls, data: dict) -> "FileState":
        """Build from a test table row: ``content`` (text) or ``content_b64``."""
        data = dict(data)
        if "content_b64" in data:
            data["content"] = base64.b64decode(data.pop("content_b64"))
        elif isinstance(data.get("content"), str):
            data["content"] = data["content"].encode()
        if data.get("content") is not None and "size" not in data:
            data["size"] = len(data["content"])
        if data.get("kind", "absent") == "absent" and "mode" not in data:
            data["mode"] = ""
        return cls(**data)


@functools.lru_cache(maxsize=1024)  # the same paths on every host: the text is made once
def stat_probe(path: str, *, content: bool = True, into_dir: str | None = None, lstat: bool = False) -> str:
    """The one read for a path: ``P`` resolved path, ``L`` link target, ``S`` stat
    line, then ``C`` + base64 content or ``H`` + sha256 when over the cap.

    Few processes: one ``stat`` (the size compared with the cap is its last field,
    cut by the shell), ``base64`` for the content, ``readlink`` only for a link."""
    lines = [f"p={q(path)}"]
    if into_dir:
        lines.append(f'if [ -d "$p" ]; then p="$p"/{q(into_dir)}; fi')
    lines += [
        'printf "P %s\\n" "$p"',
        'if [ -L "$p" ]; then printf "L %s\\n" "$(readlink -- "$p")"; fi',
        *(["if [ -L \"$p\" ]; then stat -c 'K %a|%U|%u|%G|%g|%s' -- \"$p\"; fi"] if lstat else []),
        'if [ -e "$p" ]; then',
        "  ps=$(stat -L -c '%F|%a|%U|%u|%G|%g|%s' -- \"$p\") || exit 1",
        "  printf 'S %s\\n' \"$ps\"",
    ]
    if content:
        lines += [
            '  if [ -f "$p" ]; then',
            f'    if [ "${{ps##*|}}" -le {CAP} ]; then echo C; base64 < "$p" || exit 1',
            "    else printf 'H '; sha256sum < \"$p\" | cut -c1-64; fi",
            "  fi",
        ]
    lines += ["else echo 'S absent'; fi"]
    return "\n".join(lines)


_CONTENT_LINE = re.compile(r"^C\r?(?:\n|\Z)", re.M)


def parse_probe(path: str, result: Result, host: str = "", task: str = "") -> FileState:
    """Turn :func:`stat_probe` output into a :class:`FileState`."""
    if result.rc != 0:
        raise ModuleError(f"cannot read {path}: {result.stderr.strip() or f'exit {result.rc}'}",
                          host=host, task=task,
                          fix="check the path and that the SSH user (or become) may read it")
    state = FileState(path=path)
    out = result.stdout
    # the content is the rest after the line "C": decoded whole (base64 skips the line
    # breaks), not split into lines first — /etc/hosts of a thousand hosts is long
    marker = _CONTENT_LINE.search(out)
    body = out[marker.end():] if marker else None
    for line in (out[:marker.start()] if marker else out).splitlines():
        if line.startswith("P "):
            state.path = line[2:]
        elif line.startswith("L "):
            state.link_target = line[2:]
        elif line.startswith("K "):
            state.link_stat = line[2:]
        elif line == "S absent":
            state.kind = "absent"
        elif line.startswith("S "):
            kind, mode, owner, uid, group, gid, size = line[2:].rsplit("|", 6)
            state.kind = ("file" if kind.startswith("regular") else
                          "directory" if kind == "directory" else "other")
            state.mode = "%04o" % int(mode, 8)
            state.owner, state.uid, state.group, state.gid = owner, uid, group, gid
            state.size = int(size)
        elif line.startswith("H "):
            state.sha256 = line[2:].strip()
    if body is not None:  # (``sha256`` is what tells a file read without its content)
        state.content = base64.b64decode(body)
    return state


# -- modes (Ansible's rules) ----------------------------------------------------------
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_BITS = {"u": {"r": 0o400, "w": 0o200, "x": 0o100, "s": 0o4000, "t": 0},
         "g": {"r": 0o040, "w": 0o020, "x": 0o010, "s": 0o2000, "t": 0},
         "o": {"r": 0o004, "w": 0o002, "x": 0o001, "s": 0, "t": 0o1000}}


_OCTAL = re.compile(r"[0-7]{1,4}")
_OCTAL_INT = re.compile(r"[0-7]{3,4}")


def check_mode_arg(mode) -> str | None:
    """An error message for a mode Ansible would reject, else None."""
    if mode is None or isinstance(mode, int) and not isinstance(mode, bool):
        return None
    if not isinstance(mode, str):
        return f"mode must be a string like '0644' or 'u=rw,g=r', got {mode!r}"
    if _OCTAL.fullmatch(mode) or mode == "preserve":
        return None
    for clause in mode.split(","):
        if not re.fullmatch(r"[ugoa]*(?:[-+=][rwxXst]*)+", clause):
            return f"invalid mode {mode!r}: expected octal like '0644' or symbolic like 'u=rw,g=r,o=r'"
    return None


def mode_warning(mode) -> str | None:
    """Ansible reads an int mode as the number itself: ``mode: 644`` (no quotes, no
    leading 0) is decimal 644 = 0o1204. We do the same, and say so."""
    if isinstance(mode, int) and not isinstance(mode, bool) and mode >= 0o1000 \
            and _OCTAL_INT.fullmatch(str(mode)):
        return (f"mode: {mode} is the decimal number {mode} = {mode:04o} in octal (as in Ansible); "
                f"write mode: '0{mode}' with quotes")
    return None


def want_mode(mode, current: int | None, is_dir: bool) -> int | None:
    """The numeric mode ``mode`` asks for, given the current one (None: new path,
    whose base is 0644/0755 as with the usual umask 022)."""
    if mode is None or mode == "preserve":
        return None
    if isinstance(mode, int):
        return mode
    if _OCTAL.fullmatch(mode):
        return int(mode, 8)
    value = current if current is not None else (0o755 if is_dir else 0o644)
    for clause in mode.split(","):
        who = re.match(r"[ugoa]*", clause).group(0)
        users = "ugo" if who in ("", "a") or "a" in who else who
        for op, perms in re.findall(r"([-+=])([rwxXst]*)", clause[len(who):]):
            bits = 0
            for user in users:
                for perm in perms:
                    if perm == "X":
                        if is_dir or value & 0o111:
                            bits |= _BITS[user]["x"]
                    else:
                        bits |= _BITS[user][perm]
            if op == "+":
                value |= bits
            elif op == "-":
                value &= ~bits
            else:
                mask = sum(_WHO[u] for u in set(users))
                value = (value & ~mask) | bits
    return value & 0o7777


# -- diffs ------------------------------------------------------------------------------
def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


#: (path, old, new, new_file) -> the diff: hosts whose file and new content are the same
#: (nodes of one image, one config for all) share one diff — difflib on a 1,000-line
#: /etc/hosts costs milliseconds. Only texts over a KiB (a short diff costs little, and
#: every host's own small files would push the shared ones out), a few at a time, in memory
_DIFFS: dict = {}
_DIFFS_KEPT = 64
_DIFF_KEPT_BYTES = (1 << 10, 256 << 10)   # old + new, at least and at most


def unified_diff(path: str, old: bytes | None, new: bytes, *, new_file: bool = False) -> str:
    """A unified diff ``--- path`` / ``+++ path``; binary content gets a size line. Content
    rendered from values known only after apply (a plan) shows them as such, not as bytes."""
    if type(new) is not bytes or type(old) not in (bytes, type(None)) or \
            not _DIFF_KEPT_BYTES[0] <= len(old or b"") + len(new) <= _DIFF_KEPT_BYTES[1]:
        return _unified_diff(path, old, new, new_file=new_file)
    key = (path, old, new, new_file)
    diff = _DIFFS.get(key)
    if diff is None:
        diff = _unified_diff(path, old, new, new_file=new_file)
        if len(_DIFFS) >= _DIFFS_KEPT:
            _DIFFS.clear()
        _DIFFS[key] = diff
    return diff


def _unified_diff(path: str, old: bytes | None, new: bytes, *, new_file: bool = False) -> str:
    from gfsdeploy.templating.templar import UNKNOWN_MARK   # (lazy: jinja2 is heavy at start-up)

    mark = UNKNOWN_MARK.encode()
    if mark in new:
        new = new.replace(mark, b"(known after apply)")
        diff = unified_diff(path, old, new, new_file=new_file)
        return f"content (known after apply): it is rendered from values known only after apply\n{diff}"
    before, after = _text(old or b""), _text(new)
    if before is None or after is None:
        return f"binary content: {len(old or b'')} -> {len(new)} bytes"
    out = []
    for line in difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                     fromfile="/dev/null" if new_file else path, tofile=path):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out).rstrip("\n")


# -- scripts ----------------------------------------------------------------------------
def _attr_lines(target: str, mode: int | None, owner, group, *, preserve_from: str | None) -> list[str]:
    lines = []
    if preserve_from:
        lines.append(f'if [ -e {preserve_from} ]; then chown "$(stat -L -c %u:%g -- {preserve_from})" '
                     f'{target} 2>/dev/null || true; fi')
        if mode is None:
            lines.append(f'if [ -e {preserve_from} ]; then chmod "$(stat -L -c %a -- {preserve_from})" {target}; '
                         f'else chmod "$(printf %o $((0666 & ~0$(umask))))" {target}; fi')
    if mode is not None:
        lines.append(f"chmod {mode:04o} {target}")
    if owner:
        lines.append(f"chown {q(owner)} {target}")
    if group:
        lines.append(f"chgrp {q(group)} {target}")
    return lines


def validate_line(validate: str) -> str:
    """Ansible's ``validate: 'visudo -cf %s'`` with ``%s`` = the temp file."""
    words = []
    for word in shlex.split(validate):
        words.append('"$tmp"'.join(q(part) if part else "" for part in word.split("%s")) or "''")
    return " ".join(words)


def write_script(path: str, content: bytes, *, mode: int | None = None, owner=None, group=None,
                 backup: bool = False, follow: bool = False, mkdir: bool = False,
                 validate: str | None = None) -> str:
    """Atomic write: temp file in the same directory, mode/owner, validate, ``mv -f``.
    Without ``mode``/``owner``/``group`` the existing file's are kept (new file: umask)."""
    lines = ["(", f"p={q(path)}"]
    if follow:
        lines.append('p=$(readlink -f -- "$p" 2>/dev/null || printf %s "$p")')
    lines.append('d=$(dirname -- "$p")')
    if mkdir:
        lines.append('mkdir -p -- "$d"')
    else:
        lines.append('[ -d "$d" ] || { echo "Destination directory $d does not exist" >&2; exit 1; }')
    if backup:
        lines.append('if [ -f "$p" ]; then cp -p -- "$p" "$p.$$.$(date +%Y-%m-%d@%H:%M:%S)~"; fi')
    lines += ['tmp=$(mktemp "$d/.gfsdeploy.XXXXXXXX")',
              "trap 'rm -f \"$tmp\"' EXIT",
              "trap 'exit 130' INT TERM HUP",
              f"base64 -d > \"$tmp\" <<'{_EOF}'",
              base64.encodebytes(content).decode() + _EOF]
    lines += _attr_lines('"$tmp"', mode, owner, group, preserve_from='"$p"')
    if validate:
        lines.append(f"{validate_line(validate)} >&2 || {{ echo \"validation failed: \"{q(validate)} >&2; exit 1; }}")
    lines += _selinux_keep_lines()
    lines += ['mv -f -- "$tmp" "$p"',
              'if [ "$se" = new ]; then restorecon -- "$p" 2>/dev/null || true; fi', ")"]
    return "\n".join(lines)


def _selinux_keep_lines() -> list[str]:
    """Where SELinux is enabled, the temp file takes the replaced file's context (a file
    created in the directory gets the directory's default label: /etc/hosts would go
    from net_conf_t to etc_t); a new file gets the policy's default for its path."""
    return ['se=""',
            'if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then',
            '  if [ -e "$p" ]; then chcon --reference="$p" -- "$tmp" 2>/dev/null || true; else se=new; fi',
            'fi']


def attrs_script(path: str, mode: int | None, owner, group, *, recurse: bool = False) -> str:
    r = "-R " if recurse else ""
    lines = []
    if mode is not None:
        lines.append(f"chmod {r}{mode:04o} -- {q(path)}")
    if owner:
        lines.append(f"chown {r}{q(owner)} -- {q(path)}")
    if group:
        lines.append(f"chgrp {r}{q(group)} -- {q(path)}")
    return "\n".join(lines)


# -- the shared plan for "this path should hold this content" ----------------------------
def attr_diffs(state: FileState, mode: int | None, owner, group) -> list[str]:
    """``field: old -> new`` lines for attributes that differ (empty for a new path:
    those are shown as ``field: new``)."""
    out = []
    if mode is not None and (not state.exists or int(state.mode, 8) != mode):
        out.append(f"mode: {state.mode} -> {mode:04o}" if state.exists else f"mode: {mode:04o}")
    if owner and (not state.exists or str(owner) not in (state.owner, state.uid)):
        out.append(f"owner: {state.owner} -> {owner}" if state.exists else f"owner: {owner}")
    if group and (not state.exists or str(group) not in (state.group, state.gid)):
        out.append(f"group: {state.group} -> {group}" if state.exists else f"group: {group}")
    return out


def plan_content(state: FileState, new: bytes, args: dict, *, follow: bool = False,
                 mkdir: bool = False, sensitive: bool = False) -> list[Change]:
    """Changes that make ``state.path`` hold ``new`` with the asked mode/owner/group."""
    path = state.path
    warnings = [Change(WARN, f"file {path}", diff=w) for w in [mode_warning(args.get("mode"))] if w]
    if state.kind == "directory":
        raise ModuleError(f"{path} is a directory", fix="point the task at a file path")
    current = int(state.mode, 8) if state.exists else None
    mode = want_mode(args.get("mode"), current, False)
    owner, group = args.get("owner"), args.get("group")
    attrs = attr_diffs(state, mode, owner, group)
    script_args = dict(mode=mode, owner=owner, group=group, backup=bool(args.get("backup")),
                       follow=follow, mkdir=mkdir, validate=args.get("validate"))
    if not state.exists:
        diff = "\n".join([unified_diff(path, None, new, new_file=True), *attrs]).strip("\n")
        return warnings + [Change(ADD, f"file {path}", diff=diff, sensitive=sensitive,
                                  script=write_script(path, new, **script_args))]
    if state.content is not None:
        differs = state.content != new
        shown = unified_diff(path, state.content, new) if differs else ""
    else:
        differs = state.sha256 != hashlib.sha256(new).hexdigest()
        shown = (f"content differs (existing file is {state.size} bytes, over the {CAP // 1024} KiB "
                 "diff limit; not shown)") if differs else ""
    if differs:
        return warnings + [Change(CHANGE, f"file {path}", diff="\n".join([shown, *attrs]).strip("\n"),
                                  sensitive=sensitive, script=write_script(path, new, **script_args))]
    if attrs:
        return warnings + [Change(CHANGE, f"file {path}", diff="\n".join(attrs),
                                  script=attrs_script(path, mode, owner, group))]
    return warnings


def _fail(message: str, host: HostInfo | None = None, fix: str | None = None):
    raise ModuleError(message, host=host.name if host else None, fix=fix)


_FILE_ARGS = {
    "mode": Param("raw", help="octal string like '0644', or symbolic like 'u=rw,g=r,o=r'"),
    "owner": Param("str"),
    "group": Param("str"),
}


class _FileModule(Module):
    """Shared probe/read for modules that manage one file's content."""
    plans_from_reads = True  # (Module.plans_from_reads)
    plans_alike = True

    batch_apply = True  # apply: one script (write, then read back), so changes can be batched
    content_probe = True

    def path_of(self, args: dict) -> str:
        return args["path"]

    def resources(self, args: dict) -> set[str]:
        return {"file:" + self.path_of(args)}

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        problem = check_mode_arg(out.get("mode"))
        if problem:
            raise PlaybookError(f"{self.name}: {problem}", field="mode", fix="quote the mode: mode: '0644'",
                                **(where or {}))
        if out.get("validate") and "%s" not in out["validate"]:
            raise PlaybookError(f"{self.name}: validate must contain %s (the file to check)", field="validate",
                                fix="e.g. validate: 'visudo -cf %s'", **(where or {}))
        return out

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {"file": stat_probe(self.path_of(args), content=self.content_probe)}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> FileState:
        state = parse_probe(self.path_of(args), facts["file"], ctx.host.name, ctx.task_name)
        state.planning = bool(ctx.check_mode)
        return state

    def _state(self, args: dict, state) -> FileState:
        if isinstance(state, FileState):
            return state
        if isinstance(state, dict) and "file" in state and isinstance(state["file"], Result):
            return parse_probe(self.path_of(args), state["file"])
        return FileState.from_dict(state)

    # -- the registered result (Ansible's keys for each module) -------------------------
    def post_probe(self, args: dict) -> str:
        """What apply reads back after its change, in the same round trip."""
        return stat_probe(self.path_of(args), content=False)

    def result(self, args: dict, st: FileState, *, changed: bool, changes: list[Change]) -> dict:
        return attr_result(st, key="path")

    def unchanged(self, args: dict, state) -> TaskResult:
        st = state["file"] if isinstance(state, dict) and isinstance(state.get("file"), FileState) \
            else self._state(args, state)
        return TaskResult(register=self.result(args, st, changed=False, changes=[]))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        scripts = [c.script for c in changes if c.script and c.action != WARN]
        if not scripts:
            return TaskResult(changed=False)
        what = changes[0].resource if len(changes) == 1 else "; ".join(c.resource for c in changes)
        done = ctx.run("set -e\n" + "\n".join(scripts) + f"\necho {_POST}\n" + self.post_probe(args) + "\n",
                       what=what)
        after = done.stdout.split(_POST + "\n", 1)[-1]
        st = parse_probe(self.path_of(args), Result(0, after, ""), ctx.host.name, ctx.task_name)
        return TaskResult(changed=True, register=self.result(args, st, changed=True, changes=changes))


_POST = "GFSDEPLOY_AFTER"


def attr_result(st: FileState, *, key: str) -> dict:
    """Ansible's common file result: the path and, when it exists, its attributes."""
    if not st.exists and not st.link_stat:
        return {key: st.path, "state": "absent"}
    out = {key: st.path, "state": "link" if st.link_target else
           {"file": "file", "directory": "directory"}.get(st.kind, "file")}
    mode, owner, uid, group, gid, size = (st.link_stat.split("|") if st.link_stat else
                                          (st.mode, st.owner, st.uid, st.group, st.gid, st.size))
    out.update(mode="0%03o" % int(mode, 8), owner=owner, group=group, size=int(size),
               uid=int(uid) if str(uid).isdigit() else uid, gid=int(gid) if str(gid).isdigit() else gid)
    return out


# -- copy / template ------------------------------------------------------------------
class Copy(_FileModule):
    """``copy``: a controller file (``src``) or inline ``content`` to ``dest``."""

    name = "copy"
    pure_validate = True
    #: prepare reads only its args, variables and the local files it finds through ctx (not
    #: the host's facts): the runner may reuse its result while those are unchanged
    prepare_reusable = True
    params = {
        "dest": Param("path", required=True),
        "src": Param("path"),
        "content": Param("raw"),
        "backup": Param("bool", default=False),
        "force": Param("bool", default=True, aliases=("thirsty",)),
        "follow": Param("bool", default=False),
        "validate": Param("str"),
        **_FILE_ARGS,
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if (out.get("src") is None) == (out.get("content") is None):
            raise PlaybookError(f"{self.name} needs exactly one of src or content", field="src",
                                fix="give `src: FILE` (on the controller) or `content: TEXT`", **(where or {}))
        if out.get("content") is not None and out["dest"].endswith("/"):
            raise PlaybookError("can not use content with a dir as dest", field="dest",
                                fix="give dest a file name", **(where or {}))
        return out

    def prepare(self, args: dict, ctx: TaskContext) -> dict:
        args = dict(args)
        content = args.get("content")
        if content is not None:
            if isinstance(content, (dict, list)):
                content = json.dumps(content)
            args["_content_b64"] = base64.b64encode(str(content).encode()).decode()
            args["_sensitive"] = type(content).__name__ == "Sensitive"
            return args
        local = ctx.find_file(args["src"])
        if os.path.isdir(local):
            raise ModuleError(f"copy of a directory ({args['src']}) is not supported", host=ctx.host.name,
                              task=ctx.task_name, fix="copy each file with its own task (or a loop)")
        with open(local, "rb") as handle:
            args["_content_b64"] = base64.b64encode(handle.read()).decode()
        if args.get("mode") == "preserve":
            args["mode"] = "%04o" % (os.stat(local).st_mode & 0o7777)
        if args["dest"].endswith("/"):
            args["dest"] = args["dest"] + posixpath.basename(args["src"].rstrip("/"))
        return args

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        into = posixpath.basename(args["src"].rstrip("/")) if args.get("src") else None
        return {"file": stat_probe(args["dest"], into_dir=into)}

    def path_of(self, args: dict) -> str:
        return args["dest"]

    def post_probe(self, args: dict) -> str:
        into = posixpath.basename(args["src"].rstrip("/")) if args.get("src") else None
        return stat_probe(args["dest"], content=False, into_dir=into)

    def result(self, args: dict, st: FileState, *, changed: bool, changes: list[Change]) -> dict:
        new = base64.b64decode(args.get("_content_b64") or "")
        out = {"dest": st.path, **({} if changed else {"path": st.path}),
               "checksum": hashlib.sha1(new).hexdigest()}
        if changed:
            out["md5sum"] = hashlib.md5(new).hexdigest()
        out.update({k: v for k, v in attr_result(st, key="dest").items() if k != "dest"})
        return out

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        state = self._state(args, state)
        if "_content_b64" not in args:
            raise ModuleError(f"{self.name}: content not prepared", fix="call prepare() before plan()")
        new = base64.b64decode(args["_content_b64"])
        if state.kind == "directory":
            _fail(f"can not use content with a dir as dest: {state.path} is a directory", host,
                  "give dest a file name")
        if state.exists and not args.get("force", True):
            return []
        return plan_content(state, new, args, sensitive=bool(args.get("_sensitive")))


class Template(Copy):
    """``template``: render ``src`` (Jinja2, on the controller) then behave like copy."""

    name = "template"
    pure_validate = True
    params = {k: v for k, v in Copy.params.items() if k != "content"}
    params["src"] = Param("path", required=True)

    def prepare(self, args: dict, ctx: TaskContext) -> dict:
        args = dict(args)
        rendered = ctx.render_file(args["src"])
        args["_content_b64"] = base64.b64encode(rendered.encode()).decode()
        args["_sensitive"] = type(rendered).__name__ == "Sensitive"
        if args["dest"].endswith("/"):
            args["dest"] = args["dest"] + posixpath.basename(args["src"])
        return args


# -- file --------------------------------------------------------------------------------
class File(_FileModule):
    """``file``: a path's type (file, directory, link, absent, touch) and attributes."""

    name = "file"
    pure_validate = True
    content_probe = False
    params = {
        "path": Param("path", required=True, aliases=("dest", "name")),
        "state": Param("str", choices=("file", "directory", "absent", "touch", "link")),
        "src": Param("path"),
        "recurse": Param("bool", default=False),
        "force": Param("bool", default=False),
        "follow": Param("bool", default=True),
        "modification_time": Param("str"),
        "access_time": Param("str"),
        **_FILE_ARGS,
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if out.get("state") == "link" and not out.get("src"):
            raise PlaybookError("file: src is required for state=link", field="src",
                                fix="add `src: TARGET` (what the link points to)", **(where or {}))
        if out.get("recurse") and isinstance(out.get("mode"), str) and not re.fullmatch(r"[0-7]{1,4}", out["mode"]):
            raise PlaybookError("file: recurse supports octal modes only", field="mode",
                                fix="use an octal mode like '0755'", **(where or {}))
        return out

    def post_probe(self, args: dict) -> str:
        return stat_probe(args["path"], content=False, lstat=True)

    def result(self, args: dict, st: FileState, *, changed: bool, changes: list[Change]) -> dict:
        if args.get("state") == "link":
            return {**attr_result(st, key="dest"), "src": args["src"]}
        return attr_result(st, key="path")

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        probes = {"file": stat_probe(args["path"], content=False, lstat=True)}
        if args.get("recurse"):
            test = []
            if args.get("owner"):
                test.append(f"! -user {q(args['owner'])}")
            if args.get("group"):
                test.append(f"! -group {q(args['group'])}")
            if args.get("mode") is not None:
                test.append(f"! -perm {want_mode(args['mode'], None, True):04o}")
            if test:
                probes["recurse"] = (f"if [ -d {q(args['path'])} ]; then find {q(args['path'])} "
                                     f"\\( {' -o '.join(test)} \\) -print | head -n 3; fi")
        return probes

    def read(self, args: dict, facts: dict, ctx: TaskContext):
        state = parse_probe(args["path"], facts["file"], ctx.host.name, ctx.task_name)
        state.planning = bool(ctx.check_mode)
        recurse = facts.get("recurse")
        return {"file": state, "recurse_differs": bool(recurse and recurse.stdout.strip())}

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        if isinstance(state, dict) and "file" in state and not isinstance(state["file"], Result):
            st = state["file"] if isinstance(state["file"], FileState) else FileState.from_dict(state["file"])
            recurse_differs = bool(state.get("recurse_differs"))
        else:
            st, recurse_differs = self._state(args, state), False
        path, owner, group = args["path"], args.get("owner"), args.get("group")
        warnings = [Change(WARN, f"file {path}", diff=w) for w in [mode_warning(args.get("mode"))] if w]
        wanted = args.get("state")
        is_link = bool(st.link_target)
        current_kind = "link" if is_link and not args.get("follow", True) else st.kind
        if wanted is None:  # Ansible: keep what is there; a missing path is an error
            wanted = "directory" if args.get("recurse") and not st.exists else \
                "link" if is_link and args.get("src") else current_kind
            if wanted in ("absent", "other"):
                _fail(f"file ({path}) is absent, cannot continue", host,
                      "add `state: file|directory|touch|link` to say what it should be")
        if wanted == "absent":
            if not st.exists and not is_link:
                return []
            what = "directory" if st.kind == "directory" and not is_link else "file"
            return [Change(DESTROY, f"{what} {path}", script=f"rm -rf -- {q(path)}")]
        if wanted == "link":
            src = args["src"]
            if is_link and st.link_target == src:
                return warnings
            if st.exists and not is_link:
                if st.kind == "directory":
                    _fail(f"refusing to convert from directory to symlink for {path}", host,
                          "remove the directory first (state: absent)")
                if not args.get("force"):
                    _fail(f"refusing to convert from file to symlink for {path}", host,
                          "set force: true to replace the file with a link")
            diff = f"link: {st.link_target} -> {src}" if is_link else f"link: -> {src}"
            script = f"ln -sfn -- {q(src)} {q(path)}"
            if owner or group:
                script += "\n" + "\n".join(
                    line for line in [f"chown -h {q(owner)} -- {q(path)}" if owner else "",
                                      f"chgrp -h {q(group)} -- {q(path)}" if group else ""] if line)
            return warnings + [Change(ADD if not (st.exists or is_link) else CHANGE, f"link {path}",
                                      diff=diff, script=script)]
        if wanted == "directory":
            if st.exists and st.kind != "directory":
                _fail(f"{path} already exists as a {st.kind}", host, "remove it first (state: absent)")
            mode = want_mode(args.get("mode"), int(st.mode, 8) if st.exists else None, True)
            attrs = attr_diffs(st, mode, owner, group)
            if not st.exists:
                return warnings + [Change(ADD, f"directory {path}", diff="\n".join(attrs),
                                          script=mkdir_script(path, mode, owner, group))]
            if recurse_differs and args.get("recurse"):
                return warnings + [Change(CHANGE, f"directory {path}",
                                          diff="\n".join(attrs + ["recurse: attributes differ below " + path]),
                                          script=attrs_script(path, mode, owner, group, recurse=True))]
            if attrs:
                return warnings + [Change(CHANGE, f"directory {path}", diff="\n".join(attrs),
                                          script=attrs_script(path, mode, owner, group))]
            return warnings
        if wanted == "touch":
            if st.exists and st.kind == "directory":
                mode = want_mode(args.get("mode"), int(st.mode, 8), True)
            else:
                mode = want_mode(args.get("mode"), int(st.mode, 8) if st.exists else None, False)
            attrs = attr_diffs(st, mode, owner, group)
            preserve = args.get("modification_time") == "preserve" and args.get("access_time") == "preserve"
            script = "\n".join(s for s in [f"touch -- {q(path)}" if not (preserve and st.exists) else "",
                                           attrs_script(path, mode, owner, group)] if s)
            if not st.exists:
                return warnings + [Change(ADD, f"file {path}", diff="\n".join(attrs), script=script)]
            if preserve and not attrs:
                return warnings
            return warnings + [Change(CHANGE, f"file {path}",
                                      diff="\n".join(attrs + ([] if preserve else ["times: now"])),
                                      script=script)]
        # state: file — the path must already be a file; only attributes change
        if not st.exists and st.planning:
            return [Change(CHANGE, f"file {path}", diff=f"{UNKNOWN}: {path} does not exist yet "
                           "(an earlier task must create it, or apply fails)")]
        if not st.exists:
            _fail(f"file ({path}) is absent, cannot continue", host,
                  "use state: touch to create an empty file, or copy/template to give it content")
        if st.kind != wanted:
            _fail(f"file ({path}) is {st.kind}, cannot continue", host,
                  f"use state: {st.kind}" if st.kind == "directory" else None)
        mode = want_mode(args.get("mode"), int(st.mode, 8), False)
        attrs = attr_diffs(st, mode, owner, group)
        if attrs:
            return warnings + [Change(CHANGE, f"file {path}", diff="\n".join(attrs),
                                      script=attrs_script(path, mode, owner, group))]
        return warnings


def mkdir_script(path: str, mode: int | None, owner, group) -> str:
    """Create each missing directory of ``path`` with the asked attributes (as Ansible
    does for the parents it creates)."""
    parts, lines = [], []
    current = "/" if path.startswith("/") else ""
    for piece in [p for p in path.split("/") if p]:
        current = posixpath.join(current, piece) if current else piece
        parts.append(current)
    for part in parts:
        inner = "; ".join(["mkdir -- " + q(part), *[a for a in [attrs_script(part, mode, owner, group)] if a]])
        lines.append(f"if [ ! -d {q(part)} ]; then {inner.replace(chr(10), '; ')}; fi")
    return "\n".join(lines)


# -- lineinfile ----------------------------------------------------------------------------
def _split(text: str) -> list[str]:
    """Lines with their endings, split on \\n only (as Python's readlines on bytes)."""
    lines = text.splitlines(keepends=True)  # in C, but it also splits on \r, \f, \u2028…
    if len(lines) == text.count("\n") + (not text.endswith("\n") and bool(text)):  # (none of those)
        return lines
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def lineinfile_present(text: str, line: str, *, regexp: str | None = None, search_string: str | None = None,
                       insertafter: str | None = None, insertbefore: str | None = None,
                       backrefs: bool = False, firstmatch: bool = False) -> str:
    """Ansible's lineinfile ``present()``: the new text (== ``text`` when nothing to do)."""
    if insertafter is None and insertbefore is None:
        insertafter = "EOF"
    lines = _split(text)
    found = -1        # line replaced by regexp/search_string/exact match
    at = -1           # insertion point from insertafter/insertbefore
    match = None
    anchor = None
    if insertafter not in (None, "BOF", "EOF"):
        anchor = re.compile(insertafter)
    elif insertbefore not in (None, "BOF"):
        anchor = re.compile(insertbefore)
    if regexp is not None:
        pattern = re.compile(regexp)
        for number, current in enumerate(lines):
            m = pattern.search(current)
            if m:
                found, match = number, m
                if firstmatch:
                    break
    if search_string is not None:
        for number, current in enumerate(lines):
            if search_string in current:
                found, match = number, True
                if firstmatch:
                    break
    if not match:
        for number, current in enumerate(lines):
            if current.rstrip("\r\n") == line:
                found = number
            elif anchor is not None and anchor.search(current):
                if insertafter:
                    at = number + 1
                else:
                    at = number
                if firstmatch:
                    break

    def ensure_last_newline():
        if lines and lines[-1][-1:] not in ("\n", "\r"):
            lines.append("\n")

    if found != -1:
        new_line = match.expand(line) if backrefs and match is not None and match is not True else line
        if not new_line.endswith("\n"):
            new_line += "\n"
        if lines[found] != new_line:
            lines[found] = new_line
    elif backrefs:
        pass  # nothing matched: the backrefs cannot be filled, so Ansible leaves the file alone
    elif insertbefore == "BOF" or insertafter == "BOF":
        lines.insert(0, line + "\n")
    elif insertafter == "EOF" or at == -1:
        ensure_last_newline()
        lines.append(line + "\n")
    elif insertafter:
        if at == len(lines):
            if lines[at - 1].rstrip("\r\n") != line:
                lines.append(line + "\n")
        elif lines[at].rstrip("\r\n") != line:
            lines.insert(at, line + "\n")
    else:
        lines.insert(at, line + "\n")
    return "".join(lines)


def lineinfile_absent(text: str, *, line: str | None = None, regexp: str | None = None,
                      search_string: str | None = None) -> str:
    """Ansible's lineinfile ``absent()``: drop every matching line."""
    pattern = re.compile(regexp) if regexp is not None else None

    def matches(current: str) -> bool:
        if pattern is not None:
            return bool(pattern.search(current))
        if search_string is not None:
            return search_string in current
        return current.rstrip("\r\n") == line

    return "".join(current for current in _split(text) if not matches(current))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


_LINE_FILE_ARGS = {
    "path": Param("path", required=True, aliases=("dest", "destfile", "name")),
    "state": Param("str", default="present", choices=("present", "absent")),
    "insertafter": Param("str"),
    "insertbefore": Param("str"),
    "create": Param("bool", default=False),
    "backup": Param("bool", default=False),
    "validate": Param("str"),
    **_FILE_ARGS,
}


class _EditModule(_FileModule):
    """lineinfile/blockinfile: edit the text of an existing (or created) file."""

    def edit(self, args: dict, text: str, exists: bool) -> str:
        raise NotImplementedError

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        st = self._state(args, state)
        path = args["path"]
        if st.kind == "directory":
            _fail(f"Path {path} is a directory !", host, "point path at a file")
        if not st.exists:
            if args["state"] == "absent":
                return []
            if not args.get("create"):
                if st.planning:  # an earlier task of this run may create it; apply decides
                    return [Change(CHANGE, f"file {path}", diff=f"{UNKNOWN}: {path} does not exist yet "
                                   "(an earlier task must create it, or apply fails)")]
                _fail(f"Destination {path} does not exist !", host,
                      "add `create: true`, or create the file in an earlier task")
            old = b""
        elif st.content is None:
            _fail(f"{path} is {st.size} bytes, over the {CAP // 1024} KiB limit {self.name} reads", host,
                  "manage this file with copy or template instead")
        else:
            old = st.content
        new = _encode(self.edit(args, _decode(old), st.exists))
        if st.exists and new == old:
            changes = plan_content(st, old, args, follow=True)  # attributes only
        else:
            changes = plan_content(st, new, args, follow=True, mkdir=True)
        data = self.outcome(args, _decode(old), _decode(new), st.exists)
        if st.exists:
            mode = want_mode(args.get("mode"), int(st.mode, 8), False)
            data["attrs"] = bool(attr_diffs(st, mode, args.get("owner"), args.get("group")))
        else:
            data["attrs"] = want_mode(args.get("mode"), None, False) not in (None, 0o644) or \
                args.get("owner") not in (None, "root", "0") or args.get("group") not in (None, "root", "0")
        for change in changes:
            if change.action != WARN:
                change.data.update(data)
        return changes

    def outcome(self, args: dict, old: str, new: str, existed: bool) -> dict:
        """Ansible's ``msg`` (and ``found``) for this edit."""
        return {"msg": ""}

    def unchanged(self, args: dict, state) -> TaskResult:
        st = self._state(args, state)
        if not st.exists and args.get("state") == "absent":
            return TaskResult(register=self.absent_result())
        text = _decode(st.content or b"")
        return TaskResult(register=self.registered({**self.outcome(args, text, text, True), "attrs": False}, args))

    def absent_result(self) -> dict:
        return {"msg": ""}

    def registered(self, data: dict, args: dict) -> dict:
        msg = data.get("msg", "")
        if data.get("attrs"):
            msg = (msg + " and " if msg else "") + "ownership, perms or SE linux context changed"
        return {"msg": msg, **{k: v for k, v in data.items() if k not in ("msg", "attrs")}}

    def result(self, args: dict, st: FileState, *, changed: bool, changes: list[Change]) -> dict:
        data = next((c.data for c in changes if c.action != WARN and c.data), {"msg": ""})
        return self.registered(data, args)


class LineInFile(_EditModule):
    """``lineinfile``: one line present (replacing a regexp match) or absent."""

    name = "lineinfile"
    pure_validate = True
    params = {**_LINE_FILE_ARGS,
              "line": Param("str", aliases=("value",)),
              "regexp": Param("str", aliases=("regex",)),
              "search_string": Param("str"),
              "backrefs": Param("bool", default=False),
              "firstmatch": Param("bool", default=False)}

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        where = where or {}
        for a, b in (("insertbefore", "insertafter"), ("regexp", "search_string"), ("backrefs", "search_string")):
            if out.get(a) and out.get(b):
                raise PlaybookError(f"lineinfile: {a} and {b} are mutually exclusive", field=b,
                                    fix=f"keep only one of {a} / {b}", **where)
        if out["state"] == "present":
            if out.get("backrefs") and out.get("regexp") is None:
                raise PlaybookError("lineinfile: regexp is required with backrefs=true", field="regexp",
                                    fix="add `regexp:` or drop `backrefs`", **where)
            if out.get("line") is None:
                raise PlaybookError("lineinfile: line is required with state=present", field="line",
                                    fix="add `line: TEXT`", **where)
        elif (out.get("regexp"), out.get("search_string"), out.get("line")) == (None, None, None):
            raise PlaybookError("lineinfile: one of line, search_string, or regexp is required with state=absent",
                                field="line", fix="add `regexp:` or `line:`", **where)
        for key in ("regexp", "insertafter", "insertbefore"):
            if out.get(key) not in (None, "EOF", "BOF"):
                try:
                    re.compile(out[key])
                except re.error as err:
                    raise PlaybookError(f"lineinfile: {key} is not a valid regular expression: {err}",
                                        field=key, fix="fix the regular expression (Python syntax)", **where)
        return out

    def outcome(self, args: dict, old: str, new: str, existed: bool) -> dict:
        if args["state"] == "absent":
            found = len(_split(old)) - len(_split(new))
            return {"found": found, "msg": f"{found} line(s) removed" if found else "", "backup": ""}
        if old == new:
            msg = ""
        elif len(_split(new)) > len(_split(old)) or not existed:
            msg = "line added"
        else:
            msg = "line replaced"
        return {"msg": msg, "backup": ""}

    def absent_result(self) -> dict:
        return {"msg": "file not present"}

    def edit(self, args: dict, text: str, exists: bool) -> str:
        if args["state"] == "absent":
            return lineinfile_absent(text, line=args.get("line"), regexp=args.get("regexp"),
                                     search_string=args.get("search_string"))
        return lineinfile_present(text, args["line"], regexp=args.get("regexp"),
                                  search_string=args.get("search_string"),
                                  insertafter=args.get("insertafter"), insertbefore=args.get("insertbefore"),
                                  backrefs=bool(args.get("backrefs")), firstmatch=bool(args.get("firstmatch")))


# -- blockinfile -------------------------------------------------------------------------------
def _last_index(lines: list[str], line: str) -> int | None:
    """Where ``line`` is last in ``lines`` (None: nowhere)."""
    try:
        return len(lines) - 1 - lines[::-1].index(line)
    except ValueError:
        return None


def blockinfile_edit(text: str, block: str, *, present: bool = True,
                     marker: str = "# {mark} ANSIBLE MANAGED BLOCK", marker_begin: str = "BEGIN",
                     marker_end: str = "END", insertafter: str | None = None,
                     insertbefore: str | None = None) -> str:
    """Ansible's blockinfile: replace the text between the markers (or insert it
    after/before a line matching a regexp, EOF by default); every other line stays."""
    lines = _split(text)
    if insertbefore is None and insertafter is None:
        insertafter = "EOF"
    anchor = None
    if insertafter not in (None, "EOF"):
        anchor = re.compile(insertafter)
    elif insertbefore not in (None, "BOF"):
        anchor = re.compile(insertbefore)
    begin = marker.replace("{mark}", marker_begin) + "\n"
    end = marker.replace("{mark}", marker_end) + "\n"
    if present and block:
        if not block.endswith("\n"):
            block += "\n"
        new = [begin, block, end]  # (only joined: the block need not be split into lines)
    else:
        new = []
    n0, n1 = _last_index(lines, begin), _last_index(lines, end)
    if n0 is None or n1 is None:
        n0 = None
        if anchor is not None:
            if anchor.flags & re.MULTILINE:
                m = anchor.search(text)
                if m:
                    n0 = text.count("\n", 0, m.end() if insertafter else m.start())
            else:
                for number, current in enumerate(lines):
                    if anchor.search(current):
                        n0 = number
            if n0 is None:
                n0 = len(lines)
            elif insertafter is not None:
                n0 += 1
        elif insertbefore is not None:
            n0 = 0
        else:
            n0 = len(lines)
    elif n0 < n1:
        del lines[n0:n1 + 1]
    else:
        del lines[n1:n0 + 1]
        n0 = n1
    if n0 > 0 and not lines[n0 - 1].endswith("\n"):
        lines[n0 - 1] += "\n"
    lines[n0:n0] = new
    return "".join(lines)


class BlockInFile(_EditModule):
    """``blockinfile``: a marked block of lines present or absent."""

    name = "blockinfile"
    pure_validate = True
    params = {**_LINE_FILE_ARGS,
              "block": Param("str", default="", aliases=("content",)),
              "marker": Param("str", default="# {mark} ANSIBLE MANAGED BLOCK"),
              "marker_begin": Param("str", default="BEGIN"),
              "marker_end": Param("str", default="END")}

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if out.get("insertafter") and out.get("insertbefore"):
            raise PlaybookError("blockinfile: insertbefore and insertafter are mutually exclusive",
                                field="insertbefore", fix="keep only one of them", **(where or {}))
        return out

    def outcome(self, args: dict, old: str, new: str, existed: bool) -> dict:
        if old == new and existed:
            return {"msg": ""}
        if not existed:
            return {"msg": "File created"}
        return {"msg": "Block removed" if args["state"] == "absent" or not args.get("block") else "Block inserted"}

    def edit(self, args: dict, text: str, exists: bool) -> str:
        return blockinfile_edit(text, args.get("block") or "", present=args["state"] == "present",
                                marker=args["marker"], marker_begin=args["marker_begin"],
                                marker_end=args["marker_end"], insertafter=args.get("insertafter"),
                                insertbefore=args.get("insertbefore"))
