"""Module registry. Every file in this package — and in the module packages of
installed content (:mod:`gfsdeploy.plugins`) — defines Module subclasses; the
runner looks them up by name (``copy``, ``iptables`` …) and never imports one
directly."""

from __future__ import annotations

import importlib
import pkgutil

from gfsdeploy.modules.base import Module

_REGISTRY: dict[str, type[Module]] = {}
_loaded = False


def _load() -> None:
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
    for cls in _all_subclasses(Module):
        if cls.name:
            for name in (cls.name, *cls.aliases):
                _REGISTRY[name] = cls
    _loaded = True


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def get(name: str, library_dirs=()) -> Module | None:
    """The module called ``name`` (also its fully qualified form: ``ansible.builtin.copy``,
    ``ansible.posix.mount``, ``community.general.ufw`` — see :data:`COLLECTIONS`), or None.
    Native modules come first; else an Ansible module of that name (``library_dirs``:
    the task's role and playbook ``library/`` dirs; then the playbooks' and roles' loaded
    so far, ansible-core, collections) run through Ansible's module protocol
    (:mod:`gfsdeploy.ansible_protocol`)."""
    _load()
    full = name
    collection, dot, short = name.rpartition(".")
    if dot and collection in COLLECTIONS:
        # a fully qualified name maps to a native module only if that collection has it
        # (ansible.builtin.mount does not exist; ansible.posix.mount does)
        known = COLLECTIONS[collection]
        name = short if known is None or short in known else full
    elif dot and collection == "gfsdeploy":
        name = short
    cls = _REGISTRY.get(name)
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
