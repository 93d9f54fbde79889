"""Differential: apt_repository (a second line for the lab's own repository, apt-get update
for real) and yum_repository (a pure file module: it runs on the Debian nodes too)."""

from __future__ import annotations

import pytest

from tests.ansible_compat.harness import Spec

pytestmark = pytest.mark.lab


def test_apt_repository(compat):
    repo = compat.lab.repo_url
    state = Spec(files=["/etc/apt/sources.list", "/etc/apt/sources.list.d/*.list"])
    pair = compat.run_both(f"""
        - hosts: all
          gather_facts: false
          tasks:
            - name: the lab repository again, other options
              apt_repository: {{repo: "deb [trusted=yes arch=amd64] {repo} ./", update_cache: true}}
              register: a1
            - name: the same line, extra spaces
              apt_repository: {{repo: "deb  [trusted=yes arch=amd64]   {repo}  ./", update_cache: true}}
              register: a2
            - name: a named file, no cache update
              ansible.builtin.apt_repository:
                repo: "deb [trusted=yes] {repo} ./ compat"
                filename: compat
                update_cache: false
                mode: "0600"
              register: a3
        """, state=state, registered=["a1", "a2", "a3"],
        reset="rm -f /etc/apt/sources.list.d/*compat* /etc/apt/sources.list.d/*8000*")
    pair.assert_same()
    pair = compat.run_both(f"""
        - hosts: all
          gather_facts: false
          tasks:
            - name: absent everywhere
              apt_repository: {{repo: "deb [trusted=yes arch=amd64] {repo} ./", state: absent, update_cache: false}}
              register: a4
        """, state=state, registered=["a4"], twice=False)
    pair.assert_same()


def test_yum_repository(compat):
    state = Spec(trees=["/etc/yum.repos.d"])
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: epel-like
              yum_repository:
                name: compat-epel
                description: Compat EPEL
                baseurl: ["https://example.invalid/epel/$releasever/", "https://mirror.invalid/epel/"]
                gpgcheck: true
                gpgkey: https://example.invalid/RPM-GPG-KEY
                enabled: false
                exclude: [kernel*, foo]
              register: y1
            - name: a second section in the same file
              yum_repository: {name: compat-extra, description: Extra, file: compat-epel,
                               mirrorlist: "https://example.invalid/mirrors", priority: "10"}
              register: y2
            - name: the first, changed
              yum_repository:
                name: compat-epel
                description: Compat EPEL
                baseurl: ["https://example.invalid/epel/$releasever/"]
                gpgcheck: false
              register: y3
        """, state=state, registered=["y1", "y2", "y3"], reset="rm -rf /etc/yum.repos.d; mkdir -p /etc/yum.repos.d")
    pair.assert_same()
    pair = compat.run_both("""
        - hosts: all
          gather_facts: false
          tasks:
            - name: one section goes
              yum_repository: {name: compat-epel, file: compat-epel, state: absent}
            - name: the last section goes, and the file with it
              yum_repository: {name: compat-extra, file: compat-epel, state: absent}
              register: y4
        """, state=state, registered=["y4"], twice=False)
    pair.assert_same()
