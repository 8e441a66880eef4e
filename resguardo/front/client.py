"""The socket a worker thread reads and writes once the front hands it a
connection (:class:`ClientSocket`): the bytes the front already received first,
then the network, under a budget of waiting time."""

from __future__ import annotations

import socket
import time
from typing import Any, Protocol

from resguardo.front.limits import FrontLimits


class Front(Protocol):
    """What a :class:`ClientSocket` tells the front that holds its connection
    (:class:`resguardo.front.manager.FrontManager`)."""

    def closed(self, client: ClientSocket) -> None: ...

    def linger(self, sock: Any) -> None: ...


class ClientSocket:
    """The socket a worker thread reads and writes: first the bytes the front
    already received, then the network, under a budget of waiting time.

    The budget is a bucket of seconds, full (``head_timeout``) when a request
    starts: each wait for the client takes from it, each byte moved adds
    ``1 / min_rate`` s (never beyond full). A client that keeps moving at
    least ``min_rate`` bytes per second never runs out; one that trickles or
    stops reading is cut (``TimeoutError``) once the bucket is empty. Time the
    application spends computing is never counted. Everything else is the
    socket's own."""

    def __init__(self, sock: socket.socket, limits: FrontLimits, front: Front) -> None:
        self._sock = sock
        self._limits = limits
        self._front = front
        self._prefix = b""
        self._at = 0
        self._credit = limits.head_timeout
        #: Set while a worker holds the connection (see FrontManager).
        self.dispatched = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    @property
    def raw(self) -> socket.socket:
        return self._sock

    def feed(self, data: bytes) -> None:
        """Bytes to serve before reading the network again."""
        self._prefix = self.take_prefix() + data
        self._at = 0

    def take_prefix(self) -> bytes:
        left = self._prefix[self._at:]
        self._prefix, self._at = b"", 0
        return left

    def begin_request(self) -> None:
        self._credit = self._limits.head_timeout

    def _timed(self, op: Any, *args: Any) -> int:
        if self._credit <= 0:
            raise TimeoutError("timed out")
        self._sock.settimeout(min(self._limits.idle_timeout, self._credit))
        t = time.monotonic()
        try:
            n: int = op(*args)
        finally:
            self._credit -= time.monotonic() - t
        self._credit = min(self._credit + n / self._limits.min_rate, self._limits.head_timeout)
        return n

    def recv_into(self, buffer: Any, *args: Any) -> int:
        if self._at < len(self._prefix):
            view = memoryview(buffer)
            want = args[0] if args and args[0] else len(view)
            chunk = self._prefix[self._at:self._at + want]
            view[:len(chunk)] = chunk
            self._at += len(chunk)
            if self._at >= len(self._prefix):
                self._prefix, self._at = b"", 0
            return len(chunk)
        return self._timed(self._sock.recv_into, buffer, *args)

    def recv(self, bufsize: int, *args: Any) -> bytes:
        buf = bytearray(bufsize)
        n = self.recv_into(buf, bufsize)
        return bytes(buf[:n])

    def send(self, data: Any, *args: Any) -> int:
        return self._timed(self._sock.send, data, *args)

    def sendall(self, data: Any, *args: Any) -> None:
        view = memoryview(data)
        while view:
            n = self.send(view)
            view = view[n:]

    def close(self) -> None:
        self._front.closed(self)
        self._sock.close()

    def linger(self) -> None:
        """Close after the answer already sent, but read (and drop) what the
        client still sends for a moment first: a refused upload's sender
        (nginx streaming the body) then reads the answer instead of a reset."""
        self._front.closed(self)
        self._front.linger(self._sock)

