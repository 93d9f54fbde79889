"""heketi's own Python client (PyPI `heketi`, from heketi's repository) against the heketi simulator,
for every call the deployment makes that the client has: the simulator must answer as heketi does
(status codes, the async queue and its 303/204 ends, JWT with whole-second exp and qsh).

The client as published is Python 2 code in one place: it hashes `method + '&' + uri` as a str
(Python 3's hashlib wants bytes). That is the only thing adapted here — the client module sees a
hashlib whose sha256 encodes a str first; its requests, tokens and polling run unchanged."""

import hashlib
import types

import pytest

heketi = pytest.importorskip("heketi", reason="the test extra installs heketi's client (pip install heketi)")
requests = pytest.importorskip("requests")

from gfsdeploy_glusterfs.lab.simulators.heketi import HeketiSimulator  # noqa: E402

from fake_gluster import FakeGlusterPods  # noqa: E402

ADMIN = "sim-admin-key"
CONFIG = {"use_auth": True, "jwt": {"admin": {"key": ADMIN}, "user": {"key": "sim-user-key"}},
          "glusterfs": {"executor": "kubernetes", "db": "/var/lib/heketi/heketi.db"}}


def _sha256(data=b""):
    return hashlib.sha256(data.encode() if isinstance(data, str) else data)


@pytest.fixture
def official(tmp_path, monkeypatch):
    import heketi.heketi as module
    monkeypatch.setattr(module, "hashlib", types.SimpleNamespace(sha256=_sha256))
    pods = FakeGlusterPods()
    sim = HeketiSimulator(CONFIG, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path / "state"),
                          str(tmp_path / "faults.json"), op_delay=0.05, executor=pods).start()
    try:
        yield heketi.HeketiClient(sim.url, "admin", ADMIN), pods
    finally:
        sim.stop()


def test_the_deployments_calls_through_heketis_own_client(official):
    c, pods = official
    assert c.hello() is True
    cluster = c.cluster_create()                       # 201 with the cluster
    assert cluster is not None and len(cluster["id"]) == 32
    assert c.cluster_list()["clusters"] == [cluster["id"]]
    nodes = []
    for i in (1, 2, 3):                                # 202 -> queue -> 303 -> GET /nodes/<id>
        node = c.node_add({"zone": 1, "cluster": cluster["id"],
                           "hostnames": {"manage": [f"k8s-{i}"], "storage": [f"10.186.0.{9 + i}"]}})
        assert node is not None and node["hostnames"]["manage"] == [f"k8s-{i}"], node
        assert c.device_add({"node": node["id"], "name": "/dev/sdb"}) is True   # queue ends in 204
        nodes.append(node["id"])
    assert [c.node_info(n)["devices"][0]["name"] for n in nodes] == ["/dev/sdb"] * 3
    assert set(c.cluster_info(cluster["id"])["nodes"]) == set(nodes)
    device = c.node_info(nodes[0])["devices"][0]["id"]
    assert c.device_info(device)["name"] == "/dev/sdb"

    volume = c.volume_create({"size": 2, "name": "heketidbstorage",
                              "durability": {"type": "replicate", "replicate": {"replica": 3}}})
    assert volume is not None and volume["name"] == "heketidbstorage"
    assert len({b["node"] for b in volume["bricks"]}) == 3
    assert [cmd for _, cmd in pods.matching("volume start")] == [
        "gluster --mode=script --timeout=600 volume start heketidbstorage"]
    assert c.volume_list()["volumes"] == [volume["id"]]
    assert c.volume_info(volume["id"])["mount"]["glusterfs"]["device"].endswith(":heketidbstorage")

    other = c.volume_create({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 2}}})
    assert c.volume_delete(other["id"]) is True        # queue ends in 204
    assert c.volume_list()["volumes"] == [volume["id"]]

    # heketi refuses, the client raises what requests raises for the status
    with pytest.raises(requests.HTTPError) as info:
        c.volume_create({"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 4}}})
    assert info.value.response.status_code == 400
    assert info.value.response.text.strip() == "Invalid replica value"
    with pytest.raises(requests.HTTPError) as info:    # a device that is not failed
        c.device_delete(device)
    assert info.value.response.status_code == 400

    assert c.device_state(device, {"state": "offline"}) is True
    assert c.device_info(device)["state"] == "offline"
    assert c.device_state(device, {"state": "online"}) is True


def test_teardown_calls_through_heketis_own_client(official):
    c, _ = official
    cluster = c.cluster_create()["id"]
    node = c.node_add({"zone": 1, "cluster": cluster,
                       "hostnames": {"manage": ["k8s-1"], "storage": ["10.186.0.10"]}})["id"]
    assert c.device_add({"node": node, "name": "/dev/sdb"}) is True
    device = c.node_info(node)["devices"][0]["id"]
    for state in ("offline", "failed"):
        assert c.device_state(device, {"state": state}) is True
    assert c.device_delete(device) is True
    assert c.node_state(node, {"state": "offline"}) is True
    assert c.node_delete(node) is True
    assert c.cluster_delete(cluster) is True
    assert c.cluster_list()["clusters"] == []


def test_an_expired_token_is_refused_for_the_official_client_too(official, monkeypatch):
    """Negative control: the same client with a token that expired a few seconds ago is refused."""
    import datetime
    import heketi.heketi as module
    c, _ = official
    real = datetime.datetime

    class Past(real):
        @classmethod
        def utcnow(cls):
            return real.utcnow() - datetime.timedelta(seconds=5)

    monkeypatch.setattr(module, "datetime", types.SimpleNamespace(datetime=Past, timedelta=datetime.timedelta))
    with pytest.raises(requests.HTTPError) as info:
        c.cluster_list()
    assert info.value.response.status_code == 401
