"""``group_vars/`` and ``host_vars/`` directories, and vars files, as Ansible reads them.

For an entity (a group or a host) named N, a vars directory may hold ``N``,
``N.yml``, ``N.yaml``, ``N.json`` and/or a directory ``N/`` whose files are read
recursively in sorted order; later files override earlier ones. Hidden files and
backups (``~``, ``.bak``, ``.orig``, ``.swp``, ``.retry``, ``.pyc``, ``.cfg``,
``.ini``) are skipped. Each file must be a mapping (or empty). A vault-encrypted
file is decrypted with the run's vault passwords (:mod:`gfsdeploy.vault`).
"""

from __future__ import annotations

import contextlib
import os

from gfsdeploy.errors import GfsError
from gfsdeploy.yamlload import load, position

EXTENSIONS = ("", ".yml", ".yaml", ".json")
SKIPPED_SUFFIXES = ("~", ".bak", ".orig", ".swp", ".retry", ".pyc", ".pyo", ".cfg", ".ini", ".md", ".txt")


class VarsFileError(GfsError):
    """A vars file is malformed."""


def load_vars_file(path: str, *, what: str = "vars file", error_cls=VarsFileError) -> dict:
    """A YAML/JSON mapping from ``path`` (``{}`` for an empty file), vault-aware.
    For ``vars_files``, ``include_vars``, ``group_vars``/``host_vars``."""
    data = load(path, error_cls, what=what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error_cls(f"a {what} must be a mapping of variable names to values, got {type(data).__name__}",
                        **(position(data) or {"file": path, "line": 1}), fix="write `name: value` lines")
    for key in data:
        if not isinstance(key, str) or not key.isidentifier():
            raise error_cls(f"{key!r} is not a valid variable name", **position(data, key), field=str(key),
                            fix="use letters, digits and _ (not starting with a digit)")
    return data


def _wanted(name: str) -> bool:
    return not name.startswith(".") and not name.endswith(SKIPPED_SUFFIXES)


def entity_files(directory: str, name: str) -> list[str]:
    """The files that hold ``name``'s variables in ``directory``, in load order."""
    out: list[str] = []
    for ext in EXTENSIONS:
        candidate = os.path.join(directory, name + ext)
        if os.path.isfile(candidate):
            out.append(candidate)
    folder = os.path.join(directory, name)
    if os.path.isdir(folder):
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if _wanted(f) and os.path.splitext(f)[1] in EXTENSIONS:
                    out.append(os.path.join(root, f))
    return out


class VarsDirCache:
    """Reads each vars file once per run."""

    def __init__(self):
        self._files: dict[str, dict] = {}
        #: during a merge of every host (:meth:`merging`): directory -> it exists
        self._is_dir: dict[str, bool] | None = None

    def file(self, path: str) -> dict:
        key = os.path.realpath(path)
        if key not in self._files:
            self._files[key] = load_vars_file(path, what=f"{os.path.basename(os.path.dirname(path))} file")
        return self._files[key]

    @contextlib.contextmanager
    def merging(self):
        """While every host's layers are gathered at once, each directory is looked
        for once (not once a host); afterwards it is looked for again."""
        self._is_dir = {}
        try:
            yield
        finally:
            self._is_dir = None

    def paths(self) -> list[str]:
        return list(self._files)

    def entity(self, base: str, kind: str, name: str) -> list[tuple[str, dict]]:
        """[(file, vars)] for ``name`` in ``base/kind`` (kind: group_vars or host_vars)."""
        directory = os.path.join(base, kind)
        known = self._is_dir
        exists = known.get(directory) if known is not None else None
        if exists is None:
            exists = os.path.isdir(directory)
            if known is not None:
                known[directory] = exists
        if not exists:
            return []
        return [(path, self.file(path)) for path in entity_files(directory, name)]
