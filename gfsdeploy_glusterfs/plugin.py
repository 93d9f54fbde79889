"""How the engine finds this content (entry point ``gfsdeploy.content``)."""

from __future__ import annotations

from gfsdeploy.plugins import Content
from gfsdeploy_glusterfs import share


def _register_commands(subparsers) -> None:
    from gfsdeploy_glusterfs.commands import register

    register(subparsers)


def _inventory_loaded(inventory) -> None:
    from gfsdeploy_glusterfs.inventory_checks import inventory_loaded

    inventory_loaded(inventory)


CONTENT = Content(
    name="glusterfs",
    module_packages=("gfsdeploy_glusterfs.modules",),
    share_dir=str(share.share_dir()),
    default_playbook="playbooks/site.yaml",
    register_commands=_register_commands,
    inventory_loaded=_inventory_loaded,
    lock_groups=("k8s_master",),
)
