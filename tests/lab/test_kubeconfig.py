"""kubectl and its kubeconfig where kubeadm installs and sudo leave them, through the real
CLI over real SSH: the master's kubectl and kubeconfig are moved to non-default paths
(so any call that ignores the `kubectl`/`kubeconfig` variables fails), then found
through the variables; the default /etc/kubernetes/admin.conf is used when present;
the step that reaches the cluster says which API server, kubeconfig and version."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.lab

KUBECTL, MOVED = "/usr/local/bin/kubectl", "/opt/kbin/kubectl"
CONFIG, MOVED_CONFIG = "/root/.kube/config", "/srv/k8s/gfs-admin.conf"

PLAYBOOK = """\
- hosts: k8s_master[0]
  become: true
  tasks:
    - name: cluster
      kubernetes_facts: {kubectl: "{{ kubectl | default('kubectl') }}", kubeconfig: "{{ kubeconfig | default('') }}"}
      register: k8s
    - name: objects
      kubernetes:
        kubectl: "{{ kubectl | default('kubectl') }}"
        kubeconfig: "{{ kubeconfig | default('') }}"
        definition:
          - {apiVersion: v1, kind: Namespace, metadata: {name: "{{ ns }}"}}
          - {apiVersion: v1, kind: ConfigMap, metadata: {name: settings, namespace: "{{ ns }}"}, data: {a: "1"}}
    - name: node label
      kubernetes_label:
        kubectl: "{{ kubectl | default('kubectl') }}"
        kubeconfig: "{{ kubeconfig | default('') }}"
        nodes: [k8s-1]
        labels: {gfs-kcfg-test: "{{ ns }}"}
"""


def gfs(*args):
    return subprocess.run([sys.executable, "-m", "gfsdeploy", *args], capture_output=True, text=True, timeout=600)


def sh(lab, script: str):
    return lab.exec("k8s-1", ["sh", "-c", script], check=True).stdout


def test_kubectl_and_kubeconfig_at_non_default_paths(lab, tmp_path):
    ns = "kcfg-" + uuid.uuid4().hex[:6]
    playbook = tmp_path / "k.yaml"
    playbook.write_text(PLAYBOOK)
    inv = str(lab.inventory_path)
    server = json.loads(sh(lab, "kubectl config view --minify -o json"))["clusters"][0]["cluster"]["server"]
    sh(lab, f"mkdir -p /opt/kbin /srv/k8s && mv {KUBECTL} {MOVED} && mv {CONFIG} {MOVED_CONFIG}")
    try:
        lost = gfs("plan", inv, "-p", str(playbook), "-e", f"ns={ns}", "-e", f"kubectl={MOVED}")
        out = lost.stdout + lost.stderr
        assert lost.returncode == 1, out
        assert "kubectl did not reach the API server" in out and f"kubeconfig {CONFIG}" in out
        assert "set the inventory variable `kubeconfig`" in out and "Traceback" not in out

        where = ["-e", f"kubectl={MOVED}", "-e", f"kubeconfig={MOVED_CONFIG}", "-e", f"ns={ns}"]
        plan = gfs("plan", inv, "-p", str(playbook), "-v", *where)
        assert plan.returncode == 2, plan.stdout + plan.stderr
        assert f"API server {server} (kubeconfig {MOVED_CONFIG}): Kubernetes v" in plan.stdout
        assert f"+ kubernetes ConfigMap {ns}/settings" in plan.stdout
        done = gfs("apply", inv, "-p", str(playbook), *where)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"API server {server} (kubeconfig {MOVED_CONFIG})" in done.stdout
        cm = json.loads(sh(lab, f"{MOVED} --kubeconfig {MOVED_CONFIG} get configmap settings -n {ns} -o json"))
        assert cm["data"] == {"a": "1"}
        labels = json.loads(sh(lab, f"{MOVED} --kubeconfig {MOVED_CONFIG} get node k8s-1 -o json"))["metadata"]["labels"]
        assert labels["gfs-kcfg-test"] == ns

        # kubeadm's place: found without the variable
        sh(lab, f"mkdir -p /etc/kubernetes && cp {MOVED_CONFIG} /etc/kubernetes/admin.conf")
        again = gfs("plan", inv, "-p", str(playbook), "-v", "-e", f"kubectl={MOVED}", "-e", f"ns={ns}")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "(kubeconfig /etc/kubernetes/admin.conf): Kubernetes v" in again.stdout
    finally:
        sh(lab, f"rm -rf /etc/kubernetes; mv {MOVED} {KUBECTL} 2>/dev/null; mv {MOVED_CONFIG} {CONFIG} 2>/dev/null; true")
        lab.exec("k8s-1", ["kubectl", "label", "node", "k8s-1", "gfs-kcfg-test-"])
        lab.exec("k8s-1", ["kubectl", "delete", "namespace", ns, "--wait=false"])
