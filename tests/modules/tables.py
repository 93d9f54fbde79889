"""pyinfra-style test tables: every ``*.json`` under a directory holds a list of
cases (args + probe results → expected changes); each becomes one pytest param."""

from __future__ import annotations

import json

import pytest


def load(directory):
    for path in sorted(directory.glob("*.json")):
        for case in json.loads(path.read_text()):
            yield pytest.param(case, id=f"{path.stem}: {case['name']}")
