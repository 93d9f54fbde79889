"""Includes expanded by many hosts at once (one worker thread each) get distinct task
ids: the loader's numbering is shared, so expansions must not interleave. Before the
lock, 30 hosts planning a looped include failed every time with a cycle in the graph."""

from __future__ import annotations

import collections

import yaml

BODY = "".join(f"- debug: msg=\"{c} {{{{ item }}}}\"\n" for c in "abcde")
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - include_tasks: body.yml
      loop: [1, 2, 3]
    - debug: msg=end
"""


def test_thirty_hosts_expand_a_looped_include_at_once(tmp_path):
    from gfsdeploy import Options, Session

    (tmp_path / "body.yml").write_text(BODY)
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    hosts = {f"h{i}": {"ansible_connection": "local"} for i in range(30)}
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(
        {"all": {"hosts": hosts, "vars": {"gfsdeploy_lock_dir": str(tmp_path)}}}))
    for _ in range(2):
        with Session(str(tmp_path / "inv.yaml"), str(tmp_path / "pb.yaml"), options=Options(forks=30)) as session:
            plan = session.plan()
        assert plan.ok, plan.errors
        per_host = collections.Counter(o.host for o in plan.outcomes)
        # the include itself, 3 x 5 included steps, the last debug
        assert per_host == {h: 17 for h in hosts}, per_host
        ids = [(o.host, o.task.id) for o in plan.outcomes]
        assert len(ids) == len(set(ids))
