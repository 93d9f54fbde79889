"""A value that stands for an error: harmless while unused, raising its error at
the first use (printing, iterating, comparing, reading an attribute). Variables
are lazy in Ansible: a broken template or an undecryptable ``!vault`` value only
fails the task that needs it."""

from __future__ import annotations

from gfsdeploy.errors import GfsError


class Deferred:
    #: set once any Deferred exists: until then nothing needs to look for one
    made = False

    def __new__(cls, *args, **kwargs):
        Deferred.made = True
        return super().__new__(cls)

    def __init__(self, error: GfsError):
        self._error = error

    def fail(self):
        e = self._error
        raise type(e)(e.message, file=e.file, line=e.line, field=e.field, host=e.host, task=e.task, fix=e.fix)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_error", "fail"):
            raise AttributeError(name)
        self.fail()

    def _fail(self, *args, **kwargs):
        self.fail()

    __str__ = __repr__ = __iter__ = __bool__ = __len__ = __int__ = __float__ = __getitem__ = _fail
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __add__ = __radd__ = _fail
    __hash__ = object.__hash__
