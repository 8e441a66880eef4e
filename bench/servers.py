"""The servers under test, each started by the benchmark on 127.0.0.1 only:
plain WsgiDAV, Apache 2 with mod_dav_fs (when installed) and Resguardo."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS = 16  # Resguardo's default [server] threads; the same for every server
USER, PASSWORD = "bench", "bench-secreto-1"
APACHE_MODULES = Path("/usr/lib/apache2/modules")


class StartError(RuntimeError):
    """A server could not be started (the message says why)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class BenchServer:
    """Common shape: a base URL for the workloads' collection, the folder on disk
    behind it, and the process tree whose memory is measured."""

    name = "?"
    label = "?"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        #: The folder on disk served at ``self.url``.
        self.root = Path()
        self.log = base / "server.log"
        self._pids: list[int] = []
        self._pids_at = 0.0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT if self.name != "apache" else signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- hooks -----------------------------------------------------------------------
    def adopt(self, path: Path) -> None:
        """Files the benchmark created directly on disk under ``path`` become the
        server's (Apache runs as www-data)."""

    def after_disk_change(self) -> None:
        """Files were created directly on disk: let the server account for them."""

    # -- memory ------------------------------------------------------------------------
    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        now = time.monotonic()
        if now - self._pids_at > 2:  # Apache may replace children; re-read now and then
            self._pids = _children(self.proc.pid)
            self._pids_at = now
        return self._pids

    def rss_kib(self) -> int:
        """Resident memory of the whole process tree, now."""
        return sum(_status_kib(p, "VmRSS:") for p in self.pids())

    def hwm_kib(self) -> int:
        """Peak resident memory the kernel recorded (sum over the tree)."""
        return sum(_status_kib(p, "VmHWM:") for p in self.pids())

    def reset_hwm(self) -> None:
        """Start the kernel's high-water mark again from the current RSS
        (``clear_refs`` 5); ignored where the kernel does not allow it."""
        for p in self.pids():
            try:
                Path(f"/proc/{p}/clear_refs").write_text("5")
            except OSError:
                pass

    def _wait_line(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise StartError(f"{self.label} exited: {self.log.read_text()[-2000:]}")
                continue
            m = re.search(pattern, line)
            if m:
                self._drain_stdout()
                return m
        raise StartError(f"{self.label} did not start in {timeout:.0f} s")


    def _drain_stdout(self) -> None:
        """Copy what the server prints from now on to its log: an unread pipe
        fills up and blocks the server (WsgiDAV logs each request to stdout)."""
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout

        def copy() -> None:
            with open(self.log, "a", encoding="utf-8") as fh:
                for line in out:
                    fh.write(line)

        threading.Thread(target=copy, daemon=True).start()


class PlainWsgiDAV(BenchServer):
    name, label = "wsgidav", "WsgiDAV 4.4 (sin cambios)"

    def start(self) -> None:
        self.root = self.base / "files"
        self.root.mkdir(exist_ok=True)
        logf = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.plain_wsgidav", str(self.root), USER, PASSWORD,
             str(THREADS)], stdout=subprocess.PIPE, stderr=logf, text=True, cwd=ROOT)
        port = self._wait_line(r"listening on (\d+)").group(1)
        self.url = f"http://127.0.0.1:{port}/"


class Apache(BenchServer):
    name, label = "apache", "Apache 2.4 mod_dav_fs"

    @staticmethod
    def available() -> str | None:
        """None if Apache with mod_dav_fs can run here, else the reason."""
        if shutil.which("apache2") is None and not Path("/usr/sbin/apache2").exists():
            return "apache2 no está instalado (apt-get install apache2)"
        for mod in ("mod_dav.so", "mod_dav_fs.so", "mod_mpm_event.so"):
            if not (APACHE_MODULES / mod).exists():
                return f"falta {APACHE_MODULES / mod}"
        if shutil.which("htpasswd") is None:
            return "falta htpasswd (apache2-utils)"
        try:
            pwd.getpwnam("www-data")
        except KeyError:
            return "no existe el usuario www-data"
        if os.geteuid() != 0:
            return "hace falta root para arrancar Apache como www-data"
        return None

    def start(self) -> None:
        b = self.base
        b.chmod(0o755)
        for p in b.parents:  # www-data must be able to reach the served folder
            if p == Path("/"):
                break
            if p.stat().st_mode & 0o005 != 0o005:
                p.chmod(p.stat().st_mode | 0o005)
        self.root = b / "files"
        for d in ("files", "lock", "run"):
            (b / d).mkdir(exist_ok=True)
        www = pwd.getpwnam("www-data")
        for d in ("files", "lock"):
            os.chown(b / d, www.pw_uid, www.pw_gid)
        # SHA-1 hashes: Apache checks the password on every request and bcrypt
        # would measure hashing, not WebDAV.
        subprocess.run(["htpasswd", "-c", "-b", "-s", str(b / "htpasswd"), USER, PASSWORD],
                       check=True, capture_output=True)
        port = free_port()
        mods = ["mpm_event", "authz_core", "authn_core", "authn_file", "auth_basic",
                "authz_user", "mime", "dav", "dav_fs", "alias"]
        conf = "\n".join(
            [f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods] + [
                f"ServerRoot {b}",
                f"Listen 127.0.0.1:{port}",
                "ServerName 127.0.0.1",
                f"PidFile {b}/run/httpd.pid",
                f"DefaultRuntimeDir {b}/run",
                f"ErrorLog {self.log}",
                "LogLevel warn",
                "User www-data",
                "Group www-data",
                "TypesConfig /etc/mime.types",
                # One process with the same number of worker threads as the others.
                "StartServers 1", "ServerLimit 1", f"ThreadLimit {THREADS}",
                f"ThreadsPerChild {THREADS}", f"MaxRequestWorkers {THREADS}",
                "MinSpareThreads 1", f"MaxSpareThreads {THREADS}",
                "MaxConnectionsPerChild 0",
                "KeepAlive On", "MaxKeepAliveRequests 0", "KeepAliveTimeout 60",
                f"DavLockDB {b}/lock/DavLock",
                f"Alias /dav {self.root}",
                f"<Directory {self.root}>",
                "  Dav On",
                "  AuthType Basic",
                "  AuthName bench",
                f"  AuthUserFile {b}/htpasswd",
                "  Require valid-user",
                "</Directory>",
                "",
            ])
        (b / "httpd.conf").write_text(conf, encoding="utf-8")
        logf = open(b / "stdout.log", "a", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(["apache2", "-f", str(b / "httpd.conf"), "-DFOREGROUND"],
                                     stdout=logf, stderr=subprocess.STDOUT, text=True, cwd=b)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"Apache exited: {self.log.read_text()[-2000:]}"
                                 if self.log.exists() else "Apache exited")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise StartError("Apache did not start in 30 s")
        self.url = f"http://127.0.0.1:{port}/dav/"

    def adopt(self, path: Path) -> None:
        www = pwd.getpwnam("www-data")
        os.chown(path, www.pw_uid, www.pw_gid)
        for dirpath, dirnames, filenames in os.walk(path):
            for n in dirnames + filenames:
                os.chown(os.path.join(dirpath, n), www.pw_uid, www.pw_gid)


class Resguardo(BenchServer):
    name, label = "resguardo", "Resguardo"
    SPACE = "bench"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.data = base / "data"
        self.config = base / "resguardo.toml"
        # Defaults everywhere except the port, the thread count spelled out and a
        # small plan for the memory workload.
        self.config.write_text(
            f'data_dir = "{self.data}"\n'
            "[server]\nport = 0\n"
            f"threads = {THREADS}\n"
            "[demo]\ncreate = false\n"
            '[tiers.bench-8M]\nquota = "8M"\nmax_users = 1\n',
            encoding="utf-8")

    def cli(self, *args: str, input: str | None = None) -> str:
        p = subprocess.run(
            [sys.executable, "-m", "resguardo", "--config", str(self.config), *args],
            input=input, capture_output=True, text=True, cwd=ROOT, timeout=600)
        if p.returncode != 0:
            raise StartError(f"resguardo {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout

    def add_space(self, name: str, tier: str) -> None:
        self.cli("space", "create", name, "--tier", tier)
        self.cli("user", "add", name, USER, "--role", "editor", "--password-stdin",
                 input=PASSWORD + "\n")

    def files_root(self, space: str) -> Path:
        return self.data / "spaces" / space / "files"

    def space_url(self, space: str) -> str:
        return self.url.replace(f"/dav/{self.SPACE}/", f"/dav/{space}/")

    def start(self) -> None:
        self.data.mkdir(exist_ok=True)
        logf = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "resguardo", "--config", str(self.config), "serve"],
            stdout=subprocess.PIPE, stderr=logf, text=True, cwd=ROOT)
        base = self._wait_line(r"escuchando en (http\S+)").group(1)
        self.url = f"{base}/dav/{self.SPACE}/"
        self.root = self.files_root(self.SPACE)

    def recount(self, space: str) -> None:
        self.cli("quota", "recount", space)

    def after_disk_change(self) -> None:
        self.recount(self.SPACE)

    def show(self, space: str) -> dict[str, object]:
        import json

        return dict(json.loads(self.cli("space", "show", space, "--json")))
