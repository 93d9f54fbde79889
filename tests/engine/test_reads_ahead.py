"""Reads that depend on registered results (the runner's batched reads): a read-only
step's registered value is computed from what the host's batched read already
answered, so later steps using it join the NEXT batched read instead of reading one
by one when they run. A wrong guess costs only a read: a step uses a batched read only
if the arguments it renders when it runs are the ones the read was made from.
Checked through the CLI (--json round trips, per-task changes) and the files."""

from __future__ import annotations

from tests.engine.test_batch import local_inventory, outcomes, playbook, run_json


def chained(root) -> str:
    # t2 needs t1's result (read when t2 runs: the 2nd batched read); t4 needs t3's,
    # which the 1st batched read answered: t4 joins the 2nd read instead of a 3rd
    return f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: t1
              stat: {{path: "{root}/a"}}
              register: first
            - name: t2
              copy: {{dest: "{{{{ first.stat.path }}}}.copy", content: "one\\n"}}
            - name: t3
              stat: {{path: "{root}/b"}}
              register: second
            - name: t4
              copy: {{dest: "{root}/{{{{ 'b-there' if second.stat.exists else 'b-missing' }}}}", content: "two\\n"}}
        """


def test_a_read_using_an_earlier_read_only_result_joins_the_second_batched_read(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    (root / "a").write_text("a\n")
    proc, data = run_json("plan", inv, "-p", playbook(tmp_path, chained(root)))
    assert proc.returncode == 2, proc.stderr
    assert data["hosts"]["a"]["round_trips"] == 2, data["hosts"]["a"]  # was 3: t4 read on its own
    got = outcomes(data)
    assert [c["resource"] for c in got["t2"]["changes"]] == [f"file {root}/a.copy"], got["t2"]
    assert [c["resource"] for c in got["t4"]["changes"]] == [f"file {root}/b-missing"], got["t4"]


def test_a_wrong_guess_reads_again_and_applies_what_the_real_result_says(tmp_path):
    # t2 creates the file t3 stats: t3's value computed ahead (missing) is wrong once
    # t2 ran; t4 must follow the real one (b-there), whatever was read ahead
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    text = chained(root).replace('"{{ first.stat.path }}.copy"', f'"{root}/b"')
    proc, data = run_json("apply", inv, "-p", playbook(tmp_path, text))
    assert proc.returncode == 0, proc.stderr
    assert (root / "b").read_text() == "one\n"
    assert (root / "b-there").read_text() == "two\n"
    assert not (root / "b-missing").exists()
    proc, data = run_json("apply", inv, "-p", playbook(tmp_path, text))
    assert proc.returncode == 0 and data["hosts"]["a"]["counts"]["changed"] == 0, (proc.stderr, data["hosts"]["a"])
    assert data["hosts"]["a"]["round_trips"] <= 2, data["hosts"]["a"]
