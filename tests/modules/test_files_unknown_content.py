"""A file whose rendered content holds a value known only after apply (a template reading a
registered result the plan could not run) is planned as such — not as a byte-level change."""

from __future__ import annotations

from gfsdeploy.modules.files import unified_diff
from gfsdeploy.templating import UNKNOWN_MARK


def test_unknown_parts_of_content_show_as_known_after_apply():
    old = b"kind: StorageClass\nresturl: http://10.0.0.5:8080\n"
    new = f"kind: StorageClass\nresturl: http://{UNKNOWN_MARK}:8080\n".encode()
    shown = unified_diff("/etc/kubernetes/storageclass.yml", old, new)
    assert shown.splitlines()[0].startswith("content (known after apply)")
    assert "-resturl: http://10.0.0.5:8080" in shown and "+resturl: http://(known after apply):8080" in shown
    assert "binary" not in shown and "\0" not in shown


def test_known_content_is_a_plain_diff():
    assert unified_diff("/f", b"a\n", b"b\n") == "--- /f\n+++ /f\n@@ -1 +1 @@\n-a\n+b"
    assert unified_diff("/f", b"a\0", b"b\0") == "binary content: 2 -> 2 bytes"
