"""A drive node dying under load, through the shipped nginx configuration:
reads are tried again on the other node; writes are never replayed (a DELETE
the dead node had done would be done twice: a 404 for something that worked)."""

from __future__ import annotations

import os
import re
import socket
import threading
from urllib.parse import urlparse

import requests
from test_deploy import _nginx, free_port, running_nginx, self_signed

from tests.conftest import ROOT


class DyingNode:
    """An upstream that reads a request and closes the connection without an
    answer: a node killed while it handled the request. Counts by method."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[str] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                if data:
                    self.seen.append(data.split(b" ", 1)[0].decode("latin-1"))

    def close(self) -> None:
        self.sock.close()


def _site(nodes: list[str], https_port: int, http_port: int, cert, key) -> str:
    text = (ROOT / "config" / "nginx-resguardo.conf").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^\s*listen \[::\].*\n", "", text)
    drive = iter(nodes)
    text = re.sub(r"(?m)^(\s*)server 127\.0\.0\.1:808\d([^;]*);",
                  lambda m: f"{m.group(1)}server {next(drive)}{m.group(2)};", text)
    text = re.sub(r"(?m)^(\s*)server 127\.0\.0\.1:8090;", rf"\1server {nodes[-1]};", text)
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    return re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)


def test_node_dying_mid_request_reads_retry_on_the_other_node_writes_are_not_replayed(
        make_server, tmp_path):
    exe = _nginx()
    dying = DyingNode()
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    live = urlparse(srv.url).netloc
    cert, key = self_signed(tmp_path)
    https_port, http_port = free_port(), free_port()
    (tmp_path / "resguardo.conf").write_text(
        _site([dying.address, live], https_port, http_port, cert, key), encoding="utf-8")
    try:
        with running_nginx(exe, tmp_path, https_port):
            s = requests.Session()
            s.auth, s.verify, s.trust_env = ("ana", "secreto-ana-1"), str(cert), False
            direct = requests.Session()
            direct.auth = s.auth
            base = f"https://127.0.0.1:{https_port}/dav/acme/"
            body = os.urandom(4096)
            # Writes: a DELETE that reached the dying node is answered 502 and is
            # not sent to the live node (round robin: within two tries one lands there).
            for i in range(4):
                assert direct.put(srv.dav("acme", f"borrar{i}.txt"), data=b"x").status_code == 201
                before = dying.seen.count("DELETE")
                r = s.delete(base + f"borrar{i}.txt")
                if dying.seen.count("DELETE") > before:
                    assert r.status_code == 502, (r.status_code, r.text[:200])
                    assert direct.get(srv.dav("acme", f"borrar{i}.txt")).status_code == 200
                    break
                assert r.status_code == 204
            else:
                raise AssertionError(f"no DELETE reached the dying node: {dying.seen}")
            # Reads: every one answered by the live node, even those sent to the dying one.
            assert direct.put(srv.dav("acme", "libro.xlsx"), data=body).status_code == 201
            before = len(dying.seen)
            for _ in range(6):
                assert s.get(base + "libro.xlsx").content == body
                r = s.request("PROPFIND", base, headers={"Depth": "1"})
                assert r.status_code == 207 and "libro.xlsx" in r.text
            assert len(dying.seen) > before  # some did land on the dying node first
    finally:
        dying.close()
