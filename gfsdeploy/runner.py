"""Runs the task graph: plan (read + decide) or apply (read + decide + change).

Per host, the state all tasks need is read in one batched round trip up front;
after a host changes, what is left is re-read in one more. Steps run as soon
as their predecessors are done, up to ``forks`` at once. A failure stops that
host's downstream steps (and everything with ``--fail-fast``); notified
handlers still run.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import heapq
import json
import os
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

from gfsdeploy import batch, modules, secrets
from gfsdeploy.errors import GfsError, Interrupted, ModuleError, TransportError
from gfsdeploy.graph import Step, build_graph
from gfsdeploy.hostfacts import FACTS_PROBE, HostFactsCache, facts_vars, parse_facts
from gfsdeploy.inventory import Host, Inventory
from gfsdeploy.modules.base import CHANGE, READ, WARN, Change, HostInfo, TaskContext, TaskResult, overlaps
from gfsdeploy.playbook import Playbook, Task
from gfsdeploy.templating import Templar, Unknown, is_unknown, show_unknown, unsafe
from gfsdeploy.transport import Connections, make_transport, request_stop, resolve_become

NO_LOG_MESSAGE = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"


@dataclass
class Options:
    mode: str = "plan"  # plan | apply
    forks: int = 50
    fail_fast: bool = False
    limit: list[str] | None = None
    tags: set | None = None
    skip_tags: set | None = None
    accept_new_host_keys: bool = False
    known_hosts: str | None = None
    allow_destroy: bool = False
    timeout: float = 600.0
    connect_timeout: float = 10.0
    extra_vars: dict = field(default_factory=dict)
    verbose: int = 0
    #: connection defaults from the command line (-u, --ask-become-pass, --ask-pass); the
    #: inventory's and the playbook's settings override them, as in Ansible
    remote_user: str | None = None
    become_password: str | None = None
    ssh_password: str | None = None
    #: called (once per change, from any thread) before the first change is made: takes the lock
    before_change: object = None


@dataclass
class StepOutcome:
    """What happened to one (task, host)."""

    task: Task
    host: str
    status: str  # ok | changed | failed | skipped | blocked | pending (plan: would change)
    changes: list[Change] = field(default_factory=list)
    error: str = ""
    duration: float = 0.0
    messages: list[str] = field(default_factory=list)  # what read-only tasks (debug) have to say
    reads: list[str] = field(default_factory=list)     # commands a read-only task ran (listed by plan)


@dataclass
class HostRun:
    """A host's state during one run."""

    host: Host
    info: HostInfo
    transport: object = None
    connected: bool = False
    failed: bool = False
    unreachable: bool = False
    registered: dict = field(default_factory=dict)
    notified: set = field(default_factory=set)
    facts: dict = field(default_factory=dict)       # (task_id, item) -> (args_key, {probe: Result})
    stale: bool = True                              # facts must be (re)read before use
    changed: bool = False                           # the host changed during this run
    pending: bool = False                           # a step of this run changed or would change it
    attempted: set = field(default_factory=set)     # steps the last batch read (or tried to)
    lock: threading.RLock = field(default_factory=threading.RLock)
    counts: dict = field(default_factory=lambda: {"ok": 0, "changed": 0, "failed": 0, "skipped": 0})
    facts_raw: str = ""


class _HostTransports(Mapping):
    """``ctx.transports``: each host's connection, looked up when asked (a copy per
    task would cost O(hosts) for every task of every host)."""

    def __init__(self, hosts: dict):
        self._hosts = hosts

    def __getitem__(self, name):
        return self._hosts[name].transport

    def __iter__(self):
        return iter(self._hosts)

    def __len__(self):
        return len(self._hosts)


class Runner:
    def __init__(self, inventory: Inventory, playbook: Playbook, options: Options, reporter):
        self.inventory = inventory
        self.playbook = playbook
        self.options = options
        self.reporter = reporter
        self.graph, self.tasks = build_graph(playbook, inventory, limit=options.limit,
                                             tags=options.tags, skip_tags=options.skip_tags)
        search = []
        for play in playbook.plays:
            for d in (os.path.join(play.base_dir, "templates"), os.path.join(play.base_dir, "..", "templates"),
                      play.base_dir, os.path.join(play.base_dir, "files")):
                if d not in search:
                    search.append(d)
        self.search_path = search
        self.templar_local = threading.local()
        self.facts_cache = HostFactsCache()
        magic = inventory.magic()
        self.hosts: dict[str, HostRun] = {}
        for name in {s.host for s in self.graph.nodes}:
            host = inventory.hosts[name]
            self.hosts[name] = HostRun(host=host, info=HostInfo(name=name, vars=host.vars))
        self.magic = magic
        # through this module's make_transport, which tools may wrap (transport.recorded.record)
        self.connections = Connections(factory=lambda host, **kw: make_transport(host, **kw),
                                       known_hosts=options.known_hosts, accept_new=options.accept_new_host_keys,
                                       timeout=options.timeout, connect_timeout=options.connect_timeout,
                                       become_password=options.become_password,
                                       ssh_password=options.ssh_password, default_user=options.remote_user)
        self.outcomes: dict[Step, StepOutcome] = {}
        self.stop_all = threading.Event()
        self.steps_by_host: dict[str, list[Step]] = {}
        import networkx as nx  # imported when a run starts, not with the engine (~0.2 s)

        for step in nx.topological_sort(self.graph):
            self.steps_by_host.setdefault(step.host, []).append(step)
        for name in _sensitive_names(inventory, playbook):
            for hr in self.hosts.values():
                if name in hr.host.vars:
                    secrets.register(hr.host.vars[name])
            for play in playbook.plays:
                if name in play.vars:
                    secrets.register(play.vars[name])

    # -- templating -----------------------------------------------------------
    @property
    def templar(self) -> Templar:
        t = getattr(self.templar_local, "t", None)
        if t is None:
            t = self.templar_local.t = Templar(self.search_path)
        return t

    def variables(self, hr: HostRun, task: Task) -> dict:
        v = {**self.magic, "inventory_hostname": hr.host.name,
             "inventory_hostname_short": hr.host.name.split(".")[0],
             "group_names": sorted(hr.host.groups), "playbook_dir": task.play.base_dir,
             "ansible_check_mode": self.options.mode == "plan"}
        if any(h.registered for h in self.hosts.values()):
            # Ansible's hostvars carry what each host registered too
            v["hostvars"] = {name: ({**host_vars, **self.hosts[name].registered} if name in self.hosts and
                                    self.hosts[name].registered else host_vars)
                             for name, host_vars in self.magic["hostvars"].items()}
        v.update(hr.host.vars)
        v.update(_facts_vars(hr.info))
        v.update(task.play.vars)
        v.update(hr.registered)
        v.update(task.vars)
        v.update(self.options.extra_vars)
        return self.templar.resolve(v)

    # -- connection and batched reads -----------------------------------------
    def _ensure_connected(self, hr: HostRun) -> None:
        if hr.connected:
            return
        if hr.unreachable:
            raise TransportError("host is unreachable (see the first error)", host=hr.host.name)
        try:
            first = self.tasks[self.steps_by_host[hr.host.name][0].task_id]
            hr.transport = self._connection(hr, first, self.variables(hr, first))
            if "ansible_become" not in hr.host.vars:
                # one connection serves every play of the run: it escalates when a play or
                # task on this host asks for `become` (inventory ansible_become overrides)
                hr.transport.become = self._wants_become(hr.host.name)
            hr.transport.connect()
        except GfsError:
            hr.unreachable = True
            raise
        cached = self.facts_cache.get(hr.host)
        if cached:
            hr.info = parse_facts(hr.host.name, cached, hr.host.vars)
        hr.connected = True

    def _connection(self, hr: HostRun, task: Task, variables: dict):
        """The connection a task uses: the play's ``remote_user``/``connection`` (overridden
        by ``ansible_user``/``ansible_connection``); shared by every task that agrees."""
        play = task.play
        return self.connections.get(hr.host, variables, remote_user=getattr(play, "remote_user", None),
                                    connection=getattr(task, "connection", None) or getattr(play, "connection", None))

    def _transport_for(self, hr: HostRun, task: Task, variables: dict):
        """The task's view of its host: its connection, escalated as the task says
        (``become``/``become_user``/``become_method`` over the play's; ``ansible_become*``
        variables override both)."""
        play = task.play
        transport = self._connection(hr, task, variables)
        become = resolve_become(
            variables, become=task.become if task.become is not None else play.become,
            become_user=task.become_user or play.become_user,
            become_method=getattr(task, "become_method", None) or getattr(play, "become_method", None),
            become_flags=getattr(task, "become_flags", None) or getattr(play, "become_flags", None),
            password=self.options.become_password)
        return transport.with_become(become)

    def _wants_become(self, host: str) -> bool:
        for step in self.steps_by_host.get(host, []):
            task = self.tasks[step.task_id]
            if task.become or (task.become is None and task.play.become):
                return True
        return False

    def _refresh(self, hr: HostRun, current: Step | None) -> None:
        """Read, in one round trip, the probes of every remaining step of this host
        whose arguments can be rendered now (plus the host facts)."""
        remaining = self.steps_by_host.get(hr.host.name, [])
        if current is not None and current in remaining:
            remaining = remaining[remaining.index(current):]
        # what is still valid (nothing it reads has changed since) is kept
        keep = {} if hr.stale else dict(hr.facts)
        probes: dict[str, str] = {"__facts__": FACTS_PROBE} if hr.stale or not hr.facts_raw else {}
        planned: dict = {}
        views: dict = {}       # probe key -> the task's transport (its connection and become)
        for step in remaining:
            task = self.tasks[step.task_id]
            if step in self.outcomes:
                continue
            try:
                module = modules.get(task.module)
                variables = self.variables(hr, task)
                for index, _, status, args, _ in self._each_item(hr, task, module, variables):
                    if status == "unknown":
                        raise LookupError(args)
                    if status == "skipped":
                        continue
                    args_key = _args_key(args)
                    if (task.id, index) in keep and keep[(task.id, index)][0] == args_key:
                        continue
                    if hr.changed and step != current and not module.cheap_reads:
                        continue  # costly reads on a changing host: each step reads its own when it runs
                    view = self._transport_for(hr, task, variables)
                    for key, cmd in module.probes(args, hr.info).items():
                        probes[f"{task.id}\x1f{index}\x1f{key}"] = cmd
                        views[f"{task.id}\x1f{index}\x1f{key}"] = view
                    planned[(task.id, index)] = (args_key, module.resources(args))
            except Exception:  # noqa: BLE001 - not renderable yet; read it when it runs
                continue
        # one round trip per (connection, become user): usually exactly one
        batches: dict = {}
        for key, cmd in probes.items():
            if key in views:
                batches.setdefault(id(views[key]), (views[key], {}))[1][key] = cmd
        if "__facts__" in probes:  # the facts need no privilege: they ride along with any batch
            (next(iter(batches.values())) if batches else batches.setdefault(0, (hr.transport, {})))[1][
                "__facts__"] = probes["__facts__"]
        results = {}
        for view, batch in batches.values():
            results.update(view.read_many(batch))
        facts_result = results.pop("__facts__", None)
        if facts_result is not None:
            # steps rendered with outdated facts are re-read when they run (their args differ)
            hr.info = parse_facts(hr.host.name, facts_result.stdout, hr.host.vars)
            hr.facts_raw = facts_result.stdout
            self.facts_cache.put(hr.host, facts_result.stdout)
        grouped: dict = {}
        for key, result in results.items():
            task_id, index, probe = key.split("\x1f", 2)
            grouped.setdefault((task_id, int(index)), {})[probe] = result
        hr.facts = {**keep, **{k: (planned[k][0], grouped.get(k, {}), planned[k][1]) for k in planned}}
        hr.attempted = set(hr.facts)
        hr.stale = False

    def _invalidate(self, hr: HostRun, resources: set | None) -> None:
        """The host changed ``resources``: forget what was read about them (all of it if unknown)."""
        hr.changed = True
        if resources is None:
            hr.stale = True
            return
        for key, entry in list(hr.facts.items()):
            if overlaps(entry[2], resources):
                del hr.facts[key]
                hr.attempted.discard(key)

    def _each_item(self, hr: HostRun, task: Task, module, variables: dict):
        """The per-item pipeline shared by the batched reads and by execution: for each
        loop item, ``(index, item variables, status, args, ctx)``. ``status`` is
        ``ready`` (args validated and prepared), ``skipped`` (its `when` is false) or
        ``unknown`` (loop, condition or arguments only known after apply; ``args`` then
        says which)."""
        try:
            items = self._items(task, variables)
        except LookupError:
            yield 0, variables, "unknown", "loop (known after apply)", None
            return
        for index, item_vars in enumerate(items):
            v = {**variables, **item_vars}
            if task.when is not None:
                if _references_unknown(self.templar, task.when, v):
                    yield index, v, "unknown", "condition (known after apply)", None
                    continue
                if not self.templar.evaluate(task.when, v, where=task.where()):
                    yield index, v, "skipped", None, None
                    continue
            args = self._render_args(task, module, v)
            if is_unknown(args):
                yield index, v, "unknown", show_unknown(_describe_args(args)), None
                continue
            args = module.validate(args, where=task.where())
            ctx = self._context(hr, task, v)
            yield index, v, "ready", module.prepare(args, ctx), ctx

    def _render_args(self, task: Task, module, variables: dict):
        raw = dict(task.args)
        evaluated = {}
        for name in module.expressions:
            if name in raw:
                items = raw.pop(name)
                items = items if isinstance(items, list) else [items]
                evaluated[name] = [{"expr": str(e), "value": self.templar.evaluate(e, variables, where=task.where())}
                                   for e in items]
        args = self.templar.render(raw, variables, where=task.where())
        args.update(evaluated)
        return args

    def _items(self, task: Task, variables: dict) -> list[dict]:
        if task.loop is None:
            return [{}]
        items = self.templar.render(task.loop, variables, where=task.where())
        if isinstance(items, str) and not is_unknown(items):
            items = [items]
        if is_unknown(items):
            raise LookupError("unknown loop")
        if not isinstance(items, list):
            raise GfsError(f"`loop` must give a list, got {type(items).__name__}", **task.where(),
                           field="loop", fix="loop over a list, e.g. `loop: \"{{ groups['all'] }}\"`")
        return [{task.loop_var: item, "ansible_loop": {"index0": i, "index": i + 1}} for i, item in enumerate(items)]

    def _context(self, hr: HostRun, task: Task, variables: dict) -> TaskContext:
        def render_file(path):
            full = self._find(path, task)
            return self.templar.render_file(full, variables, where=task.where())

        return TaskContext(hr.info, self._transport_for(hr, task, variables), task_name=task.label, render_file=render_file,
                           find_file=lambda p: self._find(p, task),
                           progress=lambda msg: self.reporter.progress(hr.host.name, task, msg),
                           check_mode=self.options.mode == "plan" or task.check_mode is True,
                           transports=_HostTransports(self.hosts),
                           allow_destroy=self.options.allow_destroy, variables=variables,
                           read_only=self._runs_in_plan(task), no_log=task.no_log,
                           task_check_mode=task.check_mode, verbosity=self.options.verbose,
                           diff=bool(getattr(task, "diff", False)), host_pending=hr.pending)

    def _find(self, path: str, task: Task) -> str:
        if os.path.isabs(path):
            return path
        for base in [task.play.base_dir, *self.search_path]:
            candidate = os.path.join(base, path)
            if os.path.exists(candidate):
                return os.path.normpath(candidate)
        return os.path.join(task.play.base_dir, path)

    # -- executing one step -----------------------------------------------------
    def _execute(self, step: Step) -> StepOutcome:
        task = self.tasks[step.task_id]
        hr = self.hosts[step.host]
        started = time.monotonic()
        outcome = StepOutcome(task=task, host=step.host, status="ok")
        try:
            with hr.lock:
                if task.is_handler and not ({task.name, *task.listen} & hr.notified):
                    outcome.status = "skipped"
                    outcome.error = "not notified"
                    return outcome
                if hr.failed and not task.is_handler:
                    outcome.status = "blocked"
                    return outcome
                self._ensure_connected(hr)
                self._run_task(hr, task, step, outcome)
        except GfsError as exc:
            outcome.status = "failed"
            if not exc.host:
                exc.host = step.host
            if not exc.task:
                exc.task = task.label
            outcome.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not take the other hosts down
            outcome.status = "failed"
            detail = traceback.format_exc() if self.options.verbose else ""
            outcome.error = secrets.redact(f"host {step.host}, task {task.label!r}: internal error: "
                                           f"{type(exc).__name__}: {exc}\n{detail}".rstrip())
        finally:
            outcome.duration = time.monotonic() - started
        if outcome.status == "failed":
            if task.ignore_errors:
                outcome.status = "ok"
                outcome.error = "(ignored) " + outcome.error
            else:
                hr.failed = True
                if self.options.fail_fast:
                    self.stop_all.set()
        return outcome

    # A task runs in three steps, per loop item: plan (read the state, decide the
    # changes), apply (make them, retrying while `until` says so), then settle the
    # whole task (register, status, notify). In a plan only the first runs, except
    # for tasks that only read (read-only modules, `check_mode: false`).
    @staticmethod
    def _runs_in_plan(task: Task) -> bool:
        """Ansible's check mode: only modules that cannot change anything, and tasks
        that say ``check_mode: false``, run while planning."""
        return modules.get(task.module).read_only or _is_false(task.check_mode)

    def _run_task(self, hr: HostRun, task: Task, step: Step, outcome: StepOutcome) -> None:
        module = modules.get(task.module)
        planning = self.options.mode == "plan" or task.check_mode is True
        runs = self._runs_in_plan(task) and not (planning and task.until is not None)
        results: list[dict] = []
        unknown = False  # what it registers is only known after apply
        if not hr.facts_raw:
            # the host's facts before the first `when:`/arguments are rendered (a skipped
            # first step would otherwise leave every later one rendering with no facts)
            self._refresh(hr, step)
        if not planning:  # changes of the following independent steps join this round trip
            batch.run_ahead(self, hr, step)
        for index, v, status, args, ctx in self._each_item(hr, task, module, self.variables(hr, task)):
            if status == "unknown":
                outcome.changes.append(Change(CHANGE, f"{task.module}: {task.label}", args))
                results.append({"changed": True})
                unknown = True
                continue
            if status == "skipped":
                results.append({"changed": False, "skipped": True, "skip_reason": "condition false"})
                continue
            ahead = None if planning else batch.take(self, hr, task.id, index)
            if ahead is not None:  # planned with the batch; its apply gets the batch's result
                state, changes, ctx = ahead.state, ahead.changes, ahead.replay(ctx)
            else:
                state, changes = self._plan_item(hr, task, step, index, module, args, ctx)
            if planning and not runs and _is_false(task.changed_when):
                # it will run at apply, but it says it changes nothing: not a change
                changes = [c if c.action == WARN else Change(READ, c.resource, c.diff, c.script, c.sensitive, c.data)
                           for c in changes]
            outcome.changes.extend(changes)
            if planning and not runs:
                # what it would do; a command's result is only known after apply
                real = [c for c in changes if c.action not in (WARN, READ)]
                unknown |= any(c.action == READ for c in changes)
                results.append({"changed": True} if real else module.unchanged(args, state).as_register())
                unknown |= bool(real) or task.until is not None
                continue
            result = self._apply_item(hr, task, module, args, state, changes, ctx, v)
            outcome.reads.extend(ctx.reads)
            if result.get("msg") and module.read_only and not task.no_log and not result.get("failed"):
                outcome.messages.append(result["msg"])
            results.append(result)
            if result.get("failed"):
                self._register(hr, task, results)
                raise ModuleError(NO_LOG_MESSAGE if task.no_log else result.get("msg") or "failed",
                                  host=hr.host.name, task=task.label)
        self._settle(hr, task, outcome, results, planning=planning and not runs,
                     unknown=unknown and self.options.mode == "plan")

    def _plan_item(self, hr: HostRun, task: Task, step: Step, index: int, module, args: dict,
                   ctx: TaskContext) -> tuple:
        """Read this item's state (from the batch) and decide its changes."""
        facts = self._facts_for(hr, task, step, index, args, module, ctx.transport)
        state = module.read(args, facts, ctx)
        changes = module.plan(args, state, hr.info)
        if task.no_log:
            for c in changes:
                c.sensitive = True
        return state, changes

    def _apply_item(self, hr: HostRun, task: Task, module, args: dict, state, changes: list[Change],
                    ctx: TaskContext, variables: dict) -> dict:
        """Make exactly ``changes`` (a read-only task: run it), retrying while ``until``
        is not met; return the judged, registrable result."""
        polls = task.until is not None and not getattr(module, "reread_after_change", True)
        if not [c for c in changes if c.action != WARN] and not module.read_only and not polls:
            # nothing to change; waiting (e.g. for pods to be Ready) is not a change, and
            # only happens when applying (a module whose read is a run of its own, with
            # `until`, runs until the condition holds, as under Ansible)
            settled = module.settle(args, state, ctx) if self.options.mode != "plan" else None
            return (settled or module.unchanged(args, state)).as_register()
        if not module.read_only and self.options.before_change is not None:
            self.options.before_change()
        attempts = (task.retries or 0) + 1 if task.until is not None else 1
        for attempt in range(attempts):
            real = [c for c in changes if c.action != WARN]
            # a read-only module reports what it read (stat's facts, debug's message)
            result = module.report(args, state, ctx) if module.read_only and not real else \
                module.apply(args, changes, ctx)
            judged = self._judge(task, result, variables)
            if task.until is None:
                break
            scoped = {**variables, **({task.register: judged} if task.register else {})}
            if self.templar.evaluate(task.until, scoped, where=task.where()):
                break
            if attempt + 1 < attempts:
                self.reporter.progress(hr.host.name, task, f"retrying ({attempt + 1}/{attempts - 1})")
                if _sleep_unless_stopped(task.delay):
                    raise Interrupted("interrupted while waiting to retry", host=hr.host.name, task=task.label)
                if not getattr(module, "reread_after_change", True):
                    continue  # its read is a run of its own: run it again, as Ansible retries
                state = module.read(args, self._read_now(hr, module, args, ctx.transport), ctx)
                changes = module.plan(args, state, hr.info)
                if not [c for c in changes if c.action != WARN] and not module.read_only:
                    return module.unchanged(args, state).as_register()
        else:
            judged["failed"] = True
            judged["msg"] = (judged.get("msg") or "") + f" (until condition not met after {attempts} attempts)"
        if judged.get("changed"):
            self._invalidate(hr, module.resources(args))  # what later steps read may be outdated
        return judged

    def _settle(self, hr: HostRun, task: Task, outcome: StepOutcome, results: list[dict], *,
                planning: bool, unknown: bool) -> None:
        """Register the task's result, set its status, notify its handlers."""
        self._register(hr, task, results, unknown=unknown)
        real_changes = [c for c in outcome.changes if c.action not in (WARN, READ)]
        if planning:
            outcome.status = "pending" if real_changes else "ok"
        else:
            outcome.status = "changed" if any(r.get("changed") for r in results) else "ok"
            if self.options.mode == "plan":  # a read that ran during the plan changes nothing
                outcome.changes = [c for c in outcome.changes if c.action == WARN]
        if results and all(r.get("skipped") for r in results):
            outcome.status = "skipped"
        if outcome.status in ("changed", "pending"):
            variables = None
            for name in task.notify:
                if "{{" in str(name):
                    variables = variables or self.variables(hr, task)
                    name = self.templar.render(name, variables)
                hr.notified.add(name)

    def _judge(self, task: Task, result: TaskResult, variables: dict) -> dict:
        value = result.as_register()
        if result.rc is not None and result.rc != 0 and task.failed_when is None:
            value["failed"] = True
            if not value.get("msg"):
                value["msg"] = (f"command exited {result.rc}\n  stderr: {result.stderr.strip()[-2000:] or '(empty)'}")
        scoped = {**variables, **({task.register: value} if task.register else {}),
                  "rc": value.get("rc"), "stdout": value.get("stdout"), "stderr": value.get("stderr")}
        if task.changed_when is not None:
            value["changed"] = bool(self.templar.evaluate(task.changed_when, scoped, where=task.where()))
        if task.failed_when is not None:
            value["failed"] = bool(self.templar.evaluate(task.failed_when, scoped, where=task.where()))
            if value["failed"] and not value.get("msg"):
                value["msg"] = f"failed_when condition is true: {task.failed_when}"
        return value

    def _register(self, hr: HostRun, task: Task, results: list, *, unknown: bool = False) -> None:
        if not task.register:
            return
        if unknown:
            hr.registered[task.register] = Unknown()
            return
        # what a host printed is data: a `{{` in it is never templated (templating.unsafe)
        if task.loop is not None:
            hr.registered[task.register] = unsafe({"results": results,
                                                   "changed": any(r.get("changed") for r in results),
                                                   "failed": any(r.get("failed") for r in results)})
        else:
            hr.registered[task.register] = unsafe(results[0] if results else {"skipped": True, "changed": False})

    def _facts_for(self, hr: HostRun, task: Task, step: Step, index: int, args: dict, module,
                   transport=None) -> dict:
        if self.options.mode != "plan" and hr.changed and not getattr(module, "reread_after_change", True):
            # its read is a run of its own (a check-mode run): once the host changed, apply
            # runs it for real instead of reading first; what plan read still serves if valid
            cached = hr.facts.get((task.id, index))
            return cached[1] if cached and cached[0] == _args_key(args) else {}
        if hr.stale:
            self._refresh(hr, step)
        cached = hr.facts.get((task.id, index))
        if cached and cached[0] == _args_key(args):
            return cached[1]
        if (task.id, index) not in hr.attempted:
            # not renderable at the last batch (it uses a result registered since), or
            # what it read was invalidated: batch it with everything else readable now
            self._refresh(hr, step)
            cached = hr.facts.get((task.id, index))
            if cached and cached[0] == _args_key(args):
                return cached[1]
        return self._read_now(hr, module, args, transport)

    def _read_now(self, hr: HostRun, module, args, transport=None) -> dict:
        probes = module.probes(args, hr.info)
        return (transport or hr.transport).read_many(probes) if probes else {}

    # -- the whole run ------------------------------------------------------------
    def run(self, mode: str | None = None) -> list[StepOutcome]:
        """Run every step once in ``mode`` (plan or apply). Connections and what was
        read stay open for a following run (apply = a plan pass, then an apply pass)."""
        if mode:
            self.options.mode = mode
        self.outcomes = {}
        self.stop_all.clear()
        for hr in self.hosts.values():
            hr.registered, hr.notified, hr.failed, hr.changed = {}, set(), hr.unreachable, False
            hr.pending = False
            hr.counts = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0}
        graph = self.graph
        waiting = {n: graph.in_degree(n) for n in graph.nodes}
        ready = [n for n, d in waiting.items() if d == 0]
        import networkx as nx

        order = {n: i for i, n in enumerate(nx.topological_sort(graph))}
        running: dict[cf.Future, Step] = {}
        forks = max(1, self.options.forks)
        pool = cf.ThreadPoolExecutor(max_workers=forks, thread_name_prefix="gfs")
        # ready steps in play order: a heap (sorting the whole list at every step was
        # O(hosts log hosts) per step — the scheduler grew faster than the work)
        queue = [(order[s], s) for s in ready]
        heapq.heapify(queue)

        def release(step):
            for succ in self._release(step, waiting):
                heapq.heappush(queue, (order[succ], succ))

        try:
            while queue or running:
                while queue and len(running) < forks:
                    step = heapq.heappop(queue)[1]
                    if self.stop_all.is_set() or self._blocked(step):
                        self._finish(step, StepOutcome(self.tasks[step.task_id], step.host, "blocked"))
                        release(step)
                        continue
                    running[pool.submit(self._execute, step)] = step
                if not running:
                    continue
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    step = running.pop(future)
                    self._finish(step, future.result())
                    release(step)
        except KeyboardInterrupt:
            # stop means stop: nothing new starts, what waits is woken, connections
            # are cut (a script already on a host finishes or dies on its own; files are
            # written to a temp file and renamed, so they are old or new, never partial)
            request_stop()
            self.stop_all.set()
            pool.shutdown(wait=False, cancel_futures=True)
            self.abort()
            raise
        pool.shutdown(wait=True)
        return [self.outcomes[s] for s in nx.topological_sort(graph) if s in self.outcomes]

    def abort(self) -> None:
        """Cut every connection at once (blocked reads in worker threads return)."""
        self.close()

    def close(self) -> None:
        self.connections.close()

    def _blocked(self, step: Step) -> bool:
        task = self.tasks[step.task_id]
        if self.hosts[step.host].failed and not task.is_handler:
            return True
        for pred in self.graph.predecessors(step):
            if self.graph.edges[pred, step].get("hard"):
                outcome = self.outcomes.get(pred)
                if outcome and outcome.status in ("failed", "blocked") and not self.tasks[pred.task_id].is_handler:
                    return True
        return False

    def _release(self, step: Step, waiting: dict) -> list[Step]:
        out = []
        for succ in self.graph.successors(step):
            waiting[succ] -= 1
            if waiting[succ] == 0:
                out.append(succ)
        return out

    def _finish(self, step: Step, outcome: StepOutcome) -> None:
        self.outcomes[step] = outcome
        hr = self.hosts[step.host]
        if outcome.status in ("pending", "changed"):
            hr.pending = True
        key = {"pending": "changed", "blocked": "skipped"}.get(outcome.status, outcome.status)
        if not (outcome.status == "skipped" and outcome.error == "not notified"):
            hr.counts[key] = hr.counts.get(key, 0) + 1
        self.reporter.step_done(outcome, self.options.mode)

    # -- reporting helpers -----------------------------------------------------------
    def round_trips(self) -> dict[str, int]:
        out = {name: 0 for name in sorted(self.hosts)}
        for transport in self.connections.all():
            if transport.host in out:
                out[transport.host] += transport.round_trips
        return out

    def fingerprint(self) -> dict:
        """What plan saw, to refuse ``apply --plan`` when the hosts changed since."""
        out = {}
        for outcome in self.outcomes.values():
            for change in outcome.changes:
                out.setdefault(outcome.host, []).append(
                    hashlib.sha256(json.dumps([outcome.task.id, change.action, change.resource,
                                               change.diff], sort_keys=True).encode()).hexdigest())
        return {h: sorted(v) for h, v in sorted(out.items())}


def _sleep_unless_stopped(seconds: float) -> bool:
    """Sleep; True (at once) if the user stopped the run."""
    from gfsdeploy.transport.base import _STOP

    return _STOP.wait(seconds)


def _is_false(value) -> bool:
    """``check_mode: false`` (or no/off/"false"), as YAML and Ansible read it."""
    if isinstance(value, bool):
        return value is False
    return isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0")


def _args_key(args) -> str:
    try:
        return json.dumps(args, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(args)


def _describe_args(args) -> str:
    if isinstance(args, dict):
        return ", ".join(f"{k}={v}" for k, v in args.items() if is_unknown(v))
    return str(args)


def _references_unknown(templar: Templar, expression, variables: dict) -> bool:
    from jinja2 import meta

    exprs = expression if isinstance(expression, list) else [expression]
    for expr in exprs:
        if isinstance(expr, bool):
            continue
        text = str(expr).strip()
        if not text.startswith("{{"):
            text = "{{ " + text + " }}"
        try:
            names = meta.find_undeclared_variables(templar.env.parse(text))
        except Exception:  # noqa: BLE001 - syntax errors surface when evaluated
            return False
        if any(is_unknown(variables.get(n)) for n in names):
            return True
    return False


def _facts_vars(info: HostInfo) -> dict:
    family = {"debian": "Debian", "redhat": "RedHat"}.get(info.os_family, info.os_family.capitalize())
    distro = {"debian": "Debian", "ubuntu": "Ubuntu", "centos": "CentOS", "rhel": "RedHat",
              "rocky": "Rocky", "almalinux": "AlmaLinux", "fedora": "Fedora"}.get(info.os_id, info.os_id.capitalize())
    return {"ansible_os_family": family, "ansible_distribution": distro,
            "ansible_distribution_version": info.os_version,
            "ansible_distribution_major_version": info.os_version.split(".")[0] if info.os_version else "",
            **facts_vars(info)}


def _sensitive_names(inventory: Inventory, playbook: Playbook) -> set:
    names = set()
    for host in inventory.hosts.values():
        names.update(host.vars.get("sensitive_vars") or [])
    for play in playbook.plays:
        names.update(play.vars.get("sensitive_vars") or [])
    return names
