"""The flagship's own sub-commands: ``teardown``, ``lab``, ``inventory from-vagrant``."""

from __future__ import annotations

import sys

from gfsdeploy.errors import GfsError
from gfsdeploy_glusterfs import share

TEARDOWN_PLAYBOOK = str(share.path("playbooks", "teardown.yaml"))


def register(subparsers) -> None:
    from gfsdeploy import cli

    p = subparsers.add_parser("teardown", help="remove what apply created in Kubernetes and heketi (like "
                                               "terraform destroy: shows the plan, asks for a typed yes)")
    cli.add_common_options(p, playbook=False)
    p.add_argument("--wipe-devices", action="store_true", help="also wipe the storage devices (destroys data)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (the plan is still shown)")
    p.add_argument("--force", action="store_true",
                   help="tear down even while volume claims other than the smoke test's use the StorageClass")
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
    """``terraform destroy``'s contract: the plan first, then a typed ``yes`` (or --yes);
    what runs is exactly the plan that was confirmed (a changed cluster is refused)."""
    from gfsdeploy import cli
    from gfsdeploy.errors import PlanError
    from gfsdeploy.output import dump_json, outcomes_json, render_plan, render_recap

    extra = {"wipe_devices": bool(args.wipe_devices), "teardown_force": bool(args.force)}
    args.saved_plan = None
    with cli._session(args, TEARDOWN_PLAYBOOK, extra) as session:
        reporter = session.reporter
        plan = session.plan()
        if not args.json:
            reporter.write(render_plan(plan, color=reporter.color))
        if plan.errors:
            if args.json:
                dump_json(outcomes_json(session.runner, plan.outcomes, mode="teardown"))
            cli._print_errors(plan.errors)
            print("Nothing was changed.", file=sys.stderr)
            return 1
        if not plan.has_changes:
            if args.json:
                dump_json(outcomes_json(session.runner, plan.outcomes, mode="teardown"))
            return 0
        if not args.yes and not _confirmed(plan):
            print("Teardown cancelled: nothing was changed.", file=sys.stderr)
            return 1
        session.options.allow_destroy = True
        try:
            recap = session.apply(plan, confirm=lambda _: True)
        except PlanError as exc:
            if exc.plan is not None and exc.plan.errors:
                cli._print_errors(exc.plan.errors)
                print("Nothing was changed.", file=sys.stderr)
                return 1
            raise
        if args.json:
            dump_json(outcomes_json(session.runner, recap.outcomes, mode="teardown", reads=recap.plan.reads))
        else:
            reporter.write(render_recap(recap))
        return 0 if recap.ok else 1


def _confirmed(plan) -> bool:
    counts = plan.summary
    what = f"{counts.get('destroy', 0)} to destroy" + (", storage devices wiped" if plan.destroys_data else "")
    if not sys.stdin or not sys.stdin.isatty():
        raise GfsError(f"teardown removes what the plan above lists ({what}) and there is no terminal to confirm it",
                       field="--yes", fix="review the plan above, then re-run with --yes")
    print(f"\nDo you really want to tear down GlusterFS and heketi ({what})?\n"
          "  Only 'yes' will be accepted to approve.\n", flush=True)
    try:
        answer = input("  Enter a value: ")
    except EOFError:
        return False
    return answer.strip() == "yes"
