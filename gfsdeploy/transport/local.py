"""``ansible_connection: local``: scripts run on the controller itself."""

from __future__ import annotations

import os
import subprocess

from gfsdeploy.transport.base import Result, Transport


class LocalTransport(Transport):
    def _is_target_user(self) -> bool:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name == self.become_user

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> Result:
        try:
            proc = subprocess.run(command, shell=True, input=stdin, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return Result(124, "", f"timed out after {timeout:.0f}s")
        return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))

    def forward(self, remote_host: str, remote_port: int) -> tuple[str, int]:
        return remote_host, remote_port
