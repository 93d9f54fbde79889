"""How often the command's process runs Python's cycle collector.

The default (a young-generation pass every 700 new container objects, older
generations every 10 of those) suits small programs. A run over many hosts
allocates millions of short-lived containers (rendered variables, probe
results, outcomes) while keeping a large heap alive (inventory, graph, every
host's state): the collector then traverses the same live objects again and
again — about a quarter of a 1,000-host no-op's CPU, for garbage that reference
counting already freed (the run makes few reference cycles). The command collects
every ``YOUNG`` allocations instead; the collector stays on, so cycles are still
freed, and the process's previous setting comes back when the command ends
(tests and benchmarks call ``main`` in-process; the library never changes it).
"""

from __future__ import annotations

import contextlib
import gc

#: new container objects between two young-generation passes (Python's default: 700)
YOUNG = 50_000


@contextlib.contextmanager
def fewer_collections():
    """Collect cycles every ``YOUNG`` allocations while the block runs."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], YOUNG), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
