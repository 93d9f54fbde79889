"""Batched changes beyond files (gfsdeploy/batch.py), on the lab over real SSH: a group,
the users in it, a sysctl, a line and files — the usual shape of node preparation —
apply in one script per host after the read, each task still reported on its own,
and the nodes are checked independently (getent, sysctl, the files read back).
A user planned while its group did not exist yet stays in the batch: its plan does
not depend on the group (its script checks the group itself when it runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.lab

PLAYBOOK = """\
- hosts: gluster
  gather_facts: false
  tasks:
    - name: group
      group: {name: gbapp, state: present}
    - name: users
      user: {name: "{{ item }}", group: gbapp, shell: /bin/sh, create_home: false}
      loop: [gbalice, gbbob]
    - name: directory
      file: {path: /opt/gbapp, state: directory, mode: "0750", group: gbapp}
    - name: config
      copy: {dest: /opt/gbapp/app.conf, content: "node={{ inventory_hostname }}\\n", mode: "0640", group: gbapp}
    - name: forwarding
      sysctl: {name: net.ipv4.ip_forward, value: "1", sysctl_file: /etc/sysctl.d/90-gb.conf, reload: true}
    - name: limits
      lineinfile: {path: /etc/security/limits.d/gb.conf, line: "gbalice soft nofile 65536", create: true}
"""


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=600)


def sh(lab, node, script):
    return lab.exec(node, ["sh", "-c", script], check=True).stdout


def test_accounts_sysctl_and_files_apply_in_one_batch(fresh_lab, tmp_path):
    lab, inv = fresh_lab, str(fresh_lab.inventory_path)
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent(PLAYBOOK))
    apply = gfs("apply", inv, "-p", str(pb), "--json")
    assert apply.returncode == 0, apply.stdout[-3000:] + apply.stderr
    data = json.loads(apply.stdout)
    for node in lab.nodes:
        host = data["hosts"][node.name]
        # the read, then every change in one script (the master also takes the run's lock)
        extra = 1 if node.name == "k8s-1" else 0
        assert host["round_trips"] <= 2 + extra, (node.name, host["round_trips"])
        status = {s["task"]: s["status"] for s in host["steps"]}
        assert status["group"] == "changed" and status["users"] == "changed", status
        assert status["directory"] == status["config"] == status["limits"] == "changed", status
        assert status["forwarding"] == "changed", status  # (its file is new either way)

        # independently, on the node
        assert sh(lab, node.name, "getent group gbapp").startswith("gbapp:x:")
        gid = sh(lab, node.name, "getent group gbapp | cut -d: -f3").strip()
        for user in ("gbalice", "gbbob"):
            entry = sh(lab, node.name, f"getent passwd {user}").strip().split(":")
            assert entry[3] == gid and entry[6] == "/bin/sh", entry
        assert sh(lab, node.name, "sysctl -n net.ipv4.ip_forward").strip() == "1"
        assert sh(lab, node.name, "cat /etc/sysctl.d/90-gb.conf") == "net.ipv4.ip_forward=1\n"
        assert sh(lab, node.name, "cat /opt/gbapp/app.conf") == f"node={node.name}\n"
        assert sh(lab, node.name, "stat -c '%a %G' /opt/gbapp /opt/gbapp/app.conf").split("\n")[:2] == \
            ["750 gbapp", "640 gbapp"]
        assert sh(lab, node.name, "cat /etc/security/limits.d/gb.conf") == "gbalice soft nofile 65536\n"

    again = gfs("apply", inv, "-p", str(pb), "--json")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    for node in lab.nodes:
        host = data["hosts"][node.name]
        assert host["round_trips"] == 1, host["round_trips"]
        assert {s["status"] for s in host["steps"]} == {"ok"}, host["steps"]
    plan = gfs("plan", inv, "-p", str(pb))
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_a_user_whose_group_is_missing_still_fails_plainly_in_the_batch(fresh_lab, tmp_path):
    """The narrower guard does not hide a real problem: nothing creates the group, so the
    user's own script reports it, and the task after it does not run."""
    lab, inv = fresh_lab, str(fresh_lab.inventory_path)
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: k8s-2
          gather_facts: false
          tasks:
            - name: before
              copy: {dest: /opt/gbmissing-before, content: "x\\n"}
            - name: orphan
              user: {name: gborphan, group: gbnosuchgroup, create_home: false}
            - name: after
              copy: {dest: /opt/gbmissing-after, content: "y\\n"}
        """))
    apply = gfs("apply", inv, "-p", str(pb), "--json")
    assert apply.returncode != 0
    steps = {s["task"]: s for s in json.loads(apply.stdout)["hosts"]["k8s-2"]["steps"]}
    assert steps["before"]["status"] == "changed"
    assert steps["orphan"]["status"] == "failed"
    assert "gbnosuchgroup does not exist" in steps["orphan"]["error"]
    assert "after" not in steps or steps["after"]["status"] != "changed"
    assert sh(lab, "k8s-2", "getent passwd gborphan || echo none").strip() == "none"
    assert sh(lab, "k8s-2", "cat /opt/gbmissing-before") == "x\n"
    assert sh(lab, "k8s-2", "test -e /opt/gbmissing-after && echo yes || echo no").strip() == "no"


def test_a_package_install_joins_the_batch_and_the_steps_after_it_are_guarded(fresh_lab, tmp_path):
    """A package install is one script (gfsdeploy/modules/package.py): it joins the host's
    batch. It may change anything, so every step after it in the batch re-checks its read
    on the node first: the files join, and so does the line already there (nothing to
    do, its guard holds). Before: the install alone, a read of everything again, then
    the rest (4 round trips on a node)."""
    lab, inv = fresh_lab, str(fresh_lab.inventory_path)
    pkg = "thin-provisioning-tools"
    assert lab.exec("k8s-3", ["dpkg", "-s", pkg]).returncode != 0
    lab.exec("k8s-3", ["sh", "-c", "printf 'keep=1\\n' > /etc/gbpkg-line.conf"], check=True)
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent(f"""\
        - hosts: k8s-3
          gather_facts: false
          tasks:
            - name: tools
              package: {{name: {pkg}, state: present}}
            - name: config
              copy: {{dest: /etc/gbpkg.conf, content: "after the package\\n", mode: "0644"}}
            - name: a line already there
              lineinfile: {{path: /etc/gbpkg-line.conf, line: "keep=1"}}
            - name: another file
              copy: {{dest: /etc/gbpkg-other.conf, content: "o\\n"}}
        """))
    apply = gfs("apply", inv, "-p", str(pb), "--json")
    assert apply.returncode == 0, apply.stdout[-3000:] + apply.stderr
    host = json.loads(apply.stdout)["hosts"]["k8s-3"]
    status = {s["task"]: s["status"] for s in host["steps"]}
    assert status == {"tools": "changed", "config": "changed", "a line already there": "ok",
                      "another file": "changed"}, status
    # the read, the run's lock (the only host), then one script for all of it
    assert host["round_trips"] == 3, host["round_trips"]
    assert "install ok installed" in lab.exec("k8s-3", ["dpkg", "-s", pkg]).stdout
    assert sh(lab, "k8s-3", "cat /etc/gbpkg.conf /etc/gbpkg-line.conf /etc/gbpkg-other.conf") == \
        "after the package\nkeep=1\no\n"
    again = gfs("apply", inv, "-p", str(pb), "--json")
    host = json.loads(again.stdout)["hosts"]["k8s-3"]
    assert again.returncode == 0 and host["round_trips"] == 1, host
    assert {s["status"] for s in host["steps"]} == {"ok"}, host["steps"]
