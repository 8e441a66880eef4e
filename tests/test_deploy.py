"""Deployment: behind a reverse proxy or load balancer, over HTTPS, under systemd."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

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


# -- HTTPS ----------------------------------------------------------------------------

def self_signed(folder: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (an IP address) made with openssl."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (apt-get install openssl)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=IP:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def tls_config(cert: Path, key: Path) -> str:
    return (f'[server]\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
            '[tiers.T100K]\nquota = "100K"\nmax_users = 3\ncfdi_years = 1\n')


@pytest.fixture
def https_server(make_server, tmp_path):
    cert, key = self_signed(tmp_path)
    srv = make_server(tls_config(cert, key)).start()
    assert srv.url.startswith("https://127.0.0.1:")
    srv.create_space("acme", "T100K")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    s.verify = str(cert)
    s.trust_env = False  # REQUESTS_CA_BUNDLE would replace the test's CA
    return srv, s, cert


def test_https_serves_webdav_with_the_configured_certificate(https_server):
    srv, s, cert = https_server
    u = urlparse(srv.url)
    served = ssl.get_server_certificate((u.hostname, u.port))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert.read_text())

    r = s.request("OPTIONS", srv.url + "/")
    assert r.status_code == 200 and "1" in r.headers.get("DAV", "")
    body = os.urandom(60 * 1024)
    assert s.request("MKCOL", srv.dav("acme", "Contabilidad")).status_code == 201
    assert s.put(srv.dav("acme", "Contabilidad/balanza.xlsx"), data=body).status_code == 201
    r = s.request("PROPFIND", srv.dav("acme", "Contabilidad/"), headers={"Depth": "1"})
    assert r.status_code == 207 and "balanza.xlsx" in r.text
    assert hashlib.sha256(s.get(srv.dav("acme", "Contabilidad/balanza.xlsx")).content
                          ).digest() == hashlib.sha256(body).digest()
    lock = s.request("LOCK", srv.dav("acme", "Contabilidad/balanza.xlsx"),
                     data=b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope>'
                          b"<D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
                          b"</D:lockinfo>", headers={"Content-Type": "application/xml"})
    assert lock.status_code == 200
    token = lock.headers["Lock-Token"]
    assert s.put(srv.dav("acme", "Contabilidad/balanza.xlsx"), data=b"x").status_code == 423
    assert s.request("UNLOCK", srv.dav("acme", "Contabilidad/balanza.xlsx"),
                     headers={"Lock-Token": token}).status_code == 204
    # Office's save-by-rename: MOVE with an https Destination.
    r = s.request("MOVE", srv.dav("acme", "Contabilidad/balanza.xlsx"),
                  headers={"Destination": srv.dav("acme", "Contabilidad/balanza-2026.xlsx")})
    assert r.status_code == 201
    # The quota holds over TLS too, with the Spanish message.
    r = s.put(srv.dav("acme", "grande.bin"), data=b"g" * (50 * 1024))
    assert r.status_code == 507 and "Espacio insuficiente" in r.text
    assert s.delete(srv.dav("acme", "Contabilidad")).status_code == 204
    assert srv.show("acme")["used_bytes"] == 0  # in the trash, outside the plan
    assert srv.show("acme")["reserve_used_bytes"] > 0
    srv.cli("trash", "empty", "acme")
    assert srv.show("acme")["reserve_used_bytes"] == 0


def test_https_refuses_a_wrong_password_and_unknown_certificates(https_server):
    srv, s, _cert = https_server
    assert requests.request("PROPFIND", srv.dav("acme", ""), auth=("ana", "otra"),
                            verify=s.verify, headers={"Depth": "0"}).status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(srv.dav("acme", ""), auth=s.auth, timeout=10)  # system CAs only


def test_plain_http_to_the_https_port_gets_no_drive(https_server):
    srv, _s, _cert = https_server
    plain = srv.url.replace("https://", "http://")
    try:
        r = requests.request("PROPFIND", plain + "/dav/acme/", auth=("ana", "secreto-ana-1"),
                             timeout=10)
    except requests.exceptions.ConnectionError:
        return  # closed without an answer: fine
    assert r.status_code == 400 and "<D:multistatus" not in r.text


def test_tls_key_without_certificate_is_a_config_error(make_server, tmp_path):
    cert, key = self_signed(tmp_path)
    srv = make_server(f'[server]\ntls_key = "{key}"\n')
    p = srv.cli("space", "list", check=False)
    assert p.returncode != 0 and "tls_cert" in p.stderr and "Traceback" not in p.stderr


# -- reverse proxies (config/) -----------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_site(upstream: str, https_port: int, http_port: int, cert: Path, key: Path) -> str:
    """config/nginx-resguardo.conf with this machine's addresses: every upstream
    server is ``upstream``, the listen ports are free local ones."""
    text = (ROOT / "config" / "nginx-resguardo.conf").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^\s*listen \[::\].*\n", "", text)
    text = re.sub(r"(?m)^(\s*)server \d[\d.:]+[^;]*;", rf"\1server {upstream};", text)
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)
    return text


def nginx_main(folder: Path) -> Path:
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log info;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n  access_log {folder}/access.log;\n"
        + "".join(f"  {k}_temp_path {folder}/{k};\n"
                  for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  include {folder}/resguardo.conf;\n}}\n", encoding="utf-8")
    return conf


@contextlib.contextmanager
def running_nginx(exe: str, folder: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """nginx with ``folder``'s resguardo.conf (see :func:`nginx_main`), once it
    accepts connections on ``port``; stopped at the end."""
    proc = subprocess.Popen([exe, "-c", str(nginx_main(folder)), "-p", str(folder)],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start: {proc.stderr.read()}")
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _nginx() -> str:
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                    else None)
    if exe is None:
        pytest.skip("nginx is not installed (scripts/test.sh installs Debian's nginx-light)")
    return exe


def test_sample_nginx_config_passes_nginx_t(tmp_path):
    exe = _nginx()
    cert, key = self_signed(tmp_path)
    (tmp_path / "resguardo.conf").write_text(
        nginx_site("127.0.0.1:9", free_port(), free_port(), cert, key), encoding="utf-8")
    p = subprocess.run([exe, "-t", "-c", str(nginx_main(tmp_path)), "-p", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "test is successful" in p.stderr


@pytest.fixture
def behind_nginx(make_server, tmp_path):
    """A Resguardo server behind config/nginx-resguardo.conf, nginx doing TLS."""
    exe = _nginx()
    cert, key = self_signed(tmp_path)
    srv = make_server('[server]\ntrusted_proxies = "127.0.0.1"\n'
                      '[tiers.T100K]\nquota = "100K"\nmax_users = 3\ncfdi_years = 1\n').start()
    srv.create_space("acme", "T100K")
    srv.add_user("acme", "ana", "secreto-ana-1")
    https_port, http_port = free_port(), free_port()
    (tmp_path / "resguardo.conf").write_text(
        nginx_site(urlparse(srv.url).netloc, https_port, http_port, cert, key),
        encoding="utf-8")
    with running_nginx(exe, tmp_path, https_port):
        s = requests.Session()
        s.auth = ("ana", "secreto-ana-1")
        s.verify = str(cert)
        s.trust_env = False
        yield srv, s, f"https://127.0.0.1:{https_port}", http_port


def test_webdav_through_the_sample_nginx_config(behind_nginx):
    srv, s, base, http_port = behind_nginx
    dav = f"{base}/dav/acme/"
    # Windows' first probe on "/" reaches the drive, the rest of "/" the portal.
    r = s.request("OPTIONS", base + "/")
    assert r.status_code == 200 and "DAV" in r.headers
    body = os.urandom(30 * 1024)
    assert s.put(dav + "libro.xlsx", data=body).status_code == 201
    r = s.request("PROPFIND", dav, headers={"Depth": "1"})
    assert r.status_code == 207 and "libro.xlsx" in r.text
    assert s.get(dav + "libro.xlsx").content == body
    # MOVE with the public https Destination: needs Host and X-Forwarded-Proto.
    r = s.request("MOVE", dav + "libro.xlsx", headers={"Destination": dav + "libro-2.xlsx"})
    assert r.status_code == 201, r.text
    r = s.request("COPY", dav + "libro-2.xlsx", headers={"Destination": dav + "copia.xlsx"})
    assert r.status_code == 201, r.text
    # Chunked uploads stream through (no buffering) and the quota answers 507.
    r = s.put(dav + "grande.bin", data=iter([b"z" * 1024] * 80))
    assert r.status_code == 507 and "Espacio insuficiente" in r.text
    assert srv.show("acme")["used_bytes"] == 2 * len(body)
    # Metrics are not reachable through the public address; plain HTTP redirects.
    assert s.get(base + "/metrics").status_code == 403
    r = requests.get(f"http://127.0.0.1:{http_port}/dav/acme/", allow_redirects=False,
                     timeout=10)
    assert r.status_code == 301 and r.headers["Location"].startswith("https://")


def test_oversized_upload_through_nginx_is_refused_before_the_body(behind_nginx):
    """With request buffering off the 507 comes from the headers, not after nginx
    has spooled the body to disk."""
    _srv, s, base, _ = behind_nginx
    u = urlparse(base)
    ctx = ssl.create_default_context(cafile=s.verify)
    auth = base64.b64encode(b"ana:secreto-ana-1").decode()
    started = time.monotonic()
    with socket.create_connection((u.hostname, u.port), timeout=15) as raw, \
            ctx.wrap_socket(raw, server_hostname=u.hostname) as tls:
        tls.sendall((f"PUT /dav/acme/enorme.bin HTTP/1.1\r\nHost: {u.netloc}\r\n"
                     f"Authorization: Basic {auth}\r\nContent-Length: {10 * 2**30}\r\n\r\n"
                     ).encode() + b"y" * 65536)
        head = tls.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 507"), head
    assert time.monotonic() - started < 10


def test_sample_caddyfile_is_valid(tmp_path):
    exe = shutil.which("caddy")
    if exe is None:
        pytest.skip("caddy is not installed (scripts/test.sh installs Debian's caddy)")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path)}
    p = subprocess.run([exe, "validate", "--adapter", "caddyfile",
                        "--config", str(ROOT / "config" / "Caddyfile")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert "Valid configuration" in p.stdout + p.stderr


# -- systemd ---------------------------------------------------------------------------

UNITS = ("resguardo.service", "resguardo-drive@.service", "resguardo-portal.service",
         "resguardo-drive.target", "resguardo-retention.service", "resguardo-retention.timer",
         "resguardo-lifecycle.service", "resguardo-lifecycle.timer")
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/resguardo",
             "PrivateTmp=yes", "User=resguardo", "EnvironmentFile=-/etc/resguardo/secrets.env",
             "ProtectHome=yes", "SystemCallFilter=@system-service", "UMask=0077")


@pytest.fixture
def installed_units(tmp_path):
    """systemd/ as it would be installed, with this checkout's resguardo as the
    command (systemd-analyze checks that ExecStart= is executable)."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (scripts/test.sh installs systemd)")
    resguardo = Path(sys.executable).with_name("resguardo")
    assert resguardo.exists()
    for name in UNITS:
        text = (ROOT / "systemd" / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace("/opt/resguardo/bin/resguardo",
                                                  str(resguardo)), encoding="utf-8")
    # A template is verified through an instance.
    shutil.copy(tmp_path / "resguardo-drive@.service", tmp_path / "resguardo-drive@8081.service")
    return exe, tmp_path


def test_systemd_units_pass_systemd_analyze_verify_without_a_warning(installed_units):
    exe, folder = installed_units
    names = [n for n in UNITS if "@." not in n] + ["resguardo-drive@8081.service"]
    p = subprocess.run([exe, "verify", "--man=no", *names], cwd=folder,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


def test_systemd_services_are_hardened(installed_units):
    exe, folder = installed_units
    for name in ("resguardo.service", "resguardo-drive@8081.service", "resguardo-portal.service",
                 "resguardo-retention.service", "resguardo-lifecycle.service"):
        text = (folder / name).read_text(encoding="utf-8")
        for line in HARDENING:
            assert f"\n{line}\n" in text, (name, line)
        assert "Restart=on-failure" in text or "Type=oneshot" in text, name
        p = subprocess.run([exe, "security", "--offline=true", name], cwd=folder,
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", p.stdout)
        assert m, p.stdout[-500:] + p.stderr
        assert float(m.group(1)) <= 2.0, (name, m.group(1))


def test_timers_run_the_commands_that_exist():
    """Each timer starts a service whose command the CLI really has."""
    for unit, words in (("resguardo-retention", ["retention", "sweep"]),
                        ("resguardo-lifecycle", ["lifecycle", "run"])):
        assert (ROOT / "systemd" / f"{unit}.timer").exists()
        text = (ROOT / "systemd" / f"{unit}.service").read_text(encoding="utf-8")
        assert f"ExecStart=/opt/resguardo/bin/resguardo {' '.join(words)}\n" in text
        p = subprocess.run([sys.executable, "-m", "resguardo", *words, "--help"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert p.returncode == 0, p.stderr


def test_drive_and_portal_run_as_separate_processes(make_server):
    """What resguardo-drive@.service and resguardo-portal.service start: one
    process answers only the drive, the other only the portal."""
    drive = make_server()
    drive.create_space("acme", "4G")
    drive.add_user("acme", "ana", "secreto-ana-1")
    drive.serve_args = ["--only", "drive"]
    portal = make_server(share_with=drive)
    portal.serve_args = ["--only", "portal", "--port", str(free_port())]
    drive.start()
    portal.start()
    assert portal.url.endswith(portal.serve_args[-1])
    auth = ("ana", "secreto-ana-1")
    assert requests.request("PROPFIND", drive.dav("acme", ""), auth=auth,
                            headers={"Depth": "0"}).status_code == 207
    assert requests.request("PROPFIND", portal.dav("acme", ""), auth=auth,
                            headers={"Depth": "0"}).status_code == 404
    assert requests.get(drive.url + "/").status_code == 404
    r = requests.get(portal.url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]


# -- the session cookie behind a TLS proxy ---------------------------------------------------

def _session_cookie(set_cookie: str) -> str:
    return next(c for c in set_cookie.split(", resguardo") if "sesion=" in c)


def test_behind_a_trusted_tls_proxy_the_session_cookie_is_secure(make_server):
    """Without public_url the portal learns it is on HTTPS only from the trusted
    proxy's X-Forwarded-Proto: the session cookie must then be Secure, or a
    browser would send it over plain HTTP too. Plain HTTP (the demo) keeps a
    cookie it can use."""
    srv = make_server('[server]\ntrusted_proxies = "127.0.0.1"\n').start()
    r = requests.get(srv.url + "/cuenta/entrar", headers={"X-Forwarded-Proto": "https"},
                     timeout=30)
    cookie = _session_cookie(r.headers["Set-Cookie"])
    assert "Secure" in cookie and "HttpOnly" in cookie, cookie
    r = requests.get(srv.url + "/cuenta/entrar", timeout=30)
    assert "Secure" not in _session_cookie(r.headers["Set-Cookie"])


def test_the_session_cookie_through_nginx_is_secure(behind_nginx):
    _srv, s, base, _ = behind_nginx
    r = s.get(base + "/cuenta/entrar")
    assert r.status_code == 200
    cookie = _session_cookie(r.headers["Set-Cookie"])
    assert "Secure" in cookie, cookie
