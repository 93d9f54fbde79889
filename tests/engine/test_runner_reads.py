"""A step's batched read serves it only if its probes were made from the host facts
known now: on a cold facts cache the first read is rendered before the host's OS is
known, and a module whose probes depend on it must read again."""

from __future__ import annotations

import dataclasses

from gfsdeploy.modules.base import HostInfo
from gfsdeploy.runner import Runner


class FamilyProbe:
    """Reads a file whose path depends on the OS family."""

    def probes(self, args, host):
        return {"conf": f"cat /etc/{'apt' if host.os_family == 'debian' else 'yum'}.conf"}


class RandomProbe(FamilyProbe):
    """An Ansible-protocol module: its read is a run of its own, never about host facts."""

    reread_after_change = False
    n = 0

    def probes(self, args, host):
        RandomProbe.n += 1
        return {"check": f"run {RandomProbe.n}"}


def cached(info):
    return ("{}", {"conf": object()}, set(), info)


def test_probes_made_before_the_os_was_known_are_not_reused():
    cold, known = HostInfo("a"), HostInfo("a", os_family="debian", os_id="debian", os_version="12")
    assert not Runner._same_probes(FamilyProbe(), {}, cached(cold), known)
    assert Runner._same_probes(FamilyProbe(), {}, cached(dataclasses.replace(known)), known)


def test_probes_that_do_not_use_the_os_are_reused():
    cold, known = HostInfo("a"), HostInfo("a", os_family="redhat", selinux="enforcing")
    known_yum = HostInfo("a", os_family="suse")
    assert Runner._same_probes(FamilyProbe(), {}, cached(known_yum), known)  # same command either way
    assert Runner._same_probes(RandomProbe(), {}, cached(cold), known)
    assert Runner._same_probes(FamilyProbe(), {}, ("{}", {}, set()), known)  # read without the facts then
