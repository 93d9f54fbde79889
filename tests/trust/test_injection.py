"""Every value that reaches a remote shell arrives exactly as written.

Hypothesis throws shell metacharacters, quotes, newlines, ``$(...)``,
backticks and unicode at each module's command builder; the generated script
really runs (LocalTransport, in a temp dir) and what the "remote" side got —
file bytes, argv seen by a recording fake binary, stdin — is compared with
the value. A canary file proves no injected command ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gfsdeploy import validate
from gfsdeploy_glusterfs import validate as k8s_validate
from gfsdeploy.errors import PlaybookError
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy_glusterfs.modules.heketi import normalize_topology
from gfsdeploy.modules.iptables import build_rule
from gfsdeploy.templating import Templar
from trust.helpers import FakeBinTransport, make_recorder, records, run_module

CANARY = f"/tmp/gfsdeploy-pwned-{os.getpid()}"
ATTACKS = [f"$(touch {CANARY})", f"`touch {CANARY}`", f"'; touch {CANARY}; '", f"\"; touch {CANARY}; \"",
           f"x\ntouch {CANARY}\n", f"a && touch {CANARY}", f"a | touch {CANARY}", f"> {CANARY}",
           "GFSDEPLOY_EOF", "\nGFSDEPLOY_EOF\ntouch " + CANARY + "\n", "-rf", "--help", "~root", "*", "?",
           "\\", "\\n", "'", '"', "${IFS}", "$((1+1))", "!!", "#comment", "%s", "\t", " lead and trail ",
           "ünïcödé ✓ 漢字 🚀", "\u202e\u200b", "\r\n", "-", ""]
META = "$`'\"\\;&|<>(){}[]*?!#~ \t\n=%^,:@-+./"

#: any text (no NUL: it cannot be in an argv or a path); weighted towards shell metacharacters
text = st.one_of(
    st.sampled_from(ATTACKS),
    st.text(alphabet=st.sampled_from(list(META) + ["a", "Z", "0", "é", "漢", "🚀"]), max_size=40),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
).map(lambda s: s.replace("\x00", ""))

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def no_canary():
    assert not os.path.exists(CANARY), "an injected command ran"


@pytest.fixture(autouse=True)
def _canary():
    if os.path.exists(CANARY):
        os.remove(CANARY)
    yield
    no_canary()


#: what str.splitlines() splits on (the file probe's output is parsed line by line)
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def file_name(value: str) -> str:
    """A valid single path component carrying ``value`` (no '/', not . or .., <= 200 bytes).
    Newlines in paths are covered by test_path_with_newline_is_written_exactly_or_refused."""
    name = value.replace("/", "∕")
    for separator in LINE_BREAKS:
        name = name.replace(separator, "␤")
    while len(name.encode()) > 200:
        name = name[:-1]
    return "f" + name


# -- files ----------------------------------------------------------------------------------
@FAST
@given(content=text, name=text)
@example(content="\nGFSDEPLOY_EOF\n$(touch /tmp/x)\n", name="$(touch x)")
def test_copy_content_and_dest_arrive_exactly(content, name):
    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, file_name(name))
        changes, result = run_module("copy", {"dest": dest, "content": content})
        assert result.changed
        with open(dest, "rb") as handle:
            assert handle.read() == content.encode()
        assert os.listdir(tmp) == [os.path.basename(dest)], "a temp file or a stray file was left"
        changes, _ = run_module("copy", {"dest": dest, "content": content}, apply=False)
        assert changes == [], "a second run must change nothing"


@pytest.mark.parametrize("name", ["fx\nS absent", "fx\x0c", "fx\u2028y"])
def test_path_with_newline_is_written_exactly_or_refused(tmp_path, name):
    dest = str(tmp_path / name)
    try:
        run_module("copy", {"dest": dest, "content": "data"})
    except PlaybookError as exc:
        assert exc.field == "dest"
        return
    assert sorted(os.listdir(tmp_path)) == [name]


@FAST
@given(value=text)
def test_template_renders_values_byte_exact(value):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.j2")
        with open(src, "w", encoding="utf-8") as handle:
            handle.write("v={{ value }}\n")
        dest = os.path.join(tmp, "out")
        templar = Templar([tmp])
        _, result = run_module("template", {"src": src, "dest": dest},
                               render_file=lambda p: templar.render_file(p, {"value": value}))
        with open(dest, "rb") as handle:
            # (as Ansible: the template's last line break only when the value does not end with one)
            assert handle.read() == (f"v={value}" + ("" if value.endswith("\n") else "\n")).encode()


line_text = text.map(lambda s: s.replace("\n", " ").replace("\r", " "))


@FAST
@given(line=line_text, name=text)
def test_lineinfile_line_and_regexp(line, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, file_name(name))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("keep me\nOLD\n")
        run_module("lineinfile", {"path": path, "line": line, "regexp": "^" + re.escape("OLD") + "$"})
        with open(path, "rb") as handle:
            assert handle.read() == f"keep me\n{line}\n".encode()
        # the value itself as a regexp (escaped): the same line is found, nothing changes
        changes, _ = run_module("lineinfile", {"path": path, "line": line,
                                               "regexp": "^" + re.escape(line) + "$"}, apply=False)
        assert changes == []


@FAST
@given(block=text)
def test_blockinfile_block_arrives_exactly(block):
    assume(block.strip("\n") and "\r" not in block)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hosts")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("127.0.0.1 localhost\n")
        run_module("blockinfile", {"path": path, "block": block})
        body = block if block.endswith("\n") else block + "\n"
        with open(path, "rb") as handle:
            assert handle.read() == ("127.0.0.1 localhost\n# BEGIN ANSIBLE MANAGED BLOCK\n" + body +
                                     "# END ANSIBLE MANAGED BLOCK\n").encode()


# -- command / shell --------------------------------------------------------------------------
ARGV_ECHO = "import json, sys; print(json.dumps(sys.argv[1:]))"


def _no_expansion(value: str) -> bool:
    """command expands $VAR and a leading ~ like Ansible; those are tested by table in tests/modules."""
    return not re.search(r"\$(\w|\{\w+\})", value) and not value.startswith("~")


@FAST
@given(values=st.lists(text, min_size=1, max_size=4))
def test_command_argv_arrives_exactly(values):
    assume(all(_no_expansion(v) for v in values))
    _, result = run_module("command", {"argv": [sys.executable, "-c", ARGV_ECHO, *values]})
    assert result.rc == 0, result.stderr
    assert json.loads(result.stdout) == values


@FAST
@given(data=text)
def test_command_stdin_arrives_exactly(data):
    _, result = run_module("command", {"argv": [sys.executable, "-c",
                                                "import sys; sys.stdout.write(repr(sys.stdin.read()))"],
                                       "stdin": data, "stdin_add_newline": False, "strip_empty_ends": False})
    assert result.stdout == repr(data)


@FAST
@given(name=text)
def test_shell_chdir_and_creates_are_quoted(name):
    with tempfile.TemporaryDirectory() as tmp:
        directory = os.path.join(tmp, file_name(name))
        os.mkdir(directory)
        _, result = run_module("shell", {"cmd": "pwd -P", "chdir": directory})
        assert result.stdout == os.path.realpath(directory)
        marker = os.path.join(directory, file_name(name[::-1]).replace("*", "_").replace("?", "_")
                              .replace("[", "_"))
        changes, result = run_module("shell", {"cmd": "echo ran", "creates": marker})
        assert result.stdout == "ran"  # marker does not exist yet: runs
        open(marker, "w").close()
        changes, _ = run_module("shell", {"cmd": "echo ran", "creates": marker}, apply=False)
        assert changes == [], "creates= names an existing file: nothing to do"


# -- iptables, packages, kubectl: recording fakes ----------------------------------------------
@pytest.fixture(scope="module")
def fakebin(tmp_path_factory):
    root = tmp_path_factory.mktemp("fakebin")
    log = str(root / "calls")
    make_recorder(str(root / "bin"), "iptables", log, rc=1)  # -C "rule missing", -A ok enough
    make_recorder(str(root / "bin"), "apt-get", log)
    make_recorder(str(root / "bin"), "kubectl", log)
    return str(root / "bin"), log


def _reset(log):
    shutil.rmtree(log, ignore_errors=True)
    os.makedirs(log)


@FAST
@given(comment=text)
def test_iptables_comment_arrives_exactly(fakebin, comment):
    bindir, log = fakebin
    _reset(log)
    args = {"chain": "INPUT", "protocol": "tcp", "destination_port": "24007", "jump": "ACCEPT",
            "comment": comment}
    from gfsdeploy import modules

    module = modules.get("iptables")
    args = module.validate(args)
    changes = module.plan(args, {"chain": True, "rule": False}, HostInfo("local"))
    result = FakeBinTransport(bindir).run("\n".join(c.script for c in changes))
    seen = [r["argv"] for r in records(log)]
    assert seen and all(argv[-len(build_rule(args)):] == build_rule(args) for argv in seen), (seen, result)
    if comment:
        assert seen[-1][-2:] == ["--comment", comment]


@FAST
@given(names=st.lists(text.filter(lambda s: s.strip()), min_size=1, max_size=3, unique=True))
def test_package_names_reach_apt_as_single_arguments(fakebin, names):
    bindir, log = fakebin
    _reset(log)
    from gfsdeploy import modules

    from gfsdeploy import validate

    module = modules.get("apt")
    try:
        args = module.validate({"name": names})
    except PlaybookError as exc:
        # refused at load time: only names that are not package names (options, spaces, quotes …)
        assert exc.field == "name"
        assert any(validate.package_name(n) for n in names) or any("," in n for n in names)
        return
    assume(args["name"] == names)  # a comma splits like Ansible's list form; not an injection question
    changes = module.plan(args, {"tools": ["apt-get"], "installed": [], "upgradable": []},
                          HostInfo("local", os_family="debian", os_id="debian"))
    FakeBinTransport(bindir).run("set -e\n" + changes[0].script)
    (call,) = records(log)
    assert call["argv"][-len(names):] == names


@FAST
@given(value=text, label=text)
def test_kubernetes_manifest_values_reach_kubectl_exactly(fakebin, value, label):
    bindir, log = fakebin
    _reset(log)
    from gfsdeploy import modules

    module = modules.get("kubernetes")
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "hostile", "namespace": "default", "annotations": {"note": label}},
           "data": {"value": value, "GFS_EOF_x": value}}
    args = module.validate({"definition": obj, "kubeconfig": "/etc/kubernetes/admin.conf"})
    args = module.prepare(args, type("Ctx", (), {"host": HostInfo("local"), "task_name": "t"})())
    changes = module.plan(args, None, HostInfo("local"))
    module.apply(args, changes, TaskContext(HostInfo("local"), FakeBinTransport(bindir), task_name="t"))
    applied = [r for r in records(log) if "apply" in r["argv"]]
    assert applied, records(log)
    sent = json.loads(applied[0]["stdin"])
    assert sent["data"] == {"value": value, "GFS_EOF_x": value}
    assert sent["metadata"]["annotations"]["note"] == label


# -- names with a fixed form are refused ------------------------------------------------------------
def _not_plain(value: str, pattern: str) -> bool:
    return re.fullmatch(pattern, value) is None


@settings(max_examples=200, deadline=None)
@given(value=text)
def test_fixed_form_checks_refuse_metacharacters(value):
    hostile = any(c in value for c in "$`'\"\\;&|<>(){}*?! \t\n")
    if hostile:
        assert validate.hostname(value)
        assert validate.device(value)
        assert validate.ip(value)
        assert validate.port(value)
        assert k8s_validate.k8s_name(value)
        assert validate.kernel_module(value)
        assert validate.iptables_chain(value)


@pytest.mark.parametrize("check,good,bad", [
    ("hostname", ["k8s-1", "node1.example.com"], ["node_1", "-x", "a b", "a;b", "", "x" * 300]),
    ("device", ["/dev/sdb", "/dev/disk/by-id/wwn-0x5000", "/dev/mapper/vg-lv"],
     ["sdb", "/dev/../etc/passwd", "/dev/sdb; rm -rf /", "/dev/sd b", "/etc/passwd", "/dev/", "/dev/sdb/.."]),
    ("ip", ["10.0.0.1", "fe80::1"], ["node1", "10.0.0.256", "10.0.0.1; id", ""]),
    ("port", [22, "2222", 65535], ["abc", 0, 70000, "22;id", "-1", "022"]),
    ("k8s_name", ["glusterfs", "heketi-db.v1"], ["Heketi", "a_b", "-x", "x" * 254, "a;b"]),
    ("kernel_module", ["dm_thin_pool", "dm-snapshot"], ["a b", "a;b", "$(id)", ""]),
    ("iptables_chain", ["INPUT", "GLUSTER-1"], ["IN PUT", "x" * 29, "A;B"]),
])
def test_fixed_form_table(check, good, bad):
    for value in good:
        assert validate.CHECKS[check](value) is None, value
    for value in bad:
        assert validate.CHECKS[check](value), value


@FAST
@given(manage=text, storage=text)
def test_heketi_topology_refuses_hostile_names(manage, storage):
    assume(validate.hostname(manage) or validate.ip(storage))
    with pytest.raises(PlaybookError) as err:
        normalize_topology([{"node": {"hostnames": {"manage": [manage], "storage": [storage]}, "zone": 1},
                             "devices": ["/dev/sdb"]}], {"file": "site.yaml", "line": 3})
    assert err.value.field == "topology" and err.value.fix
