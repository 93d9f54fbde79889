"""Static look at templates, for ``gfsdeploy check`` (before connecting anywhere):
syntax errors with their line, the variables a template needs, and the filters,
tests and lookups it names that gfsdeploy does not have."""

from __future__ import annotations

from dataclasses import dataclass, field

import jinja2
from jinja2 import meta, nodes

from gfsdeploy.templating import lookups as _lookups

_ENV = None


def _env():
    global _ENV
    if _ENV is None:
        from gfsdeploy.templating.templar import make_environment

        _ENV = make_environment()
        _ENV.globals.update({"lookup": None, "query": None, "q": None})
    return _ENV


def known_filters() -> frozenset:
    return frozenset(_env().filters)


def known_tests() -> frozenset:
    return frozenset(_env().tests)


def known_lookups() -> frozenset:
    return frozenset(_lookups.names())


#: names every template may use without anyone defining them
GLOBALS = frozenset({"omit", "lookup", "query", "q", "now", "undef", "range", "dict", "lipsum", "cycler", "joiner", "namespace",
                     "true", "false", "none", "True", "False", "None"})


@dataclass
class TemplateCheck:
    """What :func:`check_template` found. ``ok`` is true when nothing is wrong
    (undeclared names are not wrong by themselves: the caller knows what is defined)."""

    syntax_error: str | None = None
    line: int | None = None
    undeclared: set = field(default_factory=set)
    #: undeclared names used only where missing is fine: ``x | default(…)``, ``x is defined``
    guarded: set = field(default_factory=set)
    unknown_filters: set = field(default_factory=set)
    unknown_tests: set = field(default_factory=set)
    unknown_lookups: set = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not (self.syntax_error or self.unknown_filters or self.unknown_tests or self.unknown_lookups)


def check_template(text: str, *, expression: bool = False) -> TemplateCheck:
    """Parse ``text`` (a template string; with ``expression=True`` a bare
    ``when:``-style expression) without rendering it."""
    source = "{{ " + text + " }}" if expression else text
    result = TemplateCheck()
    env = _env()
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        result.syntax_error = exc.message or "syntax error"
        result.line = exc.lineno
        return result
    for node in ast.find_all(nodes.Filter):
        if node.name not in env.filters:
            result.unknown_filters.add(node.name)
    for node in ast.find_all(nodes.Test):
        if node.name not in env.tests:
            result.unknown_tests.add(node.name)
    if result.unknown_filters or result.unknown_tests:
        # the variable scan compiles the template: let it see placeholders for the unknown names
        env = env.overlay()
        env.filters = {**env.filters, **{n: _placeholder for n in result.unknown_filters}}
        env.tests = {**env.tests, **{n: _placeholder for n in result.unknown_tests}}
        ast = env.parse(source)
    result.undeclared = set(meta.find_undeclared_variables(ast)) - GLOBALS
    result.guarded = _guarded(ast) & result.undeclared
    lookups = known_lookups()
    for node in ast.find_all(nodes.Call):
        if isinstance(node.node, nodes.Name) and node.node.name in ("lookup", "query", "q") and node.args:
            first = node.args[0]
            if isinstance(first, nodes.Const) and isinstance(first.value, str) and first.value not in lookups:
                result.unknown_lookups.add(first.value)
    return result


#: filters and tests under which an undefined name is not an error
GUARD_FILTERS = frozenset({"default", "d"})
GUARD_TESTS = frozenset({"defined", "undefined", "none"})


def _guarded(ast) -> set:
    """Names the template tests or defaults anywhere (``x | default(…)``, ``x is
    defined``): it handles their absence itself (``x is defined and x.y``, ``{% if x
    is defined %}{{ x }}{% endif %}``), so they are not reported as undefined."""
    out = set()
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if ((isinstance(node, nodes.Filter) and node.name in GUARD_FILTERS) or
                (isinstance(node, nodes.Test) and node.name in GUARD_TESTS)) and node.node is not None:
            if isinstance(node.node, nodes.Name):
                out.add(node.node.name)
            out.update(n.name for n in node.node.find_all(nodes.Name))
    return out


def _placeholder(*args, **kwargs):
    return None


def has_template(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)
