"""Differential: stat (its registered facts), wait_for (ports, paths, regexes), fail."""

from __future__ import annotations

import pytest

from tests.ansible_compat.harness import Spec

pytestmark = pytest.mark.lab

#: differ between any two nodes or runs (times, inode and device numbers)
VOLATILE = ("atime", "mtime", "ctime", "inode", "dev", "elapsed")


def test_stat_wait_for_fail(compat):
    compat.each("rm -rf /srv/compat && mkdir -p /srv/compat/d && printf 'hello\\nport 8080\\n' > /srv/compat/f "
                "&& chmod 0640 /srv/compat/f && ln -sfn /srv/compat/f /srv/compat/l && mkfifo /srv/compat/p")
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a file
              stat: {path: /srv/compat/f}
              register: sf
            - name: a link, not followed
              stat: {path: /srv/compat/l, get_checksum: false}
              register: sl
            - name: a link, followed, sha256
              stat: {path: /srv/compat/l, follow: true, checksum_algorithm: sha256}
              register: slf
            - name: a directory
              stat: {path: /srv/compat/d, get_mime: false}
              register: sd
            - name: a fifo
              stat: {path: /srv/compat/p}
              register: sp
            - name: missing
              ansible.builtin.stat: {path: /srv/compat/nope}
              register: sm
            - name: wait for sshd, with its banner
              wait_for: {port: 22, search_regex: "OpenSSH_([0-9.]+)", timeout: 10}
              register: w1
            - name: wait for a file holding a regex
              wait_for: {path: /srv/compat/f, search_regex: "port (?P<port>[0-9]+)"}
              register: w2
            - name: wait for a path to be absent
              wait_for: {path: /srv/compat/nope, state: absent}
              register: w3
            - name: a closed port stays closed
              wait_for: {port: 1, state: stopped, timeout: 5}
              register: w4
            - name: fail when told
              fail: {msg: "stop {{ inventory_hostname }}"}
              register: f1
              ignore_errors: true
        """, registered=["sf", "sl", "slf", "sd", "sp", "sm", "w1", "w2", "w3", "w4", "f1"], ignore=VOLATILE,
        twice=False)  # reads only: a second run shows nothing new
    pair.assert_same()


def test_wait_for_timeout_fails_like_ansible(compat):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a file that never comes
              wait_for: {path: /srv/compat/never, timeout: 2}
              register: w
              ignore_errors: true
        """, registered=["w"], ignore=VOLATILE, twice=False)
    pair.assert_same()


def test_registered_shape_of_loops_and_skips(compat):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a loop
              stat: {path: "{{ item }}", get_mime: false, get_attributes: false}
              loop: [/srv/compat/d, /srv/compat/f]
              register: loop
            - name: skipped on node1
              fail: {msg: never}
              when: inventory_hostname == 'node3'
              register: skip
        """, registered=["loop", "skip"], ignore=VOLATILE, twice=False)
    pair.assert_same()


def test_recap_counts_like_ansible(compat):
    """The recap's counts per host (ok, changed, unreachable, failed, skipped, rescued,
    ignored) are ansible-core's: an ignored failure is ok and ignored (and changed when its
    result says so), a rescued one only rescued, a failed host's later tasks not counted,
    an include counted ok, meta tasks (run or skipped) not at all."""
    (compat.workdir / "recap-included.yaml").write_text('- name: included debug\n  debug: {msg: hi}\n'
                                                        '- name: included command\n  command: "true"\n')
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a file
              copy: {dest: /srv/compat-recap/f, content: "x\\n"}
              notify: told
            - name: handlers now
              meta: flush_handlers
            - name: a meta task skipped
              meta: end_host
              when: false
            - name: an include
              include_tasks: recap-included.yaml
            - name: a failing command, ignored (its result says changed)
              command: "false"
              ignore_errors: true
            - name: fail, ignored (not changed)
              fail: {msg: no}
              ignore_errors: "{{ 'yes' }}"
            - name: a failing loop, ignored
              command: "test {{ item }} = 1"
              loop: [1, 2]
              ignore_errors: true
            - name: a failure judged away
              command: "false"
              failed_when: false
              changed_when: false
            - name: skipped
              command: "true"
              when: false
            - block:
                - name: fails, then rescued
                  command: "false"
              rescue:
                - name: the rescue
                  command: "true"
                  changed_when: false
              always:
                - name: always
                  command: "true"
            - name: node2 fails for real
              command: "false"
              when: inventory_hostname == 'node2'
            - name: after that
              command: "true"
          handlers:
            - name: told
              command: "true"
        """, state=Spec(files=["/srv/compat-recap/f"]), reset="rm -rf /srv/compat-recap && mkdir /srv/compat-recap",
        recap=True)
    pair.assert_same()
    # the counts themselves, as ansible-core printed them (not only "both agree")
    assert pair.gfsdeploy.recap["node1"] == {"ok": 12, "changed": 7, "unreachable": 0, "failed": 0, "skipped": 2,
                                             "rescued": 1, "ignored": 3}, pair.gfsdeploy.recap
    assert pair.gfsdeploy.recap["node2"]["failed"] == 1 and pair.gfsdeploy.recap["node2"]["ignored"] == 3
    assert pair.again.gfsdeploy.recap["node1"]["changed"] == 5  # the file is there: not changed, no handler


def test_service_mgr_fact_like_ansible(compat):
    """ansible_service_mgr on lab nodes, whose PID 1 is a shell: Ansible does not trust a
    PID 1 named `init` or ending in `sh` and looks further (systemd here)."""
    pid1 = compat.exec("gfsdeploy", "node1", "cat /proc/1/comm").stdout.strip()
    assert pid1.endswith("sh"), pid1  # what this test is about
    pair = compat.run_both("""
        - hosts: all
          tasks:
            - name: the service manager
              copy: {dest: /srv/compat-mgr/m, content: "{{ ansible_service_mgr }}\\n"}
        """, state=Spec(files=["/srv/compat-mgr/m"]), reset="rm -rf /srv/compat-mgr && mkdir /srv/compat-mgr",
        twice=False)
    pair.assert_same()
    assert pair.gfsdeploy.state["node1"]["files"]["/srv/compat-mgr/m"]["content"] == "systemd\n"
