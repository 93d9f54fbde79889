"""What the host side does with a packed module, on this machine's own shell (the local
transport): the private cache keyed by sha256, shipping only when absent, the result
and its failures, script and binary-style modules. Results are checked on disk."""

from __future__ import annotations

import json
import os
import stat

import pytest

from gfsdeploy import ansible_protocol as ap
from gfsdeploy import modules
from gfsdeploy.transport.local import LocalTransport
from tests.ansible_protocol.conftest import SETTLE, write_tree

pytest.importorskip("ansible.module_utils.basic", reason="ansible-core (the `test` extra) packs modules")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None


def run(packed, args, *, cache, ship, check=False, interpreter=PYTHON):
    params = ap.module_args(packed, args, check=check, diff=True, no_log=False, verbosity=0)
    answer = LocalTransport("local").run(ap.script(packed, params, interpreter=interpreter, ship=ship,
                                                   cache=str(cache)))
    return ap.parse_output(answer.stdout, answer.stderr, answer.rc)


@pytest.fixture
def settle(tmp_path):
    write_tree(tmp_path / "pb", {"library/settle.py": SETTLE})
    modules.add_search_path(str(tmp_path / "pb"))
    return ap.pack(modules.get("settle").source)


def test_shipped_once_then_run_from_the_hosts_cache(settle, tmp_path):
    cache, target = tmp_path / "cache", tmp_path / "out.txt"
    # not on the host yet: the run asks for the payload and does nothing else
    assert ap.need_payload(run(settle, {"path": str(target), "content": "x\n"}, cache=cache, ship=False))
    assert not target.exists()
    result = run(settle, {"path": str(target), "content": "x\n"}, cache=cache, ship=True)
    assert result["changed"] is True and target.read_text() == "x\n"
    tree = cache / settle.sha
    assert (tree / ".gfsdeploy-complete").read_text() == settle.sha
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    # from now on the payload is not sent again
    result = run(settle, {"path": str(target), "content": "y\n"}, cache=cache, ship=False)
    assert result["changed"] is True and target.read_text() == "y\n"


def test_check_mode_reports_the_change_and_diff_without_making_it(settle, tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    result = run(settle, {"path": str(target), "content": "new\n"}, cache=tmp_path / "c", ship=True, check=True)
    assert result["changed"] is True and target.read_text() == "old\n"
    assert result["diff"]["before"] == "old\n" and result["diff"]["after"] == "new\n"


def test_a_cache_others_can_write_is_not_trusted(settle, tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir()
    os.chmod(cache, 0o777)
    target = tmp_path / "out.txt"
    assert run(settle, {"path": str(target), "content": "z\n"}, cache=cache, ship=True)["changed"] is True
    assert target.read_text() == "z\n"
    assert os.listdir(cache) == []   # ran from a throw-away copy instead
    # and without the payload it asks for it rather than running anything from there
    assert ap.need_payload(run(settle, {"path": str(target), "content": "w\n"}, cache=cache, ship=False))


def test_damaged_cache_entry_is_replaced(settle, tmp_path):
    cache, target = tmp_path / "cache", tmp_path / "out.txt"
    run(settle, {"path": str(target), "content": "1\n"}, cache=cache, ship=True)
    os.remove(cache / settle.sha / ".gfsdeploy-complete")     # an interrupted unpack looks like this
    assert ap.need_payload(run(settle, {"path": str(target), "content": "2\n"}, cache=cache, ship=False))
    assert run(settle, {"path": str(target), "content": "2\n"}, cache=cache, ship=True)["changed"] is True
    assert target.read_text() == "2\n"


def test_failures_come_back_as_results(tmp_path):
    write_tree(tmp_path / "pb", {
        "library/raises.py": "#!/usr/bin/python\nfrom ansible.module_utils.basic import AnsibleModule\n"
                             "AnsibleModule(argument_spec={})\nraise RuntimeError('boom')\n",
        "library/fails.py": "#!/usr/bin/python\nfrom ansible.module_utils.basic import AnsibleModule\n"
                            "m = AnsibleModule(argument_spec=dict(n=dict(type='int')))\n"
                            "m.fail_json(msg='no good', rc=4)\n",
    })
    modules.add_search_path(str(tmp_path / "pb"))
    raised = run(ap.pack(modules.get("raises").source), {}, cache=tmp_path / "c", ship=True)
    assert raised["failed"] and "boom" in str(raised)
    failed = run(ap.pack(modules.get("fails").source), {"n": 3}, cache=tmp_path / "c", ship=True)
    assert failed["failed"] and failed["msg"] == "no good" and failed["rc"] == 4
    # the module validates its own arguments (here: a type it cannot convert)
    invalid = run(ap.pack(modules.get("fails").source), {"n": "three"}, cache=tmp_path / "c", ship=True)
    assert invalid["failed"] and "n" in invalid["msg"]


def test_no_python_is_a_clear_failure(settle, tmp_path):
    result = run(settle, {"path": str(tmp_path / "x")}, cache=tmp_path / "c", ship=True,
                 interpreter="/nonexistent/python9")
    assert result["failed"] and "interpreter was not found" in result["msg"]


def test_want_json_and_old_style_script_modules(tmp_path):
    write_tree(tmp_path / "pb", {
        # WANT_JSON: the arguments file is JSON
        "library/jsonish": "#!/bin/sh\n# WANT_JSON\nprintf '{\"changed\": false, \"args\": %s}\\n' \"$(cat \"$1\")\"\n",
        # old style: the arguments file is k=v words a shell can source
        "library/oldish": "#!/bin/sh\n. \"$1\"\nprintf '{\"changed\": true, \"name\": \"%s\"}\\n' \"$name\"\n",
    })
    modules.add_search_path(str(tmp_path / "pb"))
    jsonish = ap.pack(modules.get("jsonish").source)
    assert jsonish.source.style == "want_json"
    result = run(jsonish, {"name": "it's"}, cache=tmp_path / "c", ship=True)
    assert result["args"]["name"] == "it's" and result["args"]["_ansible_check_mode"] is False
    oldish = ap.pack(modules.get("oldish").source)
    assert oldish.source.style == "old"
    assert ap.need_payload(run(oldish, {"name": "a b"}, cache=tmp_path / "c", ship=False))
    assert run(oldish, {"name": "a b"}, cache=tmp_path / "c", ship=True)["name"] == "a b"
    assert run(oldish, {"name": "c"}, cache=tmp_path / "c", ship=False)["name"] == "c"


def test_ansible_core_module_runs(tmp_path):
    """ansible.builtin.replace, from the installed ansible-core, on a file of ours."""
    target = tmp_path / "conf"
    target.write_text("level=1\nother=2\n")
    packed = ap.pack(modules.get("ansible.builtin.replace").source)
    args = {"path": str(target), "regexp": "^level=.*$", "replace": "level=3"}
    checked = run(packed, args, cache=tmp_path / "c", ship=True, check=True)
    assert checked["changed"] is True and target.read_text() == "level=1\nother=2\n"
    assert "+level=3" in ap.render_diff(checked["diff"])
    done = run(packed, args, cache=tmp_path / "c", ship=False)
    assert done["changed"] is True and target.read_text() == "level=3\nother=2\n"
    assert run(packed, args, cache=tmp_path / "c", ship=False)["changed"] is False
    assert json.loads(json.dumps(done))["invocation"]["module_args"]["path"] == str(target)
