"""The bad-input corpus (cases.yaml): every malformed inventory, playbook,
saved plan or extra var makes the real CLI exit 1 with the file, line, field
and fix — never a traceback."""

from __future__ import annotations

import concurrent.futures as cf
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = os.path.join(HERE, "files")
ROOT = os.path.dirname(os.path.dirname(HERE))
CASES = yaml.safe_load(open(os.path.join(HERE, "cases.yaml"), encoding="utf-8"))


def argv_of(case: dict) -> list[str]:
    """The case's arguments, with `%name` replaced by the corpus file's path."""
    return [re.sub(r"%([\w.-]+)", lambda m: os.path.join(FILES, m.group(1)), token)
            for token in shlex.split(case["args"])]


def run_cli(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=FILES, env=env, timeout=300)


@pytest.fixture(scope="module")
def results():
    """Run the whole corpus once, a few CLIs at a time (each is ~1 s of imports)."""
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case["id"]: pool.submit(run_cli, argv_of(case)) for case in CASES}
        return {key: f.result() for key, f in futures.items()}


def test_corpus_is_big_enough():
    assert len(CASES) >= 106
    assert len({c["id"] for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case, results):
    proc = results[case["id"]]
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"exit {proc.returncode}\n{out}"
    assert "Traceback" not in out, out
    assert "internal error" not in out, out
    for text in case["expect"]:
        assert text in out, f"{text!r} missing from the output:\n{out}"
    assert "fix: " in out, out
    assert "Error: " in proc.stderr or "Error: " in proc.stdout
