"""Render the Kubernetes manifests in ``templates/`` and decide which Kubernetes
versions they serve.

One manifest set (apps/v1, rbac/v1, storage/v1, batch/v1) serves Kubernetes
1.11–1.25; 1.26 removed the in-tree GlusterFS volume plugin and provisioner, so
nothing heketi-provisioned can work there and we refuse up front.

Values reach the JSON only through ``tojson``, so no inventory value (quotes,
newlines, unicode) can break a manifest. This environment is deliberately
small; the playbook engine has its own in :mod:`gfsdeploy.templating`.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import jinja2

from gfsdeploy.errors import PreflightError, TemplateError
from gfsdeploy_glusterfs import share

TEMPLATES_DIR = share.path("templates")

MIN_MINOR = 11
MAX_MINOR = 25
REMOVED_REASON = ("the in-tree GlusterFS volume plugin and provisioner were removed in "
                  "Kubernetes 1.26; heketi-provisioned GlusterFS cannot work there — see kadalu")

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:[.+\-].*)?\s*$")


def _to_json(value, indent=None, sort_keys=False) -> str:
    return json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False)


def _b64encode(value) -> str:
    data = value if isinstance(value, bytes) else str(value).encode()
    return base64.b64encode(data).decode()


def environment(templates_dir: str | Path | None = None) -> jinja2.Environment:
    """A strict Jinja environment over the templates directory."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir or TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    # tojson: plain json.dumps (Jinja's own HTML-escapes and sorts keys).
    env.filters.update(tojson=_to_json, to_json=_to_json, b64encode=_b64encode)
    return env


def render_text(name: str, variables: dict, templates_dir: str | Path | None = None) -> str:
    """Render template ``name`` (e.g. ``heketi-bootstrap.json.j2``) to text."""
    env = environment(templates_dir)
    where = str(Path(templates_dir or TEMPLATES_DIR) / name)
    try:
        return env.get_template(name).render(**with_minor(variables))
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {name!r} not found", file=where,
                            fix=f"use one of: {', '.join(template_names(templates_dir))}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{exc.message}", file=where,
                            fix="define the variable (see the comment at the top of the template)") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", file=where, line=exc.lineno) from None


def render(name: str, variables: dict, templates_dir: str | Path | None = None):
    """Render template ``name`` and parse it: the JSON document (object or ``v1 List``)."""
    return parse(render_text(name, variables, templates_dir), name)


def render_objects(name: str, variables: dict, templates_dir: str | Path | None = None) -> list[dict]:
    """Render a manifest template and return its Kubernetes objects (Lists flattened)."""
    return flatten(render(name, variables, templates_dir))


def parse(text: str, name: str = "manifest"):
    """Parse rendered JSON; a syntax error names the line (a template bug, never a value)."""
    try:
        # strict=False: a value known only after apply (a plan) is marked by control characters
        return json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"rendered {name} is not valid JSON: {exc.msg}", file=name, line=exc.lineno,
                            fix="the template must insert every value with `| tojson`") from None


def flatten(doc) -> list[dict]:
    """Objects of a manifest: a single object, a list of objects, or a ``v1 List``."""
    if doc is None:
        return []
    if isinstance(doc, list):
        return [obj for item in doc for obj in flatten(item)]
    if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        return flatten(doc["items"])
    return [doc]


def template_names(templates_dir: str | Path | None = None) -> list[str]:
    return sorted(p.name for p in Path(templates_dir or TEMPLATES_DIR).glob("*.j2"))


def with_minor(variables: dict) -> dict:
    """Add ``k8s_minor`` from ``kubernetes_version`` when only the latter is given."""
    if "k8s_minor" not in variables and variables.get("kubernetes_version") is not None:
        return {**variables, "k8s_minor": kubernetes_minor(variables["kubernetes_version"])}
    return variables


def kubernetes_minor(version) -> int:
    """The minor number of a Kubernetes version: ``v1.25.3``, ``1.11``, ``v1.21.4+k3s1`` → 25, 11, 21.

    Also takes the ``serverVersion`` dict of ``kubectl version -o json``."""
    if isinstance(version, dict):
        if version.get("gitVersion"):
            return kubernetes_minor(version["gitVersion"])
        minor = re.match(r"\d+", str(version.get("minor", "")))
        if str(version.get("major")) == "1" and minor:
            return int(minor.group())
        raise ValueError(f"not a Kubernetes version: {version!r}")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    match = _VERSION.match(str(version))
    if not match or match.group(1) != "1":
        raise ValueError(f"not a Kubernetes version: {version!r} (expected e.g. v1.25.3)")
    return int(match.group(2))


def check_supported(version) -> int:
    """Refuse Kubernetes versions the manifests cannot serve; return the minor."""
    try:
        minor = kubernetes_minor(version)
    except ValueError as exc:
        raise PreflightError(str(exc), fix="check `kubectl version -o json` on the master") from None
    shown = version.get("gitVersion", version) if isinstance(version, dict) else version
    if minor > MAX_MINOR:
        raise PreflightError(
            f"Kubernetes {shown} is not supported: {REMOVED_REASON}",
            fix="use Kubernetes 1.11–1.25 for heketi + GlusterFS, or a CSI-based successor "
                "(kadalu) on newer clusters")
    if minor < MIN_MINOR:
        raise PreflightError(
            f"Kubernetes {shown} is not supported: the manifests need apps/v1 and rbac/v1 "
            f"as served by Kubernetes 1.{MIN_MINOR} or newer",
            fix="upgrade the cluster to Kubernetes 1.11–1.25")
    return minor
