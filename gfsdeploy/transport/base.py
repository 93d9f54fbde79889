"""What every transport offers the engine and the modules.

A transport is one connection to one host, opened once per run and reused by
every task. Everything a module sends goes through :meth:`Transport.run`, a
shell script fed to ``sh -s`` on stdin (so there is no argument-length limit
and no second quoting layer), which makes one exec one round trip. The
counters (``round_trips``, ``command_log``) are what tests and benchmarks read.
"""

from __future__ import annotations

import secrets as _random
import shlex
import threading
from dataclasses import dataclass

#: set when the user interrupts the run (SIGINT/SIGTERM): no new remote command starts
_STOP = threading.Event()


def request_stop() -> None:
    """Refuse every new remote command from now on (what is in flight is not touched)."""
    _STOP.set()


def stop_requested() -> bool:
    return _STOP.is_set()


def clear_stop() -> None:
    """Allow remote commands again (a new run in the same process)."""
    _STOP.clear()


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
    """One round trip, as logged for tests and ``-v``: the script and its exit code."""

    script: str
    rc: int | None = None
    kind: str = "run"  # "run" (changes or actions) or "read" (batched state reads)


class Transport:
    """One host's connection. Subclasses differ in how a script reaches a shell."""

    def __init__(self, host: str, *, become: bool = False, become_user: str = "root",
                 timeout: float = 60.0):
        self.host = host
        self.become = become
        self.become_user = become_user
        self.timeout = timeout
        self.round_trips = 0
        self.command_log: list[CommandRecord] = []
        self._lock = threading.Lock()

    # -- subclasses implement -------------------------------------------------
    def connect(self) -> None:
        """Open the connection (idempotent)."""

    def close(self) -> None:
        """Close the connection (idempotent)."""

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> Result:
        """Run ``command`` (a short fixed launcher) with ``stdin`` on the host."""
        raise NotImplementedError

    def forward(self, remote_host: str, remote_port: int) -> tuple[str, int]:
        """Open a local TCP listener tunnelled to ``remote_host:remote_port`` as seen
        from this host; returns the local (address, port)."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------
    def launcher(self) -> str:
        """The command that reads a script on stdin, with privilege escalation if asked."""
        if self.become and not self._is_target_user():
            return f"sudo -n -H -u {shlex.quote(self.become_user)} sh -s"
        return "sh -s"

    def _is_target_user(self) -> bool:
        return False

    def run(self, script: str, *, timeout: float | None = None, kind: str = "run",
            after_stop: bool = False) -> Result:
        """Run a shell script on the host in one round trip. After a stop was requested
        only ``after_stop`` scripts (cleanup such as releasing a lock) still start."""
        if _STOP.is_set() and not after_stop:
            from gfsdeploy.errors import Interrupted

            raise Interrupted("interrupted: no new command was started", host=self.host)
        record = CommandRecord(script=script, kind=kind)
        with self._lock:
            self.round_trips += 1
            self.command_log.append(record)
        result = self._exec(self.launcher(), script.encode(), timeout or self.timeout)
        record.rc = result.rc
        return result

    def read_many(self, probes: dict[str, str], *, timeout: float | None = None) -> dict[str, Result]:
        """Run many read-only probes in ONE round trip; returns a Result per key.

        Each probe runs in its own subshell; its stdout, stderr and exit code are
        framed by a random token so no probe output can forge a frame.
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
            lines.append(f"printf '\\n%s E {i}\\n' \"$__t\"; cat \"$__e\"")
            lines.append(f"printf '\\n%s R {i} %d\\n' \"$__t\" \"$__rc\"")
        lines.append('rm -f "$__e"')
        result = self.run("\n".join(lines) + "\n", timeout=timeout, kind="read")
        return parse_frames(result, token, keys, self.host)


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
