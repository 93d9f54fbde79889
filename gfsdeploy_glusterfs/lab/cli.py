"""`gfsdeploy lab up|down|status`: the command line of the local lab."""

from __future__ import annotations

import argparse
import json
import sys

from gfsdeploy.errors import GfsError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `lab` subcommand; its handler (args.func) returns an exit code."""
    p = subparsers.add_parser("lab", help="the local lab: nodes in namespaces on this machine",
                              description="Real SSH nodes in network namespaces on this machine (root, Linux).")
    sub = p.add_subparsers(dest="lab_command", metavar="{up,down,status}")
    sub.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="gfslab", help="lab name (default gfslab)")
    up = sub.add_parser("up", parents=[common], help="bring the lab up and write its inventory")
    up.add_argument("--nodes", type=int, default=3, help="number of nodes k8s-1..N (default 3)")
    up.add_argument("--recreate", action="store_true", help="take an existing lab down first")
    up.add_argument("--subnet", default="10.186", metavar="BASE",
                    help="first two octets: nodes on BASE.0.0/24, service IPs on BASE.1.0/24 (default 10.186)")
    up.add_argument("--inventory", default="inventory/lab.yaml", metavar="PATH",
                    help="where to write the inventory (default inventory/lab.yaml)")
    sub.add_parser("down", parents=[common], help="remove everything the lab created")
    st = sub.add_parser("status", parents=[common], help="what is up")
    st.add_argument("--json", action="store_true", help="machine-readable")
    for sp in (up, sub.choices["down"], st):
        sp.set_defaults(func=run)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    try:
        return _run(args)
    except GfsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _say(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def _run(args) -> int:
    from gfsdeploy_glusterfs.lab import Lab

    if args.lab_command == "up":
        lab = Lab(args.name, args.subnet, log=_say)
        if not lab.up(nodes=args.nodes, inventory_path=args.inventory, recreate=args.recreate):
            print(f"lab {lab.name} is already up ({len(lab.nodes)} nodes, inventory {lab.inventory_path}); "
                  f"use --recreate to rebuild it")
            return 0
        print(f"lab {lab.name} is up: {len(lab.nodes)} nodes on {lab.base}.0.0/24")
        for n in lab.nodes:
            print(f"  {n.name:8} {n.ip:15} /dev/sdb -> {n.devices.get('/dev/sdb')}")
        print(f"inventory:   {lab.inventory_path}")
        print(f"ssh:         {' '.join(lab.ssh_argv(lab.nodes[0].name))}")
        return 0
    lab = Lab(args.name, log=_say)
    if args.lab_command == "down":
        found = lab.down()
        print(f"lab {lab.name} is down" if found else f"lab {lab.name} was not up; nothing to remove")
        return 0
    st = lab.status()
    if getattr(args, "json", False):
        print(json.dumps(st, indent=1))
        return 0
    if not st["up"]:
        print(f"lab {lab.name} is not up")
        return 0
    print(f"lab {st['name']}: {len(st['nodes'])} nodes on {st['base']}.0.0/24, state in {st['state_dir']}")
    for n in st["nodes"]:
        state = "up" if n["up"] and n["ssh"] else ("up, sshd down" if n["up"] else "down")
        print(f"  {n['name']:8} {n['ip']:15} {state:14} sshd pid {n['sshd_pid'] or '-'}")
    for s in st["services"]:
        print(f"  service {s['name']:12} {'running pid ' + str(s['pid']) if s['pid'] else 'stopped'}  log {s['log']}")
    print(f"inventory: {st['inventory']}")
    return 0
