"""A test double for the heketi simulator's executor (tests without a lab): it records every
command heketi would run in a glusterfs pod and answers as a healthy pod would, unless told
otherwise. The lab tests (tests/lab/) run the same heketi against real glusterd."""
from __future__ import annotations

from gfsdeploy_glusterfs.lab.simulators.heketi import ExecFailure

DOWN = "Connection failed. Please check if gluster daemon is operational."


class FakeGlusterPods:
    def __init__(self, size_kib: int = 10 * 1024 * 1024):
        self.commands: list[tuple[str, str]] = []    # (host, command), in order
        self.down: set[str] = set()                  # hosts whose glusterd does not answer
        self.missing: set[str] = set()               # hosts without a glusterfs pod
        self.signatures: dict[str, str] = {}         # host -> `blkid -p -o export` output of its device
        self.fail: dict[str, str] = {}               # command substring -> stderr it fails with
        self.size_kib = size_kib
        self.peers: list[str] = []                   # storage addresses probed so far

    def run(self, host: str, command: str, timeout_minutes: int = 10) -> str:
        if host in self.missing:
            raise ExecFailure(f"Unable to find a GlusterFS pod on host {host} with a label key glusterfs-node")
        self.commands.append((host, command))
        for needle, error in self.fail.items():
            if needle in command:
                raise ExecFailure(error)
        if host in self.down and (command.startswith("systemctl") or "gluster " in command):
            raise ExecFailure(DOWN if "gluster " in command else "glusterd is not running")
        if " peer probe " in command:
            self.peers.append(command.rsplit(" ", 1)[1])
        if command.endswith(" pool list"):
            return "UUID\tHostname\tState\n" + "".join(
                f"{i:032x}\t{peer}\tConnected \n" for i, peer in enumerate(self.peers)) + \
                f"{99:032x}\tlocalhost\tConnected \n"
        if "blkid -p" in command:
            return self.signatures.get(host, "")
        if command.startswith("df -k"):
            return f"{self.size_kib}\n"
        return ""

    def on(self, host: str) -> list[str]:
        return [c for h, c in self.commands if h == host]

    def matching(self, needle: str) -> list[tuple[str, str]]:
        return [(h, c) for h, c in self.commands if needle in c]
