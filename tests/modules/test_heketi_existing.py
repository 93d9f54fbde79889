"""Table tests for heketi_existing: an existing deployment gfsdeploy did not make is
named (who made it) and adopted, or refused with the reason before anything changes."""

from __future__ import annotations

import copy

import pytest

from gfsdeploy.errors import PreflightError
from gfsdeploy.modules import get
from gfsdeploy.modules.base import HostInfo
from gfsdeploy_glusterfs.modules.heketi import Existing, made_by
from tests.foreign_deployments import gk_deploy, kubespray, kubespray_storageclass

HOST = HostInfo(name="k8s-1")
KEY = "the-admin-key"
MARK = {"app.kubernetes.io/managed-by": "gfsdeploy"}


def state(objects, storageclasses=(), secrets=None) -> Existing:
    return Existing(objects={f"{o['kind']}/{o['metadata']['name']}": o for o in objects},
                    storageclasses=list(storageclasses), secrets=secrets or {})


def ours(objects):
    out = copy.deepcopy(objects)
    for o in out:
        o["metadata"]["labels"] = {**(o["metadata"].get("labels") or {}), **MARK}
    return out


def plan(st, key=KEY):
    module = get("heketi_existing")
    return module.plan(module.validate({"namespace": "gfs", "admin_key": key}), st, HOST)


def without(objects, *names):
    return [o for o in objects if f"{o['kind']}/{o['metadata']['name']}" not in names]


def test_nothing_there_or_all_ours_says_nothing():
    assert plan(state([])) == []
    assert plan(state(ours(gk_deploy("gfs", KEY, "u")))) == []


@pytest.mark.parametrize("objects,who", [
    (gk_deploy("gfs", KEY, "u"), "gk-deploy (gluster-kubernetes)"),
    (kubespray("gfs", KEY, "u"), "kubespray's former heketi role (contrib/network-storage/heketi)"),
])
def test_adopted_with_who_made_it(objects, who):
    changes = plan(state(objects))
    assert changes[0].action == "!"
    assert changes[0].resource.startswith(f"existing GlusterFS deployment in namespace gfs made by {who}: "
                                          "gfsdeploy adopts it")
    assert "Deployment/heketi" in changes[0].diff and "DaemonSet/glusterfs" in changes[0].diff
    assert all(c.action == "!" for c in changes)   # warnings only: the object tasks carry the changes
    assert any("DaemonSet gfs/glusterfs" in c.resource and "restart" in c.resource for c in changes)


def test_heketi_extras_are_told_apart_by_their_dev_image():
    objects = kubespray("gfs", KEY, "u")
    for o in objects:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["spec"]["containers"][0]["image"] = "heketi/heketi:dev"
    assert made_by(state(objects).objects) == "heketi's extras/kubernetes manifests"


def test_kubespray_leftovers_are_named_and_left_alone():
    resources = [c.resource for c in plan(state(kubespray("gfs", KEY, "u")))]
    assert "Secret/heketi-db-backup (made by kubespray's former heketi role (contrib/network-storage/heketi)) " \
           "is not part of gfsdeploy's deployment: left as is" in resources


@pytest.mark.parametrize("objects,storageclasses,words", [
    (gk_deploy("gfs", "another-key", "u"), [], ["env HEKETI_ADMIN_KEY of Deployment gfs/heketi"]),
    (kubespray("gfs", "another-key", "u"), [], ["heketi.json (jwt.admin.key) in Secret gfs/heketi-config-secret"]),
    (kubespray("gfs", KEY, "u"), [kubespray_storageclass("10.0.0.9", "another-key")],
     ["StorageClass gluster (parameter restuserkey)"]),
])
def test_another_admin_key_is_refused(objects, storageclasses, words):
    with pytest.raises(PreflightError) as err:
        plan(state(objects, storageclasses))
    text = str(err.value)
    assert "uses another heketi admin key than the inventory's heketi_admin_key" in text
    for word in words:
        assert word in text
    assert "another-key" not in text   # where, never the key itself
    assert "set heketi_admin_key" in text


def test_the_same_key_everywhere_is_fine():
    assert plan(state(kubespray("gfs", KEY, "u"), [kubespray_storageclass("10.0.0.9", KEY)]))


def test_a_storageclass_secret_with_another_key_is_refused():
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "old"},
          "provisioner": "kubernetes.io/glusterfs",
          "parameters": {"resturl": "http://10.0.0.9:8080", "secretNamespace": "gfs", "secretName": "old-secret"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "old-secret", "namespace": "gfs"},
              "data": {"key": "b3RoZXI="}}
    with pytest.raises(PreflightError) as err:
        plan(state(kubespray("gfs", KEY, "u"), [sc], {("gfs", "old-secret"): secret}))
    assert "StorageClass old (Secret gfs/old-secret)" in str(err.value)


def test_a_bootstrap_left_half_way_is_refused():
    bootstrap = copy.deepcopy(next(o for o in gk_deploy("gfs", KEY, "u") if o["kind"] == "Deployment"))
    bootstrap["metadata"]["name"] = "deploy-heketi"
    with pytest.raises(PreflightError) as err:
        plan(state(without(gk_deploy("gfs", KEY, "u"), "Deployment/heketi") + [bootstrap]))
    assert "bootstrap heketi (Deployment gfs/deploy-heketi) made by gk-deploy" in str(err.value)
    assert "--selector=deploy-heketi" in str(err.value)


def test_a_heketi_whose_db_is_not_on_heketidbstorage_is_refused():
    objects = gk_deploy("gfs", KEY, "u")
    heketi = next(o for o in objects if o["kind"] == "Deployment")
    heketi["spec"]["template"]["spec"]["volumes"][0] = {"name": "db", "emptyDir": {}}
    with pytest.raises(PreflightError) as err:
        plan(state(objects))
    assert "keeps its DB in a emptyDir volume, not on the GlusterFS volume heketidbstorage" in str(err.value)


def test_probes_read_the_deployment_by_name():
    module = get("heketi_existing")
    probes = module.probes(module.validate({"namespace": "gfs", "admin_key": KEY, "kubeconfig": "/k"}), HOST)
    assert sorted(probes) == ["anywhere", "cluster", "namespaced", "storageclasses"]
    assert "daemonset.apps/glusterfs deployment.apps/heketi" in probes["namespaced"] and "-n gfs" in probes["namespaced"]
    assert "clusterrolebinding.rbac.authorization.k8s.io/heketi-sa-view" in probes["cluster"]


def test_a_deployment_in_another_namespace_is_refused():
    other = [o for o in gk_deploy("storage", KEY, "u") if o["kind"] in ("DaemonSet", "Deployment")]
    with pytest.raises(PreflightError) as err:
        plan(Existing(elsewhere=other))
    text = str(err.value)
    assert "a GlusterFS deployment already runs in namespace storage (DaemonSet storage/glusterfs, " \
           "Deployment storage/heketi), not in gfs" in text
    assert "gluster_namespace: storage" in text


def test_read_sorts_what_it_finds():
    import json

    from gfsdeploy.transport.base import Result

    module = get("heketi_existing")
    args = module.validate({"namespace": "gfs", "admin_key": KEY})
    anywhere = gk_deploy("storage", KEY, "u") + ours(gk_deploy("gfs", KEY, "u"))
    unrelated = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"},
                 "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}
    facts = {"namespaced": Result(0, json.dumps({"kind": "List", "items": ours(gk_deploy("gfs", KEY, "u"))})),
             "cluster": Result(0, ""), "storageclasses": Result(0, json.dumps({"kind": "List", "items": []})),
             "anywhere": Result(0, json.dumps({"kind": "List", "items": [o for o in anywhere
                                                                         if o["kind"] in ("DaemonSet", "Deployment")]
                                               + [unrelated]}))}
    ctx = type("Ctx", (), {"host": HOST, "task_name": "t"})()
    state = module.read(args, facts, ctx)
    assert sorted(state.objects) == ["ClusterRoleBinding/heketi-sa-view", "DaemonSet/glusterfs", "Deployment/heketi",
                                     "Secret/heketi-config-secret", "Service/heketi",
                                     "ServiceAccount/heketi-service-account"]
    assert [(o["kind"], o["metadata"]["namespace"]) for o in state.elsewhere] == [("DaemonSet", "storage"),
                                                                                ("Deployment", "storage")]
