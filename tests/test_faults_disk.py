"""A full disk: a 201 means the whole body is on disk and durable; anything
else is a 507 that leaves the previous version intact, no temporary file, and
counters that equal the disk. Runs on a real small tmpfs (CI runs as root)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import _migrated_template

KIB = 1024
MIB = 2**20


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``where`` (created), unmounted at the end;
    skips the test when this machine does not let us mount one."""
    where.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"mounting a small tmpfs is not permitted here: {p.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _session() -> requests.Session:
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return s


def assert_counters_equal_disk(srv, space: str) -> None:
    out = srv.cli("quota", "recount", space).stdout
    assert "sin diferencias" in out, out


@pytest.mark.parametrize("sqlite_inside", [False, True], ids=["db-outside", "db-inside"])
def test_full_disk_never_acknowledges_a_short_file(make_server, tmp_path, sqlite_inside):
    """The issue's run: 5 MB files until the disk is full, then the same 64 KiB
    file again and again. Every 201/204 left exactly the bytes sent; every 507
    left the previous content; no temporary file; counters = disk = recount."""
    data = tmp_path / "data"
    dbfile = (data if sqlite_inside else tmp_path) / "resguardo.db"
    mounted = data if sqlite_inside else data / "spaces"
    with small_tmpfs(mounted, "50m"):
        shutil.copyfile(_migrated_template("sqlite"), dbfile)
        srv = make_server(db_url=f"sqlite:///{dbfile}")
        srv.data = data
        srv.config.write_text(srv.config.read_text().replace(
            f'data_dir = "{srv.base / "data"}"', f'data_dir = "{data}"'))
        srv.start()
        try:
            srv.create_space("acme", "1G")
            srv.add_user("acme", "ana", "secreto-ana-1")
            s = _session()
            stored: dict[str, bytes] = {}
            answers = []
            for i in range(10):
                body = bytes([65 + i]) * 5_230_592
                r = s.put(srv.dav("acme", f"grande{i}.bin"), data=body)
                answers.append(r.status_code)
                assert r.status_code in (201, 507), (r.status_code, r.text)
                if r.status_code == 201:
                    stored[f"grande{i}.bin"] = body
                else:
                    assert "disco" in r.text
            for i in range(3):
                body = bytes([97 + i]) * (64 * KIB)
                r = s.put(srv.dav("acme", "libro.xlsx"), data=body)
                answers.append(r.status_code)
                assert r.status_code in (201, 204, 507), (r.status_code, r.text)
                if r.status_code != 507:
                    stored["libro.xlsx"] = body
            assert 507 in answers, answers  # the disk did fill
            for name, body in stored.items():
                got = s.get(srv.dav("acme", name)).content
                assert len(got) == len(body) and got == body, (name, len(got), len(body))
                assert (srv.files_root("acme") / name).stat().st_size == len(body)
            assert list((data / "spaces" / "acme" / "tmp").iterdir()) == []
            assert_counters_equal_disk(srv, "acme")
            assert "Traceback" not in srv.log.read_text()
        finally:
            srv.stop()
