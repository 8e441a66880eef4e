"""Deployment: behind a reverse proxy or load balancer, over HTTPS, under systemd."""

from __future__ import annotations

import requests

def _hammer(srv, forwarded_for: str) -> None:
    """Enough bad passwords from one address (for many user names) to get that
    address paused."""
    s = requests.Session()
    for i in range(25):
        s.request("PROPFIND", srv.dav("acme", ""), auth=(f"mallory{i}", "no-es-su-clave"),
                  headers={"Depth": "0", "X-Forwarded-For": forwarded_for})


def _propfind(srv, forwarded_for: str) -> int:
    return requests.request("PROPFIND", srv.dav("acme", ""), auth=("ana", "secreto-ana-1"),
                            headers={"Depth": "0", "X-Forwarded-For": forwarded_for}
                            ).status_code


def test_behind_a_trusted_proxy_bad_passwords_pause_only_the_attackers_address(make_server):
    srv = make_server('[server]\ntrusted_proxies = "127.0.0.1, ::1"\n').start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    _hammer(srv, "198.51.100.7")
    assert _propfind(srv, "198.51.100.7") == 401
    assert _propfind(srv, "203.0.113.9") == 207


def test_forwarded_for_from_an_untrusted_peer_is_ignored(make_server):
    """Without trusted_proxies a client cannot pick the address it is counted
    under: forging X-Forwarded-For does not escape the pause."""
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    _hammer(srv, "198.51.100.7")
    assert _propfind(srv, "203.0.113.9") == 401
