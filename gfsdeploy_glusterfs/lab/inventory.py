"""The inventory and known_hosts `lab up` writes: gfsdeploy (and Ansible) reach the nodes with them."""

from __future__ import annotations

from pathlib import Path

import yaml


def build_inventory(*, nodes, key_path: str, known_hosts_path: str, extra_vars: dict | None = None,
                    master: str = "k8s-1") -> dict:
    """Ansible-shaped inventory: every node is a storage node, the first is the master."""
    vars_ = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": key_path,
        "gfsdeploy_known_hosts": known_hosts_path,
        "kernel_modules_unloadable": "warn",
    }
    vars_.update(extra_vars or {})
    hosts = {n.name: {"ansible_host": n.ip, "storage_ip": n.ip, "devices": sorted(n.devices),
                      "zone": 1} for n in nodes}
    return {"all": {
        "vars": vars_,
        "hosts": hosts,
        "children": {
            "k8s_master": {"hosts": {master: {}}},
            "gluster": {"hosts": {n.name: {} for n in nodes}},
        },
    }}


def known_hosts_lines(keys: dict[str, str]) -> str:
    """{ip: 'ssh-ed25519 AAAA... comment'} -> known_hosts text (type and key only)."""
    out = []
    for ip, pub in keys.items():
        ktype, key = pub.split()[:2]
        out.append(f"{ip} {ktype} {key}")
    return "\n".join(out) + "\n"


def write_yaml(path: Path, data: dict, header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    path.write_text(header + text)
