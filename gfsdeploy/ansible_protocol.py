"""Ansible modules gfsdeploy has no native module for, run through Ansible's module protocol.

A task naming such a module (``mymodule`` from a playbook's ``library/``,
``ansible.builtin.cron``, ``community.general.timezone``…) is run the way
Ansible runs it: the module and the ``module_utils`` it imports are packed into
one zip, its arguments travel as JSON with Ansible's ``_ansible_*`` internal
arguments, the host's Python runs it over the host's one connection
(``Transport.run``), and the JSON it prints becomes the registered value.

Four concerns, one section each: *finding* a module (library dirs, ansible-core,
collections, redirects), *packing* it (the import closure, a deterministic zip
keyed by its sha256, cached on the host), *running* it (the script sent to the
host, parsing what it prints) and the :class:`ProtocolModule` adapter that
plugs all this into the module interface (probe = a check-mode run, plan =
its ``changed``/``diff``, apply = the real run). docs/ANSIBLE_MODULES.md lists
the protocol facts this relies on.
"""

from __future__ import annotations

import ast
import base64
import configparser
import difflib
import functools
import hashlib
import io
import json
import os
import re
import secrets as _random
import shlex
import sys
import threading
import zipfile
from dataclasses import dataclass, field
from typing import Any

from gfsdeploy.errors import ModuleError, PlaybookError
from gfsdeploy.modules.base import ADD, CHANGE, DESTROY, Change, HostInfo, Module, Param, TaskContext, TaskResult

# -- finding ---------------------------------------------------------------------------
#: directories of playbooks and roles loaded in this process (their library/ and
#: module_utils/ are searched, newest first, like Ansible's module loader)
_content_dirs: list[str] = []
_lock = threading.RLock()
_found: dict[tuple, "Source | None"] = {}
_adapters: dict[tuple, "ProtocolModule | None"] = {}

#: tasks that are keywords of the engine, not modules, even where ansible-core ships a file
_NOT_MODULES = {"import_playbook", "import_role", "import_tasks", "include_role", "include_tasks", "meta",
                "async_wrapper", "include", "include_vars", "set_fact", "gather_facts", "add_host", "group_by"}


@dataclass(frozen=True)
class Source:
    """A module file and what it is."""

    name: str            # as written in the task (``mymodule``, ``ansible.builtin.cron``)
    path: str            # the file on the controller
    fqn: str             # its Python name inside the packed zip (``ansible.modules.cron``)
    origin: str          # "library", "ansible-core" or "collection"
    style: str           # "python" (AnsibleModule), "jsonargs", "want_json", "old", "binary"
    data: bytes = field(repr=False, default=b"")
    #: module_utils directories of the playbook/role it came with (searched before the global ones)
    utils_dirs: tuple = ()

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def add_search_path(base_dir: str) -> None:
    """A playbook's or role's directory: its ``library/`` and ``module_utils/`` are
    searched for Ansible modules and their imports (newest first)."""
    base = os.path.abspath(base_dir)
    with _lock:
        if base in _content_dirs:
            return
        _content_dirs.insert(0, base)
        _found.clear()
        _adapters.clear()
        _refusals.clear()


def _config() -> dict[str, str]:
    """``[defaults]`` of the ansible.cfg Ansible would read (ANSIBLE_CONFIG, ./ansible.cfg,
    ~/.ansible.cfg, /etc/ansible/ansible.cfg), paths made absolute from its directory."""
    candidates = [os.environ.get("ANSIBLE_CONFIG", ""), os.path.join(os.getcwd(), "ansible.cfg"),
                  os.path.expanduser("~/.ansible.cfg"), "/etc/ansible/ansible.cfg"]
    for path in candidates:
        if path and os.path.isfile(path):
            parser = configparser.RawConfigParser(strict=False)
            try:
                parser.read(path, encoding="utf-8")
            except (configparser.Error, OSError, UnicodeDecodeError):
                return {}
            if not parser.has_section("defaults"):
                return {}
            out = dict(parser.items("defaults"))
            out["__dir__"] = os.path.dirname(os.path.abspath(path))
            return out
    return {}


def _paths(value: str | None, relative_to: str = "") -> list[str]:
    out = []
    for part in (value or "").split(os.pathsep):
        part = os.path.expanduser(os.path.expandvars(part.strip()))
        if part:
            out.append(os.path.normpath(os.path.join(relative_to, part)) if relative_to else os.path.abspath(part))
    return out


def library_dirs(first: tuple = ()) -> list[str]:
    """Where modules of short names are looked for before ansible-core's own (``first``:
    a task's own library dirs, its role's and parent roles', ahead of the rest)."""
    cfg = _config()
    with _lock:
        dirs = [*first, *(os.path.join(d, "library") for d in _content_dirs)]
    dirs += _paths(os.environ.get("ANSIBLE_LIBRARY"))
    dirs += _paths(cfg.get("library"), cfg.get("__dir__", ""))
    dirs += [os.path.expanduser("~/.ansible/plugins/modules"), "/usr/share/ansible/plugins/modules"]
    return [d for i, d in enumerate(dirs) if os.path.isdir(d) and d not in dirs[:i]]


def module_utils_dirs(first: tuple = ()) -> list[str]:
    """Where ``ansible.module_utils.X`` is looked for before ansible-core's own."""
    cfg = _config()
    with _lock:
        dirs = [*first, *(os.path.join(d, "module_utils") for d in _content_dirs)]
    dirs += _paths(os.environ.get("ANSIBLE_MODULE_UTILS"))
    dirs += _paths(cfg.get("module_utils"), cfg.get("__dir__", ""))
    dirs += [os.path.expanduser("~/.ansible/plugins/module_utils"), "/usr/share/ansible/plugins/module_utils"]
    return [d for i, d in enumerate(dirs) if os.path.isdir(d) and d not in dirs[:i]]


def collection_roots() -> list[str]:
    """Directories holding ``ansible_collections/<namespace>/<name>``."""
    cfg = _config()
    roots = []
    with _lock:
        roots += [os.path.join(d, "collections") for d in _content_dirs]
    for key in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        roots += _paths(os.environ.get(key))
    for key in ("collections_path", "collections_paths"):
        roots += _paths(cfg.get(key), cfg.get("__dir__", ""))
    roots += [os.path.expanduser("~/.ansible/collections"), "/usr/share/ansible/collections"]
    roots += [p for p in sys.path if p and os.path.isdir(p)]
    return [r for i, r in enumerate(roots) if os.path.isdir(os.path.join(r, "ansible_collections"))
            and r not in roots[:i]]


def ansible_core() -> str | None:
    """The installed ansible-core's package directory (``pip install gfsdeploy[ansible]``)."""
    try:
        import ansible.release  # noqa: F401 - only its location is used
    except ImportError:
        return None
    import ansible

    return os.path.dirname(os.path.abspath(ansible.__file__))


def ansible_version() -> str:
    try:
        from ansible.release import __version__
    except ImportError:
        return "0.0"
    return __version__


def _module_file(directory: str, name: str) -> str | None:
    """``name.py`` (or ``name`` or ``name.<ext>``, a script or binary) in ``directory``."""
    for candidate in (name + ".py", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return None
    for entry in entries:
        stem, ext = os.path.splitext(entry)
        if stem == name and ext not in (".ps1", ".pyc", ".pyo", ".md", ".yml", ".yaml", ".json", ".txt"):
            return os.path.join(directory, entry)
    return None


def find(name: str, library: tuple = ()) -> Source | None:
    """The module a task names, or None; ``library``: the task's own library dirs, searched
    first. Raises PlaybookError for a module that exists but cannot run through the
    protocol (it needs Ansible's controller-side action plugin, or it was removed)."""
    key = (name, tuple(library))
    with _lock:
        if key in _found:
            return _found[key]
    source = _find(name, depth=0, library=tuple(library))
    with _lock:
        _found[key] = source
    return source


def _find(name: str, depth: int, library: tuple = ()) -> Source | None:
    if depth > 5:
        raise PlaybookError(f"module {name!r}: too many redirects", fix="check the collection's meta/runtime.yml")
    parts = name.split(".")
    if len(parts) == 1 or parts[:2] in (["ansible", "builtin"], ["ansible", "legacy"]):
        short = parts[-1]
        if short in _NOT_MODULES:
            return None
        if len(parts) == 1 or parts[1] == "legacy":
            for directory in library_dirs(library):
                path = _module_file(directory, short)
                if path:
                    # a library dir's module_utils/ sibling comes with it (a role's layout)
                    utils = tuple(os.path.join(os.path.dirname(d.rstrip(os.sep)), "module_utils") for d in library)
                    return _source(name, path, f"ansible.legacy.{short}", "library", utils)
        core = ansible_core()
        if core is None:
            return None
        path = os.path.join(core, "modules", short + ".py")
        if os.path.isfile(path):
            _refuse_action_plugin(name, os.path.join(core, "plugins", "action", short + ".py"))
            return _source(name, path, f"ansible.modules.{short}", "ansible-core")
        redirect = _routing(os.path.join(core, "config", "ansible_builtin_runtime.yml"), short, name)
        return _find(redirect, depth + 1) if redirect else None
    if len(parts) < 3:
        return None
    namespace, collection, short = parts[0], parts[1], ".".join(parts[2:])
    for root in collection_roots():
        base = os.path.join(root, "ansible_collections", namespace, collection)
        if not os.path.isdir(base):
            continue
        path = _module_file(os.path.join(base, "plugins", "modules", *short.split(".")[:-1]), short.split(".")[-1])
        if path and path.endswith(".py"):
            _refuse_action_plugin(name, os.path.join(base, "plugins", "action", short + ".py"))
            return _source(name, path, f"ansible_collections.{namespace}.{collection}.plugins.modules.{short}",
                           "collection")
        redirect = _routing(os.path.join(base, "meta", "runtime.yml"), short, name)
        if redirect:
            return _find(redirect, depth + 1)
    return None


def _refuse_action_plugin(name: str, action_path: str) -> None:
    if os.path.isfile(action_path):
        raise PlaybookError(
            f"module {name!r} needs Ansible's controller-side action plugin ({os.path.basename(action_path)}), "
            "which gfsdeploy does not run: only the remote module part of the protocol is implemented",
            fix="use gfsdeploy's native module of that name if there is one, or a module without an action plugin")


def _routing(runtime_yml: str, short: str, name: str) -> str | None:
    """Follow ``plugin_routing.modules`` of a runtime.yml: the redirect target, or refuse a tombstone."""
    entry = _module_routes(runtime_yml).get(short) or {}
    if "tombstone" in entry:
        text = (entry["tombstone"] or {}).get("warning_text") or "it was removed"
        raise PlaybookError(f"module {name!r} no longer exists: {text}", fix="use the module that replaced it")
    redirect = entry.get("redirect")
    return str(redirect) if redirect else None


@functools.lru_cache(maxsize=64)
def _module_routes(runtime_yml: str) -> dict:
    """``plugin_routing.modules`` of a runtime.yml (ansible-core's is large: read once)."""
    if not os.path.isfile(runtime_yml):
        return {}
    import yaml

    try:
        with open(runtime_yml, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError):
        return {}
    routes = (data.get("plugin_routing") or {}).get("modules") if isinstance(data, dict) else None
    return routes if isinstance(routes, dict) else {}


def _source(name: str, path: str, fqn: str, origin: str, utils: tuple = ()) -> Source:
    with open(path, "rb") as handle:
        data = handle.read()
    return Source(name=name, path=path, fqn=fqn, origin=origin, style=_style(data), data=data,
                  utils_dirs=tuple(d for d in utils if os.path.isdir(d)))


#: how Ansible tells a module's style from its text (see docs/ANSIBLE_MODULES.md)
_NEW_STYLE = re.compile(
    rb"(?:from +\.{2,} *module_utils.* +import |"
    rb"from +ansible_collections\.[^.]+\.[^.]+\.plugins\.module_utils.* +import |"
    rb"import +ansible_collections\.[^.]+\.[^.]+\.plugins\.module_utils.*|"
    rb"from +ansible\.module_utils.* +import |import +ansible\.module_utils\.)")
_REPLACER = b"#<<INCLUDE_ANSIBLE_MODULE_COMMON>>"
_JSONARGS = b"<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>"


def _style(data: bytes) -> str:
    text_bytes = bytes(set(range(0x20, 0x100)) - {0x7F}) + bytes([7, 8, 9, 10, 12, 13, 27])
    if data[:1024].translate(None, text_bytes):
        return "binary"
    if _REPLACER in data or _NEW_STYLE.search(data):
        return "python"
    if _JSONARGS in data:
        return "jsonargs"
    if b"WANT_JSON" in data:
        return "want_json"
    return "old"


# -- what the source says about itself (read statically, never executed) -----------------
@dataclass
class Declared:
    """What a module declares: whether it supports check mode (None: not statically
    known — AnsibleModule then refuses at run time before doing anything), its
    argument names when its spec is a literal, and which of them are ``no_log``."""

    check_mode: bool | None = None
    arguments: dict[str, tuple] | None = None   # name -> aliases
    no_log: set = field(default_factory=set)


def declared(source: Source) -> Declared:
    out = Declared()
    if source.style == "binary":
        out.check_mode = False
        return out
    try:
        tree = ast.parse(source.data)
    except (SyntaxError, ValueError):
        out.check_mode = False if source.style != "python" else None
        return out
    doc_support = _documented_check_mode(tree)
    call = _ansible_module_call(tree)
    if call is not None:
        value = next((k.value for k in call.keywords if k.arg == "supports_check_mode"), None)
        if value is None:
            out.check_mode = False
        elif isinstance(value, ast.Constant):
            out.check_mode = bool(value.value)
        else:
            out.check_mode = None
        spec = next((k.value for k in call.keywords if k.arg == "argument_spec"),
                    call.args[0] if call.args else None)
        literal = _literal_spec(spec, tree)
        if literal is not None:
            common = any(k.arg == "add_file_common_args" and not (isinstance(k.value, ast.Constant)
                                                                  and not k.value.value)
                         for k in call.keywords)
            arguments, no_log = literal
            out.no_log = no_log
            out.arguments = None if common else arguments
    elif source.style == "python":
        out.check_mode = doc_support
    else:
        # a script of another language: only its documentation can promise check mode
        out.check_mode = bool(doc_support)
    if doc_support is False:
        out.check_mode = False
    return out


def _documented_check_mode(tree: ast.Module) -> bool | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DOCUMENTATION"
                                                for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                import yaml

                try:
                    doc = yaml.safe_load(node.value.value) or {}
                except yaml.YAMLError:
                    return None
                support = (((doc.get("attributes") or {}).get("check_mode") or {}).get("support")
                           if isinstance(doc, dict) else None)
                if support in ("full", "partial"):
                    return True
                if support == "none":
                    return False
    return None


def _ansible_module_call(tree: ast.Module) -> ast.Call | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name == "AnsibleModule":
                return node
    return None


def _literal_spec(node, tree: ast.Module):
    """Argument names (with aliases) and no_log names of a literal spec, else None."""
    if isinstance(node, ast.Name):
        assigned = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)]
        updated = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                      and isinstance(n.func.value, ast.Name) and n.func.value.id == node.id
                      for n in ast.walk(tree))
        if len(assigned) != 1 or updated:
            return None
        node = assigned[0]
    items = _literal_items(node)
    if items is None:
        return None
    arguments, no_log = {}, set()
    for key, value in items:
        options = _literal_items(value) or []
        aliases: tuple = ()
        for opt, opt_value in options:
            if opt == "aliases" and isinstance(opt_value, (ast.List, ast.Tuple)):
                aliases = tuple(e.value for e in opt_value.elts if isinstance(e, ast.Constant))
            if opt == "no_log" and isinstance(opt_value, ast.Constant) and opt_value.value:
                no_log.add(key)
        arguments[key] = aliases
    return arguments, no_log


def _literal_items(node):
    if isinstance(node, ast.Dict):
        if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
            return None
        return [(k.value, v) for k, v in zip(node.keys, node.values)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        if any(k.arg is None for k in node.keywords):
            return None
        return [(k.arg, k.value) for k in node.keywords]
    return None


# -- packing ------------------------------------------------------------------------------
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)   # fixed: the zip's bytes (and so its hash) depend only on the code


@dataclass
class Packed:
    """A module ready to ship: the zip (python) or file (others), its sha256, and how to run it."""

    source: Source
    payload: bytes
    sha: str
    internal: tuple = ()       # the ``_ansible_*`` names the packed module_utils accept
    cacheable: bool = True     # False: the payload embeds the arguments (jsonargs)


_packed: dict[tuple, Packed] = {}


def pack(source: Source) -> Packed:
    """Pack ``source`` (memoised per file content in this process)."""
    key = (source.path, hashlib.sha256(source.data).hexdigest(), tuple(module_utils_dirs(source.utils_dirs)))
    with _lock:
        if key in _packed:
            return _packed[key]
    if source.style == "python":
        payload = _zip(source)
        packed = Packed(source, payload, hashlib.sha256(payload).hexdigest(), _internal_names())
    elif source.style == "jsonargs":
        packed = Packed(source, source.data, "", (), cacheable=False)
    else:
        packed = Packed(source, source.data, hashlib.sha256(source.data).hexdigest())
    with _lock:
        _packed[key] = packed
    return packed


class _Closure:
    """The module_utils a module needs: files found by following its imports."""

    def __init__(self, mu_dirs: list[str], core: str | None, roots: list[str]):
        self.mu_dirs = mu_dirs
        self.core_mu = os.path.join(core, "module_utils") if core else None
        self.roots = roots
        self.files: dict[str, bytes] = {}      # path inside the zip -> source
        self.seen: set = set()
        self.missing: list[str] = []

    def locate(self, parts: tuple) -> tuple[str, str, bool] | None:
        """(file on disk, path in zip, is package) for a dotted module name, or None."""
        if parts[:2] == ("ansible", "module_utils"):
            rest = parts[2:]
            if not rest:
                return None
            bases = [*self.mu_dirs, *([self.core_mu] if self.core_mu else [])]
        elif parts[0] == "ansible_collections" and len(parts) > 5 and parts[3:5] == ("plugins", "module_utils"):
            rest = parts[1:]
            bases = [os.path.join(r, "ansible_collections") for r in self.roots]
        else:
            return None
        for base in bases:
            stem = os.path.join(base, *rest)
            if os.path.isfile(stem + ".py"):
                return stem + ".py", "/".join(parts) + ".py", False
            if os.path.isfile(os.path.join(stem, "__init__.py")):
                return os.path.join(stem, "__init__.py"), "/".join(parts) + "/__init__.py", True
        return None

    def add(self, module_name: str, data: bytes, *, package: bool) -> None:
        """Scan ``data`` (module ``module_name``) for imports and add what they need."""
        pending = [(module_name, data, package)]
        while pending:
            name, code, is_pkg = pending.pop()
            for parts, optional in _imports(name, code, is_pkg):
                # `from a.b import c`: c may be a module or a name in a.b — try the longest first
                for cut in range(len(parts), 2, -1):
                    candidate = parts[:cut]
                    if candidate in self.seen:
                        break
                    found = self.locate(candidate)
                    if found is None:
                        continue
                    self.seen.add(candidate)
                    self._include(candidate, found, pending)
                    # the packages above it: their own __init__ if they have one, else an empty one
                    for up in range(3 if candidate[0] == "ansible" else 1, len(candidate)):
                        parent = candidate[:up]
                        if parent in self.seen:
                            continue
                        self.seen.add(parent)
                        found_parent = self.locate(parent)
                        if found_parent and found_parent[2]:
                            self._include(parent, found_parent, pending)
                        else:
                            self.files.setdefault("/".join(parent) + "/__init__.py", b"")
                    break
                else:
                    if not optional:
                        self.missing.append(".".join(parts))

    def _include(self, parts: tuple, found: tuple, pending: list) -> None:
        path, inside, is_pkg = found
        if inside in self.files:
            return
        with open(path, "rb") as handle:
            self.files[inside] = handle.read()
        pending.append((".".join(parts), self.files[inside], is_pkg))


#: what _scan found, by (sha256 of the code, module name, is package); kept on the controller
#: between runs (parsing ansible-core's module_utils is most of the cost of packing)
_IMPORTS_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                              "gfsdeploy", "ansible-imports-v1.json")
_imports_known: dict | None = None
_imports_new = False


def _imports(module_name: str, code: bytes, is_package: bool):
    """``(dotted name parts, optional)`` of every module_utils import in ``code``."""
    global _imports_known, _imports_new
    key = f"{hashlib.sha256(code).hexdigest()}:{module_name}:{int(is_package)}"
    with _lock:
        if _imports_known is None:
            try:
                with open(_IMPORTS_CACHE, encoding="utf-8") as handle:
                    _imports_known = json.load(handle)
            except (OSError, ValueError):
                _imports_known = {}
        if key in _imports_known:
            return [(tuple(parts), optional) for parts, optional in _imports_known[key]]
    found = _scan(module_name, code, is_package)
    with _lock:
        _imports_known[key] = [[list(parts), optional] for parts, optional in found]
        _imports_new = True
    return found


def _save_imports() -> None:
    global _imports_new
    with _lock:
        if not _imports_new or _imports_known is None:
            return
        try:
            os.makedirs(os.path.dirname(_IMPORTS_CACHE), exist_ok=True)
            part = f"{_IMPORTS_CACHE}.{os.getpid()}.part"
            with open(part, "w", encoding="utf-8") as handle:
                json.dump(_imports_known, handle)
            os.replace(part, _IMPORTS_CACHE)
            _imports_new = False
        except OSError:
            pass   # a cache only


def _scan(module_name: str, code: bytes, is_package: bool):
    """Parse ``code``: its module_utils imports; an import nested in a try/if/def is
    optional, as Ansible treats it."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    out = []
    package = module_name.split(".") if is_package else module_name.split(".")[:-1]
    for node, optional in _statements(tree.body, nested=False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("ansible.module_utils.", "ansible_collections.")):
                    out.append((tuple(alias.name.split(".")), optional))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:max(0, len(package) - (node.level - 1))]
                dotted = ".".join([*base, *([node.module] if node.module else [])])
            else:
                dotted = node.module or ""
            if not (dotted.startswith("ansible.module_utils") or
                    (dotted.startswith("ansible_collections.") and ".plugins.module_utils" in dotted)):
                continue
            for alias in node.names:
                out.append((tuple(dotted.split(".")) + ((alias.name,) if alias.name != "*" else ()), optional))
    return out


def _statements(body, nested: bool):
    """Every statement, with whether it is nested in a compound statement (imports are
    statements: expressions need not be walked, which keeps packing fast)."""
    for node in body:
        yield node, nested
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.excepthandler,
                                                                           getattr(ast, "match_case", ast.stmt))):
                yield from _statements(inner, nested=True)


def _zip(source: Source) -> bytes:
    core = ansible_core()
    data = source.data.replace(_REPLACER, b"from ansible.module_utils.basic import *")
    closure = _Closure(module_utils_dirs(source.utils_dirs), core, collection_roots())
    if core is None and (b"ansible.module_utils" in data or b"module_utils" in data):
        raise PlaybookError(
            f"module {source.name!r} ({source.path}) imports Ansible's module_utils, which come with "
            "ansible-core: it is not installed", fix="pip install 'gfsdeploy[ansible]' (or ansible-core)")
    try:
        closure.add(source.fqn, data, package=False)
    finally:
        _save_imports()
    # what every module needs at run time, also where it is imported dynamically
    always = [("ansible", "module_utils", "basic"),
              # ansible-core 2.19+: basic.py imports its JSON profile modules by name
              ("ansible", "module_utils", "_internal", "_json", "_profiles", "_module_legacy_c2m"),
              ("ansible", "module_utils", "_internal", "_json", "_profiles", "_module_legacy_m2c")]
    for parts in always:
        if closure.locate(parts):
            closure.add("gfsdeploy_always", b"import " + ".".join(parts).encode() + b"\n", package=False)
    _save_imports()
    if closure.missing:
        raise PlaybookError(
            f"module {source.name!r} ({source.path}) imports {', '.join(sorted(set(closure.missing)))}, "
            "found in no module_utils directory", fix="put it in module_utils/ beside the playbook or role, "
            "or install the ansible-core/collection that provides it")
    files = dict(closure.files)
    files["ansible/__init__.py"] = f"__version__ = {ansible_version()!r}\n".encode()
    files["ansible/module_utils/__init__.py"] = b""
    parts = source.fqn.split(".")
    files["/".join(parts) + ".py"] = data
    for up in range(1, len(parts)):
        files.setdefault("/".join(parts[:up]) + "/__init__.py", b"")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for inside in sorted(files):
            info = zipfile.ZipInfo(inside, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[inside])
    return buffer.getvalue()


_CLASSIC_INTERNAL = ("check_mode", "no_log", "debug", "diff", "verbosity", "version", "module_name",
                     "syslog_facility", "selinux_special_fs", "shell_executable", "tmpdir", "remote_tmp",
                     "keep_remote_files", "socket")


def _internal_names() -> tuple:
    """The ``_ansible_*`` arguments the packed basic.py accepts (they differ by version):
    the keys of ``PASS_VARS`` in ansible-core's module_utils/common/parameters.py, read
    without importing it."""
    core = ansible_core()
    path = os.path.join(core, "module_utils", "common", "parameters.py") if core else ""
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError):
        return _CLASSIC_INTERNAL
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else \
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id == "PASS_VARS" and isinstance(node.value, ast.Dict):
            return tuple(sorted(k.value for k in node.value.keys if isinstance(k, ast.Constant)))
    return _CLASSIC_INTERNAL


# -- running ----------------------------------------------------------------------------
#: on the host: where packed modules are kept between runs (private to the user);
#: the host variable ``gfsdeploy_module_cache`` names another directory
CACHE_DIR = "~/.cache/gfsdeploy/ansible-modules"
CACHE_VAR = "gfsdeploy_module_cache"
NEED_PAYLOAD = "__gfsdeploy_need_payload__"
NO_LOG_CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
_DEFAULT_SELINUX_FS = ["fuse", "nfs", "vboxsf", "ramfs", "9p", "vfat"]

class _Shipped:
    """Which packed modules each host has in its cache, as far as the controller knows:
    learnt from the hosts' answers and kept between runs (a small JSON file beside the
    import cache). A wrong entry costs one more round trip (the host answers "payload
    needed"), never a wrong run. ``sent``: shipped by a command of this process, in a
    batch whose later commands may rely on it."""

    def __init__(self, path: str):
        self.path = path
        self.confirmed: dict[str, set] | None = None
        self.sent: dict[str, set] = {}
        #: shipped again after the host said it lacked it (later answers of the same batch
        #: say so too: they predate it)
        self.refilled: set = set()

    def _load(self) -> dict[str, set]:
        if self.confirmed is None:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    self.confirmed = {k: set(v) for k, v in json.load(handle).items()}
            except (OSError, ValueError, AttributeError):
                self.confirmed = {}
        return self.confirmed

    def has(self, where: str, sha: str) -> bool:
        with _lock:
            return sha in self._load().get(where, ()) or sha in self.sent.get(where, ())

    def sending(self, where: str, sha: str) -> None:
        with _lock:
            self.sent.setdefault(where, set()).add(sha)

    def refill(self, where: str, sha: str) -> bool:
        """Whether a host that answered "payload needed" must get it again (False: this
        process already sent it since that answer's batch ran)."""
        with _lock:
            if (where, sha) in self.refilled:
                return False
            self.refilled.add((where, sha))
            return True

    def learn(self, where: str, sha: str, present: bool) -> None:
        with _lock:
            known = self._load().setdefault(where, set())
            if present == (sha in known):
                return
            (known.add if present else known.discard)(sha)
            if not present and (where, sha) not in self.refilled:
                self.sent.get(where, set()).discard(sha)
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                part = f"{self.path}.{os.getpid()}.part"
                with open(part, "w", encoding="utf-8") as handle:
                    json.dump({k: sorted(v) for k, v in self.confirmed.items()}, handle)
                os.replace(part, self.path)
            except OSError:
                pass   # a cache only


shipped = _Shipped(os.path.join(os.path.dirname(_IMPORTS_CACHE), "ansible-shipped-v1.json"))


def module_args(packed: Packed, args: dict, *, check: bool, diff: bool, no_log: bool,
                verbosity: int) -> dict:
    """The task's arguments plus the ``_ansible_*`` internal arguments of the protocol."""
    internal = {"check_mode": check, "no_log": no_log, "debug": False, "diff": diff, "verbosity": verbosity,
                "version": ansible_version(), "module_name": packed.source.short_name,
                "syslog_facility": "LOG_USER", "selinux_special_fs": _DEFAULT_SELINUX_FS,
                "shell_executable": "/bin/sh", "socket": None, "tmpdir": None, "remote_tmp": "~/.ansible/tmp",
                "keep_remote_files": False, "ignore_unknown_opts": False, "target_log_info": None,
                "tracebacks_for": [], "string_conversion_action": "warn"}
    names = packed.internal or tuple(internal)
    out = dict(args)
    for name in names:
        if name in internal:
            out["_ansible_" + name] = internal[name]
    return out


# The program the host's Python runs (Python 2.7 and 3.x syntax, so an old host gets the
# module's own "Python too old" answer rather than a syntax error). The packed zip is
# unpacked once into a private per-user cache directory named by its sha256 (Python then
# keeps compiled bytecode beside it, which a zip cannot), and the module runs as
# ``__main__`` with its arguments set where basic.py reads them.
_RUNNER = r'''
import base64, hashlib, io, json, os, shutil, sys, tempfile, zipfile
SHA, FQN, PAYLOAD, PARAMS, CACHE = %(sha)r, %(fqn)r, %(payload)r, %(params)r, %(cache)r
MARK = ".gfsdeploy-complete"
def private_dir():
    d = os.path.expanduser(CACHE)
    try:
        os.makedirs(d, 448)
    except OSError:
        pass
    try:
        st = os.lstat(d)
    except OSError:
        return None
    if not os.path.isdir(d) or os.path.islink(d) or st.st_uid != os.geteuid() or st.st_mode & 18:
        return None
    return d
def unpack(data, into):
    archive = zipfile.ZipFile(io.BytesIO(data))
    for name in archive.namelist():
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError("unsafe path in the module payload: " + name)
    archive.extractall(into)
    f = open(os.path.join(into, MARK), "w")
    f.write(SHA)
    f.close()
def prune(d):
    """Modules not used for 30 days (a run touches what it uses) are removed."""
    import time
    for name in os.listdir(d):
        path = os.path.join(d, name)
        try:
            if time.time() - os.stat(path).st_mtime > 30 * 86400:
                shutil.rmtree(path, True)
        except OSError:
            pass
d = private_dir()
tree = d and os.path.join(d, SHA)
tmp = None
if not (tree and os.path.isfile(os.path.join(tree, MARK))):
    if not PAYLOAD:
        sys.stdout.write(json.dumps({%(need)r: SHA}) + "\n")
        sys.exit(0)
    data = base64.b64decode(PAYLOAD)
    if hashlib.sha256(data).hexdigest() != SHA:
        sys.stdout.write(json.dumps({"failed": True, "msg": "gfsdeploy: the module payload arrived damaged"}))
        sys.exit(1)
    if tree:
        prune(d)
        part = tempfile.mkdtemp(dir=d, prefix=".part-")
        unpack(data, part)
        try:
            os.rename(part, tree)
        except OSError:
            if os.path.isfile(os.path.join(tree, MARK)):
                shutil.rmtree(part, True)       # another run unpacked it meanwhile
            else:
                shutil.rmtree(tree, True)       # what an interrupted unpack left
                os.rename(part, tree)
    else:
        tmp = tree = tempfile.mkdtemp(prefix="gfsdeploy-module-")
        unpack(data, tree)
else:
    try:
        os.utime(tree, None)
    except OSError:
        pass
sys.path = [p for p in sys.path if p not in ("", ".")]
sys.path.insert(0, tree)
try:
    import ansible.module_utils.basic as basic
    basic._ANSIBLE_ARGS = base64.b64decode(PARAMS)
    if hasattr(basic, "_ANSIBLE_PROFILE"):
        basic._ANSIBLE_PROFILE = "legacy"
    import runpy
    runpy.run_module(FQN, run_name="__main__", alter_sys=True)
    sys.stdout.write(json.dumps({"failed": True, "msg": "the module ended without reporting a result"}))
    sys.exit(1)
except SystemExit:
    raise
except BaseException:
    import traceback
    e = sys.exc_info()[1]
    sys.stdout.write(json.dumps({"failed": True, "msg": "the module raised %%s: %%s" %% (type(e).__name__, e),
                                 "exception": traceback.format_exc()}))
    sys.exit(1)
finally:
    if tmp:
        shutil.rmtree(tmp, True)
'''


def _interpreter_lines(interpreter: str | None, what: str) -> list[str]:
    """Shell lines setting ``"$@"`` to the Python to use: the configured one or the first found."""
    if interpreter and not interpreter.startswith("auto"):
        return [f"set -- {' '.join(shlex.quote(w) for w in shlex.split(interpreter))}"]
    return ['set --',
            'for __p in python3 /usr/libexec/platform-python /usr/bin/python3 python; do',
            '  if command -v "$__p" >/dev/null 2>&1; then set -- "$(command -v "$__p")"; break; fi',
            'done',
            f'[ "$#" -gt 0 ] || {{ echo "gfsdeploy: no Python on this host ({what} needs one): install python3 '
            f'or set ansible_python_interpreter" >&2; exit 127; }}']


def script(packed: Packed, params: dict, *, interpreter: str | None, ship: bool, cache: str = CACHE_DIR) -> str:
    """The shell script that runs ``packed`` with ``params`` (the full module args)."""
    token = _random.token_hex(8)
    source = packed.source
    if source.style == "python":
        program = _RUNNER % {
            "sha": packed.sha, "fqn": source.fqn, "cache": cache, "need": NEED_PAYLOAD,
            "payload": base64.b64encode(packed.payload).decode() if ship else "",
            "params": base64.b64encode(json.dumps({"ANSIBLE_MODULE_ARGS": params}).encode()).decode()}
        return "\n".join([*_interpreter_lines(interpreter, f"the Ansible module {source.short_name!r}"),
                          f"\"$@\" - <<'GFS_{token}'", program.strip("\n"), f"GFS_{token}", ""])
    if source.style == "jsonargs":
        body = packed.payload.replace(_JSONARGS, json.dumps(params).encode())
        body = body.replace(b'"<<INCLUDE_ANSIBLE_MODULE_COMPLEX_ARGS>>"', repr(json.dumps(params)).encode())
        body = body.replace(b'"<<ANSIBLE_VERSION>>"', repr(ansible_version()).encode())
        return "\n".join([*_interpreter_lines(interpreter, f"the Ansible module {source.short_name!r}"),
                          f"\"$@\" - <<'GFS_{token}'", body.decode("utf-8", "replace").rstrip("\n"),
                          f"GFS_{token}", ""])
    return _script_file_module(packed, params, ship=ship, token=token, cache=cache)


def _script_file_module(packed: Packed, params: dict, *, ship: bool, token: str, cache: str) -> str:
    """A script or binary module: the file (cached by sha) run with an arguments file,
    JSON (want_json, binary) or ``k=v`` words (old style)."""
    if packed.source.style == "old":
        args_text = " ".join(f"{k}={shlex.quote(v if isinstance(v, str) else json.dumps(v))}"
                             for k, v in params.items())
    else:
        args_text = json.dumps(params)
    where = f'"${{HOME:-/tmp}}"/{shlex.quote(cache[2:])}' if cache.startswith("~/") else shlex.quote(cache)
    lines = ["umask 077", f"__d={where}", 'mkdir -p "$__d" || exit 1',
             f'__m="$__d/{packed.sha}"',
             f'if [ "$(sha256sum "$__m" 2>/dev/null | cut -d" " -f1)" != {packed.sha} ]; then']
    if ship:
        lines += [f"  base64 -d > \"$__m.part\" <<'GFS_{token}' || exit 1",
                  base64.encodebytes(packed.payload).decode().rstrip("\n"), f"GFS_{token}",
                  '  chmod 700 "$__m.part" && mv -f "$__m.part" "$__m" || exit 1']
    else:
        lines += [f"  printf '%s\\n' '{{\"{NEED_PAYLOAD}\": \"{packed.sha}\"}}'; exit 0"]
    lines += ["fi", '__a=$(mktemp) || exit 1', f"cat > \"$__a\" <<'GFS_{token}'", args_text, f"GFS_{token}",
              '"$__m" "$__a" </dev/null; __rc=$?', 'rm -f "$__a"', 'exit $__rc', ""]
    return "\n".join(lines)


def parse_output(stdout: str, stderr: str, rc: int) -> dict:
    """The module's JSON result (text around it ignored, as Ansible does); a result
    that says what went wrong when there is none."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("{")), None)
    if start is not None:
        tail = lines[start:]
        end = next((len(tail) - i for i, line in enumerate(reversed(tail)) if line.strip().endswith("}")), None)
        if end:
            try:
                data = json.loads("\n".join(tail[:end]))
            except ValueError:
                data = None
            if isinstance(data, dict):
                return data
    message = "MODULE FAILURE: the module printed no JSON result"
    if rc == 127 or "No such file or directory" in stderr and "python" in stderr:
        message = "MODULE FAILURE: the module's interpreter was not found"
    detail = (stderr.strip() or stdout.strip())[-2000:]
    return {"failed": True, "msg": message + (f"\n{detail}" if detail else ""), "rc": rc,
            "module_stdout": stdout, "module_stderr": stderr}


def need_payload(result: dict) -> bool:
    return NEED_PAYLOAD in result and len(result) == 1


def render_diff(diff) -> str:
    """A module's ``diff`` (before/after pairs, or prepared text) as unified diff text."""
    if not diff:
        return ""
    if isinstance(diff, list):
        return "".join(render_diff(d) for d in diff)
    if not isinstance(diff, dict):
        return str(diff)
    if diff.get("prepared"):
        text = str(diff["prepared"])
        return text if text.endswith("\n") else text + "\n"
    if "before" not in diff and "after" not in diff:
        return ""

    def lines(value):
        if value is None:
            return []
        if not isinstance(value, str):
            value = json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"
        return value.splitlines(keepends=True)

    before, after = lines(diff.get("before")), lines(diff.get("after"))
    if before == after:
        return ""
    out = difflib.unified_diff(before, after, fromfile=str(diff.get("before_header", "before")),
                               tofile=str(diff.get("after_header", "after")))
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def _symbol(diff) -> str:
    """``+`` when a module's diff goes from nothing to something, ``-`` the other way."""
    if isinstance(diff, list):
        symbols = {_symbol(d) for d in diff}
        return symbols.pop() if len(symbols) == 1 else CHANGE
    if not isinstance(diff, dict) or "before" not in diff or "after" not in diff:
        return CHANGE
    empty = (None, "", {}, [])
    before, after = diff.get("before"), diff.get("after")
    if before in empty and after not in empty:
        return ADD
    if after in empty and before not in empty or isinstance(after, dict) and after.get("state") == "absent":
        return DESTROY
    return CHANGE


_PASSWORD_NAME = re.compile(r"^(?:.+[-_\s])?(?:pass(?:[-_\s]?(?:word|phrase|wrd|wd)?)|secret|token)(?:[-_\s].+)?$",
                            re.I)
_NO_LOG_MARK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def register_secrets(args: dict, no_log_names) -> None:
    """Declare the values of ``no_log`` arguments (and of arguments named like passwords) sensitive."""
    from gfsdeploy import secrets

    for name, value in args.items():
        if name in no_log_names or (isinstance(name, str) and _PASSWORD_NAME.match(name)):
            for leaf in _leaves(value):
                secrets.register(leaf)


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    elif value is not None and not isinstance(value, bool):
        yield value


def masked_names(result: dict) -> set:
    """Arguments the module itself masked in ``invocation`` (its no_log specs)."""
    invocation = (result.get("invocation") or {}).get("module_args") if isinstance(result, dict) else None
    if not isinstance(invocation, dict):
        return set()
    return {k for k, v in invocation.items() if v == _NO_LOG_MARK}


# -- the adapter --------------------------------------------------------------------------
class _AnyArguments(dict):
    """The argument names of a module whose spec is not a literal: every name is
    admitted at load time, and the module validates its own arguments when it runs."""

    def __contains__(self, key) -> bool:
        return True


PRIVATE = "_gfsdeploy"   # key prepare() adds to the arguments: how to run (never shown)


class ProtocolModule(Module):
    """A module run through Ansible's module protocol: the probe is a check-mode run,
    the plan is what it reports, apply runs it for real."""

    read_only = False
    cheap_reads = False   # a Python start per read: re-read step by step on a changing host
    #: its read is a check-mode run: once its host changed, apply runs it for real rather
    #: than reading again first (the module decides, as under Ansible)
    reread_after_change = False

    def __init__(self, source: Source):
        self.source = source
        self.name = source.name
        self.declared = declared(source)
        #: no literal spec: any argument name is admitted here, the module checks its own when it runs
        self.open_arguments = self.declared.arguments is None
        if self.declared.arguments is None:
            self.params = _AnyArguments()
        else:
            self.params = {name: Param(type="raw", aliases=aliases)
                           for name, aliases in self.declared.arguments.items()}

    def describe(self) -> str:
        """One line for ``graph -v``/``plan -v``: which module file runs and how."""
        check = {True: "check mode", False: "no check mode (plan shows it as known after apply)",
                 None: "check mode if the module accepts it"}[self.declared.check_mode]
        return f"Ansible module protocol: {self.source.path} ({self.source.origin}, {self.source.style}; {check})"

    # -- controller side --------------------------------------------------------------
    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        if not isinstance(args, dict):
            raise PlaybookError(f"arguments of {self.name!r} must be a mapping", **(where or {}))
        out = {str(k): v for k, v in args.items()}
        register_secrets(out, self.declared.no_log)
        return out

    def prepare(self, args: dict, ctx: TaskContext) -> dict:
        variables = ctx.variables
        interpreter = variables.get("ansible_python_interpreter") or ctx.host.vars.get("ansible_python_interpreter")
        check = ctx.task_check_mode
        cache = variables.get(CACHE_VAR) or ctx.host.vars.get(CACHE_VAR)
        where = json.dumps([ctx.host.name, *(str(variables.get(k) or ctx.host.vars.get(k) or "") for k in
                                             ("ansible_host", "ansible_port", "ansible_user"))])
        return {**args, PRIVATE: {
            "where": f"{where} {cache or CACHE_DIR}",
            "interpreter": str(interpreter) if interpreter else None,
            "cache": str(cache) if cache else CACHE_DIR,
            "no_log": bool(ctx.no_log),
            "diff": bool(ctx.diff),
            "verbosity": int(ctx.verbosity or 0),
            "check": check if isinstance(check, bool) else None}}

    def _split(self, args: dict) -> tuple[dict, dict]:
        options = dict(args.get(PRIVATE) or {})
        return {k: v for k, v in args.items() if k != PRIVATE}, options

    def _script(self, args: dict, *, check: bool, diff: bool, ship: bool | None = None) -> tuple:
        """The script running this task's module; it carries the module itself unless the
        host is known to have it (``ship`` forces either)."""
        plain, options = self._split(args)
        packed = pack(self.source)
        params = module_args(packed, plain, check=check, diff=diff, no_log=options.get("no_log", False),
                             verbosity=options.get("verbosity", 0))
        where = options.get("where", "")
        if ship is None:
            ship = not packed.cacheable or not shipped.has(where, packed.sha)
        if ship and packed.cacheable:
            shipped.sending(where, packed.sha)
        return packed, script(packed, params, interpreter=options.get("interpreter"), ship=ship,
                              cache=options.get("cache") or CACHE_DIR)

    def _learn(self, args: dict, packed: Packed, result: dict) -> None:
        if packed.cacheable and "MODULE FAILURE" not in str(result.get("msg", "")):
            shipped.learn(self._split(args)[1].get("where", ""), packed.sha, not need_payload(result))

    # -- the three steps ------------------------------------------------------------------
    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        if self.declared.check_mode is False:
            return {}
        _, options = self._split(args)
        if options.get("check") is False:
            return {}   # `check_mode: false`: it runs for real, even in plan
        return {"check": self._script(args, check=True, diff=True)[1]}

    def read(self, args: dict, facts: dict, ctx: TaskContext) -> Any:
        state = {"pending_before": bool(ctx.host_pending), "result": None}
        _, options = self._split(args)
        if self.declared.check_mode is False or options.get("check") is False:
            return state
        answer = facts.get("check")
        if answer is None and not ctx.check_mode:
            state["runs"] = True   # apply, after a change on the host: it runs without a read first
            return state
        result = parse_output(answer.stdout, answer.stderr, answer.rc) if answer is not None else None
        packed = pack(self.source)
        if result is not None:
            self._learn(args, packed, result)
        if result is None or need_payload(result):
            # the host did not have it after all (its cache was cleared): ship it with this read
            where = self._split(args)[1].get("where", "")
            ship = shipped.refill(where, packed.sha) if result is not None else None
            _, text = self._script(args, check=True, diff=True, ship=ship)
            answer = ctx.transport.run(_exported(getattr(ctx, "environment", None)) + text, kind="read")
            result = parse_output(answer.stdout, answer.stderr, answer.rc)
            self._learn(args, packed, result)
        self._learn_secrets(args, result)
        state["result"] = result
        return state

    def resource(self, args: dict) -> str:
        """What the plan line names: the module and its main argument (``cron backup``)."""
        plain, _ = self._split(args)
        for name, aliases in (self.declared.arguments or {}).items():
            for alias in aliases:
                if alias in plain and name not in plain:
                    plain[name] = plain[alias]
        for key in ("name", "path", "dest", "key", "src", "filename", "repo", "user"):
            value = plain.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return f"{self.source.short_name} {value}"
            if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
                return f"{self.source.short_name} {','.join(map(str, value))}"
        return self.source.short_name

    def plan(self, args: dict, state: Any, host: HostInfo) -> list[Change]:
        state = state or {}
        result = state.get("result")
        resource = self.resource(args)
        if result is None:
            why = "it runs now: its host changed since plan read it" if state.get("runs") else \
                "the module does not support check mode, so plan does not run it"
            return [Change(CHANGE, resource, f"(known after apply): {why}", data={"protocol": True})]
        if result.get("skipped") and "check mode" in str(result.get("msg", "")):
            return [Change(CHANGE, resource, "(known after apply): the module refused check mode",
                           data={"protocol": True})]
        if _failed(result):
            message = str(result.get("msg") or "failed") if not self._no_log(args) else NO_LOG_CENSORED
            if state.get("pending_before"):
                return [Change(CHANGE, resource, "(known after apply): check mode failed, "
                                                 f"possibly until earlier changes are made: {message}",
                               data={"protocol": True})]
            raise ModuleError(f"{self.source.short_name} (check mode): {message}", host=host.name)
        if not result.get("changed"):
            return []
        diff = result.get("diff")
        return [Change(_symbol(diff), resource, render_diff(diff), sensitive=self._no_log(args),
                       data={"protocol": True, "check_result": result})]

    def unchanged(self, args: dict, state: Any) -> TaskResult:
        """What a task registers when its check-mode run found nothing to change."""
        result = (state or {}).get("result")
        if not isinstance(result, dict):
            return TaskResult()
        # found in check mode with diff on; the task registers what a run without them returns
        return to_task_result(result, keep_diff=bool(self._split(args)[1].get("diff")))

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        _, options = self._split(args)
        check = options.get("check")
        in_check = check is True or (ctx.check_mode and check is not False)
        if in_check and self.declared.check_mode is False:
            return TaskResult(changed=False, msg="skipped: the module does not support check mode",
                              data={"skipped": True})
        diff = options.get("diff", False) or in_check
        packed, text = self._script(args, check=in_check, diff=diff)
        answer = ctx.exec(text)
        result = parse_output(answer.stdout, answer.stderr, answer.rc)
        self._learn(args, packed, result)
        if need_payload(result):
            packed, text = self._script(args, check=in_check, diff=diff, ship=True)
            shipped.refill(options.get("where", ""), packed.sha)
            answer = ctx.exec(text)
            result = parse_output(answer.stdout, answer.stderr, answer.rc)
            self._learn(args, packed, result)
        self._learn_secrets(args, result)
        for warning in result.get("warnings") or []:
            ctx.progress(f"[WARNING]: {warning}" if not self._no_log(args) else "[WARNING]: (hidden by no_log)")
        return to_task_result(result)

    # -- helpers ------------------------------------------------------------------------
    def _no_log(self, args: dict) -> bool:
        return bool(self._split(args)[1].get("no_log"))

    def _learn_secrets(self, args: dict, result: dict) -> None:
        names = masked_names(result)
        if names:
            register_secrets(self._split(args)[0], names)


def _exported(environment: dict | None) -> str:
    """The task's ``environment:`` as shell exports (a module sees it, as under Ansible)."""
    return "".join(f"export {k}={shlex.quote('' if v is None else str(v))}\n" for k, v in (environment or {}).items())


def _failed(result: dict) -> bool:
    if "failed" in result:
        return bool(result["failed"])
    return "rc" in result and result["rc"] not in (0, "0")


def to_task_result(result: dict, *, keep_diff: bool = True) -> TaskResult:
    """A module's JSON result as a TaskResult whose registered value is Ansible's: what the
    module printed, ``changed``/``failed`` defaulted as Ansible does (``failed`` missing
    means a non-zero ``rc``), ``stdout_lines``/``stderr_lines`` added, ``_ansible_*`` dropped."""
    data = {k: v for k, v in result.items() if not str(k).startswith("_ansible_")
            and (keep_diff or k != "diff")}
    data["failed"] = _failed(result)
    data["changed"] = bool(result.get("changed", False))
    for stream in ("stdout", "stderr"):
        if stream in data and f"{stream}_lines" not in data:
            data[f"{stream}_lines"] = str(data[stream] or "").splitlines()
    # rc stays in the registered value only: whether it means failure was decided above, as Ansible does;
    # the registered value is the module's own result (TaskResult.register)
    return TaskResult(changed=data["changed"], failed=data["failed"],
                      msg=str(result.get("msg", "")) if result.get("msg") is not None else "", data=data,
                      register=data)


_refusals: dict[str, PlaybookError] = {}


def lookup(name: str, library: tuple = ()) -> ProtocolModule | None:
    """The adapter for the module ``name`` runs through the protocol, or None (then
    :func:`refusal` says why, when a module of that name exists but cannot run).
    ``library``: the task's own library dirs (its role's), searched first."""
    key = (name, tuple(library))
    with _lock:
        if key in _adapters:
            return _adapters[key]
    try:
        source = find(name, tuple(library))
    except PlaybookError as exc:
        with _lock:
            _refusals[name] = exc
        source = None
    adapter = ProtocolModule(source) if source is not None else None
    with _lock:
        _adapters[key] = adapter
    return adapter


def refusal(name: str) -> PlaybookError | None:
    """Why the module ``name`` exists but cannot run through the protocol (None: it does not exist)."""
    lookup(name)
    with _lock:
        return _refusals.get(name)


def protocol_lines(tasks) -> list[str]:
    """For ``graph -v``/``plan -v``: the tasks that run through the protocol, and how."""
    from gfsdeploy import modules

    lines = []
    for task in tasks:
        module = modules.get(task.module, getattr(task, "library_dirs", ()) or (),
                             getattr(task, "collections", ()) or ())
        if isinstance(module, ProtocolModule):
            lines.append(f"  {task.label} ({task.file}:{task.line}): {task.module} — {module.describe()}")
    return lines


def reset() -> None:
    """Forget the search paths and what was found or packed (tests, and a new run in one process)."""
    with _lock:
        _content_dirs.clear()
        _found.clear()
        _adapters.clear()
        _refusals.clear()
        _packed.clear()
