"""What a read was made from (runner._ArgsKey, runner._args_key): a rendering's key is
equal to itself at once and to another rendering's only when their arguments are equal;
a long argument (a thousand hosts' /etc/hosts block) counts by its digest, made once."""

from __future__ import annotations

import threading

from gfsdeploy import runner as runner_mod
from gfsdeploy.runner import _ArgsKey, _args_key


def test_a_key_is_equal_to_another_rendering_of_equal_arguments_only():
    a = _ArgsKey({"path": "/etc/hosts", "block": "x\n", "mode": "0644"})
    same = _ArgsKey({"path": "/etc/hosts", "block": "x\n", "mode": "0644"})
    other = _ArgsKey({"path": "/etc/hosts", "block": "y\n", "mode": "0644"})
    assert a == a and a == same and not (a != same)
    assert a != other and not (a == other)
    # against a digest made the older way (the batch compares with _args_key's text)
    assert a == _args_key({"path": "/etc/hosts", "block": "x\n", "mode": "0644"})
    assert _args_key({"path": "/etc/hosts", "block": "y\n", "mode": "0644"}) != a
    assert (a == 3) is False


def test_a_key_digests_only_when_compared_with_another_rendering(monkeypatch):
    made = []
    real = runner_mod._args_key
    monkeypatch.setattr(runner_mod, "_args_key", lambda args: made.append(1) or real(args))
    a = _ArgsKey({"dest": "/etc/x", "content": "c"})
    assert a == a and not made  # the same rendering: no digest
    b = _ArgsKey({"dest": "/etc/x", "content": "c"})
    assert a == b and len(made) == 2
    assert a == b and len(made) == 2  # each digested once
    assert a.args is None and b.args is None  # (then only the digest is kept)


def test_keys_digested_by_many_workers_at_once_are_their_arguments():
    for _ in range(50):
        keys = [_ArgsKey({"i": i, "x": "y" * 100}) for i in range(20)]
        want = [_args_key({"i": i, "x": "y" * 100}) for i in range(20)]
        seen = []
        workers = [threading.Thread(target=lambda: seen.append([k.digest() for k in keys])) for _ in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert seen == [want] * 6


def test_a_long_argument_counts_by_its_digest_made_once(monkeypatch):
    block = "".join(f"10.0.{i // 250}.{i % 250} n{i:04d}\n" for i in range(1000))
    assert len(block) > runner_mod._LONG
    key = _args_key({"path": "/etc/hosts", "block": block})
    assert key == _args_key({"path": "/etc/hosts", "block": "".join(block)})  # equal text, another object
    changed = block[:-2] + "8\n"  # (n0999 -> n0998)
    assert _args_key({"path": "/etc/hosts", "block": changed}) != key
    assert _args_key({"path": "/etc/hosts", "block": block, "mode": "0644"}) != key
    # the text every host shares is digested once, not once per host
    runner_mod._long_digests.clear()
    hashed = []
    real = runner_mod.hashlib.sha256

    def counting(data=b""):
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(runner_mod.hashlib, "sha256", counting)
    for host in range(5):
        _args_key({"path": "/etc/hosts", "block": block, "host": host})
    assert sum(1 for n in hashed if n >= len(block)) == 1, hashed
    # a short argument is never replaced by a digest (its text is in the key as it is)
    assert runner_mod._long_digests and all(len(t) > runner_mod._LONG for t in runner_mod._long_digests)
