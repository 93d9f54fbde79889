"""Three ansible-core modules gfsdeploy has no native module for — hostname, cron, pip —
under ansible-playbook and under gfsdeploy (through the module protocol) on lab nodes:
the hosts' resulting state (read through nsenter, not through either tool), the task
statuses and the registered values must be the same, on the first run and the second
(idempotence); and ``gfsdeploy plan`` must report what ``--check --diff`` reports."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

import pytest

from tests.ansible_compat.conftest import compat  # noqa: F401 - the differential harness's lab fixture
from tests.ansible_compat.harness import Spec

pytestmark = pytest.mark.lab

WHEELS = "/srv/compat/wheels"


def tiny_wheel(name: str, version: str) -> bytes:
    """A pure-Python wheel built here (pip installs it with --no-index: no network)."""
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{name}-{version}.dist-info/METADATA":
                 f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{name}-{version}.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: gfsdeploy-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return buffer.getvalue()


PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: rename the host
      ansible.builtin.hostname: {name: "{{ inventory_hostname }}-{{ suffix }}"}
      register: renamed
    - name: nightly job in root's crontab
      ansible.builtin.cron:
        name: backup
        minute: "0"
        hour: "{{ hour }}"
        job: /usr/local/bin/backup >/dev/null 2>&1
      register: backup
    - name: a job in /etc/cron.d
      cron: {name: rotate, cron_file: gfsdeploy-compat, user: root, special_time: daily, job: /bin/true}
      register: rotate
    - name: a package in a virtualenv, from a local wheel
      ansible.builtin.pip:
        name: "compatpkg=={{ version }}"
        virtualenv: /srv/compat/venv
        virtualenv_command: /usr/bin/python3 -m venv
        extra_args: --no-index --find-links {{ wheels }}
      register: installed
"""

STATE = Spec(files=["/etc/hostname", "/etc/cron.d/gfsdeploy-compat",
                    "/srv/compat/venv/lib/python3*/site-packages/compatpkg/__init__.py"],
             commands={"hostname": "hostname",
                       # crontab's own header carries the time it was installed
                       "crontab": "stat -c '%a %U %G' /var/spool/cron/crontabs/root && crontab -l | sed '/^# (/d'",
                       "pip": "/srv/compat/venv/bin/python -m pip list --format=freeze 2>/dev/null "
                              "| grep -i compatpkg || true"})
RESET = ("hostname lab-node; echo lab-node > /etc/hostname; crontab -r 2>/dev/null; "
         "rm -rf /etc/cron.d/gfsdeploy-compat /srv/compat/venv; mkdir -p " + WHEELS +
         "; printf %s " + "{wheels}" + " | base64 -d | tar -x -C " + WHEELS)
#: keys whose values come from the run, not from the module's meaning: pip's `stdout`/`cmd`
#: carries pip's own output (timings, cache notes); hostname's diff-less `name` is compared
IGNORE = ("stdout", "stdout_lines", "stderr", "stderr_lines", "cmd")


def _reset_script() -> str:
    """Reset every node; the wheels (two versions of one tiny package) go to WHEELS."""
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for version in ("1.0", "2.0"):
            data = tiny_wheel("compatpkg", version)
            info = tarfile.TarInfo(f"compatpkg-{version}-py3-none-any.whl")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return RESET.replace("{wheels}", base64.b64encode(buffer.getvalue()).decode())


def test_hostname_cron_pip_same_as_ansible(compat):  # noqa: F811 - the fixture imported above
    variables = {"suffix": "renamed", "hour": "2", "version": "1.0", "wheels": WHEELS}
    pair = compat.run_both(PLAYBOOK, state=STATE, registered=["renamed", "backup", "rotate", "installed"],
                           vars=variables, reset=_reset_script(), ignore=IGNORE)
    pair.assert_same()
    # not vacuous: both sides really changed the hosts, and the second run changed nothing
    first, again = pair.gfsdeploy, pair.again.gfsdeploy
    assert set(first.changed()) == {(task, host) for task in ("rename the host", "nightly job in root's crontab",
                                                              "a job in /etc/cron.d",
                                                              "a package in a virtualenv, from a local wheel")
                                    for host in ("node1", "node2")}
    assert not again.changed()
    state = first.state["node1"]
    # Debian without systemd: the module's file strategy writes /etc/hostname only
    assert state["files"]["/etc/hostname"]["content"] == "node1-renamed\n"
    assert "compatpkg==1.0" in state["commands"]["pip"]["stdout"]
    assert "0 2 * * * /usr/local/bin/backup" in state["commands"]["crontab"]["stdout"]

    # plan reports what --check --diff reports (from the state the runs left), and changes nothing
    moved = {**variables, "suffix": "again", "hour": "3", "version": "2.0"}
    check = compat.plan_vs_check(PLAYBOOK, vars=moved)
    check.assert_same()
    would = check.would_change(check.gfsdeploy)
    assert would[("rename the host", "node1")] and would[("a package in a virtualenv, from a local wheel", "node1")]
    assert not would[("a job in /etc/cron.d", "node1")]
    assert compat.state("gfsdeploy", STATE) == first.state
