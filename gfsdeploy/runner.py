"""Runs the task graph: plan (read + decide) or apply (read + decide + change).

Per host, the state all tasks need is read in one batched round trip up front
(the host's facts ride along); after a host changes, what is left is re-read in
one more. Steps run as soon as their predecessors are done, up to ``forks`` at
once. Whether a host runs its next step is decided by its flow
(:mod:`gfsdeploy.flow`: blocks, rescue/always, includes, a failed host);
handlers run at the flush points the graph placed. Includes whose file or loop
is known only now are expanded into new steps of the graph when they run.

Variables follow Ansible's precedence (see :meth:`Runner.variables`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import operator
import os
import re
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

from gfsdeploy import batch
from gfsdeploy import flow as flowmod
from gfsdeploy import hostfacts, loops, modules, secrets
from gfsdeploy.errors import GfsError, Interrupted, ModuleError, PlaybookError, TransportError
from gfsdeploy.graph import Barrier, Step, build_graph, play_hosts, selected, topological_sort
from gfsdeploy.hostfacts import FACTS_PROBE, INFO_PROBE, HostFactsCache
from gfsdeploy.inventory import Host, Inventory
from gfsdeploy.modules.base import CHANGE, READ, WARN, Change, HostInfo, TaskContext, TaskResult, overlaps
from gfsdeploy.playbook import INCLUDE_MODULES, Playbook, Task, _meta_action, find_in_dirs, load_vars
from gfsdeploy.scheduler import StepScheduler
from gfsdeploy.templating import Templar, Unknown, is_unknown, show_unknown, unsafe
from gfsdeploy.templating.templar import _NOT_RESOLVED, LOOKUPS_STARTED, TemplateFile, _has_template, _value_names
from gfsdeploy.transport import make_transport, request_stop
from gfsdeploy.transport.base import Transport
from gfsdeploy.validations import Validations

try:  # per-task connections and escalation, where the transport offers them
    from gfsdeploy.transport import Connections, resolve_become
    from gfsdeploy.transport.become import PASSWORD_VARS
except ImportError:  # pragma: no cover - older transport: one connection per host
    Connections = resolve_become = None
    PASSWORD_VARS = {}

NO_LOG_MESSAGE = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
SET_FACT = {"set_fact", "ansible.builtin.set_fact"}
INCLUDE_VARS = {"include_vars", "ansible.builtin.include_vars"}
SETUP = {"setup", "ansible.builtin.setup", "gather_facts", "ansible.builtin.gather_facts"}
META = {"meta", "ansible.builtin.meta"}
#: skips that are not shown or counted (Ansible prints nothing for them)
QUIET = ("not notified", "not included", "play ended", "role ended")


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
    force_handlers: bool = False
    #: connection defaults from the command line (-u, --ask-become-pass, --ask-pass)
    remote_user: str | None = None
    become_password: str | None = None
    ssh_password: str | None = None
    #: called (once per change, from any thread) before the first change is made: takes the lock
    before_change: object = None


#: a host's counts in the recap, in Ansible's order (``--json``: hosts.<name>.counts)
_NO_COUNTS = {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0}


@dataclass
class StepOutcome:
    """What happened to one (task, host)."""

    task: Task
    host: str
    status: str  # ok | changed | failed | skipped | blocked | rescued | pending (plan: would change)
    changes: list[Change] = field(default_factory=list)
    error: str = ""
    duration: float = 0.0
    messages: list[str] = field(default_factory=list)  # what read-only tasks (debug) have to say
    reads: list[str] = field(default_factory=list)     # commands a read-only task ran (listed by plan)
    expansion: list = field(default_factory=list)      # tasks an include brought (inserted after this step)
    ignored: bool = False          # it failed under ignore_errors/ignore_unreachable (recap: ok and ignored)
    failed_changed: bool = False   # its failed result said changed (an ignored failure counts as changed too)
    cleared: bool = False          # a failure meta: clear_host_errors forgave (the recap counts it; the exit code not)


@dataclass
class HostRun:
    """A host's state during one run."""

    host: Host
    info: HostInfo
    transport: object = None
    connected: bool = False
    failed: bool = False
    unreachable: bool = False
    registered: dict = field(default_factory=dict)   # set_fact and register (Ansible's "non-persistent facts")
    included_vars: dict = field(default_factory=dict)  # include_vars
    cacheable: dict = field(default_factory=dict)    # set_fact cacheable=true: facts from then on
    facts_text: str = ""                             # the facts probe's output this run ("" = not read yet)
    setup_ran: bool = False                          # a setup/gather_facts task ran: facts visible from now on
    notified: set = field(default_factory=set)
    facts: dict = field(default_factory=dict)       # (task_id, item) -> (args_key, {probe: Result}, resources)
    stale: bool = True                              # facts must be (re)read before use
    changed: bool = False                           # the host changed during this run
    pending: bool = False                           # a step of this run changed or would change it
    attempted: set = field(default_factory=set)     # steps the last batch read (or tried to)
    lock: threading.RLock = field(default_factory=threading.RLock)      # one step of this host at a time
    conn_lock: threading.RLock = field(default_factory=threading.RLock)  # connecting, facts, what was read
    counts: dict = field(default_factory=lambda: dict(_NO_COUNTS))
    flow: flowmod.HostFlow = field(default_factory=flowmod.HostFlow)
    vars_files: dict = field(default_factory=dict)  # play index -> loaded vars_files
    views: dict = field(default_factory=dict)       # (user, connection) -> transport of a task's keywords
    failed_task: dict | None = None                 # Ansible's ansible_failed_task, for a rescue
    failed_result: dict | None = None
    failures: list = field(default_factory=list)    # the failed outcomes that stopped it (clear_host_errors)
    #: bumped by every change of this host's variables (HostRun.touched; _Layer writes)
    vars_version: int = 0
    facts_parsed: str | None = None                 # the facts text fact_vars/info were parsed from
    rendered: dict = field(default_factory=dict)    # task id -> _Rendered (Runner._step_items)
    planned: dict = field(default_factory=dict)     # task id -> _Planned (a plan pass: Runner._plan_ahead)

    def __setattr__(self, name, value):
        if name in _LAYERS:
            if type(value) is not _Layer:
                value = _Layer(value)
            value.owner = self  # a write into it is seen (vars_version)
        elif name in ("failed", "unreachable") and self.__dict__.get(name, False) != value:
            HostRun.down_epoch = next(_DOWN_EPOCHS)  # ansible_play_hosts may change
        object.__setattr__(self, name, value)
        if name in _VERSIONED and "vars_version" in self.__dict__:
            self.touched()

    @property
    def fact_vars(self) -> dict:
        """Gathered facts (ansible_facts, no prefix), parsed from ``facts_parsed`` when
        first read: where they are no variables (no play gathers them) only the text is
        kept — parsed, a host's facts are ~20 times their text (every block device a dict)."""
        facts = self.__dict__.get("_fact_vars")
        if facts is None:
            text = self.__dict__.get("facts_parsed")
            facts = self.__dict__["_fact_vars"] = hostfacts.gather(text) if text else {}
        return facts

    @fact_vars.setter
    def fact_vars(self, value: dict) -> None:
        self.__dict__["_fact_vars"] = value

    def touched(self) -> None:
        """One of this host's variables changed (register, set_fact, include_vars, facts
        that are variables…): what was computed from them is outdated."""
        self.__dict__["vars_version"] = self.__dict__.get("vars_version", 0) + 1
        if not self.__dict__.get("copy"):
            HostRun.vars_epoch = next(_VARS_EPOCHS)  # some host's hostvars changed

    def __copy__(self):
        """A copy (a host as its later steps will see it, batch.shadow): what it changes
        is its own, never a change of the host's variables."""
        out = object.__new__(HostRun)
        out.__dict__.update(self.__dict__, copy=True)
        return out

    def vars_key(self) -> int:
        """Equal keys, equal variables of this host (O(1): every write to a layer bumps it)."""
        return self.vars_version


class _Layer(dict):
    """A host's variable layer (registered, include_vars, cacheable facts): every write
    bumps its host's ``vars_version``, so nothing computed from it is used outdated."""

    owner = None

    def _touched(self):
        if self.owner is not None:
            self.owner.touched()

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._touched()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._touched()

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._touched()

    def setdefault(self, key, default=None):
        self._touched()
        return super().setdefault(key, default)

    def pop(self, *args):
        self._touched()
        return super().pop(*args)

    def popitem(self):
        self._touched()
        return super().popitem()

    def clear(self):
        super().clear()
        self._touched()

    def __ior__(self, other):
        self.update(other)
        return self

    def __reduce__(self):
        return dict, (dict(self),)


_LAYERS = frozenset({"registered", "included_vars", "cacheable"})
#: assigning one of these changes the host's variables
_VERSIONED = _LAYERS | {"setup_ran", "failed_task", "failed_result"}


_RUN_TOKENS = itertools.count(1)


class _Groups(dict):
    """``groups``: every group's hosts, fixed for a run (no add_host/group_by at run time)."""

    def __init__(self, groups: dict, token: int):
        super().__init__(groups)
        self.memo_token = ("groups", token)


_DOWN_EPOCHS = itertools.count(1)
_VARS_EPOCHS = itertools.count(1)
HostRun.down_epoch = 0   # changes whenever any host fails, recovers or becomes unreachable
HostRun.vars_epoch = 0   # changes whenever any host's variables change (HostRun.touched)


@dataclass
class _Rendered:
    """A step's variables and loop items as rendered for one host, and what they were
    rendered from (see Runner._step_items)."""

    key: tuple
    variables: dict
    items: list        # (index, the loop item's variables, status, args)
    others: int | None  # HostRun.vars_epoch then, if it read other hosts' hostvars (else None)
    files: dict        # local files prepare read -> (mtime_ns, size, inode) or None
    stamp: tuple = ()  # _controller_stamp() then, if it read local files


@dataclass
class _Planned:
    """A step planned by a plan pass as soon as its host's batched read answered
    (Runner._plan_ahead), and what that plan was made from: the rendering, the host
    facts, each item's read. Used when the step's turn comes if none of it changed."""

    rendered: _Rendered
    info: HostInfo
    items: list  # ((task id, index), its read, the loop item's variables, changes, what it registers)


class _Vars(dict):
    """A task's resolved variables; ``raw`` keeps them as written (see Runner._overlay)."""

    raw: dict | None = None
    refs: dict | None = None   # templated variable -> the names it uses
    again: dict | None = None  # the names an overlay defines -> the variables rendered again
    extra: dict | None = None  # what _overlay put on top (a loop item's variables)


_NOT_LAZY = _NOT_RESOLVED  # (hostvars, groups, vars, the play host lists: never templates)


class HostVars(Mapping):
    """Ansible's ``hostvars``: every host's variables, computed when looked at."""

    def __init__(self, runner: "Runner", task: Task):
        self.runner, self.task = runner, task
        self.used = False   # a host of the play was looked at (a rendering depends on it)

    @property
    def memo_token(self):
        """Equal tokens, equal hostvars (templating: a rendering reading only these is
        the same for every host): this run's, this play's, no host's variables changed."""
        return self.runner.run_token, self.task.play.index, HostRun.vars_epoch

    def __getitem__(self, name):
        runner = self.runner
        hr = runner.hosts.get(name) or runner.extra_hosts.get(name)
        if hr is None:
            if name not in runner.inventory.hosts:
                raise KeyError(name)
            cached = runner._inventory_hostvars.get(name)
            if cached is None:  # a host of no play: its inventory variables never change
                host = runner.inventory.hosts[name]
                cached = runner._inventory_hostvars[name] = runner.templar.resolve(
                    {**host.vars, "inventory_hostname": name})
            return cached
        self.used = True
        return runner.host_variables(hr, self.task.play)

    def __iter__(self):
        return iter(self.runner.inventory.hosts)

    def __len__(self):
        return len(self.runner.inventory.hosts)

    def __contains__(self, name):
        return name in self.runner.inventory.hosts


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
        if hasattr(inventory, "use_playbook_dir"):
            inventory.use_playbook_dir(os.path.dirname(os.path.abspath(playbook.path)))
        self.base_graph, self.tasks = build_graph(playbook, inventory, limit=options.limit,
                                                  tags=options.tags, skip_tags=options.skip_tags)
        self.graph = self.base_graph
        search = []
        for play in playbook.plays:
            for d in (os.path.join(play.base_dir, "templates"), os.path.join(play.base_dir, "..", "templates"),
                      play.base_dir, os.path.join(play.base_dir, "files")):
                if d not in search:
                    search.append(d)
        for task in playbook.tasks():
            for d in task.search_dirs:
                for sub in (os.path.join(d, "templates"), d):
                    if sub not in search:
                        search.append(sub)
        self.search_path = search
        self.templar_local = threading.local()
        self.facts_cache = HostFactsCache()
        self.magic = inventory.magic()
        self.hosts: dict[str, HostRun] = {}
        for name in {s.host for s in self.graph.nodes if isinstance(s, Step)}:
            host = inventory.hosts[name]
            self.hosts[name] = HostRun(host=host, info=HostInfo(name=name, vars=host.vars))
        self.extra_hosts: dict[str, HostRun] = {}   # delegate_to targets outside the plays (localhost)
        self.connections = None
        if Connections is not None:
            self.connections = Connections(
                factory=lambda host, **kw: make_transport(host, **kw), known_hosts=options.known_hosts,
                accept_new=options.accept_new_host_keys, timeout=options.timeout,
                connect_timeout=options.connect_timeout, become_password=options.become_password,
                ssh_password=options.ssh_password, default_user=options.remote_user,
                # one paramiko thread per open SSH connection: at most --forks stay open
                # (idle ones beyond that reopen on their host's next command)
                max_open=max(1, options.forks))
        self.play_hosts = {play.index: play_hosts(play, inventory, options.limit) for play in playbook.plays}
        self.gathers = {}   # host -> index of the first play that gathers its facts
        for play in playbook.plays:
            if play.gather_facts:
                for h in self.play_hosts[play.index]:
                    self.gathers.setdefault(h, play.index)
        self.outcomes: dict[Step, StepOutcome] = {}
        self._planned: dict[Step, StepOutcome] = {}  # the plan pass's outcomes, during an apply pass
        self.stop_all = threading.Event()
        #: the playbook loader numbers the tasks of an include's body with counters it keeps
        #: (not thread-safe): hosts expanding includes at the same time would get duplicate
        #: task ids — duplicate steps, a cycle in the graph
        self._expand_lock = threading.Lock()
        self._hostvars_cache: dict = {}
        self._vars_cache: dict = {}   # (host, _vars_shape) -> (what they were made from, variables)
        # (module class, answers, distribution) -> what the reads of items a plan found
        # unchanged with them were made from (Runner._plan_ahead)
        self._unchanged: dict = {}
        self._found: dict = {}   # controller file lookups (Runner._step_lookup)
        self._template_files: dict = {}  # path -> (its _stat, TemplateFile, whether it includes others)
        self.validations = Validations()  # module arguments validated once per distinct arguments
        self._places: dict = {}  # host -> (playbook_dir, inventory_file, inventory_dir)
        self.run_token = next(_RUN_TOKENS)  # (this runner, in HostVars.memo_token)
        self.magic["groups"] = _Groups(self.magic["groups"], self.run_token)
        self._inventory_hostvars: dict = {}
        self._live: dict = {}   # play index -> (HostRun.down_epoch, its live hosts, all its hosts)
        self.steps_by_host: dict[str, list[Step]] = {}
        self.once: dict = {}            # (task id, batch) -> (host, outcome) of a run_once task
        self.once_lock = threading.Lock()
        #: host -> the play through which a failure clear_host_errors forgave still stops it
        self._cleared: dict = {}
        #: unreachable hosts a meta clear_host_errors did not forgive (Runner._clear_errors)
        self.unreachable_kept: set = set()
        self.throttles: dict = {}
        self.all_tasks = {t.id: t for t in playbook.tasks()}
        for name in _sensitive_names(inventory, playbook):
            for hr in self.hosts.values():
                if name in hr.host.vars:
                    secrets.register(hr.host.vars[name])
            for play in playbook.plays:
                if name in play.vars:
                    secrets.register(play.vars[name])

    # -- templating and variables ---------------------------------------------------
    @property
    def templar(self) -> Templar:
        t = getattr(self.templar_local, "t", None)
        if t is None:
            t = self.templar_local.t = Templar(self.search_path)
        return t

    def _facts_probe(self, hr: HostRun) -> str:
        """Every fact where they are variables in this run; else only what modules plan
        with (Ansible's ``gather_facts: false`` reads nothing; a later ``setup`` reads all)."""
        return FACTS_PROBE if hr.host.name in self.gathers or hr.setup_ran else INFO_PROBE

    def _facts_visible(self, hr: HostRun, play) -> bool:
        first = self.gathers.get(hr.host.name)
        return hr.setup_ran or (first is not None and first <= play.index)

    def variables(self, hr: HostRun, task: Task) -> dict:
        """A task's variables, lowest precedence first (Ansible's order): role defaults,
        inventory (group_vars/host_vars included), facts, play vars, vars_files, role vars,
        block vars, task vars, include_vars, set_fact/register, role params, include
        params, extra vars; then the magic variables.

        Made once for the steps of a host that share every layer (the same play, roles,
        blocks, task vars and include params: _vars_shape) while none of the host's
        variables changed, nor which hosts are live, nor the mode; each step gets its own
        copy with its own ``hostvars`` (what a rendering of it read is its own)."""
        if hr.__dict__.get("copy"):  # a host as its later steps will see it (batch.shadow): not kept
            return self._compute_variables(hr, task)
        key = (hr.host.name, _vars_shape(task))
        made = (self.options.mode, hr.vars_key(), HostRun.down_epoch)
        cached = self._vars_cache.get(key)
        if cached is not None and cached[0] == made and cached[2] in (None, HostRun.vars_epoch):
            return self._own_variables(cached[1], task, cached[2] is not None)
        epoch = HostRun.vars_epoch
        resolved = self._compute_variables(hr, task)
        # (only what renders the same again: no lookup, no clock; a variable reading other
        # hosts' hostvars is made again when any host's variables changed)
        if self._renders_alike(resolved.raw):
            used = getattr(resolved.get("hostvars"), "used", True)
            self._vars_cache[key] = (made, resolved, epoch if used else None)
        return resolved

    def _own_variables(self, shared: "_Vars", task: Task, read_hostvars: bool) -> "_Vars":
        out = _Vars(shared)
        hostvars = out["hostvars"] = HostVars(self, task)
        hostvars.used = read_hostvars  # (what is made from these read other hosts)
        del out["vars"]
        out["vars"] = dict(out)
        out.raw = shared.raw
        return out

    def _renders_alike(self, raw: dict) -> bool:
        """Whether every template among these variables is pure (see templating's
        _pure_names): given the same values, it renders the same."""
        env = self.templar.env
        return all(_value_names(env, value) is not None for key, value in raw.items()
                   if key not in _NOT_LAZY and _has_template(value))

    def _compute_variables(self, hr: HostRun, task: Task) -> "_Vars":
        play = task.play
        chain = task.role_chain
        v: dict = {}
        for role in play.roles:
            v.update(role.defaults)
        for role in chain:
            v.update(role.defaults)
        v.update(hr.host.vars)
        v.update(self._fact_layer(hr, play))
        v.update(play.vars)
        v.update(self._vars_files(hr, play))
        for role in play.roles:
            v.update(role.vars)
        for role in chain:
            v.update(role.vars)
        for block_vars in task.block_vars:
            v.update(block_vars)
        v.update(task.vars)
        v.update(hr.included_vars)
        v.update(hr.registered)
        for role in chain:
            v.update(role.params)
        v.update(task.include_params)
        v.update(self.options.extra_vars)
        v.update(self._magic(hr, task))
        resolved = _Vars(self.templar.resolve(v))
        resolved["vars"] = dict(resolved)
        resolved.raw = v
        return resolved

    def _overlay(self, variables: dict, extra: dict) -> dict:
        """``variables`` with ``extra`` on top (a loop item, a registered result between
        retries), variables whose templates use them rendered again: Ansible's vars are
        lazy, so ``vars: {x: "{{ item }}"}`` follows the item and a task var reading the
        registered name sees each new result."""
        raw = getattr(variables, "raw", None)
        out = _Vars({**variables, **extra})
        out.raw = raw
        out.extra = extra
        if raw is None or not extra:
            return out
        refs = getattr(variables, "refs", None)
        if refs is None:  # the names each templated variable uses: once per task, not per item
            refs = {key: self.templar._references(value) for key, value in raw.items()
                    if key not in _NOT_LAZY and _has_template(value)}
            variables.refs = refs
        out.refs = refs
        # which variables use them, and what uses those: the same for every item of a loop
        # (its items define the same names)
        defined = frozenset(extra)
        known = variables.again
        if known is None:
            known = variables.again = {}
        lazy = known.get(defined)
        if lazy is None:
            names = set(extra)
            lazy = []
            grew = True
            while grew:
                grew = False
                for key, used in refs.items():
                    if key in names:
                        continue
                    if used & names:
                        lazy.append(key)
                        names.add(key)
                        grew = True
            known[defined] = lazy
        again = {key: raw[key] for key in lazy}
        out.raw = {**raw, **extra}
        if again:
            out.update(self.templar.resolve({**out, **again}))
            out["vars"] = {k: val for k, val in out.items() if k != "vars"}
        return out

    def _fact_layer(self, hr: HostRun, play) -> dict:
        visible = self._facts_visible(hr, play)
        facts = dict(hr.fact_vars) if visible else {}
        facts.update(hr.cacheable)
        # (no facts: ``ansible_facts`` is still there, empty, as in Ansible)
        return hostfacts.inject(facts, hr.info if visible else None) if facts else {"ansible_facts": {}}

    def host_variables(self, hr: HostRun, play) -> dict:
        """``hostvars[host]``: inventory, facts, play vars, include_vars, set_fact/register.

        Cached per (host, play) until one of the host's own layers changes: a template
        reading ``hostvars[h]`` for every host (an /etc/hosts block) would otherwise
        compute every host's variables again on each host — quadratic in hosts."""
        # O(1) per lookup: each write to one of its layers bumps hr.vars_version, and so does
        # every change of whether its facts are visible (setup_ran, clear_facts: touched())
        signature = hr.vars_version
        key = (hr.host.name, play.index)
        cached = self._hostvars_cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        result = self._compute_host_variables(hr, play)
        self._hostvars_cache[key] = (signature, result)
        return result

    def _compute_host_variables(self, hr: HostRun, play) -> dict:
        v: dict = {}
        for role in play.roles:
            v.update(role.defaults)
        v.update(hr.host.vars)
        v.update(self._fact_layer(hr, play))
        v.update(play.vars)
        v.update(hr.included_vars)
        v.update(hr.registered)
        v.update(self.options.extra_vars)
        v.update({"inventory_hostname": hr.host.name, "inventory_hostname_short": hr.host.name.split(".")[0],
                  "group_names": sorted(hr.host.groups)})
        return self.templar.resolve(v)

    def _magic(self, hr: HostRun, task: Task) -> dict:
        play = task.play
        hosts = self.play_hosts.get(play.index, [])
        # one list per play, shared by every task's variables until a host fails or
        # recovers (a copy per task was O(hosts) of time and memory for each step)
        epoch = HostRun.down_epoch
        known = self._live.get(play.index)
        if known is not None and known[0] == epoch:
            live, all_hosts = known[1], known[2]
        else:
            live = [h for h in hosts if h in self.hosts and not self.hosts[h].failed and not self.hosts[h].unreachable]
            all_hosts = known[2] if known is not None else list(hosts)
            self._live[play.index] = (epoch, live, all_hosts)
        places = self._places.get(hr.host.name)
        if places is None:  # (the same for every step: abspath asks the OS for the working directory)
            inventory_file = os.path.abspath(hr.host.file or self.inventory.path)
            places = self._places[hr.host.name] = (os.path.dirname(os.path.abspath(self.playbook.path)),
                                                   inventory_file, os.path.dirname(inventory_file))
        magic = {"groups": self.magic["groups"], "hostvars": HostVars(self, task),
                 "inventory_hostname": hr.host.name, "inventory_hostname_short": hr.host.name.split(".")[0],
                 "group_names": sorted(hr.host.groups), "playbook_dir": places[0], "inventory_file": places[1],
                 # where this host was defined (an inventory directory has several files)
                 "inventory_dir": places[2],
                 "ansible_check_mode": self.options.mode == "plan", "ansible_play_name": play.name,
                 "ansible_play_hosts": live, "ansible_play_hosts_all": all_hosts, "play_hosts": live,
                 "ansible_play_batch": self._batch_hosts(task, hr.host.name, live), "ansible_run_tags": sorted(self.options.tags or ["all"]),
                 "ansible_skip_tags": sorted(self.options.skip_tags or []), "ansible_version": _ansible_version(),
                 "ansible_diff_mode": True, "ansible_forks": self.options.forks}
        if hr.failed_task is not None and any(section == "rescue" for _, section, _ in task.frames):
            magic.update(ansible_failed_task=hr.failed_task, ansible_failed_result=hr.failed_result)
        if task.role is not None:
            chain = task.role_chain
            parents, role = [], task.role
            while role.parent is not None and not role.dependency:  # include_role/import_role, not meta deps
                parents.append(role.parent)
                role = role.parent
            magic.update(role_name=task.role.name, role_path=task.role.path, ansible_role_name=task.role.name)
            if parents:
                magic.update(ansible_parent_role_names=[r.name for r in parents],
                             ansible_parent_role_paths=[r.path for r in parents])
            del chain
        return magic

    def _vars_files(self, hr: HostRun, play) -> dict:
        """A play's vars_files for this host (names may use its variables; a list entry
        is the first file of it that exists, as in Ansible)."""
        if not play.vars_files:
            return {}
        cached = hr.vars_files.get(play.index)
        if cached is not None:
            return cached
        out: dict = {}
        base: dict = {}
        for entry, file, line in play.vars_files:
            candidates = entry if isinstance(entry, list) else [entry]
            where = {"file": file, "line": line}
            found = None
            for candidate in candidates:
                name = str(candidate)
                if "{{" in name:
                    if not base:
                        base = self.templar.resolve({**hr.host.vars, **(hostfacts.inject(hr.fact_vars) if
                                                                         self._facts_visible(hr, play) else {}),
                                                     **play.vars, **self.options.extra_vars,
                                                     "inventory_hostname": hr.host.name,
                                                     "groups": self.magic["groups"]})
                    name = str(self.templar.render(name, {**base, **out}, where=where))
                    if is_unknown(name):
                        raise GfsError(f"vars_files entry {candidate!r} is known only after apply", **where,
                                       fix="name the vars file with variables known before the run")
                path = name if os.path.isabs(name) else os.path.join(play.base_dir, name)
                if os.path.isfile(path):
                    found = path
                    break
            if found is None:
                raise PlaybookError("vars_files: " + (f"none of {candidates} exists" if len(candidates) > 1 else
                                                       f"{candidates[0]} not found"), **where,
                                    fix="check the path (relative to the playbook's directory)")
            out.update(load_vars(found))
        if all("{{" not in str(e) for e, _, _ in play.vars_files):
            for other in self.hosts.values():
                other.vars_files.setdefault(play.index, out)
        hr.vars_files[play.index] = out
        return out

    # -- connection and batched reads -----------------------------------------
    def _ensure_connected(self, hr: HostRun) -> None:
        if hr.connected:
            return
        with hr.conn_lock:
            if not hr.connected:
                self._connect(hr)

    def _connect(self, hr: HostRun) -> None:
        if hr.unreachable:
            raise TransportError("host is unreachable (see the first error)", host=hr.host.name)
        try:
            if self.connections is not None:
                hr.transport = self.connections.get(hr.host, hr.host.vars)
            else:
                hr.transport = make_transport(hr.host, known_hosts=self.options.known_hosts,
                                              accept_new=self.options.accept_new_host_keys,
                                              timeout=self.options.timeout,
                                              connect_timeout=self.options.connect_timeout)
            if "ansible_become" not in hr.host.vars and not hasattr(hr.transport, "with_become"):
                # without per-task escalation in the transport, one connection serves every
                # play of the run: it escalates when a play or task on this host asks for `become`
                hr.transport.become = self._wants_become(hr.host.name)
            hr.transport.connect()
        except GfsError:
            hr.unreachable = True
            raise
        if not hr.facts_text:
            cached = self.facts_cache.get(hr.host)
            if cached:
                self._set_facts(hr, cached, real=False)
        hr.connected = True

    def _wants_become(self, host: str) -> bool:
        for step in self.steps_by_host.get(host, []) or [s for s in self.graph.nodes if isinstance(s, Step) and s.host == host]:
            task = self.tasks[step.task_id]
            if _truth(task.become) is True or (task.become is None and task.play.become):
                return True
        return False

    def _set_facts(self, hr: HostRun, text: str, *, real: bool) -> None:
        if text != hr.facts_parsed:  # the same text (a warm facts cache) gives the same facts
            # the HostInfo now (the distribution only); every other fact is parsed from the
            # text when a variable first reads them (HostRun.fact_vars)
            _, info = hostfacts.read(hr.host.name, text, hr.host.vars, facts=False)
            hr.facts_parsed = text
            hr.fact_vars = None  # (not parsed yet)
            if info != hr.info:
                hr.info = info
            if hr.host.name in self.gathers or hr.setup_ran:
                # facts are variables here: what was rendered with the old ones is outdated
                # (elsewhere they are not, and an uptime in them must not undo every rendering)
                hr.touched()
        if real:
            hr.facts_text = text

    def _transport_for(self, hr: HostRun, task: Task, variables: dict | None):
        """The connection for a task's ``remote_user``/``connection`` keywords. As in Ansible,
        the inventory's ``ansible_user``/``ansible_connection`` win over the keywords."""
        user = conn = None
        if task.remote_user is not None and "ansible_user" not in hr.host.vars:
            user = str(self.templar.render(task.remote_user, variables or {}, where=task.where()))
        if task.connection is not None and "ansible_connection" not in hr.host.vars:
            conn = str(self.templar.render(task.connection, variables or {}, where=task.where()))
            conn = {"smart": "ssh", "paramiko": "ssh", "ansible.builtin.ssh": "ssh",
                    "ansible.builtin.local": "local"}.get(conn, conn)
            if conn not in ("ssh", "local"):
                raise GfsError(f"connection {conn!r} is not supported", **task.where(), field="connection",
                               fix="use ssh or local")
        if (user is None or user == hr.host.user) and (conn is None or conn == hr.host.connection):
            return hr.transport
        if self.connections is not None:
            transport = self.connections.get(hr.host, variables, remote_user=user, connection=conn)
            transport.connect()
            return transport
        key = (user, conn)
        with hr.conn_lock:
            transport = hr.views.get(key)
            if transport is None:
                extra = {**({"ansible_user": user} if user is not None else {}),
                         **({"ansible_connection": conn} if conn is not None else {})}
                host = Host(hr.host.name, vars={**hr.host.vars, **extra}, groups=hr.host.groups)
                transport = make_transport(host, known_hosts=self.options.known_hosts,
                                           accept_new=self.options.accept_new_host_keys, timeout=self.options.timeout,
                                           connect_timeout=self.options.connect_timeout)
                if hr.transport is not None:
                    transport.become = hr.transport.become
                transport.connect()
                hr.views[key] = transport
        return transport

    def _view(self, hr: HostRun, task: Task, variables: dict | None):
        """The transport a task's commands go through: its remote_user/connection, and its
        become/become_user/become_method."""
        transport = self._transport_for(hr, task, variables)
        if not hasattr(transport, "with_become") or resolve_become is None:
            return transport
        become, user, method = self._become_key(task, variables)
        flags = task.become_flags
        if isinstance(flags, str) and "{{" in flags and variables is not None:
            flags = self.templar.render(flags, variables, where=task.where())
        return transport.with_become(resolve_become(variables or hr.host.vars, become=become, become_user=user,
                                                    become_method=method, become_flags=flags,
                                                    password=self.options.become_password))

    def _become_key(self, task: Task, variables: dict | None):
        become = task.become if task.become is not None else task.play.become
        user = task.become_user if task.become_user is not None else task.play.become_user
        method = task.become_method or "sudo"
        if variables is not None:  # (only templates are rendered: "sudo" is "sudo")
            become = self.templar.render(become, variables) if _templated(become) else become
            user = self.templar.render(user, variables) if _templated(user) else user
            method = self.templar.render(method, variables) if _templated(method) else method
        return bool(_truth(become) is True), str(user or "root"), str(method)

    def _refresh(self, hr: HostRun, current: Step | None) -> None:
        """Read, in one round trip, the probes of every remaining step of this host
        whose arguments can be rendered now (plus the host facts, once per run)."""
        remaining = self.steps_by_host.get(hr.host.name, [])
        if current is not None and current in remaining:
            remaining = remaining[remaining.index(current):]
        # what is still valid (nothing it reads has changed since) is kept
        keep = {} if hr.stale else dict(hr.facts)
        probes: dict[str, str] = {"__facts__": self._facts_probe(hr)} if not hr.facts_text else {}
        planned: dict = {}
        views: dict = {}   # probe key -> the transport view its task reads through (become, user)
        ahead: dict = {}   # register name -> what a step before will register (batch.register_ahead)
        planning = self.options.mode == "plan"
        plan_ahead: list = []  # steps planned as soon as the read answers (_plan_ahead)
        for step in remaining:
            task = self.tasks[step.task_id]
            if step in self.outcomes or task.include is not None or task.module in META or task.delegate_to:
                if task.register and step not in self.outcomes:
                    ahead[task.register] = batch.NOT_YET
                continue
            try:
                module = _module(task)
                if module is None:
                    if task.register:
                        ahead[task.register] = batch.NOT_YET
                    continue
                if ahead:  # rendered with what earlier steps will register: not kept for later
                    variables = self.variables(batch.shadow(hr, ahead), task)
                    rendered = self._each_item(hr, task, module, variables, reading=True)
                else:  # (kept: the step's run and its batch reuse it — Runner._step_items)
                    variables, rendered = self._step_items(hr, task, module, want_ctx=bool(task.register))
                env = self._environment(task, variables)
                view = self._view(hr, task, variables)
                items: list = []
                for item in rendered:
                    items.append(item)
                    index, _, status, args, _ = item
                    if status == "unknown":
                        raise LookupError(args)
                    if status == "skipped":
                        continue
                    if status == "unsure":  # read now; whether it runs is decided when it runs
                        status = "ready"
                    step_probes = module.probes(args, hr.info)
                    args_key = getattr(item[4], "args_key", None) or _args_key(args)
                    if (task.id, index) in keep and keep[(task.id, index)][0] == args_key:
                        continue
                    if hr.changed and step != current and not module.cheap_reads:
                        continue  # costly reads on a changing host: each step reads its own when it runs
                    for key, cmd in step_probes.items():
                        probes[f"{task.id}\x1f{index}\x1f{key}"] = _with_env(env, cmd)
                        views[f"{task.id}\x1f{index}\x1f{key}"] = view
                    planned[(task.id, index)] = (args_key, module.resources(args))
                if planning and not ahead and module.plans_from_reads and not self._runs_in_plan(task) \
                        and task.id in hr.rendered:
                    plan_ahead.append((task, module, hr.rendered[task.id], items))
                if task.register:
                    batch.register_ahead(self, hr, task, module, items, keep, ahead)
                if task.module in SET_FACT:
                    batch.set_fact_ahead(self, task, items, ahead)
            except Exception:  # noqa: BLE001 - not renderable yet; read it when it runs
                if task.register:
                    ahead[task.register] = batch.NOT_YET
                continue
        # one round trip per (connection, become) the tasks use: usually exactly one
        batches: dict = {}
        for key, cmd in probes.items():
            view = views.get(key)
            if view is not None:
                batches.setdefault(id(view), (view, {}))[1][key] = cmd
        if "__facts__" in probes:  # the facts need no privilege: they ride along with any batch
            (next(iter(batches.values())) if batches else batches.setdefault(0, (hr.transport, {})))[1][
                "__facts__"] = probes["__facts__"]
        results: dict = {}
        for view, probes_of_view in batches.values():
            results.update(batch.read_joined(view, probes_of_view))
        facts_result = results.pop("__facts__", None)
        if facts_result is not None:
            # steps rendered with outdated facts are re-read when they run (their args differ)
            self._set_facts(hr, facts_result.stdout, real=True)
            if probes["__facts__"] is FACTS_PROBE:  # (the cache keeps a whole gathering)
                self.facts_cache.put(hr.host, facts_result.stdout)
        grouped: dict = {}
        for key, result in results.items():
            task_id, index, probe = key.split("\x1f", 2)
            grouped.setdefault((task_id, int(index)), {})[probe] = result
        info = hr.info  # what the probes were made from (see _facts_for; replaced, never changed in place)
        hr.facts = {**keep, **{k: (planned[k][0], grouped.get(k, {}), planned[k][1], info) for k in planned}}
        hr.attempted = set(hr.facts)
        hr.stale = False
        for task, module, rendered, items in plan_ahead:
            self._plan_ahead(hr, task, module, rendered, items, info)

    def _plan_ahead(self, hr: HostRun, task: Task, module, rendered: _Rendered, items: list, info: HostInfo) -> None:
        """Plan a step of a plan pass from the read that just answered, with the rendering
        and contexts the read was made from: its turn then only checks that nothing it was
        planned from changed (Runner._planned_ahead) instead of rendering its items again.
        Any doubt (an item not ready, not read, read from other host facts, a read or plan
        that raises): not planned ahead — the step plans itself, and says what went wrong."""
        planned = []
        alike = module.plans_alike and not task.register
        for index, v, status, args, ctx in items:
            key = (task.id, index)
            read = hr.facts.get(key)
            if status != "ready" or ctx is None or read is None or read[0] != getattr(ctx, "args_key", None) \
                    or not self._same_probes(module, args, read, info):
                return
            if alike:  # (Module.plans_alike: planned unchanged on a host alike)
                seen = (type(module), _answers_key(read[1]), _distribution(info))
                made = self._unchanged.get(seen)  # (arguments compared only for the same answers)
                if made is not None and any(read[0] == other for other in made):
                    planned.append((key, read, getattr(v, "extra", None) or {}, [], None))
                    continue
            try:
                state = module.read(args, read[1], ctx)
                changes = module.plan(args, state, info)
                registered = module.unchanged(args, state).as_register() if task.register else None
            except Exception:  # noqa: BLE001 - (its turn plans it again and reports the error)
                return
            if alike and not changes:
                if len(self._unchanged) >= _UNCHANGED_MAX:
                    self._unchanged.clear()
                made = self._unchanged.setdefault(seen, [])
                if len(made) < 8:  # (a few renderings per answer: a loop's items may read alike)
                    made.append(read[0])
            planned.append((key, read, getattr(v, "extra", None) or {}, changes, registered))
        if planned:
            hr.planned[task.id] = _Planned(rendered, info, planned)

    def _planned_ahead(self, hr: HostRun, task: Task) -> _Planned | None:
        """The step's plan made by _plan_ahead, if nothing it was made from changed since:
        the step's rendering (this host's variables, the hostvars it read, the local files),
        the host facts, and each item's read (a change on the host forgets it)."""
        planned = hr.planned.pop(task.id, None)
        if planned is None or hr.stale or hr.rendered.get(task.id) is not planned.rendered \
                or not self._still_valid(hr, planned.rendered) or (hr.info is not planned.info and hr.info != planned.info):
            return None
        facts = hr.facts
        if any(facts.get(key) is not read for key, read, _, _, _ in planned.items):
            return None
        return planned

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

    def _each_item(self, hr: HostRun, task: Task, module, variables: dict, *, reading: bool = False):
        """The per-item pipeline shared by the batched reads and by execution: for each
        loop item, ``(index, item variables, status, args, ctx)``. ``status`` is
        ``ready`` (args validated and prepared), ``skipped`` (its `when` is false) or
        ``unknown`` (loop, condition or arguments only known after apply; ``args`` then
        says which). ``reading`` (a batched read made before earlier steps registered):
        an item whose `when` cannot be decided yet but whose arguments can is ``unsure``
        (read now, so that deciding it later costs no round trip)."""
        try:
            items = self._items(task, variables)
        except LookupError:
            yield 0, variables, "unknown", "loop (known after apply)", None
            return
        memo: dict = {}
        for index, item_vars in enumerate(items):
            v = self._overlay(variables, item_vars)
            unsure = False
            if task.when:
                try:
                    if _references_unknown(self.templar, task.when, v):
                        if not reading:
                            yield index, v, "unknown", "condition (known after apply)", None
                            continue
                        unsure = True
                    elif not self._true(task.when, v, task):
                        yield index, v, "skipped", None, None
                        continue
                except GfsError:
                    if not reading:
                        raise
                    unsure = True  # (e.g. it uses what a step before registers)
            try:
                args, rendered_as = self._render_args(task, module, v)
            except GfsError:
                if _has_unknown(v) and _references_unknown_value(self.templar, dict(task.args), v):
                    yield index, v, "unknown", "arguments (known after apply)", None
                    continue
                raise
            if is_unknown(args):
                yield index, v, "unknown", show_unknown(_describe_args(args)), None
                continue
            args = self.validations.validate(module, args, where=task.where(), rendered_as=rendered_as)
            ctx = self._context(hr, task, v, memo)
            yield index, v, "unsure" if unsure else "ready", module.prepare(args, ctx), ctx

    def _step_items(self, hr: HostRun, task: Task, module, *, want_ctx: bool = True, keep: bool = True):
        """``(variables, items)`` of a step on this host, ``items`` yielding what
        :meth:`_each_item` yields. Rendered once and reused by the batched read, the
        batch and the step's own run (it rendered three times before) while nothing it
        was rendered from changed: this host's variable layers, the ``hostvars`` of other
        hosts it read, which hosts are live, the run's mode and the local files
        ``prepare`` read. Each use gets its own ``ctx`` and its own copy of the args;
        ``keep=False``: the step's last use (nothing is kept)."""
        entry = hr.rendered.get(task.id)
        if entry is not None and self._still_valid(hr, entry):
            return entry.variables, self._replay_items(hr, task, entry, want_ctx)
        lookups = self.templar.lookups_run
        variables = self.variables(hr, task)
        return variables, self._record_items(hr, task, module, variables, keep, lookups)

    def _render_key(self, hr: HostRun) -> tuple:
        # (not the host facts: a module whose prepare may be reused does not read them, and
        # the probes made from them are checked when read — Runner._same_probes)
        return self.options.mode, hr.vars_key(), HostRun.down_epoch

    def _still_valid(self, hr: HostRun, entry: _Rendered) -> bool:
        if entry.key != self._render_key(hr):
            return False
        if entry.others is not None and entry.others != HostRun.vars_epoch:
            return False  # it read hostvars, and some host's variables changed since
        if entry.files and entry.stamp != _controller_stamp():
            return False  # a command ran on the controller: another file may be the one found now
        return all(_stat(path) == stat for path, stat in entry.files.items())

    def _record_items(self, hr: HostRun, task: Task, module, variables: dict, keep: bool, lookups: int):
        key, epoch, stamp = self._render_key(hr), HostRun.vars_epoch, _controller_stamp()
        # (a with_<lookup> loop reads the controller's files: rendered again when the step runs)
        reusable = keep and not task.delegate_to and _prepare_reusable(module) and task.loop_with in _DATA_LOOPS
        items: list = []
        files: set = set()
        for index, v, status, args, ctx in self._each_item(hr, task, module, variables):
            if reusable:  # (the item's own variables only: all of them again is O(variables) per item)
                digest = None
                kept = dict(args) if isinstance(args, dict) else args
                if status == "ready":  # (what its read is made from: the read and the run compare it)
                    digest = ctx.args_key = _ArgsKey(kept)
                items.append((index, getattr(v, "extra", None), status, kept, digest))
                files.update(getattr(ctx, "local_files", ()))
            yield index, v, status, args, ctx
        if reusable and self.templar.lookups_run == lookups and None not in files:  # all rendered, no lookup ran
            others = epoch if getattr(variables.get("hostvars"), "used", True) else None
            hr.rendered[task.id] = _Rendered(key, variables, items, others, {path: _stat(path) for path in files},
                                             stamp)

    def _replay_items(self, hr: HostRun, task: Task, entry: _Rendered, want_ctx: bool):
        memo: dict = {}
        for index, extra, status, args, key in entry.items:
            v = self._overlay(entry.variables, extra or {})
            ctx = self._context(hr, task, v, memo) if want_ctx and status == "ready" else None
            if ctx is not None:
                ctx.args_key = key
                ctx.local_files = list(entry.files)  # what its prepare read (batch: a controller host)
            yield index, v, status, dict(args) if isinstance(args, dict) else args, ctx

    def _true(self, conditions, variables: dict, task: Task) -> bool:
        value = self.templar.evaluate(conditions, variables, where=task.where())
        return bool(_truth(value)) if not isinstance(value, bool) else value

    def _render_args(self, task: Task, module, variables: dict) -> tuple:
        """``(args, key)``: the task's arguments rendered; equal keys, equal arguments (None:
        not known to be; Templar.render_shared)."""
        if not any(name in task.args for name in module.expressions):  # (render gives a new dict)
            return self.templar.render_shared(task.args, variables, where=task.where())
        raw = dict(task.args)
        evaluated = {}
        for name in module.expressions:
            if name in raw:
                items = raw.pop(name)
                items = items if isinstance(items, list) else [items]
                evaluated[name] = [{"expr": str(e), "value": Unknown() if _references_unknown(self.templar, e, variables)
                                    else self.templar.evaluate(e, variables, where=task.where())} for e in items]
        args = self.templar.render(raw, variables, where=task.where())
        args.update(evaluated)
        return args, None

    def _items(self, task: Task, variables: dict) -> list[dict]:
        if task.loop is None:
            return [{}]
        try:
            terms = self.templar.render(task.loop, variables, where=task.where())
        except GfsError:
            if _has_unknown(variables) and _references_unknown_value(self.templar, task.loop, variables):
                raise LookupError("unknown loop") from None
            raise
        if is_unknown(terms):
            raise LookupError("unknown loop")
        # as Ansible: a with_* lookup's relative files are searched in the subdirectory the
        # task's action reads from (include_vars: vars/, template: templates/, else files/)
        short = task.module.rsplit(".", 1)[-1]
        own = {"include_vars": "vars", "template": "templates"}.get(short)
        values = loops.items(task.loop_with, terms, where=task.where(),
                             find=lambda sub, name: self._find_in(task, own if own and sub == "files" else sub, name),
                             select_hosts=lambda pattern: self.inventory.select(pattern, where=task.where()))
        return [loops.loop_vars(task, item, i, values) for i, item in enumerate(values)]

    def _environment(self, task: Task, variables: dict) -> dict:
        env: dict = {}
        for entry in task.environment:
            value = self.templar.render(entry, variables, where=task.where())
            if value in (None, ""):
                continue
            if not isinstance(value, dict):
                raise GfsError(f"`environment` must be a mapping, got {type(value).__name__}", **task.where(),
                               field="environment", fix="write `environment: {NAME: value}`")
            env.update({str(k): v for k, v in value.items()})
        for key in env:
            if not key.replace("_", "a").isalnum() or key[:1].isdigit():
                raise GfsError(f"environment variable name {key!r} is not valid", **task.where(), field="environment",
                               fix="use letters, digits and _")
        return env

    def _item_view(self, hr: HostRun, task: Task, variables: dict, memo: dict | None):
        """``_view`` for one loop item. ``memo`` (one per step's items): an item whose
        connection variables are the very objects the previous item had gets the same
        view — only when the task's connection keywords are no templates (else the item
        may change them) and it is not delegated."""
        if memo is None:
            return self._view(hr, task, variables)
        static = memo.get("static")
        if static is None:
            static = memo["static"] = not (task.delegate_to or task.remote_user is not None or task.connection
                                           is not None or any(_templated(x) for x in (
                                               task.become, task.become_user, task.become_method, task.become_flags,
                                               task.play.become, task.play.become_user)))
        if not static:
            return self._view(hr, task, variables)
        values = tuple(map(variables.get, _VIEW_VARS))
        known = memo.get("view")
        if known is not None and all(map(operator.is_, known[0], values)):
            return known[1]
        view = self._view(hr, task, variables)
        memo["view"] = (values, view)
        return view

    def _context(self, hr: HostRun, task: Task, variables: dict, memo: dict | None = None) -> TaskContext:
        local_files: list = []   # what prepare read on the controller (see _step_items)

        def render_file(path):
            full, file, uses_files = self._template_file(path, task, memo)
            local_files.append(full)
            text = self.templar.render_file(full, variables, where=task.where(), file=file)
            if uses_files:
                local_files.append(None)  # other files are part of it (or it was unreadable): not reused
            return text

        def find_file(path):
            full = self._step_lookup(("files", path), memo, lambda: self._find(path, task, "files"))
            local_files.append(full)
            return full

        target = hr
        if task.delegate_to:
            target = self._delegate(hr, task, variables) or hr
        view = self._view(target, task, variables) if target is not hr else self._item_view(hr, task, variables, memo)
        environment = self._environment(task, variables) if task.environment else {}
        first = memo.get("ctx") if memo is not None and target is hr else None
        if first is not None:  # the step's other items: what differs from the first one's
            ctx = object.__new__(TaskContext)
            ctx.__dict__.update(first)
            ctx.transport, ctx._render_file, ctx._find_file = view, render_file, find_file
            ctx.variables, ctx.reads, ctx.host_pending, ctx.environment = variables, [], hr.pending, environment
            ctx.local_files = local_files
            return ctx
        ctx = TaskContext(target.info, view, task_name=task.label,
                          render_file=render_file, find_file=find_file,
                          progress=lambda msg: self.reporter.progress(hr.host.name, task, msg),
                          variables=variables, host_pending=hr.pending, environment=environment,
                          check_mode=self.options.mode == "plan" or _truth(task.check_mode) is True,
                          transports=_HostTransports(self.hosts), allow_destroy=self.options.allow_destroy,
                          read_only=self._runs_in_plan(task), no_log=_truth(task.no_log) is True,
                          task_check_mode=task.check_mode, verbosity=self.options.verbose,
                          diff=_truth(task.diff) is True, timeout=task.timeout)
        if memo is not None and target is hr:
            # what every item of the step has alike (TaskContext); not this item's own
            # closures, which hold the memo: a cycle per step only the collector frees
            memo["ctx"] = {k: v for k, v in ctx.__dict__.items() if k not in _ITEM_OWN}
        ctx.local_files = local_files
        return ctx

    def _template_file(self, path: str, task: Task, memo: dict | None):
        """``(controller path, TemplateFile or None, whether it includes other files)`` of a
        template ``src``, looked up once for a step's items (``memo``, one per step's pass)
        while no command or lookup ran on the controller, and read again only when the file
        changed (one stat per host: every host's step renders the same file). None:
        unreadable (rendering reports why). A vault-encrypted template is read for each item
        (its plain text is not kept)."""
        def look():
            full = self._find(path, task, "templates")
            stat = _stat(full)
            known = self._template_files.get(full)
            if known is not None and stat is not None and known[0] == stat:
                return full, known[1], known[2]
            try:
                file = TemplateFile(full)
            except (OSError, UnicodeDecodeError):
                return full, None, True
            uses_files = bool(_TEMPLATE_USES_FILES.search(file.source))
            if not file.encrypted and stat is not None:
                self._template_files[full] = (stat, file, uses_files)
            return full, file, uses_files

        return self._step_lookup(("templates", path), memo, look,
                                 keep=lambda found: found[1] is None or not found[1].encrypted)

    @staticmethod
    def _step_lookup(key: tuple, memo: dict | None, look, keep=None):
        """``look()``, kept in ``memo`` under ``key`` until a command or a lookup runs on the
        controller (``_controller_stamp``): a step's memo (the same for every item of the
        step) or the run's controller file lookups (``Runner._found``: the same for every
        host). ``keep(found)`` false: not kept."""
        if memo is None:
            return look()
        stamp = _controller_stamp()
        known = memo.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
        found = look()
        if keep is None or keep(found):
            memo[key] = (stamp, found)
        return found

    def _find_in(self, task: Task, sub: str, path: str) -> str | None:
        """The controller file ``path`` names for ``task`` (its role's, the playbook's…).
        The same for every host of a step: looked up once while no command ran on the
        controller (what one does may create or remove files) and no lookup ran."""
        key = (task.search_dirs if isinstance(task.search_dirs, tuple) else tuple(task.search_dirs), sub, path)
        return self._step_lookup(key, self._found, lambda: self._find_in_dirs(task, sub, path))

    def _find_in_dirs(self, task: Task, sub: str, path: str) -> str | None:
        return find_in_dirs(task.search_dirs, sub, path)

    def _find(self, path: str, task: Task, sub: str = "files") -> str:
        found = self._find_in(task, sub, path)
        if found is not None:
            return found
        return self._step_lookup((task.play.base_dir, path), self._found, lambda: self._found_elsewhere(path, task))

    def _found_elsewhere(self, path: str, task: Task) -> str:
        for base in [task.play.base_dir, *self.search_path]:
            candidate = os.path.join(base, path)
            if os.path.exists(candidate):
                return os.path.normpath(candidate)
        return os.path.join(task.play.base_dir, path)

    def _delegate(self, hr: HostRun, task: Task, variables: dict) -> HostRun | None:
        """The host a ``delegate_to``/``local_action`` task runs on (None: its own)."""
        name = self.templar.render(task.delegate_to, variables, where=task.where())
        if is_unknown(name):
            raise GfsError("delegate_to is known only after apply", **task.where(), field="delegate_to",
                           fix="delegate to a host known before the run")
        name = str(name)
        if name == hr.host.name:
            return None
        target = self.hosts.get(name) or self.extra_hosts.get(name)
        if target is None:
            if name in self.inventory.hosts:
                host = self.inventory.hosts[name]
            elif name in ("localhost", "127.0.0.1", "::1"):
                host = Host("localhost", vars={"ansible_connection": "local"})
            else:
                raise GfsError(f"delegate_to {name!r} is not a host of the inventory", **task.where(),
                               field="delegate_to", fix="add it to the inventory, or delegate to localhost")
            with self.once_lock:
                target = self.extra_hosts.setdefault(name, HostRun(host=host, info=HostInfo(name=name,
                                                                                            vars=host.vars)))
        self._ensure_connected(target)
        with target.conn_lock:
            if not target.facts_text:
                result = target.transport.read_many({"f": FACTS_PROBE})["f"]
                self._set_facts(target, result.stdout, real=True)
        return target

    # -- executing one step -----------------------------------------------------
    def _execute(self, step: Step) -> StepOutcome:
        task = self.tasks[step.task_id]
        hr = self.hosts[step.host]
        started = time.monotonic()
        outcome = StepOutcome(task=task, host=step.host, status="ok")
        if self._cleared:
            self._revive(task.play.index)
        throttle = self._throttle(task)
        once = self._once_lock(task) if task.run_once else None
        try:
            if throttle is not None:
                throttle.acquire()
            if once is not None:
                once.acquire()
            with hr.lock:
                if task.is_handler and not (set(task.handler_names) | {str(x) for x in task.listen}) & hr.notified:
                    outcome.status = "skipped"
                    outcome.error = "not notified"
                    return outcome
                decision, why = hr.flow.decide(task)
                if decision != flowmod.RUN:
                    outcome.status = "blocked" if decision == flowmod.BLOCK else "skipped"
                    outcome.error = why
                    return outcome
                if task.is_handler:
                    hr.notified -= set(task.handler_names) | {str(x) for x in task.listen}
                self._ensure_connected(hr)
                if not hr.facts_text or hr.stale and not batch.answers_for(self, hr, step):
                    # the first batched read: facts and every step's state (a step the batch
                    # planned and guarded reads nothing: the first one after it reads again)
                    self._refresh(hr, step)
                if task.run_once and self._once(hr, task, step, outcome):
                    return outcome
                self._dispatch(hr, task, step, outcome)
                if task.run_once:
                    self._once_done(hr, task, outcome)
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
            if once is not None:
                once.release()
            if throttle is not None:
                throttle.release()
            outcome.duration = time.monotonic() - started
        if outcome.status == "failed":
            self._failed(hr, task, outcome)
        return outcome

    def _failed(self, hr: HostRun, task: Task, outcome: StepOutcome) -> None:
        ignore = task.ignore_errors
        if hr.unreachable and task.ignore_unreachable:
            ignore = task.ignore_unreachable
        if isinstance(ignore, str) and "{{" in ignore:
            try:
                ignore = self.templar.render(ignore, self.variables(hr, task), where=task.where())
            except GfsError:
                ignore = False
        if _truth(ignore) is True:
            outcome.status = "ok"
            outcome.error = "(ignored) " + outcome.error
            outcome.ignored = True
            return
        if hr.flow.fail(task):
            outcome.status = "rescued"
            hr.failed_task = {"name": task.name, "action": task.module, "args": dict(task.args)
                              if isinstance(task.args, dict) else {}}
            hr.failed_result = {"failed": True, "msg": outcome.error}
            return
        hr.failed = True
        hr.failures.append(outcome)
        if task.any_errors_fatal is True or task.play.any_errors_fatal:
            for name in self.play_hosts.get(task.play.index, []):
                other = self.hosts.get(name)
                if other is not None and other is not hr:
                    other.flow.ended_plays.add(task.play.index)
                    other.failed = True
        if self.options.fail_fast:
            self.stop_all.set()
        self._batch_failures(task)

    def _batch_failures(self, task: Task) -> None:
        """Ansible stops the run when every host of a ``serial`` batch failed, or more
        than ``max_fail_percentage`` of them did."""
        from gfsdeploy.graph import batches

        play = task.play
        hosts = self.play_hosts.get(play.index, [])
        for batch in batches(play, hosts):
            if not batch:
                continue
            failed = [h for h in batch if h in self.hosts and self.hosts[h].failed]
            if not failed:
                continue
            pct = play.max_fail_percentage
            over = False
            if pct is not None:
                try:
                    over = len(failed) * 100.0 / len(batch) > float(pct)
                except (TypeError, ValueError):
                    over = False
            if (play.serial not in (None, 0, "0", "") and len(failed) == len(batch)) or over:
                self.stop_all.set()

    def _throttle(self, task: Task):
        if not task.throttle or task.throttle <= 0:
            return None
        with self.once_lock:
            sem = self.throttles.get(task.id)
            if sem is None:
                sem = self.throttles[task.id] = threading.Semaphore(task.throttle)
        return sem

    def _once_lock(self, task: Task):
        with self.once_lock:
            return self.throttles.setdefault(("once", task.id), threading.Lock())

    def _once(self, hr: HostRun, task: Task, step: Step, outcome: StepOutcome) -> bool:
        """``run_once``: a host after the first copies the first one's result."""
        if not _truth(self.templar.render(task.run_once, self.variables(hr, task))
                      if isinstance(task.run_once, str) else task.run_once):
            return False
        key = (task.id, self._batch_of(task, hr.host.name))
        done = self.once.get(key)
        if done is None:
            return False
        first, registered, facts = done
        if task.register and task.register in registered:
            hr.registered[task.register] = registered[task.register]
        hr.registered.update(facts)
        outcome.status = "skipped"
        outcome.error = f"run once (on {first})"
        return True

    def _once_done(self, hr: HostRun, task: Task, outcome: StepOutcome) -> None:
        key = (task.id, self._batch_of(task, hr.host.name))
        facts = {}
        if task.module in SET_FACT:
            facts = {k: hr.registered[k] for k in task.args if k != "cacheable" and k in hr.registered}
        registered = {task.register: hr.registered[task.register]} if task.register and \
            task.register in hr.registered else {}
        self.once.setdefault(key, (hr.host.name, registered, facts))

    def _batch_hosts(self, task: Task, host: str, live: list) -> list:
        """``ansible_play_batch``: the live hosts of this host's ``serial`` batch."""
        if task.play.serial in (None, 0, "0", "", []):
            return live
        from gfsdeploy.graph import batches

        for batch in batches(task.play, self.play_hosts.get(task.play.index, [])):
            if host in batch:
                return [h for h in batch if h in live]
        return live

    def _batch_of(self, task: Task, host: str) -> int:
        from gfsdeploy.graph import batches

        for i, batch in enumerate(batches(task.play, self.play_hosts.get(task.play.index, []))):
            if host in batch:
                return i
        return 0

    def _dispatch(self, hr: HostRun, task: Task, step: Step, outcome: StepOutcome) -> None:
        """Runner-level tasks (includes, meta, set_fact, include_vars, setup) or a module."""
        if task.include is not None:
            return self._run_include(hr, task, step, outcome)
        if task.module in META:
            return self._run_meta(hr, task, outcome)
        if task.module in SET_FACT | INCLUDE_VARS | SETUP:
            return self._run_vars_task(hr, task, step, outcome)
        return self._run_task(hr, task, step, outcome)

    # A task runs in three steps, per loop item: plan (read the state, decide the
    # changes), apply (make them, retrying while `until` says so), then settle the
    # whole task (register, status, notify). In a plan only the first runs, except
    # for tasks that only read (read-only modules, `check_mode: false`).
    @staticmethod
    def _runs_in_plan(task: Task) -> bool:
        """Ansible's check mode: only modules that cannot change anything, and tasks
        that say ``check_mode: false``, run while planning."""
        module = _module(task)
        return (module is not None and module.read_only) or _is_false(task.check_mode)

    def _run_task(self, hr: HostRun, task: Task, step: Step, outcome: StepOutcome) -> None:
        module = _module(task)
        planning = self.options.mode == "plan" or _truth(task.check_mode) is True
        runs = self._runs_in_plan(task) and not (planning and task.until is not None)
        results: list[dict] = []
        unknown = False  # what it registers is only known after apply
        pause = float(task.loop_control.get("pause") or 0) if task.loop_control else 0.0
        if not planning and not task.delegate_to and not pause:
            # changes of the host's following independent steps join this round trip
            # (a delegated step never joins a batch)
            batch.run_ahead(self, hr, step)
        elif planning and hr.planned and not runs:  # (a plan pass: the read may have planned it)
            planned = self._planned_ahead(hr, task)
            if planned is not None:
                return self._run_planned(hr, task, outcome, planned)
        # rendered by the batched read or the batch already, unless something it used changed since
        variables, items = self._step_items(hr, task, module, keep=False)
        hr.rendered.pop(task.id, None)  # the step runs now: its rendering is not kept
        delegate = self._delegate(hr, task, variables) if task.delegate_to else None
        target = delegate or hr
        for index, v, status, args, ctx in items:
            if status == "unknown":
                outcome.changes.append(Change(CHANGE, f"{task.module}: {task.label}", args))
                results.append(self._with_item(task, v, {"changed": True}))
                unknown = True
                continue
            if status == "skipped":
                results.append(self._with_item(task, v, self._skipped(task, v)))
                continue
            if index and pause and not planning:
                time.sleep(pause)
            ahead = None if planning or delegate is not None else batch.take(self, hr, task.id, index)
            if ahead is not None:  # planned with the batch; its apply gets the batch's result
                state, changes, ctx = ahead.state, ahead.changes, ahead.replay(ctx)
            else:
                state, changes = self._plan_item(hr, target, task, step, index, module, args, ctx, v, delegate)
            if planning and not runs:  # what it would do; a command's result is only known after apply
                result, later = self._plan_result(task, v, changes, outcome,
                                                  lambda: module.unchanged(args, state).as_register())
                results.append(result)
                unknown |= later
                continue
            outcome.changes.extend(changes)
            result = self._with_item(task, v, self._apply_item(target, task, module, args, state, changes, ctx, v))
            self._absorb_facts(hr, task, result, delegate)
            outcome.reads.extend(ctx.reads)
            if result.get("msg") and module.read_only and _truth(task.no_log) is not True and not result.get("failed"):
                outcome.messages.append(result["msg"])
            results.append(result)
            if result.get("failed"):
                outcome.failed_changed = any(r.get("changed") for r in results)
                self._register(hr, task, results)
                raise ModuleError(NO_LOG_MESSAGE if _truth(task.no_log) is True else result.get("msg") or "failed",
                                  host=hr.host.name, task=task.label)
            if self._break(task, v, results):
                break
        self._settle(hr, task, outcome, results, variables, planning=planning and not runs,
                     unknown=unknown and self.options.mode == "plan")

    def _plan_item(self, hr: HostRun, target: HostRun, task: Task, step: Step, index: int, module, args: dict,
                   ctx: TaskContext, variables: dict, delegate: HostRun | None) -> tuple:
        """Read this item's state (from the batch; a delegated task from its delegate)
        and decide its changes."""
        if delegate is not None:
            facts = self._read_now(delegate, module, args, task, variables)
        else:
            facts = self._facts_for(hr, task, step, index, args, module, variables, key=getattr(ctx, "args_key", None))
        state = module.read(args, facts, ctx)
        changes = _shown(task, module.plan(args, state, target.info))
        if self._planned:
            _share_diffs(self._planned.get(step), changes)
        return state, changes

    def _plan_result(self, task: Task, item_vars: dict, changes: list[Change], outcome: StepOutcome,
                     registered) -> tuple[dict, bool]:
        """One item of a plan that does not run it (it runs at apply): its changes listed
        (``changed_when: false``: not counted as changes), what it would register —
        ``registered()``, asked only when it changes nothing and the task registers (a
        module's unchanged result may be costly: a 1,000-line /etc/hosts block edited
        again) — and whether that is known only after apply."""
        if _is_false(task.changed_when):
            changes = _not_counted(changes)
        outcome.changes.extend(changes)
        real = [c for c in changes if c.action not in (WARN, READ)]
        result = {"changed": True} if real else registered() if task.register else {"changed": False}
        later = bool(real) or task.until is not None or any(c.action == READ for c in changes)
        return self._with_item(task, item_vars, result), later

    def _run_planned(self, hr: HostRun, task: Task, outcome: StepOutcome, planned: _Planned) -> None:
        """A plan pass's step planned ahead (see _plan_ahead): what _run_task does with
        each item's plan when planning, without planning it again."""
        hr.rendered.pop(task.id, None)
        results: list[dict] = []
        unknown = False
        for _, _, item_vars, changes, registered in planned.items:
            result, later = self._plan_result(task, item_vars, _shown(task, changes), outcome,
                                              lambda registered=registered: registered)
            results.append(result)
            unknown |= later
        self._settle(hr, task, outcome, results, planned.rendered.variables, planning=True,
                     unknown=unknown and self.options.mode == "plan")

    def _apply_item(self, target: HostRun, task: Task, module, args: dict, state, changes: list[Change],
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
            judged["attempts"] = attempt + 1
            until_vars = self._overlay(variables, {task.register: judged} if task.register else {})
            if self._true(task.until, until_vars, task):
                break
            if attempt + 1 < attempts:
                self.reporter.progress(target.host.name, task, f"retrying ({attempt + 1}/{attempts - 1})")
                if _sleep_unless_stopped(task.delay):
                    raise Interrupted("interrupted while waiting to retry", host=target.host.name, task=task.label)
                if not getattr(module, "reread_after_change", True):
                    continue  # its read is a run of its own: run it again, as Ansible retries
                state = module.read(args, self._read_now(target, module, args, task, variables), ctx)
                changes = module.plan(args, state, target.info)
                if not [c for c in changes if c.action != WARN] and not module.read_only:
                    return module.unchanged(args, state).as_register()
        else:
            judged["failed"] = True
            judged["msg"] = (judged.get("msg") or "") + f" (until condition not met after {attempts} attempts)"
        if judged.get("changed"):
            with target.conn_lock:
                self._invalidate(target, module.resources(args))  # what later steps read may be outdated
        return judged

    def _settle(self, hr: HostRun, task: Task, outcome: StepOutcome, results: list[dict], variables: dict, *,
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
            self._notify(hr, task, variables)

    def _notify(self, hr: HostRun, task: Task, variables: dict) -> None:
        for name in task.notify:
            hr.notified.add(str(self.templar.render(name, variables)) if "{{" in str(name) else str(name))

    def _break(self, task: Task, v: dict, results: list) -> bool:
        condition = task.loop_control.get("break_when") if task.loop_control else None
        if not condition:
            return False
        scoped = {**v, **({task.register: results[-1]} if task.register else {})}
        return self._true(condition, scoped, task)

    def _with_item(self, task: Task, v: dict, result: dict) -> dict:
        if task.loop is None:
            return result
        result = dict(result)
        result[task.loop_var] = v.get(task.loop_var)
        result["ansible_loop_var"] = task.loop_var
        if task.loop_control.get("index_var"):
            result[task.loop_control["index_var"]] = v.get(task.loop_control["index_var"])
            result["ansible_index_var"] = task.loop_control["index_var"]
        return result

    def _absorb_facts(self, hr: HostRun, task: Task, result: dict, delegate: HostRun | None = None) -> None:
        """A module result carrying ``ansible_facts`` updates the host's facts (the
        delegate's with ``delegate_facts: true``)."""
        facts = result.get("ansible_facts")
        if isinstance(facts, dict) and facts:
            owner = delegate if delegate is not None and task.delegate_facts else hr
            owner.fact_vars.update(facts)
            owner.facts_parsed = None  # no longer what the facts text says
            owner.touched()

    def _judge(self, task: Task, result: TaskResult, variables: dict) -> dict:
        value = result.as_register()
        if result.rc is not None and result.rc != 0 and task.failed_when is None:
            value["failed"] = True
            if not value.get("msg"):
                value["msg"] = (f"command exited {result.rc}\n  stderr: {result.stderr.strip()[-2000:] or '(empty)'}")
        scoped = self._overlay(variables, {**({task.register: value} if task.register else {}),
                                           "rc": value.get("rc"), "stdout": value.get("stdout"),
                                           "stderr": value.get("stderr")})
        if task.changed_when is not None:
            value["changed"] = self._true(task.changed_when, scoped, task)
        if task.failed_when is not None:
            value["failed"] = self._true(task.failed_when, scoped, task)
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
            # Ansible's loop result: flags from the items, and a message saying how it went
            skipped = bool(results) and all(r.get("skipped") for r in results)
            failed = any(r.get("failed") for r in results)
            msg = "All items skipped" if skipped else "One or more items failed" if failed else "All items completed"
            hr.registered[task.register] = unsafe({"results": results, "msg": msg,
                                                   "changed": any(r.get("changed") for r in results),
                                                   **({"failed": True} if failed else {}), "skipped": skipped})
        else:
            hr.registered[task.register] = unsafe(results[0] if results else
                                                  {"skipped": True, "changed": False,
                                                   "skip_reason": "Conditional result was False"})

    def _skipped(self, task: Task, variables: dict) -> dict:
        """What a task skipped by its ``when`` registers: Ansible names the first
        condition that was false."""
        out = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
        for condition in task.when or ():
            try:
                if not self._true([condition], variables, task):
                    out["false_condition"] = condition if isinstance(condition, bool) else str(condition)
                    break
            except GfsError:
                break
        return out

    # -- runner-level tasks ------------------------------------------------------------
    def _run_vars_task(self, hr: HostRun, task: Task, step: Step, outcome: StepOutcome) -> None:
        """set_fact, include_vars, setup/gather_facts: they only set variables (and run in plan)."""
        variables = self.variables(hr, task)
        module = _module(task)
        results = []
        for index, v, status, args, ctx in self._each_item(hr, task, module, variables):
            if status == "skipped":
                results.append(self._with_item(task, v, self._skipped(task, v)))
                continue
            if task.module in SET_FACT:
                value = self._set_fact(hr, task, v)
            elif task.module in INCLUDE_VARS:
                if status == "unknown":
                    raise GfsError(f"include_vars: {args}", **task.where(),
                                   fix="name the file with variables known before the run")
                value = self._include_vars(hr, task, args)
            else:
                value = self._setup(hr, task, args if status == "ready" else {})
            results.append(self._with_item(task, v, value))
        self._register(hr, task, results)
        outcome.status = "skipped" if results and all(r.get("skipped") for r in results) else "ok"

    def _set_fact(self, hr: HostRun, task: Task, v: dict) -> dict:
        facts = {}
        cacheable = False
        for key, raw in task.args.items():
            if key == "cacheable":
                cacheable = bool(_truth(self.templar.render(raw, v, where=task.where())))
                continue
            if _references_unknown_value(self.templar, raw, v):
                facts[key] = Unknown()
                continue
            facts[key] = self.templar.render(raw, v, where=task.where())
        hr.registered.update(facts)
        if cacheable:
            hr.cacheable.update(facts)
        return {"changed": False, "failed": False, "ansible_facts": facts, "skipped": False}

    def _include_vars(self, hr: HostRun, task: Task, args: dict) -> dict:
        files = []
        source = args.get("file") or args.get("_raw_params")
        if args.get("dir"):
            base = self._find(str(args["dir"]), task, "vars")
            if not os.path.isdir(base):
                raise GfsError(f"include_vars: directory {args['dir']!r} not found", **task.where(), field="dir",
                               fix="check the path (searched the role's vars/ and the playbook's directory)")
            exts = args.get("extensions") or ["yaml", "yml", "json"]
            ignore = set(args.get("ignore_files") or [])
            depth = int(args.get("depth") or 0)
            for root, dirs, names in os.walk(base):
                rel_depth = os.path.relpath(root, base).count(os.sep) + (0 if root == base else 1)
                if depth and rel_depth >= depth:
                    dirs[:] = []
                for name in sorted(names):
                    if name in ignore or name.rsplit(".", 1)[-1] not in exts:
                        continue
                    if args.get("files_matching") and not __import__("re").search(args["files_matching"], name):
                        continue
                    files.append(os.path.join(root, name))
                dirs.sort()
        elif source:
            path = self._find(str(source), task, "vars")
            if not os.path.isfile(path):
                raise GfsError(f"include_vars: file {source!r} not found", **task.where(),
                               fix="check the path (searched the role's vars/, the task file's directory, "
                                   "and the playbook's directory)")
            files.append(path)
        else:
            raise GfsError("include_vars needs a file or dir", **task.where(), fix="write `include_vars: file.yml`")
        data: dict = {}
        for path in files:
            data.update(load_vars(path))
        if args.get("name"):
            hr.included_vars[str(args["name"])] = data
        else:
            hr.included_vars.update(data)
        return {"changed": False, "failed": False, "ansible_facts": data, "ansible_included_var_files": files,
                "skipped": False}

    def _setup(self, hr: HostRun, task: Task, args: dict) -> dict:
        result = hr.transport.read_many({"f": FACTS_PROBE})["f"]
        self._set_facts(hr, result.stdout, real=True)
        hr.setup_ran = True
        facts = dict(hr.fact_vars)
        patterns = args.get("filter") if isinstance(args, dict) else None
        if patterns:
            import fnmatch

            patterns = patterns if isinstance(patterns, list) else [patterns]
            facts = {k: v for k, v in facts.items()
                     if any(fnmatch.fnmatch("ansible_" + k, p) or fnmatch.fnmatch(k, p) for p in patterns)}
        return {"changed": False, "failed": False, "ansible_facts": hostfacts.inject(facts), "skipped": False}

    def _run_meta(self, hr: HostRun, task: Task, outcome: StepOutcome) -> None:
        variables = self.variables(hr, task)
        if task.when and not self._true(task.when, variables, task):
            outcome.status = "skipped"
            return
        action = _meta_action(task.args)
        play = task.play.index
        if action == "end_host":
            hr.flow.ended_plays.add(play)
        elif action in ("end_play", "end_batch"):
            batch = self._batch_of(task, hr.host.name)
            for name in self.play_hosts.get(play, []):
                other = self.hosts.get(name)
                if other is not None and (action == "end_play" or self._batch_of(task, name) == batch):
                    other.flow.ended_plays.add(play)
        elif action == "end_role" and task.role is not None:
            hr.flow.ended_roles.add((play, task.role.path))
        elif action == "clear_host_errors":  # (run once, for every host of the play: playbook.META_ONCE)
            self._clear_errors(play)
        elif action == "clear_facts":
            for name in self.play_hosts.get(play, []):
                other = self.hosts.get(name)
                if other is not None:
                    self.gathers.pop(name, None)  # (before touched(): hostvars are cached by version)
                    other.fact_vars = {}
                    other.facts_parsed = None
                    other.setup_ran = False
                    other.touched()
        elif action == "reset_connection":
            pass  # one connection per host per run; nothing is cached on it between tasks
        outcome.status = "ok"

    def _clear_errors(self, play: int) -> None:
        """``meta: clear_host_errors``, as Ansible: the failures of the play's hosts are
        forgiven — the run's exit status no longer counts them (the recap still does), and
        the hosts run again from the next play. In this play a failed host stays stopped
        and out of ``ansible_play_hosts`` (Ansible's play iterator has finished with it).
        An unreachable host is not forgiven (Ansible connects to it again): apply plans every
        host before changing any, so the plan must reach it (``unreachable_kept``: the plan's
        error says so)."""
        with self.once_lock:
            for name in self.play_hosts.get(play, []):
                other = self.hosts.get(name)
                if other is not None and other.unreachable:
                    self.unreachable_kept.add(name)
                if other is not None and other.failed and not other.unreachable:
                    for failure in other.failures:
                        failure.cleared = True
                    other.failures = []
                    self._cleared[name] = play

    def _revive(self, play: int | None = None) -> None:
        """Hosts whose failure was cleared in a play before ``play`` (None: all of them, the
        run being over) are failed no more."""
        with self.once_lock:
            for name, through in list(self._cleared.items()):
                if play is None or play > through:
                    hr = self.hosts[name]
                    hr.failed = False
                    hr.flow.failed = False
                    del self._cleared[name]

    def _run_include(self, hr: HostRun, task: Task, step: Step, outcome: StepOutcome) -> None:
        """include_tasks/include_role: decide once per item; a known body was placed in
        the graph when loading (gated by this decision), otherwise load and expand it now."""
        include = task.include
        variables = self.variables(hr, task)
        try:
            items = self._items(task, variables)
        except LookupError:
            items = None
        if items is None:
            hr.flow.included[task.id] = None
            outcome.changes.append(Change(CHANGE, f"{task.module} {include.target}",
                                          "its loop is known only after apply: the included tasks too"))
            outcome.status = "pending"
            return
        expansion: list[Task] = []
        included = False
        for index, item_vars in enumerate(items):
            v = self._overlay(variables, item_vars)
            if task.when:
                if _references_unknown(self.templar, task.when, v):
                    hr.flow.included[task.id] = None
                    outcome.changes.append(Change(CHANGE, f"{task.module} {include.target}",
                                                  "whether it is included is known only after apply"))
                    outcome.status = "pending"
                    return
                if not self._true(task.when, v, task):
                    continue
            included = True
            if include.static:
                continue
            target = self.templar.render(include.target, v, where=task.where())
            if is_unknown(target):
                outcome.changes.append(Change(CHANGE, f"{task.module} {include.target}",
                                              "the file is known only after apply: the included tasks too"))
                outcome.status = "pending"
                return
            params = dict(item_vars)
            options = {k: self.templar.render(o, v, where=task.where()) for k, o in include.options.items()
                       if k != "apply"}
            if options != {k: o for k, o in include.options.items() if k != "apply"}:
                include_copy = dataclasses.replace(include, options={**include.options, **options})
                task_copy = dataclasses.replace(task, include=include_copy)
            else:
                task_copy = task
            with self._expand_lock:
                body, _ = self.playbook.loader.expand(task_copy, str(target), f"{task.id}@{hr.host.name}/{index}",
                                                      params)
            expansion += [t for t in body if selected(t, self.options.tags, self.options.skip_tags,
                                                      {**self.all_tasks, **{b.id: b for b in body}})]
        hr.flow.included[task.id] = included
        outcome.status = "ok" if included else "skipped"
        outcome.expansion = expansion

    # -- reads ------------------------------------------------------------------------
    def _facts_for(self, hr: HostRun, task: Task, step: Step, index: int, args: dict, module,
                   variables: dict | None = None, *, key: str | None = None) -> dict:
        """What this item's probes answered in the host's batched read — if they were
        made from the same arguments and host facts (a cold facts cache renders probes
        before the host's OS is known: those steps read again). ``key``: the arguments'
        ``_args_key`` if the rendering that gave them computed it."""
        key = key or _args_key(args)

        def valid(cached) -> bool:
            return bool(cached) and cached[0] == key and self._same_probes(module, args, cached, hr.info)

        if self.options.mode != "plan" and hr.changed and not getattr(module, "reread_after_change", True):
            # its read is a run of its own (a check-mode run): once the host changed, apply
            # runs it for real instead of reading first; what plan read still serves if valid
            cached = hr.facts.get((task.id, index))
            return cached[1] if valid(cached) else {}
        if hr.stale:
            self._refresh(hr, step)
        cached = hr.facts.get((task.id, index))
        if valid(cached):
            return cached[1]
        if (task.id, index) not in hr.attempted:
            # not renderable at the last batch (it uses a result registered since), or
            # what it read was invalidated: batch it with everything else readable now
            self._refresh(hr, step)
            cached = hr.facts.get((task.id, index))
            if valid(cached):
                return cached[1]
        return self._read_now(hr, module, args, task, variables)

    @staticmethod
    def _same_probes(module, args: dict, cached: tuple, info: HostInfo) -> bool:
        """Whether the probes read with the host facts known then are the ones the facts
        known now give (the first read of a cold facts cache runs before the OS is known)."""
        then = cached[3] if len(cached) > 3 else None
        if then is None or then is info or then == info or not getattr(module, "reread_after_change", True):
            return True  # (a protocol module's probes do not use host facts)
        try:
            return module.probes(args, then) == module.probes(args, info)
        except Exception:  # noqa: BLE001 - it reads again, and reports its own error then
            return False

    def _read_now(self, hr: HostRun, module, args, task: Task | None = None, variables: dict | None = None) -> dict:
        probes = module.probes(args, hr.info)
        if not probes:
            return {}
        env = self._environment(task, variables) if task is not None and variables is not None else {}
        transport = self._view(hr, task, variables) if task is not None else hr.transport
        return transport.read_many({k: _with_env(env, v) for k, v in probes.items()})

    # -- the whole run ------------------------------------------------------------
    def run(self, mode: str | None = None) -> list[StepOutcome]:
        """Run every step once in ``mode`` (plan or apply). Connections and what was
        read stay open for a following run (apply = a plan pass, then an apply pass)."""
        if mode:
            self.options.mode = mode
        # an apply pass's changes share their diffs' text with the plan pass's (_share_diffs)
        self._planned = self.outcomes if self.options.mode == "apply" else {}
        self.outcomes = {}
        self.once = {}
        self._cleared = {}
        self.stop_all.clear()
        for hr in self.hosts.values():
            hr.registered, hr.notified, hr.failed, hr.changed = {}, set(), hr.unreachable, False
            hr.pending = False
            hr.included_vars, hr.flow, hr.setup_ran = {}, flowmod.HostFlow(failed=hr.unreachable), False
            hr.flow.force_handlers = self.options.force_handlers
            hr.cacheable, hr.failed_task, hr.failed_result, hr.failures = {}, None, None, []
            hr.rendered = {}
            hr.planned = {}
            hr.counts = dict(_NO_COUNTS)
        self.graph = graph = self.base_graph.copy()
        self.steps_by_host = {}
        sequence = topological_sort(graph)
        order = {n: i for i, n in enumerate(sequence)}
        inserted = False  # an include added steps: the graph's order must be computed again
        for step in sequence:  # (a Barrier is no host's step)
            if isinstance(step, Step):
                self.steps_by_host.setdefault(step.host, []).append(step)
        waiting = {n: graph.in_degree(n) for n in graph.nodes}
        ready = [n for n, d in waiting.items() if d == 0]

        def skip(step):
            if self.stop_all.is_set() or self._blocked(step):
                return StepOutcome(self.tasks[step.task_id], step.host, "blocked")
            return None

        def settle(step, outcome):
            nonlocal inserted
            if outcome.expansion:
                self._insert(step, outcome.expansion, waiting, order)
                inserted = True
            self._finish(step, outcome)
            return self._release(step, waiting)

        # ready steps in play order (a heap: sorting them at every step grew faster than
        # the work); each worker settles its step and takes the next (gfsdeploy/scheduler.py)
        def follow(step, outcome):
            # the host's next step waits for this one alone: settled here, without the
            # scheduler's lock, and run next by the same worker
            if outcome.expansion:
                return None
            nxt = graph.sole_successor(step)
            if type(nxt) is not Step:
                return None
            self._finish(step, outcome)
            waiting[nxt] = 0
            return nxt

        scheduler = StepScheduler(self.options.forks, execute=self._execute, settle=settle, skip=skip,
                                  order=order.__getitem__, follow=follow)
        try:
            scheduler.run(ready)
        except KeyboardInterrupt:
            # stop means stop: nothing new starts, what waits is woken, connections
            # are cut (a script already on a host finishes or dies on its own; files are
            # written to a temp file and renamed, so they are old or new, never partial)
            request_stop()
            self.stop_all.set()
            self.abort()
            raise
        if self._cleared:  # (no later play: cleared all the same, for the exit status)
            self._revive()
        # (the same graph gives the same order: sorted once, not again at the end)
        return [self.outcomes[s] for s in (topological_sort(graph) if inserted else sequence)
                if s in self.outcomes]

    def abort(self) -> None:
        """Cut every connection at once (blocked reads in worker threads return)."""
        self.close()

    def _insert(self, step: Step, tasks: list[Task], waiting: dict, order: dict) -> None:
        """Put an include's body right after it on its host: the include's successors
        now wait for the body's last step."""
        graph = self.graph
        successors = list(graph.out_edges(step, data=True))
        previous = step
        new_steps = []
        for i, task in enumerate(tasks):
            self.tasks[task.id] = task
            new = Step(task.id, step.host)
            graph.add_node(new, task=task.id, host=step.host, handler=False)
            graph.add_edge(previous, new, hard=False, why="order")
            waiting[new] = 1
            order[new] = order[step] + (i + 1) / (len(tasks) + 1)
            new_steps.append(new)
            previous = new
        for _, succ, data in successors:
            graph.add_edge(previous, succ, **data)
            waiting[succ] += 1
        host_steps = self.steps_by_host.setdefault(step.host, [])
        at = host_steps.index(step) + 1 if step in host_steps else len(host_steps)
        host_steps[at:at] = new_steps

    def close(self) -> None:
        transports = [hr.transport for hr in [*self.hosts.values(), *self.extra_hosts.values()] if hr.transport]
        transports += [t for hr in self.hosts.values() for t in hr.views.values()]
        if self.connections is not None:
            transports += self.connections.all()
        for transport in {id(t): t for t in transports}.values():
            try:
                transport.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def _blocked(self, step: Step) -> bool:
        """Stopped by an explicit ``needs:`` that failed (the host's own state is the flow's)."""
        for pred, edge in self.graph.in_edges_of(step):
            if edge.get("hard"):
                outcome = self.outcomes.get(pred)
                if outcome and outcome.status in ("failed", "blocked") and not self.tasks[pred.task_id].is_handler:
                    return True
        return False

    def _release(self, step: Step, waiting: dict) -> list[Step]:
        out = []
        for succ in self.graph.successors(step):
            waiting[succ] -= 1
            if waiting[succ] == 0:
                if isinstance(succ, Barrier):  # the last step it waited for: what waits on it is free
                    out += self._release(succ, waiting)
                else:
                    out.append(succ)
        return out

    def _finish(self, step: Step, outcome: StepOutcome) -> None:
        self.outcomes[step] = outcome
        for change in outcome.changes:
            # what plan, recap, --json and the fingerprint show stays; the script that
            # made (or would make) the change is done with (a written file's content)
            change.script = ""
        hr = self.hosts[step.host]
        if outcome.status in ("pending", "changed"):
            hr.pending = True
        key = {"pending": "changed", "blocked": "skipped"}.get(outcome.status, outcome.status)
        if key == "failed" and hr.unreachable:
            key = "unreachable"  # Ansible's count: a host it cannot reach is unreachable, not failed
        if not (outcome.status == "skipped" and outcome.error.startswith(QUIET)) and \
                not (outcome.status == "blocked" and hr.failed) and \
                not (outcome.task.module in META and outcome.status != "failed"):
            # (a failed host's later steps and meta tasks, run or skipped, are not counted: Ansible's recap)
            hr.counts[key] = hr.counts.get(key, 0) + 1
            if key == "changed":  # Ansible's ok= counts every task that did not fail, changed ones too
                hr.counts["ok"] += 1
        if outcome.ignored:  # Ansible counts an ignored failure as ok and ignored (and changed if it was)
            hr.counts["ignored"] += 1
            if outcome.failed_changed:
                hr.counts["changed"] += 1
        self.reporter.step_done(outcome, self.options.mode)

    # -- reporting helpers -----------------------------------------------------------
    def round_trips(self) -> dict[str, int]:
        out = {name: (hr.transport.round_trips if hr.transport else 0) for name, hr in sorted(self.hosts.items())}
        if self.connections is not None:
            out = {name: 0 for name in out}
            for transport in self.connections.all():
                if transport.host in out:
                    out[transport.host] += transport.round_trips
        else:
            for name, hr in self.hosts.items():
                out[name] += sum(t.round_trips for t in hr.views.values())
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


#: `with_<name>` loops over data only (the others read files or run commands on the controller)
_DATA_LOOPS = frozenset({None, "items", "list", "indexed_items", "dict", "together", "nested", "cartesian",
                         "subelements", "sequence", "flattened"})


#: a template that includes, imports or extends other files
_TEMPLATE_USES_FILES = re.compile(r"\{%[-+]?\s*(include|import|extends|from)\b")


def _share_diffs(planned: StepOutcome | None, changes: list[Change]) -> None:
    """A change of the apply pass whose diff equals the plan pass's keeps the plan's text:
    one copy of each diff per run (the plan's stay for its output; one host's /etc/hosts
    block listing 1,000 hosts is a ~22 KB diff)."""
    if planned is None:
        return
    for change in changes:
        if change.diff:
            for seen in planned.changes:
                if seen.resource == change.resource and seen.diff == change.diff:
                    change.diff = seen.diff
                    break


def _controller_stamp() -> tuple:
    """Changes whenever a command (a local connection's, a lookup) may have changed the
    controller's files: what was looked up or rendered from them before is not reused."""
    return Transport.local_commands, LOOKUPS_STARTED[0]


def _stat(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _prepare_reusable(module) -> bool:
    """Whether a module's ``prepare`` depends only on its args, its variables and the
    local files it reads through ``ctx.find_file``/``ctx.render_file`` — not on the host's
    facts, nor on anything else — so its result can be reused while those are unchanged."""
    flag = getattr(module, "prepare_reusable", None)
    if flag is not None:
        return bool(flag)
    return getattr(type(module).prepare, "__qualname__", "") == "Module.prepare"


def _sleep_unless_stopped(seconds: float) -> bool:
    """Sleep; True (at once) if the user stopped the run."""
    from gfsdeploy.transport.base import _STOP

    return _STOP.wait(seconds)


def _shown(task: Task, changes: list[Change]) -> list[Change]:
    """``changes`` as the task shows them: `diff: false` lists a change without its diff,
    `no_log` hides its text."""
    if _truth(task.diff) is False:
        for c in changes:
            c.diff = ""
    if _truth(task.no_log) is True:
        for c in changes:
            c.sensitive = True
    return changes


def _not_counted(changes: list[Change]) -> list[Change]:
    """A plan's changes of a task that will run at apply but says it changes nothing
    (``changed_when: false``): not changes (a delete is not a read: the line says what
    happens to it)."""
    return [c if c.action == WARN else
            Change(READ, f"{c.resource}  (not run by plan; runs at apply, counted as no change: "
                         "changed_when: false)", c.diff, c.script, c.sensitive, c.data)
            for c in changes]


def _vars_shape(task: Task) -> tuple:
    """What besides its host decides a task's variables (Runner.variables): its play, role
    chain, blocks' vars, own vars, include params, role, and whether it is in a rescue."""
    shape = task.__dict__.get("_vars_shape")
    if shape is None:
        shape = task.__dict__["_vars_shape"] = (
            task.play.index, tuple(map(id, task.role_chain)), tuple(map(id, task.block_vars)),
            id(task.vars) if task.vars else 0, id(task.include_params) if task.include_params else 0,
            id(task.role) if task.role is not None else 0,
            any(section == "rescue" for _, section, _ in task.frames))
    return shape


def _is_false(value) -> bool:
    """``check_mode: false`` (or no/off/"false"), as YAML and Ansible read it."""
    if isinstance(value, bool):
        return value is False
    return isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0")


def _module(task: Task):
    """The task's module: native, else an Ansible module from its role's/playbook's library/."""
    try:
        collections = getattr(task, "collections", None)
        return modules.get(task.module, task.library_dirs, collections) if collections else \
            modules.get(task.module, task.library_dirs)
    except TypeError:  # a registry without library lookup
        return modules.get(task.module)


def _truth(value):
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("yes", "true", "on", "1", "y"):
            return True
        if low in ("no", "false", "off", "0", "n", ""):
            return False
    return value


def _templated(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


#: the variables a task's view (its become settings) is made from (transport.resolve_become)
_VIEW_VARS = tuple(dict.fromkeys(("ansible_become", "ansible_become_user", "ansible_become_method",
                                  "ansible_become_flags", *(n for names in PASSWORD_VARS.values() for n in names))))

#: what each item's TaskContext has of its own (Runner._context sets them for every item)
_ITEM_OWN = frozenset(("transport", "_render_file", "_find_file", "variables", "reads", "host_pending",
                       "environment", "local_files"))


def _with_env(env: dict, script: str) -> str:
    if not env:
        return script
    from gfsdeploy.modules.base import q

    return "".join(f"export {k}={q('' if v is None else v)}\n" for k, v in env.items()) + script


def _ansible_version() -> dict:
    return {"full": "2.19.0", "major": 2, "minor": 19, "revision": 0, "string": "2.19.0 (gfsdeploy)"}


#: the most (module, arguments, answers) kept as planned unchanged (Runner._plan_ahead)
_UNCHANGED_MAX = 4096


def _answers_key(answers: dict) -> tuple:
    """A read's answers as a key (equal answers, equal key)."""
    return tuple((name, r.rc, r.stdout, r.stderr) for name, r in sorted(answers.items()))


#: what a module alike on every host may plan with (Module.plans_alike): the distribution
#: and the host's system facts, not its name nor its variables
_distribution = operator.attrgetter(*(f.name for f in dataclasses.fields(HostInfo) if f.name not in ("name", "vars")))


class _ArgsKey:
    """What a read was made from, as the rendering that made it keeps its arguments (its
    own copy, changed by nobody): equal to the same object at once, to another rendering's
    by their digests (_args_key), made only then — a plan whose steps are planned from the
    read their rendering made never digests its arguments."""

    __slots__ = ("args", "_digest")

    def __init__(self, args):
        self.args, self._digest = args, None

    def digest(self) -> str:
        # (workers compare one key at once: the arguments are read before the digest, and
        # dropped only after it is set — a worker never digests the dropped None)
        args = self.args
        found = self._digest
        if found is None:
            found = self._digest = _args_key(args)
            self.args = None  # (the digest is what is compared from now on)
        return found

    def __eq__(self, other):
        if self is other:
            return True
        if isinstance(other, _ArgsKey):
            return self.digest() == other.digest()
        if isinstance(other, str):
            return self.digest() == other
        return NotImplemented

    __hash__ = None  # (compared, never a dict key)


#: an argument longer than this is in _args_key by its own digest, made once per text
_LONG = 2048
_long_digests: dict = {}   # a long argument's text -> ("sha256", its digest)


def _args_key(args) -> str:
    """What a step's read was made from, compared for equality only, in this process: a
    digest (the arguments themselves hold whole rendered files, kept per step and host)
    of their repr — a third of JSON's cost; the same rendering gives the same order, and
    a difference only means reading again. A long text (a block of a thousand hosts'
    lines, the same object on every host) counts by its digest, made once."""
    if type(args) is dict and any(type(v) is str and len(v) > _LONG for v in args.values()):
        args = {k: _long_digest(v) if type(v) is str and len(v) > _LONG else v for k, v in args.items()}
    try:
        text = repr(args)
    except Exception:  # noqa: BLE001 - (a recursive structure): what JSON makes of it
        text = json.dumps(args, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _long_digest(text: str) -> tuple:
    """``("sha256", digest)`` of a long text (a tuple: no argument from YAML is one)."""
    found = _long_digests.get(text)  # (the same object: its hash is kept, found at once)
    if found is None:
        if len(_long_digests) >= 256:
            _long_digests.clear()
        found = _long_digests[text] = ("sha256", hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    return found


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


def _references_unknown_value(templar: Templar, value, variables: dict) -> bool:
    """Whether a value (templates inside strings, mappings, lists) uses a variable known only after apply."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return False
        from jinja2 import meta

        try:
            names = meta.find_undeclared_variables(templar.env.parse(value))
        except Exception:  # noqa: BLE001 - syntax errors surface when rendered
            return False
        return any(is_unknown(variables.get(n)) for n in names)
    if isinstance(value, dict):
        return any(_references_unknown_value(templar, v, variables) for v in value.values())
    if isinstance(value, list):
        return any(_references_unknown_value(templar, v, variables) for v in value)
    return False


def _has_unknown(variables: dict) -> bool:
    return any(isinstance(v, Unknown) or (isinstance(v, dict) and any(isinstance(x, Unknown) for x in v.values()))
               for v in variables.values())


def _sensitive_names(inventory: Inventory, playbook: Playbook) -> set:
    names = set()
    for host in inventory.hosts.values():
        names.update(host.vars.get("sensitive_vars") or [])
    for play in playbook.plays:
        names.update(play.vars.get("sensitive_vars") or [])
    return names
