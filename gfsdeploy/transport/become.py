"""Privilege escalation: who a script runs as on the host, and how we get there.

``Become`` is what a task asks for (Ansible's ``become``/``become_user``/
``become_method``/``become_flags`` and the ``ansible_become_*`` variables).
:func:`command` builds the command line that starts the wrapper as that user;
:func:`diagnose` turns what sudo or su said when it refused into an error
that names the host, the user, the setting to change and how.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from gfsdeploy.errors import TransportError

METHODS = ("sudo", "su")

#: flags gfsdeploy can pass through, per method (anything else is refused, not ignored)
ALLOWED_FLAGS = {
    "sudo": {"-H", "--set-home", "-E", "--preserve-env", "-i", "--login", "-n", "--non-interactive",
             "-S", "--stdin"},
    "su": {"-", "-l", "--login", "-m", "-p", "--preserve-environment"},
}

#: Ansible's variable names for the become password, per method (first found wins)
PASSWORD_VARS = {
    "sudo": ("ansible_become_password", "ansible_become_pass", "ansible_sudo_password", "ansible_sudo_pass"),
    "su": ("ansible_become_password", "ansible_become_pass", "ansible_su_password", "ansible_su_pass"),
}


class BecomeError(TransportError):
    """sudo/su refused to run the script (no password, wrong password, not allowed…)."""


@dataclass(frozen=True)
class Become:
    """Run as ``user`` through ``method``. The password is never shown (repr, logs)."""

    user: str = "root"
    method: str = "sudo"
    flags: str = ""
    password: str | None = field(default=None, repr=False)

    def problem(self) -> str | None:
        """Why this cannot work as written (None: fine). Checked before connecting."""
        if self.method not in METHODS:
            return (f"become_method {self.method!r} is not supported (gfsdeploy implements "
                    f"{' and '.join(METHODS)})")
        if not isinstance(self.user, str) or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?", self.user):
            return f"become_user {self.user!r} is not a user name"
        for flag in shlex.split(self.flags or ""):
            name = flag.split("=", 1)[0]
            if name not in ALLOWED_FLAGS[self.method]:
                return (f"become_flags {flag!r} is not supported for {self.method} (supported: "
                        f"{', '.join(sorted(ALLOWED_FLAGS[self.method]))})")
        return None


def flag_words(become: Become) -> list[str]:
    """The user's flags minus the ones gfsdeploy decides itself (-n/-S: password handling)."""
    return [f for f in shlex.split(become.flags or "") if f.split("=", 1)[0] not in
            ("-n", "--non-interactive", "-S", "--stdin")]


def command(become: Become, inner: str, *, prompt: str) -> str:
    """The command line that runs ``sh -c INNER`` as ``become.user``."""
    q = shlex.quote
    if become.method == "sudo":
        words = flag_words(become) or ["-H"]
        auth = ["-S", "-p", prompt] if become.password is not None else ["-n"]
        return " ".join(["sudo", *map(q, words), *map(q, auth), "-u", q(become.user), "--",
                         "sh", "-c", q(inner)])
    # su runs its -c argument with the target user's login shell
    return " ".join(["su", *map(q, flag_words(become)), q(become.user), "-c", q("sh -c " + q(inner))])


def may_prompt(become: Become, login_user: str | None) -> bool:
    """Whether the escalation can stop at a password prompt (then the script waits for the token)."""
    if become.method == "sudo":
        return become.password is not None
    return login_user != "root"


_NEEDS_TTY = re.compile(r"must have a tty|no tty present|must be run from a terminal|"
                        r"a terminal is required|requiretty", re.I)
_NEEDS_PASSWORD = re.compile(r"a password is required|no password was provided", re.I)
_NOT_ALLOWED = re.compile(r"not in the sudoers|is not allowed to (run|execute)|may not run sudo|"
                          r"not allowed to run sudo", re.I)
_WRONG_PASSWORD = re.compile(r"incorrect password|sorry, try again|authentication failure|"
                             r"su: (authentication|permission denied)", re.I)
_NO_USER = re.compile(r"unknown user|user \S+ does not exist|does not exist or the user entry|"
                      r"no passwd entry", re.I)


def needs_tty(text: str) -> bool:
    return bool(_NEEDS_TTY.search(text))


def diagnose(text: str, rc: int | None, become: Become, *, host: str, login_user: str | None,
             password_sent: bool) -> BecomeError:
    """The error for an escalation that ended before the script started."""
    who = f"{login_user or 'the login user'}"
    tool = become.method
    said = " ".join(text.split())[-300:] or "(nothing)"
    password_fix = ("set ansible_become_password (or ansible_become_pass) for this host in the inventory "
                    "(an !vault value keeps it encrypted), or run with --ask-become-pass (-K)")
    if become.method == "sudo" and _NOT_ALLOWED.search(text):
        return BecomeError(
            f"{who} may not use sudo to become {become.user} on this host ({tool} said: {said})", host=host,
            fix=f"allow it in the host's sudoers (e.g. add {who} to the sudo or wheel group), or log in as a "
                f"user that may (ansible_user), or use become_method: su with the target user's password")
    if _NO_USER.search(text):
        return BecomeError(f"become_user {become.user!r} does not exist on this host ({tool} said: {said})",
                           host=host, field="become_user", fix="create the user first, or fix become_user")
    if password_sent and (_WRONG_PASSWORD.search(text) or rc not in (None, 0)):
        whose = (f"{become.user}'s password (su asks for the target user's)" if tool == "su"
                 else f"{who}'s password (sudo asks for the login user's)")
        return BecomeError(
            f"{tool} rejected the become password for {who} → {become.user}; gfsdeploy tried it once "
            f"and will not retry (repeated failures can lock the account)", host=host,
            field="ansible_become_password",
            fix=f"set the right become password: it must be {whose}")
    if _NEEDS_PASSWORD.search(text) or (not password_sent and _WRONG_PASSWORD.search(text)):
        return BecomeError(f"{tool} needs a password to become {become.user} as {who}, and none was given",
                           host=host, field="ansible_become_password", fix=password_fix)
    if rc == 127 and "not found" in text:
        return BecomeError(f"{tool} is not installed on this host ({said})", host=host,
                           fix=f"install {tool}, log in as {become.user} directly (ansible_user), or use "
                               f"the other become_method")
    return BecomeError(f"privilege escalation with {tool} to {become.user} failed (exit {rc}): {said}",
                       host=host, fix=f"check that {who} can run `{tool}` to {become.user} on this host")
