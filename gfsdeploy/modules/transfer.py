"""Moving bytes: ``get_url`` and ``uri`` (HTTP from the host), ``unarchive`` (an archive
unpacked on the host), ``fetch`` (a host's file copied to the controller).

HTTP runs on the target, as with Ansible, through a small Python helper
(:data:`HTTP_PY`, python3 on the host — Ansible needs it too). Plans stay read-only:
``get_url`` compares checksums (and, for an existing file without one, makes a
conditional request whose body is only hashed), ``uri`` shows ``~`` (it runs at apply,
like ``command``), ``unarchive`` compares the archive's members with what is on disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import tarfile
import tempfile
import zipfile

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import (ADD, CHANGE, UNKNOWN, WARN, Change, HostInfo, Module, Param, TaskContext,
                                    TaskResult, q)
from gfsdeploy.modules.files import FileState, attr_diffs, attrs_script, parse_probe, stat_probe, want_mode
from gfsdeploy.transport.base import Result

#: the HTTP helper run on the host: a JSON request on argv[1] → a JSON response on stdout
HTTP_PY = r'''
import base64, hashlib, json, os, ssl, sys, tempfile, time, urllib.error, urllib.request
req = json.loads(base64.b64decode(sys.argv[1]))
ctx = None if req.get("validate_certs", True) else ssl._create_unverified_context()
headers = dict(req.get("headers") or {})
if req.get("user") is not None:
    token = base64.b64encode(("%s:%s" % (req["user"], req.get("password") or "")).encode()).decode()
    headers["Authorization"] = "Basic " + token
if req.get("ims_path") and os.path.exists(req["ims_path"]):
    headers["If-Modified-Since"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                 time.gmtime(os.path.getmtime(req["ims_path"])))
body = base64.b64decode(req["body"]) if req.get("body") is not None else None

class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return super().redirect_request(*a, **k) if req.get("follow", True) else None

opener = urllib.request.build_opener(Keep, urllib.request.HTTPSHandler(context=ctx))
r = urllib.request.Request(req["url"], data=body, headers=headers, method=req.get("method", "GET"))
out = {"url": req["url"], "status": -1}
start = time.time()
try:
    resp = opener.open(r, timeout=req.get("timeout", 10))
except urllib.error.HTTPError as err:
    resp = err
except Exception as err:
    out["msg"] = "Request failed: %s" % (getattr(err, "reason", None) or err)
    out["elapsed"] = int(time.time() - start)
    print(json.dumps(out)); sys.exit(0)
out["status"] = resp.status if hasattr(resp, "status") else resp.code
out["url"] = resp.geturl() or req["url"]
hdrs = {k.lower(): v for k, v in resp.headers.items()}
out["headers"] = hdrs
length = hdrs.get("content-length")
out["msg"] = ("OK (%s bytes)" % (length if length is not None else "unknown")) if out["status"] < 400 \
    else "HTTP Error %s: %s" % (out["status"], getattr(resp, "reason", ""))
if out["status"] == 304:
    out["msg"] = "HTTP Error 304: Not Modified"
sha1, md5, algo = hashlib.sha1(), hashlib.md5(), hashlib.new(req.get("algorithm") or "sha1")
sink = None
if req.get("save_in") and out["status"] < 300:
    fd, out["tmp"] = tempfile.mkstemp(prefix=".gfsdeploy.", dir=req["save_in"])
    sink = os.fdopen(fd, "wb")
keep = b"" if req.get("content") else None
size = 0
try:
    while True:
        chunk = resp.read(65536)
        if not chunk:
            break
        size += len(chunk)
        sha1.update(chunk); md5.update(chunk); algo.update(chunk)
        if sink: sink.write(chunk)
        if keep is not None: keep += chunk
finally:
    if sink: sink.close()
out.update(sha1=sha1.hexdigest(), md5=md5.hexdigest(), digest=algo.hexdigest(), size=size,
           elapsed=int(time.time() - start))
if keep is not None:
    out["content_b64"] = base64.b64encode(keep).decode()
print(json.dumps(out))
'''


def http_line(request: dict) -> str:
    """The shell line that runs the helper for ``request`` (argv, no interpolation)."""
    encoded = base64.b64encode(json.dumps(request).encode()).decode()
    return f"python3 -c {q(HTTP_PY)} {q(encoded)}"


def parse_http(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ModuleError(f"the HTTP helper gave no answer: {text.strip()[-300:] or '(nothing)'}",
                      fix="the host needs python3 (as for Ansible's uri/get_url)")


def url_filename(url: str) -> str:
    name = posixpath.basename(url.split("?", 1)[0].rstrip("/"))
    return name or "index.html"


# -- get_url ---------------------------------------------------------------------------------------
class GetUrl(Module):
    """``get_url``: download ``url`` to ``dest`` on the host (atomic; checksum verified)."""

    name = "get_url"
    cheap_reads = False
    params = {
        "url": Param("str", required=True),
        "dest": Param("path", required=True),
        "checksum": Param("str", default=""),
        "force": Param("bool", default=False, aliases=("thirsty",)),
        "backup": Param("bool", default=False),
        "timeout": Param("int", default=10),
        "headers": Param("dict"),
        "url_username": Param("str", aliases=("username",)),
        "url_password": Param("str", aliases=("password",), sensitive=True),
        "force_basic_auth": Param("bool", default=False),
        "validate_certs": Param("bool", default=True),
        "use_proxy": Param("bool", default=True),
        "tmp_dest": Param("path"),
        "mode": Param("raw"),
        "owner": Param("str"),
        "group": Param("str"),
        "decompress": Param("bool", default=True),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if out["checksum"]:
            algo, _, digest = out["checksum"].partition(":")
            if not digest or algo not in hashlib.algorithms_guaranteed:
                raise PlaybookError("get_url: The checksum parameter has to be in format <algorithm>:<checksum>",
                                    field="checksum", fix="e.g. checksum: sha256:0123…", **(where or {}))
            if digest.startswith(("http://", "https://", "file://")):
                raise PlaybookError("get_url: a checksum URL is not supported by gfsdeploy", field="checksum",
                                    fix="give the digest itself (sha256:…)", **(where or {}))
        if not out["url"].startswith(("http://", "https://")):
            raise PlaybookError(f"get_url: only http(s) URLs are supported, got {out['url']!r}", field="url",
                                fix="use an http:// or https:// URL", **(where or {}))
        return out

    def algo(self, args: dict) -> tuple[str, str]:
        if not args["checksum"]:
            return "", ""
        algo, _, digest = args["checksum"].partition(":")
        return algo, digest.lower()

    def request(self, args: dict, **extra) -> dict:
        req = {"url": args["url"], "timeout": args["timeout"], "headers": args.get("headers") or {},
               "validate_certs": args["validate_certs"], **extra}
        if args.get("url_username") is not None:
            req.update(user=args["url_username"], password=args.get("url_password"))
        return req

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        dest = q(args["dest"])
        algo, _ = self.algo(args)
        lines = [stat_probe(args["dest"], content=False),
                 f"if [ -f {dest} ]; then printf 'sha1 '; sha1sum < {dest} | cut -d' ' -f1; "
                 f"printf 'mtime '; stat -c %Y -- {dest}; fi"]
        if algo:
            lines.append(f"if [ -f {dest} ]; then printf 'digest '; {algo}sum < {dest} | cut -d' ' -f1; fi")
        probes = {"dest": "\n".join(lines)}
        if not algo or args["force"]:
            # an existing file: is the server's copy different? (a conditional GET, only hashed)
            ims = {} if args["force"] else {"ims_path": args["dest"]}
            probes["remote"] = f"if [ -f {dest} ]; then {http_line(self.request(args, **ims))}; fi"
        return probes

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        text = facts["dest"].stdout
        st = parse_probe(args["dest"], Result(0, text, ""), ctx.host.name, ctx.task_name)
        values = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith(("sha1 ", "digest ",
                                                                                            "mtime ")))
        remote = None
        if "remote" in facts and facts["remote"].stdout.strip():
            remote = parse_http(facts["remote"].stdout)
        return {"dest": st, "sha1": values.get("sha1", "").strip(), "digest": values.get("digest", "").strip(),
                "remote": remote}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        st = state["dest"] if isinstance(state["dest"], FileState) else FileState.from_dict(state["dest"])
        if st.kind == "directory":
            raise ModuleError(f"get_url: dest {st.path} is a directory; gfsdeploy needs the file name",
                              host=host.name, fix=f"dest: {posixpath.join(st.path, url_filename(args['url']))}")
        algo, digest = self.algo(args)
        current = int(st.mode, 8) if st.exists else None
        mode = want_mode(args.get("mode"), current, False)
        attrs = attr_diffs(st, mode, args.get("owner"), args.get("group"))
        download = self.download_script(args, mode)
        if not st.exists:
            return [Change(ADD, f"file {st.path}", diff="\n".join([f"download: {args['url']}", *attrs]),
                           script=download, data={"checksum_dest": None})]
        if algo and not args["force"]:
            if state.get("digest") == digest:
                return [Change(CHANGE, f"file {st.path}", diff="\n".join(attrs),
                               script=attrs_script(st.path, mode, args.get("owner"), args.get("group")))] \
                    if attrs else []
            return [Change(CHANGE, f"file {st.path}", diff=f"checksum: {state.get('digest')} -> {digest}\n"
                           f"download: {args['url']}", script=download, data={"checksum_dest": state.get("sha1")})]
        remote = state.get("remote") or {}
        status = remote.get("status")
        if status == 304 or (status == 200 and remote.get("sha1") == state.get("sha1")):
            return [Change(CHANGE, f"file {st.path}", diff="\n".join(attrs),
                           script=attrs_script(st.path, mode, args.get("owner"), args.get("group")))] \
                if attrs else []
        if status is None or status < 0 or status >= 400:
            return [Change(CHANGE, f"file {st.path}", diff=f"{UNKNOWN}: {remote.get('msg') or 'no answer'}",
                           script=download, data={"checksum_dest": state.get("sha1")})]
        return [Change(CHANGE, f"file {st.path}", diff=f"download: {args['url']} (content differs)",
                       script=download, data={"checksum_dest": state.get("sha1")})]

    def download_script(self, args: dict, mode: int | None) -> str:
        dest = q(args["dest"])
        algo, digest = self.algo(args)
        req = self.request(args, save_in=posixpath.dirname(args["dest"]) or ".", algorithm=algo or "sha1")
        lines = [f"d=$(dirname -- {dest})",
                 "[ -d \"$d\" ] || { echo \"Destination $d does not exist\" >&2; exit 1; }",
                 "tmp=''; trap 'rm -f \"$tmp\"' EXIT",
                 f"out=$({http_line(req)})",
                 "printf '%s\\n' \"$out\"",
                 "tmp=$(printf '%s' \"$out\" | python3 -c 'import json,sys; print(json.load(sys.stdin).get(\"tmp\",\"\"))')",
                 "[ -n \"$tmp\" ] || { echo 'Request failed' >&2; exit 1; }"]
        if digest:
            lines.append(f"got=$({algo}sum < \"$tmp\" | cut -d' ' -f1); [ \"$got\" = {q(digest)} ] || "
                         f"{{ echo \"The checksum for $tmp did not match {digest}; it was $got.\" >&2; exit 1; }}")
        lines.append(f"if [ -f {dest} ] && cmp -s \"$tmp\" {dest}; then echo __same__; else")
        if args["backup"]:
            lines.append(f"  if [ -f {dest} ]; then cp -p -- {dest} {dest}.$$.$(date +%Y-%m-%d@%H:%M:%S)~; fi")
        lines += [f"  if [ -e {dest} ]; then chmod \"$(stat -c %a -- {dest})\" \"$tmp\"; "
                  f"else chmod \"$(printf %o $((0666 & ~0$(umask))))\" \"$tmp\"; fi",
                  f"  mv -f -- \"$tmp\" {dest}", "fi"]
        attrs = attrs_script(args["dest"], mode, args.get("owner"), args.get("group"))
        if attrs:
            lines.append(attrs)
        lines.append(f"echo __after__; {stat_probe(args['dest'], content=False)}")
        lines.append(f"printf 'md5 '; md5sum < {dest} | cut -d' ' -f1")
        return "\n".join(lines)

    def path_info(self, st: FileState) -> dict:
        if not st.exists:
            return {}
        return {"uid": int(st.uid) if st.uid.isdigit() else st.uid, "gid": int(st.gid) if st.gid.isdigit() else st.gid,
                "owner": st.owner, "group": st.group, "mode": "0%03o" % int(st.mode, 8),
                "state": "directory" if st.kind == "directory" else "file", "size": st.size}

    def unchanged(self, args: dict, state) -> TaskResult:
        st = state["dest"] if isinstance(state["dest"], FileState) else FileState.from_dict(state["dest"])
        algo, _ = self.algo(args)
        out = {"url": args["url"], "dest": args["dest"]}
        remote = state.get("remote") or {}
        if algo and not args["force"]:
            out.update(checksum_src=None, checksum_dest=None, msg="file already exists")
        elif remote.get("status") == 304:
            out.update(msg="HTTP Error 304: Not Modified", status_code=304, elapsed=remote.get("elapsed", 0))
        else:
            out.update(msg=remote.get("msg", ""), status_code=remote.get("status"), elapsed=remote.get("elapsed", 0),
                       checksum_src=remote.get("sha1"), checksum_dest=state.get("sha1"), src=None, md5sum=remote.get("md5"))
        out.update(self.path_info(st))
        return TaskResult(register=out)

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        script = "\n".join(c.script for c in changes if c.script and c.action != WARN)
        if "__after__" not in script:  # attributes only: read the file back all the same
            script += (f"\necho __after__; {stat_probe(args['dest'], content=False)}\n"
                       f"printf 'md5 '; md5sum < {q(args['dest'])} | cut -d' ' -f1")
        done = ctx.exec("set -e\n" + script)
        before, _, after = done.stdout.partition("__after__\n")
        info = {}
        for line in before.splitlines():
            if line.startswith("{"):
                info = json.loads(line)
        if done.rc != 0:
            msg = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.rc}"
            register = {"msg": msg, "url": args["url"], "dest": args["dest"], "elapsed": info.get("elapsed", 0)}
            if info and msg == "Request failed":  # Ansible's shape of an HTTP error
                register.update(status_code=info.get("status"), response=info.get("msg", ""))
            return TaskResult(failed=True, msg=msg, register=register)
        st = parse_probe(args["dest"], Result(0, after, ""), ctx.host.name, ctx.task_name)
        md5 = next((line[4:].strip() for line in after.splitlines() if line.startswith("md5 ")), None)
        downloaded = bool(info)
        out = {"url": args["url"], "dest": args["dest"], "elapsed": info.get("elapsed", 0),
               "src": info.get("tmp"), "md5sum": md5}
        if downloaded:
            out.update(checksum_src=info.get("sha1"), msg=info.get("msg", ""), status_code=info.get("status"))
            old = next((c.data["checksum_dest"] for c in changes if "checksum_dest" in c.data), None)
            if old or any(c.action == ADD for c in changes):
                out["checksum_dest"] = old
        out.update(self.path_info(st))
        changed = "__same__" not in before or any(c.script and "download" not in c.diff for c in changes)
        return TaskResult(changed=changed, register=out)


# -- uri ---------------------------------------------------------------------------------------------
class Uri(Module):
    """``uri``: an HTTP request from the host; the response registered as Ansible does
    (status, headers as keys, ``content`` and ``json``). Plan: ``~`` (it runs at apply)."""

    name = "uri"
    cheap_reads = False
    params = {
        "url": Param("str", required=True),
        "method": Param("str", default="GET"),
        "body": Param("raw"),
        "body_format": Param("str", default="raw", choices=("raw", "json", "form-urlencoded")),
        "headers": Param("dict"),
        "status_code": Param("list", default=[200]),
        "return_content": Param("bool", default=False),
        "timeout": Param("int", default=30),
        "follow_redirects": Param("str", default="safe"),
        "url_username": Param("str", aliases=("user",)),
        "url_password": Param("str", aliases=("password",), sensitive=True),
        "force_basic_auth": Param("bool", default=False),
        "validate_certs": Param("bool", default=True),
        "creates": Param("path"),
        "removes": Param("path"),
        "dest": Param("path"),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        try:
            out["status_code"] = [int(c) for c in out["status_code"]]
        except (TypeError, ValueError):
            raise PlaybookError("uri: status_code must be a list of numbers", field="status_code",
                                fix="e.g. status_code: [200, 201]", **(where or {})) from None
        if out.get("dest"):
            raise PlaybookError("uri: dest is not supported by gfsdeploy", field="dest",
                                fix="use get_url to save a download", **(where or {}))
        return out

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        out = {}
        for key in ("creates", "removes"):
            if args.get(key):
                out[key] = f"if [ -e {q(args[key])} ]; then echo yes; else echo no; fi"
        return out

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        return {k: facts[k].stdout.strip() == "yes" for k in ("creates", "removes") if k in facts}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        state = state or {}
        if args.get("creates") and state.get("creates"):
            return []
        if args.get("removes") and not state.get("removes", False):
            return []
        return [Change(CHANGE, f"uri: {args['method'].upper()} {args['url']}", script="")]

    def unchanged(self, args: dict, state) -> TaskResult:
        if args.get("creates"):
            text = f"skipped, since '{args['creates']}' exists"
        else:
            text = f"skipped, since '{args['removes']}' does not exist"
        return TaskResult(register={"stdout": text, "stdout_lines": [text]})

    def body(self, args: dict):
        body = args.get("body")
        if body is None:
            return None, {}
        if args["body_format"] == "json":
            text = body if isinstance(body, str) else json.dumps(body)
            return text.encode(), {"Content-Type": "application/json"}
        if args["body_format"] == "form-urlencoded":
            from urllib.parse import urlencode

            text = body if isinstance(body, str) else urlencode(body, doseq=True)
            return text.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        return str(body).encode(), {}

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        data, extra = self.body(args)
        headers = {**extra, **(args.get("headers") or {})}
        req = {"url": args["url"], "method": args["method"].upper(), "headers": headers,
               "timeout": args["timeout"], "validate_certs": args["validate_certs"],
               "follow": args["follow_redirects"] not in ("no", "none", "false"), "content": True,
               "body": base64.b64encode(data).decode() if data is not None else None}
        if args.get("url_username") is not None:
            req.update(user=args["url_username"], password=args.get("url_password"))
        done = ctx.exec(http_line(req), timeout=args["timeout"] + 30)
        info = parse_http(done.stdout)
        error = info["status"] >= 400
        out = {"redirected": info.get("url") != args["url"], "url": info.get("url"), "status": info["status"],
               "msg": info.get("msg", ""), "elapsed": info.get("elapsed", 0)}
        if not error:  # Ansible reports cookies for answers, not for HTTP errors
            out.update(cookies={}, cookies_string="")
        for key, value in (info.get("headers") or {}).items():
            out[key.replace("-", "_").lower()] = value
        raw = base64.b64decode(info.get("content_b64", ""))
        text = raw.decode("utf-8", "replace")
        ctype = out.get("content_type", "")
        sub = ctype.split(";")[0].split("/")[-1].lower()
        if sub.split("+")[-1] in ("json", "javascript"):
            try:
                out["json"] = json.loads(text)
            except ValueError:
                pass
        if args["return_content"]:
            out["content"] = text
        elif error and info["status"] in args["status_code"] and "json" not in out:
            out["body"] = text  # an expected error's body, as Ansible keeps it
        if info["status"] not in args["status_code"]:
            out["msg"] = f"Status code was {info['status']} and not {args['status_code']}: {out['msg']}"
            return TaskResult(failed=True, msg=out["msg"], register=out)
        return TaskResult(changed=False, register=out)


# -- unarchive ------------------------------------------------------------------------------------------
def archive_members(data: bytes, name: str) -> list[dict]:
    """[{path, type, size, mode}] of a tar (any compression) or zip archive's members."""
    with tempfile.NamedTemporaryFile(suffix=name) as handle:
        handle.write(data)
        handle.flush()
        if zipfile.is_zipfile(handle.name):
            with zipfile.ZipFile(handle.name) as z:
                return [{"path": i.filename.rstrip("/"), "type": "directory" if i.is_dir() else "file",
                         "size": i.file_size, "mode": (i.external_attr >> 16) & 0o7777}
                        for i in z.infolist()]
        try:
            with tarfile.open(handle.name) as t:
                return [{"path": m.name.rstrip("/").removeprefix("./"), "size": m.size, "mode": m.mode,
                         "type": "directory" if m.isdir() else "link" if m.issym() else "file"}
                        for m in t.getmembers() if m.name not in (".", "./")]
        except tarfile.TarError as err:
            raise ModuleError(f"unarchive: {name} is neither a tar nor a zip archive ({err})",
                              fix="give a .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz or .zip") from None


class Unarchive(Module):
    """``unarchive``: a controller archive (``src``, or ``remote_src: true`` for one on the
    host) unpacked into ``dest``; changed only when a member is missing or differs in size."""

    name = "unarchive"
    params = {
        "src": Param("path", required=True),
        "dest": Param("path", required=True),
        "remote_src": Param("bool", default=False),
        "creates": Param("path"),
        "list_files": Param("bool", default=False),
        "keep_newer": Param("bool", default=False),
        "extra_opts": Param("list", default=[]),
        "include": Param("list"),
        "exclude": Param("list", default=[]),
        "mode": Param("raw"),
        "owner": Param("str"),
        "group": Param("str"),
        "copy": Param("bool"),
        "validate_certs": Param("bool", default=True),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if out.get("copy") is not None:
            out["remote_src"] = not out["copy"]
        for key in ("include", "extra_opts"):
            if out.get(key):
                raise PlaybookError(f"unarchive: {key} is not supported by gfsdeploy", field=key,
                                    fix=f"drop `{key}` (unpack everything)", **(where or {}))
        if "://" in out["src"]:
            raise PlaybookError("unarchive: a URL src is not supported by gfsdeploy", field="src",
                                fix="download it first with get_url, then unarchive with remote_src: true",
                                **(where or {}))
        return out

    def prepare(self, args: dict, ctx: TaskContext) -> dict:
        return args

    def local(self, args: dict, ctx: TaskContext) -> tuple[bytes, list[dict]]:
        path = ctx.find_file(args["src"])
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise ModuleError(f"unarchive: cannot read {args['src']}: {err.strerror}", host=ctx.host.name,
                              fix="check src (looked up beside the playbook and in files/)") from None
        return data, archive_members(data, os.path.basename(path))

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        dest = q(args["dest"])
        lines = [f"if [ -d {dest} ]; then echo dest=yes; fi"]
        if args.get("creates"):
            lines.append(f"if [ -e {q(args['creates'])} ]; then echo creates=yes; fi")
        if args["remote_src"]:
            lines.append(f"if [ -f {q(args['src'])} ]; then echo src=yes; base64 < {q(args['src'])}; fi")
        # what is on disk under dest: type, size, mode, relative path
        lines.append(f"if [ -d {dest} ]; then cd {dest} && find . -mindepth 1 -printf '%y %s %m %P\\n' "
                     "2>/dev/null | head -n 100000; fi")
        return {"unarchive": "\n".join(lines)}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        text = facts["unarchive"].stdout
        state = {"dest": False, "creates": False, "disk": {}, "members": None}
        body = []
        in_src = False
        for line in text.splitlines():
            if line in ("dest=yes", "creates=yes"):
                state[line.split("=")[0]] = True
            elif line == "src=yes":
                in_src = True
            elif in_src and " " not in line:
                body.append(line)
            else:
                in_src = False
                parts = line.split(" ", 3)
                if len(parts) == 4:
                    kind, size, mode, path = parts
                    state["disk"][path] = {"type": {"d": "directory", "f": "file", "l": "link"}.get(kind, "other"),
                                           "size": int(size), "mode": int(mode, 8)}
        if args["remote_src"]:
            if body:
                state["members"] = archive_members(base64.b64decode("".join(body)), os.path.basename(args["src"]))
        else:
            _, state["members"] = self.local(args, ctx)
        return state

    def differing(self, args: dict, state: dict) -> list[str]:
        out = []
        for m in state["members"] or []:
            if any(m["path"] == x or m["path"].startswith(x.rstrip("/") + "/") for x in args["exclude"]):
                continue
            have = state["disk"].get(m["path"])
            if have is None or have["type"] != m["type"] or (m["type"] == "file" and have["size"] != m["size"]):
                out.append(m["path"])
        return out

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        if args.get("creates") and state.get("creates"):
            return []
        if not state["dest"]:
            raise ModuleError(f"Destination '{args['dest']}' is not a directory", host=host.name,
                              fix="create it first (file: state=directory)")
        if state["members"] is None:
            return [Change(CHANGE, f"unarchive {args['src']} -> {args['dest']}",
                           diff=f"{UNKNOWN}: {args['src']} is not on the host yet")]
        missing = self.differing(args, state)
        mode = want_mode(args.get("mode"), None, True) if args.get("mode") is not None else None
        attrs = attrs_script(args["dest"], mode, args.get("owner"), args.get("group"), recurse=True)
        if not missing:
            return []
        shown = missing[:20] + ([f"… {len(missing) - 20} more"] if len(missing) > 20 else [])
        return [Change(CHANGE, f"unarchive {args['src']} -> {args['dest']}",
                       diff="\n".join(f"+ {p}" for p in shown), script=attrs)]

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        dest = q(args["dest"])
        excludes = " ".join(f"--exclude={q(x)}" for x in args["exclude"])
        if args["remote_src"]:
            src = q(args["src"])
            name = args["src"]
            upload = ""
        else:
            data, _ = self.local(args, ctx)
            name = args["src"]
            upload = ("tmp=$(mktemp /tmp/.gfsdeploy.XXXXXXXX); trap 'rm -f \"$tmp\"' EXIT\n"
                      f"base64 -d > \"$tmp\" <<'GFSDEPLOY_EOF'\n{base64.encodebytes(data).decode()}GFSDEPLOY_EOF\n")
            src = '"$tmp"'
        if name.endswith(".zip"):
            unpack = f"unzip -o -q {src} -d {dest}" + (f" -x {' '.join(q(x) for x in args['exclude'])}"
                                                      if args["exclude"] else "")
        else:
            unpack = f"tar -x -f {src} -C {dest} {excludes}" + (" --keep-newer-files" if args["keep_newer"] else "")
        script = "set -e\n" + upload + unpack + "\n" + "\n".join(c.script for c in changes if c.script)
        done = ctx.run(script, what=f"unarchive {name}")
        return TaskResult(changed=True, register={
            "dest": args["dest"], "src": args["src"], "handler": "ZipArchive" if name.endswith(".zip") else "TgzArchive",
            "extract_results": {"cmd": unpack.split(), "rc": done.rc, "out": done.stdout, "err": done.stderr}})

    def unchanged(self, args: dict, state) -> TaskResult:
        return TaskResult(register={"dest": args["dest"], "src": args["src"]})


# -- fetch -----------------------------------------------------------------------------------------------
class Fetch(Module):
    """``fetch``: a host's file copied to the controller (``dest/HOST/SRC``, or ``dest``
    itself with ``flat``); changed when the local copy's sha1 differs."""

    name = "fetch"
    params = {
        "src": Param("path", required=True),
        "dest": Param("path", required=True),
        "flat": Param("bool", default=False),
        "fail_on_missing": Param("bool", default=True),
        "validate_checksum": Param("bool", default=True),
    }

    def local_path(self, args: dict, ctx_or_host) -> str:
        host = getattr(ctx_or_host, "name", None) or ctx_or_host.host.name
        dest = args["dest"]
        if args["flat"]:
            if dest.endswith("/"):
                dest = os.path.join(dest, posixpath.basename(args["src"]))
            return os.path.normpath(dest)
        return os.path.normpath(f"{dest}/{host}/{args['src']}")

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        src = q(args["src"])
        return {"remote": f"if [ -d {src} ]; then echo dir; elif [ -r {src} ]; then printf 'sha1 '; "
                          f"sha1sum < {src} | cut -d' ' -f1; else echo missing; fi"}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> dict:
        text = facts["remote"].stdout.strip()
        local = self.local_path(args, ctx.host)
        try:
            with open(local, "rb") as handle:
                data = handle.read()
            local_sha1, local_md5 = hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest()
        except OSError:
            local_sha1 = local_md5 = None
        return {"remote": text.split(" ", 1)[-1] if text.startswith("sha1 ") else text, "local": local,
                "local_sha1": local_sha1, "local_md5": local_md5, "planning": bool(ctx.check_mode)}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        remote = state["remote"]
        if remote == "dir":
            raise ModuleError("remote file is a directory, fetch cannot work on directories", host=host.name,
                              fix="fetch one file per task")
        if remote == "missing":
            if state.get("planning"):  # an earlier task of this run may make it; apply decides
                return [Change(CHANGE, f"controller file {state['local']}",
                               diff=f"{UNKNOWN}: {host.name}:{args['src']} does not exist yet")]
            if args["fail_on_missing"]:
                raise ModuleError(f"the remote file {args['src']} does not exist", host=host.name,
                                  fix="check src, or set fail_on_missing: false")
            return []
        if remote == state["local_sha1"]:
            return []
        action = CHANGE if state["local_sha1"] else ADD
        return [Change(action, f"controller file {state['local']}", diff=f"fetch: {host.name}:{args['src']}")]

    def unchanged(self, args: dict, state) -> TaskResult:
        if state["remote"] == "missing":
            return TaskResult(register={"file": args["src"],
                                        "msg": "the remote file does not exist, not transferring, ignored"})
        return TaskResult(register={"md5sum": state["local_md5"], "file": args["src"], "dest": state["local"],
                                    "checksum": state["local_sha1"]})

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        done = ctx.exec(f"if [ -f {q(args['src'])} ]; then base64 < {q(args['src'])}; else exit 3; fi")
        if done.rc == 3:
            if args["fail_on_missing"]:
                msg = f"the remote file {args['src']} does not exist"
                return TaskResult(failed=True, msg=msg, register={"file": args["src"], "msg": msg})
            return TaskResult(register={"file": args["src"],
                                        "msg": "the remote file does not exist, not transferring, ignored"})
        if done.rc != 0:
            return TaskResult(failed=True, msg=f"cannot read {args['src']}: {done.stderr.strip()}",
                              register={"file": args["src"], "msg": done.stderr.strip()})
        data = base64.b64decode(done.stdout)
        local = self.local_path(args, ctx.host)
        os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gfsdeploy.", dir=os.path.dirname(local) or ".")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, local)
        sha1 = hashlib.sha1(data).hexdigest()
        return TaskResult(changed=True, register={"md5sum": hashlib.md5(data).hexdigest(), "dest": local,
                                                  "remote_md5sum": None, "checksum": sha1, "remote_checksum": sha1})
