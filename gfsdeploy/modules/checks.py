"""``assert``: stop (in plan and apply alike) when a condition about the
inventory or the facts does not hold — the playbook's own preflight."""

from __future__ import annotations

from gfsdeploy.errors import PreflightError
from gfsdeploy.modules.base import Change, HostInfo, Module, Param, TaskContext, TaskResult
from gfsdeploy.templating import is_unknown


class Assert(Module):
    name = "assert"
    read_only = True
    expressions = ("that",)
    params = {"that": Param("raw", required=True, help="a list of Jinja expressions"),
              "fail_msg": Param("str", aliases=("msg",)), "success_msg": Param("str"),
              "quiet": Param("bool", default=False)}

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        for item in args["that"]:
            if is_unknown(item["value"]):
                continue  # decided at apply time
            if not item["value"]:
                raise PreflightError(args.get("fail_msg") or f"assertion failed: {item['expr']}",
                                     host=host.name, fix="correct the inventory so the condition holds: "
                                                         + item["expr"])
        return []

    def apply(self, args: dict, changes: list[Change], ctx: TaskContext) -> TaskResult:
        self.plan(args, None, ctx.host)
        return TaskResult(msg="" if args["quiet"] else (args.get("success_msg") or ""))
