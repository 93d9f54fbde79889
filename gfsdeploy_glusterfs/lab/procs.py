"""Tracked processes: every process the lab starts has a pid file, so `down` finds it.

A pid file holds "PID STARTTIME": the start time (from /proc/PID/stat) guards
against killing an unrelated process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid} {start_time(pid) or ''}\n")


def read_pid(path: Path) -> int | None:
    """The pid in PATH if that very process still runs, else None."""
    try:
        pid_s, _, start = path.read_text().strip().partition(" ")
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    now = start_time(pid)
    if now is None or (start and now != start):
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
    except OSError:
        return None
    return pid


def spawn(argv, *, log: Path, pid_file: Path, env=None, cwd=None) -> subprocess.Popen:
    """Start a detached process (own session) with output in LOG and a pid file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env=env, cwd=cwd, start_new_session=True)
    write_pid(pid_file, proc.pid)
    return proc


def kill_all(pid_files: list[Path], grace: float = 3.0) -> None:
    """SIGTERM each tracked process group, then SIGKILL what is left; remove the pid files."""
    live = {p: read_pid(p) for p in pid_files}
    live = {p: pid for p, pid in live.items() if pid}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in live.values():
            _signal(pid, sig)
        deadline = time.monotonic() + grace
        while live and time.monotonic() < deadline:
            _reap(live.values())
            live = {p: pid for p, pid in live.items() if read_pid(p)}
            if live:
                time.sleep(0.05)
    for p in pid_files:
        p.unlink(missing_ok=True)


def _signal(pid: int, sig: int) -> None:
    for target in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pids) -> None:
    """Collect our own exited children so they do not linger as zombies."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
