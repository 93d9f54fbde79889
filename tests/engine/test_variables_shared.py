"""A host's variables are made once for the steps that share every layer (play, roles,
blocks, task vars, include params) while none of its variables changed — but what
Ansible evaluates at each use stays evaluated at each use: a lookup, a clock, another
host's hostvars. Local hosts; what the plan says is checked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from gfsdeploy import runner as runner_mod


def _plan(inv, pb, *options):
    proc = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", inv, "-p", str(pb), *options],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_lookup_in_play_vars_is_read_at_each_use(site):
    root, inv = site
    for host in "ab":
        (root / f"data-{host}").write_text("old data\n")
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          vars:
            looked: "{{ lookup('file', root ~ '/data-' ~ inventory_hostname) }}"
          tasks:
            - name: before
              copy: {dest: "{{ root }}/before-{{ inventory_hostname }}", content: "{{ looked }}\\n"}
            - name: the file changes
              shell: "echo new data > {{ root }}/data-{{ inventory_hostname }}"
              delegate_to: localhost
              check_mode: false
            - name: after
              copy: {dest: "{{ root }}/after-{{ inventory_hostname }}", content: "{{ looked }}\\n"}
        """))
    rc, out = _plan(inv, pb)
    assert rc == 2, out
    assert out.count("+old data") == 2 and out.count("+new data") == 2, out


def test_play_vars_reading_hostvars_follow_the_other_hosts(site):
    root, inv = site
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          vars:
            color: "{{ hostvars['b'].paint | default('none') }}"
          tasks:
            - name: before
              copy: {dest: "{{ root }}/before-{{ inventory_hostname }}", content: "{{ color }}\\n"}
            - name: a reads its variables now
              command: "true"
              check_mode: false
              changed_when: false
              when: inventory_hostname == 'a'
            - name: b paints
              set_fact: {paint: blue}
              when: inventory_hostname == 'b'
            - name: after
              copy: {dest: "{{ root }}/after-{{ inventory_hostname }}", content: "{{ color }}\\n"}
        """))
    # (as many forks as hosts: b's set_fact waits for a's first step, which reads it, as
    # the later reader waits for the set_fact — graph.build_graph, graph._cross_host_variables)
    rc, out = _plan(inv, pb)
    assert rc == 2, out
    assert out.count("+none") == 2 and out.count("+blue") == 2, out


def test_steps_sharing_their_layers_share_the_made_variables(site, monkeypatch):
    """The work is done once per host while nothing changed (it was once per step)."""
    root, inv = site
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          vars: {names: "{{ range(3) | list }}"}
          tasks:
            - copy: {dest: "{{ root }}/one-{{ inventory_hostname }}", content: "{{ names }}\\n"}
            - copy: {dest: "{{ root }}/two-{{ inventory_hostname }}", content: "{{ names }}\\n"}
            - copy: {dest: "{{ root }}/three-{{ inventory_hostname }}", content: "{{ names }}\\n"}
        """))
    made = []
    compute = runner_mod.Runner._compute_variables

    def counting(self, hr, task):
        made.append(hr.host.name)
        return compute(self, hr, task)

    monkeypatch.setattr(runner_mod.Runner, "_compute_variables", counting)
    from gfsdeploy.cli import main

    assert main(["plan", inv, "-p", str(pb), "--forks", "1"]) == 2
    # once per host, when the first read rendered its steps (the host's facts read after
    # that are variables too: the steps' turns see the same and make no more)
    assert sorted(made) == ["a", "b"], made
    rc, out = _plan(inv, pb)
    assert rc == 2 and out.count("+[0, 1, 2]") == 6, out


def test_a_step_using_a_variable_that_reads_other_hosts_waits_for_them(site):
    """A play var (or inventory, role, block, include var) reading ``hostvars`` makes the
    steps using it wait for every host's step before them, as ``hostvars`` in the step
    itself does (it raced: a's step could run before b's set_fact)."""
    from gfsdeploy.graph import Step, build_graph, waits_for
    from gfsdeploy.inventory import load_inventory
    from gfsdeploy.playbook import load_playbook

    root, inv = site
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          vars:
            color: "{{ hostvars['b'].paint | default('none') }}"
            shade: "dark {{ color }}"
            plain: "{{ inventory_hostname }}"
          tasks:
            - name: b paints
              set_fact: {paint: blue}
              when: inventory_hostname == 'b'
            - name: uses it through another variable
              copy: {dest: "{{ root }}/shade-{{ inventory_hostname }}", content: "{{ shade }}\\n"}
            - name: uses none of it
              copy: {dest: "{{ root }}/plain-{{ inventory_hostname }}", content: "{{ plain }}\\n"}
        """))
    graph, tasks = build_graph(load_playbook(str(pb)), load_inventory(inv))
    ids = {t.name: t.id for t in tasks.values()}
    paints, shade, plain = ids["b paints"], ids["uses it through another variable"], ids["uses none of it"]
    assert waits_for(graph, Step(shade, "a")).get(Step(paints, "b")) == "sync"
    assert Step(shade, "b") not in waits_for(graph, Step(plain, "a"))
    for _ in range(3):  # (it raced)
        rc, out = _plan(inv, pb)
        assert rc == 2 and out.count("+dark blue") == 2, out


def test_a_step_changing_variables_waits_for_every_host_reading_them_before_it(site):
    """Every host finishes a step reading other hosts before any host goes past it when a
    later step may change what it read (a set_fact, a register, gathered facts, an
    include): b's set_fact must not run before a's earlier step reads ``hostvars['b']``
    (Ansible's linear order). With no such later step, hosts go on at once."""
    from gfsdeploy.graph import Step, build_graph, waits_for
    from gfsdeploy.inventory import load_inventory
    from gfsdeploy.playbook import load_playbook

    root, inv = site
    steps = """\
        - name: reads b
          copy: {dest: "{{ root }}/r-{{ inventory_hostname }}", content: "{{ hostvars['b'].paint | default('none') }}\\n"}
        - name: next
          copy: {dest: "{{ root }}/n-{{ inventory_hostname }}", content: "n\\n"}
    """
    for later, waits in (("set_fact: {paint: blue}", True), ("command: 'true'\n  register: out", True),
                         ("copy: {dest: \"{{ root }}/x-{{ inventory_hostname }}\", content: x}", False)):
        pb = root / "pb.yaml"
        pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n" + textwrap.indent(
            textwrap.dedent(steps) + "- name: later\n  " + later + "\n", "    "))
        graph, tasks = build_graph(load_playbook(str(pb)), load_inventory(inv))
        ids = {t.name: t.id for t in tasks.values()}
        assert (Step(ids["reads b"], "a") in waits_for(graph, Step(ids["next"], "b"))) is waits, later
        assert (Step(ids["reads b"], "b") in waits_for(graph, Step(ids["next"], "a"))) is waits, later
        if waits:
            assert waits_for(graph, Step(ids["next"], "b"))[Step(ids["reads b"], "a")] == "sync"
