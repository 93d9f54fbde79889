"""The flagship's own sub-commands: ``teardown``, ``lab``, ``inventory from-vagrant``."""

from __future__ import annotations

import sys

from gfsdeploy.errors import GfsError
from gfsdeploy_glusterfs import share

TEARDOWN_PLAYBOOK = str(share.path("playbooks", "teardown.yaml"))


def register(subparsers) -> None:
    from gfsdeploy import cli

    p = subparsers.add_parser("teardown", help="remove what apply created in Kubernetes and heketi")
    cli.add_common_options(p, playbook=False)
    p.add_argument("--wipe-devices", action="store_true", help="also wipe the storage devices (destroys data)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--force-unlock", action="store_true")
    p.set_defaults(func=cmd_teardown)
    try:
        from gfsdeploy_glusterfs.lab.cli import register as lab_register

        lab_register(subparsers)
    except ImportError:
        pass
    from gfsdeploy_glusterfs.vagrant import register as vagrant_register

    vagrant_register(subparsers)


def cmd_teardown(args) -> int:
    from gfsdeploy import cli

    if args.wipe_devices and not args.yes and not (sys.stdin and sys.stdin.isatty()):
        raise GfsError("--wipe-devices destroys the data on every storage device", field="--wipe-devices",
                       fix="review it with `gfsdeploy plan INVENTORY -p playbooks/teardown.yaml -e wipe_devices=true`, "
                           "then add --yes to confirm")
    args.saved_plan = None
    return cli.cmd_apply(args, TEARDOWN_PLAYBOOK, {"wipe_devices": bool(args.wipe_devices)})
