"""The flagship's inventory conventions, checked when an inventory is loaded.

kubespray spells the master group ``kube_control_plane`` (or ``kube-master``);
they become ``k8s_master``. Each storage host's ``storage_ip``, ``devices`` and
``zone`` are checked here, so a typo fails with file and line before anything
connects, not halfway through an apply.
"""

from __future__ import annotations

from gfsdeploy import validate
from gfsdeploy.errors import InventoryError

#: kubespray/ansible spellings of the master group
MASTER_ALIASES = ("k8s_master", "kube_control_plane", "kube-master", "kube_master")


def inventory_loaded(inventory) -> None:
    """Add the master-group alias, then check every host's storage variables."""
    groups = inventory.groups
    if not groups.get("k8s_master"):
        for alias in MASTER_ALIASES[1:]:
            if groups.get(alias):
                groups["k8s_master"] = list(groups[alias])
                for name in groups[alias]:
                    if "k8s_master" not in inventory.hosts[name].groups:
                        inventory.hosts[name].groups.append("k8s_master")
                break
    for host in inventory.hosts.values():
        check_host(host)


def check_host(host) -> None:
    v = host.vars
    where = {"file": host.file, "line": host.line}

    def bad(field, problem, fix):
        raise InventoryError(f"host {host.name}: {problem}", **where, field=field, fix=fix)

    if "storage_ip" in v and validate.ip(v["storage_ip"]):
        bad("storage_ip", validate.ip(v["storage_ip"]) + " (heketi's `storage` hostname must be an IP)",
            "set storage_ip to the node's storage-network IP address, e.g. 192.168.186.10")
    if "devices" in v:
        devices = v["devices"]
        if not isinstance(devices, list):
            bad("devices", f"`devices` must be a list of block devices, got {devices!r}",
                "write e.g. `devices: [/dev/sdb]`")
        for item in devices:
            name = item.get("name") if isinstance(item, dict) else item
            if isinstance(item, dict):
                unknown = set(item) - {"name", "destroydata"}
                if unknown:
                    bad("devices", f"unknown device key {sorted(unknown)[0]!r}",
                        "a device entry is a path or {name: /dev/sdb, destroydata: false}")
                if "destroydata" in item and not isinstance(item["destroydata"], bool):
                    bad("devices", f"destroydata of {name} must be true or false",
                        "write `destroydata: true` or `destroydata: false`")
            problem = validate.device(name)
            if problem:
                bad("devices", problem, "list raw block devices such as /dev/sdb")
    if "zone" in v and (isinstance(v["zone"], bool) or not isinstance(v["zone"], int) or v["zone"] < 1):
        bad("zone", f"zone must be a positive integer, got {v['zone']!r}", "write e.g. `zone: 1`")


def device_list(host_vars: dict) -> list[dict]:
    """A host's ``devices`` as ``[{name, destroydata}]``."""
    out = []
    for item in host_vars.get("devices") or []:
        if isinstance(item, dict):
            out.append({"name": item["name"], "destroydata": bool(item.get("destroydata", False))})
        else:
            out.append({"name": item, "destroydata": False})
    return out
