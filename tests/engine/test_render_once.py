"""A step's arguments are rendered once per pass: the batched read renders every
remaining step of a host to make its probes, and the batch and the step's own run
reuse that rendering — unless something it used changed in between (a variable of
this host, another host's ``hostvars``, which hosts are live, a local file, a
lookup's answer). Local hosts (``ansible_connection: local``); the files written
are read back."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import subprocess
import sys
import textwrap

from gfsdeploy import runner as runner_mod
from gfsdeploy.cli import main


def test_each_step_is_rendered_once_per_pass(site, monkeypatch):
    root, inv = site
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          vars: {names: [x, y, z]}
          tasks:
            - name: one file
              copy: {dest: "{{ root }}/one-{{ inventory_hostname }}", content: "{{ inventory_hostname }}\\n"}
            - name: a loop
              copy: {dest: "{{ root }}/{{ item }}-{{ inventory_hostname }}", content: "{{ item }}\\n"}
              loop: "{{ names }}"
            - name: the hosts
              copy: {dest: "{{ root }}/hosts-{{ inventory_hostname }}",
                     content: "{% for h in groups['all'] %}{{ hostvars[h].inventory_hostname }} {% endfor %}\\n"}
        """))
    counts = collections.Counter()
    each_item = runner_mod.Runner._each_item

    def counting(self, hr, task, module, variables):
        counts[(hr.host.name, task.name)] += 1
        return each_item(self, hr, task, module, variables)

    monkeypatch.setattr(runner_mod.Runner, "_each_item", counting)

    def run(*args):
        counts.clear()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main([*args, inv, "-p", str(pb), "--json"])
        return rc, json.loads(out.getvalue())

    rc, data = run("plan")
    assert rc == 2 and data["summary"]["add"] == 10
    tasks = ("one file", "a loop", "the hosts")
    assert dict(counts) == {(h, t): 1 for h in "ab" for t in tasks}   # it was 2: the read, then the run
    rc, _ = run("apply")
    assert rc == 0
    assert dict(counts) == {(h, t): 2 for h in "ab" for t in tasks}   # plan pass + apply pass (it was 4)
    assert (root / "hosts-b").read_text() == "a b \n" and (root / "z-a").read_text() == "z\n"
    rc, data = run("apply")
    assert rc == 0 and data["summary"]["add"] == data["summary"]["change"] == 0
    assert dict(counts) == {(h, t): 1 for h in "ab" for t in tasks}


def test_what_a_rendering_used_changing_renders_it_again(site):
    """A plan: every step is rendered by the first batched read, before the steps
    before it ran; what they change must show in its plan."""
    root, inv = site
    (root / "new.j2").write_text("newer {{ inventory_hostname }}\n")
    (root / "newpart.j2").write_text("part newer\n")
    for host in "ab":
        (root / f"src-{host}.j2").write_text("old {{ inventory_hostname }}\n")
        (root / f"main-{host}.j2").write_text("{% include 'part-' ~ inventory_hostname ~ '.j2' %}")
        (root / f"part-{host}.j2").write_text("part old\n")
        (root / f"data-{host}").write_text("old data\n")
    pb = root / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: b sets a fact
              set_fact: {color: blue}
              when: inventory_hostname == 'b'
            - name: another host's fact
              copy: {dest: "{{ root }}/color-{{ inventory_hostname }}",
                     content: "color {{ hostvars['b'].color | default('none') }}\\n"}
            - name: local files are rewritten (also in a plan)
              shell: "cp {{ root }}/new.j2 {{ root }}/src-{{ inventory_hostname }}.j2 &&
                      cp {{ root }}/newpart.j2 {{ root }}/part-{{ inventory_hostname }}.j2"
              delegate_to: localhost
              check_mode: false
            - name: a lookup's file too
              shell: "echo newer data > {{ root }}/data-{{ inventory_hostname }}"
              delegate_to: localhost
              check_mode: false
            - name: from the template
              template: {src: "{{ root }}/src-{{ inventory_hostname }}.j2", dest: "{{ root }}/out-{{ inventory_hostname }}"}
            - name: from a template including another
              template: {src: "{{ root }}/main-{{ inventory_hostname }}.j2", dest: "{{ root }}/main-{{ inventory_hostname }}"}
            - name: from a lookup
              copy: {dest: "{{ root }}/looked-{{ inventory_hostname }}",
                     content: "looked {{ lookup('file', root ~ '/data-' ~ inventory_hostname) }}\\n"}
            - name: b fails
              fail: {msg: "b stops here"}
              when: inventory_hostname == 'b'
            - name: the live hosts
              copy: {dest: "{{ root }}/live-{{ inventory_hostname }}", content: "live {{ ansible_play_hosts | join(',') }}\\n"}
        """))
    proc = subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", inv, "-p", str(pb)],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr   # b failed
    assert out.count("+color blue") == 2 and "none" not in out, out
    assert out.count("+newer ") == 2 and "old" not in out, out
    assert out.count("+looked newer data") == 2, out
    assert out.count("+part newer") == 2, out
    assert "+live a\n" in out + "\n" and "+live a,b" not in out, out
