"""Finding a module (library dirs, ansible.cfg, ansible-core, collections, redirects),
what it declares, and packing it (the import closure, a deterministic zip). No host."""

from __future__ import annotations

import io
import zipfile

import pytest

from gfsdeploy import ansible_protocol as ap
from gfsdeploy import modules
from gfsdeploy.errors import PlaybookError
from tests.ansible_protocol.conftest import SETTLE, STAMP, write_tree

pytest.importorskip("ansible.module_utils.basic", reason="ansible-core (the `test` extra) packs modules")


def names(packed: ap.Packed) -> set[str]:
    return set(zipfile.ZipFile(io.BytesIO(packed.payload)).namelist())


def test_library_beside_the_playbook_is_searched_only_once_added(tmp_path):
    write_tree(tmp_path, {"library/settle.py": SETTLE})
    assert modules.get("settle") is None
    modules.add_search_path(str(tmp_path))
    module = modules.get("settle")
    assert isinstance(module, ap.ProtocolModule)
    assert module.source.path == str(tmp_path / "library" / "settle.py")
    assert module.source.origin == "library" and module.source.fqn == "ansible.legacy.settle"
    # ansible.legacy.X is the library-first name too; ansible.builtin.X is ansible-core's only
    assert modules.get("ansible.legacy.settle").source.path == module.source.path
    assert modules.get("ansible.builtin.settle") is None


def test_native_modules_stay_preferred(tmp_path):
    write_tree(tmp_path, {"library/copy.py": SETTLE})
    modules.add_search_path(str(tmp_path))
    assert not isinstance(modules.get("copy"), ap.ProtocolModule)
    assert not isinstance(modules.get("ansible.builtin.copy"), ap.ProtocolModule)


def test_newest_search_path_wins_like_a_role_library(tmp_path):
    write_tree(tmp_path / "a", {"library/settle.py": SETTLE})
    write_tree(tmp_path / "b", {"library/settle.py": SETTLE.replace("exactly", "just")})
    modules.add_search_path(str(tmp_path / "a"))
    assert modules.get("settle").source.path.startswith(str(tmp_path / "a"))
    modules.add_search_path(str(tmp_path / "b"))
    assert modules.get("settle").source.path.startswith(str(tmp_path / "b"))


def test_ansible_cfg_library_relative_to_the_cfg_file(tmp_path, monkeypatch):
    write_tree(tmp_path, {"ansible.cfg": "[defaults]\nlibrary = ./mods:/nonexistent\n", "mods/stamp.py": STAMP})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    assert modules.get("stamp").source.path == str(tmp_path / "mods" / "stamp.py")


def test_ansible_library_environment_variable(tmp_path, monkeypatch):
    write_tree(tmp_path, {"elsewhere/stamp.py": STAMP})
    monkeypatch.setenv("ANSIBLE_LIBRARY", str(tmp_path / "elsewhere"))
    assert modules.get("stamp").source.origin == "library"


def test_ansible_core_modules_by_short_and_full_name():
    for name in ("cron", "ansible.builtin.cron", "ansible.legacy.cron"):
        module = modules.get(name)
        assert isinstance(module, ap.ProtocolModule), name
        assert module.source.origin == "ansible-core" and module.source.fqn == "ansible.modules.cron"
    assert modules.get("ansible.builtin.no_such_module") is None
    assert modules.get("no_such_module") is None


def test_a_module_that_needs_an_action_plugin_is_refused_with_the_reason():
    # assemble's work happens in its controller-side action plugin
    assert modules.get("ansible.builtin.assemble") is None
    refused = ap.refusal("ansible.builtin.assemble")
    assert refused is not None and "action plugin" in refused.message


def test_collection_module_redirect_and_tombstone(tmp_path, monkeypatch):
    write_tree(tmp_path, {
        "ansible_collections/acme/tools/meta/runtime.yml": """\
            plugin_routing:
              modules:
                old_name: {redirect: acme.tools.new_name}
                gone: {tombstone: {removal_version: "2.0.0", warning_text: "use acme.tools.new_name"}}
            """,
        "ansible_collections/acme/tools/plugins/modules/new_name.py":
            "#!/usr/bin/python\nfrom ..module_utils.helper import answer\n"
            "from ansible.module_utils.basic import AnsibleModule\n",
        "ansible_collections/acme/tools/plugins/module_utils/helper.py": "answer = 42\n",
    })
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path))
    module = modules.get("acme.tools.old_name")
    assert module.source.fqn == "ansible_collections.acme.tools.plugins.modules.new_name"
    packed = ap.pack(module.source)
    inside = names(packed)
    # the relative import resolved into the collection, with every package level present
    assert "ansible_collections/acme/tools/plugins/module_utils/helper.py" in inside
    for level in ("ansible_collections", "ansible_collections/acme", "ansible_collections/acme/tools",
                  "ansible_collections/acme/tools/plugins", "ansible_collections/acme/tools/plugins/modules"):
        assert level + "/__init__.py" in inside
    assert modules.get("acme.tools.gone") is None
    assert "use acme.tools.new_name" in ap.refusal("acme.tools.gone").message


def test_collections_keyword_searches_short_names_in_order(tmp_path, monkeypatch):
    """`collections: [acme.tools]` on a play/role/task: a short name is looked up in the
    listed collections first, then in the library dirs and ansible-core (ansible.legacy),
    unless ansible.builtin is listed — then the library dirs are not searched."""
    write_tree(tmp_path, {
        "ansible_collections/acme/tools/plugins/modules/settle.py": SETTLE.replace("exactly", "acme"),
        "ansible_collections/acme/tools/plugins/modules/tool_only.py": SETTLE,
        "pb/library/settle.py": SETTLE,
        "pb/library/mine.py": SETTLE,
    })
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path))
    modules.add_search_path(str(tmp_path / "pb"))
    acme = str(tmp_path / "ansible_collections/acme/tools/plugins/modules")
    library = str(tmp_path / "pb" / "library")
    assert modules.get("settle").source.path.startswith(library)
    assert modules.get("settle", collections=["acme.tools"]).source.path.startswith(acme)
    assert modules.get("settle", collections=["ansible.legacy", "acme.tools"]).source.path.startswith(library)
    assert modules.get("tool_only") is None
    assert modules.get("tool_only", collections=["acme.tools"]).source.path.startswith(acme)
    # ansible.legacy is implied last: the playbook's library and native modules still resolve
    assert modules.get("mine", collections=["acme.tools"]).source.path.startswith(library)
    assert not isinstance(modules.get("copy", collections=["acme.tools"]), ap.ProtocolModule)
    # with ansible.builtin listed, the library dirs are not searched
    assert modules.get("mine", collections=["acme.tools", "ansible.builtin"]) is None
    assert modules.get("cron", collections=["acme.tools", "ansible.builtin"]).source.origin == "ansible-core"


@pytest.mark.parametrize("text, style", [
    (SETTLE, "python"),
    (STAMP, "python"),
    ("#!/usr/bin/python\n#<<INCLUDE_ANSIBLE_MODULE_COMMON>>\nmain()\n", "python"),
    ("#!/usr/bin/python\nimport json\nARGS = '<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>'\n", "jsonargs"),
    ("#!/bin/sh\n# WANT_JSON\ncat \"$1\"\n", "want_json"),
    ("#!/bin/sh\n. \"$1\"\necho '{}'\n", "old"),
    ("\x7fELF\x02\x01\x01\x00\x00\x00\x00", "binary"),
])
def test_style_is_told_from_the_text_as_ansible_does(text, style):
    assert ap._style(text.encode("latin-1")) == style


def source(text: str, style: str = "python") -> ap.Source:
    return ap.Source(name="m", path="/x/m.py", fqn="ansible.legacy.m", origin="library", style=style,
                     data=text.encode())


@pytest.mark.parametrize("text, check", [
    ("AnsibleModule(argument_spec={}, supports_check_mode=True)", True),
    ("AnsibleModule(argument_spec={}, supports_check_mode=False)", False),
    ("AnsibleModule(argument_spec={})", False),
    ("AnsibleModule(argument_spec={}, supports_check_mode=SUPPORT)", None),
    # documented attributes decide when there is no AnsibleModule call in the file
    ('DOCUMENTATION = """\\nattributes:\\n  check_mode: {support: full}\\n"""\nrun_it()', True),
    ('DOCUMENTATION = """\\nattributes:\\n  check_mode: {support: none}\\n"""\n'
     "AnsibleModule(argument_spec={}, supports_check_mode=True)", False),
])
def test_declared_check_mode(text, check):
    assert ap.declared(source(text)).check_mode is check


def test_a_script_module_only_has_check_mode_when_documented():
    assert ap.declared(source("#!/bin/sh\n# WANT_JSON\n", "want_json")).check_mode is False


def test_declared_arguments_aliases_and_no_log():
    spec = ("SPEC = dict(name=dict(aliases=['n']), password=dict(no_log=True), token={'no_log': True})\n"
            "AnsibleModule(argument_spec=SPEC, supports_check_mode=True)")
    declared = ap.declared(source(spec))
    assert declared.arguments == {"name": ("n",), "password": (), "token": ()}
    assert declared.no_log == {"password", "token"}
    # a spec built at run time is not guessed: every name is admitted, the module decides
    dynamic = ap.declared(source("SPEC = common()\nSPEC.update(x=dict())\nAnsibleModule(argument_spec=SPEC)"))
    assert dynamic.arguments is None


def test_module_with_a_literal_spec_refuses_unknown_arguments_at_load(tmp_path):
    write_tree(tmp_path, {"library/settle.py": SETTLE, "pb.yaml": """\
        - hosts: all
          tasks:
            - name: typo
              settle: {path: /tmp/x, contnet: hi}
        """})
    from gfsdeploy.playbook import load_playbook

    with pytest.raises(PlaybookError) as err:
        load_playbook(str(tmp_path / "pb.yaml"))
    text = str(err.value)
    assert "pb.yaml:4" in text and "'contnet'" in text and "did you mean 'content'" in text


def test_action_plugin_module_refused_at_load_with_file_and_line(tmp_path):
    write_tree(tmp_path, {"pb.yaml": """\
        - hosts: all
          tasks:
            - name: assemble it
              ansible.builtin.assemble: {src: /a, dest: /b}
        """})
    from gfsdeploy.playbook import load_playbook

    with pytest.raises(PlaybookError) as err:
        load_playbook(str(tmp_path / "pb.yaml"))
    assert "pb.yaml:4" in str(err.value) and "action plugin" in str(err.value)


def test_pack_includes_the_import_closure_and_own_module_utils(tmp_path):
    write_tree(tmp_path, {
        "library/uses_helper.py": "#!/usr/bin/python\nfrom ansible.module_utils.basic import AnsibleModule\n"
                                  "from ansible.module_utils.my_helper import shout\n"
                                  "try:\n    from ansible.module_utils.not_there import x\nexcept ImportError:\n"
                                  "    x = None\n",
        "module_utils/my_helper.py": "from ansible.module_utils.six import text_type\n\ndef shout(s):\n"
                                     "    return text_type(s).upper()\n",
    })
    modules.add_search_path(str(tmp_path))
    packed = ap.pack(modules.get("uses_helper").source)
    inside = names(packed)
    assert "ansible/legacy/uses_helper.py" in inside and "ansible/legacy/__init__.py" in inside
    assert "ansible/module_utils/my_helper.py" in inside       # the playbook's own module_utils
    assert "ansible/module_utils/basic.py" in inside           # ansible-core's
    assert "ansible/module_utils/six/__init__.py" in inside    # what my_helper imports
    assert not any("not_there" in n for n in inside)           # optional (in a try) and absent: skipped
    assert not any(n.startswith("ansible/modules/") for n in inside)   # no other module rides along
    # the stubs, not the controller's ansible/__init__ (it imports controller-only code)
    stub = zipfile.ZipFile(io.BytesIO(packed.payload)).read("ansible/__init__.py").decode()
    assert stub.startswith("__version__")


def test_pack_is_deterministic_and_keyed_by_content(tmp_path):
    write_tree(tmp_path, {"library/settle.py": SETTLE})
    modules.add_search_path(str(tmp_path))
    first = ap.pack(modules.get("settle").source)
    ap.reset()
    modules.add_search_path(str(tmp_path))
    again = ap.pack(modules.get("settle").source)
    assert first.sha == again.sha and first.payload == again.payload
    write_tree(tmp_path, {"library/settle.py": SETTLE + "\n# changed\n"})
    ap.reset()
    modules.add_search_path(str(tmp_path))
    assert ap.pack(modules.get("settle").source).sha != first.sha


def test_a_missing_required_import_is_refused_naming_it(tmp_path):
    write_tree(tmp_path, {"library/broken.py": "#!/usr/bin/python\nfrom ansible.module_utils.nowhere import x\n"})
    modules.add_search_path(str(tmp_path))
    with pytest.raises(PlaybookError) as err:
        ap.pack(modules.get("broken").source)
    assert "ansible.module_utils.nowhere" in str(err.value)


def test_internal_arguments_are_the_ones_the_packed_basic_accepts():
    packed = ap.pack(modules.get("ping").source)
    params = ap.module_args(packed, {"data": "x"}, check=True, diff=True, no_log=True, verbosity=2)
    from ansible.module_utils.common.parameters import PASS_VARS

    internal = {k[len("_ansible_"):] for k in params if k.startswith("_ansible_")}
    assert internal and internal <= set(PASS_VARS)
    assert params["_ansible_check_mode"] is True and params["_ansible_diff"] is True
    assert params["_ansible_no_log"] is True and params["_ansible_verbosity"] == 2
    assert params["_ansible_module_name"] == "ping" and params["data"] == "x"


@pytest.mark.parametrize("stdout, expect", [
    ('{"changed": true}\n', {"changed": True}),
    ('MOTD junk\nmore\n{"changed": false,\n "rc": 0}\ntrailing junk\n', {"changed": False, "rc": 0}),
])
def test_parse_output_ignores_text_around_the_json(stdout, expect):
    assert ap.parse_output(stdout, "", 0) == expect


def test_parse_output_without_json_is_a_failure_saying_what_happened():
    result = ap.parse_output("", "Traceback ...\nNameError: boom\n", 1)
    assert result["failed"] and "MODULE FAILURE" in result["msg"] and "NameError: boom" in result["msg"]
    assert result["rc"] == 1 and result["module_stderr"].startswith("Traceback")
    missing = ap.parse_output("", "sh: 1: /opt/py: not found\n", 127)
    assert "interpreter was not found" in missing["msg"]


def test_render_diff_forms():
    text = ap.render_diff({"before": "a\nb\n", "after": "a\nc\n", "before_header": "/f", "after_header": "/f"})
    assert text.splitlines()[:2] == ["--- /f", "+++ /f"] and "-b" in text and "+c" in text
    assert ap.render_diff({"prepared": "--- x\n+++ y\n"}) == "--- x\n+++ y\n"
    assert ap.render_diff([{"before": "", "after": "x\n"}, {"before": "y\n", "after": ""}]).count("\n@@ ") == 2
    assert ap.render_diff({"before": {"state": "absent"}, "after": {"state": "present"}}).count('"state"') == 2
    assert ap.render_diff({"before": "same\n", "after": "same\n"}) == ""
    assert ap._symbol({"before": "", "after": "x"}) == "+"
    assert ap._symbol({"before": {"path": "/p", "state": "file"}, "after": {"path": "/p", "state": "absent"}}) == "-"
    assert ap._symbol({"before": "x", "after": "y"}) == "~"


def test_registered_value_is_the_modules_result_with_ansibles_defaults():
    result = ap.to_task_result({"stdout": "a\nb", "rc": 3, "_ansible_no_log": False, "msg": "m"})
    value = result.as_register()
    # rc != 0 without `failed` means failed (Ansible's rule); changed defaults to false
    assert value == {"stdout": "a\nb", "stdout_lines": ["a", "b"], "rc": 3, "msg": "m", "failed": True,
                     "changed": False}
    assert result.rc is None   # so the runner does not judge rc again
    assert ap.to_task_result({"rc": 3, "failed": False}).as_register()["failed"] is False


def test_a_tasks_own_library_dirs_come_first_with_their_module_utils(tmp_path):
    """A role's library/ (given per task by the loader) and the module_utils/ beside it."""
    write_tree(tmp_path / "roles" / "r", {
        "library/roled.py": "#!/usr/bin/python\nfrom ansible.module_utils.basic import AnsibleModule\n"
                            "from ansible.module_utils.role_helper import x\n",
        "module_utils/role_helper.py": "x = 1\n",
    })
    write_tree(tmp_path, {"library/roled.py": SETTLE})
    modules.add_search_path(str(tmp_path))
    assert modules.get("roled").source.path == str(tmp_path / "library" / "roled.py")
    own = modules.find_library_module("roled", [str(tmp_path / "roles" / "r" / "library")])
    assert own.source.path == str(tmp_path / "roles" / "r" / "library" / "roled.py")
    assert modules.get("roled", library_dirs=[str(tmp_path / "roles" / "r" / "library")]).source == own.source
    assert "ansible/module_utils/role_helper.py" in names(ap.pack(own.source))


def test_collections_keyword_of_play_block_task_and_role(tmp_path, monkeypatch):
    """The loader and the runner resolve a short name through the `collections:` in force:
    the play's reaches its tasks and blocks, a task's own wins, and a role uses its
    meta/main.yml list — never the play's. A bad value is refused with the file."""
    write_tree(tmp_path, {
        "ansible_collections/acme/tools/plugins/modules/settle.py": SETTLE.replace("exactly", "acme"),
        "ansible_collections/other/kit/plugins/modules/settle.py": SETTLE.replace("exactly", "kit"),
        "pb/library/settle.py": SETTLE,
        "pb/roles/plain/tasks/main.yml": "- {name: in plain role, settle: {path: /tmp/x, content: a}}\n",
        "pb/roles/kitted/meta/main.yml": "collections: [other.kit]\n",
        "pb/roles/kitted/tasks/main.yml": "- {name: in kitted role, settle: {path: /tmp/x, content: a}}\n",
        "pb/site.yaml": """\
            - hosts: all
              collections: [acme.tools]
              roles: [plain, kitted]
              tasks:
                - {name: play level, settle: {path: /tmp/x, content: a}}
                - name: own list
                  collections: other.kit
                  settle: {path: /tmp/x, content: a}
                - block:
                    - {name: in block, settle: {path: /tmp/x, content: a}}
            """,
        "pb/bad.yaml": """\
            - hosts: all
              tasks:
                - {name: bad, collections: [{x: 1}], settle: {path: /tmp/x, content: a}}
            """,
    })
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path))
    from gfsdeploy.playbook import load_playbook
    from gfsdeploy.runner import _module

    book = load_playbook(str(tmp_path / "pb" / "site.yaml"))
    where = {t.name: _module(t).source.path for t in book.tasks()}
    acme = str(tmp_path / "ansible_collections/acme/tools")
    kit = str(tmp_path / "ansible_collections/other/kit")
    library = str(tmp_path / "pb" / "library")
    assert where["play level"].startswith(acme) and where["in block"].startswith(acme)
    assert where["own list"].startswith(kit)
    assert where["in plain role"].startswith(library)   # the play's list does not reach roles
    assert where["in kitted role"].startswith(kit)
    with pytest.raises(PlaybookError) as err:
        load_playbook(str(tmp_path / "pb" / "bad.yaml"))
    assert "bad.yaml" in str(err.value) and "collections" in str(err.value)
