"""The command collects reference cycles less often while it runs (gfsdeploy/collector.py),
keeps collecting them, and gives the process its setting back."""

import gc
import weakref

from gfsdeploy import cli
from gfsdeploy.collector import YOUNG, fewer_collections


class _Cycle:
    pass


def test_threshold_raised_inside_and_restored_after():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == max(before[0], YOUNG)
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.isenabled()
    assert gc.get_threshold() == before


def test_restored_after_an_error():
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before


def test_cycles_are_still_freed():
    with fewer_collections():
        a, b = _Cycle(), _Cycle()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        kept = [[] for _ in range(YOUNG + 1000)]   # (freed objects do not count toward a pass)
        assert gone() is None
        del kept


def test_main_runs_the_command_with_fewer_collections(monkeypatch, tmp_path):
    seen = []

    def fake_plan(args):
        seen.append(gc.get_threshold())
        return 0

    monkeypatch.setattr(cli, "cmd_plan", fake_plan)
    before = gc.get_threshold()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("all: {hosts: {}}\n")
    assert cli.main(["plan", str(inventory)]) == 0
    assert seen and seen[0][0] == max(before[0], YOUNG)
    assert gc.get_threshold() == before
