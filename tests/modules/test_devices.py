"""devices: probe parsing and multi-device errors (no disks needed; see tests/test_devices_loop.py for real ones)."""

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


# plan and refusal tables: data/devices/devices.json (probe output → changes), run by test_tables.py


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
