"""Clients that go away mid-body are client aborts (4xx), not server errors:
logged without a traceback, not counted among the 5xx, and they leave the
previous version, no temporary file and counters equal to the disk."""

from __future__ import annotations

import base64
import socket
from urllib.parse import urlparse

import pytest
import requests
from test_deploy import behind_nginx  # noqa: F401 - a fixture
from test_operations import metric, scrape

AUTH = base64.b64encode(b"ana:secreto-ana-1").decode()


def _server_errors(srv) -> float:
    text = scrape(srv)
    return sum(metric(text, "resguardo_http_requests_total", method="PUT", status=str(code))
               for code in (500, 502, 503, 504))


def _abandon(srv, head: str, body: bytes) -> None:
    u = urlparse(srv.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)  # the client is gone: no more bytes, ever
        sock.settimeout(10)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass


@pytest.mark.db
@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_abandoned_put_is_a_client_abort_not_a_server_error(space, framing):
    srv, s = space
    assert s.put(srv.dav("acme", "libro.xlsx"), data=b"antes" * 1000).status_code == 201
    before = _server_errors(srv)
    if framing == "chunked":
        head = ("PUT /dav/acme/libro.xlsx HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Basic {AUTH}\r\nTransfer-Encoding: chunked\r\n\r\n")
        body = b"10000\r\n" + b"n" * 300_000 + b"\r\n10000\r\n" + b"n" * 1000
    else:
        head = ("PUT /dav/acme/libro.xlsx HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Basic {AUTH}\r\nContent-Length: 5000000\r\n\r\n")
        body = b"n" * 300_000
    _abandon(srv, head, body)
    m = srv.wait_for_log(r"PUT /dav/acme/libro\.xlsx (?!201)(\d{3}) ")
    assert m.group(1).startswith("4"), m.group(0)
    assert _server_errors(srv) == before
    log = srv.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert s.get(srv.dav("acme", "libro.xlsx")).content == b"antes" * 1000
    assert list((srv.data / "spaces" / "acme" / "tmp").iterdir()) == []
    assert "sin diferencias" in srv.cli("quota", "recount", "acme").stdout


def test_chunked_uploads_refused_mid_body_reach_the_client_as_507_through_nginx(
        behind_nginx):  # noqa: F811 - the fixture imported above
    """The quota refuses chunked uploads after their first blocks, several at a
    time, through config/nginx-resguardo.conf: every client reads the 507 (nginx
    must not see its body writes fail and answer 502 instead)."""
    from concurrent.futures import ThreadPoolExecutor

    srv, s, base, _ = behind_nginx
    assert s.put(f"{base}/dav/acme/libro.xlsx", data=b"antes" * 100).status_code == 201

    def upload(i: int) -> int:
        sess = requests.Session()
        sess.auth, sess.verify, sess.trust_env = s.auth, s.verify, False
        try:
            r = sess.put(f"{base}/dav/acme/grande{i}.bin",
                         data=iter([bytes([65 + i % 26]) * 65536] * 64), timeout=60)
            return r.status_code
        except requests.ConnectionError:
            return -1  # the connection was cut before an answer: as bad as a 502

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(upload, range(24)))
    assert answers == [507] * 24, answers
    assert s.get(f"{base}/dav/acme/libro.xlsx").content == b"antes" * 100
    assert list((srv.data / "spaces" / "acme" / "tmp").iterdir()) == []
    assert "sin diferencias" in srv.cli("quota", "recount", "acme").stdout
