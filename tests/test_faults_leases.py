"""Reservations are owned and leased: whatever happens to the process that
holds one (SIGKILL, a database outage), the counters come back to what is on
disk within a bounded time, with no operator; a node restarting or a recount
never disturbs another node's upload in flight."""

from __future__ import annotations

import base64
import socket
import time
from urllib.parse import urlparse

import pytest
import requests

MIB = 2**20
LEASE = '[storage]\nlease_seconds = 4\n'
AUTH = base64.b64encode(b"ana:secreto-ana-1").decode()


def _session() -> requests.Session:
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return s


def _start_upload(srv, name: str, total: int, first: int) -> socket.socket:
    """A PUT of ``total`` declared bytes of which ``first`` are sent; the
    socket stays open (the upload is in flight)."""
    u = urlparse(srv.url)
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    sock.sendall((f"PUT /dav/acme/{name} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Basic {AUTH}\r\nContent-Length: {total}\r\n\r\n"
                  ).encode() + b"g" * first)
    return sock


def _wait(what, timeout: float = 30.0):
    """Wait until ``what()`` is truthy (bounded); returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, f"not within {timeout} s: {what.__doc__}"
        time.sleep(0.1)


def _counters(srv) -> tuple[int, int]:
    d = srv.show("acme")
    return int(d["used_bytes"]), int(d["used_files"])


def _recount_is_clean(srv) -> None:
    out = srv.cli("quota", "recount", "acme").stdout
    assert "sin diferencias" in out, out


def _two_nodes(make_server, lease: str = LEASE):
    a = make_server(lease, name="nodeA").start()
    b = make_server(lease, name="nodeB", share_with=a).start()
    a.create_space("acme", "4G")
    a.add_user("acme", "ana", "secreto-ana-1")
    assert _session().put(a.dav("acme", "a.txt"), data=b"antes").status_code == 201
    return a, b


@pytest.mark.db
@pytest.mark.parametrize("where", ["this-machine", "another-machine"])
def test_node_killed_mid_upload_its_reservation_is_given_back_by_the_other_node(
        make_server, where):
    a, b = _two_nodes(make_server)
    tmp = a.data / "spaces" / "acme" / "tmp"
    sock = _start_upload(a, "grande.bin", 5 * MIB, MIB)
    _wait(lambda: list(tmp.iterdir()))
    assert _counters(a)[0] >= 5 * MIB  # the reservation is counted
    if where == "another-machine":
        # As if node A ran on another machine: nobody can see its process
        # die, only its lease run out.
        import sqlalchemy as sa

        e = sa.create_engine(a.db_url)
        with e.begin() as c:
            c.execute(sa.text("UPDATE upload_leases SET node = 'otra-maquina'"))
        e.dispose()
    a.kill()
    sock.close()
    started = time.monotonic()
    _wait(lambda: _counters(b) == (5, 1) and not list(tmp.iterdir()), timeout=30)
    if where == "another-machine":
        assert time.monotonic() - started > 1  # it waited for the lease to expire
    b.wait_for_log(r"upload reservation given back: space=acme .*reason=" + (
        "process gone" if where == "this-machine" else "lease expired"))
    _recount_is_clean(b)
    assert _session().get(b.dav("acme", "a.txt")).content == b"antes"


@pytest.mark.db
def test_a_node_restarting_and_a_recount_keep_another_nodes_upload_counted(make_server):
    """Node B restarts and an operator recounts while node A receives a file:
    A's reservation stays counted meanwhile, and after A stores the file the
    counters equal the disk (the issue: 8 MiB over the quota on disk). The upload
    stalls meanwhile, so its lease is long enough to outlast a slow restart: a
    stalled upload whose lease runs out is given back, which is another test."""
    a, b = _two_nodes(make_server, '[storage]\nlease_seconds = 60\n')
    tmp = a.data / "spaces" / "acme" / "tmp"
    sock = _start_upload(a, "grande.bin", 6 * MIB, 2 * MIB)
    _wait(lambda: list(tmp.iterdir()))
    b.stop()
    b.start()
    a.cli("quota", "recount", "acme")
    assert _counters(a)[0] >= 6 * MIB  # the upload in flight is still counted
    sock.sendall(b"g" * (4 * MIB))
    sock.settimeout(30)
    head = sock.recv(4096).decode("latin-1")
    sock.close()
    assert head.startswith("HTTP/1.1 201"), head
    assert _counters(b) == (5 + 6 * MIB, 2)
    _recount_is_clean(b)


def test_postgresql_outage_mid_upload_counters_heal_without_an_operator(
        make_server, private_postgres):
    """The database goes away while a file streams in, and the client gives up:
    the release cannot be written then, so the lease stays and is given back
    once the database is back and the lease has run out."""
    srv = make_server(LEASE + '[database]\nbusy_timeout_ms = 500\n', db_url=private_postgres.url,
                      migrated=False).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    assert _session().put(srv.dav("acme", "a.txt"), data=b"antes").status_code == 201
    tmp = srv.data / "spaces" / "acme" / "tmp"
    sock = _start_upload(srv, "grande.bin", 5 * MIB, MIB)
    _wait(lambda: list(tmp.iterdir()))
    private_postgres.stop()
    try:
        sock.close()  # the client gives up: the upload is aborted, its release fails
        srv.wait_for_log(r"quota release postponed .* lease \w+ is given back when it "
                         r"expires")
    finally:
        private_postgres.start()
    _wait(lambda: _counters(srv) == (5, 1), timeout=40)
    srv.wait_for_log(r"upload reservation given back: space=acme .*reason=lease expired")
    assert not list(tmp.iterdir())
    _recount_is_clean(srv)
    assert _session().put(srv.dav("acme", "a.txt"), data=b"despues").status_code == 204
