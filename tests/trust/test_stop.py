"""Stop means stop (lab, root): after SIGINT/SIGTERM no new remote command starts,
a file being written is old or new (never partial), the CLI exits 130/143 within
2 s and the lock is released.

"No new command" is checked on the host, not in gfsdeploy: the root login shell
of one node is a wrapper that logs the time of every SSH command before running
it (sshd runs every command through the login shell).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from trust.test_secrets import ROOT

pytestmark = pytest.mark.lab

LOGSH = "/usr/local/sbin/gfs-logsh"
LOG = "/root/gfs-commands.log"


def gfs(inv, *args):
    return subprocess.Popen([sys.executable, "-m", "gfsdeploy", args[0], str(inv), *args[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL)


def playbook(tmp_path, text: str) -> str:
    path = tmp_path / f"pb-{secrets.token_hex(3)}.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def logged_node(lab):
    """k8s-2's root login shell logs each command's start time (epoch seconds) to LOG."""
    node = "k8s-2"
    script = ("#!/bin/sh\n"
              f"date +%s.%N >> {LOG}\n"
              'exec /bin/sh "$@"\n')
    lab.exec(node, ["sh", "-c", f"cat > {LOGSH} && chmod 755 {LOGSH}"], input=script)
    lab.exec(node, ["sh", "-c", f"rm -f {LOG}; sed -i 's#^root:\\(.*\\):[^:]*$#root:\\1:{LOGSH}#' /etc/passwd"])
    assert lab.exec(node, ["sh", "-c", "getent passwd root | cut -d: -f7"]).stdout.strip() == LOGSH
    yield node
    lab.exec(node, ["sh", "-c", "sed -i 's#^root:\\(.*\\):[^:]*$#root:\\1:/bin/bash#' /etc/passwd"])


def command_times(lab, node) -> list[float]:
    out = lab.exec(node, ["sh", "-c", f"cat {LOG} 2>/dev/null || true"]).stdout
    return [float(x) for x in out.split()]


def interrupt(proc, sig, when) -> tuple[int, float, str, float]:
    """Wait until ``when(line)`` is true for a line of output, send ``sig``; return the exit
    code, the seconds from the signal to the exit, the whole output and when it was sent."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if when(line):
            break
    sent = time.time()
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    return proc.returncode, time.time() - sent, "".join(lines) + rest, sent


STEPS = """\
- hosts: all
  tasks:
{steps}
"""


def slow_steps(d: str, n: int = 6) -> str:
    return "\n".join(f"    - name: step {i}\n      shell: sleep 1; echo {i} >> {d}/steps\n"
                     f"      args: {{creates: {d}/never}}" for i in range(n))


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_apply_stops_starting_commands_at_the_signal(lab, logged_node, tmp_path, sig, code):
    d = f"/root/gfs-stop-{secrets.token_hex(3)}"
    for n in lab.nodes:
        lab.exec(n.name, ["mkdir", "-p", d])
    pb = playbook(tmp_path, STEPS.format(steps=slow_steps(d)))
    proc = gfs(lab.inventory_path, "apply", "-p", pb)
    rc, took, out, sent = interrupt(proc, sig, lambda line: "changed: step 1" in line)
    assert rc == code, out
    assert took < 2.0, f"exit took {took:.1f}s after the signal\n{out}"
    assert "Interrupted" in out
    time.sleep(2.5)  # anything the controller had left running would have started by now
    late = [t for t in command_times(lab, logged_node) if t > sent + 0.05]
    assert not late, f"{len(late)} command(s) started on {logged_node} after the signal\n{out}"
    steps = lab.exec(logged_node, ["cat", f"{d}/steps"]).stdout.split()
    assert 2 <= len(steps) < 6, steps
    # the lock (on k8s-1, the first host) was released: a new run takes it at once
    again = gfs(lab.inventory_path, "apply", "-p", pb)
    out2, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out2
    assert "holds the lock" not in out2


def test_plan_stops_at_sigterm(lab, logged_node, tmp_path):
    pb = playbook(tmp_path, """\
- hosts: all
  tasks:
    - name: a slow read
      command: sleep 2
      check_mode: false
      changed_when: false
    - name: another slow read
      command: sleep 2
      check_mode: false
      changed_when: false
""")
    proc = gfs(lab.inventory_path, "plan", "-p", pb)
    time.sleep(1.5)  # inside the first read
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    took = time.time() - sent
    assert proc.returncode == 143, out
    assert took < 2.0, f"exit took {took:.1f}s after the signal\n{out}"
    time.sleep(3)
    late = [t for t in command_times(lab, logged_node) if t > sent + 0.05]
    assert not late, f"{len(late)} command(s) started on {logged_node} after the signal\n{out}"


# `validate` runs between writing the temp file and renaming it: it keeps the write in
# flight for a few seconds, long enough to be caught there by a watcher on the node
BIG = """\
- hosts: all
  tasks:
    - name: big file
      copy: {{src: "{src}", dest: "{d}/big", validate: "sh -c 'sleep {pause}; test -s \\"$0\\"' %s"}}
"""


def test_sigint_mid_write_leaves_the_old_or_the_new_file(lab, tmp_path):
    """The signal arrives while the new content is being written on a node (its temp
    file exists there, the rename has not happened): afterwards every node has the old
    or the new file, whole, and no temp file."""
    d = f"/root/gfs-write-{secrets.token_hex(3)}"
    old = tmp_path / "old"
    old.write_bytes(b"old content\n")
    new = tmp_path / "new"
    new.write_bytes(os.urandom(2 * 1024 * 1024))
    for n in lab.nodes:
        lab.exec(n.name, ["mkdir", "-p", d])
    first = gfs(lab.inventory_path, "apply", "-p", playbook(tmp_path, BIG.format(src=old, d=d, pause=0)))
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    pb = playbook(tmp_path, BIG.format(src=new, d=d, pause=4))
    # a watcher in each node reports the moment a temp file of the write exists there
    watch = (f"while :; do for f in {d}/.gfsdeploy.*; do [ -e \"$f\" ] && echo seen && exit 0; done; done")
    watchers = [subprocess.Popen(["nsenter", "-t", str(n.init_pid), "-m", "-u", "-n", "-p", "-r", "-w", "--",
                                  "sh", "-c", watch], stdout=subprocess.PIPE, text=True) for n in lab.nodes]
    try:
        proc = gfs(lab.inventory_path, "apply", "-p", pb)
        import selectors

        sel = selectors.DefaultSelector()
        for w in watchers:
            sel.register(w.stdout, selectors.EVENT_READ)
        caught = sel.select(timeout=180)
        assert caught, "never saw the write in flight"
    finally:
        for w in watchers:
            w.kill()
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert time.time() - sent < 2.0, out
    want = {hashlib.sha256(b"old content\n").hexdigest(): "old", hashlib.sha256(new.read_bytes()).hexdigest(): "new"}
    time.sleep(6)  # a script already running on a host finishes (or stops) on its own
    for n in lab.nodes:
        digest = lab.exec(n.name, ["sha256sum", f"{d}/big"]).stdout.split()[0]
        assert digest in want, f"{n.name}: half-written file"
        listing = lab.exec(n.name, ["ls", "-A", d]).stdout.split()
        assert listing == ["big"], f"{n.name}: temp files left: {listing}"
    again = gfs(lab.inventory_path, "apply", "-p", pb)
    out, _ = again.communicate(timeout=180)
    assert again.returncode == 0, out
    for n in lab.nodes:
        assert lab.exec(n.name, ["sha256sum", f"{d}/big"]).stdout.split()[0] == hashlib.sha256(new.read_bytes()).hexdigest()
