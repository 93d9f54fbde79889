"""Differential: sysctl (per network namespace: net.* keys), mount (tmpfs and bind),
group, user, systemd (no systemd in the lab's nodes: both tools must fail the same way)."""

from __future__ import annotations

import pytest

from tests.ansible_compat.harness import Spec

pytestmark = pytest.mark.lab


def test_sysctl_file_and_live(compat, posix_collections):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: forwarding on, file and live
              ansible.posix.sysctl:
                name: net.ipv4.ip_forward
                value: "1"
                sysctl_file: /etc/sysctl.d/90-compat.conf
                sysctl_set: true
              register: s1
            - name: a second key in the same file, no reload
              sysctl: {name: net.ipv4.conf.all.rp_filter, value: 2, sysctl_file: /etc/sysctl.d/90-compat.conf,
                       reload: false}
              register: s2
            - name: absent from a file that lacks it
              sysctl: {name: net.ipv4.tcp_syncookies, state: absent, sysctl_file: /etc/sysctl.d/90-compat.conf}
              register: s3
        """, state=Spec(files=["/etc/sysctl.d/90-compat.conf"],
                        commands={"live": "sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.rp_filter"}),
        reset="rm -f /etc/sysctl.d/90-compat.conf; sysctl -qw net.ipv4.ip_forward=0 "
              "net.ipv4.conf.all.rp_filter=0; printf '# mine\\nnet.ipv4.tcp_syncookies = 1\\n\\n' "
              "> /etc/sysctl.d/90-compat.conf",
        registered=["s1", "s2", "s3"])
    pair.assert_same()


def test_mount_tmpfs_and_bind(compat, posix_collections):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a tmpfs, mounted and in fstab
              ansible.posix.mount: {path: /mnt/compat/t, src: tmpfs, fstype: tmpfs, opts: "size=8m,mode=0750",
                                    state: mounted}
              register: m1
            - name: a bind mount, present only
              mount: {path: /mnt/compat/b, src: /srv, fstype: none, opts: bind, state: present}
              register: m2
            - name: an ephemeral bind mount
              mount: {path: /mnt/compat/e, src: /srv, fstype: none, opts: bind, state: ephemeral}
              register: m3
        """, state=Spec(files=["/etc/fstab"], trees=["/mnt/compat"],
                        commands={"mounts": "findmnt -n -r -o TARGET,SOURCE,FSTYPE,OPTIONS | grep /mnt/compat "
                                            "| sed 's/,inode64//' | sort || true"}),
        reset="for m in e b t; do umount /mnt/compat/$m 2>/dev/null; done; rm -rf /mnt/compat; "
              "sed -i '/compat/d' /etc/fstab; mkdir -p /srv",
        registered=["m1", "m2", "m3"])
    pair.assert_same()
    # and unmount + absent
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: unmount the ephemeral one
              mount: {path: /mnt/compat/e, state: unmounted}
            - name: absent
              mount: {path: /mnt/compat/t, state: absent}
              register: m4
        """, state=Spec(files=["/etc/fstab"], trees=["/mnt/compat"],
                        commands={"mounts": "findmnt -n -r -o TARGET | grep /mnt/compat | sort || true"}),
        registered=["m4"])
    pair.assert_same()


def test_group_and_user(compat):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a group with a gid
              group: {name: compat-g, gid: 4321}
              register: g1
            - name: a system group
              group: {name: compat-s, system: true}
            - name: a user in them
              user:
                name: compat-u
                uid: 4321
                group: compat-g
                groups: [compat-s]
                comment: Compat User
                shell: /bin/sh
                home: /home/compat-u
              register: u1
            - name: the same user, another shell, groups appended
              user: {name: compat-u, shell: /bin/bash, groups: [compat-g], append: true}
              register: u2
            - name: a user without a home
              user: {name: compat-n, create_home: false, system: true}
              register: u3
        """, state=Spec(trees=["/home/compat-u"],
                        commands={"passwd": "getent passwd compat-u compat-n | cut -d: -f1,3,5,6,7",
                                  "groups": "getent group compat-g compat-s | cut -d: -f1,3,4; id -Gn compat-u"}),
        reset="userdel -r compat-u 2>/dev/null; userdel compat-n 2>/dev/null; groupdel compat-g 2>/dev/null; "
              "groupdel compat-s 2>/dev/null; true",
        registered=["g1", "u1", "u2", "u3"])
    pair.assert_same()
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: user removed with its home
              user: {name: compat-u, state: absent, remove: true}
              register: u4
            - name: group removed
              group: {name: compat-s, state: absent}
              register: g2
        """, state=Spec(files=["/home/compat-u"],
                        commands={"passwd": "getent passwd compat-u || echo none",
                                  "group": "getent group compat-s || echo none"}),
        registered=["u4", "g2"])
    pair.assert_same()


def test_systemd_without_systemd_fails_like_ansible(compat):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: start a unit
              ansible.builtin.systemd_service: {name: cron, state: started}
              register: sd
              ignore_errors: true
            - name: after
              command: echo still here
              register: after
        """, registered=["after"], twice=False)
    pair.assert_same()
    for host in ("node1", "node2"):
        # both fail that task (Ansible: "Service is in unknown state"; gfsdeploy says why)
        assert pair.ansible.tasks[("start a unit", host)] == "ignored"
        assert pair.gfsdeploy.tasks[("start a unit", host)] == "ignored"
        assert "booted with systemd" in pair.gfsdeploy.results[("start a unit", host)]["error"]
