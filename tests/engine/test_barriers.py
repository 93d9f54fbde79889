"""Where hosts wait for each other: a step rendering a template file that reads other
hosts waits for every host's step before it (as one naming ``hostvars`` in its own
arguments does — Ansible's linear order), and many hosts wait through one Barrier node
(2n edges) instead of an edge from each host to each other (n × n). Local hosts; the
files written are read back."""

from __future__ import annotations

import textwrap

import pytest

from gfsdeploy import graph as g
from gfsdeploy.graph import Barrier, Step, build_graph, topological_generations, waits_for
from gfsdeploy.inventory import load_inventory
from gfsdeploy.playbook import load_playbook


def _playbook(root, src: str = "t.j2", template: str | None = None) -> str:
    (root / "templates").mkdir(exist_ok=True)
    (root / "templates" / "t.j2").write_text(template or textwrap.dedent("""\
        {% for h in groups['all'] %}{{ h }}={{ hostvars[h].myval | default('MISSING') }}
        {% endfor %}"""))
    (root / "templates" / "plain.j2").write_text("{{ inventory_hostname }}\n")
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent(f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: slow on b
              command: sleep 1
              when: inventory_hostname == 'b'
              changed_when: false
            - name: value
              set_fact:
                myval: "{{{{ inventory_hostname }}}}-v"
            - name: render
              template:
                src: "{src}"
                dest: "{{{{ root }}}}/out-{{{{ inventory_hostname }}}}"
        """))
    return str(pb)


@pytest.mark.parametrize("pairs", [g.BARRIER_PAIRS, 0], ids=["edges", "barrier node"])
def test_a_template_file_reading_other_hosts_waits_for_their_step_before_it(site, monkeypatch, pairs):
    """(It raced: a rendered its file before b's set_fact, writing b=MISSING.)"""
    from gfsdeploy.cli import main

    monkeypatch.setattr(g, "BARRIER_PAIRS", pairs)
    root, inv = site
    pb = _playbook(root)
    assert main(["apply", inv, "-p", pb, "--yes", "--forks", "2"]) == 0
    for host in "ab":
        assert (root / f"out-{host}").read_text() == "a=a-v\nb=b-v\n"


def test_which_template_tasks_wait(site):
    root, inv = site

    def waits(src: str, template: str | None = None) -> bool:
        graph, tasks = build_graph(load_playbook(_playbook(root, src, template)), load_inventory(inv))
        ids = {t.name: t.id for t in tasks.values()}
        return Step(ids["value"], "b") in waits_for(graph, Step(ids["render"], "a"))

    assert waits("t.j2")
    assert not waits("plain.j2")                      # reads only its own host
    assert waits("{{ 'plain' if false else 't' }}.j2")  # any template it may find: t.j2 reads hostvars
    assert waits("missing.j2")                        # not found: counted as reading
    assert waits("t.j2", "{% include 'plain.j2' %}")  # what it includes is not looked into
    assert waits("t.j2", "{{ ansible_play_hosts | join(',') }}")


def test_many_hosts_wait_through_one_barrier_node(tmp_path):
    hosts = [f"n{i}" for i in range(300)]
    inv = tmp_path / "inv.yaml"
    inv.write_text("all:\n  hosts:\n" + "".join(f"    {h}: {{ansible_connection: local}}\n" for h in hosts))
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: own
              set_fact: {mine: "{{ inventory_hostname }}"}
            - name: reads all
              debug: {msg: "{{ groups['all'] | map('extract', hostvars, 'mine') | list }}"}
        - hosts: all
          gather_facts: false
          tasks:
            - name: next play
              debug: {msg: hi}
        """))
    graph, tasks = build_graph(load_playbook(str(pb)), load_inventory(str(inv)))
    ids = {t.name: t.id for t in tasks.values()}
    barriers = [n for n in graph.nodes if isinstance(n, Barrier)]
    assert sorted(b.why for b in barriers) == ["play", "sync"]
    # n order edges in the first play, 2n through each barrier (n × n each was 90,000)
    assert len(graph.edges) == 5 * len(hosts)
    assert set(waits_for(graph, Step(ids["reads all"], "n7"))) == {Step(ids["own"], h) for h in hosts}
    assert set(waits_for(graph, Step(ids["next play"], "n0"))) == {Step(ids["reads all"], h) for h in hosts}
    # the order: every host's step before it, then every host's step after it
    done: set = set()
    for generation in topological_generations(graph):
        for node in generation:
            if isinstance(node, Step) and node.task_id == ids["reads all"]:
                assert {Step(ids["own"], h) for h in hosts} <= done
            done.add(node)


def test_a_variable_from_vars_files_reading_other_hosts_makes_its_users_wait(site):
    """(vars_files were not looked into: a's step could use b's variable before b's set_fact.)"""
    from gfsdeploy.cli import main

    root, inv = site
    (root / "shared.yaml").write_text("color: \"{{ hostvars['b'].paint | default('none') }}\"\n")
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          vars_files: [shared.yaml]
          tasks:
            - name: slow on b
              command: sleep 1
              when: inventory_hostname == 'b'
              changed_when: false
            - name: b paints
              set_fact: {paint: blue}
              when: inventory_hostname == 'b'
            - name: uses it
              copy: {dest: "{{ root }}/color-{{ inventory_hostname }}", content: "{{ color }}\\n"}
        """))
    graph, tasks = build_graph(load_playbook(str(pb)), load_inventory(inv))
    ids = {t.name: t.id for t in tasks.values()}
    assert Step(ids["b paints"], "b") in waits_for(graph, Step(ids["uses it"], "a"))
    assert main(["apply", inv, "-p", str(pb), "--yes", "--forks", "2"]) == 0
    assert [(root / f"color-{h}").read_text() for h in "ab"] == ["blue\n", "blue\n"]


def test_a_templated_src_counts_the_files_it_may_name_wherever_the_runner_looks(site, monkeypatch):
    """A templated ``src`` may name a file next to the playbook, not only under templates/
    (the runner looks in both): such a file reading other hosts makes the step wait. Only
    the files the name may match count; none at all (one may be made before the step
    runs) or too many to look into count as reading."""
    root, inv = site
    (root / "templates").mkdir()
    (root / "templates" / "plain.j2").write_text("{{ inventory_hostname }}\n")
    (root / "direct.j2").write_text("{% for h in groups['all'] %}{{ hostvars[h].myval }} {% endfor %}\n")

    def waits(src: str) -> bool:
        pb = root / "pb.yaml"
        pb.write_text(textwrap.dedent(f"""\
            - hosts: all
              gather_facts: false
              tasks:
                - name: value
                  set_fact: {{myval: v}}
                - name: render
                  template: {{src: "{src}", dest: "{{{{ root }}}}/out-{{{{ inventory_hostname }}}}"}}
            """))
        graph, tasks = build_graph(load_playbook(str(pb)), load_inventory(inv))
        ids = {t.name: t.id for t in tasks.values()}
        return Step(ids["value"], "b") in waits_for(graph, Step(ids["render"], "a"))

    assert waits("{{ 'direct' }}.j2")       # found next to the playbook: reads hostvars
    assert not waits("{{ 'pla' }}in.j2")    # may only be templates/plain.j2: its own host
    assert waits("{{ 'made' }}-later.j2")   # names no file yet
    monkeypatch.setattr(g, "_CANDIDATES_MAX", 1)
    assert waits("{{ 'pla' }}in.j2")        # too many files to look into


def test_vars_files_named_by_a_template_or_encrypted_are_looked_into(site):
    """A vars_files entry naming its file with a template (every file it may name is read)
    or vault-encrypted (decrypted with the run's password, which loading the playbook
    needs anyway): a variable there reading
    other hosts makes its users wait, as one from a plain file does."""
    from gfsdeploy import vault

    root, inv = site
    (root / "vars").mkdir()
    reading = "color: \"{{ hostvars['b'].paint | default('none') }}\"\n"
    (root / "vars" / "prod.yml").write_text(reading)
    (root / "secret.yml").write_text(vault.encrypt(reading.replace("color", "shade"), "pw"))

    def waits(vars_files: str, name: str) -> bool:
        pb = root / "pb.yaml"
        pb.write_text(textwrap.dedent(f"""\
            - hosts: all
              gather_facts: false
              vars: {{env: prod}}
              vars_files: {vars_files}
              tasks:
                - name: b paints
                  set_fact: {{paint: blue}}
                - name: uses it
                  copy: {{dest: "{{{{ root }}}}/x-{{{{ inventory_hostname }}}}", content: "{{{{ {name} }}}}"}}
            """))
        graph, tasks = build_graph(load_playbook(str(pb)), load_inventory(inv))
        ids = {t.name: t.id for t in tasks.values()}
        return Step(ids["b paints"], "b") in waits_for(graph, Step(ids["uses it"], "a"))

    assert waits('["vars/{{ env }}.yml"]', "color")
    saved = vault.current()
    try:
        keyring = vault.Keyring()
        keyring.add("default", "pw")
        vault.use(keyring)
        assert waits("[secret.yml]", "shade")
    finally:
        vault.use(saved)
