"""The cycle collector runs less often while a command runs, and the interpreter's
own thresholds are back once it ended (in-process callers: tests, the benchmark)."""

from __future__ import annotations

import argparse
import gc

import pytest

from gfsdeploy import cli
from gfsdeploy.collection import YOUNG, fewer_collections


@pytest.fixture()
def thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_a_command_runs_with_fewer_collections_then_the_thresholds_come_back(thresholds, monkeypatch):
    seen = []

    def command(args):
        seen.append(gc.get_threshold())
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    monkeypatch.setattr(cli, "build_parser", lambda argv: parser)
    assert cli.main([]) == 0
    assert seen == [(YOUNG, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)


def test_a_failing_command_gives_the_thresholds_back_too(thresholds):
    with pytest.raises(RuntimeError):
        with fewer_collections():
            assert gc.get_threshold()[0] == YOUNG
            raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_never_more_often_and_a_disabled_collector_stays_off(thresholds):
    gc.set_threshold(100_000, 10, 10)
    with fewer_collections():
        assert gc.get_threshold() == (100_000, 10, 10)
    gc.set_threshold(0, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)
