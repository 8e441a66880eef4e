"""Restoring a backup archive (:mod:`spaces.jobs.archive`) onto this installation.

A restore never overwrites: it refuses a space whose name exists, and a full
restore needs an installation with no spaces and no accounts. It checks every
file's sha256 against the manifest and the counters against a recount before
it reports success; anything else rolls back the database and removes what
it extracted.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import tarfile
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, text

from spaces.core.db import Database
from spaces.core.errors import AlreadyExists, NotFound
from spaces.core.models import Base, Space, new_session_version
from spaces.core.settings import Settings
from spaces.files import layout, quota
from spaces.files.store import Store, store_for
from spaces.jobs.archive import (
    AREAS,
    BackupError,
    Members,
    Report,
    SpaceSummary,
    check_space_name,
    read_manifest,
    schema_revision,
    space_scoped,
    tables,
)

log = logging.getLogger(__name__)


def _load_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Typed values for the columns ``table`` has now (others are dropped; missing
    ones take their defaults)."""
    out: dict[str, Any] = {}
    for col in table.columns:
        if col.name not in row:
            continue
        v = row[col.name]
        if v is not None:
            try:
                pt = col.type.python_type
            except NotImplementedError:  # pragma: no cover - every column type has one
                pt = object
            if pt is datetime:
                v = datetime.fromisoformat(v)
            elif pt is date:
                v = date.fromisoformat(v)
            elif pt is Decimal:
                v = Decimal(v)
            elif pt is bytes:
                v = base64.b64decode(v)
        out[col.name] = v
    if table.name == "spaces" and "reserve_bytes" not in row and "quota_bytes" in row:
        # A backup from before the reserve (schema 0012): its tier's default one;
        # its counters are recounted after the restore.
        from spaces.core.plans import reserve_for

        out["reserve_bytes"] = reserve_for(int(row["quota_bytes"]))
    return out


def _rows(tar: tarfile.TarFile, table: str) -> Iterator[dict[str, Any]]:
    try:
        fh = tar.extractfile(f"db/{table}.jsonl")
    except KeyError:
        return
    if fh is None:
        return
    for line in io.TextIOWrapper(fh, encoding="utf-8"):
        if line.strip():
            yield json.loads(line)


def _check_revision(db: Database, revision: str) -> None:
    from alembic.script import ScriptDirectory

    from spaces.core.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config(str(db.engine.url)))
    current = schema_revision(db)
    known = {r.revision for r in script.walk_revisions(base="base", head=current)}
    if revision not in known:
        raise BackupError(f"El respaldo es de una versión del esquema ({revision}) que esta "
                          "instalación no conoce; actualice Resguardo antes de restaurar.")


def _extract_space(fs: Store, tar: tarfile.TarFile, name: str,
                   files: dict[str, dict[str, Any]], dest: Path, area: str = "files") -> None:
    """Extract ``<area>/<name>/`` into ``dest`` (under the rules of
    :class:`~spaces.jobs.archive.Members`: never outside it) and check every file
    against the manifest."""
    check = Members(area, name, files)
    fs.mkdir(dest, parents=True)
    dirs: list[tuple[Path, int]] = []
    for m in tar.getmembers():
        parts = check.parts(m)
        if parts is None:
            continue
        target = dest.joinpath(*parts)
        if m.isdir():
            fs.mkdir(target, parents=True, exist_ok=True)
            dirs.append((target, int(m.mtime)))
        else:
            fs.mkdir(target.parent, parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None
            h = hashlib.sha256()
            with fs.create_exclusive(target) as out:  # mode 0600
                while chunk := src.read(1024 * 1024):
                    h.update(chunk)
                    fs.write_all(out, chunk)
            fs.set_mtime(target, m.mtime)
            check.file_read(m, "/".join(parts), h.hexdigest())
    check.finish()
    for d, mtime in reversed(dirs):
        fs.set_mtime(d, mtime)


def restore(settings: Settings, db: Database, src: Path,
            names: list[str] | None = None, *, reserved_ok: bool = False) -> Report:
    """Restore ``names`` (every space of the archive when None) from ``src``.
    Space names obey the rules of space creation; a name reserved for the
    server's routes only with ``reserved_ok`` (the operator's
    ``--allow-reserved-names``).

    A full archive restored whole also restores accounts, orders and the rest,
    keeping every id, and needs an installation without spaces or accounts;
    selected spaces get new ids and keep no link to an account that is not
    here. Raises BackupError, AlreadyExists or NotFound; on any error the
    database is as before and nothing extracted stays.
    """
    src = Path(src)
    if not src.is_file():
        raise NotFound(f"No existe el respaldo {src}.")
    try:
        tar = tarfile.open(src, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"No se puede leer el respaldo {src}: {exc}") from exc
    try:
        return _restore(settings, db, src, tar, names, reserved_ok)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BackupError(f"El respaldo {src} está dañado o incompleto: {exc}") from exc
    finally:
        tar.close()


def _restore(settings: Settings, db: Database, src: Path, tar: tarfile.TarFile,
             names: list[str] | None, reserved_ok: bool) -> Report:
    manifest = read_manifest(tar)
    _check_revision(db, manifest["schema_revision"])
    by_name = {check_space_name(s.get("name") if isinstance(s, dict) else None,
                                reserved_ok=reserved_ok): s
               for s in manifest.get("spaces") or []}
    wanted = list(by_name) if names is None else [n.lower() for n in names]
    for n in wanted:
        if n not in by_name:
            raise NotFound(f"El respaldo no contiene el espacio '{n}'.")
    whole = names is None and manifest["scope"] == "all"
    with db.engine.connect() as c:
        taken = set(c.scalars(select(Space.name).where(Space.name.in_(wanted))))
        if taken:
            raise AlreadyExists("Ya existen aquí los espacios: " + ", ".join(sorted(taken))
                                + "; la restauración nunca sobrescribe.")
        if whole:
            accounts = Base.metadata.tables.get("accounts")
            n_accounts = (c.execute(select(func.count()).select_from(accounts)).scalar_one()
                          if accounts is not None else 0)
            if c.execute(select(func.count()).select_from(Space)).scalar_one() or n_accounts:
                raise AlreadyExists("Una restauración completa necesita una instalación "
                                    "vacía (sin espacios ni cuentas); restaure espacios "
                                    "sueltos con --space.")
    fs = store_for(settings)
    home = Path(fs.realpath(settings.data_path / "spaces"))
    for n in wanted:
        if Path(fs.realpath(layout.space_dir(settings, n))).parent != home:  # belt and braces
            raise BackupError(f"El espacio {n!r} quedaría fuera de la carpeta de datos.")
        if _taken(fs, layout.space_dir(settings, n)):
            raise AlreadyExists(f"La carpeta del espacio '{n}' ya existe en "
                                f"{layout.space_dir(settings, n)}; no se sobrescribe.")
    staging = settings.data_path / "spaces" / f".restore-{uuid.uuid4().hex[:12]}"
    placed: list[Path] = []
    try:
        for n in wanted:
            for area in AREAS:
                # Archives written before the trash existed have no such area.
                _extract_space(fs, tar, n, by_name[n].get(area, {}), staging / n / area, area)
            fs.mkdir(staging / n / "tmp")

        def place() -> None:
            for n in wanted:
                final = layout.space_dir(settings, n)
                fs.replace(staging / n, final, durable=False)
                placed.append(final)

        counts = _insert_rows(db, tar, wanted, whole, reserved_ok, before_commit=place)
    except BaseException:
        for p in placed:
            fs.rmtree(p)
        raise
    finally:
        fs.rmtree(staging)
    summaries = []
    for n in wanted:
        with db.engine.connect() as c:
            sp_id = c.scalars(select(Space.id).where(Space.name == n)).one()
        drift = quota.recount(db, fs, sp_id, n,
                              layout.space_dir(settings, n) / "files")
        want = by_name[n]
        if (drift.after_bytes, drift.after_files) != (want["used_bytes"], want["used_files"]):
            log.warning("restore: space %s counters recounted %d/%d (backup said %d/%d)", n,
                        drift.after_bytes, drift.after_files, want["used_bytes"],
                        want["used_files"])
        summaries.append(SpaceSummary(n, drift.after_bytes, drift.after_files, want["files"]))
    log.info("restored from %s: spaces=%s", src, ", ".join(wanted))
    return Report(src, summaries, counts)


def _taken(fs: Store, p: Path) -> bool:
    """Whether anything (a symbolic link included) is at ``p``."""
    try:
        fs.lstat(p)
    except FileNotFoundError:
        return False
    return True


def _insert_rows(db: Database, tar: tarfile.TarFile, wanted: list[str], whole: bool,
                 reserved_ok: bool, before_commit: Callable[[], None]) -> dict[str, int]:
    """Insert the rows in one transaction; ``before_commit`` (which puts the files
    in place) runs inside it, so rows and files arrive together or not at all."""
    counts: dict[str, int] = {}
    with db.engine.begin() as c:
        if whole:
            for t in tables():
                batch = [_load_row(t, r) for r in _rows(tar, t.name)]
                if t.name == "spaces":  # every space of the installation gets a folder
                    for row in batch:
                        check_space_name(row.get("name"), reserved_ok=reserved_ok)
                if batch:
                    c.execute(insert(t), batch)
                counts[t.name] = len(batch)
            if db.engine.dialect.name == "postgresql":
                for t in tables():
                    if "id" in t.columns and len(t.primary_key.columns) == 1:
                        # Table names come from our own schema, never from the archive.
                        seq = f"pg_get_serial_sequence('{t.name}', 'id')"
                        top = f"(SELECT MAX(id) FROM {t.name})"  # noqa: S608
                        c.execute(text(f"SELECT setval({seq}, COALESCE({top}, 0) + 1, false)"))
            _end_sessions(c, None)
            before_commit()
            return counts
        # Selected spaces: new ids; references to them follow.
        spaces_t = Base.metadata.tables["spaces"]
        accounts_t = Base.metadata.tables.get("accounts")
        space_ids: dict[int, int] = {}
        old_rows = {r["name"]: r for r in _rows(tar, "spaces")}
        for n in wanted:
            row = _load_row(spaces_t, old_rows[n])
            old_id = row.pop("id")
            if row.get("account_id") is not None and accounts_t is not None and \
                    c.execute(select(accounts_t.c.id).where(
                        accounts_t.c.id == row["account_id"])).first() is None:
                row["account_id"] = None
            space_ids[old_id] = c.execute(insert(spaces_t).returning(spaces_t.c.id),
                                          row).scalar_one()
        counts["spaces"] = len(space_ids)
        prefixes = tuple(f"/dav/{n}" for n in wanted)
        for t in tables():
            if t.name == "spaces" or not space_scoped(t):
                continue
            id_map: dict[int, int] = {}
            deferred: list[tuple[int, int]] = []
            n_rows = 0
            for raw in _rows(tar, t.name):
                row = _load_row(t, raw)
                if t.name == "dav_properties":
                    if not (row["path"] in prefixes or row["path"].startswith(
                            tuple(p + "/" for p in prefixes))):
                        continue
                elif row.get("space_id") not in space_ids:
                    continue
                else:
                    row["space_id"] = space_ids[row["space_id"]]
                old_id = row.pop("id", None)
                dup = row.pop("duplicate_of", None) if "duplicate_of" in t.columns else None
                new_id = c.execute(insert(t).returning(t.c.id), row).scalar_one()
                if old_id is not None:
                    id_map[old_id] = new_id
                if dup is not None:
                    deferred.append((new_id, dup))
                n_rows += 1
            for new_id, dup in deferred:
                c.execute(t.update().where(t.c.id == new_id)
                          .values(duplicate_of=id_map.get(dup)))
            counts[t.name] = n_rows
        _end_sessions(c, list(space_ids.values()))
        before_commit()
    return counts


def _end_sessions(c: Connection, space_ids: list[int] | None) -> None:
    """The archive holds the session versions of when it was written: a session
    that ended after it (a logout, a password change) would come back. Every
    portal session of what is restored ends instead (the users log in again):
    all accounts and members for a whole archive, else the restored spaces'
    members."""
    version = new_session_version()
    members = Base.metadata.tables["members"]
    if space_ids is None:
        c.execute(Base.metadata.tables["accounts"].update().values(session_version=version))
        c.execute(members.update().values(session_version=version))
    elif space_ids:
        c.execute(members.update().where(members.c.space_id.in_(space_ids))
                  .values(session_version=version))
