"""The batch script's framing run by a real shell: each member's stdout/stderr come
back exactly (empty streams are framed without an encoder), and a guard whose probe
now answers otherwise — in stdout or stderr, empty or not — stops the batch there."""

from __future__ import annotations

import subprocess

import pytest

from gfsdeploy import batch
from gfsdeploy.transport.base import Result


def _run(members, shell="sh"):
    token = "t0k"
    text = batch.script(members, token)
    done = subprocess.run([shell, "-c", text], capture_output=True, text=True, timeout=30)
    return text, batch.parse(Result(done.returncode, done.stdout, done.stderr), token, len(members))


def _member(i, script, guard=None):
    return batch.Member(task_id=f"t{i}", index=0, state=None, changes=[], script=script, guard=guard)


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_outputs_come_back_exactly(shell):
    members = [_member(0, "printf 'a\\nb'"), _member(1, "echo oops >&2"), _member(2, ":"),
               _member(3, "printf 'x'; printf 'y' >&2; exit 3"), _member(4, "echo never")]
    _, out = _run(members, shell)
    assert out[:4] == [Result(0, "a\nb", ""), Result(0, "", "oops\n"), Result(0, "", ""), Result(3, "x", "y")]
    assert out[4] is None  # the batch stops after a failing member


@pytest.mark.parametrize("seen, now, runs", [
    (Result(0, "absent\n", ""), "echo absent", True),
    (Result(0, "", ""), ":", True),
    (Result(0, "", ""), "echo new", False),            # was empty, is not
    (Result(0, "absent\n", ""), "echo absent; echo warn >&2", False),  # stderr appeared
    (Result(0, "absent\n", ""), "echo present", False),
    (Result(1, "", "gone\n"), "echo gone >&2; exit 1", True),
    (Result(0, "absent\n", ""), "echo absent; echo", False),          # one more trailing newline
    (Result(0, "absent\n", ""), "echo absent; exit 1", False),        # same answer, other status
    (Result(0, "it's $HOME `x` \\n\n", ""), "printf '%s\\n' \"it's \\$HOME \\`x\\` \\\\n\"", True),
    (Result(0, "it's $HOME `x` \\n\n", ""), "echo other", False),
    (Result(0, "a\0b\n", ""), "printf 'a\\000b\\n'", True),      # not shell text: compared encoded
    (Result(0, "a\0b\n", ""), "printf 'a\\000c\\n'", False),
])
@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_guard_stops_the_batch_when_the_host_moved(seen, now, runs, shell):
    members = [_member(0, "echo first"), _member(1, "echo second", guard={"p": (now, seen)})]
    text, out = _run(members, shell)
    assert out[0] == Result(0, "first\n", "")
    if runs:
        assert out[1] == Result(0, "second\n", "")
    else:
        assert out[1] is None and "t0k 1 stale" in subprocess.run(["sh", "-c", text], capture_output=True,
                                                                   text=True).stdout
