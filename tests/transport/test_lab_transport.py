"""How gfsdeploy reaches real hosts, against a 2-node lab (real OpenSSH, real sudo/su):
sudo with a password for a non-root user under `Defaults requiretty`, the errors
for a wrong or missing password and a user outside sudoers, su, a ProxyJump
through k8s-1 to a k8s-2 the controller cannot reach directly, a node whose sshd
forbids TCP forwarding, and scripts whose controller is SIGKILLed. Results are
checked inside the nodes (nsenter), not through gfsdeploy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY_PW = "Dpl0y-pw-7c41e9"
ROOT_PW = "R00t-pw-55aa31"
NOSUDO_PW = "N0sudo-pw-0b8f"

USERS = f"""
set -e
for u in deploy nosudo; do
  id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
  mkdir -p /home/$u/.ssh && cp /root/.ssh/authorized_keys /home/$u/.ssh/ && chown -R $u: /home/$u/.ssh
done
printf '%s\\n' 'deploy:{DEPLOY_PW}' 'nosudo:{NOSUDO_PW}' 'root:{ROOT_PW}' | chpasswd
printf '%s\\n' 'deploy ALL=(ALL:ALL) ALL' 'Defaults:deploy requiretty' > /etc/sudoers.d/gfs-test
chmod 440 /etc/sudoers.d/gfs-test
visudo -c >/dev/null
"""


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    from conftest import make_lab

    lab = make_lab(tmp_path_factory, 2)
    try:
        for node in ("k8s-1", "k8s-2"):
            lab.exec(node, ["sh", "-c", USERS], check=True)
        yield lab
    finally:
        lab.down()


def gfs(*args, timeout=180, **kwargs):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL,
                          **kwargs)


def inventory(lab, path, hosts: dict, **common) -> str:
    lines = ["all:", "  vars:", f"    ansible_ssh_private_key_file: {lab.key_path}",
             f"    gfsdeploy_known_hosts: {lab.known_hosts_path}",
             f"    gfsdeploy_lock_dir: /tmp/gfs-lock-{os.getpid()}"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in common.items()]
    lines.append("  hosts:")
    for name, hv in hosts.items():
        hv = {"ansible_host": lab.node(name.split("+")[0]).ip, **hv}
        lines.append(f"    {name.split('+')[-1] if '+' in name else name}: {json.dumps(hv)}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def playbook(path, text) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def node(lab, name, *argv):
    return lab.exec(name, list(argv))


# -- sudo with a password, requiretty ------------------------------------------------------
def test_sudo_password_for_a_non_root_user_under_requiretty(lab2, tmp_path):
    # requiretty is really in force for deploy: sudo without a terminal is refused
    direct = subprocess.run([*lab2.ssh_argv("k8s-1")[:-1], f"deploy@{lab2.node('k8s-1').ip}",
                             "echo x | sudo -S -p '' true"], capture_output=True, text=True, timeout=30)
    assert direct.returncode != 0 and "tty" in direct.stderr
    inv = inventory(lab2, tmp_path / "inv.yaml", {"k8s-1": {"ansible_user": "deploy",
                                                            "ansible_become_password": DEPLOY_PW}})
    pb = playbook(tmp_path / "pb.yaml", """\
        - hosts: all
          become: true
          tasks:
            - name: a file only root may write
              copy: {dest: /root/gfs-become, content: "as root\\n", mode: "0600"}
            - name: who runs an unescalated task
              command: id -un
              become: false
              check_mode: false
              changed_when: false
              register: who
            - name: stderr stays stderr through the pty
              shell: echo to-out; echo to-err >&2
              register: streams
            - name: show
              debug: {msg: "{{ who.stdout }} / {{ streams.stdout }} / {{ streams.stderr }}"}
        """)
    applied = gfs("apply", inv, "-p", pb, "-v")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "deploy / to-out / to-err" in applied.stdout
    stat = node(lab2, "k8s-1", "stat", "-c", "%U %a", "/root/gfs-become")
    assert stat.stdout.split() == ["root", "600"]
    assert node(lab2, "k8s-1", "cat", "/root/gfs-become").stdout == "as root\n"
    again = gfs("plan", inv, "-p", pb, "--json")
    assert again.returncode in (0, 2), again.stdout + again.stderr
    for text in (applied.stdout, applied.stderr, again.stdout, again.stderr):
        assert DEPLOY_PW not in text


def test_wrong_missing_and_refused_become_are_clear(lab2, tmp_path):
    pb = playbook(tmp_path / "pb.yaml", """\
        - hosts: all
          become: true
          tasks:
            - name: needs root
              copy: {dest: /root/never, content: "x\\n"}
        """)
    wrong = gfs("plan", inventory(lab2, tmp_path / "w.yaml", {"k8s-1": {
        "ansible_user": "deploy", "ansible_become_password": "not-the-password"}}), "-p", pb)
    assert wrong.returncode == 1
    assert "rejected the become password" in wrong.stderr and "k8s-1" in wrong.stderr
    assert "deploy's password" in wrong.stderr and "not-the-password" not in wrong.stdout + wrong.stderr
    missing = gfs("plan", inventory(lab2, tmp_path / "m.yaml", {"k8s-1": {"ansible_user": "deploy"}}), "-p", pb)
    assert missing.returncode == 1
    assert "needs a password" in missing.stderr and "ansible_become_password" in missing.stderr
    assert "--ask-become-pass" in missing.stderr
    refused = gfs("plan", inventory(lab2, tmp_path / "r.yaml", {"k8s-1": {
        "ansible_user": "nosudo", "ansible_become_password": NOSUDO_PW}}), "-p", pb)
    assert refused.returncode == 1
    assert "may not use sudo" in refused.stderr and "sudoers" in refused.stderr
    assert NOSUDO_PW not in refused.stdout + refused.stderr
    # the password from a file (what -K asks for on a terminal)
    pwfile = tmp_path / "pw"
    pwfile.write_text(DEPLOY_PW + "\n")
    filed = gfs("plan", inventory(lab2, tmp_path / "f.yaml", {"k8s-1": {"ansible_user": "deploy"}}), "-p", pb,
                "--become-password-file", str(pwfile))
    assert filed.returncode == 2, filed.stdout + filed.stderr
    assert not node(lab2, "k8s-1", "test", "-e", "/root/never").returncode == 0


def test_su_with_the_root_password(lab2, tmp_path):
    inv = inventory(lab2, tmp_path / "inv.yaml", {"k8s-1": {
        "ansible_user": "nosudo", "ansible_become": True, "ansible_become_method": "su",
        "ansible_become_password": ROOT_PW}})
    pb = playbook(tmp_path / "pb.yaml", """\
        - hosts: all
          tasks:
            - name: written through su
              copy: {dest: /root/gfs-su, content: "via su\\n"}
        """)
    applied = gfs("apply", inv, "-p", pb)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert node(lab2, "k8s-1", "stat", "-c", "%U", "/root/gfs-su").stdout.strip() == "root"
    assert ROOT_PW not in applied.stdout + applied.stderr


# -- ProxyJump -------------------------------------------------------------------------------
def test_proxyjump_through_k8s_1_to_an_unreachable_k8s_2(lab2, tmp_path):
    k1, k2 = lab2.node("k8s-1").ip, lab2.node("k8s-2").ip
    block = ["iptables", "-I", "INPUT", "-p", "tcp", "--dport", "22", "-s", lab2.host_ip, "-j", "REJECT",
             "--reject-with", "tcp-reset"]
    node(lab2, "k8s-2", *block)
    try:
        pb = playbook(tmp_path / "pb.yaml", """\
            - hosts: all
              tasks:
                - name: where the connection came from
                  shell: echo "$SSH_CONNECTION" > /tmp/gfs-conn
            """)
        direct = gfs("plan", inventory(lab2, tmp_path / "d.yaml", {"k8s-2": {"ansible_user": "root"}}), "-p", pb)
        assert direct.returncode == 1 and "cannot connect" in direct.stderr
        inv = inventory(lab2, tmp_path / "j.yaml", {"k8s-2": {
            "ansible_user": "root", "ansible_ssh_common_args": f"-o ProxyJump=root@{k1}"}})
        applied = gfs("apply", inv, "-p", pb)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        conn = node(lab2, "k8s-2", "cat", "/tmp/gfs-conn").stdout.split()
        assert conn[0] == k1 and conn[2] == k2  # k8s-2 saw k8s-1 as the client
        # the jump host's key is checked like any host's: with an empty known_hosts it is refused
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        strict = gfs("plan", inv, "-p", pb, "--known-hosts", str(empty))
        assert strict.returncode == 1 and "unknown SSH host key for jump host" in strict.stderr
        # a jump host whose sshd forbids forwarding: the error names it and the fix
        set_forwarding(lab2, "k8s-1", False)
        try:
            refused = gfs("plan", inv, "-p", pb)
        finally:
            set_forwarding(lab2, "k8s-1", True)
        assert refused.returncode == 1
        assert f"{k1} refuses to forward TCP" in refused.stderr and "AllowTcpForwarding" in refused.stderr
    finally:
        node(lab2, "k8s-2", *["-D" if a == "-I" else a for a in block])


def set_forwarding(lab, name: str, allowed: bool) -> None:
    script = ("sed -i '/^AllowTcpForwarding/d' /etc/ssh/sshd_config" +
              ("" if allowed else " && echo 'AllowTcpForwarding no' >> /etc/ssh/sshd_config"))
    lab.exec(name, ["sh", "-c", script], check=True)
    lab.stop_sshd(name)
    lab.start_sshd(name)


# -- AllowTcpForwarding no and the heketi tunnel ------------------------------------------------
def test_tunnel_refused_by_sshd_is_a_clear_error(lab2, tmp_path):
    inv = inventory(lab2, tmp_path / "inv.yaml", {"k8s-1": {"ansible_user": "root"}})
    pb = playbook(tmp_path / "pb.yaml", f"""\
        - hosts: all
          tasks:
            - name: a heketi volume
              heketi_volume: {{url: "http://{lab2.base}.1.50:8080", key: "k3y-for-test", name: vol1}}
        """)
    set_forwarding(lab2, "k8s-1", False)
    try:
        planned = gfs("plan", inv, "-p", pb)
    finally:
        set_forwarding(lab2, "k8s-1", True)
    assert planned.returncode == 1
    err = planned.stderr
    assert "k8s-1" in err and "refuses to forward TCP connections for root" in err
    assert "AllowTcpForwarding" in err and f"{lab2.base}.1.50:8080" in err
    assert "fix:" in err and "Match User root" in err


# -- a controller that dies --------------------------------------------------------------------
CHILD = """
import sys
from gfsdeploy.inventory import Host
from gfsdeploy.transport import make_transport
v = {json}
t = make_transport(Host(sys.argv[1], vars=v))
t.connect()
print("go", flush=True)
t.run("echo $$ > /tmp/gfs-" + sys.argv[2] + ".pid; sleep 6; echo done > /tmp/gfs-" + sys.argv[2] + ".done",
      kind=sys.argv[3], timeout=float(sys.argv[4]))
"""


@pytest.mark.parametrize("user", ["root", "deploy"])
def test_sigkilled_controller_reads_end_changes_finish_within_their_bound(lab2, tmp_path, user):
    v = {"ansible_host": lab2.node("k8s-1").ip, "ansible_user": user,
         "ansible_ssh_private_key_file": str(lab2.key_path), "gfsdeploy_known_hosts": str(lab2.known_hosts_path)}
    if user == "deploy":
        v.update(ansible_become=True, ansible_become_password=DEPLOY_PW)  # sudo through a pty (requiretty)
    code = CHILD.replace("{json}", repr(v))
    started = {}
    for tag, kind, timeout in (("read", "read", 60), ("change", "run", 60), ("bounded", "run", 2)):
        node(lab2, "k8s-1", "rm", "-f", f"/tmp/gfs-{tag}.pid", f"/tmp/gfs-{tag}.done")
        proc = subprocess.Popen([sys.executable, "-c", code, "k8s-1", tag, kind, str(timeout)],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
        assert proc.stdout.readline().strip() == "go"
        deadline = time.monotonic() + 20
        while node(lab2, "k8s-1", "cat", f"/tmp/gfs-{tag}.pid").returncode != 0:
            assert time.monotonic() < deadline, f"{tag}: the script did not start"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        started[tag] = node(lab2, "k8s-1", "cat", f"/tmp/gfs-{tag}.pid").stdout.strip()
    time.sleep(8)
    done = {tag: node(lab2, "k8s-1", "cat", f"/tmp/gfs-{tag}.done").returncode == 0 for tag in started}
    alive = {tag: node(lab2, "k8s-1", "kill", "-0", pid).returncode == 0 for tag, pid in started.items()}
    assert done == {"read": False, "change": True, "bounded": False}, done
    assert not any(alive.values()), alive


def test_ask_become_pass_prompts_on_the_terminal(lab2, tmp_path):
    """-K asks once on the controlling terminal (never echoed), before connecting."""
    import pty
    import select

    inv = inventory(lab2, tmp_path / "inv.yaml", {"k8s-1": {"ansible_user": "deploy"}})
    pb = playbook(tmp_path / "pb.yaml", """\
        - hosts: all
          become: true
          tasks:
            - name: root's id
              command: id -un
              register: who
              check_mode: false
              changed_when: false
            - name: show
              debug: {msg: "{{ who.stdout }}"}
        """)
    master, slave = pty.openpty()
    proc = subprocess.Popen(["setsid", "-c", sys.executable, "-m", "gfsdeploy", "plan", inv, "-p", pb, "-K", "-v"],
                            stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "PYTHONPATH": ROOT})
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"BECOME password:" in seen:
                os.write(master, DEPLOY_PW.encode() + b"\n")
                answered = True
        elif proc.poll() is not None:
            break
    proc.wait(30)
    os.close(master)
    text = seen.decode(errors="replace")
    assert answered, text
    assert proc.returncode == 0, text
    assert "root" in text.split("BECOME password:", 1)[1]
    assert DEPLOY_PW not in text
