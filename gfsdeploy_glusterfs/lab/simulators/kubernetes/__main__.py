"""python -m gfsdeploy_glusterfs.lab.simulators.kubernetes: run the Kubernetes API server SIMULATOR."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .sim import Simulator


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (text or "").split(",")):
        key, _, val = item.partition("=")
        if not val:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {item!r}")
        out[key.strip()] = val.strip()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m gfsdeploy_glusterfs.lab.simulators.kubernetes",
                                description="Kubernetes API server SIMULATOR for the gfsdeploy lab")
    p.add_argument("--listen", required=True, help="IP:PORT")
    p.add_argument("--state", required=True, help="state and log directory")
    p.add_argument("--nodes", type=_pairs, default={}, help="k8s-1=10.186.0.10,k8s-2=...")
    p.add_argument("--service-cidr", default="10.186.1.0/24")
    p.add_argument("--version", default="1.25.16", help="simulated Kubernetes version")
    p.add_argument("--faults", help="JSON fault switches file, re-read every tick")
    p.add_argument("--heketi-faults", help="fault file handed to the heketi simulator")
    p.add_argument("--manage-lo", action="store_true",
                   help="add Service ClusterIPs to lo (only inside the lab's network namespace)")
    p.add_argument("--node-netns", type=_pairs, default={}, help="k8s-1=netns,... for hostNetwork pods")
    p.add_argument("--node-pidfiles", type=_pairs, default={},
                   help="k8s-1=FILE,...: pid files of the lab nodes' PID 1; pods then run inside the nodes")
    p.add_argument("--ready-delay", type=float, default=1.0)
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    sim = Simulator((host, int(port)), a.state, a.nodes, a.service_cidr, a.version, a.faults,
                    a.manage_lo, ready_delay=a.ready_delay, node_netns=a.node_netns,
                    heketi_faults_file=a.heketi_faults, node_pidfiles=a.node_pidfiles)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sim.start()
    print(f"[k8s-sim] Kubernetes API server SIMULATOR listening on {sim.url()}", flush=True)
    done.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
