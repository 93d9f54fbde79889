"""Differential: file and command modules under ansible-playbook and gfsdeploy.

Each test is one small playbook run by both tools on their half of one lab (see
harness.py); the files, the task statuses and the registered values must match, on the
first run and on the second (idempotence). The plan test compares ``gfsdeploy plan``
with ``ansible-playbook --check --diff`` from the same starting state.
"""

from __future__ import annotations

import pytest

from tests.ansible_compat.harness import Spec

pytestmark = pytest.mark.lab

RESET = "rm -rf /srv/compat && mkdir -p /srv/compat"
TREE = Spec(trees=["/srv/compat"])


def test_copy_file_template_modes_and_results(compat):
    (compat.workdir / "templates").mkdir(exist_ok=True)
    (compat.workdir / "templates" / "t.conf.j2").write_text(
        "host={{ inventory_hostname }}\n{% for p in ports %}port {{ p }}\n{% endfor %}")
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          vars: {ports: [80, 443]}
          tasks:
            - name: a directory with a mode
              file: {path: /srv/compat/d, state: directory, mode: "0750"}
              register: d
            - name: copy content, symbolic mode
              copy: {dest: /srv/compat/d/a.conf, content: "a = 1\\n", mode: "u=rw,g=r"}
              register: c
            - name: template
              template: {src: t.conf.j2, dest: /srv/compat/t.conf, mode: "0640"}
              register: t
            - name: touch
              file: {path: /srv/compat/touched, state: touch, mode: "0600"}
            - name: a link
              file: {src: /srv/compat/t.conf, dest: /srv/compat/link, state: link}
            - name: absent
              file: {path: /srv/compat/never, state: absent}
              register: gone
        """, state=TREE, reset=RESET, registered=["d", "c", "t", "gone"],
        # Ansible's copy/template report the temp file they uploaded: a path of its own
        ignore=("src",))
    pair.assert_same()


def test_lineinfile_and_blockinfile(compat):
    compat.each("mkdir -p /srv/compat && printf 'a = 1\\n# b = 2\\nc = 3\\n' > /srv/compat/l.conf")
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: replace by regexp
              lineinfile: {path: /srv/compat/l.conf, regexp: '^#? ?b =', line: 'b = 20'}
              register: r1
            - name: insert after
              lineinfile: {path: /srv/compat/l.conf, insertafter: '^a =', line: 'a2 = 1'}
              register: r2
            - name: backrefs that do not match
              lineinfile: {path: /srv/compat/l.conf, regexp: '^zz (.*)', line: 'yy \\1', backrefs: true}
              register: r3
            - name: remove
              lineinfile: {path: /srv/compat/l.conf, regexp: '^c ', state: absent}
              register: r4
            - name: a block
              blockinfile:
                path: /srv/compat/l.conf
                block: |
                  x = 1
                  y = 2
              register: b1
        """, state=TREE, registered=["r1", "r2", "r3", "r4", "b1"])
    pair.assert_same()


def test_command_and_shell_results(compat):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a command
              command: printf '%s|' a 'b c'
              register: c1
            - name: a shell with stderr and a failure ignored
              shell: echo out; echo err >&2; exit 3
              register: s1
              ignore_errors: true
            - name: creates skips
              command: touch /srv/compat/made
              args: {creates: /srv/compat/made}
              register: c2
            - name: changed_when false
              shell: echo yes
              register: s2
              changed_when: false
        """, state=TREE, reset=RESET, registered=["c1", "s1", "c2", "s2"],
        # a failed command's msg: Ansible says "non-zero return code"; gfsdeploy adds the
        # command and its stderr (what the recap shows)
        ignore=("msg",))
    pair.assert_same()


def test_read_only_command_reads_what_an_earlier_task_made(compat):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: make it
              command: touch /srv/compat/made
            - name: read it
              command: cat /srv/compat/made
              register: r
              changed_when: false
        """, state=TREE, reset=RESET, registered=["r"], twice=False)
    pair.assert_same()


def test_plan_shows_what_check_diff_reports(compat):
    setup = """
        - hosts: all
          gather_facts: false
          tasks:
            - name: seed
              copy: {dest: /srv/compat/p.conf, content: "a = 1\\nb = 2\\n", mode: "0600"}
        """
    compat.run_both(setup, reset=RESET, twice=False).assert_same()
    check = compat.plan_vs_check("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: new directory
              file: {path: /srv/compat/new, state: directory, mode: "0700"}
            - name: changed content and mode
              copy: {dest: /srv/compat/p.conf, content: "a = 1\\nb = 3\\n", mode: "0644"}
            - name: unchanged line
              lineinfile: {path: /srv/compat/p.conf, line: "a = 1"}
            - name: new line in a new file
              lineinfile: {path: /srv/compat/q.conf, line: "q = 1", create: true}
            - name: a command runs
              command: /bin/true
            - name: a command that would not run
              command: /bin/true
              args: {creates: /srv/compat/p.conf}
        """)
    check.assert_same()
    # nothing changed on either side
    assert compat.state("ansible", TREE) == compat.state("gfsdeploy", TREE)
    assert compat.state("gfsdeploy", TREE)["node1"]["files"]["/srv/compat/p.conf"]["content"] == "a = 1\nb = 2\n"
