"""One apply at a time: the lock directory on the master (here the sshd
fixture's host, with the lock under a per-test ``gfsdeploy_lock_dir``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from trust.test_secrets import ROOT

PLAYBOOK = """\
- hosts: all
  tasks:
    - name: write a file
      copy:
        dest: "{{ out }}/file"
        content: "{{ stamp }}\\n"
    - name: take some time
      command: sleep {{ nap }}
      when: nap | int > 0
"""


def gfs(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL)


def setup(sshd, tmp_path, stamp="one", nap=0):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    lock = tmp_path / "gfsdeploy.lock"
    inv = sshd.inventory(tmp_path / "inv.yaml",
                         f", out: {out}, stamp: {stamp}, nap: {nap}, gfsdeploy_lock_dir: {lock}")
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    return inv, str(pb), out, lock


def hold(lock, owner: str):
    lock.mkdir()
    (lock / "owner").write_text(owner + "\n")


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_held_lock_refuses_naming_the_owner(sshd, tmp_path):
    inv, pb, out, lock = setup(sshd, tmp_path)
    owner = "host=otherbox pid=4242 user=alice started=2024-01-01T10:00:00+0000"
    hold(lock, owner)
    proc = gfs("apply", inv, "-p", pb)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "another gfsdeploy run holds the lock" in text and owner in text and str(lock) in text
    assert "--force-unlock" in text
    assert not (out / "file").exists(), "nothing may change without the lock"
    assert (lock / "owner").read_text().strip() == owner, "someone else's lock is left alone"


def test_stale_lock_of_a_dead_process_here_is_taken_over(sshd, tmp_path):
    inv, pb, out, lock = setup(sshd, tmp_path)
    owner = f"host={socket.gethostname()} pid={dead_pid()} user=root started=2024-01-01T10:00:00+0000"
    hold(lock, owner)
    proc = gfs("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Took over a stale lock" in proc.stdout and owner in proc.stdout
    assert (out / "file").read_text() == "one\n"
    assert not lock.exists(), "the lock is released at the end"


def test_force_unlock_removes_any_lock(sshd, tmp_path):
    inv, pb, out, lock = setup(sshd, tmp_path)
    owner = "host=otherbox pid=4242 user=alice started=2024-01-01T10:00:00+0000"
    hold(lock, owner)
    proc = gfs("apply", inv, "-p", pb, "--force-unlock")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Removed the lock held by: {owner}" in proc.stdout
    assert (out / "file").read_text() == "one\n" and not lock.exists()


def test_noop_apply_takes_no_lock(sshd, tmp_path):
    inv, pb, out, lock = setup(sshd, tmp_path)
    assert gfs("apply", inv, "-p", pb).returncode == 0
    owner = "host=otherbox pid=4242 user=alice started=2024-01-01T10:00:00+0000"
    hold(lock, owner)
    proc = gfs("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No changes" in proc.stdout
    assert (lock / "owner").read_text().strip() == owner


def test_two_applies_at_once_exactly_one_proceeds(sshd, tmp_path):
    inv, pb, out, lock = setup(sshd, tmp_path, stamp="race", nap=4)
    env = {**os.environ, "PYTHONPATH": ROOT}
    procs = [subprocess.Popen([sys.executable, "-m", "gfsdeploy", "apply", inv, "-p", pb], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL) for _ in range(2)]
    results = [(p.wait(60), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(text for code, text in results if code == 1)
    assert "another gfsdeploy run holds the lock" in loser and "host=" in loser
    assert (out / "file").read_text() == "race\n"
    assert not lock.exists()
