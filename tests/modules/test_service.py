"""service: plan tables for systemd and SysV hosts."""

import pytest

from gfsdeploy.errors import ModuleError
from gfsdeploy.modules.base import HostInfo
from gfsdeploy.modules.service import Service, parse_status

HOST = HostInfo(name="k8s-2")
MOD = Service()


def st(init="systemd", exists=True, active="inactive", enabled="disabled"):
    return {"init": init, "exists": exists, "active": active, "enabled": enabled}


# plan table: tests/modules/data/service/*.json (run by test_tables.py)

def test_missing_service_is_known_after_apply_and_fails_plainly_if_still_missing():
    # an earlier task of the same run may install it: the plan says so instead of failing
    [change] = MOD.plan(MOD.validate({"name": "iscsid", "state": "started"}), st(exists=False), HOST)
    assert change.action == "~" and "known after apply" in change.diff
    # if it is still missing when apply gets there, the script fails with the reason
    import subprocess

    done = subprocess.run(["sh", "-c", change.script], capture_output=True, text=True)
    assert done.returncode == 1
    assert "service iscsid does not exist on k8s-2" in done.stderr


def test_masked_cannot_be_enabled():
    with pytest.raises(ModuleError, match="masked"):
        MOD.plan(MOD.validate({"name": "glusterd", "enabled": True}), st(enabled="masked"), HOST)


def test_parse_status():
    assert parse_status("init=systemd\nexists=no\nactive=inactive\nenabled=\n") == st(exists=False)
    assert parse_status("init=sysv\nexists=yes\nactive=active\nenabled=enabled\n") == \
        st(init="sysv", active="active", enabled="enabled")


def test_probe_quotes_name():
    assert "systemctl is-active 'a b.service'" in MOD.probes(MOD.validate({"name": "a b"}), HOST)["service"]


def _run_on_node(tmp_path, args, enabled_answer):
    """Service.apply of a plan made while the unit was missing, run here with a fake
    systemctl (systemd installed, not PID 1: the "offline" case of the lab's nodes)."""
    import os
    import subprocess

    from gfsdeploy.modules.base import TaskContext
    from gfsdeploy.transport.base import Result

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {log}\n"
        f"if [ \"$1\" = is-enabled ]; then [ -n {enabled_answer!r} ] && echo {enabled_answer!r}; exit 1; fi\n"
        "if [ \"$1\" = is-active ]; then echo inactive; exit 3; fi\n"
        f"if [ \"$1\" = cat ]; then [ -n {enabled_answer!r} ]; exit; fi\n"  # (a host whose PID 1 is systemd)
        "exit 0\n")
    (bin_dir / "systemctl").chmod(0o755)

    class Here:
        def run(self, script, **_):
            done = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                                  env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
            return Result(done.returncode, done.stdout, done.stderr)

    validated = MOD.validate(args)
    changes = MOD.plan(validated, st(exists=False), HOST)
    assert MOD.decides_on_node(validated, changes)
    ctx = TaskContext(HOST, Here(), task_name="t")
    result = MOD.apply(validated, changes, ctx)
    calls = log.read_text().splitlines() if log.exists() else []
    return result, [c for c in calls if not c.startswith(("is-", "cat "))]


def test_a_service_missing_when_planned_is_read_again_by_its_script_and_enabled(tmp_path):
    result, calls = _run_on_node(tmp_path, {"name": "gfsunit", "enabled": True}, "disabled")
    assert calls == ["enable gfsunit.service"] and result.changed
    assert "__GFSDEPLOY" not in result.stdout


def test_a_service_missing_when_planned_already_enabled_when_its_script_runs_is_no_change(tmp_path):
    result, calls = _run_on_node(tmp_path, {"name": "gfsunit", "enabled": True}, "enabled")
    assert calls == [] and not result.changed


def test_a_service_still_missing_when_its_script_runs_fails_plainly(tmp_path):
    with pytest.raises(ModuleError, match="service gfsunit does not exist on k8s-2"):
        _run_on_node(tmp_path, {"name": "gfsunit", "enabled": True}, "")
