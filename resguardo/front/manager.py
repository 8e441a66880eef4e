"""The front's selector thread (:class:`FrontManager`, in place of cheroot's
connection manager): it accepts connections, completes their TLS handshake,
reads each request head (and a small body) within the limits, and only then
hands the connection to a worker; kept-alive connections come back to it
between requests, refused ones linger here until their answer is read. See
:mod:`resguardo.front` for what it guards against."""

from __future__ import annotations

import collections
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cheroot.connections import ConnectionManager
from cheroot.makefile import MakeFile

from resguardo.front.client import ClientSocket
from resguardo.front.limits import FrontLimits, refusal

log = logging.getLogger(__name__)

#: How long a refused client may keep sending while its answer reaches it: the
#: connection is read and discarded for this long after the answer, then closed
#: (closing with unread data would reset it, and the client would lose the answer).
LINGER_SECONDS = 2.0
#: Bytes read from a waiting connection at a time.
READ_BLOCK = 65536

_HANDSHAKE, _HEAD, _BODY, _DISCARD, _LINGER = "handshake", "head", "body", "discard", "linger"


@dataclass(eq=False)
class _Waiting:
    """A connection the front holds: being accepted, between requests, or
    receiving a request head (and small body)."""

    sock: Any  # socket.socket or ssl.SSLSocket
    addr: Any
    phase: str
    deadline: float
    #: When it last moved (the one that waited longest goes first at the limit).
    since: float
    buf: bytearray = field(default_factory=bytearray)
    #: The kept-alive connection this is the next request of (None: new).
    conn: Any = None
    ssl_env: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    scanned: int = 0
    need: int = 0
    discard: int = 0
    events: int = selectors.EVENT_READ


class FrontManager(ConnectionManager):
    """cheroot's connection manager, replaced: see :mod:`resguardo.front`."""

    def __init__(self, server: Any, limits: FrontLimits) -> None:  # noqa: D107
        self.server = server
        self.limits = limits
        self._selector = selectors.DefaultSelector()
        self._waiting: dict[int, _Waiting] = {}
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._returned: collections.deque[Any] = collections.deque()
        self._lingering: collections.deque[Any] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        server.socket.setblocking(False)
        self._selector.register(server.socket, selectors.EVENT_READ, "listen")
        self._stop_requested = False
        self._serving = False
        self._last_sweep = 0.0

    # -- cheroot's interface ----------------------------------------------------------
    def put(self, conn: Any) -> None:
        """A worker is done with a request and the connection stays open (any
        thread): it comes back to the front for its next request."""
        with self._busy_lock:
            conn.socket.dispatched = False
            self._busy -= 1
        self._returned.append(conn)
        self._wake()

    def linger(self, sock: Any) -> None:
        """A worker is done with a connection whose request body it did not
        read (any thread): see :meth:`ClientSocket.linger`."""
        self._lingering.append(sock)
        self._wake()

    def closed(self, client: ClientSocket) -> None:
        """A worker closed its connection (any thread)."""
        with self._busy_lock:
            if client.dispatched:
                client.dispatched = False
                self._busy -= 1

    def stop(self) -> None:
        self._stop_requested = True
        self._wake()
        while self._serving:
            time.sleep(0.01)

    def run(self, expiration_interval: float) -> None:
        self._serving = True
        try:
            while not self._stop_requested:
                self._tick(min(expiration_interval, 0.5))
        finally:
            self._serving = False

    def close(self) -> None:
        for w in list(self._waiting.values()):
            self._close(w)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._selector.close()

    @property
    def _num_connections(self) -> int:
        return len(self._waiting) + self._busy

    @property
    def can_add_keepalive_connection(self) -> bool:
        return self._num_connections < self.limits.max_connections

    # -- the loop ------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # full (it is being woken anyway) or closed (stopping)
            pass

    def _tick(self, timeout: float) -> None:
        for key, _mask in self._selector.select(timeout):
            if key.data == "listen":
                self._accept()
            elif key.data == "wake":
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            else:
                self._ready(key.data)
        while self._returned:
            self._back(self._returned.popleft())
        while self._lingering:
            self._start_linger(self._lingering.popleft())
        now = time.monotonic()
        if now - self._last_sweep >= 0.25:
            self._last_sweep = now
            for w in [w for w in self._waiting.values() if w.deadline <= now]:
                self._expire(w)

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self.server.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            if self._num_connections >= self.limits.max_connections and not self._make_room():
                log.warning("connection refused (limit of %d, all busy): %s",
                            self.limits.max_connections, addr)
                try:
                    sock.setblocking(False)
                    sock.send(refusal(503, "Retry-After: 5\r\n"))
                except OSError:
                    pass
                sock.close()
                continue
            sock.setblocking(False)
            now = time.monotonic()
            w = _Waiting(sock, addr, _HEAD, now + self.limits.head_timeout, now)
            w.started = now
            adapter = self.server.ssl_adapter
            if adapter is not None:
                try:
                    w.sock = adapter.context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False)
                except (OSError, ValueError) as exc:
                    log.info("TLS refused for %s: %s", addr, exc)
                    sock.close()
                    continue
                w.phase = _HANDSHAKE
            self._waiting[w.sock.fileno()] = w
            self._selector.register(w.sock, selectors.EVENT_READ, w)
            self._ready(w)

    def _make_room(self) -> bool:
        """Close the waiting connection that moved least recently (idle ones
        between requests first); False if every connection is with a worker."""
        if not self._waiting:
            return False
        idle = [w for w in self._waiting.values() if w.phase == _HEAD and not w.buf]
        victim = min(idle or self._waiting.values(), key=lambda w: w.since)
        log.info("connection limit (%d): closing the longest-waiting one from %s",
                 self.limits.max_connections, victim.addr)
        self._close(victim)
        return True

    def _ready(self, w: _Waiting) -> None:
        if w.phase == _HANDSHAKE and not self._handshake(w):
            return
        while w.sock.fileno() in self._waiting and self._waiting[w.sock.fileno()] is w:
            try:
                chunk = w.sock.recv(READ_BLOCK)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return
            except OSError:
                self._close(w)
                return
            if not chunk:
                self._close(w)
                return
            w.since = time.monotonic()
            if w.phase == _LINGER:
                continue
            w.buf += chunk
            self._advance(w)

    def _handshake(self, w: _Waiting) -> bool:
        try:
            w.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(w, selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:
            self._want(w, selectors.EVENT_WRITE)
            return False
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake failed for %s: %s", w.addr, exc)
            self._close(w)
            return False
        self._want(w, selectors.EVENT_READ)
        w.ssl_env = self.server.ssl_adapter.get_environ(w.sock)
        w.phase = _HEAD
        return True

    def _want(self, w: _Waiting, events: int) -> None:
        if w.events != events:
            self._selector.modify(w.sock, events, w)
            w.events = events

    # -- a request arriving ---------------------------------------------------------------
    def _advance(self, w: _Waiting) -> None:
        lim = self.limits
        if w.phase == _DISCARD:
            n = min(w.discard, len(w.buf))
            del w.buf[:n]
            w.discard -= n
            if w.discard:
                return
            w.phase = _HEAD
        if w.phase == _HEAD:
            if not w.buf:
                return
            now = time.monotonic()
            if w.started is None:  # the first byte of a kept-alive connection's next request
                w.started = now
                w.deadline = now + lim.head_timeout
            end = w.buf.find(b"\r\n\r\n", max(w.scanned - 3, 0))
            if end < 0:
                if w.buf.find(b"\n\n", max(w.scanned - 1, 0)) >= 0:
                    self._refuse(w, 400)  # bare line feeds: HTTP needs CRLF
                    return
                w.scanned = len(w.buf)
                start = 2 if w.buf.startswith(b"\r\n") else 0
                if w.buf.find(b"\r\n", start, start + lim.max_request_line + 2) < 0 and (
                        len(w.buf) - start > lim.max_request_line):
                    self._refuse(w, 414)
                elif len(w.buf) > lim.max_header_bytes:
                    self._refuse(w, 431)
                return
            head_len = end + 4
            if head_len > lim.max_header_bytes + 4:
                self._refuse(w, 431)
                return
            head = self._check_head(w, bytes(w.buf[:head_len]))
            if head is None:
                return
            if len(head) != head_len:  # "Expect: 100-continue" answered here and removed
                w.buf[:head_len] = head
                head_len = len(head)
            length = _content_length(head)
            if 0 < length <= lim.buffered_body:
                w.phase = _BODY
                w.need = head_len + length
                w.deadline = w.started + lim.head_timeout + length / lim.min_rate
            else:
                self._dispatch(w)
                return
        if w.phase == _BODY and len(w.buf) >= w.need:
            self._dispatch(w)

    def _check_head(self, w: _Waiting, head: bytes) -> bytes | None:
        """The head to hand on, or None after refusing it: sizes and counts,
        one Content-Length, and ``Expect: 100-continue`` answered here (and
        dropped) for a body the front will read itself."""
        lim = self.limits
        lines = head.split(b"\r\n")
        if not lines[0]:  # one leading empty line is allowed (RFC 9112 §2.2)
            lines = lines[1:]
        if len(lines[0]) > lim.max_request_line:
            self._refuse(w, 414)
            return None
        fields = [ln for ln in lines[1:] if ln]
        if len(fields) > lim.max_headers:
            self._refuse(w, 431)
            return None
        lengths = set()
        chunked = expect = False
        for ln in fields:
            name, _, value = ln.partition(b":")
            if name != name.rstrip() and not name[:1].isspace():
                self._refuse(w, 400)  # "Content-Length : 5": never guess (RFC 9112 §5.1)
                return None
            key = name.strip().lower()
            if key == b"content-length":
                lengths.add(value.strip())
            elif key == b"transfer-encoding":
                chunked = True
            elif key == b"expect" and value.strip().lower() == b"100-continue":
                expect = True
        if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()) or (
                lengths and chunked):
            self._refuse(w, 400)  # ambiguous framing: never guess (request smuggling)
            return None
        length = int(next(iter(lengths))) if lengths else 0
        if expect and 0 < length <= lim.buffered_body and not chunked:
            if not self._send(w, b"HTTP/1.1 100 Continue\r\n\r\n"):
                self._close(w)
                return None
            kept = [ln for ln in head.split(b"\r\n")
                    if not ln.lower().replace(b" ", b"").startswith(b"expect:100-continue")]
            head = b"\r\n".join(kept)
        return head

    def _dispatch(self, w: _Waiting) -> None:
        """Hand the connection, its head and whatever else arrived, to a worker."""
        del self._waiting[w.sock.fileno()]
        self._selector.unregister(w.sock)
        w.sock.setblocking(True)
        if w.conn is None:
            client = ClientSocket(w.sock, self.limits, self)
            conn = self.server.ConnectionClass(self.server, client, MakeFile)
            conn.remote_addr, conn.remote_port = w.addr[0], w.addr[1]
            conn.ssl_env = w.ssl_env
        else:
            conn = w.conn
            client = conn.socket
            conn.rfile = MakeFile(client, "rb", conn.rbufsize)
        client.feed(bytes(w.buf))
        client.begin_request()
        with self._busy_lock:
            client.dispatched = True
            self._busy += 1
        self.server.process_conn(conn)

    def _back(self, conn: Any) -> None:
        """A kept-alive connection returned by its worker: what the worker read
        ahead (a pipelined request) is put back in front of the network, and a
        body the application refused without reading is read past here."""
        client: ClientSocket = conn.socket
        rfile = conn.rfile
        ahead = bytes(rfile._read_buf[rfile._read_pos:])  # what cheroot's has_data() looks at
        left = ahead + client.take_prefix()
        discard = getattr(conn, "resguardo_discard", 0)
        conn.resguardo_discard = 0
        now = time.monotonic()
        sock = client.raw
        try:
            sock.setblocking(False)
        except OSError:
            conn.close()
            return
        w = _Waiting(sock, (conn.remote_addr, conn.remote_port),
                     _DISCARD if discard else _HEAD, now + self.limits.idle_timeout, now,
                     buf=bytearray(left), conn=conn, discard=discard)
        if discard:
            w.started = now
            w.deadline = now + self.limits.head_timeout + discard / self.limits.min_rate
        self._waiting[sock.fileno()] = w
        self._selector.register(sock, selectors.EVENT_READ, w)
        self._advance(w)
        if self._waiting.get(sock.fileno()) is w and isinstance(sock, ssl.SSLSocket) \
                and sock.pending():
            self._ready(w)  # TLS may hold decrypted bytes the selector cannot see

    # -- ending ---------------------------------------------------------------------------
    def _start_linger(self, sock: Any) -> None:
        now = time.monotonic()
        try:
            sock.setblocking(False)
            if not isinstance(sock, ssl.SSLSocket):  # TLS: the answer is its last record
                sock.shutdown(socket.SHUT_WR)
            addr = sock.getpeername()
        except OSError:
            sock.close()
            return
        w = _Waiting(sock, addr, _LINGER, now + LINGER_SECONDS, now)
        self._waiting[sock.fileno()] = w
        self._selector.register(sock, selectors.EVENT_READ, w)
        self._ready(w)

    def _expire(self, w: _Waiting) -> None:
        if w.phase == _LINGER or not w.started or w.phase == _HANDSHAKE:
            self._close(w)
        elif w.buf or w.phase in (_BODY, _DISCARD):
            log.info("request too slow, closed: %s (%s, %d bytes)", w.addr, w.phase,
                     len(w.buf))
            self._refuse(w, 408)
        else:
            self._close(w)

    def _refuse(self, w: _Waiting, status: int) -> None:
        """Answer ``status`` and close, reading (and dropping) what the client
        still sends for a moment so that it gets the answer."""
        if status != 408:
            log.info("request refused before a worker: %d from %s (%d bytes received)",
                     status, w.addr, len(w.buf))
        self._send(w, refusal(status))
        if not isinstance(w.sock, ssl.SSLSocket):  # TLS: the answer is its last record
            try:
                w.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        w.phase = _LINGER
        w.buf = bytearray()
        w.deadline = time.monotonic() + LINGER_SECONDS
        self._want(w, selectors.EVENT_READ)

    def _send(self, w: _Waiting, data: bytes) -> bool:
        """Best effort on a non-blocking socket: a few small writes at most."""
        view = memoryview(data)
        for _ in range(8):
            try:
                n = w.sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                time.sleep(0.001)
                continue
            except OSError:
                return False
            view = view[n:]
            if not view:
                return True
        return False

    def _close(self, w: _Waiting) -> None:
        fd = w.sock.fileno()
        if fd >= 0 and self._waiting.get(fd) is w:
            del self._waiting[fd]
            try:
                self._selector.unregister(w.sock)
            except (KeyError, ValueError):
                pass
        try:
            w.sock.close()
        except OSError:
            pass


def _content_length(head: bytes) -> int:
    for ln in head.split(b"\r\n")[1:]:
        name, _, value = ln.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0
