"""The task graph: one node per (task, host), edges from play order, ``needs:``,
play barriers, ``serial`` batches and the points where hosts must wait for each
other. A small directed graph of our own (:class:`DiGraph`: insertion-ordered, the
few operations the runner needs), so cycles are found and named, and the runner
starts each node as soon as its predecessors are done.

Edges carry ``why``: ``order`` (the host's own sequence: whether a step runs after
a failure is decided by the host's state — blocks, rescue, always), ``needs``
(explicit; a failure upstream stops the node), ``play``/``batch``/``sync``
(cross-host barriers; a failed host is dropped, the others go on, as in
Ansible), ``handler`` (flush points). ``hard`` is true for ``needs`` only.

Hosts do not move in lock step by default: a host runs its next task as soon as
its previous one is done. Where the playbook's meaning depends on the other
hosts (a task reading ``hostvars``/``ansible_play_hosts`` — in its arguments, in a
variable it uses or in the template file it renders —, ``run_once``,
``delegate_to``, ``strategy: linear`` written out, ``any_errors_fatal``,
``max_fail_percentage``), every
host finishes the previous task first — what Ansible's linear strategy does
everywhere; and every host finishes a task reading other hosts before any goes past
it when a later task may change what it read (a host's set_fact is never seen by
another host's earlier step). Many hosts wait for each other through one
:class:`Barrier` node (2n edges, not n × n).
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import sys
from dataclasses import dataclass
from typing import Iterator, NamedTuple

from gfsdeploy.errors import GraphError
from gfsdeploy.inventory import Inventory
from gfsdeploy.playbook import Play, Playbook, Task, find_in_dirs


class _Nodes:
    """``graph.nodes``: iterate, ``in``, ``len``; ``nodes[n]`` is the node's attributes."""

    __slots__ = ("_attrs",)

    def __init__(self, attrs: dict):
        self._attrs = attrs

    def __iter__(self):
        return iter(self._attrs)

    def __len__(self):
        return len(self._attrs)

    def __contains__(self, node):
        return node in self._attrs

    def __getitem__(self, node) -> dict:
        return self._attrs[node]


class _Edges:
    """``graph.edges``: ``edges()`` / ``edges(data=True)`` in insertion order (each
    node's out-edges in the order they were added); ``edges[a, b]`` the attributes."""

    __slots__ = ("_succ",)

    def __init__(self, succ: dict):
        self._succ = succ

    def __call__(self, data: bool = False):
        if data:
            return [(a, b, d) for a, out in self._succ.items() for b, d in out.items()]
        return [(a, b) for a, out in self._succ.items() for b in out]

    def __iter__(self):
        return iter(self())

    def __len__(self):
        return sum(len(out) for out in self._succ.values())

    def __getitem__(self, edge) -> dict:
        a, b = edge
        return self._succ[a][b]


class DiGraph:
    """A directed graph: nodes and edges with attributes, kept in insertion order
    (the order decides the runner's schedule and the graph's printed form).
    Adding an edge adds its nodes; adding it again updates its attributes."""

    def __init__(self):
        self._attrs: dict = {}   # node -> attributes
        self._succ: dict = {}    # node -> {successor: edge attributes}
        self._pred: dict = {}    # node -> {predecessor: edge attributes}
        self.nodes = _Nodes(self._attrs)
        self.edges = _Edges(self._succ)

    def add_node(self, node, **attrs) -> None:
        if node not in self._attrs:
            self._attrs[node] = {}
            self._succ[node] = {}
            self._pred[node] = {}
        self._attrs[node].update(attrs)

    def add_edge(self, a, b, **attrs) -> None:
        self.add_node(a)
        self.add_node(b)
        data = self._succ[a].get(b)
        if data is None:
            data = self._succ[a][b] = self._pred[b][a] = {}
        data.update(attrs)

    def __contains__(self, node) -> bool:
        return node in self._attrs

    def __len__(self) -> int:
        return len(self._attrs)

    def successors(self, node) -> Iterator:
        return iter(self._succ[node])

    def predecessors(self, node) -> Iterator:
        return iter(self._pred[node])

    def sole_successor(self, node):
        """The successor of ``node`` when it has exactly one and that one waits for nothing
        else (a host's next step); None otherwise."""
        out = self._succ[node]
        if len(out) != 1:
            return None
        (succ,) = out
        return succ if len(self._pred[succ]) == 1 else None

    def in_edges_of(self, node):
        """``(predecessor, edge attributes)`` of each edge into ``node``."""
        return self._pred[node].items()

    def in_degree(self, node) -> int:
        return len(self._pred[node])

    def out_edges(self, node, data: bool = False) -> list:
        if data:
            return [(node, b, d) for b, d in self._succ[node].items()]
        return [(node, b) for b in self._succ[node]]

    def edge(self, a, b) -> dict:
        """The attributes of the edge a -> b (``why``, ``hard``)."""
        return self._succ[a][b]

    def has_edge(self, a, b) -> bool:
        return b in self._succ.get(a, ())

    def copy(self) -> "DiGraph":
        """A graph with the same nodes and edges and copies of their attribute dicts."""
        out = DiGraph()
        for node, attrs in self._attrs.items():
            out._attrs[node] = dict(attrs)
            out._succ[node] = {}
            out._pred[node] = {}
        for a, succ in self._succ.items():
            for b, data in succ.items():
                out._succ[a][b] = out._pred[b][a] = dict(data)
        return out


def topological_generations(graph: DiGraph) -> Iterator[list]:
    """The nodes in generations: a node comes in the first generation after all its
    predecessors'. Within one, nodes keep the order in which they became free (the
    graph's insertion order first): the runner's schedule and outcome order rest on it."""
    waiting = {}
    free = []
    for node in graph.nodes:
        n = graph.in_degree(node)
        if n:
            waiting[node] = n
        else:
            free.append(node)
    while free:
        generation, free = free, []
        for node in generation:
            for succ in graph.successors(node):
                waiting[succ] -= 1
                if not waiting[succ]:
                    free.append(succ)
                    del waiting[succ]
        yield generation
    if waiting:
        raise GraphError("the task graph has a cycle")


def topological_sort(graph: DiGraph) -> list:
    """Every node after its predecessors (generation by generation)."""
    return [node for generation in topological_generations(graph) for node in generation]


def find_cycle(graph: DiGraph) -> list[tuple]:
    """The edges of the first cycle a depth-first walk meets (nodes and their successors
    in insertion order), from the node where the cycle closes; [] if there is none."""
    done: set = set()
    for start in graph.nodes:
        if start in done:
            continue
        path = [start]                  # the active path
        on_path = {start}
        stack = [iter(graph.successors(start))]
        while stack:
            succ = next(stack[-1], None)
            if succ is None:
                stack.pop()
                node = path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if succ in on_path:
                at = path.index(succ)
                cycle = path[at:] + [succ]
                return list(zip(cycle, cycle[1:]))
            if succ in done:
                continue
            path.append(succ)
            on_path.add(succ)
            stack.append(iter(graph.successors(succ)))
    return []


class Step(NamedTuple):
    """One task on one host: a node of the graph. (A tuple: its hash and equality are
    the tuple's, in C — a 1,000-host run hashes steps a few hundred thousand times.)"""
    task_id: str
    host: str

    def __str__(self):
        return f"{self.task_id}@{self.host}"

    def __repr__(self):
        return f"Step(task_id={self.task_id!r}, host={self.host!r})"


@dataclass(frozen=True)
class Barrier:
    """Where every step of ``after`` waits for every step of ``before`` (the hosts of one
    batch): a node of its own, so that n hosts wait for each other through 2n edges,
    not n × n (a million at 1,000 hosts, built, copied for every run and walked). It is
    never run: the runner releases what waits on it when the last step before it is done."""
    before: str   # the task id of the steps waited for
    after: str    # the task id of the steps that wait
    batch: int
    why: str = "sync"

    def __str__(self):
        return f"{self.why}:{self.before}>{self.after}#{self.batch}"


#: above this many host pairs, hosts wait for each other through a Barrier node (below
#: it, edges from each host's step to each other host's: what `gfsdeploy graph` shows)
BARRIER_PAIRS = 256


def add_barrier(graph: "DiGraph", before: list, after: list, barrier: Barrier, *, own_host: bool = True) -> None:
    """Every step of ``after`` waits for every step of ``before`` — through ``barrier``
    when there are many, else edge by edge (``own_host`` false: not for its own host's
    step, which the host's order already waits for)."""
    if len(before) * len(after) <= BARRIER_PAIRS:
        for a in before:
            for b in after:
                if own_host or a.host != b.host:
                    graph.add_edge(a, b, hard=False, why=barrier.why)
        return
    graph.add_node(barrier, barrier=True)
    for a in before:
        graph.add_edge(a, barrier, hard=False, why=barrier.why)
    for b in after:
        graph.add_edge(barrier, b, hard=False, why=barrier.why)


def waits_for(graph: "DiGraph", node) -> dict:
    """The steps ``node`` waits for, directly or through a Barrier: step -> why."""
    out: dict = {}
    for pred, data in graph.in_edges_of(node):
        if isinstance(pred, Barrier):
            for before, _ in graph.in_edges_of(pred):
                out.setdefault(before, data.get("why"))
        else:
            out[pred] = data.get("why")
    return out


def _released(graph: "DiGraph", node):
    """The steps that wait for ``node``, directly or through a Barrier."""
    for succ in graph.successors(node):
        if isinstance(succ, Barrier):
            yield from graph.successors(succ)
        else:
            yield succ


_CROSS_HOST = re.compile(r"\b(hostvars|ansible_play_hosts(_all)?|play_hosts|ansible_play_batch)\b")


def play_hosts(play: Play, inventory: Inventory, limit: list[str] | None = None) -> list[str]:
    hosts = inventory.select(play.hosts, where=play.where())
    if not hosts and str(play.hosts).strip() in ("localhost", "127.0.0.1") and "localhost" not in inventory.hosts:
        # Ansible's implicit localhost: the controller, outside `all`
        from gfsdeploy.inventory import Host

        inventory.hosts["localhost"] = Host("localhost", vars={"ansible_connection": "local"})
        hosts = ["localhost"]
    if limit is not None:
        hosts = [h for h in hosts if h in limit]
    if play.order == "reverse_inventory":
        hosts = list(reversed(hosts))
    elif play.order == "sorted":
        hosts = sorted(hosts)
    elif play.order == "reverse_sorted":
        hosts = sorted(hosts, reverse=True)
    elif play.order == "shuffle":
        hosts = random.sample(hosts, len(hosts))
    return hosts


def batches(play: Play, hosts: list[str]) -> list[list[str]]:
    """``serial``: a number, a percentage or a list of them (the last repeats)."""
    if play.serial in (None, 0, "0", "", []):
        return [hosts] if hosts else []
    sizes = play.serial if isinstance(play.serial, list) else [play.serial]
    out, i, k = [], 0, 0
    while i < len(hosts):
        raw = sizes[min(k, len(sizes) - 1)]
        text = str(raw).strip()
        try:
            size = max(1, int(len(hosts) * float(text[:-1]) / 100)) if text.endswith("%") else int(text)
        except ValueError:
            raise GraphError(f"serial {raw!r} is not a number or a percentage", **play.where(), field="serial",
                             fix="write e.g. `serial: 2`, `serial: \"30%\"` or `serial: [1, 5, \"50%\"]`") from None
        if size <= 0:
            size = len(hosts)
        out.append(hosts[i:i + size])
        i += size
        k += 1
    return out


def _mentions(task: Task, pattern: re.Pattern) -> bool:
    parts = [task.args, task.when, task.loop, task.vars, task.changed_when, task.failed_when, task.until,
             task.include.target if task.include else None]
    return bool(pattern.search(repr(parts)))


#: a template lookup in a task's arguments (``lookup('template', …)``, ``query``/``q``)
_TEMPLATE_LOOKUP = re.compile(r"""\b(lookup|query|q)\(\s*['"](ansible\.builtin\.)?template['"]""")
#: a template that brings in other files (read as part of it)
_TEMPLATE_BRINGS = re.compile(r"\{%[-+]?\s*(include|import|extends|from)\b")
#: the most template text looked into for one task before it counts as reading other hosts
_TEMPLATE_TEXT_MAX = 4 << 20


def _reads_in_templates(task: Task, pattern: re.Pattern, texts: dict) -> bool:
    """Whether a template file ``task`` renders may read what ``pattern`` names (another
    host's variables): the ``template`` module's ``src`` — looked up where the runner
    looks (the task's roles, its directory, the playbook's, each with ``templates/``),
    every template there when ``src`` is itself a template — or a template lookup.
    What cannot be looked into counts as reading: a template that includes others, one
    not found or unreadable, a lookup's file. ``texts``: file texts read for the play."""
    if _TEMPLATE_LOOKUP.search(repr(task.args)):
        return True
    if str(task.module).rsplit(".", 1)[-1] != "template" or not isinstance(task.args, dict):
        return False
    src = task.args.get("src")
    if not isinstance(src, str) or not src:
        return True
    if _TEMPLATED.search(src):  # (e.g. "{{ item }}.j2": any file the task may find)
        roots = [root for d in task.search_dirs for root in (os.path.join(d, "templates"), d)]
        paths = _named_by_template(src, roots, texts)
        if not paths:  # (too many to look into, or none yet: one may be made before it runs)
            return True
    else:
        found = find_in_dirs(task.search_dirs, "templates", src)  # (where the runner finds it)
        if found is None:
            return True
        paths = [found]
    size = 0
    for path in paths:
        text = texts.get(path)
        if text is None:
            try:
                with open(path, encoding="utf-8") as handle:
                    text = texts[path] = handle.read(_TEMPLATE_TEXT_MAX + 1)
            except (OSError, UnicodeDecodeError):
                return True
        size += len(text)
        if size > _TEMPLATE_TEXT_MAX or text.lstrip().startswith("$ANSIBLE_VAULT") or _TEMPLATE_BRINGS.search(text) \
                or pattern.search(text):
            return True
    return False


#: a template part of a file name (what the runner renders before it looks the file up)
_TEMPLATED = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
#: the most files looked at for the files one templated name may name
_CANDIDATES_MAX = 5000


def _named_by_template(name: str, roots: list[str], cache: dict) -> list[str] | None:
    """The files a templated file name (``"{{ env }}.yml"``) may name under ``roots`` (as
    the runner looks: each root joined with the name): every file whose path from the
    root matches the name, each template part read as any text (slashes too). Only the
    directory the name's fixed beginning names is walked; hidden directories are not.
    None: more than _CANDIDATES_MAX files to look at — what they hold is not known before
    the run. ``cache``: walks made for the play."""
    parts = _TEMPLATED.split(name)
    pattern = re.compile(".*".join(re.escape(part) for part in parts), re.S)
    fixed = parts[0]
    found: list[str] = []
    for root in (["/"] if os.path.isabs(name) else roots):
        base = os.path.join(root, fixed[:fixed.rfind("/") + 1])  # (the root itself: no slash in it)
        key = ("walk", base)
        files = cache.get(key, [])
        if key not in cache:
            for top, dirs, names in os.walk(base):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [os.path.join(top, n) for n in names]
                if len(files) > _CANDIDATES_MAX:
                    files = None
                    break
            cache[key] = files
        if files is None:
            return None
        found += [path for path in files
                  if pattern.fullmatch(path if os.path.isabs(name) else os.path.relpath(path, root))]
    return sorted(set(found))


def changes_variables(task: Task) -> bool:
    """Whether ``task`` may change a host's variables (what other hosts read as
    ``hostvars``) or the play's hosts: it registers, sets facts or variables, gathers
    facts, includes tasks, is a `meta`, delegates or runs once, or runs an Ansible module
    (which may return facts). The graph's barriers and the batches both ask this."""
    from gfsdeploy import modules

    if task.register or task.include is not None or task.delegate_to or task.run_once:
        return True
    short = str(task.module).rsplit(".", 1)[-1]
    if short in ("set_fact", "include_vars", "setup", "gather_facts", "meta", "add_host", "group_by"):
        return True
    module = modules.get(task.module)
    protocol = sys.modules.get("gfsdeploy.ansible_protocol")  # (not loaded: no such module in this run)
    return module is None or (protocol is not None and isinstance(module, protocol.ProtocolModule))


def _cross_host_variables(play: Play, tasks: list[Task], hosts: list[str], inventory: Inventory) -> re.Pattern | None:
    """The variables a play's tasks may read whose values read other hosts (``hostvars``,
    the play's host lists), directly or through another such variable — inventory,
    play, role, block and include vars: a task using one waits for every host's step
    before it, as one naming ``hostvars`` itself does. (vars_files, read when the play
    runs, are looked into beforehand: _static_vars_files.) A pattern matching their
    names, or None."""
    texts: dict = {}

    def add(mapping) -> None:
        for key, value in (mapping.items() if isinstance(mapping, dict) else mapping or ()):
            text = repr(value)
            if "{" in text:  # (only a template reads anything)
                texts.setdefault(str(key), set()).add(text)

    add(play.vars)
    for mapping in _static_vars_files(play):
        add(mapping)
    for role in play.roles:
        add(role.defaults)
        add(role.vars)
    for task in tasks:
        for role in task.role_chain:
            add(role.defaults)
            add(role.vars)
            add(role.params)
        for block in task.block_vars:
            add(block)
        add(task.include_params)
    seen: set = set()
    for host in hosts:
        known = inventory.hosts.get(host)
        if known is not None and id(known.vars) not in seen:
            seen.add(id(known.vars))
            add(known.vars)
    names: set = set()
    pattern = _CROSS_HOST
    while True:
        found = {name for name, values in texts.items()
                 if name not in names and any(pattern.search(text) for text in values)}
        if not found:
            break
        names |= found
        pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names))) + r")\b")
    return pattern if names else None


def _static_vars_files(play: Play):
    """The mappings of a play's vars_files, read before the run: the first file of a list
    that exists; for a name with a template in it (``vars/{{ env }}.yml``), every file it
    may name (_named_by_template); a vault-encrypted one decrypted when the run has its
    password. What cannot be read is skipped (reported when the play loads it)."""
    from gfsdeploy import vault
    from gfsdeploy.yamlload import loads

    walks: dict = {}
    for entry, _, _ in play.vars_files:
        for candidate in (entry if isinstance(entry, list) else [entry]):
            name = str(candidate)
            if _TEMPLATED.search(name):
                paths = _named_by_template(name, [play.base_dir], walks) or []
            else:
                path = name if os.path.isabs(name) else os.path.join(play.base_dir, name)
                paths = [path] if os.path.isfile(path) else []
            for path in paths:
                try:
                    with open(path, "rb") as handle:
                        raw = handle.read()
                    data = loads(vault.plain_bytes(raw, path).decode("utf-8"), path)
                except Exception:  # noqa: BLE001 - (reported when the play loads it; no password yet)
                    data = None
                if isinstance(data, dict):
                    yield data
            if paths:
                break


def selected(task: Task, tags: set | None, skip_tags: set | None, by_id: dict) -> bool:
    """``--tags``/``--skip-tags`` (``always``/``never`` as in Ansible); a task an include
    brings is selected only when the include is."""
    for gate in task.gates:
        if gate in by_id and not selected(by_id[gate], tags, skip_tags, by_id):
            return False
    if task.is_handler:
        return True
    task_tags = {str(t) for t in task.all_tags}
    if "never" in task_tags and not (tags and task_tags & tags):
        return False
    if tags and not (task_tags & tags or "always" in task_tags or ("all" in tags and "never" not in task_tags)
                     or ("tagged" in tags and task_tags) or ("untagged" in tags and not task_tags)):
        return False
    if skip_tags and (task_tags & skip_tags or ("tagged" in skip_tags and task_tags)
                      or ("untagged" in skip_tags and not task_tags)) and "always" not in (task_tags - skip_tags):
        return False
    return True


def handler_copies(play: Play, run_tasks: list[Task]) -> dict[int, list[Task]]:
    """The handlers to run at each flush point (after pre_tasks, after roles+tasks,
    after post_tasks, at ``meta: flush_handlers``): only where a task before it notifies.
    The last flush keeps the handlers' own ids."""
    if not play.handlers:
        return {}
    points = sorted(set(play.flush_points)) or [len(play.tasks)]
    positions = {t.id: i for i, t in enumerate(play.tasks)}
    out: dict[int, list[Task]] = {}
    previous = 0
    for k, point in enumerate(points):
        segment = [t for t in run_tasks if previous <= positions.get(t.id, -1) < point]
        previous = point
        last = k == len(points) - 1
        if not last and not any(t.notify for t in segment):
            continue
        out[point] = [h if last else dataclasses.replace(h, id=f"{h.id}@{k + 1}", flush=k + 1)
                      for h in play.handlers]
    return out


def build_graph(playbook: Playbook, inventory: Inventory, *, limit: list[str] | None = None,
                tags: set | None = None, skip_tags: set | None = None) -> tuple[DiGraph, dict[str, Task]]:
    graph = DiGraph()
    tasks: dict[str, Task] = {}
    by_name: dict[str, list[Task]] = {}
    all_by_id = {t.id: t for t in playbook.tasks()}
    for play in playbook.plays:
        for task in [*play.tasks, *play.handlers]:
            tasks[task.id] = task
            for key in {task.id, task.name} - {""}:
                by_name.setdefault(key, []).append(task)

    last_of_play: dict[int, list[Step]] = {}
    for play in playbook.plays:
        hosts = play_hosts(play, inventory, limit)
        run_tasks = [t for t in play.tasks if selected(t, tags, skip_tags, all_by_id)]
        flushes = handler_copies(play, run_tasks)
        for copies in flushes.values():
            for handler in copies:
                tasks[handler.id] = handler
        positions = {t.id: i for i, t in enumerate(play.tasks)}
        sequence: list[Task] = []
        for point in sorted(flushes):
            sequence += [t for t in run_tasks if positions[t.id] < point and t not in sequence]
            sequence += flushes[point]
        sequence += [t for t in run_tasks if t not in sequence]
        # (max_fail_percentage: Ansible judges it after each task, every host having done it)
        lockstep = play.strategy == "linear" and _strategy_written(play) or play.any_errors_fatal \
            or play.max_fail_percentage is not None
        cross_vars = _cross_host_variables(play, sequence, hosts, inventory)
        # where hosts wait for each other (below): before a task reading other hosts, and
        # after it when a later task may change what it read (else a host's set_fact could
        # run before another's reading step)
        reading = _CROSS_HOST if cross_vars is None else re.compile(f"{_CROSS_HOST.pattern}|{cross_vars.pattern}")
        texts: dict = {}
        readers = [_mentions(task, reading) or _reads_in_templates(task, reading, texts) for task in sequence]
        writes_later = [False] * len(sequence)
        if any(readers):
            for i in range(len(sequence) - 2, -1, -1):
                writes_later[i] = writes_later[i + 1] or changes_variables(sequence[i + 1])
        play_steps: list[Step] = []
        previous_batch: list[Step] = []
        for batch_no, batch in enumerate(batches(play, hosts)):
            batch_steps: list[Step] = []
            for host in batch:
                previous: Step | None = None
                for task in sequence:
                    step = Step(task.id, host)
                    graph.add_node(step, task=task.id, host=host, handler=task.is_handler)
                    batch_steps.append(step)
                    if previous is not None and not task.needs:
                        graph.add_edge(previous, step, hard=False, why="handler" if task.is_handler else "order")
                    previous = step
            # where hosts wait for each other: every host's previous task is done first
            for i, task in enumerate(sequence):
                if i == 0 or not (lockstep or task.any_errors_fatal is True or task.run_once or task.delegate_to
                                  or readers[i] or (readers[i - 1] and writes_later[i - 1])):
                    continue
                before = sequence[i - 1]
                add_barrier(graph, [Step(before.id, h) for h in batch], [Step(task.id, h) for h in batch],
                            Barrier(before.id, task.id, batch_no, "sync"), own_host=False)
            # run_once: the batch's first host runs it; the others take its result
            for task in sequence:
                if task.run_once and batch:
                    for other in batch[1:]:
                        graph.add_edge(Step(task.id, batch[0]), Step(task.id, other), hard=False, why="once")
            if previous_batch:
                firsts = [s for s in batch_steps if graph.in_degree(s) == 0]
                add_barrier(graph, _terminal_steps(graph, previous_batch), firsts,
                            Barrier(f"play{play.index}", f"play{play.index}", batch_no, "batch"))
            play_steps += batch_steps
            previous_batch = batch_steps
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
            add_barrier(graph, _terminal_steps(graph, last_of_play.get(up, [])), firsts,
                        Barrier(f"play{up}", f"play{play.index}", 0, "play"))
        # explicit task needs
        for task in run_tasks:
            for ref in task.needs:
                targets = by_name.get(str(ref), [])
                if not targets:
                    raise GraphError(f"task {task.label!r} needs {ref!r}, but no task has that name or id",
                                     **task.where(), field="needs",
                                     fix="use the `name:` or `id:` of another task")
                for target in targets:
                    target_steps = [n for n in graph.nodes if isinstance(n, Step) and n.task_id == target.id]
                    for host in hosts:
                        step = Step(task.id, host)
                        # within a play: the same host's step; across plays: every host's (a barrier)
                        same = [s for s in target_steps if s.host == host] if target.play is task.play else []
                        for before in (same or target_steps):
                            if before != step:
                                graph.add_edge(before, step, hard=True, why="needs")
    cycle = [edge for edge in find_cycle(graph) if isinstance(edge[0], Step)]
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


def _strategy_written(play: Play) -> bool:
    """Whether the play names its strategy (``strategy: linear`` asks for lock step)."""
    return getattr(play, "strategy_written", False)


def _terminal_steps(graph: DiGraph, steps: list[Step]) -> list[Step]:
    """Steps with no successor among ``steps`` (a play's or batch's last tasks and handlers)."""
    inside = set(steps)
    return [s for s in inside if not any(succ in inside for succ in _released(graph, s))]


def _describe(task: Task) -> str:
    text = task.label
    if task.include is not None and not task.include.static:
        body = task.include.body
        what = f"{len(body)} task(s)" if body else "its tasks"
        text += f" [{task.module} {task.include.target}: {what}, expanded when it runs]"
    return text


def render_text(graph: DiGraph, tasks: dict[str, Task]) -> str:
    """The graph as text: steps in a topological order, with where each task came from
    (role, file:line) and what it waits for on other hosts or by `needs:`."""
    lines = []
    for generation, nodes in enumerate(topological_generations(graph)):
        for step in sorted((n for n in nodes if isinstance(n, Step)), key=lambda s: (s.host, s.task_id)):
            task = tasks[step.task_id]
            preds = sorted(waits_for(graph, step), key=str)
            needs = ", ".join(f"{tasks[p.task_id].label}@{p.host}" for p in preds)
            kind = "handler " if task.is_handler else ""
            lines.append(f"[{generation}] {step.host}: {kind}{_describe(task)}  ({task.describe_origin()})"
                         + (f"  <- {needs}" if needs else ""))
    return "\n".join(lines)


def render_dot(graph: DiGraph, tasks: dict[str, Task]) -> str:
    def node_id(step):
        return '"' + str(step).replace('"', '\\"') + '"'

    def label(step):
        if isinstance(step, Barrier):  # (every host's step before it, then every host's after it)
            return f"every host: {tasks[step.before].label if step.before in tasks else step.before}".replace('"', '\\"')
        task = tasks[step.task_id]
        return (_describe(task) + "\\n" + step.host + "\\n" + task.describe_origin()).replace('"', '\\"')

    lines = ["digraph gfsdeploy {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for step in graph.nodes:
        lines.append(f'  {node_id(step)} [label="{label(step)}"];')
    for a, b, data in graph.edges(data=True):
        style = "" if data.get("hard") or data.get("why") == "order" else " [style=dashed]"
        lines.append(f"  {node_id(a)} -> {node_id(b)}{style};")
    lines.append("}")
    return "\n".join(lines)
