"""Ansible's host ranges in inventory names: ``node[1:3]`` is node1, node2, node3;
``web[01:10:2]`` keeps the leading zero (web01, web03 …); ``db-[a:c]`` walks letters;
several ranges in one name multiply out. ``host:2222`` gives the SSH port."""

from __future__ import annotations

import re
import string

_RANGE = re.compile(r"^(.*?)\[([^\[\]:]*):([^\[\]:]*)(?::([^\[\]:]*))?\](.*)$")


class HostRangeError(ValueError):
    pass


def expand(pattern: str) -> list[str]:
    """All host names a pattern stands for, in order."""
    m = _RANGE.match(pattern)
    if not m:
        if "[" in pattern or "]" in pattern:
            raise HostRangeError(f"{pattern!r}: a host range is written [START:END] or [START:END:STEP]")
        return [pattern]
    head, beg, end, step, tail = m.groups()
    if not end:
        raise HostRangeError(f"{pattern!r}: the host range has no end")
    beg = beg or "0"
    try:
        stride = int(step) if step else 1
    except ValueError:
        raise HostRangeError(f"{pattern!r}: the range step must be a number") from None
    if stride < 1:
        raise HostRangeError(f"{pattern!r}: the range step must be at least 1")
    if beg.isdigit() and end.isdigit():
        if beg.startswith("0") and len(beg) > 1:
            if len(beg) != len(end):
                raise HostRangeError(f"{pattern!r}: a zero-padded range needs start and end of the same width")
            names = [str(n).zfill(len(beg)) for n in range(int(beg), int(end) + 1, stride)]
        else:
            names = [str(n) for n in range(int(beg), int(end) + 1, stride)]
        if int(beg) > int(end):
            raise HostRangeError(f"{pattern!r}: the range start is after its end")
    elif len(beg) == 1 and len(end) == 1 and beg.isalpha() and end.isalpha():
        letters = string.ascii_letters
        first, last = letters.index(beg), letters.index(end)
        if first > last:
            raise HostRangeError(f"{pattern!r}: the range start is after its end")
        names = list(letters[first:last + 1:stride])
    else:
        raise HostRangeError(f"{pattern!r}: a range is numbers ([1:3], [01:10]) or single letters ([a:f])")
    out = []
    for name in names:
        for rest in expand(tail):
            out.append(f"{head}{name}{rest}")
    return out


_PORT = re.compile(r"^(?P<host>[^\[\]:]+|\[[^\]]+\]|[^:]*\[[^\]]*\][^:]*):(?P<port>\d+)$")


def split_port(pattern: str) -> tuple[str, int | None]:
    """``host:2222`` -> (host, 2222); ``[::1]:22`` -> (::1, 22); an IPv6 address alone has no port."""
    if not pattern.startswith("[") and re.sub(r"\[[^\]]*\]", "", pattern).count(":") > 1:
        return pattern, None  # a bare IPv6 address
    m = _PORT.match(pattern)
    if not m:
        return pattern, None
    host = m.group("host")
    if host.startswith("[") and host.endswith("]") and ":" in host:
        host = host[1:-1]
    return host, int(m.group("port"))
