"""The library API: plan and apply a playbook from Python, as the CLI does.

    from gfsdeploy import Session, Options

    with Session("inventory.yaml", "site.yaml", Options(forks=20)) as session:
        plan = session.plan()              # reads every host, changes nothing
        if plan.has_changes:
            recap = session.apply(plan)    # refuses if the hosts changed since `plan`

A :class:`Plan` is data (changes per host, warnings, errors, the read-only
commands it ran, round trips) and can be saved and loaded; :meth:`Session.apply`
returns a :class:`Recap`. Mistakes raise typed errors (:mod:`gfsdeploy.errors`)
carrying file, line, host and the fix; the CLI only formats what comes back.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable

from gfsdeploy import secrets
from gfsdeploy.errors import GfsError, PlanError, StalePlanError

PLAN_FORMAT = 2


@dataclass
class Options:
    """How a run behaves (the CLI's common options)."""

    forks: int = 50
    limit: str | None = None          # Ansible host pattern
    tags: set | None = None
    skip_tags: set | None = None
    extra_vars: dict = field(default_factory=dict)
    accept_new_host_keys: bool = False
    known_hosts: str | None = None
    fail_fast: bool = False
    timeout: float = 600.0
    connect_timeout: float = 10.0
    verbose: int = 0
    #: the user confirmed changes that destroy data (``--yes``)
    allow_destroy: bool = False
    #: remove a stale lock before taking it (``--force-unlock``)
    force_unlock: bool = False
    #: connection defaults (``-u``, ``--ask-become-pass``, ``--ask-pass``); the inventory's
    #: and the playbook's settings win, as in Ansible. The passwords are secrets.
    remote_user: str | None = None
    become_password: str | None = None
    ssh_password: str | None = None


@dataclass
class PlannedChange:
    """One line of the plan: Terraform's symbol, what, and its diff (already redacted)."""

    host: str
    task: str
    task_id: str
    action: str
    resource: str
    diff: str = ""
    destroys_data: bool = False


@dataclass
class Plan:
    """What apply would do: every change per host, and what was learned reading them."""

    inventory: str
    playbook: str
    changes: list[PlannedChange] = field(default_factory=list)
    warnings: list[PlannedChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: mistakes in files that fail only if a conditional task runs (found before connecting)
    file_warnings: list[str] = field(default_factory=list)
    #: read-only commands the plan ran on hosts: (host, task, command)
    reads: list[tuple] = field(default_factory=list)
    round_trips: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    #: what the hosts looked like, to refuse applying a stale plan
    fingerprint: dict = field(default_factory=dict)
    inventory_sha256: str = ""
    playbook_sha256: str = ""
    limit: str | None = None
    tags: list | None = None
    skip_tags: list | None = None
    #: the runner's per-step outcomes (for rendering; not saved)
    outcomes: list = field(default_factory=list, repr=False, compare=False)

    @property
    def has_changes(self) -> bool:
        return any(self.summary.get(k) for k in ("add", "change", "destroy"))

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def destroys_data(self) -> list[PlannedChange]:
        return [c for c in self.changes if c.destroys_data]

    def save(self, path: str) -> None:
        """Write the plan as JSON (secrets redacted), atomically."""
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise GfsError(f"cannot save the plan: directory {directory} does not exist", file=path,
                           field="--out", fix="create the directory first, or give another path")
        data = {"format": PLAN_FORMAT}
        for name in self.__dataclass_fields__:
            if name != "outcomes":
                value = getattr(self, name)
                data[name] = [asdict(c) for c in value] if name in ("changes", "warnings") else value
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(secrets.redact_obj(data), handle, indent=2)
            os.replace(tmp, path)
        except OSError as exc:
            raise GfsError(f"cannot save the plan: {exc.strerror or exc}", file=path, field="--out",
                           fix="choose a writable path") from None

    @classmethod
    def load(cls, path: str) -> "Plan":
        """Read a plan saved by :meth:`save`; a damaged or foreign file is a clear error."""
        fix = "save a plan with `gfsdeploy plan --out FILE INVENTORY` and apply that file unchanged"
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise GfsError("cannot read saved plan: no such file", file=path, fix=fix) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise GfsError(f"cannot read saved plan: {exc}", file=path, fix=fix) from None
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            raise GfsError("not a gfsdeploy plan file (or one saved by another version)", file=path, fix=fix)
        required = ("inventory", "playbook", "inventory_sha256", "playbook_sha256", "fingerprint", "summary")
        missing = [k for k in required if k not in data]
        if missing:
            raise GfsError(f"the saved plan lacks {', '.join(missing)}", file=path, field=missing[0], fix=fix)
        try:
            changes = [PlannedChange(**c) for c in data.get("changes", [])]
            warnings = [PlannedChange(**c) for c in data.get("warnings", [])]
            known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("changes", "warnings",
                                                                                              "outcomes")}
            return cls(**known, changes=changes, warnings=warnings)
        except TypeError as exc:
            raise GfsError(f"the saved plan is damaged: {exc}", file=path, fix=fix) from None


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    round_trips: int = 0
    rescued: int = 0   # failures a block's rescue handled (not counted as failed, as in Ansible)
    ignored: int = 0   # failures under ignore_errors/ignore_unreachable (also counted as ok)
    cleared: int = 0   # failures meta: clear_host_errors forgave (counted as failed; the exit status is 0)


@dataclass
class Recap:
    """What apply did, per host (Ansible's recap)."""

    hosts: dict[str, HostRecap] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    #: nothing needed changing (the plan pass found no change, so no apply pass ran)
    no_changes: bool = False
    plan: Plan | None = field(default=None, repr=False, compare=False)
    outcomes: list = field(default_factory=list, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.failures and not any(h.unreachable or h.failed > h.cleared for h in self.hosts.values())

    @property
    def changed(self) -> bool:
        return any(h.changed for h in self.hosts.values())


def digest(path: str) -> str:
    """SHA-256 of a file; of every file under a directory (an inventory directory:
    names and contents, sorted); of the text itself for ``host1,host2,``."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode() + b"\0")
                with open(full, "rb") as handle:
                    h.update(handle.read())
        return h.hexdigest()
    if not os.path.exists(path) and "," in path:
        return hashlib.sha256(path.encode()).hexdigest()
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


class Session:
    """One inventory and one playbook; :meth:`plan` and :meth:`apply` reuse its
    connections and what was read. Use it as a context manager (or call
    :meth:`close`)."""

    def __init__(self, inventory: str, playbook: str | None = None, options: Options | None = None, *,
                 reporter=None):
        from gfsdeploy.output import Reporter
        from gfsdeploy.transport import clear_stop

        self.options = options or Options()
        self.inventory_path = inventory
        self.reporter = reporter if reporter is not None else Reporter(quiet=True)
        clear_stop()
        secrets.new_run()  # what this run declares sensitive, and nothing of an earlier run
        for password in (self.options.become_password, self.options.ssh_password):
            secrets.register(password)
        self.inventory, self.playbook, self.playbook_path = load(inventory, playbook)
        self._runner = None
        self._lock = None
        self._validated = False
        #: problems in files that fail only if a conditional task runs (shown, not refused)
        self.static_warnings: list[str] = []

    def validate(self) -> None:
        """Find the playbook's mistakes before connecting (raises ValidationError
        listing each once); plan, apply and check call it first."""
        if self._validated:
            return
        from gfsdeploy.static_check import ValidationError, check_all

        problems, warnings = check_all(self.playbook, self.inventory, extra_vars=self.options.extra_vars)
        if problems:
            raise ValidationError(problems)
        self.static_warnings = [str(w) for w in warnings]
        self._validated = True

    # -- the two verbs ------------------------------------------------------------
    def plan(self) -> Plan:
        """Read every host and decide every change; change nothing. A plan with
        errors is returned (``plan.errors``); nothing is raised for host failures."""
        self.validate()
        runner = self._get_runner()
        outcomes = runner.run("plan")
        return self._plan_from(runner, outcomes)

    def apply(self, plan: Plan | None = None, *, confirm: Callable[[Plan], bool] | None = None,
              before_apply: Callable[[Plan], None] | None = None) -> Recap:
        """Plan again, then make exactly those changes.

        ``plan``: a plan from :meth:`plan` or :meth:`Plan.load`; refused
        (:class:`StalePlanError`) when the files or the hosts changed since.
        ``confirm`` is asked before changes that destroy data unless
        ``options.allow_destroy``; without it such a plan raises.
        ``before_apply`` is told the plan just before the first change.
        """
        if plan is not None:
            self._check_files(plan)
        self.validate()
        runner = self._get_runner()
        outcomes = runner.run("plan")
        fresh = self._plan_from(runner, outcomes)
        if fresh.errors:
            raise PlanError("the plan has errors; nothing was changed", plan=fresh)
        if plan is not None and runner.fingerprint() != plan.fingerprint:
            raise StalePlanError("the hosts changed since the plan was saved; refusing to apply a stale plan",
                                 plan=fresh, fix="run `gfsdeploy plan --out` again and review the new plan")
        if not fresh.has_changes:
            return self._recap(runner, outcomes, fresh, no_changes=True)
        if fresh.destroys_data and not self.options.allow_destroy:
            if confirm is None or not confirm(fresh):
                raise PlanError("the plan destroys data and was not confirmed; nothing was changed",
                                plan=fresh, fix="review the plan, then confirm (--yes)")
        runner.options.allow_destroy = True if fresh.destroys_data else runner.options.allow_destroy
        self._take_lock(runner)
        if before_apply is not None:
            before_apply(fresh)
        outcomes = runner.run("apply")
        return self._recap(runner, outcomes, fresh)

    def check(self) -> Plan:
        """Validation and the preflight tasks (tag ``preflight``) only."""
        self.options.tags = set(self.options.tags or ()) | {"preflight"}
        self._runner = None
        return self.plan()

    def close(self) -> None:
        if self._lock is not None:
            try:
                self._lock.release()
            except GfsError:
                pass
            self._lock = None
        if self._runner is not None:
            self._runner.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def runner(self):
        """The engine's runner behind this session (connections, outcomes, counters)."""
        return self._get_runner()

    # -- internals ----------------------------------------------------------------
    def _get_runner(self):
        if self._runner is None:
            from gfsdeploy.runner import Options as RunOptions, Runner

            o = self.options
            limit = self.inventory.limit(o.limit) if o.limit else None
            self._runner = Runner(self.inventory, self.playbook, RunOptions(
                mode="plan", forks=o.forks, fail_fast=o.fail_fast, limit=limit, tags=o.tags,
                skip_tags=o.skip_tags, accept_new_host_keys=o.accept_new_host_keys,
                known_hosts=o.known_hosts, allow_destroy=o.allow_destroy, timeout=o.timeout,
                connect_timeout=o.connect_timeout, extra_vars=dict(o.extra_vars), verbose=o.verbose,
                remote_user=o.remote_user, become_password=o.become_password, ssh_password=o.ssh_password),
                self.reporter)
        return self._runner

    def _check_files(self, plan: Plan) -> None:
        for what, path, expected in (("inventory", plan.inventory, plan.inventory_sha256),
                                     ("playbook", plan.playbook, plan.playbook_sha256)):
            if (not os.path.exists(path) and "," not in path) or digest(path) != expected:
                raise StalePlanError(f"the {what} {path} changed since the plan was saved", file=path,
                                     fix="run `gfsdeploy plan --out` again and review the new plan")

    def _plan_from(self, runner, outcomes) -> Plan:
        from gfsdeploy.output import summary

        o = self.options
        plan = Plan(inventory=os.path.abspath(self.inventory_path), playbook=os.path.abspath(self.playbook_path),
                    inventory_sha256=digest(self.inventory_path), playbook_sha256=digest(self.playbook_path),
                    limit=o.limit, tags=sorted(o.tags) if o.tags else None,
                    skip_tags=sorted(o.skip_tags) if o.skip_tags else None,
                    round_trips=runner.round_trips(), summary=summary(outcomes),
                    fingerprint=runner.fingerprint(), outcomes=outcomes)
        plan.file_warnings = list(self.static_warnings)
        for outcome in outcomes:
            if outcome.status == "failed" and not outcome.cleared:  # (forgiven: meta clear_host_errors)
                plan.errors.append(outcome.error)
            for command in outcome.reads:
                plan.reads.append((outcome.host, outcome.task.label, secrets.redact(command)))
            for change in outcome.changes:
                data = change.to_json()
                item = PlannedChange(host=outcome.host, task=outcome.task.label, task_id=outcome.task.id,
                                     action=data["action"], resource=data["resource"], diff=data["diff"],
                                     destroys_data=bool(change.data.get("destroys_data")))
                (plan.warnings if change.action == "!" else plan.changes).append(item)
        for name, hr in runner.hosts.items():
            if hr.unreachable and not any(f"host {name}" in e for e in plan.errors):
                plan.errors.append(f"host {name}: unreachable")
            if hr.unreachable and name in runner.unreachable_kept:
                plan.errors.append(
                    f"host {name}: meta: clear_host_errors does not forgive an unreachable host in gfsdeploy "
                    f"(Ansible would try it again): apply plans every host before changing any\n"
                    f"  fix: bring {name} up, or leave it out with --limit '!{name}'")
        return plan

    def _recap(self, runner, outcomes, plan: Plan, *, no_changes: bool = False) -> Recap:
        recap = Recap(no_changes=no_changes, plan=plan, outcomes=outcomes)
        cleared: dict = {}
        for o in outcomes:
            if o.cleared:
                cleared[o.host] = cleared.get(o.host, 0) + 1
        for name, hr in sorted(runner.hosts.items()):
            c = hr.counts
            recap.hosts[name] = HostRecap(ok=c.get("ok", 0), changed=c.get("changed", 0),
                                          failed=c.get("failed", 0), skipped=c.get("skipped", 0),
                                          unreachable=hr.unreachable, rescued=c.get("rescued", 0),
                                          ignored=c.get("ignored", 0), cleared=cleared.get(name, 0),
                                          round_trips=hr.transport.round_trips if hr.transport else 0)
        recap.failures = [o.error for o in outcomes if o.status == "failed" and not o.cleared]
        return recap

    def _take_lock(self, runner) -> None:
        """The run's lock lives on the first reachable host of the content's lock
        groups (else the first host); it is taken just before the first change."""
        from gfsdeploy.lock import LOCK_DIR, ClusterLock
        from gfsdeploy.plugins import contents

        preferred = [h for content in contents() for group in content.lock_groups
                     for h in self.inventory.groups.get(group, []) if h in runner.hosts]
        for name in preferred + sorted(runner.hosts):
            hr = runner.hosts[name]
            if hr.transport is not None and hr.connected and not hr.unreachable:
                self._lock = ClusterLock(hr.transport, name,
                                         path=str(hr.host.vars.get("gfsdeploy_lock_dir") or LOCK_DIR),
                                         report=self.reporter.write)
                if self.options.force_unlock:
                    previous = self._lock.force_unlock()
                    if previous:
                        self.reporter.write(f"Removed the lock held by: {previous}")
                runner.options.before_change = self._lock.acquire
                return


def load(inventory_path: str, playbook_path: str | None = None):
    """Load and check the inventory and the playbook (default: the installed
    content's default playbook); content packages check their inventory variables."""
    from gfsdeploy.errors import PlaybookError
    from gfsdeploy.inventory import load_inventory
    from gfsdeploy.playbook import load_playbook
    from gfsdeploy.plugins import contents, default_content

    if not inventory_path:
        raise GfsError("no inventory given", fix="run `gfsdeploy plan INVENTORY` or `gfsdeploy apply --plan FILE`")
    if playbook_path is None:
        content = default_content()
        if content is None:
            raise GfsError("no playbook given and no installed content ships a default one",
                           field="--playbook", fix="pass -p PLAYBOOK")
        playbook_path = content.path(content.default_playbook)
    if not os.path.exists(playbook_path):
        raise PlaybookError("playbook not found", file=playbook_path, fix="pass -p PLAYBOOK with an existing file")
    # group_vars/ and host_vars/ beside the playbook count too (Ansible's precedence)
    inventory = load_inventory(inventory_path, playbook_dir=os.path.dirname(os.path.abspath(playbook_path)))
    for content in contents():
        if content.inventory_loaded is not None:
            content.inventory_loaded(inventory)
    return inventory, load_playbook(playbook_path), playbook_path
