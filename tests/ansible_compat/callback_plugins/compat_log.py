"""An ansible-playbook callback for the differential tests: one JSON line per task
result (task name, host, status, the result Ansible registers) into $COMPAT_LOG, and a
last line with the recap's counts per host (``{"recap": {host: {ok, changed, …}}}``)."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: compat_log
type: notification
short_description: task results as JSON lines for gfsdeploy's differential tests
description: writes one JSON line per task result to the file named by COMPAT_LOG
"""


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if not str(k).startswith("_ansible")}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "compat_log"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, status: str, result) -> None:
        path = os.environ.get("COMPAT_LOG")
        if not path:
            return
        data = _clean(dict(result._result))
        if status == "ok" and data.get("changed"):
            status = "changed"
        # the task's own name, as gfsdeploy reports it (get_name() prefixes "role : ")
        line = {"task": result._task.name or result._task.get_name(), "host": result._host.get_name(), "status": status,
                "result": data}
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._write("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("ignored" if ignore_errors else "failed", result)

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._write("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("COMPAT_LOG")
        if not path:
            return
        recap = {}
        for host in sorted(stats.processed):
            counts = stats.summarize(host)
            counts["failed"] = counts.pop("failures", 0)
            recap[host] = counts
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"recap": recap}) + "\n")
