"""``devices``: preflight of the raw block devices heketi will turn into LVM PVs.

Each device must exist, be a block device, not be mounted, swapped on or held
by device-mapper, and carry no filesystem, partition table or LVM signature.
A dirty device marked ``destroydata: true`` becomes a ``-`` destroy in the plan
(``wipefs --all``), applied only when the CLI says the user agreed
(``allow_destroy``). A PV heketi itself created (VG ``vg_<32 hex>``) is "in use
by heketi": a re-run after a deployment passes without touching it.

LVM's devices file (on by default on RHEL/Rocky 9: ``/etc/lvm/devices/system.devices``)
hides every PV on a device not listed in it — heketi creates its PVs from inside
the glusterfs pod, so the host's file never lists them and a plain ``pvs`` on the
host says nothing. Where LVM knows the option, the probe reads with
``--devicesfile ""`` (no devices file: every device is visible), so a re-run
recognises heketi's PVs instead of refusing the disk (docs/TARGETS.md).
"""

from __future__ import annotations

import json
import re

from gfsdeploy.errors import PlaybookError, PreflightError
from gfsdeploy.modules.base import DESTROY, Change, HostInfo, Module, Param, TaskResult, q
from gfsdeploy.validate import device as check_device

HEKETI_VG = re.compile(r"^vg_[0-9a-f]{32}$")
# a whole device heketi's fstab mounts where a volume group of heketi's would be: the
# device's filesystem holds the bricks as directories (the local lab's heketi, which
# cannot use device-mapper, does this; docs/LAB.md)
HEKETI_DEVICE_MOUNT = re.compile(r"^/var/lib/heketi/mounts/vg_[0-9a-f]{32}$")
_PARTITION_TABLES = {"dos", "gpt", "PMBR", "atari", "bsd", "sun", "sgi", "mac", "aix"}

_PROBE = r"""d=%(dev)s
[ -e "$d" ] || { echo exists=no; exit 0; }
echo exists=yes
if [ ! -b "$d" ]; then echo block=no; echo "kind=$(ls -ld "$d" | cut -c1)"; exit 0; fi
echo block=yes
real=$(readlink -f "$d"); n=${real##*/}; sys=/sys/class/block/$n
parts=""
for p in "$sys/$n"*; do [ -e "$p/partition" ] && parts="$parts ${p##*/}"; done
echo "partitions=${parts# }"
echo "holders=$(ls "$sys/holders" 2>/dev/null | tr '\n' ' ')"
for x in "$n" $parts; do
  while read -r src mnt rest; do
    case "$src" in /dev/*) [ "$(readlink -f "$src")" = "/dev/$x" ] && echo "mount=/dev/$x on $mnt";; esac
  done < /proc/self/mounts
  while read -r src rest; do
    case "$src" in /dev/*) [ "$(readlink -f "$src")" = "/dev/$x" ] && echo "swap=/dev/$x";; esac
  done < /proc/swaps
done
echo '--- wipefs'
wipefs -J "$d" 2>/dev/null; echo "rc=$?"
echo '--- blkid'
blkid -p -o export "$d" 2>/dev/null; echo "rc=$?"
echo '--- pvs'
if command -v pvs >/dev/null 2>&1; then
  if pvs --help 2>&1 | grep -q -e --devicesfile; then
    pvs --devicesfile "" --noheadings -o pv_name,vg_name --separator '|' "$d" 2>/dev/null
  else
    pvs --noheadings -o pv_name,vg_name --separator '|' "$d" 2>/dev/null
  fi
fi
echo '--- heketi fstab'
if [ -r /var/lib/heketi/fstab ]; then
  while read -r src mnt rest; do
    if [ "$src" = "$d" ] || [ "$(readlink -f "$src" 2>/dev/null)" = "$real" ]; then echo "$mnt"; fi
  done < /var/lib/heketi/fstab
fi
true
"""


def entries(devices) -> list[dict]:
    """Inventory devices (paths, or heketi topology's {name, destroydata}) as dicts."""
    out = []
    for item in devices or []:
        if isinstance(item, dict):
            out.append({"name": item.get("name"), "destroydata": bool(item.get("destroydata", False))})
        else:
            out.append({"name": item, "destroydata": False})
    return out


class Devices(Module):
    name = "devices"
    params = {
        "devices": Param(type="list", required=True, help="raw block devices, e.g. [/dev/sdb]"),
        "allow_destroy": Param(type="bool", default=False),
    }

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        for entry in entries(args["devices"]):
            problem = check_device(entry["name"])
            if problem:
                raise PlaybookError(f"argument 'devices' of 'devices': {problem}", field="devices",
                                    fix="list raw block devices like /dev/sdb, or {name: /dev/sdb, destroydata: true}",
                                    **(where or {}))
        return args

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        return {f"device{i}": _PROBE % {"dev": q(e["name"])} for i, e in enumerate(entries(args["devices"]))}

    def read(self, args, facts, ctx):
        return {e["name"]: parse_probe(facts[f"device{i}"].stdout)
                for i, e in enumerate(entries(args["devices"]))}

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        changes, problems = [], []
        for entry in entries(args["devices"]):
            dev, info = entry["name"], state[entry["name"]]
            where = f"{host.name}:{dev}"
            verdict = judge(info)
            if verdict["kind"] in ("clean", "heketi"):
                continue
            if verdict["kind"] == "refuse":
                problems.append((f"{where} {verdict['found']}", verdict["fix"]))
            elif not entry["destroydata"]:
                problems.append((
                    f"{where} has {verdict['found']}; heketi needs a raw disk",
                    f"wipe it yourself (`wipefs --all {dev}`) if its data is not needed, "
                    f"or set destroydata: true for this device in the inventory"))
            else:
                changes.append(Change(DESTROY, f"wipe {dev} ({verdict['found']})",
                                      diff="\n".join(f"- {s}" for s in verdict["signatures"]),
                                      script=(f"wipefs --all {q(dev)}\n"
                                              f"blockdev --rereadpt {q(dev)} 2>/dev/null || true"),
                                      data={"device": dev, "destroys_data": True}))
        if problems:
            raise PreflightError("\n".join(p for p, _ in problems), host=host.name,
                                 fix="\n       ".join(f for _, f in problems))
        return changes

    def apply(self, args, changes, ctx):
        if not changes:
            return TaskResult(changed=False)
        if not (args.get("allow_destroy") or ctx.allow_destroy):
            devices = ", ".join(c.data["device"] for c in changes)
            raise PreflightError(f"refusing to wipe {devices} on {ctx.host.name} without confirmation",
                                 host=ctx.host.name, task=ctx.task_name,
                                 fix="re-run `gfsdeploy apply` and confirm, or pass --yes")
        return super().apply(args, changes, ctx)


def parse_probe(text: str) -> dict:
    """The device probe's output as a dict (see _PROBE)."""
    info: dict = {"exists": False, "block": False, "kind": "", "partitions": [], "holders": [],
                  "mounts": [], "swaps": [], "signatures": [], "blkid": {}, "vg": None, "wipefs_ok": False,
                  "blkid_ok": False}
    section, blocks = "head", {"head": [], "wipefs": [], "blkid": [], "pvs": [], "heketi fstab": []}
    for line in text.splitlines():
        if line.startswith("--- "):
            section = line[4:].strip()
            continue
        blocks.setdefault(section, []).append(line)
    for line in blocks["head"]:
        key, _, value = line.partition("=")
        if key == "exists":
            info["exists"] = value == "yes"
        elif key == "block":
            info["block"] = value == "yes"
        elif key == "kind":
            info["kind"] = {"d": "a directory", "-": "a regular file", "c": "a character device",
                            "l": "a symlink", "p": "a pipe", "s": "a socket"}.get(value, value)
        elif key in ("partitions", "holders"):
            info[key] = value.split()
        elif key == "mount":
            info["mounts"].append(value)
        elif key == "swap":
            info["swaps"].append(value)
    wipefs = _tail_rc(blocks["wipefs"])
    if wipefs[1] == 0:
        info["wipefs_ok"] = True
        text = "\n".join(wipefs[0]).strip()
        if text:
            try:
                info["signatures"] = [
                    {"type": s.get("type"), "uuid": s.get("uuid"), "label": s.get("label"),
                     "offset": s.get("offset")} for s in json.loads(text).get("signatures", [])]
            except ValueError:
                info["wipefs_ok"] = False
    blkid = _tail_rc(blocks["blkid"])
    info["blkid_ok"] = blkid[1] in (0, 2)  # 2: nothing found
    info["blkid"] = dict(line.split("=", 1) for line in blkid[0] if "=" in line)
    for line in blocks["pvs"]:
        if "|" in line:
            info["vg"] = line.split("|", 1)[1].strip() or None
    info["heketi_mounts"] = [line.strip() for line in blocks["heketi fstab"] if line.strip()]
    return info


def _tail_rc(lines: list[str]) -> tuple[list[str], int | None]:
    if lines and lines[-1].startswith("rc="):
        return lines[:-1], int(lines[-1][3:])
    return lines, None


def describe(signatures: list[dict], vg: str | None) -> list[str]:
    """Human words for wipefs/blkid signatures: 'an xfs filesystem (UUID …)'."""
    seen, out = set(), []
    types = {s["type"] for s in signatures}
    for sig in signatures:
        kind = sig["type"]
        if kind == "PMBR" and "gpt" in types or kind in seen:
            continue
        seen.add(kind)
        extra = ", ".join(f"{k.upper()} {sig[k]}" for k in ("uuid", "label") if sig.get(k))
        if kind in _PARTITION_TABLES:
            words = f"a {kind} partition table"
        elif kind == "LVM2_member":
            words = "an LVM physical volume" + (f" of volume group {vg}" if vg else "")
        elif kind == "swap":
            words = "a swap signature"
        else:
            words = f"{'an' if kind[:1].lower() in 'aeiox' else 'a'} {kind} filesystem"
        out.append(words + (f" ({extra})" if extra else ""))
    return out


def judge(info: dict) -> dict:
    """clean / heketi / refuse (never wipe) / dirty (wipe only with destroydata)."""
    if not info["exists"]:
        return {"kind": "refuse", "found": "does not exist",
                "fix": "check the device name in the inventory (`lsblk` on the node lists the disks)"}
    if not info["block"]:
        return {"kind": "refuse", "found": f"is not a block device (it is {info['kind'] or 'something else'})",
                "fix": "give heketi a whole raw disk such as /dev/sdb"}
    if info["vg"] and HEKETI_VG.match(info["vg"]):
        return {"kind": "heketi", "found": f"in use by heketi (volume group {info['vg']})"}
    mounted = [m for m in info.get("heketi_mounts") or [] if HEKETI_DEVICE_MOUNT.match(m)]
    if mounted:
        return {"kind": "heketi", "found": f"in use by heketi (its fstab mounts it at {mounted[0]})"}
    if info["mounts"] or info["swaps"]:
        used = info["mounts"] + [f"{s} as swap" for s in info["swaps"]]
        return {"kind": "refuse", "found": f"is in use: mounted {'; '.join(used)}",
                "fix": "pick another device, or unmount it (and remove it from /etc/fstab) if its data is not needed"}
    if info["holders"]:
        return {"kind": "refuse", "found": f"is held by {' '.join(info['holders'])} (device-mapper/LVM/RAID)",
                "fix": "pick another device, or remove what holds it (`lsblk` shows it; e.g. `vgremove`, `cryptsetup close`)"}
    if not info["wipefs_ok"] and not info["blkid_ok"]:
        return {"kind": "refuse", "found": "could not be checked for signatures (wipefs and blkid failed)",
                "fix": "install util-linux on the node"}
    signatures = list(info["signatures"])
    if not info["wipefs_ok"] and info["blkid"]:
        b = info["blkid"]
        kind = b.get("TYPE") or b.get("PTTYPE")
        if kind:
            signatures.append({"type": kind, "uuid": b.get("UUID") or b.get("PTUUID"), "label": b.get("LABEL")})
    words = describe(signatures, info["vg"])
    if info["partitions"]:
        words.append(f"partitions {', '.join(info['partitions'])}")
    if not words:
        return {"kind": "clean"}
    return {"kind": "dirty", "found": " and ".join(words), "signatures": words}
