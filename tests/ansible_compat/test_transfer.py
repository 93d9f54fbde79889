"""Differential: get_url and uri against the lab's own HTTP servers (its apt repository and
the simulated API server, both inside the lab's namespace), unarchive, fetch."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.ansible_compat.harness import Spec

pytestmark = pytest.mark.lab

#: per-run values: times, temp paths, server dates
VOLATILE = ("elapsed", "date", "last_modified", "src")


def test_get_url(compat):
    import hashlib
    from pathlib import Path

    from gfsdeploy_glusterfs.lab import aptrepo

    repo = compat.lab.repo_url
    digest = hashlib.sha256((Path(aptrepo.CACHE_DIR) / "Packages.gz").read_bytes()).hexdigest()
    (compat.workdir / "packages.sha256").write_text(digest)
    pair = compat.run_both(f"""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a text file
              get_url: {{url: "{repo}/Release", dest: /srv/compat/Release, mode: "0640"}}
              register: g1
            - name: a binary file with its checksum
              get_url:
                url: "{repo}/Packages.gz"
                dest: /srv/compat/Packages.gz
                checksum: "sha256:{{{{ lookup('file', 'packages.sha256') }}}}"
              register: g2
            - name: a missing file fails
              get_url: {{url: "{repo}/no-such-file", dest: /srv/compat/nope}}
              register: g3
              ignore_errors: true
        """, state=Spec(trees=["/srv/compat"]), reset="rm -rf /srv/compat && mkdir -p /srv/compat",
        registered=["g1", "g2", "g3"], ignore=VOLATILE)
    pair.assert_same()


def test_uri(compat):
    repo, api = compat.lab.repo_url, compat.lab.api_url
    pair = compat.run_both(f"""
        - hosts: all
          gather_facts: false
          tasks:
            - name: JSON from the API server
              uri: {{url: "{api}/version", return_content: true}}
              register: u1
            - name: a 404 that is expected
              uri: {{url: "{repo}/no-such-file", status_code: [404]}}
              register: u2
            - name: a 404 that is not
              uri: {{url: "{repo}/no-such-file"}}
              register: u3
              ignore_errors: true
            - name: creates skips
              uri: {{url: "{repo}/Release", creates: /etc/hostname}}
              register: u4
        """, registered=["u1", "u2", "u3", "u4"], ignore=VOLATILE, twice=False)
    pair.assert_same()


def test_unarchive_and_fetch(compat):
    files = compat.workdir / "files"
    files.mkdir(exist_ok=True)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, text in (("app/a.conf", "a = 1\n"), ("app/sub/b.txt", "bee\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text), 0o640
            tar.addfile(info, io.BytesIO(text.encode()))
    (files / "app.tar.gz").write_bytes(data.getvalue())
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: a controller archive
              unarchive: {src: app.tar.gz, dest: /srv/compat/u}
              register: x1
            - name: a host archive
              unarchive: {src: /srv/compat/remote.tar, dest: /srv/compat/r, remote_src: true}
              register: x2
            - name: fetch a file back
              fetch: {src: /srv/compat/u/app/a.conf, dest: "{{ fetch_root }}/"}
              register: f1
            - name: fetch flat
              fetch: {src: /srv/compat/u/app/sub/b.txt, dest: "{{ fetch_root }}/flat/{{ inventory_hostname }}.txt", flat: true}
              register: f2
        """, state=Spec(trees=["/srv/compat/u", "/srv/compat/r"]),
        reset="rm -rf /srv/compat && mkdir -p /srv/compat/u /srv/compat/r/keep && "
              "cd /srv/compat && mkdir -p t/x && echo x > t/x/y && tar -cf remote.tar -C t x",
        side_vars={side: {"fetch_root": str(compat.workdir / f"fetched-{side}")} for side in compat.sides},
        registered=["x1", "x2", "f1", "f2"],
        # unarchive's extra keys: the temp path it extracted from, the dest's attributes
        ignore=VOLATILE + ("dest", "extract_results", "handler", "files", "gid", "group", "mode", "owner", "size",
                           "state", "uid"))
    problems = [p for p in pair.differences() if "dest" not in p]
    assert not problems, "\n".join(problems)
    for side in compat.sides:
        root = compat.workdir / f"fetched-{side}"
        assert (root / "node1/srv/compat/u/app/a.conf").read_text() == "a = 1\n"
        assert sorted(p.name for p in (root / "flat").iterdir()) == ["node1.txt", "node2.txt"]
