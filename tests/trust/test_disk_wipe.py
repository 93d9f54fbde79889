"""Nothing is wiped unless the device says ``destroydata: true`` AND the user
confirms (``--yes``, or typing 'yes' on a terminal). Through the real CLI,
against a loop device carrying an ext4 signature (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from trust.test_secrets import ROOT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("losetup", "wipefs", "mkfs.ext4", "blkid")),
    reason="needs root, losetup, wipefs, mkfs.ext4 and blkid")

PLAYBOOK = """\
- hosts: all
  tasks:
    - name: storage devices
      tags: [preflight]
      devices:
        devices: "{{ devices }}"
"""


@pytest.fixture
def disk(tmp_path):
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    try:
        dev = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                             text=True).stdout.strip()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no loop devices here: {exc.stderr.strip()}")
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
    yield dev
    subprocess.run(["losetup", "-d", dev], check=False)


def signature(dev: str) -> str:
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", dev], capture_output=True,
                          text=True).stdout.strip()


def files(tmp_path, dev: str, destroydata: bool):
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"""all:
  hosts:
    node1:
      ansible_connection: local
      gfsdeploy_lock_dir: {tmp_path}/lock
      devices:
        - name: {dev}
          destroydata: {str(destroydata).lower()}
""")
    pb = tmp_path / "pb.yaml"
    pb.write_text(PLAYBOOK)
    return str(inv), str(pb)


def gfs(*args, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": ROOT}, **kwargs)


def test_destroydata_plan_shows_destroy_apply_needs_yes(disk, tmp_path):
    inv, pb = files(tmp_path, disk, destroydata=True)
    plan = gfs("plan", inv, "-p", pb)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert f"- wipe {disk}" in plan.stdout and "ext4" in plan.stdout
    assert "1 to destroy" in plan.stdout

    refused = gfs("apply", inv, "-p", pb)  # no --yes, no terminal
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "no terminal to confirm" in refused.stderr and "--yes" in refused.stderr
    assert signature(disk) == "ext4", "refused apply must not wipe"

    done = gfs("apply", inv, "-p", pb, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert signature(disk) == ""
    again = gfs("plan", inv, "-p", pb)
    assert again.returncode == 0, again.stdout


def test_without_destroydata_even_yes_refuses(disk, tmp_path):
    inv, pb = files(tmp_path, disk, destroydata=False)
    for args in (("plan", inv, "-p", pb), ("apply", inv, "-p", pb, "--yes"), ("check", inv, "-p", pb)):
        proc = gfs(*args)
        text = proc.stdout + proc.stderr
        assert proc.returncode == 1, text
        assert disk in text and "destroydata: true" in text
    assert signature(disk) == "ext4"


def test_terminal_confirmation(disk, tmp_path):
    """On a terminal apply asks; anything but 'yes' aborts, 'yes' wipes."""
    inv, pb = files(tmp_path, disk, destroydata=True)
    for answer, code, sig in (("no\n", 1, "ext4"), ("yes\n", 0, "")):
        master, slave = os.openpty()
        try:
            os.write(master, answer.encode())
            proc = gfs("apply", inv, "-p", pb, stdin=slave)
        finally:
            os.close(slave)
            os.close(master)
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert "DESTROYS data" in proc.stdout and disk in proc.stdout
        assert signature(disk) == sig
