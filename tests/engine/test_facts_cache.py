"""The facts cache writes a host's file only when its facts differ from what the file
holds (as last read or written): same text, no write; other text or another host,
a write."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

from gfsdeploy.hostfacts import HostFactsCache


def _host(name, address="10.0.0.1", port=22):
    return SimpleNamespace(name=name, address=address, port=port)


def _writes(monkeypatch):
    done = []
    real = os.replace

    def counting(src, dst):
        done.append(dst)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", counting)
    return done


def test_the_same_facts_are_not_written_again(tmp_path, monkeypatch):
    cache, a = HostFactsCache(str(tmp_path)), _host("a")
    writes = _writes(monkeypatch)
    cache.put(a, "os=debian\n")
    cache.put(a, "os=debian\n")
    assert len(writes) == 1
    cache.put(a, "os=rocky\n")  # other facts: written
    assert len(writes) == 2
    assert json.loads(open(writes[-1]).read())["facts"] == "os=rocky\n"
    assert cache.get(a) == "os=rocky\n"


def test_what_a_run_read_is_not_written_back_but_new_facts_are(tmp_path, monkeypatch):
    HostFactsCache(str(tmp_path)).put(_host("a"), "os=debian\n")
    cache = HostFactsCache(str(tmp_path))  # the next run
    writes = _writes(monkeypatch)
    assert cache.get(_host("a")) == "os=debian\n"
    cache.put(_host("a"), "os=debian\n")
    assert writes == []
    cache.put(_host("a"), "os=debian\nuptime=2\n")
    assert len(writes) == 1 and HostFactsCache(str(tmp_path)).get(_host("a")) == "os=debian\nuptime=2\n"


def test_each_host_has_its_own_file(tmp_path, monkeypatch):
    cache = HostFactsCache(str(tmp_path))
    writes = _writes(monkeypatch)
    cache.put(_host("a"), "same\n")
    cache.put(_host("b"), "same\n")
    cache.put(_host("a", address="10.0.0.2"), "same\n")  # the same name at another address
    assert len(set(writes)) == 3
    assert cache.get(_host("b")) == "same\n"


def test_a_file_removed_behind_its_back_is_only_a_cache_miss(tmp_path):
    cache, a = HostFactsCache(str(tmp_path)), _host("a")
    cache.put(a, "x\n")
    for name in os.listdir(tmp_path):
        os.remove(tmp_path / name)
    assert cache.get(a) is None
    cache.put(a, "x\n")
    assert cache.get(a) == "x\n"
