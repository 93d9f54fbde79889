"""Transports: how scripts reach a host (SSH, or the controller itself).

The engine's entry points:

- :func:`make_transport` — the connection of an inventory host, from Ansible's
  connection variables (``ansible_host``, ``ansible_port``, ``ansible_user``,
  ``ansible_ssh_private_key_file``, ``ansible_ssh_common_args``…, ssh_config).
- :class:`Connections` — a run's connections: one per (host, login user,
  connection type), so a play with another ``remote_user`` or
  ``connection: local`` gets its own, and everything else shares one.
- :func:`resolve_become` — a task's :class:`Become` from its keywords and
  variables, with Ansible's precedence; pass it as ``run(..., become=…)`` or
  use ``transport.with_become(b)``.
- :func:`request_stop` / :func:`abort_running` / :func:`clear_stop` /
  :func:`stop_requested` — stop semantics (``stop_all``/``abort_all``/``resume``
  are the same functions).

paramiko is imported only when an SSH connection is made.
"""

from __future__ import annotations

import threading

from gfsdeploy.transport.base import (DEFAULT, Result, ScopedTransport, Stopped, Transport, abort_all,
                                      abort_running, clear_stop, request_stop, resume, stop_all,
                                      stop_requested, stopped)
from gfsdeploy.transport.become import PASSWORD_VARS, Become, BecomeError

LOCALHOST_NAMES = ("localhost", "127.0.0.1", "::1")


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1", "y")
    return bool(value)


def connection_type(variables: dict, keyword: str | None = None) -> str:
    """``ssh`` or ``local``: ``ansible_connection`` wins over the play/task ``connection:``."""
    from gfsdeploy.transport.sshconfig import CONNECTIONS

    value = variables.get("ansible_connection") or keyword or "ssh"
    kind = CONNECTIONS.get(str(value))
    if kind is None:
        from gfsdeploy.errors import TransportError

        raise TransportError(f"connection {value!r} is not supported", field="ansible_connection",
                             fix=f"use one of: {', '.join(sorted(set(CONNECTIONS)))}")
    return kind


def resolve_become(variables: dict, *, become=None, become_user=None, become_method=None,
                   become_flags=None, password: str | None = None) -> Become | None:
    """The escalation a task asks for, or None.

    Keyword arguments are the task's effective keywords (task over block over play
    over command line, already merged by the caller); Ansible's connection variables
    (``ansible_become``, ``ansible_become_user``, ``ansible_become_method``,
    ``ansible_become_flags``) override them. ``password``: ``--ask-become-pass``;
    ``ansible_become_password``/``ansible_become_pass`` (and the method's own
    aliases) override it.
    """
    v = variables
    enabled = _truthy(v["ansible_become"]) if "ansible_become" in v else _truthy(become or False)
    if not enabled:
        return None
    user = v.get("ansible_become_user") or become_user or "root"
    method = v.get("ansible_become_method") or become_method or "sudo"
    flags = v.get("ansible_become_flags") or become_flags or ""
    secret = password
    for name in PASSWORD_VARS.get(str(method), ()):
        if v.get(name) is not None:
            secret = v[name]
            break
    if secret is not None:
        from gfsdeploy import secrets

        secret = str(secret)
        secrets.register(secret)
    return Become(user=str(user), method=str(method), flags=str(flags), password=secret)


def make_transport(host, *, known_hosts: str | None = None, accept_new: bool = False,
                   timeout: float = 600.0, connect_timeout: float = 10.0, variables: dict | None = None,
                   remote_user: str | None = None, connection: str | None = None,
                   become_password: str | None = None, ssh_password: str | None = None,
                   default_user: str | None = None) -> Transport:
    """The transport for an inventory host.

    ``variables``: the host's variables, rendered (default: ``host.vars`` as written).
    ``remote_user``/``connection``: the play's keywords (``ansible_user`` and
    ``ansible_connection`` override them, as in Ansible). ``default_user``: ``-u``.
    ``become_password``/``ssh_password``: ``--ask-become-pass``/``--ask-pass``.
    Raises TransportError (naming the variable) for settings gfsdeploy cannot honour.
    """
    from gfsdeploy.errors import TransportError

    v = dict(host.vars if variables is None else variables)
    kind = connection_type(v, connection)
    # the transport's default escalation comes from the inventory; tasks pass their own
    b = resolve_become({**v, "ansible_become": True}, password=become_password)
    become_kwargs = {"become": _truthy(v.get("ansible_become", False)), "become_user": b.user,
                     "become_method": b.method, "become_flags": b.flags, "become_password": b.password}
    if kind == "recorded":
        from gfsdeploy.transport.recorded import RecordedTransport, load_shared

        path = v.get("gfsdeploy_recording")
        if not path:
            raise TransportError("ansible_connection: recorded needs the variable gfsdeploy_recording",
                                 host=host.name, fix="set gfsdeploy_recording: path/to/recording.json for this host")
        try:
            latency = float(v.get("gfsdeploy_recording_latency") or 0)
        except (TypeError, ValueError):
            raise TransportError("gfsdeploy_recording_latency must be a number of seconds", host=host.name,
                                 field="gfsdeploy_recording_latency", fix="e.g. gfsdeploy_recording_latency: 0.02")
        return RecordedTransport(host.name, load_shared(str(path)), become=become_kwargs["become"],
                                 become_user=b.user, timeout=timeout, latency=latency)
    if kind == "local":
        from gfsdeploy.transport.local import LocalTransport

        return LocalTransport(host.name, timeout=timeout, **become_kwargs)
    from gfsdeploy.transport.sshconfig import ConfigProblem, settings
    from gfsdeploy.transport.ssh import SSHTransport

    try:
        s = settings(host.name, v, known_hosts=known_hosts, accept_new=accept_new,
                     default_user=remote_user or default_user, password=ssh_password)
    except ConfigProblem as exc:
        raise TransportError(str(exc), host=host.name, field=exc.field, fix=exc.fix) from None
    if remote_user and not (v.get("ansible_user") or v.get("ansible_ssh_user")):
        s.user = str(remote_user)
    return SSHTransport(host.name, settings=s, timeout=timeout, connect_timeout=connect_timeout, **become_kwargs)


class Connections:
    """A run's connections, opened on first use and shared: one per (host, login user,
    connection type). ``options`` are :func:`make_transport`'s keyword arguments.

    ``max_open``: at most this many SSH connections stay open (paramiko runs one thread
    per connection: a thousand hosts would mean a thousand threads). When more are needed,
    the least recently used idle ones are closed; they reopen, transparently, on their
    host's next command (one more handshake). Connections with a command in flight or a
    tunnel are never closed. None: no limit."""

    def __init__(self, factory=None, max_open: int | None = None, **options):
        self.factory = factory or make_transport
        self.max_open = max_open
        self.options = options
        self._open: dict = {}
        self._lock = threading.Lock()
        self._trim_lock = threading.Lock()

    def get(self, host, variables: dict | None = None, *, remote_user: str | None = None,
            connection: str | None = None) -> Transport:
        v = host.vars if variables is None else variables
        kind = connection_type(v, connection)
        user = v.get("ansible_user") or v.get("ansible_ssh_user") or remote_user or None
        key = (host.name, kind, user if kind == "ssh" else None)
        transport = self._open.get(key)  # (a dict read is atomic: no lock once it exists)
        if transport is None:
            # made outside the lock (every host's first step asks at once: made under it, the
            # workers queued behind one another), kept by the first of two threads making it
            made = self.factory(host, variables=variables, remote_user=remote_user,
                                connection=connection, **self.options)
            with self._lock:
                transport = self._open.get(key)
                if transport is None:
                    if self.max_open is not None and hasattr(made, "before_connect"):
                        # a caller may keep the transport and use it after an eviction: every
                        # (re)open makes room first, not only the first get()
                        made.before_connect = self._make_room
                    transport = self._open[key] = made
            if transport is not made:
                try:
                    made.close()  # (never connected: a transport connects on its first command)
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
        return transport

    def _make_room(self, transport) -> None:
        with self._trim_lock:
            self.trim(keep=transport)

    def trim(self, keep=None) -> int:
        """Close idle connections beyond ``max_open`` (least recently used first); returns how many."""
        limit = self.max_open or 0
        opened = [t for t in self.all() if getattr(t, "is_open", False) and t is not keep]
        excess = len(opened) + (1 if keep is not None else 0) - limit
        closed = 0
        for transport in sorted(opened, key=lambda t: t.last_used):
            if closed >= excess:
                break
            if transport.evict():
                closed += 1
        return closed

    def localhost(self, name: str = "localhost") -> Transport:
        """The controller itself (``delegate_to: localhost``, ``local_action``)."""
        from gfsdeploy.transport.local import LocalTransport

        key = (name, "local", None)
        with self._lock:
            transport = self._open.get(key)
            if transport is None:
                transport = self._open[key] = LocalTransport(name, timeout=self.options.get("timeout", 600.0))
        return transport

    def all(self) -> list[Transport]:
        with self._lock:
            return list(self._open.values())

    def close(self) -> None:
        for transport in self.all():
            try:
                transport.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass


__all__ = ["DEFAULT", "Become", "BecomeError", "Connections", "Result", "ScopedTransport", "Stopped",
           "Transport", "abort_all", "abort_running", "clear_stop", "connection_type", "make_transport",
           "request_stop", "resolve_become", "resume", "stop_all", "stop_requested", "stopped"]
