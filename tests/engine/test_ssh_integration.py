"""The real CLI over real SSH (sshd on 127.0.0.1): plan, apply, idempotence,
host-key handling. Results are checked by reading the files back directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PLAYBOOK = """\
- name: files over ssh
  hosts: all
  vars:
    greeting: hello
  handlers:
    - name: note change
      copy:
        dest: "{{ root }}/handler-ran"
        content: "yes\\n"
  tasks:
    - name: directory
      file: {path: "{{ root }}/etc", state: directory, mode: "0755"}
    - name: a copied file
      copy:
        dest: "{{ root }}/etc/motd"
        content: "{{ greeting }} from {{ inventory_hostname }}\\n"
        mode: "0644"
      notify: note change
    - name: hosts block
      blockinfile:
        path: "{{ root }}/etc/hosts"
        create: true
        block: |
          {% for h in groups['all'] %}
          127.0.0.1 {{ h }}
          {% endfor %}
    - name: a setting line
      lineinfile: {path: "{{ root }}/etc/app.conf", regexp: "^level=", line: "level=3", create: true}
    - name: once only
      command: touch {{ root }}/created-once
      args: {creates: "{{ root }}/created-once"}
"""


def gfs(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)
    return proc


@pytest.fixture
def project(tmp_path, sshd):
    root = tmp_path / "remote"
    root.mkdir()
    (root / "etc").mkdir()
    (root / "etc" / "hosts").write_text("10.0.0.1 user-line\n")
    inv = sshd.inventory(tmp_path / "inv.yaml", extra_host_vars=f", root: {root}")
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    return {"root": root, "inv": inv, "pb": str(pb), "sshd": sshd, "tmp": tmp_path}


def test_plan_apply_plan_apply(project):
    root, inv, pb = project["root"], project["inv"], project["pb"]
    before = sorted(p.name for p in (root / "etc").iterdir())

    plan = gfs("plan", inv, "-p", pb)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "+ file " + str(root / "etc" / "motd") in plan.stdout
    assert "+hello from node1" in plan.stdout
    assert "~ blockinfile" in plan.stdout or "~ file " + str(root / "etc" / "hosts") in plan.stdout
    assert "Plan: " in plan.stdout.splitlines()[-1]
    # plan changed nothing
    assert sorted(p.name for p in (root / "etc").iterdir()) == before
    assert (root / "etc" / "hosts").read_text() == "10.0.0.1 user-line\n"

    apply = gfs("apply", inv, "-p", pb)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert (root / "etc" / "motd").read_text() == "hello from node1\n"
    assert oct((root / "etc" / "motd").stat().st_mode & 0o777) == "0o644"
    hosts = (root / "etc" / "hosts").read_text()
    assert "10.0.0.1 user-line" in hosts and "127.0.0.1 node1" in hosts
    assert (root / "etc" / "app.conf").read_text() == "level=3\n"
    assert (root / "created-once").exists()
    assert (root / "handler-ran").read_text() == "yes\n"

    again = gfs("plan", inv, "-p", pb)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes" in again.stdout

    second = gfs("apply", inv, "-p", pb, "--json")
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    assert data["hosts"]["node1"]["counts"]["changed"] == 0
    # a no-op apply reads everything in one round trip per host
    assert data["hosts"]["node1"]["round_trips"] == 1


def test_drift_is_shown_and_repaired(project):
    root, inv, pb = project["root"], project["inv"], project["pb"]
    assert gfs("apply", inv, "-p", pb).returncode == 0
    (root / "etc" / "motd").write_text("tampered\n")
    plan = gfs("plan", inv, "-p", pb)
    assert plan.returncode == 2
    assert "-tampered" in plan.stdout and "+hello from node1" in plan.stdout
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in plan.stdout
    assert gfs("apply", inv, "-p", pb).returncode == 0
    assert (root / "etc" / "motd").read_text() == "hello from node1\n"


def test_cycle_is_refused(project, tmp_path):
    pb = tmp_path / "cycle.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          tasks:
            - name: a
              command: "true"
              needs: [b]
            - name: b
              command: "true"
              needs: [a]
        """))
    proc = gfs("plan", project["inv"], "-p", str(pb))
    assert proc.returncode == 1
    assert "cycle" in proc.stderr
    assert "a -> b -> a" in proc.stderr or "b -> a -> b" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_host_key_refused_then_accepted(project, tmp_path):
    sshd = project["sshd"]
    os.remove(sshd.known_hosts)
    proc = gfs("plan", project["inv"], "-p", project["pb"])
    assert proc.returncode == 1
    assert "unknown SSH host key" in proc.stdout + proc.stderr
    assert "--accept-new-host-keys" in proc.stdout + proc.stderr
    assert not (project["root"] / "etc" / "motd").exists()

    proc = gfs("plan", project["inv"], "-p", project["pb"], "--accept-new-host-keys")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    recorded = open(sshd.known_hosts).read()
    with open(sshd.host_key + ".pub") as f:
        assert f.read().split()[1] in recorded
    # now strict checking passes without the flag
    assert gfs("plan", project["inv"], "-p", project["pb"]).returncode == 2


def test_changed_host_key_always_refused(project):
    sshd = project["sshd"]
    old = subprocess.run(["ssh-keygen", "-lf", sshd.host_key + ".pub"], capture_output=True, text=True).stdout.split()[1]
    sshd.regenerate_host_key()
    new = subprocess.run(["ssh-keygen", "-lf", sshd.host_key + ".pub"], capture_output=True, text=True).stdout.split()[1]
    for extra in ([], ["--accept-new-host-keys"]):
        proc = gfs("apply", project["inv"], "-p", project["pb"], *extra)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1
        assert "CHANGED" in out and old in out and new in out
        assert sshd.known_hosts in out
    assert not (project["root"] / "etc" / "motd").exists()


def test_saved_plan_refused_when_hosts_changed(project, tmp_path):
    saved = tmp_path / "plan.json"
    proc = gfs("plan", project["inv"], "-p", project["pb"], "--out", str(saved))
    assert proc.returncode == 2
    (project["root"] / "etc" / "hosts").write_text("10.0.0.9 changed-meanwhile\n")
    proc = gfs("apply", "--plan", str(saved))
    assert proc.returncode == 1
    assert "changed since the plan" in proc.stderr
    assert not (project["root"] / "etc" / "motd").exists()
    # a fresh plan applies
    assert gfs("plan", project["inv"], "-p", project["pb"], "--out", str(saved)).returncode == 2
    proc = gfs("apply", "--plan", str(saved))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (project["root"] / "etc" / "motd").exists()
