"""Fixtures of the differential suite: ``compat`` — one 4-node lab per test module,
split in an Ansible side and a gfsdeploy side of two hosts each (see harness.py)."""

from __future__ import annotations

import pytest

from tests.ansible_compat.harness import Compat, ansible_playbook, collections_path


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
    """ansible.posix / community.general for ansible-playbook (mount, sysctl …); skip without them."""
    path = collections_path(required=True)
    if not path:
        pytest.skip("could not fetch the `ansible` wheel from PyPI for its ansible.posix collection")
    return path
