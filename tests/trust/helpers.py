"""Shared helpers for the trust tests: secret searching, running one module
end to end on the controller, and fake binaries that record what they got."""

from __future__ import annotations

import base64
import json
import os
import stat

from gfsdeploy import modules
from gfsdeploy.modules.base import HostInfo, TaskContext
from gfsdeploy.transport.local import LocalTransport


def secret_forms(secret: str) -> set[str]:
    """Every way a secret could leak: as is, JSON-escaped, base64 (standard,
    URL-safe, unpadded) and the stable middle of its base64 inside a longer blob."""
    raw = secret.encode()
    forms = {secret, json.dumps(secret)[1:-1]}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        forms |= {text, text.rstrip("=")}
    for shift in range(3):
        inner = base64.b64encode(b"\0" * shift + raw).decode()[4:-4]
        if len(inner) >= 8:
            forms.add(inner)
    return {f for f in forms if len(f) >= 4}


def assert_no_secret(texts, secrets) -> None:
    """Fail if any secret (or a base64 form of it) occurs in any of ``texts``
    (str or bytes; a dict maps a label to a text, to say where it leaked)."""
    items = texts.items() if isinstance(texts, dict) else enumerate(texts)
    for label, text in items:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        for secret in secrets:
            for form in secret_forms(secret):
                at = text.find(form)
                assert at < 0, (f"secret {secret[:3]}… leaked in {label} as {form[:12]}…: "
                                f"…{text[max(0, at - 60):at + len(form) + 20]}…")


class FakeBinTransport(LocalTransport):
    """LocalTransport whose PATH starts with ``fakebin`` (recording fakes of iptables, kubectl…)."""

    def __init__(self, fakebin: str, **kwargs):
        super().__init__("local", **kwargs)
        self.fakebin = fakebin

    def launcher(self) -> str:
        return f"PATH={self.fakebin}:\"$PATH\" sh -s"


RECORDER = """#!/bin/sh
# records each call: LOG/N/argv (NUL-separated), LOG/N/stdin when an argument is "-"
d={log}/$(ls {log} | wc -l | tr -d ' ')
mkdir -p "$d"
printf '%s\\0' "$@" > "$d/argv"
for a; do [ "$a" = - ] && cat > "$d/stdin"; done
exit {rc}
"""


def make_recorder(fakebin: str, name: str, log: str, rc: int = 0) -> str:
    """An executable ``name`` that records its argv (and stdin, for ``-f -``) under the directory ``log``."""
    import shlex

    os.makedirs(fakebin, exist_ok=True)
    os.makedirs(log, exist_ok=True)
    path = os.path.join(fakebin, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(RECORDER.format(log=shlex.quote(log), rc=rc))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def records(log: str) -> list[dict]:
    """The recorded calls, in order: {argv: [...], stdin: str}."""
    out = []
    for name in sorted(os.listdir(log), key=int) if os.path.isdir(log) else []:
        with open(os.path.join(log, name, "argv"), "rb") as handle:
            argv = [a.decode("utf-8", "surrogateescape") for a in handle.read().split(b"\0")[:-1]]
        stdin = ""
        if os.path.exists(os.path.join(log, name, "stdin")):
            with open(os.path.join(log, name, "stdin"), "rb") as handle:
                stdin = handle.read().decode("utf-8", "surrogateescape")
        out.append({"argv": argv, "stdin": stdin})
    return out


def run_module(name: str, args: dict, *, transport=None, host: HostInfo | None = None,
               render_file=None, apply: bool = True):
    """validate → prepare → probes (one batch) → read → plan → apply, as the runner does."""
    module = modules.get(name)
    transport = transport or LocalTransport("local")
    host = host or HostInfo(name="local", os_family="debian", os_id="debian")
    ctx = TaskContext(host, transport, task_name=f"{name} test", render_file=render_file,
                      find_file=lambda p: p)
    ctx.allow_destroy = False
    args = module.prepare(module.validate(dict(args)), ctx)
    facts = transport.read_many(module.probes(args, host))
    state = module.read(args, facts, ctx)
    changes = module.plan(args, state, host)
    result = module.apply(args, changes, ctx) if apply else None
    return changes, result
