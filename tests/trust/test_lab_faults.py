"""Faults in the middle of an apply, on the local lab (root; skipped otherwise):
a node's sshd killed, a node's link cut, SIGINT while large files are written;
and a node's regenerated host key."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time

import paramiko
import pytest

from trust.test_secrets import ROOT

pytestmark = pytest.mark.lab

SLOW_PLAYBOOK = """\
- hosts: all
  tasks:
    - name: first file
      copy: {{dest: "{d}/first", content: "one\\n"}}
    - name: take a while
      command: sleep 4
      args: {{creates: "{d}/slept"}}
    - name: remember the nap
      copy: {{dest: "{d}/slept", content: ""}}
    - name: marker block
      blockinfile: {{path: "{d}/conf", create: true, block: "after the nap"}}
"""

BIG_PLAYBOOK = """\
- hosts: all
  tasks:
    - name: make the directory
      command: mkdir -p {d}
      args: {{creates: "{d}"}}
    - name: big file
      copy: {{src: "{src}", dest: "{d}/big"}}
"""


def gfs(inv, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "gfsdeploy", *args[:1], str(inv), *args[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL, **kwargs)


def wait_for_changes(proc) -> str:
    """Read the output until apply starts changing hosts (the plan pass is over)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Applying:"):
            return "".join(seen)
    raise AssertionError("apply never started changing:\n" + "".join(seen))


def finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def node_file(lab, node, path):
    res = lab.exec(node, ["cat", path])
    return res.stdout if res.returncode == 0 else None


def playbook(tmp_path, text, **fmt):
    path = tmp_path / f"pb-{secrets.token_hex(3)}.yaml"
    path.write_text(text.format(**fmt))
    return str(path)


def test_sshd_killed_mid_run_fails_that_host_only_and_rerun_converges(lab, tmp_path):
    d = f"/root/gfs-trust-{secrets.token_hex(3)}"
    for n in lab.nodes:
        lab.exec(n.name, ["mkdir", "-p", d], check=True)
    pb = playbook(tmp_path, SLOW_PLAYBOOK, d=d)
    proc = gfs(lab.inventory_path, "apply", "-p", pb)
    before = wait_for_changes(proc)
    time.sleep(1.5)  # inside "take a while"
    lab.exec("k8s-2", ["sh", "-c", "kill -9 $(pidof sshd)"])
    try:
        code, out = finish(proc)
        out = before + out
        assert code == 1, out
        assert re.search(r"k8s-2.*(connection|closed|lost)", out), out
        recap = out[out.index("RECAP"):]
        assert re.search(r"k8s-2 .*(FAILED|UNREACHABLE)", recap), recap
        for ok in ("k8s-1", "k8s-3"):
            assert re.search(rf"{ok} .*failed=0", recap), recap
            assert "after the nap" in node_file(lab, ok, f"{d}/conf")
        assert node_file(lab, "k8s-2", f"{d}/conf") is None
    finally:
        lab.start_sshd("k8s-2")
    code, out = finish(gfs(lab.inventory_path, "apply", "-p", pb))
    assert code == 0, out
    assert "after the nap" in node_file(lab, "k8s-2", f"{d}/conf")
    code, out = finish(gfs(lab.inventory_path, "plan", "-p", pb))
    assert code == 0, out


def test_link_cut_times_out_instead_of_hanging(lab, tmp_path):
    d = f"/root/gfs-trust-{secrets.token_hex(3)}"
    for n in lab.nodes:
        lab.exec(n.name, ["mkdir", "-p", d], check=True)
    pb = playbook(tmp_path, SLOW_PLAYBOOK, d=d)
    proc = gfs(lab.inventory_path, "apply", "-p", pb)
    before = wait_for_changes(proc)
    started = time.monotonic()
    time.sleep(1.5)  # inside "take a while"
    lab.cut_link("k8s-3")
    try:
        code, out = finish(proc, timeout=90)
        out = before + out
        elapsed = time.monotonic() - started
    finally:
        lab.restore_link("k8s-3")
    assert code == 1, out
    assert elapsed < 45, f"took {elapsed:.0f}s: a cut link must fail in ~30 s\n{out}"
    assert re.search(r"k8s-3.*(timed out|lost|closed)", out), out
    assert "after the nap" in node_file(lab, "k8s-1", f"{d}/conf")


def test_sigint_leaves_no_half_written_file(lab, tmp_path):
    d = f"/root/gfs-trust-{secrets.token_hex(3)}"
    old = tmp_path / "old"
    old.write_bytes(b"old content\n")
    new = tmp_path / "new"
    new.write_bytes(os.urandom(12 * 1024 * 1024))
    code, out = finish(gfs(lab.inventory_path, "apply", "-p", playbook(tmp_path, BIG_PLAYBOOK, d=d, src=old)))
    assert code == 0, out
    pb = playbook(tmp_path, BIG_PLAYBOOK, d=d, src=new)
    proc = gfs(lab.inventory_path, "apply", "-p", pb)
    for line in proc.stdout:
        if line.startswith("Applying:"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code in (0, 1, 130), out
    import hashlib

    want = {hashlib.sha256(b"old content\n").hexdigest(), hashlib.sha256(new.read_bytes()).hexdigest()}
    for n in lab.nodes:
        listing = lab.exec(n.name, ["ls", "-A", d]).stdout.split()
        assert listing == ["big"], f"{n.name}: temp files left: {listing}"
        digest = lab.exec(n.name, ["sha256sum", f"{d}/big"]).stdout.split()[0]
        assert digest in want, f"{n.name}: half-written file"
    code, out = finish(gfs(lab.inventory_path, "apply", "-p", pb))
    assert code == 0, out
    for n in lab.nodes:
        assert lab.exec(n.name, ["sha256sum", f"{d}/big"]).stdout.split()[0] == \
            hashlib.sha256(new.read_bytes()).hexdigest()


def test_changed_host_key_is_refused_with_both_fingerprints(lab, tmp_path):
    node = lab.node("k8s-1")
    known = str(lab.known_hosts_path)
    old_fp = {k.get_name(): k.fingerprint for k in paramiko.HostKeys(known).lookup(node.ip).values()}
    key = "/etc/ssh/ssh_host_ed25519_key"
    lab.exec(node.name, ["sh", "-c", f"cp -p {key} /root/hk.bak && cp -p {key}.pub /root/hk.pub.bak && "
                                     f"rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -f {key}"], check=True)
    try:
        lab.stop_sshd(node.name)
        lab.start_sshd(node.name)
        new_pub = lab.exec(node.name, ["cat", f"{key}.pub"]).stdout.split()
        new_fp = paramiko.PKey.from_type_string(new_pub[0], __import__("base64").b64decode(new_pub[1])).fingerprint
        pb = tmp_path / "pb.yaml"
        pb.write_text("- hosts: all\n  tasks:\n    - debug: {msg: hi}\n")
        for extra in ((), ("--accept-new-host-keys",)):
            code, out = finish(gfs(lab.inventory_path, "plan", "-p", str(pb), *extra))
            assert code == 1, out
            assert "has CHANGED" in out and known in out, out
            assert new_fp in out and any(fp in out for fp in old_fp.values()), out
        assert {k.get_name(): k.fingerprint for k in paramiko.HostKeys(known).lookup(node.ip).values()} == old_fp
    finally:
        lab.exec(node.name, ["sh", "-c", f"cp -p /root/hk.bak {key} && cp -p /root/hk.pub.bak {key}.pub"])
        lab.stop_sshd(node.name)
        lab.start_sshd(node.name)
