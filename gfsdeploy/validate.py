"""Checks for values with a fixed form (IPs, hostnames, device paths, ports,
chain and package names). Each returns an error message, or None when the value is fine,
so callers can attach file/line/field and a fix."""

from __future__ import annotations

import ipaddress
import re

_HOSTNAME = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_DEVICE = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9._/:+-]{0,200}$")
_MODULE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
# Debian/RPM package names (optionally =version / -version and :arch); never an option
_PACKAGE = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.:~=*-]{0,200}$")
_LINE_BREAK = re.compile(r"[\x00\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_CHAIN = re.compile(r"^[A-Za-z0-9_.-]{1,28}$")


def ip(value) -> str | None:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return f"{value!r} is not an IP address"
    return None


def hostname(value) -> str | None:
    if not isinstance(value, str) or not _HOSTNAME.fullmatch(value):
        return f"{value!r} is not a valid hostname (letters, digits, '-', '.')"
    return None


def host_or_ip(value) -> str | None:
    if ip(value) is None:
        return None
    return hostname(value)


def device(value) -> str | None:
    if not isinstance(value, str) or not _DEVICE.fullmatch(value) or "/../" in value or value.endswith("/.."):
        return f"{value!r} is not a block device path like /dev/sdb"
    return None


def port(value) -> str | None:
    try:
        number = int(str(value))
    except ValueError:
        return f"{value!r} is not a port number"
    if not 1 <= number <= 65535 or str(value).strip() != str(number):
        return f"{value!r} is not a port number (1-65535)"
    return None


def port_or_range(value) -> str | None:
    text = str(value)
    if ":" in text:
        low, _, high = text.partition(":")
        return port(low) or port(high) or (None if int(low) <= int(high) else f"{value!r}: range start is above its end")
    return port(value)


def kernel_module(value) -> str | None:
    if not isinstance(value, str) or not _MODULE_NAME.fullmatch(value):
        return f"{value!r} is not a kernel module name"
    return None


def package_name(value) -> str | None:
    if not isinstance(value, str) or not _PACKAGE.fullmatch(value):
        return f"{value!r} is not a package name"
    return None


def path(value) -> str | None:
    if not isinstance(value, str) or not value or _LINE_BREAK.search(value):
        return f"{value!r} is not a usable path (empty, or contains a line break or NUL)"
    return None


def iptables_chain(value) -> str | None:
    if not isinstance(value, str) or not _CHAIN.fullmatch(value):
        return f"{value!r} is not an iptables chain name (letters, digits, '_', '-', '.', at most 28)"
    return None


CHECKS = {
    "ip": ip, "hostname": hostname, "host": host_or_ip, "device": device, "port": port,
    "port_range": port_or_range,
    "kernel_module": kernel_module, "iptables_chain": iptables_chain, "package": package_name,
    "path": path,
}
