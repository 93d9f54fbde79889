"""heketi's JWT: HS256, iss/iat/exp, qsh over METHOD&path (query excluded)."""

import hashlib
import time

import pytest

from gfsdeploy_glusterfs import jwt

KEYS = {"admin": "adm1nkey", "user": "us3rkey"}


def test_qsh_is_sha256_of_method_and_path_without_query():
    expected = hashlib.sha256(b"GET&/clusters").hexdigest()
    assert jwt.qsh("GET", "/clusters") == expected
    assert jwt.qsh("get", "/clusters?x=1") == expected
    assert jwt.qsh("POST", "/clusters") != expected


def test_roundtrip_and_claims():
    token = jwt.heketi_token("admin", KEYS["admin"], "POST", "/volumes", now=1000)
    claims = jwt.decode(token, KEYS["admin"], now=1001)
    assert claims == {"iss": "admin", "iat": 1000, "exp": 1300, "qsh": jwt.qsh("POST", "/volumes")}


def test_known_vector_matches_pyjwt_layout():
    # header {"alg":"HS256","typ":"JWT"} compact JSON, as jwt-go/pyjwt produce it
    token = jwt.encode({"a": 1}, "k")
    assert token.split(".")[0] == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), "secrets may not match"),
    (lambda t: t + ".x", "segments"),
    (lambda t: "x" + t, ""),
])
def test_tampered_tokens_rejected(mutate, message):
    token = jwt.heketi_token("admin", KEYS["admin"], "GET", "/clusters")
    with pytest.raises(jwt.JwtError) as info:
        jwt.verify_heketi(mutate(token), KEYS, "GET", "/clusters")
    assert message in str(info.value)


def test_wrong_key_expired_future_and_qsh():
    now = time.time()
    wrong = jwt.heketi_token("admin", "other-key", "GET", "/clusters")
    with pytest.raises(jwt.JwtError, match="secrets may not match"):
        jwt.verify_heketi(wrong, KEYS, "GET", "/clusters")
    expired = jwt.heketi_token("admin", KEYS["admin"], "GET", "/clusters", now=now - 1000)
    with pytest.raises(jwt.JwtError, match="expired"):
        jwt.verify_heketi(expired, KEYS, "GET", "/clusters")
    future = jwt.heketi_token("admin", KEYS["admin"], "GET", "/clusters", now=now + 1000)
    with pytest.raises(jwt.JwtError, match="clocks may differ"):
        jwt.verify_heketi(future, KEYS, "GET", "/clusters")
    other_path = jwt.heketi_token("admin", KEYS["admin"], "GET", "/volumes")
    with pytest.raises(jwt.JwtError, match="Invalid qsh claim"):
        jwt.verify_heketi(other_path, KEYS, "GET", "/clusters")


def test_issuer_checks():
    unknown = jwt.heketi_token("root", "x", "GET", "/clusters")
    with pytest.raises(jwt.JwtError, match="Unknown user"):
        jwt.verify_heketi(unknown, KEYS, "GET", "/clusters")
    no_iss = jwt.encode({"exp": time.time() + 60, "qsh": jwt.qsh("GET", "/")}, "k")
    with pytest.raises(jwt.JwtError, match="missing iss"):
        jwt.verify_heketi(no_iss, KEYS, "GET", "/")
    no_exp = jwt.encode({"iss": "admin", "qsh": jwt.qsh("GET", "/")}, KEYS["admin"])
    with pytest.raises(jwt.JwtError, match="exp"):
        jwt.verify_heketi(no_exp, KEYS, "GET", "/")


def test_alg_none_rejected():
    import base64
    import json

    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    token = f"{b64({'alg': 'none'})}.{b64({'iss': 'admin', 'exp': time.time() + 60})}."
    with pytest.raises(jwt.JwtError, match="signing method"):
        jwt.verify_heketi(token, KEYS, "GET", "/clusters")


def test_key_never_in_error_text():
    token = jwt.heketi_token("admin", "wrong-key-123", "GET", "/clusters")
    with pytest.raises(jwt.JwtError) as info:
        jwt.verify_heketi(token, KEYS, "GET", "/clusters")
    assert KEYS["admin"] not in str(info.value) and "wrong-key-123" not in str(info.value)


# RFC 7515 appendix A.1: the HS256 example, with its header and payload bytes (CR LF
# and spaces inside the JSON) exactly as the RFC signs them
RFC7515_A1_TOKEN = ("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
                    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
RFC7515_A1_KEY = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"


def test_rfc7515_appendix_a1_hs256_vector():
    import base64

    key = base64.urlsafe_b64decode(RFC7515_A1_KEY + "=" * (-len(RFC7515_A1_KEY) % 4))
    header, payload, _ = RFC7515_A1_TOKEN.split(".")
    assert base64.urlsafe_b64decode(header + "==") == b'{"typ":"JWT",\r\n "alg":"HS256"}'
    claims = jwt.decode(RFC7515_A1_TOKEN, key, now=1300819380 - 1)
    assert claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}
    # one bit off in the signature, or a different key: refused
    bad = RFC7515_A1_TOKEN[:-1] + ("k" if RFC7515_A1_TOKEN[-1] != "k" else "j")
    with pytest.raises(jwt.JwtError):
        jwt.decode(bad, key, now=1300819380 - 1)
    with pytest.raises(jwt.JwtError):
        jwt.decode(RFC7515_A1_TOKEN, key[:-1], now=1300819380 - 1)
    # and after `exp` it is expired
    with pytest.raises(jwt.JwtError, match="expired"):
        jwt.decode(RFC7515_A1_TOKEN, key, now=1300819380 + 1)
