"""Jinja2, the way Ansible uses it: StrictUndefined, Ansible's filters, tests and
lookups, native types for whole-string expressions, and values that are
"(known after apply)" during a plan.

Every failure is a hard error naming where it happened — the task, and the
file and line the failing template text came from (a variable defined in
``group_vars/all.yml`` line 3 is reported there). Never the raw ``{{ … }}``
text: a variable whose own template fails keeps that failure, and any use of
the variable raises it (``is defined`` is false and ``default()`` applies when
the failure is an undefined name, as in Ansible's lazy variables).

A registered result that does not exist yet in a plan is an :class:`Unknown`;
any expression that touches it renders to a marker, and the runner shows the
argument as ``(known after apply)`` instead of guessing.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading

import jinja2
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from gfsdeploy.deferred import Deferred
from gfsdeploy.errors import GfsError, TemplateError
from gfsdeploy.templating import filters as _filters
from gfsdeploy.templating import lookups as _lookups
from gfsdeploy.templating import tests as _tests

UNKNOWN_MARK = "\x00known-after-apply\x00"
#: the value of Ansible's ``omit``: a module argument (or list item) rendered to it is left out
OMIT = "__omit_place_holder__gfsdeploy__"


class UndefinedVariableError(TemplateError):
    """A template used a name nothing defines."""


class KnownAfterApply(Exception):
    """A filter or test met an :class:`Unknown`: the whole value is only known after apply."""


class Unknown:
    """A value only known after apply. Attribute/item access and string
    conversion propagate the unknown-ness instead of failing; a filter or test
    applied to it makes the whole template's value unknown."""

    #: set once any Unknown exists (a plan): until then filters skip the check
    seen = False

    def __new__(cls, *args, **kwargs):
        Unknown.seen = True
        return super().__new__(cls)

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


class BrokenValue(Deferred):
    """A variable whose own template failed (syntax, unknown filter, a filter's
    error). Using it in any way raises that error; leaving it unused is fine,
    as with Ansible's lazily templated variables."""


class Undefined(StrictUndefined):
    """Jinja's StrictUndefined, except that attribute and item access on an
    undefined value gives the same undefined value, so ``foo.bar is defined`` is
    false (not an error) when ``foo`` itself is undefined — as in Ansible.
    Printing, iterating or comparing it is an error."""

    __slots__ = ()

    def __getattr__(self, name):
        if name[:2] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key):
        return self


class BrokenUndefined(Undefined):
    """A variable whose template uses an undefined name: it is undefined itself
    (``is defined`` false, ``default()`` applies); any other use raises."""

    __slots__ = ()


def is_unknown(value) -> bool:
    if not Unknown.seen:  # no unknown value (nor its mark in text) exists in this process yet
        return False
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return UNKNOWN_MARK in value
    if isinstance(value, dict):
        return any(is_unknown(k) or is_unknown(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(is_unknown(v) for v in value)
    return False


def show_unknown(text: str) -> str:
    return text.replace(UNKNOWN_MARK, "(known after apply)")


#: never scanned for templates: every host's inventory, the lists of a play's hosts (the
#: magic variables, O(hosts) each: scanned per step they made a run O(hosts²)) and ``vars``
#: (a copy of the variables, set after they are resolved)
_NOT_RESOLVED = frozenset({"hostvars", "groups", "vars", "ansible_play_hosts", "ansible_play_hosts_all",
                           "play_hosts", "ansible_play_batch"})


class Unsafe(str):
    """Text that is data, never a template: what commands printed (registered results),
    facts, lookup results. ``{{`` in it stays as it is, as in Ansible."""

    __slots__ = ()


def unsafe(value):
    """``value`` with every string in it marked :class:`Unsafe` (containers copied)."""
    if isinstance(value, Unsafe) or not isinstance(value, (str, dict, list, tuple)):
        return value
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, dict):
        return {k: unsafe(v) for k, v in value.items()}
    return [unsafe(v) for v in value]


def _has_template(value) -> bool:
    """Whether ``value`` holds template text (resolve scans every variable of every step
    with it: plain loops, a plain string checked without a call)."""
    if isinstance(value, str):
        return ("{{" in value or "{%" in value) and not isinstance(value, Unsafe)
    if isinstance(value, dict):
        values = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return False
    for v in values:
        if type(v) is str:
            if "{{" in v or "{%" in v:
                return True
        elif isinstance(v, (str, dict, list)) and _has_template(v):
            return True
    return False


def truth(value) -> bool:
    """Ansible's truth of a condition's result: the strings ``false``/``no``/``off``/``0``/
    empty are false (a templated ``ignore_errors: "{{ x }}"`` gives such strings)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("false", "no", "off", "0", "n", "f", "", "none"):
            return False
        return True
    return bool(value)


def origin(value) -> tuple[str, int] | None:
    """(file, line) a template string came from, when the YAML loader recorded it."""
    file = getattr(value, "origin_file", None)
    return (file, getattr(value, "origin_line", 0)) if file else None


def _find_broken(value, depth: int = 0):
    if not Deferred.made:  # no broken value exists yet: nothing to look for
        return None
    if isinstance(value, Deferred):
        return value
    if depth > 20:
        return None
    if isinstance(value, dict):
        for v in value.values():
            found = _find_broken(v, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for v in value:
            found = _find_broken(v, depth + 1)
            if found is not None:
                return found
    return None


def escape_backslashes(env, source: str) -> str:
    """Ansible's rule for template strings written in YAML: inside ``{{ }}``, a
    backslash in a string literal is a literal backslash (``regex_replace('(a)',
    '\\1')`` gets ``\\1``, not the character 1). Template files, ``{% %}`` blocks and
    conditions (``when:``) keep Jinja's escapes."""
    if "\\" not in source or "{{" not in source:
        return source
    last = None if env.keep_trailing_newline else _LAST_NEWLINE.search(source)
    try:
        tokens = list(env.lexer.tokeniter(source, None))
    except jinja2.TemplateSyntaxError:
        return source  # let the real compile report it
    # (the lexer drops the last line break: put back after the tokens)
    if "".join(t[2] for t in tokens) != (source[:last.start()] if last else source):
        return source  # the lexer dropped something (whitespace control): leave the text alone
    out = []
    in_variable = False
    for _, kind, raw in tokens:
        if kind == "variable_begin":
            in_variable = True
        elif kind == "variable_end":
            in_variable = False
        elif kind == "string" and in_variable and "\\" in raw:
            quote, inner = raw[0], raw[1:-1]
            raw = quote + inner.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote
        out.append(raw)
    return "".join(out) + (last.group() if last else "")


#: the line break ending a text, which Jinja's lexer drops (``keep_trailing_newline`` off)
_LAST_NEWLINE = re.compile(r"(\r\n|\r|\n)\Z")


def _template_line(exc: BaseException, filename: str) -> int | None:
    """The template line an exception was raised at (Jinja rewrites its traceback)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _closest(name: str, choices) -> str | None:
    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


_UNKNOWN_NAME = re.compile(r"^No (filter|test) named '([^']+)'")


#: compiled Jinja code by (source text, file name), shared by the per-thread Templars (same settings)
_CODE: dict = {}
_CODE_MAX = 4096
_CODE_LOCK = threading.Lock()
#: variable names each template text uses, by text
_REFS: dict = {}
#: lookups run by any Templar so far (one may have changed the controller's files)
LOOKUPS_STARTED = [0]
#: template files' text by path, valid while (mtime, size) stay the same
_SOURCES: dict = {}


def _read_source(path: str) -> str:
    return _read_source_stat(path, os.stat(path))[0]


def _read_source_stat(path: str, st: os.stat_result) -> tuple[str, bool]:
    """(text, whether it was vault-encrypted) of the template at ``path``, whose stat is ``st``."""
    key = (st.st_mtime_ns, st.st_size)
    cached = _SOURCES.get(path)
    if cached is not None and cached[0] == key:
        return cached[1], False
    from gfsdeploy import vault

    with open(path, "rb") as handle:
        raw = handle.read()
    source = vault.plain_bytes(raw, path).decode("utf-8")  # a vault-encrypted template: decrypted in memory
    encrypted = vault.is_encrypted(raw[:64])
    if not encrypted:
        _SOURCES[path] = (key, source)  # decrypted text is never cached
    return source, encrypted


def _expression_tree(env, text: str):
    """The template ``result = <text>`` (what Jinja's compile_expression renders) as a
    tree, so its compiled code can be shared by every Templar's environment."""
    from jinja2 import nodes
    from jinja2.parser import Parser

    parser = Parser(env, text, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise jinja2.TemplateSyntaxError("chunk after expression", parser.stream.current.lineno, None, None)
    tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1)
    tree.set_environment(env)
    return tree


def _unknown_aware(fn):
    """``fn`` (a filter or test) raising :class:`KnownAfterApply` when a value it gets is unknown."""
    from jinja2.utils import _PassArg

    skip = 1 if _PassArg.from_obj(fn) is not None else 0

    def wrapper(*args, **kwargs):
        if Unknown.seen and (any(is_unknown(a) for a in args[skip:]) or any(is_unknown(v) for v in kwargs.values())):
            raise KnownAfterApply()
        return fn(*args, **kwargs)

    if skip:
        wrapper.jinja_pass_arg = fn.jinja_pass_arg
    wrapper.__name__ = getattr(fn, "__name__", "filter")
    wrapper.__wrapped__ = fn
    return wrapper


#: filters and tests that do something sensible with an unknown value themselves
_UNKNOWN_PASS = {"default", "d", "mandatory", "defined", "undefined"}
#: filters that only carry a value into text: an unknown goes in as the plan's mark, and
#: the mark survives JSON escaping, so a manifest rendered in a plan stays a manifest
#: whose unknown fields are known to be unknown
_UNKNOWN_CARRY = {"string", "to_json", "tojson", "to_nice_json"}
_ESCAPED_MARK = json.dumps(UNKNOWN_MARK)[1:-1]


def _unknown_carried(fn):
    from jinja2.utils import _PassArg

    skip = 1 if _PassArg.from_obj(fn) is not None else 0

    def marked(value):
        if isinstance(value, Unknown):
            return UNKNOWN_MARK
        if isinstance(value, dict):
            return {marked(k): marked(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [marked(v) for v in value]
        return value

    def wrapper(*args, **kwargs):
        if not Unknown.seen or not any(is_unknown(a) for a in args[skip:]):
            return fn(*args, **kwargs)
        out = fn(*args[:skip], *[marked(a) for a in args[skip:]], **kwargs)
        return out.replace(_ESCAPED_MARK, UNKNOWN_MARK) if isinstance(out, str) else out

    if skip:
        wrapper.jinja_pass_arg = fn.jinja_pass_arg
    wrapper.__name__ = getattr(fn, "__name__", "filter")
    wrapper.__wrapped__ = fn
    return wrapper


def _wrap_filter(name: str, fn):
    short = name.split(".")[-1]
    if short in _UNKNOWN_PASS:
        return fn
    return _unknown_carried(fn) if short in _UNKNOWN_CARRY else _unknown_aware(fn)


def _finalize(value):
    """What ``{{ … }}`` inside text prints: None prints nothing, as in Ansible ("v={{ none }}" is
    "v="). A whole-string expression keeps its native value, None included."""
    return "" if value is None else value


class _Environment(SandboxedEnvironment):
    """Jinja's sandbox; ``x.name`` on a plain mapping holding ``name`` (not a method of
    dict) is that item straight away — what the sandbox gives too, after failing to
    find the attribute first (``hostvars[h].ip`` for every host in a template)."""

    def getattr(self, obj, attribute):
        if type(obj) is dict and type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


_DICT_ATTRIBUTES = frozenset(dir(dict))

#: Jinja's filters and tests with gfsdeploy's, wrapped for unknown values, by environment class
_WRAPPED: dict = {}


def make_environment(loader=None) -> SandboxedEnvironment:
    """The Jinja environment every template renders in (and the static checker parses with).
    Sandboxed (no access to Python internals) but, as in Ansible, templates may call
    ``list.append`` and the like — real templates build lists that way."""
    env = _Environment(
        undefined=Undefined, loader=loader, keep_trailing_newline=False, trim_blocks=True,
        finalize=_finalize, extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    wrapped = _WRAPPED.get(type(env))
    if wrapped is None:  # (the same for every environment: wrapped once, not once per Templar/thread)
        wrapped = _WRAPPED[type(env)] = (
            {name: _wrap_filter(name, fn) for name, fn in _filters.registry(env.filters).items()},
            {name: fn if name.split(".")[-1] in _UNKNOWN_PASS else _unknown_aware(fn)
             for name, fn in _tests.registry(env.tests).items()})
    env.filters, env.tests = dict(wrapped[0]), dict(wrapped[1])
    env.globals["omit"] = OMIT
    env.globals["now"] = _now
    env.globals["undef"] = lambda hint=None: env.undefined(hint=hint or "undef() was called", name="undef")
    return env


def _now(utc: bool = False, fmt: str | None = None):
    """Ansible's ``now()``: the controller's time (a datetime, or text with ``fmt``)."""
    import datetime

    moment = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) if utc else datetime.datetime.now()
    return moment.strftime(fmt) if fmt else moment


#: what Ansible's template module adds to a template file's variables
ANSIBLE_MANAGED = "Ansible managed"


def template_file_vars(path: str) -> dict:
    try:
        owner = _owner_name(os.stat(path).st_uid)
    except OSError:
        owner = ""
    return {**_file_vars(path, owner), "template_run_date": _datetime().now()}


def _file_vars(path: str, owner: str) -> dict:
    """The template module's variables that depend on the file only (not template_run_date)."""
    return {"ansible_managed": ANSIBLE_MANAGED, "template_path": path, "template_fullpath": os.path.abspath(path),
            "template_basename": os.path.basename(path), "template_host": _hostname(), "template_uid": owner}


_DATETIME = None


def _datetime():
    global _DATETIME
    if _DATETIME is None:  # (imported when a template is first rendered, not at start-up)
        import datetime

        _DATETIME = datetime.datetime
    return _DATETIME


class TemplateFile:
    """A template file as read at one moment: its text and the variables the template module
    adds that depend on the file alone. Read once for all the loop items of a step (each
    item read it again: five system calls, each one a hand-over of the GIL between the
    worker threads); rendering adds ``template_run_date``, taken for each rendering.
    ``encrypted``: the text is a decrypted vault file (never kept beyond one rendering)."""

    __slots__ = ("path", "source", "file_vars", "encrypted")

    def __init__(self, path: str):
        st = os.stat(path)
        self.path = path
        self.source, self.encrypted = _read_source_stat(path, st)
        self.file_vars = _file_vars(path, _owner_name(st.st_uid))

    def variables(self) -> dict:
        return {**self.file_vars, "template_run_date": _datetime().now()}


_OWNERS: dict = {}


def _owner_name(uid: int) -> str:
    """The user name of ``uid`` (reading the user database is most of a template's file
    variables: asked again only when /etc/passwd changed)."""
    try:
        st = os.stat("/etc/passwd")
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = None
    cached = _OWNERS.get(uid)
    if cached is not None and cached[0] == stamp and stamp is not None:
        return cached[1]
    import pwd

    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = ""
    _OWNERS[uid] = (stamp, name)
    return name


def _hostname() -> str:
    import socket

    return socket.gethostname()


#: the place of a rendering that was given none
_NOWHERE: dict = {}


class Templar:
    """Renders strings, data structures and template files with one environment.
    One Templar per thread (it remembers what it is rendering, for errors)."""

    def __init__(self, search_path: list[str] | None = None, *, base_dirs: list[str] | None = None):
        loader = jinja2.FileSystemLoader(search_path or ["."])
        self.env = make_environment(loader)
        #: lookups run so far: a rendering that ran one read the controller's state at that
        #: moment (a file, a command), so the runner does not reuse it later
        self.lookups_run = 0
        self.env.globals["lookup"] = self._lookup_global
        self.env.globals["query"] = self._query_global
        self.env.globals["q"] = self._query_global
        if base_dirs is None:
            base_dirs = []
            for d in search_path or ["."]:
                base = os.path.dirname(d) if os.path.basename(d.rstrip("/")) in ("templates", "files") else d
                if os.path.normpath(base) not in [os.path.normpath(b) for b in base_dirs]:
                    base_dirs.append(base)
        self.base_dirs = base_dirs
        self._templates: dict = {}
        self._expressions: dict = {}
        self._shared: dict = {}  # _shared_key -> (rendered text, names whose `used` it set)
        self._value_names: dict = {}  # id(arguments) -> (the arguments, what render_shared keys them by)
        self._args: dict = {}         # render_shared's key -> the rendered arguments
        self._where: dict = {}
        self._escape = True

    # -- compiling -------------------------------------------------------------
    def _template(self, source: str, filename: str | None = None, *, escape: bool = False):
        """``env.from_string(source)``, compiled once per source text for every Templar
        (Jinja compiles from scratch on each call: most of a no-op run's CPU)."""
        key = (source, filename, escape)
        template = self._templates.get(key)
        if template is None:
            code = _CODE.get(key)
            if code is None:
                text = escape_backslashes(self.env, str(source)) if escape else str(source)
                code = self.env.compile(text, filename=filename)
                with _CODE_LOCK:
                    if len(_CODE) >= _CODE_MAX:
                        _CODE.clear()
                    _CODE[key] = code
            # a plain dict of the globals (all set when the Templar was made): Jinja's
            # ChainMap was copied key by key into every rendering's context
            template = self.env.template_class.from_code(self.env, code, dict(self.env.globals))
            self._templates[key] = template
        return template

    def _expression(self, source: str, *, escape: bool = False):
        key = (source, escape)
        expression = self._expressions.get(key)
        if expression is None:
            code_key = ("expression", source, escape)
            code = _CODE.get(code_key)
            if code is None:  # compiled once for every Templar (one per thread), as _template
                text = source
                if escape and "\\" in source:
                    text = escape_backslashes(self.env, "{{ " + source + " }}")[3:-3]
                code = self.env.compile(_expression_tree(self.env, text))
                with _CODE_LOCK:
                    if len(_CODE) >= _CODE_MAX:
                        _CODE.clear()
                    _CODE[code_key] = code
            template = self.env.template_class.from_code(self.env, code, dict(self.env.globals))  # (see _template)
            expression = self._expressions[key] = jinja2.environment.TemplateExpression(template, False)
        return expression

    # -- lookups ----------------------------------------------------------------
    def lookup_context(self, variables: dict) -> _lookups.LookupContext:
        dirs = []
        for d in (variables.get("role_path"), *self.base_dirs, variables.get("playbook_dir")):
            if d and os.path.normpath(str(d)) not in [os.path.normpath(x) for x in dirs]:
                dirs.append(str(d))
        return _lookups.LookupContext(variables=variables, templar=self, search_dirs=dirs)

    def _run_lookup(self, context, name, terms, kwargs):
        wantlist = kwargs.pop("wantlist", False)
        errors = kwargs.pop("errors", "strict")
        if errors not in ("strict", "warn", "ignore"):
            raise _lookups.LookupError_(f"lookup: errors= must be strict, warn or ignore, got {errors!r}")
        variables = dict(context.get_all())
        self.lookups_run += 1
        LOOKUPS_STARTED[0] += 1
        try:
            result = _lookups.run(name, list(terms), self.lookup_context(variables), **kwargs)
        except _lookups.LookupError_:
            if errors == "strict":
                raise
            return None
        return unsafe(result), wantlist  # a file's text is data, not a template

    @jinja2.pass_context
    def _lookup_global(self, context, name, *terms, **kwargs):
        ran = self._run_lookup(context, name, terms, kwargs)
        if ran is None:
            return None
        result, wantlist = ran
        if wantlist:
            return result
        if all(isinstance(r, str) for r in result):
            return ",".join(result)
        return result[0] if len(result) == 1 else result

    @jinja2.pass_context
    def _query_global(self, context, name, *terms, **kwargs):
        kwargs["wantlist"] = True
        ran = self._run_lookup(context, name, terms, kwargs)
        return [] if ran is None else ran[0]

    # -- errors -----------------------------------------------------------------
    def _error(self, exc: BaseException, text, filename: str | None = None) -> TemplateError:
        """A located TemplateError for ``exc`` raised while rendering ``text``."""
        where = dict(self._where)
        src = origin(text)
        line_in = getattr(exc, "lineno", None) if isinstance(exc, jinja2.TemplateSyntaxError) else None
        if line_in is None:
            line_in = _template_line(exc, filename or "<template>")
        used_by = ""
        if filename:
            where["file"], where["line"] = filename, line_in or None
            if self._where.get("file"):
                used_by = f" (rendered for {self._where['file']}:{self._where.get('line') or '?'})"
        elif src:
            if (src[0], src[1]) != (where.get("file"), where.get("line")):
                if where.get("file"):
                    used_by = f" (used at {where['file']}:{where.get('line') or '?'})"
                where["file"], where["line"] = src[0], src[1] + max((line_in or 1) - 1, 0)
        cls = TemplateError
        if isinstance(exc, jinja2.UndefinedError):
            cls = UndefinedVariableError
            message = f"undefined variable: {exc.message}"
            fix = "define it (inventory, group_vars/host_vars, vars, register, set_fact) or use `| default(...)`"
        elif isinstance(exc, jinja2.TemplateSyntaxError):
            unknown = _UNKNOWN_NAME.match(exc.message or "")
            if unknown:
                kind, name = unknown.groups()
                known = self.env.filters if kind == "filter" else self.env.tests
                close = _closest(name, [k for k in known if "." not in k])
                message = f"unknown {kind} {name!r}"
                fix = (f"did you mean {close!r}? " if close else "") + \
                    f"see docs/TEMPLATING.md for the {kind}s gfsdeploy provides"
            else:
                message = f"Jinja syntax error: {exc.message}"
                fix = "check the {{ }} / {% %} braces, quotes and parentheses"
        elif isinstance(exc, jinja2.exceptions.SecurityError):
            message = f"template error: {exc}"
            fix = "templates cannot reach Python internals; use filters"
        elif isinstance(exc, (_filters.FilterError, _tests.TestError, _lookups.LookupError_)):
            message = str(exc)
            fix = "check the arguments of the filter, test or lookup"
        elif isinstance(exc, jinja2.TemplateError):
            message = f"template error: {exc}"
            fix = "check the expression"
        else:
            message = f"template evaluation failed: {type(exc).__name__}: {exc}"
            fix = "check the expression and the types of the variables it uses"
        return cls(message + used_by, **where, fix=fix)

    # -- rendering --------------------------------------------------------------
    def render(self, value, variables: dict, *, where: dict | None = None, condition: bool = False):
        """Render every string inside ``value``. A whole-string expression
        (``"{{ x }}"``) keeps its native type, as in Ansible. Mapping values and
        list items that render to ``omit`` are left out. ``condition``: the text is a
        condition (Jinja's backslash escapes apply, as in Ansible)."""
        saved = self._where, self._escape
        self._where = where or _NOWHERE  # (never changed in place: no copy)
        self._escape = not condition
        try:
            result = self._render(value, variables)
            broken = _find_broken(result)
            if broken is not None:
                broken.fail()
            return result
        finally:
            self._where, self._escape = saved

    def _render(self, value, variables):
        # (a plain string, no "{" in it, is itself: most argument values and every key,
        # returned without a call)
        if isinstance(value, str):
            return value if "{" not in value else self._render_string(value, variables)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                rendered = v if type(v) is str and "{" not in v else self._render(v, variables)
                if isinstance(rendered, str) and rendered == OMIT:
                    continue
                out[k if type(k) is str and "{" not in k else self._render(k, variables)] = rendered
            return out
        if isinstance(value, list):
            out = []
            for v in value:
                rendered = v if type(v) is str and "{" not in v else self._render(v, variables)
                if not (isinstance(rendered, str) and rendered == OMIT):
                    out.append(rendered)
            return out
        return value

    _WHOLE = re.compile(r"^\{\{(.*)\}\}\Z", re.S)  # \Z: "{{ x }}\n" keeps its newline

    def _render_string(self, text: str, variables):
        if isinstance(text, Unsafe) or ("{{" not in text and "{%" not in text and "{#" not in text):
            return text
        try:
            # Ansible: one trailing newline is not part of the expression; it is kept only
            # when the result is a string ("{{ n }}\n" is the number n)
            body = text[:-1] if text.endswith("\n") else text
            whole = self._WHOLE.match(body)
            if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1):
                name = whole.group(1).strip()
                if name in variables and name.isidentifier() and name not in _JINJA_WORDS:
                    result = variables[name]  # "{{ item }}": what Jinja would look up, without Jinja
                else:
                    key = self._shared_key(name, variables, expression=True)
                    result = (_evaluate(self._expression(name, escape=self._escape), variables) if key is None
                              else self._render_shared(key, name, variables))
                if isinstance(result, jinja2.Undefined):
                    str(result)  # raises UndefinedError with the name
                if isinstance(result, Deferred):
                    result.fail()
                if body is not text and isinstance(result, str) and not is_unknown(result):
                    result = _keep_newlines(text, result)
                return result
            key = self._shared_key(text, variables)
            if key is None:
                return _keep_newlines(text, _render_template(self._template(text, escape=self._escape), variables))
            return _keep_newlines(text, self._render_shared(key, text, variables))
        except KnownAfterApply:
            Unknown.seen = True  # (the mark may be in text from now on: is_unknown looks)
            return Unknown() if whole and "{{" not in whole.group(1) and "}}" not in whole.group(1) else UNKNOWN_MARK
        except GfsError as exc:
            if not exc.task and self._where.get("task"):
                exc.task = self._where["task"]
                if self._where.get("file") and (self._where["file"], self._where.get("line")) != (exc.file, exc.line):
                    line = self._where.get("line") or "?"
                    exc.message += (f" (used at line {line})" if self._where["file"] == exc.file
                                    else f" (used at {self._where['file']}:{line})")
            raise
        except Exception as exc:  # noqa: BLE001 - every template failure becomes a located TemplateError
            raise self._error(exc, text) from None

    # -- renderings shared by every host ---------------------------------------------
    def _shared_key(self, text: str, variables, *, expression: bool = False):
        """A key under which ``text`` renders the same wherever its variables hold the same
        values (None: not so, or not known to be). Only for text calling nothing but
        filters and functions whose result depends on their arguments alone (see
        _pure_names) whose every name is a plain value or states what it stands for
        (``memo_token``: ``hostvars``, ``groups``), and no variable hides a global it uses.
        An /etc/hosts block listing every host's address renders once, not once per host;
        ``expression``: ``text`` is a whole-string expression (its native value is shared)."""
        pure = _pure_names(self.env, text, expression=expression)
        if pure is None:
            return None
        names, global_names = pure
        if not names and not expression:
            return None
        for name in global_names:
            if name in variables:
                return None  # (a variable named like a global function: it is what is called)
        parts = []
        for name in names:
            if name not in variables:
                return None
            value = variables[name]
            token = getattr(value, "memo_token", None) if not isinstance(value, (str, int, float)) else None
            if type(token) is tuple:  # (an undefined value answers any attribute: not a token)
                parts.append((name, token))
            elif value is None or type(value) in (str, int, float, bool):
                parts.append((name, type(value).__name__, value))
            else:
                return None
        if expression:
            return text, self._escape, tuple(parts), "expression"
        return text, self._escape, tuple(parts)

    def _render_shared(self, key: tuple, text: str, variables):
        """``text`` rendered (an expression: evaluated) once per key. An expression's value
        is kept as a copy and each use gets its own copy (a template may append to a list)."""
        expression = len(key) == 4
        hit = self._shared.get(key)
        if hit is not None:
            for name in hit[1]:  # what the rendering looked at is looked at (the runner tracks it)
                variables[name].used = True
            return _copied(hit[0]) if expression else hit[0]
        watched = {name: variables[name] for name, *_ in key[2] if hasattr(variables[name], "used")}
        before = {name: value.used for name, value in watched.items()}
        for value in watched.values():
            value.used = False
        try:
            if expression:
                result = _evaluate(self._expression(text, escape=self._escape), variables)
            else:
                result = _render_template(self._template(text, escape=self._escape), variables)
        finally:
            used = [name for name, value in watched.items() if value.used]
            for name, value in watched.items():
                value.used = value.used or before[name]
        kept = _copied(result) if expression else result
        if kept is _NOT_KEPT:
            return result
        if len(self._shared) >= 256:
            self._shared.clear()
        self._shared[key] = (kept, used)
        return result

    def render_shared(self, value, variables: dict, *, where: dict | None = None) -> tuple:
        """``(render(value), key)`` — a task's arguments — rendered once for every host and
        loop item that give the names its templates read the same plain values (str, int,
        float, bool, None), when all of them are pure (see _pure_names) and none is a
        global a variable hides; each caller gets its own copy. ``key``: equal keys, equal
        renderings (None: not shared). Anything else is rendered as ``render`` does,
        every time (and every failure is that rendering's own)."""
        names = self._value_names.get(id(value))
        if names is None or names[0] is not value:
            if len(self._value_names) >= _ARGS_MAX:
                self._value_names.clear()
            # (the value itself is kept with them: its id is never another value's)
            names = self._value_names[id(value)] = (value, _value_names(self.env, value))
        names = names[1]
        if not names:
            return self.render(value, variables, where=where), None
        parts = []
        for name in names:
            if name[:1] == _GLOBAL:  # (a global read: a variable of that name would be what is read)
                if name[1:] in variables:
                    return self.render(value, variables, where=where), None
                continue
            try:
                found = variables[name]
            except KeyError:
                return self.render(value, variables, where=where), None
            kind = type(found)
            if found is not None and kind not in _SHARED_TYPES:
                return self.render(value, variables, where=where), None
            parts.append((name, kind, found))
        key = (id(value), tuple(parts))
        hit = self._args.get(key)
        if hit is not None:
            return _copied(hit), key
        result = self.render(value, variables, where=where)
        kept = _copied(result)
        if kept is _NOT_KEPT:
            return result, None
        if len(self._args) >= _ARGS_MAX:
            self._args.clear()
        self._args[key] = kept
        return result, key

    def resolve(self, variables: dict) -> dict:
        """Render variables whose values are templates themselves (Ansible
        evaluates ``vars`` lazily and recursively). A variable whose template
        fails becomes a :class:`BrokenValue`/:class:`BrokenUndefined` that raises
        that error when (and only when) it is used."""
        # hostvars/groups are every host's inventory: scanning them on every step made this
        # O(hosts²). Known gap: a template inside hostvars[h].x stays text (Ansible renders it)
        pending = {k for k, v in variables.items() if k not in _NOT_RESOLVED and _has_template(v)}
        if not pending:
            return variables
        out = dict(variables)
        refs = {key: self._references(out[key]) for key in pending}
        saved = self._where
        try:
            for _ in range(len(pending) + 8):
                progressed = False
                for key in sorted(pending):
                    if refs[key] & (pending - {key}):
                        continue  # render what it uses first
                    self._where = {}
                    try:
                        value = self._render(out[key], out)
                        broken = _find_broken(value)
                        if broken is not None:
                            broken.fail()
                    except GfsError as exc:
                        if isinstance(exc, UndefinedVariableError):
                            hint = _in_variable(exc, key, with_place=True).removeprefix("undefined variable: ")
                            value = BrokenUndefined(hint=hint, name=key)
                        else:
                            value = BrokenValue(type(exc)(_in_variable(exc, key, with_place=False), file=exc.file,
                                                          line=exc.line, fix=exc.fix))
                    pending.discard(key)
                    progressed = True
                    out[key] = value
                    if _has_template(value) and value != variables[key] and key not in refs.get(key, set()):
                        pending.add(key)  # it gave another variable's template text: one more level
                        refs[key] = self._references(value)
                if not pending or not progressed:
                    break
            for key in pending:  # a cycle: a uses b uses a
                out[key] = BrokenValue(TemplateError(
                    f"variable {key!r} refers to itself (through {', '.join(sorted(refs[key] & pending))})",
                    **({"file": origin(variables[key])[0], "line": origin(variables[key])[1]}
                       if origin(variables[key]) else {}),
                    fix="break the cycle: one of these variables must not use the others"))
        finally:
            self._where = saved
        return out

    def _references(self, value) -> set:
        """The variable names ``value``'s templates use (parsed once per text: resolve()
        runs for every task and host, and parsing was most of its time)."""
        names: set = set()
        if isinstance(value, str):
            if ("{{" in value or "{%" in value) and not isinstance(value, Unsafe):
                found = _REFS.get(value)
                if found is None:
                    from jinja2 import meta

                    try:
                        found = frozenset(meta.find_undeclared_variables(self.env.parse(value)))
                    except jinja2.TemplateError:
                        found = frozenset()
                    if len(_REFS) >= _CODE_MAX:
                        _REFS.clear()
                    _REFS[str(value)] = found
                names |= found
        elif isinstance(value, dict):
            for v in value.values():
                names |= self._references(v)
        elif isinstance(value, list):
            for v in value:
                names |= self._references(v)
        return names

    def evaluate(self, expression, variables: dict, *, where: dict | None = None):
        """Evaluate a bare expression (``when:``, ``until:``, ``changed_when:``).
        A string result is judged as Ansible does (``"false"``, ``"no"`` are false)."""
        if isinstance(expression, bool):
            return expression
        if isinstance(expression, list):
            return all(self.evaluate(e, variables, where=where) for e in expression)
        text = str(expression).strip()
        if text.startswith("{{") and text.endswith("}}"):
            text = text[2:-2]
        source = "{{ " + text + " }}"
        if origin(expression):
            from gfsdeploy.yamlload import located

            source = located(source, *origin(expression))
        result = self.render(source, variables, where=where, condition=True)
        return truth(result) if isinstance(result, str) and not is_unknown(result) else result

    def render_file(self, path: str, variables: dict, *, where: dict | None = None,
                    file: TemplateFile | None = None) -> str:
        """The template file at ``path`` rendered with ``variables``; ``file``: the file as
        already read (by the caller, for a step's items), else it is read now."""
        saved = self._where
        self._where = where or _NOWHERE  # (never changed in place: no copy)
        try:
            if file is None:
                try:
                    file = TemplateFile(path)
                except (OSError, UnicodeDecodeError) as exc:
                    raise TemplateError(f"cannot read template {path}: {getattr(exc, 'strerror', None) or exc}",
                                        **self._where,
                                        fix="check `src:`; templates are looked up in templates/ next to the playbook") from None
            source = file.source
            try:
                return _keep_newlines(source, _render_template(self._template(source, path), variables,
                                                               file.variables()))
            except KnownAfterApply:
                Unknown.seen = True
                return UNKNOWN_MARK
            except TemplateError:
                raise
            except Exception as exc:  # noqa: BLE001 - located TemplateError naming the template's line
                raise self._error(exc, source, filename=path) from None
        finally:
            self._where = saved


#: names Jinja reads as constants or operators, never as variables
_JINJA_WORDS = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if",
                          "else", "self"})  # (self: the template itself in Jinja)


def _context(template, variables: dict, under: dict | None = None):
    """A rendering context of ``template``: its globals, ``under`` (if any), then the
    variables on top — one copy of them (a task's variables are dozens of names, and
    Jinja's own render copied them two or three times for every string)."""
    env = template.environment
    parent = {**template.globals, **under, **variables} if under else {**template.globals, **variables}
    return env.context_class(env, parent, template.name, template.blocks, globals=template.globals)


#: Jinja nodes that read and compute only: a template made of these (and of the calls
#: below) has an output that depends only on the values of the names it reads
_PURE_NODES = None
#: filters whose result depends on their arguments alone: no clock, randomness, lookup,
#: file, nor another filter or test named by a string (map, select… are not here)
_PURE_FILTERS = frozenset({
    "list", "int", "float", "string", "lower", "upper", "trim", "length", "count", "join", "default", "d", "bool",
    "replace", "first", "last", "unique", "min", "max", "sum", "abs", "round", "basename", "dirname", "quote",
    "to_json", "tojson", "capitalize", "title", "format", "regex_replace"})
#: global functions likewise (a variable of the same name hides one: see Templar._shared_key)
_PURE_CALLS = frozenset({"range"})
#: text -> (the variables, the globals) a pure template reads; None: not pure
_PURE: dict = {}
#: the same for whole-string expressions, by the expression's text
_PURE_EXPRESSIONS: dict = {}


def _pure_names(env, text: str, *, expression: bool = False) -> tuple | None:
    known = _PURE_EXPRESSIONS if expression else _PURE
    try:
        return known[text]
    except KeyError:
        pass
    global _PURE_NODES
    from jinja2 import meta, nodes

    if _PURE_NODES is None:
        _PURE_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr,
                       nodes.Getitem, nodes.Slice, nodes.For, nodes.If, nodes.Compare, nodes.Operand, nodes.And,
                       nodes.Or, nodes.Not, nodes.Concat, nodes.CondExpr, nodes.Tuple, nodes.List, nodes.Dict,
                       nodes.Pair, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Neg,
                       nodes.Pos, nodes.Keyword)
    pure = None
    try:
        tree = env.parse("{{ " + text + " }}" if expression else text)
        if all(_pure_node(node, nodes) for node in tree.find_all(nodes.Node)):
            # (Jinja leaves the globals out of the undeclared names: a variable may hide one)
            global_names = frozenset(n.name for n in tree.find_all(nodes.Name) if n.name in env.globals)
            called = {n.node.name for n in tree.find_all(nodes.Call)}
            if all(name in _PURE_CALLS or (name == "omit" and name not in called) for name in global_names):
                pure = frozenset(meta.find_undeclared_variables(tree)), global_names
    except jinja2.TemplateError:
        pass
    if len(known) >= _CODE_MAX:
        known.clear()
    known[str(text)] = pure
    return pure


def _pure_node(node, nodes) -> bool:
    if isinstance(node, _PURE_NODES):
        return True
    if isinstance(node, nodes.Filter):
        return node.name.removeprefix("ansible.builtin.") in _PURE_FILTERS and not (node.dyn_args or node.dyn_kwargs)
    if isinstance(node, nodes.Call):
        return (isinstance(node.node, nodes.Name) and node.node.name in _PURE_CALLS
                and not (node.dyn_args or node.dyn_kwargs))
    return False


#: arguments (and renderings of them) render_shared keeps at once per Templar
_ARGS_MAX = 4096
#: the values render_shared shares renderings over
_SHARED_TYPES = frozenset({str, int, float, bool})
#: how _value_names lists a global a template reads ("+range"): shared only while no
#: variable hides it
_GLOBAL = "+"


def _value_names(env, value) -> tuple | None:
    """The names the templates inside ``value`` (strings, mapping keys and values, list
    items) read, sorted, globals they use as "+name"; () when it holds no template;
    None when one of them is not pure or a string is marked unsafe (never shared)."""
    names: set = set()
    stack = [value]
    templated = False
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "{" not in v or ("{{" not in v and "{%" not in v and "{#" not in v):
                continue
            if isinstance(v, Unsafe):
                return None  # (never templated; not shared either)
            pure = _pure_names(env, v)
            if pure is None:
                return None
            templated = True
            names.update(pure[0])
            names.update(_GLOBAL + g for g in pure[1])
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return tuple(sorted(names)) if templated else ()


#: what _copied gives for a value it does not copy (not kept for sharing)
_NOT_KEPT = object()


def _copied(value):
    """A copy of an expression's value (lists and dicts copied all the way down), or
    _NOT_KEPT when it holds anything but plain data."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if kind is list or kind is tuple:
        out = []
        for v in value:
            if type(v) not in _PLAIN_TYPES:
                v = _copied(v)
                if v is _NOT_KEPT:
                    return _NOT_KEPT
            out.append(v)
        return out if kind is list else tuple(out)
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) not in _PLAIN_TYPES:
                return _NOT_KEPT
            if type(v) not in _PLAIN_TYPES:
                v = _copied(v)
                if v is _NOT_KEPT:
                    return _NOT_KEPT
            out[k] = v
        return out
    return _NOT_KEPT


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _keep_newlines(source: str, result):
    """``result`` ending with at least as many newlines as ``source`` does, as in Ansible:
    Jinja drops the source's last newline (``keep_trailing_newline`` off) and, with
    ``trim_blocks``, the one after a closing block tag even when it is the last character
    ("{% endfor %}\n"); Ansible puts back the ones the result lacks — none when the value
    rendered last ends with its own ("{{ x }}\n" with x "a\n" is "a\n")."""
    if source.endswith("\n") and isinstance(result, str):
        missing = (len(source) - len(source.rstrip("\n"))) - (len(result) - len(result.rstrip("\n")))
        if missing > 0:
            return result + "\n" * missing if type(result) is str else type(result)(result + "\n" * missing)
    return result


def _render_template(template, variables: dict, under: dict | None = None) -> str:
    """``template.render({**under, **variables})``."""
    try:
        return template.environment.concat(template.root_render_func(_context(template, variables, under)))
    except Exception:  # noqa: BLE001 - as Template.render: the traceback names template lines
        template.environment.handle_exception()


def _evaluate(expression, variables: dict):
    """``expression(**variables)`` (a compiled expression)."""
    template = expression._template
    context = _context(template, variables)
    for _ in template.root_render_func(context):
        pass
    return context.vars["result"]


def _in_variable(exc: TemplateError, key: str, *, with_place: bool) -> str:
    """The error's message naming the variable it happened in (and, for a chain
    ``d: "{{ b }}"``, the variables that used it)."""
    text = exc.message
    if text.endswith(")") and " (in variable " in text:
        return f"{text[:-1]}, used by {key!r})"
    place = f", {exc.file}:{exc.line}" if with_place and exc.file and exc.line else ""
    return f"{text} (in variable {key!r}{place})"
