"""How often Python's cycle collector runs while a command runs.

A run keeps large, long-lived structures (every host's variables, reads and plans)
and allocates many short-lived containers per step. With the interpreter's default
thresholds (a young collection every 700 allocations) the collector scanned the
same big dicts over and over: at 1,000 hosts a no-op spent about a third of its CPU
in collections that freed almost nothing (peak memory is the same with far fewer
collections — the run's garbage is freed by reference counting). Collections still
run, only less often; the interpreter's thresholds come back when the command ends.
"""

from __future__ import annotations

import contextlib
import gc

#: objects allocated (net) between young collections: the default is 700
YOUNG = 100_000


@contextlib.contextmanager
def fewer_collections():
    """Collect cycles less often inside the block (never more often than before)."""
    before = gc.get_threshold()
    if before[0]:  # (0: the collector is off, and stays so)
        gc.set_threshold(max(before[0], YOUNG), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
