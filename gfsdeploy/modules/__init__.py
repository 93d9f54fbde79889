"""Module registry. Every file in this package — and in the module packages of
installed content (:mod:`gfsdeploy.plugins`) — defines Module subclasses; the
runner looks them up by name (``copy``, ``iptables`` …) and never imports one
directly."""

from __future__ import annotations

import importlib
import pkgutil
import re

from gfsdeploy.modules.base import Module

_REGISTRY: dict[str, type[Module]] = {}
_loaded = False
_imported: set = set()
_hints: dict | None = None


def _register_classes() -> None:
    for cls in _all_subclasses(Module):
        if cls.name:
            for name in (cls.name, *cls.aliases):
                _REGISTRY.setdefault(name, cls)


def _load() -> None:
    """Import every module file (the engine's, then installed content's)."""
    global _loaded
    if _loaded:
        return
    from gfsdeploy.plugins import contents

    packages = [(__name__, __path__)]
    for content in contents():
        for name in content.module_packages:
            try:
                package = importlib.import_module(name)
            except ImportError:
                continue
            packages.append((name, package.__path__))
    for package, path in packages:
        for info in pkgutil.iter_modules(path):
            if info.name != "base" and not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")
                _imported.add(f"{package}.{info.name}")
    _register_classes()
    _loaded = True


#: a class-level ``name = "copy"`` / ``aliases = ("k8s",)`` line of a module file
_NAME_LINE = re.compile(r"^    (name|aliases)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.M)


def _scan(package: str, folders) -> dict:
    """``{module name: dotted file}`` from the class-level ``name``/``aliases`` lines
    of a package's files, read as text (nothing imported)."""
    import ast
    import os

    hints: dict = {}
    for folder in folders:
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in entries:
            stem, ext = os.path.splitext(entry)
            if ext != ".py" or stem == "base" or stem.startswith("_"):
                continue
            try:
                with open(os.path.join(folder, entry), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            for _, value in _NAME_LINE.findall(text):
                try:
                    found = ast.literal_eval(value)
                except (ValueError, SyntaxError):
                    continue
                for n in (found if isinstance(found, tuple) else (found,)):
                    if isinstance(n, str) and n:
                        hints.setdefault(n, f"{package}.{stem}")
    return hints


def _hint(name: str) -> str | None:
    """Which file defines module ``name`` — the engine's first, then installed
    content's — from the files' text, so a run imports only the modules its tasks
    use. Only a hint: a miss or a wrong guess falls back to :func:`_load`."""
    global _hints
    if _hints is None:
        _hints = _scan(__name__, __path__)
    if name not in _hints and "\0content" not in _hints:
        from gfsdeploy.plugins import contents

        for content in contents():
            for package in content.module_packages:
                try:
                    folders = importlib.import_module(package).__path__
                except (ImportError, AttributeError):
                    continue
                for key, where in _scan(package, folders).items():
                    _hints.setdefault(key, where)
        _hints["\0content"] = ""
    return _hints.get(name) or None


def _lookup(name: str) -> type[Module] | None:
    cls = _REGISTRY.get(name)
    if cls is None and not _loaded:
        where = _hint(name)
        if where and where not in _imported:
            importlib.import_module(where)
            _imported.add(where)
            _register_classes()
            cls = _REGISTRY.get(name)
        if cls is None:
            _load()
            cls = _REGISTRY.get(name)
    return cls


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def get(name: str, library_dirs=(), collections=()) -> Module | None:
    """The module called ``name`` (also its fully qualified form: ``ansible.builtin.copy``,
    ``ansible.posix.mount``, ``community.general.ufw`` — see :data:`COLLECTIONS`), or None.
    Native modules come first; else an Ansible module of that name (``library_dirs``:
    the task's role and playbook ``library/`` dirs; then the playbooks' and roles' loaded
    so far, ansible-core, collections) run through Ansible's module protocol
    (:mod:`gfsdeploy.ansible_protocol`). ``collections``: the task's ``collections:``
    keyword — a short name is looked up in them first (docs/ANSIBLE_MODULES.md)."""
    if collections and "." not in name:
        return _in_collections(name, library_dirs, collections)
    full = name
    collection, dot, short = name.rpartition(".")
    if dot and collection in COLLECTIONS:
        # a fully qualified name maps to a native module only if that collection has it
        # (ansible.builtin.mount does not exist; ansible.posix.mount does)
        known = COLLECTIONS[collection]
        name = short if known is None or short in known else full
    elif dot and collection == "gfsdeploy":
        name = short
    cls = _lookup(name)
    if cls:
        return cls()
    from gfsdeploy import ansible_protocol

    return ansible_protocol.lookup(full, tuple(library_dirs or ()))


#: which native modules each Ansible collection name carries (FQCN → short name); a
#: name a collection does not carry goes to the Ansible module lookup (and is refused
#: there if Ansible has no such module either)
POSIX = frozenset({"mount", "sysctl", "firewalld", "seboolean", "selinux", "authorized_key", "acl", "at",
                   "patch", "synchronize"})
GENERAL = frozenset({"ufw", "modprobe", "iptables_state", "filesystem", "lvg", "lvol", "parted", "timezone",
                     "alternatives", "kernel_blacklist"})
BUILTIN = frozenset({"assert", "fail", "debug", "command", "shell", "copy", "template", "file", "lineinfile",
                     "blockinfile", "stat", "wait_for", "uri", "get_url", "unarchive", "fetch", "user", "group",
                     "systemd", "systemd_service", "service", "package", "apt", "yum", "dnf", "apt_repository",
                     "yum_repository", "iptables", "set_fact", "include_vars", "setup", "ping", "pause",
                     "meta", "script", "raw", "replace", "hostname", "cron", "git", "pip", "reboot", "service_facts",
                     "package_facts", "getent", "known_hosts", "tempfile", "slurp", "find", "dnf5", "rpm_key",
                     "apt_key", "deb822_repository", "debconf", "expect", "group_by", "add_host",
                     "wait_for_connection", "async_status", "validate_argument_spec", "mount_facts", "iptables"})
#: ansible-core redirects the old short names of modules that moved to collections
#: (ansible.builtin.mount → ansible.posix.mount …); iptables_state never was in core
_REDIRECTED = (POSIX | GENERAL) - {"iptables_state"}
COLLECTIONS: dict = {"ansible.builtin": BUILTIN | _REDIRECTED, "ansible.legacy": BUILTIN | _REDIRECTED,
                     "ansible.posix": POSIX, "community.general": GENERAL}


def _in_collections(name: str, library_dirs, collections) -> Module | None:
    """Ansible's search of the ``collections:`` keyword: each listed collection in order;
    ``ansible.legacy`` (the library dirs, then ansible-core) is searched where it is listed,
    else last — unless ``ansible.builtin`` is listed (then the library dirs are not)."""
    search = [str(c) for c in collections]
    if "ansible.builtin" not in search and "ansible.legacy" not in search:
        search.append("ansible.legacy")
    for collection in search:
        module = get(name if collection == "ansible.legacy" else f"{collection}.{name}", library_dirs)
        if module is not None:
            return module
    return None


def find_library_module(name: str, library_dirs) -> Module | None:
    """An Ansible module of that name in ``library_dirs`` (a task's role/playbook
    ``library/``) or anywhere Ansible would look, run through the module protocol."""
    from gfsdeploy import ansible_protocol

    return ansible_protocol.lookup(name, tuple(library_dirs or ()))


def add_search_path(base_dir: str) -> None:
    """A playbook's or role's directory: modules in its ``library/`` (and the imports in
    its ``module_utils/``) become available, as in Ansible."""
    from gfsdeploy import ansible_protocol

    ansible_protocol.add_search_path(base_dir)


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)
