"""Through the CLI on a local host: a template mistake stops the run with the file and
line where the template was written — never the raw ``{{ … }}`` text, never a loop
that waits forever on it."""

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
    assert "unknown filter 'json_qurey'" in out and "did you mean 'json_query'" in out
    assert f"{path}:4" in out  # where `wanted` is defined
    assert "{{" not in out.replace("{{ }}", "")


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
    assert "unknown filter 'no_such_filter'" in out and f"{path}:3" in out
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
