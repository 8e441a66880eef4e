"""Plain WsgiDAV as a baseline: filesystem provider, Basic auth through its
simple domain controller, every other setting at WsgiDAV's default (8 KiB
blocks, digest offered, in-memory locks, no property manager), served by
cheroot with the same thread count as Resguardo.

Usage: python -m bench.plain_wsgidav ROOT USER PASSWORD THREADS
Prints ``listening on PORT`` once bound to 127.0.0.1 (a free port).
"""

from __future__ import annotations

import sys

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp


def main() -> None:
    root, user, password, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    app = WsgiDAVApp({
        "provider_mapping": {"/": root},
        "simple_dc": {"user_mapping": {"*": {user: {"password": password}}}},
    })
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=threads)
    server.prepare()
    print(f"listening on {server.bind_addr[1]}", flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
