"""A small keep-alive HTTP client (http.client): less overhead than requests, so
the servers, not the client, are what the benchmark measures. Every call checks
the status it expects; a wrong status raises BenchError with the body."""

from __future__ import annotations

import base64
import http.client
from collections.abc import Iterable
from urllib.parse import quote, urlsplit


class BenchError(AssertionError):
    """A server answered something other than what the workload expects."""


class Client:
    """One connection (re-opened if the server closes it) to one server."""

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 120) -> None:
        u = urlsplit(base_url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.prefix = u.path.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = f"Basic {token}"
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def url(self, path: str) -> str:
        return self.prefix + "/" + quote(path.lstrip("/"), safe="/")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, expect: Iterable[int] = (200,),
                *, raw_path: bool = False) -> tuple[int, dict[str, str], bytes]:
        """Send one request; returns (status, headers with lower-case names, body)."""
        h = {"Authorization": self.auth}
        if headers:
            h.update(headers)
        if body is None and method in ("PUT", "POST", "PROPPATCH", "LOCK"):
            h.setdefault("Content-Length", "0")
        target = path if raw_path else self.url(path)
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: retry once
                # on a new one (bodies here are bytes, so they can be re-sent).
                self.close()
                if attempt or not isinstance(body, (bytes, type(None))):
                    raise
        if resp.will_close:
            self.close()
        if resp.status not in tuple(expect):
            raise BenchError(f"{method} {target}: {resp.status} {resp.reason} "
                             f"(expected {tuple(expect)}): {data[:300]!r}")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
