"""Transports: how scripts reach a host (SSH, or the controller itself)."""

from __future__ import annotations

from gfsdeploy.transport.base import Result, Transport


def make_transport(host, *, known_hosts: str | None = None, accept_new: bool = False,
                   timeout: float = 600.0, connect_timeout: float = 10.0) -> Transport:
    """The transport for an inventory host, from Ansible's connection variables."""
    v = host.vars
    become = host.become
    become_user = str(v.get("ansible_become_user", "root"))
    if host.connection == "recorded":
        from gfsdeploy.transport.recorded import RecordedTransport, load_shared

        path = v.get("gfsdeploy_recording")
        if not path:
            from gfsdeploy.errors import TransportError

            raise TransportError("ansible_connection: recorded needs the variable gfsdeploy_recording",
                                 host=host.name, fix="set gfsdeploy_recording: path/to/recording.json for this host")
        return RecordedTransport(host.name, load_shared(str(path)), become=become, become_user=become_user,
                                 timeout=timeout)
    if host.connection == "local":
        from gfsdeploy.transport.local import LocalTransport

        return LocalTransport(host.name, become=become, become_user=become_user, timeout=timeout)
    from gfsdeploy.transport.ssh import SSHTransport

    return SSHTransport(host.name, host.address, port=host.port, user=host.user, key_file=host.key_file,
                        known_hosts=known_hosts or v.get("gfsdeploy_known_hosts"), accept_new=accept_new,
                        become=become, become_user=become_user, timeout=timeout,
                        connect_timeout=connect_timeout, password=v.get("ansible_password"))


__all__ = ["Result", "Transport", "make_transport"]
