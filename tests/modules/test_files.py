"""copy, template, file, lineinfile, blockinfile: real applies through LocalTransport in
tmp_path, mode arithmetic and probe parsing. Their plan tables (args + FileState → changes
and the bytes written) are data/files/*.json, run by test_tables.py (the shared harness:
tables.py)."""

import os
import pathlib

import pytest

from gfsdeploy import modules
from gfsdeploy.errors import GfsError
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.modules.files import CAP, parse_probe, stat_probe, want_mode
from gfsdeploy.transport.base import Result
from gfsdeploy.transport.local import LocalTransport

DATA = pathlib.Path(__file__).parent / "data" / "files"
HOST = HostInfo("h1")


# plan table: tests/modules/data/files/*.json (run by test_tables.py)

@pytest.mark.parametrize("mode, current, is_dir, want", [
    ("0644", None, False, 0o644), ("644", None, False, 0o644), (0o600, None, False, 0o600),
    (644, None, False, 0o1204),  # Ansible: an int is the number itself
    ("u=rw,g=r,o=r", 0o777, False, 0o644), ("u+x", 0o644, False, 0o744), ("go-rwx", 0o755, False, 0o700),
    ("a+X", 0o644, True, 0o755), ("a+X", 0o644, False, 0o644), ("a+X", 0o744, False, 0o755),
    ("u=rwx,g=rx,o=", 0o000, True, 0o750), ("u+s,o+t", 0o755, True, 0o5755), ("=r", 0o777, False, 0o444),
    ("u=rw", None, False, 0o644), (None, 0o644, False, None), ("preserve", 0o644, False, None),
])
def test_want_mode(mode, current, is_dir, want):
    assert want_mode(mode, current, is_dir) == want


def test_parse_probe_formats():
    out = "P /etc/x\nL /etc/y\nS regular file|644|root|0|adm|4|3\nC\naGkK\n"
    st = parse_probe("/etc/x", Result(0, out))
    assert (st.kind, st.mode, st.owner, st.uid, st.group, st.gid, st.size, st.content, st.link_target) == \
        ("file", "0644", "root", "0", "adm", "4", 3, b"hi\n", "/etc/y")
    big = parse_probe("/b", Result(0, "P /b\nS regular file|600|a|1|b|2|99999999\nH " + "ab" * 32 + "\n"))
    assert big.content is None and big.sha256 == "ab" * 32 and big.mode == "0600"
    assert parse_probe("/n", Result(0, "P /n\nS absent\n")).kind == "absent"
    assert parse_probe("/d", Result(0, "P /d\nS directory|1777|r|0|r|0|4096\n")).kind == "directory"
    with pytest.raises(GfsError, match="cannot read /x"):
        parse_probe("/x", Result(1, "", "base64: Permission denied"))


# -- apply through the local transport ---------------------------------------------------
def local_ctx():
    return TaskContext(HOST, LocalTransport("h1"), render_file=lambda p: pathlib.Path(p).read_text(),
                       find_file=lambda p: p)


def plan_live(module_name, args, ctx):
    module = modules.get(module_name)
    args = module.prepare(module.validate(args), ctx)
    probes = module.probes(args, HOST)
    facts = ctx.transport.read_many(probes)
    return module, args, module.plan(args, module.read(args, facts, ctx), HOST)


def converge(module_name, args, ctx=None):
    """apply, then re-plan: the second plan must be empty."""
    ctx = ctx or local_ctx()
    module, prepared, changes = plan_live(module_name, args, ctx)
    assert [c for c in changes if c.action != "!"], "expected a change"
    result = module.apply(prepared, changes, ctx)
    assert result.changed and not result.failed
    _, _, again = plan_live(module_name, args, ctx)
    assert [c for c in again if c.action != "!"] == []
    return changes


NASTY = [
    "plain\n",
    "quotes ' \" `backticks` $(rm -rf /) ${HOME} \\ back\\\\slash\n",
    "GFSDEPLOY_EOF\nEOF\n'EOF'\n",
    "no trailing newline",
    "unicode: é ü 漢字 🚀\n",
    "\n\n\nblank lines\n\n",
    "",
]


@pytest.mark.parametrize("content", NASTY)
def test_copy_content_is_byte_exact(tmp_path, content):
    dest = tmp_path / "out.txt"
    converge("copy", {"content": content, "dest": str(dest), "mode": "0640"})
    assert dest.read_bytes() == content.encode()
    assert oct(dest.stat().st_mode & 0o7777) == "0o640"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]  # no temp file left


def test_copy_binary_src_byte_exact(tmp_path):
    src = tmp_path / "blob.bin"
    blob = bytes(range(1, 256)) * 50 + b"\xff\xfe\r\n"
    src.write_bytes(blob)
    dest = tmp_path / "sub"
    dest.mkdir()
    changes = converge("copy", {"src": str(src), "dest": str(dest)})  # a dir: writes dest/blob.bin
    assert changes[0].resource == f"file {dest}/blob.bin"
    assert (dest / "blob.bin").read_bytes() == blob
    assert os.listdir(dest) == ["blob.bin"]


def test_copy_changed_content_shows_diff_then_mode_only(tmp_path):
    dest = tmp_path / "conf"
    dest.write_text("a\nb\n")
    os.chmod(dest, 0o644)
    ctx = local_ctx()
    changes = converge("copy", {"content": "a\nc\n", "dest": str(dest)}, ctx)
    assert changes[0].action == "~" and f"--- {dest}" in changes[0].diff and "-b\n+c" in changes[0].diff
    assert oct(dest.stat().st_mode & 0o777) == "0o644"  # existing mode kept
    changes = converge("copy", {"content": "a\nc\n", "dest": str(dest), "mode": "u=rw,go="}, ctx)
    assert changes[0].diff == "mode: 0644 -> 0600"
    assert dest.read_text() == "a\nc\n"


def test_copy_backup_and_validate(tmp_path):
    dest = tmp_path / "conf"
    dest.write_text("old\n")
    converge("copy", {"content": "new\n", "dest": str(dest), "backup": True, "validate": "grep -q new %s"})
    backups = [p for p in os.listdir(tmp_path) if p != "conf"]
    assert len(backups) == 1 and backups[0].endswith("~") and (tmp_path / backups[0]).read_text() == "old\n"
    ctx = local_ctx()
    module, args, changes = plan_live("copy", {"content": "bad\n", "dest": str(dest), "validate": "grep -q new %s"},
                                      ctx)
    with pytest.raises(GfsError, match="validation failed"):
        module.apply(args, changes, ctx)
    assert dest.read_text() == "new\n" and len(os.listdir(tmp_path)) == 2


def test_copy_missing_directory_is_an_error(tmp_path):
    ctx = local_ctx()
    module, args, changes = plan_live("copy", {"content": "x", "dest": str(tmp_path / "no" / "f")}, ctx)
    with pytest.raises(GfsError, match="does not exist"):
        module.apply(args, changes, ctx)


def test_interrupted_write_leaves_old_file_and_no_temp(tmp_path):
    dest = tmp_path / "conf"
    dest.write_text("old\n")
    ctx = local_ctx()
    module, args, changes = plan_live("copy", {"content": "new\n", "dest": str(dest), "owner": "no-such-user-x"},
                                      ctx)
    with pytest.raises(GfsError):
        module.apply(args, changes, ctx)  # chown fails after the temp file was written
    assert dest.read_text() == "old\n" and os.listdir(tmp_path) == ["conf"]


def test_template_renders_and_converges(tmp_path):
    src = tmp_path / "t.j2"
    src.write_text("rendered {{ x }}\n")
    dest = tmp_path / "out"
    converge("template", {"src": str(src), "dest": str(dest)})
    assert dest.read_text() == "rendered {{ x }}\n"  # the fake render_file returns the file as is


def test_big_file_compared_by_hash(tmp_path):
    dest = tmp_path / "big"
    data = b"x" * (CAP + 10)
    dest.write_bytes(data)
    ctx = local_ctx()
    st = parse_probe(str(dest), ctx.transport.read_many({"f": stat_probe(str(dest))})["f"])
    assert st.content is None and st.size == CAP + 10
    module = modules.get("copy")
    args = module.prepare(module.validate({"content": data.decode(), "dest": str(dest)}), ctx)
    assert module.plan(args, st, HOST) == []
    args = module.prepare(module.validate({"content": "small", "dest": str(dest)}), ctx)
    assert "not shown" in module.plan(args, st, HOST)[0].diff


def test_file_states_converge(tmp_path):
    d = tmp_path / "a" / "b"
    converge("file", {"path": str(d), "state": "directory", "mode": "0750"})
    assert d.is_dir() and oct(d.stat().st_mode & 0o777) == "0o750"
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == "0o750"  # parents made like Ansible
    f = d / "f"
    converge("file", {"path": str(f), "state": "touch", "mode": "0600",
                      "modification_time": "preserve", "access_time": "preserve"})
    assert f.exists() and oct(f.stat().st_mode & 0o777) == "0o600"
    converge("file", {"path": str(f), "state": "file", "mode": "0640"})
    assert oct(f.stat().st_mode & 0o777) == "0o640"
    link = tmp_path / "l"
    converge("file", {"path": str(link), "state": "link", "src": str(f)})
    assert os.readlink(link) == str(f)
    converge("file", {"path": str(link), "state": "link", "src": str(d)})
    assert os.readlink(link) == str(d)
    converge("file", {"path": str(link), "state": "absent"})
    assert not os.path.lexists(link) and f.exists()
    converge("file", {"path": str(tmp_path / "a"), "state": "absent"})
    assert not (tmp_path / "a").exists()


def test_file_recurse(tmp_path):
    top = tmp_path / "top"
    (top / "x").mkdir(parents=True)
    (top / "x" / "f").write_text("")
    os.chmod(top / "x" / "f", 0o600)
    converge("file", {"path": str(top), "state": "directory", "mode": "0755", "recurse": True})
    assert oct((top / "x" / "f").stat().st_mode & 0o777) == "0o755"


def test_lineinfile_and_blockinfile_keep_user_lines(tmp_path):
    conf = tmp_path / "sshd_config"
    conf.write_text("# user comment\nPort 22\nPermitRootLogin yes\nX11Forwarding yes")
    converge("lineinfile", {"path": str(conf), "regexp": "^PermitRootLogin", "line": "PermitRootLogin no"})
    assert conf.read_text() == "# user comment\nPort 22\nPermitRootLogin no\nX11Forwarding yes"
    converge("lineinfile", {"path": str(conf), "line": "UseDNS no", "insertafter": "^Port"})
    converge("blockinfile", {"path": str(conf), "block": "Match User git\n  X11Forwarding no"})
    assert conf.read_text() == ("# user comment\nPort 22\nUseDNS no\nPermitRootLogin no\nX11Forwarding yes\n"
                                "# BEGIN ANSIBLE MANAGED BLOCK\nMatch User git\n  X11Forwarding no\n"
                                "# END ANSIBLE MANAGED BLOCK\n")
    converge("blockinfile", {"path": str(conf), "state": "absent"})
    converge("lineinfile", {"path": str(conf), "regexp": "^UseDNS", "state": "absent"})
    assert conf.read_text() == "# user comment\nPort 22\nPermitRootLogin no\nX11Forwarding yes\n"
    assert os.listdir(tmp_path) == ["sshd_config"]


def test_lineinfile_follows_symlink_and_creates(tmp_path):
    real = tmp_path / "real"
    real.write_text("a\n")
    (tmp_path / "link").symlink_to(real)
    converge("lineinfile", {"path": str(tmp_path / "link"), "line": "b"})
    assert real.read_text() == "a\nb\n" and (tmp_path / "link").is_symlink()
    new = tmp_path / "made" / "here"
    converge("lineinfile", {"path": str(new), "line": "x=1", "create": True, "mode": "0600"})
    assert new.read_text() == "x=1\n" and oct(new.stat().st_mode & 0o777) == "0o600"
