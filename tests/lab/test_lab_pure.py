"""Pure parts of the lab: names, addresses, route clashes, dpkg status surgery, inventory."""

from __future__ import annotations

import pytest

from gfsdeploy_glusterfs.lab import aptrepo, host, inventory, nodes
from gfsdeploy_glusterfs.lab.host import LabError
from gfsdeploy_glusterfs.lab.lab import Lab, Node


@pytest.mark.parametrize("name,ok", [("gfslab", True), ("gt1a2b", True), ("a" * 12, True),
                                     ("a" * 13, False), ("Lab", False), ("1lab", False),
                                     ("la b", False), ("", False), ("la;b", False)])
def test_check_name(name, ok):
    if ok:
        assert host.check_name(name) == name
    else:
        with pytest.raises(LabError):
            host.check_name(name)


@pytest.mark.parametrize("base,expect", [("10.186", "10.186"), ("10.0186", "10.186"),
                                         ("10.256", None), ("10", None), ("10.1.2", None), ("a.b", None)])
def test_check_base(base, expect):
    if expect:
        assert host.check_base(base) == expect
    else:
        with pytest.raises(LabError):
            host.check_base(base)


@pytest.mark.parametrize("routes,clash", [
    ([{"dst": "default", "dev": "eth0"}], []),
    ([{"dst": "192.0.2.0/24", "dev": "eth0"}], []),
    ([{"dst": "10.186.0.0/16", "dev": "eth1"}], ["10.186.0.0/16 dev eth1"]),
    ([{"dst": "10.186.1.7", "dev": "tun0"}], ["10.186.1.7 dev tun0"]),
    ([{"dst": "10.186.2.0/24", "dev": "x"}], []),
    ([{"dst": "10.0.0.0/8", "dev": "vpn"}], ["10.0.0.0/8 dev vpn"]),
    ([{"dst": "fe80::/64", "dev": "eth0"}], []),
])
def test_route_conflicts(routes, clash):
    assert host.route_conflicts(routes, "10.186") == clash


def test_node_plan_addresses_and_interface_names():
    lab = Lab.__new__(Lab)
    lab.name, lab.base = "abcdefghijkl", "10.186"
    plan = lab.node_plan(50)
    assert [n.ip for n in plan[:3]] == ["10.186.0.10", "10.186.0.11", "10.186.0.12"]
    assert plan[-1].name == "k8s-50" and plan[-1].ip == "10.186.0.59"
    assert all(len(n.veth) <= 15 for n in plan) and len(lab.host_if) <= 15
    assert len({n.netns for n in plan}) == 50


STATUS = """\
Package: libc6
Status: install ok installed
Priority: required
Version: 2.36
Architecture: amd64

Package: glusterfs-common
Status: install ok installed
Version: 10.3-5
Architecture: amd64
Depends: libc6, python3:any

Package: glusterfs-client
Status: install ok installed
Version: 10.3-5
Architecture: amd64
Depends: libc6 (>= 2.34), glusterfs-common (>= 10.3-5)

Package: glusterfs-server
Status: install ok installed
Version: 10.3-5
Architecture: amd64
Depends: glusterfs-client (>= 10.3-5), glusterfs-common

Package: python3
Status: install ok installed
Version: 3.11
Architecture: amd64
Provides: python3:any

Package: tool-a
Status: install ok installed
Version: 1
Architecture: all
Depends: glusterfs-client | fallback-b

Package: fallback-b
Status: install ok installed
Version: 1
Architecture: all

Package: needs-common
Status: install ok installed
Version: 1
Architecture: all
Depends: glusterfs-common
"""


@pytest.mark.parametrize("targets,expect", [
    # the target, its reverse dependency (server); common stays because needs-common uses it;
    # tool-a stays because its alternative fallback-b is still there
    (["glusterfs-client"], {"glusterfs-client", "glusterfs-server"}),
    # with needs-common gone, common and python3 (only common needs it) become orphans
    (["glusterfs-client", "needs-common"], {"glusterfs-client", "glusterfs-server", "needs-common",
                                            "glusterfs-common", "python3"}),
    (["not-installed"], set()),
    (["fallback-b", "glusterfs-client"], {"fallback-b", "glusterfs-client", "glusterfs-server", "tool-a"}),
])
def test_removal_set(targets, expect):
    assert aptrepo.removal_set(aptrepo.parse_status(STATUS), targets) == expect


def test_filtered_status_drops_only_removed_paragraphs():
    out = aptrepo.filtered_status(STATUS, {"glusterfs-server", "tool-a"})
    names = [p.name for p in aptrepo.parse_status(out)]
    assert "glusterfs-server" not in names and "tool-a" not in names
    assert {"libc6", "glusterfs-client", "fallback-b"} <= set(names)


@pytest.mark.parametrize("value,groups", [
    ("a (>= 1) | b:any, c", [["a", "b"], ["c"]]),
    ("", []),
    ("x [amd64], y", [["x"], ["y"]]),
])
def test_dep_groups(value, groups):
    assert aptrepo.dep_groups(value) == groups


def test_packages_entry_has_location_and_hashes():
    entry = aptrepo.packages_entry("Package: x\nVersion: 1\n", "x_1_all.deb", b"abc")
    assert "Filename: ./x_1_all.deb\nSize: 3\n" in entry
    assert "SHA256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" in entry


def test_inventory_shape():
    ns = [Node("k8s-1", "10.186.0.10", "l-k8s-1", "vk8s-1", {"/dev/sdb": "/dev/loop3"}),
          Node("k8s-2", "10.186.0.11", "l-k8s-2", "vk8s-2", {"/dev/sdb": "/dev/loop4"})]
    inv = inventory.build_inventory(nodes=ns, key_path="/k", known_hosts_path="/kh",
                                    extra_vars={"lab_api_server": "http://10.186.0.1:6443"})
    a = inv["all"]
    assert a["vars"]["ansible_user"] == "root" and a["vars"]["ansible_ssh_private_key_file"] == "/k"
    assert a["vars"]["gfsdeploy_known_hosts"] == "/kh" and a["vars"]["kernel_modules_unloadable"] == "warn"
    assert a["hosts"]["k8s-2"] == {"ansible_host": "10.186.0.11", "storage_ip": "10.186.0.11",
                                   "devices": ["/dev/sdb"], "zone": 1}
    assert a["children"]["k8s_master"]["hosts"] == {"k8s-1": {}}
    assert set(a["children"]["gluster"]["hosts"]) == {"k8s-1", "k8s-2"}


def test_known_hosts_drops_comment():
    text = inventory.known_hosts_lines({"10.186.0.10": "ssh-ed25519 AAAAC3Nza root@k8s-1\n"})
    assert text == "10.186.0.10 ssh-ed25519 AAAAC3Nza\n"


def test_boot_script_gives_each_node_its_disk_and_hostname(tmp_path):
    s = nodes.boot_script(state=tmp_path, node="k8s-2", ip="10.186.0.11", loop_rdev=(7, 4),
                          kubectl=None, machine_id="ab")
    assert "mknod -m 660 sdb b 7 4" in s and "hostname k8s-2" in s
    assert "kubectl" not in s and "pivot_root" in s and "/usr/sbin/sshd -D" in s


def test_sshd_config_has_sftp_and_key_only_root():
    assert "Subsystem sftp /usr/lib/openssh/sftp-server" in nodes.SSHD_CONFIG
    assert "PermitRootLogin prohibit-password" in nodes.SSHD_CONFIG
    assert "PasswordAuthentication no" in nodes.SSHD_CONFIG


def test_preflight_names_missing_tool_and_package(monkeypatch):
    monkeypatch.setattr(host.os, "geteuid", lambda: 0)
    monkeypatch.setattr(host, "which", lambda t: None if t == "sshd" else "/bin/" + t)
    with pytest.raises(LabError) as e:
        host.preflight()
    assert "sshd (apt package openssh-server)" in str(e.value)
    assert "apt-get install -y openssh-server" in str(e.value)


def test_preflight_refuses_non_root(monkeypatch):
    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        host.preflight()


def test_cli_prints_error_without_traceback(monkeypatch, capsys):
    from gfsdeploy_glusterfs.lab.__main__ import main

    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)
    assert main(["up"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the local lab needs root") and "Traceback" not in err


def test_release_date_is_what_apt_parses():
    from email.utils import parsedate_to_datetime

    from gfsdeploy_glusterfs.lab.aptrepo import release_date

    assert release_date(0) == "Thu, 01 Jan 1970 00:00:00 UTC"
    assert parsedate_to_datetime(release_date(1796169051).replace("UTC", "GMT")).timestamp() == 1796169051


def test_release_file_has_a_date(tmp_path):
    import subprocess

    from gfsdeploy_glusterfs.lab import aptrepo

    deb = tmp_path / "pkg"
    (deb / "DEBIAN").mkdir(parents=True)
    (deb / "DEBIAN" / "control").write_text("Package: gfslab-test\nVersion: 1\nArchitecture: all\n"
                                            "Maintainer: lab <lab@example.invalid>\nDescription: test\n")
    subprocess.run(["dpkg-deb", "--build", str(deb), str(tmp_path / "gfslab-test_1_all.deb")], check=True,
                   capture_output=True)
    aptrepo.write_index(tmp_path, [tmp_path / "gfslab-test_1_all.deb"])
    fields = dict(line.split(": ", 1) for line in (tmp_path / "Release").read_text().splitlines() if ": " in line)
    assert fields["Date"].endswith(" UTC") and fields["Date"][:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
