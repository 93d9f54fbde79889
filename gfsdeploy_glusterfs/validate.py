"""Kubernetes name checks, added to the engine's argument checks
(``Param(check="k8s_name")``) when a flagship module is imported."""

from __future__ import annotations

import re

from gfsdeploy.validate import CHECKS

_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_K8S_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def k8s_name(value) -> str | None:
    if not isinstance(value, str) or len(value) > 253 or not _K8S_NAME.fullmatch(value):
        return f"{value!r} is not a valid Kubernetes name (lower-case letters, digits, '-', '.')"
    return None


def k8s_label_value(value) -> str | None:
    if not isinstance(value, str) or len(value) > 63 or not _K8S_LABEL_VALUE.fullmatch(value):
        return f"{value!r} is not a valid Kubernetes label value"
    return None


CHECKS.update(k8s_name=k8s_name, k8s_label_value=k8s_label_value)
