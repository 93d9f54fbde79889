"""package apply on hosts whose repositories or locks misbehave, with a scripted host
(what each round trip returned), checking the commands sent and what the user sees."""

from __future__ import annotations

import pytest

from gfsdeploy.errors import ModuleError
from gfsdeploy.modules import package as pkg
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.base import Result

CENTOS7 = HostInfo(name="k8s-1", os_family="redhat", os_id="centos", os_version="7")
DEBIAN = HostInfo(name="k8s-2", os_family="debian", os_id="debian", os_version="12")


class Scripted:
    """Answers each run() with the next result; remembers the scripts."""

    def __init__(self, *results):
        self.results = list(results)
        self.scripts = []

    def run(self, script, timeout=None, kind="run", **_):
        self.scripts.append(script)
        return self.results.pop(0)


def apply(host, kw, state, *results):
    module = pkg.Package()
    args = module.validate(kw)
    changes = module.plan(args, state, host)
    transport = Scripted(*results)
    seen = []
    ctx = TaskContext(host, transport, task_name="t", progress=seen.append)
    return module.apply(args, changes, ctx), transport.scripts, seen


def st(tools, installed=(), **extra):
    return {"tools": list(tools), "installed": list(installed), "upgradable": [], "locks": [], **extra}


def test_dead_el_repository_is_named_and_the_install_retried_without_it():
    dead = Result(1, "", "Loaded plugins: fastestmirror\nCannot find a valid baseurl for repo: base/7/x86_64\n")
    result, scripts, seen = apply(CENTOS7, {"name": "glusterfs-fuse", "update_cache": True}, st(["yum"]),
                                  dead, Result(0, "Installed: glusterfs-fuse", ""))
    assert result.changed
    assert "yum -q -y makecache" in scripts[0] and "--disablerepo" not in scripts[0]
    assert "yum -y -q --disablerepo=base install glusterfs-fuse" in scripts[1]
    assert any("repositories failing on k8s-1: base; retrying without them" in m for m in seen)


def test_install_failing_anyway_names_the_repositories():
    dead = Result(1, "", "failure: repodata/repomd.xml from kubernetes: [Errno 256] No more mirrors to try.\n"
                         "No package glusterfs-fuse available.\n")
    with pytest.raises(ModuleError) as err:
        apply(CENTOS7, {"name": "glusterfs-fuse"}, st(["yum"]), dead, dead)
    assert "these repositories failed: kubernetes" in str(err.value)
    assert "fix or disable the failing repositories" in (err.value.fix or "")


def test_apt_refresh_failure_is_named_and_the_install_goes_on():
    out = ("E: The repository 'https://apt.kubernetes.io kubernetes-xenial Release' does not have a Release file.\n"
           "__REFRESH_FAILED__\n")
    result, scripts, seen = apply(DEBIAN, {"name": "glusterfs-client", "update_cache": True}, st(["apt-get"]),
                                  Result(0, "", out))
    assert result.changed and len(scripts) == 1
    assert "apt-get -y -q -o DPkg::Lock::Timeout=120" in scripts[0] and "__REFRESH_FAILED__" in scripts[0]
    assert any("refresh failed for https://apt.kubernetes.io" in m for m in seen), seen


def test_a_held_lock_is_waited_for_with_progress(monkeypatch):
    monkeypatch.setattr(pkg, "LOCK_POLL", 0)
    held = Result(pkg.LOCKED_RC, "", "__LOCKED__ 148 apt-get /var/lib/dpkg/lock-frontend\n")
    result, scripts, seen = apply(DEBIAN, {"name": "glusterfs-client"}, st(["apt-get"]),
                                  held, held, Result(0, "done", ""))
    assert result.changed and len(scripts) == 3
    assert seen.count("waiting for apt-get, pid 148, to finish") == 1  # said once, not per poll


def test_a_lock_never_released_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(pkg, "LOCK_POLL", 0)
    held = Result(pkg.LOCKED_RC, "", "__LOCKED__ 7 yum /var/run/yum.pid\n")
    with pytest.raises(ModuleError) as err:
        apply(CENTOS7, {"name": "glusterfs-fuse", "lock_timeout": 0}, st(["yum"]), held, held)
    assert "yum (pid 7) still holds the package lock /var/run/yum.pid after 0s" in str(err.value)
    assert "ps -fp 7" in err.value.fix


def test_dpkg_repair_runs_before_the_install():
    state = st(["apt-get"], dpkg_interrupted=True, dpkg_pending=["glusterfs-common"])
    result, scripts, _ = apply(DEBIAN, {"name": "glusterfs-client"}, state, Result(0, "", ""))
    body = scripts[0]
    assert body.index("dpkg --force-confdef --force-confold --configure -a") < body.index("install glusterfs-client")
