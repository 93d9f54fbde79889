"""Kubernetes API server SIMULATOR for the gfsdeploy lab (not a Kubernetes).

The real kubectl talks to it unchanged: legacy discovery, CRUD with
resourceVersion, label/field selectors, list + watch, merge/strategic/json
patch, status subresources, Table output; simulated controllers (DaemonSet,
Deployment/ReplicaSet, Job, scheduler, Endpoints, garbage collection, the
in-tree glusterfs provisioner through heketi's REST API) and a tiny kubelet
that runs container commands as real processes with bind-mounted volumes and
runs a HeketiSimulator for heketi images.

Run: python -m gfsdeploy_glusterfs.lab.simulators.kubernetes --listen IP:PORT --state DIR
     --nodes k8s-1=10.186.0.10,... --service-cidr 10.186.1.0/24 --version 1.25.16
     [--faults FILE] [--heketi-faults FILE] [--manage-lo] [--node-netns k8s-1=ns1,...]
     [--node-pidfiles k8s-1=/run/gfsdeploy-lab/NAME/pids/node-k8s-1.pid,...]

Fault switches (JSON object; lists of object-name prefixes), from --faults FILE
(re-read every tick) or POST /simulator/faults (GET shows the current set):
  pod_never_ready  pods run but never turn Ready          e.g. ["glusterfs"]
  job_fails        the pods' containers exit 1            e.g. ["heketi-storage-copy-job"]
  pod_fails        same, for any pod
  mount_fails      glusterfs mounts fail "unknown filesystem type 'glusterfs'"
  provision_fails  PVC provisioning fails (ProvisioningFailed event)
  image_pull_fails the pods stay Waiting: ErrImagePull (a Failed event naming the image)
Server-side apply (application/apply-patch+yaml, managedFields, conflicts) and
dryRun=All are served as the real server does (managedfields.py).
Not simulated: exec/attach/port-forward (no SPDY/websocket), unknown-field rejection (fieldValidation=Strict is accepted, not enforced),
protobuf request bodies other than Secret/ConfigMap/ServiceAccount/Namespace/
(Cluster)RoleBinding, graceful termination (deletes are immediate), PodSecurity
admission. Pods whose image has no command (and no heketi) are simulated as running.

Heketi-side faults belong to the heketi simulator; --heketi-faults FILE is
handed to it (HeketiSimulator faults_path). With --node-pidfiles pods run inside the
lab's nodes (see runtime and nodeside): the glusterfs pods run the real glusterd, and
the simulated heketi does its GlusterFS work in them.
"""
from __future__ import annotations

import ipaddress
import os
import sys

NAME = "kubernetes-apiserver-simulator"
PORT = 6443
DEFAULT_VERSION = "1.25.16"


def service(lab):
    """The Service the lab starts inside its network namespace (lab.api_url, port 6443).

    State, log and fault files live in lab.state_dir/sim/kubernetes-apiserver-simulator/:
    faults.json (this simulator's switches) and heketi-faults.json (handed to every
    simulated heketi pod).
    """
    from .. import Service
    state = os.path.join(str(lab.state_dir), "sim", NAME)
    nodes = ",".join(f"{n.name}={n.ip}" for n in lab.nodes)
    netns = ",".join(f"{n.name}={n.netns}" for n in lab.nodes if getattr(n, "netns", None))
    argv = [sys.executable, "-m", "gfsdeploy_glusterfs.lab.simulators.kubernetes",
            "--listen", f"{lab.bridge_ip}:{PORT}", "--state", state, "--nodes", nodes,
            "--service-cidr", str(ipaddress.ip_network(lab.service_cidr)),
            "--version", str(getattr(lab, "kubernetes_version", None) or DEFAULT_VERSION),
            "--faults", os.path.join(state, "faults.json"),
            "--heketi-faults", os.path.join(state, "heketi-faults.json"),
            "--manage-lo"]
    if netns:
        argv += ["--node-netns", netns]
    pid_dir = getattr(lab, "pid_dir", None)
    if pid_dir is not None:   # pods run inside the nodes (their PID 1 is in these files)
        argv += ["--node-pidfiles", ",".join(f"{n.name}={pid_dir}/node-{n.name}.pid" for n in lab.nodes)]
    return Service(name=NAME, argv=argv, env={"PYTHONUNBUFFERED": "1"}, ready_port=PORT)
