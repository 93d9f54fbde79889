"""Whether a host runs its next step: Ansible's block/rescue/always, includes that
did or did not include, ``meta: end_host``/``end_play``, and a failed host.

Pure state per host, fed by the runner: what failed where, what each include
decided. Kept apart from the runner so its rules read (and test) on their own.

A failure inside a block's ``block:`` section is caught by that block's
``rescue:`` (the host is not failed; the rest of ``block:`` is skipped, the
rescue runs); without a rescue — or failing inside ``rescue:``/``always:`` —
it travels to the enclosing block, and out of the outermost one it fails the
host. The ``always:`` sections of every block it passed through still run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RUN, SKIP, BLOCK = "run", "skip", "block"


@dataclass
class BlockState:
    failed: bool = False          # a task of its block: section failed
    rescue_failed: bool = False


@dataclass
class HostFlow:
    failed: bool = False                        # an uncaught failure (the host stops, Ansible's "failed")
    blocks: dict = field(default_factory=dict)  # block id -> BlockState
    unwinding: set = field(default_factory=set)  # blocks an uncaught failure passed through: always still runs
    included: dict = field(default_factory=dict)  # include task id -> True | False | None (unknown in a plan)
    ended_plays: set = field(default_factory=set)  # play index: meta end_host / end_play
    ended_roles: set = field(default_factory=set)  # (play index, role path): meta end_role
    force_handlers: bool = False                   # --force-handlers

    def decide(self, task) -> tuple[str, str]:
        """(RUN|SKIP|BLOCK, why) for ``task`` on this host now."""
        if task.play.index in self.ended_plays:
            return SKIP, "play ended for this host (meta)"
        if task.role is not None and (task.play.index, task.role.path) in self.ended_roles:
            return SKIP, "role ended for this host (meta: end_role)"
        for gate in task.gates:
            decision = self.included.get(gate)
            if decision is None and gate in self.included:
                return SKIP, "not included (known after apply)"
            if not decision:
                return SKIP, "not included"
        if self.failed:
            if task.is_handler:
                return (RUN, "") if task.play.force_handlers or self.force_handlers else (BLOCK, "host failed")
            if not any(b in self.unwinding and section == "always" for b, section, _ in task.frames):
                return BLOCK, "host failed"
        for i, (block, section, _) in enumerate(task.frames):
            state = self.blocks.get(block)
            if section == "block" and state is not None and state.failed:
                # the always: of an inner block the failure passed through still runs
                if any(b in self.unwinding and s == "always" for b, s, _ in task.frames[i + 1:]):
                    continue
                return SKIP, "block failed; its rescue/always run"
            if section == "rescue" and (state is None or not state.failed or state.rescue_failed):
                return SKIP, "rescue not needed"
        return RUN, ""

    def fail(self, task) -> bool:
        """A step of ``task`` failed (and is not ignored): True if a rescue caught it."""
        for block, section, has_rescue in reversed(task.frames):
            state = self.blocks.setdefault(block, BlockState())
            if section == "block":
                state.failed = True
                if has_rescue:
                    return True
            elif section == "rescue":
                state.rescue_failed = True
            self.unwinding.add(block)
        self.failed = True
        self.unwinding |= {b for b, _, _ in task.frames}
        return False
