"""gfsdeploy: idempotent provisioning over SSH with a truthful plan."""

__version__ = "0.1.0"
