"""``password_hash``: crypt(3) strings a Linux host accepts in /etc/shadow.

SHA-256/SHA-512 crypt are computed here (the published algorithm: Drepper's
"Unix crypt using SHA-256 and SHA-512"), so they work on every Python, with or
without the deprecated ``crypt`` module. bcrypt comes from the ``bcrypt``
package (a dependency of paramiko). Defaults are the ones Ansible uses, so the
same password and salt give the same string: 656000 rounds for SHA-512, 535000
for SHA-256, cost 12 for bcrypt.
"""

from __future__ import annotations

import hashlib
import secrets as _random

ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: name (as playbooks write it) -> (scheme, crypt id, salt size, default rounds)
SCHEMES = {
    "sha512": ("sha512_crypt", "6", 16, 656000),
    "sha512_crypt": ("sha512_crypt", "6", 16, 656000),
    "sha256": ("sha256_crypt", "5", 16, 535000),
    "sha256_crypt": ("sha256_crypt", "5", 16, 535000),
    "bcrypt": ("bcrypt", "2b", 22, 12),
    "blowfish": ("bcrypt", "2b", 22, 12),
}

_SHA512_ORDER = [(0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
                 (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54),
                 (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60),
                 (40, 61, 19), (62, 20, 41)]
_SHA256_ORDER = [(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5), (6, 16, 26),
                 (27, 7, 17), (18, 28, 8), (9, 19, 29)]


class PasswordHashError(ValueError):
    pass


def _b64_24(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def sha_crypt(password: bytes, salt: str, rounds: int | None, bits: int) -> str:
    """``$5$`` / ``$6$`` crypt of ``password``. ``rounds`` None means 5000."""
    new = hashlib.sha512 if bits == 512 else hashlib.sha256
    size = bits // 8
    salt_b = salt.encode()[:16]
    rounds = 5000 if rounds is None else max(1000, min(999_999_999, int(rounds)))
    explicit = rounds != 5000  # the implicit count is never written (crypt(3) and passlib agree)

    b = new(password + salt_b + password).digest()
    a = new(password + salt_b)
    a.update(_repeat(b, len(password)))
    length = len(password)
    while length:
        a.update(b if length & 1 else password)
        length >>= 1
    digest_a = a.digest()

    p = _repeat(new(password * len(password)).digest(), len(password))
    s = _repeat(new(salt_b * (16 + digest_a[0])).digest(), len(salt_b))

    c = digest_a
    for r in range(rounds):
        h = new(p if r & 1 else c)
        if r % 3:
            h.update(s)
        if r % 7:
            h.update(p)
        h.update(c if r & 1 else p)
        c = h.digest()

    if bits == 512:
        encoded = "".join(_b64_24(c[i], c[j], c[k], 4) for i, j, k in _SHA512_ORDER) + _b64_24(0, 0, c[63], 2)
        ident = "6"
    else:
        encoded = "".join(_b64_24(c[i], c[j], c[k], 4) for i, j, k in _SHA256_ORDER) + _b64_24(0, c[31], c[30], 3)
        ident = "5"
    assert len(c) == size
    prefix = f"${ident}$" + (f"rounds={rounds}$" if explicit else "")
    return f"{prefix}{salt_b.decode()}${encoded}"


def _system_crypt(secret: bytes, crypt_id: str, salt: str, rounds: int) -> str | None:
    """The C library's crypt(3) when Python still ships the module (same result, ~100x faster)."""
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        return None
    prefix = f"${crypt_id}$" + (f"rounds={rounds}$" if int(rounds) != 5000 else "")
    try:
        result = crypt.crypt(secret.decode(), prefix + salt)
    except (UnicodeDecodeError, OSError):
        return None
    return result if result and result.startswith(prefix) else None


def random_salt(size: int) -> str:
    return "".join(_random.choice(ALPHABET) for _ in range(size))


def password_hash(password, hashtype: str = "sha512", salt: str | None = None, salt_size: int | None = None,
                  rounds: int | None = None, ident: str | None = None) -> str:
    scheme = SCHEMES.get(str(hashtype))
    if scheme is None:
        raise PasswordHashError(f"password_hash: unsupported hash type {hashtype!r}; "
                                f"available: {', '.join(sorted(SCHEMES))}")
    name, crypt_id, default_size, default_rounds = scheme
    secret = str(password).encode()
    if salt is not None and any(ch not in ALPHABET for ch in str(salt)):
        raise PasswordHashError("password_hash: the salt may contain only ./0-9A-Za-z")
    if name == "bcrypt":
        try:
            import bcrypt
        except ImportError:
            raise PasswordHashError("password_hash('bcrypt') needs the bcrypt package (pip install bcrypt)") from None
        cost = int(rounds or default_rounds)
        salt = str(salt) if salt is not None else random_salt(22)
        if len(salt) != 22:
            raise PasswordHashError("password_hash('bcrypt'): the salt must be exactly 22 characters")
        # bcrypt ignores the low 4 bits of the last salt character: normalise it as crypt(3) does
        salt = salt[:21] + ".Oeu"[ALPHABET.index(salt[21]) // 16]
        prefix = f"${ident or crypt_id}${cost:02d}${salt}".encode()
        return bcrypt.hashpw(secret, prefix).decode()
    salt = str(salt) if salt is not None else random_salt(int(salt_size or default_size))
    fast = _system_crypt(secret, crypt_id, salt, rounds if rounds is not None else default_rounds)
    if fast:
        return fast
    return sha_crypt(secret, salt, rounds if rounds is not None else default_rounds,
                     512 if name == "sha512_crypt" else 256)
