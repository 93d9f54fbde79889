"""The task graph: one node per (task, host), edges from play order, ``needs:``
and play barriers. A networkx DAG, so cycles are found and named, and the
runner starts each node as soon as its predecessors are done.

Edges carry ``hard``: a failure upstream over a hard edge stops the node
(same-host order, explicit ``needs:``); over a soft edge (play barriers,
handlers) it does not — a failed host is dropped, the others go on, as in Ansible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gfsdeploy.errors import GraphError
from gfsdeploy.inventory import Inventory
from gfsdeploy.playbook import Playbook, Task

if TYPE_CHECKING:  # networkx costs ~0.2 s to import: only commands that build a graph pay it
    import networkx as nx


@dataclass(frozen=True)
class Step:
    task_id: str
    host: str

    def __str__(self):
        return f"{self.task_id}@{self.host}"


def build_graph(playbook: Playbook, inventory: Inventory, *, limit: list[str] | None = None,
                tags: set | None = None, skip_tags: set | None = None) -> tuple[nx.DiGraph, dict[str, Task]]:
    import networkx as nx

    graph = nx.DiGraph()
    tasks: dict[str, Task] = {}
    play_hosts: dict[int, list[str]] = {}
    by_name: dict[str, list[Task]] = {}
    for play in playbook.plays:
        hosts = inventory.select(play.hosts, where=play.where())
        if limit is not None:
            hosts = [h for h in hosts if h in limit]
        play_hosts[play.index] = hosts
        for task in [*play.tasks, *play.handlers]:
            tasks[task.id] = task
            for key in {task.id, task.name} - {""}:
                by_name.setdefault(key, []).append(task)
        for key in {play.id, play.name} - {""}:
            by_name.setdefault("play:" + key, [])

    def selected(task: Task) -> bool:
        task_tags = task.all_tags
        if task.is_handler:
            return True
        if "never" in task_tags and not (tags and task_tags & tags):
            return False
        if tags and not (task_tags & tags or "always" in task_tags):
            return False
        if skip_tags and task_tags & skip_tags and "always" not in (task_tags - skip_tags):
            return False
        return True

    last_of_play: dict[int, list[Step]] = {}
    for play in playbook.plays:
        hosts = play_hosts[play.index]
        run_tasks = [t for t in play.tasks if selected(t)]
        play_steps: list[Step] = []
        for host in hosts:
            previous: Step | None = None
            for task in run_tasks:
                step = Step(task.id, host)
                graph.add_node(step, task=task.id, host=host)
                play_steps.append(step)
                if previous is not None and not task.needs:
                    graph.add_edge(previous, step, hard=True, why="order")
                previous = step
            for handler in play.handlers:
                step = Step(handler.id, host)
                graph.add_node(step, task=handler.id, host=host, handler=True)
                for task in run_tasks:
                    graph.add_edge(Step(task.id, host), step, hard=False, why="handler")
        last_of_play[play.index] = play_steps
        # play barrier: every step of this play waits for the previous play (or its explicit needs)
        if play.needs is None:
            upstream = [play.index - 1] if play.index > 0 else []
        else:
            upstream = []
            for ref in play.needs:
                found = [p.index for p in playbook.plays if ref in (p.id, p.name)]
                if not found:
                    raise GraphError(f"play {play.name!r} needs {ref!r}, but no play has that name or id",
                                     **play.where(), field="needs", fix="use the `name:` or `id:` of an earlier play")
                upstream += found
        firsts = [s for s in play_steps if graph.in_degree(s) == 0]
        for up in upstream:
            for before in _terminal_steps(graph, last_of_play.get(up, [])):
                for first in firsts:
                    graph.add_edge(before, first, hard=False, why="play")
        # explicit task needs
        for task in run_tasks:
            for ref in task.needs:
                targets = by_name.get(str(ref), [])
                if not targets:
                    raise GraphError(f"task {task.label!r} needs {ref!r}, but no task has that name or id",
                                     **task.where(), field="needs",
                                     fix="use the `name:` or `id:` of another task")
                for target in targets:
                    target_steps = [n for n in graph.nodes if n.task_id == target.id]
                    for host in hosts:
                        step = Step(task.id, host)
                        # within a play: the same host's step; across plays: every host's (a barrier)
                        same = [s for s in target_steps if s.host == host] if target.play is task.play else []
                        for before in (same or target_steps):
                            if before != step:
                                graph.add_edge(before, step, hard=True, why="needs")
                # keep order for tasks with needs: their own previous same-host task is no longer implied
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        names = []
        for edge in cycle:
            label = tasks[edge[0].task_id].label
            if label not in names:
                names.append(label)
        first = tasks[cycle[0][0].task_id]
        raise GraphError("the tasks' needs form a cycle: " + " -> ".join(names + [names[0]]),
                         file=first.file, line=first.line,
                         fix="remove one of these `needs:` so the tasks can be ordered")
    return graph, tasks


def _terminal_steps(graph: nx.DiGraph, steps: list[Step]) -> list[Step]:
    """Steps of a play with no successor inside that play (its last tasks and handlers)."""
    inside = set(steps)
    handlers = [n for n in graph.nodes if graph.nodes[n].get("handler") and
                any(p in inside for p in graph.predecessors(n))]
    inside |= set(handlers)
    return [s for s in inside if not any(succ in inside for succ in graph.successors(s))]


def render_text(graph: nx.DiGraph, tasks: dict[str, Task]) -> str:
    """The graph as text: steps in a topological order, with what each waits for."""
    import networkx as nx

    lines = []
    for generation, nodes in enumerate(nx.topological_generations(graph)):
        for step in sorted(nodes, key=lambda s: (s.host, s.task_id)):
            task = tasks[step.task_id]
            preds = sorted(graph.predecessors(step), key=str)
            needs = ", ".join(f"{tasks[p.task_id].label}@{p.host}" for p in preds)
            kind = "handler " if task.is_handler else ""
            lines.append(f"[{generation}] {step.host}: {kind}{task.label}" + (f"  <- {needs}" if needs else ""))
    return "\n".join(lines)


def render_dot(graph: nx.DiGraph, tasks: dict[str, Task]) -> str:
    def node_id(step):
        return '"' + str(step).replace('"', '\\"') + '"'

    def label(step):
        return (tasks[step.task_id].label + "\\n" + step.host).replace('"', '\\"')

    lines = ["digraph gfsdeploy {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for step in graph.nodes:
        lines.append(f'  {node_id(step)} [label="{label(step)}"];')
    for a, b, data in graph.edges(data=True):
        style = "" if data.get("hard") else " [style=dashed]"
        lines.append(f"  {node_id(a)} -> {node_id(b)}{style};")
    lines.append("}")
    return "\n".join(lines)
