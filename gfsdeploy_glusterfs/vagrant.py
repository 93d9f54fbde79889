"""`gfsdeploy inventory from-vagrant`: an inventory for the Vagrant lab built
from what Vagrant reports (`vagrant ssh-config`: address, port, user, key of
each running VM) and the lab's storage settings (inventory/vagrant.yaml and
the Vagrantfile's variables), so either provider works without hand edits."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import yaml

from gfsdeploy.errors import GfsError

PROVIDERS = ("virtualbox", "libvirt")
#: where each provider puts the VMs' second disk (see the Vagrantfile)
DEFAULT_DEVICES = {"virtualbox": ["/dev/sdb"], "libvirt": ["/dev/vdb"]}
#: the Vagrantfile's defaults, used when a setting is missing from it
VAGRANTFILE_DEFAULTS = {"BOX": "debian/bookworm64", "KUBERNETES_VERSION": "1.25", "NODE_COUNT": 3,
                        "NETWORK": "192.168.186", "FIRST_IP": 10, "CPUS": 2, "MEMORY_MB": 2048, "DISK_GB": 10}
# NAME = ENV.fetch("GFS_NAME", "default")   or   NAME = Integer(ENV.fetch("GFS_NAME", "3"))
_SETTING = re.compile(r'^([A-Z][A-Z0-9_]*)\s*=\s*(Integer\()?\s*ENV\.fetch\(\s*"([A-Za-z0-9_]+)"\s*,\s*"([^"]*)"\s*\)\s*\)?\s*$')
_MACHINE_KEY = re.compile(r"[/\\]\.vagrant[/\\]machines[/\\]([^/\\]+)[/\\]([^/\\]+)[/\\]private_key$")


@dataclass
class SshHost:
    """One `Host` block of `vagrant ssh-config`."""
    name: str
    hostname: str = ""
    port: int = 22
    user: str = ""
    identity_files: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


def parse_ssh_config(text: str) -> list[SshHost]:
    """Parse OpenSSH client config as Vagrant prints it: `Host` blocks of
    `Keyword value` lines (keywords case-insensitive, values maybe quoted)."""
    hosts: list[SshHost] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$", line)
        if not match:
            raise GfsError(f"cannot read line {number} of `vagrant ssh-config` output: {raw!r}",
                           fix="run `vagrant ssh-config` yourself and check its output")
        key, value = match.group(1).lower(), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key == "host":
            hosts.append(SshHost(name=value))
            continue
        if not hosts:
            continue  # a warning printed before the first block
        host = hosts[-1]
        if key == "hostname":
            host.hostname = value
        elif key == "user":
            host.user = value
        elif key == "port":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise GfsError(f"host {host.name}: `Port {value}` in `vagrant ssh-config` output is not a port",
                               fix="check the machine's SSH settings in the Vagrantfile")
            host.port = int(value)
        elif key == "identityfile":
            host.identity_files.append(value)
        else:
            host.options[match.group(1)] = value
    return hosts


def read_vagrantfile(path: str, env: dict | None = None) -> dict:
    """The settings at the top of the lab's Vagrantfile, resolved the way the
    Vagrantfile resolves them (environment variable, else the default)."""
    env = os.environ if env is None else env
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise GfsError(f"cannot read {path}: {exc.strerror}", file=path,
                       fix="run from the directory with the lab's Vagrantfile, or pass --dir") from None
    settings = dict(VAGRANTFILE_DEFAULTS)
    for line in text.splitlines():
        match = _SETTING.match(line.strip())
        if not match:
            continue
        name, integer, variable, default = match.groups()
        value = env.get(variable, default)
        if integer:
            try:
                value = int(value)
            except ValueError:
                raise GfsError(f"{variable}={value!r} is not a whole number", file=path, field=name,
                               fix=f"set {variable} to a number or unset it") from None
        settings[name] = value
    return settings


def machines(settings: dict) -> dict[str, str]:
    """VM name -> private-network IP, as the Vagrantfile assigns them."""
    return {f"k8s-{i}": f"{settings['NETWORK']}.{settings['FIRST_IP'] + i - 1}"
            for i in range(1, settings["NODE_COUNT"] + 1)}


def detect_provider(hosts: list[SshHost], directory: str) -> str | None:
    """The provider the machines run on: from the per-machine key path, else
    from Vagrant's state directory (.vagrant/machines/NAME/PROVIDER/id)."""
    found = set()
    for host in hosts:
        for key in host.identity_files:
            match = _MACHINE_KEY.search(key)
            if match:
                found.add(match.group(2))
        state = os.path.join(directory, ".vagrant", "machines", host.name)
        if os.path.isdir(state):
            found |= {p for p in os.listdir(state) if os.path.exists(os.path.join(state, p, "id"))}
    return found.pop() if len(found) == 1 else None


def build_inventory(hosts: list[SshHost], base: dict | None, settings: dict, provider: str,
                    base_dir: str = ".") -> dict:
    """Merge the connection settings Vagrant reports into the lab inventory:
    storage IPs, zones and groups come from `base`; devices from its
    `vagrant_devices[provider]`; hosts unknown to `base` get the Vagrantfile's
    IP scheme, zone 1, and join `gluster` (and `k8s_node`)."""
    base_all = dict((base or {}).get("all") or {})
    base_vars = dict(base_all.get("vars") or {})
    base_hosts = dict(base_all.get("hosts") or {})
    per_provider = base_vars.get("vagrant_devices") or DEFAULT_DEVICES
    if provider not in per_provider:
        raise GfsError(f"no devices for provider {provider!r} in vagrant_devices", field="vagrant_devices",
                       fix=f"add `{provider}: [/dev/...]` under vagrant_devices in inventory/vagrant.yaml")
    ips = machines(settings)
    names = [h.name for h in hosts]

    out_vars = {k: v for k, v in base_vars.items() if k not in ("ansible_port", "ansible_user")}
    for key in ("ansible_ssh_private_key_file", "gfsdeploy_known_hosts"):
        # relative to the base inventory; the output may be written elsewhere
        if out_vars.get(key) and not os.path.isabs(os.path.expanduser(str(out_vars[key]))):
            out_vars[key] = os.path.normpath(os.path.join(os.path.abspath(base_dir), str(out_vars[key])))
    out_vars.setdefault("ansible_become", True)
    out_vars.setdefault("kubernetes_version", str(settings["KUBERNETES_VERSION"]))
    out_vars["vagrant_provider"] = provider
    out_hosts = {}
    for host in hosts:
        known = dict(base_hosts.get(host.name) or {})
        entry = {"ansible_host": host.hostname or host.name, "ansible_port": host.port}
        if host.user:
            entry["ansible_user"] = host.user
        if host.identity_files:
            entry["ansible_ssh_private_key_file"] = host.identity_files[0]
        storage_ip = known.get("storage_ip") or ips.get(host.name)
        if not storage_ip:
            raise GfsError(f"machine {host.name!r} is not in inventory/vagrant.yaml and not named k8s-N",
                           host=host.name, fix="add it with its storage_ip to inventory/vagrant.yaml")
        entry["storage_ip"] = storage_ip
        entry["devices"] = list(per_provider[provider])
        entry["zone"] = known.get("zone", 1)
        out_hosts[host.name] = entry

    children = {}
    for group, body in (base_all.get("children") or {}).items():
        body = dict(body or {})
        if "hosts" in body:
            body["hosts"] = {h: v for h, v in (body["hosts"] or {}).items() if h in names}
        children[group] = body
    children.setdefault("k8s_master", {"hosts": {names[0]: None}})
    children.setdefault("gluster", {"hosts": {}})
    masters = set(children["k8s_master"].get("hosts") or {})
    for name in names:
        if name not in base_hosts:
            children["gluster"]["hosts"].setdefault(name, None)
            if name not in masters and "k8s_node" in children:
                children["k8s_node"]["hosts"].setdefault(name, None)
    return {"all": {"vars": out_vars, "hosts": out_hosts, "children": children}}


def _run_ssh_config(directory: str, run=None) -> str:
    vagrant = shutil.which("vagrant")
    if not vagrant:
        raise GfsError("`vagrant` is not installed (or not on PATH)",
                       fix="install Vagrant (https://developer.hashicorp.com/vagrant/install) and run `vagrant up`")
    try:
        done = (run or subprocess.run)([vagrant, "ssh-config"], cwd=directory, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GfsError(f"`vagrant ssh-config` failed: {exc}", fix="run `vagrant ssh-config` yourself to see why") \
            from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise GfsError("`vagrant ssh-config` failed: " + (" ".join(detail[:4]) or f"exit code {done.returncode}"),
                       file=os.path.join(directory, "Vagrantfile"),
                       fix="start every machine with `vagrant up` (check with `vagrant status`); if Vagrant "
                           "finds no usable provider, install VirtualBox or the vagrant-libvirt plugin")
    return done.stdout


def from_vagrant(directory: str = ".", provider: str | None = None, *, base_path: str | None = None,
                 run=None, env: dict | None = None) -> dict:
    """Inventory (as a dict) for the running Vagrant lab in `directory`."""
    vagrantfile = os.path.join(directory, "Vagrantfile")
    if not os.path.isfile(vagrantfile):
        raise GfsError(f"no Vagrantfile in {os.path.abspath(directory)}",
                       fix="run from the gfsdeploy checkout, or pass --dir DIR")
    settings = read_vagrantfile(vagrantfile, env)
    hosts = parse_ssh_config(_run_ssh_config(directory, run))
    if not hosts:
        raise GfsError("`vagrant ssh-config` listed no machines", file=vagrantfile,
                       fix="start the lab with `vagrant up`")
    provider = provider or detect_provider(hosts, directory)
    if provider not in PROVIDERS:
        raise GfsError("cannot tell which Vagrant provider the machines use" if provider is None
                       else f"unknown provider {provider!r}",
                       fix="pass --provider virtualbox or --provider libvirt")
    base_path = base_path or os.path.join(directory, "inventory", "vagrant.yaml")
    base = None
    if os.path.isfile(base_path):
        try:
            with open(base_path, encoding="utf-8") as handle:
                base = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise GfsError(f"cannot parse {base_path}: {exc}", file=base_path,
                           fix="fix the YAML, or pass --base with another file") from None
    return build_inventory(hosts, base, settings, provider, base_dir=os.path.dirname(os.path.abspath(base_path)))


def dump(inventory: dict, *, source: str = "") -> str:
    """The inventory as YAML with a header saying where it came from."""
    head = "# Generated by `gfsdeploy inventory from-vagrant`" + (f" in {source}" if source else "") + \
        "; regenerate after `vagrant up`.\n"
    return head + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False).replace(": null\n", ":\n")


def _from_vagrant_command(args) -> int:
    inventory = from_vagrant(args.dir, args.provider, base_path=args.base)
    text = dump(inventory, source=os.path.abspath(args.dir))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {args.out} ({len(inventory['all']['hosts'])} hosts)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _subcommands(parser):
    """The sub-command action of `parser`, so `inventory` can be shared with
    other modules' sub-commands."""
    for action in parser._actions:  # argparse has no public accessor
        if action.__class__.__name__ == "_SubParsersAction":
            return action
    return parser.add_subparsers(dest="inventory_command", metavar="COMMAND", required=True)


def register(subparsers) -> None:
    """Add `inventory from-vagrant` to the top-level sub-commands."""
    inventory = subparsers.choices.get("inventory")
    if inventory is None:
        inventory = subparsers.add_parser("inventory", help="inventory helpers",
                                          description="Generate or inspect inventories.")
    commands = _subcommands(inventory)
    parser = commands.add_parser(
        "from-vagrant", help="inventory for the running Vagrant lab",
        description="Print an inventory for the Vagrant lab: addresses, ports, users and keys from "
                    "`vagrant ssh-config`, storage settings from inventory/vagrant.yaml.")
    parser.add_argument("--dir", default=".", help="directory with the Vagrantfile (default: .)")
    parser.add_argument("--provider", choices=PROVIDERS,
                        help="Vagrant provider of the machines (default: detected from .vagrant/)")
    parser.add_argument("--base", help="storage settings to merge (default: DIR/inventory/vagrant.yaml)")
    parser.add_argument("-o", "--out", help="write the inventory to this file instead of stdout")
    parser.set_defaults(func=_from_vagrant_command)


__all__ = ["SshHost", "parse_ssh_config", "read_vagrantfile", "machines", "detect_provider",
           "build_inventory", "from_vagrant", "dump", "register"]
