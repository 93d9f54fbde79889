"""Fully qualified module names map to native modules only where that collection has them."""

import pytest

from gfsdeploy import modules


@pytest.mark.parametrize("name, native", [
    ("copy", "copy"), ("ansible.builtin.copy", "copy"), ("ansible.legacy.shell", "shell"),
    ("ansible.posix.mount", "mount"), ("ansible.posix.sysctl", "sysctl"),
    ("ansible.builtin.mount", "mount"),            # ansible-core redirects it to ansible.posix
    ("ansible.builtin.systemd_service", "systemd"), ("ansible.builtin.systemd", "systemd"),
    ("community.general.ufw", "ufw"), ("community.general.modprobe", "modprobe"),
    ("community.general.iptables_state", "iptables_state"),
    ("ansible.builtin.iptables_state", None),      # never in core, no redirect
    ("community.general.copy", None), ("gfsdeploy.devices", "devices"),
])
def test_fqcn(name, native):
    module = modules.get(name)
    if native is None:  # not native: Ansible's own module (run through its protocol) or nothing
        assert module is None or type(module).__name__ == "ProtocolModule"
    else:
        assert module is not None and module.name == native
