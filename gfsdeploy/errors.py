"""User-facing errors: every mistake names where it is and how to fix it.

The CLI prints these without a traceback (``-v`` adds one) and exits 1.
"""

from __future__ import annotations


class GfsError(Exception):
    """An error the user can act on.

    ``where`` is a file (optionally with a line), a host, or a task; ``fix`` is
    one sentence telling the user what to do.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, host: str | None = None, task: str | None = None,
                 fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.host = host
        self.task = task
        self.fix = fix

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.host:
            parts.append(f"host {self.host}")
        if self.task:
            parts.append(f"task {self.task!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        from gfsdeploy.secrets import redact

        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return redact(text)


class InventoryError(GfsError):
    """The inventory file is malformed or inconsistent."""


class PlaybookError(GfsError):
    """The playbook file is malformed, or a task's arguments are wrong."""


class TemplateError(GfsError):
    """A Jinja expression failed (undefined variable, bad syntax)."""


class GraphError(GfsError):
    """The task graph is not a DAG, or a ``needs:`` points nowhere."""


class TransportError(GfsError):
    """Connecting to or talking with a host failed."""


class HostKeyError(TransportError):
    """A host key is unknown (and not accepted) or has changed."""


class ModuleError(GfsError):
    """A module could not read state or apply a change on a host."""


class PreflightError(GfsError):
    """A host or the cluster is not fit for the change (dirty disk, old kernel…)."""


class LockError(GfsError):
    """Another run holds the run's lock, or the lock cannot be taken."""


class Interrupted(GfsError):
    """The user stopped the run (SIGINT/SIGTERM); nothing new was started after it."""


class PlanError(GfsError):
    """Apply stopped before changing anything: the plan has errors, or a change that
    destroys data was not confirmed. ``plan`` is what was planned."""

    def __init__(self, message: str, *, plan=None, **where):
        super().__init__(message, **where)
        self.plan = plan


class StalePlanError(PlanError):
    """The inventory, the playbook or the hosts changed since the plan was made."""
