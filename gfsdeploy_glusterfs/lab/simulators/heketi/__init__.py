"""The heketi SIMULATOR used by the lab (started inside simulated heketi pods by the
Kubernetes simulator). Not heketi: see :mod:`.simulator` for what it does."""

from gfsdeploy_glusterfs.lab.simulators.heketi.executor import ExecFailure, NoExecutor, PodExecutor
from gfsdeploy_glusterfs.lab.simulators.heketi.simulator import HeketiSimulator, SimError

__all__ = ["HeketiSimulator", "SimError", "PodExecutor", "NoExecutor", "ExecFailure"]
