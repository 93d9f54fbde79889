"""The local lab: real SSH nodes in namespaces on this machine (`gfsdeploy lab up|down|status`)."""

from gfsdeploy_glusterfs.lab.host import LabError
from gfsdeploy_glusterfs.lab.lab import Lab, Node

__all__ = ["Lab", "LabError", "Node"]
