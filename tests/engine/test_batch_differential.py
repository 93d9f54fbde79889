"""Batching changes nothing but the round trips: generated playbooks (seeded, so a
failure names its seed) run once with batching and once with every step alone
(``batch.run_ahead`` answering "no batch"), each on its own copy of the same starting
tree. Every task must report the same status in both, the trees must end the same,
and a second run must report the same as well (not always a no-op: a generated
playbook may delete what it wrote). Skipped steps, loops with skipped items,
directories and the files inside them, lines in files written by an earlier step,
deletions, set_fact and registered results are drawn on purpose: they are where a
batch's planning ahead and its guards can go wrong. Local hosts; the trees are read
back."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from gfsdeploy import batch
from gfsdeploy.cli import main

SEEDS = range(40)


def _run(args) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*args, "--json"])
    return rc, json.loads(out.getvalue())


def _when(rng: random.Random) -> dict:
    roll = rng.random()
    if roll < 0.25:
        return {"when": False}
    if roll < 0.35:
        return {"when": "flag | default(false)"}
    return {}


def _task(rng: random.Random, n: int) -> list[dict]:
    """One or two tasks (a register and its consumer come as a pair)."""
    d, f, v = rng.randrange(3), rng.randrange(4), rng.randrange(3)
    kind = rng.choices(["dir", "copy", "copy_in", "line", "block", "absent", "loop", "loop_in", "set_fact",
                        "stat", "command", "dir_files", "file_line", "skipped", "notify", "block", "changed_reg",
                        "per_host"],
                       [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 1, 1, 1, 1])[0]
    name = f"t{n} {kind}"
    if kind == "skipped":   # two steps whose every item is skipped
        return [{"name": f"{name} {i}", "copy": {"dest": "{{ root }}/never{{ item }}", "content": "x\n"},
                 "loop": [1, 2], "when": False} for i in (1, 2)]
    if kind == "dir_files":   # the files read the directory the step before makes
        return [{"name": name, "file": {"path": f"{{{{ root }}}}/d{d}", "state": "directory"}, **_when(rng)},
                {"name": f"{name} in it", "copy": {"dest": f"{{{{ root }}}}/d{d}/k{{{{ item }}}}", "content": f"k{v}\n"},
                 "loop": [1, 2, 3], "ignore_errors": True}]
    if kind == "file_line":   # a line in the file the step before writes
        return [{"name": name, "copy": {"dest": f"{{{{ root }}}}/f{f}", "content": f"v{v}\n"}},
                {"name": f"{name} and a line", "lineinfile": {"path": f"{{{{ root }}}}/f{f}", "line": "added"}}]
    if kind == "notify":   # the handler runs at the end of the play, once
        return [{"name": name, "copy": {"dest": f"{{{{ root }}}}/n{f}", "content": f"n{v}\n"},
                 "notify": f"handler {f}", **_when(rng)}]
    if kind == "block":   # a failing step, its rescue, and what always runs
        return [{"name": name, "block": [
                    {"name": f"{name} first", "copy": {"dest": f"{{{{ root }}}}/b{f}", "content": "b\n"}},
                    {"name": f"{name} fails", "command": "false", "when": rng.random() < 0.5},
                    {"name": f"{name} after", "copy": {"dest": f"{{{{ root }}}}/ba{f}", "content": "a\n"}}],
                 "rescue": [{"name": f"{name} rescue", "copy": {"dest": f"{{{{ root }}}}/r{f}", "content": "r\n"}}],
                 "always": [{"name": f"{name} always", "lineinfile": {"path": f"{{{{ root }}}}/b{f}",
                                                                      "line": "always", "create": True}}]}]
    if kind == "changed_reg":   # what a change registers decides the next step
        return [{"name": name, "copy": {"dest": f"{{{{ root }}}}/f{f}", "content": f"v{v}\n"}, "register": f"r{n}"},
                {"name": f"{name} user", "copy": {"dest": f"{{{{ root }}}}/u{n}", "content": "u\n"},
                 "when": f"r{n} is changed"}]
    if kind == "per_host":   # hosts differ: one skips what the other does
        return [{"name": name, "copy": {"dest": f"{{{{ root }}}}/p{f}", "content": "{{ inventory_hostname }}\n"},
                 "when": "inventory_hostname == 'a'"},
                {"name": f"{name} then", "file": {"path": f"{{{{ root }}}}/p{f}", "mode": "0600"},
                 "ignore_errors": True}]
    if kind == "dir":
        return [{"name": name, "file": {"path": f"{{{{ root }}}}/d{d}", "state": "directory"}, **_when(rng)}]
    if kind == "copy":
        return [{"name": name, "copy": {"dest": f"{{{{ root }}}}/f{f}", "content": f"v{v}\n"}, **_when(rng)}]
    if kind == "copy_in":   # fails if its directory is not there (in both runs alike)
        return [{"name": name, "copy": {"dest": f"{{{{ root }}}}/d{d}/f{f}", "content": f"v{v}\n"},
                 "ignore_errors": True, **_when(rng)}]
    if kind == "line":
        return [{"name": name, "lineinfile": {"path": f"{{{{ root }}}}/f{f}", "line": f"line{v}", "create": True},
                 **_when(rng)}]
    if kind == "block":
        return [{"name": name, "blockinfile": {"path": f"{{{{ root }}}}/f{f}", "block": f"b{v}\n", "create": True,
                                               "marker": "# {mark} B" + str(d)}, **_when(rng)}]
    if kind == "absent":
        target = rng.choice([f"f{f}", f"d{d}"])
        return [{"name": name, "file": {"path": f"{{{{ root }}}}/{target}", "state": "absent"}, **_when(rng)}]
    if kind == "loop":
        items = rng.sample(range(5), rng.randrange(1, 4))
        skip = rng.choice([None, items[0], "all"])
        task = {"name": name, "copy": {"dest": "{{ root }}/g{{ item }}", "content": f"item {{{{ item }}}} v{v}\n"},
                "loop": items}
        if skip == "all":
            task["when"] = "item < 0"
        elif skip is not None:
            task["when"] = f"item != {skip}"
        return [task]
    if kind == "loop_in":
        return [{"name": name, "copy": {"dest": f"{{{{ root }}}}/d{d}/h{{{{ item }}}}", "content": f"h{v}\n"},
                 "loop": [1, 2], "ignore_errors": True, **_when(rng)}]
    if kind == "set_fact":
        return [{"name": name, "set_fact": {"flag": rng.choice([True, False])}}]
    if kind == "stat":
        return [{"name": name, "stat": {"path": f"{{{{ root }}}}/f{f}"}, "register": f"st{n}"},
                {"name": f"t{n} stat user", "copy": {"dest": f"{{{{ root }}}}/s{n}", "content": "seen\n"},
                 "when": f"st{n}.stat.exists"}]
    return [{"name": name, "command": f"touch {{{{ root }}}}/c{f}", "args": {"creates": f"{{{{ root }}}}/c{f}"},
             **_when(rng)}]


def _playbook(seed: int) -> tuple[list, list[str]]:
    rng = random.Random(seed)
    tasks: list[dict] = []
    n = 0
    while len(tasks) < rng.randrange(6, 12):
        tasks += _task(rng, n)
        n += 1
    start = [p for p in ("f0", "f1", "d0/", "d1/", "d0/f1", "g2", "n1") if rng.random() < 0.4]
    handlers = [{"name": f"handler {f}", "lineinfile": {"path": "{{ root }}/handled", "line": f"handler {f}",
                                                         "create": True}} for f in range(4)]
    return [{"hosts": "all", "gather_facts": False, "tasks": tasks, "handlers": handlers}], start


def _tree(root: Path) -> dict:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "<dir>" if path.is_dir() else path.read_text()
    return out


HOSTS = ("a", "b")


def _apply(tmp: Path, play: list, start: list[str]) -> tuple[list, list, dict]:
    """Two local hosts, each with its own tree (b starts without the first file)."""
    for host in HOSTS:
        root = tmp / host
        root.mkdir(parents=True)
        for p in start[host == "b":]:
            if p.endswith("/"):
                (root / p).mkdir(parents=True, exist_ok=True)
            else:
                (root / p).parent.mkdir(parents=True, exist_ok=True)
                (root / p).write_text(f"before {p}\n")
    inv = tmp / "inv.yaml"
    inv.write_text(yaml.safe_dump({"all": {"vars": {"ansible_connection": "local",
                                                    "gfsdeploy_lock_dir": str(tmp / "lock")},
                                           "hosts": {h: {"root": str(tmp / h)} for h in HOSTS}}}))
    pb = tmp / "pb.yaml"
    pb.write_text(yaml.safe_dump(play, sort_keys=False))
    runs = []
    for _ in range(2):
        rc, data = _run(["apply", str(inv), "-p", str(pb)])
        runs.append((rc, {h: [(s["task"], s["status"]) for s in data["hosts"][h]["steps"]] for h in HOSTS}))
    return runs[0], runs[1], {h: _tree(tmp / h) for h in HOSTS}


@pytest.mark.parametrize("seed", SEEDS)
def test_batched_and_alone_report_and_leave_the_same(seed, tmp_path, monkeypatch):
    play, start = _playbook(seed)
    first, second, tree = _apply(tmp_path / "batched", play, start)
    with monkeypatch.context() as m:
        m.setattr(batch, "run_ahead", lambda runner, hr, step: 0)
        alone_first, alone_second, alone_tree = _apply(tmp_path / "alone", play, start)
    shown = yaml.safe_dump(play, sort_keys=False)
    assert first == alone_first, f"seed {seed}: first apply differs\n{shown}"
    assert tree == alone_tree, f"seed {seed}: the trees differ\n{shown}"
    assert second == alone_second, f"seed {seed}: second apply differs\n{shown}"


def test_the_generated_playbooks_batch_and_skip(tmp_path, monkeypatch):
    """The generator draws what the differential test is for: batches that ran, steps
    whose every item was skipped right before them."""
    ran = []
    real = batch.run_ahead

    def counting(runner, hr, step):
        got = real(runner, hr, step)
        ran.append(got)
        return got

    monkeypatch.setattr(batch, "run_ahead", counting)
    skipped_pairs = 0
    for seed in SEEDS:
        play, start = _playbook(seed)
        first, _, _ = _apply(tmp_path / str(seed), play, start)
        statuses = [s for _, s in first[1]["a"]]
        skipped_pairs += any(a == b == "skipped" for a, b in zip(statuses, statuses[1:]))
    assert sum(1 for r in ran if r >= 2) >= len(SEEDS) // 2
    assert skipped_pairs >= 5
    shutil.rmtree(tmp_path, ignore_errors=True)
