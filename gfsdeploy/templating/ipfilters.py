"""The ``ipaddr`` family of filters (``ipaddr``, ``ipv4``, ``ipv6``, ``ipwrap``,
``ipmath``, ``nthhost``, ``network_in_usable``…) on the standard library's
:mod:`ipaddress`, for the queries playbooks use. A query gfsdeploy does not know
is an error naming it — never a silent ``False``.

A value is an address (``10.0.0.5``), an interface (``10.0.0.5/24``) or a
network (``10.0.0.0/24``); a plain address is treated as ``/32`` (``/128``).
An invalid value gives ``False``; a list is filtered (invalid items dropped).
"""

from __future__ import annotations

import ipaddress


class IpFilterError(ValueError):
    pass


def _parse(value, version: int | None = None):
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if isinstance(value, int):
        try:
            iface = ipaddress.ip_interface(value)
        except ValueError:
            return None
    else:
        try:
            iface = ipaddress.ip_interface(text.strip("[]") if text.startswith("[") else text)
        except ValueError:
            return None
    if version is not None and iface.version != version:
        return None
    return iface


def _has_prefix(value) -> bool:
    return "/" in str(value)


def _query(value, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface, query: str):
    net = iface.network
    ip = iface.ip
    prefixed = _has_prefix(value)
    if query in ("address/prefix", "host/prefix"):
        if query == "host/prefix" and (not prefixed or ip == net.network_address and net.num_addresses > 1):
            return False
        return f"{ip}/{net.prefixlen}" if prefixed else False
    if query == "":
        return str(value).strip()
    if query in ("address", "ip"):
        if prefixed and ip == net.network_address and net.num_addresses > 2 and ip.version == 4:
            return False  # a network, not an address on it
        return str(ip)
    if query == "host":
        if prefixed and ip == net.network_address and net.num_addresses > 1:
            return False
        return f"{ip}/{32 if ip.version == 4 else 128}"
    if query in ("network", "network_id"):
        return str(net.network_address)
    if query == "net":
        return str(net) if prefixed and ip == net.network_address else False
    if query in ("netmask", "mask"):
        return str(net.netmask)
    if query == "hostmask":
        return str(net.hostmask)
    if query == "prefix":
        return net.prefixlen
    if query == "broadcast":
        return str(net.broadcast_address) if ip.version == 4 and net.prefixlen < 31 else None
    if query in ("cidr", "subnet"):
        return str(net)
    if query == "size":
        return net.num_addresses
    if query == "version":
        return ip.version
    if query in ("ipv4", "4"):
        return str(value).strip() if ip.version == 4 else False
    if query in ("ipv6", "6"):
        return str(value).strip() if ip.version == 6 else False
    if query == "public":
        return str(value).strip() if ip.is_global else False
    if query == "private":
        return str(value).strip() if ip.is_private else False
    if query == "loopback":
        return str(value).strip() if ip.is_loopback else False
    if query == "multicast":
        return str(value).strip() if ip.is_multicast else False
    if query == "unicast":
        return str(value).strip() if not ip.is_multicast else False
    if query == "link-local":
        return str(value).strip() if ip.is_link_local else False
    if query == "revdns":
        return ip.reverse_pointer + "."
    if query == "wrap":
        return f"[{value}]" if ip.version == 6 else str(value).strip()
    if query in ("first_usable", "last_usable", "range_usable", "next_usable", "previous_usable"):
        if net.num_addresses <= 2:
            hosts = list(net)
        else:
            hosts = [net.network_address + 1, net.broadcast_address - (1 if ip.version == 4 else 0)]
        first, last = hosts[0], hosts[-1]
        if query == "first_usable":
            return str(first)
        if query == "last_usable":
            return str(last)
        if query == "range_usable":
            return f"{first}-{last}"
        if query == "next_usable":
            return str(ip + 1) if ip + 1 <= last else None
        return str(ip - 1) if ip - 1 >= first else None
    if query.lstrip("-").isdigit():
        n = int(query)
        if n >= net.num_addresses or -n > net.num_addresses:
            return False
        addr = net[n]
        return f"{addr}/{net.prefixlen}"
    raise IpFilterError(f"ipaddr: unknown query {query!r}; known: address, network, netmask, prefix, broadcast, "
                        "host, net, cidr, subnet, size, version, public, private, revdns, wrap, first_usable, "
                        "last_usable, next_usable, ipv4, ipv6, or a number (n-th address)")


def ipaddr(value, query="", version: int | None = None, alias: str = "ipaddr"):
    query = "" if query is None else str(query)
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            result = ipaddr(item, query, version, alias)
            if result not in (False, None, ""):
                out.append(result)
        return out
    iface = _parse(value, version)
    if iface is None:
        return False
    return _query(value, iface, query)


def ipv4(value, query=""):
    return ipaddr(value, query, 4, "ipv4")


def ipv6(value, query=""):
    return ipaddr(value, query, 6, "ipv6")


def ipwrap(value, query=""):
    """IPv6 addresses in brackets (for URLs, host:port); anything else unchanged."""
    if isinstance(value, (list, tuple)):
        return [ipwrap(v, query) for v in value]
    iface = _parse(value)
    if iface is not None and iface.version == 6 and not _has_prefix(value):
        return f"[{str(value).strip()}]"
    return value


def ipmath(value, amount):
    iface = _parse(value)
    if iface is None:
        raise IpFilterError(f"ipmath: {value!r} is not an IP address")
    return str(iface.ip + int(amount))


def nthhost(value, n):
    iface = _parse(value)
    if iface is None:
        return False
    n = int(n)
    if n >= iface.network.num_addresses:
        return False
    return str(iface.network[n])


def network_in_usable(value, test):
    net = _parse(value)
    addr = _parse(test)
    if net is None or addr is None:
        return False
    return addr.ip in net.network and addr.ip not in (net.network.network_address, net.network.broadcast_address)


def network_in_network(value, test):
    net = _parse(value)
    other = _parse(test)
    if net is None or other is None or net.version != other.version:
        return False
    return other.network.subnet_of(net.network)


def ipsubnet(value, query=""):
    iface = _parse(value)
    if iface is None:
        return False
    if query in ("", None):
        return str(iface.network)
    return f"{iface.network.network_address}/{int(query)}"


FILTERS = {
    "ipaddr": ipaddr,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "ipwrap": ipwrap,
    "ipmath": ipmath,
    "nthhost": nthhost,
    "network_in_usable": network_in_usable,
    "network_in_network": network_in_network,
    "ipsubnet": ipsubnet,
}
