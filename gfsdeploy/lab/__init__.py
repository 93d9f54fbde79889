"""The local lab: real SSH nodes in namespaces on this machine (`gfsdeploy lab up|down|status`)."""

from gfsdeploy.lab.host import LabError
from gfsdeploy.lab.lab import Lab, Node

__all__ = ["Lab", "LabError", "Node"]
