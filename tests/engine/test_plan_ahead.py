"""A plan pass plans a step as soon as its host's batched read answers (modules that
plan from their reads alone: files, iptables, packages, services…), and the step's
turn only checks that nothing the plan was made from changed: its rendering, the
host facts, each item's read. What a step before it changes on the host during the
plan (a `check_mode: false` command) makes it read and plan again. Local hosts; the
plans are compared with the same plans made without planning ahead."""

from __future__ import annotations

import base64
import collections
import contextlib
import io
import json
import textwrap

from gfsdeploy import runner as runner_mod
from gfsdeploy.cli import main
from gfsdeploy.modules.files import Copy


def _run(inv, pb, *args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*args, inv, "-p", str(pb), "--json"])
    return rc, json.loads(out.getvalue())


def _counted_reads(monkeypatch, key) -> collections.Counter:
    """How many times ``copy`` read its file's state, per ``key(args, ctx)``."""
    reads: collections.Counter = collections.Counter()
    real_read = Copy.read

    def counting(self, args, facts, ctx):
        reads[key(args, ctx)] += 1
        return real_read(self, args, facts, ctx)

    monkeypatch.setattr(Copy, "read", counting)
    return reads


def _shown(data):
    """What a plan says, without its timings."""
    return {host: [(s["task"], s["status"], [(c["action"], c["resource"], c.get("diff", "")) for c in s["changes"]])
                   for s in v["steps"]] for host, v in data["hosts"].items()}


PLAYBOOK = """\
- hosts: all
  gather_facts: false
  vars: {names: [x, y, z]}
  tasks:
    - name: one file
      copy: {dest: "{{ root }}/one-{{ inventory_hostname }}", content: "{{ inventory_hostname }}\\n"}
    - name: a loop, registered
      copy: {dest: "{{ root }}/{{ item }}-{{ inventory_hostname }}", content: "{{ item }}\\n", mode: "0600"}
      loop: "{{ names }}"
      loop_control: {index_var: i}
      register: looped
    - name: what it registered
      copy: {dest: "{{ root }}/reg-{{ inventory_hostname }}",
             content: "{{ looped.results | map(attribute='item') | join(',') }} {{ looped.results | length }}\\n"}
    - name: not counted
      copy: {dest: "{{ root }}/quiet-{{ inventory_hostname }}", content: "q\\n"}
      changed_when: false
    - name: no diff
      copy: {dest: "{{ root }}/nodiff-{{ inventory_hostname }}", content: "secret-ish\\n"}
      diff: false
    - name: a directory
      file: {path: "{{ root }}/dir-{{ inventory_hostname }}", state: directory}
    - name: a block
      blockinfile:
        path: "{{ root }}/block-{{ inventory_hostname }}"
        create: true
        block: "{% for h in groups['all'] %}{{ h }}\\n{% endfor %}"
"""


def test_plans_ahead_and_says_what_planning_at_its_turn_says(site, monkeypatch):
    root, inv = site
    pb = root / "pb.yaml"
    pb.write_text(PLAYBOOK)
    (root / "x-a").write_text("old\n")
    (root / "quiet-b").write_text("q\n")
    reads = _counted_reads(monkeypatch, lambda args, ctx: (ctx.host.name, args["dest"].rsplit("/", 1)[-1]))
    rc, ahead = _run(inv, pb, "plan")
    assert rc == 2, ahead
    planned = dict(reads)
    # planned once, when the read answered (the plan did not read the state twice)
    assert planned and set(planned.values()) == {1}, planned
    with monkeypatch.context() as m:
        m.setattr(runner_mod.Runner, "_plan_ahead", lambda *a, **k: None)
        rc_alone, alone = _run(inv, pb, "plan")
    assert rc_alone == 2
    assert _shown(ahead) == _shown(alone)
    assert ahead["summary"] == alone["summary"]
    # the registered loop result was what planning gives (a change: "changed", known after apply)
    assert ahead["hosts"]["a"]["steps"][2]["status"] == "pending"
    rc, _ = _run(inv, pb, "apply")
    assert rc == 0
    assert (root / "reg-a").read_text() == "x,y,z 3\n"
    reads.clear()
    rc, again = _run(inv, pb, "plan")
    assert rc == 0, again
    assert again["summary"]["add"] == again["summary"]["change"] == 0
    with monkeypatch.context() as m:
        m.setattr(runner_mod.Runner, "_plan_ahead", lambda *a, **k: None)
        _, alone = _run(inv, pb, "plan")
    assert _shown(again) == _shown(alone)


def test_a_step_changing_the_host_during_the_plan_makes_the_next_plan_again(site):
    """`check_mode: false` runs in a plan: what it changes must show in the plans after
    it, though they were planned when the first read answered."""
    root, inv = site
    for host in "ab":
        (root / f"f-{host}").write_text("old\n")
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: rewrite it now
              shell: "printf 'new\\n' > {{ root }}/f-{{ inventory_hostname }}"
              check_mode: false
            - name: the file
              copy: {dest: "{{ root }}/f-{{ inventory_hostname }}", content: "new\\n"}
        """))
    rc, data = _run(inv, pb, "plan")
    steps = {s["task"]: s for s in data["hosts"]["a"]["steps"]}
    assert steps["the file"]["status"] == "ok", data          # planned ahead: a change of "old"
    assert not steps["the file"]["changes"], data
    assert (root / "f-a").read_text() == "new\n"


def test_a_file_written_during_the_plan_is_planned_again(site):
    """A `check_mode: false` copy writes during the plan and forgets what was read of
    its file only: the later step on that file plans again, the others keep their plan."""
    root, inv = site
    for host in "ab":
        (root / f"f-{host}").write_text("old\n")
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: write it now
              copy: {dest: "{{ root }}/f-{{ inventory_hostname }}", content: "new\\n"}
              check_mode: false
            - name: the same file
              copy: {dest: "{{ root }}/f-{{ inventory_hostname }}", content: "new\\n"}
            - name: another file
              copy: {dest: "{{ root }}/g-{{ inventory_hostname }}", content: "g\\n"}
        """))
    rc, data = _run(inv, pb, "plan")
    steps = {s["task"]: s for s in data["hosts"]["b"]["steps"]}
    assert steps["write it now"]["status"] == "changed", data
    assert steps["the same file"]["status"] == "ok" and not steps["the same file"]["changes"], data
    assert [c["action"] for c in steps["another file"]["changes"]] == ["+"], data
    assert (root / "f-b").read_text() == "new\n" and not (root / "g-b").exists()


def test_an_item_planned_unchanged_on_another_host_alike_is_not_planned_again(site, monkeypatch):
    """Module.plans_alike: the same arguments, the same answers and the same distribution
    plan the same, on any host — an item planned unchanged on one host is unchanged on
    the others without reading and planning it again. Not an item with changes (each
    host plans its own), not a registered one (what it registers is each host's)."""
    root, inv = site
    (root / "same").write_text("same\n")
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: alike and unchanged
              copy: {dest: "{{ root }}/same", content: "same\\n"}
            - name: alike, with a change
              copy: {dest: "{{ root }}/absent", content: "x\\n"}
            - name: alike, registered
              copy: {dest: "{{ root }}/same", content: "same\\n", mode: "0644"}
              register: r
            - name: not alike
              copy: {dest: "{{ root }}/same", content: "{{ inventory_hostname }}\\n"}
        """))
    reads = _counted_reads(monkeypatch, lambda args, ctx: (args["dest"].rsplit("/", 1)[-1], args.get("mode"),
                                                           base64.b64decode(args["_content_b64"])))
    rc, data = _run(inv, pb, "plan")
    assert rc == 2, data
    assert reads == {("same", None, b"same\n"): 1, ("absent", None, b"x\n"): 2, ("same", "0644", b"same\n"): 2,
                     ("same", None, b"a\n"): 1, ("same", None, b"b\n"): 1}, reads
    with monkeypatch.context() as m:
        m.setattr(runner_mod.Runner, "_plan_ahead", lambda *a, **k: None)
        _, alone = _run(inv, pb, "plan")
    assert _shown(data) == _shown(alone)
    steps = {s["task"]: s for s in data["hosts"]["b"]["steps"]}
    assert steps["alike and unchanged"]["status"] == "ok" and not steps["alike and unchanged"]["changes"]
    assert [c["action"] for c in steps["alike, with a change"]["changes"]] == ["+"]
    assert [c["action"] for c in steps["not alike"]["changes"]] == ["~"]
