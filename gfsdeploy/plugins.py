"""Content plugins: what a package of playbooks and modules adds to the engine.

The engine knows no deployment by name. A content package declares itself with
an entry point in the ``gfsdeploy.content`` group whose object is a
:class:`Content`; the engine asks it for its module packages, its default
playbook, extra commands, inventory checks and the host that holds the run's
lock. Discovery is lazy: only commands that need content pay for the scan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

ENTRY_POINT_GROUP = "gfsdeploy.content"


@dataclass
class Content:
    """One content package, as the engine sees it."""

    name: str
    #: Python packages whose Module subclasses become task modules
    module_packages: tuple = ()
    #: the directory holding ``playbooks/``, ``templates/`` and ``inventory/`` (what ``init`` copies)
    share_dir: str = ""
    #: the playbook plan/apply run when no ``-p`` is given (relative to ``share_dir``)
    default_playbook: str = ""
    #: adds sub-commands to the CLI: ``register(subparsers)``
    register_commands: Callable | None = None
    #: called with the loaded inventory: add group aliases, check the content's own
    #: host variables (raise InventoryError with file/line/field/fix)
    inventory_loaded: Callable | None = None
    #: groups whose first reachable member holds the run's lock (else the first host)
    lock_groups: tuple = ()

    def path(self, *parts: str) -> str:
        return os.path.join(self.share_dir, *parts)


_loaded: list[Content] | None = None


def contents() -> list[Content]:
    """Every installed content package (entry points of ``gfsdeploy.content``)."""
    global _loaded
    if _loaded is None:
        from importlib.metadata import entry_points

        found = []
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                content = ep.load()
            except ImportError:
                continue
            if isinstance(content, Content) and all(c.name != content.name for c in found):
                found.append(content)  # (an editable install and a wheel may both declare it)
        _loaded = found
    return _loaded


def default_content() -> Content | None:
    """The content whose default playbook runs when no ``-p`` is given (the first with one)."""
    for content in contents():
        if content.default_playbook:
            return content
    return None
