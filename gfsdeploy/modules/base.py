"""The module protocol: read state, plan with a pure function, apply only the change.

A module is a class with three steps, like pyinfra's operations and Ansible's
``lineinfile``:

1. ``probes(args, host)`` — read-only shell snippets whose output is the state.
   The runner batches the probes of many tasks into one round trip per host.
   (``read()`` may add non-shell reads, e.g. a REST API through a tunnel.)
2. ``plan(args, state, host)`` — pure: arguments + state → a list of
   :class:`Change`. An empty list means "nothing to do". This is what the
   table-driven tests exercise, with no SSH at all.
3. ``apply(args, changes, ctx)`` — runs the changes. The default runs each
   change's ``script`` in one round trip; modules that must wait or talk HTTP
   override it.

Modules never import the runner; the runner never names a module.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.transport.base import Result, Transport
from gfsdeploy.validate import CHECKS

ADD, CHANGE, DESTROY, WARN = "+", "~", "-", "!"
#: runs at apply but changes nothing (a wait, a command with ``changed_when: false``):
#: shown in the plan, not counted (Terraform's symbol for a read during apply)
READ = "<="
#: delete and create again (Terraform's ``-/+``): counted as one add and one destroy;
#: the change's diff names the field that forces it
REPLACE = "-/+"
UNKNOWN = "(known after apply)"


@dataclass
class Change:
    """One line of the plan, and what apply runs for it.

    ``action`` is Terraform's symbol: ``+`` create, ``~`` change, ``-`` destroy,
    ``-/+`` replace (destroy, then create); ``!`` is a warning and ``<=`` a step
    that will run but changes nothing (a wait, a read): both are shown in plan
    and recap, neither is counted.
    ``diff`` is a unified diff (files) or ``field: old -> new`` lines.
    ``sensitive`` hides the diff entirely (shown as ``(sensitive)``).
    """

    action: str
    resource: str
    diff: str = ""
    script: str = ""
    sensitive: bool = False
    data: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        from gfsdeploy.secrets import MASK, redact
        from gfsdeploy.templating import show_unknown

        return {"action": self.action, "resource": show_unknown(redact(self.resource)),
                "diff": MASK if self.sensitive and self.diff else show_unknown(redact(self.diff))}


@dataclass
class HostInfo:
    """What a plan may know about the host besides its own probes (pure data)."""

    name: str
    os_family: str = "unknown"   # "debian", "redhat", ...
    os_id: str = "unknown"       # "debian", "ubuntu", "centos", "rocky", ...
    os_version: str = ""
    vars: dict = field(default_factory=dict)
    # read by gfsdeploy.hostfacts in the same batched read ("" = not read yet)
    cgroup: str = ""             # "v1", "hybrid", "v2"
    selinux: str = ""            # "enforcing", "permissive", "disabled"
    selinux_config: str = ""     # SELINUX= in /etc/selinux/config
    selinux_type: str = ""       # SELINUXTYPE= ("targeted")
    firewall: str = ""           # the active firewall manager: "firewalld", "ufw", "none"
    service_mgr: str = ""        # /proc/1/comm ("systemd")


@dataclass
class TaskResult:
    """What a task did; becomes the ``register`` value (Ansible's shape)."""

    changed: bool = False
    failed: bool = False
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    msg: str = ""
    data: dict = field(default_factory=dict)
    #: the module's own result keys, in Ansible's shape for that module: when set, the
    #: registered value is exactly ``changed``, ``failed`` and these (no rc/stdout/msg)
    register: dict | None = None

    def as_register(self) -> dict:
        if self.register is not None:
            return {"changed": self.changed, "failed": self.failed, **self.register}
        value = {"changed": self.changed, "failed": self.failed, "msg": self.msg,
                 "skipped": False}
        if self.rc is not None:
            value.update(rc=self.rc, stdout=self.stdout, stderr=self.stderr,
                         stdout_lines=self.stdout.splitlines(),
                         stderr_lines=self.stderr.splitlines())
        value.update(self.data)
        return value


@dataclass
class Param:
    """One module argument: its type, whether required, default, and the check of
    its form. ``sensitive`` registers the value with the redactor."""

    type: str = "str"  # str, int, bool, list, dict, raw, path
    required: bool = False
    default: Any = None
    choices: tuple = ()
    check: str | None = None  # a key of gfsdeploy.validate.CHECKS, applied to each element of lists
    sensitive: bool = False
    aliases: tuple = ()
    help: str = ""


class TaskContext:
    """What a module's ``prepare``/``read``/``apply`` may use on the controller side.

    Everything a module may know about the run is a constructor argument: the host,
    its connection, whether this is a plan (``check_mode``), whether the user
    confirmed changes that destroy data (``allow_destroy``), the task's variables.
    (The runner makes the contexts of a step's later items from its first one's
    attributes and sets what differs per item: transport, render_file, find_file,
    variables, reads, host_pending, environment — Runner._context.)
    """

    def __init__(self, host: HostInfo, transport: Transport | None, *, task_name: str = "",
                 render_file: Callable[[str], str] | None = None,
                 find_file: Callable[[str], str] | None = None,
                 progress: Callable[[str], None] | None = None,
                 check_mode: bool = False, transports: dict | None = None,
                 allow_destroy: bool = False, variables: dict | None = None,
                 read_only: bool = False, no_log: bool = False, task_check_mode=None, verbosity: int = 0,
                 diff: bool = False, host_pending: bool = False, environment: dict | None = None,
                 timeout: float | None = None):
        self.host = host
        self.transport = transport
        self.task_name = task_name
        self._render_file = render_file
        self._find_file = find_file
        self.progress = progress or (lambda message: None)
        self.check_mode = check_mode
        self.transports = transports or {}
        self.allow_destroy = allow_destroy
        self.variables = variables if variables is not None else dict(host.vars)
        #: the task only reads (read-only module, or ``check_mode: false`` in a plan):
        #: its scripts are logged as reads and listed in the plan
        self.read_only = read_only
        #: the commands this task ran while ``read_only`` (what plan lists)
        self.reads: list[str] = []
        # the task's keywords a module run through Ansible's module protocol passes on
        self.no_log = no_log
        self.task_check_mode = task_check_mode
        self.verbosity = verbosity
        self.diff = diff
        #: an earlier step of this run changed (or, planning, would change) the host
        self.host_pending = host_pending
        #: the task's ``environment:``, exported before every script it runs
        self.environment = environment or {}
        #: the task's ``timeout:``: seconds a script may take when the module names no other
        self.timeout = timeout

    def render_file(self, path: str) -> str:
        return self._render_file(path)

    def find_file(self, path: str) -> str:
        return self._find_file(path)

    def exec(self, script: str, *, timeout: float | None = None) -> Result:
        """Run ``script`` and return whatever it returned."""
        if self.read_only:
            self.reads.append(script)
        if self.environment:
            script = "".join(f"export {k}={q('' if v is None else v)}\n" for k, v in self.environment.items()) + script
        return self.transport.run(script, timeout=timeout or self.timeout, kind="read" if self.read_only else "run")

    def run(self, script: str, *, timeout: float | None = None, what: str = "") -> Result:
        """Run ``script``; raise a clear ModuleError on a non-zero exit."""
        result = self.exec(script, timeout=timeout)
        if result.rc != 0:
            raise command_failed(self.host.name, self.task_name, what or script, result)
        return result


def overlaps(a: set[str] | None, b: set[str] | None) -> bool:
    """Whether two resource sets can touch the same thing (None: anything; a file
    overlaps its directories and everything under them)."""
    if a is None or b is None:
        return True
    for x in a:
        for y in b:
            if x == y:
                return True
            if x.startswith("file:") and y.startswith("file:"):
                px, py = x[5:].rstrip("/") + "/", y[5:].rstrip("/") + "/"
                if px.startswith(py) or py.startswith(px):
                    return True
    return False


def command_failed(host: str, task: str, what: str, result: Result) -> ModuleError:
    first = what.strip().splitlines()
    shown = first[0] if len(first) == 1 else (first[0] + " …" if first else "")
    return ModuleError(
        f"command failed (exit {result.rc}): {shown}\n  stderr: {result.stderr.strip()[-2000:] or '(empty)'}",
        host=host, task=task)


class Module:
    """Base class. Subclasses set ``name`` and ``params`` and override ``plan``
    (and usually ``probes``)."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple] = ()
    params: ClassVar[dict[str, Param]] = {}
    #: a module that never changes anything may run in plan mode too
    read_only: ClassVar[bool] = False
    #: the module takes Ansible's free-form string (``command: echo hi``)
    free_form: ClassVar[str | None] = None
    #: probes cost little (stat, cat): after a change the runner re-reads them for all
    #: remaining steps in one batch; costly ones (API clients, HTTP) are re-read step by step
    cheap_reads: ClassVar[bool] = True
    #: any argument name is accepted (``set_fact``); the module checks them itself
    free_keys: ClassVar[bool] = False
    #: arguments written as bare Jinja expressions (Ansible's ``assert: that:``); the
    #: runner evaluates each and passes ``{"expr": text, "value": result}`` items
    expressions: ClassVar[tuple] = ()
    #: ``apply`` makes one ``ctx.run``/``ctx.exec`` of a script before anything else, and
    #: after it only turns that result into a TaskResult: its changes may then join other
    #: steps' in one round trip (gfsdeploy/batch.py). None: only when apply is not overridden
    batch_apply: ClassVar[bool | None] = None
    #: ``validate`` reads nothing but its arguments (no file, no setting, no instance state): the
    #: runner validates each distinct arguments once per run (gfsdeploy/validations.py).
    #: Read from the module's own class only: a subclass states it again
    pure_validate: ClassVar[bool] = False

    # -- controller side ------------------------------------------------------
    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        """Check names and types, fill defaults; raise PlaybookError naming the field."""
        return validate_args(self.name, self.params, args, where or {})

    def prepare(self, args: dict, ctx: TaskContext) -> dict:
        """Controller-side work before reading (render a template, read a local file)."""
        return args

    def joins_batch(self, args: dict, changes: list[Change]) -> bool:
        """Whether these planned changes may join a batch (``batch_apply`` modules): only if
        ``apply`` runs its one script for them — an apply that would run a second one after
        it must not have the batch's later members run before that second script."""
        return True

    def decides_on_node(self, args: dict, changes: list[Change]) -> bool:
        """Whether these planned changes' script decides itself, on the host, what to do
        (it reads what it needs when it runs and reports whether it changed anything):
        then, in a batch after a member that changes what it reads, it joins without a
        guard — its plan, made before, only says that it runs (gfsdeploy/batch.py)."""
        return False

    # -- the three steps --------------------------------------------------------
    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        """Read-only shell snippets, keyed by name; batched with other tasks' probes."""
        return {}

    def resources(self, args: dict) -> set[str] | None:
        """What a change by this task can affect (``file:/etc/hosts``, ``iptables``…),
        so the runner re-reads only the steps that read it; None = anything."""
        return None

    def guards(self, args: dict, facts: dict[str, Result], host: HostInfo) -> dict[str, tuple[str, Result]]:
        """What must still hold on the host for this task's plan to hold after an earlier
        change of the same batch (gfsdeploy/batch.py): ``{key: (snippet, Result it must
        give)}``. Default: every probe, answering exactly what it answered when planned.
        Override to compare only what ``plan`` depends on. Empty: cannot be checked."""
        probes = self.probes(args, host)
        if not probes or set(probes) - set(facts):
            return {}
        return {k: (probes[k], facts[k]) for k in probes}

    #: ``read`` makes its state from the probes' answers alone (of the context only the
    #: host's name, the task's name and check mode) and ``plan`` from arguments and state:
    #: a plan pass plans such a step as soon as its host's batched read answers
    #: (Runner._plan_ahead), not again when the step's turn comes
    plans_from_reads = False
    #: and a plan that changes nothing depends on the arguments, the answers and the
    #: distribution facts alone (not on the host's name or variables): a plan pass plans
    #: an item alike to one planned unchanged on another host unchanged without planning
    #: it again (Runner._plan_ahead) — a thousand hosts' identical /etc/hosts edited once
    plans_alike = False

    def read(self, args: dict, facts: dict[str, Result], ctx: TaskContext) -> Any:
        """Turn probe results into the state ``plan`` needs (may add non-shell reads)."""
        return facts

    def plan(self, args: dict, state: Any, host: HostInfo) -> list[Change]:
        """Pure: arguments + state → changes. Empty list: nothing to do."""
        raise NotImplementedError

    def settle(self, args: dict, state: Any, ctx: TaskContext) -> TaskResult | None:
        """Apply mode only, when ``plan`` found nothing to change: wait until what the
        task describes is reached (e.g. pods Ready). Waiting is not a change: it is
        never shown in a plan nor counted. None: nothing to wait for."""
        return None

    def unchanged(self, args: dict, state: Any) -> TaskResult:
        """The result registered when ``plan`` found nothing to do (what Ansible's module
        returns with ``changed: false``)."""
        return TaskResult()

    def report(self, args: dict, state: Any, ctx: TaskContext) -> TaskResult:
        """What a read-only module returns (registers, prints) from the state it read:
        ``stat``'s facts, ``debug``'s message. Runs in plan and apply alike."""
        return self.apply(args, [], ctx)

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        """Run the changes' scripts in one round trip."""
        scripts = [c.script for c in changes if c.script and c.action != WARN]
        if not scripts:
            return TaskResult(changed=False)
        result = ctx.run("set -e\n" + "\n".join(scripts) + "\n",
                         what=changes[0].resource if len(changes) == 1 else
                         "; ".join(c.resource for c in changes))
        return TaskResult(changed=True, rc=result.rc, stdout=result.stdout, stderr=result.stderr)


# -- argument validation ---------------------------------------------------------
_TYPES = {"str": (str, int, float), "int": (int,), "bool": (bool,), "list": (list,),
          "dict": (dict,), "path": (str,), "raw": (object,)}
_TRUE = {"yes", "true", "on", "1", "y"}
_FALSE = {"no", "false", "off", "0", "n"}


#: id(a module's params) -> (those params, how many, argument and alias names -> argument)
_ARGUMENT_NAMES: dict = {}


def validate_args(module: str, params: dict[str, Param], args: dict, where: dict) -> dict:
    from gfsdeploy import secrets

    def fail(message, field=None, fix=None):
        raise PlaybookError(message, field=field, fix=fix, **where)

    known = _ARGUMENT_NAMES.get(id(params))
    if known is None or known[0] is not params or known[1] != len(params):
        names = {}
        for key, param in params.items():
            names[key] = key
            for alias in param.aliases:
                names[alias] = key
        if len(_ARGUMENT_NAMES) >= 1024:
            _ARGUMENT_NAMES.clear()
        known = _ARGUMENT_NAMES[id(params)] = (params, len(params), names)  # (params kept: its id stays its own)
    names = known[2]
    out: dict = {}
    for key, value in args.items():
        if key not in names:
            close = _closest(key, list(names))
            fail(f"module {module!r} has no argument {key!r}", field=key,
                 fix=(f"did you mean {close!r}? " if close else "") +
                 f"valid arguments: {', '.join(sorted(params))}")
        out[names[key]] = value
    for key, param in params.items():
        if key not in out or out[key] is None:
            if param.required:
                fail(f"module {module!r} needs argument {key!r}", field=key,
                     fix=f"add `{key}: ...` to the task" + (f" ({param.help})" if param.help else ""))
            out[key] = param.default
            continue
        value = out[key]
        if param.type == "bool":
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                value = value.lower() in _TRUE
            elif not isinstance(value, bool):
                fail(f"argument {key!r} of {module!r} must be true or false, got {value!r}", field=key,
                     fix=f"write `{key}: true` or `{key}: false`")
        elif param.type == "int":
            try:
                value = int(str(value), 0) if not isinstance(value, bool) else fail("")
            except (ValueError, PlaybookError):
                fail(f"argument {key!r} of {module!r} must be an integer, got {value!r}", field=key,
                     fix=f"write a number, e.g. `{key}: 10`")
        elif param.type == "list" and isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value] if not isinstance(value, str) or "," not in value else \
                [v.strip() for v in value.split(",") if v.strip()]
        elif param.type in ("str", "path") and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if param.type != "raw" and not isinstance(value, _TYPES[param.type]):
            fail(f"argument {key!r} of {module!r} must be a {param.type}, got {_type_name(value)}",
                 field=key, fix=f"give `{key}` a {param.type} value")
        if param.choices and value not in param.choices:
            fail(f"argument {key!r} of {module!r} must be one of {', '.join(map(str, param.choices))}; got {value!r}",
                 field=key, fix=f"use one of: {', '.join(map(str, param.choices))}")
        checks = [param.check] if param.check else []
        if param.type == "path" and value is not None:
            checks.append("path")
        for check in checks:
            for element in (value if isinstance(value, list) else [value]):
                problem = CHECKS[check](element)
                if problem:
                    fail(f"argument {key!r} of {module!r}: {problem}", field=key,
                         fix="correct the value (inventory values must have this form)")
        if param.sensitive:
            secrets.register(value)
        out[key] = value
    return out


def _type_name(value) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _closest(word: str, choices: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def q(value) -> str:
    """Quote one value for the remote shell."""
    return shlex.quote(str(value))


def qjoin(argv) -> str:
    """Quote an argument list for the remote shell."""
    return " ".join(shlex.quote(str(a)) for a in argv)
