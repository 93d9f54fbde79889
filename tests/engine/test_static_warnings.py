"""A Jinja syntax error in a task that runs only under a condition (an old role's
``default(0700)`` behind a ``when:``-gated include) is a warning before connecting —
Ansible fails there only if the task runs — and a located hard error if it does run.
The same mistake in an unconditional task is refused before connecting."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BROKEN = ("- name: octal\n"
          "  file: path={d}/x state=directory mode=\"{{{{ item.mode | default(0700) }}}}\"\n"
          "  loop: [{{}}]\n")


def project(tmp_path, include_when: str | None):
    (tmp_path / "roles/r/tasks").mkdir(parents=True)
    (tmp_path / "pb.yaml").write_text("- hosts: all\n  gather_facts: false\n  roles: [r]\n")
    main = "- name: ok\n  debug: msg=hi\n- include_tasks: extra.yml\n"
    if include_when:
        main += f"  when: {include_when}\n"
    (tmp_path / "roles/r/tasks/main.yml").write_text(main)
    (tmp_path / "roles/r/tasks/extra.yml").write_text(BROKEN.format(d=tmp_path))
    (tmp_path / "inv.yaml").write_text("all: {hosts: {localhost: {ansible_connection: local}}, "
                                       f"vars: {{gfsdeploy_lock_dir: '{tmp_path}'}}}}\n")
    return str(tmp_path / "inv.yaml"), str(tmp_path / "pb.yaml")


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.DEVNULL)


def test_conditional_syntax_error_is_a_warning_then_an_error_if_it_runs(tmp_path):
    inv, pb = project(tmp_path, "do_extra | default(false)")
    plan = gfs("plan", inv, "-p", pb)
    out = plan.stdout + plan.stderr
    assert plan.returncode == 0, out
    assert "Warning:" in out and "extra.yml:1" in out and "default(0700)" in out, out
    assert "Traceback" not in out

    ran = gfs("plan", inv, "-p", pb, "-e", "do_extra=true")
    out = ran.stdout + ran.stderr
    assert ran.returncode == 1, out
    assert "Error:" in out and "extra.yml:1" in out and "Jinja syntax error" in out, out
    assert "Traceback" not in out and "internal error" not in out
    assert not (tmp_path / "x").exists()


def test_unconditional_syntax_error_is_refused_before_connecting(tmp_path):
    inv, pb = project(tmp_path, None)
    # a host that cannot be reached: the mistake in the file is what the user sees
    (tmp_path / "inv.yaml").write_text("all: {hosts: {nowhere: {ansible_host: 192.0.2.1, ansible_port: 9}}}\n")
    checked = gfs("check", inv, "-p", pb)
    out = checked.stdout + checked.stderr
    assert checked.returncode == 1, out
    assert "extra.yml:1" in out and "Jinja syntax error" in out, out
    assert "connect" not in out.lower() and "Plan:" not in out, out
