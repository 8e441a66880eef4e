"""A warm Python that starts Resguardo servers for the tests by fork().

``python -m resguardo serve`` spends most of its start-up importing (Flask,
WsgiDAV, SQLAlchemy, Alembic, the portal): about 0.7 s of CPU, paid again by
every test that starts a server. This process pays it once per test process:
it imports what ``resguardo serve`` imports, then waits on a Unix socket. A
request carries the command line, the environment, the working directory and
three file descriptors (stdin, stdout, stderr, passed with SCM_RIGHTS); the
process forks, and the child becomes ``resguardo ARGV`` exactly as
``resguardo/__main__.py`` would run it, with its own pid, signals and exit
code. The tests see it through :class:`conftest.ForkedProcess`, which behaves
like ``subprocess.Popen``.

Protocol, one JSON object per connection: ``{"argv", "env", "cwd"}`` with the
three descriptors answers ``{"pid"}``; ``{"wait": pid}`` answers
``{"returncode"}`` once that child has exited (children are reaped only when
asked, so a pid is never reused while a test still holds it).

Not for production: only the tests start it, and only on 127.0.0.1 traffic.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def _child(request: dict[str, object], fds: list[int]) -> None:
    """Become ``resguardo ARGV`` in the forked child; never returns."""
    code: int = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update(dict(request["env"]))  # type: ignore[call-overload]
        # What a new interpreter would have drawn for itself: process-wide random
        # secrets must not be shared between the servers of one test.
        import spaces.core.settings

        spaces.core.settings._PROCESS_SECRET = os.urandom(32)
        spaces.core.settings._PROCESS_WEBHOOK_SECRET = os.urandom(32)
        from resguardo.cli import main

        try:
            code = main(list(request["argv"]))  # type: ignore[call-overload]
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:  # noqa: BLE001 - printed like the interpreter would
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str) -> None:
    # As ``python -m resguardo`` run from the checkout: its packages come first.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import davserver.app  # noqa: F401 - imported once, before any fork
    import portal  # noqa: F401
    import resguardo.cli  # noqa: F401
    import resguardo.server  # noqa: F401

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
            request = json.loads(msg)
            if "wait" in request:
                _pid, status = os.waitpid(int(request["wait"]), 0)
                conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)})
                             .encode())
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                _child(request, fds)
            for fd in fds:
                os.close(fd)
            conn.sendall(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    serve(sys.argv[1])
