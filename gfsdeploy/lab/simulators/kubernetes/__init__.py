"""Kubernetes API server SIMULATOR for the gfsdeploy lab (not a Kubernetes).

The real kubectl talks to it unchanged: legacy discovery, CRUD with
resourceVersion, label/field selectors, list + watch, merge/strategic/json
patch, status subresources, Table output; simulated controllers (DaemonSet,
Deployment/ReplicaSet, Job, scheduler, Endpoints, garbage collection, the
in-tree glusterfs provisioner through heketi's REST API) and a tiny kubelet
that runs container commands as real processes with bind-mounted volumes and
runs a HeketiSimulator for heketi images.

Run: python -m gfsdeploy.lab.simulators.kubernetes --listen IP:PORT --state DIR
     --nodes k8s-1=10.186.0.10,... --service-cidr 10.186.1.0/24 --version 1.25.16
     [--faults FILE] [--heketi-faults FILE] [--manage-lo] [--node-netns k8s-1=ns1,...]

Fault switches (JSON object; lists of object-name prefixes), from --faults FILE
(re-read every tick) or POST /simulator/faults (GET shows the current set):
  pod_never_ready  pods run but never turn Ready          e.g. ["glusterfs"]
  job_fails        the pods' containers exit 1            e.g. ["heketi-storage-copy-job"]
  pod_fails        same, for any pod
  mount_fails      glusterfs mounts fail "unknown filesystem type 'glusterfs'"
  provision_fails  PVC provisioning fails (ProvisioningFailed event)
Heketi-side faults belong to the heketi simulator; --heketi-faults FILE is
handed to it as config["simulator"]["faults_file"].
"""
from __future__ import annotations

import ipaddress
import os
import sys

NAME = "kubernetes-apiserver-simulator"
PORT = 6443


def _nodes_of(lab) -> dict[str, str]:
    nodes = getattr(lab, "nodes", None) or {}
    if isinstance(nodes, dict):
        return {str(k): str(getattr(v, "ip", v)) for k, v in nodes.items()}
    return {str(n.name): str(n.ip) for n in nodes}


def service(lab):
    """The Service the lab starts inside its network namespace (http://BASE.0.1:6443)."""
    try:
        from .. import Service
    except ImportError:   # the lab's contract module is not there yet
        from collections import namedtuple
        Service = namedtuple("Service", "name argv env")
    base = getattr(lab, "base", "10.186")
    listen = getattr(lab, "apiserver_ip", None) or f"{base}.0.1"
    cidr = getattr(lab, "service_cidr", None) or f"{base}.1.0/24"
    state = os.path.join(lab.state_dir, "kubernetes")
    nodes = ",".join(f"{n}={ip}" for n, ip in _nodes_of(lab).items())
    argv = [sys.executable, "-m", "gfsdeploy.lab.simulators.kubernetes", "--listen", f"{listen}:{PORT}",
            "--state", state, "--nodes", nodes, "--service-cidr", str(ipaddress.ip_network(cidr)),
            "--version", str(getattr(lab, "kubernetes_version", None) or "1.25.16"),
            "--faults", os.path.join(lab.state_dir, "faults", "kubernetes.json"),
            "--heketi-faults", os.path.join(lab.state_dir, "faults", "heketi.json"), "--manage-lo"]
    netns = getattr(lab, "node_netns", None)
    if isinstance(netns, dict) and netns:
        argv += ["--node-netns", ",".join(f"{k}={v}" for k, v in netns.items())]
    env = {"PYTHONUNBUFFERED": "1"}
    return Service(name=NAME, argv=argv, env=env)
