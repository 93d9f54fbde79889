"""iptables / iptables_state: rule building, plan tables, and the real thing in a private netns."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from gfsdeploy.errors import PlaybookError
from gfsdeploy.modules.base import HostInfo
from gfsdeploy.modules.iptables import Iptables, IptablesState, build_rule, normalize_save

HOST = HostInfo(name="k8s-2", os_family="debian")
RH = HostInfo(name="k8s-3", os_family="redhat")
MOD = Iptables()


def args(**kw):
    return MOD.validate(kw)


# Ansible's construct_rule order: what ansible.builtin.iptables would pass
@pytest.mark.parametrize("kw, rule", [
    ({"chain": "heketi", "protocol": "tcp", "destination_port": 24007, "match": ["state"],
      "ctstate": ["NEW"], "jump": "ACCEPT"},
     "-p tcp -m state -j ACCEPT --destination-port 24007 --state NEW"),
    ({"chain": "heketi", "protocol": "tcp", "destination_port": "49152:49251", "jump": "ACCEPT",
      "ctstate": ["NEW", "ESTABLISHED"]},
     "-p tcp -j ACCEPT --destination-port 49152:49251 -m conntrack --ctstate NEW,ESTABLISHED"),
    ({"chain": "heketi", "protocol": "tcp", "destination_ports": ["24007", "24008"], "jump": "ACCEPT",
      "source": "10.0.0.0/8", "in_interface": "eth0", "comment": "gluster mgmt"},
     "-p tcp -s 10.0.0.0/8 -j ACCEPT -m multiport --dports 24007,24008 -i eth0 -m comment --comment gluster mgmt"),
    ({"chain": "INPUT", "jump": "heketi", "action": "insert"}, "-j heketi"),
])
def test_build_rule(kw, rule):
    assert " ".join(build_rule(args(**kw))) == rule


@pytest.mark.parametrize("kw, state, expected", [
    # chain creation (chain_management with only a chain)
    ({"chain": "heketi", "chain_management": True}, {"chain": False},
     [("+", "iptables chain heketi", "iptables -w -t filter -S heketi >/dev/null 2>&1 || iptables -w -t filter -N heketi")]),
    ({"chain": "heketi", "chain_management": True}, {"chain": True}, []),
    ({"chain": "heketi", "chain_management": True, "state": "absent"}, {"chain": True},
     [("-", "iptables chain heketi", "iptables -w -t filter -X heketi")]),
    ({"chain": "heketi"}, {"chain": False}, []),  # no chain_management: Ansible does nothing
    # a missing rule is appended, guarded by -C at apply time
    ({"chain": "heketi", "protocol": "tcp", "destination_port": 24007, "jump": "ACCEPT"},
     {"chain": True, "rule": False},
     [("+", "iptables -A heketi -p tcp --dport 24007 -j ACCEPT",
       "iptables -w -t filter -C heketi -p tcp -j ACCEPT --destination-port 24007 2>/dev/null || "
       "iptables -w -t filter -A heketi -p tcp -j ACCEPT --destination-port 24007")]),
    ({"chain": "heketi", "protocol": "tcp", "destination_port": 24007, "jump": "ACCEPT"},
     {"chain": True, "rule": True}, []),
    # the jump the seed forgot, inserted at the top
    ({"chain": "INPUT", "jump": "heketi", "action": "insert"}, {"chain": True, "rule": False},
     [("+", "iptables -I INPUT -j heketi",
       "iptables -w -t filter -C INPUT -j heketi 2>/dev/null || iptables -w -t filter -I INPUT -j heketi")]),
    ({"chain": "INPUT", "jump": "heketi", "action": "insert", "rule_num": 2}, {"chain": True, "rule": False},
     [("+", "iptables -I INPUT -j heketi",
       "iptables -w -t filter -C INPUT -j heketi 2>/dev/null || iptables -w -t filter -I INPUT 2 -j heketi")]),
    # absent: delete every copy
    ({"chain": "heketi", "jump": "ACCEPT", "protocol": "tcp", "state": "absent"}, {"chain": True, "rule": True},
     [("-", "iptables -A heketi -p tcp -j ACCEPT",
       "while iptables -w -t filter -C heketi -p tcp -j ACCEPT 2>/dev/null; do "
       "iptables -w -t filter -D heketi -p tcp -j ACCEPT || exit 1; done")]),
    ({"chain": "heketi", "jump": "ACCEPT", "state": "absent"}, {"chain": True, "rule": False}, []),
    # ipv6, other table, quoting of a comment with spaces
    ({"chain": "PREROUTING", "table": "nat", "ip_version": "ipv6", "jump": "ACCEPT", "comment": "a b; rm"},
     {"chain": True, "rule": False},
     [("+", "iptables -A nat/PREROUTING -m comment --comment 'a b; rm' -j ACCEPT",
       "ip6tables -w -t nat -C PREROUTING -j ACCEPT -m comment --comment 'a b; rm' 2>/dev/null || "
       "ip6tables -w -t nat -A PREROUTING -j ACCEPT -m comment --comment 'a b; rm'")]),
    # chain_management with a rule: create the chain too
    ({"chain": "heketi", "chain_management": True, "jump": "ACCEPT"}, {"chain": False, "rule": False},
     [("+", "iptables chain heketi",
       "iptables -w -t filter -S heketi >/dev/null 2>&1 || iptables -w -t filter -N heketi"),
      ("+", "iptables -A heketi -j ACCEPT",
       "iptables -w -t filter -C heketi -j ACCEPT 2>/dev/null || iptables -w -t filter -A heketi -j ACCEPT")]),
])
def test_plan(kw, state, expected):
    changes = MOD.plan(args(**kw), state, HOST)
    assert [(c.action, c.resource, c.script) for c in changes] == expected


def test_probe_quotes_values():
    probes = MOD.probes(args(chain="heketi", jump="ACCEPT", comment="x'; reboot"), HOST)
    assert "-C heketi -j ACCEPT -m comment --comment 'x'\"'\"'; reboot'" in probes["rule"]


@pytest.mark.parametrize("kw, field", [
    ({"jump": "ACCEPT"}, "chain"),
    ({"chain": "heketi", "destination_port": "70000"}, "destination_port"),
    ({"chain": "heketi", "destination_port": "50:40"}, "destination_port"),
    ({"chain": "x;y"}, "chain"),
    ({"chain": "heketi", "dport": 1}, "dport"),
])
def test_validation_names_the_field(kw, field):
    with pytest.raises(PlaybookError) as err:
        MOD.validate(kw)
    assert err.value.field == field


# -- iptables_state -------------------------------------------------------------------
SAVE_A = """# Generated by iptables-save v1.8.9 (nf_tables) on Wed Nov 25 21:51:38 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [12:345]
:OUTPUT ACCEPT [0:0]
:heketi - [0:0]
-A INPUT -j heketi
-A heketi -p tcp -m state --state NEW -m tcp --dport 24007 -j ACCEPT
COMMIT
# Completed on Wed Nov 25 21:51:38 2026
"""
SAVE_B = SAVE_A.replace("21:51:38", "22:00:01").replace("[12:345]", "[99:1000]")
SAVE_C = SAVE_A.replace("-A INPUT -j heketi\n", "")


def test_normalize_ignores_comments_and_counters():
    assert normalize_save(SAVE_A) == normalize_save(SAVE_B)
    assert normalize_save(SAVE_A) != normalize_save(SAVE_C)


@pytest.mark.parametrize("host, kw, state, expected", [
    (HOST, {}, {"live": SAVE_A, "file": None}, [("+", "/etc/iptables/rules.v4")]),
    (RH, {}, {"live": SAVE_A, "file": None}, [("+", "/etc/sysconfig/iptables")]),
    (HOST, {}, {"live": SAVE_B, "file": SAVE_A}, []),
    (HOST, {}, {"live": SAVE_A, "file": SAVE_C}, [("~", "/etc/iptables/rules.v4")]),
    (RH, {"path": "/etc/my.rules"}, {"live": SAVE_A, "file": SAVE_C}, [("~", "/etc/my.rules")]),
])
def test_state_plan(host, kw, state, expected):
    module = IptablesState()
    changes = module.plan(module.validate(kw), state, host)
    assert [(c.action, c.resource) for c in changes] == expected
    if changes and changes[0].action == "~":
        assert "+-A INPUT -j heketi" in changes[0].diff


# -- the real thing: a private network namespace --------------------------------------------
REAL = textwrap.dedent("""
    import json, sys
    from gfsdeploy.modules.base import HostInfo, TaskContext
    from gfsdeploy.modules.iptables import Iptables, IptablesState
    from gfsdeploy.transport.local import LocalTransport

    host = HostInfo(name="k8s-2", os_family="debian")
    transport = LocalTransport("k8s-2")
    ctx = TaskContext(host, transport, task_name="t")
    path = sys.argv[1]
    tasks = [(Iptables(), {"chain": "heketi", "chain_management": True})]
    for port in [24007, 24008, 2222, "49152:49251"]:
        tasks.append((Iptables(), {"chain": "heketi", "protocol": "tcp", "destination_port": port,
                                   "match": ["state"], "ctstate": ["NEW"], "jump": "ACCEPT"}))
    tasks.append((Iptables(), {"chain": "INPUT", "jump": "heketi", "action": "insert"}))
    tasks.append((IptablesState(), {"path": path}))

    def rounds():
        planned = []
        for module, raw in tasks:
            args = module.validate(raw)
            state = module.read(args, transport.read_many(module.probes(args, host)), ctx)
            changes = module.plan(args, state, host)
            planned += [c.action + " " + c.resource for c in changes]
            result = module.apply(args, changes, ctx)
        return planned

    first = rounds()
    mark = len(transport.command_log)
    second = rounds()
    changing = [r.script for r in transport.command_log[mark:] if r.kind == "run"]
    import subprocess
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    print(json.dumps({"first": first, "second": second, "rules": rules, "second_runs": changing}))
""")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("unshare"),
                    reason="needs root, iptables and unshare")
def test_real_iptables_in_private_netns(tmp_path):
    path = tmp_path / "rules.v4"
    proc = subprocess.run(["unshare", "--net", sys.executable, "-c", REAL, str(path)],
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("cannot create a network namespace here")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["first"] == [
        "+ iptables chain heketi",
        "+ iptables -A heketi -p tcp --dport 24007 -m state --state NEW -j ACCEPT",
        "+ iptables -A heketi -p tcp --dport 24008 -m state --state NEW -j ACCEPT",
        "+ iptables -A heketi -p tcp --dport 2222 -m state --state NEW -j ACCEPT",
        "+ iptables -A heketi -p tcp --dport 49152:49251 -m state --state NEW -j ACCEPT",
        "+ iptables -I INPUT -j heketi",
        f"+ {path}",
    ]
    assert out["second"] == []          # no duplicates, nothing to do
    assert out["second_runs"] == []     # and no changing command at all on the re-run
    assert out["rules"].splitlines()[3:] == [
        "-N heketi",
        "-A INPUT -j heketi",
        "-A heketi -p tcp -m state --state NEW -m tcp --dport 24007 -j ACCEPT",
        "-A heketi -p tcp -m state --state NEW -m tcp --dport 24008 -j ACCEPT",
        "-A heketi -p tcp -m state --state NEW -m tcp --dport 2222 -j ACCEPT",
        "-A heketi -p tcp -m state --state NEW -m tcp --dport 49152:49251 -j ACCEPT",
    ]
    saved = path.read_text()
    assert "-A heketi -p tcp -m state --state NEW -m tcp --dport 49152:49251 -j ACCEPT" in saved
    assert oct(path.stat().st_mode & 0o777) == "0o600"
