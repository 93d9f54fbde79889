"""Where the shipped playbooks, templates and example inventories are.

In a source checkout they sit at the top of the tree (``playbooks/``,
``templates/``, ``inventory/``); a built wheel carries them in ``share/`` next
to this file (``setup.py`` copies them there).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
SHARED = ("playbooks", "templates", "inventory")


def share_dir() -> Path:
    packaged = _HERE / "share"
    if (packaged / "playbooks").is_dir():
        return packaged
    return _HERE.parent


def path(*parts: str) -> Path:
    return share_dir().joinpath(*parts)
