"""Every test directory with its own conftest.py is a package: two top-level
``conftest`` modules would shadow each other (``from conftest import make_lab`` in
one directory then found another directory's conftest, and failed in CI)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_conftest_directories_are_packages():
    missing = [str(c.parent.relative_to(TESTS)) for c in TESTS.rglob("conftest.py")
               if c.parent != TESTS and not (c.parent / "__init__.py").exists()]
    assert not missing, f"add an __init__.py to: {missing}"
