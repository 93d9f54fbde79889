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
        return batch.fallback_script("cat " + " ".join(q(p.path) for p in probes), probes)

    @classmethod
    def part(cls, probes, result):
        whole, each = batch.fallback_parts(result, len(probes))
        if each is not None:
            return each
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
