"""The line handling of lineinfile/blockinfile and the file probe's parser, on the
text shapes their fast paths must treat exactly as the plain definitions do: other
line boundaries than \\n (\\r, \\f, \\u2028 split str.splitlines, not these files'
lines), markers found twice or in the wrong order, content lines after ``C``."""

from __future__ import annotations

import base64

import pytest

from gfsdeploy.modules.files import _split, blockinfile_edit, parse_probe
from gfsdeploy.transport.base import Result

SHAPES = ["", "\n", "\n\n", "a", "a\n", "a\nb", "a\r\nb\n", "a\rb\n", "a\r", "\r", "x\x0cy\n", "p\u2028q\nr",
          "s\x85t", "\x1c\n\x1d", "tail\r\n", "mixed\r\n\rline\n\x0b"]


def _reference(text: str) -> list[str]:
    """The definition: split on \\n only, each line keeps its \\n, no empty last line."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


@pytest.mark.parametrize("text", SHAPES)
def test_lines_split_on_newline_only(text):
    assert _split(text) == _reference(text)


M = "# {mark} M"


@pytest.mark.parametrize("text, block, expected", [
    ("a\n# BEGIN M\nold\n# END M\nz\n", "new\r\nx\u2028y", "a\n# BEGIN M\nnew\r\nx\u2028y\n# END M\nz\n"),
    # the last BEGIN and the last END count (Ansible): the first pair stays
    ("# BEGIN M\n1\n# END M\nmid\n# BEGIN M\n2\n# END M\n", "3", "# BEGIN M\n1\n# END M\nmid\n# BEGIN M\n3\n# END M\n"),
    # END before BEGIN: what is between them (both included) is replaced
    ("a\n# END M\nb\n# BEGIN M\nc\n", "n", "a\n# BEGIN M\nn\n# END M\nc\n"),
    # a marker followed by \r is not the marker; no newline at the end of the file
    ("# BEGIN M\r\nx", "n", "# BEGIN M\r\nx\n# BEGIN M\nn\n# END M\n"),
    ("l1\rl2", "", "l1\rl2\n"),  # (nothing to insert; the last line gets its \n, as before)
])
def test_blockinfile_edits(text, block, expected):
    assert blockinfile_edit(text, block, marker=M) == expected


def test_the_probe_content_is_everything_after_the_c_line():
    content = b"P /not/a/header\nS absent\nC\n\r\x00\xff"
    out = "P /x\nS regular file|644|root|0|root|0|%d\nC\n%s" % (len(content), base64.encodebytes(content).decode())
    st = parse_probe("/x", Result(0, out, ""))
    assert (st.path, st.kind, st.content) == ("/x", "file", content)
    assert parse_probe("/e", Result(0, "P /e\nS regular file|644|r|0|r|0|0\nC\n", "")).content == b""


def test_a_diff_kept_for_the_same_texts_is_never_given_for_other_ones():
    """unified_diff keeps a few diffs by (path, old, new, new_file): each input matters."""
    from gfsdeploy.modules import files

    files._DIFFS.clear()
    hosts = "".join(f"10.0.0.{i} n{i}\n" for i in range(300)).encode()
    old, new = b"127.0.0.1 localhost\n", b"127.0.0.1 localhost\n" + hosts
    first = files.unified_diff("/etc/hosts", old, new)
    assert files.unified_diff("/etc/hosts", old, new) is first  # kept
    assert files.unified_diff("/etc/other", old, new) == first.replace("/etc/hosts", "/etc/other")
    other_old = files.unified_diff("/etc/hosts", b"127.0.1.1 k8s-2\n", new)
    assert "-127.0.1.1 k8s-2" in other_old and other_old != first
    assert files.unified_diff("/etc/hosts", old, new + b"x\n").endswith("+x")
    assert files.unified_diff("/etc/hosts", None, new, new_file=True).startswith("--- /dev/null")
    assert files.unified_diff("/etc/hosts", None, new).startswith("--- /etc/hosts")
    for i in range(files._DIFFS_KEPT + 5):  # a few at a time
        files.unified_diff(f"/f{i}", None, new, new_file=True)
    assert len(files._DIFFS) <= files._DIFFS_KEPT
    big = b"y\n" * files._DIFF_KEPT_BYTES[1]
    assert files.unified_diff("/big", None, big, new_file=True).count("\n+y") == files._DIFF_KEPT_BYTES[1]
    assert files.unified_diff("/small", None, b"s\n", new_file=True).endswith("+s")
    assert all(key[0] not in ("/big", "/small") for key in files._DIFFS)  # (not kept: too big, too small)
