"""Test harness: the real server on a free port, the real CLI, a real database.

Every drive test starts ``python -m resguardo serve`` in a subprocess with its
own data folder and database, bound to port 0, and talks HTTP to it. The CLI
(``Server.cli``) runs in this process through the same entry point as the
installed command, ``resguardo.cli.main(argv)``, with its standard streams and
exit code captured (as Flask's ``test_cli_runner`` does): a subprocess costs
0.7 s of imports per call, the call itself 0.02 s. A few tests still run the
installed ``resguardo`` command as a real process.

Databases: a test marked ``db`` (its outcome depends on what SQL stores or how
it orders concurrent changes: counters, paths, locks, rows) runs once on each
database of ``RESGUARDO_TEST_DBS`` (default "sqlite postgresql"), as
``test_x[sqlite]`` and ``test_x[postgresql]``; every other test runs once, on
the first. On PostgreSQL each server gets a database of its own on
``RESGUARDO_PG_ADMIN_URL`` (default the local server). Tests that need
PostgreSQL or Redis whatever the database (``pg_database``, ``redis_url``) run
once. ``RESGUARDO_TEST_DATABASE_URL`` (a PostgreSQL server URL) runs every test
on that server instead.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests

# A run started with SIGINT ignored (a background job of a shell without job
# control) hands that on to every process it starts: servers would never stop on
# SIGINT, each stop would wait 10 s and kill (no coverage written). The default
# handler back, so what the tests start inherits it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
_ALL_ON_PG = os.environ.get("RESGUARDO_TEST_DATABASE_URL", "")

GIB = 2**30

#: Where every PostgreSQL database of the tests is created.
PG_ADMIN_URL = _ALL_ON_PG or os.environ.get(
    "RESGUARDO_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("RESGUARDO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

#: The databases tests marked ``db`` run on; the others run on the first.
DATABASES: list[str] = (["postgresql"] if _ALL_ON_PG else
                        os.environ.get("RESGUARDO_TEST_DBS", "sqlite postgresql").split())
if not DATABASES or set(DATABASES) - {"sqlite", "postgresql"}:
    raise pytest.UsageError(f"RESGUARDO_TEST_DBS: 'sqlite' and/or 'postgresql', not {DATABASES}")
_current = {"database": DATABASES[0]}


def on_postgresql() -> bool:
    """Whether the running test's servers use PostgreSQL (see the ``database`` fixture)."""
    return _current["database"] == "postgresql"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A test that asks for ``pg_database`` is on PostgreSQL whatever it is marked: once.
    if (metafunc.definition.get_closest_marker("db") and len(DATABASES) > 1
            and "pg_database" not in metafunc.fixturenames):
        # Module scope: a module's shared server is made once per database.
        metafunc.parametrize("database", DATABASES, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The database of this test's servers: its parameter for a test marked
    ``db``, else the first of RESGUARDO_TEST_DBS."""
    _current["database"] = getattr(request, "param", DATABASES[0])
    yield _current["database"]
    _current["database"] = DATABASES[0]


def _pg_create_database(admin_url: str = "", template: str = "") -> tuple[str, str]:
    """Create a PostgreSQL database, empty or a copy of ``template``; returns (url, name)."""
    import sqlalchemy as sa

    admin_url = admin_url or PG_ADMIN_URL
    name = f"rg_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'
                          + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}", name


#: Databases migrated to the latest schema, one of each kind per test process.
_templates: dict[str, str] = {}


def _migrated_template(kind: str) -> str:
    """A database at the latest schema that new test databases are copies of: the
    path of a SQLite file, or the name of a PostgreSQL template database. Migrating
    from nothing costs a server about as much as its imports; the migrations
    themselves are tested from an empty database in test_foundation."""
    if kind not in _templates:
        from spaces.core.db import migrate

        if kind == "sqlite":
            folder = tempfile.mkdtemp(prefix="rg-template-")
            atexit.register(shutil.rmtree, folder, True)
            path = Path(folder) / "template.db"
            migrate(f"sqlite:///{path}")
            con = sqlite3.connect(path)  # one self-contained file to copy: no WAL beside it
            con.execute("PRAGMA journal_mode=DELETE")
            con.close()
            _templates[kind] = str(path)
        else:
            url, name = _pg_create_database()
            migrate(url)  # Alembic's engine has no pool: nothing stays connected to it
            _templates[kind] = name
            atexit.register(_pg_drop_database, name)
    return _templates[kind]


def _pg_drop_database(name: str, admin_url: str = "") -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url or PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


_CLI_LOCK = threading.Lock()


def run_cli(args: Sequence[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``resguardo ARGS`` in this process: the installed command's entry point
    (``resguardo.cli.main``) with stdin fed from ``input``, stdout and stderr
    captured and the exit code returned as a subprocess would (argparse's exit
    included). An exception ``main`` does not turn into an exit code escapes and
    fails the test, as a traceback would have. One call at a time: the standard
    streams and the root logger are process-wide."""
    from resguardo.cli import main

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    with _CLI_LOCK:
        saved = (root.handlers[:], root.level, sys.stdin)
        sys.stdin = io.StringIO(input or "")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(list(args))
                except SystemExit as exc:  # argparse: usage errors and --help
                    code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            root.handlers[:], sys.stdin = saved[0], saved[2]
            root.setLevel(saved[1])
    return subprocess.CompletedProcess(["resguardo", *args], code, out.getvalue(), err.getvalue())


class ForkedProcess:
    """A server started by the fork server (tests/forkserver.py), seen as a
    ``subprocess.Popen``: pid, stdout, poll, wait, send_signal, terminate, kill."""

    def __init__(self, pid: int, stdout: io.TextIOWrapper, forks: _ForkServer) -> None:
        self.pid, self.stdout, self._forks = pid, stdout, forks
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self._reap()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(["resguardo", str(self.pid)], timeout or 0)
            self._reap()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:  # not reaped: the pid is still this process's
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _reap(self) -> None:
        self.returncode = int(self._forks.ask({"wait": self.pid})["returncode"])
        os.close(self._pidfd)
        self.stdout.close()


class _ForkServer:
    """This test process's fork server (tests/forkserver.py), started on first use."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | ForkedProcess | None = None
        self.path = ""

    def _ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        folder = tempfile.mkdtemp(prefix="rg-forks-")
        atexit.register(shutil.rmtree, folder, True)
        self.path = os.path.join(folder, "s")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "forkserver.py"),
                                      self.path], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise AssertionError("the test fork server did not start")
        atexit.register(self.proc.kill)

    def ask(self, request: dict[str, object], fds: Sequence[int] = ()) -> dict[str, object]:
        self._ensure()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.path)
            socket.send_fds(s, [json.dumps(request).encode()], list(fds))
            s.shutdown(socket.SHUT_WR)
            answer: dict[str, object] = json.loads(s.makefile("rb").read())
        return answer

    def spawn(self, argv: list[str], stderr: int) -> ForkedProcess:
        """``resguardo ARGV`` in a forked child: stdout a pipe, stderr ``stderr``."""
        read, write = os.pipe()
        with open(os.devnull, "rb") as devnull:
            pid = int(self.ask({"argv": argv, "env": dict(os.environ), "cwd": str(ROOT)},
                               [devnull.fileno(), write, stderr])["pid"])
        os.close(write)
        return ForkedProcess(pid, open(read, encoding="utf-8"), self)  # noqa: SIM115


_forks = _ForkServer()
#: RESGUARDO_TEST_FORK=0 starts every server as a new interpreter instead.
_FORK = os.environ.get("RESGUARDO_TEST_FORK", "1") != "0"


class Server:
    """A Resguardo installation in a temporary folder: its config, its CLI and,
    once started, its server process."""

    def __init__(self, base: Path, extra_config: str = "", *,
                 share_with: Server | None = None, db_url: str = "",
                 migrated: bool = True) -> None:
        """``share_with``: another Server whose data folder and database this one
        uses (a second node of the same installation). ``db_url``: use this
        database (owned by the caller, never dropped here). ``migrated``: start
        from a copy of a database already at the latest schema; False leaves the
        creation of the database to Resguardo itself."""
        self.base = base
        self.data = share_with.data if share_with else base / "data"
        self.config = base / "resguardo.toml"
        self._pg_name = ""
        db_line = ""
        self.db_url = f"sqlite:///{self.data / 'resguardo.db'}"
        if share_with or db_url:
            self.db_url = share_with.db_url if share_with else db_url
        elif on_postgresql():
            self.db_url, self._pg_name = _pg_create_database(
                template=_migrated_template("postgresql") if migrated else "")
        elif migrated:
            self.data.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_migrated_template("sqlite"), self.data / "resguardo.db")
        if self.db_url.startswith("postgresql"):
            if "[database]" in extra_config:
                extra_config = extra_config.replace(
                    "[database]\n", f'[database]\nurl = "{self.db_url}"\n', 1)
            else:
                db_line = f'[database]\nurl = "{self.db_url}"\n'
        # No 64 MB ballast file in every test's data folder (tests of the
        # ballast set their own).
        storage_keys = "" if "ballast =" in extra_config else 'ballast = "0"\n'
        if "[storage]\n" in extra_config:
            extra_config = extra_config.replace("[storage]\n", "[storage]\n" + storage_keys, 1)
        else:
            extra_config += "\n[storage]\n" + storage_keys
        server_keys = "port = 0\nthreads = 16\n"
        server_block = "[server]\n" + server_keys
        if "[server]\n" in extra_config:  # e.g. tls_cert: keep one [server] table
            extra_config = extra_config.replace("[server]\n", server_block, 1)
            server_block = ""
        self.config.write_text(
            f'data_dir = "{self.data}"\nlog_level = "INFO"\n'
            f"{extra_config}\n"
            f"{server_block}"
            "[demo]\ncreate = false\n"
            f"{db_line}",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[str] | None = None
        #: Extra arguments of ``resguardo serve`` (e.g. ["--only", "drive"]).
        self.serve_args: list[str] = []
        self.url = ""
        self.log = base / "server.log"

    # -- CLI ---------------------------------------------------------------------
    def cli(self, *args: str, input: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        """``resguardo --config CONFIG ARGS``, in this process (see :func:`run_cli`)."""
        p = run_cli(["--config", str(self.config), *args], input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"resguardo {' '.join(args)} failed: {p.stderr}")
        return p

    def create_space(self, name: str, tier: str = "4G") -> None:
        self.cli("space", "create", name, "--tier", tier)

    def add_user(self, space: str, user: str, password: str, role: str = "editor") -> None:
        self.cli("user", "add", space, user, "--role", role, "--password-stdin",
                 input=password + "\n")

    def show(self, space: str) -> dict[str, object]:
        import json

        return json.loads(self.cli("space", "show", space, "--json").stdout)

    def files_root(self, space: str) -> Path:
        return self.data / "spaces" / space / "files"

    # -- server ------------------------------------------------------------------
    def start(self, timeout: float = 30, *, launcher: list[str] | None = None,
              env: dict[str, str] | None = None) -> Server:
        """``resguardo serve`` on a free port, forked from the warm interpreter, or
        run by ``launcher`` (the command before resguardo's arguments) in ``env``."""
        logf = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 - kept for the process
        argv = ["--config", str(self.config), "serve", *self.serve_args]
        if _FORK and launcher is None:
            self.proc = _forks.spawn(argv, logf.fileno())
        else:
            command = launcher or [sys.executable, "-m", "resguardo"]
            self.proc = subprocess.Popen([*command, *argv], stdout=subprocess.PIPE,
                                         stderr=logf, text=True, cwd=ROOT, env=env)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
                continue
            m = re.search(r"escuchando en (http\S+)", line)
            if m:
                self.url = m.group(1)
                return self
        raise AssertionError("server did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._pg_name:
            _pg_drop_database(self._pg_name)

    def wait_for_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Wait until a line of the server's log matches ``pattern`` (a regex): how a
        test waits for something the server did, such as the access-log line of a
        request it answered, instead of sleeping. Fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log.read_text(encoding="utf-8", errors="replace"))
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matching {pattern!r} in {timeout} s")
            time.sleep(0.05)

    def dav(self, space: str, path: str = "") -> str:
        return f"{self.url}/dav/{space}/{path}"

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Factory: ``make_server(extra_config="", share_with=None, db_url="",
    migrated=True)`` returns a not-yet-started Server (see :class:`Server`)."""
    made: list[Server] = []

    def factory(extra_config: str = "", name: str = "srv", *,
                share_with: Server | None = None, db_url: str = "",
                migrated: bool = True) -> Server:
        base = tmp_path / f"{name}{len(made)}"
        base.mkdir()
        s = Server(base, extra_config, share_with=share_with, db_url=db_url,
                   migrated=migrated)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.close()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database of the running test's kind (see ``database``):
    a SQLite file, or a PostgreSQL database dropped afterwards."""
    if not on_postgresql():
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url, name = _pg_create_database()
    yield url
    _pg_drop_database(name)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """URL of a fresh PostgreSQL database (dropped afterwards), whatever database
    the suite runs on; skips when no PostgreSQL server answers."""
    import sqlalchemy as sa

    try:
        url, name = _pg_create_database(PG_ADMIN_URL)
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc.orig}")
    yield url
    _pg_drop_database(name, PG_ADMIN_URL)


class PrivatePostgres:
    """A PostgreSQL server of one test's own (initdb in a temporary folder, a free
    port on 127.0.0.1), for tests that stop or restart the database: the shared
    one at 127.0.0.1:5432 serves every other test running beside them."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="resguardo-pg-", dir="/tmp"))
        self.data = self.base / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        # PostgreSQL refuses to run as root: run it as the postgres account then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.base, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as, str(self.bindir / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.base / "log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test's own that it may stop and start
    (:class:`PrivatePostgres`); skips when PostgreSQL's programs are not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL's programs (initdb, pg_ctl) are not installed")
    pg = PrivatePostgres(found[-1].parent)
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture
def redis_url() -> str:
    """The test Redis (RESGUARDO_TEST_REDIS_URL); skips when it does not answer."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def server(make_server) -> Server:  # type: ignore[no-untyped-def]
    """A running server with no spaces yet."""
    return make_server().start()


@pytest.fixture
def space(server: Server) -> tuple[Server, requests.Session]:
    """Server with space 'acme' (4G) and its admin 'ana'; a logged-in session."""
    server.create_space("acme", "4G")
    server.add_user("acme", "ana", "secreto-ana-1")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return server, s


@pytest.fixture
def smtp() -> Iterator[object]:
    """A real SMTP server on a free port (``portal_helpers.SmtpSink``) for the test."""
    from portal_helpers import SmtpSink

    s = SmtpSink()
    yield s
    s.stop()


@pytest.fixture
def portal(tmp_path: Path, smtp) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A portal in this process (``portal_helpers.Portal``) on a database of its own,
    its e-mail sent to ``smtp``."""
    from portal_helpers import _portal, drop

    p, pg = _portal(tmp_path, smtp)
    yield p
    p.db.dispose()
    drop(pg)


@pytest.fixture
def shop(tmp_path: Path, smtp) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A shop for the facturación tests (``invoicing_helpers.Shop``) on a database of its
    own, its e-mail sent to ``smtp`` (test_portal_drive.py has a ``shop`` of its own)."""
    from invoicing_helpers import Shop
    from portal_helpers import drop

    sh = Shop(tmp_path, smtp)
    yield sh
    sh.db.dispose()
    drop(sh.pg)
