"""The smallest playbooks showing what real public roles needed and gfsdeploy did not do
(each found running the public corpus, docs/CORPUS.md). Local connection, no lab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def plan(tmp_path, files: dict) -> subprocess.CompletedProcess:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "inv.yml").write_text(f"all:\n  hosts:\n    l1:\n      ansible_connection: local\n"
                                      f"      gfsdeploy_lock_dir: {tmp_path}\n")
    return subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", str(tmp_path / "inv.yml"), "-p",
                           str(tmp_path / "pb.yml")], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), ANSIBLE_ROLES_PATH=str(tmp_path / "path")))


def test_role_name_with_a_slash_is_found_under_roles_and_the_roles_path(tmp_path):
    proc = plan(tmp_path, {
        "pb.yml": "- hosts: all\n  gather_facts: false\n  roles:\n    - glusterfs/server\n"
                  "  tasks:\n    - include_role: {name: outer/roles/inner}\n",
        "roles/glusterfs/server/tasks/main.yml": "- debug: {msg: server}\n",
        "path/outer/roles/inner/tasks/main.yml": "- debug: {msg: inner}\n"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_first_found_for_include_vars_searches_the_role_vars(tmp_path):
    proc = plan(tmp_path, {
        "pb.yml": "- hosts: all\n  gather_facts: false\n  roles: [r]\n",
        "roles/r/vars/Debian.yml": "x: 1\n",
        "roles/r/tasks/main.yml": "- include_vars: '{{ item }}'\n  with_first_found:\n"
                                  "    - Nope.yml\n    - Debian.yml\n- debug: {msg: '{{ x }}'}\n"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
