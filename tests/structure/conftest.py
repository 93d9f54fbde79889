"""Local differential runs: the same playbook under ``ansible-playbook`` and
``gfsdeploy apply``, both against the controller itself (``ansible_connection:
local``), each writing into its own directory; the two trees are then compared
file by file. Cheap (no lab) for what does not need a remote host: structure,
variables, loops, keywords. Lab-based comparisons live in tests/ansible_compat/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def ansible_playbook() -> str | None:
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


def tree(root: Path) -> dict:
    out = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = path.read_text()
    return out


class Site:
    """A directory with a playbook (and roles …) run by both tools."""

    def __init__(self, base: Path):
        self.base = base
        self.files: dict[str, str] = {}

    def write(self, rel: str, text: str) -> Path:
        path = self.base / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def copy_tree(self, src: Path) -> None:
        shutil.copytree(src, self.base / "src", dirs_exist_ok=True)

    def inventory(self, tool: str, hosts: dict, group_vars: dict | None = None, groups: dict | None = None) -> Path:
        import yaml

        out = self.base / tool / "out"
        data = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                 "out": str(out), "gfsdeploy_lock_dir": str(self.base / tool / "lock"),
                                 **(group_vars or {})},
                        "hosts": hosts}}
        if groups:
            data["all"]["children"] = {name: {"hosts": {h: None for h in g.get("hosts", [])},
                                              "vars": g.get("vars", {})} for name, g in groups.items()}
        path = self.base / tool / "inventory.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data))
        return path

    def run(self, tool: str, playbook: str, hosts: dict, *, group_vars: dict | None = None, groups: dict | None = None,
            extra: list = (), env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        inv = self.inventory(tool, hosts, group_vars, groups)
        (self.base / tool / "out").mkdir(parents=True, exist_ok=True)
        pb = self.base / "src" / playbook
        environ = {**os.environ, **(env or {}), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "False",
                   "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
                   "ANSIBLE_GATHERING": "smart",
                   "PYTHONPATH": str(ROOT)}
        if tool == "ansible":
            cmd = [ansible_playbook(), "-i", str(inv), str(pb), *extra]
        else:
            cmd = [sys.executable, "-m", "gfsdeploy", "apply", str(inv), "-p", str(pb), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(self.base / "src"),
                              env=environ)
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}")
        return proc

    def both(self, playbook: str, hosts: dict, **kwargs) -> tuple[dict, dict]:
        """Run under both tools; return the two output trees."""
        self.run("ansible", playbook, hosts, **kwargs)
        self.run("gfsdeploy", playbook, hosts, **kwargs)
        return tree(self.base / "ansible" / "out"), tree(self.base / "gfsdeploy" / "out")


@pytest.fixture
def site(tmp_path):
    if not ansible_playbook():
        pytest.fail("ansible-playbook is missing: install ansible-core (the `test` extra)")
    return Site(tmp_path)


def assert_same(ansible: dict, gfs: dict) -> None:


    if ansible != gfs:
        lines = []
        for key in sorted(set(ansible) | set(gfs)):
            a, g = ansible.get(key), gfs.get(key)
            if a != g:
                lines.append(f"{key}: ansible={a!r} gfsdeploy={g!r}")
        raise AssertionError("ansible-playbook and gfsdeploy differ:\n  " + "\n  ".join(lines))
    assert ansible, "nothing was written: the test cannot tell the tools apart"

