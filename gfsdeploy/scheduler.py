"""Runs a run's steps on up to ``forks`` worker threads, ready steps lowest order first.

A worker that finishes a step settles it (records the outcome, finds the steps it
released) and takes the next ready step itself, under one lock. Nothing hops
through a coordinating thread: a pool of futures cost, per step, a future, its
callbacks, a queue in each direction and a wake-up of the thread that decided
what runs next — about a tenth of a 1,000-host no-op's CPU, for bookkeeping.
The order is the pool's: whichever thread decides, a free worker always takes
the lowest ready step (a worker following its host's chain, below, excepted).

``follow(step, outcome)`` (optional) lets a worker go on without the lock: when the
step's only successor waits for nothing else (its host's next step), ``follow`` settles
the step and returns that successor, which the same worker runs next — a host's steps
run one after the other on one worker, the host's data still in the core's caches, and
the lock is taken where hosts meet (a barrier) or a step releases several.

Workers start as they are needed (a ready step and no idle worker), never more than
``forks``; they end when nothing is running and nothing is ready. An error raised
while settling (a bug) ends the run and is raised by :meth:`StepScheduler.run`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Callable, Hashable, Iterable


class StepScheduler:
    """``execute(step)`` runs a step (outside the lock) and returns its outcome;
    ``settle(step, outcome)`` records it and returns the steps it made ready; ``skip(step)``
    returns an outcome for a ready step that must not run (else None); ``order(step)``
    is its place in the run. ``settle``, ``skip`` and ``order`` run under the
    scheduler's lock, one at a time."""

    def __init__(self, forks: int, *, execute: Callable, settle: Callable[..., Iterable], skip: Callable,
                 order: Callable[..., float], follow: Callable | None = None, name: str = "gfs"):
        self.forks = max(1, forks)
        self._execute, self._settle, self._skip, self._order = execute, settle, skip, order
        self._follow = follow
        self._name = name
        self._cv = threading.Condition(threading.Lock())
        self._ready: list = []           # heap of (order, tie, step)
        self._tie = itertools.count()    # equal orders never compare steps
        self._running = 0
        self._idle = 0                   # workers waiting for a ready step (and not yet woken)
        self._coming = 0                 # workers woken or started that have not taken a step yet
        self._threads: list[threading.Thread] = []
        self._over = False               # every step settled, or the run was stopped
        self._error: BaseException | None = None

    def run(self, ready: Iterable[Hashable]) -> None:
        """Run ``ready`` and every step they release; return when all are settled."""
        cv = self._cv
        with cv:
            self._push(ready)
            if not self._ready:
                return
            self._start_workers()
            try:
                while not self._over:
                    cv.wait()
            except BaseException:
                self.stop()
                raise
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Nothing new starts; a worker ends when its step ends (without settling it).
        Called with the lock held."""
        self._over = True
        self._ready.clear()
        self._idle = 0
        self._cv.notify_all()

    # -- under the lock ------------------------------------------------------------
    def _push(self, steps: Iterable[Hashable]) -> None:
        for step in steps:
            heapq.heappush(self._ready, (self._order(step), next(self._tie), step))

    def _start_workers(self) -> None:
        """A worker for each ready step: idle ones are woken, then new ones started."""
        wanted = len(self._ready) - self._coming
        if wanted <= 0:
            return
        woken = min(wanted, self._idle)
        if woken:
            self._idle -= woken
            self._coming += woken
            self._cv.notify(woken)
        for _ in range(min(wanted - woken, self.forks - len(self._threads))):
            thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}")
            self._threads.append(thread)
            self._coming += 1
            thread.start()

    def _next(self):
        """The lowest ready step that may run, settling the ones that may not; None if none."""
        while self._ready and not self._over:
            step = heapq.heappop(self._ready)[2]
            outcome = self._skip(step)
            if outcome is None:
                return step
            self._push(self._settle(step, outcome))
        return None

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self.stop()

    # -- a worker --------------------------------------------------------------------
    def _work(self) -> None:
        cv = self._cv
        with cv:
            self._coming -= 1
            while not self._over:
                try:
                    step = self._next()
                except BaseException as exc:  # noqa: BLE001 - raised by run(), in the caller's thread
                    self._fail(exc)
                    break
                if step is None:
                    if self._running == 0:  # nothing runs that could release a step: the end
                        self.stop()
                        break
                    self._idle += 1
                    cv.wait()
                    self._coming -= 1
                    continue
                self._start_workers()
                self._running += 1
                cv.release()
                try:
                    outcome = self._execute(step)
                    while self._follow is not None and not self._over:
                        after = self._follow(step, outcome)  # (settled it: the next is this worker's)
                        if after is None:
                            break
                        step, outcome = after, self._skip(after)
                        if outcome is None:
                            outcome = self._execute(step)
                except BaseException as exc:  # noqa: BLE001
                    cv.acquire()
                    self._running -= 1
                    self._fail(exc)
                    break
                cv.acquire()
                self._running -= 1
                if self._over:
                    break
                try:
                    self._push(self._settle(step, outcome))
                except BaseException as exc:  # noqa: BLE001
                    self._fail(exc)
                    break
