"""Preflight (docs/CONTRACT.md, "Preflight") through `gfsdeploy check` on the lab: each refusal names the
host or object, the reason and the fix, and nothing is changed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.lab


def check(inventory, *extra):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", "check", str(inventory), *extra],
                          capture_output=True, text=True, timeout=300)


def variant(lab, tmp_path, edit) -> str:
    data = yaml.safe_load(open(lab.inventory_path))
    edit(data["all"])
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_check_passes_on_a_clean_lab(lab):
    done = check(lab.inventory_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check passed" in done.stdout
    # it says which API server it reached, and its version
    assert lab.api_url in done.stdout and "Kubernetes v1." in done.stdout, done.stdout


def test_storage_node_that_is_not_a_kubernetes_node(lab, tmp_path):
    inv = variant(lab, tmp_path, lambda a: a["hosts"]["k8s-3"].update(k8s_node_name="k8s-9"))
    done = check(inv)
    out = done.stdout + done.stderr
    assert done.returncode == 1
    assert "storage node k8s-9 is not a Kubernetes node" in out
    assert "k8s-1, k8s-2, k8s-3" in out and "k8s_node_name" in out


def test_replica_larger_than_the_storage_nodes(lab, tmp_path):
    inv = variant(lab, tmp_path, lambda a: a["vars"].update(gluster_replica=4))
    done = check(inv)
    assert done.returncode == 1
    assert "replicate:4 needs replica > 1 and at least 4 storage nodes" in done.stdout + done.stderr
    inv = variant(lab, tmp_path, lambda a: a["vars"].update(gluster_replica=1))
    assert check(inv).returncode == 1


def test_dirty_device_is_refused_unless_marked(lab, tmp_path):
    loop = lab.node("k8s-2").devices["/dev/sdb"]
    subprocess.run(["mkfs.ext4", "-q", "-F", loop], check=True)
    try:
        done = check(lab.inventory_path)
        out = done.stdout + done.stderr
        assert done.returncode == 1
        assert "k8s-2:/dev/sdb has an ext4 filesystem" in out and "destroydata: true" in out
        # marked destroydata: check passes (plan shows the wipe as a destroy); nothing was wiped
        inv = variant(lab, tmp_path, lambda a: a["hosts"]["k8s-2"].update(
            devices=[{"name": "/dev/sdb", "destroydata": True}]))
        assert check(inv).returncode == 0
        plan = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", inv, "-p", "playbooks/preflight.yaml"],
                              capture_output=True, text=True, timeout=300)
        assert plan.returncode == 2
        assert "- wipe /dev/sdb" in plan.stdout and "ext4" in plan.stdout
        assert "ext4" in subprocess.run(["blkid", "-p", loop], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["wipefs", "-a", "-q", loop], check=True)


def test_storage_ip_must_be_an_ip(lab, tmp_path):
    inv = variant(lab, tmp_path, lambda a: a["hosts"]["k8s-2"].update(storage_ip="k8s-2.example"))
    done = check(inv)
    assert done.returncode == 1
    assert "storage_ip" in done.stderr and "not an IP address" in done.stderr


def test_kubernetes_126_is_refused(tmp_path_factory):
    from tests.conftest import _free_base, _lab_skip_reason

    reason = _lab_skip_reason()
    if reason:
        pytest.skip(reason)
    import secrets

    from gfsdeploy_glusterfs.lab import Lab

    lab = Lab(name="gv" + secrets.token_hex(2), base=_free_base())
    lab.kubernetes_version = "1.26.3"
    try:
        lab.up(nodes=3, inventory_path=tmp_path_factory.mktemp("k126") / "lab.yaml")
        done = check(lab.inventory_path)
        out = done.stdout + done.stderr
        assert done.returncode == 1
        assert "1.26" in out and "in-tree GlusterFS" in out and "kadalu" in out
    finally:
        lab.down()
