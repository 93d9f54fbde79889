"""The ``gfsdeploy`` command: plan, apply, graph, check, and what content packages add.

Exit codes (SPEC): plan 0 = no changes, 2 = changes pending, 1 = error;
apply/check 0 = success, 1 = failure. User mistakes print file/line/field and
the fix, never a traceback (``-v`` shows one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import traceback

from gfsdeploy import __version__, secrets
from gfsdeploy.errors import GfsError, PlaybookError

PLAN_FORMAT = 1


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


CORE_COMMANDS = ("plan", "apply", "graph", "check")


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


def _load(args, playbook_path: str | None = None):
    from gfsdeploy.inventory import load_inventory
    from gfsdeploy.playbook import load_playbook
    from gfsdeploy.plugins import contents

    from gfsdeploy import vault

    if not args.inventory:
        raise GfsError("no inventory given", fix="run `gfsdeploy apply INVENTORY` or `gfsdeploy apply --plan FILE`")
    vault.use(vault.keyring_from_args(args))  # before loading: vars files and !vault values need it
    path = playbook_path or getattr(args, "playbook", None) or _default_playbook()
    if not os.path.exists(path):
        raise PlaybookError("playbook not found", file=path, fix="pass -p PLAYBOOK with an existing file")
    inventory = load_inventory(args.inventory, playbook_dir=os.path.dirname(os.path.abspath(path)))
    for content in contents():
        if content.inventory_loaded is not None:
            content.inventory_loaded(inventory)
    playbook = load_playbook(path)
    return inventory, playbook, path


def _default_playbook() -> str:
    from gfsdeploy.plugins import default_content

    content = default_content()
    if content is None:
        raise GfsError("no playbook given and no content package installed that ships a default one",
                       field="--playbook", fix="pass -p PLAYBOOK")
    return content.path(content.default_playbook)


def _options(args, mode: str):
    from gfsdeploy.runner import Options

    return Options(mode=mode, forks=args.forks, fail_fast=args.fail_fast,
                   tags=_split(args.tags), skip_tags=_split(args.skip_tags),
                   accept_new_host_keys=args.accept_new_host_keys, known_hosts=args.known_hosts,
                   allow_destroy=bool(getattr(args, "yes", False)), timeout=args.timeout,
                   connect_timeout=args.connect_timeout, extra_vars=_extra_vars(args.extra_vars),
                   verbose=args.verbose, remote_user=getattr(args, "remote_user", None),
                   **_passwords(args))


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
    for value in out.values():
        secrets.register(value)
    args._passwords = out
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


def _runner(args, mode: str, playbook_path: str | None = None, extra: dict | None = None):
    from gfsdeploy.plan import Reporter
    from gfsdeploy.runner import Runner

    inventory, playbook, path = _load(args, playbook_path)
    options = _options(args, mode)
    if extra:
        options.extra_vars.update(extra)
    if args.limit:
        options.limit = inventory.select(args.limit, where={"field": "--limit"})
    reporter = Reporter(json_mode=args.json, verbose=args.verbose)
    return Runner(inventory, playbook, options, reporter), inventory, path


def _report_round_trips(runner) -> None:
    runner.reporter.write("round trips: " + ", ".join(f"{h}={n}" for h, n in runner.round_trips().items()))


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


# -- commands -----------------------------------------------------------------------
def cmd_plan(args) -> int:
    from gfsdeploy.plan import dump_json, outcomes_json, render_plan, summary

    runner, inventory, path = _runner(args, "plan")
    try:
        outcomes = runner.run("plan")
    finally:
        runner.close()
    counts = summary(outcomes)
    failed = any(o.status == "failed" for o in outcomes)
    if args.json:
        data = outcomes_json(runner, outcomes, mode="plan")
        dump_json(data)
    else:
        runner.reporter.write(render_plan(outcomes, color=runner.reporter.color))
        if args.verbose:
            _print_protocol_tasks(runner.tasks.values(), runner.reporter.write)
            _report_round_trips(runner)
    if args.out and not failed:
        saved = {"format": PLAN_FORMAT, "inventory": os.path.abspath(args.inventory),
                 "inventory_sha256": _digest(args.inventory), "playbook": os.path.abspath(path),
                 "playbook_sha256": _digest(path), "limit": args.limit, "tags": args.tags,
                 "skip_tags": args.skip_tags, "fingerprint": runner.fingerprint(), "summary": counts,
                 "plan": [c for o in outcomes for c in ({"host": o.host, "task": o.task.label, **ch.to_json()}
                                                          for ch in o.changes)]}
        tmp = args.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(secrets.redact_obj(saved), handle, indent=2)
        os.replace(tmp, args.out)
        if not args.json:
            runner.reporter.write(f"Saved the plan to {args.out}. Apply exactly it with: "
                                  f"gfsdeploy apply --plan {args.out}")
    if failed:
        for o in outcomes:
            if o.status == "failed":
                print(f"Error: {o.error}", file=sys.stderr)
        return 1
    return 2 if any(counts[k] for k in ("add", "change", "destroy")) else 0


def cmd_apply(args, playbook_path: str | None = None, extra: dict | None = None) -> int:
    from gfsdeploy.plan import dump_json, outcomes_json, recap, render_plan, summary

    saved = None
    if getattr(args, "saved_plan", None):
        saved = _read_saved_plan(args.saved_plan)
        args.inventory = saved["inventory"]
        playbook_path = saved["playbook"]
        args.limit, args.tags, args.skip_tags = saved.get("limit"), saved.get("tags"), saved.get("skip_tags")
        for key, file in (("inventory_sha256", saved["inventory"]), ("playbook_sha256", saved["playbook"])):
            if not os.path.exists(file) or _digest(file) != saved[key]:
                raise GfsError(f"{file} changed since the plan was saved", file=args.saved_plan,
                               fix="run `gfsdeploy plan --out` again and review the new plan")
    runner, inventory, path = _runner(args, "plan", playbook_path, extra)
    lock = None
    try:
        # pass 1: read and plan everything (preflight); nothing changes yet
        if not args.json:
            runner.reporter.write(f"Reading the state of {len(runner.hosts)} host(s) and planning…")
        verbose, runner.reporter.verbose = runner.reporter.verbose, 0  # what debug says is shown once, below
        outcomes = runner.run("plan")
        runner.reporter.verbose = verbose
        counts = summary(outcomes)
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            if args.json:
                dump_json(outcomes_json(runner, outcomes, mode="apply"))
            else:
                runner.reporter.write(render_plan(outcomes))
                runner.reporter.write("\nNothing was changed: fix the errors above and re-run.")
            return 1
        if saved is not None and runner.fingerprint() != saved["fingerprint"]:
            runner.reporter.write(render_plan(outcomes))
            raise GfsError("the hosts changed since the plan was saved; refusing to apply a stale plan",
                           file=args.saved_plan, fix="run `gfsdeploy plan --out` again and review the new plan")
        if not any(counts[k] for k in ("add", "change", "destroy")):
            if args.json:
                dump_json(outcomes_json(runner, outcomes, mode="apply"))
            else:
                for o in outcomes:
                    for message in o.messages:
                        runner.reporter.write(f"[{o.host}] {o.task.label}: {message}")
                runner.reporter.write("No changes. The hosts match the playbook.")
                runner.reporter.write(recap(runner, outcomes))
                if args.verbose:
                    _report_round_trips(runner)
            return 0
        wipes = [c for o in outcomes for c in o.changes if destroys_data(c)]
        if wipes and not args.yes:
            if not _confirm(runner, outcomes, wipes):
                runner.reporter.write("Aborted: nothing was changed.")
                return 1
            runner.options.allow_destroy = True
        lock = _cluster_lock(runner, inventory)
        if lock is not None:
            if getattr(args, "force_unlock", False):
                previous = lock.force_unlock()
                if previous:
                    runner.reporter.write(f"Removed the lock held by: {previous}")
            runner.options.before_change = lock.acquire
        if not args.json:
            runner.reporter.write(f"Applying: {counts['add']} to add, {counts['change']} to change, "
                                  f"{counts['destroy']} to destroy.")
        # pass 2: apply, reusing the connections and what was read
        outcomes = runner.run("apply")
        if args.json:
            data = outcomes_json(runner, outcomes, mode="apply")
            dump_json(data)
        else:
            runner.reporter.write(recap(runner, outcomes))
            if args.verbose:
                _report_round_trips(runner)
        return 1 if any(o.status == "failed" for o in outcomes) or \
            any(hr.unreachable for hr in runner.hosts.values()) else 0
    finally:
        if lock is not None:
            try:
                lock.release()
            except GfsError:
                pass
        runner.close()


def _confirm(runner, outcomes, wipes) -> bool:
    runner.reporter.write(render_wipes(outcomes))
    if not sys.stdin or not sys.stdin.isatty():
        raise GfsError("the plan destroys data and there is no terminal to confirm it",
                       fix="review `gfsdeploy plan`, then re-run apply with --yes")
    answer = input("The changes above destroy data. Type 'yes' to continue: ")
    return answer.strip() == "yes"


def destroys_data(change) -> bool:
    """A change that loses data (a module marks it ``destroys_data``, e.g. a disk
    wipe): needs --yes or a typed 'yes'."""
    return bool(change.data.get("destroys_data"))


def render_wipes(outcomes) -> str:
    lines = ["The plan DESTROYS data:"]
    for o in outcomes:
        for c in o.changes:
            if destroys_data(c):
                lines.append(f"  - {o.host}: {c.resource}" + (f" ({c.diff.strip()})" if c.diff else ""))
    return "\n".join(lines)


def _cluster_lock(runner, inventory):
    from gfsdeploy.lock import LOCK_DIR, ClusterLock

    from gfsdeploy.plugins import contents

    preferred = [h for content in contents() for group in content.lock_groups
                 for h in inventory.groups.get(group, []) if h in runner.hosts]
    candidates = preferred + sorted(runner.hosts)
    for name in candidates:
        hr = runner.hosts[name]
        if hr.transport is not None and hr.connected and not hr.unreachable:
            return ClusterLock(hr.transport, name, path=str(hr.host.vars.get("gfsdeploy_lock_dir") or LOCK_DIR),
                               report=runner.reporter.write)
    return None


def _read_saved_plan(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise GfsError(f"cannot read saved plan: {exc}", file=path, fix="save one with `gfsdeploy plan --out FILE`") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise GfsError("not a gfsdeploy plan file (or from another version)", file=path,
                       fix="save one with `gfsdeploy plan --out FILE`")
    return data


def cmd_graph(args) -> int:
    from gfsdeploy.graph import build_graph, render_dot, render_text

    inventory, playbook, _ = _load(args)
    limit = inventory.select(args.limit, where={"field": "--limit"}) if args.limit else None
    graph, tasks = build_graph(playbook, inventory, limit=limit, tags=_split(args.tags),
                               skip_tags=_split(args.skip_tags))
    if args.json:
        print(json.dumps({"nodes": [{"id": str(n), "task": tasks[n.task_id].label, "host": n.host}
                                    for n in graph.nodes],
                          "edges": [{"from": str(a), "to": str(b), "hard": d.get("hard"), "why": d.get("why")}
                                    for a, b, d in graph.edges(data=True)]}, indent=2))
    elif args.format == "dot":
        print(render_dot(graph, tasks))
    else:
        print(render_text(graph, tasks))
        if args.verbose:
            _print_protocol_tasks(tasks.values(), print)
    return 0


def _print_protocol_tasks(tasks, write) -> None:
    """``-v``: which tasks run an Ansible module through Ansible's module protocol."""
    from gfsdeploy.ansible_protocol import protocol_lines

    lines = protocol_lines(tasks)
    if lines:
        write("Tasks run through Ansible's module protocol (no native gfsdeploy module):\n" + "\n".join(lines))


def cmd_check(args) -> int:
    from gfsdeploy.plan import dump_json, outcomes_json

    args.tags = ",".join(sorted((_split(args.tags) or set()) | {"preflight"}))
    runner, inventory, path = _runner(args, "plan")
    try:
        outcomes = runner.run("plan")
    finally:
        runner.close()
    failed = [o for o in outcomes if o.status == "failed"]
    unreachable = [h for h, hr in runner.hosts.items() if hr.unreachable]
    if args.json:
        dump_json(outcomes_json(runner, outcomes, mode="check"))
    else:
        for o in outcomes:
            for c in o.changes:
                if c.action == "!":
                    runner.reporter.write(f"warning: {o.host}: {c.resource}: {c.diff}")
        if failed:
            runner.reporter.write(f"check failed: {len(failed)} problem(s)")
            for o in failed:
                runner.reporter.write("  " + o.error.replace("\n", "\n  "))
        else:
            runner.reporter.write(f"check passed: inventory valid, {len(runner.hosts)} host(s) reachable, "
                                  f"{len(outcomes)} preflight check(s) ok.")
    return 1 if failed or unreachable else 0


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"gfsdeploy {__version__}")  # before building the parser: start-up stays minimal
        return 0
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return args.func(args)
    except GfsError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        print(f"Error: {exc}", file=sys.stderr)
        if verbose:
            traceback.print_exc()
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted. Files are written atomically, so no host has a half-written file; "
              "re-run to finish.", file=sys.stderr)
        return 130
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
