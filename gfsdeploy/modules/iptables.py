"""``iptables`` and ``iptables_state``: firewall rules, rule by rule, and their persistence.

Arguments are Ansible's (ansible.builtin.iptables, community.general.iptables_state)
and the rule is built in Ansible's argument order, so a node prepared by
``ansible-playbook`` and one prepared by gfsdeploy hold byte-identical rules
and neither tool adds a duplicate of the other's. Presence is decided by
``iptables -C`` — iptables' own canonical comparison (it adds ``-m tcp``,
``/32`` and so on) — in the batched read, and guarded again at apply time.
"""

from __future__ import annotations

import difflib
import re

from gfsdeploy.errors import ModuleError
from gfsdeploy.modules.base import ADD, CHANGE, DESTROY, UNKNOWN, Change, HostInfo, Module, Param, q, qjoin

_RULE_ARGS = ("protocol", "source", "destination", "match", "jump", "destination_ports",
              "in_interface", "out_interface", "source_port", "destination_port", "ctstate", "comment")


def build_rule(args: dict) -> list[str]:
    """The rule's match/target argv, in ansible.builtin.iptables' construct_rule order."""
    rule: list[str] = []

    def param(value, flag):
        if value not in (None, "", []):
            rule.extend([flag, str(value)])

    match = list(args.get("match") or [])
    ctstate = list(args.get("ctstate") or [])
    param(args.get("protocol"), "-p")
    param(args.get("source"), "-s")
    param(args.get("destination"), "-d")
    for m in match:
        rule.extend(["-m", str(m)])
    param(args.get("jump"), "-j")
    if args.get("destination_ports"):
        rule.extend(["-m", "multiport", "--dports", ",".join(map(str, args["destination_ports"]))])
    param(args.get("in_interface"), "-i")
    param(args.get("out_interface"), "-o")
    param(args.get("source_port"), "--source-port")
    param(args.get("destination_port"), "--destination-port")
    if ctstate:
        if "conntrack" in match:
            rule.extend(["--ctstate", ",".join(ctstate)])
        elif "state" in match:
            rule.extend(["--state", ",".join(ctstate)])
        else:
            rule.extend(["-m", "conntrack", "--ctstate", ",".join(ctstate)])
    if args.get("comment"):
        rule.extend(["-m", "comment", "--comment", str(args["comment"])])
    return rule


def display_rule(args: dict) -> str:
    """The rule as a person reads it (close to ``iptables -S``); for the plan only."""
    words: list[str] = []

    def param(value, flag):
        if value not in (None, "", []):
            words.extend([flag, _show(str(value))])

    match = list(args.get("match") or [])
    ctstate = ",".join(args.get("ctstate") or [])
    for key, flag in (("protocol", "-p"), ("source", "-s"), ("destination", "-d"), ("in_interface", "-i"),
                      ("out_interface", "-o"), ("source_port", "--sport"), ("destination_port", "--dport")):
        param(args.get(key), flag)
    if args.get("destination_ports"):
        words.extend(["-m", "multiport", "--dports", ",".join(map(str, args["destination_ports"]))])
    for m in match:
        words.extend(["-m", str(m)])
        if ctstate and m in ("state", "conntrack"):
            words.extend(["--state" if m == "state" else "--ctstate", ctstate])
    if ctstate and not {"state", "conntrack"} & set(match):
        words.extend(["-m", "conntrack", "--ctstate", ctstate])
    if args.get("comment"):
        words.extend(["-m", "comment", "--comment", _show(str(args["comment"]))])
    param(args.get("jump"), "-j")
    return " ".join(words)


def binary(args: dict) -> str:
    return "ip6tables" if args.get("ip_version") == "ipv6" else "iptables"


class Iptables(Module):
    plans_from_reads = True  # (Module.plans_from_reads)
    plans_alike = True
    name = "iptables"
    pure_validate = True
    params = {
        "table": Param(default="filter", choices=("filter", "nat", "mangle", "raw", "security")),
        "chain": Param(check="iptables_chain"),
        "protocol": Param(),
        "source": Param(),
        "destination": Param(),
        "match": Param(type="list", default=[]),
        "jump": Param(check="iptables_chain"),
        "in_interface": Param(),
        "out_interface": Param(),
        "source_port": Param(check="port_range"),
        "destination_port": Param(check="port_range"),
        "destination_ports": Param(type="list", default=[], check="port_range"),
        "ctstate": Param(type="list", default=[]),
        "comment": Param(),
        "action": Param(default="append", choices=("append", "insert")),
        "rule_num": Param(type="int"),
        "state": Param(default="present", choices=("present", "absent")),
        "chain_management": Param(type="bool", default=False),
        "ip_version": Param(default="ipv4", choices=("ipv4", "ipv6")),
    }

    def resources(self, args: dict) -> set[str]:
        return {"iptables"}

    def validate(self, args, *, where=None):
        args = super().validate(args, where=where)
        if not args.get("chain"):
            from gfsdeploy.errors import PlaybookError

            raise PlaybookError("module 'iptables' needs argument 'chain'", field="chain",
                                fix="add `chain: INPUT` (or your chain's name) to the task", **(where or {}))
        return args

    @staticmethod
    def chain_only(args: dict) -> bool:
        return not any(args.get(k) for k in _RULE_ARGS)

    def probes(self, args: dict, host: HostInfo) -> dict[str, str]:
        ipt, table, chain = binary(args), q(args["table"]), q(args["chain"])
        probes = {
            # rc 127: no iptables at all; otherwise prints yes/no
            "chain": (f"command -v {ipt} >/dev/null 2>&1 || exit 127\n"
                      f"{ipt} -w -t {table} -S {chain} >/dev/null 2>&1 && echo yes || echo no"),
        }
        if not self.chain_only(args):
            probes["rule"] = f"{ipt} -w -t {table} -C {chain} {qjoin(build_rule(args))}"
        return probes

    def guards(self, args, facts, host):
        """A batch re-checks only what the plan uses: the chain's existence when the task
        manages the chain, and whether the rule exists (not the wording of the error
        when it does not: "Bad rule" vs "No chain" plan the same)."""
        from gfsdeploy.transport.base import Result

        probes = self.probes(args, host)
        out = {}
        if args.get("chain_management") or "rule" not in probes:
            out["chain"] = (probes["chain"], facts["chain"])
        if "rule" in probes and "rule" in facts:
            present = "present\n" if facts["rule"].rc == 0 else "absent\n"
            out["rule"] = (f"{probes['rule']} >/dev/null 2>&1 && echo present || echo absent", Result(0, present, ""))
        return out

    def read(self, args, facts, ctx):
        if facts["chain"].rc == 127:
            raise ModuleError(f"{binary(args)} is not installed", host=ctx.host.name, task=ctx.task_name,
                              fix="install the iptables package on the node (e.g. with a `package` task before this one)")
        state = {"chain": facts["chain"].stdout.strip() == "yes"}
        if "rule" in facts:
            state["rule"] = facts["rule"].rc == 0
            state["error"] = facts["rule"].stderr.strip()
        return state

    def plan(self, args: dict, state: dict, host: HostInfo) -> list[Change]:
        ipt, table, chain = binary(args), args["table"], args["chain"]
        base = [ipt, "-w", "-t", table]
        where = chain if table == "filter" else f"{table}/{chain}"
        if self.chain_only(args):
            if not args.get("chain_management"):
                return []
            if args["state"] == "present" and not state["chain"]:
                return [Change(ADD, f"iptables chain {where}",
                               script=f"{qjoin(base + ['-S', chain])} >/dev/null 2>&1 || "
                                      f"{qjoin(base + ['-N', chain])}")]
            if args["state"] == "absent" and state["chain"]:
                return [Change(DESTROY, f"iptables chain {where}", script=qjoin(base + ["-X", chain]))]
            return []
        rule = build_rule(args)
        shown = display_rule(args)
        changes = []
        if args["state"] == "present":
            if args.get("chain_management") and not state["chain"]:
                changes.append(Change(ADD, f"iptables chain {where}",
                                      script=f"{qjoin(base + ['-S', chain])} >/dev/null 2>&1 || "
                                             f"{qjoin(base + ['-N', chain])}"))
            if not state.get("rule"):
                if args["action"] == "insert":
                    verb = ["-I", chain] + ([str(args["rule_num"])] if args.get("rule_num") else [])
                else:
                    verb = ["-A", chain]
                changes.append(Change(ADD, f"iptables {'-I' if verb[0] == '-I' else '-A'} {where} {shown}",
                                      script=f"{qjoin(base + ['-C', chain] + rule)} 2>/dev/null || "
                                             f"{qjoin(base + verb + rule)}"))
        elif state.get("rule"):
            changes.append(Change(DESTROY, f"iptables -A {where} {shown}",
                                  script=f"while {qjoin(base + ['-C', chain] + rule)} 2>/dev/null; do "
                                         f"{qjoin(base + ['-D', chain] + rule)} || exit 1; done"))
        return changes


def _show(arg: str) -> str:
    return q(arg) if re.search(r"[^\w@%+=:,./-]", arg) else arg


# -- persistence -------------------------------------------------------------------
DEFAULT_PATHS = {"debian": "/etc/iptables/rules.v4", "redhat": "/etc/sysconfig/iptables"}


def normalize_save(text: str) -> list[str]:
    """iptables-save output without what changes on every save: comments and counters."""
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"^(:\S+ \S+) \[\d+:\d+\]$", r"\1", line)
        line = re.sub(r"^\[\d+:\d+\] ", "", line)
        lines.append(line)
    return lines


def chain_only(lines: list[str], chain: str) -> list[str]:
    """Of normalised ``iptables-save -t TABLE`` lines, only what restores ``chain``: the
    table header, the chain's declaration and rules, every rule elsewhere that jumps
    to it (written as ``-I`` so a boot-time ``iptables-restore --noflush`` puts it
    first, ahead of a distribution's final REJECT), and COMMIT. Nothing of the
    chains a service proxy, a container network or a firewall manager own, and no built-in policy."""
    out = []
    for line in lines:
        words = line.split()
        if line.startswith("*") or line == "COMMIT":
            out.append(line)
        elif words and words[0] == ":" + chain:
            out.append(f":{chain} - [0:0]")
        elif words[:1] == ["-A"] and len(words) > 1:
            if words[1] == chain:
                out.append(line)
            elif any(words[i] in ("-j", "-g") and words[i + 1] == chain for i in range(2, len(words) - 1)):
                out.append("-I" + line[2:])
    return out


# the same filter on the node, for the save at apply time (POSIX awk: mawk, gawk, busybox)
_CHAIN_ONLY_AWK = r"""/^\*/ {print; next}
/^COMMIT/ {print; next}
$1 == ":" c {print ":" c " - [0:0]"; next}
/^-A / { if ($2 == c) {print; next}
  for (i = 3; i < NF; i++) if (($i == "-j" || $i == "-g") && $(i + 1) == c) {sub(/^-A /, "-I "); print; next} }"""


class IptablesState(Module):
    """community.general.iptables_state (state: saved): write ``iptables-save`` to
    ``path`` only when the rules differ from the file. ``path`` defaults to the
    OS family's file (RHEL /etc/sysconfig/iptables, Debian /etc/iptables/rules.v4).

    gfsdeploy's ``chain:`` saves only that chain and the rules that jump to it
    (:func:`chain_only`), for a boot-time ``iptables-restore --noflush``: a full
    save would also capture those other managers' chains, and restoring those at boot brings
    back rules their owners have since replaced."""
    plans_from_reads = True  # (Module.plans_from_reads)

    name = "iptables_state"
    #: apply: one script (save, compare, write if different), then only its result
    batch_apply = True
    params = {
        "state": Param(default="saved", choices=("saved",)),
        "path": Param(type="path", default=""),
        "ip_version": Param(default="ipv4", choices=("ipv4", "ipv6")),
        "table": Param(default=""),
        "chain": Param(default="", check="iptables_chain",
                       help="save only this chain and the rules jumping to it (default: everything)"),
    }

    def resources(self, args: dict) -> set[str]:
        return {"iptables", "file:" + (args.get("path") or "/etc/iptables")}

    @staticmethod
    def path(args: dict, host: HostInfo) -> str:
        if args.get("path"):
            return args["path"]
        path = DEFAULT_PATHS.get(host.os_family)
        if args.get("ip_version") == "ipv6" and path:
            path = path.replace("rules.v4", "rules.v6").replace("iptables", "ip6tables", 1) \
                if host.os_family == "redhat" else path.replace("rules.v4", "rules.v6")
        if not path:
            raise ModuleError(f"no default iptables rules file for OS family {host.os_family!r}",
                              host=host.name, fix="set `path:` on the iptables_state task")
        return path

    def save_command(self, args: dict) -> str:
        save = "ip6tables-save" if args.get("ip_version") == "ipv6" else "iptables-save"
        table = args.get("table") or ("filter" if args.get("chain") else "")
        command = f"{save} -t {q(table)}" if table else save
        if args.get("chain"):
            command += f" | awk -v c={q(args['chain'])} {q(_CHAIN_ONLY_AWK)}"
        return command

    def _live(self, args: dict, text: str) -> list[str]:
        lines = normalize_save(text)
        # compared after the same normalisation as the file (the chain's "[0:0]" counters)
        return normalize_save("\n".join(chain_only(lines, args["chain"]))) if args.get("chain") else lines

    def probes(self, args, host):
        path = self.path(args, host)
        save = "ip6tables-save" if args.get("ip_version") == "ipv6" else "iptables-save"
        table = args.get("table") or ("filter" if args.get("chain") else "")
        return {"live": f"{save} -t {q(table)}" if table else save,
                "file": f"if [ -e {q(path)} ]; then echo __PRESENT__; cat {q(path)}; else echo __ABSENT__; fi"}

    def read(self, args, facts, ctx):
        if facts["live"].rc != 0:
            raise ModuleError(f"{self.save_command(args).split(' |')[0]} failed: {facts['live'].stderr.strip()}",
                              host=ctx.host.name, task=ctx.task_name,
                              fix="install the iptables package on the node")
        head, _, body = facts["file"].stdout.partition("\n")
        return {"live": facts["live"].stdout, "file": body if head == "__PRESENT__" else None}

    def plan(self, args, state, host):
        path = self.path(args, host)
        live = self._live(args, state["live"])
        if state["file"] is None:
            return [Change(ADD, path, diff=UNKNOWN, script=self._script(args, path))]
        have = normalize_save(state["file"])
        if have == live:
            return []
        diff = "\n".join(difflib.unified_diff(have, live, path, path + " (now; final rules known after apply)",
                                              lineterm=""))
        return [Change(CHANGE, path, diff=diff, script=self._script(args, path))]

    def decides_on_node(self, args, changes) -> bool:
        # the script saves the rules as they are when it runs, after the batch's rule
        # changes, and writes (and reports "saved") only if they differ from the file
        return bool(changes)

    def _script(self, args, path):
        # save at apply time (after this run's rule changes) and write only if the
        # rules differ, ignoring comments and counters
        strip = "grep -v '^#' | sed -e 's/ \\[[0-9]*:[0-9]*\\]$//'"
        directory = path.rsplit("/", 1)[0] or "/"
        return (f"mkdir -p {q(directory)}\n"
                f"new=$(mktemp {q(directory)}/.rules.XXXXXX) && {self.save_command(args)} > \"$new\" || exit 1\n"
                f"if [ -e {q(path)} ] && [ \"$({strip} < {q(path)})\" = \"$({strip} < \"$new\")\" ]; then\n"
                f"  rm -f \"$new\"; echo unchanged\n"
                f"else\n"
                f"  chmod 600 \"$new\"; mv \"$new\" {q(path)}; echo saved\n"
                f"fi")

    def apply(self, args, changes, ctx):
        from gfsdeploy.modules.base import TaskResult

        if not changes:
            return TaskResult(changed=False)
        result = ctx.run(changes[0].script, what=f"save iptables rules to {changes[0].resource}")
        return TaskResult(changed="saved" in result.stdout, rc=result.rc, stdout=result.stdout,
                          stderr=result.stderr)
