"""gfsdeploy: idempotent provisioning over SSH with a truthful plan.

The library API is :class:`Session` (plan and apply a playbook against an
inventory); see :mod:`gfsdeploy.session`. Imports are lazy, so ``import
gfsdeploy`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["Options", "Plan", "Recap", "Session", "__version__"]


def __getattr__(name):
    if name in ("Options", "Plan", "Recap", "Session"):
        from gfsdeploy import session

        return getattr(session, name)
    raise AttributeError(f"module 'gfsdeploy' has no attribute {name!r}")
