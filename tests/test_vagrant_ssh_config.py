"""`gfsdeploy inventory from-vagrant`: parsing recorded `vagrant ssh-config`
output for both providers, merging it with inventory/vagrant.yaml, and the
errors users see when Vagrant is missing or the lab is not up."""

from __future__ import annotations

import argparse
import os
import subprocess

import pytest
import yaml

from gfsdeploy_glusterfs import vagrant
from gfsdeploy.errors import GfsError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "vagrant")
BASE = os.path.join(ROOT, "inventory", "vagrant.yaml")


def recorded(name: str) -> str:
    with open(os.path.join(DATA, f"ssh-config-{name}.txt"), encoding="utf-8") as handle:
        return handle.read()


def base() -> dict:
    with open(BASE, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


SETTINGS = vagrant.read_vagrantfile(os.path.join(ROOT, "Vagrantfile"), env={})


# -- the parser ---------------------------------------------------------------------

@pytest.mark.parametrize("provider, addresses, ports", [
    ("virtualbox", ["127.0.0.1"] * 3, [2222, 2200, 2201]),
    ("libvirt", ["192.168.121.57", "192.168.121.203", "192.168.121.118"], [22, 22, 22]),
])
def test_parse_recorded_output(provider, addresses, ports):
    hosts = vagrant.parse_ssh_config(recorded(provider))
    assert [h.name for h in hosts] == ["k8s-1", "k8s-2", "k8s-3"]
    assert [h.hostname for h in hosts] == addresses
    assert [h.port for h in hosts] == ports
    assert {h.user for h in hosts} == {"vagrant"}
    for h in hosts:
        assert h.identity_files == [f"/home/alice/gfsdeploy/.vagrant/machines/{h.name}/{provider}/private_key"]
        assert h.options["StrictHostKeyChecking"] == "no"
        assert h.options["IdentitiesOnly"] == "yes"


def test_parse_quoted_paths_and_several_keys():
    (host,) = vagrant.parse_ssh_config(recorded("insecure-key"))
    assert host.identity_files == [
        "/home/alice smith/.vagrant.d/insecure_private_keys/vagrant.key.ed25519",
        "/home/alice smith/.vagrant.d/insecure_private_keys/vagrant.key.rsa",
    ]


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("Host a\n", [("a", "", 22, "")]),
    # keywords are case-insensitive, `Key=value` is allowed, blank lines and comments are skipped
    ("host a\n\n  HOSTNAME=10.0.0.5\n  # comment\n  user  root\n  port 2022\n", [("a", "10.0.0.5", 2022, "root")]),
    # a warning before the first block is not a host
    ("Vagrant warning: something\nHost b\n  HostName h\n", [("b", "h", 22, "")]),
    ("Host a\n  Port 1\nHost b\n  Port 2\n", [("a", "", 1, ""), ("b", "", 2, "")]),
])
def test_parse_table(text, expected):
    got = [(h.name, h.hostname, h.port, h.user) for h in vagrant.parse_ssh_config(text)]
    assert got == expected


@pytest.mark.parametrize("port", ["0", "70000", "ssh"])
def test_parse_rejects_bad_port(port):
    with pytest.raises(GfsError, match="not a port"):
        vagrant.parse_ssh_config(f"Host a\n  Port {port}\n")


# -- provider detection -------------------------------------------------------------

@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_detect_provider_from_key_path(provider, tmp_path):
    assert vagrant.detect_provider(vagrant.parse_ssh_config(recorded(provider)), str(tmp_path)) == provider


def test_detect_provider_from_state_dir(tmp_path):
    hosts = vagrant.parse_ssh_config(recorded("insecure-key"))
    assert vagrant.detect_provider(hosts, str(tmp_path)) is None
    state = tmp_path / ".vagrant" / "machines" / "k8s-1" / "libvirt"
    state.mkdir(parents=True)
    assert vagrant.detect_provider(hosts, str(tmp_path)) is None  # no `id`: never created
    (state / "id").write_text("0a1b")
    assert vagrant.detect_provider(hosts, str(tmp_path)) == "libvirt"
    other = tmp_path / ".vagrant" / "machines" / "k8s-1" / "virtualbox"
    other.mkdir()
    (other / "id").write_text("uuid")
    assert vagrant.detect_provider(hosts, str(tmp_path)) is None  # ambiguous: ask


# -- merging with inventory/vagrant.yaml --------------------------------------------

@pytest.mark.parametrize("provider, device", [("virtualbox", "/dev/sdb"), ("libvirt", "/dev/vdb")])
def test_build_inventory(provider, device):
    hosts = vagrant.parse_ssh_config(recorded(provider))
    inv = vagrant.build_inventory(hosts, base(), SETTINGS, provider, base_dir=os.path.join(ROOT, "inventory"))
    out = inv["all"]["hosts"]
    assert list(out) == ["k8s-1", "k8s-2", "k8s-3"]
    for h in hosts:
        entry = out[h.name]
        assert entry["ansible_host"] == h.hostname
        assert entry["ansible_port"] == h.port
        assert entry["ansible_user"] == "vagrant"
        assert entry["ansible_ssh_private_key_file"] == h.identity_files[0]
        assert entry["devices"] == [device]
        assert entry["zone"] == 1
    assert [out[n]["storage_ip"] for n in out] == ["192.168.186.10", "192.168.186.11", "192.168.186.12"]
    avars = inv["all"]["vars"]
    assert avars["vagrant_provider"] == provider
    assert avars["kubernetes_version"] == "1.25"
    assert avars["ansible_become"] is True
    assert "ansible_port" not in avars  # per host now
    assert avars["gfsdeploy_known_hosts"] == os.path.join(ROOT, ".vagrant", "gfsdeploy_known_hosts")
    assert list(inv["all"]["children"]["k8s_master"]["hosts"]) == ["k8s-1"]
    assert list(inv["all"]["children"]["gluster"]["hosts"]) == ["k8s-1", "k8s-2", "k8s-3"]


def test_build_inventory_extra_and_missing_machines():
    """GFS_NODE_COUNT=4 adds k8s-4 (IP from the Vagrantfile's scheme); a lab
    of two drops k8s-3 from hosts and groups."""
    four = vagrant.parse_ssh_config(recorded("libvirt") + "Host k8s-4\n  HostName 192.168.121.9\n  Port 22\n")
    settings = {**SETTINGS, "NODE_COUNT": 4}
    inv = vagrant.build_inventory(four, base(), settings, "libvirt")
    assert inv["all"]["hosts"]["k8s-4"]["storage_ip"] == "192.168.186.13"
    assert "k8s-4" in inv["all"]["children"]["gluster"]["hosts"]
    assert "k8s-4" in inv["all"]["children"]["k8s_node"]["hosts"]
    assert "k8s-4" not in inv["all"]["children"]["k8s_master"]["hosts"]

    two = vagrant.parse_ssh_config(recorded("virtualbox"))[:2]
    inv = vagrant.build_inventory(two, base(), SETTINGS, "virtualbox")
    assert list(inv["all"]["hosts"]) == ["k8s-1", "k8s-2"]
    assert list(inv["all"]["children"]["gluster"]["hosts"]) == ["k8s-1", "k8s-2"]
    assert list(inv["all"]["children"]["k8s_node"]["hosts"]) == ["k8s-2"]


def test_build_inventory_without_base_uses_vagrantfile():
    hosts = vagrant.parse_ssh_config(recorded("libvirt"))
    inv = vagrant.build_inventory(hosts, None, SETTINGS, "libvirt")
    assert inv["all"]["hosts"]["k8s-2"]["storage_ip"] == "192.168.186.11"
    assert inv["all"]["hosts"]["k8s-2"]["devices"] == ["/dev/vdb"]
    assert list(inv["all"]["children"]["k8s_master"]["hosts"]) == ["k8s-1"]
    assert list(inv["all"]["children"]["gluster"]["hosts"]) == ["k8s-1", "k8s-2", "k8s-3"]


def test_build_inventory_unknown_machine_name():
    hosts = vagrant.parse_ssh_config("Host storage-a\n  HostName 10.1.1.1\n")
    with pytest.raises(GfsError, match="storage-a"):
        vagrant.build_inventory(hosts, base(), SETTINGS, "libvirt")


def test_build_inventory_provider_without_devices():
    b = base()
    b["all"]["vars"]["vagrant_devices"] = {"virtualbox": ["/dev/sdb"]}
    with pytest.raises(GfsError, match="libvirt") as err:
        vagrant.build_inventory(vagrant.parse_ssh_config(recorded("libvirt")), b, SETTINGS, "libvirt")
    assert "vagrant_devices" in str(err.value)


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_generated_inventory_loads_with_gfsdeploy(provider, tmp_path):
    inventory_mod = pytest.importorskip("gfsdeploy.inventory")
    from gfsdeploy_glusterfs import inventory_checks
    hosts = vagrant.parse_ssh_config(recorded(provider))
    text = vagrant.dump(vagrant.build_inventory(hosts, base(), SETTINGS, provider))
    assert text.startswith("# Generated by `gfsdeploy inventory from-vagrant`")
    path = tmp_path / "vagrant-local.yaml"
    path.write_text(text)
    inv = inventory_mod.load_inventory(str(path))
    assert inv.groups["k8s_master"] == ["k8s-1"]
    assert inv.groups["gluster"] == ["k8s-1", "k8s-2", "k8s-3"]
    assert [inv.hosts[h].port for h in inv.groups["gluster"]] == [h.port for h in hosts]
    assert inventory_checks.device_list(inv.hosts["k8s-1"].vars)[0]["name"] == \
        {"virtualbox": "/dev/sdb", "libvirt": "/dev/vdb"}[provider]


# -- running vagrant ------------------------------------------------------------------

class FakeRun:
    """Stands in for subprocess.run; records the call."""

    def __init__(self, rc=0, stdout="", stderr=""):
        self.result = subprocess.CompletedProcess([], rc, stdout, stderr)
        self.calls = []

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        return self.result


@pytest.fixture
def lab_dir(tmp_path, monkeypatch):
    """A directory with the lab's Vagrantfile and inventory, and a `vagrant` on PATH."""
    (tmp_path / "inventory").mkdir()
    (tmp_path / "Vagrantfile").write_text(open(os.path.join(ROOT, "Vagrantfile"), encoding="utf-8").read())
    (tmp_path / "inventory" / "vagrant.yaml").write_text(open(BASE, encoding="utf-8").read())
    monkeypatch.setattr(vagrant.shutil, "which", lambda name: "/usr/bin/vagrant" if name == "vagrant" else None)
    return tmp_path


@pytest.mark.parametrize("provider", ["virtualbox", "libvirt"])
def test_from_vagrant(lab_dir, provider):
    run = FakeRun(stdout=recorded(provider))
    inv = vagrant.from_vagrant(str(lab_dir), run=run, env={})
    argv, kwargs = run.calls[0]
    assert argv == ["/usr/bin/vagrant", "ssh-config"]
    assert kwargs["cwd"] == str(lab_dir)
    assert inv["all"]["vars"]["vagrant_provider"] == provider
    assert inv["all"]["hosts"]["k8s-3"]["devices"] == [{"virtualbox": "/dev/sdb", "libvirt": "/dev/vdb"}[provider]]
    assert inv["all"]["vars"]["gfsdeploy_known_hosts"] == str(lab_dir / ".vagrant" / "gfsdeploy_known_hosts")


def test_from_vagrant_provider_option_wins(lab_dir):
    inv = vagrant.from_vagrant(str(lab_dir), "libvirt", run=FakeRun(stdout=recorded("insecure-key")), env={})
    assert inv["all"]["hosts"]["k8s-1"]["devices"] == ["/dev/vdb"]


def test_from_vagrant_cannot_tell_provider(lab_dir):
    with pytest.raises(GfsError, match="provider") as err:
        vagrant.from_vagrant(str(lab_dir), run=FakeRun(stdout=recorded("insecure-key")), env={})
    assert "--provider" in err.value.fix


def test_from_vagrant_without_vagrant(lab_dir, monkeypatch):
    monkeypatch.setattr(vagrant.shutil, "which", lambda name: None)
    with pytest.raises(GfsError, match="not installed") as err:
        vagrant.from_vagrant(str(lab_dir), run=FakeRun(), env={})
    assert "vagrant up" in err.value.fix


def test_from_vagrant_machines_not_up(lab_dir):
    stderr = ("The provider for this Vagrant-managed machine is reporting that it\n"
              "is not yet ready for SSH. Depending on your provider this can carry\n")
    with pytest.raises(GfsError, match="not yet ready for SSH") as err:
        vagrant.from_vagrant(str(lab_dir), run=FakeRun(rc=1, stderr=stderr), env={})
    assert "vagrant up" in err.value.fix


def test_from_vagrant_no_machines(lab_dir):
    with pytest.raises(GfsError, match="no machines"):
        vagrant.from_vagrant(str(lab_dir), run=FakeRun(stdout="\n"), env={})


def test_from_vagrant_no_vagrantfile(tmp_path):
    with pytest.raises(GfsError, match="no Vagrantfile") as err:
        vagrant.from_vagrant(str(tmp_path), run=FakeRun(), env={})
    assert "--dir" in err.value.fix


def test_from_vagrant_command_failure(lab_dir):
    def boom(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, 300)

    with pytest.raises(GfsError, match="vagrant ssh-config"):
        vagrant.from_vagrant(str(lab_dir), run=boom, env={})


# -- the command line -----------------------------------------------------------------

def _parser(existing_inventory=False):
    parser = argparse.ArgumentParser(prog="gfsdeploy")
    sub = parser.add_subparsers(dest="command")
    if existing_inventory:
        inv = sub.add_parser("inventory")
        inv.add_subparsers(dest="inventory_command").add_parser("show")
    vagrant.register(sub)
    return parser


@pytest.mark.parametrize("existing", [False, True])
def test_register_adds_from_vagrant(existing):
    args = _parser(existing).parse_args(["inventory", "from-vagrant", "--dir", "/lab", "--provider", "libvirt"])
    assert (args.dir, args.provider, args.func) == ("/lab", "libvirt", vagrant._from_vagrant_command)
    args = _parser(existing).parse_args(["inventory", "from-vagrant"])
    assert (args.dir, args.provider, args.base, args.out) == (".", None, None, None)
    with pytest.raises(SystemExit):
        _parser(existing).parse_args(["inventory", "from-vagrant", "--provider", "vmware"])


def test_command_prints_yaml(lab_dir, monkeypatch, capsys):
    monkeypatch.setattr(vagrant.subprocess, "run", FakeRun(stdout=recorded("virtualbox")))
    monkeypatch.delenv("GFS_NODE_COUNT", raising=False)
    args = _parser().parse_args(["inventory", "from-vagrant", "--dir", str(lab_dir)])
    assert args.func(args) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["all"]["hosts"]["k8s-1"]["ansible_port"] == 2222
    assert printed["all"]["children"]["k8s_master"]["hosts"] == {"k8s-1": None}


def test_command_writes_file(lab_dir, monkeypatch, capsys):
    monkeypatch.setattr(vagrant.subprocess, "run", FakeRun(stdout=recorded("libvirt")))
    out = lab_dir / "inventory" / "vagrant-local.yaml"
    args = _parser().parse_args(["inventory", "from-vagrant", "--dir", str(lab_dir), "-o", str(out)])
    assert args.func(args) == 0
    assert "wrote" in capsys.readouterr().err
    assert yaml.safe_load(out.read_text())["all"]["hosts"]["k8s-2"]["ansible_host"] == "192.168.121.203"
