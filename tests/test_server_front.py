"""The server's front door against anonymous clients, with real sockets against
the real server: slow or huge request heads, slow bodies, readers that stop
reading, TLS handshakes that never finish; and no response names the software
or shows the server's clock."""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import threading
import time
from urllib.parse import urlparse

import pytest

USER, PASSWORD = "ana", "secreto-ana-1"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

#: What gives the software away, or the server's own clock in a body
#: (WsgiDAV printed "WsgiDAV/4.4.0 - 2026-12-04 13:48:36.056220").
LEAKS = re.compile(rb"wsgidav|cheroot|werkzeug|python/|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+",
                   re.IGNORECASE)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from conftest import Server

    srv = Server(tmp_path_factory.mktemp("front")).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", USER, PASSWORD, "admin")
    yield srv
    srv.close()


def request(srv, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    u = urlparse(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    conn.request(method, path, body=body or None, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.getheaders(), data


def test_no_answer_names_the_server_software_or_shows_its_clock(live):
    """Successes included: WsgiDAV answered a MKCOL, PUT, COPY or MOVE with an
    HTML page naming its version and the server's local time."""
    a = {"Authorization": AUTH}
    dest = {"Destination": f"{live.url}/dav/acme/otra/", **a}
    calls = [
        ("MKCOL", "/dav/acme/carpeta/", b"", a),
        ("MKCOL", "/dav/acme/carpeta/", b"", a),
        ("PUT", "/dav/acme/carpeta/a.txt", b"hola", a),
        ("PUT", "/dav/acme/carpeta/a.txt", b"hola otra vez", a),
        ("COPY", "/dav/acme/carpeta/", b"", dest),
        ("MOVE", "/dav/acme/otra/", b"", {**a, "Destination": f"{live.url}/dav/acme/movida/"}),
        ("PROPFIND", "/dav/acme/", b"", {**a, "Depth": "1"}),
        ("PROPPATCH", "/dav/acme/carpeta/a.txt",
         b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set>'
         b"<D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>", a),
        ("LOCK", "/dav/acme/carpeta/a.txt",
         b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
         b"</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>", a),
        ("DELETE", "/dav/acme/movida/", b"", a),
        ("DELETE", "/dav/acme/no-existe", b"", a),
        ("GET", "/dav/acme/no-existe", b"", a),
        ("GET", "/dav/acme/", b"", a),
        ("OPTIONS", "/", b"", {}),
        ("PROPFIND", "/dav/acme/", b"", {}),
        ("BREW", "/dav/acme/", b"", a),
        ("GET", "/no-existe", b"", {}),
        ("GET", "/", b"", {}),
        ("GET", "/healthz", b"", {}),
    ]
    for method, path, body, headers in calls:
        status, hdrs, data = request(live, method, path, body, headers)
        assert status < 500, (method, path, status, data[:300])
        assert not LEAKS.search(data), (method, path, status, data[:500])
        for name, value in hdrs:
            assert not LEAKS.search(value.encode()), (method, path, name, value)
            if name.lower() == "server":
                assert value == "Resguardo", value


# -- 13.6: one anonymous client must not stall the server ------------------------------

#: Short enough for a test, long enough for a loaded machine to send a head.
FAST = "[server]\nhead_timeout = 3\n"


def _connect(srv, timeout: float = 10) -> socket.socket:
    u = urlparse(srv.url)
    return socket.create_connection((u.hostname, u.port), timeout=timeout)


def _healthz_seconds(srv, *, tls: bool = False, timeout: float = 8) -> float:
    """How long GET /healthz takes on a fresh connection (fails past ``timeout``)."""
    u = urlparse(srv.url)
    t = time.monotonic()
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 200, r.status
    return time.monotonic() - t


def _answer(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends before it closes (b"" when it just closes)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return got


def _stream_then_answer(sock: socket.socket, head: bytes, filler: bytes, total: int,
                        timeout: float = 20) -> bytes:
    """Send ``head`` then ``total`` bytes of ``filler`` (the server may stop
    reading: errors are expected), then return the server's answer."""
    def send() -> None:
        try:
            sock.sendall(head)
            sent = 0
            while sent < total:
                sock.sendall(filler)
                sent += len(filler)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    answer = _answer(sock, timeout)
    t.join(timeout)
    return answer


def test_slow_request_heads_never_hold_a_worker_and_are_cut_at_the_head_timeout(make_server):
    """48 slowloris clients (three times the worker threads) each send a request
    line and then one header every half second: /healthz still answers at
    once, and each slow client is disconnected once its head has taken
    longer than head_timeout, however steadily it trickles."""
    srv = make_server(FAST).start()
    slow = []
    for _ in range(48):
        s = _connect(srv)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    assert _healthz_seconds(srv) < 2
    closed: dict[int, float] = {}
    start = time.monotonic()
    while len(closed) < len(slow) and time.monotonic() - start < 15:
        for i, s in enumerate(slow):
            if i in closed:
                continue
            try:
                s.sendall(b"X-Lento: 1\r\n")
            except OSError:
                closed[i] = time.monotonic() - start
        time.sleep(0.5)
    for s in slow:
        s.close()
    assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow heads still open"
    assert max(closed.values()) < 3 + 6, closed
    assert _healthz_seconds(srv) < 2


def test_a_ten_megabyte_header_is_refused_with_431_and_never_held_in_memory(make_server):
    srv = make_server(FAST).start()
    rss = srv.rss_kib()
    with _connect(srv) as s:
        answer = _stream_then_answer(s, b"GET / HTTP/1.1\r\nHost: x\r\nX-Grande: ",
                                     b"a" * 65536, 10 * 2**20)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"encabezados" in answer
    assert srv.rss_kib() - rss < 10 * 1024
    assert _healthz_seconds(srv) < 2


def test_many_unfinished_huge_header_lines_keep_memory_bounded(make_server):
    """Twelve clients each stream an 8 MiB header line that never ends: the
    server keeps at most a head's worth of each, answers 431 and stays small."""
    srv = make_server(FAST).start()
    rss = srv.rss_kib()
    peak = [rss]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], srv.rss_kib())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    answers: list[bytes] = []

    def one() -> None:
        with _connect(srv) as s:
            answers.append(_stream_then_answer(
                s, b"GET / HTTP/1.1\r\nHost: x\r\nX-Sin-Fin: ", b"b" * 65536, 8 * 2**20))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    watcher.join()
    assert len(answers) == 12
    assert all(a.startswith(b"HTTP/1.1 431") for a in answers), [a[:40] for a in answers]
    assert peak[0] - rss < 30 * 1024, (rss, peak[0])


def test_request_line_and_header_count_limits_and_pipelining(make_server):
    srv = make_server(FAST).start()
    with _connect(srv) as s:
        s.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(s, 10).startswith(b"HTTP/1.1 414")
    with _connect(srv) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                  + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n")
        assert _answer(s, 10).startswith(b"HTTP/1.1 431")
    with _connect(srv) as s:  # 60 headers are fine; two pipelined requests, two answers
        req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
               + b"".join(b"X-%d: v\r\n" % i for i in range(60)) + b"\r\n")
        s.sendall(req + req.replace(b"Host: x", b"Host: x\r\nConnection: close"))
        both = _answer(s, 10)
        assert both.count(b"HTTP/1.1 200") == 2, both[:500]


def test_slow_or_abandoned_bodies_never_hold_a_worker(make_server):
    """Anonymous requests whose bodies trickle in (a login form, a refused
    upload whose body the server must read past to keep the connection, a
    form too large for the portal): 48 of them, and /healthz still answers at
    once."""
    srv = make_server(FAST).start()
    srv.create_space("acme", "4G")
    slow = []
    for i in range(48):
        s = _connect(srv)
        if i % 3 == 1:
            s.sendall(b"POST /unidad/entrar HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 2000\r\n\r\nspace=acme&")
        elif i % 3 == 2:  # a form larger than the front reads ahead: refused unread
            s.sendall(b"POST /unidad/entrar HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 200000\r\n\r\nspace=acme&")
        else:  # refused (401) before its body: the rest is read past, not by a worker
            s.sendall(b"PUT /dav/acme/x.bin HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 500000\r\n\r\nxx")
        slow.append(s)
    time.sleep(0.5)  # let every request reach wherever it waits
    assert _healthz_seconds(srv) < 1
    for s in slow:
        try:
            s.sendall(b"z")
        except OSError:
            pass
    assert _healthz_seconds(srv) < 1
    for s in slow:
        s.close()


def test_a_client_that_stops_reading_a_download_is_cut_and_frees_its_worker(make_server):
    srv = make_server(FAST).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", USER, PASSWORD)
    status, _, _ = request(srv, "PUT", "/dav/acme/grande.bin", b"g" * (24 * 2**20),
                           {"Authorization": AUTH})
    assert status == 201
    stuck = []
    for _ in range(20):
        s = _connect(srv)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET /dav/acme/grande.bin HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: {AUTH}\r\n\r\n".encode())
        stuck.append(s)
    # Their workers wait on clients that read nothing: cut after head_timeout.
    assert _healthz_seconds(srv, timeout=15) < 3 + 6
    for s in stuck:
        s.close()


def test_tls_handshakes_that_never_finish_block_nobody(make_server, tmp_path):
    from test_deploy import self_signed

    cert, key = self_signed(tmp_path)
    srv = make_server(f'[server]\ntls_cert = "{cert}"\ntls_key = "{key}"\nhead_timeout = 3\n'
                      ).start()
    silent = [_connect(srv) for _ in range(20)]
    partial = []
    for _ in range(5):
        s = _connect(srv)
        s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, never finished
        partial.append(s)
    assert _healthz_seconds(srv, tls=True) < 2
    for s in silent + partial:  # each is let go once head_timeout has passed
        assert _answer(s, 10) == b""
        s.close()
    assert _healthz_seconds(srv, tls=True) < 2


def test_ambiguous_framing_is_refused_before_any_worker(make_server):
    """Request smuggling needs two parsers to disagree on where a body ends:
    the front refuses whatever it would have to guess about (400), and a head
    with bare line feeds is refused at once instead of waiting out the clock."""
    srv = make_server(FAST).start()
    heads = [
        b"POST /cuenta/entrar HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /cuenta/entrar HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
        b"\r\nhello",
        b"POST /cuenta/entrar HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /cuenta/entrar HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
        b"POST /cuenta/entrar HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        b"GET /healthz HTTP/1.1\nHost: x\n\n",
    ]
    for head in heads:
        with _connect(srv) as s:
            t = time.monotonic()
            s.sendall(head)
            answer = _answer(s, 10)
            assert answer.startswith(b"HTTP/1.1 400"), (head, answer[:100])
            assert time.monotonic() - t < 2.5, head
