"""Pure pieces of the Kubernetes API server simulator, table-driven."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from gfsdeploy_glusterfs.lab.simulators.kubernetes import protobuf
from gfsdeploy_glusterfs.lab.simulators.kubernetes.api import Api
from gfsdeploy_glusterfs.lab.simulators.kubernetes.discovery import Discovery
from gfsdeploy_glusterfs.lab.simulators.kubernetes.provisioner import ProvisionError, jwt_token, replica_count
from gfsdeploy_glusterfs.lab.simulators.kubernetes.store import (ApiError, fields_match, json_patch, labels_match,
                                                       merge_patch, parse_field_selector, parse_label_selector,
                                                       selector_object_match)

LABELS = {"app": "heketi", "tier": "db", "glusterfs": "pod"}


@pytest.mark.parametrize("selector,matches", [
    ("", True),
    ("app=heketi", True),
    ("app==heketi", True),
    ("app=other", False),
    ("app!=other", True),
    ("app!=heketi", False),
    ("missing!=x", True),
    ("app in (heketi, other)", True),
    ("app in (x,y)", False),
    ("app notin (x,y)", True),
    ("tier notin (db)", False),
    ("glusterfs", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=heketi,tier in (db),!missing", True),
    ("app=heketi,tier=web", False),
])
def test_label_selectors(selector, matches):
    assert labels_match(parse_label_selector(selector), LABELS) is matches


def test_bad_set_selector_is_400():
    with pytest.raises(ApiError) as err:
        parse_label_selector("app in heketi")
    assert err.value.code == 400


@pytest.mark.parametrize("sel,matches", [
    ({}, True),
    ({"matchLabels": {"app": "heketi"}}, True),
    ({"matchLabels": {"app": "x"}}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, False),
    ({"matchExpressions": [{"key": "zzz", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
])
def test_label_selector_objects(sel, matches):
    assert selector_object_match(sel, LABELS) is matches


POD = {"metadata": {"name": "p1", "namespace": "default"}, "spec": {"nodeName": "k8s-1"},
       "status": {"phase": "Running"}}


@pytest.mark.parametrize("selector,matches", [
    ("metadata.name=p1", True),
    ("metadata.name==p2", False),
    ("spec.nodeName=k8s-1,status.phase=Running", True),
    ("status.phase!=Running", False),
    ("spec.nodeName!=k8s-2", True),
])
def test_field_selectors(selector, matches):
    assert fields_match(parse_field_selector(selector), POD) is matches


@pytest.mark.parametrize("target,patch,strategic,expected", [
    ({"a": 1, "b": {"c": 2}}, {"b": {"d": 3}}, False, {"a": 1, "b": {"c": 2, "d": 3}}),
    ({"a": 1, "b": 2}, {"a": None}, False, {"b": 2}),
    ({"l": [1, 2]}, {"l": [3]}, False, {"l": [3]}),
    ({"m": {"x": 1}}, {"$setElementOrder/l": [], "m": {"y": 2}}, True, {"m": {"x": 1, "y": 2}}),
    ({"m": {"x": 1}}, {"m": {"$patch": "replace", "y": 2}}, True, {"m": {"y": 2}}),
    ({"m": {"x": 1}, "n": 1}, {"m": {"$patch": "delete"}}, True, {"n": 1}),
])
def test_merge_patch(target, patch, strategic, expected):
    assert merge_patch(target, patch, strategic) == expected


@pytest.mark.parametrize("ops,expected", [
    ([{"op": "add", "path": "/a/-", "value": 3}], {"a": [1, 2, 3], "b": {"c": "x"}}),
    ([{"op": "remove", "path": "/b/c"}], {"a": [1, 2], "b": {}}),
    ([{"op": "replace", "path": "/a/0", "value": 9}], {"a": [9, 2], "b": {"c": "x"}}),
    ([{"op": "move", "from": "/b/c", "path": "/d"}], {"a": [1, 2], "b": {}, "d": "x"}),
    ([{"op": "copy", "from": "/b/c", "path": "/b/e"}], {"a": [1, 2], "b": {"c": "x", "e": "x"}}),
    ([{"op": "add", "path": "/b/a~1b", "value": 1}], {"a": [1, 2], "b": {"c": "x", "a/b": 1}}),
])
def test_json_patch(ops, expected):
    assert json_patch({"a": [1, 2], "b": {"c": "x"}}, ops) == expected


@pytest.mark.parametrize("ops", [
    [{"op": "remove", "path": "/nope"}],
    [{"op": "test", "path": "/b/c", "value": "y"}],
    [{"op": "replace", "path": "/a/7", "value": 1}],
])
def test_json_patch_failures_are_422(ops):
    with pytest.raises(ApiError) as err:
        json_patch({"a": [1, 2], "b": {"c": "x"}}, ops)
    assert err.value.code == 422


def test_protobuf_secret_decodes():
    meta = protobuf._ld(1, "s1") + protobuf._ld(3, "default") + protobuf._ld(11, protobuf._ld(1, "k") +
                                                                                protobuf._ld(2, "v"))
    secret = protobuf._ld(1, meta) + protobuf._ld(2, protobuf._ld(1, "heketi.json") + protobuf._ld(2, b"\x00{}")) \
        + protobuf._ld(3, "Opaque")
    typemeta = protobuf._ld(1, "v1") + protobuf._ld(2, "Secret")
    body = protobuf.MAGIC + protobuf._ld(1, typemeta) + protobuf._ld(2, secret)
    assert protobuf.decode(body) == {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "s1", "namespace": "default", "labels": {"k": "v"}},
        "data": {"heketi.json": base64.b64encode(b"\x00{}").decode()}}
    other = protobuf.MAGIC + protobuf._ld(1, protobuf._ld(1, "v1") + protobuf._ld(2, "Pod"))
    assert protobuf.decode(other) is None


def test_jwt_has_heketi_claims_and_signature():
    tok = jwt_token("admin", "secret", "POST", "/volumes")
    head, body, sig = tok.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)   # noqa: E731
    claims = json.loads(base64.urlsafe_b64decode(pad(body)))
    assert claims["iss"] == "admin" and claims["exp"] > claims["iat"]
    assert claims["qsh"] == hashlib.sha256(b"POST&/volumes").hexdigest()
    want = hmac.new(b"secret", f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(pad(sig)) == want


@pytest.mark.parametrize("volumetype,expected", [("replicate:3", 3), ("replicate:2", 2), ("replicate:1", None),
                                                 ("disperse:4:2", None)])
def test_replica_count(volumetype, expected):
    sc = {"parameters": {"volumetype": volumetype}}
    if expected is None:
        with pytest.raises(ProvisionError):
            replica_count(sc)
    else:
        assert replica_count(sc) == expected


def test_store_watch_log_and_cluster_ip_allocation():
    api = Api("1.25.16", "10.186.1.0/24")
    api.create(api.res("namespaces"), "", {"metadata": {"name": "default"}})
    svc = lambda name, ip=None: {"metadata": {"name": name},   # noqa: E731
                                 "spec": {"ports": [{"port": 80}], **({"clusterIP": ip} if ip else {})}}
    a = api.create(api.res("services"), "default", svc("a"))
    b = api.create(api.res("services"), "default", svc("b", "10.186.1.50"))
    assert a["spec"]["clusterIP"] == "10.186.1.2" and b["spec"]["clusterIP"] == "10.186.1.50"
    for ip, text in (("10.186.1.50", "already allocated"), ("10.9.9.9", "not in the valid range")):
        with pytest.raises(ApiError) as err:
            api.create(api.res("services"), "default", svc("c", ip))
        assert err.value.code == 422 and text in err.value.message
    rv = int(a["metadata"]["resourceVersion"])
    api.delete(api.res("services"), "default", "a")
    events, _ = api.store.events_since("services", rv)
    assert [(e[2], (e[4] or e[3])["metadata"]["name"]) for e in events] == [("ADDED", "b"), ("DELETED", "a")]


@pytest.mark.parametrize("target,expected", [(None, 1), (0, 1), ("", 1), (8080, 8080), ("http", "http")])
def test_service_target_port_defaults_to_the_port(target, expected):
    """Unset, 0 or "" is the port itself (heketi-cli's heketi-storage.json writes targetPort 0)."""
    api = Api("1.25.16", "10.186.1.0/24")
    api.create(api.res("namespaces"), "", {"metadata": {"name": "default"}})
    port = {"port": 1, **({} if target is None else {"targetPort": target})}
    svc = api.create(api.res("services"), "default", {"metadata": {"name": "s"}, "spec": {"ports": [port]}})
    assert svc["spec"]["ports"][0]["targetPort"] == expected


@pytest.mark.parametrize("version,gv,served", [
    ("1.15.12", "extensions/v1beta1", True), ("1.16.0", "extensions/v1beta1", False),
    ("1.21.14", "storage.k8s.io/v1beta1", True), ("1.22.0", "storage.k8s.io/v1beta1", False),
    ("1.11.10", "apps/v1", True), ("1.25.16", "rbac.authorization.k8s.io/v1", True),
])
def test_version_gating(version, gv, served):
    d = Discovery(version)
    group, ver = gv.split("/")
    assert (d.resource_list(group, ver) is not None) is served
