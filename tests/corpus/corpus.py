"""Running a playbook *tree* (roles/, library/, group_vars/, host_vars/, an INI
inventory beside its own group_vars/) under ansible-playbook and gfsdeploy on the two
sides of a :class:`tests.ansible_compat.harness.Compat` lab, and watching what a plan
runs on a node (a command-logging ``kubectl`` and login shell)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

from tests.ansible_compat.harness import DUMP_PATH, DUMP_TASK, Check, Pair, Spec

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
KUBECTL = "/usr/local/bin/kubectl"
KUBECTL_LOG = "/var/log/corpus-kubectl.log"
LOGSH = "/usr/local/sbin/corpus-logsh"
SHELL_LOG = "/var/log/corpus-commands.log"


def ini_inventory(compat, side: str, groups: dict, host_vars: dict | None = None,
                  group_vars: dict | None = None) -> str:
    """An Ansible INI inventory: every host in [all] with its address, ``groups`` as
    sections; a group whose members are groups becomes ``[name:children]``."""
    lines = ["[all]"]
    for name, node in zip(compat.names, compat.sides[side]):
        extra = " ".join(f"{k}={v}" for k, v in ((host_vars or {}).get(name) or {}).items())
        lines.append(f"{name} ansible_host={node.ip} {extra}".rstrip())
    for group, members in groups.items():
        children = all(m in groups for m in members)
        lines += ["", f"[{group}:children]" if children else f"[{group}]", *members]
    for group, values in (group_vars or {}).items():
        lines += ["", f"[{group}:vars]", *(f"{k}={v}" for k, v in values.items())]
    lines += ["", "[all:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={compat.lab.key_path}",
              "ansible_python_interpreter=/usr/bin/python3",
              f"gfsdeploy_known_hosts={compat.lab.known_hosts_path}", ""]
    return "\n".join(lines)


class Tree:
    """One copy of a data/ tree per side (``<workdir>/<name>-<side>``)."""

    def __init__(self, compat, name: str, *, groups: dict, host_vars: dict | None = None,
                 group_vars: dict | None = None):
        self.compat, self.name = compat, name
        self.dirs = {}
        for side in compat.sides:
            target = compat.workdir / f"{name}-{side}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(DATA / name, target)
            (target / "inv").mkdir(exist_ok=True)
            (target / "inv" / "hosts.ini").write_text(ini_inventory(compat, side, groups, host_vars, group_vars))
            self.dirs[side] = target

    def inventory(self, side: str) -> Path:
        return self.dirs[side] / "inv" / "hosts.ini"

    def playbook(self, side: str, playbook: str, registered=()) -> Path:
        """The playbook with a last play dumping ``registered`` (as the harness does)."""
        text = (self.dirs[side] / playbook).read_text()
        if registered:
            mapping = ", ".join(f"{n!r}: ({n} if {n} is defined else 'UNDEFINED')" for n in registered)
            text += textwrap.dedent(f"""
                - hosts: all
                  gather_facts: false
                  tasks:
                    - name: "{DUMP_TASK}"
                      copy:
                        dest: {DUMP_PATH}
                        content: "{{{{ {{{mapping}}} }}}}"
                """)
        path = self.dirs[side] / f"run-{playbook}"
        path.write_text(text)
        return path

    def run_both(self, playbook: str, *, state: Spec, registered=(), ignore=()) -> Pair:
        compat = self.compat
        runs = {}
        for side, tool in (("ansible", compat.ansible), ("gfsdeploy", compat.gfsdeploy)):
            run = tool(self.playbook(side, playbook, registered), self.inventory(side))
            run.tasks = {k: v for k, v in run.tasks.items() if k[0] != DUMP_TASK}
            run.state = compat.state(side, state)
            if registered:
                run.registered = compat.registered(side)
            runs[side] = run
        return Pair(runs["ansible"], runs["gfsdeploy"], ignore=tuple(ignore))

    def plan_vs_check(self, playbook: str) -> Check:
        compat = self.compat
        a = compat.ansible(self.playbook("ansible", playbook), self.inventory("ansible"), check=True, diff=True)
        g = compat.gfsdeploy(self.playbook("gfsdeploy", playbook), self.inventory("gfsdeploy"), mode="plan")
        return Check(a, g)


# -- what a plan runs on a node ---------------------------------------------------------------
def _give_kubectl(compat, side: str, host: str) -> None:
    """The lab gives its first node kubectl and a kubeconfig; copy both to ``host``'s node
    (through the nodes' roots as the lab host sees them)."""
    first, node = compat.lab.nodes[0], compat.node(side, host)
    if node.name == first.name:
        return
    src, dst = f"/proc/{first.init_pid}/root", f"/proc/{node.init_pid}/root"
    subprocess.run(["sh", "-c", f'[ -e "{dst}{KUBECTL}" ] || [ -e "{dst}{KUBECTL}.real" ] || '
                                f'{{ mkdir -p "{dst}/usr/local/bin" "{dst}/root/.kube" && '
                                f'cp "{src}{KUBECTL}" "{dst}{KUBECTL}" && '
                                f'cp "{src}/root/.kube/config" "{dst}/root/.kube/config"; }}'], check=True)


def install_loggers(compat, side: str, host: str) -> None:
    """``kubectl`` on the node logs its arguments before running; root's login shell (sshd
    runs every command through it) logs each command it is given."""
    _give_kubectl(compat, side, host)
    compat.exec(side, host, f"""
        [ -e {KUBECTL}.real ] || mv {KUBECTL} {KUBECTL}.real
        printf '%s\\n' '#!/bin/sh' 'printf "%s\\n" "$*" >> {KUBECTL_LOG}' 'exec {KUBECTL}.real "$@"' > {KUBECTL}
        chmod 755 {KUBECTL}
        printf '%s\\n' '#!/bin/sh' 'printf "%s\\n" "$*" | head -c 200 >> {SHELL_LOG}; echo >> {SHELL_LOG}' \
            'exec /bin/sh "$@"' > {LOGSH}
        chmod 755 {LOGSH}
        sed -i 's#^root:\\(.*\\):[^:]*$#root:\\1:{LOGSH}#' /etc/passwd
        rm -f {KUBECTL_LOG} {SHELL_LOG}
    """)


def remove_loggers(compat, side: str, host: str) -> None:
    compat.exec(side, host, f"""
        sed -i 's#^root:\\(.*\\):[^:]*$#root:\\1:/bin/bash#' /etc/passwd
        if [ -e {KUBECTL}.real ]; then mv -f {KUBECTL}.real {KUBECTL}; fi
        rm -f {LOGSH}
    """)


def logged(compat, side: str, host: str, log: str, clear: bool = True) -> list[str]:
    out = compat.exec(side, host, f"cat {log} 2>/dev/null; {'rm -f ' + log if clear else 'true'}").stdout
    return [line for line in out.splitlines() if line.strip()]
