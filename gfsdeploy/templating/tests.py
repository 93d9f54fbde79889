"""Ansible's Jinja tests (``x is succeeded``, ``v is version('1.2', '>=')``…),
written for gfsdeploy with Ansible's names and meaning. ``TESTS`` is the
registry the Templar and the static checker share."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from urllib.parse import urlparse

import jinja2

from gfsdeploy.templating import versions


class TestError(ValueError):
    """A test was applied to the wrong kind of value."""

    __test__ = False  # not a pytest class


def _result(value, name: str) -> Mapping:
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises: the registered variable does not exist
    if not isinstance(value, Mapping):
        raise TestError(f"the {name!r} test expects a task result (a dictionary from `register:`), "
                        f"got {type(value).__name__}")
    return value


def failed(value):
    return bool(_result(value, "failed").get("failed", False))


def succeeded(value):
    return not failed(value)


def changed(value):
    result = _result(value, "changed")
    if "changed" in result:
        return bool(result["changed"])
    items = result.get("results")
    if isinstance(items, list) and items and isinstance(items[0], Mapping):
        return any(bool(item.get("changed", False)) for item in items if isinstance(item, Mapping))
    return False


def skipped(value):
    result = _result(value, "skipped")
    if "results" in result and isinstance(result["results"], list) and result["results"] \
            and "skipped" not in result:
        return all(isinstance(item, Mapping) and bool(item.get("skipped")) for item in result["results"])
    return bool(result.get("skipped", False))


def unreachable(value):
    return bool(_result(value, "unreachable").get("unreachable", False))


def reachable(value):
    return not unreachable(value)


def timedout(value):
    timeout = _result(value, "timedout").get("timedout")
    return bool(timeout and timeout.get("period")) if isinstance(timeout, Mapping) else bool(timeout)


def finished(value):
    result = _result(value, "finished")
    return "finished" not in result or bool(result["finished"])


def started(value):
    result = _result(value, "started")
    return "started" not in result or bool(result["started"])


def _regex(value, pattern="", ignorecase=False, multiline=False, match_type="search"):
    flags = (re.I if ignorecase else 0) | (re.M if multiline else 0)
    if match_type not in ("match", "search", "fullmatch"):
        raise TestError(f"regex: match_type must be match, search or fullmatch, got {match_type!r}")
    return getattr(re.compile(str(pattern), flags), match_type)(str(value)) is not None


def match(value, pattern="", ignorecase=False, multiline=False):
    return _regex(value, pattern, ignorecase, multiline, "match")


def search(value, pattern="", ignorecase=False, multiline=False):
    return _regex(value, pattern, ignorecase, multiline, "search")


def version(value, version="", operator="eq", strict=None, version_type=None):
    try:
        return versions.compare(value, version, operator, strict, version_type)
    except versions.VersionError as exc:
        raise TestError(str(exc)) from None


def truthy(value, convert_bool=False):
    if convert_bool and isinstance(value, str):
        from gfsdeploy.templating.filters import to_bool

        value = to_bool(value)
    return bool(value)


def falsy(value, convert_bool=False):
    return not truthy(value, convert_bool)


def vault_encrypted(value):
    from gfsdeploy import vault

    return vault.is_encrypted_value(value)


def vaulted_file(value):
    from gfsdeploy import vault

    try:
        with open(str(value), "rb") as handle:
            return vault.is_encrypted(handle.read(64))
    except OSError:
        return False


def defined(value):
    from gfsdeploy.deferred import Deferred

    if isinstance(value, Deferred):  # a broken variable: its error, not "undefined"
        value.fail()
    return not isinstance(value, jinja2.Undefined)


def undefined(value):
    return not defined(value)


def is_uri(value, schemes=None):
    try:
        parts = urlparse(str(value))
    except ValueError:
        return False
    return not schemes or parts.scheme in schemes


def is_url(value, schemes=None):
    if not is_uri(value, schemes):
        return False
    parts = urlparse(str(value))
    return bool(parts.netloc or parts.scheme == "file")


def is_urn(value):
    return is_uri(value, ["urn"])


def subset(a, b):
    return set(a) <= set(b)


def superset(a, b):
    return set(a) >= set(b)


def contains(seq, value):
    return value in seq


def nan(value):
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


BUILTIN = {
    "failed": failed, "failure": failed, "succeeded": succeeded, "success": succeeded,
    "successful": succeeded, "reachable": reachable, "unreachable": unreachable, "timedout": timedout,
    "changed": changed, "change": changed, "skipped": skipped, "skip": skipped,
    "finished": finished, "started": started,
    "match": match, "search": search, "regex": _regex,
    "version": version, "version_compare": version,
    "any": any, "all": all, "truthy": truthy, "falsy": falsy,
    "vault_encrypted": vault_encrypted, "vaulted_file": vaulted_file,
    "defined": defined, "undefined": undefined,
    "subset": subset, "issubset": subset, "superset": superset, "issuperset": superset, "contains": contains,
    "nan": nan, "isnan": nan,
    "directory": os.path.isdir, "is_dir": os.path.isdir, "file": os.path.isfile, "is_file": os.path.isfile,
    "link": os.path.islink, "is_link": os.path.islink, "exists": os.path.exists, "link_exists": os.path.lexists,
    "abs": os.path.isabs, "is_abs": os.path.isabs, "same_file": _same_file, "is_same_file": _same_file,
    "mount": os.path.ismount, "is_mount": os.path.ismount,
    "uri": is_uri, "url": is_url, "urn": is_urn,
}


def _ip(value):
    from gfsdeploy.templating.ipfilters import ipaddr

    return ipaddr(value) not in (False, None)


def _ip_test(version=None, address=False, check=None):
    import ipaddress

    def test(value):
        """An address, or (unless ``address``) a network written with its network address."""
        text = str(value)
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            if address:
                return False
            try:
                ip = ipaddress.ip_network(text).network_address
            except ValueError:
                return False
        if version and ip.version != version:
            return False
        return check(ip) if check else True

    return test


def _in_network(value, network):
    import ipaddress

    try:
        return ipaddress.ip_interface(str(value)).ip in ipaddress.ip_network(str(network), strict=False)
    except ValueError:
        return False


COLLECTIONS = {
    "ansible.utils.ipaddr": _ip, "ansible.utils.ip": _ip_test(), "ansible.utils.ipv4": _ip_test(4),
    "ansible.utils.ipv6": _ip_test(6), "ansible.utils.ip_address": _ip_test(address=True),
    "ansible.utils.ipv4_address": _ip_test(4, address=True), "ansible.utils.ipv6_address": _ip_test(6, address=True),
    "ansible.utils.private": _ip_test(address=True, check=lambda ip: ip.is_private),
    "ansible.utils.public": _ip_test(address=True, check=lambda ip: ip.is_global and not ip.is_multicast),
    "ansible.utils.loopback": _ip_test(address=True, check=lambda ip: ip.is_loopback),
    "ansible.utils.multicast": _ip_test(address=True, check=lambda ip: ip.is_multicast),
    "ansible.utils.in_network": _in_network,
}


def registry(jinja_builtins: Mapping) -> dict:
    out = dict(jinja_builtins)
    out.update(BUILTIN)
    out["ipaddr"] = _ip
    for name in list(jinja_builtins) + list(BUILTIN):
        out[f"ansible.builtin.{name}"] = out[name]
    out.update(COLLECTIONS)
    return out
