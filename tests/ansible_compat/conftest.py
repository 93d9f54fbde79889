"""Fixtures of the differential suite: ``compat`` — one 4-node lab per test module,
split in an Ansible side and a gfsdeploy side of two hosts each (see harness.py)."""

from __future__ import annotations

import pytest

from tests.ansible_compat.harness import Compat, ansible_playbook, has_collections


@pytest.fixture(scope="module")
def compat(tmp_path_factory):
    if not ansible_playbook():
        pytest.fail("ansible-playbook is missing: install the `test` extra (ansible-core)")
    from tests.conftest import make_lab

    lab = make_lab(tmp_path_factory, 4)
    try:
        yield Compat(lab, tmp_path_factory.mktemp("compat"), hosts=2)
    finally:
        lab.down()


@pytest.fixture(scope="session")
def posix_collections():
    """ansible.posix / community.general for ansible-playbook (mount, sysctl …)."""
    if not has_collections():
        pytest.fail("the ansible.posix / community.general collections are missing: install the `test` extra "
                    "(PyPI's `ansible`)")
