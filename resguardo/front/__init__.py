"""The server's front door: a connection waits here, not in a worker thread,
until its request head (and a small body) has arrived whole.

cheroot hands a connection to a worker thread as soon as its first byte is
readable, and the worker then reads the head line by line with no limit on its
size or on the time it takes (only on each single read); with TLS, it even
runs the handshake in its one accepting thread. Sixteen slow clients held the
sixteen workers, one silent TLS client blocked every new connection, and a
header line was read into memory however long it grew. This package replaces
cheroot's connection manager with one
(:class:`~resguardo.front.manager.FrontManager`) that, in its one selector
thread and never blocking:

- completes the TLS handshake;
- reads the request head, refusing a request line longer than
  ``max_request_line`` (414), a head larger than ``max_header_bytes`` or with
  more than ``max_headers`` fields (431), and closing a connection whose
  handshake and head take longer than ``head_timeout`` (408);
- reads a body of up to ``buffered_body`` bytes too (answering ``Expect:
  100-continue`` itself), so form posts and WebDAV XML bodies arrive whole;
- reads past, without a worker, what is left of a body the application
  refused without reading (cheroot's worker would wait for it);
- keeps at most ``max_connections`` connections, closing the one that waited
  longest when a new one arrives.

Only then does a worker get the connection. What the worker reads and writes
goes through :class:`~resguardo.front.client.ClientSocket`, which serves the
bytes already received first and cuts a client whose transfer stays below ``min_rate`` bytes per
second for ``head_timeout`` seconds (a slow upload, or a download nobody
reads). Memory per waiting connection stays below ``max_header_bytes +
buffered_body``.

The package: :mod:`resguardo.front.limits` (:class:`~resguardo.front.limits.FrontLimits`,
the plain refusals), :mod:`resguardo.front.client` (the socket a worker uses) and
:mod:`resguardo.front.manager` (the selector thread and the connections it holds).
"""
