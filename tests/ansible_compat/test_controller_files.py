"""Differential, on this machine (``connection: local``, no lab): a step that rewrites a
file on the controller, then steps whose arguments are made from that file (a
template's source, a ``lookup('file')``) — ansible-playbook runs them one after the
other, so they see the new file; gfsdeploy's batched changes must not plan them from
the file as it was before the batch."""

from __future__ import annotations

from pathlib import Path

from tests.ansible_compat.harness import run_local_both

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
    (d / "src.j2").write_text("v1 {{ inventory_hostname }}\n")
    (d / "value").write_text("old value\n")


def test_steps_see_controller_files_an_earlier_step_rewrote(tmp_path):
    dirs = run_local_both(tmp_path, PLAYBOOK, prepare=_prepare)
    out = {tool: {name: (d / name).read_text() for name in ("out", "looked-up")} for tool, d in dirs.items()}
    assert out["gfsdeploy"] == out["ansible"]
    assert out["ansible"] == {"out": "v2 localhost\n", "looked-up": "new value\n"}  # what the case is about
