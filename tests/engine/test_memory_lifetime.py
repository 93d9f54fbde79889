"""What a run keeps per host while other hosts are still running (a 1,000-host run
holds every host at once): only what output, ``--json`` and later steps need.
Local hosts (``ansible_connection: local``); the files written are read back."""

from __future__ import annotations

import io
import json
import textwrap

from gfsdeploy import hostfacts, secrets
from gfsdeploy.output import dump_json
from gfsdeploy.session import Options, Session


def _site(tmp_path, tasks: str, gather: bool = False):
    (tmp_path / "inv.yaml").write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, root: "{tmp_path}", gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts: {{a: {{}}, b: {{}}}}
        """))
    (tmp_path / "pb.yaml").write_text(f"- hosts: all\n  gather_facts: {str(gather).lower()}\n  tasks:\n"
                                      + textwrap.indent(textwrap.dedent(tasks), "    "))
    return Session(str(tmp_path / "inv.yaml"), str(tmp_path / "pb.yaml"), options=Options(forks=4))


FILES = """\
- name: first file
  copy: {dest: "{{ root }}/one-{{ inventory_hostname }}", content: "one {{ inventory_hostname }}\\n"}
- name: second file
  copy: {dest: "{{ root }}/two-{{ inventory_hostname }}", content: "two\\n"}
"""


def test_facts_that_are_no_variables_are_kept_as_text_only(tmp_path):
    with _site(tmp_path, FILES) as session:
        recap = session.apply()
        assert recap.ok
        for name, hr in session.runner.hosts.items():
            assert hr.facts_text and hr.info.os_family != "unknown"
            parsed = hostfacts.gather(hr.facts_text)
            # the host keeps no parsed copy of its facts (only the text, for when they are asked for)
            assert not [k for k, v in vars(hr).items() if isinstance(v, dict) and v and v == parsed]
            assert (tmp_path / f"one-{name}").read_text() == f"one {name}\n"


def test_facts_gathered_later_by_setup_are_the_hosts_facts(tmp_path):
    tasks = """\
    - name: facts now
      setup: {}
    - name: the family
      copy: {dest: "{{ root }}/family-{{ inventory_hostname }}", content: "{{ ansible_facts.os_family }}\\n"}
    """
    with _site(tmp_path, tasks) as session:
        assert session.apply().ok
        for name, hr in session.runner.hosts.items():
            want = hostfacts.gather(hr.facts_text)["os_family"]
            assert (tmp_path / f"family-{name}").read_text() == f"{want}\n"


def test_gathered_facts_stay_parsed(tmp_path):
    tasks = """\
    - name: the family
      copy: {dest: "{{ root }}/family-{{ inventory_hostname }}", content: "{{ ansible_os_family }}\\n"}
    """
    with _site(tmp_path, tasks, gather=True) as session:
        assert session.apply().ok
        for name, hr in session.runner.hosts.items():
            assert (tmp_path / f"family-{name}").read_text() == hr.fact_vars["os_family"] + "\n"


def test_finished_steps_keep_their_diffs_not_their_scripts(tmp_path):
    with _site(tmp_path, FILES) as session:
        plan = session.plan()
        changes = [c for o in plan.outcomes for c in o.changes]
        assert len(changes) == 4 and all(c.diff and not c.script for c in changes)
        recap = session.apply()
        assert recap.ok
        applied = [c for o in recap.outcomes for c in o.changes]
        assert len(applied) == 4 and all(c.diff and not c.script for c in applied)
        assert [c.diff for c in applied] == [c.diff for c in changes]
        # one text per diff: the apply pass's equal diffs are the plan pass's
        planned = [c for o in recap.plan.outcomes for c in o.changes]
        assert all(a.diff is p.diff for a, p in zip(applied, planned, strict=True))
        # the batch's scripts went too: only their digests answered the steps' own applies
        for hr in session.runner.hosts.values():
            assert not hr.ahead.members
            assert hr.transport.round_trips <= 3
    for name in "ab":
        assert (tmp_path / f"two-{name}").read_text() == "two\n"


def test_dump_json_writes_in_pieces_the_same_text(monkeypatch):
    data = {"hosts": {f"h{i}": {"steps": [{"diff": "x" * 300, "n": i, "ok": True, "none": None}] * 3}
                      for i in range(400)}, "errors": ["pässword-ish ünïcode"]}
    secrets.reset()
    out = io.StringIO()
    writes = []
    monkeypatch.setattr(out, "write", lambda text, w=out.write: (writes.append(len(text)), w(text))[1])
    dump_json(data, out)
    assert out.getvalue() == json.dumps(data, separators=(",", ":")) + "\n"  # (not a terminal: compact)
    assert len(writes) > 3 and max(writes) < 2 * 65536
    secrets.register("hunter2-secret")
    try:
        out = io.StringIO()
        dump_json({"a": ["say hunter2-secret"]}, out)
        assert "hunter2" not in out.getvalue() and secrets.MASK in out.getvalue()
    finally:
        secrets.reset()


def test_batch_members_wait_without_their_scripts(tmp_path, monkeypatch):
    from gfsdeploy import batch

    tasks = "".join(f"- name: file {i}\n"
                    f"  copy: {{dest: \"{{{{ root }}}}/f{i}-{{{{ inventory_hostname }}}}\", "
                    f"content: \"{{{{ '{i}' * 900 }}}}\\n\"}}\n" for i in range(4))
    seen = []
    take = batch.take

    def taking(runner, hr, task_id, index):
        ahead = getattr(hr, "ahead", None)
        waiting = list(ahead.members.values()) if ahead is not None else []
        seen.extend((m.script, m.guard, m.packed is not None, [c.script for c in m.changes]) for m in waiting
                    if m.task_id != task_id)
        member = take(runner, hr, task_id, index)
        if member is not None:
            assert member.packed is None and all(c.script for c in member.changes if c.action != "!")
        return member

    monkeypatch.setattr(batch, "take", taking)
    with _site(tmp_path, tasks) as session:
        assert session.apply().ok
        assert all(hr.transport.round_trips <= 3 for hr in session.runner.hosts.values())
    assert seen and all(script is None and guard is None and packed and not any(scripts)
                        for script, guard, packed, scripts in seen)
    for name in "ab":
        for i in range(4):
            assert (tmp_path / f"f{i}-{name}").read_text() == str(i) * 900 + "\n"
