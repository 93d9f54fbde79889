"""pyinfra inventory for the benchmark, generated from the lab's (Ansible-shaped) inventory.

bench/run.py sets GFSBENCH_INVENTORY to the YAML `Lab.up` wrote; every host of
its `gluster` group becomes a pyinfra host with the same key, user, address,
known_hosts file (strict checking, as gfsdeploy and ansible use) and storage_ip.
"""

import os

import yaml

with open(os.environ["GFSBENCH_INVENTORY"], encoding="utf-8") as _fh:
    _inv = yaml.safe_load(_fh)["all"]

_vars = _inv.get("vars", {})
_names = list(_inv["children"]["gluster"]["hosts"])

gluster = [
    (_inv["hosts"][name]["ansible_host"], {
        "name": name,
        "storage_ip": _inv["hosts"][name]["storage_ip"],
        "ssh_user": _vars["ansible_user"],
        "ssh_key": _vars["ansible_ssh_private_key_file"],
        "ssh_known_hosts_file": _vars["gfsdeploy_known_hosts"],
        "ssh_strict_host_key_checking": "yes",
    })
    for name in _names
]
