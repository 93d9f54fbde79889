"""The product as users install it: a wheel built from this tree, installed in a
fresh virtual environment, run from a temporary directory (not the repository)
against the lab — plan, apply, plan again — and `gfsdeploy init`.

The venv sees the machine's site-packages only for the third-party
dependencies (no download needed); gfsdeploy itself must come from the wheel,
which the test checks."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    build = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(build), ROOT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    wheel = next(build.glob("gfsdeploy-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("gfsdeploy_glusterfs/share/playbooks/site.yaml",
                    "gfsdeploy_glusterfs/share/templates/glusterfs-daemonset.json.j2",
                    "gfsdeploy_glusterfs/share/inventory/example.yaml"):
        assert shipped in names, shipped
    assert not any(n.endswith("inventory/lab.yaml") for n in names)
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    # without PYTHONPATH: a checkout on it (and its egg-info) would make pip skip the wheel
    # as "already installed"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)],
                          capture_output=True, text=True, timeout=600, env=clean)
    assert done.returncode == 0, done.stderr
    return venv


def run(venv, *args, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(venv / "bin" / "gfsdeploy"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_wheel_is_what_runs(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import gfsdeploy, gfsdeploy_glusterfs.share as s; print(gfsdeploy.__file__); "
                            "print(s.share_dir())"], capture_output=True, text=True, cwd=tmp_path, env=env)
    module, share = where.stdout.split()
    assert module.startswith(str(installed)), module
    assert share.startswith(str(installed)) and share.endswith("share"), share


def test_init_copies_the_shipped_content(installed, tmp_path):
    done = run(installed, "init", str(tmp_path / "mine"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mine" / "playbooks" / "site.yaml").is_file()
    assert (tmp_path / "mine" / "templates" / "heketi-deployment.json.j2").is_file()
    (tmp_path / "mine" / "playbooks" / "site.yaml").write_text("# mine\n")
    again = run(installed, "init", str(tmp_path / "mine"), cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / "mine" / "playbooks" / "site.yaml").read_text() == "# mine\n"  # never overwritten


def test_installed_gfsdeploy_deploys_the_lab_end_to_end(installed, fresh_lab, tmp_path):
    inventory = str(fresh_lab.inventory_path)
    plan = run(installed, "plan", inventory, cwd=tmp_path)
    assert plan.returncode == 2, plan.stdout[-3000:] + plan.stderr[-3000:]
    assert "+ kubernetes StorageClass glusterfs" in plan.stdout
    applied = run(installed, "apply", inventory, cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout[-5000:] + applied.stderr[-3000:]
    sc = fresh_lab.exec("k8s-1", ["kubectl", "get", "storageclass", "glusterfs", "-o", "name"], check=True).stdout
    assert sc.strip() == "storageclass.storage.k8s.io/glusterfs"
    again = run(installed, "plan", inventory, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
