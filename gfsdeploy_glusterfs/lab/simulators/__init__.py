"""Simulators: long-running processes the lab starts in its own network namespace.

What cannot run on one machine (the Kubernetes API server, heketi) is provided
by simulators. The contract, for a simulator package ``gfsdeploy_glusterfs.lab.simulators.X``:

* it defines ``service(lab) -> Service`` (it may read anything below from ``lab``);
* ``lab up`` calls it after every node is up and sshd answers, then starts
  ``Service.argv`` inside the lab namespace (``nsenter --net=/run/netns/<lab.netns>``),
  with ``Service.env`` added to the environment, ``PYTHONPATH`` pointing at this
  checkout, cwd ``lab.state_dir``, stdout+stderr in ``lab.state_dir/logs/<name>.log``
  and a pid file in ``lab.state_dir/pids``; if ``ready_port`` is set, ``up`` waits
  until ``lab.bridge_ip:ready_port`` accepts TCP connections (``ready_timeout`` s);
* ``lab down`` sends SIGTERM to the process group, then SIGKILL after 3 s.

What a simulator gets from the ``Lab`` object:

* ``lab.name``, ``lab.state_dir`` (a ``Path``; private scratch space in ``state_dir/sim/<name>``
  is free to use), ``lab.netns`` (the lab namespace), ``lab.bridge_ip`` (``BASE.0.1``,
  reachable from the host and every node), ``lab.service_cidr`` (``BASE.1.0/24``:
  add ClusterIPs from it to the lab namespace's ``lo``; the host routes it to the lab),
  ``lab.api_url`` (``http://BASE.0.1:6443``, written into k8s-1's ``/root/.kube/config``);
* ``lab.nodes``: ``Node(name, ip, netns, devices={"/dev/sdb": "/dev/loopN"}, init_pid)``;
* ``lab.exec(node, argv, input=None, host_fs=False)``: run a command inside a node
  (``host_fs=True``: in the node's network/UTS/PID namespaces but on the host's
  pristine root filesystem — like a privileged ``hostNetwork`` pod whose image is the
  host's files; it sees the host's ``/dev``, so use the node's ``devices`` map);
* ``lab.ssh_argv(node)``: an ``ssh`` command line that reaches the node.

Optionally a simulator package also defines ``inventory_vars(lab) -> dict``: variables
merged into ``all.vars`` of the inventory ``lab up`` writes (e.g. heketi's URL/keys).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

SIMULATORS = ("kubernetes", "heketi")


@dataclass
class Service:
    """One long-running process started inside the lab namespace."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_port: int | None = None
    ready_timeout: float = 15.0


def _simulators():
    for name in SIMULATORS:
        try:
            yield importlib.import_module(f"{__name__}.{name}")
        except ImportError:
            continue


def inventory_vars(lab) -> dict:
    """Inventory variables the simulators want (``inventory_vars(lab)`` in their package)."""
    out = {}
    for mod in _simulators():
        factory = getattr(mod, "inventory_vars", None)
        if callable(factory):
            out.update(factory(lab) or {})
    return out


def services(lab) -> list[Service]:
    """Every simulator that offers ``service(lab)``; packages without it are skipped."""
    found = []
    for mod in _simulators():
        factory = getattr(mod, "service", None)
        if callable(factory):
            svc = factory(lab)
            if svc is not None:
                found.append(svc)
    return found
