"""Kubernetes objects converge exactly, through the real CLI over real SSH against the
lab's API server simulator: a field dropped from a template disappears from the live
object, a change the server will not make in place is a counted ``-/+`` replace, a
second plan has nothing to do. Every result is read back with kubectl on the master,
not through gfsdeploy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import pytest

pytestmark = pytest.mark.lab

PLAYBOOK = """\
- hosts: k8s_master[0]
  tasks:
    - name: app objects
      kubernetes: {template: app.json.j2, namespace: "{{ ns }}"}
"""


def app(ns: str, *, label: bool, env: bool, image: str) -> str:
    labels = {"app": "demo", **({"tier": "cache"} if label else {})}
    env_vars = [{"name": "MODE", "value": "fast"}] + ([{"name": "DEBUG", "value": "1"}] if env else [])
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo", "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "demo"}},
                  "template": {"metadata": {"labels": {"app": "demo"}},
                               "spec": {"containers": [{"name": "demo", "image": "busybox:1.36",
                                                        "command": ["sleep", "3600"], "env": env_vars}]}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
         "spec": {"template": {"spec": {"restartPolicy": "Never",
                                        "containers": [{"name": "once", "image": image, "command": ["true"]}]}}}},
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=1)


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=600)


def live(lab, ns, what):
    out = lab.exec("k8s-1", ["kubectl", "get", what, "-n", ns, "-o", "json"], check=True).stdout
    return json.loads(out)


def test_dropped_fields_disappear_and_immutable_changes_replace(lab, tmp_path):
    ns = "conv-" + uuid.uuid4().hex[:6]
    (tmp_path / "templates").mkdir()
    template = tmp_path / "templates" / "app.json.j2"
    playbook = tmp_path / "site.yaml"
    playbook.write_text(PLAYBOOK)
    inv, extra = str(lab.inventory_path), ["-p", str(playbook), "-e", f"ns={ns}"]

    template.write_text(app(ns, label=True, env=True, image="busybox:1.36"))
    first = gfs("apply", inv, *extra)
    assert first.returncode == 0, first.stdout + first.stderr
    deployment = live(lab, ns, "deployment/demo")
    assert deployment["metadata"]["labels"]["tier"] == "cache"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gfsdeploy"
    job_uid = live(lab, ns, "job/once")["metadata"]["uid"]

    # the label and the env var leave the template; the Job's image changes (immutable)
    template.write_text(app(ns, label=False, env=False, image="busybox:1.37"))
    plan = gfs("plan", inv, *extra)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    text = plan.stdout
    assert f"~ kubernetes Deployment {ns}/demo" in text
    assert '- metadata.labels.tier: "cache"' in text
    assert '- spec.template.spec.containers[name=demo].env[name=DEBUG]: {"name":"DEBUG","value":"1"}' in text
    assert f"-/+ kubernetes Job {ns}/once" in text
    assert '~ spec.template.spec.containers[0].image: "busybox:1.36" -> "busybox:1.37"   # forces replacement' in text
    assert text.rstrip().endswith("Plan: 1 to add, 1 to change, 1 to destroy."), text
    assert "tier" in live(lab, ns, "deployment/demo")["metadata"]["labels"]   # plan changed nothing

    second = gfs("apply", inv, *extra)
    assert second.returncode == 0, second.stdout + second.stderr
    deployment = live(lab, ns, "deployment/demo")
    assert "tier" not in deployment["metadata"]["labels"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "fast"}]
    job = live(lab, ns, "job/once")
    assert job["metadata"]["uid"] != job_uid
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"

    again = gfs("plan", inv, *extra)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout
    lab.exec("k8s-1", ["kubectl", "delete", "namespace", ns, "--wait=false"])


def test_an_object_someone_else_made_is_refused_by_default(lab, tmp_path):
    ns = "conv-" + uuid.uuid4().hex[:6]
    lab.exec("k8s-1", ["kubectl", "create", "namespace", ns], check=True)
    lab.exec("k8s-1", ["kubectl", "create", "configmap", "settings", "-n", ns, "--from-literal=a=1"], check=True)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.json.j2").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "2"}}))
    playbook = tmp_path / "site.yaml"
    playbook.write_text(PLAYBOOK)
    plan = gfs("plan", str(lab.inventory_path), "-p", str(playbook), "-e", f"ns={ns}")
    out = plan.stdout + plan.stderr
    assert plan.returncode == 1, out
    assert f"ConfigMap {ns}/settings exists but was not created by gfsdeploy" in out and "existing: adopt" in out
    assert "Traceback" not in out
    adopt = tmp_path / "adopt.yaml"
    adopt.write_text(textwrap.dedent(PLAYBOOK).replace('namespace: "{{ ns }}"', 'namespace: "{{ ns }}", existing: adopt'))
    done = gfs("apply", str(lab.inventory_path), "-p", str(adopt), "-e", f"ns={ns}")
    assert done.returncode == 0, done.stdout + done.stderr
    cm = live(lab, ns, "configmap/settings")
    assert cm["data"] == {"a": "2"} and cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gfsdeploy"
    assert gfs("plan", str(lab.inventory_path), "-p", str(adopt), "-e", f"ns={ns}").returncode == 0
    lab.exec("k8s-1", ["kubectl", "delete", "namespace", ns, "--wait=false"])


def test_a_wait_that_times_out_prints_the_pods_events(lab, tmp_path):
    """ErrImagePull: the timeout says which pod waits, why, and the kubelet's events."""
    ns = "conv-" + uuid.uuid4().hex[:6]
    faults = lab.state_dir / "sim" / "kubernetes-apiserver-simulator" / "faults.json"
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.json.j2").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pullme"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "pullme"}},
                  "template": {"metadata": {"labels": {"app": "pullme"}},
                               "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0",
                                                        "command": ["sleep", "3600"]}]}}}}]}))
    playbook = tmp_path / "site.yaml"
    playbook.write_text(PLAYBOOK.replace('namespace: "{{ ns }}"}',
                                         'namespace: "{{ ns }}", wait: ready, wait_timeout: 15}'))
    faults.write_text(json.dumps({"image_pull_fails": ["pullme"]}))
    try:
        failed = gfs("apply", str(lab.inventory_path), "-p", str(playbook), "-e", f"ns={ns}")
    finally:
        faults.write_text("{}")
        lab.exec("k8s-1", ["kubectl", "delete", "namespace", ns, "--wait=false"])
    out = failed.stdout + failed.stderr
    assert failed.returncode == 1, out
    assert f"timed out after 15s waiting for Deployment {ns}/pullme to be ready" in out
    assert "container app waiting ErrImagePull" in out
    assert "last events of pod pullme-" in out
    assert 'Warning Failed: Failed to pull image "registry.example/app:1.0"' in out
    assert "Traceback" not in out
