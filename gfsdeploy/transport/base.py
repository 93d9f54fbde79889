"""What every transport offers the engine and the modules.

A transport is one connection to one host, opened once per run and reused by
every task. Everything a module sends goes through :meth:`Transport.run`: a
shell script, sent on stdin to a small wrapper (:mod:`.wrapper`) so there is
no argument-length limit and no second quoting layer; one exec is one round
trip. The wrapper runs the script as the become user (sudo or su, answering a
password prompt when there is one), keeps stdout and stderr apart even when a
pty is needed (``requiretty``), and ends the script if the controller goes away.
The counters (``round_trips``, ``command_log``) are what tests and benchmarks read.

Stopping: :func:`request_stop` makes every ``run`` refuse to start a new remote
command (what SIGINT/SIGTERM do); :func:`abort_running` also cuts the commands
in flight, which the hosts then end (or finish, for ``on_disconnect="finish"``).
"""

from __future__ import annotations

import re
import secrets as _random
import shlex
import threading
import time
import weakref
from dataclasses import dataclass

from gfsdeploy.errors import Interrupted, TransportError
from gfsdeploy.transport import become as _become
from gfsdeploy.transport import wrapper as _wrapper
from gfsdeploy.transport.become import Become


@dataclass
class Result:
    """What a remote script returned."""

    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass
class CommandRecord:
    """One round trip, as logged for tests and ``-v``: the script and its exit code.

    Only the first :data:`LOG_SCRIPT_CHARS` characters of a script are kept (a batch of
    changes carries whole files: kept in full, the log of a 1,000-host run held every
    file sent to every host); ``size`` is the script's full length."""

    script: str
    rc: int | None = None
    kind: str = "run"  # "run" (changes or actions) or "read" (batched state reads)
    user: str | None = None  # the become user, when the script ran escalated
    size: int = 0

    def __post_init__(self):
        self.size = len(self.script)
        if self.size > LOG_SCRIPT_CHARS:
            # (ASCII: one character outside Latin-1 would make Python store all of them in
            # 2 or 4 bytes each)
            self.script = self.script[:LOG_SCRIPT_CHARS] + f"\n... ({self.size} characters in all)"


#: how much of each script the command log keeps (a host's log lives as long as the run)
LOG_SCRIPT_CHARS = 2048


# -- stopping ------------------------------------------------------------------------
#: set when the user interrupts the run (SIGINT/SIGTERM): no new remote command starts
_STOP = threading.Event()
_RUNNING: "weakref.WeakSet" = weakref.WeakSet()
_RUNNING_LOCK = threading.Lock()


def request_stop() -> None:
    """Refuse every new remote command from now on (what is in flight is not touched)."""
    _STOP.set()


def stop_requested() -> bool:
    return _STOP.is_set()


def clear_stop() -> None:
    """Allow remote commands again (a new run in the same process)."""
    _STOP.clear()


def abort_running() -> None:
    """Also cut every command in flight: its host ends it, or lets it complete when it
    was started with ``on_disconnect="finish"`` (bounded by its timeout)."""
    _STOP.set()
    with _RUNNING_LOCK:
        channels = list(_RUNNING)
    for chan in channels:
        try:
            chan.abort()
        except Exception:  # noqa: BLE001 - best effort while stopping
            pass


# the names of the first version of this API
stop_all, abort_all, resume, stopped = request_stop, abort_running, clear_stop, stop_requested


class Stopped(TransportError, Interrupted):
    """A command was not started (or was cut) because the run is stopping."""


def _stopped_error(host: str) -> Stopped:
    return Stopped("interrupted: no new command was started", host=host,
                   fix="re-run to finish; every step is idempotent")


#: the value meaning "the transport's own become settings"
DEFAULT = object()


class Channel:
    """One running command, as the conversation needs it (SSH channel or local process)."""

    #: set by :func:`abort_all`: the thread running the command closes it and stops
    aborted = False

    def abort(self) -> None:
        """Ask the command's own thread to cut it (safe from any thread)."""
        self.aborted = True
        self.close()

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> None:
        """Block until output, the end of the command, or ``timeout`` seconds."""
        raise NotImplementedError

    def read(self) -> tuple[bytes, bytes]:
        """What arrived since the last call (stdout, stderr); never blocks."""
        raise NotImplementedError

    def finished(self) -> bool:
        """Both streams ended and the exit status is known (or the channel is closed)."""
        raise NotImplementedError

    def exit_status(self) -> int | None:
        """The command's exit code; None when it ended without one (killed, cut)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Transport:
    """One host's connection. Subclasses differ in how a command reaches a shell."""

    #: seconds between heartbeats on a running command, and the silence after which the
    #: host ends it (0: the host only reacts to the connection closing)
    heartbeat: float = 0.0
    silence: int = 0
    #: bumped when a local connection starts and ends a command that is not a read (it
    #: may change the controller's files: the runner looks them up and renders them again)
    local_commands: int = 0

    def __init__(self, host: str, *, become: bool = False, become_user: str = "root",
                 timeout: float = 60.0, become_method: str = "sudo", become_password: str | None = None,
                 become_flags: str = ""):
        self.host = host
        self.become = become
        self.become_user = become_user
        self.become_method = become_method
        self.become_flags = become_flags
        self.become_password = become_password
        self.timeout = timeout
        self.round_trips = 0
        self.command_log: list[CommandRecord] = []
        self._lock = threading.Lock()
        self._pty_users: set = set()       # (method, user): escalation needs a tty on this host
        self._refused: dict = {}           # Become -> BecomeError: never retried (account lockout)
        self._views: dict = {}
        self.in_flight = 0                 # commands running now (a busy connection is never evicted)
        self.before_connect = None         # called before (re)opening: Connections makes room there
        self.last_used = time.monotonic()
        if become_password:
            from gfsdeploy import secrets

            secrets.register(become_password)

    # -- subclasses implement -------------------------------------------------
    def connect(self) -> None:
        """Open the connection (idempotent)."""

    def close(self) -> None:
        """Close the connection (idempotent)."""

    def _open(self, command: str, *, pty: bool) -> Channel:
        """Start ``command`` (a short fixed wrapper) on the host; with a pty if asked."""
        raise NotImplementedError

    def forward(self, remote_host: str, remote_port: int, *, purpose: str = "") -> tuple[str, int]:
        """Open a local TCP listener tunnelled to ``remote_host:remote_port`` as seen
        from this host; returns the local (address, port). ``purpose`` says what needs
        the tunnel (it is named in errors)."""
        raise NotImplementedError

    def login_user(self) -> str | None:
        """The user scripts run as without escalation."""
        return None

    # -- shared ---------------------------------------------------------------
    def launcher(self) -> str:
        """The command that reads a script on stdin (inside the wrapper, as the target user)."""
        return "sh -s"

    def default_become(self) -> Become | None:
        """What ``become=DEFAULT`` means: the transport's own settings."""
        if not self.become:
            return None
        return Become(user=self.become_user or "root", method=self.become_method or "sudo",
                      flags=self.become_flags or "", password=self.become_password)

    def with_become(self, become: Become | None) -> "ScopedTransport":
        """This connection, running every script as ``become`` says (None: no escalation).
        The same object for the same settings, so per-transport caches keep working."""
        key = ("none",) if become is None else become
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = self._views[key] = ScopedTransport(self, become)
        return view

    def _effective(self, become) -> Become | None:
        b = self.default_become() if become is DEFAULT else become
        if b is not None and b.user == self.login_user():
            return None  # already that user: nothing to escalate
        return b

    def run(self, script: str, *, timeout: float | None = None, kind: str = "run", become=DEFAULT,
            on_disconnect: str | None = None, after_stop: bool = False) -> Result:
        """Run a shell script on the host in one round trip.

        ``become``: a :class:`Become`, None (no escalation) or the transport's default.
        ``on_disconnect``: what the host does if the controller goes away mid-script:
        ``kill`` it or let it ``finish`` (bounded by ``timeout``). Default: scripts that
        change things (``kind="run"``) finish, so a write is old-or-new and a package
        install is not cut half-way; reads and waits (``kind="read"``) are killed.
        ``after_stop``: start even after a stop was requested (cleanup, e.g. a lock).
        """
        if _STOP.is_set() and not after_stop:
            raise _stopped_error(self.host)
        if on_disconnect is None:
            on_disconnect = "kill" if kind == "read" else "finish"
        b = self._effective(become)
        if b is not None:
            problem = b.problem()
            if problem:
                raise TransportError(problem, host=self.host, fix="fix become settings of the play or task")
            refused = self._refused.get(b)
            if refused is not None:
                raise refused
        record = CommandRecord(script=script, kind=kind, user=b.user if b else None)
        with self._lock:
            self.round_trips += 1
            self.command_log.append(record)
            self.in_flight += 1
        limit = timeout or self.timeout
        key = (b.method, b.user) if b else None
        try:
            try:
                result = self._run_once(script, b, limit, on_disconnect, pty=key in self._pty_users)
            except _NeedsTTY:
                with self._lock:
                    self._pty_users.add(key)
                    self.round_trips += 1
                result = self._run_once(script, b, limit, on_disconnect, pty=True)
        except _become.BecomeError as exc:
            if b is not None and exc.field == "ansible_become_password":
                self._refused[b] = exc
            raise
        finally:
            with self._lock:
                self.in_flight -= 1
                self.last_used = time.monotonic()
        record.rc = result.rc
        return result

    def evict(self) -> bool:
        """Close the connection if nothing uses it now (it reopens on the next command);
        False when it is busy or must stay (a tunnel). See ``Connections(max_open=…)``."""
        return False

    def _run_once(self, script: str, b: Become | None, timeout: float, on_disconnect: str, *,
                  pty: bool) -> Result:
        token = _random.token_hex(8)
        framed = _wrapper.frame_script(script, token)
        inner = _wrapper.wrapper(token=token, length=len(framed), launcher=self.launcher(),
                                 on_disconnect=on_disconnect, silence=self.silence,
                                 grace=int(timeout), split_stderr=pty)
        prompt = f"gfsdeploy-password-{token}:"
        if b is None:
            command = "sh -c " + _quote(inner)
        else:
            command = _become.command(b, inner, prompt=prompt)
        if pty:
            command = "stty raw -echo 2>/dev/null; exec " + command
        # a pty echoes and edits what arrives before `stty raw` has run: never pipeline into one
        interactive = pty or (b is not None and _become.may_prompt(b, self.login_user()))
        chan = self._open(command, pty=pty)
        with _RUNNING_LOCK:
            _RUNNING.add(chan)
        try:
            return self._converse(chan, framed=framed, token=token, become=b, interactive=interactive,
                                  prompt=prompt if b is not None and b.method == "sudo" else None,
                                  timeout=timeout, pty=pty)
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(chan)
            chan.close()

    def _converse(self, chan: Channel, *, framed: bytes, token: str, become: Become | None,
                  interactive: bool, prompt: str | None, timeout: float, pty: bool) -> Result:
        deadline = time.monotonic() + timeout
        tok = token.encode()
        out, err = bytearray(), bytearray()
        started = False            # the token arrived: escalation done, script is running
        sent = False
        password_sent = False
        if not interactive:
            chan.send(framed)      # nothing can prompt: pipeline the script
            sent = True
        next_beat = time.monotonic() + self.heartbeat if self.heartbeat else None
        while True:
            o, e = chan.read()
            out += o
            err += e
            if not started:
                at = _find_line(out, tok)
                if at is not None:
                    started = True
                    del out[:at]
                    if interactive:
                        err.clear()        # sudo's prompt and lecture, not the script's
                    if not sent:
                        chan.send(framed)
                        sent = True
                elif interactive and become is not None and _prompted(out, err, prompt):
                    if become.password is None:
                        raise _become.diagnose("a password is required", None, become, host=self.host,
                                               login_user=self.login_user(), password_sent=False)
                    if password_sent:
                        raise _become.diagnose("incorrect password", 1, become, host=self.host,
                                               login_user=self.login_user(), password_sent=True)
                    chan.send(become.password.encode() + b"\n")
                    password_sent = True
                    out.clear()
                    err.clear()
            if chan.finished():
                o, e = chan.read()
                out += o
                err += e
                break
            now = time.monotonic()
            if now > deadline:
                raise TransportError(f"command timed out after {timeout:.0f}s", host=self.host,
                                     fix="the host stopped answering (link down?) or the step needs a "
                                         "longer `timeout:`")
            if next_beat is not None and started and now >= next_beat:
                try:
                    chan.send(b"\n")
                except OSError:
                    pass
                next_beat = now + self.heartbeat
            wait = deadline - now
            if next_beat is not None and started:
                wait = min(wait, max(0.0, next_beat - now))
            chan.wait(min(wait, 5.0))
            if chan.aborted:
                raise Stopped("interrupted: the command was cut; the host ends it (a step marked to "
                              "finish completes there)", host=self.host,
                              fix="re-run to finish; every step is idempotent")
        rc = chan.exit_status()
        if not started:
            at = _find_line(out, tok)
            if at is not None:
                started = True
                del out[:at]
        if not started:
            text = (bytes(out) + b"\n" + bytes(err)).decode(errors="replace")
            if become is not None:
                if _become.needs_tty(text) and not pty:
                    raise _NeedsTTY()
                raise _become.diagnose(text, rc, become, host=self.host, login_user=self.login_user(),
                                       password_sent=password_sent)
            if rc is None:
                raise TransportError("the connection closed before the command started", host=self.host,
                                     fix="check the host is still up, then re-run")
            return Result(rc, "", text.strip() or f"the host's shell exited {rc} before the script started")
        if rc is None:
            raise TransportError("the connection closed before the command finished", host=self.host,
                                 fix="check the host is still up, then re-run")
        stdout, stderr = bytes(out), bytes(err)
        if pty:
            mark = b"\n" + tok + b" E\n"
            cut = stdout.rfind(mark)
            if cut >= 0:
                stdout, stderr = stdout[:cut], stdout[cut + len(mark):] + stderr
        if rc == _wrapper.INCOMPLETE and b"arrived incomplete" in stderr:
            raise TransportError("the script did not arrive whole (connection cut while sending); "
                                 "nothing was run", host=self.host, fix="re-run")
        return Result(rc, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def read_many(self, probes: dict[str, str], *, timeout: float | None = None,
                  become=DEFAULT, after_stop: bool = False) -> dict[str, Result]:
        """Run many read-only probes in ONE round trip; returns a Result per key.

        Each probe runs in its own subshell; its stdout, stderr and exit code are
        framed by a random token so no probe output can forge a frame. (Its stderr
        file is copied out only when not empty: a process fewer per probe.)
        """
        if not probes:
            return {}
        token = _random.token_hex(8)
        keys = list(probes)
        lines = [f"__t={token}", "__e=$(mktemp) || exit 97"]
        for i, key in enumerate(keys):
            lines.append(f"printf '\\n%s O {i}\\n' \"$__t\"")
            lines.append(f"( {probes[key]}\n) 2>\"$__e\" </dev/null")
            lines.append("__rc=$?")
            lines.append(f"printf '\\n%s E {i}\\n' \"$__t\"; if [ -s \"$__e\" ]; then cat \"$__e\"; fi")
            lines.append(f"printf '\\n%s R {i} %d\\n' \"$__t\" \"$__rc\"")
        lines.append('rm -f "$__e"')
        result = self.run("\n".join(lines) + "\n", timeout=timeout, kind="read", become=become,
                          after_stop=after_stop)
        return parse_frames(result, token, keys, self.host)


class ScopedTransport:
    """A transport seen through one task's become settings: same connection, same counters."""

    def __init__(self, base: Transport, become: Become | None):
        self._base = base
        self._scoped_become = become

    @property
    def base(self) -> Transport:
        return self._base

    def run(self, script: str, **kwargs) -> Result:
        kwargs.setdefault("become", self._scoped_become)
        return self._base.run(script, **kwargs)

    def read_many(self, probes: dict[str, str], **kwargs) -> dict[str, Result]:
        kwargs.setdefault("become", self._scoped_become)
        return self._base.read_many(probes, **kwargs)

    def with_become(self, become: Become | None) -> "ScopedTransport":
        return self._base.with_become(become)

    def __getattr__(self, name):
        return getattr(self._base, name)


class _NeedsTTY(Exception):
    """sudo/su refused without a terminal (``requiretty``): retry with a pty."""


def _quote(text: str) -> str:
    return shlex.quote(text)


def _find_line(buf: bytearray, tok: bytes) -> int | None:
    """Where the output after the token line starts (None: not there yet). Anything
    before it is the login shell's or sudo's chatter (a noisy .bashrc, a prompt)."""
    at = buf.find(tok + b"\n")
    return None if at < 0 else at + len(tok) + 1


_PROMPT_TAIL = re.compile(r"\S[ \t]*[:\uff1a][ \t]*$")


def _prompted(out: bytearray, err: bytearray, prompt: str | None) -> bool:
    """A password prompt is waiting: sudo's own (exact) or su's (localized: a last
    line that ends in a colon and no line break)."""
    if prompt is not None:
        p = prompt.encode()
        return out.rstrip().endswith(p) or err.rstrip().endswith(p)
    for buf in (out, err):
        tail = bytes(buf[-200:]).decode(errors="replace")
        if tail and not tail.endswith("\n") and _PROMPT_TAIL.search(tail.split("\n")[-1]):
            return True
    return False


def parse_frames(result: Result, token: str, keys: list[str], host: str) -> dict[str, Result]:
    """Split the framed output of :meth:`Transport.read_many` back into per-probe results."""
    from gfsdeploy.errors import TransportError

    out: dict[str, Result] = {}
    parts: dict[tuple[str, int], str] = {}
    rcs: dict[int, int] = {}
    marker = "\n" + token + " "
    text = "\n" + result.stdout
    chunks = text.split(marker)
    for chunk in chunks[1:]:
        header, _, body = chunk.partition("\n")
        bits = header.split()
        if len(bits) >= 2 and bits[0] in ("O", "E"):
            parts[(bits[0], int(bits[1]))] = body
        elif len(bits) == 3 and bits[0] == "R":
            rcs[int(bits[1])] = int(bits[2])
    for i, key in enumerate(keys):
        if i not in rcs:
            raise TransportError(
                f"reading state failed (exit {result.rc}): {result.stderr.strip()[:500]}",
                host=host, fix="check that the host has a POSIX sh and that the SSH user can run it")
        stdout = parts.get(("O", i), "")
        stderr = parts.get(("E", i), "")
        out[key] = Result(rcs[i], stdout, stderr)
    return out
