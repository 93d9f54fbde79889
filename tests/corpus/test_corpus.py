"""The features public roles rely on, in playbook trees written here (data/), run by
ansible-playbook and by gfsdeploy on lab nodes over SSH: same files, same statuses, same
registered values, twice; ``plan`` against ``--check --diff``; and what a plan runs on a
node, seen by a command-logging ``kubectl`` and login shell.

data/site: an INI inventory with ``[group:children]`` and its own group_vars/, group_vars
and host_vars directories beside the playbook, roles with defaults/vars/templates/
handlers and a meta dependency with parameters, handlers notified across roles,
``include_vars`` of the OS family's file, ``with_dict``, ``include_tasks`` in a loop with
``loop_control``, ``set_fact`` with ``json_query``, block/rescue/always with
``ansible_failed_task``, ``delegate_to`` + ``run_once``, facts, and a module of the
playbook's own ``library/``. data/kubeapps: kubespray-shaped Kubernetes steps.
"""

from __future__ import annotations

import json

import pytest

from tests.ansible_compat.harness import Spec
from tests.corpus.corpus import KUBECTL_LOG, SHELL_LOG, Tree, install_loggers, logged, remove_loggers

pytestmark = pytest.mark.lab

GROUPS = {"storage": ["node1", "node2"], "control": ["node1"], "cluster": ["storage", "control"]}
HOST_VARS = {"node1": {"zone": 1}, "node2": {"zone": 2}}
GROUP_VARS = {"storage": {"brick_root": "/srv/corpus/bricks"}}
RESET = "rm -rf /srv/corpus /srv/corpus-kube /var/tmp/gfsdeploy-compat-registered.json"
STATE = Spec(trees=["/srv/corpus"])
READ = "get configmap -l corpus=kubeapps -o json"  # kubeapps.yml's one check_mode: false read


@pytest.fixture
def site(compat):
    compat.each(RESET)
    return Tree(compat, "site", groups=GROUPS, host_vars=HOST_VARS, group_vars=GROUP_VARS)


def test_site_applies_as_ansible_twice(site):
    pair = site.run_both("site.yml", state=STATE, registered=["owner_set", "zones", "members"])
    pair.again = site.run_both("site.yml", state=STATE, registered=["owner_set", "zones", "members"])
    pair.assert_same()
    files = pair.gfsdeploy.state["node2"]["files"]
    # what each feature produced, read back from the node (not from either tool)
    assert files["/srv/corpus/motd"]["content"] == "time is kept by timesync on node2 (Debian)\n"
    assert files["/srv/corpus/settings.conf"]["content"] == "replica=2\ntransport=tcp\narbiter=1\n"
    assert files["/srv/corpus/bricks/b2/info"]["content"] == "1 b2 size=20 zone=2\n"
    assert files["/srv/corpus/rescued"]["content"] == "rescued after Probe a missing tool\n"
    assert files["/srv/corpus/chrony.conf"]["content"].startswith("# chrony\nserver 0.pool.example.org iburst\n")
    handlers = files["/srv/corpus/handlers.log"]["content"].splitlines()
    assert sorted(handlers) == ["base changed on node2", "restart chrony"]  # once each, first run only
    assert "/srv/corpus/cluster.json" not in files  # written once, on node1 only
    cluster = json.loads(pair.gfsdeploy.state["node1"]["files"]["/srv/corpus/cluster.json"]["content"])
    assert cluster == {"members": ["node1", "node2", "node3"], "zones": [1, 2], "storage": ["node1", "node2"]}
    assert pair.gfsdeploy.registered["node1"]["owner_set"]["value"] == "node1-1"
    assert pair.again.gfsdeploy.changed() == {}, pair.again.gfsdeploy.output()


def test_site_plan_matches_check_diff(site):
    site.plan_vs_check("site.yml").assert_same()


@pytest.fixture
def kubeapps(compat):
    compat.each(RESET)
    for side in compat.sides:
        compat.exec(side, "node1", "kubectl delete configmap -l corpus --ignore-not-found=true >/dev/null; true")
    install_loggers(compat, "gfsdeploy", "node1")
    try:
        yield Tree(compat, "kubeapps", groups=GROUPS, host_vars=HOST_VARS)
    finally:
        remove_loggers(compat, "gfsdeploy", "node1")
        compat.exec("gfsdeploy", "node1", "kubectl delete configmap -l corpus --ignore-not-found=true; true")


def test_plan_runs_only_reads(kubeapps, compat):
    """Plan runs the one read marked check_mode: false; the delete marked only
    changed_when: false, the apply, the until-wait and the shell do not run."""
    inv, pb = kubeapps.inventory("gfsdeploy"), kubeapps.playbook("gfsdeploy", "kubeapps.yml")
    plan = compat.gfsdeploy(pb, inv, mode="plan")
    assert plan.rc == 2, plan.output()
    assert logged(compat, "gfsdeploy", "node1", KUBECTL_LOG) == [READ]
    assert logged(compat, "gfsdeploy", "node1", SHELL_LOG), "the login shell logged no command: not installed?"
    assert compat.state("gfsdeploy", Spec(trees=["/srv/corpus-kube"]))["node1"]["files"] == \
        {"/srv/corpus-kube": {"type": "absent"}}
    # apply runs them all (the loggers see what plan did not do) ...
    apply = compat.gfsdeploy(pb, inv)
    assert apply.rc == 0, apply.output()
    calls = logged(compat, "gfsdeploy", "node1", KUBECTL_LOG)
    assert READ in calls  # (apply's own plan pass reads it too)
    assert [c.split()[0] for c in calls if c != READ] == ["delete", "apply", "get"], calls
    assert compat.exec("gfsdeploy", "node1", "cat /srv/corpus-kube/marker").stdout == "ran configmap/corpus-config\n"
    # ... and a plan after it reads again, and only reads
    again = compat.gfsdeploy(pb, inv, mode="plan")
    assert again.rc in (0, 2), again.output()
    assert logged(compat, "gfsdeploy", "node1", KUBECTL_LOG) == [READ]


def test_plan_of_the_site_changes_nothing(site, compat):
    """Every corpus playbook planned under the logging shell: the nodes' files are as before."""
    install_loggers(compat, "gfsdeploy", "node1")
    try:
        before = compat.state("gfsdeploy", STATE)
        plan = compat.gfsdeploy(site.playbook("gfsdeploy", "site.yml"), site.inventory("gfsdeploy"), mode="plan")
        assert plan.rc == 2, plan.output()
        assert compat.state("gfsdeploy", STATE) == before
        assert logged(compat, "gfsdeploy", "node1", SHELL_LOG)
        assert logged(compat, "gfsdeploy", "node1", KUBECTL_LOG) == []
    finally:
        remove_loggers(compat, "gfsdeploy", "node1")
