"""What the controller computes once for every host of a step, or only when it is
used, gives what computing it per host gave: a template file looked up once is
looked up again after a command ran on the controller (a step may create a better
match); facts a play does not gather are parsed only when a variable reads them;
compiled expressions are shared by every thread's Templar. Local hosts; files are
read back."""

from __future__ import annotations

import contextlib
import io
import json
import textwrap
import threading

from gfsdeploy import hostfacts
from gfsdeploy.cli import main
from gfsdeploy.templating import Templar


def _run(args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*args, "--json"])
    return rc, json.loads(out.getvalue())


def _inventory(tmp_path, hosts="a: {}, b: {}"):
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, root: "{tmp_path}", gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts: {{{hosts}}}
        """))
    return str(inv)


def test_a_template_a_local_step_creates_is_found_by_the_next_step(tmp_path):
    """The playbook's templates/ wins over its directory: once a step on the controller
    wrote templates/t.j2, the next step (every host) renders that one, not the one found
    before — although each host already looked `t.j2` up once."""
    inv = _inventory(tmp_path, hosts="a: {}")
    (tmp_path / "t.j2").write_text("top {{ inventory_hostname }}\n")
    (tmp_path / "better.j2").write_text("from templates/ {{ inventory_hostname }}\n")
    (tmp_path / "templates").mkdir()
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: before
              template: {src: t.j2, dest: "{{ root }}/before-{{ inventory_hostname }}"}
            - name: a better template appears
              command: cp "{{ root }}/better.j2" "{{ root }}/templates/t.j2"
            - name: after
              template: {src: t.j2, dest: "{{ root }}/after-{{ inventory_hostname }}"}
        """))
    rc, data = _run(["apply", inv, "-p", str(pb)])
    assert rc == 0, data
    assert (tmp_path / "before-a").read_text() == "top a\n"
    assert (tmp_path / "after-a").read_text() == "from templates/ a\n"


def test_facts_not_gathered_are_parsed_only_when_read(tmp_path, monkeypatch):
    calls = []
    other = hostfacts._other_facts

    def counting(s, facts):
        calls.append(1)
        return other(s, facts)

    monkeypatch.setattr(hostfacts, "_other_facts", counting)
    inv = _inventory(tmp_path)
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: no facts used
              copy: {dest: "{{ root }}/plain-{{ inventory_hostname }}", content: "x\\n"}
        """))
    rc, data = _run(["apply", inv, "-p", str(pb)])
    assert rc == 0, data
    assert calls == []  # only the distribution's part (what modules plan with) was read
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: true
          tasks:
            - name: facts used
              copy: {dest: "{{ root }}/facts-{{ inventory_hostname }}",
                     content: "{{ ansible_facts.devices is mapping }} {{ ansible_uptime_seconds is number }}\\n"}
        """))
    rc, data = _run(["apply", inv, "-p", str(pb)])
    assert rc == 0, data
    assert calls  # parsed once the variables needed them
    assert (tmp_path / "facts-a").read_text() == "True True\n"
    assert (tmp_path / "facts-b").read_text() == "True True\n"


def test_read_without_facts_gives_the_same_host_info():
    text = hostfacts.MARK + " os\nID=debian\nVERSION_ID=12\nNAME=Debian\n" + hostfacts.MARK + " uname\nLinux\n6.1\n" \
        "x86_64\nn1\n"
    facts, info = hostfacts.read("n1", text, {})
    none, same = hostfacts.read("n1", text, {}, facts=False)
    assert none is None and same == info and info.os_family == "debian"
    assert facts["distribution"] == "Debian" and facts["kernel"] == "6.1"


def test_expressions_compiled_once_render_alike_in_every_thread():
    results, errors = [], []

    def render():
        try:
            t = Templar()
            results.append((t.render("{{ x | default(3) + n }}", {"n": 4}),
                            t.evaluate("n > 3 and 'a' in s", {"n": 4, "s": "abc"}),
                            t.render("{{ range(n) | list }}", {"n": 2})))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=render) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [(7, True, [0, 1])] * 4


def test_yaml_parsed_by_libyaml_gives_the_same_objects_lines_and_errors(monkeypatch):
    from gfsdeploy import yamlload
    from gfsdeploy.errors import GfsError

    text = ("all:\n  vars:\n    a: \"{{ b }}\"\n    c: |\n      {{ d }}\n  hosts:\n    h1: {x: [1, 2]}\n"
            "    h2:\n      <<: {y: 1}\n      y: 2\n")
    assert yamlload._FAST is not None  # (PyYAML here has libyaml)
    fast = yamlload.loads(text, "inv.yaml")
    monkeypatch.setattr(yamlload, "_FAST", None)
    slow = yamlload.loads(text, "inv.yaml")
    assert fast == slow
    assert fast["all"]["hosts"].key_lines == slow["all"]["hosts"].key_lines == {"h1": 7, "h2": 8}
    for key in ("a", "c"):
        assert type(fast["all"]["vars"][key]) is yamlload.Located
        assert fast["all"]["vars"][key].origin_line == slow["all"]["vars"][key].origin_line
    assert fast["all"]["vars"]["c"].origin_line == 5
    monkeypatch.undo()
    errors = []
    for bad in ("a: 1\n  b: 2\n", "a: 1\na: 2\n", "a: [1,\n"):
        for fast_parser in (True, False):
            if not fast_parser:
                monkeypatch.setattr(yamlload, "_FAST", None)
            try:
                yamlload.loads(bad, "bad.yaml")
            except GfsError as exc:
                errors.append((exc.message, exc.line))
            monkeypatch.undo()
    assert errors[0::2] == errors[1::2]  # the same words and line with or without libyaml
    assert "duplicate key 'a'" in errors[2][0] and errors[2][1] == 2


def test_a_rendering_every_host_shares_is_made_once_and_again_after_a_change(tmp_path, monkeypatch):
    """A block listing every host's variable renders once for all hosts (per worker
    thread), and again once a host's variables changed (a set_fact on one host)."""
    from gfsdeploy.templating import templar as templar_mod

    block = "{% for h in groups['all'] %}{{ hostvars[h].v }} {% endfor %}"
    counts = {"block": 0}
    render = templar_mod._render_template

    def counting(template, variables, under=None):
        out = render(template, variables, under)
        if out.startswith(("1 ", "x ")):  # (the block's text; no other rendering starts so)
            counts["block"] += 1
        return out

    monkeypatch.setattr(templar_mod, "_render_template", counting)
    inv = _inventory(tmp_path, hosts="a: {v: 1}, b: {v: 2}, c: {v: 2}")
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent(f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: every host's v
              copy: {{dest: "{{{{ root }}}}/before-{{{{ inventory_hostname }}}}", content: "{block}"}}
            - name: a changes its v
              set_fact: {{v: x}}
              when: inventory_hostname == 'a'
            - name: every host's v again
              copy: {{dest: "{{{{ root }}}}/after-{{{{ inventory_hostname }}}}", content: "{block}"}}
        """))
    rc, data = _run(["plan", inv, "-p", str(pb), "--forks", "1"])
    assert rc == 2, data
    assert counts["block"] == 2  # once per copy task for the three hosts (it was once per host: 6)
    counts["block"] = 0
    rc, data = _run(["apply", inv, "-p", str(pb), "--forks", "1"])
    assert rc == 0, data
    for h in "abc":
        assert (tmp_path / f"before-{h}").read_text() == "1 2 2 "
        assert (tmp_path / f"after-{h}").read_text() == "x 2 2 "
