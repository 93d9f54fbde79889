"""Opt-in: the real public playbooks and roles, unchanged, planned against the lab
(``GFSDEPLOY_CORPUS=<dir>``; docs/CORPUS.md lists what the directory holds and how to
fetch it). For each: it loads and plans, or it is refused with the file:line of what
gfsdeploy does not do (never a traceback, never a silent skip); and while it plans, the
master node's command-logging ``kubectl`` sees only reads.

The public code is never committed: only this table of what each one needs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.corpus.corpus import KUBECTL, KUBECTL_LOG

pytestmark = pytest.mark.lab

CORPUS = os.environ.get("GFSDEPLOY_CORPUS")
ROOT = Path(__file__).resolve().parents[2]
#: kubectl verbs that read (what a plan may run, through steps marked check_mode: false)
READ_VERBS = {"get", "version", "api-versions", "api-resources", "cluster-info", "describe", "explain", "config",
              "auth", "top", "logs"}

# name, playbook (relative to the corpus), cwd (relative), inventory, and None when it must
# plan, else why it does not yet (the owner of the gap, for the record: it must still be
# refused with file:line)
PUBLIC = [
    ("kubespray-heketi", "kubespray/contrib/network-storage/heketi/heketi.yml", "kubespray", "kubespray", None),
    ("kubespray-heketi-teardown", "kubespray/contrib/network-storage/heketi/heketi-tear-down.yml", "kubespray",
     "kubespray", None),
    ("kubespray-glusterfs", "kubespray/contrib/network-storage/glusterfs/glusterfs.yml", "kubespray", "generic",
     "uses gluster.gluster.gluster_volume from the gluster.gluster collection, not installed here "
     "(ansible-playbook refuses it the same way)"),
    ("gluster-kubernetes-vagrant", "gluster-kubernetes/vagrant/site.yml", "gluster-kubernetes/vagrant", "generic",
     "uses `include:`, which ansible-core 2.16+ removed too"),
    ("geerlingguy.ntp", "ntp/molecule/default/converge.yml", "ntp", "generic", None),
    ("gluster.infra", "run/gluster-infra.yml", "run", "generic",
     "`shell: … warn:` — an argument ansible-core removed in 2.14 (ansible-playbook refuses it too)"),
    ("geerlingguy.firewall", "firewall/molecule/default/converge.yml", "firewall", "generic", None),
    ("geerlingguy.security", "security/molecule/default/converge.yml", "security", "generic",
     "its handler runs the systemd module, and the lab's nodes do not boot systemd"),
    ("geerlingguy.swap", "swap/molecule/default/converge.yml", "swap", "generic", None),
    ("ssh-hardening", "ssh-hardening/tests/default.yml", "ssh-hardening", "generic",
     "plays on `hosts: localhost` (the controller: implicit localhost), not on the lab's nodes"),
]
ROLES = {"geerlingguy.ntp": "ntp", "geerlingguy.firewall": "firewall", "geerlingguy.security": "security",
         "geerlingguy.swap": "swap", "ansible-ssh-hardening": "ssh-hardening", "gluster.infra": "gluster-ansible-infra"}
GLUSTER_INFRA = """\
- hosts: gluster_servers
  remote_user: root
  vars:
    gluster_infra_fw_state: enabled
    gluster_infra_fw_ports: [2049/tcp, 54321/tcp]
    gluster_infra_fw_permanent: true
    gluster_infra_fw_zone: public
    gluster_infra_fw_services: [glusterfs]
    gluster_infra_volume_groups: [{vgname: vg_sdb, pvname: /dev/sdb}]
    gluster_infra_thick_lvs: [{vgname: vg_sdb, lvname: lv_thick, size: 1G}]
    gluster_infra_mount_devices: [{path: /gluster/brick1, vgname: vg_sdb, lvname: lv_thick}]
  roles:
    - gluster.infra
"""


@pytest.fixture(scope="module")
def corpus(lab, tmp_path_factory):
    if not CORPUS:
        pytest.skip("set GFSDEPLOY_CORPUS to the directory of public playbooks (docs/CORPUS.md)")
    base = Path(CORPUS)
    work = tmp_path_factory.mktemp("public")
    roles = work / "roles"
    roles.mkdir()
    for name, directory in ROLES.items():
        if (base / directory).is_dir():
            (roles / name).symlink_to(base / directory)
    (base / "run").mkdir(exist_ok=True)
    (base / "run" / "gluster-infra.yml").write_text(GLUSTER_INFRA)
    lab_inv = yaml.safe_load(Path(lab.inventory_path).read_text())
    common = {k: v for k, v in lab_inv["all"]["vars"].items()
              if k.startswith(("ansible_", "gfsdeploy_")) or k == "kernel_modules_unloadable"}
    names = [n.name for n in lab.nodes]
    hosts = {n.name: {"ansible_host": n.ip, "ip": n.ip} for n in lab.nodes}
    kubespray = {"all": {"vars": {**common, "bin_dir": "/usr/local/bin", "kube_config_dir": "/etc/kubernetes",
                                  "heketi_admin_key": "corpus-admin-1", "heketi_user_key": "corpus-user-1",
                                  "glusterfs_daemonset": {
                                      "readiness_probe": {"timeout_seconds": 3, "initial_delay_seconds": 3},
                                      "liveness_probe": {"timeout_seconds": 3, "initial_delay_seconds": 10}}},
                         "hosts": hosts,
                         "children": {"kube_control_plane": {"hosts": {names[0]: {}}},
                                      "heketi-node": {"hosts": {
                                          n.name: {"disk_volume_device_1": sorted(n.devices)[0]}
                                          for n in lab.nodes}}}}}
    generic = {"all": {"vars": {**common, "ansible_python_interpreter": "/usr/bin/python3"},
                       "hosts": {"node1": {"ansible_host": lab.nodes[1].ip},
                                 "node2": {"ansible_host": lab.nodes[2].ip}},
                       "children": {"master": {"hosts": {"node1": {}}}, "nodes": {"hosts": {"node2": {}}},
                                    "gluster_servers": {"hosts": {"node1": {}, "node2": {}}}}}}
    inventories = {}
    for kind, data in (("kubespray", kubespray), ("generic", generic)):
        inventories[kind] = work / f"{kind}.yaml"
        inventories[kind].write_text(yaml.safe_dump(data, sort_keys=False))
    # the master's kubectl logs every call (the lab's nodes share nothing: only k8s-1 has kubectl)
    lab.exec(names[0], ["sh", "-c", f"[ -e {KUBECTL}.real ] || mv {KUBECTL} {KUBECTL}.real; "
                                    f"printf '%s\\n' '#!/bin/sh' 'printf \"%s\\n\" \"$*\" >> {KUBECTL_LOG}' "
                                    f"'exec {KUBECTL}.real \"$@\"' > {KUBECTL}; chmod 755 {KUBECTL}"])
    try:
        yield base, work, inventories
    finally:
        lab.exec(names[0], ["sh", "-c", f"[ -e {KUBECTL}.real ] && mv -f {KUBECTL}.real {KUBECTL}; true"])


@pytest.mark.parametrize("name, playbook, cwd, inventory, gap", PUBLIC, ids=[p[0] for p in PUBLIC])
def test_public_playbook_plans_and_reads_only(corpus, lab, name, playbook, cwd, inventory, gap):
    base, work, inventories = corpus
    if not (base / playbook).exists():
        pytest.skip(f"{playbook} is not in {base}")
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANSIBLE_ROLES_PATH=str(work / "roles"))
    proc = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", str(inventories[inventory]),
                           "-p", str(base / playbook)], capture_output=True, text=True, cwd=base / cwd, env=env,
                          timeout=1800)
    out = proc.stdout + proc.stderr
    calls = lab.exec(lab.nodes[0].name, ["sh", "-c", f"cat {KUBECTL_LOG} 2>/dev/null; rm -f {KUBECTL_LOG}"]).stdout
    writes = [c for c in calls.splitlines() if c.split() and c.split()[0] not in READ_VERBS]
    assert not writes, f"plan of {name} ran kubectl commands that are not reads: {writes}\n{out[-3000:]}"
    assert "Traceback" not in out and "internal error" not in out, out[-3000:]
    if proc.returncode in (0, 2):
        return
    assert proc.returncode == 1, out[-3000:]
    # located: the file:line of what is refused, or the host and task a step failed on
    assert re.search(r"\.(ya?ml|j2|py):\d+|host \S+, task '", out), f"{name}: error not located\n{out[-3000:]}"
    if gap is None:
        pytest.fail(f"{name} should plan:\n{out[-3000:]}")
    pytest.xfail(f"{name}: {gap}")


# public roles applied by both tools on two fresh lab nodes: (name, playbook, cwd, files
# compared: path -> compare the content too (mkswap writes a random UUID: /swapfile by stat))
APPLIED = [
    ("geerlingguy.swap", "swap/molecule/default/converge.yml", "swap",
     {"/etc/fstab": True, "/swapfile": False, "/etc/sysctl.d/90-swap.conf": True}),
]
_STAT = ("for f in \"$@\"; do p=${f%=*}; if [ -f \"$p\" ]; then echo \"$p $(stat -c '%a %U %G %s' \"$p\") "
         "$([ \"${f##*=}\" = 1 ] && md5sum < \"$p\" | cut -d' ' -f1)\"; else echo \"$p absent\"; fi; done")


@pytest.mark.parametrize("name, playbook, cwd, files", APPLIED, ids=[a[0] for a in APPLIED])
def test_public_role_applies_as_ansible(corpus, lab, tmp_path, name, playbook, cwd, files):
    """ansible-playbook on one node, gfsdeploy apply on another, twice: the same files
    (mode, owner, size, content), and the second run changes nothing under either."""
    from tests.ansible_compat.harness import ansible_playbook

    base, work, inventories = corpus
    if not (base / playbook).exists():
        pytest.skip(f"{playbook} is not in {base}")
    generic = yaml.safe_load(inventories["generic"].read_text())
    sides = {}
    for tool, node in (("ansible", lab.nodes[1]), ("gfsdeploy", lab.nodes[2])):
        # the package cache counts as fresh: lab nodes reach no Debian mirror
        lab.exec(node.name, ["sh", "-c", "mkdir -p /var/lib/apt/periodic && "
                                         "touch /var/lib/apt/periodic/update-success-stamp"])
        inv = tmp_path / f"{tool}.yaml"
        inv.write_text(yaml.safe_dump({"all": {"vars": generic["all"]["vars"],
                                               "hosts": {"node1": {"ansible_host": node.ip}}}}))
        sides[tool] = (node, inv)
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANSIBLE_ROLES_PATH=str(work / "roles"),
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_CONFIG=str(tmp_path / "none.cfg"), ANSIBLE_NOCOLOR="1")
    (tmp_path / "none.cfg").touch()
    ssh = f"-o UserKnownHostsFile={lab.known_hosts_path} -o StrictHostKeyChecking=yes -o BatchMode=yes"

    def run(tool):
        node, inv = sides[tool]
        argv = ([ansible_playbook(), "-i", str(inv), str(base / playbook), "--ssh-common-args", ssh]
                if tool == "ansible" else [sys.executable, "-m", "gfsdeploy", "apply", str(inv), "-p",
                                           str(base / playbook)])
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=base / cwd, env=env, timeout=1200)
        assert proc.returncode == 0, f"{tool}: {proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        state = lab.exec(node.name, ["sh", "-c", _STAT, "stat",
                                     *(f"{path}={int(content)}" for path, content in files.items())]).stdout
        return proc.stdout, state

    for attempt in ("first", "second"):
        (a_out, a_state), (g_out, g_state) = run("ansible"), run("gfsdeploy")
        assert a_state == g_state, f"{name}, {attempt} run: files differ\n{a_state}\n{g_state}"
        assert "absent" not in g_state, g_state
    assert re.search(r"changed=0\b", a_out), a_out[-2000:]
    assert re.search(r"changed=0\b", g_out), g_out[-2000:]
