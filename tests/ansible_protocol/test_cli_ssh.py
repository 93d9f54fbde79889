"""The real CLI over real SSH (the engine's sshd on 127.0.0.1) with Ansible modules
gfsdeploy has no native module for: a playbook's own library/ (kube.py's style, with
and without check mode) and ansible-core's. Plan previews and changes nothing, apply
changes, the next plan is a no-op in one round trip; the module is shipped once and
then run from the host's cache; secrets stay out of every output. Results are read
back from disk, not taken from gfsdeploy's word."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.ansible_protocol.conftest import SETTLE, STAMP, write_tree

pytest.importorskip("ansible.module_utils.basic", reason="ansible-core (the `test` extra) packs modules")

SECRET = "tok-5f1e2d3c4b"

PLAYBOOK = f"""\
- hosts: all
  tasks:
    - name: motd through a library module
      settle:
        path: "{{{{ root }}}}/motd"
        content: "hello from {{{{ inventory_hostname }}}}\\n"
        token: {SECRET}
      register: settled
    - name: keep what it registered when it changed
      copy:
        dest: "{{{{ root }}}}/registered.json"
        content: "{{{{ settled | to_json }}}}"
      when: settled.changed
    - name: a setting through ansible-core's replace
      ansible.builtin.replace:
        path: "{{{{ root }}}}/app.conf"
        regexp: '^level=.*$'
        replace: level=3
"""


# kubespray's pattern for a module without check mode: a read decides whether it runs
STAMP_PLAYBOOK = """\
- hosts: all
  tasks:
    - name: is it stamped
      command: grep -q stamped "{{ root }}/stamps"
      register: stamped
      changed_when: false
      failed_when: false
      check_mode: false
    - name: stamp once (no check mode)
      stamp:
        path: "{{ root }}/stamps"
      when: stamped.rc != 0
"""


def gfs(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture
def project(tmp_path, sshd):
    root = tmp_path / "remote"
    root.mkdir()
    (root / "app.conf").write_text("level=1\nname=x\n")
    cache = tmp_path / "module-cache"
    inv = sshd.inventory(tmp_path / "inv.yaml", extra_host_vars=f", root: {root}, gfsdeploy_module_cache: {cache}, "
                              f"gfsdeploy_lock_dir: {tmp_path}/lock")
    pb_dir = tmp_path / "pb"
    write_tree(pb_dir, {"library/settle.py": SETTLE, "library/stamp.py": STAMP, "site.yaml": PLAYBOOK,
                        "stamp.yaml": STAMP_PLAYBOOK})
    return {"root": root, "inv": inv, "pb": str(pb_dir / "site.yaml"), "cache": cache, "tmp": tmp_path,
            "stamp": str(pb_dir / "stamp.yaml")}


def no_secret(*procs):
    for proc in procs:
        assert SECRET not in proc.stdout + proc.stderr


def round_trips(proc) -> int:
    return json.loads(proc.stdout)["hosts"]["node1"]["round_trips"]


def test_plan_apply_noop_plan(project):
    root, inv, pb = project["root"], project["inv"], project["pb"]

    plan = gfs("plan", inv, "-p", pb, "-v")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    out = plan.stdout
    assert f"+ settle {root}/motd" in out and "+hello from node1" in out          # check mode + diff
    assert f"~ replace {root}/app.conf" in out and "-level=1" in out and "+level=3" in out
    assert "Ansible module protocol" in out and "library/settle.py" in out       # plan -v says how
    # plan changed nothing: not the library modules, not ansible-core's, not the one without check mode
    assert not (root / "motd").exists()
    assert (root / "app.conf").read_text() == "level=1\nname=x\n"
    # the packed modules went to the host's cache (private), named by their content hash
    cached = sorted(os.listdir(project["cache"]))
    assert len(cached) == 2 and all(len(name) == 64 for name in cached)
    assert oct(os.stat(project["cache"]).st_mode & 0o777) == "0o700"

    apply = gfs("apply", inv, "-p", pb)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert (root / "motd").read_text() == "hello from node1\n"
    assert oct((root / "motd").stat().st_mode & 0o777) == "0o644"
    assert (root / "app.conf").read_text() == "level=3\nname=x\n"
    registered = json.loads((root / "registered.json").read_text())
    assert registered["changed"] is True and registered["failed"] is False
    assert registered["path"] == f"{root}/motd" and registered["existed"] is False
    # the module masked its own no_log argument; gfsdeploy did not print it either
    assert registered["invocation"]["module_args"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

    again = gfs("plan", inv, "-p", pb, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert round_trips(again) == 1                         # every read, check-mode runs included, batched
    no_secret(plan, apply, again)


def test_a_module_without_check_mode_is_known_after_apply_and_not_run_by_plan(project):
    root, inv, pb = project["root"], project["inv"], project["stamp"]
    plan = gfs("plan", inv, "-p", pb)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert f"~ stamp {root}/stamps" in plan.stdout and "does not support check mode" in plan.stdout
    assert not (root / "stamps").exists()
    assert gfs("apply", inv, "-p", pb).returncode == 0
    assert (root / "stamps").read_text() == "stamped\n"
    again = gfs("plan", inv, "-p", pb)
    assert again.returncode == 0 and "No changes" in again.stdout
    assert gfs("apply", inv, "-p", pb).returncode == 0
    assert (root / "stamps").read_text() == "stamped\n"    # guarded by its read, it did not run again


def test_shipped_once_per_host_then_served_from_its_cache(project, monkeypatch):
    """In-process, counting what the connection carries: the first run ships each packed
    module once (in the batched read, no extra round trip); a later run — a new process,
    knowing only what it kept on disk — ships nothing; a host whose cache was emptied
    asks for the payload and gets it with one more round trip."""
    from gfsdeploy import ansible_protocol as ap
    from gfsdeploy import cli
    from gfsdeploy.transport.base import Transport

    monkeypatch.setattr(ap, "shipped", ap._Shipped(str(project["tmp"] / "shipped.json")))
    sent: list[int] = []
    real = Transport.run
    monkeypatch.setattr(Transport, "run", lambda self, script, **kw: (sent.append(len(script)), real(self, script, **kw))[1])

    def plan() -> tuple[int, int]:
        sent.clear()
        ap.shipped.confirmed, ap.shipped.sent, ap.shipped.refilled = None, {}, set()   # a new process: the file
        assert cli.main(["plan", project["inv"], "-p", project["pb"]]) == 2
        return len(sent), sum(sent)

    trips, size = plan()
    payloads = sum(len(ap.pack(m.source).payload) for m in (ap.lookup("settle"), ap.lookup("ansible.builtin.replace")))
    assert trips == 1 and size > payloads                  # both modules rode along in the one batched read
    trips, size = plan()
    assert trips == 1 and size < payloads / 4              # arguments only
    for entry in os.listdir(project["cache"]):
        import shutil

        shutil.rmtree(project["cache"] / entry)
    trips, size = plan()
    assert trips == 3 and size > payloads                  # each asked for its module once
    assert plan()[0] == 1


def test_graph_verbose_names_the_protocol_tasks(project):
    graph = gfs("graph", project["inv"], "-p", project["pb"], "-v")
    assert graph.returncode == 0, graph.stderr
    lines = [line for line in graph.stdout.splitlines() if "Ansible module protocol" in line]
    assert len(lines) == 2
    assert any("settle" in line and "library/settle.py" in line for line in lines)
    assert any("ansible.builtin.replace" in line and "ansible-core" in line for line in lines)


def test_failures_and_no_log_stay_secret(project):
    root, inv = project["root"], project["inv"]
    pb = os.path.join(os.path.dirname(project["pb"]), "fail.yaml")
    with open(pb, "w") as handle:
        handle.write(f"""\
- hosts: all
  tasks:
    - name: the module refuses this content
      settle: {{path: "{{{{ root }}}}/f", content: "FAIL me", token: {SECRET}}}
""")
    apply = gfs("apply", inv, "-p", pb, "--json")
    assert apply.returncode == 1
    assert "refused content with token" in apply.stdout and SECRET not in apply.stdout + apply.stderr
    with open(pb, "a") as handle:
        handle.write("      no_log: true\n")
    (root / "f").unlink(missing_ok=True)
    hidden = gfs("apply", inv, "-p", pb)
    assert hidden.returncode == 1
    assert "hidden" in hidden.stdout + hidden.stderr and "refused content" not in hidden.stdout + hidden.stderr
    again = gfs("plan", inv, "-p", pb)
    assert "hidden" in again.stdout + again.stderr and "refused content" not in again.stdout + again.stderr
    with open(pb, "w") as handle:
        handle.write("""\
- hosts: all
  tasks:
    - name: private content
      settle: {path: "{{ root }}/g", content: "private text"}
      no_log: true
""")
    plan = gfs("plan", inv, "-p", pb, "--json")
    assert plan.returncode == 2
    change = json.loads(plan.stdout)["hosts"]["node1"]["steps"][0]["changes"][0]
    assert change["action"] == "+" and change["diff"] == "(sensitive)" and "private text" not in plan.stdout
    no_secret(apply, hidden, plan)


def test_check_mode_failure_is_a_plan_error_naming_the_module(project):
    pb = os.path.join(os.path.dirname(project["pb"]), "bad.yaml")
    with open(pb, "w") as handle:
        handle.write("""\
- hosts: all
  tasks:
    - name: replace in a file that is not there
      ansible.builtin.replace: {path: /nonexistent/dir/file, regexp: a, replace: b}
""")
    plan = gfs("plan", project["inv"], "-p", pb)
    assert plan.returncode == 1
    assert "replace (check mode)" in plan.stdout + plan.stderr and "/nonexistent/dir/file" in plan.stdout + plan.stderr


COUNTER = '''\
#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(required=True)), supports_check_mode=True)
    path = module.params['path']
    try:
        count = int(open(path).read())
    except (IOError, OSError, ValueError):
        count = 0
    if not module.check_mode:
        count += 1   # what it waits for makes progress between its runs
        with open(path, 'w') as handle:
            handle.write(str(count))
    module.exit_json(changed=False, count=count)


main()
'''


def test_until_retries_run_the_module_again(project):
    """A module that waits for something (it changes nothing, like a *_info module) with
    `until`: as under Ansible, each attempt is a real run, until the condition holds."""
    root = project["root"]
    pb_dir = os.path.dirname(project["pb"])
    write_tree(pb_dir, {"library/counter.py": COUNTER, "until.yaml": """\
        - hosts: all
          tasks:
            - name: count to three
              counter: {path: "{{ root }}/count"}
              register: counted
              until: counted.count >= 3
              retries: 5
              delay: 0
            - name: keep it
              copy: {dest: "{{ root }}/counted", content: "{{ counted.count }} {{ counted.attempts | default('') }}"}
        """})
    apply = gfs("apply", project["inv"], "-p", os.path.join(pb_dir, "until.yaml"))
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert (root / "count").read_text() == "3"
    assert (root / "counted").read_text().split()[0] == "3"
