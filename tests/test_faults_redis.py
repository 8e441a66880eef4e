"""Redis holds the drive's WebDAV locks on several nodes: without persistence
a Redis restart drops them all, silently. The server checks at start-up and
says so (or refuses to start, when asked to)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A Redis of our own on a free 127.0.0.1 port (never the shared one)."""

    def __init__(self, folder: Path, args: tuple[str, ...]) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        folder.mkdir(parents=True, exist_ok=True)
        self.argv = [exe, "--port", str(_free_port()), "--bind", "127.0.0.1", "--dir",
                     str(folder), *args]
        self.port = int(self.argv[2])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.RedisError:
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    "redis did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@contextmanager
def private_redis(folder: Path, *args: str) -> Iterator[str]:
    """A started :class:`PrivateRedis`, stopped at the end. Yields its URL."""
    r = PrivateRedis(folder, args)
    r.start()
    try:
        yield r.url
    finally:
        r.stop()


def _locks(url: str, extra: str = "") -> str:
    return f'[locks]\nbackend = "redis"\nredis_url = "{url}"\n{extra}'


@pytest.mark.parametrize(("args", "expect"), [
    (("--save", "", "--appendonly", "no"), "has no persistence"),
    (("--save", "", "--appendonly", "no", "--rename-command", "CONFIG", ""),
     "cannot tell whether it persists"),
])
def test_redis_that_would_lose_the_locks_is_reported_loudly_at_start(make_server, tmp_path,
                                                                     args, expect):
    with private_redis(tmp_path / "redis", *args) as url:
        srv = make_server(_locks(url)).start()
        m = srv.wait_for_log(r"WARNING .*locks: Redis at redis://127\.0\.0\.1:\d+/0 (.*)")
        assert expect in m.group(1) and "docs/deploy.md" in m.group(1)
        srv.stop()


def test_redis_without_persistence_refuses_to_start_when_required(make_server, tmp_path):
    with private_redis(tmp_path / "redis", "--save", "", "--appendonly", "no") as url:
        srv = make_server(_locks(url, 'redis_persistence = "require"\n'))
        with pytest.raises(AssertionError, match="server exited"):
            srv.start(timeout=20)
        assert "has no persistence" in srv.log.read_text()


def test_redis_with_appendonly_starts_without_a_warning(make_server, tmp_path):
    with private_redis(tmp_path / "redis", "--save", "", "--appendonly", "yes") as url:
        srv = make_server(_locks(url, 'redis_persistence = "require"\n')).start()
        srv.wait_for_log(r"locks: Redis keeps them across restarts \(appendonly\)")
        assert "WARNING" not in srv.log.read_text().split("keeps them across")[0]
        srv.stop()


LOCKINFO = ('<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            '</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>')


def test_locks_survive_a_restart_of_a_persistent_redis(make_server, tmp_path):
    """Redis as docs/deploy.md asks (appendonly): LOCK, restart Redis, and a
    PUT without the lock's token is still refused (423); with it, it works."""
    import requests

    r = PrivateRedis(tmp_path / "redis", ("--save", "", "--appendonly", "yes",
                                          "--appendfsync", "always"))
    r.start()
    try:
        srv = make_server(_locks(r.url)).start()
        srv.create_space("acme", "4G")
        srv.add_user("acme", "ana", "secreto-ana-1")
        s = requests.Session()
        s.auth = ("ana", "secreto-ana-1")
        assert s.put(srv.dav("acme", "libro.xlsx"), data=b"uno").status_code == 201
        lock = s.request("LOCK", srv.dav("acme", "libro.xlsx"), data=LOCKINFO,
                         headers={"Timeout": "Second-600"})
        assert lock.status_code == 200
        token = lock.headers["Lock-Token"]
        r.stop()
        assert s.put(srv.dav("acme", "libro.xlsx"), data=b"x").status_code == 503
        r.start()
        deadline = time.monotonic() + 20
        while (code := s.put(srv.dav("acme", "libro.xlsx"), data=b"x").status_code) == 503:
            assert time.monotonic() < deadline, "Redis did not come back for the drive"
            time.sleep(0.2)
        assert code == 423
        assert s.put(srv.dav("acme", "libro.xlsx"), data=b"dos",
                     headers={"If": f"({token})"}).status_code == 204
        assert s.get(srv.dav("acme", "libro.xlsx")).content == b"dos"
        srv.stop()
    finally:
        r.stop()
