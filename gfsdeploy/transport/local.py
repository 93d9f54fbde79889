"""``ansible_connection: local`` (and ``delegate_to: localhost``): scripts run on the controller.

The same wrapper as over SSH, fed through a pipe: if the controller dies, the
pipe closes and the wrapper ends the script, as a dead SSH connection does.
A pty (for sudo's ``requiretty``) is made with ``setsid -c`` so it becomes the
command's controlling terminal.
"""

from __future__ import annotations

import errno
import os
import select
import subprocess

from gfsdeploy.transport.base import Channel, Transport


class _ProcessChannel(Channel):
    def __init__(self, command: str, *, pty: bool):
        self.pty = pty
        self._ended: set[int] = set()
        if pty:
            master, slave = os.openpty()
            try:
                self.proc = subprocess.Popen(["setsid", "-c", "sh", "-c", command], stdin=slave, stdout=slave,
                                             stderr=slave, close_fds=True)
            finally:
                os.close(slave)
            self._fds = {master: "out"}
            self._stdin = master
        else:
            self.proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, close_fds=True)
            self._fds = {self.proc.stdout.fileno(): "out", self.proc.stderr.fileno(): "err"}
            self._stdin = self.proc.stdin.fileno()
        for fd in self._fds:
            os.set_blocking(fd, False)
        self._poll = select.poll()
        for fd in self._fds:
            self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._wake_r, self._wake_w = os.pipe()  # abort() from another thread wakes wait()
        self._poll.register(self._wake_r, select.POLLIN)
        self._closed = False

    def abort(self) -> None:
        self.aborted = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._stdin, view)
            except BlockingIOError:
                select.select([], [self._stdin], [], 1.0)
                continue
            view = view[n:]

    def wait(self, timeout: float) -> None:
        if len(self._ended) == len(self._fds):
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            return
        if self.pty or self.proc.poll() is not None:
            # a pty's EOF waits for every holder of the terminal: check the exit often
            timeout = min(timeout, 0.05)
        self._poll.poll(max(0, int(timeout * 1000)))

    def read(self) -> tuple[bytes, bytes]:
        got = {"out": bytearray(), "err": bytearray()}
        for fd, name in self._fds.items():
            if fd in self._ended:
                continue
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as exc:  # a pty's master reads EIO once the other side is gone
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    self._ended.add(fd)
                    self._poll.unregister(fd)
                    break
                got[name] += data
        return bytes(got["out"]), bytes(got["err"])

    def finished(self) -> bool:
        # the command's own process has exited and what it wrote is read: a background
        # child still holding the terminal or a pipe (the wrapper's watchdog reader on
        # its way out, a daemon) does not keep the step waiting
        return self._closed or self.proc.poll() is not None

    def exit_status(self) -> int | None:
        rc = self.proc.poll()
        if rc is None or rc < 0:
            return None
        return rc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # closing stdin (or the pty) is what a dead controller looks like: the wrapper ends the script
        if self.pty:
            for fd in list(self._fds):
                try:
                    os.close(fd)
                except OSError:
                    pass
        else:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class LocalTransport(Transport):
    def login_user(self) -> str | None:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name

    def _is_target_user(self) -> bool:
        return self.login_user() == self.become_user

    def _open(self, command: str, *, pty: bool) -> Channel:
        return _ProcessChannel(command, pty=pty)

    def run(self, script: str, **kwargs):
        if kwargs.get("kind", "run") == "read":
            return super().run(script, **kwargs)
        Transport.local_commands += 1  # before and after: a file read meanwhile is not trusted
        try:
            return super().run(script, **kwargs)
        finally:
            Transport.local_commands += 1

    def forward(self, remote_host: str, remote_port: int, *, purpose: str = "") -> tuple[str, int]:
        return remote_host, remote_port
