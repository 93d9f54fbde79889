"""gfsdeploy's Templar against ansible-core's on the same expressions and variables.

ansible-core is a test dependency; without it these tests fail (they must not
silently pass)."""

import json
import os
import re
import subprocess
import sys

import pytest

from gfsdeploy.errors import TemplateError
from gfsdeploy.templating import Templar
from tests.templating.expressions import EXPRESSIONS, VARS

#: filters whose result order Ansible leaves to a Python set
ORDER_FREE = ("union", "intersect", "difference", "symmetric_difference")
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


@pytest.fixture(scope="module")
def ansible_results():
    request = json.dumps({"vars": VARS, "expressions": EXPRESSIONS, "basedir": DATA})
    proc = subprocess.run([sys.executable, os.path.join(HERE, "ansible_render.py")], input=request,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, f"ansible-core is a test dependency (pip install ansible-core): {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout)
    assert len(results) == len(EXPRESSIONS)
    return dict(zip(EXPRESSIONS, results))


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_same_as_ansible(expression, ansible_results):
    expected = ansible_results[expression]
    templar = Templar([os.path.join(DATA, "templates"), DATA, os.path.join(DATA, "files")])
    try:
        got = {"value": _plain(templar.render(expression, templar.resolve(dict(VARS))))}
    except TemplateError as exc:
        got = {"error": str(exc)}
    if "error" in expected or "error" in got:
        assert ("error" in expected) == ("error" in got), f"ansible: {expected}\ngfsdeploy: {got}"
        return
    if any(re.search(rf"\| (ansible\.builtin\.)?{name}\(", expression) for name in ORDER_FREE):
        # Ansible builds these from a Python set (order arbitrary for strings); gfsdeploy keeps
        # first-seen order, so compare the members
        assert sorted(map(json.dumps, got["value"])) == sorted(map(json.dumps, expected["value"]))
        return
    assert got["value"] == expected["value"]
