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
