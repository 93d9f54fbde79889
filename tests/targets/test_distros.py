"""The five targets (CentOS 7, Rocky 8, Rocky 9, Ubuntu 22.04, Debian 12), table-driven:
recorded facts of each distribution (hosts/<target>.yaml: os-release, the cgroup
filesystem, getenforce, firewalld/ufw state, package-manager and pvs outputs…) →
the exact plan (expected/<target>-<playbook>.plan).

The facts go through the real probes of the real modules on fake hosts of the
distribution (fakehost.py), are recorded, and the plan is made from the recordings
by the CLI (``ansible_connection: recorded``) — the same path a benchmark of a
thousand recorded hosts takes. Without root (no fake hosts) the committed
recordings in recordings/ are replayed instead.
"""

from __future__ import annotations

from pathlib import Path

import os

import pytest

from tests.targets import distros
from tests.targets.fakehost import available

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """{(target, name): recordings dir}, made now on fake hosts when possible."""
    work = tmp_path_factory.mktemp("targets")
    cache: dict = {}

    def get(target: str, name: str, *, overrides=None, tags=None, key=None, allow_failures=False):
        key = key or (target, name)
        if key not in cache:
            if available() is None and not os.environ.get("GFS_TARGETS_REPLAY_ONLY"):
                out = work / "rec" / "-".join(map(str, key))
                missing = distros.record(target, distros.PLAYBOOKS.get(name, name), out, overrides=overrides,
                                         tags=tags, allow_failures=allow_failures)
                assert missing == [], f"commands the recorded facts do not answer: {missing}"
                cache[key] = out
            else:
                committed = HERE / "recordings" / target / name
                if overrides or not committed.exists():
                    pytest.skip(f"no fake hosts here ({available()}) and no committed recording")
                cache[key] = committed
        return cache[key]

    get.work = work
    return get


#: what distinguishes the targets in the plan (a line of k8s-2's part of it, by path)
PATHS = {
    "centos7": ["+ packages centos-release-gluster9", "+ packages glusterfs-fuse",
                "~ SELinux boolean virt_use_fusefs (persistent)",
                "+ firewalld port 24007/tcp in zone public (permanent + runtime)"],
    "rocky8": ["+ packages centos-release-gluster9", "+ packages glusterfs-fuse",
               "~ SELinux boolean virt_sandbox_use_fusefs (persistent)",
               "+ firewalld port 49152-49251/tcp in zone public (permanent + runtime)"],
    "rocky9": ["+ packages centos-release-gluster9", "+ packages glusterfs-fuse",
               "~ SELinux boolean virt_use_fusefs (persistent)",
               "+ firewalld port 2222/tcp in zone public (permanent + runtime)"],
    "ubuntu2204": ["+ packages glusterfs-client, thin-provisioning-tools",
                   "+ ufw rule: allow proto tcp from any to any port 49152:49251"],
    "debian12": ["+ packages glusterfs-client, lvm2", "+ iptables chain heketi", "+ iptables -I INPUT -j heketi",
                 "+ /etc/iptables/gfsdeploy-heketi.rules", "+ file /etc/systemd/system/gfsdeploy-iptables-heketi.service"],
}
#: lines no target of that kind may show
NEVER = {"centos7": ["iptables", "ufw"], "rocky8": ["iptables", "ufw"], "rocky9": ["iptables", "ufw"],
         "ubuntu2204": ["SELinux", "firewalld", "iptables", "centos-release"],
         "debian12": ["SELinux", "firewalld", "ufw", "centos-release"]}


NODE_TAGS = ("--tags", ",".join(distros.NODE_TAGS))


@pytest.mark.parametrize("target", distros.TARGETS)
def test_site_plan_per_target(recorded, target):
    """site.yaml's node-side steps (its preflight and preparation) on each target."""
    rec = recorded(target, "site", tags=set(distros.NODE_TAGS))
    plan = distros.plan_from(target, distros.PLAYBOOKS["site"], rec, recorded.work, args=NODE_TAGS)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert distros.plan_text(plan.stdout) == distros.expected_path(target, "site").read_text()


@pytest.mark.parametrize("target", distros.TARGETS)
def test_prepare_plan_per_target(recorded, target):
    # prepare.yaml asks what site.yaml's node-side steps ask: the same recordings answer
    rec = recorded(target, "site", tags=set(distros.NODE_TAGS))
    plan = distros.plan_from(target, distros.PLAYBOOKS["prepare"], rec, recorded.work)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    text = distros.plan_text(plan.stdout)
    assert text == distros.expected_path(target, "prepare").read_text()
    # and, independently of the expected file, the path this distribution takes
    node = text.split("k8s-2:\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.split("    #")[0].strip() for line in node.splitlines() if line.startswith("  ") and
             not line.startswith("      ")]
    for want in PATHS[target]:
        assert want in lines, (want, lines)
    for word in NEVER[target]:
        assert not any(word in line for line in lines), (word, lines)


HEKETI_PV = {
    "commands": {
        "wipefs": [{"args": ["-J", "/dev/sdb"], "stdout": '{"signatures": [{"device": "sdb", "offset": "0x218", '
                    '"type": "LVM2_member", "uuid": "Hs3f0b-0q1T-4Zr5-Qm8D-2Jg6-kLx9-a0PqZb"}]}\n'}],
        "blkid": [{"args_re": "^-p -o export /dev/sdb$",
                   "stdout": "DEVNAME=/dev/sdb\nUUID=Hs3f0b-0q1T-4Zr5-Qm8D-2Jg6-kLx9-a0PqZb\nVERSION=LVM2 001\n"
                             "TYPE=LVM2_member\nUSAGE=raid\n"}],
        "pvs": [
            {"args": ["--help"], "stdout": "  pvs\n\t[    --devicesfile String ]\n"},
            # heketi made the PV inside its pod: the host's devices file does not list it
            {"args_re": "^--devicesfile  --noheadings",
             "stdout": "  /dev/sdb|vg_3c1e3a0f0b1b4f6c8f1e7d0a9b2c4d6e\n"},
            {"args_re": "^--noheadings", "rc": 5, "stderr": "  Cannot use /dev/sdb: device is not in devices file\n"},
        ],
    },
}


def test_rocky9_rerun_sees_heketi_pvs_through_the_devices_file(recorded):
    """A re-run after a deployment: the disk carries heketi's PV, which the host's LVM
    devices file hides from a plain `pvs`; the preflight passes (it is heketi's)."""
    rec = recorded("rocky9", "playbooks/preflight.yaml", overrides=HEKETI_PV, tags={"devices"},
                   key=("rocky9", "heketi-pv"))
    plan = distros.plan_from("rocky9", "playbooks/preflight.yaml", rec, recorded.work, args=("--tags", "devices"))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes" in plan.stdout
    # the same disk where LVM has no --devicesfile and pvs cannot see the PV: refused, as before the fix
    hidden = {"commands": {**HEKETI_PV["commands"], "pvs": [
        {"args": ["--help"], "stdout": "  pvs\n"},
        {"args_re": "^--noheadings", "rc": 5, "stderr": "  Cannot use /dev/sdb: device is not in devices file\n"}]}}
    rec = recorded("rocky9", "playbooks/preflight.yaml", overrides=hidden, tags={"devices"},
                   key=("rocky9", "hidden-pv"), allow_failures=True)
    plan = distros.plan_from("rocky9", "playbooks/preflight.yaml", rec, recorded.work, args=("--tags", "devices"))
    assert plan.returncode == 1
    assert "k8s-1:/dev/sdb has an LVM physical volume" in plan.stdout + plan.stderr


def test_cgroup_and_runtime_reported_and_judged(recorded):
    """Preflight on the nodes: each target's cgroup mode and runtime versions pass; a
    cgroup v2 node with a runc older than 1.0.0-rc93 is refused with the remedy."""
    for target, mode in (("centos7", "v1"), ("rocky9", "v2")):
        rec = recorded(target, "playbooks/preflight.yaml", tags={"cgroup"}, key=(target, "cgroup"))
        plan = distros.plan_from(target, "playbooks/preflight.yaml", rec, recorded.work,
                                 args=("--tags", "cgroup", "-v"))
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert f"k8s-1: cgroup {mode} (" in plan.stdout, plan.stdout
    old = {"commands": {"runc": [{"args": ["--version"], "stdout": "runc version 1.0.0-rc10\nspec: 1.0.1-dev\n"}]}}
    rec = recorded("debian12", "playbooks/preflight.yaml", overrides=old, tags={"cgroup"}, key=("debian12", "old-runc"),
                   allow_failures=True)
    plan = distros.plan_from("debian12", "playbooks/preflight.yaml", rec, recorded.work, args=("--tags", "cgroup"))
    assert plan.returncode == 1
    text = plan.stdout + plan.stderr
    assert "runc 1.0.0-rc10, needs 1.0.0-rc93 or newer" in text and "systemd.unified_cgroup_hierarchy=0" in text
