"""The heketi simulator on 127.0.0.1: auth, CRUD shapes, async queue, DB file, faults, and the
commands it runs in the glusterfs pods (here a recording double; tests/lab/ runs real glusterd)."""

import json
import time
import urllib.error
import urllib.request

import pytest

from gfsdeploy_glusterfs import jwt
from gfsdeploy_glusterfs.heketi_client import HeketiClient, HeketiError
from gfsdeploy_glusterfs.lab.simulators.heketi import HeketiSimulator

from fake_gluster import FakeGlusterPods

ADMIN, USER = "sim-admin-key", "sim-user-key"
CONFIG = {"use_auth": True, "jwt": {"admin": {"key": ADMIN}, "user": {"key": USER}},
          "glusterfs": {"executor": "kubernetes", "db": "/var/lib/heketi/heketi.db"}}


@pytest.fixture
def pods():
    return FakeGlusterPods()


@pytest.fixture
def sim(tmp_path, pods):
    s = HeketiSimulator(CONFIG, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path / "state"),
                        str(tmp_path / "faults.json"), op_delay=0.05, executor=pods).start()
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
    with pytest.raises(HeketiError) as info:   # heketi deletes only a failed device
        c.delete_device(device["id"])
    assert info.value.status == 400 and f"device: {device['id']} is not in failed state" in info.value.heketi_message
    for state in ("offline", "failed"):
        c.request("POST", f"/devices/{device['id']}/state", {"state": state})
    assert c.device(device["id"])["state"] == "failed"
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


def test_volume_create_makes_bricks_and_a_gluster_volume(sim, pods):
    c, cluster, _ = build(sim)
    volume = c.create_volume(2, "heketidbstorage", 3)
    assert len(volume["id"]) == 32 and volume["cluster"] == cluster
    assert len({b["node"] for b in volume["bricks"]}) == 3
    assert volume["durability"]["replicate"]["replica"] == 3
    assert volume["mount"]["glusterfs"]["device"].endswith(":heketidbstorage")
    # each brick made on its own node, then one `volume create` naming all three, and `start`
    for brick in volume["bricks"]:
        host = c.node(brick["node"])["hostnames"]["manage"][0]
        assert f"mkdir {brick['path']}" in pods.on(host)
    [(host, create)] = pods.matching("volume create")
    assert create.startswith("gluster --mode=script --timeout=600 volume create heketidbstorage replica 3 ")
    specs = create.split(" replica 3 ", 1)[1].split()
    assert sorted(spec.split(":")[0] for spec in specs) == ["10.186.0.10", "10.186.0.11", "10.186.0.12"]
    assert [c2 for h, c2 in pods.matching("volume start")] == [
        "gluster --mode=script --timeout=600 volume start heketidbstorage"]
    with pytest.raises(HeketiError) as info:
        c.create_volume(2, "heketidbstorage", 3)
    assert "already in use" in info.value.heketi_message
    assert [v for v in c.volumes()] == [volume["id"]]
    with pytest.raises(HeketiError) as info:
        c.delete_volume(volume["id"])
    assert info.value.status == 409  # heketi protects its DB volume
    other = c.create_volume(1, "pvc-1", 2)
    c.delete_volume(other["id"])
    assert [c2 for _, c2 in pods.matching("pvc-1") if "stop" in c2 or "delete" in c2] == [
        "gluster --mode=script --timeout=600 volume stop pvc-1 force",
        "gluster --mode=script --timeout=600 volume delete pvc-1"]
    assert c.volumes() == [volume["id"]]


def test_replica_above_3_is_refused_at_once(sim, pods):
    """heketi answers 400 "Invalid replica value" synchronously: no 202, no command runs."""
    c, _, _ = build(sim)
    before = len(pods.commands)
    status, headers, text = raw(sim, "POST", "/volumes", jwt.heketi_token("admin", ADMIN, "POST", "/volumes"),
                                {"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 4}}})
    assert (status, text.strip()) == (400, "Invalid replica value") and "Location" not in headers
    assert len(pods.commands) == before


def test_gluster_failure_is_heketis_error_and_leaves_nothing(sim, pods):
    c, _, _ = build(sim)
    pods.fail["volume start"] = "volume start: v1: failed: Commit failed on localhost."
    with pytest.raises(HeketiError) as info:
        c.create_volume(1, "v1", 3)
    assert info.value.status == 500 and "Commit failed on localhost" in info.value.heketi_message
    assert c.volumes() == []
    assert pods.matching("volume delete v1")   # cleaned up like heketi does
    assert all(d["storage"]["used"] == 0 for n in c.topology()["clusters"][0]["nodes"] for d in n["devices"])


def test_node_add_checks_glusterd_then_probes_from_a_member(sim, pods):
    c = client(sim)
    cluster = c.create_cluster()["id"]
    pods.down.add("k8s-1")
    with pytest.raises(HeketiError) as info:   # a first node must run glusterd itself
        c.add_node(cluster, "k8s-1", "10.186.0.10")
    assert info.value.status == 400 and info.value.heketi_message == "New Node doesn't have glusterd running"
    assert ("k8s-1", "systemctl status glusterd") in pods.commands
    pods.down.clear()
    c.add_node(cluster, "k8s-1", "10.186.0.10")
    c.add_node(cluster, "k8s-2", "10.186.0.11")
    assert ("k8s-1", "gluster --mode=script --timeout=600 peer probe 10.186.0.11") in pods.commands
    pods.down.add("k8s-1")
    pods.down.add("k8s-2")
    with pytest.raises(HeketiError) as info:   # later nodes: a member must answer (it runs the probe)
        c.add_node(cluster, "k8s-3", "10.186.0.12")
    assert info.value.status == 400 and "None of the nodes in cluster has glusterd running" in info.value.heketi_message
    pods.down.clear()
    pods.fail["peer probe 10.186.0.12"] = "peer probe: failed: Probe returned with Transport endpoint is not connected"
    with pytest.raises(HeketiError) as info:
        c.add_node(cluster, "k8s-3", "10.186.0.12")
    assert info.value.status == 500 and "Transport endpoint is not connected" in info.value.heketi_message
    assert len(c.cluster(cluster)["nodes"]) == 2   # the failed node is not kept
    pods.fail.clear()
    c.add_node(cluster, "k8s-3", "10.186.0.12")
    assert len(c.cluster(cluster)["nodes"]) == 3


def test_node_add_ends_once_every_member_sees_the_new_peer_connected(sim, pods):
    """glusterd's other members learn of a probed peer a moment after the probe: the node add
    ends only when each member's `pool list` shows it Connected (a volume create at once
    would fail "Host ... not connected")."""
    c = client(sim)
    cluster = c.create_cluster()["id"]
    c.add_node(cluster, "k8s-1", "10.186.0.10")
    c.add_node(cluster, "k8s-2", "10.186.0.11")
    late = {"n": 0}
    real_run = pods.run

    def run(host, command, timeout_minutes=10):
        out = real_run(host, command, timeout_minutes)
        if host == "k8s-2" and command.endswith(" pool list") and late["n"] < 3:
            late["n"] += 1
            return out.replace("10.186.0.12\tConnected", "10.186.0.12\tDisconnected")
        return out

    pods.run = run
    c.add_node(cluster, "k8s-3", "10.186.0.12")
    assert late["n"] == 3
    lists = [h for h, cmd in pods.commands if cmd.endswith(" pool list")]
    assert lists.count("k8s-2") == 4 and "k8s-1" in lists
    on_k8s_1 = pods.on("k8s-1")
    assert on_k8s_1.index("gluster --mode=script --timeout=600 peer probe 10.186.0.12") < \
        len(on_k8s_1) - 1 - on_k8s_1[::-1].index("gluster --mode=script --timeout=600 pool list")


def test_no_glusterfs_pod_on_the_node(sim, pods):
    c = client(sim)
    cluster = c.create_cluster()["id"]
    pods.missing.add("k8s-1")
    with pytest.raises(HeketiError) as info:
        c.add_node(cluster, "k8s-1", "10.186.0.10")
    assert info.value.heketi_message == "New Node doesn't have glusterd running"


def test_device_add_makes_a_filesystem_listed_in_heketis_fstab(sim, pods):
    c = client(sim)
    node = c.add_node(c.create_cluster()["id"], "k8s-1", "10.186.0.10")["id"]
    c.add_device(node, "/dev/sdb")
    device = c.node(node)["devices"][0]
    mount = f"/var/lib/heketi/mounts/vg_{device['id']}"
    on = pods.on("k8s-1")
    assert "mkfs.xfs -q -i size=512 -n size=8192 /dev/sdb" in on
    assert f"mount -o rw,inode64,noatime,nouuid /dev/sdb {mount}" in on
    assert any(f"/dev/sdb {mount} xfs" in cmd and ">> /var/lib/heketi/fstab" in cmd for cmd in on)
    assert device["storage"]["total"] == pods.size_kib


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
    again = HeketiSimulator(CONFIG, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path / "state"),
                            executor=FakeGlusterPods()).start()
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


def test_dirty_device(sim, pods):
    """A device with a filesystem signature fails like heketi's pvcreate, unless destroydata."""
    pods.signatures["k8s-1"] = "UUID=1f2e\nTYPE=ext4\n"
    c = client(sim)
    node = c.add_node(c.create_cluster()["id"], "k8s-1", "10.186.0.10")["id"]
    with pytest.raises(HeketiError) as info:
        c.add_device(node, "/dev/sdb")
    assert "ext4 signature detected on /dev/sdb" in info.value.heketi_message
    assert not pods.matching("mkfs")
    assert c.node(node)["devices"] == []
    pods.signatures.clear()   # what `wipefs --all` leaves
    c.add_device(node, "/dev/sdb", destroydata=True)
    on = pods.on("k8s-1")
    assert on.index("wipefs --all /dev/sdb") < on.index("mkfs.xfs -q -i size=512 -n size=8192 /dev/sdb")


def test_jwt_exp_is_compared_in_whole_seconds(sim):
    """heketi (jwt-go) compares `exp` with the current Unix time in whole seconds: a token whose
    exp is this very second is still valid; one a second older is not."""
    now = int(time.time())
    for exp, status in ((now + 1, 200), (now - 1, 401)):
        token = jwt.encode({"iss": "admin", "iat": now - 5, "exp": exp,
                            "qsh": jwt.qsh("GET", "/clusters")}, ADMIN)
        assert raw(sim, "GET", "/clusters", token)[0] == status, exp
    token = jwt.encode({"iss": "admin", "iat": now - 5, "exp": now, "qsh": jwt.qsh("GET", "/clusters")}, ADMIN)
    assert jwt.verify_heketi(token, {"admin": ADMIN}, "GET", "/clusters", now=now + 0.99)["exp"] == now
    with pytest.raises(jwt.JwtError, match="expired"):
        jwt.verify_heketi(token, {"admin": ADMIN}, "GET", "/clusters", now=now + 1.0)
