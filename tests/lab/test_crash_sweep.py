"""Killed at any instant, a re-run converges (lab, root).

The controller running the whole deployment is killed — SIGKILL (nothing of it
survives: no cleanup, no lock release) and SIGINT alternately — at a dozen
points spread over the deployment; each time the next `apply` starts at once
from whatever the kill left (a package install still running on a node, a
half-created heketi, a stale lock). The last `apply` must finish, and the
cluster is then checked without gfsdeploy: kubectl in the master node and
heketi's REST API. A final `plan` has nothing to do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: seconds after apply starts its changes ("Applying: …") at which the controller is killed;
#: each run resumes from what the previous kill left, so together they cover the deployment
KILL_AFTER = [0.5, 2, 4, 1, 6, 3, 8, 5, 10, 12, 15, 20]


def gfs(*args):
    return subprocess.Popen([sys.executable, "-m", "gfsdeploy", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": ROOT}, start_new_session=True)


def kubectl(lab, *args) -> str:
    return lab.exec("k8s-1", ["kubectl", *args], check=True).stdout


def _drain(proc) -> str:
    """What the child wrote so far (non-blocking pipe: None when nothing is there)."""
    data = proc.stdout.read()
    return data.decode("utf-8", "replace") if data else ""


def interrupted_apply(inventory: str, after: float, sig) -> tuple[str, bool]:
    """Start apply; ``after`` seconds into its changes send ``sig``; return the output
    and whether the run ended on its own before the signal."""
    proc = gfs("apply", inventory)
    out = []
    started = None
    os.set_blocking(proc.stdout.fileno(), False)
    while proc.poll() is None:
        out.append(_drain(proc))
        if started is None and "Applying:" in "".join(out):
            started = time.monotonic()
        if started is not None and time.monotonic() - started >= after:
            proc.send_signal(sig)
            proc.wait(timeout=60)
            return "".join(out) + _drain(proc), False
        time.sleep(0.05)
    return "".join(out) + _drain(proc), True


def test_killed_anywhere_the_rerun_converges(fresh_lab):
    inventory = str(fresh_lab.inventory_path)
    log = []
    for i, after in enumerate(KILL_AFTER):
        sig = signal.SIGKILL if i % 2 == 0 else signal.SIGINT
        out, finished = interrupted_apply(inventory, after, sig)
        log.append(f"--- kill #{i + 1} ({sig.name} after {after}s): {'finished first' if finished else 'killed'}\n"
                   + out[-1500:])
        assert "Traceback" not in out and "internal error" not in out, "\n".join(log)
    final = subprocess.run([sys.executable, "-m", "gfsdeploy", "apply", inventory],
                           capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONPATH": ROOT})
    assert final.returncode == 0, "\n".join(log) + "\n--- final\n" + final.stdout[-5000:] + final.stderr[-2000:]

    # the cluster, checked without gfsdeploy
    names = kubectl(fresh_lab, "get", "all,secret,jobs", "-o", "name")
    assert "deployment.apps/heketi" in names
    assert "deploy-heketi" not in names, names  # no bootstrap left
    assert kubectl(fresh_lab, "get", "storageclass", "glusterfs", "-o", "name").strip()
    ip = json.loads(kubectl(fresh_lab, "get", "service", "heketi", "-o", "json"))["spec"]["clusterIP"]
    keys = json.loads((fresh_lab.state_dir / "heketi-keys.json").read_text())
    from gfsdeploy_glusterfs.heketi_client import HeketiClient

    client = HeketiClient(f"http://{ip}:8080", "admin", keys["heketi_admin_key"])
    volumes = [client.volume(v)["name"] for v in client.volumes()]
    assert volumes.count("heketidbstorage") == 1, volumes

    again = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", inventory], capture_output=True, text=True,
                           timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
    assert again.returncode == 0, again.stdout[-3000:]
