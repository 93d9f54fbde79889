"""package / apt / yum / dnf: plan tables per OS family, probe parsing, progress."""

import pytest

from gfsdeploy.errors import ModuleError, PreflightError
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.modules.package import Apt, Package, _parse_upgradable
from gfsdeploy.transport.base import Result

DEBIAN = HostInfo(name="k8s-1", os_family="debian", os_id="debian")
UBUNTU = HostInfo(name="k8s-2", os_family="debian", os_id="ubuntu")
ROCKY = HostInfo(name="k8s-3", os_family="redhat", os_id="rocky")
CENTOS7 = HostInfo(name="k8s-4", os_family="redhat", os_id="centos", os_version="7")
APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"


def st(installed=(), tools=("apt-get",), upgradable=()):
    return {"installed": list(installed), "tools": list(tools), "upgradable": list(upgradable)}


# plan table: tests/modules/data/package/*.json (run by test_tables.py)

def test_family_module_on_wrong_family_is_refused():
    with pytest.raises(PreflightError, match="module 'apt' manages debian packages but k8s-3 is redhat"):
        Apt().probes(Apt().validate({"name": "lvm2"}), ROCKY)


def test_no_package_manager():
    with pytest.raises(ModuleError, match="no package manager for OS family 'redhat'"):
        Package().plan(Package().validate({"name": "lvm2"}), st([], tools=()), ROCKY)


def test_probes_ask_the_host_s_own_tool_whatever_the_facts_say():
    """A first read is batched before the host's facts are known: the probe itself picks
    dpkg-query or rpm, so it is right on either family (run here, on Debian, for real)."""
    import subprocess

    args = Package().validate({"name": ["glusterfs-client", "lvm2"]})
    probes = {h.name: Package().probes(args, h) for h in (DEBIAN, ROCKY, HostInfo("new"))}
    assert probes["k8s-1"] == probes["k8s-3"] == probes["new"]
    installed = probes["new"]["installed"]
    assert "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' glusterfs-client lvm2" in installed
    assert "rpm -q --qf '%{NAME} installed\\n' glusterfs-client lvm2" in installed
    out = subprocess.run(["sh", "-c", installed], capture_output=True, text=True).stdout
    assert "lvm2 installed" in out  # this machine is Debian with lvm2: dpkg-query answered


@pytest.mark.parametrize("host, output, installed", [
    (DEBIAN, "lvm2 installed\nglusterfs-client not-installed\nthin-provisioning-tools config-files\n", ["lvm2"]),
    (ROCKY, "lvm2 installed\npackage glusterfs-fuse is not installed\n", ["lvm2"]),
])
def test_read_installed(host, output, installed):
    module = Package()
    ctx = TaskContext(host, None)
    state = module.read(module.validate({"name": ["x"]}),
                        {"tool": Result(0, "apt-get\n"), "installed": Result(0, output)}, ctx)
    assert state["installed"] == installed


def test_parse_upgradable():
    policy = ("lvm2:\n  Installed: 2.03.11-2.1\n  Candidate: 2.03.16-2\n  Version table:\n"
              "glusterfs-client:\n  Installed: (none)\n  Candidate: 10.3-5\n"
              "wipe:\n  Installed: 1.0\n  Candidate: 1.0\n")
    assert _parse_upgradable(policy, "debian") == {"lvm2"}
    check = "\nlvm2.x86_64    8:2.03.21-3.el9    baseos\nObsoleting Packages\n"
    assert _parse_upgradable(check, "redhat") == {"lvm2"}


def test_apply_reports_progress_before_the_long_command():
    events = []

    class Fake:
        def run(self, script, timeout=None, kind="run"):
            events.append(("run", script.splitlines()[-1], timeout))
            return Result(0, "done")

    module = Package()
    changes = module.plan(module.validate({"name": ["glusterfs-client", "lvm2"]}), st([]), UBUNTU)
    ctx = TaskContext(UBUNTU, Fake(), progress=lambda m: events.append(("progress", m)))
    result = module.apply({}, changes, ctx)
    assert events[0] == ("progress", "installing glusterfs-client, lvm2 on k8s-2…")
    assert events[1][0] == "run" and events[1][2] >= 600
    assert result.changed


def test_a_plan_of_one_script_joins_a_batch_and_its_script_is_the_one_apply_runs():
    """gfsdeploy/batch.py captures the first script apply runs: for one install (the dpkg
    repair folded in) that is the whole apply; a plan with a second script stays out."""
    from gfsdeploy import batch
    from gfsdeploy.modules.base import WARN, Change

    module = Package()
    assert batch.batchable(module) and batch.batchable(Apt())
    args = module.validate({"name": ["lvm2", "jq"], "state": "latest"})
    one = module.plan(args, st(["jq"], upgradable=()), DEBIAN)
    assert module.joins_batch(args, one)
    two = module.plan(args, st(["jq"], upgradable=["jq"]), DEBIAN)
    assert len([c for c in two if c.action != WARN]) == 2 and not module.joins_batch(args, two)
    repair = [Change(WARN, "a lock"), Change("~", "repair", script="dpkg --configure -a", data={"repair": True})]
    assert module.joins_batch(args, repair + one)

    said = []
    ctx = TaskContext(DEBIAN, None, task_name="t", progress=said.append)
    script, timeout = batch.capture(module, args, one, ctx)
    assert "apt-get" in script and "lvm2" in script and timeout
    assert said == []  # (not said while its script is captured: the batch says it as it runs it)
    kept = []
    assert batch.capture(module, args, one, ctx, kept)[0] == script
    assert len(kept) == 1 and kept[0].startswith("installing lvm2 on k8s-1")
