"""``gfsdeploy vault``: create and read Ansible Vault files without Ansible installed
(``encrypt``, ``decrypt``, ``view``, ``encrypt-string``, ``rekey``), in the format
``ansible-vault`` reads and writes. Files are replaced atomically, keeping their mode;
a file already in the wanted state is refused, never double-encrypted."""

from __future__ import annotations

import getpass
import os
import sys
import tempfile

from gfsdeploy import vault
from gfsdeploy.errors import GfsError


def register(sub) -> None:
    p = sub.add_parser("vault", help="encrypt, decrypt or view Ansible Vault files (as ansible-vault)")
    actions = p.add_subparsers(dest="vault_action", metavar="ACTION")
    actions.required = True
    for name, helptext in (("encrypt", "encrypt files in place"), ("decrypt", "decrypt files in place"),
                           ("view", "print decrypted files"), ("rekey", "encrypt files again with a new password")):
        a = actions.add_parser(name, help=helptext)
        a.add_argument("files", nargs="+", metavar="FILE")
        vault.add_arguments(a)
        if name in ("encrypt", "decrypt"):
            a.add_argument("--output", help="write here instead of replacing the file ('-' for stdout)")
        if name in ("encrypt", "rekey"):
            a.add_argument("--encrypt-vault-id", help="the vault id to encrypt for (default: the first given)")
        if name == "rekey":
            a.add_argument("--new-vault-password-file", help="file with the new password (default: ask)")
            a.add_argument("--new-vault-id", help="vault id of the new password")
        a.set_defaults(func=run)
    a = actions.add_parser("encrypt-string", aliases=["encrypt_string"], help="print a `name: !vault |` value")
    a.add_argument("value", nargs="?", help="the text (default: read stdin)")
    a.add_argument("--name", "-n", default=None, help="the variable name to print it as")
    vault.add_arguments(a)
    a.add_argument("--encrypt-vault-id", help="the vault id to encrypt for (default: the first given)")
    a.set_defaults(func=run, vault_action="encrypt-string")


def _confirmed_prompt(text: str) -> str:
    first = getpass.getpass(text)
    if getpass.getpass("Confirm " + text[0].lower() + text[1:]) != first:
        raise GfsError("the two passwords differ", field="--ask-vault-pass", fix="type the same password twice")
    return first


def _encrypting_key(args) -> tuple[str, bytes]:
    ring = vault.keyring_from(args.vault_id, args.vault_password_file, False)
    if args.ask_vault_pass:
        ring.add(vault.DEFAULT_ID, _confirmed_prompt("New vault password: "))
    if not ring:
        raise GfsError("no vault password given", field="--vault-password-file",
                       fix="pass --vault-password-file FILE, --vault-id LABEL@FILE or --ask-vault-pass")
    wanted = getattr(args, "encrypt_vault_id", None)
    for label, password in ring.entries:
        if wanted in (None, label):
            return label, password
    raise GfsError(f"no password given for vault id {wanted!r}", field="--encrypt-vault-id",
                   fix=f"add --vault-id {wanted}@FILE")


def _replace(path: str, data: bytes) -> None:
    """Atomically, keeping the file's mode."""
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".gfsvault-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise GfsError(f"cannot read {path}: {exc.strerror}", file=path, fix="check the path") from None


def _write_out(args, path: str, data: bytes) -> None:
    if getattr(args, "output", None) == "-":
        sys.stdout.buffer.write(data)
    elif getattr(args, "output", None):
        with open(args.output, "wb") as handle:
            handle.write(data)
    else:
        _replace(path, data)


def run(args) -> int:
    action = args.vault_action
    if action == "encrypt-string":
        label, password = _encrypting_key(args)
        text = args.value if args.value is not None else sys.stdin.read()
        sealed = vault.encrypt(text, password, vault_id=label)
        body = "\n".join("          " + line for line in sealed.strip().splitlines())
        print(f"{args.name or 'value'}: !vault |\n{body}")
        return 0
    if action == "encrypt":
        label, password = _encrypting_key(args)
        for path in args.files:
            data = _read(path)
            if vault.is_encrypted(data[:64]):
                raise GfsError("already vault-encrypted", file=path, fix="decrypt it first, or use `rekey`")
            _write_out(args, path, vault.encrypt(data, password, vault_id=label).encode())
        return 0
    vault.use(vault.keyring_from_args(args))
    for path in args.files:
        data = _read(path)
        if not vault.is_encrypted(data[:64]):
            raise GfsError("not vault-encrypted", file=path, fix="nothing to decrypt: the file is plain text")
        plain = vault.current().decrypt(data.decode("ascii", "replace"), {"file": path})
        if action == "view":
            sys.stdout.buffer.write(plain)
        elif action == "decrypt":
            _write_out(args, path, plain)
        else:  # rekey
            new_id = args.new_vault_id or vault.DEFAULT_ID
            if args.new_vault_password_file:
                new = vault.keyring_from(password_files=[args.new_vault_password_file]).entries[0][1]
            else:
                new = _confirmed_prompt("New vault password: ").encode()
            _replace(path, vault.encrypt(plain, new, vault_id=new_id).encode())
    return 0
