"""Differential (ansible-playbook vs gfsdeploy on two halves of one lab, see
tests/ansible_compat/harness.py): ufw (real ufw from Debian's package in the nodes:
rules added, a comment, a rule deleted, the firewall enabled) and the heketi chain of
prepare.yaml written with ansible.builtin.iptables' arguments — same rules files, same
live rules, same changed/ok per task, twice (idempotence)."""

from __future__ import annotations

import pytest

from tests.ansible_compat.conftest import compat, posix_collections  # noqa: F401 (fixtures)
from tests.ansible_compat.harness import Spec

pytestmark = pytest.mark.lab

UFW_RESET = ("ufw --force reset >/dev/null 2>&1; rm -f /etc/ufw/*.rules.[0-9]*; "
             "sed -i 's/^ENABLED=.*/ENABLED=no/' /etc/ufw/ufw.conf")


def test_ufw_rules_and_enable(compat, posix_collections):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: ssh first
              community.general.ufw: {rule: allow, port: "22", proto: tcp}
            - name: the GlusterFS management ports
              community.general.ufw: {rule: allow, port: "24007:24008", proto: tcp}
            - name: bricks, with a comment
              community.general.ufw: {rule: allow, port: "49152:49251", proto: tcp, comment: gluster bricks}
            - name: from the storage network only
              community.general.ufw: {rule: allow, port: "2222", proto: tcp, from_ip: 192.168.186.0/24}
            - name: a rule removed
              community.general.ufw: {rule: allow, port: "24007:24008", proto: tcp, delete: true}
            - name: enabled
              community.general.ufw: {state: enabled}
        """, state=Spec(files=["/etc/ufw/user.rules", "/etc/ufw/user6.rules", "/etc/ufw/ufw.conf"],
                        commands={"rules": "iptables -S ufw-user-input"}),
        reset=UFW_RESET)
    pair.assert_same()


def test_heketi_chain_as_prepare_writes_it(compat):
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: chain
              iptables: {chain: heketi, chain_management: true}
            - name: ports
              iptables: {chain: heketi, protocol: tcp, destination_port: "{{ item }}", match: [state],
                         ctstate: [NEW], jump: ACCEPT}
              loop: [24007, 24008, 2222, "49152:49251"]
            - name: jump
              iptables: {chain: INPUT, jump: heketi, action: insert}
        """, state=Spec(commands={"rules": "iptables -S"}),
        reset="iptables -D INPUT -j heketi 2>/dev/null; iptables -F heketi 2>/dev/null; "
              "iptables -X heketi 2>/dev/null; true")
    pair.assert_same()
