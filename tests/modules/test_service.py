"""service: plan tables for systemd and SysV hosts."""

import pytest

from gfsdeploy.errors import ModuleError
from gfsdeploy.modules.base import HostInfo
from gfsdeploy.modules.service import Service, parse_status

HOST = HostInfo(name="k8s-2")
MOD = Service()


def st(init="systemd", exists=True, active="inactive", enabled="disabled"):
    return {"init": init, "exists": exists, "active": active, "enabled": enabled}


@pytest.mark.parametrize("kw, state, expected", [
    # host glusterd must not run: absent unit is a no-op
    ({"name": "glusterd", "state": "stopped", "enabled": False}, st(exists=False), []),
    ({"name": "glusterd", "state": "stopped", "enabled": False}, st(active="active", enabled="enabled"),
     [("-", "service glusterd (stop)", "systemctl stop glusterd"),
      ("~", "service glusterd (boot)", "systemctl disable glusterd")]),
    ({"name": "glusterd", "state": "stopped", "enabled": False}, st(), []),
    ({"name": "iscsid", "state": "started", "enabled": True}, st(active="active", enabled="enabled"), []),
    ({"name": "iscsid", "state": "started"}, st(), [("+", "service iscsid (start)", "systemctl start iscsid")]),
    ({"name": "iscsid", "state": "restarted"}, st(active="active"),
     [("~", "service iscsid (restart)", "systemctl restart iscsid")]),
    ({"name": "iscsid", "state": "reloaded"}, st(active="active"),
     [("~", "service iscsid (reload)", "systemctl reload iscsid")]),
    ({"name": "iscsid", "state": "reloaded"}, st(), [("~", "service iscsid (restart)", "systemctl restart iscsid")]),
    # SysV
    ({"name": "glusterd", "state": "stopped"}, st(init="sysv", active="active"),
     [("-", "service glusterd (stop)", "service glusterd stop")]),
    ({"name": "glusterd", "enabled": False}, st(init="sysv", enabled="enabled"),
     [("~", "service glusterd (boot)",
       "if command -v update-rc.d >/dev/null; then update-rc.d glusterd disable; else chkconfig glusterd off; fi")]),
    # static units count as enabled
    ({"name": "x", "enabled": True}, st(enabled="static"), []),
])
def test_plan(kw, state, expected):
    changes = MOD.plan(MOD.validate(kw), state, HOST)
    assert [(c.action, c.resource, c.script) for c in changes] == expected


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
