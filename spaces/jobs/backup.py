"""Backups: one archive (:mod:`spaces.jobs.archive`) with the database rows and the
files of one space or all, restorable on a fresh machine (even onto another
database engine) by :mod:`spaces.jobs.restore`.

Consistency: each space is captured under its commit lock
(:func:`spaces.files.guard.space_guard`, which every write of every node takes to
replace a file): its files are hard-linked into a snapshot (metadata only, so
the lock is held for moments) and its rows read in the same breath; the
snapshot is archived after the lock is released. Writes replace files by
``rename`` and never change a file in place, so the snapshot's contents are
those of that moment. Uploads still streaming are not part of it. The archive
is read back whole (:func:`spaces.jobs.archive.verify`) before it takes its name.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import stat
import tarfile
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy import or_, select

from spaces.core.db import Database, below, below_params
from spaces.core.errors import AlreadyExists, NotFound
from spaces.core.models import DeadProperty, Space
from spaces.core.settings import Settings
from spaces.files import layout
from spaces.files.guard import space_guard
from spaces.files.store import Store, store_for
from spaces.jobs.archive import (
    AREAS,
    FORMAT,
    VERSION,
    BackupError,
    Report,
    SpaceSummary,
    schema_revision,
    space_scoped,
    tables,
    verify,
)

log = logging.getLogger(__name__)


def _dump_value(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return v


def _props_filter(name: str) -> Any:
    """The dead properties of space ``name`` (their paths are the drive's URLs)."""
    base = f"/dav/{name}"
    return or_(DeadProperty.path == base, below(DeadProperty.path)).params(
        **below_params(base))


def _space_rows(db: Database, space: Space) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    with db.engine.connect() as c:
        for t in tables():
            if not space_scoped(t):
                continue
            if t.name == "spaces":
                q = select(t).where(t.c.id == space.id)
            elif t.name == "dav_properties":
                q = select(t).where(_props_filter(space.name))
            else:
                q = select(t).where(t.c.space_id == space.id)
            rows[t.name] = [dict(r._mapping) for r in c.execute(q)]
    return rows


def _snapshot(fs: Store, src: Path, dst: Path) -> None:
    """Hard-link every file of ``src`` under ``dst`` (copy where links are not
    possible); folders are created. Symlinks and special files are skipped."""
    fs.mkdir(dst, parents=True)
    for dirpath, dirnames, filenames in fs.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst if rel == "." else dst / rel
        for d in dirnames:
            if not fs.is_link(os.path.join(dirpath, d)):
                fs.mkdir(target / d)
                fs.copystat(Path(dirpath, d), target / d)
        for f in filenames:
            sp = os.path.join(dirpath, f)
            if not stat.S_ISREG(fs.lstat(sp).st_mode):
                continue
            try:
                fs.link(Path(sp), target / f)
            except OSError:
                fs.copy(Path(sp), target / f)
    fs.copystat(src, dst)


class _Hashing(io.RawIOBase):
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.h = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.h.update(data)
        return data


def _add_tree(fs: Store, tar: tarfile.TarFile, root: Path,
              prefix: str) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in fs.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            tar.addfile(_folder_member(fs.lstat(os.path.join(dirpath, d)), f"{prefix}/{rel}"))
        for f in sorted(filenames):
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            with fs.open_read(Path(dirpath, f)) as fh:
                ti = tar.gettarinfo(arcname=f"{prefix}/{rel}", fileobj=fh)
                if ti.islnk():
                    # Another member shares this file's inode (the snapshot links
                    # every file; two names of one file end up here): store the
                    # bytes again. A restore accepts regular files and folders only.
                    ti.type, ti.linkname = tarfile.REGTYPE, ""
                    ti.size = fs.info_open(fh).size
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                hashing = _Hashing(fh)
                tar.addfile(ti, hashing)
            files[rel] = {"size": ti.size, "sha256": hashing.h.hexdigest()}
    return files


def _folder_member(st: os.stat_result, name: str) -> tarfile.TarInfo:
    """The tar member of a folder, as ``TarFile.gettarinfo`` makes it from its
    stat, owned by nobody."""
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, st.st_mode, st.st_mtime
    return ti


def _jsonl(tar: tarfile.TarFile, name: str, rows: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps({k: _dump_value(v) for k, v in r.items()}, ensure_ascii=False)
                   + "\n" for r in rows).encode()
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = int(time.time())
    tar.addfile(ti, io.BytesIO(data))


def backup(settings: Settings, db: Database, dest: Path,
           names: list[str] | None = None, *, check: bool = True) -> Report:
    """Write an archive of ``names`` (every space and every table when None) to
    ``dest`` (``.tar`` or ``.tar.gz``). Written to a temporary name and renamed
    when complete: an interrupted backup leaves no archive that looks whole.

    With ``check`` (the default) the written archive is read back whole by
    :func:`verify` — every member against the manifest, with the rules a
    restore applies — before it takes its name: an archive that would not
    restore raises BackupError and is not kept."""
    dest = Path(dest)
    if dest.exists():
        raise AlreadyExists(f"El archivo {dest} ya existe; elija otro nombre.")
    with db.session() as s:
        if names is None:
            spaces = list(s.scalars(select(Space).order_by(Space.name)))
        else:
            spaces = []
            for n in names:
                sp = s.scalars(select(Space).where(Space.name == n.lower())).one_or_none()
                if sp is None:
                    raise NotFound(f"El espacio '{n}' no existe.")
                spaces.append(sp)
    revision = schema_revision(db)
    mode: Literal["w:gz", "w"] = "w:gz" if dest.name.endswith((".tar.gz", ".tgz")) else "w"
    partial = dest.with_name(dest.name + f".partial-{os.getpid()}")
    fs = store_for(settings)
    work = settings.data_path / f".backup-{uuid.uuid4().hex[:12]}"
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in tables()}
    summaries: list[SpaceSummary] = []
    try:
        with tarfile.open(partial, mode) as tar:
            for sp in spaces:
                home = layout.space_dir(settings, sp.name)
                snap = work / sp.name
                with space_guard(settings, db, sp.id):
                    for area in AREAS:
                        there = fs.info(home / area)
                        if there is not None and there.is_dir:
                            _snapshot(fs, home / area, snap / area)
                        else:
                            fs.mkdir(snap / area, parents=True)
                    space_rows = _space_rows(db, sp)
                for table, found in space_rows.items():
                    rows[table].extend(found)
                counters = space_rows["spaces"][0]
                summary = SpaceSummary(sp.name, int(counters["used_bytes"]),
                                       int(counters["used_files"]))
                for area in AREAS:
                    summary.areas[area] = _add_tree(fs, tar, snap / area, f"{area}/{sp.name}")
                summary.files = summary.areas.pop("files")
                fs.rmtree(snap)
                summaries.append(summary)
            if names is None:
                with db.engine.connect() as c:
                    for t in tables():
                        if not space_scoped(t):
                            rows[t.name] = [dict(r._mapping) for r in c.execute(select(t))]
            for table, found in rows.items():
                _jsonl(tar, f"db/{table}.jsonl", found)
            manifest = {
                "format": FORMAT, "version": VERSION,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "schema_revision": revision, "scope": "all" if names is None else "spaces",
                "spaces": [{"name": s.name, "used_bytes": s.used_bytes,
                            "used_files": s.used_files, "files": s.files, **s.areas}
                           for s in summaries],
                "tables": {t: len(r) for t, r in rows.items()},
            }
            data = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
            ti = tarfile.TarInfo("manifest.json")
            ti.size = len(data)
            ti.mtime = int(time.time())
            tar.addfile(ti, io.BytesIO(data))
        if check:
            try:
                # Spaces named before the reserved list back up; restoring
                # them takes --allow-reserved-names (the CLI says so).
                verify(partial, reserved_ok=True)
            except BackupError as exc:
                log.error("backup refused after reading it back: %s: %s", dest, exc)
                raise BackupError(f"El respaldo no se podría restaurar, así que no se guardó "
                                  f"{dest}: {exc}") from exc
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
        fs.rmtree(work)
    log.info("backup written: %s spaces=%d verified=%s", dest, len(summaries), check)
    return Report(dest, summaries, {t: len(r) for t, r in rows.items()}, verified=check)
