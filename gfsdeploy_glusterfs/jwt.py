"""HS256 JSON Web Tokens as heketi uses them (stdlib only).

heketi authenticates every call but ``/hello`` with a token signed by the
admin or user key. Besides ``iss``/``iat``/``exp`` it carries ``qsh``, the hex
SHA-256 of ``"METHOD&PATH"`` — the URL path only, without the query string
(heketi's ``generate_qsh`` and its Go client both hash ``r.URL.Path``) — so a
token is good for one request only. Keys never appear in exception text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

#: heketi accepts tokens issued up to this many seconds in the future (clock skew)
IAT_LEEWAY = 120
#: lifetime of the tokens we issue; heketi's client uses 5 minutes
TOKEN_TTL = 300


class JwtError(ValueError):
    """A token is malformed, badly signed, expired or for another request."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JwtError("token is not valid base64url") from exc


def _key_bytes(key) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


def qsh(method: str, path: str) -> str:
    """heketi's query-string hash: hex(sha256("METHOD&path")), query ignored."""
    path = path.split("?", 1)[0] or "/"
    return hashlib.sha256(f"{method.upper()}&{path}".encode()).hexdigest()


def encode(claims: dict, key) -> str:
    """Sign ``claims`` with HS256."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(_key_bytes(key), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def unverified_claims(token: str) -> dict:
    """The claims of ``token`` without checking the signature (to pick the key by ``iss``)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("token contains an invalid number of segments")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError("token is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("token is not a JSON object")
    if header.get("alg") != "HS256":
        raise JwtError(f"Unexpected signing method: {header.get('alg')}")
    return claims


def decode(token: str, key, *, now: float | None = None, leeway: int = IAT_LEEWAY) -> dict:
    """Verify the signature, ``exp`` (mandatory, as in heketi) and ``iat``; return the claims."""
    claims = unverified_claims(token)
    header, payload, signature = token.split(".")
    expected = hmac.new(_key_bytes(key), f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(signature)):
        raise JwtError("signature is invalid")
    # heketi (jwt-go) takes "now" as the Unix time in whole seconds: a token is valid
    # through the whole second its `exp` names
    now = int(time.time() if now is None else now)
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or now > exp:
        raise JwtError(f"Token is expired by {now - exp:.0f}s" if isinstance(exp, (int, float))
                       else "Token has no exp claim")
    iat = claims.get("iat")
    if isinstance(iat, (int, float)) and not isinstance(iat, bool) and now < iat - leeway:
        raise JwtError("Token used before issued")
    return claims


def heketi_token(user: str, key, method: str, path: str, *, now: float | None = None,
                 ttl: int = TOKEN_TTL) -> str:
    """The bearer token heketi expects for one request."""
    now = int(time.time() if now is None else now)
    return encode({"iss": user, "iat": now, "exp": now + ttl, "qsh": qsh(method, path)}, key)


def verify_heketi(token: str, keys: dict, method: str, path: str, *, now: float | None = None) -> dict:
    """Check a token the way heketi's middleware does; ``keys`` maps issuer → key.

    Raises JwtError with heketi's wording (the key is never part of it).
    """
    claims = unverified_claims(token)
    issuer = claims.get("iss")
    if not issuer:
        raise JwtError("Token missing iss claim")
    if issuer not in keys:
        raise JwtError("Unknown user")
    try:
        claims = decode(token, keys[issuer], now=now)
    except JwtError as exc:
        text = str(exc)
        if "signature" in text:
            text += " (client and server secrets may not match)"
        elif "before issued" in text:
            text += " (client and server clocks may differ)"
        raise JwtError(text) from None
    if claims.get("qsh") != qsh(method, path):
        raise JwtError("Invalid qsh claim in token")
    return claims
