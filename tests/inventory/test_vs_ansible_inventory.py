"""Inventories read by gfsdeploy and by ``ansible-inventory --list`` (ansible-core, a
test dependency): the same hosts, groups and merged variables, with group_vars/
and host_vars/ beside the inventory and beside the playbook."""

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from gfsdeploy.inventory import load_inventory

CASES = {
    "ini_everything": {
        "inv/hosts.ini": """\
            # comment
            ; another
            lonely a=1 flag=True
            [web]
            web[01:03].example.com http_port=80 lst="[1, 2]" s='hello world' t=FALSE n=010 f=1.5 d="{'k': 'v'}"
            db_1 ansible_host=10.0.0.5 # trailing comment
            host.with:2200 x=y
            odd_port:2201 ansible_port=2202
            [web:vars]
            gv = some value with spaces
            gb=true
            gi=42
            gq="quoted"
            gl=[1,2]
            gn=None
            [db]
            db_1 extra=1
            db-[a:c]
            [stack:children]
            web
            db
            [stack:vars]
            gv=parent
            only_parent=1
            [all:vars]
            gv=all
            [empty]
            [web:children]
            """,
        "inv/group_vars/web.yml": "from_gv_dir: web\ngi: 43\n",
        "inv/group_vars/all/main.yml": "from_all_dir: 1\ngv: all-dir\n",
        "inv/group_vars/all/zz.yaml": "from_all_dir: 2\n",
        "inv/host_vars/db_1": "from_hv: 1\n",
        "inv/host_vars/lonely.json": '{"j": [1, {"k": null}]}',
        "pb/group_vars/all.yml": "pb_all: 1\nfrom_all_dir: pb\n",
        "pb/group_vars/db.yml": "gi: pb-db\n",
        "pb/host_vars/db-a.yml": "from_hv: pb\n",
    },
    "yaml_nested": {
        "inv/inventory.yaml": """\
            all:
              vars: {level: all, a: 0}
              hosts:
                solo:
                node_x:2222:
              children:
                k8s:
                  vars: {level: k8s}
                  children:
                    masters:
                      hosts:
                        m[1:2]: {role: master}
                      vars: {level: masters, a: 1}
                    workers:
                      hosts:
                        w[01:03]:
                        m1: {extra: yes}
                gluster:
                  hosts:
                    w01:
                    w02: {ansible_host: 10.1.0.2}
            other:
              hosts:
                elsewhere: {z: 1}
            """,
        "inv/group_vars/masters.yml": "a: 2\n",
        "inv/group_vars/k8s/one.yml": "level: k8s-dir\nk: 1\n",
        "inv/group_vars/k8s/two.yml": "k: 2\n",
    },
    "directory_of_sources": {
        "inv/10-hosts.ini": "[a]\nh1\n[a:vars]\nx=ini\n",
        "inv/20-more.yml": "all:\n  children:\n    b:\n      hosts:\n        h2:\n        h1: {y: 1}\n",
        "inv/hosts": "[c]\nh3 z=3\n[c:children]\na\n",
        "inv/notes.cfg": "[ignored]\nnever\n",
        "inv/group_vars/c.yml": "x: c-dir\n",
    },
    "group_priority_and_depth": {
        "inv/hosts.ini": """\
            [zeta]
            h
            [alpha]
            h
            [prio]
            h
            [prio:vars]
            ansible_group_priority=10
            v=prio
            [zeta:vars]
            v=zeta
            [alpha:vars]
            v=alpha
            w=alpha
            [parent:children]
            zeta
            [parent:vars]
            w=parent
            """,
    },
}

# The precedence ladder: variable vK is set at layers 1..K; layer K must win, for every K.
LADDER = ["inventory file: group all", "inventory file: parent group", "inventory file: child group",
          "inventory group_vars/all", "playbook group_vars/all", "inventory group_vars/parent",
          "inventory group_vars/child", "playbook group_vars/parent", "playbook group_vars/child",
          "inventory file: host", "inventory host_vars", "playbook host_vars"]


def _ladder() -> dict:
    def values(layer):
        return {f"v{k}": f"{layer}" for k in range(layer, len(LADDER)) }

    def yaml_text(layer):
        return "".join(f"{k}: '{v} {LADDER[layer]}'\n" for k, v in values(layer).items())

    def ini_vars(layer):
        return "".join(f"{k}='{v} {LADDER[layer]}'\n" for k, v in values(layer).items())

    host_vars = " ".join(f"{k}='{v}-host'" for k, v in values(9).items())
    return {
        "inv/hosts.ini": ("[child]\nh " + host_vars + "\n[parent:children]\nchild\n"
                          "[all:vars]\n" + ini_vars(0) + "[parent:vars]\n" + ini_vars(1) +
                          "[child:vars]\n" + ini_vars(2)),
        "inv/group_vars/all.yml": yaml_text(3),
        "pb/group_vars/all.yml": yaml_text(4),
        "inv/group_vars/parent.yml": yaml_text(5),
        "inv/group_vars/child/vars.yml": yaml_text(6),
        "pb/group_vars/parent.yaml": yaml_text(7),
        "pb/group_vars/child": yaml_text(8),
        "inv/host_vars/h.yml": yaml_text(10),
        "pb/host_vars/h.json": json.dumps({k: f"{v} {LADDER[11]}" for k, v in values(11).items()}),
    }


CASES["precedence_ladder"] = _ladder()


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / "pb").mkdir(exist_ok=True)


def _inventory_arg(root):
    inv = root / "inv"
    sources = [p for p in inv.iterdir() if p.is_file()]
    return str(inv) if len(sources) > 1 else str(sources[0])


def _ansible(inventory, playbook_dir):
    exe = shutil.which("ansible-inventory")
    assert exe, "ansible-core is a test dependency (pip install ansible-core)"
    proc = subprocess.run([exe, "-i", inventory, "--list", "--playbook-dir", playbook_dir],
                          capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _members(data, group):
    """A group's hosts, descendants included (Ansible's --list shows direct ones)."""
    out = list(data.get(group, {}).get("hosts", []))
    for child in data.get(group, {}).get("children", []):
        out += [h for h in _members(data, child) if h not in out]
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_hosts_groups_and_variables(tmp_path, case):
    _write(tmp_path, CASES[case])
    inventory = _inventory_arg(tmp_path)
    expected = _ansible(inventory, str(tmp_path / "pb"))
    mine = load_inventory(inventory, playbook_dir=str(tmp_path / "pb"))
    theirs = expected["_meta"]["hostvars"]
    assert sorted(mine.hosts) == sorted(set(_members(expected, "all")))
    for host in mine.hosts:
        assert mine.hosts[host].vars == theirs.get(host, {}), host
    if case == "precedence_ladder":  # the test itself must be able to fail: each layer won once
        winners = {str(mine.hosts["h"].vars[f"v{k}"]).split()[0].split("-")[0] for k in range(len(LADDER))}
        assert winners == {str(k) for k in range(len(LADDER))}
    groups = {g for g in expected if g != "_meta"}
    assert groups <= set(mine.groups)
    for group in groups:
        assert sorted(mine.groups[group]) == sorted(_members(expected, group)), group
        # a group's own hosts come first, in file order
        direct = expected[group].get("hosts", [])
        assert mine.groups[group][:len(direct)] == direct, group
