"""The lab for real: ssh, isolation, devices, packages, faults, clean teardown (root + tools)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import pytest

pytestmark = pytest.mark.lab


def ssh(lab, node, cmd, timeout=30):
    return subprocess.run(lab.ssh_argv(node) + [cmd], capture_output=True, text=True, timeout=timeout)


def test_ssh_reaches_every_node_with_strict_host_keys(lab):
    for n in lab.nodes:
        res = ssh(lab, n.name, "hostname")
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == n.name


def test_inventory_lists_nodes_with_known_host_keys(lab):
    import yaml

    inv = yaml.safe_load(lab.inventory_path.read_text())["all"]
    assert list(inv["hosts"]) == [n.name for n in lab.nodes]
    assert inv["children"]["k8s_master"]["hosts"] == {"k8s-1": {}}
    known = lab.known_hosts_path.read_text().splitlines()
    assert sorted(line.split()[0] for line in known) == sorted(n.ip for n in lab.nodes)


def test_file_written_on_one_node_is_absent_elsewhere(lab):
    marker = f"/etc/gfslab-test-{uuid.uuid4().hex}"
    assert ssh(lab, "k8s-1", f"echo hi > {marker}").returncode == 0
    assert lab.exec("k8s-1", ["cat", marker]).stdout == "hi\n"
    assert lab.exec("k8s-2", ["test", "-e", marker]).returncode == 1
    assert not os.path.exists(marker)


def test_iptables_chain_exists_only_on_its_node(lab):
    chain = "GT" + uuid.uuid4().hex[:8].upper()
    assert ssh(lab, "k8s-1", f"iptables -N {chain}").returncode == 0
    assert lab.exec("k8s-1", ["iptables", "-L", chain, "-n"]).returncode == 0
    assert lab.exec("k8s-2", ["iptables", "-L", chain, "-n"]).returncode != 0
    assert subprocess.run(["iptables", "-L", chain, "-n"], capture_output=True).returncode != 0


def test_each_node_has_its_own_sdb(lab):
    rdevs = set()
    for n in lab.nodes:
        out = lab.exec(n.name, ["stat", "-c", "%F %t:%T", "/dev/sdb"], check=True).stdout.split()
        assert out[:2] == ["block", "special"]
        st = os.stat(n.devices["/dev/sdb"])
        assert out[-1] == f"{os.major(st.st_rdev):x}:{os.minor(st.st_rdev):x}"
        rdevs.add(out[-1])
        # only its own disk is visible: no loop devices or host disks in the node's /dev
        assert not [d for d in lab.exec(n.name, ["ls", "/dev"]).stdout.split() if d.startswith(("loop", "vd"))]
    assert len(rdevs) == len(lab.nodes)
    # a write through one node's disk is seen on that disk only
    lab.exec("k8s-1", ["sh", "-c", "printf GFSLAB | dd of=/dev/sdb bs=512 seek=1 conv=notrunc 2>/dev/null"],
             check=True)
    head = lambda node: lab.exec(node, ["sh", "-c", "dd if=/dev/sdb bs=512 skip=1 count=1 2>/dev/null | head -c 6"]).stdout
    assert head("k8s-1") == "GFSLAB" and head("k8s-2") != "GFSLAB"


def test_apt_update_against_the_lab_repo_is_clean(lab):
    res = ssh(lab, "k8s-3", "apt-get update", timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert lab.bridge_ip in res.stdout
    assert "W:" not in res.stdout + res.stderr and "E:" not in res.stdout + res.stderr, res.stdout + res.stderr


def test_apt_installs_a_package_from_the_lab_repo_only_on_that_node(lab):
    pkg = "thin-provisioning-tools"
    assert lab.exec("k8s-2", ["dpkg", "-s", pkg]).returncode != 0
    assert lab.exec("k8s-2", ["sh", "-c", "command -v pdata_tools"]).returncode != 0
    res = ssh(lab, "k8s-2", f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {pkg}",
              timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert lab.bridge_ip in res.stdout  # fetched over HTTP from the lab repo
    assert "install ok installed" in lab.exec("k8s-2", ["dpkg", "-s", pkg]).stdout
    assert lab.exec("k8s-3", ["dpkg", "-s", pkg]).returncode != 0


def test_kubectl_on_master_points_at_simulated_api(lab):
    res = lab.exec("k8s-1", ["kubectl", "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"])
    assert res.returncode == 0, res.stderr
    assert res.stdout == lab.api_url
    assert lab.exec("k8s-2", ["test", "-e", "/usr/local/bin/kubectl"]).returncode == 1


def _connect(ip, timeout=2.0):
    try:
        socket.create_connection((ip, 22), timeout=timeout).close()
        return "ok"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as e:
        return f"error {e}"


def test_fault_helpers(lab):
    ip = lab.node("k8s-3").ip
    lab.stop_sshd("k8s-3")
    try:
        assert _connect(ip) == "refused"
    finally:
        lab.start_sshd("k8s-3")
    assert _connect(ip) == "ok"
    lab.cut_link("k8s-3")
    try:
        assert _connect(ip, 1.0) == "timeout"
    finally:
        lab.restore_link("k8s-3")
    deadline = time.monotonic() + 5
    while _connect(ip) != "ok" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ssh(lab, "k8s-3", "true").returncode == 0


def test_status_reports_nodes_and_sshd(lab):
    st = lab.status()
    assert st["up"] and [n["name"] for n in st["nodes"]] == [n.name for n in lab.nodes]
    assert all(n["ssh"] and n["sshd_pid"] for n in st["nodes"])
    assert any(s["name"] == "apt-repo" and s["pid"] for s in st["services"])


def _leftovers(lab_name: str, state_dir: str, host_if: str) -> list[str]:
    out = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += [line for line in netns.splitlines() if line.split()[0] == lab_name or line.startswith(lab_name + "-")]
    out += [line for line in open("/proc/self/mounts") if state_dir in line]
    if os.path.exists(f"/sys/class/net/{host_if}"):
        out.append(host_if)
    out += [line for line in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout.splitlines()
            if state_dir in line]
    out += [line for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
            if state_dir in line]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 50])
def test_up_then_down_leaves_nothing(tmp_path_factory, count):
    from conftest import make_lab

    t0 = time.monotonic()
    lab = make_lab(tmp_path_factory, count)
    took = time.monotonic() - t0
    try:
        assert len(lab.nodes) == count
        last = lab.nodes[-1]
        assert ssh(lab, last.name, "hostname").stdout.strip() == last.name
        print(f"lab of {count} nodes up in {took:.1f}s")  # timings: docs/LAB.md, not asserted
        # up again: says so, changes nothing
        assert lab.up(nodes=count) is False
    finally:
        name, state, host_if = lab.name, str(lab.state_dir), lab.host_if
        assert lab.down() is True
    assert _leftovers(name, state, host_if) == []
    assert lab.down() is False  # safe twice


def test_a_glusterfs_volume_on_a_node_without_the_client_fails_as_kubelet_does(lab):
    """The kubelet mounts a glusterfs volume with the node's own mount.glusterfs: a node that
    lacks glusterfs-client leaves the pod ContainerCreating with kubelet's FailedMount event."""
    node = "k8s-3"
    assert lab.exec(node, ["sh", "-c", "command -v mount.glusterfs"]).returncode != 0
    name = f"noclient-{uuid.uuid4().hex[:6]}"
    objects = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
         "subsets": [{"addresses": [{"ip": lab.node("k8s-1").ip}], "ports": [{"port": 1}]}]},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
         "spec": {"nodeName": node, "restartPolicy": "Never",
                  "containers": [{"name": "c", "image": "docker.io/library/busybox:1.36",
                                  "command": ["true"], "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                  "volumes": [{"name": "v", "glusterfs": {"endpoints": name, "path": "vol"}}]}}]}
    import json as _json
    res = lab.exec("k8s-1", ["kubectl", "apply", "-f", "-"], input=_json.dumps(objects))
    assert res.returncode == 0, res.stderr
    try:
        deadline, message = time.monotonic() + 60, ""
        while time.monotonic() < deadline and not message:
            events = lab.exec("k8s-1", ["kubectl", "get", "events", "-o", "json"]).stdout
            message = next((e["message"] for e in _json.loads(events or '{"items": []}')["items"]
                            if e.get("reason") == "FailedMount"
                            and e.get("involvedObject", {}).get("name") == name), "")
            time.sleep(1)
        assert "unknown filesystem type 'glusterfs'" in message, message
        assert "simulated" not in message   # the node's own mount said it
        phase = lab.exec("k8s-1", ["kubectl", "get", "pod", name, "-o", "jsonpath={.status.phase}"]).stdout
        assert phase == "Pending"
    finally:
        lab.exec("k8s-1", ["kubectl", "delete", "pod,endpoints", name, "--wait=false"])
