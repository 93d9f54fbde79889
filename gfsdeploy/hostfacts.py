"""The few facts about a host that plans depend on (OS family, distribution),
read in the same round trip as everything else, and cached between runs so the
next run can render fact-dependent tasks before it has talked to the host."""

from __future__ import annotations

import hashlib
import json
import os

from gfsdeploy.modules.base import HostInfo

FACTS_PROBE = "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null; true"

_REDHAT = {"rhel", "centos", "rocky", "almalinux", "fedora", "ol", "amzn"}
_DEBIAN = {"debian", "ubuntu", "linuxmint", "raspbian", "pop"}


def parse_facts(name: str, os_release: str, host_vars: dict) -> HostInfo:
    fields = {}
    for line in os_release.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip()] = value.strip().strip('"').strip("'")
    os_id = fields.get("ID", "unknown").lower()
    like = set(fields.get("ID_LIKE", "").lower().split())
    if os_id in _DEBIAN or "debian" in like or "ubuntu" in like:
        family = "debian"
    elif os_id in _REDHAT or like & {"rhel", "fedora", "centos"}:
        family = "redhat"
    else:
        family = "unknown"
    return HostInfo(name=name, os_family=family, os_id=os_id, os_version=fields.get("VERSION_ID", ""),
                    vars=host_vars)


class HostFactsCache:
    """``~/.cache/gfsdeploy/facts``: the os-release text last seen per host address."""

    def __init__(self, directory: str | None = None):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        self.directory = directory or os.path.join(base, "gfsdeploy", "facts")

    def _path(self, host) -> str:
        key = hashlib.sha256(f"{host.address}:{host.port}:{host.name}".encode()).hexdigest()[:32]
        return os.path.join(self.directory, key + ".json")

    def get(self, host) -> str | None:
        try:
            with open(self._path(host), encoding="utf-8") as handle:
                return json.load(handle).get("os_release")
        except (OSError, ValueError):
            return None

    def put(self, host, os_release: str) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            path = self._path(host)
            tmp = path + f".{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump({"host": host.name, "os_release": os_release}, handle)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache, nothing more
