"""The recorded transport's simulated round trip (controller benchmarks): it takes its
latency, each worker sleeping on its own, and a stop ends it early."""

from __future__ import annotations

import threading
import time

from gfsdeploy.transport.base import clear_stop, request_stop
from gfsdeploy.transport.recorded import Entry, Recording, RecordedTransport
from gfsdeploy.transport.base import Result


def _transport(latency: float) -> RecordedTransport:
    recording = Recording(reads=[Entry(Result(0, "hi\n", ""), script="echo hi")])
    return RecordedTransport("h", recording, latency=latency)


def test_a_round_trip_takes_its_latency():
    t = _transport(0.12)
    start = time.monotonic()
    assert t.read_many({"a": "echo hi"})["a"].stdout == "hi\n"
    assert 0.12 <= time.monotonic() - start < 1.0
    assert t.round_trips == 1


def test_a_stop_ends_the_wait():
    t = _transport(30.0)
    done = []
    worker = threading.Thread(target=lambda: done.append(t.read_many({"a": "echo hi"})))
    start = time.monotonic()
    worker.start()
    time.sleep(0.1)
    request_stop()
    try:
        worker.join(5)
        assert not worker.is_alive() and time.monotonic() - start < 5
    finally:
        clear_stop()
