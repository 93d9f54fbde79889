"""apply's recap and progress lines through the CLI (a local host): Ansible's columns, an
ignored or rescued failure shown as such with its message (the differential test against
ansible-playbook's counts is tests/ansible_compat/test_checks.py::test_recap_counts_like_ansible)."""

from __future__ import annotations

import re

from tests.engine.test_batch import gfs, local_inventory, playbook


def test_recap_columns_and_an_ignored_failure(tmp_path):
    pb = playbook(tmp_path, """\
        - hosts: all
          gather_facts: false
          tasks:
            - name: ignored
              command: "sh -c 'echo broken >&2; exit 3'"
              ignore_errors: true
            - name: fine
              command: "true"
              changed_when: false
            - block:
                - name: rescued
                  command: "sh -c 'exit 4'"
              rescue:
                - name: the rescue
                  debug: {msg: handled}
        """)
    proc = gfs("apply", local_inventory(tmp_path), "-p", pb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^\[a\] failed \(ignored\): ignored \(.*\n    .*non-zero return code 3.*\n +stderr: broken$",
                     proc.stdout, re.M), proc.stdout
    assert re.search(r"^\[a\] rescued: rescued \(.*\n    .*non-zero return code 4", proc.stdout, re.M), proc.stdout
    recap = proc.stdout[proc.stdout.index("RECAP"):]
    assert re.search(r"^a +ok=3 +changed=1 +unreachable=0 +failed=0 +skipped=0 +rescued=1 +ignored=1 *$",
                     recap, re.M), recap
