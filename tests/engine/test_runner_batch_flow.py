"""Batched changes meet block/rescue: a rescue step never joins the batch of the
block it rescues (it runs only if that block failed)."""

from __future__ import annotations

from tests.engine.test_batch import local_inventory, outcomes, playbook, run_json


def test_rescue_is_not_applied_ahead_of_a_block_that_succeeds(tmp_path):
    inv, root = local_inventory(tmp_path), tmp_path / "out"
    root.mkdir()
    pb = playbook(tmp_path, f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - block:
                - name: first
                  copy: {{dest: "{root}/a", content: "a\\n"}}
                - name: second
                  copy: {{dest: "{root}/b", content: "b\\n"}}
              rescue:
                - name: only after a failure
                  copy: {{dest: "{root}/rescued", content: "r\\n"}}
              always:
                - name: always
                  copy: {{dest: "{root}/always", content: "y\\n"}}
        """)
    proc, data = run_json("apply", inv, "-p", pb)
    assert proc.returncode == 0, proc.stderr
    got = outcomes(data)
    assert got["first"]["status"] == "changed" and got["always"]["status"] == "changed"
    assert not (root / "rescued").exists()
    assert (root / "a").read_text() == "a\n" and (root / "always").read_text() == "y\n"
    assert data["hosts"]["a"]["round_trips"] <= 4, data["hosts"]["a"]
