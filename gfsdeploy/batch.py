"""Batched changes: the changes of several consecutive steps of one host in ONE round trip.

When ``apply`` reaches a step with changes, :func:`run_ahead` looks at the steps
that follow it on the same host. Those that do not depend on it — no ``needs:``,
no result registered before them, nothing they read touched by an earlier
member, the same connection and privilege — are planned now (the very read and
plan the step would make when it runs) and their changes join one script. Each
member's script is the script its module's ``apply`` runs (captured from that
``apply``, not rebuilt), stored on the host, run in its own ``sh`` with its own
stdout, stderr and exit status, and framed in the output; the batch stops at
the first member that fails. When each member's step then runs, the runner uses
the plan made here and its module's ``apply`` gets the framed result instead of
a round trip (:func:`take`): status, output, failure, ``changed_when``,
``failed_when``, ``register`` and notifications are reported per task exactly as
when it runs alone. A member after a failure has no result: it plans and runs
on its own (as it would if the host had not stopped), or never, when the host
failed.

The batch is one script through the transport's wrapper: it starts only once
received completely, and finishes on the host if the controller goes away
(each member writes files through a temp file and a rename, as alone).

Which modules can join: those whose ``apply`` makes exactly one ``ctx.run`` first
and nothing else before it (see ``Module.batch_apply``). The module runs under
:class:`_Capture` to get that script; any other use of the host or of the
transport there makes it stay out of the batch.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets as _random
import shlex
import zlib
from dataclasses import dataclass, field

from gfsdeploy.modules.base import WARN, overlaps
from gfsdeploy.transport.base import Result

#: the most members one batch takes (its script stays a few hundred KB at most)
MAX_MEMBERS = 64
#: a member's change scripts shorter than this (characters) are kept as they are
_PACK_MIN = 512
_MARK = "@@gfsdeploy-batch"
#: the frame a guarded member with nothing to do prints when its guard held (script())
_GUARD_ALONE = re.compile(r"^printf '\\n" + re.escape(_MARK) + r"-(\w+) (\d+) 0\\n\\n\\n'$")


class _Captured(BaseException):
    """Raised by the capturing transport at the module's first ``run`` (a BaseException:
    a module's own ``except Exception`` must not turn it into a result)."""


class _NotBatchable(BaseException):
    """The module's apply did something else first (a read, a tunnel, a local file)."""


class _Capture:
    """A stand-in transport: records the first script ``apply`` runs, then stops it."""

    def __init__(self, real):
        self._real = real
        self.script: str | None = None
        self.timeout: float | None = None

    def run(self, script: str, *, timeout: float | None = None, kind: str = "run", **options) -> Result:
        if kind != "run" or options:
            raise _NotBatchable()
        self.script, self.timeout = script, timeout
        raise _Captured()

    def __getattr__(self, name):
        if name in ("host", "become", "become_user"):
            return getattr(self._real, name)
        raise _NotBatchable()


class _Replay:
    """The member's transport when its step runs: the first ``run`` of exactly the
    captured script answers with the batch's framed result; anything else goes to the
    real transport."""

    def __init__(self, real, digest: bytes, result: Result):
        self._real = real
        self._digest = digest
        self._result: Result | None = result

    def run(self, script: str, **options) -> Result:
        if self._result is not None and _digest(script) == self._digest:
            result, self._result = self._result, None
            return result
        return self._real.run(script, **options)

    def __getattr__(self, name):
        return getattr(self._real, name)


@dataclass
class Member:
    """One loop item of one step, planned ahead, with the script its apply runs."""

    task_id: str
    index: int
    state: object
    changes: list
    script: str | None = None
    timeout: float | None = None
    result: Result | None = None
    #: probe key -> (probe script, the Result planned from): re-checked on the host first
    guard: dict | None = None
    #: the script's digest, once the batch ran it (the script itself is not kept: a
    #: host's batch holds every file it writes, and every host's batch runs before any
    #: host's second step)
    digest: bytes | None = None

    #: the changes' scripts, compressed while the member waits for its step (take())
    packed: bytes | None = None
    #: what its apply reports before its script (said as the batch starts), and to whom
    said: list = field(default_factory=list)
    say: object = None

    def pack(self) -> None:
        """Keep the changes' scripts (the files they write, in base64) compressed until
        the step takes them: every host's batch runs before any host's second step."""
        scripts = [c.script for c in self.changes]
        if sum(len(x) for x in scripts) >= _PACK_MIN:
            self.packed = zlib.compress(json.dumps(scripts).encode("ascii"), 1)
            for change in self.changes:
                change.script = ""

    def unpack(self) -> None:
        if self.packed is not None:
            for change, text in zip(self.changes, json.loads(zlib.decompress(self.packed)), strict=True):
                change.script = text
            self.packed = None

    def replay(self, ctx):
        """``ctx`` for the step's own apply: its script is answered from the batch (and
        what the batch already said for it is not said again)."""
        if self.digest is None or self.result is None:
            return ctx
        out = copy.copy(ctx)
        out.transport = _Replay(ctx.transport, self.digest, self.result)
        if self.said:
            said, say = set(self.said), ctx.progress
            out.progress = lambda message: None if message in said else say(message)
        return out


def _digest(script: str) -> bytes:
    return hashlib.sha256(script.encode("utf-8", "surrogateescape")).digest()


@dataclass
class Ahead:
    """What a host's batch left for its members' steps."""

    members: dict = field(default_factory=dict)   # (task id, index) -> Member
    run: object = None                             # the run they belong to (runner.outcomes)
    #: the ids of the steps the batch planned, those whose every item was skipped too:
    #: none of them starts another batch (it would plan again what this one changed)
    steps: set = field(default_factory=set)


def batchable(module) -> bool:
    """Whether ``module``'s apply can be captured (see ``Module.batch_apply``)."""
    flag = getattr(module, "batch_apply", None)
    if flag is not None:
        return bool(flag)
    from gfsdeploy.modules.base import Module

    return type(module).apply is Module.apply and not module.read_only


def capture(module, args: dict, changes: list, ctx, said: list | None = None) -> tuple[str, float | None] | None:
    """The script ``module.apply(args, changes, ctx)`` would run first (None: it cannot be
    captured, or it runs nothing); ``said``: where the progress it reports before it goes."""
    cap = _Capture(ctx.transport)
    fake = copy.copy(ctx)
    fake.transport = cap
    fake.reads = []
    # (what it says before its script — "installing …" — is said when the batch runs it)
    fake.progress = said.append if said is not None else (lambda message: None)
    try:
        module.apply(args, changes, fake)
    except _Captured:
        return cap.script, cap.timeout
    except _NotBatchable:
        return None
    except Exception:  # noqa: BLE001 - whatever it is, it runs alone and says so itself
        return None
    return None


def answers_for(runner, hr, step) -> bool:
    """Whether the host's last batch planned ``step`` (its items' plans wait in it)."""
    ahead = getattr(hr, "ahead", None)
    return ahead is not None and ahead.run is runner.outcomes and step.task_id in ahead.steps


def take(runner, hr, task_id: str, index: int) -> Member | None:
    """The member planned ahead for this item of this step (once)."""
    ahead = getattr(hr, "ahead", None)
    if ahead is None or ahead.run is not runner.outcomes:
        return None
    member = ahead.members.pop((task_id, index), None)
    if member is not None:
        member.unpack()
    return member


def _eligible_task(task, first: bool) -> bool:
    if task.is_handler or getattr(task, "delegate_to", None) or getattr(task, "run_once", False):
        return False
    if task.check_mode is not None or getattr(task, "needs", None):
        return False
    if getattr(task, "include", None) is not None or getattr(task, "throttle", None) \
            or (getattr(task, "loop_control", None) or {}).get("pause"):
        return False
    if not first and any(section == "rescue" for _, section, _ in getattr(task, "frames", ())):
        return False  # it runs only if its block failed: never ahead of that block
    if not first and (task.until is not None or getattr(task, "failed_when", None) is not None):
        return False  # its own judgement could stop the host: it goes alone, or last
    return True


def run_ahead(runner, hr, step) -> int:
    """Plan ``step`` and the following independent steps of its host; run their changes
    in one script; leave each member's plan and result for its step. Returns how many
    members ran (0: no batch; the step runs alone as before)."""
    if getattr(hr, "ahead", None) is None or hr.ahead.run is not runner.outcomes:
        hr.ahead = Ahead(run=runner.outcomes)
    if step.task_id in hr.ahead.steps:
        return 0  # this step was planned ahead (and its changes made, if it had any)
    hr.ahead.members.clear()
    hr.ahead.steps.clear()
    steps = runner.steps_by_host.get(hr.host.name, [])
    if step not in steps:
        return 0
    members: list[Member] = []
    starts: list[tuple[str, int]] = []  # each step planned: its id, its first member's place
    touched: set | None = set()  # resources the members so far change
    view = None
    controller = None  # whether the host is this machine (its files are those prepare reads)
    previous = None
    for position, current in enumerate(steps[steps.index(step):]):
        if position and not _waits_only_for(runner, current, previous, step):
            break  # another host's step or an explicit need comes first
        task = runner.tasks[current.task_id]
        if current in runner.outcomes or not _eligible_task(task, first=position == 0):
            break
        flow = getattr(hr, "flow", None)  # block/rescue/always, includes, meta: end_*
        if position and flow is not None and flow.decide(task)[0] != "run":
            break
        from gfsdeploy import modules

        module = modules.get(task.module)
        if module is None:
            break
        joins = batchable(module)  # (a step of another module joins only if all its items are skipped)
        stop = False
        planned: list[Member] = []
        try:
            lookups = getattr(runner.templar, "lookups_run", 0)
            # (rendered once per step: the batched read's rendering is reused)
            _variables, items = runner._step_items(hr, task, module)
            for index, _v, status, args, ctx in items:
                if status == "skipped":
                    continue
                if status != "ready" or not joins:
                    stop = True
                    break
                if view is None:
                    view = ctx.transport
                    controller = _is_controller(view)
                elif ctx.transport is not view:
                    stop = True
                    break
                if controller and any(m.script is not None for m in members + planned) and \
                        _reads_controller_files(ctx, touched, getattr(runner.templar, "lookups_run", 0) != lookups):
                    # on this machine an earlier member may rewrite what its arguments were
                    # made from (a template's source, a lookup's file): it runs after it, alone
                    stop = True
                    break
                reads = module.resources(args)
                guard = None
                state, changes = runner._plan_item(hr, hr, task, current, index, module, args, ctx, _v, None)
                real = [c for c in changes if c.action != WARN]
                if (members or planned) and overlaps(reads, touched) and \
                        not (real and module.decides_on_node(args, changes)):
                    # it reads what an earlier member changes: planned from what it read
                    # before, it runs only if its probes still answer exactly that then
                    facts = runner._facts_for(hr, task, current, index, args, module, _v)
                    guard = module.guards(args, facts, hr.info) if module.cheap_reads else {}
                    if not guard:
                        stop = True
                        break
                # (guarded with nothing to do: the batch checks its guard where it stands, so
                # "nothing to do" holds after the changes before it, or the batch stops there)
                member = Member(task.id, index, state, changes, guard=guard)
                if real:
                    if not module.joins_batch(args, changes):
                        stop = True
                        break
                    got = capture(module, args, changes, ctx, member.said)
                    if got is None or not got[0]:
                        stop = True
                        break
                    member.script, member.timeout = got
                    member.say = ctx.progress
                    touched = None if reads is None or touched is None else touched | reads
                planned.append(member)
        except Exception:  # noqa: BLE001 - it renders or reads with an error: it runs alone and reports it
            stop = True
        if stop and position == 0:
            return 0
        if stop:
            break
        starts.append((current.task_id, len(members)))
        members.extend(planned)
        previous = current
        if task.register or len(members) >= MAX_MEMBERS:
            break  # what follows may use what it registers: the batch ends here
        # (after a member that may change anything — touched is None — every later member
        # is guarded: it joins only if its probes still answer what it was planned from)
    scripted = [m for m in members if m.script is not None]
    if not scripted or len(scripted) == 1 and not any(m.guard for m in members):
        # (one script and no guard: the batch would be the step's own round trip; a
        # guard after it holding there spares its step the read it would make after it)
        # no batch, but the plans stand up to the first guarded member (before it, no
        # member touches what another reads): the steps use them instead of planning again
        guarded = [i for i, m in enumerate(members) if m.guard]
        members = members[:guarded[0]] if guarded else members
        for member in members:
            hr.ahead.members[(member.task_id, member.index)] = member
        hr.ahead.steps = _planned(starts, len(members))
        _kept(members, step)
        return 0
    if runner.options.before_change is not None:
        runner.options.before_change()
    timeouts = [m.timeout for m in scripted if m.timeout]
    token = _random.token_hex(8)
    framed_members = [m for m in members if m.script is not None or m.guard]
    for member in scripted:  # ("installing …": the batch is what runs it)
        for message in member.said:
            member.say(message)
        member.say = None
    result = view.run(script(framed_members, token), kind="run",
                      timeout=sum(timeouts) if timeouts else None)
    frames = parse(result, token, len(framed_members))
    for member, framed in zip(framed_members, frames):
        member.result = framed
    ran = 0
    for member in members:
        if (member.script is not None or member.guard) and member.result is None:
            break  # after a failure or a stale guard: plans and runs on its own, if at all
        if member.script is None:
            member.result = None  # (a guard that held: nothing ran for it)
        hr.ahead.members[(member.task_id, member.index)] = member
        ran += member.script is not None
    hr.ahead.steps = _planned(starts, len(hr.ahead.members))
    _kept(members, step)
    return ran


#: names whose value another host's failure changes (a task using one keeps its sync)
_PLAY_HOSTS = re.compile(r"\b(ansible_play_hosts(_all)?|play_hosts|ansible_play_batch)\b")


def _waits_only_for(runner, current, previous, first) -> bool:
    """Whether ``current`` waits for nothing but ``previous`` (its host's step before it,
    in a batch starting at ``first``) — or, besides, only for the other hosts' same step,
    where waiting for them changes nothing it renders or does:

    - a ``sync`` (it reads ``hostvars``: every host finishes the task before it first, as
      under Ansible's linear strategy), or
    - a ``play`` barrier (every host finishes the play before any starts the next; the
      plays have no ``serial``, ``any_errors_fatal``, ``max_fail_percentage`` or ``needs``,
      so another host's failure there changes nothing here: Ansible goes on without it),

    while nothing those steps wait for can change a host's variables: every host's facts
    are read, and no step of this host (the other hosts run the same tasks) since the
    batch's first play began registers, sets a fact, reads variables, runs once,
    delegates, includes, is a `meta`, or runs an Ansible module (which may return facts).
    Then what it renders now is what it renders after the wait, and it may join."""
    from gfsdeploy.graph import _mentions, changes_variables, waits_for

    waits = waits_for(runner.graph, current)
    waits.pop(previous, None)
    extra = set(waits)
    if not extra:
        return True
    task = runner.tasks[current.task_id]
    play, before_play = task.play, runner.tasks[previous.task_id].play
    for p, why in waits.items():
        if p.task_id != previous.task_id or why not in ("sync", "play"):
            return False
        if why == "play" and not (_plain_play(before_play) and _plain_play(play)
                                  and before_play.index == play.index - 1):
            return False
    if play.any_errors_fatal or task.any_errors_fatal is True or play.max_fail_percentage is not None or \
            (play.strategy == "linear" and getattr(play, "strategy_written", False)) or _mentions(task, _PLAY_HOSTS):
        return False  # the hosts move in lock step, or it reads which hosts are still in the play
    if any(not getattr(runner.hosts.get(p.host), "facts_text", None) for p in extra):
        return False  # a host not read yet: its facts are not in its hostvars yet
    since = runner.tasks[first.task_id].play.index  # (the plays before it are done on every host)
    steps = runner.steps_by_host.get(current.host, [])
    for step in reversed(steps[:steps.index(current)]):
        before = runner.tasks[step.task_id]
        if before.play.index < since:
            break
        if changes_variables(before):
            return False
    return True


def _plain_play(play) -> bool:
    return play.serial in (None, 0, "0", "", []) and not play.any_errors_fatal \
        and play.max_fail_percentage is None and play.needs is None


def _planned(starts: list[tuple[str, int]], kept: int) -> set[str]:
    """The steps the batch answers for, given that its first ``kept`` members are kept:
    every step before the first member not kept, all-skipped ones included (a batch
    starting at two skipped steps must not start again at the second, planning anew
    what it changed); the steps after it plan, and may batch, on their own."""
    return {task_id for task_id, first in starts if first < kept}


def _kept(members: list[Member], step) -> None:
    """What a member keeps until its step takes it: not the script the batch ran (its
    apply runs the same script again, answered by digest), not its guard (checked in
    the batch); the later steps' change scripts compressed."""
    for member in members:
        if member.script is not None:
            member.digest = _digest(member.script)
            member.script = None
        member.guard = None
        member.say = None
        if member.task_id != step.task_id:
            member.pack()


def _is_controller(view) -> bool:
    from gfsdeploy.transport.local import LocalTransport

    return isinstance(getattr(view, "base", view), LocalTransport)


def _reads_controller_files(ctx, touched: set | None, looked_up: bool) -> bool:
    """Whether what a step's arguments were made from on the controller (files its
    prepare read; a lookup) may be what ``touched`` changes."""
    files = getattr(ctx, "local_files", ())
    if looked_up or None in files:
        return True
    if not files:
        return False  # (it read no file here: nothing a member may rewrite)
    return touched is None or overlaps({"file:" + str(p) for p in files}, touched)


def _plain(text: str) -> bool:
    """Text a shell variable holds as it is: no NUL, nothing a lossy decode replaced."""
    return "\0" not in text and "\ufffd" not in text


def script(members: list[Member], token: str) -> str:
    """One script running each member's script in its own ``sh``, in order, each
    framed with its exit status, stdout and stderr (base64); it stops after the first
    member that fails. A guarded member first re-runs its probes: if any answers other
    than what its plan was made from, it is framed ``stale`` and the batch stops there.
    Once the controller is gone (the transport's wrapper makes ``$GFSDEPLOY_GONE``), the
    member in progress finishes and no other starts: an interrupted run starts nothing new."""
    lines = ['d=$(mktemp -d "${TMPDIR:-/tmp}/gfsdeploy-batch.XXXXXX") || exit 1',
             "trap 'rm -rf \"$d\"' EXIT"]
    b64 = "base64 < \"$d/%s\" | tr -d '\\n'"

    def same(name: str, expected: str) -> str:  # an empty answer is checked without an encoder
        return f'[ ! -s "$d/{name}" ]' if not expected else f'[ "$({b64 % name})" = \'{expected}\' ]'
    for i, member in enumerate(members):
        if i:  # the controller is gone (interrupted, or its connection lost): nothing new starts
            lines.append(f'if [ -n "${{GFSDEPLOY_GONE:-}}" ] && [ -e "$GFSDEPLOY_GONE" ]; then '
                         f"printf '\\n{_MARK}-{token} {i} gone\\n'; exit 0; fi")
        if member.guard:
            lines.append("g=0")
            for probe, seen in member.guard.values():
                expect_err = base64.b64encode(seen.stderr.encode()).decode()
                if _plain(seen.stdout):
                    # the answer as a shell string (no encoder): the exit status is appended
                    # so the answer's trailing newlines survive the command substitution
                    lines += [f'po=$( ( {probe}\n) 2>"$d/pe" </dev/null; printf \'x%s\' "$?" )',
                              f'[ "$po" = {shlex.quote(f"{seen.stdout}x{int(seen.rc)}")} ] && '
                              f'{same("pe", expect_err)} || g=1']
                    continue
                expect_out = base64.b64encode(seen.stdout.encode()).decode()
                lines += [f'( {probe}\n) >"$d/po" 2>"$d/pe" </dev/null; prc=$?',
                          f'[ "$prc" = {int(seen.rc)} ] && {same("po", expect_out)} && '
                          f'{same("pe", expect_err)} || g=1']
            lines.append(f"[ \"$g\" = 0 ] || {{ printf '\\n{_MARK}-{token} {i} stale\\n'; exit 0; }}")
        if member.script is None:  # a guard alone: its plan (nothing to do) holds here
            lines += [f"printf '\\n{_MARK}-{token} {i} 0\\n\\n\\n'"]
            continue
        body = member.script if member.script.endswith("\n") else member.script + "\n"
        end = f"GFSDEPLOY_BATCH_{token}_{i}"
        lines += [f"cat > \"$d/s\" <<'{end}'", body + end,
                  'sh "$d/s" </dev/null >"$d/o" 2>"$d/e"; rc=$?',
                  f"printf '\\n{_MARK}-{token} {i} %s\\n' \"$rc\"",
                  # (an empty output needs no encoder: two processes fewer per stream)
                  f'if [ -s "$d/o" ]; then {b64 % "o"}; fi; printf \'\\n\'',
                  f'if [ -s "$d/e" ]; then {b64 % "e"}; fi; printf \'\\n\'',
                  '[ "$rc" -eq 0 ] || exit 0']
    return "\n".join(lines) + "\n"


def parse(result: Result, token: str, count: int) -> list[Result | None]:
    """Each member's Result from the batch's output (None: it did not run)."""
    out: list[Result | None] = [None] * count
    lines = result.stdout.split("\n")
    head = f"{_MARK}-{token} "
    for at, line in enumerate(lines):
        if not line.startswith(head):
            continue
        try:
            index, rc = (int(x) for x in line[len(head):].split())
            stdout = base64.b64decode(lines[at + 1]).decode(errors="replace")
            stderr = base64.b64decode(lines[at + 2]).decode(errors="replace")
        except (ValueError, IndexError):
            continue
        if 0 <= index < count:
            out[index] = Result(rc, stdout, stderr)
    if all(o is None for o in out) and result.rc != 0:
        # the batch itself did not start (no temp dir): the first member reports why
        out[0] = Result(result.rc, result.stdout, result.stderr)
    return out


def answer(script_text: str, run_one) -> str | None:
    """For a transport that answers scripts without a shell (recordings): the batch's
    output, each member answered by ``run_one(member_script) -> Result``. None if
    ``script_text`` is not a batch."""
    if _MARK not in script_text or "GFSDEPLOY_BATCH_" not in script_text:
        return None
    out = []
    lines = script_text.split("\n")
    at = 0
    while at < len(lines):
        line = lines[at]
        alone = _GUARD_ALONE.match(line)
        if alone:  # a guard without a script: it held (a recording answers as it was)
            out += ["", f"{_MARK}-{alone.group(1)} {alone.group(2)} 0", "", ""]
        elif line.startswith("cat > \"$d/s\" <<'GFSDEPLOY_BATCH_"):
            end = line.split("<<'", 1)[1].rstrip("'")
            token, i = end[len("GFSDEPLOY_BATCH_"):].rsplit("_", 1)
            body = []
            at += 1
            while at < len(lines) and lines[at] != end:
                body.append(lines[at])
                at += 1
            result = run_one("\n".join(body) + "\n")
            out += ["", f"{_MARK}-{token} {i} {result.rc}",
                    base64.b64encode(result.stdout.encode()).decode(),
                    base64.b64encode(result.stderr.encode()).decode()]
            if result.rc != 0:
                break
        at += 1
    return "\n".join(out) + "\n"


# -- registered values known ahead (batched reads) ----------------------------------------
class _Refused(BaseException):
    """A module's read or report used the host while its registered value was computed
    ahead (a BaseException: a module's ``except Exception`` must not hide it)."""


class _NoHost:
    """The transport while a registered value is computed ahead: any use stops that."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        if name in ("host", "become", "become_user"):
            return getattr(self._real, name)
        raise _Refused()


#: in ``ahead``: what this name will hold is not known before its step runs
NOT_YET = object()


class _Registered:
    """What ``Runner._register`` writes into: the values computed ahead."""

    def __init__(self, registered: dict):
        self.registered = registered


def shadow(hr, ahead: dict):
    """``hr`` as its later steps will see it once the steps before them registered
    ``ahead`` (register name -> value; ``NOT_YET``: undefined, as if never registered —
    what uses it is not renderable yet and reads when it runs)."""
    out = copy.copy(hr)
    out.registered = {k: v for k, v in {**hr.registered, **ahead}.items() if v is not NOT_YET}
    return out


def register_ahead(runner, hr, task, module, items: list, read: dict, ahead: dict) -> None:
    """The value ``task`` will register, computed from what the host's batched reads
    already answered (``read``: (task id, index) -> (args key, probe results, ...)),
    into ``ahead`` — so the host's later steps whose arguments use it join the next
    batched read instead of each reading when it runs. Only for a read-only module
    whose read and report need nothing but those probe results (anything else using
    the host stops it) and that plans no change; otherwise the name is ``NOT_YET`` in
    ``ahead`` (those later steps read when they run, as before). A wrong value costs
    nothing but a read: a step uses a batched read only if its arguments, rendered
    when it runs, are the ones the read was made from."""
    from gfsdeploy.runner import _args_key  # (the runner imports this module)

    name = task.register
    ahead[name] = NOT_YET
    if not module.read_only or task.until is not None or task.retries \
            or (task.loop_control or {}).get("break_when"):
        return
    results = []
    for index, variables, status, args, ctx in items:
        if status == "skipped":
            results.append(runner._with_item(task, variables, runner._skipped(task, variables)))
            continue
        cached = read.get((task.id, index))
        if status != "ready" or not cached or cached[0] != _args_key(args) \
                or not runner._same_probes(module, args, cached, hr.info):
            return
        quiet = copy.copy(ctx)
        quiet.transport, quiet.transports, quiet.reads = _NoHost(ctx.transport), {}, []
        quiet.progress = lambda message: None
        try:
            state = module.read(args, cached[1], quiet)
            if any(c.action != WARN for c in module.plan(args, state, hr.info)):
                return
            judged = runner._judge(task, module.report(args, state, quiet), variables)
        except (Exception, _Refused):  # noqa: BLE001 - it reads when it runs and reports there
            return
        if judged.get("ansible_facts") or judged.get("failed"):
            return  # it changes the host's facts, or stops the host: nothing to guess from
        results.append(runner._with_item(task, variables, judged))
    runner._register(_Registered(ahead), task, results)


def set_fact_ahead(runner, task, items: list, ahead: dict) -> None:
    """What a ``set_fact`` will set, into ``ahead`` like a registered value (Ansible gives
    both one precedence), when its arguments render now: the host's later steps that use
    it join the batched read (a wrong value costs only a read, as in register_ahead).
    A loop, or a condition or value not known yet: its names are ``NOT_YET``."""
    from gfsdeploy.templating import is_unknown

    names = [name for name in task.args if name != "cacheable"]
    if all(item[2] == "skipped" for item in items):
        return  # it sets nothing: the names keep what they hold
    if task.loop is not None or len(items) != 1 or items[0][2] != "ready":
        ahead.update(dict.fromkeys(names, NOT_YET))
        return
    variables = items[0][1]
    for name in names:
        try:
            value = runner.templar.render(task.args[name], variables, where=task.where())
        except Exception:  # noqa: BLE001 - it renders (and reports) when it runs
            value = NOT_YET
        ahead[name] = NOT_YET if value is not NOT_YET and is_unknown(value) else value


# -- one command for several steps' probes (batched reads) --------------------------------
class JointProbe(str):
    """A probe (the command, as a string) that can share one command with probes of
    other steps in the same batched read: e.g. one query for several named objects
    instead of one query each (every command is a process on the host). Probes whose
    ``joint_key`` is equal (and not None) may be joined; the class says how (``join``:
    one command answering all) and gives each its own answer back out of that command's
    successful result (``part``). If the joined command fails (a kind the server does
    not know, an object it refuses), each probe's own command runs in the same round
    trip and answers for itself: ``script``/``answers`` frame that around ``join``/``part``
    (:func:`fallback_script`), so a subclass never sees it. A probe alone, or a probe
    whose command the runner changed (an environment), runs as written."""

    joint_key: object = None

    @classmethod
    def join(cls, probes: list) -> str | None:
        """One command answering all ``probes`` (None: they cannot share one)."""
        return None

    @classmethod
    def part(cls, probes: list, whole: Result) -> list[Result]:
        """Each probe's Result out of the joined command's (which succeeded)."""
        raise NotImplementedError

    @classmethod
    def script(cls, probes: list) -> str | None:
        """What the batched read sends: the joined command, each probe's own if it fails."""
        joined = cls.join(probes)
        return None if joined is None else fallback_script(joined, probes)

    @classmethod
    def answers(cls, probes: list, result: Result) -> list[Result]:
        """Each probe's Result out of what :meth:`script` printed."""
        whole, each = fallback_parts(result, len(probes))
        if each is not None:
            return each
        if whole is None:  # the script itself failed: each probe reports it as its own read would
            return [result] * len(probes)
        return cls.part(probes, whole)


def fallback_script(joined: str, probes: list) -> str:
    """``joined``, and if it fails each probe on its own, framed (see :func:`fallback_parts`):
    one failing part (a kind the server does not know, an object it refuses) must not
    change what the other probes answer, nor cost another round trip."""
    lines = ['__jo=$(mktemp) && __je=$(mktemp) || exit 97',
             f'if ( {joined}\n) >"$__jo" 2>"$__je" </dev/null; then printf \'J\\n\'; cat "$__jo"; else',
             "printf 'S\\n'"]
    for probe in probes:
        lines += [f'( {probe}\n) >"$__jo" 2>"$__je" </dev/null; printf \'%s \' "$?"',
                  "base64 <\"$__jo\" | tr -d '\\n'; printf ' '; base64 <\"$__je\" | tr -d '\\n'; printf '\\n'"]
    lines += ['fi', 'rm -f "$__jo" "$__je"']
    return "\n".join(lines)


def fallback_parts(result: Result, count: int) -> tuple[Result | None, list[Result] | None]:
    """(the joined command's Result, None) when it succeeded; (None, each probe's
    Result) when the probes ran on their own; (None, None) when the script itself failed."""
    head, _, rest = result.stdout.partition("\n")
    if result.rc == 0 and head == "J":
        return Result(0, rest, result.stderr), None
    if result.rc == 0 and head == "S":
        parts = []
        for line in rest.split("\n")[:count]:
            try:
                rc, out, err = line.split(" ")
                parts.append(Result(int(rc), base64.b64decode(out).decode(errors="replace"),
                                    base64.b64decode(err).decode(errors="replace")))
            except ValueError:
                return None, None
        if len(parts) == count:
            return None, parts
    return None, None


def read_joined(view, asked: dict) -> dict:
    """``view.read_many(asked)`` with fewer processes on the host, the same answers: a
    command several keys ask runs once, and :class:`JointProbe` probes of equal keys are
    asked in one command each."""
    first: dict = {}  # command -> the first key asking it
    for key, cmd in asked.items():
        first.setdefault(cmd, key)
    probes = {key: cmd for cmd, key in first.items()}
    groups: dict = {}
    for key, cmd in probes.items():
        joint = getattr(cmd, "joint_key", None)
        if joint is not None:
            groups.setdefault((type(cmd), joint), []).append(key)
    sent = dict(probes)
    joined: dict = {}
    for n, ((cls, _), keys) in enumerate(groups.items()):
        if len(keys) < 2:
            continue
        command = cls.script([probes[k] for k in keys])
        if command is None:
            continue
        name = f"\x1ejoined\x1f{n}"
        for k in keys:
            del sent[k]
        sent[name] = command
        joined[name] = (cls, keys)
    answered = view.read_many(sent)
    for name, (cls, keys) in joined.items():
        result = answered.pop(name)
        try:
            parts = cls.answers([probes[k] for k in keys], result)
        except Exception:  # noqa: BLE001 - each probe sees the failure, and reports it as its own read would
            parts = [result] * len(keys)
        answered.update(zip(keys, parts))
    return {key: answered[first[cmd]] for key, cmd in asked.items()}
