"""Batched changes (gfsdeploy/batch.py): independent steps of one host apply in one
round trip, each still reported as its own task — status, output, failure — and a
step whose read an earlier member changed plans again. Checked through the CLI's
--json (round trips, per-task outcome) and by reading the files back; locally and
over the test sshd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gfs(*args, tmpdir=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if tmpdir is not None:  # the host's temporary files where only this run puts any
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True,
                          timeout=180, env=env, cwd=ROOT)


def local_inventory(tmp_path) -> str:
    inv = tmp_path / "inv.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts: {{a: {{}}}}
        """))
    return str(inv)


def playbook(tmp_path, text: str) -> str:
    path = tmp_path / "pb.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def run_json(*args, tmpdir=None):
    proc = gfs(*args, "--json", tmpdir=tmpdir)
    data = json.loads(proc.stdout)
    return proc, data


def outcomes(data: dict, host: str = "a") -> dict:
    return {s["task"]: s for s in data["hosts"][host]["steps"]}


def independent_files(root, n=6) -> str:
    return f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: one file
              copy: {{dest: "{root}/f0", content: "zero\\n"}}
            - name: more files
              copy: {{dest: "{root}/f{{{{ item }}}}", content: "n={{{{ item }}}}\\n", mode: "0600"}}
              loop: {list(range(1, n))}
            - name: a directory
              file: {{path: "{root}/d", state: directory}}
        """


def test_independent_changes_apply_in_one_round_trip_each_reported(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, independent_files(root))
    tmp = tmp_path / "tmp"  # this run's own TMPDIR: another run's batch directory is not ours
    tmp.mkdir()
    proc, data = run_json("apply", inv, "-p", pb, tmpdir=tmp)
    assert proc.returncode == 0, proc.stderr
    # the plan's read, the run's lock, then every change in one script
    assert data["hosts"]["a"]["round_trips"] == 3, data["hosts"]["a"]
    got = outcomes(data)
    assert got["one file"]["status"] == "changed" and got["more files"]["status"] == "changed"
    assert got["a directory"]["status"] == "changed"
    assert (root / "f0").read_text() == "zero\n"
    for i in range(1, 6):
        assert (root / f"f{i}").read_text() == f"n={i}\n"
        assert oct((root / f"f{i}").stat().st_mode & 0o777) == "0o600"
    assert (root / "d").is_dir()
    # nothing left behind by the batch
    assert os.listdir(tmp) == []
    proc, data = run_json("apply", inv, "-p", pb, tmpdir=tmp)
    assert proc.returncode == 0 and data["hosts"]["a"]["round_trips"] == 1  # converged: one read
    assert {o["status"] for o in outcomes(data).values()} == {"ok"}


def test_a_failing_member_fails_its_own_task_and_nothing_after_it_runs(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    (root / "blocker").write_text("a file where a directory should go\n")
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: before
              copy: {{dest: "{root}/before", content: "x\\n"}}
            - name: impossible
              copy: {{dest: "{root}/blocker/inside", content: "y\\n"}}
            - name: after
              copy: {{dest: "{root}/after", content: "z\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode != 0
    got = outcomes(data)
    assert got["before"]["status"] == "changed"
    assert got["impossible"]["status"] == "failed"
    assert "blocker" in got["impossible"]["error"]          # its own command's failure, named
    assert got["after"]["status"] in ("blocked", "skipped")
    assert (root / "before").read_text() == "x\n"
    assert not (root / "after").exists()                  # stopped at the failure, as alone
    # the same failure, task for task, as the task alone reports it
    alone = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: impossible
              copy: {{dest: "{root}/blocker/inside", content: "y\\n"}}
        """)
    _, single = run_json("apply", inv, "-p", alone)
    strip = lambda text: text.replace(str(root), "ROOT")  # noqa: E731
    assert strip(outcomes(single)["impossible"]["error"]) == strip(got["impossible"]["error"])


def test_ignored_failure_lets_the_rest_run_on_their_own(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    (root / "blocker").write_text("file\n")
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - copy: {{dest: "{root}/one", content: "1\\n"}}
            - name: impossible
              copy: {{dest: "{root}/blocker/inside", content: "y\\n"}}
              ignore_errors: true
            - name: two
              copy: {{dest: "{root}/two", content: "2\\n"}}
            - name: three
              copy: {{dest: "{root}/three", content: "3\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    got = outcomes(data)
    assert got["impossible"]["status"] == "ok" and "(ignored)" in got["impossible"]["error"]
    assert got["two"]["status"] == "changed" and got["three"]["status"] == "changed"
    assert (root / "two").read_text() == "2\n" and (root / "three").read_text() == "3\n"


def test_a_step_reading_what_an_earlier_member_changed_is_planned_again(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: whole file
              copy: {{dest: "{root}/conf", content: "a=1\\n"}}
            - name: a line in it
              lineinfile: {{path: "{root}/conf", line: "b=2", create: true}}
            - name: unrelated
              copy: {{dest: "{root}/other", content: "o\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    # as one after the other: the line is added to what the copy wrote
    assert (root / "conf").read_text() == "a=1\nb=2\n"
    got = outcomes(data)
    assert got["whole file"]["status"] == "changed" and got["a line in it"]["status"] == "changed"
    # again: the copy puts its content back and the line is added again, as in sequence
    proc, data = run_json("apply", inv, "-p", pb)
    assert (root / "conf").read_text() == "a=1\nb=2\n"
    got = outcomes(data)
    assert [got[t]["status"] for t in ("whole file", "a line in it", "unrelated")] == ["changed", "changed", "ok"]


def test_a_guarded_member_whose_read_is_unchanged_stays_in_the_batch(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: directory
              file: {{path: "{root}/dir", state: directory}}
            - name: files in it
              copy: {{dest: "{root}/dir/f{{{{ item }}}}", content: "v{{{{ item }}}}\\n"}}
              loop: [1, 2, 3]
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    assert data["hosts"]["a"]["round_trips"] == 3, data["hosts"]["a"]
    assert [(root / "dir" / f"f{i}").read_text() for i in (1, 2, 3)] == ["v1\n", "v2\n", "v3\n"]


def test_register_ends_a_batch_and_what_uses_it_sees_the_result(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - copy: {{dest: "{root}/x", content: "x\\n"}}
            - name: registered
              copy: {{dest: "{root}/y", content: "y\\n"}}
              register: made
            - name: uses it
              copy: {{dest: "{root}/z", content: "changed={{{{ made.changed }}}}\\n"}}
              when: made is changed
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    assert (root / "z").read_text() == "changed=True\n"


def test_batch_over_ssh_round_trips_and_framing(tmp_path, sshd):
    inv = sshd.inventory(tmp_path / "inv.yaml", hosts=("a",))
    root = tmp_path / "out"
    root.mkdir()
    (root / "blocker").write_text("file\n")
    pb = playbook(tmp_path, independent_files(root, n=4))
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    assert data["hosts"]["a"]["round_trips"] == 3, data["hosts"]["a"]
    assert [(root / f"f{i}").read_text() for i in range(1, 4)] == ["n=1\n", "n=2\n", "n=3\n"]
    failing = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: fine
              copy: {{dest: "{root}/fine", content: "ok\\n"}}
            - name: impossible
              copy: {{dest: "{root}/blocker/inside", content: "y\\n"}}
            - name: never
              copy: {{dest: "{root}/never", content: "n\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", failing)
    got = outcomes(data)
    assert proc.returncode != 0
    assert [got[t]["status"] for t in ("fine", "impossible")] == ["changed", "failed"]
    assert "blocker" in got["impossible"]["error"]
    assert (root / "fine").exists() and not (root / "never").exists()


def test_iptables_chain_rules_and_jump_in_one_batch(tmp_path):
    """A chain, rules in it and the jump to it: each rule reads what the chain's creation
    changed, yet plans the same (the rule is absent either way): one batch, checked by
    listing the rules. In a network namespace of its own."""
    import shutil
    import uuid

    import pytest

    if os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("ip"):
        pytest.skip("needs root, iptables and ip (a network namespace)")
    ns = f"gfsbatch-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        inv = local_inventory(tmp_path)
        pb = playbook(tmp_path, """\
            - hosts: all
              gather_facts: false
              tasks:
                - iptables: {chain: gfsbt, chain_management: true}
                - iptables: {chain: gfsbt, protocol: tcp, destination_port: "{{ item }}", jump: ACCEPT}
                  loop: [24007, 24008]
                - iptables: {chain: INPUT, jump: gfsbt, action: insert}
            """)
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "gfsdeploy", "apply", inv, "-p", pb,
                               "--json"], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["hosts"]["a"]["round_trips"] == 3, data["hosts"]["a"]
        rules = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-S"], capture_output=True, text=True,
                               check=True).stdout
        assert "-A gfsbt -p tcp -m tcp --dport 24007 -j ACCEPT" in rules
        assert "-A gfsbt -p tcp -m tcp --dport 24008 -j ACCEPT" in rules
        assert "-A INPUT -j gfsbt" in rules
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_set_fact_and_registered_conditions_join_the_first_read(tmp_path):
    """A step whose arguments use a set_fact, and one whose `when` uses a registered
    stat, are read in the host's first batched read (the set_fact's value is known
    before the host is contacted; the condition is decided when the step runs): the
    no-op is one round trip. Both still do what they say: the set_fact's value is the
    one written, and a false condition skips its step."""
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          vars: {{name: old}}
          tasks:
            - name: the name
              set_fact: {{name: "new-{{{{ inventory_hostname }}}}"}}
            - name: named file
              copy: {{dest: "{root}/{{{{ name }}}}", content: "n\\n"}}
            - name: look
              stat: {{path: "{root}/new-a"}}
              register: st
            - name: when present
              copy: {{dest: "{root}/present", content: "yes\\n"}}
              when: st.stat.exists
            - name: when absent
              copy: {{dest: "{root}/absent", content: "no\\n"}}
              when: not st.stat.exists
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in root.iterdir()) == ["new-a", "present"]
    got = outcomes(data)
    assert got["when present"]["status"] == "changed" and got["when absent"]["status"] == "skipped"
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    assert data["hosts"]["a"]["round_trips"] == 1, data["hosts"]["a"]
    got = outcomes(data)
    assert got["named file"]["status"] == got["when present"]["status"] == "ok"
    assert got["when absent"]["status"] == "skipped"
    assert sorted(p.name for p in root.iterdir()) == ["new-a", "present"]
    proc = gfs("plan", inv, "-p", pb)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_set_fact_known_only_after_a_command_reads_when_its_step_runs(tmp_path):
    """A guess made from the variables before the run (the play's `name: old`) is never
    what a step plans from: the set_fact's value comes from a command's output, so the
    step using it reads when it runs — and writes the command's answer, not the guess."""
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          vars: {{name: old}}
          tasks:
            - name: ask
              command: echo fromcmd
              register: said
              changed_when: false
            - name: the name
              set_fact: {{name: "{{{{ said.stdout }}}}"}}
            - name: named file
              copy: {{dest: "{root}/{{{{ name }}}}", content: "n\\n"}}
        """)
    (root / "old").write_text("n\n")  # what the guess would find: nothing to do there
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    assert (root / "fromcmd").read_text() == "n\n"
    assert outcomes(data)["named file"]["status"] == "changed"


def test_a_batch_starting_at_a_skipped_step_reports_every_member_changed(tmp_path):
    # the batch starts at steps whose every item is skipped: the steps after them, whose
    # changes it made, report them (the second skipped step must not start another
    # batch that re-reads the changed files and calls them ok)
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: not this path
              copy: {{dest: "{root}/never{{{{ item }}}}", content: "x\\n"}}
              loop: [1, 2]
              when: false
            - name: nor this one
              file: {{path: "{root}/never", state: directory}}
              when: false
            - name: directory
              file: {{path: "{root}/dir", state: directory}}
            - name: files in it
              copy: {{dest: "{root}/dir/f{{{{ item }}}}", content: "v{{{{ item }}}}\\n"}}
              loop: [1, 2, 3]
            - name: one more
              copy: {{dest: "{root}/dir/g", content: "g\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    got = outcomes(data)
    assert [got[t]["status"] for t in ("not this path", "nor this one", "directory", "files in it", "one more")] \
        == ["skipped", "skipped", "changed", "changed", "changed"], got
    assert data["hosts"]["a"]["round_trips"] == 3, data["hosts"]["a"]
    assert [(root / "dir" / f"f{i}").read_text() for i in (1, 2, 3)] == ["v1\n", "v2\n", "v3\n"]
    assert not (root / "never1").exists()
    proc, data = run_json("apply", inv, "-p", pb)
    assert {s["status"] for s in outcomes(data).values()} == {"ok", "skipped"}, outcomes(data)


def test_a_guarded_step_with_nothing_to_do_stays_in_the_batch_while_its_guard_holds(tmp_path):
    # the directory's mode change touches what the line's step reads (a file under it):
    # the line, already there, is checked again inside the batch instead of ending it
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    (root / "d").mkdir(parents=True)
    (root / "d").chmod(0o700)
    (root / "d" / "conf").write_text("a=1\nb=2\n")
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: the directory
              file: {{path: "{root}/d", state: directory, mode: "0755"}}
            - name: a line in a file under it
              lineinfile: {{path: "{root}/d/conf", line: "b=2"}}
            - name: another file
              copy: {{dest: "{root}/other", content: "o\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    got = outcomes(data)
    assert [got[t]["status"] for t in ("the directory", "a line in a file under it", "another file")] == \
        ["changed", "ok", "changed"]
    assert data["hosts"]["a"]["round_trips"] == 3, data["hosts"]["a"]  # (main before: 4)
    assert (root / "d" / "conf").read_text() == "a=1\nb=2\n" and (root / "other").read_text() == "o\n"
    assert oct((root / "d").stat().st_mode & 0o777) == "0o755"


def test_a_guarded_step_with_nothing_to_do_whose_guard_fails_stops_the_batch_and_plans_again(tmp_path):
    # the copy rewrites the file the line is in: "the line is there" no longer holds
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    (root / "conf").write_text("a=1\nb=2\n")
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: whole file
              copy: {{dest: "{root}/conf", content: "a=1\\n"}}
            - name: a line in it
              lineinfile: {{path: "{root}/conf", line: "b=2"}}
            - name: another file
              copy: {{dest: "{root}/other", content: "o\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    got = outcomes(data)
    assert [got[t]["status"] for t in ("whole file", "a line in it", "another file")] == \
        ["changed", "changed", "changed"]
    assert (root / "conf").read_text() == "a=1\nb=2\n" and (root / "other").read_text() == "o\n"


def two_local_hosts(tmp_path) -> str:
    inv = tmp_path / "inv2.yaml"
    inv.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, gfsdeploy_lock_dir: "{tmp_path}/lock"}}
          hosts: {{a: {{addr: 10.0.0.1}}, b: {{addr: 10.0.0.2}}}}
        """))
    return str(inv)


def cross_host_playbook(tmp_path, root, middle: str = "") -> str:
    path = tmp_path / "pb.yaml"
    path.write_text(
        "- hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: own file\n"
        f"      copy: {{dest: \"{root}/{{{{ inventory_hostname }}}}-own\", content: \"x\\n\"}}\n"
        + middle +
        "    - name: every host listed\n"
        "      copy:\n"
        f"        dest: \"{root}/{{{{ inventory_hostname }}}}-hosts\"\n"
        "        content: \"{% for h in groups['all'] %}{{ hostvars[h].addr }} {{ h }}\\n{% endfor %}\"\n"
        "    - name: last file\n"
        f"      copy: {{dest: \"{root}/{{{{ inventory_hostname }}}}-last\", content: \"y\\n\"}}\n")
    return str(path)


def test_a_step_reading_hostvars_joins_the_batch_when_nothing_before_it_changes_variables(tmp_path):
    inv, root = two_local_hosts(tmp_path), tmp_path / "out"
    root.mkdir()
    proc, data = run_json("apply", inv, "-p", cross_host_playbook(tmp_path, root))
    assert proc.returncode == 0, proc.stderr
    # the read, one batch of the three (and the run's lock on the first host); main before:
    # the first file alone, then a batch of the other two (4 and 3)
    assert {h: data["hosts"][h]["round_trips"] for h in ("a", "b")} == {"a": 3, "b": 2}
    for host in ("a", "b"):
        assert {s["status"] for s in outcomes(data, host).values()} == {"changed"}
        assert (root / f"{host}-hosts").read_text() == "10.0.0.1 a\n10.0.0.2 b\n"
    proc, data = run_json("apply", inv, "-p", cross_host_playbook(tmp_path, root))
    assert {s["status"] for h in ("a", "b") for s in outcomes(data, h).values()} == {"ok"}


def test_a_step_reading_hostvars_keeps_its_sync_after_a_step_that_registers(tmp_path):
    inv, root = two_local_hosts(tmp_path), tmp_path / "out"
    root.mkdir()
    middle = "    - name: registers\n      stat: {path: /}\n      register: st\n"
    proc, data = run_json("apply", inv, "-p", cross_host_playbook(tmp_path, root, middle))
    assert proc.returncode == 0, proc.stderr
    # (as before: the own file alone, the stat, then the other two: 5 and 4)
    assert data["hosts"]["a"]["round_trips"] >= 4 and data["hosts"]["b"]["round_trips"] >= 3, data["hosts"]
    for host in ("a", "b"):
        assert (root / f"{host}-hosts").read_text() == "10.0.0.1 a\n10.0.0.2 b\n"
