"""Shared fixtures. `lab`: one local lab per test session, unique name and subnet, down at the end."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import subprocess

import pytest


def _lab_skip_reason() -> str | None:
    from gfsdeploy_glusterfs.lab.host import missing_tools

    if not os.uname().sysname == "Linux":
        return "the local lab needs Linux"
    if os.geteuid() != 0:
        return "the local lab needs root"
    missing = missing_tools()
    return "missing tools: " + ", ".join(missing) if missing else None


def _free_base() -> str:
    """A 10.X base (X in 190..250) clashing with no host route and no running lab."""
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True,
                                       text=True).stdout or "[]")
    used = set()
    for r in routes:
        dst = r.get("dst", "")
        if dst not in ("", "default") and ":" not in dst:
            net = ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False)
            if net.prefixlen >= 16 and str(net.network_address).startswith("10."):
                used.add(int(str(net.network_address).split(".")[1]))
    choices = [x for x in range(190, 251) if x not in used]
    if not choices:
        pytest.skip("no free 10.X.0.0/16 (X in 190..250) for a test lab")
    return f"10.{random.choice(choices)}"


def make_lab(tmp_path_factory, nodes: int):
    reason = _lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from gfsdeploy_glusterfs.lab import Lab

    lab = Lab(name="gt" + secrets.token_hex(2), base=_free_base())
    inv = tmp_path_factory.mktemp("lab") / "lab.yaml"
    try:
        lab.up(nodes=nodes, inventory_path=inv)
    except BaseException:
        lab.down()
        raise
    return lab


def _lab_while_used(tmp_path_factory):
    lab = make_lab(tmp_path_factory, 3)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A 3-node lab for this session (skips when not root or tools are missing)."""
    yield from _lab_while_used(tmp_path_factory)


@pytest.fixture(scope="module")
def fresh_lab(tmp_path_factory):
    """A 3-node lab of this test module's own, for tests that need untouched nodes."""
    yield from _lab_while_used(tmp_path_factory)
