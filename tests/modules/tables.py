"""The one table-test harness for every module (pyinfra-style): a row is
``args + state → changes`` (or an error), checked by :func:`check` with no SSH.

A row (a JSON object in ``tests/modules/data/<family>/*.json``, or a dict in a test):

- ``name``: what the row shows; ``module``: its registry name (``copy``, ``apt`` …);
- ``args``: the task's arguments (validated by the module, then ``prepare``d);
- ``host`` (optional): HostInfo fields (``name``, ``os_family``, ``os_id``, ``os_version``, ``vars``);
- the state, one of: ``state`` — what the module's ``read()`` returns, as JSON (file
  modules: a FileState, ``content`` text or ``content_b64``; ``file``: ``{"file": …}``),
  or ``facts`` — raw probe results ``{probe: {"rc": 0, "stdout": "…", "stderr": ""}}``
  passed through ``read()``, so the parser is covered too;
- ``rendered`` (template rows): what rendering ``src`` gives;
- then either ``error``: a substring of the error raised by validate/prepare/plan
  (``fix``: a substring of its fix), or ``changes``: the exact list of ``action`` +
  ``resource``, each optionally with ``diff`` (exact), ``diff_contains``, ``script`` (exact),
  ``script_contains``, ``after`` (the exact bytes a file write puts in the file),
  ``sensitive``;
- ``probes`` (optional): probe name → a substring of that probe's command;
  ``result`` (optional): keys of the value registered when nothing changes (read-only
  modules: what ``report()`` registers from the state).
"""

from __future__ import annotations

import base64
import json
import pathlib
import re

import pytest

from gfsdeploy import modules
from gfsdeploy.errors import GfsError
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.base import Result

DATA = pathlib.Path(__file__).parent / "data"
_ROW_KEYS = {"name", "module", "args", "host", "state", "facts", "rendered", "error", "fix", "changes",
             "probes", "result", "files", "why"}
_CHANGE_KEYS = {"action", "resource", "diff", "diff_contains", "script", "script_contains", "after", "sensitive"}


def load(directory):
    """Every row of every ``*.json`` under ``directory``, as pytest params."""
    directory = pathlib.Path(directory)
    for path in sorted(directory.rglob("*.json")):
        rows = json.loads(path.read_text())
        for row in rows:
            yield pytest.param(row, id=f"{path.relative_to(directory).with_suffix('')}: {row['name']}")


def rows(*items):
    """Python rows as pytest params (ids from their names)."""
    return [pytest.param(row, id=row["name"]) for row in items]


def written(script: str) -> bytes | None:
    """The bytes a file-write script puts in the file (its base64 heredoc)."""
    m = re.search(r"<<'GFSDEPLOY_EOF'\n(.*?)GFSDEPLOY_EOF", script, re.S)
    return base64.b64decode(m.group(1)) if m else None


def host_of(row) -> HostInfo:
    return HostInfo(**{"name": "h1", **(row.get("host") or {})})


def context(row, host: HostInfo) -> TaskContext:
    files = pathlib.Path(row.get("files") or DATA / "files")
    return TaskContext(host, None, task_name=row["name"], render_file=lambda p: row["rendered"],
                       find_file=lambda p: str(files / p))


def state_of(module, args: dict, row, ctx: TaskContext):
    """The state ``plan`` gets: ``facts`` through ``read()``, or ``state`` as JSON."""
    if "facts" in row:
        facts = {k: Result(v.get("rc", 0), v.get("stdout", ""), v.get("stderr", "")) for k, v in row["facts"].items()}
        return module.read(args, facts, ctx)
    state = row.get("state")
    from gfsdeploy.modules.files import FileState, _FileModule

    if isinstance(module, _FileModule):
        if state is None:
            state = {"path": args.get("path") or args.get("dest")}
        if "file" in state:
            return {**state, "file": FileState.from_dict(state["file"])}
        return FileState.from_dict(state)
    return state


def run(row):
    """validate → prepare → (read) → plan; returns (module, args, state, changes)."""
    unknown = set(row) - _ROW_KEYS
    assert not unknown, f"row {row.get('name')!r}: unknown keys {sorted(unknown)}"
    module = modules.get(row["module"])
    assert module is not None, f"row {row['name']!r}: no module {row['module']!r}"
    host = host_of(row)
    ctx = context(row, host)
    args = module.prepare(module.validate(dict(row.get("args") or {})), ctx)
    state = state_of(module, args, row, ctx)
    return module, args, state, module.plan(args, state, host)


def check(row) -> None:
    """Assert one row."""
    if "error" in row:
        with pytest.raises(GfsError) as err:
            run(row)
        assert row["error"] in str(err.value), f"{row['error']!r} not in {str(err.value)!r}"
        if "fix" in row:
            assert row["fix"] in (err.value.fix or ""), f"{row['fix']!r} not in fix {err.value.fix!r}"
        return
    module, args, state, changes = run(row)
    for key, piece in (row.get("probes") or {}).items():
        assert piece in module.probes(args, host_of(row))[key]
    got = [(c.action, c.resource) for c in changes]
    want = [(e["action"], e["resource"]) for e in row["changes"]]
    assert got == want, f"changes: got {got}, want {want}"
    for change, expected in zip(changes, row["changes"]):
        unknown = set(expected) - _CHANGE_KEYS
        assert not unknown, f"row {row['name']!r}: unknown change keys {sorted(unknown)}"
        for key in ("diff", "script"):
            if key in expected:
                assert getattr(change, key) == expected[key], f"{key}: {getattr(change, key)!r}"
        for piece in expected.get("diff_contains", []):
            assert piece in change.diff, f"{piece!r} not in diff {change.diff!r}"
        for piece in expected.get("script_contains", []):
            assert piece in change.script, f"{piece!r} not in script"
        if "after" in expected:
            assert written(change.script) == expected["after"].encode()
        if "sensitive" in expected:
            assert change.sensitive == expected["sensitive"]
    if "result" in row:
        assert not [c for c in changes if c.action != "!"], "result rows must be no-ops"
        host = host_of(row)
        result = module.report(args, state, context(row, host)) if module.read_only else \
            module.unchanged(args, state)
        registered = result.as_register()
        for key, value in row["result"].items():
            assert registered.get(key) == value, f"result {key}: {registered.get(key)!r} != {value!r}"


def dump(rows_, path) -> None:
    """Write rows as a JSON table (for converting Python rows)."""
    pathlib.Path(path).write_text(json.dumps(list(rows_), indent=1) + "\n")
