"""SSH through paramiko: one connection per host per run, every script on its
own channel of that connection (one channel = one round trip).

Reaching the host: directly, through a ProxyJump chain (each jump host's
connection is shared by every host behind it, and its host key is checked like
the target's), or through a ProxyCommand. Host keys are checked against the
known_hosts files: an unknown key is refused unless the user opted in (then it
is recorded); a changed key is always refused, with both fingerprints and the
file to edit. TCP keepalive and a user timeout make a cut link fail in seconds
instead of hanging; a heartbeat on each running command lets the host end it
when the controller is gone (see :mod:`.wrapper`).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading

from gfsdeploy.errors import HostKeyError, TransportError
from gfsdeploy.transport import _paramiko
from gfsdeploy.transport.base import _STOP, Channel, Transport
from gfsdeploy.transport.sshconfig import Hop, SSHSettings, hop_settings

paramiko = _paramiko.load()

# paramiko logs refused channels and the like at WARNING; with no handler configured they
# would reach stderr as stray lines: gfsdeploy reports them itself, with the fix
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_save_lock = threading.Lock()
#: how long forward() waits for sshd's answer to its probe: a refusal is immediate; a
#: service that does not answer yet is not an error here
_PROBE_TIMEOUT = 2.0
_OPEN_PROHIBITED = 1   # SSH_OPEN_ADMINISTRATIVELY_PROHIBITED: sshd forbids forwarding
_OPEN_CONNECT_FAILED = 2


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Record an unknown host's key in the known_hosts file (``--accept-new-host-keys``)."""

    def __init__(self, path: str, hashed: bool = False):
        self.path = path
        self.hashed = hashed

    def missing_host_key(self, client, hostname, key):
        with _save_lock:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            name = paramiko.HostKeys.hash_host(hostname) if self.hashed else hostname
            entry = paramiko.hostkeys.HostKeyEntry([name], key)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(entry.to_line())
        client.get_host_keys().add(hostname, key.get_name(), key)


class _Refuse(paramiko.MissingHostKeyPolicy):
    def __init__(self, path: str, host: str, what: str = ""):
        self.path = path
        self.host = host
        self.what = what

    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"unknown SSH host key for {self.what or hostname} ({key.get_name()} {key.fingerprint}); "
            f"refusing to connect",
            host=self.host,
            fix=f"verify the fingerprint out of band, then re-run with --accept-new-host-keys "
                f"(it is recorded in {self.path}) or add the key to that file yourself")


# -- connections shared by several hosts (jump hosts) -------------------------------------
_JUMPS: dict = {}
_JUMPS_LOCK = threading.Lock()


class _Jump:
    def __init__(self, client: paramiko.SSHClient, parent):
        self.client = client
        self.parent = parent
        self.refs = 0


def _release(jump: "_Jump | None") -> None:
    while jump is not None:
        with _JUMPS_LOCK:
            jump.refs -= 1
            last = jump.refs <= 0
            if last:
                for key, value in list(_JUMPS.items()):
                    if value is jump:
                        del _JUMPS[key]
        if last:
            jump.client.close()
        jump = jump.parent


class _SSHChannel(Channel):
    def __init__(self, chan: paramiko.Channel):
        self.chan = chan
        self._poll = select.poll()
        self._poll.register(chan.fileno(), select.POLLIN)

    def send(self, data: bytes) -> None:
        self.chan.sendall(data)

    def wait(self, timeout: float) -> None:
        if self.chan.eof_received or self.chan.closed:
            self.chan.status_event.wait(timeout)
            return
        self._poll.poll(max(0, int(timeout * 1000)))

    def read(self) -> tuple[bytes, bytes]:
        out, err = bytearray(), bytearray()
        while self.chan.recv_ready():
            out += self.chan.recv(65536)
        while self.chan.recv_stderr_ready():
            err += self.chan.recv_stderr(65536)
        return bytes(out), bytes(err)

    def finished(self) -> bool:
        chan = self.chan
        if chan.recv_ready() or chan.recv_stderr_ready():
            return False
        return chan.closed or (bool(chan.eof_received) and chan.exit_status_ready())

    def exit_status(self) -> int | None:
        if not self.chan.exit_status_ready():
            return None
        rc = self.chan.recv_exit_status()
        return None if rc < 0 else rc

    def close(self) -> None:
        self.chan.close()


class SSHTransport(Transport):
    heartbeat = 15.0
    silence = 60

    def __init__(self, host: str, address: str | None = None, *, port: int = 22, user: str | None = None,
                 key_file: str | None = None, known_hosts: str | None = None, accept_new: bool = False,
                 become: bool = False, become_user: str = "root", timeout: float = 600.0,
                 connect_timeout: float = 10.0, password: str | None = None,
                 settings: SSHSettings | None = None, **become_kwargs):
        super().__init__(host, become=become, become_user=become_user, timeout=timeout, **become_kwargs)
        if settings is None:
            settings = SSHSettings(alias=address or host, hostname=address or host, port=port,
                                   user=user or os.environ.get("USER") or "root",
                                   identity_files=[os.path.expanduser(key_file)] if key_file else [],
                                   password=password,
                                   known_hosts=os.path.expanduser(known_hosts or "~/.ssh/known_hosts"),
                                   strict="accept-new" if accept_new else "yes")
        self.settings = settings
        self.address = settings.hostname
        self.port = settings.port
        self.user = settings.user
        self.key_file = settings.identity_files[0] if settings.identity_files else None
        self.known_hosts = settings.known_hosts
        self.accept_new = settings.strict == "accept-new"
        self.connect_timeout = settings.connect_timeout or connect_timeout
        self.password = settings.password
        if settings.password or settings.passphrase:
            from gfsdeploy import secrets

            secrets.register(settings.password)
            secrets.register(settings.passphrase)
        self.client: paramiko.SSHClient | None = None
        self._jump: _Jump | None = None
        self._forwards: list[socket.socket] = []
        self._tunnels: dict = {}
        self._connect_lock = threading.RLock()

    def login_user(self) -> str | None:
        return self.user

    def _is_target_user(self) -> bool:
        return self.user == self.become_user

    # -- connecting --------------------------------------------------------------
    def connect(self) -> None:
        if self.client is None and self.before_connect is not None:
            self.before_connect(self)  # make room (evicting others never waits on their locks)
        with self._connect_lock:
            if self.client is not None:
                return
            s = self.settings
            last = None
            for _ in range(s.attempts):
                try:
                    jump = _jump_for(s.proxy_jump, s, self.host, self.connect_timeout)
                    try:
                        sock = self._socket(s, jump)
                        self.client = _handshake(s, sock, self.host, self.connect_timeout)
                    except BaseException:
                        _release(jump)
                        raise
                    self._jump = jump
                    return
                except HostKeyError:
                    raise
                except TransportError as exc:
                    last = exc
            raise last

    def _socket(self, s: SSHSettings, jump: "_Jump | None"):
        where = f"{s.hostname}:{s.port}"
        if jump is not None:
            return _direct_tcpip(jump, s.hostname, s.port, self.host, self.connect_timeout,
                                 why=f"to {self.host} ({where})")
        if s.proxy_command:
            command = _expand_tokens(s.proxy_command, s)
            try:
                return paramiko.ProxyCommand(command)
            except (OSError, paramiko.SSHException) as exc:
                raise TransportError(f"ProxyCommand {command!r} failed to start: {exc}", host=self.host,
                                     fix="check the ProxyCommand in ansible_ssh_common_args or ssh_config") from None
        return _tcp(s, self.host, self.connect_timeout)

    def close(self) -> None:
        for listener in self._forwards:
            try:
                listener.close()
            except OSError:
                pass
        self._forwards.clear()
        self._tunnels.clear()
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._jump is not None:
            _release(self._jump)
            self._jump = None

    # -- commands ----------------------------------------------------------------
    def _open(self, command: str, *, pty: bool) -> Channel:
        with self._connect_lock:  # not while evict() closes it
            if self.client is None:
                self.connect()
            try:
                chan = self.client.get_transport().open_session(timeout=self.connect_timeout)
                if pty:
                    chan.get_pty(term="dumb", width=200, height=50)
                chan.exec_command(command)
            except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
                raise TransportError(f"connection to {self.address} lost: {exc or type(exc).__name__}",
                                     host=self.host,
                                     fix="check the host is still up and sshd still runs, then re-run") from None
        return _SSHChannel(chan)

    def evict(self) -> bool:
        if not self._connect_lock.acquire(blocking=False):
            return False  # connecting or being closed right now: not idle
        try:
            if self.client is None or self.in_flight or self._forwards:
                return False
            self.close()
            return True
        finally:
            self._connect_lock.release()

    @property
    def is_open(self) -> bool:
        return self.client is not None

    # -- tunnels -------------------------------------------------------------------
    def forward(self, remote_host: str, remote_port: int, *, purpose: str = "") -> tuple[str, int]:
        """A local listener whose connections are tunnelled (direct-tcpip) through this host.
        Checked at once: a host whose sshd forbids forwarding is a clear error here, not
        an unreachable service later."""
        key = (remote_host, int(remote_port))
        if key in self._tunnels:
            return self._tunnels[key]
        if _STOP.is_set():
            from gfsdeploy.transport.base import _stopped_error

            raise _stopped_error(self.host)
        if self.client is None:
            self.connect()
        transport = self.client.get_transport()
        what = (f"{purpose or 'a task'} needs an SSH tunnel to {remote_host}:{remote_port} "
                f"through this host")
        try:
            probe = transport.open_channel("direct-tcpip", key, ("127.0.0.1", 0),
                                           timeout=min(_PROBE_TIMEOUT, self.connect_timeout))
            probe.close()
        except paramiko.ChannelException as exc:
            if exc.code == _OPEN_PROHIBITED:
                raise _forwarding_refused(self.host, self.settings, what) from None
            # connect failed & co.: the service is not up yet; each connection retries
        except paramiko.SSHException:
            if not transport.is_active():
                raise TransportError(f"connection to {self.address} lost while opening a tunnel",
                                     host=self.host, fix="check the host is still up, then re-run") from None
            # no answer yet: sshd is still trying to reach the service (a refusal is immediate)
        except (OSError, EOFError) as exc:
            raise TransportError(f"connection to {self.address} lost while opening a tunnel: {exc}",
                                 host=self.host, fix="check the host is still up, then re-run") from None
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self._forwards.append(listener)

        def serve():
            while True:
                try:
                    conn, peer = listener.accept()
                except OSError:
                    return
                if _STOP.is_set():
                    conn.close()
                    continue
                try:
                    chan = transport.open_channel("direct-tcpip", key, peer, timeout=self.connect_timeout)
                except (paramiko.SSHException, OSError, EOFError):
                    conn.close()
                    continue
                threading.Thread(target=_pump, args=(conn, chan), daemon=True).start()

        threading.Thread(target=serve, daemon=True, name=f"forward-{self.host}").start()
        self._tunnels[key] = listener.getsockname()
        return self._tunnels[key]


def _forwarding_refused(host: str, s: SSHSettings, what: str) -> TransportError:
    return TransportError(
        f"{s.hostname} refuses to forward TCP connections for {s.user} (its sshd has AllowTcpForwarding "
        f"no, DisableForwarding, or a no-port-forwarding/permitopen restriction); {what}",
        host=host,
        fix=f"allow forwarding for {s.user} in {s.hostname}'s /etc/ssh/sshd_config (`AllowTcpForwarding "
            f"local`, or yes; it can go in a `Match User {s.user}` block) and reload sshd, or run the task "
            f"on a host that allows it")


def _tcp(s: SSHSettings, host: str, timeout: float) -> socket.socket:
    where = f"{s.user}@{s.hostname}:{s.port}"
    family = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}.get(s.family, 0)
    try:
        infos = socket.getaddrinfo(s.hostname, s.port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve {s.hostname}: {exc.strerror or exc}", host=host,
                             fix="check ansible_host (or HostName in ssh_config) and DNS") from None
    last: Exception | None = None
    for fam, kind, proto, _, addr in infos:
        sock = socket.socket(fam, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
        except socket.timeout:
            sock.close()
            raise TransportError(f"timed out after {timeout:.0f}s connecting to {where}", host=host,
                                 fix="check that the host is up and reachable (ansible_host/ansible_port)") from None
        except OSError as exc:
            sock.close()
            last = exc
            continue
        _keepalive(sock)
        return sock
    raise TransportError(f"cannot connect to {where}: {getattr(last, 'strerror', None) or last}", host=host,
                         fix="check that the host is up, sshd runs, and ansible_host/ansible_port are right") from None


def _direct_tcpip(jump: _Jump, hostname: str, port: int, host: str, timeout: float, *, why: str):
    via = jump.client.gfs_settings  # type: ignore[attr-defined]
    try:
        return jump.client.get_transport().open_channel("direct-tcpip", (hostname, port), ("127.0.0.1", 0),
                                                         timeout=timeout)
    except paramiko.ChannelException as exc:
        if exc.code == _OPEN_PROHIBITED:
            raise _forwarding_refused(host, via, f"the ProxyJump {why} goes through it") from None
        if exc.code == _OPEN_CONNECT_FAILED:
            raise TransportError(f"jump host {via.alias} cannot reach {hostname}:{port} ({exc.text})", host=host,
                                 fix="check the address as the jump host sees it (ansible_host), and that sshd "
                                     "runs there") from None
        raise TransportError(f"jump host {via.alias} refused the connection to {hostname}:{port}: {exc.text}",
                             host=host, fix="check the jump host's sshd settings") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(f"connection to jump host {via.alias} lost: {exc}", host=host,
                             fix="check the jump host is up, then re-run") from None


def _chain(hops: list[Hop], target: SSHSettings, host: str, depth: int = 0) -> list[SSHSettings]:
    """The hops in connection order, a first hop's own ProxyJump (ssh_config) included."""
    if depth > 8:
        raise TransportError("the ProxyJump chain is too long or loops", host=host,
                             fix="check ProxyJump in ansible_ssh_common_args and ssh_config")
    out: list[SSHSettings] = []
    for i, hop in enumerate(hops):
        s = hop_settings(hop, target)
        if i == 0 and s.proxy_jump:
            out += _chain(s.proxy_jump, target, host, depth + 1)
        out.append(s)
    return out


def _jump_for(hops: list[Hop], target: SSHSettings, host: str, timeout: float) -> "_Jump | None":
    """The shared connection to the last hop of ``hops``, opening what is missing of the
    chain; the caller holds one reference on every hop (released with :func:`_release`)."""
    if not hops:
        return None
    parent: _Jump | None = None
    parent_key = None
    try:
        for s in _chain(hops, target, host):
            key = (s.user, s.hostname, s.port, parent_key)
            with _JUMPS_LOCK:
                found = _JUMPS.get(key)
                alive = found is not None and found.client.get_transport() is not None and \
                    found.client.get_transport().is_active()
                if alive:
                    found.refs += 1
            if alive:
                parent, parent_key = found, key
                continue
            if parent is not None:
                sock = _direct_tcpip(parent, s.hostname, s.port, host, timeout,
                                     why=f"to jump host {s.alias}")
            else:
                sock = _tcp(s, host, timeout)
            client = _handshake(s, sock, host, timeout, what=f"jump host {s.alias}")
            jump = _Jump(client, parent)
            jump.refs = 1
            with _JUMPS_LOCK:
                _JUMPS[key] = jump
            parent, parent_key = jump, key
        return parent
    except BaseException:
        _release(parent)
        raise


def _handshake(s: SSHSettings, sock, host: str, timeout: float, *, what: str = "") -> paramiko.SSHClient:
    """Key exchange, host-key check and login over ``sock``; returns a connected client."""
    client = paramiko.SSHClient()
    label = what or s.hostname
    for path in s.extra_known_hosts:
        if os.path.exists(path):
            try:
                client.load_system_host_keys(path)
            except (OSError, paramiko.SSHException, UnicodeDecodeError):
                pass  # a global file we cannot read counts as empty, as for ssh
    if os.path.exists(s.known_hosts):
        try:
            client.load_host_keys(s.known_hosts)
        except (OSError, paramiko.SSHException, UnicodeDecodeError) as exc:
            _close(sock)
            raise HostKeyError(f"cannot read known_hosts file {s.known_hosts}: {exc}", host=host,
                               fix="fix or remove the malformed line") from None
    client.set_missing_host_key_policy(_AcceptNew(s.known_hosts, s.hash_known_hosts) if s.strict == "accept-new"
                                       else _Refuse(s.known_hosts, host, what))
    key_name = s.host_key_alias or s.hostname
    key_port = 22 if s.host_key_alias else s.port
    explicit = list(s.identity_files)
    keys = [p for p in explicit if os.path.exists(p)]
    where = f"{s.user}@{s.hostname}:{s.port}" + (f" ({what})" if what else "")
    try:
        client.connect(key_name, port=key_port, username=s.user, key_filename=keys or None,
                       password=s.password if s.password_auth else None, passphrase=s.passphrase,
                       timeout=timeout, sock=sock,
                       banner_timeout=timeout, auth_timeout=timeout,
                       allow_agent=not s.identities_only and not keys,
                       look_for_keys=not s.identities_only and not keys, compress=s.compression)
    except HostKeyError:
        _close(sock)
        raise
    except paramiko.BadHostKeyException as exc:
        _close(sock)
        shown = key_name if key_port == 22 else f"[{key_name}]:{key_port}"
        raise HostKeyError(
            f"the SSH host key of {label} has CHANGED: expected {exc.expected_key.get_name()} "
            f"{exc.expected_key.fingerprint}, got {exc.key.get_name()} {exc.key.fingerprint}. "
            f"This may be a reinstalled machine or a man-in-the-middle; refusing to connect", host=host,
            fix=f"if the new key is legitimate, remove the old entry for {shown} from {s.known_hosts} "
                f"(ssh-keygen -R {shown} -f {s.known_hosts}) and re-run with --accept-new-host-keys") from None
    except paramiko.AuthenticationException as exc:
        _close(sock)
        missing = [p for p in explicit if not os.path.exists(p)]
        hint = f" (key file not found: {', '.join(missing)})" if missing else ""
        raise TransportError(f"SSH authentication failed for {where}: {exc}{hint}", host=host,
                             fix="check ansible_user and ansible_ssh_private_key_file (or your ssh-agent, or "
                                 "User/IdentityFile in ssh_config)") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        _close(sock)
        raise TransportError(f"SSH connection to {where} failed: {exc or type(exc).__name__}", host=host,
                             fix="check that sshd runs on the host and accepts this user") from None
    if s.keepalive:
        client.get_transport().set_keepalive(s.keepalive)
    client.gfs_settings = s  # type: ignore[attr-defined]
    return client


def _close(sock) -> None:
    try:
        sock.close()
    except Exception:  # noqa: BLE001 - already failing
        pass


def _expand_tokens(command: str, s: SSHSettings) -> str:
    out, i = [], 0
    while i < len(command):
        c = command[i]
        if c == "%" and i + 1 < len(command):
            nxt = command[i + 1]
            out.append({"h": s.hostname, "p": str(s.port), "r": s.user, "n": s.alias, "%": "%"}.get(nxt, c + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


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
