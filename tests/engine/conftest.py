"""A real OpenSSH server on 127.0.0.1 with its own host key and authorized key,
for the engine's integration tests (no lab needed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import time

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    def __init__(self, root):
        self.root = root
        self.port = _free_port()
        self.host_key = os.path.join(root, "ssh_host_ed25519_key")
        self.client_key = os.path.join(root, "id_ed25519")
        self.known_hosts = os.path.join(root, "known_hosts")
        self.proc = None
        for path in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
        with open(self.client_key + ".pub") as src, open(os.path.join(root, "authorized_keys"), "w") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(root, "authorized_keys"), 0o600)
        self.config = os.path.join(root, "sshd_config")
        with open(self.config, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
AuthorizedKeysFile {root}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PidFile {root}/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
MaxSessions 100
MaxStartups 100
""")
        self.trust()

    def trust(self):
        with open(self.host_key + ".pub") as f:
            kind, key = f.read().split()[:2]
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {kind} {key}\n")

    def start(self):
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None

    def regenerate_host_key(self):
        os.remove(self.host_key)
        os.remove(self.host_key + ".pub")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key], check=True)
        self.stop()
        self.start()

    def inventory(self, path, extra_host_vars: str = "", hosts=("node1",), known_hosts=True) -> str:
        lines = ["all:", "  vars:", "    ansible_user: root",
                 f"    ansible_ssh_private_key_file: {self.client_key}",
                 # the sshd is this machine: a lock of our own, not the machine-wide default
                 f"    gfsdeploy_lock_dir: {os.path.dirname(os.path.abspath(path))}/gfsdeploy.lock"]
        if known_hosts:
            lines.append(f"    gfsdeploy_known_hosts: {self.known_hosts}")
        lines.append("  hosts:")
        for h in hosts:
            lines.append(f"    {h}: {{ansible_host: 127.0.0.1, ansible_port: {self.port}{extra_host_vars}}}")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return str(path)


@pytest.fixture
def sshd(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the sshd fixture runs sshd as root (CI runs as root)")
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed (apt-get install openssh-server)")
    root = tmp_path / "sshd"
    root.mkdir()
    server = Sshd(str(root)).start()
    yield server
    server.stop()


@pytest.fixture
def site(tmp_path):
    """Two local hosts, ``a`` and ``b`` (``ansible_connection: local``), their files under
    ``root`` (tmp_path): ``(tmp_path, the inventory's path)``."""
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, root: "{tmp_path}", gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts: {{a: {{}}, b: {{}}}}
        """))
    return tmp_path, str(inv)
