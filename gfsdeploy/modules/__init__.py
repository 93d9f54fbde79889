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
    """The module called ``name`` (also its ``ansible.builtin.`` form), or None.
    Native modules come first; else an Ansible module of that name (``library_dirs``:
    the task's role and playbook ``library/`` dirs; then the playbooks' and roles' loaded
    so far, ansible-core, collections) run through Ansible's module protocol
    (:mod:`gfsdeploy.ansible_protocol`)."""
    _load()
    full = name
    for prefix in ("ansible.builtin.", "ansible.posix.", "community.general.", "gfsdeploy."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    cls = _REGISTRY.get(name)
    if cls:
        return cls()
    from gfsdeploy import ansible_protocol

    return ansible_protocol.lookup(full, tuple(library_dirs or ()))


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
