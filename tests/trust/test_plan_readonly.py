"""Plan changes nothing (lab, root): in plan only read-only modules and tasks that say
``check_mode: false`` run — ``changed_when: false`` alone does not make a command run,
an ``until`` loop never polls, and what a skipped read would register is
``(known after apply)``. The plan lists the read-only commands it ran. Checked on the
node itself: the side effects each task would leave are looked for with ``ls``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from trust.test_secrets import ROOT

pytestmark = pytest.mark.lab

PLAYBOOK = """\
- hosts: k8s-2
  gather_facts: false
  tasks:
    - name: a write that says changed_when false
      command: touch {d}/touched
      changed_when: false
    - name: a read the plan may run
      shell: echo ran >> {d}/reads; hostname
      check_mode: false
      changed_when: false
      register: who
    - name: a wait
      shell: echo poll >> {d}/polls; exit 1
      check_mode: false
      register: waited
      until: waited.rc == 0
      retries: 20
      delay: 1
    - name: uses the wait
      copy:
        content: "{{{{ waited.stdout }}}} {{{{ who.stdout }}}}"
        dest: {d}/result
"""


def test_plan_runs_only_what_says_check_mode_false(lab, tmp_path):
    d = f"/root/ro-{os.getpid()}"
    lab.exec("k8s-2", ["mkdir", "-p", d], check=True)
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK.format(d=d))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", str(lab.inventory_path), "-p", str(pb)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    took = time.monotonic() - started
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    on_node = lab.exec("k8s-2", ["sh", "-c", f"cd {d} && for f in *; do echo \"$f: $(wc -l < \"$f\")\"; done"]).stdout
    # only the check_mode: false read ran, once; nothing else left a trace
    assert on_node.split("\n")[0] == "reads: 1", on_node
    assert "touched" not in on_node and "polls" not in on_node and "result" not in on_node, on_node
    assert took < 20, f"the until loop (20 retries, 1 s apart) must not poll in plan: {took:.1f}s"
    # the plan names the read it ran, and what it could not know
    assert "a read the plan may run" in text and "<=" in text, text
    assert "(known after apply)" in text, text
    assert "a write that says changed_when false" in text, text
    lab.exec("k8s-2", ["rm", "-rf", d])
