"""The benchmark workload (bench/workload.yaml) as a pyinfra deploy: same files,
same modes, same iptables rules, same rendered templates."""

from io import StringIO

from pyinfra import host, inventory
from pyinfra.operations import files, iptables

CHAIN = "gfsbench"
PORTS = [24007, 24008, 2222, "49152:49251"]

nodes = [(h.data.name, h.data.storage_ip) for h in inventory.get_group("gluster")]
hostvars = {name: {"storage_ip": ip} for name, ip in nodes}
groups = {"gluster": [name for name, _ in nodes]}

files.block(
    name="Storage nodes in /etc/hosts",
    path="/etc/hosts",
    content="\n".join(f"{ip} {name}" for name, ip in nodes),
    marker="# {mark} gfsbench storage nodes",
)

files.put(
    name="Kernel modules loaded at boot",
    src=StringIO("dm_thin_pool\ndm_snapshot\ndm_mirror\n"),
    dest="/etc/modules-load.d/gfsbench.conf",
    mode="644",
)

iptables.chain(name="Firewall chain exists", chain=CHAIN)

for port in PORTS:
    iptables.rule(
        name=f"Port {port} open in the chain",
        chain=CHAIN,
        jump="ACCEPT",
        protocol="tcp",
        destination_port=port,
        extras="-m state --state NEW",
    )

iptables.rule(name="INPUT jumps to the chain", chain="INPUT", jump=CHAIN, append=False)

files.directory(name="Config directory", path="/etc/gfsbench", mode="755")

for i in range(1, 21):
    files.template(
        name=f"Templated file {i}",
        src="bench/templates/bench.conf.j2",
        dest=f"/etc/gfsbench/file-{i}.conf",
        mode="644",
        item=i,
        inventory_hostname=host.data.name,
        storage_ip=host.data.storage_ip,
        groups=groups,
        hostvars=hostvars,
    )
