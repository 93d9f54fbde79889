"""A package step on a node whose package manager is busy or was interrupted (a killed
run leaves both behind), for real on a lab node over SSH:

- another process holds dpkg's lock: the plan names it (a `!` line), apply waits with
  progress ("waiting for flock, pid N, to finish") and installs once it is released;
- dpkg's journal has an unfinished entry: the plan shows `~ repair interrupted dpkg
  (dpkg --configure -a)`, apply runs it before the install, and the journal is empty after.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.lab

PLAYBOOK = """\
- hosts: all
  become: true
  tasks:
    - name: the client
      package: {name: glusterfs-client, state: present}
"""


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from tests.conftest import make_lab

    lab = make_lab(tmp_path_factory, 1)
    try:
        yield lab
    finally:
        lab.down()


def test_lock_wait_and_dpkg_repair(node, tmp_path):
    lab, inv = node, str(node.inventory_path)
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    # an unfinished dpkg journal entry, as a kill during an install leaves it
    lab.exec("k8s-1", ["sh", "-c", "mkdir -p /var/lib/dpkg/updates && : > /var/lib/dpkg/updates/0001"], check=True)
    # the lock held by another process on the node until the test releases it
    lab.exec("k8s-1", ["touch", "/run/hold"], check=True)
    holder = subprocess.Popen(lab.ssh_argv("k8s-1") +
                              ["flock /var/lib/dpkg/lock-frontend sh -c 'while [ -e /run/hold ]; do sleep 0.2; done'"])
    try:
        for _ in range(100):  # until the lock is taken
            if lab.exec("k8s-1", ["flock", "-n", "/var/lib/dpkg/lock-frontend", "true"]).returncode != 0:
                break
            time.sleep(0.1)
        plan = gfs("plan", inv, "-p", str(pb), "--json")
        assert plan.returncode == 2, plan.stdout + plan.stderr
        changes = [c for s in json.loads(plan.stdout)["hosts"]["k8s-1"]["steps"] for c in s["changes"]]
        lines = [(c["action"], c["resource"]) for c in changes]
        held = [r for a, r in lines if a == "!"]
        assert len(held) == 1 and re.match(r"flock \(pid \d+\) holds the package lock /var/lib/dpkg/lock-frontend", held[0])
        assert ("~", "repair interrupted dpkg (dpkg --configure -a)") in lines
        assert ("+", "packages glusterfs-client") in lines

        apply = subprocess.Popen([sys.executable, "-m", "gfsdeploy", "apply", inv, "-p", str(pb)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in apply.stdout:  # progress while it waits; then the holder lets go
            seen.append(line)
            if re.search(r"waiting for flock, pid \d+, to finish", line):
                assert lab.exec("k8s-1", ["test", "-e", "/var/lib/dpkg/updates/0001"]).returncode == 0  # not yet
                lab.exec("k8s-1", ["rm", "-f", "/run/hold"], check=True)
        assert apply.wait(timeout=900) == 0, "".join(seen)
        assert any("waiting for flock" in line for line in seen), "".join(seen)
    finally:
        lab.exec("k8s-1", ["rm", "-f", "/run/hold"])
        holder.wait(timeout=60)
    status = lab.exec("k8s-1", ["sh", "-c", "dpkg -s glusterfs-client | grep Status; ls /var/lib/dpkg/updates"],
                      check=True).stdout
    assert "install ok installed" in status and "0001" not in status
    assert gfs("plan", inv, "-p", str(pb)).returncode == 0
