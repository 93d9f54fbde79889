"""Jinja2, the way Ansible uses it: StrictUndefined, Ansible's common filters,
and values that are "(known after apply)" during a plan.

An undefined variable is an error naming the task, file and line. A registered
result that does not exist yet in a plan is an :class:`Unknown`; any expression
that touches it renders to a marker, and the runner shows the argument as
``(known after apply)`` instead of guessing.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re

import jinja2
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gfsdeploy.errors import TemplateError

UNKNOWN_MARK = "\x00known-after-apply\x00"


class Unknown:
    """A value only known after apply. Attribute/item access and string
    conversion propagate the unknown-ness instead of failing."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key):
        return self

    def __str__(self):
        return UNKNOWN_MARK

    __repr__ = __str__

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return True

    def __len__(self):
        return 0

    def __eq__(self, other):
        return isinstance(other, Unknown)

    def __hash__(self):
        return 0


def is_unknown(value) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return UNKNOWN_MARK in value
    if isinstance(value, dict):
        return any(is_unknown(k) or is_unknown(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(v) for v in value)
    return False


_NOT_RESOLVED = frozenset({"hostvars", "groups"})


def _has_template(value) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def show_unknown(text: str) -> str:
    return text.replace(UNKNOWN_MARK, "(known after apply)")


def _bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1", "y")
    return bool(value)


def _ipaddr(value, query=""):
    try:
        ipaddress.ip_address(str(value))
        return value
    except ValueError:
        return False


def _regex_replace(value, pattern, replacement="", ignorecase=False):
    flags = re.I if ignorecase else 0
    return re.sub(pattern, replacement, str(value), flags=flags)


def _regex_search(value, pattern):
    match = re.search(pattern, str(value))
    return match.group(0) if match else None


def _mandatory(value, msg=None):
    if isinstance(value, jinja2.Undefined):
        raise jinja2.UndefinedError(msg or "mandatory variable not defined")
    return value


def _to_json(value, indent=None, sort_keys=False):
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=str)


def _to_yaml(value, indent=2):
    return yaml.safe_dump(value, indent=indent, default_flow_style=False)


def _dict2items(value):
    return [{"key": k, "value": v} for k, v in value.items()]


def _items2dict(value, key_name="key", value_name="value"):
    return {item[key_name]: item[value_name] for item in value}


def _combine(*dicts, recursive=False):
    out: dict = {}
    for d in dicts:
        if recursive:
            out = _merge(out, d)
        else:
            out.update(d)
    return out


def _merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


FILTERS = {
    "bool": _bool,
    "b64encode": lambda v: base64.b64encode(str(v).encode()).decode(),
    "b64decode": lambda v: base64.b64decode(str(v)).decode(),
    "to_json": _to_json,
    "to_nice_json": lambda v: json.dumps(v, indent=4, sort_keys=True),
    "from_json": lambda v: json.loads(v),
    "to_yaml": _to_yaml,
    "to_nice_yaml": lambda v: yaml.safe_dump(v, indent=4, default_flow_style=False),
    "from_yaml": lambda v: yaml.safe_load(v),
    "ipaddr": _ipaddr,
    "ansible.utils.ipaddr": _ipaddr,
    "regex_replace": _regex_replace,
    "regex_search": _regex_search,
    "mandatory": _mandatory,
    "dict2items": _dict2items,
    "items2dict": _items2dict,
    "combine": _combine,
    "quote": lambda v: __import__("shlex").quote(str(v)),
    "basename": lambda v: str(v).rstrip("/").rsplit("/", 1)[-1],
    "dirname": lambda v: str(v).rsplit("/", 1)[0] if "/" in str(v) else "",
    "unique": lambda v: list(dict.fromkeys(v)),
    "flatten": lambda v: [x for sub in v for x in (sub if isinstance(sub, list) else [sub])],
}

TESTS = {
    "defined": lambda v: not isinstance(v, jinja2.Undefined),
    "undefined": lambda v: isinstance(v, jinja2.Undefined),
    "succeeded": lambda v: isinstance(v, dict) and not v.get("failed"),
    "success": lambda v: isinstance(v, dict) and not v.get("failed"),
    "failed": lambda v: isinstance(v, dict) and bool(v.get("failed")),
    "changed": lambda v: isinstance(v, dict) and bool(v.get("changed")),
    "skipped": lambda v: isinstance(v, dict) and bool(v.get("skipped")),
    "match": lambda v, p: re.match(p, str(v)) is not None,
    "search": lambda v, p: re.search(p, str(v)) is not None,
    "ipaddr": lambda v: _ipaddr(v) is not False,
}


#: compiled Jinja code by source text, shared by the per-thread Templars (same settings)
_CODE: dict = {}
_CODE_MAX = 4096
#: template files' text by path, valid while (mtime, size) stay the same
_SOURCES: dict = {}


def _read_source(path: str) -> str:
    st = os.stat(path)
    key = (st.st_mtime_ns, st.st_size)
    cached = _SOURCES.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    _SOURCES[path] = (key, source)
    return source


class Templar:
    """Renders strings, data structures and template files with one environment."""

    def __init__(self, search_path: list[str] | None = None):
        loader = jinja2.FileSystemLoader(search_path or ["."])
        self.env = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, loader=loader, keep_trailing_newline=True, trim_blocks=True,
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
        self.env.filters.update(FILTERS)
        self.env.tests.update(TESTS)
        self.env.globals["lookup"] = self._lookup
        self.env.globals["query"] = self._lookup
        self._vars: dict = {}
        self._templates: dict = {}
        self._expressions: dict = {}

    def _template(self, source: str):
        """``env.from_string(source)``, compiled once per source text for every Templar
        (Jinja compiles from scratch on each call: most of a no-op run's CPU)."""
        template = self._templates.get(source)
        if template is None:
            code = _CODE.get(source)
            if code is None:
                code = self.env.compile(source)
                if len(_CODE) >= _CODE_MAX:
                    _CODE.clear()
                _CODE[source] = code
            template = self.env.template_class.from_code(self.env, code, self.env.make_globals(None))
            self._templates[source] = template
        return template

    def _expression(self, source: str):
        expression = self._expressions.get(source)
        if expression is None:
            expression = self._expressions[source] = self.env.compile_expression(source, undefined_to_none=False)
        return expression

    def _lookup(self, kind, *terms, **kwargs):
        if kind == "env":
            import os

            return os.environ.get(terms[0], kwargs.get("default", ""))
        if kind == "template":
            return self.env.get_template(terms[0]).render(self._vars)
        if kind == "file":
            with open(self.env.loader.get_source(self.env, terms[0])[1], encoding="utf-8") as fh:
                return fh.read().rstrip("\n")
        raise TemplateError(f"lookup plugin {kind!r} is not supported",
                            fix="use lookup('template', …), lookup('file', …) or lookup('env', …)")

    def render(self, value, variables: dict, *, where: dict | None = None):
        """Render every string inside ``value``. A whole-string expression
        (``"{{ x }}"``) keeps its native type, as in Ansible."""
        self._vars = variables
        try:
            return self._render(value, variables)
        except TemplateError:
            raise
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"undefined variable: {exc.message}", **(where or {}),
                                fix="define it in the inventory or the play's vars, or use `| default(...)`") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"Jinja syntax error: {exc.message}", **(where or {}),
                                fix="check the {{ }} / {% %} braces and filter names") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template error: {exc}", **(where or {}), fix="check the expression") from None
        except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError) as exc:
            raise TemplateError(f"template evaluation failed: {type(exc).__name__}: {exc}", **(where or {}),
                                fix="check the expression and the types of the variables it uses") from None

    def _render(self, value, variables):
        if isinstance(value, str):
            return self._render_string(value, variables)
        if isinstance(value, dict):
            return {self._render(k, variables): self._render(v, variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, variables) for v in value]
        return value

    _WHOLE = re.compile(r"^\{\{(.*)\}\}\Z", re.S)  # \Z: "{{ x }}\n" keeps its newline

    def _render_string(self, text: str, variables):
        if "{{" not in text and "{%" not in text and "{#" not in text:
            return text
        whole = self._WHOLE.match(text)
        if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1):
            result = self._expression(whole.group(1).strip())(**variables)
            if isinstance(result, jinja2.Undefined):
                str(result)  # raises UndefinedError with the name
            return result
        return self._template(text).render(variables)

    def resolve(self, variables: dict) -> dict:
        """Render variables whose values are templates themselves (Ansible
        evaluates ``vars`` lazily and recursively). A variable that cannot be
        rendered yet keeps its text; using it raises the real error."""
        # hostvars/groups are every host's inventory: scanning them on every step made this
        # O(hosts²). Known gap: a template inside hostvars[h].x stays text (Ansible renders it)
        pending = {k for k, v in variables.items() if k not in _NOT_RESOLVED and _has_template(v)}
        if not pending:
            return variables
        out = dict(variables)
        refs = {key: self._references(out[key]) for key in pending}
        for _ in range(len(pending) + 8):
            progressed = False
            for key in sorted(pending):
                if refs[key] & (pending - {key}):
                    continue  # render what it uses first
                try:
                    value = self.render(out[key], out)
                except TemplateError:
                    value = None
                pending.discard(key)
                progressed = True
                if value is not None:
                    out[key] = value
                    if _has_template(value) and key not in refs.get(key, set()):
                        pending.add(key)  # a template that yields a template: one more level
                        refs[key] = self._references(value)
            if not pending or not progressed:
                break
        return out

    def _references(self, value) -> set:
        from jinja2 import meta

        names: set = set()
        if isinstance(value, str):
            if "{{" in value or "{%" in value:
                try:
                    names |= meta.find_undeclared_variables(self.env.parse(value))
                except jinja2.TemplateError:
                    pass
        elif isinstance(value, dict):
            for v in value.values():
                names |= self._references(v)
        elif isinstance(value, list):
            for v in value:
                names |= self._references(v)
        return names

    def evaluate(self, expression, variables: dict, *, where: dict | None = None):
        """Evaluate a bare expression (``when:``, ``until:``, ``changed_when:``)."""
        if isinstance(expression, bool):
            return expression
        if isinstance(expression, list):
            return all(self.evaluate(e, variables, where=where) for e in expression)
        text = str(expression).strip()
        if text.startswith("{{") and text.endswith("}}"):
            text = text[2:-2]
        return self.render("{{ " + text + " }}", variables, where=where)

    def render_file(self, path: str, variables: dict, *, where: dict | None = None) -> str:
        self._vars = variables
        try:
            source = _read_source(path)
        except OSError as exc:
            raise TemplateError(f"cannot read template {path}: {exc.strerror}", **(where or {}),
                                fix="check `src:`; templates are looked up in templates/ next to the playbook") from None
        try:
            return self._template(source).render(variables)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"undefined variable in template {path}: {exc.message}", **(where or {}),
                                fix="define it in the inventory or the play's vars") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"Jinja syntax error in {path} line {exc.lineno}: {exc.message}",
                                **(where or {}), fix="fix the template") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {path} failed: {exc}", **(where or {}), fix="check the template") from None
