"""What the user reads: the plan (Terraform's symbols, unified diffs, the summary
line), apply's progress and recap, and their ``--json`` forms. Everything
printed goes through the redactor first."""

from __future__ import annotations

import json
import sys
import threading
import time

from gfsdeploy.modules.base import ADD, CHANGE, DESTROY, REPLACE, WARN
from gfsdeploy.secrets import MASK, redact, redact_obj
from gfsdeploy.templating import show_unknown

COLORS = {ADD: "\033[32m", CHANGE: "\033[33m", DESTROY: "\033[31m", REPLACE: "\033[31m", WARN: "\033[35m"}
RESET = "\033[0m"


class Reporter:
    """Prints progress as steps finish; collects outcomes for the plan/recap."""

    def __init__(self, stream=None, *, json_mode: bool = False, verbose: int = 0, color: bool | None = None):
        self.stream = stream or sys.stdout
        self.json_mode = json_mode
        self.verbose = verbose
        self.color = (self.stream.isatty() if color is None else color) and not json_mode
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.events: list[dict] = []

    def write(self, text: str = "") -> None:
        with self.lock:
            self.stream.write(show_unknown(redact(text)) + "\n")
            self.stream.flush()

    def progress(self, host: str, task, message: str) -> None:
        if self.json_mode:
            self.events.append({"host": host, "task": task.label, "progress": redact(message)})
            return
        self.write(f"  … {host}: {task.label}: {message}")

    def step_done(self, outcome, mode: str) -> None:
        if self.json_mode:
            return
        status = outcome.status
        if mode == "plan":
            if outcome.messages and self.verbose:
                self.write("".join(f"  {outcome.host}: {m}\n" for m in outcome.messages).rstrip("\n"))
            return
        if status == "skipped" and outcome.error == "not notified":
            return
        mark = {"ok": "ok", "changed": "changed", "failed": "FAILED", "skipped": "skipped",
                "blocked": "skipped (upstream failed)"}.get(status, status)
        line = f"[{outcome.host}] {mark}: {outcome.task.label} ({outcome.duration:.1f}s)"
        if status == "failed":
            line += "\n    " + outcome.error.replace("\n", "\n    ")
        elif status == "changed" and self.verbose:
            line += "".join("\n    " + _change_line(c, self.color) for c in outcome.changes)
        for message in outcome.messages:
            line += "\n    " + message.replace("\n", "\n    ")
        self.write(line)


def _change_line(change, color: bool) -> str:
    symbol = change.action
    text = show_unknown(f"{symbol} {change.resource}")
    if color and symbol in COLORS:
        text = f"{COLORS[symbol]}{symbol}{RESET} {change.resource}"
    return text


def summary(outcomes) -> dict:
    counts = {"add": 0, "change": 0, "destroy": 0, "warnings": 0}
    for outcome in outcomes:
        for change in outcome.changes:
            if change.action == REPLACE:   # Terraform's count: one destroy and one add
                counts["add"] += 1
                counts["destroy"] += 1
                continue
            key = {ADD: "add", CHANGE: "change", DESTROY: "destroy", WARN: "warnings"}.get(change.action)
            if key:
                counts[key] += 1
    return counts


def summary_line(counts: dict) -> str:
    return f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy."


def render_plan(outcomes, *, color: bool = False) -> str:
    """The human plan: per host, one line per change and its diff."""
    lines: list[str] = []
    by_host: dict[str, list] = {}
    errors = []
    for outcome in outcomes:
        if outcome.status == "failed":
            errors.append(outcome)
        if outcome.changes:
            by_host.setdefault(outcome.host, []).append(outcome)
    for host in sorted(by_host, key=_natural):
        lines.append(f"{host}:")
        for outcome in by_host[host]:
            for change in outcome.changes:
                lines.append("  " + _change_line(change, color) + f"    # {outcome.task.label}")
                if change.diff:
                    body = MASK if change.sensitive else change.diff
                    for diff_line in body.rstrip("\n").splitlines():
                        lines.append("      " + _color_diff(diff_line, color))
        lines.append("")
    for outcome in errors:
        lines.append(f"Error: {outcome.error}")
    counts = summary(outcomes)
    if not errors and not any(counts[k] for k in ("add", "change", "destroy")):
        lines.append("No changes. The hosts match the playbook.")
    if counts["warnings"]:
        lines.append(f"Warnings: {counts['warnings']} (lines marked !)")
    lines.append(summary_line(counts))
    return show_unknown(redact("\n".join(lines)))


def _color_diff(line: str, color: bool) -> str:
    if not color:
        return line
    if line.startswith("~ "):
        return COLORS[CHANGE] + line + RESET
    if line.startswith("+") and not line.startswith("+++"):
        return COLORS[ADD] + line + RESET
    if line.startswith("-") and not line.startswith("---"):
        return COLORS[DESTROY] + line + RESET
    return line


def _natural(name: str):
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def recap(runner, outcomes) -> str:
    lines = ["", "RECAP"]
    width = max([len(h) for h in runner.hosts] + [4])
    for name in sorted(runner.hosts, key=_natural):
        hr = runner.hosts[name]
        c = hr.counts
        warn = sum(1 for o in outcomes if o.host == name for ch in o.changes if ch.action == WARN)
        state = "UNREACHABLE" if hr.unreachable else ("FAILED" if hr.failed else "")
        lines.append(f"{name:<{width}}  ok={c.get('ok', 0):<3} changed={c.get('changed', 0):<3} "
                     f"failed={c.get('failed', 0):<3} skipped={c.get('skipped', 0):<3}"
                     + (f" warnings={warn}" if warn else "") + (f"  {state}" if state else ""))
    for outcome in outcomes:
        for change in outcome.changes:
            if change.action == WARN:
                lines.append(f"warning: {outcome.host}: {change.resource}" +
                             (f": {change.diff}" if change.diff and not change.sensitive else ""))
    failures = [o for o in outcomes if o.status == "failed"]
    if failures:
        lines.append("")
        lines.append("Failures:")
        for outcome in failures:
            lines.append("  " + outcome.error.replace("\n", "\n  "))
    return redact("\n".join(lines))


def outcomes_json(runner, outcomes, *, mode: str) -> dict:
    hosts: dict = {}
    for name in sorted(runner.hosts, key=_natural):
        hr = runner.hosts[name]
        log = hr.transport.command_log if hr.transport else []
        hosts[name] = {"counts": hr.counts, "failed": hr.failed, "unreachable": hr.unreachable,
                       "round_trips": hr.transport.round_trips if hr.transport else 0,
                       # what the transport sent: batched reads vs. scripts that may change the host
                       "commands": {"read": sum(1 for r in log if r.kind == "read"),
                                    "run": sum(1 for r in log if r.kind != "read")},
                       "steps": []}
    for outcome in outcomes:
        hosts[outcome.host]["steps"].append({
            "task": outcome.task.label, "task_id": outcome.task.id, "status": outcome.status,
            "changes": [c.to_json() for c in outcome.changes], "error": outcome.error or None,
            "duration": round(outcome.duration, 3)})
    return redact_obj({"mode": mode, "summary": summary(outcomes), "hosts": hosts})


def dump_json(data: dict, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(redact_obj(data), indent=2, sort_keys=False) + "\n")
    stream.flush()
