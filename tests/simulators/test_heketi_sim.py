"""The heketi simulator on 127.0.0.1: auth, CRUD shapes, async queue, DB file, faults."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from gfsdeploy_glusterfs import jwt
from gfsdeploy_glusterfs.heketi_client import HeketiClient, HeketiError
from gfsdeploy_glusterfs.lab.simulators.heketi import HeketiSimulator

ADMIN, USER = "sim-admin-key", "sim-user-key"
CONFIG = {"use_auth": True, "jwt": {"admin": {"key": ADMIN}, "user": {"key": USER}},
          "glusterfs": {"executor": "kubernetes", "db": "/var/lib/heketi/heketi.db"}}


@pytest.fixture
def sim(tmp_path):
    s = HeketiSimulator(CONFIG, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path / "state"),
                        str(tmp_path / "faults.json"), op_delay=0.05).start()
    yield s
    s.stop()


def client(sim, user="admin", key=ADMIN):
    return HeketiClient(sim.url, user, key, poll_interval=0.02, retries=0)


def raw(sim, method, path, token=None, body=None):
    """One request without following anything: (status, headers, text)."""
    request = urllib.request.Request(sim.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("Authorization", "bearer " + token)
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=5) as reply:
            return reply.status, reply.headers, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def build(sim, nodes=3, devices=("/dev/sdb",)):
    c = client(sim)
    cluster = c.create_cluster()
    ids = []
    for i in range(1, nodes + 1):
        node = c.add_node(cluster["id"], f"k8s-{i}", f"10.186.0.{9 + i}")
        for name in devices:
            c.add_device(node["id"], name)
        ids.append(node["id"])
    return c, cluster["id"], ids


def test_hello_needs_no_auth(sim):
    assert raw(sim, "GET", "/hello")[:1] == (200,)
    assert raw(sim, "GET", "/hello")[2] == "Hello from Heketi"


def test_401_without_or_with_bad_token(sim):
    status, _, text = raw(sim, "GET", "/clusters")
    assert status == 401 and "Required authorization token not found" in text
    bad = jwt.heketi_token("admin", "not-the-key", "GET", "/clusters")
    status, _, text = raw(sim, "GET", "/clusters", bad)
    assert status == 401 and "Invalid JWT token" in text
    expired = jwt.heketi_token("admin", ADMIN, "GET", "/clusters", now=time.time() - 3600)
    assert raw(sim, "GET", "/clusters", expired)[0] == 401
    good = jwt.heketi_token("admin", ADMIN, "GET", "/clusters")
    assert raw(sim, "GET", "/clusters", good)[:1] == (200,)


def test_qsh_mismatch_is_401(sim):
    token = jwt.heketi_token("admin", ADMIN, "GET", "/volumes")
    status, _, text = raw(sim, "GET", "/clusters", token)
    assert status == 401 and "Invalid qsh claim" in text
    token = jwt.heketi_token("admin", ADMIN, "POST", "/clusters")
    assert raw(sim, "GET", "/clusters", token)[0] == 401


def test_user_issuer_only_on_volumes(sim):
    token = jwt.heketi_token("user", USER, "GET", "/clusters")
    status, _, text = raw(sim, "GET", "/clusters", token)
    assert status == 401 and "Administrator access required" in text
    token = jwt.heketi_token("user", USER, "GET", "/volumes")
    assert raw(sim, "GET", "/volumes", token)[0] == 200
    # a user token signed with the admin key is not a user token
    token = jwt.heketi_token("user", ADMIN, "GET", "/volumes")
    assert raw(sim, "GET", "/volumes", token)[0] == 401


def test_async_queue_pending_then_303(sim):
    c = client(sim)
    cluster = c.create_cluster()
    assert len(cluster["id"]) == 32 and int(cluster["id"], 16) >= 0
    body = {"zone": 1, "cluster": cluster["id"], "hostnames": {"manage": ["k8s-1"], "storage": ["10.186.0.10"]}}
    status, headers, _ = raw(sim, "POST", "/nodes", jwt.heketi_token("admin", ADMIN, "POST", "/nodes"), body)
    assert status == 202 and headers["Location"].startswith("/queue/")
    queue = headers["Location"]
    status, headers, _ = raw(sim, "GET", queue, jwt.heketi_token("admin", ADMIN, "GET", queue))
    assert status == 200 and headers["X-Pending"] == "true"
    time.sleep(0.2)
    status, headers, _ = raw(sim, "GET", queue, jwt.heketi_token("admin", ADMIN, "GET", queue))
    assert status == 303 and headers["Location"].startswith("/nodes/")
    node = c.node(headers["Location"].rsplit("/", 1)[1])
    assert node["hostnames"] == {"manage": ["k8s-1"], "storage": ["10.186.0.10"]} and node["devices"] == []
    # read once, then forgotten (heketi's async manager)
    assert raw(sim, "GET", queue, jwt.heketi_token("admin", ADMIN, "GET", queue))[0] == 404


def test_device_add_is_204_and_delete_flow(sim):
    c, cluster, nodes = build(sim, nodes=1)
    node = c.node(nodes[0])
    assert [d["name"] for d in node["devices"]] == ["/dev/sdb"]
    device = node["devices"][0]
    assert set(device) >= {"name", "storage", "id", "state", "bricks"} and device["storage"]["free"] > 0
    with pytest.raises(HeketiError) as info:
        c.add_device(nodes[0], "/dev/sdb")
    assert info.value.status == 409 and "already used" in info.value.heketi_message
    with pytest.raises(HeketiError) as info:
        c.delete_node(nodes[0])
    assert info.value.status == 409
    c.delete_device(device["id"])
    c.delete_node(nodes[0])
    c.delete_cluster(cluster)
    assert c.clusters() == []


def test_node_add_validation(sim):
    c = client(sim)
    cluster = c.create_cluster()["id"]
    c.add_node(cluster, "k8s-1", "10.186.0.10")
    with pytest.raises(HeketiError) as info:
        c.add_node(cluster, "k8s-1", "10.186.0.99")
    assert info.value.status == 409 and "Hostname k8s-1 already used" in info.value.heketi_message
    with pytest.raises(HeketiError) as info:
        c.add_node(cluster, "bad host!", "10.186.0.11")
    assert info.value.status == 400
    with pytest.raises(HeketiError) as info:
        c.add_node("0" * 32, "k8s-2", "10.186.0.11")
    assert info.value.status == 404 and "Cluster id does not exist" in info.value.heketi_message
    with pytest.raises(HeketiError) as info:
        c.add_node(cluster, "k8s-2", "10.186.0.11", zone=0)
    assert info.value.status == 400


def test_volume_create_allocates_bricks_and_directory(sim, tmp_path):
    c, cluster, _ = build(sim)
    volume = c.create_volume(2, "heketidbstorage", 3)
    assert len(volume["id"]) == 32 and volume["cluster"] == cluster
    assert len({b["node"] for b in volume["bricks"]}) == 3
    assert volume["durability"]["replicate"]["replica"] == 3
    assert volume["mount"]["glusterfs"]["device"] == "10.186.0.10:heketidbstorage" or \
        volume["mount"]["glusterfs"]["device"].endswith(":heketidbstorage")
    assert os.path.isdir(tmp_path / "state" / "volumes" / "heketidbstorage")
    with pytest.raises(HeketiError) as info:
        c.create_volume(2, "heketidbstorage", 3)
    assert "already in use" in info.value.heketi_message
    assert [v for v in c.volumes()] == [volume["id"]]
    with pytest.raises(HeketiError) as info:
        c.delete_volume(volume["id"])
    assert info.value.status == 409  # heketi protects its DB volume
    other = c.create_volume(1, "pvc-1", 2)
    c.delete_volume(other["id"])
    assert not os.path.exists(tmp_path / "state" / "volumes" / "pvc-1")


def test_no_space_when_replica_exceeds_nodes(sim):
    c, _, _ = build(sim, nodes=2)
    with pytest.raises(HeketiError) as info:
        c.create_volume(2, "heketidbstorage", 3)
    assert info.value.status == 500 and info.value.heketi_message == "No space"
    with pytest.raises(HeketiError) as info:
        c.create_volume(1000, "big", 2)
    assert info.value.heketi_message == "No space"


def test_db_persisted_and_reloaded(sim, tmp_path):
    c, cluster, nodes = build(sim)
    c.create_volume(2, "heketidbstorage", 3)
    before = c.topology()
    sim.stop()
    data = json.loads((tmp_path / "heketi.db").read_text())
    assert cluster in data["clusters"] and set(nodes) <= set(data["nodes"])
    again = HeketiSimulator(CONFIG, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path / "state")).start()
    try:
        assert client(again).topology() == before
    finally:
        again.stop()


def test_missing_db_is_empty_heketi(tmp_path):
    s = HeketiSimulator(CONFIG, str(tmp_path / "new" / "heketi.db"), ("127.0.0.1", 0), str(tmp_path)).start()
    try:
        assert client(s).clusters() == []
        assert (tmp_path / "new" / "heketi.db").exists()
    finally:
        s.stop()


def test_backup_db_is_the_file(sim, tmp_path):
    build(sim, nodes=1)
    blob = client(sim).backup_db()
    assert blob == (tmp_path / "heketi.db").read_bytes()
    assert b"k8s-1" in blob


def test_fault_device_add_fails(sim, tmp_path):
    (tmp_path / "faults.json").write_text(json.dumps({"device_add_fails": {"k8s-2": "/dev/sdb"}}))
    c = client(sim)
    cluster = c.create_cluster()["id"]
    n1 = c.add_node(cluster, "k8s-1", "10.186.0.10")["id"]
    n2 = c.add_node(cluster, "k8s-2", "10.186.0.11")["id"]
    c.add_device(n1, "/dev/sdb")
    with pytest.raises(HeketiError) as info:
        c.add_device(n2, "/dev/sdb")
    assert info.value.status == 500
    assert "Setup of device /dev/sdb failed (already initialized or contains data?)" in info.value.heketi_message
    assert "excluded by a filter" in info.value.heketi_message
    assert c.node(n2)["devices"] == []
    (tmp_path / "faults.json").write_text("{}")  # fixed: re-read per request
    c.add_device(n2, "/dev/sdb")
    assert [d["name"] for d in c.node(n2)["devices"]] == ["/dev/sdb"]


def test_fault_hello_and_unavailable(sim, tmp_path):
    (tmp_path / "faults.json").write_text(json.dumps({"hello_fails": True}))
    with pytest.raises(HeketiError):
        client(sim).hello()
    (tmp_path / "faults.json").write_text(json.dumps({"unavailable": True}))
    assert raw(sim, "GET", "/hello")[0] == 503


def test_fault_volume_create(sim, tmp_path):
    c, _, _ = build(sim)
    (tmp_path / "faults.json").write_text(json.dumps({"volume_create_fails": "boom from gluster"}))
    with pytest.raises(HeketiError, match="boom from gluster"):
        c.create_volume(2, "heketidbstorage", 3)
    assert c.volumes() == []


def test_no_auth_mode(tmp_path):
    s = HeketiSimulator({"use_auth": False}, str(tmp_path / "db"), ("127.0.0.1", 0), str(tmp_path)).start()
    try:
        assert HeketiClient(s.url, "admin", None, retries=0).clusters() == []
    finally:
        s.stop()


def test_dirty_backing_device(sim, tmp_path):
    """With a device map, a disk with a filesystem signature fails like heketi unless destroydata."""
    import shutil
    import subprocess

    if not shutil.which("mkfs.ext4") or not shutil.which("blkid"):
        pytest.skip("needs mkfs.ext4 and blkid")
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * (8 * 1024 * 1024))
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    (tmp_path / "state" / "devices.json").write_text(json.dumps({"k8s-1": {"/dev/sdb": str(image)}}))
    c = client(sim)
    node = c.add_node(c.create_cluster()["id"], "k8s-1", "10.186.0.10")["id"]
    with pytest.raises(HeketiError) as info:
        c.add_device(node, "/dev/sdb")
    assert "ext4 signature detected on /dev/sdb" in info.value.heketi_message
    c.add_device(node, "/dev/sdb", destroydata=True)
    device = c.node(node)["devices"][0]
    assert device["storage"]["total"] == 8 * 1024
    assert subprocess.run(["blkid", "-p", str(image)], capture_output=True).returncode != 0
