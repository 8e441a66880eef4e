"""Operations around every request: ``/healthz``, ``/metrics``, request metrics
and the access log (one JSON object per line with ``[log] json = true``)."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import text

from davserver.request import request_context
from spaces.core.db import Database
from spaces.core.metrics import SpaceUsageCollector
from spaces.core.settings import Settings
from spaces.files import diskspace
from spaces.files.store import store_for

access_log = logging.getLogger("resguardo.access")
log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Methods with a label of their own; anything else is counted as "OTHER".
KNOWN_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PROPFIND",
                           "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK"})

REQUESTS = Counter("resguardo_http_requests_total", "HTTP requests answered.",
                   ["method", "status"])
BYTES_IN = Counter("resguardo_http_received_bytes_total", "Request body bytes received.",
                   ["side"])
BYTES_OUT = Counter("resguardo_http_sent_bytes_total", "Response body bytes sent.", ["side"])
DURATION = Histogram("resguardo_http_request_duration_seconds",
                     "Time from the request to the last byte of the response.", ["method"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                              60, 300))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and, for the
    access log, space, user, method, path, status, bytes and duration."""

    FIELDS = ("space", "user", "method", "path", "status", "bytes_in", "bytes_out",
              "duration_ms", "remote")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for f in self.FIELDS:
            if hasattr(record, f):
                out[f] = getattr(record, f)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(settings: Settings, stream: Any) -> None:
    """Root logging for a command: text lines, or JSON lines with ``[log] json``."""
    handler = logging.StreamHandler(stream)
    if settings.log.json:
        handler.setFormatter(JsonFormatter())
        JsonFormatter.converter = time.gmtime
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))
    access_log.disabled = not settings.log.access
    # Alembic announces each of its plugins at INFO on every start; the
    # migrations it runs (alembic.runtime.migration) are still logged.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _json_response(start_response: StartResponse, status: str,
                   body: dict[str, Any]) -> list[bytes]:
    data = (json.dumps(body, ensure_ascii=False) + "\n").encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def health(settings: Settings, db: Database) -> tuple[bool, dict[str, Any]]:
    """Whether this process can serve: the database answers a query and the data
    folder is readable and writable (a probe file is written and removed).

    Also reports the disk, without failing on it (a full disk still serves
    reads and deletes): ``disk`` is "ok", "low" (below ``[storage]
    warn_free``) or "full" (below ``min_free``: writes get 507), with
    ``disk_free_bytes``."""
    checks: dict[str, Any] = {}
    try:
        with db.engine.connect() as c:
            c.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        log.error("healthz: database: %s", exc.__class__.__name__)
        checks["database"] = f"error: {exc.__class__.__name__}"
    probe = settings.data_path / "spaces" / f".healthz-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    store = store_for(settings)  # the probe takes the uploads' way to the disk
    try:
        store.mkdir(probe.parent, parents=True, exist_ok=True)
        with store.create_exclusive(probe) as fh:
            store.write_all(fh, b"ok")
        with store.open_read(probe) as fh:
            ok = fh.read() == b"ok"
        store.unlink(probe)
        checks["storage"] = "ok" if ok else "error: read back differs"
    except OSError as exc:
        log.error("healthz: storage: %s", exc)
        checks["storage"] = f"error: {exc.strerror or exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    try:
        disk = diskspace.state(settings)
        diskspace.warn_if_low(disk)
        checks["disk"], checks["disk_free_bytes"] = disk.level, disk.free_bytes
    except OSError as exc:
        checks["disk"] = f"error: {exc.strerror or exc.__class__.__name__}"
    return ok, checks


class _CountingInput:
    """``wsgi.input`` that counts the bytes the application reads."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.count = 0

    def read(self, *args: Any) -> bytes:
        data = self._raw.read(*args)
        self.count += len(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data = self._raw.readline(*args)
        self.count += len(data)
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines = self._raw.readlines(*args)
        self.count += sum(len(x) for x in lines)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._raw:
            self.count += len(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _allowed(addr: str, networks: list[Any]) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class DiskCollector:
    """``resguardo_disk_free_bytes`` and ``resguardo_disk_min_free_bytes`` of the
    spaces' filesystem, read on each scrape (alert well before free < min_free)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            disk = diskspace.state(self.settings)
        except OSError:
            return
        diskspace.warn_if_low(disk)
        yield GaugeMetricFamily("resguardo_disk_free_bytes",
                                "Free bytes on the filesystem of the spaces' files.",
                                value=disk.free_bytes)
        yield GaugeMetricFamily("resguardo_disk_min_free_bytes",
                                "[storage] min_free: below it writes are refused (507).",
                                value=disk.min_free)


def observe(settings: Settings, db: Database, app: WSGIApp) -> WSGIApp:
    """Wrap the server's WSGI app: answer ``GET /healthz`` (200 or 503, JSON) and
    ``GET /metrics`` (Prometheus text, only to ``[metrics] allow`` addresses;
    403 for others), and for every other request count method, status, bytes and
    duration and write one access log line."""
    m = settings.metrics
    allow = m.allowed_networks()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpaceUsageCollector(db, m.top_spaces))
    registry.register(DiskCollector(settings))

    def metrics(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if not m.enabled or not _allowed(environ.get("REMOTE_ADDR", ""), allow):
            body = "Métricas no disponibles desde esta dirección.\n".encode()
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        data = generate_latest(REGISTRY) + generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(data))),
                                  ("Cache-Control", "no-store")])
        return [data]

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in ("GET", "HEAD"):
            ok, checks = health(settings, db)
            return _json_response(start_response, "200 OK" if ok else "503 Service Unavailable",
                                  {"status": "ok" if ok else "error", **checks})
        if path == "/metrics" and method in ("GET", "HEAD"):
            return metrics(environ, start_response)
        started = time.monotonic()
        counting = _CountingInput(environ["wsgi.input"]) if "wsgi.input" in environ else None
        if counting is not None:
            environ["wsgi.input"] = counting
        status_box: list[str] = ["500"]

        def recording_start_response(status: str, headers: list[tuple[str, str]],
                                     exc_info: Any = None) -> Any:
            status_box[0] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info) if exc_info else \
                start_response(status, headers)

        return _Observed(app(environ, recording_start_response), environ, status_box,
                         counting, started, method, path)

    return wrapped


class _Observed:
    """The response iterable, counted; metrics and the log line at ``close()``."""

    def __init__(self, inner: Iterable[bytes], environ: dict[str, Any], status: list[str],
                 counting: _CountingInput | None, started: float, method: str,
                 path: str) -> None:
        self._inner = inner
        self._environ = environ
        self._status = status
        self._counting = counting
        self._started = started
        self._method = method
        self._path = path
        self._sent = 0
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._record()

    def _record(self) -> None:
        env = self._environ
        duration = time.monotonic() - self._started
        method = self._method if self._method in KNOWN_METHODS else "OTHER"
        side = "drive" if self._path == "/dav" or self._path.startswith("/dav/") or (
            self._path == "/" and self._method in ("OPTIONS", "PROPFIND")) else "portal"
        received = self._counting.count if self._counting is not None else 0
        REQUESTS.labels(method, self._status[0]).inc()
        BYTES_IN.labels(side).inc(received)
        BYTES_OUT.labels(side).inc(self._sent)
        DURATION.labels(method).observe(duration)
        ctx = request_context(env)
        try:  # WSGI carries the path's UTF-8 bytes as latin-1 text
            path = self._path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            path = self._path
        fields = {
            "space": ctx.space.name if ctx else None,
            "user": ctx.username if ctx else env.get("wsgidav.auth.user_name") or None,
            "method": self._method, "path": path,
            "status": int(self._status[0]) if self._status[0].isdigit() else 0,
            "bytes_in": received, "bytes_out": self._sent,
            "duration_ms": round(duration * 1000, 1),
            "remote": env.get("REMOTE_ADDR"),
        }
        access_log.info("%s %s %s %s space=%s user=%s in=%d out=%d %.1fms", fields["remote"],
                        self._method, path, fields["status"], fields["space"] or "-",
                        fields["user"] or "-", received, self._sent, fields["duration_ms"],
                        extra=fields)
