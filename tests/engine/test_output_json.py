"""``--json``: compact for a pipe or a file (C encoder, a host at a time), indented for a
terminal; the same data either way."""

from __future__ import annotations

import io
import json

from gfsdeploy.output import _JSON_CHUNK, dump_json

DATA = {"mode": "plan", "summary": {"add": 1},
        "hosts": {f"h{i}": {"counts": {"ok": i}, "steps": [{"task": "t", "error": None, "note": "é" * 50}]}
                  for i in range(3000)},
        "errors": ["x"], True: None, "reads": [{"host": "h0", "command": "cat /etc/hosts"}]}


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_a_pipe_gets_compact_json_written_in_pieces():
    writes = []

    class Counting(io.StringIO):
        def write(self, text):
            writes.append(len(text))
            return super().write(text)

    out = Counting()
    dump_json(DATA, out)
    text = out.getvalue()
    assert json.loads(text) == json.loads(json.dumps(DATA))
    assert "\n" not in text.rstrip("\n") and text.endswith("}\n")
    assert len(writes) > 2 and max(writes) < 2 * _JSON_CHUNK  # (never the whole text at once)


def test_a_terminal_gets_indented_json():
    out = _Tty()
    dump_json({"mode": "plan", "hosts": {"a": {"counts": {"ok": 1}}}}, out)
    assert out.getvalue() == json.dumps({"mode": "plan", "hosts": {"a": {"counts": {"ok": 1}}}}, indent=2) + "\n"
