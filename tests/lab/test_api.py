"""The library API alone drives a whole lab deployment: ``Session.plan()``,
``Session.apply()``, a saved plan refused once stale, and the results checked
independently (kubectl run inside the master node, not through gfsdeploy)."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.lab


def kubectl(lab, *args) -> str:
    return lab.exec("k8s-1", ["kubectl", *args], check=True).stdout


def test_plan_apply_replan_through_the_api(fresh_lab, tmp_path):
    from gfsdeploy import Options, Plan, Session
    from gfsdeploy.errors import StalePlanError

    inventory = str(fresh_lab.inventory_path)
    with Session(inventory, options=Options(forks=20)) as session:
        plan = session.plan()
        assert plan.ok, plan.errors
        assert plan.has_changes
        resources = {c.resource for c in plan.changes}
        assert "kubernetes StorageClass glusterfs" in resources
        assert all(c.action in ("+", "~", "-", "-/+", "<=") for c in plan.changes)
        assert kubectl(fresh_lab, "get", "storageclass", "-o", "name").strip() == ""  # plan changed nothing
        saved = tmp_path / "plan.json"
        plan.save(str(saved))
        # secrets are not in the saved plan
        keys = json.loads((fresh_lab.state_dir / "heketi-keys.json").read_text())
        assert all(v not in saved.read_text() for v in keys.values())

        recap = session.apply(Plan.load(str(saved)))
        assert recap.ok, recap.failures
        assert recap.changed and not recap.no_changes
        assert set(recap.hosts) == {"k8s-1", "k8s-2", "k8s-3"}

    # independently: the StorageClass points at heketi's ClusterIP
    sc = json.loads(kubectl(fresh_lab, "get", "storageclass", "glusterfs", "-o", "json"))
    ip = json.loads(kubectl(fresh_lab, "get", "service", "heketi", "-o", "json"))["spec"]["clusterIP"]
    assert sc["parameters"]["resturl"] == f"http://{ip}:8080"

    # a second session finds nothing to do; the first saved plan is now stale
    with Session(inventory) as session:
        again = session.plan()
        assert again.ok and not again.has_changes, [c.resource for c in again.changes]
        with pytest.raises(StalePlanError):
            session.apply(Plan.load(str(saved)))
        recap = session.apply()
        assert recap.ok and recap.no_changes
        assert all(h.round_trips >= 1 for h in recap.hosts.values())
    assert os.path.exists(saved)
