"""The ``ipaddr`` family of filters (``ipaddr``, ``ipv4``, ``ipv6``, ``ipwrap``,
``ipmath``, ``nthhost``, ``network_in_usable``, ``network_in_network``,
``ipsubnet``) on the standard library's :mod:`ipaddress`, with the results of
Ansible's ``ansible.utils`` collection (checked in tests/templating/).

A value is an address (``10.0.0.5``, a ``/32`` host), an address on a network
(``10.0.0.5/24``) or a network (``10.0.0.0/24``: the address is the network's
own). An invalid value gives ``False``; a query that does not apply gives
``None``; a list keeps the items whose result is neither. Queries that need a
network (``first_usable`` …) on a bare address are errors, as in Ansible.
"""

from __future__ import annotations

import ipaddress


class IpFilterError(ValueError):
    pass


def _parse(value, version: int | None = None):
    """(interface, had_prefix) or None."""
    if isinstance(value, bool) or value is None:
        if value is None:
            raise IpFilterError("ipaddr: a value of None is not an IP address")
        return None
    if isinstance(value, int):
        try:
            iface = ipaddress.ip_interface(value)
        except ValueError:
            return None
        prefixed = False
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            return None
        prefixed = "/" in text
    if version is not None and iface.version != version:
        return None
    return iface, prefixed


def _s(address) -> str:
    """An address or network as text; IPv4-mapped IPv6 in dotted form (``::ffff:10.0.0.1``)."""
    if isinstance(address, (ipaddress.IPv6Network, ipaddress.IPv6Interface)):
        return f"{_s(address.network_address if isinstance(address, ipaddress.IPv6Network) else address.ip)}" \
               f"/{address.prefixlen}"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _is_network(iface, prefixed: bool) -> bool:
    """A network written as such: its own network address, more than two addresses."""
    return prefixed and iface.ip == iface.network.network_address and iface.network.num_addresses > 2


def _usable(iface) -> tuple | None:
    net = iface.network
    if net.num_addresses == 1:
        return None
    if net.num_addresses == 2:
        return net.network_address, net.broadcast_address
    return net.network_address + 1, net.broadcast_address - 1


def _need_network(prefixed: bool, query: str):
    if not prefixed:
        raise IpFilterError(f"ipaddr('{query}'): Not a network address (give it with a /prefix)")


_SAME = ("", "unicast")
_ALIASES = {"lo": "loopback", "ip": "address", "network_id": "network", "mask": "netmask", "net_mask": "netmask",
            "netmask/prefix": "cidr", "network/prefix": "subnet", "address/prefix": "host/prefix",
            "linklocal": "link-local", "link_local": "link-local", "4": "4", "6": "6"}


def _query(value, iface, prefixed: bool, query: str):
    q = _ALIASES.get(query, query)
    ip, net = iface.ip, iface.network
    given = str(value).strip() if not isinstance(value, int) else _s(ip)
    if q in _SAME:
        return given if q == "" or not ip.is_multicast else None
    if q == "bool":
        return True
    if q == "address":
        return None if _is_network(iface, prefixed) else _s(ip)
    if q in ("cidr", "host"):
        if q == "host" and _is_network(iface, prefixed):
            return None
        return f"{_s(ip)}/{net.prefixlen}"
    if q == "host/prefix":
        return False if _is_network(iface, prefixed) else f"{_s(ip)}/{net.prefixlen}"
    if q == "net":
        return _s(net) if prefixed and ip == net.network_address and net.num_addresses > 1 else None
    if q == "network":
        return _s(net.network_address)
    if q == "subnet":
        return _s(net)
    if q == "netmask":
        return _s(net.netmask)
    if q == "hostmask":
        return _s(net.hostmask)
    if q == "prefix":
        return net.prefixlen
    if q == "size":
        return net.num_addresses
    if q == "version":
        return ip.version
    if q == "broadcast":
        if not prefixed or net.num_addresses <= 2:
            return None
        return _s(net.broadcast_address)
    if q == "int":
        return int(ip) if not prefixed else f"{int(ip)}/{net.prefixlen}"
    if q == "revdns":
        return ip.reverse_pointer + "."
    if q == "wrap":
        if ip.version == 6:
            return f"[{_s(ip)}]/{net.prefixlen}" if prefixed else f"[{_s(ip)}]"
        return given
    if q in ("public", "private", "loopback", "multicast", "link-local"):
        test = {"public": ip.is_global and not ip.is_multicast, "private": ip.is_private, "loopback": ip.is_loopback,
                "multicast": ip.is_multicast, "link-local": ip.is_link_local}[q]
        return given if test else None
    if q == "ipv4":
        if ip.version == 4:
            return given
        mapped = ip.ipv4_mapped
        return f"{mapped}/32" if mapped else False
    if q == "ipv6":
        if ip.version == 6:
            return given
        return f"::ffff:{ip}/{net.prefixlen + 96}"
    if q in ("first_usable", "last_usable", "range_usable", "next_usable", "previous_usable"):
        _need_network(prefixed, q)
        usable = _usable(iface)
        if usable is None:
            return None
        first, last = usable
        if q == "first_usable":
            return _s(first)
        if q == "last_usable":
            return _s(last)
        if q == "range_usable":
            return f"{_s(first)}-{_s(last)}"
        if q == "next_usable":
            return _s(ip + 1) if ip + 1 <= last else None
        return _s(ip - 1) if ip > first and ip - 1 >= first else None
    if q.lstrip("-").isdigit():
        if not prefixed:
            return given
        if net.num_addresses == 1:
            return f"{_s(ip)}/{net.prefixlen}"
        n = int(q)
        if n >= net.num_addresses or -n > net.num_addresses:
            return False
        return f"{_s(net[n])}/{net.prefixlen}"
    raise IpFilterError(f"ipaddr: unknown query {query!r}; known: address, network, netmask, hostmask, prefix, "
                        "broadcast, host, host/prefix, net, cidr, subnet, size, version, int, bool, public, "
                        "private, loopback, multicast, link-local, revdns, wrap, first_usable, last_usable, "
                        "next_usable, previous_usable, range_usable, ipv4, ipv6, or a number (n-th address)")


def ipaddr(value, query="", version: int | None = None):
    query = "" if query is None else str(query)
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            result = ipaddr(item, query, version)
            if result not in (False, None):
                out.append(result)
        return out
    parsed = _parse(value, version)
    if parsed is None:
        return False
    return _query(value, *parsed, query)


def ipv4(value, query=""):
    return ipaddr(value, query, 4)


def ipv6(value, query=""):
    return ipaddr(value, query, 6)


def ipwrap(value, query=""):
    """IPv6 addresses in brackets (for URLs, host:port); anything else unchanged."""
    if isinstance(value, (list, tuple)):
        return [ipwrap(v, query) for v in value]
    parsed = _parse(value)
    if parsed is not None and parsed[0].version == 6:
        return _query(value, *parsed, "wrap")
    return value


def ipmath(value, amount):
    parsed = _parse(value)
    if parsed is None:
        raise IpFilterError(f"ipmath: {value!r} is not an IP address")
    return _s(parsed[0].ip + int(amount))


def nthhost(value, n):
    parsed = _parse(value)
    if parsed is None or not parsed[1]:
        return False
    net, n = parsed[0].network, int(n)
    if n >= net.num_addresses or -n > net.num_addresses:
        return False
    return _s(net[n])


def network_in_usable(value, test):
    net, addr = _parse(value), _parse(test)
    if net is None or addr is None:
        return False
    usable = _usable(net[0])
    return usable is not None and usable[0] <= addr[0].ip <= usable[1]


def network_in_network(value, test):
    net, other = _parse(value), _parse(test)
    if net is None or other is None or net[0].version != other[0].version:
        return False
    return other[0].network.subnet_of(net[0].network)


def ipsubnet(value, query="", index=None):
    parsed = _parse(value)
    if parsed is None:
        return False
    net = parsed[0].network
    if query in ("", None):
        return _s(net)
    size = int(query)
    if size < net.prefixlen or size > net.max_prefixlen:
        raise IpFilterError(f"ipsubnet: requested subnet size of {size} is invalid for {net}")
    if index is None:
        return str(2 ** (size - net.prefixlen))
    subnets = list(net.subnets(new_prefix=size)) if size - net.prefixlen <= 16 else None
    if subnets is None:
        raise IpFilterError("ipsubnet: too many subnets to enumerate")
    i = int(index)
    if i >= len(subnets) or -i > len(subnets):
        return False
    return _s(subnets[i])


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
