"""Differential, on this machine (``connection: local``, no lab): a step that rewrites a
file on the controller, then steps whose arguments are made from that file (a
template's source, a ``lookup('file')``) — ansible-playbook runs them one after the
other, so they see the new file; gfsdeploy's batched changes must not plan them from
the file as it was before the batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ansible_compat.harness import ROOT, ansible_playbook

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: a change first (what the host's steps read is read again after it)
      command: "true"
    - name: the template source
      copy: {dest: "{{ dir }}/src.j2", content: "v2 {{ '{{' }} inventory_hostname {{ '}}' }}\\n"}
    - name: a value file
      copy: {dest: "{{ dir }}/value", content: "new value\\n"}
    - name: rendered from the source
      template: {src: "{{ dir }}/src.j2", dest: "{{ dir }}/out"}
    - name: copied from a lookup
      copy: {dest: "{{ dir }}/looked-up", content: "{{ lookup('file', dir + '/value') }}\\n"}
"""


def _prepare(d: Path) -> None:
    d.mkdir()
    (d / "src.j2").write_text("v1 {{ inventory_hostname }}\n")
    (d / "value").write_text("old value\n")


def test_steps_see_controller_files_an_earlier_step_rewrote(tmp_path):
    exe = ansible_playbook()
    if not exe:
        pytest.fail("ansible-playbook is missing: install the `test` extra (ansible-core)")
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    out = {}
    for tool in ("ansible", "gfsdeploy"):
        d = tmp_path / tool
        _prepare(d)
        inv = tmp_path / f"inv-{tool}.yaml"
        inv.write_text(f"all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                       f"      ansible_python_interpreter: {sys.executable}\n"
                       f"      gfsdeploy_lock_dir: {tmp_path}/lock-{tool}\n      dir: {d}\n")
        if tool == "ansible":
            cfg = tmp_path / "ansible.cfg"
            cfg.touch()
            env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_HOME=str(tmp_path / "ah"), ANSIBLE_NOCOLOR="1",
                       ANSIBLE_LOCAL_TEMP=str(tmp_path / "at"))
            argv = [exe, "-i", str(inv), str(pb)]
        else:
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            argv = [sys.executable, "-m", "gfsdeploy", "apply", str(inv), "-p", str(pb)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, (tool, proc.stdout[-2000:], proc.stderr[-2000:])
        out[tool] = {name: (d / name).read_text() for name in ("out", "looked-up")}
    assert out["gfsdeploy"] == out["ansible"]
    assert out["ansible"] == {"out": "v2 localhost\n", "looked-up": "new value\n"}  # what the case is about
