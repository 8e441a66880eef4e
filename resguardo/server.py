"""The all-in-one server: drive under ``/dav/`` (and DAV probes on ``/``),
portal everywhere else, on one cheroot server."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.server import HTTPConnection, HTTPRequest

from davserver.app import make_app
from davserver.lockstorage import LockStoreNotDurable, check_lock_persistence
from portal import create_app
from resguardo.api.app import make_api
from resguardo.front.limits import FrontLimits
from resguardo.front.manager import FrontManager
from resguardo.observe import observe
from spaces.access import service
from spaces.access.service import add_member, create_space, list_spaces
from spaces.core.db import Database, open_database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings
from spaces.files import diskspace
from spaces.files.store import store_for
from spaces.jobs import recovery

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def _elsewhere(start_response: StartResponse) -> list[bytes]:
    body = "Este proceso no sirve esta dirección.\n".encode()
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def behind_proxy(environ: dict[str, Any], proxies: list[Any]) -> None:
    """When the peer is a trusted proxy, take the client's address from
    ``X-Forwarded-For`` (the right-most entry that is not itself a trusted
    proxy) and the scheme from ``X-Forwarded-Proto``. Anyone else's forwarding
    headers are ignored: a client cannot choose the address it is throttled by."""
    import ipaddress

    def trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr.strip())
        except ValueError:
            return False
        return any(ip in net for net in proxies)

    if not trusted(environ.get("REMOTE_ADDR", "")):
        return
    hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            try:
                environ["REMOTE_ADDR"] = str(ipaddress.ip_address(hop))
            except ValueError:
                pass
            break
    proto = environ.get("HTTP_X_FORWARDED_PROTO", "").strip().lower()
    if proto in ("http", "https"):
        environ["wsgi.url_scheme"] = proto


def make_dispatcher(settings: Settings, db: Database,
                    only: str | None = None) -> Callable[..., Iterable[bytes]]:
    """One WSGI app: ``/dav`` and ``/dav/...`` (plus OPTIONS/PROPFIND on ``/``) go
    to the drive, the rest to the portal. No redirects are added for ``/dav``.
    ``only="drive"`` or ``"portal"`` builds just that side; the other side's
    paths get 404 (the load balancer routes them to the other processes)."""
    dav = make_app(settings, db) if only != "portal" else None
    portal = create_app(settings, db) if only != "drive" else None
    api = make_api(settings, db)

    proxies = settings.server.proxy_networks()

    def dispatch(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if proxies:
            behind_proxy(environ, proxies)
        path = environ.get("PATH_INFO", "") or "/"
        if path == "/api" or path.startswith("/api/"):
            return api(environ, start_response)
        to_dav = (path == "/dav" or path.startswith("/dav/") or (
            path == "/" and environ.get("REQUEST_METHOD") in ("OPTIONS", "PROPFIND")))
        if to_dav and dav is not None:
            return dav(environ, start_response)
        if portal is not None and not (to_dav and path != "/"):
            return portal(environ, start_response)
        return _elsewhere(start_response)

    return dispatch


class BoundedDrainRequest(HTTPRequest):
    """cheroot's worker reads a refused request's unread body (into memory, in
    one call) to keep the connection alive. Instead: above ``max_drain`` bytes
    (or for a chunked body) the connection is closed, so a refused 10 GB upload
    costs nothing; below it, the front reads past the rest once the worker is
    done (:class:`resguardo.front.manager.FrontManager`), so a client that trickles the
    body of a refused request holds no worker."""

    max_drain = 1024 * 1024

    def send_headers(self) -> None:
        # The status is empty when the application failed before answering.
        code = self.status[:3]
        status = int(code) if code.isdigit() else 500
        remaining = getattr(self.rfile, "remaining", 0) or 0
        if remaining > self.max_drain or (self.chunked_read and status >= 400):
            self.close_connection = True
            # Unread body: close without a reset, so the sender reads this answer.
            self.conn.resguardo_linger = True
        elif remaining > 0 and not self.close_connection and not self.chunked_read:
            self.conn.resguardo_discard = remaining
            self.rfile.remaining = 0  # cheroot's drain then reads nothing
        super().send_headers()


class _Connection(HTTPConnection):
    RequestHandlerClass = BoundedDrainRequest
    resguardo_linger = False

    def close(self) -> None:
        """A connection closed with a request body still unread lingers in the
        front (:meth:`resguardo.front.client.ClientSocket.linger`): closing it at once
        would reset it, and a proxy streaming that body (nginx) would answer
        its client 502 instead of our 507."""
        linger = getattr(self.socket, "linger", None)
        if self.resguardo_linger and linger is not None:
            self.resguardo_linger = False
            self.rfile.close()
            linger()
            return
        super().close()


class FrontServer(wsgi.Server):
    """cheroot's WSGI server with :class:`resguardo.front.manager.FrontManager` in place
    of its connection manager: no worker thread waits for a request head."""

    front_limits = FrontLimits()
    _connections: Any

    def prepare(self) -> None:
        super().prepare()
        self._connections._selector.close()
        self._connections = FrontManager(self, self.front_limits)


def make_server(settings: Settings, app: Callable[..., Iterable[bytes]]) -> wsgi.Server:
    limits = FrontLimits.of(settings.server)
    server = FrontServer((settings.server.host, settings.server.port), app,
                         numthreads=settings.server.threads, server_name="Resguardo",
                         timeout=int(limits.idle_timeout), request_queue_size=128)
    server.front_limits = limits
    server.ConnectionClass = _Connection
    BoundedDrainRequest.max_drain = settings.server.max_drained_body
    if settings.server.tls_cert:
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        server.ssl_adapter = BuiltinSSLAdapter(settings.server.tls_cert,
                                               settings.server.tls_key)
    return server


def ensure_demo_space(settings: Settings, db: Database) -> str | None:
    """On the very first start (no space yet), create the demo space and user.
    Returns the one-time message with the drive URL, user and password."""
    d = settings.demo
    if not d.create or list_spaces(db):
        return None
    password = secrets.token_urlsafe(12)
    create_space(settings, db, d.space, d.tier)
    add_member(db, d.space, d.user, password, "admin")
    creds = settings.data_path / "demo-credentials.txt"
    creds.write_text(f"usuario: {d.user}\ncontraseña: {password}\n", encoding="utf-8")
    creds.chmod(0o600)
    return (f"Espacio de demostración creado: {d.space} (plan {d.tier})\n"
            f"  usuario: {d.user}\n  contraseña: {password}\n"
            f"  (guardada también en {creds})")


#: glibc malloc arenas the server may use (see tune_malloc).
MALLOC_ARENAS = 2
#: Blocks at least this big get pages of their own, returned when freed (see tune_malloc).
MALLOC_MMAP_THRESHOLD = 4 * 2**20


def tune_malloc(arenas: int = MALLOC_ARENAS, mmap_threshold: int = MALLOC_MMAP_THRESHOLD
                ) -> bool:
    """Tell glibc's malloc to give memory back, before the worker threads start.

    - Arenas: glibc gives each thread that allocates concurrently an arena of
      its own and keeps what it once held. With 16 workers, a few large answers
      (a 10,000-entry listing) served by different threads left the drive at
      300 MB where two arenas keep it near 120 MB, at no measurable cost in speed.
    - Large blocks: by default glibc raises its mmap threshold to the size of
      the last large block freed (up to 32 MiB), so the 19 MiB each argon2
      password check takes, or a multi-megabyte listing, then come from the
      arenas and stay resident. A fixed threshold keeps such blocks in pages of
      their own, returned to the kernel when freed. The 256 KiB transfer blocks
      stay below it.

    An operator's MALLOC_ARENA_MAX or MALLOC_MMAP_THRESHOLD_ wins. Returns True
    if anything was applied (False where the C library is not glibc)."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    applied = False
    if not os.environ.get("MALLOC_ARENA_MAX"):
        applied |= bool(mallopt(-8, arenas))  # M_ARENA_MAX, from glibc's malloc.h
    if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        applied |= bool(mallopt(-3, mmap_threshold))  # M_MMAP_THRESHOLD
    return applied


def start_janitor(settings: Settings, db: Database) -> threading.Event:
    """A thread that, every half lease (at most a minute), gives back the
    upload reservations no live upload holds (expired leases, from any node;
    this machine's dead processes') and keeps the disk ballast. Never stops
    on an error (the database may be away): it logs and tries again.
    Returns the event that stops it."""
    stop = threading.Event()
    every = max(1.0, min(60.0, settings.storage.lease_seconds / 2))

    def run() -> None:
        while not stop.wait(every):
            try:
                recovery.reclaim_leases(settings, db)
                diskspace.keep_ballast(settings)
            except Exception as exc:  # noqa: BLE001 - try again next round
                log.warning("janitor: %s: %s", exc.__class__.__name__,
                            str(exc).splitlines()[0][:200] if str(exc) else "")

    threading.Thread(target=run, name="resguardo-janitor", daemon=True).start()
    return stop


def serve(settings: Settings, only: str | None = None) -> int:
    """Run the server until interrupted: drive and portal, or ``only`` one of them."""
    tune_malloc()
    settings.data_path.mkdir(parents=True, exist_ok=True)
    db = open_database(settings)
    for drift in recovery.recover_after_crash(settings, db):
        print(f"Recuperación: espacio {drift.space} recontado "
              f"({drift.bytes:+d} bytes, {drift.files:+d} archivos)", flush=True)
    for name in service.restore_missing_limits(settings, db):
        print(f"Espacio {name}: recibe los límites de archivos y carpetas de su plan.",
              flush=True)
    if only != "portal":
        try:
            check_lock_persistence(settings)
        except LockStoreNotDurable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    store_for(settings).mkdir(settings.data_path / "spaces", exist_ok=True)
    diskspace.keep_ballast(settings)
    diskspace.warn_if_low(diskspace.state(settings), force=True)
    try:
        demo = ensure_demo_space(settings, db)
    except SpaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    server = make_server(settings, observe(settings, db, make_dispatcher(settings, db, only)))
    server.prepare()
    host, port = server.bind_addr[:2]
    scheme = "https" if settings.server.tls_cert else "http"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    base = settings.server.public_url.rstrip("/") or f"{scheme}://{shown}:{port}"
    janitor = start_janitor(settings, db)
    try:  # from the first word on: a SIGINT right after it is a clean stop too
        print(f"Resguardo escuchando en {scheme}://{shown}:{port}", flush=True)
        if demo:
            print(demo, flush=True)
        if settings.demo.create:
            print(f"Unidad de demostración: {base}/dav/{settings.demo.space}/", flush=True)
        print(f"Datos en {Path(settings.data_path)}", flush=True)
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        janitor.set()
        server.stop()
        db.dispose()
    return 0
