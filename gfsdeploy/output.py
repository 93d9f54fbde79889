"""What the user reads — all of it, in one place: the plan (Terraform's symbols,
unified diffs, the read-only commands it ran, the summary line), errors (each
once), apply's progress and recap, and their ``--json`` forms. The CLI only
chooses what to print; everything printed goes through the redactor first."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time

from gfsdeploy.modules.base import ADD, CHANGE, DESTROY, REPLACE, WARN
from gfsdeploy.secrets import MASK, redact, redact_obj, redacting
from gfsdeploy.templating import show_unknown

COLORS = {ADD: "\033[32m", CHANGE: "\033[33m", DESTROY: "\033[31m", REPLACE: "\033[31m", WARN: "\033[35m"}
RESET = "\033[0m"


class Reporter:
    """Prints progress as steps finish; collects outcomes for the plan/recap."""

    def __init__(self, stream=None, *, json_mode: bool = False, verbose: int = 0, color: bool | None = None,
                 quiet: bool = False):
        self.stream = stream or sys.stdout
        self.json_mode = json_mode or quiet  # quiet (the library's default): no progress lines
        self.quiet = quiet
        self.verbose = verbose
        self.color = (self.stream.isatty() if color is None else color) and not json_mode
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.events: list[dict] = []

    def write(self, text: str = "") -> None:
        if self.quiet:
            return
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
        if getattr(outcome, "ignored", False):  # Ansible prints the failure, then "...ignoring"
            mark = "failed (ignored)"
        line = f"[{outcome.host}] {mark}: {outcome.task.label} ({outcome.duration:.1f}s)"
        if status in ("failed", "rescued") or getattr(outcome, "ignored", False):  # why, as Ansible shows it
            error = outcome.error.removeprefix("(ignored) ")
            line += "\n    " + error.replace("\n", "\n    ")
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


def render_plan(plan, *, color: bool = False, verbose: int = 0) -> str:
    """The human plan: per host, one line per change and its diff; then the
    read-only commands the plan ran; then the summary line. A plan with errors
    shows what was planned so far and no summary line (the caller prints the
    errors, each once: :func:`render_errors`)."""
    lines: list[str] = [f"Warning: {w}" for w in getattr(plan, "file_warnings", ())]
    if lines:
        lines.append("")
    by_host: dict[str, list] = {}
    for outcome in plan.outcomes:
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
    if plan.reads:
        lines.append(f"Read-only commands run while planning ({len(plan.reads)}):")
        for host, task, command in plan.reads:
            first = command.strip().splitlines()[0] if command.strip() else ""
            more = " …" if len(command.strip().splitlines()) > 1 else ""
            lines.append(f"  {host}: {task}: {first}{more}" if verbose or len(first) < 160 else
                         f"  {host}: {task}: {first[:157]}…")
        lines.append("")
    if plan.errors:
        return show_unknown(redact("\n".join(lines).rstrip("\n")))
    counts = plan.summary
    if not any(counts.get(k) for k in ("add", "change", "destroy")):
        lines.append("No changes. The hosts match the playbook.")
    if counts.get("warnings"):
        lines.append(f"Warnings: {counts['warnings']} (lines marked !)")
    lines.append(summary_line(counts))
    return show_unknown(redact("\n".join(lines)))


def render_errors(errors) -> list[str]:
    """Each error once, in the order found."""
    seen, lines = set(), []
    for error in errors:
        if error not in seen:
            seen.add(error)
            lines.append(f"Error: {error}")
    return lines


def render_destroys(plan) -> str:
    lines = ["The plan DESTROYS data:"]
    for change in plan.destroys_data:
        lines.append(f"  - {change.host}: {change.resource}" + (f" ({change.diff.strip()})" if change.diff else ""))
    return redact("\n".join(lines))


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


def render_recap(recap) -> str:
    lines = ["", "RECAP"]
    width = max([len(h) for h in recap.hosts] + [4])
    warnings = [(o.host, c) for o in recap.outcomes for c in o.changes if c.action == WARN]
    for name in sorted(recap.hosts, key=_natural):
        h = recap.hosts[name]
        warn = sum(1 for host, _ in warnings if host == name)
        state = "UNREACHABLE" if h.unreachable else ("FAILED" if h.failed > h.cleared else
                                                      "errors cleared" if h.cleared else "")
        # Ansible's columns, in its order; an unreachable host counts 1 there, its failure not as failed
        lines.append(f"{name:<{width}}  ok={h.ok:<3} changed={h.changed:<3} unreachable={int(h.unreachable):<3} "
                     f"failed={h.failed:<3} skipped={h.skipped:<3} rescued={h.rescued:<3} ignored={h.ignored:<3}"
                     + (f" warnings={warn}" if warn else "") + (f"  {state}" if state else ""))
    for host, change in warnings:
        lines.append(f"warning: {host}: {change.resource}" +
                     (f": {change.diff}" if change.diff and not change.sensitive else ""))
    if recap.failures:
        lines.append("")
        lines.append("Failures:")
        for failure in recap.failures:
            lines.append("  " + failure.replace("\n", "\n  "))
    return show_unknown(redact("\n".join(lines)))


def render_protocol_tasks(tasks) -> str:
    """``-v``: which tasks run an Ansible module through Ansible's module protocol."""
    from gfsdeploy.ansible_protocol import protocol_lines

    lines = protocol_lines(tasks)
    if not lines:
        return ""
    return "Tasks run through Ansible's module protocol (no native gfsdeploy module):\n" + "\n".join(lines)


def render_round_trips(round_trips: dict) -> str:
    return "round trips: " + ", ".join(f"{h}={n}" for h, n in round_trips.items())


def outcomes_json(runner, outcomes, *, mode: str, reads=None) -> dict:
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
    data = {"mode": mode, "summary": summary(outcomes), "hosts": hosts,
            "errors": sorted({o.error for o in outcomes if o.status == "failed"})}
    if reads is not None:
        data["reads"] = [{"host": h, "task": t, "command": c} for h, t, c in reads]
    return _redacted(data)


def _redacted(data):
    # (with no value registered, redact_obj would only copy every container: at 1,000
    # hosts, a copy of the whole report alive beside the original)
    return redact_obj(data) if redacting() else data


#: characters of JSON text gathered before each write (see dump_json)
_JSON_CHUNK = 1 << 16


def dump_json(data: dict, stream=None) -> None:
    """``data`` as JSON, written in pieces: the whole text of a 1,000-host run (and the
    encoder's list of its fragments) is never held in memory at once. Indented for a
    terminal; else compact, one top-level entry (a host) at a time through the C encoder
    (the indenting encoder is Python's own: ~10 times slower at 1,000 hosts)."""
    stream = stream or sys.stdout
    data = _redacted(data)
    isatty = getattr(stream, "isatty", None)
    if isatty is None or isatty() or type(data) is not dict:
        pieces = itertools.chain(json.JSONEncoder(indent=2).iterencode(data), ["\n"])
    else:
        pieces = _compact_pieces(data)
    gathered: list[str] = []
    size = 0
    for piece in pieces:
        gathered.append(piece)
        size += len(piece)
        if size >= _JSON_CHUNK:
            stream.write("".join(gathered))
            gathered, size = [], 0
    stream.write("".join(gathered))
    stream.flush()


def _compact_pieces(data: dict):
    """``data`` as compact JSON text, in pieces: each entry of a mapping at the top (the
    hosts) encoded on its own, everything else whole."""
    encode = json.JSONEncoder(separators=(",", ":")).encode
    yield "{"
    for i, (key, value) in enumerate(data.items()):
        comma = "," if i else ""
        if type(value) is not dict:
            yield comma + encode({key: value})[1:-1]
            continue
        yield comma + encode({key: {}})[1:-3] + "{"  # ("key": , as JSON writes it)
        for j, entry in enumerate(value.items()):
            yield ("," if j else "") + encode(dict([entry]))[1:-1]
        yield "}"
    yield "}\n"
