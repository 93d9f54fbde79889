"""The manifest templates: they render, values cannot break the JSON, and the
objects validate against Kubernetes' own schemas for 1.11 and 1.25."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gfsdeploy_glusterfs import manifests
from gfsdeploy.errors import PreflightError, TemplateError

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_TEMPLATES = [n for n in manifests.template_names()
                      if n not in ("heketi.json.j2", "topology.json.j2", "storage-nodes.json.j2")]


def inventory(**overrides) -> dict:
    """Template variables for a 3-node lab."""
    values = {
        "namespace": "glusterfs",
        "heketi_admin_key": "admin-secret",
        "heketi_user_key": "user-secret",
        "heketi_image": "heketi/heketi:9",
        "gluster_image": "gluster/gluster-centos:latest",
        "kubernetes_version": "v1.25.3",
        "storage_nodes": [
            {"name": f"k8s-{i}", "storage_ip": f"10.186.0.{9 + i}", "zone": 1, "devices": ["/dev/sdb"]}
            for i in (1, 2, 3)],
        "heketi_cluster_ip": "10.96.12.34",
        "heketi_db_b64": base64.b64encode(b"\x00bolt-db\xff").decode(),
        "replica": 3,
        "storageclass_name": "glusterfs",
        # Ansible's magic variables, for storage-nodes.json.j2 (built from the inventory)
        "groups": {"gluster": ["k8s-1", "k8s-2", "k8s-3"]},
        "hostvars": {f"k8s-{i}": {"storage_ip": f"10.186.0.{9 + i}", "devices": ["/dev/sdb"]} for i in (1, 2, 3)},
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize("version", ["v1.11.0", "v1.25.3"])
@pytest.mark.parametrize("name", manifests.template_names())
def test_every_template_renders_valid_json(name, version):
    doc = manifests.render(name, inventory(kubernetes_version=version))
    assert isinstance(doc, list if name == "storage-nodes.json.j2" else dict)
    if name in MANIFEST_TEMPLATES:
        for obj in manifests.flatten(doc):
            assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]


def test_storage_nodes_come_from_the_inventory():
    values = inventory()
    values["hostvars"]["k8s-2"].update(k8s_node_name="node-two", zone=2,
                                       devices=[{"name": "/dev/vdb", "destroydata": True}])
    nodes = manifests.render("storage-nodes.json.j2", values)
    assert [n["name"] for n in nodes] == ["k8s-1", "node-two", "k8s-3"]
    assert nodes[1] == {"name": "node-two", "storage_ip": "10.186.0.11", "zone": 2,
                        "devices": [{"name": "/dev/vdb", "destroydata": True}]}
    assert nodes[0]["zone"] == 1


def test_missing_variable_is_a_template_error_naming_it():
    values = inventory()
    del values["heketi_admin_key"]
    with pytest.raises(TemplateError) as err:
        manifests.render("heketi-config-secret.json.j2", values)
    assert "heketi_admin_key" in str(err.value)


HOSTILE = ['quote " and \' and \\', "new\nline\r\ttab", "ünïcødé ✓ 键", "</script>{{ x }}${HOME}$(id)", "\u2028\u2029"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_cannot_break_the_json(value):
    values = inventory(heketi_admin_key=value, heketi_user_key=value, gluster_image=value, heketi_image=value,
                       storageclass_name=value, heketi_cluster_ip=value)
    values["storage_nodes"][0]["devices"] = [value]
    values["storage_nodes"][1]["name"] = value
    for name in manifests.template_names():
        manifests.render(name, values)  # parses
    config = manifests.render("heketi.json.j2", values)
    assert config["jwt"]["admin"]["key"] == value and config["jwt"]["user"]["key"] == value
    [ds] = manifests.render_objects("glusterfs-daemonset.json.j2", values)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == value
    topology = manifests.render("topology.json.j2", values)
    assert topology["clusters"][0]["nodes"][0]["devices"][0]["name"] == value
    assert topology["clusters"][0]["nodes"][1]["node"]["hostnames"]["manage"] == [value]
    [sc] = manifests.render_objects("storageclass.json.j2", values)
    assert sc["metadata"]["name"] == value and sc["parameters"]["resturl"] == f"http://{value}:8080"


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_key_round_trips_through_the_config_secret(key):
    values = inventory(heketi_admin_key=key)
    [secret] = manifests.render_objects("heketi-config-secret.json.j2", values)
    config = json.loads(base64.b64decode(secret["data"]["heketi.json"]).decode())
    assert config["jwt"]["admin"]["key"] == key
    [sc_secret] = manifests.render_objects("heketi-storageclass-secret.json.j2", values)
    assert base64.b64decode(sc_secret["data"]["key"]).decode() == key


def test_config_secret_carries_heketi_json():
    values = inventory()
    [secret] = manifests.render_objects("heketi-config-secret.json.j2", values)
    assert json.loads(base64.b64decode(secret["data"]["heketi.json"])) == manifests.render("heketi.json.j2", values)
    config = manifests.render("heketi.json.j2", values)
    assert config["use_auth"] is True and config["glusterfs"]["executor"] == "kubernetes"
    assert config["glusterfs"]["db"] == "/var/lib/heketi/heketi.db"
    assert "deploy-heketi" not in secret["metadata"].get("labels", {})  # survives the bootstrap cleanup


def test_topology_from_inventory():
    values = inventory()
    values["storage_nodes"][2]["devices"] = ["/dev/sdb", {"name": "/dev/sdc", "destroydata": True}]
    values["storage_nodes"][2]["zone"] = 2
    topology = manifests.render("topology.json.j2", values)
    assert len(topology["clusters"]) == 1
    nodes = topology["clusters"][0]["nodes"]
    assert [n["node"]["hostnames"] for n in nodes] == [
        {"manage": ["k8s-1"], "storage": ["10.186.0.10"]}, {"manage": ["k8s-2"], "storage": ["10.186.0.11"]},
        {"manage": ["k8s-3"], "storage": ["10.186.0.12"]}]
    assert [n["node"]["zone"] for n in nodes] == [1, 1, 2]
    assert nodes[2]["devices"] == [{"name": "/dev/sdb", "destroydata": False}, {"name": "/dev/sdc", "destroydata": True}]


def test_db_migration_list():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in manifests.render_objects("heketi-storage.json.j2", inventory())}
    endpoints = objs[("Endpoints", "heketi-storage-endpoints")]
    assert [s["addresses"][0]["ip"] for s in endpoints["subsets"]] == ["10.186.0.10", "10.186.0.11", "10.186.0.12"]
    assert all(s["ports"] == [{"port": 1}] for s in endpoints["subsets"])
    assert ("Service", "heketi-storage-endpoints") in objs
    job = objs[("Job", "heketi-storage-copy-job")]
    assert job["apiVersion"] == "batch/v1" and job["metadata"]["labels"] == {"deploy-heketi": "support"}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["heketi-storage"]["glusterfs"] == {"endpoints": "heketi-storage-endpoints", "path": "heketidbstorage"}
    secret = objs[("Secret", "heketi-storage-secret")]
    assert secret["data"]["heketi.db"] == inventory()["heketi_db_b64"]
    assert secret["metadata"]["labels"] == {"deploy-heketi": "support"}
    assert "deploy-heketi" not in endpoints["metadata"].get("labels", {})


def test_final_heketi_keeps_its_db_on_glusterfs_and_bootstrap_on_emptydir():
    _, boot = manifests.render_objects("heketi-bootstrap.json.j2", inventory())
    _, final = manifests.render_objects("heketi-deployment.json.j2", inventory())
    boot_db = boot["spec"]["template"]["spec"]["volumes"][0]
    final_db = final["spec"]["template"]["spec"]["volumes"][0]
    assert boot_db == {"name": "db", "emptyDir": {}}
    assert final_db["glusterfs"]["path"] == "heketidbstorage"


def test_storageclass():
    [sc] = manifests.render_objects("storageclass.json.j2", inventory(replica=2))
    assert sc["provisioner"] == "kubernetes.io/glusterfs" and sc["allowVolumeExpansion"] is True
    assert sc["parameters"] == {"resturl": "http://10.96.12.34:8080", "restuser": "admin",
                                "secretNamespace": "glusterfs", "secretName": "heketi-storageclass-secret",
                                "volumetype": "replicate:2"}


@pytest.mark.parametrize("version,labelled", [("v1.11.0", False), ("1.24.9", False), ("v1.25.0", True)])
def test_psa_labels_only_from_1_25(version, labelled):
    [ns] = manifests.render_objects("namespace.json.j2", inventory(kubernetes_version=version))
    labels = ns["metadata"].get("labels", {})
    assert (labels.get("pod-security.kubernetes.io/enforce") == "privileged") is labelled
    assert bool(labels) is labelled


@pytest.mark.parametrize("text,minor", [("v1.25.3", 25), ("1.11", 11), ("v1.21.4+k3s1", 21), ("v1.18.0-rc.1", 18),
                                        ({"major": "1", "minor": "22+"}, 22), ({"gitVersion": "v1.19.2"}, 19)])
def test_kubernetes_minor(text, minor):
    assert manifests.kubernetes_minor(text) == minor


@pytest.mark.parametrize("text", ["", "latest", "v2.0.1", "1"])
def test_kubernetes_minor_rejects(text):
    with pytest.raises(ValueError):
        manifests.kubernetes_minor(text)


@pytest.mark.parametrize("version", ["v1.26.0", "1.27.1", "v1.30.0"])
def test_refused_from_1_26_with_the_reason(version):
    with pytest.raises(PreflightError) as err:
        manifests.check_supported(version)
    message = str(err.value)
    assert "the in-tree GlusterFS volume plugin and provisioner were removed in Kubernetes 1.26" in message
    assert "heketi-provisioned GlusterFS cannot work there" in message and "kadalu" in message


def test_refused_below_1_11_and_accepted_between():
    with pytest.raises(PreflightError):
        manifests.check_supported("v1.10.13")
    assert [manifests.check_supported(v) for v in ("v1.11.0", "v1.16.3", "v1.25.16")] == [11, 16, 25]


# -- Kubernetes' own schemas -------------------------------------------------------------
_OFFLINE = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
                      r"Network is unreachable|No matching distribution found|Could not find a version", re.I)


@pytest.fixture(scope="session")
def validators():
    """Two venvs with kubernetes-validate (1.20.0 for schema 1.11, 1.37.0 for 1.25)."""
    proc = subprocess.run(["sh", str(ROOT / "tests/tools/kubernetes_validate_envs.sh")],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if _OFFLINE.search(proc.stderr):
            pytest.skip("PyPI unreachable: cannot install kubernetes-validate: " + proc.stderr.strip()[-300:])
        pytest.fail("installing kubernetes-validate failed:\n" + proc.stderr[-2000:])
    cache = Path(proc.stdout.strip().splitlines()[-1])
    return {"1.11.0": cache / "kv-1.20/bin/kubernetes-validate", "1.25.0": cache / "kv-1.37/bin/kubernetes-validate"}


def _validate(cli: Path, version: str, files: list[Path]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([str(cli), "--strict", "-k", version, *map(str, files)],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("version", ["1.11.0", "1.25.0"])
def test_objects_validate_against_kubernetes_schemas(validators, version, tmp_path):
    files = []
    for name in MANIFEST_TEMPLATES:
        for i, obj in enumerate(manifests.render_objects(name, inventory(kubernetes_version="v" + version))):
            path = tmp_path / f"{name[:-8]}-{i}.json"
            path.write_text(json.dumps(obj))
            files.append(path)
    assert len(files) == 18  # the smoke test has a writer and a reader pod
    result = _validate(validators[version], version, files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") + result.stderr.count("passed") == len(files)


@pytest.mark.parametrize("version", ["1.11.0", "1.25.0"])
def test_the_validator_does_reject_a_broken_manifest(validators, version, tmp_path):
    """Negative control: the schema check can fail."""
    [ds] = manifests.render_objects("glusterfs-daemonset.json.j2", inventory())
    ds["spec"]["template"]["spec"]["hostNetwork"] = "yes"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(ds))
    assert _validate(validators[version], version, [path]).returncode != 0


def _images(values) -> dict:
    out = {}
    for name in ("glusterfs-daemonset.json.j2", "heketi-bootstrap.json.j2", "heketi-deployment.json.j2",
                 "heketi-storage.json.j2", "smoke-test.json.j2"):
        for obj in manifests.render_objects(name, values):
            spec = obj.get("spec", {})
            pod = spec.get("template", {}).get("spec") if "template" in spec else spec
            for c in (pod or {}).get("containers") or []:
                out[f"{obj['kind']}/{obj['metadata']['name']}"] = c["image"]
    return out


def test_default_images_are_pinned_and_name_their_registry():
    values = {k: v for k, v in inventory().items() if k not in ("heketi_image", "gluster_image")}
    images = _images(values)
    assert images == {
        "DaemonSet/glusterfs": "docker.io/gluster/gluster-centos:gluster4u0_centos7",
        "Deployment/deploy-heketi": "docker.io/heketi/heketi:9",
        "Deployment/heketi": "docker.io/heketi/heketi:9",
        "Job/heketi-storage-copy-job": "docker.io/heketi/heketi:9",
        "Pod/gfsdeploy-smoke-test": "docker.io/library/busybox:1.36",
        "Pod/gfsdeploy-smoke-test-reader": "docker.io/library/busybox:1.36"}
    assert not any(i.endswith(":latest") or ":" not in i.rsplit("/", 1)[-1] for i in images.values())


def test_a_mirror_prefix_reaches_every_default_image_and_explicit_images_win():
    values = {k: v for k, v in inventory().items() if k not in ("heketi_image", "gluster_image")}
    mirrored = _images({**values, "image_registry": "registry.example.com:5000/dockerhub"})
    assert all(i.startswith("registry.example.com:5000/dockerhub/") for i in mirrored.values()), mirrored
    chosen = _images({**values, "heketi_image": "quay.io/me/heketi:10-compat"})
    assert chosen["Deployment/heketi"] == chosen["Job/heketi-storage-copy-job"] == "quay.io/me/heketi:10-compat"


def test_a_plan_renders_manifests_whose_values_are_known_only_after_apply():
    """In a plan, heketi's DB and ClusterIP do not exist yet: the manifests still render,
    and exactly those fields are marked (known after apply)."""
    from gfsdeploy.templating import Templar, Unknown, is_unknown

    templar = Templar([str(ROOT / "templates")])
    values = inventory(heketi_db_b64=Unknown(), heketi_cluster_ip=Unknown())
    storage = manifests.flatten(manifests.parse(templar.render_file(str(ROOT / "templates" / "heketi-storage.json.j2"),
                                                                   values)))
    secret = next(o for o in storage if o["kind"] == "Secret")
    assert is_unknown(secret["data"]["heketi.db"])
    assert not any(is_unknown(o) for o in storage if o["kind"] != "Secret")
    [sc] = manifests.flatten(manifests.parse(templar.render_file(str(ROOT / "templates" / "storageclass.json.j2"),
                                                                 values)))
    assert is_unknown(sc["parameters"]["resturl"]) and sc["parameters"]["resturl"].startswith("http://")
