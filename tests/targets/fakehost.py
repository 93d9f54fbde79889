"""A fake host of another distribution, built from recorded facts, for recording probes.

The real probes of the real modules run in ``/bin/sh`` on a root filesystem that is
this machine's ``/`` under an overlay holding the distribution's recorded facts:

- files (``/etc/os-release``, ``/etc/selinux/config``, ``/etc/hosts``, ``/etc/ufw/…``),
  and tools it does not have removed (``apt-get`` on EL, ``rpm`` on Debian);
- a ``/proc`` that is a plain directory of recorded files (``1/comm``, ``modules``,
  ``locks``, ``self/mounts``, ``swaps``), a ``/sys`` of recorded directories, and at
  ``/sys/fs/cgroup`` a real ``tmpfs`` (v1) or ``cgroup2`` (v2) mount, so
  ``stat -fc %T`` answers what the distribution's would;
- a block device ``/dev/sdb``;
- a stub in front of every command the distribution answers differently
  (``getenforce``, ``firewall-cmd``, ``systemctl``, ``rpm``, ``dpkg-query``, ``pvs``,
  ``wipefs``, ``iptables``…): a small shell script that prints the recorded output for
  those arguments (``commands: {name: [{args | args_re, stdout, stderr, rc}]}``; package
  queries from ``installed:``). A call nobody recorded prints ``UNRECORDED`` and is
  logged, and the test fails on it — the recorded facts are complete for what the
  playbooks ask.

Each script runs in a private mount namespace (``unshare --mount``) chrooted into
the overlay, as root; nothing reaches this machine. Needs root and overlayfs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from gfsdeploy.transport.base import Result, Transport

HERE = Path(__file__).parent
FAKEBIN = "/usr/local/fakebin"
PATH = f"{FAKEBIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def available() -> str | None:
    """Why a fake host cannot be built here (None: it can)."""
    if os.geteuid() != 0:
        return "fake hosts need root (overlay mounts, chroot)"
    for tool in ("unshare", "chroot", "mount"):
        if not shutil.which(tool):
            return f"missing {tool}"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "no overlayfs"
    return None


def load_spec(target: str) -> dict:
    return yaml.safe_load((HERE / "hosts" / f"{target}.yaml").read_text())


class FakeHost:
    """One host of a target distribution (``hosts/<target>.yaml``), named ``name``."""

    def __init__(self, target: str, name: str, *, spec: dict | None = None, overrides: dict | None = None):
        self.target = target
        self.name = name
        self.spec = _merge(spec or load_spec(target), overrides or {})
        self.dir = Path(tempfile.mkdtemp(prefix=f"fakehost-{target}-{name}-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(self.dir)], check=True)
        for sub in ("upper", "work", "root"):
            (self.dir / sub).mkdir()
        self.log = self.dir / "upper" / "fakehost-calls.log"
        self._build()

    # -- the overlay ---------------------------------------------------------------
    def _build(self) -> None:
        up = self.dir / "upper"
        spec = self.spec
        for command in sorted(set(spec.get("commands") or {}) | set(spec.get("builtin") or {})):
            stub = up / FAKEBIN.lstrip("/") / command
            _write(stub, _stub_script(command, spec, self.name))
            stub.chmod(0o755)
        for path, content in (spec.get("files") or {}).items():
            _write(up / path.lstrip("/"), str(content).replace("@HOSTNAME@", self.name))
        proc = up / "proc"
        proc.mkdir(parents=True, exist_ok=True)
        _write(proc / "1" / "comm", (spec.get("pid1") or "systemd") + "\n")
        for path, content in (spec.get("proc") or {}).items():
            _write(proc / path, str(content))
        for path in ("modules", "locks", "swaps", "self/mounts"):
            if not (proc / path).exists():
                _write(proc / path, "" if path != "swaps" else "Filename\tType\tSize\tUsed\tPriority\n")
        for path in spec.get("sys_dirs") or []:
            (up / "sys" / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (up / "sys" / "fs" / "cgroup").mkdir(parents=True, exist_ok=True)
        (up / "sys" / "class" / "block" / "sdb" / "holders").mkdir(parents=True, exist_ok=True)
        (up / "dev").mkdir(exist_ok=True)
        for dev, kind, major, minor in (("null", "c", 1, 3), ("zero", "c", 1, 5), ("urandom", "c", 1, 9),
                                        ("sdb", "b", 8, 16)):
            os.mknod(up / "dev" / dev, 0o666 | (0o020000 if kind == "c" else 0o060000), os.makedev(major, minor))
        (up / "tmp").mkdir(exist_ok=True)
        os.chmod(up / "tmp", 0o1777)
        # tools the distribution does not have (whiteouts, made through the mounted overlay)
        removals = " ".join(shlex.quote("root" + p) for p in spec.get("absent") or [])
        script = (f"cd {shlex.quote(str(self.dir))} && {self._mount_overlay()}"
                  + (f" && rm -rf {removals}" if removals else ""))
        subprocess.run(["unshare", "--mount", "sh", "-c", script], check=True)

    def _mount_overlay(self) -> str:
        return (f"mount -t overlay overlay -o lowerdir=/,upperdir={self.dir}/upper,workdir={self.dir}/work "
                f"{self.dir}/root")

    def _launcher(self) -> list[str]:
        cgroup = self.spec.get("cgroup", "v1")
        root = f"{self.dir}/root"
        mounts = {"v2": f"mount -t cgroup2 none {root}/sys/fs/cgroup",
                  "v1": f"mount -t tmpfs tmpfs {root}/sys/fs/cgroup",
                  "hybrid": (f"mount -t tmpfs tmpfs {root}/sys/fs/cgroup && mkdir {root}/sys/fs/cgroup/unified && "
                             f"mount -t cgroup2 none {root}/sys/fs/cgroup/unified")}[cgroup]
        return ["unshare", "--mount", "sh", "-c",
                f"mount --make-rprivate / && {self._mount_overlay()} && {mounts} && "
                f"exec chroot {root} /usr/bin/env -i PATH={PATH} HOME=/root LC_ALL=C /bin/sh -s"]

    def run(self, script: str, timeout: float = 60) -> Result:
        proc = subprocess.run(self._launcher(), input=script.encode(), capture_output=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))

    def unrecorded(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.dir)], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class FakeHostTransport(Transport):
    """A transport whose scripts run in a FakeHost (as root: no escalation to do)."""

    def __init__(self, host: FakeHost, **kwargs):
        super().__init__(host.name, **kwargs)
        self.fake = host

    def run(self, script: str, *, timeout: float | None = None, kind: str = "run", **_) -> Result:
        from gfsdeploy.transport.base import CommandRecord

        record = CommandRecord(script=script, kind=kind)
        with self._lock:
            self.round_trips += 1
            self.command_log.append(record)
        result = self.fake.run(script, timeout=timeout or 60)
        record.rc = result.rc
        return result

    def login_user(self):
        return "root"

    def forward(self, remote_host, remote_port, **_):
        raise NotImplementedError


def _stub_script(command: str, spec: dict, hostname: str) -> str:
    """The stub as a shell script (a program start per probe call must stay cheap):
    the first rule whose ``args`` (all arguments, space-joined) or ``args_re`` (an ERE on
    them) matches answers; ``builtin`` package queries answer from ``installed``."""
    lines = ["#!/bin/sh", 'a="$*"']
    builtin = (spec.get("builtin") or {}).get(command)
    installed = spec.get("installed") or {}
    if builtin == "installed" and command == "rpm":
        cases = "".join(f"    {shlex.quote(n)}) v={shlex.quote(str(ver).split('-')[0])};;\n" for n, ver in installed.items())
        lines += ['if [ "$1" = -q ] && [ "$2" = --qf ]; then', '  fmt=$3; shift 3; miss=0', '  for n; do',
                  '    case "$n" in', cases + '    *) echo "package $n is not installed"; miss=$((miss+1)); continue;;',
                  '    esac',
                  '    printf "$(printf %s "$fmt" | sed -e "s/%{NAME}/$n/g" -e "s/%{VERSION}/$v/g")"',
                  '  done; exit $miss', 'fi']
    if builtin == "installed" and command == "dpkg-query":
        cases = "".join(f"    {shlex.quote(n)}) v={shlex.quote(str(ver))};;\n" for n, ver in installed.items())
        lines += ['if [ "$1" = -W ] && [ "${2#-f=}" != "$2" ]; then', '  fmt=${2#-f=}; shift 2; rc=0', '  for n; do',
                  '    case "$n" in', cases + '    *) echo "dpkg-query: no packages found matching $n" >&2; rc=1; continue;;',
                  '    esac',
                  '    printf "$(printf %s "$fmt" | sed -e "s/\\${Package}/$n/g" -e "s/\\${db:Status-Status}/installed/g"'
                  ' -e "s/\\${Version}/$v/g")"',
                  '  done; exit $rc', 'fi']
    for i, rule in enumerate((spec.get("commands") or {}).get(command) or []):
        if "args" in rule:
            test = f'[ "$a" = {shlex.quote(" ".join(rule["args"]))} ]'
        elif "args_re" in rule:
            test = f"printf '%s' \"$a\" | grep -Eq {shlex.quote(rule['args_re'])}"
        else:
            test = "true"
        out = str(rule.get("stdout", "")).replace("@HOSTNAME@", hostname)
        err = str(rule.get("stderr", "")).replace("@HOSTNAME@", hostname)
        lines.append(f"if {test}; then")
        if out:
            lines.append(f"  printf '%s' {shlex.quote(out)}")
        if err:
            lines.append(f"  printf '%s' {shlex.quote(err)} >&2")
        lines.append(f"  exit {int(rule.get('rc', 0))}")
        lines.append("fi")
    lines += [f"printf '%s\\n' {shlex.quote(command)}\" $a\" >> /fakehost-calls.log",
              f"echo \"UNRECORDED: {command} $a\" >&2", "exit 127"]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
