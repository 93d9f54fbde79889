"""A role tree shaped like the former kubespray heketi contrib playbook (roles with
meta dependencies, include_tasks with vars and when, an include looped with
loop_control, register + set_fact + until, templates reading hostvars, a tasks
file of another role) run by ansible-playbook and by gfsdeploy: same files."""

from __future__ import annotations

import subprocess
import sys

from tests.structure.conftest import HERE, ROOT, assert_same

HOSTS = {"n1": {"ip": "10.0.0.1", "disk_device": "/dev/vdb"}, "n2": {"ip": "10.0.0.2", "disk_device": "/dev/vdc"}}
GROUPS = {"control": {"hosts": ["n1"]}, "store-node": {"hosts": ["n1", "n2"]}}


def test_rolesite_matches_ansible_and_converges(site):
    site.copy_tree(HERE / "data" / "rolesite")
    ansible, gfs = site.both("site.yml", HOSTS, groups=GROUPS)
    assert_same(ansible, gfs)
    assert gfs["created"] == "svc-deploy-1 after 3 3\n"
    assert gfs["common-n1"] == "from-provision common \n"  # parents: include_role only, not meta deps
    assert gfs["state/label-n2"] == "storagenode=n2\n"
    assert '"storage": "10.0.0.2", "device": "/dev/vdc"' in gfs["state/storage.json"]
    assert gfs["n2-path"] == "/sbin\n"
    # a second run: the bootstrap is skipped (the service exists), nothing else moves
    ansible2, gfs2 = site.both("site.yml", HOSTS, groups=GROUPS)
    assert_same(ansible2, gfs2)
    assert gfs2["storage-state"] == "present\n" and gfs2["created"] == gfs["created"]
    # and gfsdeploy's third run changes nothing at all
    inv = site.base / "gfsdeploy" / "inventory.yaml"
    plan = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", str(inv), "-p",
                           str(site.base / "src" / "site.yml")], capture_output=True, text=True, timeout=120,
                          cwd=str(ROOT))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    ansible3, gfs3 = site.both("teardown.yml", HOSTS, groups=GROUPS)
    assert_same(ansible3, gfs3)
    assert gfs3["torn-down"] == "n1 n2\n"


def test_graph_shows_where_included_tasks_come_from(site):
    site.copy_tree(HERE / "data" / "rolesite")
    inv = site.inventory("gfsdeploy", HOSTS, groups=GROUPS)
    proc = subprocess.run([sys.executable, "-m", "gfsdeploy", "graph", str(inv), "-p",
                           str(site.base / "src" / "site.yml")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    lay = [line for line in lines if "Apps | Lay down storage" in line]
    assert lay and "role provision" in lay[0] and "roles/provision/tasks/storage.yml:2" in lay[0]
    dep = [line for line in lines if "Common, once per play" in line]
    assert dep and "role provision > common" in dep[0]
    looped = [line for line in lines if "Apps | Label nodes" in line]
    assert looped and "expanded when it runs" in looped[0] and "4 task(s)" in looped[0]

