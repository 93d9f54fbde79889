"""Inventory loading: INI and YAML details, errors with file:line, patterns."""

import os
import textwrap

import pytest

from gfsdeploy import hostrange
from gfsdeploy.errors import InventoryError
from gfsdeploy.inventory import load_inventory


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("pattern,expected", [
    ("node[1:3]", ["node1", "node2", "node3"]),
    ("web[01:10:4].lab", ["web01.lab", "web05.lab", "web09.lab"]),
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("r[1:2]c[a:b]", ["r1ca", "r1cb", "r2ca", "r2cb"]),
    ("[:2]x", ["0x", "1x", "2x"]),
    ("plain_name", ["plain_name"]),
])
def test_host_ranges(pattern, expected):
    assert hostrange.expand(pattern) == expected


@pytest.mark.parametrize("pattern,message", [
    ("n[01:3]", "same width"), ("n[3:1]", "after its end"), ("n[1:]", "no end"), ("n[a:3]", "single letters"),
    ("n[1:3", "[START:END]"),
])
def test_bad_host_ranges(pattern, message):
    with pytest.raises(hostrange.HostRangeError, match=message):
        hostrange.expand(pattern)


@pytest.mark.parametrize("text,port", [("h:22", ("h", 22)), ("10.0.0.1:2200", ("10.0.0.1", 2200)),
                                       ("fe80::1", ("fe80::1", None)), ("[fe80::1]:22", ("fe80::1", 22)),
                                       ("n[1:2]:99", ("n[1:2]", 99)), ("plain", ("plain", None))])
def test_host_port(text, port):
    assert hostrange.split_port(text) == port


@pytest.mark.parametrize("text,line,message", [
    ("[web\nh1\n", 1, "invalid section header"),
    ("[web:weird]\nh1\n", 1, "unknown type 'weird'"),
    ("[web]\nh1 novalue\n", 2, "expected key=value after the host name"),
    ("[web]\nh1 a='unclosed\n", 2, "cannot parse the host line"),
    ("[web]\nh1\n[web:vars]\nnot an assignment\n", 4, "expected key=value in [web:vars]"),
    ("[web]\nh1\n[ghost:vars]\nx=1\n", 3, "[ghost:…] is for a group defined nowhere"),
    ("[web]\nh[01:3]\n", 2, "bad host range"),
    ("[a:children]\nb\n[b:children]\na\n[b]\nh\n", 4, "contains itself"),
    ("[web:children]\nchild ; comment\n", 2, "expected a group name"),
    ("[web]\nh1 ansible_port=http\n", 2, "'http' is not a port number"),
    ("[web]\nbad/name\n", 2, "bad host name"),
])
def test_ini_errors_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "hosts", text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert message in caught.value.message
    assert (caught.value.file, caught.value.line) == (path, line)


def test_ini_values_and_underscored_names(tmp_path):
    path = write(tmp_path, "hosts.ini", """\
        storage_node_1 ansible_host=10.0.0.1 devices="['/dev/vdb']" enabled=True label=yes
        [k8s_workers]
        storage_node_1
        worker_2:2222
        [k8s_workers:vars]
        cidr = 10.244.0.0/16
        count=3
        """)
    inventory = load_inventory(path)
    node = inventory.hosts["storage_node_1"]
    assert node.vars == {"ansible_host": "10.0.0.1", "devices": ["/dev/vdb"], "enabled": True, "label": "yes",
                         "cidr": "10.244.0.0/16", "count": 3}
    assert inventory.hosts["worker_2"].port == 2222
    assert inventory.groups["k8s_workers"] == ["storage_node_1", "worker_2"]
    assert inventory.groups["ungrouped"] == []
    assert node.groups == ["k8s_workers"]


def test_group_vars_and_host_vars_beside_inventory_and_playbook(tmp_path):
    inv = write(tmp_path, "inventory/hosts.yaml", """\
        all:
          children:
            storage:
              hosts:
                n1: {ansible_connection: local}
                n2: {ansible_connection: local}
        """)
    write(tmp_path, "inventory/group_vars/all.yml", "level: inventory-all\nkey_file: keys/id\n")
    write(tmp_path, "inventory/group_vars/storage/10.yml", "level: inventory-storage\n")
    write(tmp_path, "inventory/host_vars/n2.yaml", "level: inventory-n2\nansible_ssh_private_key_file: keys/n2\n")
    write(tmp_path, "play/group_vars/storage.yml", "level: playbook-storage\nfrom_pb: true\n")
    write(tmp_path, "play/host_vars/n1", "only_n1: 1\n")
    inventory = load_inventory(inv)
    assert inventory.hosts["n1"].vars["level"] == "inventory-storage"
    assert "from_pb" not in inventory.hosts["n1"].vars
    inventory.use_playbook_dir(str(tmp_path / "play"))
    n1, n2 = inventory.hosts["n1"].vars, inventory.hosts["n2"].vars
    assert (n1["level"], n1["from_pb"], n1["only_n1"]) == ("playbook-storage", True, 1)
    assert n2["level"] == "inventory-n2" and "only_n1" not in n2
    # controller paths are relative to the inventory directory
    assert n2["ansible_ssh_private_key_file"] == str(tmp_path / "inventory" / "keys" / "n2")
    labels = [label for label, _ in inventory.host_layers("n2")]
    assert labels == [str(tmp_path / "inventory/group_vars/all.yml"),
                      str(tmp_path / "inventory/group_vars/storage/10.yml"),
                      str(tmp_path / "play/group_vars/storage.yml"),
                      "inventory vars of host n2",
                      str(tmp_path / "inventory/host_vars/n2.yaml")]


def test_group_vars_error_is_located(tmp_path):
    inv = write(tmp_path, "hosts.ini", "[g]\nh ansible_connection=local\n")
    bad = write(tmp_path, "group_vars/g.yml", "ok: 1\nansible_port: notaport\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(inv)
    assert (caught.value.file, caught.value.line) == (bad, 2)
    write(tmp_path, "group_vars/g.yml", "- a list\n")
    with pytest.raises(Exception) as caught:
        load_inventory(inv)
    assert "must be a mapping" in str(caught.value) and "g.yml" in str(caught.value)


def test_yaml_top_level_groups_ranges_and_patterns(tmp_path):
    path = write(tmp_path, "inv.yml", """\
        web:
          hosts:
            web[1:3]:
        db:
          hosts:
            db_1:
          children:
            replica:
              hosts: {db_2: {}}
        """)
    inventory = load_inventory(path)
    assert inventory.groups["web"] == ["web1", "web2", "web3"]
    assert inventory.select("web[0]") == ["web1"]
    assert inventory.select("web[1:2]") == ["web2", "web3"]
    assert inventory.select("~web[13]") == ["web1", "web3"]
    assert inventory.select("db:!replica") == ["db_1"]
    assert inventory.select("web:&web2") == ["web2"]
    assert inventory.groups["all"] == ["web1", "web2", "web3", "db_1", "db_2"]
    assert sorted(inventory.hosts["db_2"].groups) == ["db", "replica"]


def test_exclusions_and_intersections_apply_after_the_plain_terms_as_in_ansible(tmp_path):
    """Ansible orders a pattern's terms: plain ones, then `&`, then `!`; with no plain
    term it starts from `all`. gfsdeploy applied them as written: `--limit '!db_2'`
    selected no host (and the run said "No changes"), `!web1,web` selected web1."""
    path = write(tmp_path, "inv.yml", """\
        web: {hosts: {web1: {}, web2: {}}}
        db: {hosts: {db_1: {}, db_2: {}}}
        """)
    inventory = load_inventory(path)
    assert inventory.select("!db_2") == ["web1", "web2", "db_1"]
    assert inventory.select("!web1,web") == ["web2"]
    assert inventory.select("&db,all") == ["db_1", "db_2"]
    assert inventory.select("!db_1:&db") == ["db_2"]
    assert inventory.limit("!web") == ["db_1", "db_2"]
    with pytest.raises(InventoryError, match="--limit 'web:&db' leaves no host to run on") as err:
        inventory.limit("web:&db")
    assert err.value.fix and "all:!x" in err.value.fix


def test_host_list_and_directory_and_refusals(tmp_path):
    inventory = load_inventory("a,b:2222,")
    assert list(inventory.hosts) == ["a", "b"] and inventory.hosts["b"].port == 2222
    script = write(tmp_path, "dyn/inventory", "#!/bin/sh\necho '{}'\n")
    os.chmod(script, 0o755)
    with pytest.raises(InventoryError, match="dynamic"):
        load_inventory(script)
    empty = tmp_path / "emptydir"
    empty.mkdir()
    with pytest.raises(InventoryError, match="holds no inventory file"):
        load_inventory(str(empty))
    top = write(tmp_path, "top.yml", "hosts:\n  a:\n")
    with pytest.raises(InventoryError, match="no top-level `all:` group"):
        load_inventory(top)


def test_vars_directories_are_looked_for_per_directory_and_kind(tmp_path):
    # the merge looks for each group_vars/host_vars directory once (VarsDirCache.merging):
    # the inventory's side has only host_vars, the playbook's only group_vars
    inv = write(tmp_path, "inventory/hosts.yaml", """\
        all:
          hosts:
            n1: {ansible_connection: local}
            n2: {ansible_connection: local}
        """)
    write(tmp_path, "inventory/host_vars/n1.yml", "from_inventory_host_vars: n1\n")
    write(tmp_path, "play/group_vars/all.yml", "from_play_group_vars: all\n")
    inventory = load_inventory(inv)
    inventory.use_playbook_dir(str(tmp_path / "play"))
    n1, n2 = inventory.hosts["n1"].vars, inventory.hosts["n2"].vars
    assert n1["from_inventory_host_vars"] == "n1" and "from_inventory_host_vars" not in n2
    assert n1["from_play_group_vars"] == n2["from_play_group_vars"] == "all"
    # after the merge a directory is looked for again
    write(tmp_path, "inventory/group_vars/all.yml", "late: yes\n")
    assert any(label.endswith("group_vars/all.yml") and data == {"late": True}
               for label, data in inventory.host_layers("n2"))


def test_playbook_dir_that_is_the_inventory_dir_counts_once(tmp_path):
    inv = write(tmp_path, "inventory/hosts.yaml", "all: {hosts: {n1: {ansible_connection: local}}}\n")
    write(tmp_path, "inventory/host_vars/n1.yml", "x: 1\n")
    (tmp_path / "link").symlink_to(tmp_path / "inventory")
    inventory = load_inventory(inv)
    inventory.use_playbook_dir(str(tmp_path / "link"))
    assert [label for label, _ in inventory.host_layers("n1") if "host_vars" in label] == \
        [str(tmp_path / "inventory/host_vars/n1.yml")]
