"""The step scheduler (gfsdeploy/scheduler.py): lowest ready step first, at most
``forks`` at once, released steps run, skipped ones settled without running, an error
while settling raised in the caller, no worker left behind."""

import threading
import time

import pytest

from gfsdeploy.scheduler import StepScheduler


def _chain_run(forks, graph, order, *, skip=lambda step: None, work=lambda step: None):
    """Run the DAG ``graph`` ({step: [successors]}); return (started order, settled, max at once)."""
    waiting = {s: 0 for s in graph}
    for succs in graph.values():
        for s in succs:
            waiting[s] += 1
    started, settled = [], []
    running = {"now": 0, "max": 0}
    lock = threading.Lock()

    def execute(step):
        with lock:
            started.append(step)
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        work(step)
        with lock:
            running["now"] -= 1
        return f"outcome of {step}"

    settle = _settler(graph, waiting, lambda step, outcome: settled.append((step, outcome)))
    StepScheduler(forks, execute=execute, settle=settle, skip=skip, order=order.__getitem__).run(
        [s for s, n in waiting.items() if n == 0])
    return started, settled, running["max"]


def _settler(graph, waiting, record):
    """``settle`` for a DAG ``graph``: records the step, returns the successors it frees."""
    def settle(step, outcome):
        record(step, outcome)
        out = []
        for succ in graph[step]:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                out.append(succ)
        return out
    return settle


def test_one_fork_runs_ready_steps_lowest_order_first():
    # two hosts, three tasks each; the order is task-major, as the runner's
    graph = {"a1": ["a2"], "a2": ["a3"], "a3": [], "b1": ["b2"], "b2": ["b3"], "b3": []}
    order = {"a1": 0, "b1": 1, "a2": 2, "b2": 3, "a3": 4, "b3": 5}
    started, settled, most = _chain_run(1, graph, order)
    assert started == ["a1", "b1", "a2", "b2", "a3", "b3"]
    assert [s for s, _ in settled] == started
    assert all(outcome == f"outcome of {s}" for s, outcome in settled)
    assert most == 1


def test_never_more_than_forks_at_once_and_every_step_runs():
    graph = {f"s{i}": [] for i in range(40)}
    order = {s: i for i, s in enumerate(graph)}
    before = threading.active_count()
    started, settled, most = _chain_run(4, graph, order, work=lambda step: time.sleep(0.01))
    assert sorted(started) == sorted(graph) and len(settled) == 40
    assert 1 < most <= 4
    assert threading.active_count() == before  # every worker ended


def test_a_skipped_step_is_settled_and_not_run_and_releases_its_successors():
    graph = {"a": ["b"], "b": ["c"], "c": []}
    order = {"a": 0, "b": 1, "c": 2}
    started, settled, _ = _chain_run(2, graph, order, skip=lambda step: "blocked" if step == "b" else None)
    assert started == ["a", "c"]
    assert settled == [("a", "outcome of a"), ("b", "blocked"), ("c", "outcome of c")]


def test_steps_released_late_still_run_in_order():
    # c is ready only when both a and b are settled; d and e wait on c
    graph = {"a": ["c"], "b": ["c"], "c": ["e", "d"], "d": [], "e": []}
    order = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
    started, _, _ = _chain_run(1, graph, order)
    assert started == ["a", "b", "c", "d", "e"]


def test_an_error_while_settling_is_raised_by_run_and_no_worker_is_left():
    before = threading.active_count()

    def settle(step, outcome):
        raise RuntimeError("bug in settle")

    scheduler = StepScheduler(3, execute=lambda step: step, settle=settle, skip=lambda step: None,
                              order=lambda step: step)
    with pytest.raises(RuntimeError, match="bug in settle"):
        scheduler.run([1, 2, 3, 4])
    assert threading.active_count() == before


def test_nothing_ready_starts_no_thread():
    before = threading.active_count()
    StepScheduler(5, execute=None, settle=None, skip=None, order=None).run([])
    assert threading.active_count() == before


def test_workers_start_only_as_needed():
    # a single chain never needs a second worker
    graph = {f"s{i}": [f"s{i + 1}"] for i in range(10)}
    graph["s10"] = []
    order = {s: i for i, s in enumerate(graph)}
    names = set()

    def work(step):
        names.add(threading.current_thread().name)

    _chain_run(50, graph, order, work=work)
    assert len(names) == 1


def test_follow_runs_a_host_s_next_step_on_the_same_worker_without_settling_it():
    """``follow``: a step whose only successor waits for it alone is settled by ``follow``
    and the successor runs next on the same worker; where steps meet (a barrier) the
    scheduler settles as before."""
    graph = {"a1": ["a2"], "a2": ["sync"], "b1": ["b2"], "b2": ["sync"], "sync": ["a3", "b3"], "a3": [], "b3": []}
    preds = {s: [p for p, succs in graph.items() if s in succs] for s in graph}
    order = {"a1": 0, "b1": 1, "a2": 2, "b2": 3, "sync": 4, "a3": 5, "b3": 6}
    waiting = {s: len(preds[s]) for s in graph}
    started, settled, followed, workers = [], [], [], {}

    def execute(step):
        started.append(step)
        workers[step] = threading.current_thread().name
        return f"outcome of {step}"

    settle = _settler(graph, waiting, lambda step, outcome: settled.append(step))

    def follow(step, outcome):
        succs = graph[step]
        if len(succs) != 1 or len(preds[succs[0]]) != 1:
            return None
        followed.append(step)
        waiting[succs[0]] = 0
        return succs[0]

    StepScheduler(1, execute=execute, settle=settle, skip=lambda step: None, order=order.__getitem__,
                  follow=follow).run(["a1", "b1"])
    assert started == ["a1", "a2", "b1", "b2", "sync", "a3", "b3"]  # a host's chain first, then the next
    assert followed == ["a1", "b1"] and "a1" not in settled and set(settled) == set(graph) - {"a1", "b1"}
    assert workers["a1"] == workers["a2"]
