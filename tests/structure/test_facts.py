"""Facts under the names and shapes Ansible gives them, compared with
ansible-playbook's own gathering on the same machine."""

from __future__ import annotations

from tests.structure.conftest import HERE, assert_same


def test_facts_match_ansible(site):
    site.copy_tree(HERE / "data" / "facts")
    ansible, gfs = site.both("facts.yml", {"a": {}})
    assert_same(ansible, gfs)
    assert "os_family=Debian Debian" in gfs["facts-a"]
