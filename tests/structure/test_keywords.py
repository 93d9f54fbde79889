"""Keywords with their real meaning, compared with ansible-playbook: with_* lookups,
loop_control, registered loops, k=v arguments, nested blocks with rescue/always,
templated ignore_errors/failed_when/changed_when, run_once, delegate_to,
local_action, environment, set_fact (cacheable) across plays, serial."""

from __future__ import annotations

from tests.structure.conftest import HERE, assert_same

HOSTS = {"a": {"color": "red"}, "b": {"color": "blue"}}


def test_loops_match_ansible(site):
    site.copy_tree(HERE / "data" / "keywords")
    ansible, gfs = site.both("loops.yml", HOSTS)
    assert_same(ansible, gfs)
    assert gfs["sub-a-alice-k2"] == "k2\n" and "sub-a-carol" not in " ".join(gfs)
    assert sorted(k for k in gfs if k.startswith("seq-a-")) == ["seq-a-n02", "seq-a-n05", "seq-a-n08"]
    assert gfs["lc-a-1"] == "banana 2/3 first=False last=False prev=apple next=cherry\n"
    assert gfs["looped-a"] == "r1,r2 r1,r2 item False All items completed\n"
    assert gfs["kv-a"] == "a b=a 'q'\n"
    assert gfs["found-b"] == "default-vars\n"
    assert gfs["lazy-a-q"] == "item q of a\n" and gfs["attempts-b"].strip() == "3"


def test_flow_keywords_match_ansible(site):
    site.copy_tree(HERE / "data" / "keywords")
    ansible, gfs = site.both("flow.yml", HOSTS, check=False)
    assert_same(ansible, gfs)
    assert "inner-after-a" not in gfs and gfs["inner-always-a"] and "outer-after-a" not in gfs
    assert gfs["outer-rescue-a"] == "fails on a\n" and "outer-rescue-b" not in gfs
    assert gfs["once"] in ("a\n", "b\n") and gfs["once-b"] == gfs["once-a"]
    assert gfs["delegated-by-a"] == "a red\n"
    assert gfs["env-b"] == "hi b-play\n"
    assert gfs["serial-b"] == "from-b from-a c-b b\n"
