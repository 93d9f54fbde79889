"""heketi modules applied against the heketi simulator through LocalTransport."""

import base64
import json

import pytest

from gfsdeploy.modules import get
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy_glusterfs.modules.heketi import HeketiState, HeketiModule
from gfsdeploy_glusterfs.lab.simulators.heketi import HeketiSimulator
from gfsdeploy.transport.local import LocalTransport
from tests.simulators.fake_gluster import FakeGlusterPods

KEY = "apply-admin-key-5150"
CONFIG = {"use_auth": True, "jwt": {"admin": {"key": KEY}, "user": {"key": "apply-user-key"}}}
INVENTORY = [{"manage": f"k8s-{i}", "storage": f"10.186.0.{9 + i}", "zone": 1, "devices": ["/dev/sdb"]}
             for i in (1, 2, 3)]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(HeketiModule, "poll_interval", 0.02)
    monkeypatch.setattr(HeketiModule, "retry_delay", 0.01)


@pytest.fixture
def sim(tmp_path):
    s = HeketiSimulator(CONFIG, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path / "state"),
                        str(tmp_path / "faults.json"), op_delay=0.03, executor=FakeGlusterPods()).start()
    yield s
    s.stop()


def ctx(check_mode=False, messages=None):
    return TaskContext(HostInfo("k8s-1"), LocalTransport("k8s-1"), task_name="heketi",
                       progress=(messages.append if messages is not None else None), check_mode=check_mode)


def run(name, args, context):
    module = get(name)
    args = module.validate(args)
    state = module.read(args, {}, context)
    changes = module.plan(args, state, context.host)
    real = [c for c in changes if c.action != "!"]
    result = module.apply(args, changes, context) if (real or module.read_only) and not (
        context.check_mode and not module.read_only) else None
    return changes, result


def writes(sim):
    return [r for r in sim.requests if r[0] in ("POST", "DELETE")]


def topo_args(sim, **extra):
    return {"url": sim.url, "key": KEY, "topology": INVENTORY, **extra}


def test_plan_mode_unreachable_plans_everything():
    args = {"url": "http://127.0.0.1:9", "key": KEY, "topology": INVENTORY}
    changes, result = run("heketi_topology", args, ctx(check_mode=True))
    assert result is None
    assert [c.resource for c in changes] == ["heketi cluster"] + [
        r for i in (1, 2, 3) for r in (f"heketi node k8s-{i}", f"heketi device k8s-{i}:/dev/sdb")]
    assert all("(known after apply)" in c.diff for c in changes)


def test_topology_apply_then_nothing(sim):
    messages = []
    changes, result = run("heketi_topology", topo_args(sim), ctx(messages=messages))
    assert len(changes) == 7 and result.changed and not result.failed
    assert any("adding device /dev/sdb on k8s-3" in m for m in messages)
    assert set(result.data["nodes"]) == {"k8s-1", "k8s-2", "k8s-3"}
    before = len(writes(sim))
    changes, result = run("heketi_topology", topo_args(sim), ctx())
    assert changes == [] and result is None and len(writes(sim)) == before


def test_device_failure_reported_after_the_others_then_resume(sim, tmp_path):
    (tmp_path / "faults.json").write_text(json.dumps({"device_add_fails": {"k8s-2": "/dev/sdb"}}))
    changes, result = run("heketi_topology", topo_args(sim), ctx())
    assert result.failed and result.changed
    assert "node k8s-2, device /dev/sdb" in result.msg and "excluded by a filter" in result.msg
    assert "wipefs --all /dev/sdb" in result.msg
    assert KEY not in result.msg
    # the others were attempted and added
    db = json.loads(open(sim.db_path).read())
    names = sorted((db["nodes"][d["node"]]["hostnames"]["manage"][0], d["name"]) for d in db["devices"].values())
    assert names == [("k8s-1", "/dev/sdb"), ("k8s-3", "/dev/sdb")]
    # fixed: only the missing device is added, nothing duplicated
    (tmp_path / "faults.json").write_text("{}")
    before = len(writes(sim))
    changes, result = run("heketi_topology", topo_args(sim), ctx())
    assert [c.resource for c in changes] == ["heketi device k8s-2:/dev/sdb"]
    assert not result.failed and len(writes(sim)) == before + 1
    assert len(json.loads(open(sim.db_path).read())["clusters"]) == 1


def test_volume_ensured_never_duplicated(sim):
    run("heketi_topology", topo_args(sim), ctx())
    args = {"url": sim.url, "key": KEY, "name": "heketidbstorage", "size": 2, "replica": 3}
    changes, result = run("heketi_volume", args, ctx())
    assert [f"{c.action} {c.resource}" for c in changes] == ["+ heketi volume heketidbstorage (2 GiB, replicate 3)"]
    assert result.changed and result.data["volume"]["name"] == "heketidbstorage"
    assert len(result.data["volume"]["hosts"]) == 3
    changes, result = run("heketi_volume", args, ctx())
    assert changes == [] and result is None
    # a stale plan (made before the volume existed) still does not create a second one
    module = get("heketi_volume")
    stale = module.plan(module.validate(args), HeketiState(reachable=True, volumes=[]), HostInfo("k8s-1"))
    result = module.apply(module.validate(args), stale, ctx())
    assert not result.changed
    db = json.loads(open(sim.db_path).read())
    assert [v["name"] for v in db["volumes"].values()] == ["heketidbstorage"]


def test_volume_no_space_is_clear(sim):
    small = [dict(n) for n in INVENTORY[:2]]
    run("heketi_topology", {"url": sim.url, "key": KEY, "topology": small}, ctx())
    args = {"url": sim.url, "key": KEY, "name": "heketidbstorage"}
    with pytest.raises(Exception) as info:
        run("heketi_volume", args, ctx())
    assert "No space" in str(info.value) and "fewer than 3 nodes" in str(info.value)


def test_backup_registers_db_base64(sim):
    run("heketi_topology", topo_args(sim), ctx())
    _, result = run("heketi_backup", {"url": sim.url, "key": KEY}, ctx())
    blob = base64.b64decode(result.as_register()["db_base64"])
    assert blob == open(sim.db_path, "rb").read() and result.data["size"] == len(blob)


def test_backup_plan_mode_unreachable_is_unknown():
    from gfsdeploy.templating import is_unknown

    _, result = run("heketi_backup", {"url": "http://127.0.0.1:9", "key": KEY}, ctx(check_mode=True))
    assert is_unknown(result.data["db_base64"])


def test_verify_after_skipped_migration_fails_clearly(sim, tmp_path):
    empty = HeketiSimulator(CONFIG, str(tmp_path / "empty.db"), ("127.0.0.1", 0), str(tmp_path / "s2"),
                            executor=FakeGlusterPods()).start()
    try:
        args = {"url": empty.url, "key": KEY, "topology": INVENTORY}
        _, result = run("heketi_verify", args, ctx())
        assert result.failed and "heketi has no cluster — was the DB migration skipped?" in result.msg
        _, result = run("heketi_verify", args, ctx(check_mode=True))
        assert not result.failed
    finally:
        empty.stop()


def test_verify_passes_on_complete_heketi(sim):
    run("heketi_topology", topo_args(sim), ctx())
    _, result = run("heketi_verify", topo_args(sim), ctx())
    assert result.failed and "volume heketidbstorage is not in heketi" in result.msg
    run("heketi_volume", {"url": sim.url, "key": KEY, "name": "heketidbstorage"}, ctx())
    _, result = run("heketi_verify", topo_args(sim), ctx())
    assert not result.failed and not result.changed


def test_wrong_key_is_a_clear_error(sim):
    with pytest.raises(Exception) as info:
        run("heketi_topology", {**topo_args(sim), "key": "not-the-right-key"}, ctx())
    text = str(info.value)
    assert "401" in text and "not-the-right-key" not in text and "heketi admin key" in text


class TunnelTransport(LocalTransport):
    """Maps heketi's in-cluster address to the simulator, as the SSH tunnel would."""

    def __init__(self, target):
        super().__init__("k8s-1")
        self.target = target
        self.forwards = []

    def forward(self, remote_host, remote_port):
        self.forwards.append((remote_host, remote_port))
        return self.target


def test_requests_go_through_one_tunnel(sim):
    transport = TunnelTransport(sim.address)
    context = TaskContext(HostInfo("k8s-1"), transport, task_name="heketi")
    args = {"url": "http://10.96.0.20:8080", "key": KEY, "topology": INVENTORY}
    changes, result = run("heketi_topology", args, context)
    assert result.changed and len(changes) == 7
    run("heketi_volume", {"url": "http://10.96.0.20:8080", "key": KEY, "name": "heketidbstorage"}, context)
    assert transport.forwards == [("10.96.0.20", 8080)]
