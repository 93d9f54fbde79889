"""The engine knows no GlusterFS, heketi or Kubernetes word: it never imports the
content package, no name or string its code uses mentions them, nor does any
comment or docstring. The content reaches the engine only through the
``gfsdeploy.content`` entry point."""

from __future__ import annotations

import ast
import pathlib
import re

ENGINE = pathlib.Path(__file__).resolve().parents[2] / "gfsdeploy"
WORDS = re.compile(r"gluster|heketi|kubectl|kubernetes|storageclass", re.I)


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            ids.add(id(body[0].value))
    return ids


def offending(source: str) -> list[str]:
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value
        elif isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            text = node.name
        elif isinstance(node, ast.alias):
            text = node.name
        elif isinstance(node, ast.ImportFrom):
            text = node.module or ""
        else:
            continue
        if WORDS.search(text):
            found.append(f"line {getattr(node, 'lineno', '?')}: {text[:60]!r}")
    return found


def test_the_checker_finds_a_content_word():
    assert offending("from gfsdeploy_glusterfs import x\n")
    assert offending("def f():\n    '''heketi in a docstring is fine'''\n    return 'kubectl get'\n")
    assert not offending("def f():\n    '''heketi in a docstring is fine'''\n    return 1\n")


def test_engine_files_mention_no_content_word():
    """A reading of the tree: not even a comment or docstring of the engine names them."""
    words = re.compile(r"gluster|heketi|kube|storageclass", re.I)
    bad = [f"{path.relative_to(ENGINE.parent)}:{n}: {line.strip()[:80]}"
           for path in sorted(ENGINE.rglob("*")) if path.suffix in (".py", ".j2", ".yaml", ".md", ".txt")
           for n, line in enumerate(path.read_text().splitlines(), 1) if words.search(line)]
    assert not bad, bad


def test_engine_code_names_no_content_word():
    bad = {}
    for path in sorted(ENGINE.rglob("*.py")):
        hits = offending(path.read_text())
        if hits:
            bad[str(path.relative_to(ENGINE.parent))] = hits
    assert not bad, bad
