"""The benchmark script runs end to end (one short iteration, 2 nodes, gfsdeploy and
the floor only) and reports a no-op at <= 2 round trips per host. No timings asserted."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.lab


def test_bench_runs_and_noop_is_at_most_two_round_trips(tmp_path):
    from conftest import _free_base, _lab_skip_reason

    reason = _lab_skip_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "result.json"
    res = subprocess.run([sys.executable, "bench/run.py", "--nodes", "2", "--runs", "1", "--tools", "gfsdeploy",
                          "--quick", "--name", "gb" + secrets.token_hex(2), "--base", _free_base(),
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [line for line in res.stdout.splitlines() if line.startswith("| 2 | gfsdeploy (n=1) |")]
    assert len(rows) == 1, res.stdout
    assert "| 2 | floor" in res.stdout
    data = json.loads(out.read_text())
    run = data["runs"]["2"][0]
    g = run["tools"]["gfsdeploy"]
    assert g["first"]["changed"] > 0  # it really did the work (and bench/run.py verified the nodes)
    assert g["noop"]["changed"] == 0
    assert g["noop"]["round_trips_max"] <= 2
    assert g["dry"]["round_trips_max"] <= 2
    assert set(g["verified"]) == {"k8s-1", "k8s-2"}
    # recorded beside every figure: the machine's load, gfsdeploy's peak threads, the lab's cost
    assert len(run["load_start"]) == 3 and len(run["load_end"]) == 3
    assert g["first"]["threads_max"] >= 2 and g["first"]["forks"] >= 2  # main thread + a worker
    assert g["first"]["round_trips_max"] <= 3
    lab = data["labs"]["2"]
    assert lab["up_s"] > 0 and lab["down_s"] > 0
    assert lab["memory"]["processes"] >= 2 * 2  # each node's init and sshd at least
