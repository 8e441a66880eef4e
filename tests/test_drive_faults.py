"""Faults the drive must survive without losing data or miscounting: a full
disk, a killed server, a locked database."""

from __future__ import annotations

import base64
import socket
import sqlite3
import subprocess
import time
from urllib.parse import urlparse

import pytest
import requests

MIB = 2**20


def _session():
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return s


def _recount_is_clean(srv, space):
    out = srv.cli("quota", "recount", space).stdout
    assert "sin diferencias" in out, out


def test_disk_full_during_upload_returns_507_and_keeps_old_version(make_server):
    srv = make_server('[storage]\nmin_free = "0"\n')  # the disk itself says ENOSPC
    spaces_dir = srv.data / "spaces"
    spaces_dir.mkdir(parents=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(spaces_dir)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"this machine forbids mounting a small tmpfs: {p.stderr.strip()}")
    try:
        srv.start()
        srv.create_space("acme", "4G")  # the plan has room; the disk does not
        srv.add_user("acme", "ana", "secreto-ana-1")
        s = _session()
        old = b"o" * MIB
        assert s.put(srv.dav("acme", "libro.xlsx"), data=old).status_code == 201
        r = s.put(srv.dav("acme", "libro.xlsx"), data=b"n" * (3 * MIB))
        assert r.status_code == 507, r.text
        assert "disco" in r.text
        assert s.get(srv.dav("acme", "libro.xlsx")).content == old
        r = s.put(srv.dav("acme", "nuevo.bin"), data=iter([b"c" * MIB] * 4))  # chunked
        assert r.status_code == 507
        assert s.get(srv.dav("acme", "nuevo.bin")).status_code == 404
        assert list((spaces_dir / "acme" / "tmp").iterdir()) == []
        d = srv.show("acme")
        assert (d["used_bytes"], d["used_files"]) == (MIB, 1)
        _recount_is_clean(srv, "acme")
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", str(spaces_dir)], check=False)


@pytest.mark.db
def test_sigkill_during_uploads_then_restart_cleans_temp_and_usage_equals_recount(make_server):
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = _session()
    assert s.put(srv.dav("acme", "a.txt"), data=b"antes").status_code == 201
    lock = s.request("LOCK", srv.dav("acme", "a.txt"), headers={"Timeout": "Second-3600"},
                     data='<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope>'
                          '<D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>'
                          '</D:lockinfo>')
    assert lock.status_code == 200
    token = lock.headers["Lock-Token"]

    u = urlparse(srv.url)
    auth = base64.b64encode(b"ana:secreto-ana-1").decode()
    socks = []
    for i in range(3):  # uploads in flight, each with a reservation of 5 MiB
        sock = socket.create_connection((u.hostname, u.port), timeout=10)
        sock.sendall((f"PUT /dav/acme/grande{i}.bin HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Basic {auth}\r\nContent-Length: {5 * MIB}\r\n\r\n"
                      ).encode() + b"g" * MIB)
        socks.append(sock)
    tmp = srv.data / "spaces" / "acme" / "tmp"
    deadline = time.monotonic() + 10
    while len(list(tmp.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(tmp.iterdir())) == 3
    assert srv.show("acme")["used_bytes"] > 10 * MIB  # reservations held
    srv.kill()
    for sock in socks:
        sock.close()

    srv.start()
    assert list(tmp.iterdir()) == []
    d = srv.show("acme")
    assert (d["used_bytes"], d["used_files"]) == (5, 1)
    _recount_is_clean(srv, "acme")
    assert s.get(srv.dav("acme", "a.txt")).content == b"antes"
    assert s.put(srv.dav("acme", "a.txt"), data=b"x").status_code == 423
    assert s.put(srv.dav("acme", "a.txt"), data=b"despues",
                 headers={"If": f"({token})"}).status_code == 204


def _hold_write_lock(srv):
    """Hold the lock a usage update needs, from outside the server: SQLite's write
    lock, or on PostgreSQL the space's row lock. Returns a release function."""
    if srv.db_url.startswith("postgresql"):
        import sqlalchemy as sa

        engine = sa.create_engine(srv.db_url)
        conn = engine.connect()
        tx = conn.begin()
        conn.execute(sa.text("SELECT id FROM spaces WHERE name = 'acme' FOR UPDATE"))

        def release():
            tx.rollback()
            conn.close()
            engine.dispose()

        return release
    conn = sqlite3.connect(srv.data / "resguardo.db", isolation_level=None, timeout=1)
    conn.execute("BEGIN IMMEDIATE")

    def release():
        conn.execute("ROLLBACK")
        conn.close()

    return release


@pytest.mark.db
def test_locked_database_refuses_writes_with_503_then_recovers(make_server):
    srv = make_server("[database]\nbusy_timeout_ms = 300\n").start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = _session()
    assert s.put(srv.dav("acme", "a.txt"), data=b"uno").status_code == 201
    release = _hold_write_lock(srv)
    try:
        r = s.put(srv.dav("acme", "a.txt"), data=b"dos")
        assert r.status_code == 503, r.text
        assert "Intente de nuevo" in r.text and r.headers.get("Retry-After")
        assert s.get(srv.dav("acme", "a.txt")).content == b"uno"
    finally:
        release()
    assert s.put(srv.dav("acme", "a.txt"), data=b"dos").status_code == 204
    assert s.get(srv.dav("acme", "a.txt")).content == b"dos"
    _recount_is_clean(srv, "acme")


def _portal_login(srv, session: requests.Session, password: str = "secreto-ana-1"):
    import re

    page = session.get(srv.url + "/unidad/entrar").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    return session.post(srv.url + "/unidad/entrar", allow_redirects=False, data={
        "csrf_token": token, "space": "acme", "username": "ana", "password": password})


def test_a_locked_database_makes_the_portal_answer_503_never_500(make_server):
    """The portal's doors fail closed like the drive's: a database that cannot
    be written answers 503 with Retry-After and the portal's page (logins, which
    record their outcome, included), never a 500 with a traceback in the log."""
    srv = make_server("[database]\nbusy_timeout_ms = 300\n").start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    w = requests.Session()
    release = _hold_write_lock(srv)
    try:
        for password in ("secreto-ana-1", "otra-cosa-1"):
            r = _portal_login(srv, w, password)
            assert r.status_code == 503, (r.status_code, r.text[:200])
            assert r.headers.get("Retry-After") and "Intente de nuevo" in r.text
    finally:
        release()
    r = _portal_login(srv, w)
    assert r.status_code == 302 and "/unidad/acme/" in r.headers["Location"]
    assert "portal error" not in srv.log.read_text(encoding="utf-8")


def test_postgresql_restart_refuses_cleanly_then_recovers(make_server, private_postgres):
    """The database goes away for a moment: 503 with Retry-After (never a 500, never
    a 401 that would make Windows ask for the password again), then back to normal.
    The server stopped is this test's own, never the one other tests share."""
    srv = make_server(db_url=private_postgres.url, migrated=False).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = _session()
    assert s.put(srv.dav("acme", "a.txt"), data=b"uno").status_code == 201
    private_postgres.stop()
    try:
        for r in (s.put(srv.dav("acme", "a.txt"), data=b"dos"), s.get(srv.dav("acme", "a.txt")),
                  _portal_login(srv, requests.Session())):
            assert r.status_code == 503, (r.status_code, r.text[:300])
            assert r.headers.get("Retry-After") and "Traceback" not in r.text
    finally:
        private_postgres.start()
    for _ in range(3):  # the pool reconnects (pre-ping); a stale connection may cost one try
        r = s.put(srv.dav("acme", "a.txt"), data=b"dos")
        if r.status_code != 503:
            break
        time.sleep(1)
    assert r.status_code == 204, r.text
    assert s.get(srv.dav("acme", "a.txt")).content == b"dos"
    _recount_is_clean(srv, "acme")
