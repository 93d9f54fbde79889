"""Keep sensitive values out of every byte gfsdeploy prints or saves.

Values are declared sensitive (the ``!sensitive`` YAML tag, a ``sensitive_vars``
list, or a module parameter marked ``sensitive``); they are registered here and
every output path (plan, progress, recap, JSON, errors, logs) goes through
:func:`redact`. Base64 forms are registered too, because many APIs
carry secrets base64-encoded.
"""

from __future__ import annotations

import base64
import re
import threading

MASK = "(sensitive)"

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


class Sensitive(str):
    """A string that was declared sensitive. Behaves as a str everywhere."""

    __slots__ = ()


def register(value) -> None:
    """Declare ``value`` (and its base64 forms) sensitive for the rest of the run."""
    global _pattern
    if value is None:
        return
    text = str(value)
    from gfsdeploy.templating.templar import UNKNOWN_MARK

    if UNKNOWN_MARK in text:
        # a value still unknown in a plan is not the secret: only what is known around it
        # (else every "(known after apply)" of the run would print as "(sensitive)")
        for part in text.split(UNKNOWN_MARK):
            register(part)
        return
    if len(text) < 4:  # too short to redact without mangling ordinary output
        return
    forms = {text}
    raw = text.encode()
    forms.add(base64.b64encode(raw).decode())
    # base64 of the value embedded in a longer blob: its aligned fragments.
    for shift in range(3):
        # the first and last 4-char groups depend on neighbouring bytes; the rest is stable
        inner = base64.b64encode(b"\0" * shift + raw).decode()[4:-4]
        if len(inner) >= 8:
            forms.add(inner)
    with _lock:
        new = forms - _values
        if new:
            _values.update(new)
            _pattern = re.compile("|".join(re.escape(v) for v in sorted(_values, key=len, reverse=True)))


def redact(text):
    """Return ``text`` with every registered sensitive value replaced by ``(sensitive)``."""
    if not isinstance(text, str):
        return text
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(MASK, text)


def redacting() -> bool:
    """Is any value registered? (If not, :func:`redact_obj` would only copy.)"""
    return _pattern is not None


def redact_obj(obj):
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


def new_run() -> None:
    """Start a run's registry: what an earlier run in this process declared sensitive
    is forgotten (a value secret there may be ordinary here). One run at a time."""
    reset()


def reset() -> None:
    """Forget every registered value."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None
