"""A file replaced by rename keeps its SELinux context: the write script, run for real
here with stand-ins for selinuxenabled/chcon/restorecon that log their calls (this
machine has no SELinux) — the temp file takes the old file's context before the rename;
a new file gets the policy default after it; without SELinux neither is called."""

from __future__ import annotations

import os
import subprocess

from gfsdeploy.modules.files import write_script


def run(tmp_path, script, selinux: bool):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    for tool, rc in (("selinuxenabled", 0 if selinux else 1), ("chcon", 0), ("restorecon", 0)):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit {rc}\n')
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines() if log.exists() else []


def test_replaced_file_keeps_its_context(tmp_path):
    target = tmp_path / "hosts"
    target.write_text("old\n")
    calls = run(tmp_path, write_script(str(target), b"new\n"), selinux=True)
    assert target.read_text() == "new\n"
    chcon = [c for c in calls if c.startswith("chcon ")]
    assert len(chcon) == 1 and chcon[0].startswith(f"chcon --reference={target} -- {tmp_path}/.gfsdeploy.")
    assert not any(c.startswith("restorecon") for c in calls)


def test_new_file_gets_the_policy_default(tmp_path):
    target = tmp_path / "new.conf"
    calls = run(tmp_path, write_script(str(target), b"x\n"), selinux=True)
    assert target.read_text() == "x\n"
    assert calls == ["selinuxenabled ", f"restorecon -- {target}"]


def test_no_selinux_no_calls(tmp_path):
    target = tmp_path / "hosts"
    target.write_text("old\n")
    calls = run(tmp_path, write_script(str(target), b"new\n"), selinux=False)
    assert target.read_text() == "new\n" and calls == ["selinuxenabled "]
