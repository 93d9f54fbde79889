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

    def validate(self, module, args: dict, *, where: dict | None = None, rendered_as=None) -> dict:
        """``module.validate(args, where=where)``; each caller gets its own copy.
        ``rendered_as``: a key equal for equal arguments (Templar.render_shared), which
        spares making one from every value."""
        pure = self._pure.get(type(module))
        if pure is None:
            pure = self._pure[type(module)] = _memoizable(module)
        if not pure or type(args) is not dict:
            return module.validate(args, where=where)
        shared = (type(module), None, rendered_as) if rendered_as is not None else None
        if shared is not None:
            hit = self._done.get(shared)
            if hit is not None:
                return _copy(hit)
        key = _typed(args)
        if key is None:
            return module.validate(args, where=where)
        key = (type(module), key)   # (a pure validate reads no instance state either)
        hit = self._done.get(key)
        if hit is None:
            out = module.validate(args, where=where)
            hit = _copy(out)
            if len(self._done) >= LIMIT:
                self._done.clear()
            self._done[key] = hit
        else:
            out = _copy(hit)
        if shared is not None:
            self._done[shared] = hit
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
        return {k: v if type(v) not in _NESTED else _copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) not in _NESTED else _copy(v) for v in value]
    return value


_NESTED = (dict, list)
