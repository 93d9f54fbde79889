"""Package repositories: ``apt_repository`` (one-line sources in sources.list[.d]) and
``yum_repository`` (an INI section in /etc/yum.repos.d/FILE.repo).

Both plan the exact file contents Ansible's modules write (docs/MODULES.md has the
rules): the diff is shown, the write is atomic, and apt's cache is refreshed only when
a source really changed.
"""

from __future__ import annotations

import base64
import configparser
import io
import posixpath
import re

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import CHANGE, DESTROY, WARN, Change, HostInfo, Module, Param, TaskContext, TaskResult, q
from gfsdeploy.modules.files import FileState, parse_probe, plan_content, stat_probe

# -- apt_repository ---------------------------------------------------------------------------
SOURCE_TYPES = ("deb", "deb-src")
SOURCES = "/etc/apt/sources.list"
SOURCES_D = "/etc/apt/sources.list.d"
APT_GET = "DEBIAN_FRONTEND=noninteractive apt-get -q -y"


def parse_source_line(line: str) -> tuple[bool, bool, str, str]:
    """(valid, enabled, source, comment) the way apt_repository reads a line."""
    line = line.strip()
    enabled = True
    if line.startswith("#"):
        enabled, line = False, line[1:]
    comment = ""
    i = line.find("#")
    if i > 0:
        comment, line = line[i + 1:].strip(), line[:i]
    source = line.strip()
    valid = False
    if source:
        chunks = source.split()
        if chunks[0] in SOURCE_TYPES:
            valid, source = True, " ".join(chunks)
    return valid, enabled, source, comment


def render_sources(entries: list) -> str:
    out = []
    for _valid, enabled, source, comment in entries:
        out.append(("" if enabled else "# ") + source + (f" # {comment}" if comment else "") + "\n")
    return "".join(out)


def suggest_filename(source: str, filename: str | None) -> str:
    """sources.list.d/NAME.list: ``filename``, or the repository's host and path with every
    run of non-alphanumerics turned into ``_`` (options, scheme and user:password dropped)."""
    if filename:
        return f"{filename}.list"
    line = re.sub(r"\[[^\]]+\]", "", source)
    line = re.sub(r"\w+://", "", line)
    parts = [p for p in line.split() if p not in SOURCE_TYPES]
    first = parts[0].split("@", 1)[-1] if parts else ""
    return "_".join(re.sub("[^a-zA-Z0-9]", " ", first).split()) + ".list"


class AptRepository(Module):
    """``apt_repository``: a one-line APT source present (in its own file under
    sources.list.d unless it is already listed anywhere) or absent (from every file)."""

    name = "apt_repository"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "repo": Param("str", required=True),
        "state": Param("str", default="present", choices=("present", "absent")),
        "filename": Param("str"),
        "mode": Param("raw"),
        "update_cache": Param("bool", default=True, aliases=("update-cache",)),
        "update_cache_retries": Param("int", default=5),
        "update_cache_retry_max_delay": Param("int", default=12),
        "validate_certs": Param("bool", default=True),
        "install_python_apt": Param("bool", default=True),
        "codename": Param("str"),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        valid, enabled, _, _ = parse_source_line(out["repo"])
        if out["repo"].startswith("ppa:"):
            raise PlaybookError("apt_repository: ppa: sources are not supported by gfsdeploy", field="repo",
                                fix="write the deb line of the PPA (deb http://ppa.launchpad.net/OWNER/NAME/ubuntu "
                                    "CODENAME main) and its key", **(where or {}))
        if not valid or not enabled:
            raise PlaybookError(f"apt_repository: invalid repository string: {out['repo']}", field="repo",
                                fix="write `deb [options] URL SUITE [COMPONENT…]`", **(where or {}))
        if out.get("filename") and "/" in out["filename"]:
            raise PlaybookError("apt_repository: filename is a name, not a path", field="filename",
                                fix="e.g. filename: myrepo (gives sources.list.d/myrepo.list)", **(where or {}))
        return out

    def source(self, args: dict) -> str:
        """The repo line as apt_repository normalises it (single spaces, no comment)."""
        return parse_source_line(args["repo"])[2]

    def target(self, args: dict) -> str:
        return posixpath.join(SOURCES_D, suggest_filename(self.source(args), args.get("filename")))

    def resources(self, args: dict) -> set[str]:
        return {"file:" + SOURCES, "file:" + SOURCES_D, "apt-cache"}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {"sources": (f"for f in {SOURCES} {SOURCES_D}/*.list; do if [ -f \"$f\" ]; then "
                            "printf '=== %s %s\\n' \"$(stat -L -c %a -- \"$f\")\" \"$f\"; base64 < \"$f\"; fi; done"),
                "target": stat_probe(self.target(args), content=False)}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        files: dict = {}
        current = None
        for line in facts["sources"].stdout.splitlines():
            if line.startswith("=== "):
                mode, _, current = line[4:].partition(" ")
                files[current] = {"mode": mode, "b64": ""}
            elif current:
                files[current]["b64"] += line
        out = {path: {"mode": f["mode"], "content": base64.b64decode(f["b64"]).decode("utf-8", "surrogateescape")}
               for path, f in files.items()}
        return {"files": out}

    def edit(self, args: dict, files: dict) -> dict:
        """The new content of every sources file (None: the file is removed)."""
        parsed = {path: [parse_source_line(line) for line in f["content"].splitlines()]
                  for path, f in files.items()}
        source = self.source(args)
        after = {path: list(entries) for path, entries in parsed.items()}
        if args["state"] == "present":
            found = False
            for path, entries in after.items():
                for i, (valid, enabled, src, comment) in enumerate(entries):
                    if src == source:
                        entries[i] = (valid, True, src, comment)
                        found = True
            if not found:
                after.setdefault(self.target(args), []).append((True, True, source, ""))
        else:
            for path in after:
                after[path] = [e for e in after[path] if not (e[2] == source and e[1])]
        out = {}
        for path, entries in after.items():
            before = render_sources(parsed[path]) if path in parsed else None
            new = render_sources(entries) if entries else None
            if new != before and not (before is None and new is None):
                out[path] = new
        return out

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        files = state["files"]
        edits = self.edit(args, files)
        changes: list[Change] = []
        for path, new in sorted(edits.items()):
            old = files.get(path)
            if new is None:
                changes.append(Change(DESTROY, f"file {path}", script=f"rm -f -- {q(path)}"))
                continue
            st = FileState(path=path, kind="file" if old else "absent", mode=("%04o" % int(old["mode"], 8))
                           if old else "", content=old["content"].encode("utf-8", "surrogateescape") if old else None,
                           size=len(old["content"]) if old else 0)
            mode = args.get("mode") if not old else None
            if mode is None and not old:
                mode = "0644"
            changes += [c for c in plan_content(st, new.encode("utf-8", "surrogateescape"), {"mode": mode},
                                                mkdir=True) if c.action != WARN]
        if changes and args["update_cache"]:
            changes.append(Change(CHANGE, "apt cache (update)", script=f"{APT_GET} update"))
        return changes

    def registered(self, args: dict, added=(), removed=()) -> dict:
        return {"repo": args["repo"], "state": args["state"], "sources_added": sorted(added),
                "sources_removed": sorted(removed)}

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register=self.registered(args))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        added = [c.resource[5:] for c in changes if c.action == "+" and c.resource.startswith("file ")]
        removed = [c.resource[5:] for c in changes if c.action == "-" and c.resource.startswith("file ")]
        result = super().apply(args, changes, ctx)
        return TaskResult(changed=result.changed, register=self.registered(args, added, removed))


# -- yum_repository -------------------------------------------------------------------------------
_YUM_STR = ("bandwidth", "cost", "deltarpm_metadata_percentage", "deltarpm_percentage", "enablegroups",
            "failovermethod", "gpgcakey", "http_caching", "include", "ip_resolve", "keepalive", "keepcache",
            "metadata_expire", "metadata_expire_filter", "metalink", "mirrorlist", "mirrorlist_expire",
            "password", "priority", "proxy", "proxy_password", "proxy_username", "retries", "s3_enabled",
            "sslcacert", "sslclientcert", "sslclientkey", "throttle", "timeout", "ui_repoid_vars", "username")
_YUM_BOOL = ("enabled", "gpgcheck", "module_hotfixes", "protect", "repo_gpgcheck", "skip_if_unavailable",
             "ssl_check_cert_permissions", "sslverify", "countme", "async")


def _ini(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def ini_dump(parser: configparser.RawConfigParser) -> str:
    """Sections and keys sorted: what decides whether the repo file changed."""
    out = ""
    for section in sorted(parser.sections()):
        out += f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(parser.items(section))) + "\n"
    return out


def ini_text(parser: configparser.RawConfigParser) -> str:
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


class YumRepository(Module):
    """``yum_repository``: one ``[name]`` section of a .repo file (keys sorted, booleans
    as 1/0, lists one per line); the file goes when its last section does."""

    name = "yum_repository"
    batch_apply = True  # apply: one script, then only its result (gfsdeploy/batch.py)
    params = {
        "name": Param("str", required=True),
        "description": Param("str"),
        "baseurl": Param("list"),
        "gpgkey": Param("list"),
        "exclude": Param("list"),
        "includepkgs": Param("list"),
        "file": Param("str"),
        "reposdir": Param("path", default="/etc/yum.repos.d"),
        "state": Param("str", default="present", choices=("present", "absent")),
        "mode": Param("raw"),
        "owner": Param("str"),
        "group": Param("str"),
        **{k: Param("str", sensitive=k in ("password", "proxy_password")) for k in _YUM_STR},
        **{k: Param("bool") for k in _YUM_BOOL},
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if out["state"] == "present":
            if not any(out.get(k) for k in ("baseurl", "mirrorlist", "metalink")):
                raise PlaybookError("yum_repository: state is present but any of the following are missing: "
                                    "baseurl, mirrorlist, metalink", field="baseurl", fix="add `baseurl:`",
                                    **(where or {}))
            if not out.get("description"):
                raise PlaybookError("yum_repository: state is present but all of the following are missing: "
                                    "description", field="description", fix="add `description:`", **(where or {}))
        if not re.fullmatch(r"[^\s\[\]]+", out["name"]):
            raise PlaybookError(f"yum_repository: {out['name']!r} cannot be a section name", field="name",
                                fix="a repo id without spaces or brackets", **(where or {}))
        return out

    def path(self, args: dict) -> str:
        return posixpath.join(args["reposdir"], f"{args.get('file') or args['name']}.repo")

    def resources(self, args: dict) -> set[str]:
        return {"file:" + self.path(args)}

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {"file": stat_probe(self.path(args)),
                "dir": f"if [ -d {q(args['reposdir'])} ]; then echo yes; fi"}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        return {"file": parse_probe(self.path(args), facts["file"], ctx.host.name, ctx.task_name),
                "dir": facts["dir"].stdout.strip() == "yes"}

    def values(self, args: dict) -> dict:
        out = {}
        for key in (*_YUM_STR, *_YUM_BOOL, "baseurl", "gpgkey", "exclude", "includepkgs"):
            value = args.get(key)
            if value is None:
                continue
            if isinstance(value, bool):
                value = str(int(value))
            elif key in ("baseurl", "gpgkey"):
                value = "\n".join(str(v) for v in value)
            elif key in ("exclude", "includepkgs"):
                value = " ".join(str(v) for v in value)
            out[key] = str(value)
        out["name"] = args.get("description")
        return {k: v for k, v in out.items() if v is not None}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        st = state["file"] if isinstance(state["file"], FileState) else FileState.from_dict(state["file"])
        if not state.get("dir", True):
            raise ModuleError(f"Repo directory '{args['reposdir']}' does not exist.", host=host.name,
                              fix="create it first, or set reposdir")
        old = (st.content or b"").decode("utf-8", "surrogateescape")
        try:
            parser = _ini(old)
        except configparser.Error as err:
            raise ModuleError(f"{st.path} is not a valid repo file: {err}", host=host.name,
                              fix="repair or remove the file") from None
        before = ini_dump(parser)
        parser.remove_section(args["name"])
        if args["state"] == "present":
            parser.add_section(args["name"])
            for key, value in sorted(self.values(args).items()):
                parser.set(args["name"], key, value)
        attrs = {k: args.get(k) for k in ("mode", "owner", "group")}
        if ini_dump(parser) == before:
            if st.exists:
                return [c for c in plan_content(st, st.content or b"", attrs) if c.action != WARN]
            return []
        if not parser.sections():
            return [Change(DESTROY, f"file {st.path}", script=f"rm -f -- {q(st.path)}")]
        return [c for c in plan_content(st, ini_text(parser).encode(), attrs) if c.action != WARN]

    def registered(self, args: dict) -> dict:
        return {"repo": args["name"], "state": args["state"]}

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register=self.registered(args))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        result = super().apply(args, changes, ctx)
        return TaskResult(changed=result.changed, register=self.registered(args))
