"""heketi-cli inside the lab's heketi pod, run the way playbooks run it: over SSH on the master,
`kubectl exec <heketi pod> -- heketi-cli --user admin --secret KEY ...`. What it did is checked
through heketi's REST API from the host (the project's own client), not through heketi-cli."""

import json
import shlex
import subprocess
import time

import pytest

from gfsdeploy_glusterfs.heketi_client import HeketiClient

NS = "heketicli-test"
KEY = "lab-admin-key"
HEKETI_JSON = {"port": "8080", "use_auth": True, "jwt": {"admin": {"key": KEY}, "user": {"key": "lab-user-key"}},
               "glusterfs": {"executor": "kubernetes", "db": "/var/lib/heketi/heketi.db"}}
MANIFEST = {"kind": "List", "apiVersion": "v1", "items": [
    {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "heketi"},
     "spec": {"selector": {"name": "heketi"}, "ports": [{"port": 8080, "targetPort": 8080}]}},
    {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "heketi", "labels": {"name": "heketi"}},
     "spec": {"containers": [{"name": "heketi", "image": "heketi/heketi:9", "ports": [{"containerPort": 8080}],
                              "volumeMounts": [{"name": "db", "mountPath": "/var/lib/heketi"},
                                               {"name": "config", "mountPath": "/etc/heketi"}],
                              "readinessProbe": {"periodSeconds": 1, "httpGet": {"path": "/hello", "port": 8080}}}],
              "volumes": [{"name": "db", "emptyDir": {}},
                          {"name": "config", "secret": {"secretName": "heketi-config-secret"}}]}}]}


def ssh(lab, command: str, input=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(lab.ssh_argv("k8s-1") + [command], input=input, capture_output=True, text=True,
                          timeout=timeout)


def kubectl(lab, *args, input=None) -> subprocess.CompletedProcess:
    return ssh(lab, "kubectl -n " + NS + " " + " ".join(shlex.quote(a) for a in args), input=input)


def heketi_cli(lab, *args, secret=KEY) -> subprocess.CompletedProcess:
    return kubectl(lab, "exec", "heketi", "--", "heketi-cli", "--user", "admin", "--secret", secret, *args)


@pytest.fixture(scope="module")
def heketi_pod(lab):
    assert ssh(lab, f"kubectl create namespace {NS}").returncode == 0
    try:
        done = kubectl(lab, "create", "secret", "generic", "heketi-config-secret",
                       "--from-file=heketi.json=/dev/stdin", input=json.dumps(HEKETI_JSON))
        assert done.returncode == 0, done.stderr
        done = kubectl(lab, "create", "-f", "-", input=json.dumps(MANIFEST))
        assert done.returncode == 0, done.stderr
        done = kubectl(lab, "wait", "--for=condition=Ready", "pod/heketi", "--timeout=120s")
        assert done.returncode == 0, done.stdout + done.stderr
        service = json.loads(kubectl(lab, "get", "service", "heketi", "-o", "json").stdout)
        yield HeketiClient(f"http://{service['spec']['clusterIP']}:8080", "admin", KEY, poll_interval=0.2)
    finally:
        ssh(lab, f"kubectl delete namespace {NS} --wait=false")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ssh(lab, f"kubectl get namespace {NS}").returncode == 0:
            time.sleep(1)


def test_heketi_cli_in_the_heketi_pod(lab, heketi_pod):
    done = heketi_cli(lab, "cluster", "create", "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert heketi_pod.clusters() == [created["id"]]          # the REST API, from the host

    done = heketi_cli(lab, "topology", "info", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["clusters"][0]["id"] == created["id"]

    done = heketi_cli(lab, "cluster", "list", secret="not-the-key")
    assert done.returncode == 255
    assert "Error: Invalid JWT token: signature is invalid" in done.stderr

    done = heketi_cli(lab, "volume", "frobnicate")
    assert done.returncode == 255 and 'Error: unknown command "frobnicate" for "heketi-cli volume"' in done.stderr

    done = heketi_cli(lab, "cluster", "delete", created["id"])
    assert (done.returncode, done.stdout) == (0, f"Cluster {created['id']} deleted\n")
    assert heketi_pod.clusters() == []
