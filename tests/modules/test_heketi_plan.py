"""Table-driven: heketi module arguments + heketi state → expected plan lines."""

import pytest

from gfsdeploy.errors import PlaybookError
from gfsdeploy.modules import get
from gfsdeploy.modules.base import HostInfo
from gfsdeploy_glusterfs.modules.heketi import HeketiState, missing_in_heketi, normalize_topology

HOST = HostInfo("k8s-1")
INVENTORY = [
    {"manage": "k8s-1", "storage": "10.186.0.10", "zone": 1, "devices": ["/dev/sdb"]},
    {"manage": "k8s-2", "storage": "10.186.0.11", "zone": 1, "devices": [{"name": "/dev/sdb", "destroydata": True}]},
]


def hnode(manage, storage, devices=(), node_id=None):
    return {"id": node_id or manage.replace("-", "") * 4, "hostnames": {"manage": [manage], "storage": [storage]},
            "zone": 1, "devices": [{"name": d, "id": "d" + d[-3:]} for d in devices]}


def topo(*nodes, clusters=1, volumes=()):
    if clusters == 0:
        return {"clusters": []}
    out = [{"id": "c" * 32, "nodes": list(nodes), "volumes": [{"name": v, "id": "v" * 32} for v in volumes]}]
    for i in range(1, clusters):
        out.append({"id": str(i) * 32, "nodes": [], "volumes": []})
    return {"clusters": out}


def lines(changes):
    return [f"{c.action} {c.resource}" for c in changes]


TOPOLOGY_CASES = [
    ("unreachable: everything planned", HeketiState(reachable=False, topology={"clusters": []}),
     ["+ heketi cluster", "+ heketi node k8s-1", "+ heketi device k8s-1:/dev/sdb",
      "+ heketi node k8s-2", "+ heketi device k8s-2:/dev/sdb"]),
    ("empty heketi", HeketiState(reachable=True, topology=topo(clusters=0)),
     ["+ heketi cluster", "+ heketi node k8s-1", "+ heketi device k8s-1:/dev/sdb",
      "+ heketi node k8s-2", "+ heketi device k8s-2:/dev/sdb"]),
    ("cluster only", HeketiState(reachable=True, topology=topo()),
     ["+ heketi node k8s-1", "+ heketi device k8s-1:/dev/sdb", "+ heketi node k8s-2",
      "+ heketi device k8s-2:/dev/sdb"]),
    ("one node done, other device missing",
     HeketiState(reachable=True, topology=topo(hnode("k8s-1", "10.186.0.10", ["/dev/sdb"]), hnode("k8s-2", "10.186.0.11"))),
     ["+ heketi device k8s-2:/dev/sdb"]),
    ("all present", HeketiState(reachable=True, topology=topo(hnode("k8s-1", "10.186.0.10", ["/dev/sdb"]),
                                                         hnode("k8s-2", "10.186.0.11", ["/dev/sdb"]))), []),
]


@pytest.mark.parametrize("label, state, expected", TOPOLOGY_CASES, ids=[c[0] for c in TOPOLOGY_CASES])
def test_topology_plan(label, state, expected):
    module = get("heketi_topology")
    args = module.validate({"url": "http://10.96.0.20:8080", "key": "k3y-plan", "topology": INVENTORY})
    assert lines(module.plan(args, state, HOST)) == expected


def test_topology_plan_known_after_apply_and_warnings():
    module = get("heketi_topology")
    args = module.validate({"url": "http://10.96.0.20:8080", "key": "k3y-plan", "topology": INVENTORY})
    state = HeketiState(reachable=True, topology=topo(hnode("k8s-1", "10.186.0.99", ["/dev/sdb", "/dev/sdc"]),
                                                 hnode("k8s-9", "10.186.0.19", ["/dev/sdb"]), clusters=2))
    changes = module.plan(args, state, HOST)
    assert lines(changes) == [
        "! heketi has 2 clusters; using " + "c" * 32 + " (the one with most inventory nodes)",
        "! heketi node k8s-1: storage is 10.186.0.99 in heketi but 10.186.0.10 in the inventory "
        "(heketi cannot change it; left as is)",
        "! heketi device k8s-1:/dev/sdc is not in the inventory (left as is)",
        "+ heketi node k8s-2", "+ heketi device k8s-2:/dev/sdb",
        "! heketi node k8s-9 is not in the inventory (left as is; never deleted by gfsdeploy)"]
    node = [c for c in changes if c.resource == "heketi node k8s-2"][0]
    assert "(known after apply)" in node.diff and "10.186.0.11" in node.diff
    device = [c for c in changes if c.resource == "heketi device k8s-2:/dev/sdb"][0]
    assert "destroydata: true" in device.diff


def test_topology_json_shape_accepted():
    module = get("heketi_topology")
    topology = {"clusters": [{"nodes": [
        {"node": {"hostnames": {"manage": ["k8s-1"], "storage": ["10.186.0.10"]}, "zone": 2},
         "devices": [{"name": "/dev/vdb", "destroydata": False}, "/dev/vdc"]}]}]}
    args = module.validate({"url": "http://heketi:8080", "topology": topology})
    assert args["topology"] == [{"manage": "k8s-1", "storage": "10.186.0.10", "zone": 2,
                                 "devices": [{"name": "/dev/vdb", "destroydata": False},
                                             {"name": "/dev/vdc", "destroydata": False}]}]


BAD_ARGS = [
    ({"url": "ftp://x", "topology": INVENTORY}, "url"),
    ({"url": "http://bad host:80", "topology": INVENTORY}, "url"),
    ({"url": "http://h:8080", "topology": [{"manage": "k8s-1", "storage": "k8s-1", "devices": []}]}, "not an IP"),
    ({"url": "http://h:8080", "topology": [{"manage": "k8s 1", "storage": "10.0.0.1", "devices": []}]}, "node name"),
    ({"url": "http://h:8080", "topology": [{"manage": "k8s-1", "storage": "10.0.0.1", "devices": ["sdb"]}]},
     "block device"),
    ({"url": "http://h:8080", "topology": [{"manage": "k8s-1", "storage": "10.0.0.1", "devices": [],
                                            "zone": 0}]}, "zone"),
    ({"url": "http://h:8080", "topology": [{"manage": "k8s-1", "storage": "10.0.0.1", "devices": []},
                                           {"manage": "k8s-1", "storage": "10.0.0.2", "devices": []}]}, "twice"),
    ({"url": "http://h:8080", "topology": {"clusters": [{"nodes": []}, {"nodes": []}]}}, "one cluster"),
    ({"url": "http://h:8080", "topology": []}, "no nodes"),
]


@pytest.mark.parametrize("args, text", BAD_ARGS)
def test_topology_args_rejected(args, text):
    with pytest.raises(PlaybookError) as info:
        get("heketi_topology").validate(args)
    assert text in str(info.value)


def vol(name="heketidbstorage", size=2, replica=3, vid="v" * 32):
    return {"id": vid, "name": name, "size": size,
            "durability": {"type": "replicate", "replicate": {"replica": replica}}}


VOLUME_CASES = [
    ("missing", HeketiState(reachable=True, volumes=[]), ["+ heketi volume heketidbstorage (2 GiB, replicate 3)"]),
    ("unreachable", HeketiState(reachable=False, volumes=[]), ["+ heketi volume heketidbstorage (2 GiB, replicate 3)"]),
    ("present", HeketiState(reachable=True, volumes=[vol()]), []),
    ("different size: warning only", HeketiState(reachable=True, volumes=[vol(size=5)]),
     ["! heketi volume heketidbstorage is 5 GiB, replicate 3; the inventory asks 2 GiB, replicate 3 (left as is)"]),
    ("duplicates: warning, never another", HeketiState(reachable=True, volumes=[vol(), vol(vid="w" * 32)]),
     ["! heketi has 2 volumes named heketidbstorage (" + "v" * 32 + ", " + "w" * 32 + "); keep the one the "
      "heketi pod mounts and delete the others by id"]),
]


@pytest.mark.parametrize("label, state, expected", VOLUME_CASES, ids=[c[0] for c in VOLUME_CASES])
def test_volume_plan(label, state, expected):
    module = get("heketi_volume")
    args = module.validate({"url": "http://10.96.0.20:8080", "key": "k3y-plan", "name": "heketidbstorage"})
    assert lines(module.plan(args, state, HOST)) == expected


@pytest.mark.parametrize("args, text", [
    ({"name": "bad name"}, "volume name"), ({"name": "v", "replica": 1}, "at least 2"),
    ({"name": "v", "size": 0}, "at least 1"),
])
def test_volume_args_rejected(args, text):
    with pytest.raises(PlaybookError) as info:
        get("heketi_volume").validate({"url": "http://h:8080", **args})
    assert text in str(info.value)


def test_key_is_sensitive():
    from gfsdeploy import secrets

    get("heketi_volume").validate({"url": "http://h:8080", "name": "v", "key": "plan-secret-key-42"})
    assert "plan-secret-key-42" not in secrets.redact("key plan-secret-key-42")


VERIFY_CASES = [
    ("no cluster", {"clusters": []}, ["heketi has no cluster — was the DB migration skipped?"]),
    ("missing node, device, volume", topo(hnode("k8s-1", "10.186.0.10")),
     ["device /dev/sdb of node k8s-1 is not in heketi", "node k8s-2 is not in heketi",
      "volume heketidbstorage is not in heketi"]),
    ("complete", topo(hnode("k8s-1", "10.186.0.10", ["/dev/sdb"]), hnode("k8s-2", "10.186.0.11", ["/dev/sdb"]),
                      volumes=["heketidbstorage"]), []),
]


@pytest.mark.parametrize("label, topology, expected", VERIFY_CASES, ids=[c[0] for c in VERIFY_CASES])
def test_verify_missing(label, topology, expected):
    nodes = normalize_topology(INVENTORY, {})
    assert missing_in_heketi(nodes, ["heketidbstorage"], topology) == expected
