"""Module arguments validated once per distinct arguments in a run give what
validating them for every host gave: values that are equal but of another type,
a sensitive text, a module that did not declare its validate pure, failures."""

from __future__ import annotations

import contextlib
import io
import json
import textwrap

import pytest

from gfsdeploy.cli import main
from gfsdeploy.errors import PlaybookError
from gfsdeploy.modules.base import Module, Param
from gfsdeploy.modules.files import Copy, File
from gfsdeploy.modules.iptables import Iptables
from gfsdeploy.secrets import Sensitive
from gfsdeploy.validations import Validations


def test_equal_values_of_another_type_are_validated_on_their_own():
    """1 == True (and hash alike): a key without types would let `backup: 1` pass
    because `backup: true` passed before."""
    v, module = Validations(), Copy()
    ok = v.validate(module, {"dest": "/x", "content": "a", "backup": True})
    assert ok["backup"] is True
    with pytest.raises(PlaybookError, match="backup"):
        v.validate(module, {"dest": "/x", "content": "a", "backup": 1})
    with pytest.raises(PlaybookError, match="backup"):  # a failure is not kept either
        v.validate(module, {"dest": "/x", "content": "a", "backup": 1})


def test_a_sensitive_text_keeps_its_type():
    v, module = Validations(), Copy()
    v.validate(module, {"dest": "/x", "content": "pw"})
    out = v.validate(module, {"dest": "/x", "content": Sensitive("pw")})
    assert type(out["content"]) is Sensitive


def test_each_caller_gets_its_own_copy():
    v, module = Validations(), Iptables()
    first = v.validate(module, {"chain": "INPUT", "ctstate": ["NEW"]})
    first["ctstate"].append("ESTABLISHED")
    first["chain"] = "changed"
    again = v.validate(module, {"chain": "INPUT", "ctstate": ["NEW"]})
    assert again["ctstate"] == ["NEW"] and again["chain"] == "INPUT"
    assert again["match"] == [] and again["match"] is not first["match"]


def test_different_arguments_and_modules_are_not_mixed():
    v, file, copy = Validations(), File(), Copy()
    assert v.validate(file, {"path": "/a", "state": "directory"})["path"] == "/a"
    assert v.validate(file, {"path": "/b", "state": "directory"})["path"] == "/b"
    assert v.validate(file, {"path": "/b", "state": "directory", "mode": "0700"})["mode"] == "0700"
    assert v.validate(file, {"dest": "/c"})["path"] == "/c"  # (file: dest is path's alias)
    with pytest.raises(PlaybookError, match="src or content"):  # the same arguments, another module
        v.validate(copy, {"dest": "/c"})


class _Counting(Module):
    name = "counting"
    params = {"x": Param()}
    calls = 0

    def validate(self, args, *, where=None):
        type(self).calls += 1
        return super().validate(args, where=where)


class _Pure(_Counting):
    pure_validate = True


class _Inherits(_Pure):
    """Its validate is its own: pure_validate is not inherited."""

    def validate(self, args, *, where=None):
        type(self).calls += 1
        return {"x": args["x"] + "!"}


class _WithSecret(_Pure):
    pure_validate = True
    params = {"x": Param(), "password": Param(sensitive=True)}


@pytest.mark.parametrize("cls, calls", [(_Counting, 3), (_Pure, 1), (_Inherits, 3), (_WithSecret, 3)])
def test_only_modules_declaring_a_pure_validate_are_validated_once(cls, calls):
    v = Validations()
    module = cls()
    cls.calls = 0
    for _ in range(3):
        v.validate(module, {"x": "a"})
    assert cls.calls == calls


def test_hosts_differing_only_in_an_argument_type_get_their_own_files(tmp_path):
    """Host a: mode 644 (an int: decimal, as Ansible reads it = 0o1204); host b: the
    text "644" (octal). Same text, other type: each host gets its own mode."""
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, root: "{tmp_path}", gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts:
            a: {{m: 644}}
            b: {{m: "644"}}
        """))
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - copy: {content: "x\\n", dest: "{{ root }}/f-{{ inventory_hostname }}", mode: "{{ m }}"}
        """))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["apply", str(inv), "-p", str(pb), "--json"])
    assert rc == 0, out.getvalue()
    json.loads(out.getvalue())
    assert (tmp_path / "f-a").stat().st_mode & 0o7777 == 0o1204
    assert (tmp_path / "f-b").stat().st_mode & 0o7777 == 0o644
