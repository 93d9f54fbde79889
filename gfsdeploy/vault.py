"""Ansible Vault: files and ``!vault`` values encrypted with ``ansible-vault``,
decrypted in memory only and registered as secrets (redacted from every output).

The format (``$ANSIBLE_VAULT;1.1;AES256`` or ``;1.2;AES256;<vault id>``, then
hex lines): the body, hex-decoded, is three hex strings on three lines — salt,
HMAC, ciphertext. PBKDF2-HMAC-SHA256 (10000 iterations, 32-byte salt) derives 80
bytes from the password: AES-256 key, HMAC-SHA256 key, CTR counter block. The
plaintext is PKCS#7-padded (16-byte blocks) before AES-CTR; the HMAC covers the
ciphertext. See docs/VAULT.md.

Passwords come from ``--vault-id LABEL@SOURCE`` (a file, ``prompt``, or an
executable that prints it), ``--vault-password-file`` and ``--ask-vault-pass``
(and Ansible's environment variables). A vault id names which password to try
first; every password is tried, as Ansible does.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import secrets as _random
import stat
from dataclasses import dataclass, field

from gfsdeploy import secrets
from gfsdeploy.deferred import Deferred
from gfsdeploy.errors import GfsError

HEADER = "$ANSIBLE_VAULT"
ITERATIONS = 10000
DEFAULT_ID = "default"


class VaultError(GfsError):
    """A vault could not be read or decrypted."""


# -- the format ------------------------------------------------------------------------------
def is_encrypted(data) -> bool:
    if isinstance(data, bytes):
        return data.lstrip().startswith(HEADER.encode())
    return isinstance(data, str) and data.lstrip().startswith(HEADER)


@dataclass
class Envelope:
    version: str
    cipher: str
    vault_id: str | None
    salt: bytes
    mac: bytes
    ciphertext: bytes


def parse(text: str, where: dict | None = None) -> Envelope:
    where = where or {}
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or not lines[0].startswith(HEADER + ";"):
        raise VaultError("not an Ansible Vault text (it must start with $ANSIBLE_VAULT;)", **where,
                         fix="encrypt it with ansible-vault encrypt / encrypt_string")
    header = lines[0].split(";")
    if len(header) < 3 or header[1] not in ("1.1", "1.2") or header[2] != "AES256":
        raise VaultError(f"unsupported vault format {lines[0]!r} (gfsdeploy reads 1.1 and 1.2 with AES256)",
                         **where, fix="re-encrypt it with a current ansible-vault")
    vault_id = header[3] if header[1] == "1.2" and len(header) > 3 and header[3] else None
    try:
        body = binascii.unhexlify("".join(lines[1:]))
        salt_hex, mac_hex, data_hex = body.split(b"\n", 2)
        return Envelope(header[1], header[2], vault_id, binascii.unhexlify(salt_hex),
                        binascii.unhexlify(mac_hex), binascii.unhexlify(data_hex.strip()))
    except (binascii.Error, ValueError):
        raise VaultError("the vault text is damaged (its hex body does not decode)", **where,
                         fix="copy the whole block again, every line of it, keeping the indentation") from None


def _keys(password: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    derived = hashlib.pbkdf2_hmac("sha256", password, salt, ITERATIONS, dklen=80)
    return derived[:32], derived[32:64], derived[64:80]


def _aes_ctr(key: bytes, counter: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ctx = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    return ctx.update(data) + ctx.finalize()


def _try(envelope: Envelope, password: bytes) -> bytes | None:
    aes_key, mac_key, counter = _keys(password, envelope.salt)
    expected = hmac.new(mac_key, envelope.ciphertext, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, envelope.mac):
        return None
    padded = _aes_ctr(aes_key, counter, envelope.ciphertext)
    pad = padded[-1] if padded else 0
    if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
        return None
    return padded[:-pad]


def encrypt(plaintext: bytes | str, password: bytes | str, vault_id: str | None = None,
            salt: bytes | None = None) -> str:
    """Vault text ``ansible-vault`` decrypts (1.2 with a vault id other than ``default``)."""
    if isinstance(plaintext, str):
        plaintext = plaintext.encode()
    if isinstance(password, str):
        password = password.encode()
    salt = salt or _random.token_bytes(32)
    aes_key, mac_key, counter = _keys(password, salt)
    pad = 16 - len(plaintext) % 16
    ciphertext = _aes_ctr(aes_key, counter, plaintext + bytes([pad]) * pad)
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    body = binascii.hexlify(b"\n".join([binascii.hexlify(salt), binascii.hexlify(mac),
                                        binascii.hexlify(ciphertext)])).decode()
    header = f"{HEADER};1.2;AES256;{vault_id}" if vault_id and vault_id != DEFAULT_ID else f"{HEADER};1.1;AES256"
    return "\n".join([header] + [body[i:i + 80] for i in range(0, len(body), 80)]) + "\n"


# -- passwords -------------------------------------------------------------------------------
@dataclass
class Keyring:
    """The passwords of one run, as (vault id, password) in the order given."""

    entries: list = field(default_factory=list)

    def add(self, vault_id: str, password: bytes | str) -> None:
        if isinstance(password, str):
            password = password.encode()
        if not password:
            raise VaultError(f"the vault password for id {vault_id!r} is empty", field="--vault-id",
                             fix="put the password in the file (one line), or type it at the prompt")
        self.entries.append((vault_id or DEFAULT_ID, password))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def decrypt(self, text: str, where: dict | None = None) -> bytes:
        where = where or {}
        envelope = parse(text, where)
        if not self.entries:
            raise VaultError("this is vault-encrypted and no vault password was given", **where,
                             fix="pass --vault-password-file FILE, --vault-id LABEL@FILE or --ask-vault-pass")
        ordered = [e for e in self.entries if envelope.vault_id and e[0] == envelope.vault_id]
        ordered += [e for e in self.entries if e not in ordered]
        for _, password in ordered:
            plain = _try(envelope, password)
            if plain is not None:
                return plain
        ids = ", ".join(dict.fromkeys(e[0] for e in self.entries))
        wanted = f" (encrypted for vault id {envelope.vault_id!r})" if envelope.vault_id else ""
        raise VaultError(f"none of the vault passwords given ({ids}) decrypts this{wanted}", **where,
                         fix="give the right password with --vault-id LABEL@FILE or --vault-password-file")


_current = Keyring()


def use(keyring: Keyring) -> None:
    """The passwords loading uses from now on (the CLI / Session sets this once per run)."""
    global _current
    _current = keyring


def current() -> Keyring:
    return _current


def _read_source(vault_id: str, source: str, *, prompt=None) -> bytes:
    where = {"field": "--vault-id" if vault_id != DEFAULT_ID else "--vault-password-file"}
    if source == "prompt":
        try:
            label = f" ({vault_id})" if vault_id != DEFAULT_ID else ""
            if prompt is None:
                import getpass

                prompt = getpass.getpass
            return prompt(f"Vault password{label}: ").encode()
        except (EOFError, OSError):
            raise VaultError("cannot ask for the vault password: no terminal", **where,
                             fix="use --vault-password-file FILE instead of --ask-vault-pass") from None
    path = os.path.expanduser(source)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise VaultError(f"vault password file {source}: {exc.strerror}", **where,
                         fix="check the path after --vault-password-file / --vault-id LABEL@") from None
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
        base = os.path.splitext(os.path.basename(path))[0]
        argv = [path] + (["--vault-id", vault_id] if base.endswith("-client") else [])
        import subprocess  # only for a password script (costs start-up otherwise)

        try:
            proc = subprocess.run(argv, capture_output=True, check=False, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VaultError(f"vault password script {source} could not run: {exc}", **where,
                             fix="make it print the password on stdout, or remove its execute bit") from None
        if proc.returncode != 0:
            raise VaultError(f"vault password script {source} exited with {proc.returncode}", **where,
                             fix="run it by hand to see why; it must print the password and exit 0")
        return proc.stdout.strip()
    with open(path, "rb") as handle:
        return handle.read().strip()


def keyring_from(vault_ids=(), password_files=(), ask: bool = False, *, environ=None, prompt=None) -> Keyring:
    """A keyring from the command line's options (and Ansible's environment variables
    ``ANSIBLE_VAULT_IDENTITY_LIST``, ``ANSIBLE_VAULT_PASSWORD_FILE`` when no option is given)."""
    environ = os.environ if environ is None else environ
    specs: list[tuple[str, str]] = []
    for spec in vault_ids or ():
        label, at, source = str(spec).partition("@")
        specs.append((label, source) if at else (DEFAULT_ID, label))
    specs += [(DEFAULT_ID, f) for f in password_files or ()]
    if ask:
        specs.append((DEFAULT_ID, "prompt"))
    if not specs:
        for spec in filter(None, (environ.get("ANSIBLE_VAULT_IDENTITY_LIST") or "").split(",")):
            label, at, source = spec.strip().partition("@")
            specs.append((label, source) if at else (DEFAULT_ID, label))
        if environ.get("ANSIBLE_VAULT_PASSWORD_FILE"):
            specs.append((DEFAULT_ID, environ["ANSIBLE_VAULT_PASSWORD_FILE"]))
    keyring = Keyring()
    for label, source in specs:
        keyring.add(label or DEFAULT_ID, _read_source(label or DEFAULT_ID, source, prompt=prompt))
    return keyring


def add_arguments(parser) -> None:
    """The vault options, for every command that loads an inventory or a playbook."""
    parser.add_argument("--vault-id", action="append", default=[], metavar="LABEL@SOURCE",
                        help="vault password: LABEL@FILE, LABEL@prompt or LABEL@SCRIPT (repeatable)")
    parser.add_argument("--vault-password-file", "--vault-pass-file", action="append", default=[],
                        metavar="FILE", help="file (or executable) with the vault password")
    parser.add_argument("-J", "--ask-vault-pass", "--ask-vault-password", action="store_true",
                        help="ask for the vault password")


def keyring_from_args(args) -> Keyring:
    return keyring_from(getattr(args, "vault_id", ()), getattr(args, "vault_password_file", ()),
                        bool(getattr(args, "ask_vault_pass", False)))


# -- decrypted values --------------------------------------------------------------------------
class VaultedStr(secrets.Sensitive):
    """A string decrypted from an inline ``!vault`` value (``is vault_encrypted`` is true)."""


class EncryptedValue(Deferred):
    """An inline ``!vault`` value that could not be decrypted at load time (no or wrong
    password). Harmless until used; any use raises why it cannot be read — as in
    Ansible, which decrypts a value only when a task needs it."""


def is_encrypted_value(value) -> bool:
    return isinstance(value, (VaultedStr, EncryptedValue)) or is_encrypted(value)


def decrypt_value(text: str, where: dict):
    """An inline ``!vault`` value: its plaintext (registered as a secret), or an
    :class:`EncryptedValue` that raises when used."""
    try:
        plain = _current.decrypt(text, where).decode("utf-8")
    except VaultError as exc:
        return EncryptedValue(exc)
    except UnicodeDecodeError:
        return EncryptedValue(VaultError("the decrypted !vault value is not UTF-8 text", **where,
                                         fix="encrypt a text value"))
    value = VaultedStr(plain)
    secrets.register(value)
    return value


def decrypt_file_text(data: bytes | str, path: str) -> str:
    """A whole vault-encrypted file's plaintext (an error now if it cannot be decrypted:
    its content is needed to know the variables it defines)."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    plain = _current.decrypt(text, {"file": path})
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise VaultError("the decrypted file is not UTF-8 text", file=path, fix="encrypt a UTF-8 text file") from None


def read_file(path: str) -> bytes:
    """A controller file's bytes, decrypted when ansible-vault encrypted it (as
    Ansible's copy/template/file lookup do); decrypted contents are secrets."""
    with open(path, "rb") as handle:
        return plain_bytes(handle.read(), path)


def plain_bytes(data: bytes, path: str) -> bytes:
    """``data`` read from ``path``, decrypted if it is vault text (and then registered as a secret)."""
    if not is_encrypted(data[:64]):
        return data
    plain = _current.decrypt(data.decode("ascii", "replace"), {"file": path})
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        secrets.register(text.strip())
        for line in text.splitlines():
            if len(line.strip()) >= 8:
                secrets.register(line.strip())
    return plain


def register_leaves(value) -> None:
    """Declare every string in a decrypted file's data sensitive."""
    if isinstance(value, str):
        secrets.register(value)
    elif isinstance(value, dict):
        for v in value.values():
            register_leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            register_leaves(v)
