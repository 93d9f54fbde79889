"""The ``version`` test (alias ``version_compare``): Ansible's four version kinds.

- ``loose`` (default): digits and lower-case letter runs are the parts, dots
  separate, any other character is a part of its own; numbers compare as
  numbers. ``1.10 > 1.9``. A number against a word cannot be ordered: error.
- ``strict``: ``N.N[.N][{a|b}N]``; a pre-release sorts before its release.
- ``semver``/``semantic``: ``MAJOR.MINOR.PATCH[-pre][+build]`` (build ignored).
- ``pep440``: Python package versions (needs the ``packaging`` module).
"""

from __future__ import annotations

import operator
import re

OPERATORS = {
    "==": operator.eq, "=": operator.eq, "eq": operator.eq,
    "<": operator.lt, "lt": operator.lt,
    "<=": operator.le, "le": operator.le,
    ">": operator.gt, "gt": operator.gt,
    ">=": operator.ge, "ge": operator.ge,
    "!=": operator.ne, "<>": operator.ne, "ne": operator.ne,
}
KINDS = ("loose", "strict", "semver", "semantic", "pep440")


class VersionError(ValueError):
    pass


_LOOSE_PART = re.compile(r"(\d+|[a-z]+|\.)")
_STRICT = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:([ab])(\d+))?$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                     r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")


def loose_key(text: str) -> list:
    parts = [p for p in _LOOSE_PART.split(text) if p and p != "."]
    return [int(p) if p.isdigit() else p for p in parts]


def strict_key(text: str) -> tuple:
    m = _STRICT.match(text)
    if not m:
        raise VersionError(f"invalid strict version {text!r} (expected N.N[.N][a|bN])")
    release = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    pre = (0, m.group(4), int(m.group(5))) if m.group(4) else (1, "", 0)
    return release + pre


class _SemverPre:
    """Pre-release identifiers ordered as semantic versioning says."""

    def __init__(self, ids):
        self.ids = ids

    def _cmp(self, other) -> int:
        if self.ids == other.ids:
            return 0
        if not self.ids:
            return 1  # a release sorts after its pre-releases
        if not other.ids:
            return -1
        for a, b in zip(self.ids, other.ids):
            if a == b:
                continue
            if isinstance(a, int) and isinstance(b, int):
                return -1 if a < b else 1
            if isinstance(a, int):
                return -1  # numeric identifiers sort before alphanumeric ones
            if isinstance(b, int):
                return 1
            return -1 if a < b else 1
        return -1 if len(self.ids) < len(other.ids) else 1

    def __eq__(self, other):
        return self._cmp(other) == 0

    def __lt__(self, other):
        return self._cmp(other) < 0


def semver_key(text: str) -> tuple:
    m = _SEMVER.match(text)
    if not m:
        raise VersionError(f"invalid semantic version {text!r} (expected MAJOR.MINOR.PATCH[-pre][+build])")
    ids = [int(x) if x.isdigit() else x for x in m.group(4).split(".")] if m.group(4) else []
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), _SemverPre(ids))


def pep440_key(text: str):
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        raise VersionError("version_type='pep440' needs the Python package `packaging`") from None
    try:
        return Version(text)
    except InvalidVersion:
        raise VersionError(f"invalid PEP 440 version {text!r}") from None


def compare(value, version, op: str = "eq", strict=None, version_type=None) -> bool:
    if op not in OPERATORS:
        raise VersionError(f"version: invalid operator {op!r}; use one of {', '.join(OPERATORS)}")
    if strict is not None and version_type is not None:
        raise VersionError("version: give either strict=… or version_type=…, not both")
    kind = "strict" if strict else (version_type or "loose")
    if kind not in KINDS:
        raise VersionError(f"version: unknown version_type {kind!r}; use one of {', '.join(KINDS)}")
    if str(version) == "":
        raise VersionError("version: the version to compare against is empty")
    key = {"loose": loose_key, "strict": strict_key, "semver": semver_key, "semantic": semver_key,
           "pep440": pep440_key}[kind]
    a, b = key(str(value)), key(str(version))
    try:
        return OPERATORS[op](a, b)
    except TypeError:
        raise VersionError(f"version: cannot compare {value!r} with {version!r} as {kind} versions "
                           f"(a number meets a word at the same position); try version_type='semver' "
                           f"or 'pep440'") from None
