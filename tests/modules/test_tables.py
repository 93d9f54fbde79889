"""Every module's plan table: each row of tests/modules/data/**.json is args + state →
changes (or an error), checked by the one harness in tables.py — no SSH."""

import pytest

from tests.modules.tables import DATA, check, load


@pytest.mark.parametrize("row", load(DATA))
def test_row(row):
    check(row)
