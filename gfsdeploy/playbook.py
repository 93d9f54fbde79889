"""Ansible's playbook shape: plays of tasks with one module each, plus
gfsdeploy's ``needs:`` and ``id``. Loading checks structure, module names and
argument names (values are checked after rendering, per host)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from gfsdeploy import modules
from gfsdeploy.errors import PlaybookError
from gfsdeploy.yamlload import Node, load, position

PLAY_KEYS = {"name", "hosts", "vars", "tasks", "handlers", "become", "become_user", "gather_facts",
             "tags", "needs", "id", "serial", "any_errors_fatal", "vars_files", "pre_tasks",
             "post_tasks", "environment", "strategy", "force_handlers", "max_fail_percentage",
             "ignore_unreachable", "order", "remote_user", "connection", "check_mode"}
TASK_KEYS = {"name", "id", "when", "loop", "with_items", "with_list", "loop_control", "tags", "notify",
             "register", "retries", "until", "delay", "changed_when", "failed_when", "ignore_errors",
             "become", "become_user", "needs", "no_log", "run_once", "vars", "listen", "check_mode",
             "environment", "delegate_to", "args", "timeout"}
IGNORED_PLAY_KEYS = {"gather_facts", "serial", "strategy", "order", "any_errors_fatal",
                     "max_fail_percentage", "ignore_unreachable", "environment"}


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
    when: object = None
    loop: object = None
    loop_var: str = "item"
    loop_label: object = None
    tags: list = field(default_factory=list)
    notify: list = field(default_factory=list)
    register: str | None = None
    retries: int | None = None
    until: object = None
    delay: float = 5.0
    changed_when: object = None
    failed_when: object = None
    ignore_errors: bool = False
    become: bool | None = None
    become_user: str | None = None
    needs: list = field(default_factory=list)
    no_log: bool = False
    run_once: bool = False
    vars: dict = field(default_factory=dict)
    check_mode: object = None
    is_handler: bool = False
    listen: list = field(default_factory=list)
    timeout: float | None = None

    @property
    def label(self) -> str:
        return self.name or f"{self.module} #{self.index + 1}"

    def where(self) -> dict:
        return {"file": self.file, "line": self.line, "task": self.label}

    @property
    def all_tags(self) -> set:
        return set(self.tags) | set(self.play.tags)


@dataclass
class Play:
    name: str
    hosts: object
    index: int
    file: str
    line: int
    id: str = ""
    vars: dict = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    become: bool = False
    become_user: str = "root"
    tags: list = field(default_factory=list)
    needs: list | None = None
    base_dir: str = "."

    def where(self) -> dict:
        return {"file": self.file, "line": self.line}


@dataclass
class Playbook:
    path: str
    plays: list[Play]

    def tasks(self):
        for play in self.plays:
            yield from play.tasks
            yield from play.handlers


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def load_playbook(path: str) -> Playbook:
    plays: list[Play] = []
    _load_into(path, plays, seen=[])
    ids: dict[str, Task] = {}
    for play in plays:
        for task in [*play.tasks, *play.handlers]:
            if task.id in ids and task.id != "":
                other = ids[task.id]
                raise PlaybookError(f"task id {task.id!r} is used twice (also {other.file}:{other.line})",
                                    **task.where(), field="id", fix="give each task a unique `id:`")
            ids[task.id] = task
    return Playbook(path=path, plays=plays)


def _load_into(path: str, plays: list[Play], seen: list[str]) -> None:
    real = os.path.realpath(path)
    if real in seen:
        raise PlaybookError("import_playbook loop: " + " -> ".join([*seen, real]), file=path,
                            fix="remove the circular import_playbook")
    data = load(path, PlaybookError, what="playbook")
    if not isinstance(data, list):
        raise PlaybookError("a playbook must be a YAML list of plays", **(position(data) or {"file": path, "line": 1}),
                            fix="start each play with `- name: …` / `hosts: …`")
    base = os.path.dirname(os.path.abspath(path))
    modules.add_search_path(base)  # its library/ and module_utils/, as in Ansible
    for raw in data:
        if isinstance(raw, dict) and ("import_playbook" in raw or "ansible.builtin.import_playbook" in raw):
            target = raw.get("import_playbook") or raw.get("ansible.builtin.import_playbook")
            _load_into(os.path.join(base, str(target)), plays, [*seen, real])
            continue
        plays.append(_load_play(raw, len(plays), path, base))


def _load_play(raw, index: int, path: str, base: str) -> Play:
    if not isinstance(raw, dict):
        raise PlaybookError(f"play #{index + 1} must be a mapping, got {type(raw).__name__}", file=path,
                            line=getattr(raw, "line", None), fix="write `- hosts: …` with `tasks:` under it")
    for key in raw:
        if key not in PLAY_KEYS and key != "import_playbook":
            hint = " (tasks go under `tasks:`)" if modules.get(str(key)) else ""
            raise PlaybookError(f"unknown play key {key!r}{hint}", **position(raw, key), field=key,
                                fix=f"valid play keys: {', '.join(sorted(PLAY_KEYS - IGNORED_PLAY_KEYS))}")
    if "hosts" not in raw:
        raise PlaybookError("play has no `hosts:`", **position(raw), field="hosts",
                            fix="add `hosts: all` or a group name such as `hosts: webservers`")
    pvars = raw.get("vars") or {}
    if not isinstance(pvars, dict):
        raise PlaybookError("play `vars` must be a mapping", **position(raw, "vars"), field="vars",
                            fix="write `key: value` pairs under `vars:`")
    for vf in _as_list(raw.get("vars_files")):
        vpath = os.path.join(base, str(vf))
        loaded = load(vpath, PlaybookError, what="vars file")
        if not isinstance(loaded, dict):
            raise PlaybookError("a vars file must be a mapping", file=vpath, line=1, fix="write `key: value` pairs")
        pvars = {**loaded, **pvars}
    play = Play(name=str(raw.get("name") or f"play #{index + 1}"), hosts=raw["hosts"], index=index,
                file=path, line=position(raw).get("line", 0), id=str(raw.get("id") or ""),
                vars=dict(pvars), become=bool(raw.get("become", False)),
                become_user=str(raw.get("become_user", "root")), tags=_as_list(raw.get("tags")),
                needs=_as_list(raw["needs"]) if "needs" in raw else None, base_dir=base)
    for section in ("pre_tasks", "tasks", "post_tasks"):
        items = raw.get(section) or []
        if not isinstance(items, list):
            raise PlaybookError(f"`{section}` must be a list of tasks", **position(raw, section), field=section,
                                fix="start each task with `- name: …`")
        for item in items:
            play.tasks.append(_load_task(item, play, len(play.tasks), path, handler=False))
    for item in raw.get("handlers") or []:
        play.handlers.append(_load_task(item, play, len(play.handlers), path, handler=True))
    return play


def _load_task(raw, play: Play, index: int, path: str, *, handler: bool) -> Task:
    kind = "handler" if handler else "task"
    if not isinstance(raw, dict):
        raise PlaybookError(f"{kind} #{index + 1} of play {play.name!r} must be a mapping",
                            file=path, line=getattr(raw, "line", play.line),
                            fix="write `- name: …` then the module on the next line, indented the same")
    where = position(raw)
    label = str(raw.get("name") or f"{kind} #{index + 1}")
    if "block" in raw or "include_tasks" in raw or "import_tasks" in raw:
        raise PlaybookError(f"{kind} {label!r}: block/include_tasks/import_tasks are not supported",
                            **where, fix="list the tasks directly in the play")
    module_keys = [k for k in raw if k not in TASK_KEYS]
    if not module_keys:
        raise PlaybookError(f"{kind} {label!r} has no module", **where, task=label,
                            fix=f"add one module, e.g. `copy:` or `command:`; available: {', '.join(modules.names())}")
    if len(module_keys) > 1:
        known = [k for k in module_keys if modules.get(str(k))]
        unknown = [k for k in module_keys if not modules.get(str(k))]
        if unknown:
            key = unknown[0]
            raise PlaybookError(f"unknown module or task keyword {key!r}", **position(raw, key), task=label,
                                field=key, fix=_suggest(str(key)))
        raise PlaybookError(f"{kind} {label!r} has more than one module: {', '.join(map(str, known))}",
                            **position(raw, known[1]), task=label, fix="split it into one task per module")
    mod_name = str(module_keys[0])
    module = modules.get(mod_name)
    if module is None:
        from gfsdeploy.ansible_protocol import refusal

        refused = refusal(mod_name)
        if refused is not None:
            raise PlaybookError(refused.message, **position(raw, mod_name), task=label, field=mod_name,
                                fix=refused.fix)
        raise PlaybookError(f"unknown module {mod_name!r}", **position(raw, mod_name), task=label,
                            field=mod_name, fix=_suggest(mod_name))
    args = raw[mod_name]
    args = _normalise_args(module, args, raw.get("args"), where={**position(raw, mod_name), "task": label})
    if isinstance(args, dict):
        for key in args:
            if key not in module.params and not any(key in p.aliases for p in module.params.values()):
                from gfsdeploy.modules.base import _closest

                close = _closest(str(key), list(module.params))
                raise PlaybookError(f"module {module.name!r} has no argument {key!r}",
                                    **position(raw, mod_name), task=label, field=str(key),
                                    fix=(f"did you mean {close!r}? " if close else "") +
                                    f"valid arguments: {', '.join(sorted(module.params))}")
    loop = raw.get("loop", raw.get("with_items", raw.get("with_list")))
    loop_control = raw.get("loop_control") or {}
    task_id = str(raw.get("id") or f"{play.index + 1}.{'h' if handler else ''}{index + 1}")

    def number(key, cast, default):
        if key not in raw:
            return default
        try:
            return cast(raw[key])
        except (TypeError, ValueError):
            raise PlaybookError(f"`{key}` must be a number, got {raw[key]!r}", **position(raw, key), task=label,
                                field=key, fix=f"write e.g. `{key}: 5`") from None

    register = raw.get("register")
    if register is not None and (not isinstance(register, str) or not register.isidentifier()):
        raise PlaybookError(f"`register` must be a variable name, got {register!r}", **position(raw, "register"),
                            task=label, field="register", fix="use letters, digits and _ e.g. `register: result`")
    tvars = raw.get("vars") or {}
    if not isinstance(tvars, dict):
        raise PlaybookError("task `vars` must be a mapping", **position(raw, "vars"), task=label,
                            field="vars", fix="write `key: value` pairs under `vars:`")
    return Task(
        id=task_id, name=str(raw.get("name") or ""), module=mod_name, args=args, play=play, index=index,
        file=path, line=where.get("line", 0), when=raw.get("when"), loop=loop,
        loop_var=str(loop_control.get("loop_var", "item")) if isinstance(loop_control, dict) else "item",
        loop_label=loop_control.get("label") if isinstance(loop_control, dict) else None,
        tags=_as_list(raw.get("tags")), notify=_as_list(raw.get("notify")), register=register,
        retries=number("retries", int, None), until=raw.get("until"), delay=number("delay", float, 5.0),
        changed_when=raw.get("changed_when"), failed_when=raw.get("failed_when"),
        ignore_errors=bool(raw.get("ignore_errors", False)),
        become=raw.get("become") if "become" in raw else None, become_user=raw.get("become_user"),
        needs=_as_list(raw.get("needs")), no_log=bool(raw.get("no_log", False)),
        run_once=bool(raw.get("run_once", False)), vars=dict(tvars), check_mode=raw.get("check_mode"),
        is_handler=handler, listen=_as_list(raw.get("listen")), timeout=number("timeout", float, None))


def _normalise_args(module, args, extra_args, where: dict):
    """Ansible's argument forms: a mapping, a free-form string, or ``k=v`` pairs."""
    if args is None:
        args = {}
    if isinstance(args, str):
        if module.free_form:
            args = {module.free_form: args}
        else:
            try:
                pairs = shlex.split(args)
            except ValueError as exc:
                raise PlaybookError(f"cannot parse arguments of {module.name!r}: {exc}", **where,
                                    fix="write the arguments as a YAML mapping") from None
            out = {}
            for pair in pairs:
                key, eq, value = pair.partition("=")
                if not eq:
                    raise PlaybookError(f"module {module.name!r} takes key=value arguments, got {pair!r}", **where,
                                        fix="write the arguments as a YAML mapping under the module name")
                out[key] = value
            args = out
    if not isinstance(args, dict):
        raise PlaybookError(f"arguments of {module.name!r} must be a mapping, got {type(args).__name__}", **where,
                            fix="indent `key: value` arguments under the module name")
    if extra_args:
        args = {**extra_args, **args}
    return Node(args) if not isinstance(args, Node) else args


def _suggest(name: str) -> str:
    from gfsdeploy.modules.base import _closest

    from gfsdeploy.ansible_protocol import ansible_core

    close = _closest(name, modules.names())
    where = ("a library/ directory beside the playbook or role, ansible-core or an installed collection"
             if ansible_core() else "a library/ directory beside the playbook or role (ansible-core's own "
             "modules need `pip install 'gfsdeploy[ansible]'`)")
    return (f"did you mean {close!r}? " if close else "") + f"available modules: {', '.join(modules.names())}; " \
        f"any other Ansible module runs when it is in {where}"
