"""yamlload: a key written beside a `<<: *anchor` merge overrides the merged one (the
YAML merge-key rule that roles use to reuse a search list); two written keys stay an error."""

from __future__ import annotations

import pytest

from gfsdeploy import yamlload
from gfsdeploy.errors import GfsError

MERGED = """\
- name: Include vars
  with_first_found:
  - &search
    files: [debian.yml]
    paths: [vars/]
    skip: true
- name: Include tasks
  with_first_found:
  - <<: *search
    paths: []
"""


def test_a_key_beside_a_merge_overrides_the_merged_one(tmp_path):
    path = tmp_path / "tasks.yml"
    path.write_text(MERGED)
    tasks = yamlload.load(str(path))
    assert tasks[1]["with_first_found"][0] == {"files": ["debian.yml"], "paths": [], "skip": True}
    assert tasks[0]["with_first_found"][0]["paths"] == ["vars/"]


def test_two_written_keys_are_still_a_duplicate(tmp_path):
    path = tmp_path / "tasks.yml"
    path.write_text(MERGED + "    paths: [again/]\n")
    with pytest.raises(GfsError) as err:
        yamlload.load(str(path))
    assert "duplicate key 'paths'" in str(err.value) and ":11" in str(err.value)
