"""Through the CLI on a local host: a template mistake stops the run (before connecting,
by the static check, or when rendering) naming the mistake and the file — never printing
the raw ``{{ … }}`` text as a value, never a loop that waits forever on it. Output a host
printed is data: a ``{{`` in it is never templated."""

import subprocess
import sys
import textwrap
import time

import pytest


@pytest.fixture
def site(tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text(f"[nodes]\nnode_1 ansible_connection=local gfsdeploy_lock_dir={tmp_path}/lock root={tmp_path}\n")

    def run(playbook: str, *extra):
        path = tmp_path / "site.yml"
        path.write_text(textwrap.dedent(playbook))
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "gfsdeploy", "apply", str(inv), "-p", str(path), *extra],
                              capture_output=True, text=True, timeout=120, check=False)
        return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started, str(path)

    return tmp_path, run


def test_unknown_filter_in_play_vars_is_a_located_error(site):
    root, run = site
    code, out, _, path = run("""\
        - hosts: nodes
          vars:
            fine: "{{ {'a': [1, 2]} | json_query('a[1]') }}"
            wanted: "{{ [1, 2] | json_qurey('[0]') }}"
          tasks:
            - copy: {dest: "{{ root }}/fine", content: "{{ fine }}"}
            - debug:
                msg: "value={{ wanted }}"
        """)
    assert code == 1, out
    assert "json_qurey" in out and path in out
    assert "value=" not in out  # the debug message never showed the raw text
    assert not (root / "fine").exists()  # stopped before changing anything


def test_until_loop_on_a_broken_value_stops_at_once(site):
    root, run = site
    code, out, elapsed, path = run("""\
        - hosts: nodes
          vars:
            count: "{{ 3 | no_such_filter }}"
          tasks:
            - name: wait
              command: "true"
              register: r
              until: count | int > 2
              retries: 1000
              delay: 1
        """)
    assert code == 1, out
    assert "no_such_filter" in out and path in out
    assert elapsed < 60


def test_undefined_at_render_time_names_the_task(site):
    root, run = site
    code, out, _, path = run("""\
        - hosts: nodes
          tasks:
            - name: first
              copy: {dest: "{{ root }}/one", content: "1\\n"}
            - name: uses a registered value that is not there
              copy:
                dest: "{{ root }}/two"
                content: "{{ hostvars[inventory_hostname].never_registered.stdout }}"
        """)
    assert code == 1, out
    assert "undefined" in out and "never_registered" in out
    assert "{{" not in out.replace("{{ }}", "")
    assert not (root / "two").exists()


def test_template_text_in_a_command_output_stays_text(site):
    root, run = site
    code, out, _, path = run("""\
        - hosts: nodes
          tasks:
            - name: print template text
              command: printf '%s%s and %s%s' '{' '{ not_a_variable }}' '{' '% raw %}'
              register: printed
            - copy: {dest: "{{ root }}/out", content: "{{ printed.stdout }}"}
            - copy: {dest: "{{ root }}/out2", content: "got: {{ printed.stdout }}"}
        """)
    assert code == 0, out
    assert (root / "out").read_text() == "{{ not_a_variable }} and {% raw %}"
    assert (root / "out2").read_text() == "got: {{ not_a_variable }} and {% raw %}"
