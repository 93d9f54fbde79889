"""Start-up: a command imports what it needs, when it needs it (the time itself is
measured by bench/startup.py, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HEAVY = ("jinja2", "yaml", "paramiko", "networkx", "cryptography", "gfsdeploy_glusterfs", "importlib.metadata",
         "subprocess")


def loaded_after(code: str) -> set:
    """The modules a fresh interpreter has loaded after running CODE."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                          check=True)
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def baseline() -> set:
    return loaded_after("pass")


@pytest.mark.parametrize("code", [
    "import gfsdeploy",
    "import gfsdeploy.cli",
    "from gfsdeploy.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass",
])
def test_the_cli_and_version_import_nothing_heavy(code):
    extra = loaded_after(code) - baseline()
    assert not {m for m in extra if m.split(".")[0] in HEAVY or m in HEAVY}, sorted(extra)


def test_the_engine_imports_no_transport_library_graph_library_or_content():
    extra = loaded_after("import gfsdeploy.runner, gfsdeploy.session, gfsdeploy.output") - baseline()
    unwanted = {m for m in extra if m.split(".")[0] in ("paramiko", "networkx", "cryptography", "gfsdeploy_glusterfs")
                or m in ("subprocess", "uuid", "getpass", "importlib.metadata")}
    assert not unwanted, sorted(unwanted)


def test_a_module_lookup_imports_only_the_file_that_defines_it():
    extra = loaded_after("from gfsdeploy import modules\n"
                         "assert [modules.get(n).name for n in ('copy', 'template', 'iptables')] == "
                         "['copy', 'template', 'iptables']")
    assert "gfsdeploy.modules.files" in extra and "gfsdeploy.modules.iptables" in extra
    assert not {"gfsdeploy.modules.transfer", "gfsdeploy.modules.package", "gfsdeploy.modules.system"} & extra
    assert not {m for m in extra if m.startswith("gfsdeploy_glusterfs.modules.")}


def test_every_module_name_is_found_lazily_and_is_the_same_class_as_a_full_scan():
    code = ("from gfsdeploy import modules\n"
            "names = modules.names()\n"  # the full scan
            "full = {n: type(modules.get(n)) for n in names}\n"
            "import json\n"
            "print(json.dumps({n: [c.__module__, c.__qualname__] for n, c in full.items()}))")
    env = dict(os.environ, PYTHONPATH=ROOT)
    full = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                     check=True).stdout.strip().splitlines()[-1])
    assert {"copy", "template", "iptables", "kubernetes", "k8s", "systemd_service"} <= set(full)
    lazy_code = ("from gfsdeploy import modules\nimport json\n"
                 f"names = {sorted(full)!r}\n"
                 "out = {}\n"
                 "for n in names:\n"
                 "    c = type(modules.get(n))\n"
                 "    out[n] = [c.__module__, c.__qualname__]\n"
                 "print(json.dumps([out, modules._loaded]))")
    lazy, scanned = json.loads(subprocess.run([sys.executable, "-c", lazy_code], capture_output=True, text=True,
                                              env=env, check=True).stdout.strip().splitlines()[-1])
    assert lazy == full
    assert scanned is False  # every name was found from the files' text, without the full scan


def test_a_name_no_file_declares_still_falls_back_to_the_full_scan(tmp_path):
    from gfsdeploy import modules

    assert modules._lookup("no_such_module_anywhere") is None
    assert modules._loaded
