"""Probes of several steps sharing one command in a batched read (batch.JointProbe,
batch.read_joined), run for real through the local transport: the same answers as
each probe alone, one round trip, and a failing part does not change the others."""

from __future__ import annotations

from gfsdeploy import batch
from gfsdeploy.modules.base import q
from gfsdeploy.transport.base import Result
from gfsdeploy.transport.local import LocalTransport


class Cat(batch.JointProbe):
    """``cat FILE`` of one step; several are one ``cat`` printing each file on one line."""

    def __new__(cls, path: str):
        self = super().__new__(cls, f"cat {q(path)}")
        self.path, self.joint_key = path, "cat"
        return self

    @classmethod
    def join(cls, probes):
        return "cat " + " ".join(q(p.path) for p in probes)

    @classmethod
    def part(cls, probes, whole):
        lines = whole.stdout.split("\n")
        return [Result(0, line + "\n", "") for line in lines[:len(probes)]]


def test_joined_probes_answer_as_alone_in_one_round_trip(tmp_path):
    for name in "abc":
        (tmp_path / name).write_text(f"{name}-content\n")
    t = LocalTransport("h")
    probes = {"a": Cat(str(tmp_path / "a")), "b": Cat(str(tmp_path / "b")), "plain": "echo plain",
              "c": Cat(str(tmp_path / "c"))}
    alone = {k: t.read_many({k: v}) [k] for k, v in probes.items()}
    before = t.round_trips
    got = batch.read_joined(t, probes)
    assert t.round_trips == before + 1
    assert {k: (r.rc, r.stdout) for k, r in got.items()} == {k: (r.rc, r.stdout) for k, r in alone.items()}
    assert got["b"].stdout == "b-content\n"


def test_a_failing_part_runs_each_alone_and_only_it_fails(tmp_path):
    (tmp_path / "a").write_text("a-content\n")
    t = LocalTransport("h")
    got = batch.read_joined(t, {"a": Cat(str(tmp_path / "a")), "missing": Cat(str(tmp_path / "nope"))})
    assert (got["a"].rc, got["a"].stdout) == (0, "a-content\n")
    assert got["missing"].rc != 0 and "nope" in got["missing"].stderr


def test_a_probe_alone_or_changed_by_the_runner_runs_as_written(tmp_path):
    (tmp_path / "a").write_text("x\n")
    probe = Cat(str(tmp_path / "a"))
    t = LocalTransport("h")
    sent = []
    real = t.read_many

    def spy(probes, **kw):
        sent.append(dict(probes))
        return real(probes, **kw)

    t.read_many = spy
    got = batch.read_joined(t, {"a": probe, "env": "export X=1\n" + probe})
    assert sent == [{"a": probe, "env": "export X=1\n" + probe}]  # nothing to join with
    assert got["a"].stdout == got["env"].stdout == "x\n"


def test_the_class_sees_only_the_joined_answer_the_fallback_is_the_protocols(tmp_path):
    """``join``/``part`` say how to share one command; running each probe alone when it
    fails is JointProbe's (a subclass never sees the framing, nor the failed command)."""
    seen = []

    class Spy(Cat):
        @classmethod
        def part(cls, probes, whole):
            seen.append(whole)
            return super().part(probes, whole)

    (tmp_path / "a").write_text("a-content\n")
    (tmp_path / "b").write_text("b-content\n")
    t = LocalTransport("h")
    got = batch.read_joined(t, {"a": Spy(str(tmp_path / "a")), "b": Spy(str(tmp_path / "b"))})
    assert [(w.rc, w.stdout) for w in seen] == [(0, "a-content\nb-content\n")]
    assert got["b"].stdout == "b-content\n"
    seen.clear()
    got = batch.read_joined(t, {"a": Spy(str(tmp_path / "a")), "x": Spy(str(tmp_path / "nope"))})
    assert seen == [] and got["a"].stdout == "a-content\n" and got["x"].rc != 0
    # a script that did not run as written (no framing): each probe reports that result
    broken = Result(1, "", "sh: cannot run")
    assert Spy.answers([Spy("a"), Spy("b")], broken) == [broken, broken]
