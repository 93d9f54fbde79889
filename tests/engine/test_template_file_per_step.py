"""A template file is looked up once for all the loop items of a step, not once per
item: what is kept is keyed on the ``src`` it was read for and on the controller's
stamp (a command or lookup that ran may have changed the file), lives for one pass over
one step; the file is read again only when it changed (its stat), and a decrypted vault
template is never kept. Local hosts; files are read back."""

from __future__ import annotations

import contextlib
import io
import json
import textwrap

from gfsdeploy import runner as runner_mod
from gfsdeploy.cli import main
from gfsdeploy.templating import templar as templar_mod
from gfsdeploy.templating.templar import LOOKUPS_STARTED
from gfsdeploy.transport.base import Transport


def _run(args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*args, "--json"])
    return rc, json.loads(out.getvalue())


def _site(tmp_path, tasks: str, hosts: str = "a: {}, b: {}"):
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, root: "{tmp_path}", gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts: {{{hosts}}}
        """))
    (tmp_path / "templates").mkdir(exist_ok=True)
    pb = tmp_path / "pb.yaml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    "))
    return str(inv), str(pb)


def test_a_steps_items_read_the_template_once(tmp_path, monkeypatch):
    reads = []
    made = templar_mod.TemplateFile.__init__

    def counting(self, path):
        reads.append(path)
        made(self, path)

    monkeypatch.setattr(templar_mod.TemplateFile, "__init__", counting)
    inv, pb = _site(tmp_path, """\
        - name: five files
          template: {src: t.j2, dest: "{{ root }}/f{{ item }}-{{ inventory_hostname }}"}
          loop: [1, 2, 3, 4, 5]
        """)
    (tmp_path / "templates" / "t.j2").write_text("{{ item }} on {{ inventory_hostname }} ({{ template_basename }})\n")
    rc, data = _run(["apply", inv, "-p", pb, "--forks", "1"])
    assert rc == 0, data
    for host in "ab":
        for item in range(1, 6):
            assert (tmp_path / f"f{item}-{host}").read_text() == f"{item} on {host} (t.j2)\n"
    # once for the run while the file did not change (it was once per host and pass over the
    # step, and before that once per item)
    assert len(reads) == 1, reads


def test_items_with_different_sources_render_their_own_template(tmp_path):
    """The memo is keyed on the ``src`` asked for: one step's items may name other files."""
    inv, pb = _site(tmp_path, """\
        - name: one file per template
          template: {src: "{{ item }}.j2", dest: "{{ root }}/{{ item }}-{{ inventory_hostname }}"}
          loop: [red, blue, red]
        """)
    (tmp_path / "templates" / "red.j2").write_text("red {{ inventory_hostname }}\n")
    (tmp_path / "templates" / "blue.j2").write_text("blue {{ inventory_hostname }}\n")
    rc, data = _run(["apply", inv, "-p", pb])
    assert rc == 0, data
    for host in "ab":
        assert (tmp_path / f"red-{host}").read_text() == f"red {host}\n"
        assert (tmp_path / f"blue-{host}").read_text() == f"blue {host}\n"


def test_a_template_changed_between_steps_is_read_again(tmp_path):
    inv, pb = _site(tmp_path, """\
        - name: before
          template: {src: t.j2, dest: "{{ root }}/before-{{ inventory_hostname }}"}
        - name: the template changes
          command: cp "{{ root }}/new.j2" "{{ root }}/templates/t.j2"
          delegate_to: localhost
          run_once: true
        - name: after
          template: {src: t.j2, dest: "{{ root }}/after-{{ inventory_hostname }}"}
        """)
    (tmp_path / "templates" / "t.j2").write_text("old {{ inventory_hostname }}\n")
    (tmp_path / "new.j2").write_text("new {{ inventory_hostname }}\n")
    rc, data = _run(["apply", inv, "-p", pb])
    assert rc == 0, data
    for host in "ab":
        assert (tmp_path / f"before-{host}").read_text() == f"old {host}\n"
        assert (tmp_path / f"after-{host}").read_text() == f"new {host}\n"


def test_a_step_memo_is_looked_up_again_after_a_controller_command_or_lookup():
    """What one item looked up is looked up again for the next item once a command or a
    lookup ran on the controller in between (a `pipe` lookup in an item's args may
    rewrite the template)."""
    memo: dict = {}
    answers = iter(["first", "second", "third", "fourth"])
    look = lambda: next(answers)  # noqa: E731
    step_lookup = runner_mod.Runner._step_lookup
    assert step_lookup(("templates", "t.j2"), memo, look) == "first"
    assert step_lookup(("templates", "t.j2"), memo, look) == "first"
    assert step_lookup(("templates", "other.j2"), memo, look) == "second"  # keyed on the src
    LOOKUPS_STARTED[0] += 1
    assert step_lookup(("templates", "t.j2"), memo, look) == "third"
    Transport.local_commands += 1
    assert step_lookup(("templates", "t.j2"), memo, look) == "fourth"
    assert step_lookup(("templates", "t.j2"), None, lambda: "no memo") == "no memo"


def test_a_decrypted_template_is_not_kept(tmp_path, monkeypatch):
    """A vault template's plain text is read for each use, never kept in a step's memo."""
    path = tmp_path / "s.j2"
    path.write_text("secret {{ x }}\n")

    def encrypted(self, p):
        self.path, self.source, self.encrypted, self.file_vars = p, path.read_text(), True, {}

    monkeypatch.setattr(templar_mod.TemplateFile, "__init__", encrypted)

    class Stub:
        _step_lookup = staticmethod(runner_mod.Runner._step_lookup)
        _template_files: dict = {}

        def _find(self, p, task, sub):
            return str(path)

    memo: dict = {}
    full, file, uses_files = runner_mod.Runner._template_file(Stub(), "s.j2", None, memo)
    assert (full, file.source, uses_files) == (str(path), "secret {{ x }}\n", False)
    assert memo == {} and Stub._template_files == {}   # (nor in the run's files read)
