"""Differential: ``ansible_service_mgr`` from gfsdeploy's facts probe against ansible-core's
own service_mgr collector, both run on the same fake host (fakehost.py: a distribution's
recorded files over this machine's root, chrooted) — PID 1 trusted or not (``init``, a
shell), and each thing Ansible's rule then looks at present or absent."""

from __future__ import annotations

import json
import sys

import pytest

from gfsdeploy import hostfacts
from tests.targets.fakehost import FakeHost, available

#: ansible-core's collector, run by this interpreter (ansible-core is in the `test` extra)
#: inside the fake host: get_bin_path and run_command as AnsibleModule provides them
ANSIBLE_SIDE = r"""
import json, subprocess
from ansible.module_utils.common.process import get_bin_path
from ansible.module_utils.facts.system.service_mgr import ServiceMgrFactCollector

class Module:
    def get_bin_path(self, name, required=False, opt_dirs=None):
        try:
            return get_bin_path(name)
        except ValueError:
            return None

    def run_command(self, cmd, use_unsafe_shell=False):
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

facts = ServiceMgrFactCollector().collect(Module(), {"ansible_system": "Linux", "ansible_distribution": DISTRO})
print(json.dumps(facts["service_mgr"]))
"""

#: target, PID 1, overrides of the fake host, what both must say
CASES = [
    ("debian12", "systemd", {}, "systemd"),                                       # trusted PID 1
    ("rocky9", "bash", {}, "systemd"),                     # a shell: /sbin/init links to systemd (offline rule)
    ("debian12", "sh", {"files": {"/run/systemd/system/.keep": ""}}, "systemd"),  # the boot canary
    ("ubuntu2204", "init", {"absent": ["/sbin/init", "/usr/sbin/init"]}, "sysvinit"),  # no link: /etc/init.d
    ("centos7", "bash", {"files": {"/sbin/openrc": ""}}, "openrc"),               # openrc before the offline rule
    ("debian12", "init", {"files": {"/etc/init/x.conf": ""},              # upstart: initctl and /etc/init/
                          "commands": {"initctl": [{"stdout": ""}]}}, "upstart"),
    ("debian12", "dash", {"absent": ["/sbin/init", "/usr/sbin/init", "/etc/init.d"]}, "service"),  # nothing: service
    ("rocky8", "tini", {}, "tini"),                     # any other PID 1 is the answer
    ("debian12", "openrc-init", {}, "openrc"),            # renamed as Ansible does
]


@pytest.mark.parametrize("target,pid1,overrides,want", CASES, ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in CASES])
def test_service_mgr_as_ansible_core(target, pid1, overrides, want):
    if available() is not None:
        pytest.skip(available())
    pytest.importorskip("ansible")
    host = FakeHost(target, "k8s-1", overrides={"pid1": pid1, **overrides})
    try:
        ours = host.run(hostfacts.FACTS_PROBE, timeout=60)
        theirs = host.run(f"exec {sys.executable} - <<'EOF'\nDISTRO = 'Debian'\n{ANSIBLE_SIDE}\nEOF\n", timeout=120)
    finally:
        host.close()
    assert theirs.rc == 0, theirs.stderr
    expected = json.loads(theirs.stdout)
    assert expected == want  # the case tests what it says
    assert hostfacts.gather(ours.stdout).get("service_mgr") == expected, hostfacts.sections(ours.stdout)
