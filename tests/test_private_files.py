"""Outside systemd (no ``UMask=0077``), everything Resguardo writes is private to
its user: the database, the space folders and their files, the outbox's
e-mails (they carry set-password links) and backups."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask a login shell usually has: files 0644, folders 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _world_or_group_readable(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""]:
            p = Path(dirpath) / name
            mode = os.lstat(p).st_mode
            if stat.S_IMODE(mode) & 0o077:
                found.append(f"{p.relative_to(root.parent)} {stat.filemode(mode)}")
    return sorted(set(found))


def test_database_spaces_outbox_and_backups_are_created_private_despite_a_loose_umask(
        make_server, tmp_path, loose_umask):
    import sqlalchemy as sa

    srv = make_server(migrated=False)  # the data folder and database made by Resguardo
    srv.cli("space", "create", "acme", "--tier", "4G", "--owner", "dueno@example.mx")
    srv.add_user("acme", "ana", "secreto-ana-1", "admin")
    srv.start()
    auth = ("ana", "secreto-ana-1")
    assert requests.request("MKCOL", srv.dav("acme", "carpeta/"), auth=auth).status_code == 201
    assert requests.put(srv.dav("acme", "carpeta/a.txt"), data=b"hola",
                        auth=auth).status_code == 201
    # An e-mail in the outbox: a renewal reminder (its space is due in a week).
    engine = sa.create_engine(srv.db_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE spaces SET paid_until = :d WHERE name = 'acme'"),
                  {"d": date.today() + timedelta(days=7)})
    engine.dispose()
    assert "recordatorio" in srv.cli("lifecycle", "run").stdout
    assert list((srv.data / "outbox").glob("*.eml"))
    archive = tmp_path / "respaldo.tar.gz"
    srv.cli("backup", str(archive))
    srv.stop()

    assert _world_or_group_readable(srv.data) == []
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
