#!/usr/bin/env python3
"""Fabric's Connection against gfsdeploy's transport, on the same SSH host: the facts
behind dropping Fabric (docs/TRANSPORT.md).

    python3 bench/fabric_vs_transport.py --host IP --user root --key KEY --known-hosts FILE [--runs 30]

Needs `pip install fabric` (no longer a dependency of gfsdeploy). Measures, for one
connection: threads alive while one command runs, wall time per short command
(median of RUNS), and a 200-probe state read (gfsdeploy: one framed script; Fabric:
one command per probe, as it has no batching of its own). Import costs are in
bench/startup.py. Writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def threads_during(run) -> int:
    """Threads started for one command (beyond those alive before it and the sampler)."""
    before = threading.active_count()
    seen = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            seen.append(threading.active_count())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    run()
    stop.set()
    sampler.join()
    return max(seen) - before - 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--user", default="root")
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fabric_vs_transport.json"))
    args = parser.parse_args()

    import fabric
    import paramiko

    from gfsdeploy.inventory import Host
    from gfsdeploy.transport import make_transport

    ours = make_transport(Host("bench", vars={"ansible_host": args.host, "ansible_user": args.user,
                                              "ansible_ssh_private_key_file": args.key,
                                              "gfsdeploy_known_hosts": args.known_hosts}))
    ours.connect()
    client_kwargs = {"key_filename": args.key, "allow_agent": False, "look_for_keys": False}
    fab = fabric.Connection(args.host, user=args.user, connect_kwargs=client_kwargs)
    fab.client.load_host_keys(args.known_hosts)
    fab.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    fab.open()
    base_threads = threading.active_count()

    out = {"host": args.host, "runs": args.runs, "fabric": fabric.__version__, "paramiko": paramiko.__version__}
    out["threads_per_command"] = {
        "gfsdeploy": threads_during(lambda: ours.run("sleep 0.3")),
        "fabric": threads_during(lambda: fab.run("sleep 0.3", hide=True)),
        "threads_before (main + one paramiko thread per open connection)": base_threads,
    }
    for label, call in (("gfsdeploy", lambda: ours.run("true")), ("fabric", lambda: fab.run("true", hide=True))):
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        out.setdefault("short_command_s", {})[label] = {"median": round(statistics.median(times), 4),
                                                        "min": round(min(times), 4)}
    probes = {f"p{i}": f"test -e /etc/hostname-{i}; echo {i}" for i in range(200)}
    started = time.perf_counter()
    results = ours.read_many(probes)
    ours_read = time.perf_counter() - started
    assert len(results) == 200
    started = time.perf_counter()
    for cmd in probes.values():
        fab.run(cmd, hide=True, warn=True)
    fab_read = time.perf_counter() - started
    out["read_200_probes_s"] = {"gfsdeploy_one_round_trip": round(ours_read, 4),
                                "fabric_one_command_each": round(fab_read, 4)}
    fab.close()
    ours.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
