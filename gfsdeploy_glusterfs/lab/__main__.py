"""`python -m gfsdeploy_glusterfs.lab up|down|status` (same as `gfsdeploy lab ...`)."""

import argparse
import sys

from gfsdeploy_glusterfs.lab.cli import register


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gfsdeploy_glusterfs.lab")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["lab", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
