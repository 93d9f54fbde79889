"""The firewall paths that can run for real here, on lab nodes over real SSH with the
real CLI, checked independently inside the nodes (not through gfsdeploy):

- k8s-2 runs ufw (Debian's package, enabled): prepare.yaml's firewall steps go through
  ufw — its rules list the GlusterFS ports — and no heketi chain is made;
- k8s-1 has no firewall manager and kube-proxy-like chains: the heketi chain and its
  INPUT jump are made, saved alone (no KUBE-* line in the file) and restored by the boot
  unit's command after a simulated reboot, twice without a duplicate;
- a second plan changes nothing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab

PREPARE = "playbooks/prepare.yaml"
PORTS = ["24007/tcp", "24008/tcp", "2222/tcp", "49152:49251/tcp"]


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=900)


def sh(lab, node, script, check=True):
    return lab.exec(node, ["sh", "-c", script], check=check).stdout


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    from tests.conftest import make_lab

    lab = make_lab(tmp_path_factory, 2)
    try:
        yield lab
    finally:
        lab.down()


def test_firewall_paths_for_real(two_nodes):
    lab, inv = two_nodes, str(two_nodes.inventory_path)
    # k8s-2: ufw enabled (ssh allowed first, as an operator does)
    sh(lab, "k8s-2", "ufw allow 22/tcp >/dev/null && ufw --force enable >/dev/null")
    # k8s-1: chains a kube-proxy and a CNI would own
    sh(lab, "k8s-1", "iptables -N KUBE-SERVICES && iptables -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp --dport 443 "
                     "-j ACCEPT && iptables -I INPUT -j KUBE-SERVICES && iptables -N CNI-FORWARD")

    plan = gfs("plan", inv, "-p", PREPARE, "--tags", "firewall")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    k8s1, k8s2 = plan.stdout.split("k8s-2:", 1)
    assert "+ iptables chain heketi" in k8s1 and "ufw" not in k8s1
    assert "+ ufw rule: allow proto tcp from any to any port 24007" in k8s2 and "iptables" not in k8s2
    assert "heketi" not in sh(lab, "k8s-1", "iptables -S")  # plan changed nothing

    apply = gfs("apply", inv, "-p", PREPARE, "--tags", "firewall")
    assert apply.returncode == 0, apply.stdout + apply.stderr

    # ufw path: the ports in ufw's own rules, nothing of the chain path
    status = sh(lab, "k8s-2", "ufw status")
    assert "Status: active" in status
    for port in PORTS:
        assert any(line.startswith(port) and "ALLOW" in line for line in status.splitlines()), status
    assert "heketi" not in sh(lab, "k8s-2", "iptables -S")
    assert sh(lab, "k8s-2", "ls /etc/iptables/gfsdeploy-heketi.rules 2>/dev/null || true") == ""

    # chain path: rules, jump, the saved file holds only them, the unit is enabled
    rules = sh(lab, "k8s-1", "iptables -S")
    assert rules.count("-A INPUT -j heketi") == 1 and rules.count("-A heketi ") == 4
    saved = sh(lab, "k8s-1", "cat /etc/iptables/gfsdeploy-heketi.rules")
    assert "KUBE" not in saved and "CNI" not in saved and ":INPUT" not in saved
    assert saved.count("-A heketi ") == 4 and saved.count("-I INPUT -j heketi") == 1
    assert "gfsdeploy-iptables-heketi.service" in sh(lab, "k8s-1", "ls /etc/systemd/system/multi-user.target.wants")

    # a reboot: the node's rules are gone (kube-proxy's come back on their own); the unit's
    # command restores the chain and one jump, twice in a row without a duplicate
    sh(lab, "k8s-1", "iptables -D INPUT -j heketi; iptables -F heketi; iptables -X heketi")
    start = sh(lab, "k8s-1", "sed -n 's/^ExecStart=//p' /etc/systemd/system/gfsdeploy-iptables-heketi.service")
    assert start.startswith("/bin/sh -c ")
    sh(lab, "k8s-1", start)
    sh(lab, "k8s-1", start)
    restored = sh(lab, "k8s-1", "iptables -S")
    assert restored.count("-A INPUT -j heketi") == 1 and restored.count("-A heketi ") == 4, restored
    assert "-A KUBE-SERVICES -d 10.96.0.1/32" in restored  # --noflush: nothing else touched

    again = gfs("plan", inv, "-p", PREPARE, "--tags", "firewall")
    assert again.returncode == 0, again.stdout + again.stderr
