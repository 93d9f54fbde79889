"""SSH through paramiko: one connection per host per run, every script on its
own channel of that connection (one channel = one round trip).

Host keys are checked against a known_hosts file: an unknown key is refused
unless the user opted in (then it is recorded); a changed key is always refused,
with both fingerprints and the file to edit. TCP keepalive and a user timeout
make a cut link fail in seconds instead of hanging.
"""

from __future__ import annotations

import os
import select
import socket
import threading

import paramiko

from gfsdeploy.errors import HostKeyError, TransportError
from gfsdeploy.transport.base import Result, Transport

_save_lock = threading.Lock()


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Record an unknown host's key in the known_hosts file (``--accept-new-host-keys``)."""

    def __init__(self, path: str):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        with _save_lock:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            entry = paramiko.hostkeys.HostKeyEntry([hostname], key)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(entry.to_line())
        client.get_host_keys().add(hostname, key.get_name(), key)


class _Refuse(paramiko.MissingHostKeyPolicy):
    def __init__(self, path: str, host: str):
        self.path = path
        self.host = host

    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"unknown SSH host key for {hostname} ({key.get_name()} {key.fingerprint}); refusing to connect",
            host=self.host,
            fix=f"verify the fingerprint out of band, then re-run with --accept-new-host-keys "
                f"(it is recorded in {self.path}) or add the key to that file yourself")


class SSHTransport(Transport):
    def __init__(self, host: str, address: str, *, port: int = 22, user: str | None = None,
                 key_file: str | None = None, known_hosts: str | None = None, accept_new: bool = False,
                 become: bool = False, become_user: str = "root", timeout: float = 600.0,
                 connect_timeout: float = 10.0, password: str | None = None):
        super().__init__(host, become=become, become_user=become_user, timeout=timeout)
        self.address = address
        self.port = port
        self.user = user or os.environ.get("USER") or "root"
        self.key_file = os.path.expanduser(key_file) if key_file else None
        self.known_hosts = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
        self.accept_new = accept_new
        self.connect_timeout = connect_timeout
        self.password = password
        self.client: paramiko.SSHClient | None = None
        self._forwards: list[socket.socket] = []

    def _is_target_user(self) -> bool:
        return self.user == self.become_user

    def connect(self) -> None:
        if self.client is not None:
            return
        client = paramiko.SSHClient()
        if os.path.exists(self.known_hosts):
            try:
                client.load_host_keys(self.known_hosts)
            except (OSError, paramiko.SSHException) as exc:
                raise HostKeyError(f"cannot read known_hosts file {self.known_hosts}: {exc}", host=self.host,
                                   fix="fix or remove the malformed line") from None
        client.set_missing_host_key_policy(_AcceptNew(self.known_hosts) if self.accept_new
                                           else _Refuse(self.known_hosts, self.host))
        where = f"{self.user}@{self.address}:{self.port}"
        try:
            sock = socket.create_connection((self.address, self.port), timeout=self.connect_timeout)
        except socket.timeout:
            raise TransportError(f"timed out after {self.connect_timeout:.0f}s connecting to {where}", host=self.host,
                                 fix="check that the host is up and reachable (ansible_host/ansible_port)") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {where}: {exc.strerror or exc}", host=self.host,
                                 fix="check that the host is up, sshd runs, and ansible_host/ansible_port are right") from None
        _keepalive(sock)
        try:
            client.connect(self.address, port=self.port, username=self.user, key_filename=self.key_file,
                           password=self.password, timeout=self.connect_timeout, sock=sock,
                           banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                           allow_agent=self.key_file is None, look_for_keys=self.key_file is None)
        except HostKeyError:
            sock.close()
            raise
        except paramiko.BadHostKeyException as exc:
            sock.close()
            raise HostKeyError(
                f"the SSH host key of {self.address} has CHANGED: expected {exc.expected_key.get_name()} "
                f"{exc.expected_key.fingerprint}, got {exc.key.get_name()} {exc.key.fingerprint}. "
                f"This may be a reinstalled machine or a man-in-the-middle; refusing to connect", host=self.host,
                fix=f"if the new key is legitimate, remove the old entry for {self.address} from {self.known_hosts} "
                    f"(ssh-keygen -R {self.address} -f {self.known_hosts}) and re-run with --accept-new-host-keys") from None
        except paramiko.AuthenticationException as exc:
            sock.close()
            raise TransportError(f"SSH authentication failed for {where}: {exc}", host=self.host,
                                 fix="check ansible_user and ansible_ssh_private_key_file (or your ssh-agent)") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            sock.close()
            raise TransportError(f"SSH connection to {where} failed: {exc}", host=self.host,
                                 fix="check that sshd runs on the host and accepts this user") from None
        self.client = client

    def close(self) -> None:
        for listener in self._forwards:
            try:
                listener.close()
            except OSError:
                pass
        self._forwards.clear()
        if self.client is not None:
            self.client.close()
            self.client = None

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> Result:
        if self.client is None:
            self.connect()
        try:
            chan = self.client.get_transport().open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
            raise TransportError(f"connection to {self.address} lost: {exc or type(exc).__name__}", host=self.host,
                                 fix="check the host is still up and sshd still runs, then re-run") from None
        chan.settimeout(timeout)
        out, err = bytearray(), bytearray()
        try:
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                out += data
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
            while True:
                data = chan.recv_stderr(65536)
                if not data:
                    break
                err += data
            rc = chan.recv_exit_status()
        except socket.timeout:
            chan.close()
            raise TransportError(f"command timed out after {timeout:.0f}s on {self.address}", host=self.host,
                                 fix="the host stopped answering (link down?) or the step needs a longer "
                                     "`timeout:`") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"connection to {self.address} lost during a command: "
                                 f"{exc or type(exc).__name__}", host=self.host,
                                 fix="check the host is still up and sshd still runs, then re-run") from None
        finally:
            chan.close()
        if rc == -1:
            raise TransportError(f"connection to {self.address} closed before the command finished",
                                 host=self.host, fix="check the host is still up, then re-run")
        return Result(rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def forward(self, remote_host: str, remote_port: int) -> tuple[str, int]:
        """A local listener whose connections are tunnelled (direct-tcpip) through this host."""
        if self.client is None:
            self.connect()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self._forwards.append(listener)
        transport = self.client.get_transport()

        def serve():
            while True:
                try:
                    conn, peer = listener.accept()
                except OSError:
                    return
                try:
                    chan = transport.open_channel("direct-tcpip", (remote_host, remote_port), peer,
                                                  timeout=self.connect_timeout)
                except (paramiko.SSHException, OSError, EOFError):
                    conn.close()
                    continue
                threading.Thread(target=_pump, args=(conn, chan), daemon=True).start()

        threading.Thread(target=serve, daemon=True, name=f"forward-{self.host}").start()
        return listener.getsockname()


def _pump(conn: socket.socket, chan) -> None:
    try:
        while True:
            readable, _, _ = select.select([conn, chan], [], [], 60)
            if not readable:
                continue
            if conn in readable:
                data = conn.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in readable:
                data = chan.recv(65536)
                if not data:
                    break
                conn.sendall(data)
    except (OSError, EOFError):
        pass
    finally:
        chan.close()
        conn.close()


def _keepalive(sock: socket.socket) -> None:
    """Detect a dead peer in ~15 s rather than at the next TCP retransmit timeout."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 3), ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", 15000)):
        if hasattr(socket, name):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
            except OSError:
                pass
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
