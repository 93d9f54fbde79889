"""The ``gfsdeploy`` command: plan, apply, graph, check, and what content packages add.

It parses arguments, calls :class:`gfsdeploy.session.Session` and prints what
:mod:`gfsdeploy.output` renders. Exit codes: plan 0 = no changes, 2 = changes
pending, 1 = error; apply/check 0 = success, 1 = failure; 130/143 interrupted
(SIGINT/SIGTERM). User mistakes print file/line/field and the fix, never a
traceback (``-v`` shows one).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback

from gfsdeploy import __version__, secrets
from gfsdeploy.collection import fewer_collections
from gfsdeploy.errors import GfsError

def add_common_options(parser: argparse.ArgumentParser, *, playbook: bool = True, optional_inventory: bool = False) -> None:
    from gfsdeploy import vault

    parser.add_argument("inventory", nargs="?" if optional_inventory else None,
                        help="inventory: a YAML or INI file, a directory of them, or host1,host2,")
    vault.add_arguments(parser)
    if playbook:
        parser.add_argument("-p", "--playbook", default=None, help="playbook (default: the installed content's, e.g. playbooks/site.yaml)")
    parser.add_argument("--limit", "-l", help="only these hosts/groups (Ansible pattern, comma-separated)")
    parser.add_argument("--tags", "-t", help="only tasks with these tags (comma-separated)")
    parser.add_argument("--skip-tags", help="skip tasks with these tags")
    parser.add_argument("--forks", "-f", type=int, default=50, help="steps run at once (default 50)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("-e", "--extra-vars", action="append", default=[],
                        help="key=value or a YAML/JSON mapping (highest precedence)")
    parser.add_argument("--accept-new-host-keys", action="store_true",
                        help="record unknown SSH host keys (a changed key is always refused)")
    parser.add_argument("--known-hosts", help="known_hosts file (default: inventory's gfsdeploy_known_hosts "
                                              "or ~/.ssh/known_hosts)")
    parser.add_argument("--fail-fast", action="store_true", help="stop every host at the first failure")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a single remote step may take")
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    parser.add_argument("-u", "--user", dest="remote_user",
                        help="SSH login user when neither the inventory (ansible_user) nor the play says")
    parser.add_argument("-K", "--ask-become-pass", action="store_true",
                        help="ask for the sudo/su password (ansible_become_password in the inventory wins)")
    parser.add_argument("--become-password-file", metavar="FILE",
                        help="read the sudo/su password from the first line of FILE")
    parser.add_argument("-k", "--ask-pass", action="store_true",
                        help="ask for the SSH login password (ansible_password in the inventory wins)")


CORE_COMMANDS = ("plan", "apply", "graph", "check", "init", "vault")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; when ARGV runs a core command, the content packages' sub-commands
    (whose imports cost ~0.1 s, a tenth of a no-op run) are not registered."""
    parser = argparse.ArgumentParser(prog="gfsdeploy", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gfsdeploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("plan", help="show what apply would change; change nothing")
    add_common_options(p)
    p.add_argument("--out", help="save the plan to this file (for apply --plan)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="make the changes")
    add_common_options(p, optional_inventory=True)
    p.add_argument("--plan", dest="saved_plan", help="apply a plan saved with `plan --out`")
    p.add_argument("--yes", "-y", action="store_true", help="confirm changes that destroy data (e.g. disk wipes)")
    p.add_argument("--force-unlock", action="store_true", help="remove a stale lock on the master first")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("graph", help="print the task graph")
    add_common_options(p)
    p.add_argument("--format", choices=("text", "dot"), default="text")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("check", help="validate the inventory and run the preflight checks")
    add_common_options(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("init", help="copy the installed content's playbooks, templates and example "
                                    "inventories into a directory, to change them")
    p.add_argument("directory", help="where to copy them (created; existing files are never overwritten)")
    p.add_argument("--content", help="which installed content (default: the one with a default playbook)")
    p.set_defaults(func=cmd_init)

    from gfsdeploy.vaultcmd import register as register_vault

    register_vault(sub)

    given = sys.argv[1:] if argv is None else argv
    words = [a for a in given if not a.startswith("-")]
    if not (words and words[0] in CORE_COMMANDS) and "--version" not in given:
        from gfsdeploy.plugins import contents

        for content in contents():
            if content.register_commands is not None:
                content.register_commands(sub)
    return parser


# -- helpers -----------------------------------------------------------------------
def _split(value: str | None) -> set | None:
    if not value:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _extra_vars(items: list[str]) -> dict:
    import yaml

    out: dict = {}
    for item in items:
        text = item.strip()
        if text.startswith("@") or text.startswith("{") or text.startswith("["):
            where = text[1:] if text.startswith("@") else "-e"
            try:
                if text.startswith("@"):
                    with open(text[1:], encoding="utf-8") as handle:
                        data = yaml.safe_load(handle)
                else:
                    data = yaml.safe_load(text)
            except FileNotFoundError:
                raise GfsError(f"extra vars file {where} not found", field="--extra-vars",
                               fix="check the path after -e @") from None
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise GfsError(f"extra vars {where} are not valid YAML/JSON: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                               field="--extra-vars", fix="write -e key=value or -e '{\"key\": \"value\"}'") from None
            if data is None:
                continue
            if not isinstance(data, dict):
                raise GfsError(f"extra vars {where} must be a mapping, got {type(data).__name__}",
                               field="--extra-vars", fix="write -e key=value or -e '{\"key\": \"value\"}'")
            out.update(data)
        else:
            for pair in text.split():
                key, eq, value = pair.partition("=")
                if not eq:
                    raise GfsError(f"extra var {pair!r} is not key=value", field="--extra-vars",
                                   fix="write -e key=value or -e '{\"key\": \"value\"}'")
                out[key] = value
    return out


def _options(args):
    from gfsdeploy.session import Options

    return Options(forks=args.forks, limit=args.limit, tags=_split(args.tags), skip_tags=_split(args.skip_tags),
                   extra_vars=_extra_vars(args.extra_vars), accept_new_host_keys=args.accept_new_host_keys,
                   known_hosts=args.known_hosts, fail_fast=args.fail_fast, timeout=args.timeout,
                   connect_timeout=args.connect_timeout, verbose=args.verbose,
                   allow_destroy=bool(getattr(args, "yes", False)),
                   force_unlock=bool(getattr(args, "force_unlock", False)),
                   remote_user=getattr(args, "remote_user", None), **_passwords(args))


def _passwords(args) -> dict:
    """--ask-become-pass / --become-password-file / --ask-pass, asked once, before connecting."""
    out = {"become_password": None, "ssh_password": None}
    cached = getattr(args, "_passwords", None)
    if cached is not None:
        return cached
    path = getattr(args, "become_password_file", None)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                out["become_password"] = handle.readline().rstrip("\r\n")
        except OSError as exc:
            raise GfsError(f"cannot read the become password file: {exc.strerror or exc}", file=path,
                           field="--become-password-file", fix="give a readable file whose first line is "
                           "the password") from None
    for flag, key, prompt in (("ask_become_pass", "become_password", "BECOME password: "),
                              ("ask_pass", "ssh_password", "SSH password: ")):
        if getattr(args, flag, False) and out[key] is None:
            out[key] = _ask(prompt, "--" + flag.replace("_", "-"))
    args._passwords = out  # registered as secrets by the Session (its run's registry)
    return out


def _ask(prompt: str, flag: str) -> str:
    import getpass

    try:
        with open("/dev/tty"):
            pass
        return getpass.getpass(prompt)
    except (EOFError, OSError):
        raise GfsError(f"{flag} needs a terminal to ask on", field=flag,
                       fix="run it from a terminal, or give the password in the inventory "
                           "(ansible_become_password, best as an !vault value) or with "
                           "--become-password-file") from None


def _session(args, playbook: str | None = None, extra: dict | None = None):
    from gfsdeploy import vault
    from gfsdeploy.output import Reporter
    from gfsdeploy.session import Session

    vault.use(vault.keyring_from_args(args))  # before loading: vars files and !vault values need it

    options = _options(args)
    if extra:
        options.extra_vars.update(extra)
    reporter = Reporter(json_mode=args.json, verbose=args.verbose)
    return Session(args.inventory, playbook or getattr(args, "playbook", None), options, reporter=reporter)


def _print_errors(errors) -> None:
    from gfsdeploy.output import render_errors

    for line in render_errors(errors):
        print(secrets.redact(line), file=sys.stderr)


# -- commands -----------------------------------------------------------------------
def cmd_plan(args) -> int:
    from gfsdeploy.output import dump_json, outcomes_json, render_plan, render_protocol_tasks, render_round_trips

    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise GfsError(f"cannot save the plan: directory {os.path.dirname(os.path.abspath(args.out))} does not "
                       "exist", file=args.out, field="--out", fix="create the directory first, or give another path")
    with _session(args) as session:
        plan = session.plan()
        if args.json:
            dump_json(outcomes_json(session.runner, plan.outcomes, mode="plan", reads=plan.reads))
        else:
            session.reporter.write(render_plan(plan, color=session.reporter.color, verbose=args.verbose))
            if args.verbose:
                session.reporter.write(render_protocol_tasks(session.runner.tasks.values()))
                session.reporter.write(render_round_trips(plan.round_trips))
    if plan.errors:
        _print_errors(plan.errors)
        return 1
    if args.out:
        plan.save(args.out)
        if not args.json:
            session.reporter.write(f"Saved the plan to {args.out}. Apply exactly it with: "
                                   f"gfsdeploy apply --plan {args.out}")
    return 2 if plan.has_changes else 0


def cmd_apply(args, playbook_path: str | None = None, extra: dict | None = None) -> int:
    from gfsdeploy.errors import PlanError
    from gfsdeploy.output import dump_json, outcomes_json, render_destroys, render_plan, render_recap, \
        render_round_trips
    from gfsdeploy.session import Plan

    saved = None
    if getattr(args, "saved_plan", None):
        saved = Plan.load(args.saved_plan)
        args.inventory, playbook_path = saved.inventory, saved.playbook
        args.limit = saved.limit
        args.tags = ",".join(saved.tags) if saved.tags else None
        args.skip_tags = ",".join(saved.skip_tags) if saved.skip_tags else None
    with _session(args, playbook_path, extra) as session:
        reporter = session.reporter
        if not args.json:
            hosts = session.inventory.limit(args.limit) if args.limit else session.inventory.hosts
            reporter.write(f"Reading the state of {len(hosts)} host(s) and planning…")

        def confirm(plan) -> bool:
            reporter.write(render_plan(plan, color=reporter.color))
            reporter.write(render_destroys(plan))
            if not sys.stdin or not sys.stdin.isatty():
                raise PlanError("the plan destroys data and there is no terminal to confirm it",
                                fix="review `gfsdeploy plan`, then re-run apply with --yes")
            answer = input("The changes above destroy data. Type 'yes' to continue: ")
            return answer.strip() == "yes"

        def announce(plan) -> None:
            if not args.json:
                c = plan.summary
                reporter.write(f"Applying: {c['add']} to add, {c['change']} to change, {c['destroy']} to destroy.")

        verbose, reporter.verbose = reporter.verbose, 0  # what debug says is shown once, below
        try:
            recap = session.apply(saved, confirm=confirm, before_apply=announce)
        except PlanError as exc:
            if exc.plan is not None and not args.json:
                reporter.write(render_plan(exc.plan, color=reporter.color))
            if exc.plan is not None and exc.plan.errors:
                if args.json:
                    dump_json(outcomes_json(session.runner, exc.plan.outcomes, mode="apply"))
                _print_errors(exc.plan.errors)
                print("Nothing was changed: fix the errors above and re-run.", file=sys.stderr)
                return 1
            raise
        finally:
            reporter.verbose = verbose
        if args.json:
            dump_json(outcomes_json(session.runner, recap.outcomes, mode="apply", reads=recap.plan.reads))
        else:
            if recap.no_changes:
                for o in recap.outcomes:
                    for message in o.messages:
                        reporter.write(f"[{o.host}] {o.task.label}: {message}")
                reporter.write("No changes. The hosts match the playbook.")
            reporter.write(render_recap(recap))
            if args.verbose:
                reporter.write(render_round_trips(session.runner.round_trips()))
        return 0 if recap.ok else 1


def cmd_graph(args) -> int:
    from gfsdeploy.graph import Step, build_graph, render_dot, render_text
    from gfsdeploy.session import load

    inventory, playbook, _ = load(args.inventory, args.playbook)
    limit = inventory.limit(args.limit) if args.limit else None
    graph, tasks = build_graph(playbook, inventory, limit=limit, tags=_split(args.tags),
                               skip_tags=_split(args.skip_tags))
    if args.json:
        print(json.dumps({"nodes": [{"id": str(n), "task": tasks[n.task_id].label, "host": n.host}
                                    if isinstance(n, Step) else {"id": str(n), "barrier": n.why}
                                    for n in graph.nodes],
                          "edges": [{"from": str(a), "to": str(b), "hard": d.get("hard"), "why": d.get("why")}
                                    for a, b, d in graph.edges(data=True)]}, indent=2))
    elif args.format == "dot":
        print(render_dot(graph, tasks))
    else:
        print(render_text(graph, tasks))
        if args.verbose:
            from gfsdeploy.output import render_protocol_tasks

            print(render_protocol_tasks(tasks.values()))
    return 0


def cmd_check(args) -> int:
    from gfsdeploy.output import dump_json, outcomes_json

    with _session(args) as session:
        plan = session.check()
        if args.json:
            dump_json(outcomes_json(session.runner, plan.outcomes, mode="check"))
            return 1 if plan.errors else 0
        for outcome in plan.outcomes:  # what the preflight read (e.g. the API server it reached)
            for message in outcome.messages:
                session.reporter.write(f"{outcome.host}: {outcome.task.label}: {message}")
        for text in plan.file_warnings:
            session.reporter.write(f"warning: {text}")
        for w in plan.warnings:
            session.reporter.write(f"warning: {w.host}: {w.resource}: {w.diff}")
        if plan.errors:
            session.reporter.write(f"check failed: {len(set(plan.errors))} problem(s)")
            _print_errors(plan.errors)
            return 1
        session.reporter.write(f"check passed: inventory valid, {len(session.runner.hosts)} host(s) reachable, "
                               f"{len(plan.outcomes)} preflight check(s) ok.")
    return 0


def cmd_init(args) -> int:
    """The habit of big playbook projects: copy the sample, then edit the copy."""
    import shutil

    from gfsdeploy.plugins import contents, default_content

    if args.content:
        found = [c for c in contents() if c.name == args.content]
        if not found:
            raise GfsError(f"no installed content named {args.content!r}", field="--content",
                           fix="installed: " + (", ".join(c.name for c in contents()) or "none"))
        content = found[0]
    else:
        content = default_content()
        if content is None:
            raise GfsError("no installed content to copy", fix="install a content package (e.g. gfsdeploy's own)")
    target = os.path.abspath(args.directory)
    copied, kept = [], []
    for name in ("playbooks", "templates", "inventory"):
        source = content.path(name)
        if not os.path.isdir(source):
            continue
        for folder, _, files in os.walk(source):
            rel = os.path.relpath(folder, content.share_dir)
            os.makedirs(os.path.join(target, rel), exist_ok=True)
            for file in sorted(files):
                if file in ("lab.yaml", "lab.known_hosts") or file.endswith(".pyc"):
                    continue
                dest = os.path.join(target, rel, file)
                (kept if os.path.exists(dest) else copied).append(os.path.relpath(dest, target))
                if not os.path.exists(dest):
                    shutil.copy2(os.path.join(folder, file), dest)
    print(f"Copied {len(copied)} file(s) of {content.name!r} into {target}" +
          (f"; kept {len(kept)} existing file(s) unchanged" if kept else "") + ".")
    default = os.path.join(target, content.default_playbook) if content.default_playbook else None
    if default:
        print(f"Edit {os.path.join(target, 'inventory')} and the playbooks, then: "
              f"gfsdeploy plan INVENTORY -p {default}")
    return 0


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"gfsdeploy {__version__}")  # before building the parser: start-up stays minimal
        return 0
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    received = []

    def on_signal(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with fewer_collections():
            return args.func(args)
    except KeyboardInterrupt:
        code = 128 + (received[0] if received else signal.SIGINT)
        print("\nInterrupted: no new command was started after the signal; files are written atomically, "
              "so none is half-written. Re-run to finish.", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        # worker threads may still sit in a remote read; the lock is released and the
        # connections are cut, so nothing is left to wait for
        os._exit(code)
    except GfsError as exc:
        problems = getattr(exc, "problems", None) or [exc]
        if getattr(args, "json", False):
            print(json.dumps({"error": secrets.redact(str(exc)), "errors": [secrets.redact(str(p)) for p in problems]}))
        for problem in problems:
            print(f"Error: {problem}", file=sys.stderr)
        if verbose:
            traceback.print_exc()
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - never a bare traceback for the user
        print(secrets.redact(f"internal error: {type(exc).__name__}: {exc}\n"
                             "This is a bug in gfsdeploy; re-run with -v for the traceback."), file=sys.stderr)
        if verbose:
            print(secrets.redact(traceback.format_exc()), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
