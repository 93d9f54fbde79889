"""One apply at a time per cluster: a lock directory on the master node.

``mkdir`` is atomic, so two controllers racing for it cannot both win. The
owner file says who holds it (controller host, pid, user, start time) so the
refusal names them; a lock left by a dead process on this same controller is
stale and is taken over; ``--force-unlock`` removes any lock.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time

from gfsdeploy.errors import LockError
from gfsdeploy.modules.base import q

LOCK_DIR = "/var/lock/gfsdeploy.lock"


class ClusterLock:
    def __init__(self, transport, master: str, path: str = LOCK_DIR, report=None):
        self.transport = transport
        self.master = master
        self.path = path
        self.report = report or (lambda message: None)
        self.held = False
        self._mutex = threading.Lock()
        self.owner = (f"host={socket.gethostname()} pid={os.getpid()} user={_user()} "
                      f"started={time.strftime('%Y-%m-%dT%H:%M:%S%z')}")

    def acquire(self) -> None:
        """Take the lock (once; later calls return at once)."""
        with self._mutex:
            if self.held:
                return
            path = q(self.path)
            # held: the directory exists (its owner file says by whom); anything else
            # that makes mkdir fail (no parent, read-only, permission) is not "held"
            script = (f"if __err=$(mkdir {path} 2>&1); then printf '%s\\n' {q(self.owner)} > {path}/owner;"
                      f" echo ACQUIRED; elif [ -d {path} ]; then cat {path}/owner 2>/dev/null ||"
                      f" echo 'an unknown run (no owner file)'; else printf 'CANNOT %s\\n' \"$__err\"; fi")
            result = self.transport.run(script)
            text = result.stdout.strip()
            if text.startswith("CANNOT"):
                raise LockError(f"cannot create the lock directory {self.path} on {self.master}: "
                                f"{text[len('CANNOT'):].strip() or 'mkdir failed'}", host=self.master,
                                fix=f"create its parent directory ({os.path.dirname(self.path) or '/'}) on "
                                    f"{self.master}, or set the inventory variable gfsdeploy_lock_dir to a "
                                    "writable path")
            if text == "ACQUIRED":
                self.held = True
                return
            if self._stale(text):
                self.transport.run(f"rm -rf {q(self.path)}")
                result = self.transport.run(script)
                if result.stdout.strip() == "ACQUIRED":
                    self.held = True
                    self.report(f"Took over a stale lock on {self.master} ({self.path}) left by a process "
                                f"that no longer runs: {text}")
                    return
                text = result.stdout.strip()
            raise LockError(f"another gfsdeploy run holds the lock on {self.master} ({self.path}): {text}",
                            host=self.master,
                            fix="wait for that run to finish; if it died, re-run with --force-unlock")

    def _stale(self, owner: str) -> bool:
        fields = dict(part.split("=", 1) for part in owner.split() if "=" in part)
        if fields.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(fields.get("pid", "0")), 0)
        except ProcessLookupError:
            return True
        except (ValueError, PermissionError):
            return False
        return False

    def release(self) -> None:
        with self._mutex:
            if self.held:
                try:
                    self.transport.run(f"rm -rf {q(self.path)}", after_stop=True)
                finally:
                    self.held = False

    def force_unlock(self) -> str:
        result = self.transport.run(f"cat {q(self.path)}/owner 2>/dev/null; rm -rf {q(self.path)}")
        return result.stdout.strip()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"
