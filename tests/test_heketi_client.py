"""HeketiClient: tokens per request, queue polling, retries only where safe, clear errors."""

import errno
import io
import json
import urllib.error

import pytest

from gfsdeploy import secrets
from gfsdeploy_glusterfs import jwt
from gfsdeploy_glusterfs.heketi_client import HeketiClient, HeketiError, HeketiUnreachable

KEY = "client-test-key-9f8e"


class FakeReply:
    def __init__(self, status, headers=None, body=b""):
        self.status, self.headers, self._body = status, headers or {}, body

    def read(self):
        return self._body

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class FakeOpener:
    """Scripted answers; records (method, path, token claims)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.seen = []

    def open(self, request, timeout=None):
        path = request.full_url.split("://", 1)[1].split("/", 1)[1]
        auth = request.get_header("Authorization")
        claims = jwt.decode(auth.split()[1], KEY) if auth else None
        self.seen.append((request.get_method(), "/" + path, claims))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, headers, body = answer
        if status >= 400 or status in (303,):
            raise urllib.error.HTTPError(request.full_url, status, "x", headers, io.BytesIO(body))
        return FakeReply(status, headers, body)


def make(answers, **kw):
    opener = FakeOpener(answers)
    kw.setdefault("retry_delay", 0)
    return HeketiClient("http://10.96.0.5:8080", "admin", KEY, opener=opener, poll_interval=0, **kw), opener


def test_every_request_has_its_own_qsh():
    c, opener = make([(202, {"Location": "/queue/abc"}, b""),
                      (200, {"X-Pending": "true"}, b""),
                      (303, {"Location": "/volumes/v1"}, b""),
                      (200, {}, json.dumps({"id": "v1", "name": "heketidbstorage"}).encode())])
    volume = c.create_volume(2, "heketidbstorage", 3)
    assert volume["id"] == "v1"
    assert [(m, p) for m, p, _ in opener.seen] == [("POST", "/volumes"), ("GET", "/queue/abc"),
                                                    ("GET", "/queue/abc"), ("GET", "/volumes/v1")]
    for method, path, claims in opener.seen:
        assert claims["qsh"] == jwt.qsh(method, path) and claims["iss"] == "admin"
        assert claims["exp"] > claims["iat"]


def test_queue_500_is_error_with_heketi_text():
    c, _ = make([(202, {"Location": "/queue/q"}, b""), (500, {}, b"No space\n")])
    with pytest.raises(HeketiError) as info:
        c.create_volume(2, "heketidbstorage", 3)
    err = info.value
    assert err.status == 500 and err.path == "/volumes" and err.heketi_message == "No space"
    assert "create volume heketidbstorage" in str(err)


def test_queue_204_returns_none():
    c, _ = make([(202, {"Location": "/queue/q"}, b""), (204, {}, b"")])
    assert c.add_device("n" * 32, "/dev/sdb") is None


def test_connection_refused_retried_for_post():
    refused = urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    c, opener = make([refused, (201, {}, b'{"id": "c1"}')], retries=2)
    assert c.create_cluster()["id"] == "c1"
    assert len(opener.seen) == 2


def test_reset_not_retried_for_post_but_for_get():
    reset = urllib.error.URLError(ConnectionResetError(errno.ECONNRESET, "reset"))
    c, opener = make([reset], retries=3)
    with pytest.raises(HeketiUnreachable):
        c.create_cluster()
    assert len(opener.seen) == 1
    c, opener = make([reset, (200, {}, b'{"clusters": []}')], retries=3)
    assert c.clusters() == []
    assert len(opener.seen) == 2


def test_401_error_names_status_path_message_never_key():
    secrets.register(KEY)
    c, _ = make([(401, {}, b"Invalid JWT token: signature is invalid (client and server secrets may not match)")])
    with pytest.raises(HeketiError) as info:
        c.clusters()
    text = str(info.value)
    assert "401" in text and "/clusters" in text and "secrets may not match" in text
    assert KEY not in text and info.value.fix


def test_hello_sends_no_token():
    c, opener = make([(200, {}, b"Hello from Heketi")])
    assert c.hello() == "Hello from Heketi"
    assert opener.seen[0][2] is None


def test_key_is_registered_for_redaction():
    HeketiClient("http://127.0.0.1:1", "admin", "another-secret-key-77")
    assert "another-secret-key-77" not in secrets.redact("key=another-secret-key-77")


def test_topology_walk():
    answers = [(200, {}, b'{"clusters": ["c1"]}'),
               (200, {}, b'{"id": "c1", "nodes": ["n1"], "volumes": ["v1"], "file": true, "block": true}'),
               (200, {}, b'{"id": "n1", "hostnames": {"manage": ["k8s-1"], "storage": ["10.0.0.1"]}, "devices": []}'),
               (200, {}, b'{"id": "v1", "name": "heketidbstorage"}')]
    c, _ = make(answers)
    topo = c.topology()
    assert topo["clusters"][0]["nodes"][0]["hostnames"]["manage"] == ["k8s-1"]
    assert topo["clusters"][0]["volumes"][0]["name"] == "heketidbstorage"


def test_unreachable_real_socket():
    c = HeketiClient("http://127.0.0.1:9", "admin", KEY, retries=0, timeout=2)
    with pytest.raises(HeketiUnreachable) as info:
        c.clusters()
    assert info.value.status is None and KEY not in str(info.value)
