"""Table tests of the target modules (firewalld, ufw, seboolean, iptables_state's chain
save, service without systemd as PID 1, package, devices): each row of
data/modules/*.json gives the arguments, the host, the *recorded output* of every
probe the module sends, and the exact changes — so the parsing of real command
output (``read``) is under test too, not only ``plan``.

Row keys: ``module``, ``args``, optional ``host`` (HostInfo fields), ``probes``
(probe key → {stdout, stderr, rc}; every probe the module sends must be given),
optional ``probe_contains`` (probe key → substring of the probe script), and either
``error`` (a substring; raised by validate, read or plan) or ``changes`` (action,
resource, optional exact script/diff).
"""

from __future__ import annotations

import pathlib

import pytest

from tests.modules.tables import load

from gfsdeploy import modules
from gfsdeploy.errors import GfsError
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.base import Result

DATA = pathlib.Path(__file__).parent / "data" / "modules"


def host_of(case) -> HostInfo:
    fields = {"name": "k8s-1", "os_family": "debian", "os_id": "debian", "os_version": "12"}
    fields.update(case.get("host") or {})
    return HostInfo(**fields)


def plan_row(case):
    module = modules.get(case["module"])
    assert module is not None, case["module"]
    host = host_of(case)
    args = module.validate(case["args"])
    probes = module.probes(args, host)
    given = case.get("probes", {})
    assert set(probes) == set(given), f"probes sent {sorted(probes)}, recorded {sorted(given)}"
    for key, piece in case.get("probe_contains", {}).items():
        assert piece in probes[key], probes[key]
    facts = {k: Result(int(v.get("rc", 0)), v.get("stdout", ""), v.get("stderr", "")) for k, v in given.items()}
    ctx = TaskContext(host, None, task_name="t")
    state = module.read(args, facts, ctx)
    return module.plan(args, state, host)


@pytest.mark.parametrize("case", load(DATA))
def test_table(case):
    if "error" in case:
        with pytest.raises(GfsError) as err:
            plan_row(case)
        assert case["error"] in str(err.value)
        return
    changes = plan_row(case)
    assert [(c.action, c.resource) for c in changes] == [(e["action"], e["resource"]) for e in case["changes"]]
    for change, want in zip(changes, case["changes"]):
        for key in ("script", "diff"):
            if key in want:
                assert getattr(change, key) == want[key], key
