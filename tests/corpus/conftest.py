"""Fixtures of the corpus suite: the playbook trees of data/ (and, opt-in, the public
ones under $GFSDEPLOY_CORPUS) on one 4-node lab split in an Ansible and a gfsdeploy side."""

from __future__ import annotations

import pytest

from tests.ansible_compat.harness import Compat, ansible_playbook


@pytest.fixture(scope="module")
def compat(tmp_path_factory):
    if not ansible_playbook():
        pytest.fail("ansible-playbook is missing: install the `test` extra (ansible-core)")
    from tests.conftest import make_lab

    lab = make_lab(tmp_path_factory, 4)
    try:
        yield Compat(lab, tmp_path_factory.mktemp("corpus"), hosts=2)
    finally:
        lab.down()
