"""graph.DiGraph against networkx (the reference, a test dependency): the runner's
schedule, the printed graph and the named cycle rest on the order of its answers,
so they must match networkx's exactly, not only be "a" topological order."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from gfsdeploy import graph as g


def _pair(seed: int, nodes: int, edges: int, acyclic: bool):
    rnd = random.Random(seed)
    ours, ref = g.DiGraph(), nx.DiGraph()
    names = [f"n{i}" for i in range(nodes)]
    rnd.shuffle(names)
    for name in names[: nodes // 2]:  # some nodes first, the rest arrive through edges
        ours.add_node(name, k=name)
        ref.add_node(name, k=name)
    for _ in range(edges):
        a, b = rnd.sample(range(nodes), 2)
        if acyclic and a > b:
            a, b = b, a
        why = rnd.choice(["order", "sync", "needs"])
        ours.add_edge(names[a], names[b], why=why)
        ref.add_edge(names[a], names[b], why=why)
    return ours, ref


@pytest.mark.parametrize("seed", range(40))
def test_same_order_edges_and_generations_as_networkx(seed):
    ours, ref = _pair(seed, nodes=5 + seed, edges=3 * seed, acyclic=True)
    assert list(ours.nodes) == list(ref.nodes)
    assert ours.edges(data=True) == list(ref.edges(data=True))
    assert g.topological_sort(ours) == list(nx.topological_sort(ref))
    assert list(g.topological_generations(ours)) == [list(x) for x in nx.topological_generations(ref)]
    for node in ref.nodes:
        assert list(ours.successors(node)) == list(ref.successors(node))
        assert list(ours.predecessors(node)) == list(ref.predecessors(node))
        assert ours.in_degree(node) == ref.in_degree(node)
        assert ours.out_edges(node, data=True) == list(ref.out_edges(node, data=True))
    assert g.find_cycle(ours) == []


@pytest.mark.parametrize("seed", range(40))
def test_same_cycle_as_networkx(seed):
    ours, ref = _pair(seed, nodes=4 + seed % 12, edges=4 + seed, acyclic=False)
    try:
        expected = nx.find_cycle(ref)
    except nx.NetworkXNoCycle:
        expected = []
    assert g.find_cycle(ours) == expected
    if expected:
        with pytest.raises(Exception, match="cycle"):
            g.topological_sort(ours)


def test_copy_is_independent_and_edges_subscript():
    ours = g.DiGraph()
    ours.add_edge("a", "b", hard=True, why="needs")
    ours.add_edge("a", "b", why="order")  # again: attributes updated, one edge
    assert ours.edges["a", "b"] == {"hard": True, "why": "order"} and len(ours.edges) == 1
    twin = ours.copy()
    twin.add_edge("b", "c")
    twin.edges["a", "b"]["hard"] = False
    assert "c" not in ours and ours.edges["a", "b"]["hard"] is True
    assert ours.has_edge("a", "b") and not ours.has_edge("b", "a")
    assert g.topological_sort(twin) == ["a", "b", "c"]


def test_the_engine_no_longer_imports_networkx():
    import subprocess
    import sys

    code = ("import sys, gfsdeploy.graph, gfsdeploy.runner, gfsdeploy.cli; "
            "print('networkx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
