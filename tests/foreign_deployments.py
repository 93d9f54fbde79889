"""Objects shaped like those of the deployments gfsdeploy may find already running,
written from the facts of their manifests (labels, selectors, env, volumes), as the
API server serves them (extensions/v1beta1 objects come back as apps/v1 with their
selector defaulted from the pod template's labels):

- gk-deploy (gluster-kubernetes): keys in the heketi Deployment's env
  HEKETI_ADMIN_KEY/HEKETI_USER_KEY, heketi.json with auth off, ClusterRoleBinding
  heketi-sa-view, Secret heketi-config-secret with private_key and topology.json;
- kubespray's former heketi role: Service heketi labelled deploy-heketi=support,
  selectors on `name`, Secret heketi-db-backup, StorageClass gluster with the key in
  its parameters, DaemonSet selecting glusterfs-node=daemonset.
"""

from __future__ import annotations

import base64
import json


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _heketi_json(admin: str, user: str, auth: bool) -> str:
    return json.dumps({"port": "8080", "use_auth": auth, "jwt": {"admin": {"key": admin}, "user": {"key": user}},
                       "glusterfs": {"executor": "kubernetes", "db": "/var/lib/heketi/heketi.db"}})


def _daemonset(ns, labels, selector, image, env=()):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "glusterfs", "namespace": ns, "labels": labels,
                         "annotations": {"description": "GlusterFS DaemonSet", "tags": "glusterfs"}},
            "spec": {"selector": {"matchLabels": selector},
                     "template": {"metadata": {"name": "glusterfs", "labels": selector},
                                  "spec": {"nodeSelector": {"storagenode": "glusterfs"}, "hostNetwork": True,
                                           "containers": [{"name": "glusterfs", "image": image,
                                                           "imagePullPolicy": "IfNotPresent",
                                                           "env": [{"name": k, "value": v} for k, v in env],
                                                           "securityContext": {"privileged": True}}]}}}}


def _heketi(ns, labels, selector, image, env, volumes, pull="IfNotPresent"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "heketi", "namespace": ns, "labels": labels,
                         "annotations": {"description": "Defines how to deploy Heketi"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"name": "heketi", "labels": selector},
                                  "spec": {"serviceAccountName": "heketi-service-account",
                                           "containers": [{"name": "heketi", "image": image,
                                                           "imagePullPolicy": pull,
                                                           "env": [{"name": k, "value": v} for k, v in env],
                                                           "ports": [{"containerPort": 8080}],
                                                           "volumeMounts": [{"name": "db", "mountPath": "/var/lib/heketi"},
                                                                            {"name": "config",
                                                                             "mountPath": "/etc/heketi"}]}],
                                           "volumes": volumes}}}}


DB_VOLUME = {"name": "db", "glusterfs": {"endpoints": "heketi-storage-endpoints", "path": "heketidbstorage"}}
CONFIG_VOLUME = {"name": "config", "secret": {"secretName": "heketi-config-secret"}}


def gk_deploy(ns: str, admin_key: str, user_key: str) -> list[dict]:
    return [
        _daemonset(ns, {"glusterfs": "daemonset"}, {"glusterfs": "pod", "glusterfs-node": "pod"},
                   "gluster/gluster-centos:latest", [("HOST_DEV_DIR", "/mnt/host-dev")]),
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "heketi-service-account", "namespace": ns,
                      "labels": {"glusterfs": "heketi-sa", "heketi": "sa"}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "heketi-sa-view", "labels": {"glusterfs": "heketi-sa-view", "heketi": "sa-view"}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
         "subjects": [{"kind": "ServiceAccount", "name": "heketi-service-account", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": "heketi-config-secret", "namespace": ns,
                      "labels": {"glusterfs": "heketi-config-secret", "heketi": "config-secret"}},
         "data": {"heketi.json": _b64(_heketi_json("", "", False)), "private_key": _b64("-----BEGIN KEY-----"),
                  "topology.json": _b64('{"clusters": []}')}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "heketi", "namespace": ns, "labels": {"glusterfs": "heketi-service", "heketi": "service"},
                      "annotations": {"description": "Exposes Heketi Service"}},
         "spec": {"selector": {"glusterfs": "heketi-pod"}, "ports": [{"name": "heketi", "port": 8080, "targetPort": 8080}]}},
        _heketi(ns, {"glusterfs": "heketi-deployment", "heketi": "deployment"},
                {"glusterfs": "heketi-pod", "heketi": "pod"}, "heketi/heketi:dev",
                [("HEKETI_USER_KEY", user_key), ("HEKETI_ADMIN_KEY", admin_key), ("HEKETI_EXECUTOR", "kubernetes"),
                 ("HEKETI_FSTAB", "/var/lib/heketi/fstab"), ("HEKETI_SNAPSHOT_LIMIT", "14"),
                 ("HEKETI_KUBE_GLUSTER_DAEMONSET", "y"), ("HEKETI_IGNORE_STALE_OPERATIONS", "true")],
                [DB_VOLUME, CONFIG_VOLUME]),
    ]


def kubespray(ns: str, admin_key: str, user_key: str) -> list[dict]:
    return [
        _daemonset(ns, {"glusterfs": "deployment"}, {"glusterfs-node": "daemonset"},
                   "gluster/gluster-centos:gluster4u0_centos7"),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "heketi-service-account", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "heketi-gluster-admin"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
         "subjects": [{"kind": "ServiceAccount", "name": "heketi-service-account", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": "heketi-config-secret", "namespace": ns},
         "data": {"heketi.json": _b64(_heketi_json(admin_key, user_key, True))}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": "heketi-db-backup", "namespace": ns, "labels": {"glusterfs": "heketi-db", "heketi": "db"}},
         "data": {}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "heketi", "namespace": ns,
                      "labels": {"glusterfs": "heketi-service", "deploy-heketi": "support"},
                      "annotations": {"description": "Exposes Heketi Service"}},
         "spec": {"selector": {"name": "heketi"}, "ports": [{"name": "heketi", "port": 8080, "targetPort": 8080}]}},
        _heketi(ns, {"glusterfs": "heketi-deployment"}, {"name": "heketi"}, "heketi/heketi:9",
                [("HEKETI_EXECUTOR", "kubernetes"), ("HEKETI_DB_PATH", "/var/lib/heketi/heketi.db"),
                 ("HEKETI_FSTAB", "/var/lib/heketi/fstab"), ("HEKETI_SNAPSHOT_LIMIT", "14"),
                 ("HEKETI_KUBE_GLUSTER_DAEMONSET", "y")],
                [DB_VOLUME, {"name": "heketi-db-secret", "secret": {"secretName": "heketi-db-backup"}}, CONFIG_VOLUME],
                pull="Always"),
    ]


def kubespray_storageclass(heketi_ip: str, admin_key: str) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "gluster", "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/glusterfs",
            "parameters": {"resturl": f"http://{heketi_ip}:8080", "restuser": "admin", "restuserkey": admin_key}}
