"""The recorded-facts transport: a plan made against a real host, recorded, then
replayed in process gives the same plan with the same round trips; what was not
recorded is an error naming the probe; hand-written ``match`` entries answer any
probe containing a fact's command."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gfsdeploy.errors import TransportError
from gfsdeploy.transport.base import Result
from gfsdeploy.transport.local import LocalTransport
from gfsdeploy.transport.recorded import Recording, RecordedTransport, RecordingTransport, record


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=300)


def test_replay_answers_exact_then_match_and_refuses_the_rest():
    rec = Recording()
    rec.add("cat /etc/os-release", Result(0, "ID=rocky\n"))
    rec.reads.append(__import__("gfsdeploy.transport.recorded", fromlist=["Entry"]).Entry(
        Result(0, "Enforcing\n"), match=r"^getenforce$"))
    rec._index()
    t = RecordedTransport("h", rec)
    out = t.read_many({"a": "cat /etc/os-release", "b": "if x; then\ngetenforce\nfi"})
    assert out["a"].stdout == "ID=rocky\n" and out["b"].stdout == "Enforcing\n"
    assert t.round_trips == 1 and t.command_log[0].kind == "read"
    with pytest.raises(TransportError, match="no recorded answer for this read: uname -r"):
        t.read_many({"c": "uname -r"})
    # changes are logged, never run; answered 0 unless recorded
    assert t.run("rm -rf /", kind="run").rc == 0 and t.command_log[-1].script == "rm -rf /"


def test_file_round_trip_and_bad_files(tmp_path):
    rec = Recording()
    rec.add("true", Result(0, "x", "y"))
    rec.add("mkdir /a", Result(1, "", "exists"), kind="run")
    path = tmp_path / "h.json"
    rec.save(str(path))
    again = Recording.load(str(path))
    assert again.answer("true") == Result(0, "x", "y") and again.answer_run("mkdir /a").rc == 1
    path.write_text(json.dumps({"format": 1, "reads": [{"rc": 0}]}))
    with pytest.raises(TransportError, match=r"reads\[0\]: each entry needs exactly one of"):
        Recording.load(str(path))
    path.write_text("{")
    with pytest.raises(TransportError, match="not valid JSON"):
        Recording.load(str(path))


def test_recording_wraps_a_real_transport():
    inner = LocalTransport("h")
    t = RecordingTransport(inner)
    t.become = False
    assert inner.become is False
    res = t.read_many({"k": "echo hi"})
    assert res["k"].stdout == "hi\n" and t.recording.answer("echo hi").stdout == "hi\n"
    assert t.round_trips == inner.round_trips == 1


def test_record_then_plan_from_recordings_is_the_same_plan(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("10.0.0.1 mine\n")
    real = tmp_path / "real.yaml"
    real.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: local, root: "{tmp_path}"}}
          hosts: {{node1: {{}}, node2: {{}}}}
        """))
    pb = tmp_path / "pb.yaml"
    pb.write_text(textwrap.dedent("""\
        - hosts: all
          tasks:
            - name: a file
              copy: {dest: "{{ root }}/etc/motd-{{ inventory_hostname }}", content: "hi\\n"}
            - name: a line
              lineinfile: {path: "{{ root }}/etc/hosts", line: "127.0.0.1 {{ inventory_hostname }}"}
            - name: a family-dependent package
              package: {name: "{{ 'lvm2' if ansible_os_family == 'Debian' else 'nonexistent-xyz' }}"}
        """))
    paths = record(str(real), str(pb), str(tmp_path / "rec"))
    assert set(paths) == {"node1", "node2"}
    replay = tmp_path / "replay.yaml"
    replay.write_text(textwrap.dedent(f"""\
        all:
          vars: {{ansible_connection: recorded, root: "{tmp_path}"}}
          hosts:
            node1: {{gfsdeploy_recording: "{paths['node1']}"}}
            node2: {{gfsdeploy_recording: "{paths['node2']}"}}
        """))
    live = gfs("plan", str(real), "-p", str(pb), "--json")
    replayed = gfs("plan", str(replay), "-p", str(pb), "--json")
    assert replayed.returncode == live.returncode == 2, replayed.stdout + replayed.stderr
    a, b = json.loads(live.stdout), json.loads(replayed.stdout)
    assert a["summary"] == b["summary"] and a["summary"]["add"] >= 2
    for host in ("node1", "node2"):
        assert [s["changes"] for s in a["hosts"][host]["steps"]] == [s["changes"] for s in b["hosts"][host]["steps"]]
        assert b["hosts"][host]["round_trips"] == a["hosts"][host]["round_trips"] == 1
    # a probe that was not recorded (another playbook) is a located error, not a guess
    pb.write_text(pb.read_text().replace("motd-", "issue-"))
    other = gfs("plan", str(replay), "-p", str(pb))
    assert other.returncode == 1 and "no recorded answer for this read" in other.stdout + other.stderr
