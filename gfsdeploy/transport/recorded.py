"""A transport that answers from recorded outputs, in process: no host, no shell.

A :class:`Recording` maps what the engine sends to what a host answered: each
probe script (the read-only snippets modules batch into one read) and each
read-only command to its exit code, stdout and stderr. :class:`RecordedTransport`
replays it — every ``read_many`` is one round trip, answered by exact script
text first, then by the recording's ``match`` entries (a regular expression
searched in the script; hand-written recordings of one fact, e.g. "any probe
that runs ``getenforce``"). Scripts that change the host are logged and
answered from the recording's ``runs`` entries, else with exit 0, so an
``apply`` against recordings exercises the controller alone.

:class:`RecordingTransport` wraps a real transport and records what it answers,
so a recording is made by planning once against a real (or sandboxed) host.

Uses: table tests of whole playbooks per distribution without the machines,
and controller benchmarks with thousands of hosts. Inventory:
``ansible_connection: recorded`` with ``gfsdeploy_recording: path/to/host.json``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field

from gfsdeploy.errors import TransportError
from gfsdeploy.transport.base import CommandRecord, Result, Transport

FORMAT = 1


@dataclass
class Entry:
    result: Result
    script: str = ""          # exact script text (empty for a match entry)
    match: str = ""           # a regular expression searched in the script
    note: str = ""            # where the output comes from (shown in the file only)

    def to_json(self) -> dict:
        out = {"match": self.match} if self.match else {"script": self.script}
        out.update(rc=self.result.rc, stdout=self.result.stdout, stderr=self.result.stderr)
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, data: dict, where: str) -> "Entry":
        if not isinstance(data, dict) or not ("script" in data) ^ ("match" in data):
            raise TransportError(f"{where}: each entry needs exactly one of `script` or `match`",
                                 fix="re-record the file, or fix the entry by hand")
        try:
            result = Result(int(data.get("rc", 0)), str(data.get("stdout", "")), str(data.get("stderr", "")))
            if "match" in data:
                re.compile(data["match"])
        except (TypeError, ValueError, re.error) as exc:
            raise TransportError(f"{where}: bad entry: {exc}", fix="fix the entry (rc: a number, match: a regex)") from None
        return cls(result, script=str(data.get("script", "")), match=str(data.get("match", "")),
                   note=str(data.get("note", "")))


@dataclass
class Recording:
    """What one host answered: reads (probes and read-only commands) and runs (changes)."""

    reads: list[Entry] = field(default_factory=list)
    runs: list[Entry] = field(default_factory=list)
    path: str = ""

    def __post_init__(self):
        self._lock = threading.Lock()
        self._index()

    def _index(self) -> None:
        self._exact = {e.script: e for e in self.reads if not e.match}
        self._patterns = [(re.compile(e.match, re.M), e) for e in self.reads if e.match]
        self._run_exact = {e.script: e for e in self.runs if not e.match}
        self._run_patterns = [(re.compile(e.match, re.M), e) for e in self.runs if e.match]

    # -- lookups ------------------------------------------------------------------
    def answer(self, script: str) -> Result | None:
        entry = self._exact.get(script)
        if entry is None:
            entry = next((e for pattern, e in self._patterns if pattern.search(script)), None)
        return None if entry is None else _copy(entry.result)

    def answer_run(self, script: str) -> Result | None:
        entry = self._run_exact.get(script)
        if entry is None:
            entry = next((e for pattern, e in self._run_patterns if pattern.search(script)), None)
        return None if entry is None else _copy(entry.result)

    # -- recording ------------------------------------------------------------------
    def add(self, script: str, result: Result, *, kind: str = "read") -> None:
        with self._lock:
            entries = self.reads if kind == "read" else self.runs
            for i, entry in enumerate(entries):
                if not entry.match and entry.script == script:
                    entries[i] = Entry(_copy(result), script=script)
                    break
            else:
                entries.append(Entry(_copy(result), script=script))
            self._index()

    # -- files ------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "reads": [e.to_json() for e in self.reads],
                "runs": [e.to_json() for e in self.runs]}

    def save(self, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=1, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, path)
        self.path = path

    @classmethod
    def load(cls, path: str) -> "Recording":
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise TransportError(f"cannot read the recording {path}: {exc.strerror or exc}",
                                 fix="check gfsdeploy_recording in the inventory") from None
        except ValueError as exc:
            raise TransportError(f"the recording {path} is not valid JSON: {exc}",
                                 fix="re-record it, or fix the JSON") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data, where: str = "recording") -> "Recording":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TransportError(f"{where}: not a gfsdeploy recording (format {FORMAT})",
                                 fix="record it again with this version of gfsdeploy")
        reads = [Entry.from_json(e, f"{where} reads[{i}]") for i, e in enumerate(data.get("reads") or [])]
        runs = [Entry.from_json(e, f"{where} runs[{i}]") for i, e in enumerate(data.get("runs") or [])]
        return cls(reads, runs, path=where)


def _copy(result: Result) -> Result:
    return Result(result.rc, result.stdout, result.stderr)


_CACHE: dict[str, Recording] = {}
_CACHE_LOCK = threading.Lock()


def load_shared(path: str) -> Recording:
    """One parsed Recording per file for the whole process (a thousand hosts may share one)."""
    key = os.path.abspath(path)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Recording.load(path)
        return _CACHE[key]


#: the longest a simulated round trip sleeps before it looks whether the run was stopped
_STOP_SLICE = 0.05


class RecordedTransport(Transport):
    """Answers reads from a Recording; runs nothing. ``strict``: a read that is not in
    the recording is an error naming the script (else it answers exit 127).
    ``latency``: seconds each round trip waits before its answer (a network and a
    remote shell, for controller benchmarks; inventory ``gfsdeploy_recording_latency``)."""

    def __init__(self, host: str, recording: Recording, *, strict: bool = True, become: bool = False,
                 become_user: str = "root", timeout: float = 60.0, latency: float = 0.0):
        super().__init__(host, become=become, become_user=become_user, timeout=timeout)
        self.recording = recording
        self.strict = strict
        self.latency = latency
        self.missing: list[str] = []

    def _wait(self) -> None:
        """The round trip's time, as a network wait costs it: a sleep of this thread alone
        (waiting on the stop Event, shared by every worker, made each wait's end contend
        for that Event's lock — controller CPU no network wait costs). A stop ends it
        within _STOP_SLICE."""
        if self.latency > 0:
            from gfsdeploy.transport.base import _STOP

            end = time.monotonic() + self.latency
            while not _STOP.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, _STOP_SLICE))

    def _missing(self, script: str) -> Result:
        self.missing.append(script)
        if self.strict:
            first = script.strip().splitlines()[0] if script.strip() else "(empty script)"
            raise TransportError(
                f"no recorded answer for this read: {first[:200]}" +
                (" …" if len(script.strip().splitlines()) > 1 else ""),
                host=self.host,
                fix=f"record the host again (the probes changed since {self.recording.path or 'the recording'} was made)")
        return Result(127, "", "not recorded")

    def read_many(self, probes: dict[str, str], *, timeout: float | None = None, **_) -> dict[str, Result]:
        if not probes:
            return {}
        with self._lock:
            self.round_trips += 1
            record = CommandRecord(script="\n".join(probes.values()), kind="read")
            self.command_log.append(record)
        self._wait()
        out = {}
        for key, script in probes.items():
            answer = self.recording.answer(script)
            out[key] = answer if answer is not None else self._missing(script)
        record.rc = 0
        return out

    def run(self, script: str, *, timeout: float | None = None, kind: str = "run", **_) -> Result:
        with self._lock:
            self.round_trips += 1
            record = CommandRecord(script=script, kind=kind)
            self.command_log.append(record)
        self._wait()
        if kind == "read":
            answer = self.recording.answer(script)
            result = answer if answer is not None else self._missing(script)
        else:
            from gfsdeploy import batch

            def run_one(member: str) -> Result:
                answer = self.recording.answer_run(member)
                return answer if answer is not None else Result(0, "", "")

            framed = batch.answer(script, run_one)  # several steps' changes in one script
            result = Result(0, framed, "") if framed is not None else run_one(script)
        record.rc = result.rc
        return result

    def _open(self, command: str, *, pty: bool):
        raise AssertionError("RecordedTransport answers in run()/read_many()")  # never called

    def forward(self, remote_host: str, remote_port: int, **_) -> tuple[str, int]:
        raise TransportError("a recorded host cannot open a tunnel", host=self.host,
                             fix="plan the steps that talk to a service through a tunnel against a real host")


class RecordingTransport(Transport):
    """Wraps a real transport; every read it answers is added to ``recording``."""

    def __init__(self, inner: Transport, recording: Recording | None = None):
        self.inner = inner
        super().__init__(inner.host, become=inner.become, become_user=inner.become_user, timeout=inner.timeout)
        self.recording = recording if recording is not None else Recording()

    # the runner sets ``become`` after creating the transport: it belongs to the real one
    @property
    def become(self) -> bool:
        return self.inner.become

    @become.setter
    def become(self, value: bool) -> None:
        self.inner.become = value

    def connect(self) -> None:
        self.inner.connect()

    def close(self) -> None:
        self.inner.close()

    def launcher(self) -> str:
        return self.inner.launcher()

    def read_many(self, probes, *, timeout=None, **kwargs):
        results = self.inner.read_many(probes, timeout=timeout, **kwargs)
        for key, script in probes.items():
            if key in results:
                self.recording.add(script, results[key])
        self.round_trips = self.inner.round_trips
        self.command_log = self.inner.command_log
        return results

    def run(self, script, *, timeout=None, kind="run", **kwargs):
        result = self.inner.run(script, timeout=timeout, kind=kind, **kwargs)
        self.recording.add(script, result, kind="read" if kind == "read" else "run")
        self.round_trips = self.inner.round_trips
        self.command_log = self.inner.command_log
        return result

    def _open(self, command, *, pty):
        return self.inner._open(command, pty=pty)

    def login_user(self):
        return self.inner.login_user()

    def forward(self, remote_host, remote_port, **kwargs):
        return self.inner.forward(remote_host, remote_port, **kwargs)


def record(inventory_path: str, playbook_path: str, out_dir: str, *, limit: list[str] | None = None,
           options: dict | None = None) -> dict[str, str]:
    """Plan ``playbook_path`` against the real hosts of ``inventory_path`` and write what each
    host answered to ``out_dir/<host>.json``; returns {host: path}."""
    from gfsdeploy import runner as runner_mod
    from gfsdeploy.inventory import load_inventory
    from gfsdeploy.playbook import load_playbook

    class _Quiet:
        def progress(self, *args):
            pass

        def step_done(self, *args):
            pass

    made: dict[str, RecordingTransport] = {}
    real = runner_mod.make_transport

    def wrapped(host, **kwargs):
        made[host.name] = RecordingTransport(real(host, **kwargs))
        return made[host.name]

    inventory = load_inventory(inventory_path)
    playbook = load_playbook(playbook_path)
    runner = runner_mod.Runner(inventory, playbook, runner_mod.Options(mode="plan", limit=limit, **(options or {})),
                               _Quiet())
    runner_mod.make_transport = wrapped
    try:
        runner.run("plan")
    finally:
        runner_mod.make_transport = real
        runner.close()
    paths = {}
    for name, transport in made.items():
        paths[name] = os.path.join(out_dir, f"{name}.json")
        transport.recording.save(paths[name])
    return paths


if __name__ == "__main__":  # python -m gfsdeploy.transport.recorded INVENTORY PLAYBOOK OUT_DIR
    import sys

    if len(sys.argv) != 4:
        sys.exit("usage: python -m gfsdeploy.transport.recorded INVENTORY PLAYBOOK OUT_DIR")
    for host_name, where in record(*sys.argv[1:]).items():
        print(f"{host_name}: {where}")
