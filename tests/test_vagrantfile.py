"""The Vagrantfile is valid Ruby and valid Vagrant configuration, and the lab
it defines (names, IPs, CPUs, memory, disks) is the one inventory/vagrant.yaml
describes. VMs cannot run here, so the Vagrantfile is evaluated by Ruby
against a recording stand-in for Vagrant's config (tests/data/vagrant/
vagrant_stub.rb) and, when Debian's `vagrant` is installed, by `vagrant
validate`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from gfsdeploy_glusterfs import vagrant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAGRANTFILE = os.path.join(ROOT, "Vagrantfile")
INVENTORY = os.path.join(ROOT, "inventory", "vagrant.yaml")
STUB = os.path.join(ROOT, "tests", "data", "vagrant", "vagrant_stub.rb")

needs_ruby = pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby not installed (apt-get install ruby)")
needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None,
                                   reason="vagrant not installed (apt-get install vagrant)")


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GFS_")}
    env.update(extra)
    return env


def evaluate(tmp_path, **env) -> dict:
    """What the Vagrantfile configures, per machine, for the given GFS_* env."""
    copy = tmp_path / "Vagrantfile"
    shutil.copy(VAGRANTFILE, copy)
    done = subprocess.run(["ruby", STUB, str(copy)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=_clean_env(**env))
    if done.returncode != 0:
        raise AssertionError(f"Vagrantfile evaluation failed: {done.stderr}")
    config = json.loads(done.stdout)["config"]["vm"]
    machines = {}
    for name, node in config["machines"].items():
        vm = node["vm"]
        vbox = vm["providers"]["virtualbox"]
        libvirt = vm["providers"]["libvirt"]
        machines[name] = {
            "hostname": vm["hostname"],
            "ips": [opts["ip"] for kind, opts in vm["networks"] if kind == "private_network"],
            "vbox": vbox, "libvirt": libvirt,
        }
    return {"box": config["box"], "synced_folder": config.get("synced_folder"), "machines": machines}


def _customize(vbox: dict, command: str) -> list:
    return [c for c in vbox.get("customize", []) if c[0] == command]


@pytest.fixture(scope="module")
def inventory() -> dict:
    with open(INVENTORY, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# -- syntax and Vagrant's own validation -------------------------------------------

@needs_ruby
def test_vagrantfile_is_valid_ruby():
    done = subprocess.run(["ruby", "-c", VAGRANTFILE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Syntax OK" in done.stdout


@needs_vagrant
def test_vagrant_validate(tmp_path):
    shutil.copy(VAGRANTFILE, tmp_path / "Vagrantfile")
    env = _clean_env(VAGRANT_HOME=str(tmp_path / "home"), VAGRANT_CHECKPOINT_DISABLE="1")
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout


@needs_vagrant
def test_vagrant_refuses_kubernetes_without_glusterfs_plugin(tmp_path):
    shutil.copy(VAGRANTFILE, tmp_path / "Vagrantfile")
    env = _clean_env(VAGRANT_HOME=str(tmp_path / "home"), VAGRANT_CHECKPOINT_DISABLE="1",
                     GFS_KUBERNETES_VERSION="1.26")
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode != 0
    assert "in-tree GlusterFS" in done.stdout + done.stderr


# -- what the Vagrantfile defines ---------------------------------------------------

@needs_ruby
def test_three_nodes_as_in_docs_procedure(tmp_path):
    lab = evaluate(tmp_path)
    assert list(lab["machines"]) == ["k8s-1", "k8s-2", "k8s-3"]
    for i, (name, m) in enumerate(lab["machines"].items()):
        assert m["hostname"] == name
        assert m["ips"] == [f"192.168.186.{10 + i}"]
        for provider in (m["vbox"], m["libvirt"]):
            assert provider["cpus"] == 2
            assert provider["memory"] == 2048
    assert lab["synced_folder"][-1] == {"disabled": True}


@needs_ruby
def test_virtualbox_second_disk_is_raw_10g_on_its_own_controller(tmp_path):
    lab = evaluate(tmp_path)
    for name, m in lab["machines"].items():
        vbox = m["vbox"]
        (create,) = _customize(vbox, "createmedium")
        (ctl,) = _customize(vbox, "storagectl")
        (attach,) = _customize(vbox, "storageattach")
        disk = create[create.index("--filename") + 1]
        assert disk == str(tmp_path / ".vagrant" / "disks" / f"{name}-storage.vdi")
        assert create[create.index("--size") + 1] == "10240"  # MB
        controller = ctl[ctl.index("--name") + 1]
        assert ctl[ctl.index("--add") + 1] == "sata"
        assert attach[attach.index("--storagectl") + 1] == controller
        assert attach[attach.index("--medium") + 1] == disk
        assert attach[attach.index("--type") + 1] == "hdd"
        assert ctl[1] == attach[1] == ":id"


@needs_ruby
def test_virtualbox_disk_is_created_only_once(tmp_path):
    """A second `vagrant up` must not try to add the controller again."""
    disks = tmp_path / ".vagrant" / "disks"
    disks.mkdir(parents=True)
    (disks / "k8s-2-storage.vdi").write_bytes(b"")
    lab = evaluate(tmp_path)
    assert _customize(lab["machines"]["k8s-2"]["vbox"], "storagectl") == []
    assert len(_customize(lab["machines"]["k8s-1"]["vbox"], "storagectl")) == 1


@needs_ruby
def test_libvirt_second_disk_is_raw_10g_virtio(tmp_path):
    lab = evaluate(tmp_path)
    for m in lab["machines"].values():
        assert m["libvirt"]["storage"] == [["file", {"size": "10G", "type": "raw", "bus": "virtio"}]]


@needs_ruby
def test_settings_follow_the_environment(tmp_path):
    lab = evaluate(tmp_path, GFS_NODE_COUNT="4", GFS_FIRST_IP="20", GFS_DISK_GB="20", GFS_BOX="generic/debian12")
    assert lab["box"] == "generic/debian12"
    assert [m["ips"][0] for m in lab["machines"].values()] == [f"192.168.186.{20 + i}" for i in range(4)]
    create = _customize(lab["machines"]["k8s-4"]["vbox"], "createmedium")[0]
    assert create[create.index("--size") + 1] == "20480"
    assert lab["machines"]["k8s-4"]["libvirt"]["storage"][0][1]["size"] == "20G"


@needs_ruby
@pytest.mark.parametrize("version, ok", [("1.25", True), ("1.24", True), ("1.26", False), ("1.30", False)])
def test_kubernetes_version_guard(tmp_path, version, ok):
    if ok:
        evaluate(tmp_path, GFS_KUBERNETES_VERSION=version)
    else:
        with pytest.raises(AssertionError, match="in-tree GlusterFS"):
            evaluate(tmp_path, GFS_KUBERNETES_VERSION=version)


# -- Vagrantfile <-> inventory/vagrant.yaml -----------------------------------------

def test_header_settings_parse():
    settings = vagrant.read_vagrantfile(VAGRANTFILE, env={})
    assert settings == {"BOX": "debian/bookworm64", "KUBERNETES_VERSION": "1.25", "NODE_COUNT": 3,
                        "NETWORK": "192.168.186", "FIRST_IP": 10, "CPUS": 2, "MEMORY_MB": 2048, "DISK_GB": 10}
    assert vagrant.read_vagrantfile(VAGRANTFILE, env={"GFS_NODE_COUNT": "5"})["NODE_COUNT"] == 5


def test_inventory_matches_vagrantfile(inventory):
    settings = vagrant.read_vagrantfile(VAGRANTFILE, env={})
    expected = vagrant.machines(settings)
    hosts = inventory["all"]["hosts"]
    assert list(hosts) == list(expected)
    for name, ip in expected.items():
        assert hosts[name]["ansible_host"] == ip
        assert hosts[name]["storage_ip"] == ip
        assert hosts[name]["devices"] == ["/dev/sdb"]  # the VirtualBox layout
        assert hosts[name]["zone"] == 1
        assert "/virtualbox/" in hosts[name]["ansible_ssh_private_key_file"]
        assert f"/machines/{name}/" in hosts[name]["ansible_ssh_private_key_file"]
    avars = inventory["all"]["vars"]
    assert avars["kubernetes_version"] == settings["KUBERNETES_VERSION"]
    assert avars["ansible_user"] == "vagrant"
    assert avars["ansible_become"] is True
    assert avars["vagrant_devices"] == {"virtualbox": ["/dev/sdb"], "libvirt": ["/dev/vdb"]}
    children = inventory["all"]["children"]
    assert list(children["k8s_master"]["hosts"]) == ["k8s-1"]
    assert list(children["gluster"]["hosts"]) == list(expected)
    assert list(children["k8s_node"]["hosts"]) == ["k8s-2", "k8s-3"]


@needs_ruby
def test_inventory_matches_evaluated_vagrantfile(tmp_path, inventory):
    """Same check against what Ruby actually computes, not the regex reading."""
    lab = evaluate(tmp_path)
    hosts = inventory["all"]["hosts"]
    assert list(hosts) == list(lab["machines"])
    for name, m in lab["machines"].items():
        assert m["ips"] == [hosts[name]["storage_ip"]]
    # one extra disk per VM, and the inventory names exactly one device per provider
    assert all(len(v) == 1 for v in inventory["all"]["vars"]["vagrant_devices"].values())
    # libvirt puts the box disk on virtio (vda), so the extra virtio disk is vdb
    assert inventory["all"]["vars"]["vagrant_devices"]["libvirt"] == ["/dev/vdb"]


def test_inventory_loads_with_gfsdeploy():
    inventory_mod = pytest.importorskip("gfsdeploy.inventory")
    inv = inventory_mod.load_inventory(INVENTORY)
    assert inv.groups["k8s_master"] == ["k8s-1"]
    assert inv.groups["gluster"] == ["k8s-1", "k8s-2", "k8s-3"]
    host = inv.hosts["k8s-3"]
    assert (host.address, host.port, host.user, host.become) == ("192.168.186.12", 22, "vagrant", True)
    assert os.path.normpath(host.key_file) == os.path.join(ROOT, ".vagrant", "machines", "k8s-3", "virtualbox",
                                                           "private_key")
