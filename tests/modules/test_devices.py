"""devices: probe parsing and plan tables (no disks needed; see tests/test_devices_loop.py for real ones)."""

import pytest

from gfsdeploy.errors import PlaybookError, PreflightError
from gfsdeploy.modules.base import HostInfo
from gfsdeploy_glusterfs.modules.devices import Devices, parse_probe

HOST = HostInfo(name="k8s-2")
MOD = Devices()
CLEAN = "exists=yes\nblock=yes\npartitions=\nholders=\n--- wipefs\n{\n \"signatures\": [\n ]\n}\nrc=0\n--- blkid\nrc=2\n--- pvs\n"


def probe(sigs="", head="", pvs="", blkid="rc=2"):
    return (f"exists=yes\nblock=yes\npartitions=\nholders=\n{head}--- wipefs\n"
            f"{{\"signatures\": [{sigs}]}}\nrc=0\n--- blkid\n{blkid}\n--- pvs\n{pvs}")


XFS = '{"device":"sdb","offset":"0x0","type":"xfs","uuid":"1f2e","label":null}'
LVM = '{"device":"sdb","offset":"0x218","type":"LVM2_member","uuid":"abc-def","label":null}'
GPT = ('{"device":"sdb","offset":"0x200","type":"gpt","uuid":null,"label":null},'
       '{"device":"sdb","offset":"0x9ffe00","type":"gpt","uuid":null,"label":null},'
       '{"device":"sdb","offset":"0x1fe","type":"PMBR","uuid":null,"label":null}')
HEKETI_VG = "vg_" + "0123456789abcdef" * 2


@pytest.mark.parametrize("out, destroydata, expected", [
    (CLEAN, False, []),
    (probe(), True, []),
    (probe(LVM, pvs=f"  /dev/sdb|{HEKETI_VG}\n"), False, []),   # in use by heketi: re-run passes
    (probe(LVM, pvs=f"  /dev/sdb|{HEKETI_VG}\n", head="holders=dm-0 dm-1\n"), True, []),
    # a whole-device filesystem heketi's fstab mounts as its volume group (the lab's heketi)
    (probe(XFS, pvs=f"--- heketi fstab\n/var/lib/heketi/mounts/{HEKETI_VG}\n"), False, []),
    (probe(XFS), True, [("-", "wipe /dev/sdb (an xfs filesystem (UUID 1f2e))", "- an xfs filesystem (UUID 1f2e)")]),
    (probe(GPT, head="partitions=sdb1 sdb2\n"), True,
     [("-", "wipe /dev/sdb (a gpt partition table and partitions sdb1, sdb2)",
       "- a gpt partition table\n- partitions sdb1, sdb2")]),
])
def test_plan(out, destroydata, expected):
    args = MOD.validate({"devices": [{"name": "/dev/sdb", "destroydata": destroydata}]})
    changes = MOD.plan(args, {"/dev/sdb": parse_probe(out)}, HOST)
    assert [(c.action, c.resource, c.diff) for c in changes] == expected
    for change in changes:
        assert change.script.startswith("wipefs --all /dev/sdb\n")


@pytest.mark.parametrize("out, destroydata, message, fix", [
    ("exists=no\n", True, "k8s-2:/dev/sdb does not exist", "lsblk"),
    ("exists=yes\nblock=no\nkind=-\n", False, "k8s-2:/dev/sdb is not a block device (it is a regular file)", "raw disk"),
    (probe(XFS), False, "k8s-2:/dev/sdb has an xfs filesystem (UUID 1f2e); heketi needs a raw disk",
     "`wipefs --all /dev/sdb`"),
    (probe(XFS, pvs="--- heketi fstab\n/srv/data\n"), False, "k8s-2:/dev/sdb has an xfs filesystem", "wipefs"),
    (probe(LVM, pvs="  /dev/sdb|data\n"), False,
     "k8s-2:/dev/sdb has an LVM physical volume of volume group data (UUID abc-def)", "destroydata: true"),
    (probe(head="mount=/dev/sdb1 on /srv\n"), True, "k8s-2:/dev/sdb is in use: mounted /dev/sdb1 on /srv", "unmount"),
    (probe(head="swap=/dev/sdb\n"), True, "mounted /dev/sdb as swap", "unmount"),
    (probe(head="holders=dm-3 \n"), True, "k8s-2:/dev/sdb is held by dm-3", "vgremove"),
])
def test_refusals(out, destroydata, message, fix):
    args = MOD.validate({"devices": [{"name": "/dev/sdb", "destroydata": destroydata}]})
    with pytest.raises(PreflightError) as err:
        MOD.plan(args, {"/dev/sdb": parse_probe(out)}, HOST)
    assert message in err.value.message
    assert fix in err.value.fix
    assert err.value.host == "k8s-2"


def test_all_problems_in_one_error():
    args = MOD.validate({"devices": ["/dev/sdb", "/dev/sdc"]})
    with pytest.raises(PreflightError) as err:
        MOD.plan(args, {"/dev/sdb": parse_probe("exists=no\n"), "/dev/sdc": parse_probe(probe(XFS))}, HOST)
    assert "/dev/sdb does not exist" in err.value.message and "/dev/sdc has an xfs" in err.value.message


def test_blkid_fallback_when_wipefs_has_no_json():
    out = ("exists=yes\nblock=yes\npartitions=\nholders=\n--- wipefs\nrc=1\n--- blkid\n"
           "DEVNAME=/dev/sdb\nUUID=77\nTYPE=ext4\nUSAGE=filesystem\nrc=0\n--- pvs\n")
    args = MOD.validate({"devices": ["/dev/sdb"]})
    with pytest.raises(PreflightError, match="has an ext4 filesystem \\(UUID 77\\)"):
        MOD.plan(args, {"/dev/sdb": parse_probe(out)}, HOST)


def test_nothing_could_check_signatures():
    out = "exists=yes\nblock=yes\npartitions=\nholders=\n--- wipefs\nrc=127\n--- blkid\nrc=127\n--- pvs\n"
    with pytest.raises(PreflightError, match="could not be checked"):
        MOD.plan(MOD.validate({"devices": ["/dev/sdb"]}), {"/dev/sdb": parse_probe(out)}, HOST)


@pytest.mark.parametrize("devices", [["sdb"], ["/dev/sdb; reboot"], [{"name": "/etc/passwd"}]])
def test_bad_device_names_refused_at_validation(devices):
    with pytest.raises(PlaybookError):
        MOD.validate({"devices": devices})


def test_probe_quotes_device():
    probes = MOD.probes(MOD.validate({"devices": ["/dev/disk/by-id/ata-X_1"]}), HOST)
    assert probes["device0"].startswith("d=/dev/disk/by-id/ata-X_1\n")
