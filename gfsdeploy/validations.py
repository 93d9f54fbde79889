"""Module argument validation done once per distinct arguments in a run.

Every host of a step usually validates the very same arguments (the same chain and
rule, the same path and mode): at 1,000 hosts that was a thousand identical checks of
every parameter per step. Only for modules that declare their ``validate`` reads
nothing but the arguments (``Module.pure_validate``) and take no sensitive argument
(validating one registers it as a secret). The key is the module's class and every
value with its exact type (``1`` and ``True`` are equal but validate differently; a
``Sensitive`` text is not memoized at all); it stays in memory, in this object, for
one run: arguments may hold secrets. A failure is not kept: each host raises its own.
"""

from __future__ import annotations

#: distinct arguments kept at once (the memo starts over when full)
LIMIT = 4096

_SCALARS = (str, int, float, bool, type(None))


class Validations:
    def __init__(self):
        self._done: dict = {}   # (module class, typed args) -> validated args
        self._pure: dict = {}   # module class -> whether its validations are kept

    def validate(self, module, args: dict, *, where: dict | None = None) -> dict:
        """``module.validate(args, where=where)``; each caller gets its own copy."""
        pure = self._pure.get(type(module))
        if pure is None:
            pure = self._pure[type(module)] = _memoizable(module)
        key = _typed(args) if pure and type(args) is dict else None
        if key is None:
            return module.validate(args, where=where)
        key = (type(module), key)   # (a pure validate reads no instance state either)
        hit = self._done.get(key)
        if hit is not None:
            return _copy(hit)
        out = module.validate(args, where=where)
        if len(self._done) >= LIMIT:
            self._done.clear()
        self._done[key] = _copy(out)
        return out


def _memoizable(module) -> bool:
    # declared by the module's own class: a subclass's validate is its own, and says so again
    return bool(type(module).__dict__.get("pure_validate")) and not any(
        getattr(p, "sensitive", False) for p in getattr(module, "params", {}).values())


def _typed(value):
    """``value`` as a hashable key that tells types apart; None when it holds anything
    but plain str/int/float/bool/None, lists and dicts (a subclass, an object)."""
    kind = type(value)
    if kind in _SCALARS:
        return kind, value
    if kind is list:
        parts = []
        for v in value:
            part = _typed(v)
            if part is None:
                return None
            parts.append(part)
        return list, tuple(parts)
    if kind is dict:
        parts = []
        for k, v in value.items():
            kpart, vpart = _typed(k), _typed(v)
            if kpart is None or vpart is None:
                return None
            parts.append((kpart, vpart))
        return dict, tuple(parts)
    return None


def _copy(value):
    """Lists and dicts copied all the way down (a caller may change its args)."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    return value
