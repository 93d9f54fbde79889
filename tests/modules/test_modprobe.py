"""modprobe: plan tables (args + probe state -> changes)."""

import subprocess

import pytest

from gfsdeploy.errors import PreflightError
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.modules.modprobe import Modprobe
from gfsdeploy.transport.base import Result

HOST = HostInfo(name="k8s-2", os_family="debian")
MOD = Modprobe()
GLUSTER = "/etc/modules-load.d/glusterfs.conf"


def state(loaded=False, loadable=True, why="", load_file=None, options_file=None):
    return {"loaded": loaded, "loadable": loadable, "why": [why], "load_file": load_file,
            "options_file": options_file}


def plan(st, **kw):
    return [(c.action, c.resource) for c in MOD.plan(MOD.validate(kw), st, HOST)]


# plan table: tests/modules/data/modprobe/*.json (run by test_tables.py)

def test_unloadable_fails_plainly():
    with pytest.raises(PreflightError) as err:
        plan(state(loadable=False, why="no /proc/modules (kernel without loadable module support, or a container)"),
             name="dm_thin_pool", why="heketi will fail with 'thin: Required device-mapper target(s) not detected'")
    text = str(err.value)
    assert "kernel on k8s-2 cannot load module dm_thin_pool: no /proc/modules" in text
    assert "thin: Required device-mapper target(s) not detected" in text
    assert "kernel_modules_unloadable: warn" in text


def test_unloadable_warn_is_a_visible_warning_and_persistence_still_planned():
    changes = MOD.plan(MOD.validate({"name": "dm_thin_pool", "on_unloadable": "warn", "persistent": "present",
                                     "persistent_file": GLUSTER}),
                       state(loadable=False, why="modprobe: FATAL: Module dm_thin_pool not found"), HOST)
    assert [c.action for c in changes] == ["!", "+"]
    assert changes[0].resource.startswith("kernel on k8s-2 cannot load module dm_thin_pool: modprobe: FATAL")
    assert changes[0].script == ""


def test_read_parses_probes():
    facts = {"loaded": Result(0, "no\n"), "loadable": Result(1, "no /proc/modules (x)\n"),
             "load_file": Result(0, "__ABSENT__\n")}
    st = MOD.read(MOD.validate({"name": "dm_mirror", "persistent": "present"}), facts, None)
    assert st["loadable"] is False and st["why"] == ["no /proc/modules (x)"] and st["load_file"] is None


def test_scripts_append_and_remove_keep_user_lines(tmp_path):
    path = tmp_path / "glusterfs.conf"
    path.write_text("# user comment\ndm_thin_pool")  # no trailing newline
    args = MOD.validate({"name": "dm_snapshot", "persistent": "present", "persistent_file": str(path)})
    [change] = MOD.plan(args, state(loaded=True, load_file=path.read_text()), HOST)
    subprocess.run(["sh", "-c", change.script], check=True)
    assert path.read_text() == "# user comment\ndm_thin_pool\ndm_snapshot\n"
    args = MOD.validate({"name": "dm_thin_pool", "persistent": "absent", "persistent_file": str(path)})
    [change] = MOD.plan(args, state(loaded=True, load_file=path.read_text()), HOST)
    subprocess.run(["sh", "-c", change.script], check=True)
    assert path.read_text() == "# user comment\ndm_snapshot\n"


def test_probes_are_read_only_and_quoted():
    probes = MOD.probes(MOD.validate({"name": "dm_mirror", "persistent": "present",
                                      "persistent_file": "/etc/modules-load.d/my file.conf"}), HOST)
    assert "modprobe -n dm_mirror" in probes["loadable"]
    assert "'/etc/modules-load.d/my file.conf'" in probes["load_file"]


def test_apply_reports_unloadable_plainly():
    class Fake:
        def run(self, script, timeout=None, kind="run"):
            out = subprocess.run(["sh", "-c", script.replace("modprobe ", "false ")], capture_output=True, text=True)
            return Result(out.returncode, out.stdout, out.stderr)

    changes = MOD.plan(MOD.validate({"name": "dm_thin_pool"}), state(), HOST)
    ctx = TaskContext(HOST, Fake(), task_name="kernel modules")
    with pytest.raises(Exception) as err:
        MOD.apply({}, changes, ctx)
    assert "cannot load kernel module dm_thin_pool" in str(err.value)


@pytest.mark.parametrize("hostvars, arg, action", [
    ({"kernel_modules_unloadable": "warn"}, None, "!"),
    ({"kernel_modules_unloadable": "warn"}, "fail", "raise"),
    ({}, "warn", "!"),
    ({}, None, "raise"),
])
def test_unloadable_policy_from_inventory_var(hostvars, arg, action):
    host = HostInfo(name="k8s-2", vars=hostvars)
    kw = {"name": "dm_thin_pool", **({"on_unloadable": arg} if arg else {})}
    if action == "raise":
        with pytest.raises(PreflightError):
            MOD.plan(MOD.validate(kw), state(loadable=False, why="x"), host)
    else:
        assert [c.action for c in MOD.plan(MOD.validate(kw), state(loadable=False, why="x"), host)] == ["!"]
