"""Where and how to reach a host over SSH: Ansible's connection variables,
``ansible_ssh_common_args``/``ansible_ssh_extra_args``/``ansible_ssh_args``
(the options an Ansible user passes to ``ssh``), and OpenSSH's client
configuration (``~/.ssh/config`` then ``/etc/ssh/ssh_config``, or ``-F FILE``).

Precedence, as with Ansible driving OpenSSH: an explicit ``ansible_*``
variable, then options in the ssh args (first one wins), then the ssh_config
files (first obtained value wins), then defaults. Options gfsdeploy does not
implement are refused when given in the inventory, never ignored; in
ssh_config files (which serve every ssh use) only the keys listed in
docs/TRANSPORT.md take effect.

Pure Python: paramiko's ``SSHConfig`` parser is imported only when a config
file is read.
"""

from __future__ import annotations

import getpass
import glob
import os
import re
import shlex
from dataclasses import dataclass, field

#: ``-o`` options that gfsdeploy implements (lower case)
HONOURED = {
    "hostname", "user", "port", "identityfile", "identitiesonly", "proxyjump", "proxycommand",
    "userknownhostsfile", "globalknownhostsfile", "stricthostkeychecking", "hostkeyalias",
    "connecttimeout", "serveraliveinterval", "compression", "passwordauthentication", "hashknownhosts",
    "connectionattempts", "addressfamily",
}
#: ``-o`` options that need nothing from gfsdeploy: it keeps one connection per host per
#: run itself, never prompts, and logs through its own output
NEEDLESS = {
    "controlmaster", "controlpersist", "controlpath", "batchmode", "tcpkeepalive", "loglevel",
    "serveralivecountmax", "pubkeyauthentication", "kbdinteractiveauthentication",
    "challengeresponseauthentication", "preferredauthentications", "addkeystoagent", "checkhostip",
    "updatehostkeys", "visualhostkey", "escapechar", "exitonforwardfailure", "numberofpasswordprompts",
}
#: only these values of these options are fine (the others would need a feature gfsdeploy lacks)
ONLY = {"forwardagent": ("no",), "forwardx11": ("no",), "gssapiauthentication": ("no",),
        "requesttty": ("no", "auto"), "clearallforwardings": ("yes", "no")}
#: single-letter ssh flags without a value that change nothing for gfsdeploy (quiet,
#: verbose, no X11, no agent forwarding, no tty, no stdin: what it does anyway)
HARMLESS_FLAGS = {"q", "v", "x", "a", "T", "n"}
#: ssh flags that take a value
VALUE_FLAGS = set("oJFiplcmbDeEILOQRSWw")

DEFAULT_SYSTEM_CONFIG = "/etc/ssh/ssh_config"
DEFAULT_GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


class ConfigProblem(ValueError):
    """A connection setting gfsdeploy cannot honour: ``field`` names the variable, ``fix`` what to do."""

    def __init__(self, message: str, field: str, fix: str):
        super().__init__(message)
        self.field = field
        self.fix = fix


@dataclass(frozen=True)
class Hop:
    """One jump host of a ProxyJump chain, as written (``[user@]host[:port]``)."""

    host: str
    user: str | None = None
    port: int | None = None


@dataclass
class SSHSettings:
    """Everything needed to open one SSH connection (secrets are not shown)."""

    alias: str                       # the name ssh_config is matched against
    hostname: str                    # where to connect
    port: int = 22
    user: str = ""
    identity_files: list[str] = field(default_factory=list)
    identities_only: bool = False
    password: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)   # of an encrypted private key
    password_auth: bool = True
    proxy_jump: list[Hop] = field(default_factory=list)
    proxy_command: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"       # checked and written (accept-new)
    extra_known_hosts: list[str] = field(default_factory=list)  # checked only
    strict: str = "yes"              # yes | accept-new (a changed key is refused either way)
    hash_known_hosts: bool = False
    host_key_alias: str | None = None
    connect_timeout: float | None = None
    keepalive: int = 0
    compression: bool = False
    attempts: int = 1
    family: str = "any"             # any | inet | inet6
    config_files: tuple = ()         # to look up the jump hosts the same way

    @property
    def where(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


# -- ssh args (ansible_ssh_common_args & co.) ------------------------------------------
def parse_ssh_args(text: str, var: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``(options, config files)`` from an ssh argument string; options are
    ``(lower-case name, value)`` in order. Raises ConfigProblem on what gfsdeploy
    cannot do."""
    try:
        words = shlex.split(str(text or ""))
    except ValueError as exc:
        raise ConfigProblem(f"{var}: cannot split {text!r}: {exc}", var,
                            "quote values with spaces, e.g. -o ProxyCommand=\"ssh -W %h:%p bastion\"") from None
    options: list[tuple[str, str]] = []
    files: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or word == "-":
            raise ConfigProblem(f"{var}: unexpected word {word!r} (only ssh options belong here)", var,
                                "remove it; the host comes from the inventory")
        letter, rest = word[1:2], word[2:]
        if letter in VALUE_FLAGS:
            if rest:
                value = rest
            else:
                i += 1
                if i >= len(words):
                    raise ConfigProblem(f"{var}: {word} needs a value", var, f"write {word} VALUE")
                value = words[i]
            if letter == "o":
                name, _, val = value.partition("=")
                if not _:
                    name, _, val = value.partition(" ")
                options.append(_check_option(name.strip(), val.strip(), var))
            elif letter == "J":
                options.append(("proxyjump", value))
            elif letter == "F":
                files.append(value)
            elif letter == "i":
                options.append(("identityfile", value))
            elif letter == "p":
                options.append(("port", value))
            elif letter == "l":
                options.append(("user", value))
            else:
                raise ConfigProblem(f"{var}: ssh option {word} is not supported by gfsdeploy", var,
                                    "remove it (gfsdeploy speaks SSH itself through paramiko; see docs/TRANSPORT.md)")
        else:
            for flag in word[1:]:
                if flag == "C":
                    options.append(("compression", "yes"))
                elif flag in ("4", "6"):
                    options.append(("addressfamily", "inet" if flag == "4" else "inet6"))
                elif flag in HARMLESS_FLAGS:
                    pass
                else:
                    raise ConfigProblem(f"{var}: ssh flag -{flag} is not supported by gfsdeploy", var,
                                        "remove it (see docs/TRANSPORT.md for what is honoured)")
        i += 1
    return options, files


def _check_option(name: str, value: str, var: str) -> tuple[str, str]:
    key = name.lower()
    if key in HONOURED or key in NEEDLESS:
        if key == "stricthostkeychecking" and value.lower() not in ("yes", "no", "ask", "accept-new", "off"):
            raise ConfigProblem(f"{var}: StrictHostKeyChecking={value!r} is not a valid value", var,
                                "use yes or accept-new")
        return key, value
    if key in ONLY:
        if value.lower() in ONLY[key]:
            return key, value
        raise ConfigProblem(f"{var}: -o {name}={value} is not supported by gfsdeploy", var,
                            f"remove it or set it to {ONLY[key][0]}")
    raise ConfigProblem(f"{var}: ssh option -o {name} is not supported by gfsdeploy", var,
                        "remove it; honoured options are listed in docs/TRANSPORT.md")


def parse_hops(text: str) -> list[Hop]:
    """A ProxyJump value: ``[user@]host[:port]`` or ``ssh://[user@]host[:port]``, comma-separated."""
    if str(text).strip().lower() == "none":
        return []
    hops = []
    for part in str(text).split(","):
        part = part.strip()
        if part.startswith("ssh://"):
            part = part[6:]
        if not part:
            raise ValueError(f"empty jump host in {text!r}")
        user = None
        if "@" in part:
            user, part = part.rsplit("@", 1)
        port = None
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", part)
        if not m:
            raise ValueError(f"cannot read jump host {part!r}")
        host = m.group(1) or m.group(3)
        digits = m.group(2) or m.group(4)
        if digits:
            port = int(digits)
            if not 0 < port < 65536:
                raise ValueError(f"jump host port {port} is out of range")
        hops.append(Hop(host, user or None, port))
    return hops


# -- ssh_config files -------------------------------------------------------------------
def config_text(path: str, *, base: str) -> str:
    """A config file with its ``Include`` lines inlined (OpenSSH semantics, near enough:
    the enclosing Host/Match context is restored after each included file)."""
    return _inline(os.path.expanduser(path), base, 0)


def _inline(path: str, base: str, depth: int) -> str:
    if depth > 8:
        raise ValueError(f"{path}: Include nested too deeply")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return ""
    out: list[str] = []
    context = None
    for line in lines:
        stripped = line.strip()
        key = re.split(r"[\s=]+", stripped, maxsplit=1)[0].lower() if stripped else ""
        if key in ("host", "match"):
            context = stripped
        if key == "include":
            patterns = shlex.split(stripped.split(None, 1)[1] if " " in stripped or "\t" in stripped
                                   else stripped.partition("=")[2])
            for pattern in patterns:
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(base, pattern)
                for name in sorted(glob.glob(pattern)):
                    out.append(_inline(name, base, depth + 1))
            if context is not None:
                out.append(context)
            else:
                out.append("Host *")
            continue
        out.append(line)
    return "\n".join(out)


class ConfigFiles:
    """The ssh_config files in effect (user then system, or one given with -F), parsed once."""

    _cache: dict = {}

    def __init__(self, files: tuple):
        self.files = files
        self._parsed = None

    @classmethod
    def get(cls, files: tuple) -> "ConfigFiles":
        key = tuple((f, _mtime(f)) for f in files)
        found = cls._cache.get(key)
        if found is None:
            found = cls._cache[key] = ConfigFiles(files)
        return found

    def lookup(self, alias: str) -> dict:
        if not self.files:
            return {}
        if self._parsed is None:
            texts = []
            for path in self.files:
                base = os.path.dirname(os.path.expanduser(path)) or "."
                texts.append("Host *\n" + config_text(path, base=base))
            from io import StringIO

            from gfsdeploy.transport import _paramiko

            paramiko = _paramiko.load()
            text = "\n".join(texts)
            if re.search(r"(?im)^\s*match\b.*\bexec\b", text):
                _paramiko.enable_match_exec()
            config = paramiko.SSHConfig()
            config.parse(StringIO(text))
            self._parsed = config
        try:
            found = self._parsed.lookup(alias)
        except Exception as exc:  # noqa: BLE001 - paramiko raises several types for odd configs
            raise ConfigProblem(f"ssh_config ({', '.join(self.files)}): cannot evaluate it for {alias}: {exc}",
                                "ssh_config", "simplify that Host/Match block, or pass -F with a config "
                                "gfsdeploy can read") from None
        return dict(found)


def _mtime(path: str):
    try:
        return os.stat(os.path.expanduser(path)).st_mtime_ns
    except OSError:
        return None


def default_config_files() -> tuple:
    user = os.path.expanduser("~/.ssh/config")
    return tuple(p for p in (user, DEFAULT_SYSTEM_CONFIG) if os.path.exists(p))


# -- putting it together -----------------------------------------------------------------
def _first(*values):
    for value in values:
        if value is not None and value != "":
            return value
    return None


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("yes", "true", "on", "1", "y")


def settings(alias: str, variables: dict, *, known_hosts: str | None = None, accept_new: bool = False,
             default_user: str | None = None, password: str | None = None) -> SSHSettings:
    """The SSH settings of inventory host ``alias`` from its (rendered) variables.

    ``known_hosts``/``accept_new``: the command line's ``--known-hosts`` and
    ``--accept-new-host-keys``; ``default_user``: ``-u``; ``password``: ``-k``.
    Raises ConfigProblem naming the variable at fault.
    """
    v = variables
    options: list[tuple[str, str]] = []
    files: list[str] = []
    for var in ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if v.get(var):
            opts, fs = parse_ssh_args(v[var], var)
            options += opts
            files += fs
    # ansible_ssh_args are defaults that the other two override: OpenSSH keeps the first
    # value, and Ansible places ansible_ssh_args first, so the order above is right
    args: dict[str, str] = {}
    identity_args: list[str] = []
    for key, value in options:
        if key == "identityfile":
            identity_args.append(value)
        args.setdefault(key, value)
    target = str(_first(v.get("ansible_host"), v.get("ansible_ssh_host"), alias))
    config_files = tuple(files) if files else default_config_files()
    if config_files in (("none",), ("/dev/null",)):
        config_files = ()
    cfg = ConfigFiles.get(config_files).lookup(target)
    return _build(alias=target, v=v, args=args, identity_args=identity_args, cfg=cfg,
                  config_files=config_files, known_hosts=known_hosts, accept_new=accept_new,
                  default_user=default_user, password=password)


def _build(*, alias, v, args, identity_args, cfg, config_files, known_hosts, accept_new, default_user,
           password) -> SSHSettings:
    hostname = str(_first(args.get("hostname"), cfg.get("hostname"), alias))
    port_value = _first(v.get("ansible_port"), v.get("ansible_ssh_port"), args.get("port"), cfg.get("port"), 22)
    try:
        port = int(port_value)
        if not 0 < port < 65536:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigProblem(f"SSH port {port_value!r} is not a port number", "ansible_port",
                            "give the SSH port as a number, e.g. 22") from None
    user = str(_first(v.get("ansible_user"), v.get("ansible_ssh_user"), args.get("user"), cfg.get("user"),
                      default_user, _local_user()))
    key_var = v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file")
    identity = [str(key_var)] if key_var else []
    identity += identity_args + list(cfg.get("identityfile") or [])
    identity = [os.path.expanduser(p) for p in identity]
    jump_text = _first(args.get("proxyjump"), cfg.get("proxyjump"))
    command = _first(args.get("proxycommand"), cfg.get("proxycommand"))
    hops: list[Hop] = []
    if jump_text and (not command or "proxyjump" in args):
        try:
            hops = parse_hops(jump_text)
        except ValueError as exc:
            raise ConfigProblem(f"ProxyJump {jump_text!r}: {exc}", "ansible_ssh_common_args",
                                "write ProxyJump=[user@]host[:port][,next…]") from None
        command = None
    if command and str(command).strip().lower() == "none":
        command = None
    strict_value = str(_first(args.get("stricthostkeychecking"), cfg.get("stricthostkeychecking"), "yes")).lower()
    checking = v.get("ansible_host_key_checking", v.get("ansible_ssh_host_key_checking"))
    strict = "accept-new" if (accept_new or strict_value in ("no", "off", "accept-new")
                              or (checking is not None and not _bool(checking))) else "yes"
    files_value = _first(known_hosts, v.get("gfsdeploy_known_hosts"))
    extra: list[str] = []
    if files_value:
        primary = str(files_value)
    else:
        listed = str(_first(args.get("userknownhostsfile"), cfg.get("userknownhostsfile"),
                            "~/.ssh/known_hosts")).split()
        primary, extra = listed[0], listed[1:]
        globals_ = str(_first(args.get("globalknownhostsfile"), cfg.get("globalknownhostsfile"),
                              DEFAULT_GLOBAL_KNOWN_HOSTS)).split()
        extra += globals_
    timeout_value = _first(args.get("connecttimeout"), cfg.get("connecttimeout"))
    keepalive = _first(args.get("serveraliveinterval"), cfg.get("serveraliveinterval"), 0)
    family = str(_first(args.get("addressfamily"), cfg.get("addressfamily"), "any")).lower()
    try:
        connect_timeout = float(timeout_value) if timeout_value is not None else None
        keepalive_s = int(keepalive)
        attempts = int(_first(args.get("connectionattempts"), cfg.get("connectionattempts"), 1))
    except ValueError as exc:
        raise ConfigProblem(f"ssh option value is not a number: {exc}", "ansible_ssh_common_args",
                            "give ConnectTimeout/ServerAliveInterval/ConnectionAttempts as numbers") from None
    ssh_password = _first(v.get("ansible_password"), v.get("ansible_ssh_pass"), v.get("ansible_ssh_password"),
                          password)
    return SSHSettings(
        alias=alias, hostname=hostname, port=port, user=user, identity_files=identity,
        identities_only=_bool(_first(args.get("identitiesonly"), cfg.get("identitiesonly"), "no")),
        password=None if ssh_password is None else str(ssh_password),
        passphrase=None if v.get("ansible_ssh_private_key_passphrase") is None
        else str(v["ansible_ssh_private_key_passphrase"]),
        password_auth=_bool(_first(args.get("passwordauthentication"), "yes")),
        proxy_jump=hops, proxy_command=str(command) if command else None,
        known_hosts=os.path.expanduser(primary), extra_known_hosts=[os.path.expanduser(p) for p in extra],
        strict=strict,
        hash_known_hosts=_bool(_first(args.get("hashknownhosts"), cfg.get("hashknownhosts"), "no")),
        host_key_alias=_first(args.get("hostkeyalias"), cfg.get("hostkeyalias")),
        connect_timeout=connect_timeout, keepalive=keepalive_s,
        compression=_bool(_first(args.get("compression"), cfg.get("compression"), "no")),
        attempts=max(1, attempts), family=family if family in ("inet", "inet6") else "any",
        config_files=config_files)


def hop_settings(hop: Hop, parent: SSHSettings) -> SSHSettings:
    """A jump host's settings: its own ssh_config block, its own user/port when written in
    the ProxyJump value, and the target's host-key policy and files (every hop is checked)."""
    cfg = ConfigFiles.get(parent.config_files).lookup(hop.host) if parent.config_files else {}
    hostname = str(cfg.get("hostname") or hop.host)
    port = int(hop.port or cfg.get("port") or 22)
    user = str(hop.user or cfg.get("user") or _local_user())
    identity = [os.path.expanduser(p) for p in (cfg.get("identityfile") or [])] or list(parent.identity_files)
    jump = cfg.get("proxyjump")
    hops = parse_hops(jump) if jump else []
    return SSHSettings(alias=hop.host, hostname=hostname, port=port, user=user, identity_files=identity,
                       identities_only=parent.identities_only, password=None, proxy_jump=hops,
                       proxy_command=None, known_hosts=parent.known_hosts,
                       extra_known_hosts=parent.extra_known_hosts, strict=parent.strict,
                       hash_known_hosts=parent.hash_known_hosts,
                       host_key_alias=cfg.get("hostkeyalias"), connect_timeout=parent.connect_timeout,
                       keepalive=parent.keepalive, compression=parent.compression,
                       config_files=parent.config_files)


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry / no env: ssh's own fallback
        return "root"


def check_variables(variables: dict) -> list[tuple[str, str, str]]:
    """Static check of a host's connection variables: ``[(field, problem, fix)]``.
    Values that are still templates are left for run time."""
    problems = []
    for var in ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args"):
        value = variables.get(var)
        if value and "{{" not in str(value) and "{%" not in str(value):
            try:
                options, _ = parse_ssh_args(value, var)
                for key, val in options:
                    if key == "proxyjump":
                        parse_hops(val)
            except ConfigProblem as exc:
                problems.append((exc.field, str(exc), exc.fix))
            except ValueError as exc:
                problems.append((var, f"{var}: {exc}", "write ProxyJump=[user@]host[:port][,next…]"))
    connection = variables.get("ansible_connection")
    if connection is not None and "{{" not in str(connection) and str(connection) not in CONNECTIONS:
        problems.append(("ansible_connection", f"connection {connection!r} is not supported",
                         f"use one of: {', '.join(sorted(set(CONNECTIONS)))}"))
    return problems


#: connection plugins gfsdeploy implements (Ansible's names → ours)
CONNECTIONS = {"ssh": "ssh", "paramiko": "ssh", "paramiko_ssh": "ssh", "smart": "ssh",
               "ansible.builtin.ssh": "ssh", "ansible.builtin.paramiko_ssh": "ssh",
               "local": "local", "ansible.builtin.local": "local",
               # replays recorded answers in process (tests, controller benchmarks)
               "recorded": "recorded"}
