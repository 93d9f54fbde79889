"""heketi modules: topology load, volumes, DB backup and the post-migration check.

They talk to heketi's REST API from the controller through a tunnel opened by
the task host's transport (``ctx.transport.forward``), so the URL is heketi as
the task host (the master) sees it, e.g. ``http://CLUSTER_IP:8080``.

- ``heketi_topology``: one cluster; nodes matched by ``manage[0]``, devices by
  name; adds only what is missing and checks every result (heketi-cli prints
  per-device errors but exits 0). Nodes heketi has but the inventory lacks are
  warnings, never deleted.
- ``heketi_volume``: a volume ensured by name — never a second one.
- ``heketi_backup`` (read-only): ``GET /backup/db``; registers ``db_base64``,
  ``size`` and ``sha256`` for the ``heketi-storage-secret``. The DB holds the
  topology and volume records, no keys, so it is treated as data, not as a
  secret (a multi-KB secret would also hide every diff of that Secret).
- ``heketi_verify`` (read-only): the cluster, every inventory node and device
  and the named volumes exist (after the DB moved to heketidbstorage, this
  proves it arrived).
- ``heketi_existing`` (read-only): a deployment gfsdeploy did not make
  (gk-deploy, kubespray's former role, heketi's extras/kubernetes) is named in
  the plan and adopted, or refused with the reason (another admin key, a
  bootstrap left half-way, a DB not on heketidbstorage). docs/KUBERNETES.md.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
import re
import urllib.parse
import weakref

from gfsdeploy.errors import PlaybookError, TransportError
from gfsdeploy_glusterfs.heketi_client import HeketiClient, HeketiError, HeketiUnreachable
from gfsdeploy.modules.base import ADD, UNKNOWN, WARN, Change, HostInfo, Module, Param, TaskContext, TaskResult
from gfsdeploy.validate import CHECKS

_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
#: one tunnel per (transport, heketi address) for the whole run: read and apply share it
_TUNNELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

COMMON = {
    "url": Param(required=True, help="heketi's URL as the task host sees it, e.g. http://10.96.0.20:8080"),
    "user": Param(default="admin", choices=("admin", "user")),
    "key": Param(sensitive=True, help="the JWT key of that user (heketi.json jwt.admin.key)"),
    "timeout": Param(type="int", default=600, help="seconds to wait for one heketi operation"),
}


# -- arguments ---------------------------------------------------------------------
def check_url(url, where: dict) -> str:
    parts = urllib.parse.urlsplit(str(url))
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = f"{url!r} is not an http:// or https:// URL"
    elif not parts.hostname or CHECKS["host"](parts.hostname):
        problem = f"{url!r} has no valid host (an IP or a hostname)"
    else:
        try:
            parts.port
        except ValueError:
            problem = f"{url!r} has an invalid port"
    if problem:
        raise PlaybookError(f"argument 'url': {problem}", field="url",
                            fix="write the heketi service URL, e.g. http://10.96.0.20:8080", **where)
    return str(url).rstrip("/")


def normalize_topology(topology, where: dict) -> list[dict]:
    """heketi's topology.json or a list of nodes → ``[{manage, storage, zone, devices: [{name, destroydata}]}]``."""
    def fail(message, fix="give each node manage (node name), storage (IP), zone and devices"):
        raise PlaybookError(f"argument 'topology': {message}", field="topology", fix=fix, **where)

    if isinstance(topology, dict):
        clusters = topology.get("clusters")
        if not isinstance(clusters, list) or len(clusters) != 1:
            fail("a topology.json must hold exactly one cluster",
                 fix="put every storage node in one cluster (gfsdeploy manages one heketi cluster)")
        raw_nodes = clusters[0].get("nodes") if isinstance(clusters[0], dict) else None
    else:
        raw_nodes = topology
    if not isinstance(raw_nodes, list) or not raw_nodes:
        fail("no nodes given")
    nodes, seen_manage, seen_storage = [], set(), set()
    for index, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict):
            fail(f"node #{index + 1} is not a mapping")
        info = raw.get("node") if isinstance(raw.get("node"), dict) else raw
        hostnames = info.get("hostnames") if isinstance(info.get("hostnames"), dict) else info
        manage, storage = hostnames.get("manage"), hostnames.get("storage")
        manage = manage[0] if isinstance(manage, list) and manage else manage
        storage = storage[0] if isinstance(storage, list) and storage else storage
        label = f"node #{index + 1}" + (f" ({manage})" if isinstance(manage, str) else "")
        if not isinstance(manage, str) or CHECKS["hostname"](manage):
            fail(f"{label}: manage {manage!r} is not a node name",
                 fix="manage must be the Kubernetes node name (kubectl get nodes)")
        if not isinstance(storage, str) or CHECKS["ip"](storage):
            fail(f"{label}: storage {storage!r} is not an IP address",
                 fix="storage must be the node's storage network IP, not a hostname")
        zone = info.get("zone", 1)
        if not isinstance(zone, int) or isinstance(zone, bool) or zone < 1:
            fail(f"{label}: zone {zone!r} must be a whole number ≥ 1")
        if manage in seen_manage or storage in seen_storage:
            fail(f"{label}: manage {manage} or storage {storage} appears twice",
                 fix="every node needs its own manage name and storage IP")
        seen_manage.add(manage)
        seen_storage.add(storage)
        devices, names = [], set()
        for device in raw.get("devices") or []:
            if isinstance(device, str):
                device = {"name": device}
            if not isinstance(device, dict):
                fail(f"{label}: device {device!r} is neither a path nor {{name, destroydata}}")
            name = device.get("name")
            problem = CHECKS["device"](name)
            if problem:
                fail(f"{label}: {problem}", fix="list raw block devices like /dev/sdb")
            if name in names:
                fail(f"{label}: device {name} is listed twice")
            names.add(name)
            destroy = device.get("destroydata", False)
            if not isinstance(destroy, bool):
                fail(f"{label}: destroydata of {name} must be true or false")
            devices.append({"name": name, "destroydata": destroy})
        nodes.append({"manage": manage, "storage": storage, "zone": zone, "devices": devices})
    return nodes


def connect(args: dict, ctx: TaskContext, *, quick: bool = False) -> HeketiClient:
    """A client for ``args["url"]`` through the task host's tunnel."""
    parts = urllib.parse.urlsplit(args["url"])
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host, local_port = parts.hostname, port
    if ctx.transport is not None:
        try:
            tunnels = _TUNNELS.setdefault(ctx.transport, {})
            if (parts.hostname, port) not in tunnels:
                tunnels[(parts.hostname, port)] = ctx.transport.forward(parts.hostname, port)
            host, local_port = tunnels[(parts.hostname, port)]
        except NotImplementedError:
            pass
        except TransportError:
            raise  # the host refused the tunnel (sshd forbids forwarding) or the link broke: not "heketi down"
        except Exception as exc:  # a tunnel that cannot open is heketi not reachable
            raise HeketiUnreachable(f"cannot open a tunnel to heketi at {parts.hostname}:{port} "
                                    f"through {ctx.host.name}: {exc}", path="",
                                    host=ctx.host.name, task=ctx.task_name) from None
    shown = f"[{host}]" if ":" in str(host) else host
    base = f"{parts.scheme}://{shown}:{local_port}{parts.path}"
    return HeketiClient(base, args.get("user") or "admin", args.get("key"),
                        timeout=10.0 if quick else 30.0, op_timeout=float(args.get("timeout") or 600),
                        poll_interval=HeketiModule.poll_interval,
                        retries=0 if quick else 5, retry_delay=HeketiModule.retry_delay)


def _located(error: HeketiError, ctx: TaskContext) -> HeketiError:
    error.host = error.host or ctx.host.name
    error.task = error.task or ctx.task_name
    return error


def _hint(message: str, node: str, device: str) -> str:
    text = message.lower()
    if "excluded by a filter" in text or "contains data" in text or "signature" in text or "-ff" in text:
        return (f"the disk is not empty: wipe it (`wipefs --all {device}` on {node}) or set "
                f"destroydata: true for it in the inventory, then re-run apply")
    if "thin" in text and "device-mapper" in text:
        return f"load dm_thin_pool on {node} (node preparation), then re-run apply"
    if "not found" in text:
        return f"check that {device} exists on {node} (lsblk)"
    return "fix the cause on the node, then re-run apply (what was added stays)"


# -- what the modules read ------------------------------------------------------------------
@dataclass
class HeketiState:
    """heketi as read through the tunnel; ``reachable`` False: not up yet (plan mode only)."""

    reachable: bool = True
    topology: dict = field(default_factory=lambda: {"clusters": []})
    volumes: list = field(default_factory=list)     # volumes with the task's name (heketi_volume)
    db: bytes | None = None                         # GET /backup/db (heketi_backup)


# -- modules ---------------------------------------------------------------------------
class HeketiModule(Module):
    """Shared: tunnel + client; plan-mode reads tolerate an unreachable heketi."""

    poll_interval = 0.5  # seconds between polls of heketi's async queue
    retry_delay = 1.0

    def resources(self, args: dict) -> set[str]:
        return {"heketi"}

    def validate(self, args, *, where=None):
        out = super().validate(args, where=where)
        out["url"] = check_url(out["url"], where or {})
        return out

    def reach(self, args, ctx, read):
        """Run ``read(client)``; in plan mode an unreachable heketi gives None."""
        try:
            return read(connect(args, ctx, quick=ctx.check_mode))
        except HeketiUnreachable as exc:
            if ctx.check_mode:
                return None
            raise _located(exc, ctx)
        except HeketiError as exc:
            raise _located(exc, ctx)


class HeketiTopology(HeketiModule):
    name = "heketi_topology"
    params = {**COMMON, "topology": Param(type="raw", required=True,
                                          help="heketi topology.json, or a list of {manage, storage, zone, devices}")}

    def validate(self, args, *, where=None):
        out = super().validate(args, where=where)
        out["topology"] = normalize_topology(out["topology"], where or {})
        return out

    def read(self, args, facts, ctx) -> HeketiState:
        topology = self.reach(args, ctx, lambda client: client.topology())
        return HeketiState(reachable=topology is not None, topology=topology or {"clusters": []})

    def plan(self, args: dict, state: HeketiState, host: HostInfo) -> list[Change]:
        return plan_topology(args["topology"], state)

    def apply(self, args, changes, ctx) -> TaskResult:
        """Make exactly the given additions, in order: the cluster, then nodes, then their
        devices (ids come with the changes, or from what this apply creates)."""
        try:
            client = connect(args, ctx)
        except HeketiError as exc:
            raise _located(exc, ctx)
        todo = [c for c in changes if c.action != WARN]
        cluster_id = next((c.data["cluster"] for c in todo if c.data.get("cluster")), None)
        nodes = {c.data["node"]: c.data["node_id"] for c in todo if c.data.get("node_id")}
        done, failures = [], []
        for change in todo:
            kind = change.data["kind"]
            try:
                if kind == "cluster":
                    cluster_id = client.create_cluster()["id"]
                    ctx.progress(f"heketi cluster {cluster_id} created")
                elif kind == "node":
                    manage = change.data["manage"]
                    ctx.progress(f"adding heketi node {manage} ({change.data['storage']})")
                    node = client.add_node(cluster_id, manage, change.data["storage"], change.data["zone"])
                    nodes[manage] = node["id"]
                elif kind == "device":
                    node_name, device = change.data["node"], change.data["name"]
                    if node_name not in nodes:
                        failures.append(f"node {node_name}, device {device}: not added because the node "
                                        f"could not be added")
                        continue
                    ctx.progress(f"adding device {device} on {node_name}")
                    client.add_device(nodes[node_name], device, change.data["destroydata"], node_name=node_name)
                    names = [d["name"] for d in client.node(nodes[node_name]).get("devices") or []]
                    if device not in names:  # check the result, not just the status code
                        failures.append(f"node {node_name}, device {device}: heketi reported success but "
                                        f"does not list the device")
                        continue
                done.append(change.resource)
            except HeketiUnreachable as exc:
                raise _located(exc, ctx)
            except HeketiError as exc:
                what = exc.heketi_message or exc.message
                if kind == "cluster":
                    raise _located(exc, ctx)
                if kind == "node":
                    failures.append(f"node {change.data['manage']}: {what}")
                else:
                    failures.append(f"node {change.data['node']}, device {change.data['name']}: {what}\n"
                                    f"    fix: {_hint(what, change.data['node'], change.data['name'])}")
                ctx.progress(f"FAILED {change.resource}: {what.splitlines()[0] if what else ''}")
        data = {"cluster": cluster_id, "nodes": nodes, "added": done}
        if failures:
            msg = (f"heketi topology load: {len(failures)} of {len(todo)} additions failed "
                   f"({len(done)} succeeded and stay):\n  " + "\n  ".join(failures))
            return TaskResult(changed=bool(done), failed=True, msg=msg, data=data)
        return TaskResult(changed=bool(done), msg=f"added {len(done)} heketi objects", data=data)


def pick_cluster(topology: dict, nodes: list[dict]) -> str | None:
    """The cluster holding most inventory nodes (the first one if none does)."""
    wanted = {n["manage"] for n in nodes}
    best, best_count = None, -1
    for cluster in topology.get("clusters") or []:
        count = sum(1 for n in cluster.get("nodes") or [] if n["hostnames"]["manage"][0] in wanted)
        if count > best_count:
            best, best_count = cluster["id"], count
    return best


def plan_topology(nodes: list[dict], state: HeketiState) -> list[Change]:
    """Pure: inventory nodes + heketi's topology → the additions (and warnings). Each
    addition carries the ids apply needs (the cluster, an existing node)."""
    topology = state.topology or {"clusters": []}
    clusters = topology.get("clusters") or []
    cluster_id = pick_cluster(topology, nodes)
    changes: list[Change] = []
    if not clusters:
        changes.append(Change(ADD, "heketi cluster", diff=f"id: {UNKNOWN}", data={"kind": "cluster"}))
    elif len(clusters) > 1:
        changes.append(Change(WARN, f"heketi has {len(clusters)} clusters; using "
                                    f"{pick_cluster(topology, nodes)} (the one with most inventory nodes)"))
    have = {}
    for cluster in clusters:
        for node in cluster.get("nodes") or []:
            have[node["hostnames"]["manage"][0]] = node
    for node in nodes:
        manage = node["manage"]
        current = have.get(manage)
        if current is None:
            changes.append(Change(ADD, f"heketi node {manage}",
                                  diff=f"storage: {node['storage']}\nzone: {node['zone']}\nid: {UNKNOWN}",
                                  data={"kind": "node", "manage": manage, "storage": node["storage"],
                                        "zone": node["zone"], "cluster": cluster_id}))
            present = set()
        else:
            storage = (current["hostnames"].get("storage") or [""])[0]
            if storage != node["storage"]:
                changes.append(Change(WARN, f"heketi node {manage}: storage is {storage} in heketi but "
                                            f"{node['storage']} in the inventory (heketi cannot change it; left as is)"))
            present = {d["name"] for d in current.get("devices") or []}
        for device in node["devices"]:
            if device["name"] in present:
                continue
            changes.append(Change(ADD, f"heketi device {manage}:{device['name']}",
                                  diff=f"destroydata: {str(device['destroydata']).lower()}\nid: {UNKNOWN}",
                                  data={"kind": "device", "node": manage, "name": device["name"],
                                        "destroydata": device["destroydata"],
                                        "node_id": current["id"] if current is not None else None}))
        if current is not None:
            wanted = {d["name"] for d in node["devices"]}
            for name in sorted(present - wanted):
                changes.append(Change(WARN, f"heketi device {manage}:{name} is not in the inventory (left as is)"))
    inventory = {n["manage"] for n in nodes}
    for manage in sorted(set(have) - inventory):
        changes.append(Change(WARN, f"heketi node {manage} is not in the inventory (left as is; "
                                    f"never deleted by gfsdeploy)"))
    return changes


class HeketiVolume(HeketiModule):
    name = "heketi_volume"
    params = {**COMMON,
              "name": Param(required=True, help="volume name, e.g. heketidbstorage"),
              "size": Param(type="int", default=2, help="GiB"),
              "replica": Param(type="int", default=3)}

    def validate(self, args, *, where=None):
        out = super().validate(args, where=where)
        where = where or {}
        if not _VOLUME_NAME.match(out["name"]):
            raise PlaybookError(f"argument 'name': {out['name']!r} is not a heketi volume name", field="name",
                                fix="use letters, digits, '_' and '-'", **where)
        if out["size"] < 1:
            raise PlaybookError("argument 'size' must be at least 1 (GiB)", field="size", fix="size: 2", **where)
        if out["replica"] < 2:
            raise PlaybookError(f"argument 'replica' is {out['replica']}: a replicated volume needs at least 2",
                                field="replica", fix="replica: 3 (and at least 3 storage nodes)", **where)
        return out

    def read(self, args, facts, ctx) -> HeketiState:
        volumes = self.reach(args, ctx, lambda client: client.volumes_named(args["name"]))
        return HeketiState(reachable=volumes is not None, volumes=volumes or [])

    def plan(self, args: dict, state: HeketiState, host: HostInfo) -> list[Change]:
        return plan_volume(args, state)

    def unchanged(self, args, state) -> TaskResult:
        """The volume exists: register it (its id, hosts and mount device)."""
        return TaskResult(changed=False, data=_volume_data(state.volumes[0])) if state.volumes else TaskResult()

    def apply(self, args, changes, ctx) -> TaskResult:
        """Create the volume the change names — unless it exists by now: never a second one."""
        if not any(c.action == ADD for c in changes):
            return TaskResult(changed=False)
        try:
            client = connect(args, ctx)
            existing = client.volumes_named(args["name"])  # never a second one, even if the plan is stale
            if existing:
                return TaskResult(changed=False, data=_volume_data(existing[0]))
            ctx.progress(f"creating heketi volume {args['name']} ({args['size']} GiB, replicate {args['replica']})")
            volume = client.create_volume(args["size"], args["name"], args["replica"])
        except HeketiError as exc:
            if exc.heketi_message.strip() == "No space":
                exc.fix = (f"heketi found fewer than {args['replica']} nodes with a free device of "
                           f"{args['size']} GiB: add storage nodes/devices or lower the replica count")
            raise _located(exc, ctx)
        return TaskResult(changed=True, msg=f"volume {args['name']} created", data=_volume_data(volume))


def _volume_data(volume: dict) -> dict:
    mount = ((volume.get("mount") or {}).get("glusterfs") or {})
    return {"volume": {"id": volume.get("id"), "name": volume.get("name"), "size": volume.get("size"),
                       "cluster": volume.get("cluster"), "hosts": mount.get("hosts") or [],
                       "device": mount.get("device", "")}}


def _replica(volume: dict) -> int | None:
    durability = volume.get("durability") or {}
    if durability.get("type") != "replicate":
        return 1 if durability.get("type") == "none" else None
    return (durability.get("replicate") or {}).get("replica")


def plan_volume(args: dict, state: HeketiState) -> list[Change]:
    """Pure: ensure one volume by name; differences in size or replica are warnings."""
    name, size, replica = args["name"], args["size"], args["replica"]
    volumes = state.volumes or []
    if not volumes:
        return [Change(ADD, f"heketi volume {name} ({size} GiB, replicate {replica})", diff=f"id: {UNKNOWN}",
                       data={"name": name, "size": size, "replica": replica})]
    changes = []
    if len(volumes) > 1:
        ids = ", ".join(v["id"] for v in volumes)
        changes.append(Change(WARN, f"heketi has {len(volumes)} volumes named {name} ({ids}); "
                                    f"keep the one the heketi pod mounts and delete the others by id"))
    volume = volumes[0]
    if volume.get("size") != size or _replica(volume) != replica:
        changes.append(Change(WARN, f"heketi volume {name} is {volume.get('size')} GiB, replicate "
                                    f"{_replica(volume)}; the inventory asks {size} GiB, replicate {replica} "
                                    f"(left as is)"))
    return changes


class HeketiBackup(HeketiModule):
    name = "heketi_backup"
    read_only = True
    params = dict(COMMON)

    def read(self, args, facts, ctx) -> HeketiState:
        data = self.reach(args, ctx, lambda client: client.backup_db())
        return HeketiState(reachable=data is not None, db=data)

    def plan(self, args, state, host):
        return []

    def report(self, args, state: HeketiState, ctx) -> TaskResult:
        data = state.db
        if data is None:  # plan mode, heketi not up yet
            from gfsdeploy.templating import Unknown

            return TaskResult(changed=False, data={"db_base64": Unknown(), "size": Unknown(), "sha256": Unknown()})
        return TaskResult(changed=False, msg=f"heketi DB: {len(data)} bytes",
                          data={"db_base64": base64.b64encode(data).decode(), "size": len(data),
                                "sha256": hashlib.sha256(data).hexdigest()})

    def apply(self, args, changes, ctx) -> TaskResult:
        return self.report(args, self.read(args, {}, ctx), ctx)


class HeketiVerify(HeketiModule):
    name = "heketi_verify"
    read_only = True
    params = {**COMMON,
              "topology": Param(type="raw", required=True),
              "volumes": Param(type="list", default=["heketidbstorage"])}

    def validate(self, args, *, where=None):
        out = super().validate(args, where=where)
        out["topology"] = normalize_topology(out["topology"], where or {})
        for name in out["volumes"]:
            if not isinstance(name, str) or not _VOLUME_NAME.match(name):
                raise PlaybookError(f"argument 'volumes': {name!r} is not a heketi volume name",
                                    field="volumes", fix="use letters, digits, '_' and '-'", **(where or {}))
        return out

    def read(self, args, facts, ctx) -> HeketiState:
        topology = self.reach(args, ctx, lambda client: client.topology())
        return HeketiState(reachable=topology is not None, topology=topology or {"clusters": []})

    def plan(self, args, state, host):
        return []

    def apply(self, args, changes, ctx) -> TaskResult:
        return self.report(args, self.read(args, {}, ctx), ctx)

    def report(self, args, state: HeketiState, ctx) -> TaskResult:
        if not state.reachable:
            return TaskResult(changed=False, msg="heketi not reachable yet; checked during apply")
        missing = missing_in_heketi(args["topology"], args["volumes"], state.topology)
        if not missing:
            return TaskResult(changed=False, msg="heketi has the cluster, every node, device and volume")
        if ctx.check_mode:  # the steps before it will create them
            return TaskResult(changed=False, msg="not yet in heketi: " + "; ".join(missing))
        return TaskResult(failed=True, msg="heketi verification failed: " + "; ".join(missing) +
                          "\n  fix: if the cluster is missing, the DB did not reach heketidbstorage: check the "
                          "heketi-storage-copy-job log and that the heketi pod mounts heketidbstorage, then re-run apply")


def missing_in_heketi(nodes: list[dict], volumes: list[str], topology: dict) -> list[str]:
    """Pure: what the inventory expects but heketi lacks, in words."""
    clusters = topology.get("clusters") or []
    if not clusters:
        return ["heketi has no cluster — was the DB migration skipped?"]
    have = {n["hostnames"]["manage"][0]: n for c in clusters for n in c.get("nodes") or []}
    missing = []
    for node in nodes:
        current = have.get(node["manage"])
        if current is None:
            missing.append(f"node {node['manage']} is not in heketi")
            continue
        names = {d["name"] for d in current.get("devices") or []}
        for device in node["devices"]:
            if device["name"] not in names:
                missing.append(f"device {device['name']} of node {node['manage']} is not in heketi")
    names = {v.get("name") for c in clusters for v in c.get("volumes") or []}
    for name in volumes:
        if name not in names:
            missing.append(f"volume {name} is not in heketi")
    return missing


# -- an existing deployment ------------------------------------------------------------------
#: what the shipped playbook manages in its namespace, and cluster-wide, by name
NAMESPACED_OBJECTS = ["daemonset.apps/glusterfs", "deployment.apps/heketi", "deployment.apps/deploy-heketi",
                      "service/heketi", "service/deploy-heketi", "secret/heketi-config-secret",
                      "secret/heketi-storage-secret", "secret/heketi-db-backup", "job.batch/heketi-storage-copy-job",
                      "serviceaccount/heketi-service-account", "endpoints/heketi-storage-endpoints",
                      "service/heketi-storage-endpoints", "secret/heketi-storageclass-secret"]
CLUSTER_OBJECTS = ["clusterrolebinding.rbac.authorization.k8s.io/heketi-gluster-admin",
                   "clusterrolebinding.rbac.authorization.k8s.io/heketi-sa-view"]
GLUSTERFS_PROVISIONER = "kubernetes.io/glusterfs"


@dataclass
class Existing:
    """What ``heketi_existing`` read: the deployment's objects by ``kind/name``, the
    glusterfs StorageClasses and the Secrets they name."""

    objects: dict = field(default_factory=dict)          # "Kind/name" -> live object
    storageclasses: list = field(default_factory=list)
    secrets: dict = field(default_factory=dict)          # (namespace, name) -> live Secret
    elsewhere: list = field(default_factory=list)        # glusterfs DaemonSets / heketi Deployments in other namespaces


def _env(deployment: dict | None) -> dict:
    containers = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return {e.get("name"): e.get("value") for c in containers for e in c.get("env") or [] if "value" in e}


def _b64(value) -> str | None:
    try:
        return base64.b64decode(str(value)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def made_by(found: dict) -> str:
    """Which tool made an existing deployment, from the shapes of its objects."""
    config = (found.get("Secret/heketi-config-secret") or {}).get("data") or {}
    heketi = found.get("Deployment/heketi") or found.get("Deployment/deploy-heketi")
    service = found.get("Service/heketi") or {}
    if "ClusterRoleBinding/heketi-sa-view" in found or "private_key" in config or "topology.json" in config \
            or "HEKETI_ADMIN_KEY" in _env(heketi):
        return "gk-deploy (gluster-kubernetes)"
    if "Secret/heketi-db-backup" in found or \
            ((service.get("metadata") or {}).get("labels") or {}).get("deploy-heketi") == "support":
        images = [c.get("image", "") for c in ((heketi or {}).get("spec", {}).get("template", {}).get("spec", {})
                                               .get("containers") or [])]
        if any(i.endswith(":dev") for i in images):
            return "heketi's extras/kubernetes manifests"
        return "kubespray's former heketi role (contrib/network-storage/heketi)"
    return "a tool other than gfsdeploy"


def existing_keys(state: Existing, namespace: str, ours: str) -> list[tuple[str, str]]:
    """(where, key) of every heketi admin key the existing deployment uses: the heketi
    Deployment's HEKETI_ADMIN_KEY (it overrides heketi.json), heketi.json's jwt.admin.key
    when auth is on, and what each other glusterfs StorageClass authenticates with."""
    import json as _json

    out = []
    env = _env(state.objects.get("Deployment/heketi"))
    if env.get("HEKETI_ADMIN_KEY"):
        out.append((f"env HEKETI_ADMIN_KEY of Deployment {namespace}/heketi", env["HEKETI_ADMIN_KEY"]))
    else:
        text = _b64(((state.objects.get("Secret/heketi-config-secret") or {}).get("data") or {}).get("heketi.json"))
        try:
            config = _json.loads(text) if text else {}
        except ValueError:
            config = {}
        key = ((config.get("jwt") or {}).get("admin") or {}).get("key") if isinstance(config, dict) else None
        if config.get("use_auth") and key:
            out.append((f"heketi.json (jwt.admin.key) in Secret {namespace}/heketi-config-secret", key))
    for sc in state.storageclasses:
        name = sc["metadata"]["name"]
        params = sc.get("parameters") or {}
        if name == ours or sc.get("provisioner") != GLUSTERFS_PROVISIONER:
            continue
        if params.get("restuserkey"):
            out.append((f"StorageClass {name} (parameter restuserkey)", params["restuserkey"]))
        secret = state.secrets.get((params.get("secretNamespace") or "default", params.get("secretName") or ""))
        key = _b64(((secret or {}).get("data") or {}).get("key")) if secret else None
        if key:
            out.append((f"StorageClass {name} (Secret {params.get('secretNamespace') or 'default'}/"
                        f"{params.get('secretName')})", key))
    return out


def plan_existing(args: dict, state: Existing, host: str) -> list[Change]:
    """Pure: an existing deployment gfsdeploy did not make → warnings saying it is
    adopted, or a PreflightError saying why it cannot be."""
    from gfsdeploy.errors import PreflightError
    from gfsdeploy_glusterfs.modules.kubernetes import managed

    ns = args["namespace"]
    if state.elsewhere:
        where = sorted({o["metadata"].get("namespace") or "default" for o in state.elsewhere})
        shown = ", ".join(f"{o['kind']} {o['metadata'].get('namespace')}/{o['metadata']['name']}"
                          for o in state.elsewhere)
        raise PreflightError(
            f"a GlusterFS deployment already runs in namespace {', '.join(where)} ({shown}), not in {ns}: a second "
            f"one would start another glusterd on the same nodes (host network, ports 24007/24008) and fight "
            f"over their devices", host=host, field="gluster_namespace",
            fix=f"set gluster_namespace: {where[0]} in the inventory to adopt that deployment, or remove it first")
    foreign = {name: obj for name, obj in state.objects.items() if not managed(obj)}
    if not foreign:
        return []
    who = made_by(state.objects)
    heketi, bootstrap = state.objects.get("Deployment/heketi"), state.objects.get("Deployment/deploy-heketi")
    if bootstrap is not None and heketi is None and not managed(bootstrap):
        raise PreflightError(
            f"a bootstrap heketi (Deployment {ns}/deploy-heketi) made by {who} is running and no final heketi "
            f"exists: that deployment stopped half-way and its DB (on the bootstrap's emptyDir) has not moved "
            f"to the volume heketidbstorage", host=host,
            fix="finish it with the tool that started it, or delete its objects (kubectl delete "
                f"all,service,jobs,deployment,secret --selector=deploy-heketi -n {ns}) and run gfsdeploy again")
    if heketi is not None and not managed(heketi):
        volumes = (heketi.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or [])
        db = next((v for v in volumes if v.get("name") == "db"), None)
        if not ((db or {}).get("glusterfs") or {}).get("path") == "heketidbstorage":
            raise PreflightError(
                f"Deployment {ns}/heketi made by {who} keeps its DB in {_shown_volume(db)}, not on the GlusterFS "
                f"volume heketidbstorage: adopting it would start heketi on another DB", host=host,
                fix="move heketi's DB to heketidbstorage first, or remove that deployment")
    wrong = [where for where, key in existing_keys(state, ns, args.get("storageclass") or "") if key != args["admin_key"]]
    if wrong:
        raise PreflightError(
            f"the existing deployment (made by {who}) uses another heketi admin key than the inventory's "
            f"heketi_admin_key: {'; '.join(wrong)}. Adopting it would switch heketi to the inventory's key and "
            f"lock out whatever uses the old one", host=host, field="heketi_admin_key",
            fix="set heketi_admin_key (and heketi_user_key) in the inventory to the keys the deployment uses, "
                "then plan again")
    names = ", ".join(sorted(foreign))
    changes = [Change(WARN, f"existing GlusterFS deployment in namespace {ns} made by {who}: gfsdeploy adopts it "
                            f"(its lines below show how each object changes; afterwards they are gfsdeploy's)",
                      diff=f"not made by gfsdeploy: {names}")]
    for name in ("Secret/heketi-db-backup", "ClusterRoleBinding/heketi-sa-view"):
        if name in foreign:
            changes.append(Change(WARN, f"{name} (made by {who}) is not part of gfsdeploy's deployment: left as is"))
    if "DaemonSet/glusterfs" in foreign:
        changes.append(Change(WARN, f"DaemonSet {ns}/glusterfs made by {who} is adopted: its pods restart with "
                                    f"gfsdeploy's pod template (all at once if it is replaced, -/+)"))
    return changes


def _is_glusterfs_deployment(obj: dict) -> bool:
    """A glusterfs DaemonSet (its pods carry the label glusterfs-node, which heketi's
    executor looks for) or a heketi Deployment, whoever made it."""
    template = ((obj.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    if obj.get("kind") == "DaemonSet":
        return "glusterfs-node" in labels or obj["metadata"]["name"] == "glusterfs"
    if obj.get("kind") == "Deployment":
        return obj["metadata"]["name"] in ("heketi", "deploy-heketi")
    return False


def _shown_volume(volume: dict | None) -> str:
    if not volume:
        return "no volume named db (the container's own filesystem)"
    kind = next((k for k in volume if k != "name"), "emptyDir")
    return f"a {kind} volume"


class HeketiExisting(Module):
    """An existing GlusterFS + heketi deployment that gfsdeploy did not make (gk-deploy,
    kubespray's former heketi role, heketi's extras/kubernetes): found in the plan and
    adopted, or refused with the reason before anything changes."""

    cheap_reads = False  # every probe is a kubectl process
    name = "heketi_existing"
    read_only = True
    params = {
        "namespace": Param(default="default", check="k8s_name"),
        "admin_key": Param(required=True, sensitive=True, help="the inventory's heketi admin key"),
        "storageclass": Param(default="glusterfs", check="k8s_name", help="gfsdeploy's StorageClass"),
        "kubectl": Param(default="kubectl"),
        "kubeconfig": Param(),
    }

    def resources(self, args: dict) -> set[str]:
        return {"kubernetes"}

    def probes(self, args, host):
        from gfsdeploy_glusterfs.modules.kubernetes import kubectl

        return {"namespaced": kubectl(args, "get", *NAMESPACED_OBJECTS, "-n", args["namespace"], "-o", "json",
                                      "--ignore-not-found"),
                "cluster": kubectl(args, "get", *CLUSTER_OBJECTS, "-o", "json", "--ignore-not-found"),
                "storageclasses": kubectl(args, "get", "storageclasses", "-o", "json"),
                "anywhere": kubectl(args, "get", "daemonsets.apps,deployments.apps", "--all-namespaces", "-o", "json")}

    def read(self, args, facts, ctx) -> Existing:
        from gfsdeploy import secrets
        from gfsdeploy_glusterfs.modules.kubernetes import kubectl, parse_get

        anywhere = parse_get({"anywhere": facts["anywhere"]}, ctx.host.name, ctx.task_name) if "anywhere" in facts else []
        live = parse_get({k: v for k, v in facts.items() if k != "anywhere"}, ctx.host.name, ctx.task_name)
        state = Existing(objects={f"{o['kind']}/{o['metadata']['name']}": o for o in live
                                  if o.get("kind") != "StorageClass"},
                         storageclasses=[o for o in live if o.get("kind") == "StorageClass"],
                         elsewhere=[o for o in anywhere if _is_glusterfs_deployment(o)
                                    and (o["metadata"].get("namespace") or "default") != args["namespace"]])
        wanted = {((sc.get("parameters") or {}).get("secretNamespace") or "default",
                   (sc.get("parameters") or {}).get("secretName"))
                  for sc in state.storageclasses if sc.get("provisioner") == GLUSTERFS_PROVISIONER
                  and sc["metadata"]["name"] != args.get("storageclass") and (sc.get("parameters") or {}).get("secretName")}
        if wanted:
            found = ctx.transport.read_many({f"{ns}/{name}": kubectl(args, "get", "secret", name, "-n", ns, "-o", "json",
                                                                     "--ignore-not-found") for ns, name in wanted})
            for item in parse_get(found, ctx.host.name, ctx.task_name):
                state.secrets[(item["metadata"].get("namespace") or "default", item["metadata"]["name"])] = item
        for where, key in existing_keys(state, args["namespace"], args.get("storageclass") or ""):
            secrets.register(key)   # the existing keys are as secret as the inventory's
        return state

    def plan(self, args, state, host):
        return plan_existing(args, state, host.name)

    def report(self, args, state, ctx) -> TaskResult:
        from gfsdeploy_glusterfs.modules.kubernetes import managed

        foreign = sorted(n for n, o in state.objects.items() if not managed(o))
        return TaskResult(changed=False, data={"found": bool(state.objects), "foreign": foreign,
                                               "made_by": made_by(state.objects) if foreign else "gfsdeploy"})

    def apply(self, args, changes, ctx) -> TaskResult:
        return self.report(args, self.read(args, ctx.transport.read_many(self.probes(args, ctx.host)), ctx), ctx)


__all__ = ["HeketiTopology", "HeketiVolume", "HeketiBackup", "HeketiVerify", "HeketiExisting", "plan_topology",
           "HeketiState", "plan_volume", "plan_existing", "missing_in_heketi", "normalize_topology"]
