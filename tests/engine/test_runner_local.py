"""Engine behaviour with ``ansible_connection: local`` (no SSH): precedence,
handlers, tags/limit, loops/register/until, failure isolation, needs, the
plan's (known after apply). Each checks files written by the run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gfsdeploy.graph import build_graph
from gfsdeploy.inventory import load_inventory
from gfsdeploy.playbook import load_playbook


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def site(tmp_path):
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, root: "{tmp_path}", level: all, shared: all,
                 gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts:
            a: {{level: host}}
            b: {{}}
          children:
            web:
              vars: {{level: group, shared: web}}
              hosts: {{a: {{}}, b: {{}}}}
            inner:
              children:
                deeper:
                  vars: {{shared: deeper}}
                  hosts: {{b: {{}}}}
        """))

    def playbook(text: str) -> str:
        path = tmp_path / "pb.yaml"
        path.write_text(textwrap.dedent(text))
        return str(path)

    return tmp_path, str(inv), playbook


def test_variable_precedence(site):
    _, inv, _ = site
    inventory = load_inventory(inv)
    assert inventory.hosts["a"].vars["level"] == "host"          # host beats group
    assert inventory.hosts["b"].vars["level"] == "group"         # group beats all
    assert inventory.hosts["b"].vars["shared"] == "deeper"       # deeper group beats shallower
    assert inventory.hosts["a"].vars["shared"] == "web"
    assert inventory.select("web:!b") == ["a"]
    assert inventory.select("inner") == ["b"]


def test_handlers_after_a_failure_run_only_with_force_handlers(site):
    """Ansible: a host that failed runs no handlers, unless the play says force_handlers."""
    root, inv, playbook = site
    text = """\
        - hosts: a
          {force}
          handlers:
            - name: mark
              copy: {{dest: "{{{{ root }}}}/handled", content: "yes\\n"}}
          tasks:
            - name: change something
              copy: {{dest: "{{{{ root }}}}/one", content: "1\\n"}}
              notify: mark
            - name: then fail
              command: "false"
            - name: never runs
              copy: {{dest: "{{{{ root }}}}/never", content: "x\\n"}}
        """
    proc = gfs("apply", inv, "-p", playbook(text.format(force="")))
    assert proc.returncode == 1
    assert (root / "one").exists(), proc.stdout + proc.stderr
    assert (root / "one").read_text() == "1\n"
    assert not (root / "handled").exists() and not (root / "never").exists()
    assert "then fail" in proc.stdout and "return code 1" in proc.stdout
    (root / "one").unlink()
    proc = gfs("apply", inv, "-p", playbook(text.format(force="force_handlers: true")))
    assert proc.returncode == 1
    assert (root / "handled").read_text() == "yes\n"
    assert not (root / "never").exists()


def test_one_host_failing_does_not_stop_the_other(site):
    root, inv, playbook = site
    pb = playbook("""\
        - hosts: all
          tasks:
            - name: fails on a only
              command: "{{ 'false' if inventory_hostname == 'a' else 'true' }}"
            - name: after
              copy: {dest: "{{ root }}/after-{{ inventory_hostname }}", content: "ok\\n"}
        """)
    proc = gfs("apply", inv, "-p", pb, "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["hosts"]["a"]["failed"] and not data["hosts"]["b"]["failed"]
    assert (root / "after-b").exists() and not (root / "after-a").exists()
    # --fail-fast stops everything at the first failure (b's `after` is blocked or never started)
    (root / "after-b").unlink()
    proc = gfs("apply", inv, "-p", pb, "--fail-fast", "--forks", "1")
    assert proc.returncode == 1


def test_tags_skip_tags_and_limit(site):
    root, inv, playbook = site
    pb = playbook("""\
        - hosts: all
          tasks:
            - copy: {dest: "{{ root }}/x-{{ inventory_hostname }}", content: "x\\n"}
              tags: [x]
            - copy: {dest: "{{ root }}/y-{{ inventory_hostname }}", content: "y\\n"}
              tags: [y]
        """)
    assert gfs("apply", inv, "-p", pb, "--tags", "x", "--limit", "a").returncode == 0
    assert sorted(p.name for p in root.iterdir() if p.name[:2] in ("x-", "y-")) == ["x-a"]
    assert gfs("apply", inv, "-p", pb, "--skip-tags", "x").returncode == 0
    assert sorted(p.name for p in root.iterdir() if p.name[:2] in ("x-", "y-")) == ["x-a", "y-a", "y-b"]


def test_loop_register_when_until(site):
    root, inv, playbook = site
    pb = playbook("""\
        - hosts: a
          tasks:
            - name: count
              shell: echo -n . >> {{ root }}/count; wc -c < {{ root }}/count
              register: n
              until: n.stdout | int >= 3
              retries: 5
              delay: 0
            - name: per item
              copy: {dest: "{{ root }}/item-{{ item }}", content: "{{ item }} after {{ n.stdout }}\\n"}
              loop: [p, q]
              when: item != 'q'
        """)
    proc = gfs("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "count").read_text() == "..."
    assert (root / "item-p").read_text() == "p after 3\n"
    assert not (root / "item-q").exists()


def test_plan_shows_known_after_apply(site):
    root, inv, playbook = site
    pb = playbook("""\
        - hosts: a
          tasks:
            - name: make an id
              command: date +%s%N
              register: made
            - name: use it
              copy: {dest: "{{ root }}/id", content: "{{ made.stdout }}\\n"}
        """)
    proc = gfs("plan", inv, "-p", pb)
    assert proc.returncode == 2
    assert "(known after apply)" in proc.stdout
    assert not (root / "id").exists()


def test_a_task_skipped_or_run_only_after_apply_registers_an_unknown(site):
    """A read-only task whose `when` is known only after apply: what it registers is
    unknown too, so a later task using one of its keys plans as (known after apply)."""
    root, inv, playbook = site
    pb = playbook("""\
        - hosts: a
          gather_facts: false
          tasks:
            - name: make an id
              command: date +%s%N
              register: made
            - name: read it back
              stat: {path: "{{ root }}/id"}
              register: seen
              when: made.stdout != ""
            - name: use what was read
              copy: {dest: "{{ root }}/seen", content: "{{ seen.stat.exists }}\\n"}
        """)
    proc = gfs("plan", inv, "-p", pb)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "(known after apply)" in proc.stdout and "Error" not in proc.stdout + proc.stderr


def test_needs_across_plays_and_hosts_and_dot(site):
    _, inv, playbook = site
    pb = playbook("""\
        - name: first
          hosts: all
          tasks:
            - {name: prepare, id: prep, command: "true"}
        - name: second
          hosts: a
          needs: []
          tasks:
            - {name: early, command: "true"}
            - {name: late, command: "true", needs: [prep]}
        """)
    graph, tasks = build_graph(load_playbook(pb), load_inventory(inv))
    preds = {str(p) for step in graph.nodes if tasks[step.task_id].name == "late" for p in graph.predecessors(step)}
    assert preds == {"prep@a", "prep@b"}  # the other host's step too: a cross-host barrier
    early = [s for s in graph.nodes if tasks[s.task_id].name == "early"][0]
    assert graph.in_degree(early) == 0  # play `needs: []` opts out of the play barrier
    dot = gfs("graph", inv, "-p", pb, "--format", "dot")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph") and '"prep@b" ->' in dot.stdout
