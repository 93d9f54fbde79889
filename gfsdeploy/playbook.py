"""Ansible's playbook shape, loaded into a flat list of tasks per play.

A play's ``pre_tasks``, ``roles``, ``tasks``, ``post_tasks`` and ``handlers`` —
with blocks, ``import_tasks``/``import_role`` and the roles' meta dependencies
expanded — become plain :class:`Task` objects, each remembering where it came
from (role, file:line, the chain of imports) and what it inherited from the
blocks, imports and roles around it (conditions, tags, variables, keywords).
``include_tasks``/``include_role`` stay tasks of their own: when their file and
loop are known when loading, their body follows them in the list (gated by the
include's decision on each host); otherwise the runner expands them when they
run. gfsdeploy adds ``needs:`` and ``id`` to Ansible's keywords. A keyword
gfsdeploy does not implement is refused with file:line.

Facts relied on are written down in docs/ANSIBLE-STRUCTURE.md.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
from dataclasses import dataclass, field

from gfsdeploy import modules
from gfsdeploy.errors import PlaybookError
from gfsdeploy.yamlload import Node, load, position

# -- keywords -------------------------------------------------------------------------
#: keywords that blocks, roles, imports and plays pass down to their tasks
INHERITED = ("become", "become_user", "become_method", "become_flags", "become_exe", "remote_user",
             "connection", "environment", "ignore_errors", "ignore_unreachable", "no_log", "check_mode",
             "diff", "delegate_to", "delegate_facts", "run_once", "any_errors_fatal", "throttle", "timeout",
             "module_defaults", "collections", "notify")
LOOP_LOOKUPS = ("items", "list", "dict", "subelements", "first_found", "fileglob", "sequence", "together",
                "nested", "cartesian", "indexed_items", "flattened", "dict2items", "random_choice", "lines",
                "inventory_hostnames")
TASK_KEYS = {"name", "id", "when", "loop", "loop_control", "tags", "notify", "register", "retries", "until",
             "delay", "changed_when", "failed_when", "ignore_errors", "ignore_unreachable", "become",
             "become_user", "become_method", "become_flags", "become_exe", "needs", "no_log", "run_once",
             "vars", "listen", "check_mode", "diff", "environment", "delegate_to", "delegate_facts", "args",
             "timeout", "remote_user", "connection", "any_errors_fatal", "throttle", "module_defaults",
             "collections", "action", "local_action", "async", "poll", "port", "debugger"}
BLOCK_KEYS = {"block", "rescue", "always", "name", "id", "when", "tags", "vars", *INHERITED, "port", "debugger"}
ROLE_ENTRY_KEYS = {"role", "name", "tags", "when", "vars", *INHERITED, "port", "debugger"}
PLAY_KEYS = {"name", "hosts", "vars", "vars_files", "vars_prompt", "tasks", "pre_tasks", "post_tasks", "handlers",
             "roles", "gather_facts", "gather_subset", "gather_timeout", "fact_path", "tags", "needs", "id",
             "serial", "strategy", "order", "max_fail_percentage", "force_handlers", *INHERITED, "port",
             "debugger"}
#: keywords whose meaning gfsdeploy does not implement: refused wherever they appear
REFUSED = {
    "async": "run the task synchronously (gfsdeploy waits for every step; `timeout:` bounds it)",
    "poll": "run the task synchronously (gfsdeploy waits for every step; `timeout:` bounds it)",
    "debugger": "remove `debugger:` (gfsdeploy has no interactive task debugger)",
    "port": "set `ansible_port` for the host in the inventory",
    "vars_prompt": "pass the values with `-e name=value` (gfsdeploy never prompts during a run)",
    "become_exe": "remove `become_exe:` (gfsdeploy runs the standard sudo or su)",
    "fact_path": "remove `fact_path:` (local facts are read from /etc/ansible/facts.d only)",
}
STRATEGIES = ("linear", "free", "host_pinned")
INCLUDE_MODULES = {"include_tasks": "tasks", "ansible.builtin.include_tasks": "tasks",
                   "include_role": "role", "ansible.builtin.include_role": "role"}
IMPORT_MODULES = {"import_tasks": "tasks", "ansible.builtin.import_tasks": "tasks",
                  "import_role": "role", "ansible.builtin.import_role": "role"}
INCLUDE_ROLE_OPTIONS = {"name", "tasks_from", "vars_from", "defaults_from", "handlers_from", "public", "apply",
                        "allow_duplicates", "rolespec_validate"}
TASK_FILE_EXTS = ("", ".yml", ".yaml", ".json")
IMPORT_REFUSED = {"loop", "loop_control", "register", "until", "retries", "delay", "changed_when", "failed_when",
                  "notify", "listen", "delegate_to", "local_action", "action", "run_once"}
#: what include_tasks accepts besides its file (Ansible refuses the other task keywords there)
INCLUDE_TASKS_KEYS = {"name", "id", "when", "loop", "loop_control", "tags", "vars", "ignore_errors", "no_log",
                      "register", "timeout", "args", "action", "collections", "needs", "any_errors_fatal"}


# -- the loaded shape -----------------------------------------------------------------
@dataclass
class Role:
    """One role as used at one place: its directory, defaults, vars and params."""

    name: str
    path: str
    defaults: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    parent: "Role | None" = None
    public: bool = True
    dependency: bool = False        # pulled in by another role's meta/main.yml dependencies
    argument_specs: dict = field(default_factory=dict)   # entry point "main" options (meta/argument_specs)

    def chain(self) -> list["Role"]:
        """This role and the roles that pulled it in, outermost first."""
        out, role = [], self
        while role is not None:
            out.insert(0, role)
            role = role.parent
        return out

    @property
    def library_dir(self) -> str:
        return os.path.join(self.path, "library")


@dataclass
class Include:
    """What an ``include_tasks``/``include_role`` task brings in."""

    kind: str                      # "tasks" | "role"
    target: str                    # the file or role name, possibly templated
    options: dict = field(default_factory=dict)   # include_role's tasks_from … and `apply`
    body: list | None = None       # the loaded body when the target is known at load time
    static: bool = False           # the body is in the play's task list, gated by this include
    scope: object = None           # the loader scope, to load a target only known at run time


@dataclass
class Task:
    id: str
    name: str
    module: str
    args: object
    play: "Play"
    index: int
    file: str = ""
    line: int = 0
    when: list = field(default_factory=list)      # conditions, inherited ones first (all must hold)
    loop: object = None
    loop_with: str | None = None                  # the lookup of `with_<name>` (None: `loop:`)
    loop_var: str = "item"
    loop_label: object = None
    loop_control: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)
    notify: list = field(default_factory=list)
    register: str | None = None
    retries: int | None = None
    until: object = None
    delay: float = 5.0
    changed_when: object = None
    failed_when: object = None
    ignore_errors: object = False
    ignore_unreachable: object = False
    become: object = None
    become_user: object = None
    become_method: object = None
    become_flags: object = None
    remote_user: object = None
    connection: object = None
    environment: list = field(default_factory=list)  # mappings, outermost first
    delegate_to: object = None
    delegate_facts: bool = False
    run_once: object = False
    any_errors_fatal: object = None
    throttle: int = 0
    diff: object = None
    needs: list = field(default_factory=list)
    no_log: object = False
    vars: dict = field(default_factory=dict)
    check_mode: object = None
    is_handler: bool = False
    listen: list = field(default_factory=list)
    timeout: float | None = None
    # where it came from and what it inherited
    role: Role | None = None
    block_vars: list = field(default_factory=list)     # mappings, outermost block first
    include_params: dict = field(default_factory=dict)  # vars of the imports/includes around it
    frames: tuple = ()                       # ((block id, "block"|"rescue"|"always", has rescue), ...)
    gates: tuple = ()                                    # ids of the includes that must have included it
    origin: tuple = ()                                   # ("role x", "import_tasks y.yml (file:line)", ...)
    search_dirs: list = field(default_factory=list)     # where its files/templates/vars are looked up
    library_dirs: list = field(default_factory=list)    # Ansible module directories (role library/ …)
    collections: list = field(default_factory=list)     # the `collections:` keyword: where short names resolve
    include: Include | None = None                       # include_tasks / include_role
    handler_names: tuple = ()                            # names a notify may use for this handler
    flush: int | None = None                             # handlers: which flush point this copy runs at

    @property
    def label(self) -> str:
        return self.name or f"{self.module} #{self.index + 1}"

    def where(self) -> dict:
        return {"file": self.file, "line": self.line, "task": self.label}

    @property
    def all_tags(self) -> set:
        return set(self.tags) | set(self.play.tags)

    @property
    def role_chain(self) -> list[Role]:
        return self.role.chain() if self.role is not None else []

    def describe_origin(self) -> str:
        """Where the task came from, for ``gfsdeploy graph``: role and file:line."""
        parts = [f"{_short(self.file)}:{self.line}"]
        if self.role is not None:
            parts.insert(0, "role " + " > ".join(r.name for r in self.role_chain))
        return ", ".join(parts)


@dataclass
class Play:
    name: str
    hosts: object
    index: int
    file: str
    line: int
    id: str = ""
    vars: dict = field(default_factory=dict)
    vars_files: list = field(default_factory=list)  # [(entry: str | list, file, line)] — loaded per host
    tasks: list[Task] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    become: bool = False
    become_user: str = "root"
    tags: list = field(default_factory=list)
    needs: list | None = None
    base_dir: str = "."
    roles: list[Role] = field(default_factory=list)   # public roles (`roles:`, import_role): vars play-wide
    gather_facts: bool = True
    serial: object = None
    strategy: str = "linear"
    order: str = "inventory"
    max_fail_percentage: object = None
    force_handlers: bool = False
    any_errors_fatal: bool = False
    strategy_written: bool = False
    #: index into ``tasks`` after which handlers flush (end of pre_tasks, tasks, post_tasks; meta: flush_handlers)
    flush_points: list = field(default_factory=list)

    def where(self) -> dict:
        return {"file": self.file, "line": self.line}


@dataclass
class Playbook:
    path: str
    plays: list[Play]
    loader: "Loader | None" = None

    def tasks(self):
        """Every task, handler and include body loaded (static checks walk these)."""
        seen = set()
        for play in self.plays:
            for task in [*play.tasks, *play.handlers]:
                yield from _walk(task, seen)


def _walk(task: Task, seen: set):
    if id(task) in seen:
        return
    seen.add(id(task))
    yield task
    if task.include is not None and task.include.body and not task.include.static:
        for sub in task.include.body:
            yield from _walk(sub, seen)


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("../../") else path


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


# -- where roles and modules are found ----------------------------------------------------
def ansible_config() -> tuple[str | None, configparser.ConfigParser]:
    """The ansible.cfg Ansible would read: $ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg,
    /etc/ansible/ansible.cfg (the first that exists)."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    candidates = [os.environ.get("ANSIBLE_CONFIG"), os.path.join(os.getcwd(), "ansible.cfg"),
                  os.path.expanduser("~/.ansible.cfg"), "/etc/ansible/ansible.cfg"]
    for path in candidates:
        if path and os.path.isfile(path):
            try:
                parser.read(path, encoding="utf-8")
            except (configparser.Error, OSError, UnicodeDecodeError):
                continue
            return path, parser
    return None, parser


def _path_list(value: str, base: str) -> list[str]:
    out = []
    for part in value.split(os.pathsep):
        part = os.path.expanduser(os.path.expandvars(part.strip()))
        if part:
            out.append(os.path.normpath(os.path.join(base, part)))
    return out


def configured_paths(setting: str, env: str) -> list[str]:
    """A path-list setting (``roles_path``, ``library``) from the environment, else ansible.cfg."""
    if os.environ.get(env):
        return _path_list(os.environ[env], os.getcwd())
    path, parser = ansible_config()
    if path and parser.has_option("defaults", setting):
        return _path_list(parser.get("defaults", setting), os.path.dirname(os.path.abspath(path)))
    return []


def roles_path() -> list[str]:
    return configured_paths("roles_path", "ANSIBLE_ROLES_PATH") + \
        [os.path.expanduser("~/.ansible/roles"), "/usr/share/ansible/roles", "/etc/ansible/roles"]


# -- argument strings -----------------------------------------------------------------------
_OPENERS = {"{{": "}}", "{%": "%}", "{#": "#}"}


def split_args(text: str) -> list[str]:
    """Split ``k=v`` argument text on blanks the way Ansible does: not inside quotes
    (a backslash escapes a quote) and not inside ``{{ }}``, ``{% %}``, ``{# #}``."""
    tokens, current, quote, depth, i = [], "", None, [], 0
    while i < len(text):
        ch, two = text[i], text[i:i + 2]
        if quote is None and two in _OPENERS:
            depth.append(_OPENERS[two])
            current += two
            i += 2
            continue
        if depth and two == depth[-1] and quote is None:
            depth.pop()
            current += two
            i += 2
            continue
        if ch == "\\" and i + 1 < len(text):
            current += text[i:i + 2]
            i += 2
            continue
        if quote is None and ch in "\"'":
            quote = ch
        elif quote == ch:
            quote = None
        if quote is None and not depth and ch in " \t\n":
            if current:
                tokens.append(current)
            current = ""
        else:
            current += ch
        i += 1
    if quote is not None or depth:
        raise ValueError("unbalanced quotes" if quote else "unclosed {{ / {% / {#")
    if current:
        tokens.append(current)
    return tokens


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" and value[-2:-1] != "\\":
        return value[1:-1]
    return value


_ESCAPES = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[\\'\"abfnrtv])")


def _decode(token: str) -> str:
    return _ESCAPES.sub(lambda m: m.group(0).encode().decode("unicode_escape"), token)


def parse_kv(text: str) -> tuple[dict, list[str]]:
    """``k=v`` pairs (values unquoted, escapes decoded) and the words that are not pairs."""
    options, words = {}, []
    for token in split_args(text):
        decoded = _decode(token)
        match = re.match(r"^([A-Za-z_][\w.-]*)=(.*)\Z", decoded, re.S)
        if match:
            options[match.group(1)] = _unquote(match.group(2).strip())
        else:
            words.append(token)
    return options, words


# -- the loader ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """What a task inherits from the play, blocks, roles and imports around it."""

    play: Play
    file: str
    task_dir: str
    role: Role | None = None
    when: tuple = ()
    tags: tuple = ()
    block_vars: tuple = ()
    include_params: tuple = ()        # ((key, value), ...) merged outermost first
    keywords: tuple = ()              # ((keyword, value), ...) innermost wins
    frames: tuple = ()
    gates: tuple = ()
    origin: tuple = ()
    handler: bool = False

    def kw(self) -> dict:
        return dict(self.keywords)

    def with_keywords(self, raw: dict, keys=INHERITED) -> "Scope":
        kws = self.kw()
        _check_booleans(raw)
        for key in keys:
            if key in raw:
                if key == "environment":
                    kws["environment"] = [*kws.get("environment", []), raw[key]]
                elif key == "module_defaults":
                    kws["module_defaults"] = [*kws.get("module_defaults", []), raw[key]]
                else:
                    kws[key] = raw[key]
        return dataclasses.replace(self, keywords=tuple(kws.items()))


class Loader:
    """Loads a playbook and everything it pulls in. Kept by the Playbook so the runner
    can load an include whose file is only known at run time."""

    def __init__(self):
        self.roles_path = roles_path()
        self.library = configured_paths("library", "ANSIBLE_LIBRARY")
        self.counters: dict[int, int] = {}
        self.handler_counters: dict[int, int] = {}
        self.block_counter = 0
        self.roles_run: dict[int, list] = {}
        self.task_files: dict[str, object] = {}
        self.runtime = False      # loading an include's body while running

    # -- playbooks and plays -------------------------------------------------------------
    def load_playbook(self, path: str) -> Playbook:
        plays: list[Play] = []
        self._load_into(path, plays, seen=[])
        ids: dict[str, Task] = {}
        book = Playbook(path=path, plays=plays, loader=self)
        for task in book.tasks():
            if task.id in ids and task.id != "" and ids[task.id] is not task:
                other = ids[task.id]
                raise PlaybookError(f"task id {task.id!r} is used twice (also {other.file}:{other.line})",
                                    **task.where(), field="id", fix="give each task a unique `id:`")
            ids[task.id] = task
        return book

    def _load_into(self, path: str, plays: list[Play], seen: list[str]) -> None:
        real = os.path.realpath(path)
        if real in seen:
            raise PlaybookError("import_playbook loop: " + " -> ".join([*seen, real]), file=path,
                                fix="remove the circular import_playbook")
        data = load(path, PlaybookError, what="playbook")
        if not isinstance(data, list):
            raise PlaybookError("a playbook must be a YAML list of plays",
                                **(position(data) or {"file": path, "line": 1}),
                                fix="start each play with `- name: …` / `hosts: …`")
        base = os.path.dirname(os.path.abspath(path))
        if hasattr(modules, "add_search_path"):
            modules.add_search_path(base)  # its library/ and module_utils/, as in Ansible
        for raw in data:
            key = next((k for k in ("import_playbook", "ansible.builtin.import_playbook")
                        if isinstance(raw, dict) and k in raw), None)
            if key:
                extra = [k for k in raw if k not in (key, "name", "tags", "vars", "when")]
                if extra or "when" in raw or "vars" in raw or "tags" in raw:
                    bad = (extra or [k for k in ("when", "vars", "tags") if k in raw])[0]
                    raise PlaybookError(f"`{bad}` on import_playbook is not supported", **position(raw, bad),
                                        field=bad, fix="put it on the plays of the imported playbook")
                target = str(raw[key])
                if "{{" in target:
                    raise PlaybookError("import_playbook needs a file name known when loading, got a template",
                                        **position(raw, key), fix="write the playbook's path literally")
                _check_exists(os.path.join(base, target), raw, key, "playbook")
                self._load_into(os.path.join(base, target), plays, [*seen, real])
                continue
            plays.append(self._play(raw, len(plays), path, base))

    def _play(self, raw, index: int, path: str, base: str) -> Play:
        if not isinstance(raw, dict):
            raise PlaybookError(f"play #{index + 1} must be a mapping, got {type(raw).__name__}", file=path,
                                line=getattr(raw, "line", None), fix="write `- hosts: …` with `tasks:` under it")
        for key in raw:
            if key not in PLAY_KEYS:
                hint = " (tasks go under `tasks:`)" if modules.get(str(key)) else ""
                raise PlaybookError(f"unknown play key {key!r}{hint}", **position(raw, key), field=key,
                                    fix=f"valid play keys: {', '.join(sorted(PLAY_KEYS - set(REFUSED)))}")
            _refuse(raw, key, "play")
        if "hosts" not in raw:
            raise PlaybookError("play has no `hosts:`", **position(raw), field="hosts",
                                fix="add `hosts: all` or a group name such as `hosts: webservers`")
        pvars = _mapping(raw, "vars", "play")
        strategy = str(raw.get("strategy", "linear"))
        if strategy not in STRATEGIES:
            raise PlaybookError(f"strategy {strategy!r} is not supported", **position(raw, "strategy"),
                                field="strategy", fix="use `linear` (the default) or `free`")
        order = str(raw.get("order", "inventory"))
        if order not in ("inventory", "reverse_inventory", "sorted", "reverse_sorted", "shuffle"):
            raise PlaybookError(f"order {order!r} is not one of Ansible's", **position(raw, "order"), field="order",
                                fix="use inventory, reverse_inventory, sorted, reverse_sorted or shuffle")
        play = Play(name=str(raw.get("name") or f"play #{index + 1}"), hosts=raw["hosts"], index=index,
                    file=path, line=position(raw).get("line", 0), id=str(raw.get("id") or ""),
                    vars=dict(pvars), become=_truth(raw.get("become", False)),
                    become_user=str(raw.get("become_user", "root")), tags=_as_list(raw.get("tags")),
                    needs=_as_list(raw["needs"]) if "needs" in raw else None, base_dir=base,
                    gather_facts=_truth(raw.get("gather_facts", True)), serial=raw.get("serial"),
                    strategy=strategy, order=order, max_fail_percentage=raw.get("max_fail_percentage"),
                    force_handlers=_truth(raw.get("force_handlers", False)),
                    any_errors_fatal=_truth(raw.get("any_errors_fatal", False)) is True,
                    strategy_written="strategy" in raw)
        for entry in _as_list(raw.get("vars_files")) if not isinstance(raw.get("vars_files"), str) \
                else [raw["vars_files"]]:
            line = position(raw, "vars_files").get("line", play.line)
            candidates = entry if isinstance(entry, list) else [entry]
            if not any("{{" in str(c) for c in candidates):
                # known now: a missing file (or a mistake in it) is reported before connecting
                found = [os.path.join(base, str(c)) for c in candidates if os.path.isfile(os.path.join(base, str(c)))]
                if not found:
                    raise PlaybookError("vars_files: " + (f"none of {candidates} exists" if len(candidates) > 1
                                                          else f"{candidates[0]} not found"), file=path, line=line,
                                        field="vars_files", fix="check the path (relative to the playbook's directory)")
                load_vars(found[0])
            play.vars_files.append((entry, path, line))
        scope = Scope(play=play, file=path, task_dir=base).with_keywords(raw)
        scope = dataclasses.replace(scope, keywords=tuple((k, v) for k, v in scope.keywords if k != "notify"))
        for section in ("pre_tasks", "roles", "tasks", "post_tasks", "handlers"):
            if section in raw and raw[section] is not None and not isinstance(raw[section], list):
                raise PlaybookError(f"`{section}` must be a list", **position(raw, section), field=section,
                                    fix="start each entry with `- `")
        self.roles_run[id(play)] = []
        handler_scope = dataclasses.replace(scope, handler=True)
        pending_handlers: list = []
        self._task_list(raw.get("pre_tasks") or [], scope, play.tasks, pending_handlers)
        play.flush_points.append(len(play.tasks))
        for entry in raw.get("roles") or []:
            self._role_entry(entry, scope, play.tasks, pending_handlers, dedupe=True)
        self._task_list(raw.get("tasks") or [], scope, play.tasks, pending_handlers)
        play.flush_points.append(len(play.tasks))
        self._task_list(raw.get("post_tasks") or [], scope, play.tasks, pending_handlers)
        play.flush_points.append(len(play.tasks))
        # handlers run in this order: the roles' (in the order the roles came), then the play's own
        for role_scope, items in pending_handlers:
            self._task_list(items, role_scope, play.handlers, None)
        self._task_list(raw.get("handlers") or [], handler_scope, play.handlers, None)
        play.flush_points = sorted(set(play.flush_points))
        return play  # a notify naming no handler is reported by static_check, with every other mistake

    # -- task lists ---------------------------------------------------------------------
    def _task_list(self, items, scope: Scope, out: list, handlers: list | None) -> None:
        if items is None:
            return
        if not isinstance(items, list):
            raise PlaybookError("a task list must be a YAML list", **(position(items) or {"file": scope.file}),
                                fix="start each task with `- name: …`")
        for raw in items:
            self._entry(raw, scope, out, handlers)

    def _entry(self, raw, scope: Scope, out: list, handlers: list | None) -> None:
        kind = "handler" if scope.handler else "task"
        if not isinstance(raw, dict):
            raise PlaybookError(f"{kind} #{len(out) + 1} in {_short(scope.file)} must be a mapping",
                                file=scope.file, line=getattr(raw, "line", None) or scope.play.line,
                                fix="write `- name: …` then the module on the next line, indented the same")
        if "block" in raw:
            return self._block(raw, scope, out, handlers)
        for key in raw:
            _refuse(raw, key, kind)
        module_key = _module_key(raw, scope)
        name = module_key[0] if module_key else None
        if name in IMPORT_MODULES:
            return self._import(raw, name, scope, out, handlers)
        if name in INCLUDE_MODULES and INCLUDE_MODULES[name] == "tasks":
            for key in raw:
                if key != name and key not in INCLUDE_TASKS_KEYS and not str(key).startswith("with_"):
                    raise PlaybookError(f"`{key}` is not valid on include_tasks", **position(raw, key), field=key,
                                        fix="put it under `apply:` (it then applies to the included tasks)"
                                        if key in INHERITED else "remove it")
        task = self._task(raw, scope, len(out))
        out.append(task)
        include = task.include
        if include is not None and include.static:
            body_scope = dataclasses.replace(include.scope, gates=(*scope.gates, task.id))
            self._include_body(task, body_scope, out, handlers)
        elif include is not None and "{{" not in include.target and not scope.handler:
            # looped: expanded per item when it runs; loaded now so mistakes show before connecting
            include.body, brought = self.expand(task, include.target, f"{task.id}/*", {}, handlers_known=False)
            if handlers is not None:
                handlers.extend(brought)

    def _block(self, raw, scope: Scope, out: list, handlers: list | None) -> None:
        for key in raw:
            if key not in BLOCK_KEYS:
                raise PlaybookError(f"{key!r} is not a block keyword", **position(raw, key), field=key,
                                    fix="modules go inside `block:`; valid block keywords: "
                                        + ", ".join(sorted(BLOCK_KEYS - set(REFUSED))))
            _refuse(raw, key, "block")
        if scope.handler and ("rescue" in raw or "always" in raw):
            raise PlaybookError("rescue/always in handlers are not supported", **position(raw), fix="list the handlers directly")
        self.block_counter += 1
        block_id = str(raw.get("id") or f"b{self.block_counter}")
        label = str(raw.get("name") or "block")
        inner = scope.with_keywords(raw)
        inner = dataclasses.replace(
            inner, when=(*scope.when, *_conditions(raw.get("when"))),
            tags=(*scope.tags, *_as_list(raw.get("tags"))),
            block_vars=(*scope.block_vars, dict(_mapping(raw, "vars", "block"))) if raw.get("vars") else scope.block_vars,
            origin=(*scope.origin, f"block {label!r} ({_short(scope.file)}:{position(raw).get('line', 0)})"))
        for section in ("block", "rescue", "always"):
            items = raw.get(section)
            if items is None:
                continue
            if not isinstance(items, list):
                raise PlaybookError(f"`{section}` must be a list of tasks", **position(raw, section), field=section,
                                    fix="start each task with `- name: …`")
            frame = (block_id, section, bool(raw.get("rescue")))
            self._task_list(items, dataclasses.replace(inner, frames=(*scope.frames, frame)), out, handlers)

    def _import(self, raw, name: str, scope: Scope, out: list, handlers: list | None) -> None:
        kind = IMPORT_MODULES[name]
        where = position(raw, name)
        label = str(raw.get("name") or name)
        for bad in [k for k in raw if str(k).startswith("with_") or k in IMPORT_REFUSED]:
            if True:
                raise PlaybookError(f"`{bad}` cannot be used with {name} (it is expanded when loading)",
                                    **position(raw, bad), field=bad,
                                    fix=f"use include_{kind} for a loop, or put `{bad}` on the imported tasks")
        args, free = _include_args(raw, name, scope)
        inner = scope.with_keywords(raw)
        params = dict(scope.include_params)
        params.update(_mapping(raw, "vars", "task"))
        inner = dataclasses.replace(
            inner, when=(*scope.when, *_conditions(raw.get("when"))), tags=(*scope.tags, *_as_list(raw.get("tags"))),
            include_params=tuple(params.items()))
        if kind == "tasks":
            target = free if free is not None else args.get("file")
            if not target:
                raise PlaybookError(f"{name} needs a file name", **where, fix=f"write `{name}: tasks.yml`")
            if "{{" in str(target):
                raise PlaybookError(f"{name} needs a file name known when loading, got {target!r}", **where,
                                    fix="use include_tasks for a file chosen at run time")
            path = self._resolve_tasks_file(str(target), scope, raw, name)
            inner = dataclasses.replace(inner, file=path, task_dir=os.path.dirname(path),
                                        origin=(*scope.origin, f"{name} {target} ({_short(scope.file)}:{where.get('line', 0)})"))
            self._task_list(self._tasks_file(path), inner, out, handlers)
            return
        role_name = free if free is not None else args.get("name")
        if not role_name:
            raise PlaybookError(f"{name} needs `name:` (the role)", **where, fix=f"write `{name}: {{name: myrole}}`")
        if "{{" in str(role_name):
            raise PlaybookError(f"{name} needs a role name known when loading, got {role_name!r}", **where,
                                fix="use include_role for a role chosen at run time")
        for key in args:
            if key not in INCLUDE_ROLE_OPTIONS - {"apply", "public"}:
                raise PlaybookError(f"{name} has no option {key!r}", **where, field=key,
                                    fix="options: name, tasks_from, vars_from, defaults_from, handlers_from, "
                                        "allow_duplicates")
        inner = dataclasses.replace(inner, origin=(*scope.origin, f"{name} {role_name} ({_short(scope.file)}:{where.get('line', 0)})"))
        if handlers is None:
            raise PlaybookError(f"{name} in handlers is not supported", **where, fix="import the role under `tasks:`")
        self._role(str(role_name), {}, raw, inner, out, handlers, options=args, dedupe=False, public=True)

    # -- one task -------------------------------------------------------------------------
    def _task(self, raw, scope: Scope, index: int) -> Task:
        kind = "handler" if scope.handler else "task"
        where = position(raw)
        label = str(raw.get("name") or f"{kind} #{index + 1}")
        mod_name, args, extra_kw = _module_and_args(raw, scope, label)
        kws = scope.with_keywords(raw).kw()       # the task's own keywords over the inherited ones
        kws.update(extra_kw)                      # local_action: delegate_to localhost
        play = scope.play
        if scope.handler:
            self.handler_counters[id(play)] = self.handler_counters.get(id(play), 0) + 1
            task_id = str(raw.get("id") or f"{play.index + 1}.h{self.handler_counters[id(play)]}")
        else:
            self.counters[id(play)] = self.counters.get(id(play), 0) + 1
            task_id = str(raw.get("id") or f"{play.index + 1}.{self.counters[id(play)]}")

        def number(key, cast, default):
            if key not in raw:
                return default
            value = raw[key]
            if isinstance(value, str) and "{{" in value:
                raise PlaybookError(f"`{key}` must be a number known when loading, got {value!r}",
                                    **position(raw, key), task=label, field=key, fix=f"write e.g. `{key}: 5`")
            try:
                return cast(value)
            except (TypeError, ValueError):
                raise PlaybookError(f"`{key}` must be a number, got {value!r}", **position(raw, key), task=label,
                                    field=key, fix=f"write e.g. `{key}: 5`") from None

        register = raw.get("register")
        if register is not None and (not isinstance(register, str) or not register.isidentifier()):
            raise PlaybookError(f"`register` must be a variable name, got {register!r}", **position(raw, "register"),
                                task=label, field="register", fix="use letters, digits and _ e.g. `register: result`")
        loop, loop_with = _loop(raw, label)
        loop_control = _loop_control(raw, label)
        include = None
        if mod_name in INCLUDE_MODULES:
            include = self._include_spec(raw, mod_name, args, scope, label, loop is not None)
            args = {}
        elif mod_name in ("meta", "ansible.builtin.meta"):
            _check_meta(raw, args, label)
        else:
            module = _get_module(mod_name, dataclasses.replace(scope, keywords=tuple(kws.items())))
            args = _check_args(module, args, raw, mod_name, label)
            for defaults in kws.get("module_defaults", []):
                if not isinstance(defaults, dict):
                    raise PlaybookError("`module_defaults` must map module names to arguments",
                                        **where, fix="write `module_defaults: {file: {mode: '0644'}}`")
                for key, value in defaults.items():
                    if str(key).startswith("group/"):
                        raise PlaybookError(f"module_defaults group {key!r} is not supported", **where,
                                            fix="name the modules one by one under module_defaults")
                    if modules.get(str(key)) is not None and modules.get(str(key)).name == module.name \
                            and isinstance(value, dict):
                        args = Node({**value, **args})
        tvars = _mapping(raw, "vars", kind)
        notify = _as_list(raw.get("notify", kws.get("notify")))
        role = scope.role
        handler_names = ()
        if scope.handler:
            names = [n for n in [raw.get("name")] if n]
            if role is not None and raw.get("name"):
                names.append(f"{role.name} : {raw['name']}")
            handler_names = tuple(str(n) for n in names)
        if not scope.handler and "listen" in raw:
            raise PlaybookError("`listen` is a handler keyword", **position(raw, "listen"), task=label, field="listen",
                                fix="move the task under `handlers:`")
        task = Task(
            id=task_id, name=str(raw.get("name") or ""), module=mod_name, args=args, play=play, index=index,
            file=scope.file, line=where.get("line", 0), when=[*scope.when, *_conditions(raw.get("when"))],
            loop=loop, loop_with=loop_with, loop_var=str(loop_control.get("loop_var", "item")),
            loop_label=loop_control.get("label"), loop_control=loop_control,
            tags=[*scope.tags, *_as_list(raw.get("tags"))], notify=notify, register=register,
            retries=number("retries", int, None), until=raw.get("until"), delay=number("delay", float, 5.0),
            changed_when=raw.get("changed_when"), failed_when=raw.get("failed_when"),
            ignore_errors=kws.get("ignore_errors", False), ignore_unreachable=kws.get("ignore_unreachable", False),
            become=kws.get("become"), become_user=kws.get("become_user"), become_method=kws.get("become_method"),
            become_flags=kws.get("become_flags"),
            remote_user=kws.get("remote_user"), connection=kws.get("connection"),
            environment=list(kws.get("environment", [])), delegate_to=kws.get("delegate_to"),
            delegate_facts=_truth(kws.get("delegate_facts", False)), run_once=kws.get("run_once", False),
            any_errors_fatal=kws.get("any_errors_fatal"), throttle=number("throttle", int, 0) if "throttle" in raw
            else int(kws.get("throttle") or 0), diff=kws.get("diff"), needs=_as_list(raw.get("needs")),
            no_log=kws.get("no_log", False), vars=dict(tvars), check_mode=kws.get("check_mode"),
            is_handler=scope.handler, listen=_as_list(raw.get("listen")),
            timeout=number("timeout", float, None) if "timeout" in raw else
            (float(kws["timeout"]) if kws.get("timeout") is not None else None),
            role=role, block_vars=list(scope.block_vars), include_params=dict(scope.include_params),
            frames=scope.frames, gates=scope.gates, origin=scope.origin,
            search_dirs=self._search_dirs(scope), library_dirs=self._library_dirs(scope), include=include,
            handler_names=handler_names, collections=_collection_names(kws.get("collections"), where))
        if mod_name in ("meta", "ansible.builtin.meta") and _meta_action(args) == "flush_handlers" \
                and not scope.handler:
            play.flush_points.append(len(play.tasks) + 1)  # after this task (approximate: fixed below)
        if mod_name in ("meta", "ansible.builtin.meta") and _meta_action(args) in META_ONCE \
                and play.strategy != "free" and not task.run_once:
            task.run_once = True  # (Ansible's linear strategy: run for the first host, on behalf of all)
        return task

    def _search_dirs(self, scope: Scope) -> list[str]:
        dirs = []
        if scope.role is not None:
            for role in reversed(scope.role.chain()):
                dirs.append(role.path)
        dirs.append(scope.task_dir)
        dirs.append(scope.play.base_dir)
        out = []
        for d in dirs:
            if d not in out:
                out.append(d)
        return out

    def _library_dirs(self, scope: Scope) -> list[str]:
        dirs = [r.library_dir for r in reversed(scope.role.chain())] if scope.role is not None else []
        dirs += [r.library_dir for r in scope.play.roles]
        dirs.append(os.path.join(scope.play.base_dir, "library"))
        dirs += self.library
        out = []
        for d in dirs:
            if d not in out:
                out.append(d)
        return out

    # -- includes -------------------------------------------------------------------------
    def _include_spec(self, raw, name: str, args: dict, scope: Scope, label: str, looped: bool) -> Include:
        kind = INCLUDE_MODULES[name]
        where = {**position(raw, name), "task": label}
        free = args.pop("_raw_params", None) if isinstance(args, dict) else None
        if kind == "tasks":
            for key in args:
                if key not in ("file", "apply"):
                    raise PlaybookError(f"include_tasks has no option {key!r}", **where, field=key,
                                        fix="write `include_tasks: file.yml` or `include_tasks: {file: …, apply: …}`")
            target = free if free is not None else args.get("file")
        else:
            for key in args:
                if key not in INCLUDE_ROLE_OPTIONS:
                    raise PlaybookError(f"include_role has no option {key!r}", **where, field=key,
                                        fix="options: " + ", ".join(sorted(INCLUDE_ROLE_OPTIONS)))
            target = free if free is not None else args.get("name")
        if not target:
            raise PlaybookError(f"{name} needs a {'file' if kind == 'tasks' else 'role name'}", **where,
                                fix=f"write `{name}: {'tasks.yml' if kind == 'tasks' else 'myrole'}`")
        options = {k: v for k, v in args.items() if k not in ("file", "name")}
        apply = options.get("apply") or {}
        if not isinstance(apply, dict):
            raise PlaybookError("`apply` must be a mapping of keywords", **where, field="apply",
                                fix="write `apply: {tags: [x], become: true}`")
        for key in apply:
            if key not in BLOCK_KEYS - {"block", "rescue", "always", "name", "id"}:
                raise PlaybookError(f"`apply` cannot carry {key!r}", **where, field="apply",
                                    fix="apply takes block keywords: tags, when, become, vars, environment …")
        params = dict(scope.include_params)
        params.update(_mapping(raw, "vars", "task"))
        inner = scope.with_keywords(apply)
        inner = dataclasses.replace(
            inner, when=(*scope.when, *_conditions(apply.get("when"))), tags=(*scope.tags, *_as_list(apply.get("tags"))),
            block_vars=(*scope.block_vars, dict(apply["vars"])) if apply.get("vars") else scope.block_vars,
            include_params=tuple(params.items()),
            origin=(*scope.origin, f"{name} {target} ({_short(scope.file)}:{where.get('line', 0)})"))
        include = Include(kind=kind, target=str(target), options=options, scope=inner)
        templated = "{{" in str(target) or any("{{" in str(v) for v in options.values() if isinstance(v, str))
        if not templated:
            # the body is known now: load it (errors surface before connecting)
            if kind == "tasks":
                self._resolve_tasks_file(str(target), scope, raw, name)
            else:
                self._find_role(str(target), scope, position(raw, name))
            include.static = not looped and not scope.handler
        return include

    def _include_body(self, task: Task, scope: Scope, out: list, handlers: list | None) -> None:
        include = task.include
        if include.kind == "tasks":
            path = self._resolve_tasks_file(include.target, scope, None, "include_tasks", task=task)
            body_scope = dataclasses.replace(scope, file=path, task_dir=os.path.dirname(path))
            self._task_list(self._tasks_file(path, task), body_scope, out, handlers)
        else:
            role_handlers = [] if handlers is not None else None
            self._role(include.target, {}, None, scope, out, role_handlers, options=include.options,
                       dedupe=False, public=bool(_truth(include.options.get("public", False))), task=task)
            if role_handlers:
                if handlers is None:
                    raise PlaybookError("a role included at run time may not bring handlers", **task.where(),
                                        fix="import the role (import_role) so its handlers are known when loading")
                handlers.extend(role_handlers)

    def expand(self, include_task: Task, target: str, prefix: str, params: dict, *,
               handlers_known: bool = True) -> tuple[list[Task], list]:
        """The body of an include (``target`` rendered): fresh tasks whose ids sit under
        ``prefix``, with ``params`` (the loop item, …) as include params. Returns the tasks
        and the (scope, raw handlers) pairs of roles the body brought. At run time
        (``handlers_known``) a role bringing handlers not already known is refused."""
        include = include_task.include
        scope = include.scope
        merged = dict(scope.include_params)
        merged.update(params)
        scope = dataclasses.replace(scope, include_params=tuple(merged.items()), gates=(), handler=False)
        play = include_task.play
        saved_counter = self.counters.get(id(play), 0)
        saved_flush, saved_runtime = list(play.flush_points), self.runtime
        self.counters[id(play)] = 0
        self.runtime = handlers_known
        out: list[Task] = []
        handlers: list = []
        copy = dataclasses.replace(include, target=target)
        fake = dataclasses.replace(include_task, include=copy)
        try:
            self._include_body(fake, scope, out, handlers)
        finally:
            self.counters[id(play)] = saved_counter
            self.runtime = saved_runtime
            if play.flush_points != saved_flush:
                play.flush_points[:] = saved_flush
                flush = next(t for t in out if t.module in ("meta", "ansible.builtin.meta"))
                raise PlaybookError("meta: flush_handlers inside a looped or run-time include is not supported",
                                    **flush.where(), fix="flush handlers outside the include (after it)")
        if handlers and handlers_known:
            known = {h.file for h in play.handlers}
            if any(scope_.file not in known for scope_, items in handlers if items):
                raise PlaybookError(f"the role included here ({target}) brings handlers that were not known when "
                                    "loading", **include_task.where(),
                                    fix="name the role literally (or import it) so its handlers are known")
        renamed = {}
        for task in out:
            new = f"{prefix}/{task.id.split('.', 1)[1] if '.' in task.id else task.id}"
            renamed[task.id] = new
            task.id = new
        for task in out:
            task.gates = tuple(renamed.get(g, g) for g in task.gates)
        return out, handlers

    # -- roles ----------------------------------------------------------------------------
    def _role_entry(self, entry, scope: Scope, out: list, handlers: list, *, dedupe: bool) -> None:
        if isinstance(entry, str):
            entry = Node({"role": entry})
        if not isinstance(entry, dict):
            raise PlaybookError("a `roles:` entry must be a role name or a mapping with `role:`",
                                **(position(entry) or {"file": scope.file, "line": scope.play.line}),
                                fix="write `- myrole` or `- {role: myrole, param: value}`")
        name = entry.get("role", entry.get("name"))
        if not name:
            raise PlaybookError("a `roles:` entry needs `role:`", **position(entry), fix="write `- role: myrole`")
        for key in entry:
            _refuse(entry, key, "role")
        params = {k: v for k, v in entry.items() if k not in ROLE_ENTRY_KEYS}
        inner = scope.with_keywords(entry)
        rvars = _mapping(entry, "vars", "role")
        inner = dataclasses.replace(inner, when=(*scope.when, *_conditions(entry.get("when"))),
                                    tags=(*scope.tags, *_as_list(entry.get("tags"))))
        self._role(str(name), params, entry, inner, out, handlers, options={}, dedupe=dedupe, public=True,
                   inline_vars=rvars)

    def _find_role(self, name: str, scope: Scope, where: dict) -> str:
        where = {k: v for k, v in where.items() if k in ("file", "line")}
        candidates = []
        if os.path.isabs(name) or name.startswith("."):
            candidates.append(os.path.join(scope.play.base_dir, name))
        else:  # as Ansible: a name with a slash (web/server) is searched in the same places
            if scope.role is not None:
                candidates.append(os.path.join(os.path.dirname(scope.role.path), name))
            candidates.append(os.path.join(scope.play.base_dir, "roles", name))
            candidates += [os.path.join(d, name) for d in self.roles_path]
            candidates.append(os.path.join(scope.play.base_dir, name))
        for c in candidates:
            if os.path.isdir(c):
                return os.path.normpath(c)
        if name.count(".") >= 2 and "/" not in name:
            raise PlaybookError(f"role {name!r} looks like a collection role; collections are not supported",
                                **where, fix="install the role under roles/ (or a roles_path directory) by its short name")
        searched = [os.path.dirname(c) for c in candidates]
        raise PlaybookError(f"role {name!r} not found", **where,
                            fix="searched " + ", ".join(dict.fromkeys(searched)) +
                                "; put it in roles/ beside the playbook or set ANSIBLE_ROLES_PATH / ansible.cfg roles_path")

    def _role(self, name: str, params: dict, raw, scope: Scope, out: list, handlers: list | None, *,
              options: dict, dedupe: bool, public: bool, inline_vars: dict | None = None,
              task: Task | None = None, depth: int = 0, dependency: bool = False) -> None:
        if depth > 20:
            raise PlaybookError(f"role dependencies nest too deep at {name!r} (a cycle?)", file=scope.file,
                                fix="remove the circular dependency in meta/main.yml")
        where = position(raw, "role" if "role" in raw else next(iter(raw), None)) if raw is not None else \
            (task.where() if task is not None else {"file": scope.file})
        path = self._find_role(name, scope, where)
        role_name = os.path.basename(path)
        play = scope.play
        if hasattr(modules, "add_search_path"):
            modules.add_search_path(path)  # its library/ and module_utils/, as in Ansible

        def part(sub: str, base: str = "main"):
            return _role_file(path, sub, str(base))

        defaults = self._vars_file(part("defaults", options.get("defaults_from", "main")), "role defaults")
        rvars = dict(inline_vars or {})
        rvars.update(self._vars_file(part("vars", options.get("vars_from", "main")), "role vars"))
        if options.get("tasks_from") and not part("tasks", options["tasks_from"]):
            raise PlaybookError(f"role {role_name!r} has no tasks file {options['tasks_from']!r}",
                                **(task.where() if task else position(raw) if raw is not None else {}),
                                fix=f"check {path}/tasks/")
        role = Role(name=role_name, path=path, defaults=defaults, vars=rvars, params=dict(params),
                    parent=scope.role, public=public, dependency=dependency)
        meta_path = part("meta")
        meta = load(meta_path, PlaybookError, what="role meta") if meta_path else None
        if meta is not None and not isinstance(meta, dict):
            raise PlaybookError("role meta/main.yml must be a mapping", file=meta_path, line=1,
                                fix="write `dependencies: [...]` at the top level")
        meta = meta or {}
        if dedupe and not _truth(meta.get("allow_duplicates", options.get("allow_duplicates", False))):
            key = (path, repr(sorted(params.items(), key=str)))
            if key in self.roles_run[id(play)]:
                return
            self.roles_run[id(play)].append(key)
        role.argument_specs = self._argument_specs(path, meta)
        role_kws = {k: v for k, v in scope.keywords if k != "collections"}
        if meta.get("collections"):
            role_kws["collections"] = _collection_names(meta["collections"], {"file": meta_path, "line": 1})
        role_scope = dataclasses.replace(scope, role=role, origin=(*scope.origin, f"role {role_name}"),
                                         keywords=tuple(role_kws.items()))
        for dep in meta.get("dependencies") or []:
            self._role_entry_dep(dep, role_scope, meta_path, out, handlers, depth)
        if public and not self.runtime:
            play.roles.append(role)
        tasks_path = part("tasks", options.get("tasks_from", "main"))
        if tasks_path:
            inner = dataclasses.replace(role_scope, file=tasks_path, task_dir=os.path.dirname(tasks_path))
            self._task_list(self._tasks_file(tasks_path), inner, out, handlers)
        handlers_path = part("handlers", options.get("handlers_from", "main"))
        if handlers_path:
            data = self._tasks_file(handlers_path)
            hscope = dataclasses.replace(role_scope, file=handlers_path, task_dir=os.path.dirname(handlers_path),
                                         handler=True, when=(), frames=(), gates=())
            if handlers is None:
                if data:
                    raise PlaybookError(f"role {role_name!r} brings handlers, which only roles known when loading may",
                                        **(task.where() if task else {"file": handlers_path}),
                                        fix="import the role (roles: or import_role) instead of including it")
            else:
                handlers.append((hscope, data))

    def _argument_specs(self, path: str, meta: dict) -> dict:
        """The ``main`` entry point's options (meta/argument_specs.yml or meta/main.yml)."""
        specs = meta.get("argument_specs") if isinstance(meta, dict) else None
        spec_path = _role_file(path, "meta", "argument_specs")
        if spec_path:
            data = load(spec_path, PlaybookError, what="role argument specs")
            specs = data.get("argument_specs") if isinstance(data, dict) else None
        if not isinstance(specs, dict):
            return {}
        main = specs.get("main") or {}
        return dict(main.get("options") or {}) if isinstance(main, dict) else {}

    def _role_entry_dep(self, dep, role_scope: Scope, meta_path: str, out: list, handlers, depth: int) -> None:
        if isinstance(dep, str):
            dep = Node({"role": dep})
        if not isinstance(dep, dict) or not (dep.get("role") or dep.get("name")):
            raise PlaybookError("a role dependency must be a role name or a mapping with `role:`",
                                file=meta_path, line=getattr(dep, "line", 1), fix="write `- role: other`")
        params = {k: v for k, v in dep.items() if k not in ROLE_ENTRY_KEYS}
        inner = role_scope.with_keywords(dep)
        inner = dataclasses.replace(inner, when=(*role_scope.when, *_conditions(dep.get("when"))),
                                    tags=(*role_scope.tags, *_as_list(dep.get("tags"))))
        self._role(str(dep.get("role") or dep.get("name")), params, dep, inner, out, handlers, options={},
                   dedupe=True, public=True, inline_vars=_mapping(dep, "vars", "role"), depth=depth + 1,
                   dependency=True)

    # -- files ---------------------------------------------------------------------------
    def _resolve_tasks_file(self, target: str, scope: Scope, raw, key: str, task: Task | None = None) -> str:
        bases = [scope.task_dir]
        if scope.role is not None:
            bases += [os.path.join(scope.role.path, "tasks"), scope.role.path]
        bases.append(scope.play.base_dir)
        for base in bases:
            candidate = os.path.normpath(os.path.join(base, os.path.expanduser(target)))
            if os.path.isfile(candidate):
                return candidate
        where = position(raw, key) if raw is not None else (task.where() if task else {"file": scope.file})
        where.pop("task", None)
        raise PlaybookError(f"{key}: tasks file {target!r} not found", **where,
                            fix="searched " + ", ".join(dict.fromkeys(bases)))

    def _tasks_file(self, path: str, task: Task | None = None):
        if path not in self.task_files:
            data = load(path, PlaybookError, what="tasks file")
            if data is not None and not isinstance(data, list):
                raise PlaybookError("a tasks file must be a YAML list of tasks", **(position(data) or {"file": path}),
                                    fix="start each task with `- name: …`")
            self.task_files[path] = data or []
        return self.task_files[path]

    def _vars_file(self, path: str | None, what: str) -> dict:
        if not path:
            return {}
        if os.path.isdir(path):
            out: dict = {}
            for name in sorted(os.listdir(path)):
                if name.endswith((".yml", ".yaml", ".json")) or "." not in name:
                    out.update(self._vars_file(os.path.join(path, name), what))
            return out
        data = load_vars(path, what)
        return dict(data)


def find_in_dirs(search_dirs, sub: str, path: str) -> str | None:
    """The controller file ``path`` names for a task whose ``search_dirs`` these are (its
    roles', its own directory, the playbook's), each with ``sub`` (``templates``,
    ``files``, ``vars``) first; an absolute path if it exists. None: not found."""
    if os.path.isabs(path):
        return path if os.path.exists(path) else None
    for base in search_dirs:
        for candidate in (os.path.join(base, sub, path), os.path.join(base, path)):
            if os.path.exists(candidate):
                return os.path.normpath(candidate)
    return None


def load_vars(path: str, what: str = "vars file") -> dict:
    """A YAML mapping of variables (vault-aware when the vars loader is installed)."""
    try:
        from gfsdeploy import varsfiles  # type: ignore[attr-defined]
    except ImportError:
        varsfiles = None
    if varsfiles is not None and hasattr(varsfiles, "load_vars_file"):
        data = varsfiles.load_vars_file(path)
    else:
        data = load(path, PlaybookError, what=what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PlaybookError(f"a {what} file must be a mapping", **(position(data) or {"file": path, "line": 1}),
                            fix="write `key: value` pairs at the top level")
    return data


def _role_file(path: str, sub: str, base: str) -> str | None:
    """``<role>/<sub>/<base>`` with Ansible's extensions (main.yml, main.yaml, main, main.json)."""
    directory = os.path.join(path, sub)
    for ext in TASK_FILE_EXTS:
        candidate = os.path.join(directory, base + ext)
        if os.path.isfile(candidate) or (sub == "vars" and ext == "" and os.path.isdir(candidate)):
            return candidate
    return None


def _check_exists(path: str, raw, key, what: str) -> None:
    if not os.path.exists(path):
        raise PlaybookError(f"{what} {path} not found", **position(raw, key), field=key, fix="check the path")


# -- helpers for keywords ----------------------------------------------------------------------
def _refuse(raw, key, kind: str) -> None:
    if key in REFUSED:
        raise PlaybookError(f"{kind} keyword `{key}` is not supported by gfsdeploy", **position(raw, key), field=key,
                            fix=REFUSED[key])


BOOLEAN_KEYWORDS = ("become", "ignore_errors", "ignore_unreachable", "no_log", "run_once", "any_errors_fatal",
                    "gather_facts", "force_handlers", "delegate_facts", "check_mode", "diff")


def _check_booleans(raw) -> None:
    """A boolean keyword written literally must be a boolean (Ansible refuses `become: maybe`)."""
    for key in BOOLEAN_KEYWORDS:
        if key not in raw or raw[key] is None or isinstance(raw[key], bool):
            continue
        value = raw[key]
        if isinstance(value, str) and ("{{" in value or value.strip().lower() in
                                       ("yes", "no", "true", "false", "on", "off", "1", "0", "y", "n")):
            continue
        if isinstance(value, int) and value in (0, 1):
            continue
        raise PlaybookError(f"`{key}` must be true or false, got {value!r}", **position(raw, key), field=key,
                            fix=f"write `{key}: true`, `{key}: false` or a template that gives one")


def _truth(value):
    if isinstance(value, str) and "{{" not in value:
        low = value.strip().lower()
        if low in ("yes", "true", "on", "1", "y"):
            return True
        if low in ("no", "false", "off", "0", "n", ""):
            return False
    return value


def _conditions(value) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return list(value)
    return [value]


def _mapping(raw, key: str, kind: str) -> dict:
    value = raw.get(key) if isinstance(raw, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PlaybookError(f"{kind} `{key}` must be a mapping", **position(raw, key), field=key,
                            fix=f"write `key: value` pairs under `{key}:`")
    return value


def _module_key(raw, scope: Scope):
    keys = [k for k in raw if k not in TASK_KEYS and not str(k).startswith("with_")]
    if "action" in raw or "local_action" in raw:
        key = "action" if "action" in raw else "local_action"
        value = raw[key]
        if isinstance(value, dict):
            return (str(value.get("module", "")), key)
        if isinstance(value, str) and value.split():
            return (value.split()[0], key)
        return None
    return (str(keys[0]), keys[0]) if len(keys) == 1 else None


def _module_and_args(raw, scope: Scope, label: str):
    """The module name, its argument mapping, and keywords the form implies (local_action)."""
    kind = "handler" if scope.handler else "task"
    extra_kw = {}
    where = position(raw)
    if "action" in raw or "local_action" in raw:
        key = "action" if "action" in raw else "local_action"
        if "action" in raw and "local_action" in raw:
            raise PlaybookError("a task has either `action` or `local_action`", **position(raw, "local_action"),
                                task=label, fix="keep one")
        others = [k for k in raw if k not in TASK_KEYS and not str(k).startswith("with_")]
        if others:
            raise PlaybookError(f"{kind} {label!r} has `{key}` and a module key {others[0]!r}",
                                **position(raw, others[0]), task=label, fix="keep one of them")
        value = raw[key]
        if isinstance(value, dict):
            if "module" not in value:
                raise PlaybookError(f"`{key}` as a mapping needs `module:`", **position(raw, key), task=label,
                                    fix=f"write `{key}: {{module: copy, src: a, dest: b}}`")
            name = str(value["module"])
            args = Node({k: v for k, v in value.items() if k != "module"})
            args.file, args.line = where.get("file", ""), position(raw, key).get("line", 0)
        elif isinstance(value, str) and value.strip():
            name, _, rest = value.strip().partition(" ")
            name = name.strip()
            args = rest.strip()
        else:
            raise PlaybookError(f"`{key}` needs a module", **position(raw, key), task=label,
                                fix=f"write `{key}: module arg=value`")
        if key == "local_action":
            extra_kw["delegate_to"] = "localhost"
        mod_key = key
    else:
        keys = [k for k in raw if k not in TASK_KEYS and not str(k).startswith("with_")]
        if not keys:
            raise PlaybookError(f"{kind} {label!r} has no module", **where, task=label,
                                fix=f"add one module, e.g. `copy:` or `command:`; available: {', '.join(modules.names())}")
        if len(keys) > 1:
            known = [k for k in keys if _known_module(str(k), scope)]
            unknown = [k for k in keys if not _known_module(str(k), scope)]
            if unknown:
                key = unknown[0]
                raise PlaybookError(f"unknown module or task keyword {key!r}", **position(raw, key), task=label,
                                    field=key, fix=_suggest(str(key), TASK_KEYS))
            raise PlaybookError(f"{kind} {label!r} has more than one module: {', '.join(map(str, known))}",
                                **position(raw, known[1]), task=label, fix="split it into one task per module")
        mod_key = keys[0]
        name = str(mod_key)
        args = raw[mod_key]
    if "collections" in raw:
        scope = dataclasses.replace(scope, keywords=(*[kv for kv in scope.keywords if kv[0] != "collections"],
                                                     ("collections", raw["collections"])))
    if not _known_module(name, scope) and name not in ("meta", "ansible.builtin.meta"):
        try:
            from gfsdeploy.ansible_protocol import refusal
        except ImportError:
            refusal = None
        refused = refusal(name) if refusal is not None else None
        if refused is not None:
            raise PlaybookError(refused.message, **position(raw, mod_key), task=label, field=name, fix=refused.fix)
        raise PlaybookError(f"unknown module {name!r}", **position(raw, mod_key), task=label, field=name,
                            fix=_suggest(name))
    if isinstance(args, str) and name in (*IMPORT_MODULES, *INCLUDE_MODULES, "meta", "ansible.builtin.meta"):
        kv, words = parse_kv(args) if "=" in args else ({}, [args])
        args = {**kv, **({"_raw_params": " ".join(words)} if words else {})}
        return name, args, extra_kw
    if name in (*IMPORT_MODULES, *INCLUDE_MODULES, "meta", "ansible.builtin.meta"):
        if args is not None and not isinstance(args, dict):
            raise PlaybookError(f"arguments of {name!r} must be a mapping or a string", **position(raw, mod_key),
                                task=label, fix=f"write `{name}: file.yml`")
        return name, dict(args or {}), extra_kw
    module = _get_module(name, scope)
    args = normalise_args(module, args, raw.get("args"), where={**position(raw, mod_key), "task": label})
    return name, args, extra_kw


def _known_module(name: str, scope: Scope) -> bool:
    if name in IMPORT_MODULES or name in INCLUDE_MODULES or name in ("meta", "ansible.builtin.meta"):
        return True
    return _get_module(name, scope) is not None


def _get_module(name: str, scope: Scope):
    """A native module, else an Ansible module from the task's role (and its parents')
    library/, the play's roles', the playbook's library/ or the configured library."""
    dirs = [r.library_dir for r in reversed(scope.role.chain())] if scope.role is not None else []
    dirs += [r.library_dir for r in scope.play.roles]
    dirs.append(os.path.join(scope.play.base_dir, "library"))
    dirs += configured_paths("library", "ANSIBLE_LIBRARY")
    found = [d for d in dirs if os.path.isdir(d)]
    collections = _collection_names(scope.kw().get("collections"), {"file": scope.file})
    try:
        return modules.get(name, found, collections) if collections else modules.get(name, found)
    except TypeError:  # a registry without library lookup
        return modules.get(name)


def _collection_names(value, where: dict) -> list:
    """The ``collections:`` keyword as a list of collection names (Ansible accepts one name too)."""
    if value is None or value == []:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n.count(".") == 1 for n in names):
        raise PlaybookError(f"`collections` must list collection names (namespace.collection), got {value!r}",
                            **where, field="collections", fix="write e.g. `collections: [community.general]`")
    return [str(n) for n in names]


def _check_args(module, args, raw, mod_name: str, label: str):
    if isinstance(args, dict) and not getattr(module, "free_keys", False):
        for key in args:
            if key not in module.params and not any(key in p.aliases for p in module.params.values()):
                from gfsdeploy.modules.base import _closest

                close = _closest(str(key), list(module.params))
                raise PlaybookError(f"module {module.name!r} has no argument {key!r}",
                                    **position(raw, mod_name if mod_name in raw else
                                               ("action" if "action" in raw else "local_action")),
                                    task=label, field=str(key),
                                    fix=(f"did you mean {close!r}? " if close else "") +
                                    f"valid arguments: {', '.join(sorted(module.params))}")
    return args


def _include_args(raw, name: str, scope: Scope):
    _, args, _ = _module_and_args(raw, scope, str(raw.get("name") or name))
    free = args.pop("_raw_params", None)
    return args, free


def _loop(raw, label: str):
    withs = [k for k in raw if str(k).startswith("with_")]
    if "loop" in raw and withs:
        raise PlaybookError("a task has either `loop` or `with_…`", **position(raw, withs[0]), task=label,
                            fix="keep one of them")
    if len(withs) > 1:
        raise PlaybookError(f"a task can have one `with_…`, got {', '.join(withs)}", **position(raw, withs[1]),
                            task=label, fix="keep one of them")
    if withs:
        lookup = str(withs[0])[5:]
        if lookup not in LOOP_LOOKUPS:
            raise PlaybookError(f"`with_{lookup}` is not supported", **position(raw, withs[0]), task=label,
                                field=withs[0], fix="supported: " + ", ".join(f"with_{x}" for x in LOOP_LOOKUPS)
                                + "; or use `loop:` with a filter")
        return raw[withs[0]], lookup
    if "loop" in raw:
        return raw["loop"], None
    return None, None


LOOP_CONTROL_KEYS = {"loop_var", "index_var", "label", "extended", "extended_allitems", "pause", "break_when"}


def _loop_control(raw, label: str) -> dict:
    value = raw.get("loop_control")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PlaybookError("`loop_control` must be a mapping", **position(raw, "loop_control"), task=label,
                            fix="write `loop_control: {loop_var: x}`")
    for key in value:
        if key not in LOOP_CONTROL_KEYS:
            raise PlaybookError(f"loop_control has no {key!r}", **position(raw, "loop_control"), task=label,
                                field=key, fix="valid: " + ", ".join(sorted(LOOP_CONTROL_KEYS)))
    if "loop" not in raw and not any(str(k).startswith("with_") for k in raw):
        raise PlaybookError("`loop_control` without a loop", **position(raw, "loop_control"), task=label,
                            fix="add `loop:` or remove `loop_control:`")
    for key in ("loop_var", "index_var"):
        if key in value and (not isinstance(value[key], str) or not value[key].isidentifier()):
            raise PlaybookError(f"loop_control `{key}` must be a variable name, got {value[key]!r}",
                                **position(raw, "loop_control"), task=label, field=key, fix=f"write `{key}: name`")
    return dict(value)


META_ACTIONS = {"flush_handlers", "noop", "end_play", "end_host", "end_batch", "clear_host_errors", "refresh_inventory",
                "clear_facts", "reset_connection", "end_role"}
META_SUPPORTED = {"flush_handlers", "noop", "end_play", "end_host", "end_batch", "clear_host_errors",
                  "clear_facts", "reset_connection", "end_role"}


#: meta actions for every host at once: Ansible's linear strategy runs them once, for the
#: batch's first host (their `when` judged for that host), acting on all the play's hosts
META_ONCE = {"end_play", "end_batch", "clear_host_errors", "clear_facts"}


def _meta_action(args) -> str:
    if isinstance(args, dict):
        return str(args.get("_raw_params") or args.get("free_form") or "")
    return str(args or "")


def _check_meta(raw, args, label: str) -> None:
    action = _meta_action(args)
    if action not in META_ACTIONS:
        raise PlaybookError(f"meta: {action!r} is not a meta action", **position(raw), task=label,
                            fix="use one of: " + ", ".join(sorted(META_ACTIONS)))
    if action not in META_SUPPORTED:
        raise PlaybookError(f"meta: {action} is not supported by gfsdeploy", **position(raw), task=label,
                            fix="remove it (the inventory is read once per run)")


def normalise_args(module, args, extra_args, where: dict):
    """Ansible's argument forms: a mapping, a free-form string, or ``k=v`` pairs (quoted
    values, ``k={{ x }}``, escapes — as Ansible splits them)."""
    if args is None:
        args = {}
    if isinstance(args, str):
        if module.free_form:
            args = {module.free_form: args}
        else:
            try:
                options, words = parse_kv(args)
            except ValueError as exc:
                raise PlaybookError(f"cannot parse arguments of {module.name!r}: {exc}", **where,
                                    fix="write the arguments as a YAML mapping") from None
            if words:
                raise PlaybookError(f"module {module.name!r} takes key=value arguments, got {words[0]!r}", **where,
                                    fix="write the arguments as a YAML mapping under the module name")
            args = options
    if not isinstance(args, dict):
        raise PlaybookError(f"arguments of {module.name!r} must be a mapping, got {type(args).__name__}", **where,
                            fix="indent `key: value` arguments under the module name")
    if extra_args:
        if not isinstance(extra_args, dict):
            raise PlaybookError("`args` must be a mapping", **where, fix="write `args: {key: value}`")
        args = {**extra_args, **args}
    if isinstance(args, Node):
        return args
    node = Node(args)
    node.file, node.line = where.get("file", ""), where.get("line", 0)
    return node


def _suggest(name: str, extra=()) -> str:
    from gfsdeploy.modules.base import _closest

    from gfsdeploy.ansible_protocol import ansible_core

    close = _closest(name, [*modules.names(), *extra])
    where = ("a library/ directory beside the playbook or role, ansible-core or an installed collection"
             if ansible_core() else "a library/ directory beside the playbook or role (ansible-core's own "
             "modules need `pip install 'gfsdeploy[ansible]'`)")
    return (f"did you mean {close!r}? " if close else "") + f"available modules: {', '.join(modules.names())}; " \
        f"any other Ansible module runs when it is in {where}"


def load_playbook(path: str) -> Playbook:
    return Loader().load_playbook(path)
