"""Find the mistakes in a playbook before connecting to any host.

``gfsdeploy check`` and the start of ``plan``/``apply`` run this: module
arguments (required, unknown, types and choices of the values written
literally), Jinja syntax, unknown filters and tests, files named by ``src:``,
and variables that nothing can define (inventory, play/task vars, vars files,
``register``, ``set_fact``, facts, loop variables, magic variables, ``-e``).
Each problem is reported once, with file:line and the fix; a host that is down
never hides a mistake in a file.

A name is only "undefined" when no source could define it: a use guarded by
``| default(…)``, ``is defined`` or ``is undefined`` is fine, and a play that
loads variables from a file whose name is only known at run time
(``include_vars`` with a template) is not checked for undefined names.
"""

from __future__ import annotations

import os
import re

from gfsdeploy import modules
from gfsdeploy.errors import GfsError, PlaybookError, TemplateError
from gfsdeploy.templating.analysis import check_template

#: Ansible's magic variables and Jinja's globals: always defined
MAGIC = frozenset({
    "inventory_hostname", "inventory_hostname_short", "groups", "hostvars", "group_names", "play_hosts",
    "playbook_dir", "inventory_dir", "inventory_file", "role_path", "role_name", "role_names", "omit",
    "environment", "vars", "item", "range", "lipsum", "dict", "cycler", "joiner", "namespace", "lookup",
    "query", "q", "now", "undef", "true", "false", "none", "True", "False", "None",
})
#: expressions that are bare Jinja (no braces): Ansible's conditionals
BARE = ("when", "changed_when", "failed_when", "until")


class ValidationError(PlaybookError):
    """The playbook has mistakes found before connecting; ``problems`` lists each once."""

    def __init__(self, problems: list[GfsError]):
        super().__init__(f"{len(problems)} problem(s) in the playbook")
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def check(playbook, inventory, *, extra_vars: dict | None = None) -> list[GfsError]:
    """Every problem found in ``playbook`` (run against ``inventory``), each once."""
    return check_all(playbook, inventory, extra_vars=extra_vars)[0]


def check_all(playbook, inventory, *, extra_vars: dict | None = None) -> tuple[list[GfsError], list[GfsError]]:
    """(problems, warnings). A warning is a Jinja syntax error in a task that runs only
    under a condition (its own ``when``, or an include's): Ansible fails there only if
    the task runs — often a role written for Jinja 2 (``default(0700)``) on a path
    nobody takes. If it does run, rendering it is a hard error then."""
    checker = _Checker(playbook, inventory, extra_vars or {})
    checker.run()
    return checker.problems, checker.warnings


class _Checker:
    def __init__(self, playbook, inventory, extra_vars: dict):
        self.playbook = playbook
        self.problems: list[GfsError] = []
        self.warnings: list[GfsError] = []
        self._seen: set = set()
        self._conditional = False  # the task being checked runs only under a condition
        self._conditional_includes = {t.id for t in playbook.tasks()
                                      if getattr(t, "include", None) is not None and t.when}
        defined = set(extra_vars) | MAGIC
        for host in inventory.hosts.values():
            defined.update(host.vars)
        for task in playbook.tasks():
            if task.register:
                defined.add(task.register)
            defined.update(_set_fact_names(task))
        self.defined_everywhere = defined

    # -- reporting ----------------------------------------------------------------
    def problem(self, error: GfsError) -> None:
        key = (error.file, error.line, error.message)
        if key not in self._seen:
            self._seen.add(key)
            self.problems.append(error)

    # -- walking the playbook -------------------------------------------------------
    def run(self) -> None:
        for play in self.playbook.plays:
            play_defined = set(self.defined_everywhere) | set(play.vars)
            dynamic_vars = False
            tasks = _play_tasks(play)
            names = _vars_files_names(play)
            if names is None:
                dynamic_vars = True
            else:
                play_defined.update(names)
            for role in play.roles:
                play_defined.update(role.defaults)
                play_defined.update(role.vars)
            for task in tasks:
                play_defined.update(task.vars)
                play_defined.update(task.include_params)
                for block_vars in task.block_vars:
                    play_defined.update(block_vars)
                for role in task.role_chain:
                    play_defined.update(role.defaults)
                    play_defined.update(role.vars)
                    play_defined.update(role.params)
                if task.include is not None and task.loop is not None:
                    play_defined.add(task.loop_var)  # the item, for the tasks the include brings
                    play_defined.update(v for v in [task.loop_control.get("index_var")] if v)
                if task.module in ("include_vars", "ansible.builtin.include_vars"):
                    names = _include_vars_names(task)
                    if names is None:
                        dynamic_vars = True
                    else:
                        play_defined.update(names)
            for key, value in play.vars.items():
                self.template(value, play_defined, where=play.where(), what=f"play vars {key!r}",
                              check_names=not dynamic_vars)
            for task in tasks:
                self.task(task, play_defined, check_names=not dynamic_vars)
            self.notifications(play)

    def notifications(self, play) -> None:
        """Every ``notify`` names a handler of the play (its name or a ``listen``)."""
        known = {h.name for h in play.handlers} | {t for h in play.handlers for t in h.listen} | \
            {n for h in play.handlers for n in getattr(h, "handler_names", ())}
        for task in play.tasks:
            for name in task.notify:
                if not _templated(name) and name not in known:
                    self.problem(PlaybookError(
                        f"notify: no handler named {name!r} in this play", **task.where(), field="notify",
                        fix="use a handler's `name` or `listen`" +
                            (f"; handlers: {', '.join(sorted(known))}" if known else "; the play has no handlers")))

    def task(self, task, defined: set, *, check_names: bool) -> None:
        self._conditional = bool(task.when) or any(g in self._conditional_includes for g in task.gates)
        try:
            self._task(task, defined, check_names=check_names)
        finally:
            self._conditional = False

    def _task(self, task, defined: set, *, check_names: bool) -> None:
        where = task.where()
        names = set(defined) | {task.loop_var, "ansible_loop", "ansible_loop_var"} | self.guarded_by_when(task)
        index_var = (getattr(task, "loop_control", None) or {}).get("index_var")
        if index_var:
            names.add(index_var)
        module = modules.get(task.module, getattr(task, "library_dirs", None) or (),
                             getattr(task, "collections", None) or ()) if task.include is None else None
        if module is not None and isinstance(task.args, dict):
            self.arguments(task, module, where)
        self.template(task.args, names, where=where, what="arguments", check_names=check_names)
        if task.loop is not None:
            self.template(task.loop, defined, where=where, what="loop", check_names=check_names)
        for key in BARE:
            value = getattr(task, key, None)
            if value is None or isinstance(value, bool):
                continue
            scoped = names | ({task.register} if task.register else set())
            for expression in value if isinstance(value, list) else [value]:
                if not isinstance(expression, bool):
                    self.template(_as_template(expression), scoped, where=where, what=f"`{key}`",
                                  check_names=check_names)
        for key, value in task.vars.items():
            self.template(value, names, where=where, what=f"task vars {key!r}", check_names=check_names)

    def guarded_by_when(self, task) -> set:
        """Names the task's ``when`` tests with ``is defined`` (or guards with ``default``):
        the task only runs when they exist."""
        out: set = set()
        for expression in task.when if isinstance(task.when, list) else [task.when]:
            if expression is not None and not isinstance(expression, bool):
                out |= check_template(_as_template(expression)).guarded
        return out

    def arguments(self, task, module, where: dict) -> None:
        """Required arguments present; literal values of the right type and choice."""
        if getattr(module, "open_arguments", False) or getattr(module, "free_keys", False):
            return  # an Ansible module whose spec is not literal (or set_fact) checks its own arguments
        args = dict(task.args)
        literal = {k: v for k, v in args.items() if not _templated(v)}
        names = {**{k: k for k in module.params}, **{a: k for k, p in module.params.items() for a in p.aliases}}
        present = {names.get(k, k) for k in args}
        for key, param in module.params.items():
            if param.required and key not in present:
                self.problem(PlaybookError(
                    f"module {module.name!r} needs argument {key!r}", **where, field=key,
                    fix=f"add `{key}: ...` to the task" + (f" ({param.help})" if param.help else "")))
        from gfsdeploy.modules.base import validate_args

        given = {names.get(k, k): k for k in args}
        params = {key: param if key in given and not _templated(args[given[key]]) else _relaxed(param)
                  for key, param in module.params.items()}
        try:
            validate_args(module.name, params, literal, where)
        except PlaybookError as exc:
            self.problem(exc)
        for key in ("regexp", "regex", "insertafter", "insertbefore"):
            value = args.get(key)
            if isinstance(value, str) and not _templated(value) and value not in ("EOF", "BOF"):
                try:
                    re.compile(value)
                except re.error as exc:
                    self.problem(PlaybookError(f"`{key}` is not a valid regular expression: {exc}: {value!r}",
                                               **where, field=key, fix="fix the expression (Python's re syntax)"))
        if task.module in ("copy", "template", "ansible.builtin.copy", "ansible.builtin.template"):
            src = args.get("src")
            if isinstance(src, str) and src and not _templated(src) and not args.get("remote_src"):
                found = _find(src, task)
                if found is None:
                    self.problem(PlaybookError(
                        f"`src` {src!r} not found", **where, field="src",
                        fix="put the file next to the playbook, in its files/ or templates/ directory, "
                            "or give an absolute path"))
                elif task.module.endswith("template"):
                    self.template_file(found, where)

    def template(self, value, defined: set, *, where: dict, what: str, check_names: bool) -> None:
        for text in _strings(value):
            if "{{" not in text and "{%" not in text and "{#" not in text:
                continue
            found = check_template(text)
            if found.syntax_error:
                error = TemplateError(f"Jinja syntax error in {what}: {found.syntax_error}: {_short(text)}",
                                      **_origin(text, where),
                                      fix="check the {{ }} / {% %} braces and the expression" +
                                          (" (this task runs only under a condition; if it runs, it fails)"
                                           if self._conditional else ""))
                if self._conditional:
                    if error not in self.warnings:
                        self.warnings.append(error)
                else:
                    self.problem(error)
                continue
            for kind, names in (("filter", found.unknown_filters), ("test", found.unknown_tests),
                                ("lookup", found.unknown_lookups)):
                for name in sorted(names):
                    self.problem(TemplateError(f"unknown {kind} {name!r} (in {what})",
                                               **_origin(text, where), fix=_spelling(kind, name)))
            if not check_names:
                continue
            for name in sorted(found.undeclared - found.guarded):
                if name not in defined and not name.startswith("ansible_") and not name.startswith("gfsdeploy_"):
                    self.problem(TemplateError(
                        f"variable {name!r} (in {what}) is not defined anywhere: not in the inventory, the "
                        "play or task vars, a vars file, a `register` or `set_fact`, facts or -e",
                        **_origin(text, where),
                        fix=f"define {name!r} (e.g. in the inventory or the play's vars), "
                            f"or write `{name} | default(…)`"))

    def template_file(self, path: str, where: dict) -> None:
        """A template file's syntax and filters (its names may come from its own loops)."""
        try:
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(PlaybookError(f"cannot read template {path}: {exc}", **where, field="src",
                                       fix="check the file"))
            return
        found = check_template(source)
        if found.syntax_error:
            self.problem(TemplateError(f"Jinja syntax error in template {path} line {found.line}: "
                                       f"{found.syntax_error}", **where, fix="fix the template"))
            return
        for kind, names in (("filter", found.unknown_filters), ("test", found.unknown_tests),
                            ("lookup", found.unknown_lookups)):
            for name in sorted(names):
                self.problem(TemplateError(f"unknown {kind} {name!r} in template {path}", **where,
                                           fix=_spelling(kind, name)))


def _relaxed(param):
    """A copy of ``param`` that is neither required nor type-checked (its value is a template)."""
    from dataclasses import replace

    return replace(param, required=False, type="raw", choices=(), check=None)


def _templated(value) -> bool:
    return any("{{" in s or "{%" in s for s in _strings(value))


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "…"


def _origin(text, where: dict) -> dict:
    """Where a template string was written (a variable's definition), else the task."""
    if getattr(text, "origin_file", ""):
        return {**where, "file": text.origin_file, "line": text.origin_line}
    return where


def _spelling(kind: str, name: str) -> str:
    import difflib

    from gfsdeploy.templating.analysis import known_filters, known_lookups, known_tests

    known = {"filter": known_filters, "test": known_tests, "lookup": known_lookups}[kind]()
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return (f"did you mean {close[0]!r}? " if close else "") + \
        f"check the spelling; gfsdeploy knows the {kind}s Ansible playbooks use most"


def _as_template(expression) -> str:
    """A bare conditional (``when: x == 1``) as the template Ansible evaluates."""
    text = str(expression).strip()
    return text if text.startswith("{{") and text.endswith("}}") else "{{ " + text + " }}"


def _play_tasks(play) -> list:
    """A play's tasks and handlers, with the bodies of includes expanded when they run."""
    out, seen = [], set()

    def walk(task):
        if id(task) in seen:
            return
        seen.add(id(task))
        out.append(task)
        include = getattr(task, "include", None)
        if include is not None and include.body and not include.static:
            for sub in include.body:
                walk(sub)

    for task in [*play.tasks, *play.handlers]:
        walk(task)
    return out


def _vars_files_names(play) -> set | None:
    """The names a play's vars_files define; None when a file is only known at run time."""
    from gfsdeploy.playbook import load_vars

    out: set = set()
    for entry, _, _ in getattr(play, "vars_files", []):
        candidates = entry if isinstance(entry, list) else [entry]
        if any(_templated(c) for c in candidates):
            return None
        for candidate in candidates:
            path = candidate if os.path.isabs(str(candidate)) else os.path.join(play.base_dir, str(candidate))
            if os.path.isfile(path):
                try:
                    out.update(load_vars(path))
                except GfsError:
                    return None
                break
    return out


def _set_fact_names(task) -> set:
    if task.module in ("set_fact", "ansible.builtin.set_fact") and isinstance(task.args, dict):
        return {str(k) for k in task.args if k != "cacheable"}
    return set()


def _include_vars_names(task) -> set | None:
    """The names a static ``include_vars`` file defines; None when only known at run time."""
    import yaml

    args = task.args if isinstance(task.args, dict) else {}
    path = args.get("file") or args.get("_raw_params") or args.get("free_form")
    if not isinstance(path, str) or _templated(path):
        return None
    full = _find(path, task, subdirs=("vars",))
    if full is None:
        return None
    try:
        with open(full, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return None
    return set(data) if isinstance(data, dict) else set()


def _find(path: str, task, subdirs=("files", "templates")) -> str | None:
    if os.path.isabs(path):
        return path if os.path.exists(path) else None
    bases = [*getattr(task, "search_dirs", []), getattr(task, "base_dir", None) or task.play.base_dir,
             task.play.base_dir]
    for base in bases:
        for sub in ("", *subdirs, os.path.join("..", "templates"), os.path.join("..", "files")):
            candidate = os.path.join(base, sub, path)
            if os.path.exists(candidate):
                return candidate
    return None
