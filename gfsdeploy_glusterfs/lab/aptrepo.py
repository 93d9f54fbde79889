"""The lab's apt repository: nodes really install packages, from a repo the host serves.

At `lab up` the host fetches the .debs the shipped playbooks install on Debian
(plus what they need that a node would not have) into a cache, indexes them as
a flat repository, and the base layer shared by every node marks those packages
as not installed (dpkg status, their files whited out), so `apt-get install`
on a node downloads and unpacks them for real.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gfsdeploy_glusterfs.lab.host import LabError, run

CACHE_DIR = Path("/var/cache/gfsdeploy-lab/debs")
APT_ARCHIVES = Path("/var/cache/apt/archives")
# What the shipped playbooks install on Debian nodes (docs/PROCEDURE.md: glusterfs-client, lvm2,
# thin-provisioning-tools; iptables + iptables-persistent to persist the firewall).
PLAYBOOK_PACKAGES = ("glusterfs-client", "lvm2", "thin-provisioning-tools", "iptables",
                     "iptables-persistent")
# Kept installed on nodes even though the repo carries them: every Kubernetes node has
# iptables (kube-proxy needs it), and the lab's own tests use it.
KEEP_INSTALLED = ("iptables",)


@dataclass(frozen=True)
class Pkg:
    name: str
    version: str
    arch: str
    installed: bool
    fields: dict
    text: str

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def parse_status(text: str) -> list[Pkg]:
    """Paragraphs of a dpkg status file, keeping each paragraph's raw text."""
    pkgs = []
    for para in re.split(r"\n\s*\n", text.strip()):
        if not para.strip():
            continue
        fields, key = {}, None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        status = fields.get("Status", "").split()
        pkgs.append(Pkg(fields.get("Package", ""), fields.get("Version", ""),
                        fields.get("Architecture", ""), status[-1:] == ["installed"],
                        fields, para.strip()))
    return pkgs


def dep_groups(value: str) -> list[list[str]]:
    """'a (>= 1) | b:any, c' -> [['a', 'b'], ['c']] (names only)."""
    groups = []
    for group in filter(None, (g.strip() for g in value.split(","))):
        alts = [re.split(r"[\s(:\[]", a.strip(), maxsplit=1)[0] for a in group.split("|")]
        groups.append([a for a in alts if a])
    return groups


def _deps(p: Pkg, fields=("Pre-Depends", "Depends")) -> list[list[str]]:
    return [g for f in fields for g in dep_groups(p.fields.get(f, ""))]


def removal_set(pkgs: list[Pkg], targets) -> set[str]:
    """What to mark not-installed so TARGETS are really missing, like `apt-get autoremove` would.

    The targets, every installed package whose dependencies then break (e.g.
    glusterfs-server), and the dependencies nothing else needs any more.
    """
    installed = {p.name: p for p in pkgs if p.installed}
    providers: dict[str, set[str]] = {}
    for p in installed.values():
        providers.setdefault(p.name, set()).add(p.name)
        for g in dep_groups(p.fields.get("Provides", "")):
            providers.setdefault(g[0], set()).add(p.name)

    def satisfied(name: str, gone: set[str]) -> bool:
        return bool(providers.get(name, set()) - gone)

    gone = {t for t in targets if t in installed}
    changed = True
    while changed:  # reverse dependencies that break
        changed = False
        for p in installed.values():
            if p.name not in gone and any(not any(satisfied(a, gone) for a in g) for g in _deps(p)):
                gone.add(p.name)
                changed = True
    # dependencies only the removed packages needed
    cand, todo = set(), list(gone)
    while todo:
        p = installed[todo.pop()]
        for g in _deps(p, ("Pre-Depends", "Depends", "Recommends")):
            for a in g:
                for prov in providers.get(a, ()):
                    q = installed[prov]
                    if prov not in gone and prov not in cand and not _protected(q):
                        cand.add(prov)
                        todo.append(prov)
    users_of: dict[str, set[str]] = {}  # name -> packages that depend on/recommend it
    for p in installed.values():
        for g in _deps(p, ("Pre-Depends", "Depends", "Recommends")):
            for a in g:
                users_of.setdefault(a, set()).add(p.name)
    changed = True
    while changed:
        changed = False
        for c in sorted(cand):
            names = {c} | {g[0] for g in dep_groups(installed[c].fields.get("Provides", ""))}
            if any(u not in gone and u not in cand for n in names for u in users_of.get(n, ())):
                cand.discard(c)
                changed = True
    return gone | cand


def _protected(p: Pkg) -> bool:
    return p.fields.get("Essential") == "yes" or p.fields.get("Priority") in ("required", "important")


def filtered_status(text: str, remove: set[str]) -> str:
    """The dpkg status file without the paragraphs of REMOVE."""
    keep = [p.text for p in parse_status(text) if p.name not in remove]
    return "\n\n".join(keep) + "\n"


def packages_entry(control: str, filename: str, data: bytes) -> str:
    """One Packages stanza: the .deb's control fields plus where and what it is."""
    return (control.rstrip("\n") + f"\nFilename: ./{filename}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")


INDEX_FORMAT = 2   # bump when the index files change shape: a cached index is then rewritten
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def release_date(when: float | None = None) -> str:
    """A Release file's Date field: RFC 1123 in UTC with English names, whatever the locale
    (apt warns "Invalid 'Date' entry in Release file" on anything else, or none)."""
    t = time.gmtime(when)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC")


def write_index(repo: Path, debs: list[Path]) -> None:
    """A flat repository (`deb [trusted=yes] URL ./`): Packages, Packages.gz, Release.

    Skipped when the index already lists exactly DEBS (same names and sizes).
    """
    stamp = json.dumps([INDEX_FORMAT] + sorted((d.name, d.stat().st_size) for d in debs))
    if (repo / "Release").exists() and (repo / ".indexed").exists() and (repo / ".indexed").read_text() == stamp:
        return
    stanzas = []
    for deb in sorted(debs):
        control = run(["dpkg-deb", "-f", str(deb)]).stdout
        stanzas.append(packages_entry(control, deb.name, deb.read_bytes()))
    packages = "\n".join(stanzas).encode()
    files = {"Packages": packages, "Packages.gz": gzip.compress(packages, mtime=0)}
    release = (f"Origin: gfsdeploy-lab\nLabel: gfsdeploy-lab\nSuite: lab\nCodename: lab\n"
               f"Date: {release_date()}\nSHA256:\n")
    release += "".join(f" {hashlib.sha256(d).hexdigest()} {len(d)} {n}\n" for n, d in files.items())
    files["Release"] = release.encode()
    for name, data in files.items():
        tmp = repo / f".{name}.{os.getpid()}"
        tmp.write_bytes(data)
        os.replace(tmp, repo / name)
    (repo / ".indexed").write_text(stamp)


def simulate_install(names, cache: Path = CACHE_DIR) -> list[tuple[str, str, str]]:
    """(name, version, arch) apt would install on the host for NAMES (they are not installed).

    Remembered in CACHE until the host's dpkg status or apt lists change (apt is slow to ask).
    """
    if not names:
        return []
    key = json.dumps([sorted(names)] + [_mtime(p) for p in ("/var/lib/dpkg/status", "/var/lib/apt/lists")])
    memo = cache / ".resolved.json"
    try:
        saved = json.loads(memo.read_text())
        if saved["key"] == key:
            return [tuple(x) for x in saved["result"]]
    except (OSError, ValueError, KeyError):
        pass
    result = _simulate(names)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".resolved.{os.getpid()}"
    tmp.write_text(json.dumps({"key": key, "result": result}))
    os.replace(tmp, memo)
    return result


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _simulate(names) -> list[tuple[str, str, str]]:
    res = run(["apt-get", "install", "-s", "-y", "--no-install-recommends", *names], check=False)
    if res.returncode != 0:
        raise LabError(f"apt cannot resolve {' '.join(names)} on the host:\n  {res.stderr.strip()[:800]}",
                       fix="run apt-get update on the host")
    out = []
    for m in re.finditer(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) .*?\[(\S+)\]\)", res.stdout, re.M):
        out.append(m.groups())
    return out


def fetch(wanted: list[tuple[str, str, str]], cache: Path = CACHE_DIR) -> list[Path]:
    """Make sure every (name, version, arch) .deb is in CACHE: reuse, copy from apt's cache, or download."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        paths, missing = [], []
        for name, version, arch in wanted:
            fname = f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
            path = cache / fname
            if not path.exists() and (APT_ARCHIVES / fname).exists():
                shutil.copyfile(APT_ARCHIVES / fname, path)
            if not path.exists():
                missing.append((name, version, arch, path))
            paths.append(path)
        if missing:
            _download(missing, cache)
        write_index(cache, sorted(cache.glob("*.deb")))
    return paths


def _download(missing, cache: Path) -> None:
    specs = [f"{n}={v}" for n, v, _, _ in missing]
    res = _apt_download(specs, cache)
    still = [m for m in missing if not m[3].exists()]
    if still:
        detail = res.stderr.strip()[:1200]
        raise LabError("could not download the packages the lab serves to its nodes: "
                       + ", ".join(f"{n}={v}" for n, v, _, _ in still) + (f"\n  {detail}" if detail else ""),
                       fix="check that the host reaches its apt mirror (apt-get update), then retry `lab up`")


def _apt_download(specs, cache: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root", *specs],
                              cwd=cache, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"apt-get download failed: {e}") from None
