"""The five targets' table tests, shared parts: a 3-node cluster of one distribution
(fake hosts built from hosts/<target>.yaml), recorded with the real probes, then
planned again from the recordings through the CLI (``ansible_connection: recorded``).

Re-record the committed recordings (used where fake hosts cannot be built, and by
benchmarks) after a probe changed:  sudo python3 -m tests.targets.distros
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from gfsdeploy.transport.recorded import RecordingTransport

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
TARGETS = ("centos7", "rocky8", "rocky9", "ubuntu2204", "debian12")
NODES = ("k8s-1", "k8s-2", "k8s-3")
PLAYBOOKS = {"prepare": "playbooks/prepare.yaml", "site": "playbooks/site.yaml"}
#: site.yaml's steps that run on the nodes (its preflight and preparation: what differs from
#: one distribution to another); its other steps talk to the Kubernetes API and heketi from
#: the master, the same on every distribution (tests/lab, tests/modules cover them)
NODE_TAGS = ("devices", "cgroup", "packages", "selinux", "modules", "hosts", "firewall", "glusterd")


def inventory(target: str, *, recordings: Path | None = None, extra: dict | None = None) -> dict:
    """The cluster as operators write it (storage network 192.168.186.0/24, /dev/sdb)."""
    hosts = {}
    for i, name in enumerate(NODES):
        host = {"ansible_host": f"192.168.186.{10 + i}", "storage_ip": f"192.168.186.{10 + i}",
                "devices": ["/dev/sdb"], "zone": 1}
        if recordings is not None:
            host["gfsdeploy_recording"] = str(recordings / f"{name}.json")
        hosts[name] = host
    all_vars = {"ansible_user": "root", "heketi_admin_key": "admin-secret", "heketi_user_key": "user-secret",
                **(extra or {})}
    if recordings is not None:
        all_vars["ansible_connection"] = "recorded"
    return {"all": {"vars": all_vars, "hosts": hosts,
                    "children": {"k8s_master": {"hosts": {"k8s-1": {}}},
                                 "gluster": {"hosts": {n: {} for n in NODES}}}}}


def record(target: str, playbook: str, out: Path, *, overrides: dict | None = None,
           tags: set | None = None, allow_failures: bool = False) -> list[str]:
    """Plan ``playbook`` on fake hosts of ``target``; write one recording per host to ``out``.
    Returns the commands the fake hosts were asked and had no recorded answer for."""
    from gfsdeploy import runner as runner_mod
    from gfsdeploy.inventory import load_inventory
    from gfsdeploy.playbook import load_playbook
    from tests.targets.fakehost import FakeHost, FakeHostTransport

    out.mkdir(parents=True, exist_ok=True)
    inv_path = out / "inventory.yaml"
    inv_path.write_text(yaml.safe_dump(inventory(target)))
    fakes = {name: FakeHost(target, name, overrides=overrides) for name in NODES}
    made: dict[str, RecordingTransport] = {}

    def factory(host, **kwargs):
        made[host.name] = RecordingTransport(FakeHostTransport(fakes[host.name], become=host.become))
        return made[host.name]

    class Quiet:
        def progress(self, *a):
            pass

        def step_done(self, *a):
            pass

    real = runner_mod.make_transport
    runner_mod.make_transport = factory
    old_cache = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(out / ".cache")  # no facts from another run
    try:
        runner = runner_mod.Runner(load_inventory(str(inv_path)), load_playbook(str(ROOT / playbook)),
                                   runner_mod.Options(mode="plan", tags=tags), Quiet())
        outcomes = runner.run("plan")
        runner.close()
        failed = [f"{o.host}: {o.task.label}: {o.error}" for o in outcomes if o.status == "failed"]
        if failed and not allow_failures:
            raise AssertionError("recording the plan failed:\n" + "\n".join(failed))
        for name, transport in made.items():
            transport.recording.save(str(out / f"{name}.json"))
        return [f"{name}: {call}" for name, fake in fakes.items() for call in fake.unrecorded()]
    finally:
        runner_mod.make_transport = real
        if old_cache is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old_cache
        for fake in fakes.values():
            fake.close()


def plan_from(target: str, playbook: str, recordings: Path, work: Path, *, extra: dict | None = None,
              args: tuple = ()):
    """``gfsdeploy plan`` of ``playbook`` from the recordings, as the CLI prints it."""
    inv = work / f"{target}-{recordings.name}-replay.yaml"
    inv.write_text(yaml.safe_dump(inventory(target, recordings=recordings, extra=extra)))
    # a facts cache of its own: another target's cached facts must not render this one's steps
    env = {**os.environ, "XDG_CACHE_HOME": str(work / f".cache-{target}-{recordings.name}"),
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gfsdeploy", "plan", str(inv), "-p", str(ROOT / playbook), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))


def plan_text(output: str) -> str:
    """The plan without what changes run to run (progress lines)."""
    lines = [line for line in output.splitlines()
             if not line.startswith(("Reading the state", "round trips"))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def expected_path(target: str, name: str) -> Path:
    return HERE / "expected" / f"{target}-{name}.plan"


if __name__ == "__main__":  # re-record tests/targets/recordings/<target>/<playbook>/<host>.json
    for target in TARGETS:
        # the node-side steps of site.yaml ask everything prepare.yaml asks: one recording serves both
        out = HERE / "recordings" / target / "site"
        missing = record(target, PLAYBOOKS["site"], out, tags=set(NODE_TAGS))
        (out / "inventory.yaml").unlink()
        shutil.rmtree(out / ".cache", ignore_errors=True)
        print(f"{target}: recorded" + (f"; UNRECORDED: {missing}" if missing else ""))
