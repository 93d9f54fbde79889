"""The trust tests reuse the engine's private sshd on 127.0.0.1."""

from engine.conftest import Sshd, sshd  # noqa: F401 - fixture re-exported for tests/trust
