"""Tasks the runner itself carries out, declared here so playbooks name them like
any module: ``set_fact`` (and ``cacheable``), ``include_vars``, ``setup`` /
``gather_facts``. They change no host, so they run in plan too; what they do is
the runner's (gfsdeploy/runner.py), which owns the variables they set."""

from __future__ import annotations

import re

from gfsdeploy.errors import PlaybookError
from gfsdeploy.modules.base import Change, HostInfo, Module, Param, TaskResult


class _RunnerTask(Module):
    read_only = True

    def plan(self, args: dict, state, host: HostInfo) -> list[Change]:
        return []

    def apply(self, args, changes, ctx) -> TaskResult:  # the runner never calls it
        raise NotImplementedError(f"{self.name} is carried out by the runner")


class SetFact(_RunnerTask):
    """``set_fact: {name: value, …, cacheable: bool}`` — variables for this host."""

    name = "set_fact"
    free_keys = True
    params = {"cacheable": Param("bool", default=False)}

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        for key in args:
            if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise PlaybookError(f"set_fact: {key!r} is not a valid variable name", **(where or {}), field=str(key),
                                    fix="use letters, digits and _ (not starting with a digit)")
        if not [k for k in args if k != "cacheable"]:
            raise PlaybookError("set_fact needs at least one variable", **(where or {}),
                                fix="write `set_fact: {name: value}`")
        return dict(args)


class IncludeVars(_RunnerTask):
    """``include_vars``: variables from a YAML/JSON file or directory on the controller."""

    name = "include_vars"
    free_form = "file"
    params = {"file": Param("str", aliases=("_raw_params",)), "dir": Param("str"), "name": Param("str"),
              "depth": Param("int", default=0), "files_matching": Param("str"), "ignore_files": Param("list"),
              "extensions": Param("list"), "ignore_unknown_extensions": Param("bool", default=False),
              "hash_behaviour": Param("str", choices=("replace",))}


class Setup(_RunnerTask):
    """``setup``/``gather_facts``: read the host's facts now (one round trip)."""

    name = "setup"
    aliases = ("gather_facts",)
    params = {"filter": Param("raw"), "gather_subset": Param("raw"), "gather_timeout": Param("int", default=10),
              "fact_path": Param("str")}

    def validate(self, args: dict, *, where: dict | None = None) -> dict:
        out = super().validate(args, where=where)
        if out.get("fact_path"):
            raise PlaybookError("setup: fact_path is not supported", **(where or {}), field="fact_path",
                                fix="keep local facts in /etc/ansible/facts.d (read as ansible_local)")
        return out
