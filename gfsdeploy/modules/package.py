"""``package`` (and ``apt``, ``yum``, ``dnf``): install only what is missing, in one command.

The OS family comes from the host facts (``HostInfo.os_family``); the package
manager's own query tool is the probe (``dpkg-query`` on Debian/Ubuntu,
``rpm -q`` on RHEL). Names are not mapped here — the playbook's variables pick
the package name per family, as in Ansible.

What a real host does to a package step, and what this module does about it
(docs/TARGETS.md):

- **A held package lock** (an ``apt-get`` left running by a killed run, unattended
  upgrades, a ``yum`` in another shell): the plan shows who holds it; apply waits
  for it with progress ("waiting for apt-get, pid 148, to finish") up to
  ``lock_timeout`` seconds, reading the holder from ``/proc/locks`` (dpkg/apt,
  rpm) or the pid files yum and dnf write.
- **An interrupted dpkg** (killed mid-install): ``dpkg --configure -a`` is its own
  ``~`` line in the plan and runs before the install.
- **A dead repository** (an EOL mirror, a retired vendor repository): the cache is
  refreshed only when something must be installed; a refresh that fails names the
  repositories that failed and the install goes on from the others (apt uses its
  previous lists; yum/dnf retry with those repositories disabled). Only if the
  install itself fails is the step an error, and the error names them.
"""

from __future__ import annotations

import re
import time

from gfsdeploy.errors import ModuleError, PlaybookError, PreflightError
from gfsdeploy.modules.base import (ADD, CHANGE, DESTROY, WARN, Change, HostInfo, Module, Param, TaskResult, q,
                                    qjoin)

INSTALL_TIMEOUT = 1800.0
LOCK_TIMEOUT = 900
LOCK_POLL = 2.0
LOCKED_RC = 75  # the install script's "a lock is held" exit (EX_TEMPFAIL)
#: dpkg/apt lock files (flock'ed: the holder is in /proc/locks)
DEBIAN_LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock",
                "/var/cache/apt/archives/lock")
#: rpm's lock (flock'ed) and the pid files yum and dnf keep while they run
REDHAT_LOCKS = ("/var/lib/rpm/.rpm.lock", "/var/run/yum.pid", "/run/yum.pid", "/var/cache/dnf/metadata_lock.pid",
                "/var/lib/dnf/rpmdb_lock.pid", "/var/cache/dnf/download_lock.pid", "/run/dnf/rpmdb_lock.pid")

# prints "pid comm file" for each lock file held by a live process
_LOCK_PROBE = r"""for f in %(files)s; do
  [ -e "$f" ] || continue
  case "$f" in
  *.pid) p=$(tr -dc 0-9 < "$f" 2>/dev/null) ;;
  *) i=$(stat -c %%i "$f" 2>/dev/null) || continue
     p=$(awk -v i=":$i" '$2 != "->" && substr($6, length($6) - length(i) + 1) == i {print $5; exit}' /proc/locks 2>/dev/null) ;;
  esac
  [ -n "$p" ] && [ "$p" != "$$" ] && [ -d "/proc/$p" ] && echo "$p $(cat /proc/$p/comm 2>/dev/null || echo '?') $f"
done; true"""
_APT = "DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
_STATES = {"installed": "present", "removed": "absent"}


class Package(Module):
    plans_from_reads = True  # (Module.plans_from_reads)
    name = "package"
    #: apply: one script (wait-or-refuse on the lock, repair, refresh, the command), then its
    #: result — a lock held or a failing repository fails that script, the batch stops there,
    #: and the step's own apply waits or retries as it does alone (gfsdeploy/batch.py)
    batch_apply = True
    #: the family this module name insists on (apt/yum/dnf); None: whatever the host has
    family: str | None = None
    params = {
        "name": Param(type="list", aliases=("pkg",), check="package"),
        "state": Param(default="present", choices=("present", "installed", "absent", "removed", "latest")),
        "update_cache": Param(type="bool", default=False, aliases=("update-cache",)),
        "enablerepo": Param(type="list", help="yum/dnf: repositories enabled for this step"),
        "disablerepo": Param(type="list", help="yum/dnf: repositories disabled for this step"),
        "cache_valid_time": Param(type="int", default=0,
                                  help="seconds the package cache counts as fresh: no refresh before that"),
        "lock_timeout": Param(type="int", default=LOCK_TIMEOUT,
                              help="seconds to wait for another package manager to finish"),
    }

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if not out.get("name") and not out.get("update_cache"):
            raise PlaybookError(f"module {self.name!r} needs `name` (the packages), or `update_cache: true` "
                                "to only refresh the package cache", field="name", **(where or {}),
                                fix="add `name: [pkg, ...]`")
        out["name"] = out.get("name") or []
        return out

    def host_family(self, host: HostInfo) -> str:
        family = (host.os_family or "unknown").lower()
        if self.family and family not in (self.family, "unknown"):
            raise PreflightError(f"module {self.name!r} manages {self.family} packages but {host.name} "
                                 f"is {host.os_family} ({host.os_id})", host=host.name,
                                 fix="use the generic `package` module or a `when: ansible_os_family == ...` condition")
        return self.family or family

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        # The same probes whatever the host facts say: a first read on a host not seen
        # before is batched before its facts are known, and must still ask the right tool.
        names = qjoin(str(n) for n in args["name"])
        self.host_family(host)  # apt on a RHEL host (known) is refused before anything runs
        probes = {"tool": "for t in apt-get dnf yum; do command -v $t >/dev/null 2>&1 && echo $t; done; true",
                  "lock": lock_probe(),
                  "installed": (f"if {_IS_APT}; then dpkg-query -W -f='${{Package}} ${{db:Status-Status}}\\n' "
                                f"{names} 2>/dev/null; else rpm -q --qf '%{{NAME}} installed\\n' {names}; fi; true"),
                  # what apt refuses with "dpkg was interrupted": journal entries, or packages half-installed
                  "dpkg": (f"{_IS_APT} || exit 0\n"
                           "ls /var/lib/dpkg/updates 2>/dev/null | grep -q . && echo journal\n"
                           "dpkg --audit 2>/dev/null | sed -n 's/^ \\([a-z0-9][^ ]*\\) .*/\\1/p'; true")}
        if args.get("update_cache"):
            # when apt/yum last refreshed (apt's success stamp, else its lists dir) and now
            probes["cache"] = ("for f in /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists "
                               "/var/cache/dnf/last_makecache /var/cache/yum; do "
                               '[ -e "$f" ] && { stat -c %Y "$f"; break; }; done; date +%s')
        if _state(args) == "latest":
            probes["upgradable"] = (f"if {_IS_APT}; then LC_ALL=C apt-cache policy {names}; else\n"
                                    "if command -v dnf >/dev/null 2>&1; then m=dnf; else m=yum; fi\n"
                                    f"$m -q check-update {names}; fi; true")
        return probes

    def read(self, args, facts, ctx):
        tools = facts["tool"].stdout.split()
        installed = set()
        for line in facts["installed"].stdout.splitlines():
            bits = line.split()
            if len(bits) == 2 and bits[1] == "installed":
                installed.add(bits[0].split(":")[0])
        upgradable = set()
        if "upgradable" in facts:
            text = facts["upgradable"].stdout
            upgradable = _parse_upgradable(text, "debian" if "Candidate:" in text else "redhat")
        state = {"tools": tools, "installed": sorted(installed), "upgradable": sorted(upgradable)}
        if "cache" in facts:
            stamps = [int(x) for x in facts["cache"].stdout.split() if x.isdigit()]
            state["cache_age"] = stamps[1] - stamps[0] if len(stamps) == 2 else None
        if "lock" in facts:
            state["locks"] = parse_locks(facts["lock"].stdout)
        if "dpkg" in facts:
            lines = facts["dpkg"].stdout.split()
            state["dpkg_interrupted"] = bool(lines)
            state["dpkg_pending"] = sorted({x for x in lines if x != "journal"})
        return state

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        family = self.host_family(host)
        names = [str(n) for n in args["name"]]
        installed = set(state["installed"])
        wanted = _state(args)
        manager = _manager(family, state["tools"], host)
        changes: list[Change] = []
        acting = (wanted in ("present", "latest") and any(n not in installed for n in names)) or \
            (wanted == "latest" and any(n in installed and n in state["upgradable"] for n in names)) or \
            (wanted == "absent" and any(n in installed for n in names))
        if acting:
            for pid, comm, path in state.get("locks", []):
                changes.append(Change(WARN, f"{comm} (pid {pid}) holds the package lock {path}: "
                                            "apply waits for it to finish"))
            if state.get("dpkg_interrupted") and manager == "apt-get":
                pending = state.get("dpkg_pending") or []
                changes.append(Change(CHANGE, "repair interrupted dpkg (dpkg --configure -a)",
                                      diff="\n".join(f"half-installed: {p}" for p in pending) or
                                      "dpkg's journal has unfinished entries",
                                      script=REPAIR_DPKG, data={"repair": True}))
        repos = [f"--{k}={q(str(r))}" for k in ("enablerepo", "disablerepo") for r in args.get(k) or ()]
        if repos and manager == "apt-get":
            raise ModuleError(f"{self.name}: enablerepo/disablerepo are yum/dnf options; {host.name} uses apt",
                              host=host.name, fix="add `when: ansible_os_family == 'RedHat'` to the task, "
                                                  "or drop enablerepo/disablerepo")
        refresh = bool(args.get("update_cache")) and not _cache_fresh(args, state)
        # apt's default_release: install from that release (apt-get -t), e.g. a backports suite
        release = f"-t {q(str(args['default_release']))} " if args.get("default_release") else ""
        if release and manager != "apt-get":
            raise ModuleError(f"{self.name}: default_release is an apt option; {host.name} uses {manager}",
                              host=host.name, fix="add `when: ansible_os_family == 'Debian'` to the task")
        if not names:  # update_cache alone: refresh when the cache is older than cache_valid_time
            if refresh:
                command = f"{_APT} update" if manager == "apt-get" else f"{manager} -q -y makecache"
                age = state.get("cache_age")
                changes.append(Change(CHANGE, "package cache", script=command,
                                      diff=f"last refreshed {age}s ago" if age is not None else "never refreshed",
                                      data={"command": command, "manager": manager, "refresh_only": True}))
            return changes
        if wanted in ("present", "latest"):
            missing = [n for n in names if n not in installed]
            if missing:
                prefix = ""
                if refresh:
                    prefix = (f"{_APT} update\n" if manager == "apt-get" else f"{manager} -q -y makecache\n")
                nogpg = "--nogpgcheck " if args.get("disable_gpg_check") else ""
                command = (f"{_APT} install {release}{qjoin(missing)}" if manager == "apt-get"
                           else f"{manager} -y -q install {nogpg}{''.join(r + ' ' for r in repos)}"
                                f"{qjoin(missing)}")
                changes.append(Change(ADD, f"packages {', '.join(missing)}",
                                      diff=("(apt-get update first)" if prefix and manager == "apt-get" else
                                            "(refresh the package cache first)" if prefix else ""),
                                      script=prefix + command,
                                      data={"install": missing, "refresh": prefix.strip(), "command": command,
                                            "manager": manager}))
            if wanted == "latest":
                old = [n for n in names if n in installed and n in state["upgradable"]]
                if old:
                    command = (f"{_APT} install --only-upgrade {release}{qjoin(old)}" if manager == "apt-get"
                               else f"{manager} -y -q upgrade {qjoin(old)}")
                    changes.append(Change(CHANGE, f"packages {', '.join(old)} (upgrade)", script=command,
                                          data={"upgrade": old, "command": command, "manager": manager}))
            return changes
        present = [n for n in names if n in installed]
        if not present:
            return changes
        command = (f"{_APT} remove {qjoin(present)}" if manager == "apt-get"
                   else f"{manager} -y -q remove {qjoin(present)}")
        return changes + [Change(DESTROY, f"packages {', '.join(present)}", script=command,
                                 data={"remove": present, "command": command, "manager": manager})]

    def joins_batch(self, args, changes) -> bool:
        # one script per change, the dpkg repair folded into the first (apply below)
        return len([c for c in changes if c.action != WARN and not c.data.get("repair")]) <= 1

    def apply(self, args, changes, ctx):
        if not [c for c in changes if c.action != WARN]:
            return TaskResult(changed=False)
        family = self.host_family(ctx.host)
        out, err = [], []
        repair = any(c.data.get("repair") for c in changes)
        for change in changes:
            if change.action == WARN or change.data.get("repair"):
                continue
            verb = ("installing" if "install" in change.data else
                    "refreshing the package cache" if change.data.get("refresh_only") else
                    "upgrading" if "upgrade" in change.data else "removing")
            names = change.data.get("install") or change.data.get("upgrade") or change.data.get("remove") or []
            ctx.progress(f"{verb} {', '.join(names)} on {ctx.host.name}…".replace("  ", " "))
            result = self._run_step(ctx, family, change, repair, args)
            repair = False  # once, before the first step
            out.append(result.stdout)
            err.append(result.stderr)
        if repair:  # nothing else to do but the repair
            result = self._run_step(ctx, family, None, True, args)
            out.append(result.stdout)
            err.append(result.stderr)
        return TaskResult(changed=True, rc=0, stdout="".join(out), stderr="".join(err))

    def _run_step(self, ctx, family: str, change: Change | None, repair: bool, args: dict):
        """Wait for the package lock, then (repair dpkg,) refresh, and run the command;
        on yum/dnf, retry once without the repositories that failed."""
        manager = (change.data.get("manager") if change else "apt-get") or "apt-get"
        disabled: list[str] = []
        wait = LOCK_TIMEOUT if args.get("lock_timeout") is None else int(args["lock_timeout"])
        deadline = time.monotonic() + wait
        last = ""
        while True:
            script = step_script(family, manager, change, repair=repair, disabled=disabled)
            result = ctx.exec(script, timeout=INSTALL_TIMEOUT)
            if result.rc == LOCKED_RC and "__LOCKED__" in result.stderr:
                holders = parse_locks(result.stderr.split("__LOCKED__", 1)[1])
                pid, comm, path = holders[0] if holders else ("?", "another package manager", "")
                if time.monotonic() > deadline:
                    raise ModuleError(f"{comm} (pid {pid}) still holds the package lock {path} after "
                                      f"{wait}s", host=ctx.host.name,
                                      task=ctx.task_name,
                                      fix=f"check what pid {pid} is doing on {ctx.host.name} (`ps -fp {pid}`); "
                                          "re-run when it has finished, or raise lock_timeout")
                message = f"waiting for {comm}, pid {pid}, to finish"
                if message != last:
                    ctx.progress(message)
                    last = message
                time.sleep(LOCK_POLL)
                continue
            failed_repos = failing_repositories(result.stderr)
            if failed_repos and "__REFRESH_FAILED__" in result.stderr and result.rc == 0:
                ctx.progress(f"the package cache refresh failed for {', '.join(failed_repos)}; "
                             f"installed from the other repositories")
            if result.rc != 0 and change is not None and manager in ("yum", "dnf") and failed_repos and not disabled:
                disabled = failed_repos
                ctx.progress(f"repositories failing on {ctx.host.name}: {', '.join(failed_repos)}; "
                             f"retrying without them")
                repair = False
                continue
            if result.rc != 0:
                what = change.data.get("command", change.script) if change else REPAIR_DPKG
                extra = (f"; these repositories failed: {', '.join(failed_repos)}" if failed_repos else "")
                raise ModuleError(f"command failed (exit {result.rc}): {what}{extra}\n"
                                  f"  stderr: {_clean(result.stderr)[-2000:] or '(empty)'}",
                                  host=ctx.host.name, task=ctx.task_name,
                                  fix=("fix or disable the failing repositories (a dead mirror, an expired key); "
                                       "the others were tried" if failed_repos else None))
            return result


class Apt(Package):
    name = "apt"
    family = "debian"
    params = {**Package.params,
              "state": Param(default="present", choices=("present", "installed", "absent", "latest")),
              "default_release": Param(aliases=("default-release",),
                                       help="the release to install from (apt-get -t), e.g. bookworm-backports")}


_REDHAT_PARAMS = {**Package.params,
                  "disable_gpg_check": Param(type="bool", default=False,
                                             help="install without checking the packages' GPG signatures")}


class Yum(Package):
    name = "yum"
    family = "redhat"
    params = _REDHAT_PARAMS


class Dnf(Package):
    name = "dnf"
    family = "redhat"
    params = _REDHAT_PARAMS


REPAIR_DPKG = "DEBIAN_FRONTEND=noninteractive dpkg --force-confdef --force-confold --configure -a"


_IS_APT = "command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1"


def lock_probe(family: str | None = None) -> str:
    """Who holds a package manager's lock (files that do not exist are skipped, so one
    probe serves every family)."""
    return _LOCK_PROBE % {"files": " ".join(q(f) for f in DEBIAN_LOCKS + REDHAT_LOCKS)}


def parse_locks(text: str) -> list[tuple[str, str, str]]:
    """``pid comm file`` lines → [(pid, comm, file)], one per holder process."""
    out, seen = [], set()
    for line in text.splitlines():
        bits = line.split()
        if len(bits) >= 3 and bits[0].isdigit() and bits[0] not in seen:
            seen.add(bits[0])
            out.append((bits[0], bits[1], bits[2]))
    return out


def step_script(family: str, manager: str, change: Change | None, *, repair: bool, disabled: list[str]) -> str:
    """One round trip: refuse (exit 75) while a lock is held, else repair, refresh, run."""
    lines = [f'held=$({lock_probe(family)})',
             f'if [ -n "$held" ]; then echo "__LOCKED__ $held" >&2; exit {LOCKED_RC}; fi']
    if repair:
        lines.append(REPAIR_DPKG + " >&2 || exit 1")
    if change is not None:
        refresh = change.data.get("refresh")
        if refresh:
            lines += ['out=$(mktemp)',
                      f'if ! {refresh} >"$out" 2>&1; then cat "$out" >&2; echo __REFRESH_FAILED__ >&2; fi',
                      'rm -f "$out"']
        command = change.data.get("command") or change.script
        if disabled:
            command = command.replace(f"{manager} -y -q ", f"{manager} -y -q " +
                                      " ".join(f"--disablerepo={q(r)}" for r in disabled) + " ", 1)
        if manager == "apt-get":  # apt waits itself if another one takes the lock after our check
            command = command.replace("apt-get -y -q", "apt-get -y -q -o DPkg::Lock::Timeout=120", 1)
        lines.append(command)
    return "\n".join(lines) + "\n"


_REPO_PATTERNS = (
    re.compile(r"^(?:Err|Ign):\d+ (\S+)", re.M),                         # apt: Err:5 https://… InRelease
    re.compile(r"^[EW]: (?:Failed to fetch|The repository) '?(\S+?)'?(?: |$)", re.M),
    re.compile(r"for repo: ([^\s/]+)", re.M),                              # yum: Cannot find a valid baseurl
    re.compile(r"from ([^\s:]+): \[Errno", re.M),                          # yum: failure: repomd.xml from X
    re.compile(r"for repo(?:sitory)? '([^']+)'", re.M),                     # dnf
)


def failing_repositories(stderr: str) -> list[str]:
    """Repository URLs (apt) or ids (yum/dnf) named in a package manager's errors."""
    found: list[str] = []
    for pattern in _REPO_PATTERNS:
        for match in pattern.finditer(stderr):
            name = match.group(1).rstrip(":,")
            if "://" in name:
                # a file of the repository (…/pool/x.deb, …/InRelease): name the repository
                scheme, _, rest = name.partition("://")
                host, _, path = rest.partition("/")
                parts = [p for p in path.split("/") if p not in ("", ".")]
                if parts and (re.search(r"\.(deb|rpm|xml|gz|xz|bz2|lz4|zst)$", parts[-1]) or
                              parts[-1] in ("InRelease", "Release", "Release.gpg", "Packages")):
                    parts.pop()
                if "dists" in parts:
                    parts = parts[:parts.index("dists")]
                if "pool" in parts:
                    parts = parts[:parts.index("pool")]
                name = f"{scheme}://{host}" + "".join("/" + p for p in parts)
            if name and name not in found:
                found.append(name)
    return found


def _clean(text: str) -> str:
    return re.sub(r"__LOCKED__.*|__REFRESH_FAILED__\n?", "", text).strip()


def _cache_fresh(args: dict, state: dict) -> bool:
    """The cache was refreshed less than ``cache_valid_time`` seconds ago (0: never fresh)."""
    valid, age = int(args.get("cache_valid_time") or 0), state.get("cache_age")
    return valid > 0 and age is not None and 0 <= age < valid


def _state(args: dict) -> str:
    return _STATES.get(args.get("state", "present"), args.get("state", "present"))


def _manager(family: str, tools: list[str], host: HostInfo) -> str:
    if family == "debian" and "apt-get" in tools:
        return "apt-get"
    if family == "redhat":
        for tool in ("dnf", "yum"):
            if tool in tools:
                return tool
    raise ModuleError(f"no package manager for OS family {family!r} on {host.name} "
                      f"(found: {', '.join(tools) or 'none of apt-get, dnf, yum'})", host=host.name,
                      fix="check the node's OS; gfsdeploy manages Debian/Ubuntu (apt) and RHEL/CentOS/Rocky (dnf/yum)")


def _parse_upgradable(text: str, family: str) -> set[str]:
    found = set()
    if family == "debian":
        name = installed = None
        for line in text.splitlines():
            if line and not line.startswith(" ") and line.endswith(":"):
                name, installed = line[:-1], None
            elif line.strip().startswith("Installed:"):
                installed = line.split(":", 1)[1].strip()
            elif line.strip().startswith("Candidate:") and name:
                candidate = line.split(":", 1)[1].strip()
                if installed not in (None, "(none)") and candidate not in ("(none)", installed):
                    found.add(name)
    else:
        for line in text.splitlines():
            bits = line.split()
            if len(bits) == 3 and "." in bits[0] and not line.startswith(" "):
                found.add(bits[0].rsplit(".", 1)[0])
    return found



class PackageVersion(Module):
    """``package_version`` (gfsdeploy): warn — a ``!`` line in plan and recap, never a
    failure — when an installed package's major version is not the one expected,
    e.g. a FUSE client on the nodes older or newer than the servers it mounts.
    Packages not installed are not judged (an earlier step may install them)."""

    name = "package_version"
    read_only = True
    params = {
        "name": Param(type="list", required=True, check="package"),
        "expect": Param(required=True, help="the major version, e.g. 10"),
        "why": Param(default="", help="what the expected version is (shown with the warning)"),
    }

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        names = qjoin(str(n) for n in args["name"])
        return {"versions": (f"if {_IS_APT}; then dpkg-query -W -f='${{Package}} ${{db:Status-Status}} ${{Version}}\\n' "
                             f"{names} 2>/dev/null; else rpm -q --qf '%{{NAME}} installed %{{VERSION}}\\n' {names} "
                             "2>/dev/null; fi; true")}

    def read(self, args, facts, ctx):
        found = {}
        for line in facts["versions"].stdout.splitlines():
            bits = line.split()
            if len(bits) == 3 and bits[1] == "installed":
                found[bits[0].split(":")[0]] = bits[2]
        return found

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        want = str(args["expect"]).strip()
        out = []
        for name in args["name"]:
            version = state.get(str(name))
            if not version:
                continue
            major = re.sub(r"^\d+:", "", version).split(".")[0].split("-")[0]
            if major != want.split(".")[0]:
                out.append(Change(WARN, f"{name} {version} on {host.name}, expected version {want}"
                                        + (f" ({args['why']})" if args.get("why") else "")))
        return out

    def apply(self, args, changes, ctx):
        return TaskResult(changed=False)
