"""The devices preflight against real loop devices, through LocalTransport."""

import os
import shutil
import struct
import subprocess

import pytest

from gfsdeploy.errors import PreflightError
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy_glusterfs.modules.devices import Devices
from gfsdeploy.transport.local import LocalTransport

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("wipefs"),
    reason="needs root, losetup and wipefs")


@pytest.fixture
def loop(tmp_path):
    made = []

    def make():
        image = tmp_path / f"disk{len(made)}.img"
        with open(image, "wb") as f:
            f.truncate(16 * 1024 * 1024)
        try:
            dev = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                                 capture_output=True, text=True).stdout.strip()
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"no loop devices here: {exc.stderr.strip()}")
        made.append(dev)
        return dev

    yield make
    for dev in made:
        subprocess.run(["losetup", "-d", dev], check=False)


def run(devices, allow_destroy=False, do_apply=False):
    module = Devices()
    host = HostInfo(name="k8s-2")
    transport = LocalTransport("k8s-2")
    ctx = TaskContext(host, transport, task_name="device preflight")
    args = module.validate({"devices": devices, "allow_destroy": allow_destroy})
    state = module.read(args, transport.read_many(module.probes(args, host)), ctx)
    changes = module.plan(args, state, host)
    if do_apply:
        return changes, module.apply(args, changes, ctx)
    return changes, None


def test_raw_device_is_clean(loop):
    dev = loop()
    assert run([dev])[0] == []


def test_filesystem_is_refused_with_name_and_fix(loop):
    dev = loop()
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    with pytest.raises(PreflightError) as err:
        run([dev])
    text = str(err.value)
    assert f"k8s-2:{dev} has an ext4 filesystem (UUID" in text
    assert f"wipefs --all {dev}" in text and "destroydata: true" in text


def test_partition_table_is_refused(loop):
    dev = loop()
    mbr = bytearray(512)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 8192)
    mbr[510:512] = b"\x55\xaa"
    with open(dev, "r+b") as f:
        f.write(mbr)
    with pytest.raises(PreflightError, match="has a dos partition table"):
        run([dev])


def test_missing_device_is_refused(loop):
    with pytest.raises(PreflightError, match="k8s-2:/dev/gfsdeploy-no-such-disk does not exist"):
        run(["/dev/gfsdeploy-no-such-disk"])


def test_regular_file_is_refused(tmp_path):
    path = "/dev/shm/gfsdeploy-test-not-a-disk"
    open(path, "w").close()
    try:
        with pytest.raises(PreflightError, match="is not a block device \\(it is a regular file\\)"):
            run([path])
    finally:
        os.unlink(path)


def test_destroydata_plans_a_wipe_applies_it_and_is_then_clean(loop):
    dev = loop()
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    changes, _ = run([{"name": dev, "destroydata": True}])
    assert [(c.action, c.resource.split(" (")[0]) for c in changes] == [("-", f"wipe {dev}")]
    assert "ext4 filesystem" in changes[0].resource
    with pytest.raises(PreflightError, match="without confirmation"):
        run([{"name": dev, "destroydata": True}], do_apply=True)
    # refused apply changed nothing
    assert run([{"name": dev, "destroydata": True}])[0]
    _, result = run([{"name": dev, "destroydata": True}], allow_destroy=True, do_apply=True)
    assert result.changed
    assert run([dev])[0] == []


def test_mounted_device_is_refused(loop, tmp_path):
    dev = loop()
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    target = tmp_path / "mnt"
    target.mkdir()
    if subprocess.run(["mount", dev, str(target)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount here")
    try:
        with pytest.raises(PreflightError, match=f"is in use: mounted {dev} on {target}"):
            run([{"name": dev, "destroydata": True}])
    finally:
        subprocess.run(["umount", str(target)], check=False)


LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}


@pytest.mark.parametrize("vg, clean", [("vg_0123456789abcdef0123456789abcdef", True),
                                       ("gfsdeploy_test_vg", False)])
def test_lvm_pv_heketi_vg_is_in_use_not_dirty(loop, vg, clean):
    if not shutil.which("vgcreate"):
        pytest.skip("no lvm2")
    dev = loop()
    made = subprocess.run(["vgcreate", "-y", vg, dev], capture_output=True, env=LVM_ENV, timeout=30)
    if made.returncode != 0:
        pytest.skip(f"lvm unusable here: {made.stderr.decode().strip()}")
    try:
        if clean:
            assert run([dev])[0] == []
            assert run([{"name": dev, "destroydata": True}])[0] == []  # never wipe heketi's own PV
        else:
            with pytest.raises(PreflightError, match=f"LVM physical volume of volume group {vg}"):
                run([dev])
    finally:
        subprocess.run(["vgremove", "-y", vg], capture_output=True, env=LVM_ENV, timeout=30)
        subprocess.run(["pvremove", "-y", dev], capture_output=True, env=LVM_ENV, timeout=30)
