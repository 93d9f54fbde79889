"""Checks that change nothing: ``assert`` and ``fail`` (stop, in plan and apply alike,
when a condition does not hold — the playbook's own preflight), ``stat`` (facts about a
path), ``wait_for`` (a port, a path or a regex, polled on the host)."""

from __future__ import annotations

import json
import re

from gfsdeploy.errors import PlaybookError, PreflightError
from gfsdeploy.modules.base import CHANGE, Change, HostInfo, Module, Param, TaskContext, TaskResult, q
from gfsdeploy.templating import is_unknown


class Assert(Module):
    name = "assert"
    read_only = True
    expressions = ("that",)
    params = {"that": Param("raw", required=True, help="a list of Jinja expressions"),
              "fail_msg": Param("str", aliases=("msg",)), "success_msg": Param("str"),
              "quiet": Param("bool", default=False)}

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        for item in args["that"]:
            if is_unknown(item["value"]):
                continue  # decided at apply time
            if not item["value"]:
                raise PreflightError(args.get("fail_msg") or f"assertion failed: {item['expr']}",
                                     host=host.name, fix="correct the inventory so the condition holds: "
                                                         + item["expr"])
        return []

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        self.plan(args, None, ctx.host)
        return TaskResult(msg="" if args["quiet"] else (args.get("success_msg") or ""))


class Fail(Module):
    """``fail``: stop this host with a message (in plan too, as ``--check`` does)."""

    name = "fail"
    read_only = True
    params = {"msg": Param("raw", default="Failed as requested from task")}

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        return []

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        msg = args["msg"]
        if is_unknown(msg):
            return TaskResult(register={"msg": msg})
        text = msg if isinstance(msg, str) else json.dumps(msg, default=str)
        return TaskResult(failed=True, msg=text, register={"msg": msg})


# -- stat ------------------------------------------------------------------------------------
#: one ``stat`` line: raw mode (hex), uid, gid, size, inode, device, links, atime, mtime, ctime,
#: blocks, block size, rdev major/minor (hex), owner and group names
_STAT_FORMAT = "%f|%u|%g|%s|%i|%d|%h|%.9X|%.9Y|%.9Z|%b|%o|%t|%T|%U|%G"


class Stat(Module):
    """``stat``: facts about a path, registered as Ansible's ``stat`` mapping. Read-only:
    it runs in plan too, so later tasks plan with the real facts."""

    name = "stat"
    read_only = True
    params = {
        "path": Param("path", required=True, aliases=("dest", "name")),
        "follow": Param("bool", default=False),
        "get_checksum": Param("bool", default=True),
        "checksum_algorithm": Param("str", default="sha1", aliases=("checksum", "checksum_algo"),
                                    choices=("md5", "sha1", "sha224", "sha256", "sha384", "sha512")),
        "get_mime": Param("bool", default=True, aliases=("mime", "mime_type", "mime-type")),
        "get_attributes": Param("bool", default=True, aliases=("attr", "attributes")),
        "get_selinux_context": Param("bool", default=False),
    }

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        p, flag = q(args["path"]), "-L " if args["follow"] else ""
        algo = args["checksum_algorithm"]
        lines = [f"p={p}",
                 f"if ! stat {flag}-c {q(_STAT_FORMAT)} -- \"$p\" 2>/dev/null; then echo __absent__; exit 0; fi",
                 'printf "access "; for t in r w x; do if [ -$t "$p" ]; then printf 1; else printf 0; fi; done; echo',
                 *([] if args["follow"] else [
                     'if [ -L "$p" ]; then printf "lnk_target %s\\n" "$(readlink -- "$p")"; '
                     'printf "lnk_source %s\\n" "$(readlink -f -- "$p")"; fi'])]
        if args["get_checksum"]:
            lines.append(f'if [ -f "$p" ] && [ -r "$p" ]; then printf "checksum "; {algo}sum < "$p" | cut -d" " -f1; fi')
        if args["get_mime"]:
            lines.append('if command -v file >/dev/null 2>&1; then printf "mime "; '
                         'file --mime-type --mime-encoding -- "$p" 2>/dev/null | sed "s/.*: //"; fi')
        if args["get_attributes"]:
            lines.append('if command -v lsattr >/dev/null 2>&1; then printf "attr "; lsattr -vd -- "$p" 2>/dev/null '
                         '|| echo; fi')
        return {"stat": "\n".join(lines)}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        return parse_stat(args, facts["stat"].stdout)

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        return []

    def report(self, args: dict, state, ctx: TaskContext) -> TaskResult:
        return TaskResult(register={"stat": state})

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        state = self.read(args, ctx.transport.read_many(self.probes(args, ctx.host)), ctx)
        return self.report(args, state, ctx)


_ATTR_NAMES = {"a": "append", "A": "noatime", "c": "compressed", "C": "nocow", "d": "nodump",
               "D": "dirsync", "e": "extents", "E": "encrypted", "F": "casefold", "i": "immutable",
               "I": "indexed", "j": "journalled", "N": "inline", "P": "projinherit", "s": "secure",
               "S": "sync", "t": "notail", "T": "topdir", "u": "undelete", "V": "verity", "x": "dax"}


def parse_stat(args: dict, text: str) -> dict:
    """Ansible's ``stat`` mapping from the probe's output."""
    lines = text.splitlines()
    if not lines or lines[0] == "__absent__":
        return {"exists": False}
    raw, uid, gid, size, ino, dev, nlink, atime, mtime, ctime, blocks, bsize, major, minor, owner, group = \
        lines[0].split("|", 15)
    mode = int(raw, 16)
    kind = mode & 0o170000
    out = {"exists": True, "path": args["path"], "mode": "%04o" % (mode & 0o7777),
           "isdir": kind == 0o040000, "ischr": kind == 0o020000, "isblk": kind == 0o060000,
           "isreg": kind == 0o100000, "isfifo": kind == 0o010000, "islnk": kind == 0o120000,
           "issock": kind == 0o140000, "uid": int(uid), "gid": int(gid), "size": int(size), "inode": int(ino),
           "dev": int(dev), "nlink": int(nlink), "atime": float(atime), "mtime": float(mtime),
           "ctime": float(ctime)}
    for name, bit in (("wusr", 0o200), ("rusr", 0o400), ("xusr", 0o100), ("wgrp", 0o020), ("rgrp", 0o040),
                      ("xgrp", 0o010), ("woth", 0o002), ("roth", 0o004), ("xoth", 0o001), ("isuid", 0o4000),
                      ("isgid", 0o2000)):
        out[name] = bool(mode & bit)
    out.update(blocks=int(blocks), block_size=int(bsize),
               device_type=(int(major, 16) << 8) | int(minor, 16) if out["ischr"] or out["isblk"] else 0)
    if owner != "UNKNOWN":
        out["pw_name"] = owner
    if group != "UNKNOWN":
        out["gr_name"] = group
    if args.get("get_mime"):
        out["mimetype"] = out["charset"] = "unknown"
    if args.get("get_attributes"):
        out.update(version=None, attributes=[], attr_flags="")
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key == "access":
            out["readable"], out["writeable"], out["executable"] = (c == "1" for c in value[:3])
        elif key in ("lnk_target", "lnk_source"):
            out[key] = value
        elif key == "checksum" and value:
            out["checksum"] = value
        elif key == "mime" and ";" in value:
            mimetype, charset = value.split(";", 1)
            out["mimetype"], out["charset"] = mimetype.strip(), charset.split("=", 1)[-1].strip()
        elif key == "attr":
            words = value.split()
            if len(words) >= 2 and words[0].isdigit():
                flags = words[1].replace("-", "")
                out.update(version=words[0], attr_flags=flags,
                           attributes=[_ATTR_NAMES[f] for f in flags if f in _ATTR_NAMES])
    if out.get("readable") is not None and not out["readable"]:
        out.pop("checksum", None)
    return out


# -- wait_for ----------------------------------------------------------------------------------
class WaitFor(Module):
    """``wait_for``: until a port opens (or closes, or drains) or a path appears (or goes,
    or holds a regex). Plan says whether it would wait; apply polls on the host until
    ``timeout`` (Ansible's results: ``elapsed``, ``state``, ``match_groups`` …)."""

    name = "wait_for"
    params = {
        "host": Param("str", default="127.0.0.1"),
        "port": Param("int"),
        "path": Param("path"),
        "search_regex": Param("str"),
        "state": Param("str", default="started", choices=("started", "stopped", "present", "absent", "drained")),
        "timeout": Param("int", default=300),
        "connect_timeout": Param("int", default=5),
        "delay": Param("int", default=0),
        "sleep": Param("int", default=1),
        "msg": Param("str"),
        "active_connection_states": Param("list"),
        "exclude_hosts": Param("list"),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        where = where or {}
        if out.get("port") is not None and out.get("path"):
            raise PlaybookError("wait_for: port and path parameter can not both be passed", field="path",
                                fix="wait for one thing per task", **where)
        if out.get("path") and out["state"] in ("stopped", "drained"):
            raise PlaybookError(f"wait_for: state={out['state']} should only be used for checking a port",
                                field="state", fix="use state: absent for a path", **where)
        if out.get("search_regex"):
            try:
                re.compile(out["search_regex"])
            except re.error as err:
                raise PlaybookError(f"wait_for: search_regex is not a valid regular expression: {err}",
                                    field="search_regex", fix="fix the regular expression", **where) from None
        if out["state"] == "drained" or out.get("exclude_hosts"):
            raise PlaybookError("wait_for: state=drained is not supported by gfsdeploy", field="state",
                                fix="wait for state: stopped instead", **where)
        return out

    def _check(self, args: dict) -> str:
        """A shell test: exit 0 when the condition holds now; prints the match if any."""
        if args.get("path"):
            p = q(args["path"])
            if args["state"] == "absent":
                return f"[ ! -e {p} ]"
            if args.get("search_regex"):
                return f"[ -r {p} ] && python3 -c {q(_MATCH_PY)} {q(args['search_regex'])} < {p}"
            return f"[ -e {p} ]"
        if args.get("port") is None:
            return "true"
        py = _PORT_PY % {"host": repr(args["host"]), "port": int(args["port"]),
                         "timeout": int(args["connect_timeout"]), "regex": repr(args.get("search_regex"))}
        check = f"python3 -c {q(py)}"
        return f"! {check}" if args["state"] == "stopped" else check

    def _path_info(self, args: dict) -> str:
        """Ansible adds the path's attributes to the result when it exists."""
        if not args.get("path"):
            return ""
        p = q(args["path"])
        return f"if [ -e {p} ]; then stat -c '__info__ %a|%U|%u|%G|%g|%s|%F' -- {p}; fi"

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {"now": f"if {self._check(args)}; then echo __holds__; fi\n{self._path_info(args)}"}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        text = facts["now"].stdout
        info = re.search(r"^__info__ (.*)$", text, re.M)
        match = re.sub(r"^__info__ .*$", "", text, flags=re.M).replace("__holds__", "").strip()
        return {"holds": "__holds__" in text, "match": match, "info": info.group(1) if info else ""}

    def what(self, args: dict) -> str:
        if args.get("path"):
            return f"{args['path']} {args['state']}" + (f" matching {args['search_regex']!r}"
                                                          if args.get("search_regex") else "")
        if args.get("port") is not None:
            return f"{args['host']}:{args['port']} {args['state']}"
        return f"{args['timeout']} seconds"

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        if state["holds"] and not args["delay"] and (args.get("port") is not None or args.get("path")):
            return []
        timeout = args["timeout"]
        waits = args.get("port") is not None or args.get("path")
        fail = args.get("msg") or self.timeout_msg(args)
        if waits:
            script = (f"sleep {int(args['delay'])}\nstart=$(date +%s)\n"
                      f"while :; do if {self._check(args)}; then echo; echo \"__elapsed__ $(( $(date +%s) - start ))\"; "
                      f"{self._path_info(args) or 'true'}; exit 0; fi\n"
                      f"  if [ $(( $(date +%s) - start )) -ge {int(timeout)} ]; then echo {q(fail)} >&2; "
                      f"echo \"__elapsed__ $(( $(date +%s) - start ))\"; exit 1; fi\n"
                      f"  sleep {max(1, int(args['sleep']))}\ndone")
        else:
            script = f"sleep {int(timeout)}; echo \"__elapsed__ {int(timeout)}\""
        return [Change(CHANGE, f"wait for {self.what(args)}", diff=f"up to {timeout}s" if waits else "",
                       script=script)]

    def timeout_msg(self, args: dict) -> str:
        if args.get("path"):
            if args["state"] == "absent":
                return f"Timeout when waiting for {args['path']} to be absent."
            if args.get("search_regex"):
                return f"Timeout when waiting for search string {args['search_regex']} in {args['path']}"
            return f"Timeout when waiting for file {args['path']}"
        if args["state"] == "stopped":
            return f"Timeout when waiting for {args['host']}:{args['port']} to stop."
        if args.get("search_regex"):
            return f"Timeout when waiting for search string {args['search_regex']} in {args['host']}:{args['port']}"
        return f"Timeout when waiting for {args['host']}:{args['port']}"

    def result(self, args: dict, elapsed: int, match: str, info: str = "") -> dict:
        groups, named = [], {}
        if match and args.get("path"):  # Ansible fills the match groups for paths only
            try:
                found = json.loads(match)
                groups, named = found.get("groups", []), found.get("named", {})
            except ValueError:
                pass
        out = {"state": args["state"], "port": args.get("port"), "search_regex": args.get("search_regex"),
               "match_groups": groups, "match_groupdict": named, "path": args.get("path"), "elapsed": elapsed}
        if info:
            mode, owner, uid, group, gid, size, kind = info.split("|", 6)
            out.update(mode="0%03o" % int(mode, 8), owner=owner, uid=int(uid), group=group, gid=int(gid),
                       size=int(size), state="directory" if kind == "directory" else
                       "link" if kind == "symbolic link" else "file")
        return out

    def unchanged(self, args: dict, state) -> TaskResult:
        state = state or {}
        return TaskResult(register=self.result(args, 0, state.get("match", ""), state.get("info", "")))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        script = changes[0].script
        done = ctx.exec(script, timeout=args["timeout"] + args["delay"] + 60)
        m = re.search(r"__elapsed__ (\d+)", done.stdout)
        elapsed = int(m.group(1)) if m else 0
        match = done.stdout[:m.start()].strip() if m else ""
        info = re.search(r"^__info__ (.*)$", done.stdout, re.M)
        if done.rc != 0:
            msg = args.get("msg") or self.timeout_msg(args)
            return TaskResult(failed=True, msg=msg, register={"msg": msg, "elapsed": elapsed})
        return TaskResult(changed=False, register=self.result(args, elapsed, match, info.group(1) if info else ""))


#: prints the first match of argv[1] in stdin as JSON groups (exit 1 if none)
_MATCH_PY = ("import json,re,sys\nm=re.search(sys.argv[1],sys.stdin.read(),re.M)\n"
             "sys.exit(1) if not m else print(json.dumps({'groups':list(m.groups()),'named':m.groupdict()}))")
_PORT_PY = """import json, re, socket, sys
try:
    s = socket.create_connection((%(host)s, %(port)d), %(timeout)d)
except OSError:
    sys.exit(1)
regex = %(regex)s
if regex:
    data = b""
    s.settimeout(%(timeout)d)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            m = re.search(regex, data.decode("utf-8", "replace"), re.M)
            if m:
                print(json.dumps({"groups": list(m.groups()), "named": m.groupdict()}))
                sys.exit(0)
    except OSError:
        pass
    sys.exit(1)
"""
