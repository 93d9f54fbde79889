"""command, shell, debug: real runs through LocalTransport (rc, stdout, stderr,
creates/removes, stdin, chdir). Their plan tables (args + ``{"creates": bool, "removes":
bool}`` → changes) are data/command/*.json, run by test_tables.py."""

import pathlib

import pytest

from tests.modules.tables import load

from gfsdeploy import modules
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.local import LocalTransport

DATA = pathlib.Path(__file__).parent / "data" / "command"
HOST = HostInfo("h1")



# plan table: tests/modules/data/command/*.json (run by test_tables.py)
@pytest.mark.parametrize("row", [p for p in load(DATA) if "error" not in p.values[0]])
def test_probes_only_for_creates_and_removes(row):
    module = modules.get(row["module"])
    args = module.validate(row["args"])
    assert set(module.probes(args, HOST)) == {k for k in ("creates", "removes") if args.get(k)}


def ctx():
    return TaskContext(HOST, LocalTransport("h1"), task_name="t")


def run(name, args, context=None):
    """probe → read → plan → apply, as the runner does."""
    context = context or ctx()
    module = modules.get(name)
    args = module.validate(args)
    facts = context.transport.read_many(module.probes(args, HOST))
    changes = module.plan(args, module.read(args, facts, context), HOST)
    return changes, module.apply(args, changes, context)


def test_command_runs_without_a_shell(tmp_path):
    changes, result = run("command", {"cmd": "printf '%s|' a 'b c' ; echo"})
    assert result.changed and not result.failed and result.rc == 0
    assert result.stdout == "a|b c|;|echo|"  # ';' and 'echo' are arguments, trailing newline stripped
    assert result.as_register()["stdout_lines"] == ["a|b c|;|echo|"]


def test_command_expands_home_and_keeps_unknown_vars(tmp_path):
    _, result = run("command", {"argv": ["echo", "$HOME", "${NO_SUCH_VAR_X}", "~"]})
    import os
    home = os.path.expanduser("~")
    assert result.stdout == f"{home} ${{NO_SUCH_VAR_X}} {home}"


def test_shell_runs_through_sh_with_chdir_and_stdin(tmp_path):
    (tmp_path / "f").write_text("x")
    _, result = run("shell", {"cmd": "ls; tr a-z A-Z", "chdir": str(tmp_path), "stdin": "hello $(nope) 'q'"})
    assert result.stdout == "f\nHELLO $(NOPE) 'Q'"


def test_command_does_not_eat_the_script():
    # a command that reads stdin must not swallow what sh -s is still reading
    _, result = run("shell", {"cmd": "cat; echo after"})
    assert result.stdout == "after"


def test_failure_is_reported_with_stderr():
    _, result = run("shell", {"cmd": "echo out; echo boom >&2; exit 3"})
    assert result.failed and result.rc == 3 and result.stdout == "out" and result.stderr == "boom"
    assert "non-zero return code 3" in result.msg and "boom" in result.msg


def test_missing_chdir_fails():
    _, result = run("command", {"cmd": "true", "chdir": "/no/such/dir/x"})
    assert result.failed


def test_creates_and_removes_live(tmp_path):
    marker = tmp_path / "done"
    args = {"cmd": f"touch {marker}", "creates": str(marker)}
    changes, result = run("command", args)
    assert changes and result.changed and marker.exists()
    changes, result = run("command", args)
    assert changes == [] and not result.changed and result.stdout == f"skipped, since {marker} exists"
    assert result.as_register()["msg"] == f"Did not run command since '{marker}' exists"
    changes, result = run("command", {"cmd": f"rm {marker}", "removes": str(tmp_path / "*")})
    assert changes and result.changed and not marker.exists()
    changes, result = run("command", {"cmd": f"rm {marker}", "removes": str(marker)})
    assert changes == [] and not result.changed


def test_debug_msg_and_var():
    module = modules.get("debug")
    assert module.read_only
    context = ctx()
    context.variables = {"result": {"stdout_lines": ["a", "b"]}}
    assert module.plan(module.validate({"msg": "hi"}), {}, HOST) == []
    assert module.apply(module.validate({"msg": "hi"}), [], context).msg == "hi"
    res = module.apply(module.validate({"var": "result.stdout_lines[1]"}), [], context)
    assert res.msg == "result.stdout_lines[1]: b" and not res.changed
    assert "NOT DEFINED" in module.apply(module.validate({"var": "nope.x"}), [], context).msg
