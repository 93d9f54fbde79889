"""Ansible's implicit localhost: a play naming ``localhost`` that the inventory does not
list runs on the controller over the local connection, with group ``all``'s variables;
it is in no group, so ``hosts: all`` never includes it."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_localhost_play_runs_on_the_controller_and_all_excludes_it(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "inv.yaml").write_text(
        "all:\n  vars:\n    greeting: hello\n    ansible_user: nobody-here\n"
        f"    gfsdeploy_lock_dir: {tmp_path}/lock\n"
        "  hosts:\n    far-away: {ansible_host: 192.0.2.1, ansible_port: 9}\n")
    (tmp_path / "pb.yaml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - copy: {{content: '{{{{ greeting }}}} {{{{ inventory_hostname }}}} {{{{ groups.all }}}}', dest: {out}}}\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    run = subprocess.run([sys.executable, "-m", "gfsdeploy", "apply", str(tmp_path / "inv.yaml"), "-p",
                          str(tmp_path / "pb.yaml")], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert out.read_text() == "hello localhost ['far-away']"

    # a pattern that is not localhost still names the inventory's hosts and groups
    (tmp_path / "pb2.yaml").write_text("- hosts: elsewhere\n  gather_facts: false\n  tasks: [{debug: {msg: x}}]\n")
    bad = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", str(tmp_path / "inv.yaml"), "-p",
                          str(tmp_path / "pb2.yaml")], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 1 and "no host or group named 'elsewhere'" in bad.stdout + bad.stderr
