"""Backups: one archive with the database rows and the files of one space or all,
restorable on a fresh machine (even onto another database engine).

The archive is a tar file (``.tar.gz`` compresses) holding:

- ``files/<space>/...``: every file and folder of each space, with its mtime;
- ``trash/<space>/...`` and ``versions/<space>/...``: its trash bin and the
  earlier versions of its files (its reserve, outside the plan; their rows
  are in the database part);
- ``db/<table>.jsonl``: the rows, one JSON object per line, typed by the schema;
- ``manifest.json`` (last): format, schema revision, and for each space its
  counters and the size and sha256 of every file.

Consistency: each space is captured under its commit lock
(:func:`spaces.files.storage.space_guard`, which every write of every node takes to
replace a file): its files are hard-linked into a snapshot (metadata only, so
the lock is held for moments) and its rows read in the same breath; the
snapshot is archived after the lock is released. Writes replace files by
``rename`` and never change a file in place, so the snapshot's contents are
those of that moment. Uploads still streaming are not part of it.

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
import os
import shutil
import stat
import tarfile
import time
import unicodedata
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy import Connection, Table, func, insert, or_, select, text

from spaces.core.db import Database, below, below_params
from spaces.core.errors import AlreadyExists, InvalidName, NotFound, SpaceError
from spaces.core.models import Base, DeadProperty, Space, new_session_version
from spaces.core.settings import Settings
from spaces.files import names, quota, storage

log = logging.getLogger(__name__)

FORMAT = "resguardo-backup"
VERSION = 1
#: Transient: a restored lock would be held by nobody (nor would its placeholder, nor an
#: upload lease).
SKIPPED_TABLES = frozenset({"dav_locks", "lock_placeholders", "upload_leases"})


class BackupError(SpaceError):
    """The archive is not a Resguardo backup, is damaged, or cannot be restored here."""


#: What is archived of each space: its files, and beside them its safety net
#: (the trash and the earlier versions).
AREAS = ("files", *quota.HELD_AREAS)


@dataclass
class SpaceSummary:
    name: str
    used_bytes: int
    used_files: int
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The same for the trash and the versions: area -> relative path -> size, sha256.
    areas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass
class Report:
    archive: Path
    spaces: list[SpaceSummary]
    tables: dict[str, int]
    #: The archive was read back whole and would restore (:func:`verify`).
    verified: bool = False


# -- rows <-> JSON -------------------------------------------------------------------------

def _dump_value(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return v


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


def _tables() -> list[Table]:
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED_TABLES]


def _space_scoped(t: Table) -> bool:
    return t.name in ("spaces", "dav_properties") or "space_id" in t.columns


def _schema_revision(db: Database) -> str:
    with db.engine.connect() as c:
        return str(c.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


# -- backup ---------------------------------------------------------------------------------

def _props_filter(name: str) -> Any:
    """The dead properties of space ``name`` (their paths are the drive's URLs)."""
    base = f"/dav/{name}"
    return or_(DeadProperty.path == base, below(DeadProperty.path)).params(
        **below_params(base))


def _space_rows(db: Database, space: Space) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    with db.engine.connect() as c:
        for t in _tables():
            if not _space_scoped(t):
                continue
            if t.name == "spaces":
                q = select(t).where(t.c.id == space.id)
            elif t.name == "dav_properties":
                q = select(t).where(_props_filter(space.name))
            else:
                q = select(t).where(t.c.space_id == space.id)
            rows[t.name] = [dict(r._mapping) for r in c.execute(q)]
    return rows


def _snapshot(src: Path, dst: Path) -> None:
    """Hard-link every file of ``src`` under ``dst`` (copy where links are not
    possible); folders are created. Symlinks and special files are skipped."""
    dst.mkdir(parents=True)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst if rel == "." else dst / rel
        for d in dirnames:
            if not os.path.islink(os.path.join(dirpath, d)):
                (target / d).mkdir()
                shutil.copystat(os.path.join(dirpath, d), target / d)
        for f in filenames:
            sp = os.path.join(dirpath, f)
            if not stat.S_ISREG(os.lstat(sp).st_mode):
                continue
            try:
                os.link(sp, target / f)
            except OSError:
                shutil.copy2(sp, target / f)
    shutil.copystat(src, dst)


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


def _add_tree(tar: tarfile.TarFile, root: Path, prefix: str) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            ti = tar.gettarinfo(os.path.join(dirpath, d), f"{prefix}/{rel}")
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tar.addfile(ti)
        for f in sorted(filenames):
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            path = os.path.join(dirpath, f)
            ti = tar.gettarinfo(path, f"{prefix}/{rel}")
            if ti.islnk():
                # Another member shares this file's inode (the snapshot links
                # every file; two names of one file end up here): store the
                # bytes again. A restore accepts regular files and folders only.
                ti.type, ti.linkname = tarfile.REGTYPE, ""
                ti.size = os.lstat(path).st_size
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            with open(path, "rb") as fh:
                hashing = _Hashing(fh)
                tar.addfile(ti, hashing)
            files[rel] = {"size": ti.size, "sha256": hashing.h.hexdigest()}
    return files


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
    revision = _schema_revision(db)
    mode: Literal["w:gz", "w"] = "w:gz" if dest.name.endswith((".tar.gz", ".tgz")) else "w"
    partial = dest.with_name(dest.name + f".partial-{os.getpid()}")
    work = settings.data_path / f".backup-{uuid.uuid4().hex[:12]}"
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in _tables()}
    summaries: list[SpaceSummary] = []
    try:
        with tarfile.open(partial, mode) as tar:
            for sp in spaces:
                home = storage.space_dir(settings, sp.name)
                snap = work / sp.name
                with storage.space_guard(settings, db, sp.id):
                    for area in AREAS:
                        if (home / area).is_dir():
                            _snapshot(home / area, snap / area)
                        else:
                            (snap / area).mkdir(parents=True)
                    space_rows = _space_rows(db, sp)
                for table, found in space_rows.items():
                    rows[table].extend(found)
                counters = space_rows["spaces"][0]
                summary = SpaceSummary(sp.name, int(counters["used_bytes"]),
                                       int(counters["used_files"]))
                for area in AREAS:
                    summary.areas[area] = _add_tree(tar, snap / area, f"{area}/{sp.name}")
                summary.files = summary.areas.pop("files")
                shutil.rmtree(snap)
                summaries.append(summary)
            if names is None:
                with db.engine.connect() as c:
                    for t in _tables():
                        if not _space_scoped(t):
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
        shutil.rmtree(work, ignore_errors=True)
    log.info("backup written: %s spaces=%d verified=%s", dest, len(summaries), check)
    return Report(dest, summaries, {t: len(r) for t, r in rows.items()}, verified=check)


# -- restore --------------------------------------------------------------------------------

def read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.getmember("manifest.json")
        fh = tar.extractfile(member)
        manifest: dict[str, Any] = json.loads(fh.read()) if fh else {}
    except (KeyError, ValueError) as exc:
        raise BackupError("El archivo no es un respaldo de Resguardo (falta manifest.json).") \
            from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError("Formato de respaldo no reconocido.")
    return manifest


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
    current = _schema_revision(db)
    known = {r.revision for r in script.walk_revisions(base="base", head=current)}
    if revision not in known:
        raise BackupError(f"El respaldo es de una versión del esquema ({revision}) que esta "
                          "instalación no conoce; actualice Resguardo antes de restaurar.")


#: What a refused reserved name tells the operator.
ALLOW_RESERVED_HINT = ("si ese espacio ya tenía ese nombre antes de la lista de nombres "
                       "reservados, restáurelo a sabiendas con --allow-reserved-names")


def check_space_name(name: Any, *, reserved_ok: bool = False) -> str:
    """A space name found in an archive (its manifest or its rows), held to the
    rules of space creation (:func:`spaces.access.service.check_new_space_name`:
    lower-case letters, digits, '-' and '_', so that it names a folder
    directly under ``data_dir/spaces`` and nothing else; and none of the
    names reserved for the server's routes unless ``reserved_ok``: a space
    named so before the list existed)."""
    from spaces.access import service

    try:
        if isinstance(name, str) and service.normalize_space_name(name) == name:
            if name in service.RESERVED_SPACE_NAMES and not reserved_ok:
                raise BackupError(f"El respaldo nombra un espacio con un nombre reservado "
                                  f"para el servicio: «{name}»; no se restaura ("
                                  f"{ALLOW_RESERVED_HINT}).")
            return name
    except InvalidName:
        pass
    raise BackupError(f"El respaldo nombra un espacio no válido: {name!r}; no se restaura.")


class _Members:
    """The rules every member of ``<area>/<space>/`` passes, the same when a
    backup reads itself back (:func:`verify`) and when a restore extracts it:
    a folder or a regular file (never a link or a device), a path with no
    empty, '.' or '..' segment, NUL or backslash, each file exactly as the
    manifest lists it (size and sha256), none missing; and in ``files`` —
    what enters the drive — names the drive accepts (NFC, the rules of
    :func:`spaces.files.names.check_new_name`, no two that Windows cannot tell
    apart in one folder)."""

    def __init__(self, area: str, space: str, files: dict[str, dict[str, Any]]) -> None:
        self.area, self.space, self.files = area, space, files
        self.prefix = f"{area}/{space}/"
        self.seen: set[str] = set()
        self._folds: dict[tuple[str, ...], dict[str, str]] = {}

    def parts(self, m: tarfile.TarInfo) -> list[str] | None:
        """The path of ``m`` below the prefix (None if not under it), checked."""
        if not m.name.startswith(self.prefix):
            return None
        rel = m.name[len(self.prefix):]
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") for p in parts) or "\x00" in rel \
                or "\\" in rel:
            raise BackupError(f"Ruta no válida en el respaldo: {m.name!r}")
        if not (m.isdir() or m.isfile()) or m.islnk() or m.issym():
            raise BackupError(f"Elemento no permitido en el respaldo: {m.name!r}")
        if self.area == "files":
            self._check_names(parts)
        return parts

    def _check_names(self, parts: list[str]) -> None:
        for i, part in enumerate(parts):
            where = f"{self.space}:/{'/'.join(parts[:i + 1])}"
            try:
                if unicodedata.normalize("NFC", part) != part:
                    raise InvalidName("no está en la forma Unicode NFC que usa la unidad")
                names.check_new_name(part)
            except InvalidName as exc:
                raise BackupError(f"Nombre no admitido en el respaldo ({where}): {exc}") \
                    from None
            siblings = self._folds.setdefault(tuple(parts[:i]), {})
            other = siblings.setdefault(names.windows_fold(part), part)
            if other != part:
                raise BackupError(
                    f"El respaldo tiene «{other}» y «{part}» en la misma carpeta "
                    f"({self.space}:/{'/'.join(parts[:i])}); Windows no los distingue.")

    def file_read(self, m: tarfile.TarInfo, rel: str, digest: str) -> None:
        want = self.files.get(rel)
        if want is None or want["sha256"] != digest or want["size"] != m.size:
            raise BackupError(f"El archivo {self.space}:{rel} del respaldo está dañado "
                              "(no coincide con su sha256).")
        self.seen.add(rel)

    def finish(self) -> None:
        missing = set(self.files) - self.seen
        if missing:
            raise BackupError(f"Faltan {len(missing)} archivos del espacio '{self.space}' "
                              "en el respaldo.")


def verify(src: Path, *, reserved_ok: bool = False) -> dict[str, Any]:
    """Read the archive ``src`` back whole, as a restore would, without
    extracting anything: the manifest, the space names (manifest and rows;
    reserved ones only with ``reserved_ok``, as ``restore``),
    every member against the manifest under the rules of :class:`_Members`,
    and every row parses. Returns the manifest; raises BackupError naming the
    first problem (a damaged or truncated archive included)."""
    try:
        with tarfile.open(src, "r:*") as tar:
            manifest = read_manifest(tar)
            spaces = manifest.get("spaces")
            if not isinstance(spaces, list):
                raise BackupError("El manifiesto del respaldo no lista sus espacios.")
            checks: dict[str, _Members] = {}
            for sp in spaces:
                name = check_space_name(sp.get("name") if isinstance(sp, dict) else None,
                                        reserved_ok=reserved_ok)
                for area in AREAS:
                    checks[f"{area}/{name}/"] = _Members(area, name, sp.get(area) or {})
            for m in tar.getmembers():
                if m.name == "manifest.json":
                    continue
                if m.name.startswith("db/") and m.name.endswith(".jsonl") and m.isfile():
                    _read_rows(tar, m, reserved_ok)
                    continue
                area, _, rest = m.name.partition("/")
                check = checks.get(f"{area}/{rest.partition('/')[0]}/")
                parts = check.parts(m) if check is not None else None
                if check is None or parts is None:
                    raise BackupError(f"Elemento no permitido en el respaldo: {m.name!r}")
                if m.isfile():
                    fh = tar.extractfile(m)
                    assert fh is not None
                    h = hashlib.sha256()
                    while chunk := fh.read(1024 * 1024):
                        h.update(chunk)
                    check.file_read(m, "/".join(parts), h.hexdigest())
            for check in checks.values():
                check.finish()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"El respaldo {src} está dañado o incompleto: {exc}") from exc
    return manifest


def _read_rows(tar: tarfile.TarFile, m: tarfile.TarInfo, reserved_ok: bool) -> None:
    """Every line of a rows member parses (and spaces rows name valid spaces)."""
    fh = tar.extractfile(m)
    assert fh is not None
    for n, line in enumerate(io.TextIOWrapper(fh, encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BackupError(f"{m.name}, línea {n}: no se puede leer ({exc}).") from None
        if m.name == "db/spaces.jsonl":
            check_space_name(row.get("name") if isinstance(row, dict) else None,
                             reserved_ok=reserved_ok)


def _extract_space(tar: tarfile.TarFile, name: str, files: dict[str, dict[str, Any]],
                   dest: Path, area: str = "files") -> None:
    """Extract ``<area>/<name>/`` into ``dest`` (under the rules of
    :class:`_Members`: never outside it) and check every file against the manifest."""
    check = _Members(area, name, files)
    dest.mkdir(parents=True)
    dirs: list[tuple[Path, int]] = []
    for m in tar.getmembers():
        parts = check.parts(m)
        if parts is None:
            continue
        target = dest.joinpath(*parts)
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            dirs.append((target, int(m.mtime)))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None
            h = hashlib.sha256()
            with open(target, "xb") as out:
                while chunk := src.read(1024 * 1024):
                    h.update(chunk)
                    out.write(chunk)
            os.chmod(target, 0o600)
            os.utime(target, (m.mtime, m.mtime))
            check.file_read(m, "/".join(parts), h.hexdigest())
    check.finish()
    for d, mtime in reversed(dirs):
        os.utime(d, (mtime, mtime))


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
    home = (settings.data_path / "spaces").resolve()
    for n in wanted:
        if storage.space_dir(settings, n).resolve().parent != home:  # belt and braces
            raise BackupError(f"El espacio {n!r} quedaría fuera de la carpeta de datos.")
        if storage.space_dir(settings, n).exists():
            raise AlreadyExists(f"La carpeta del espacio '{n}' ya existe en "
                                f"{storage.space_dir(settings, n)}; no se sobrescribe.")
    staging = settings.data_path / "spaces" / f".restore-{uuid.uuid4().hex[:12]}"
    placed: list[Path] = []
    try:
        for n in wanted:
            for area in AREAS:
                # Archives written before the trash existed have no such area.
                _extract_space(tar, n, by_name[n].get(area, {}), staging / n / area, area)
            (staging / n / "tmp").mkdir()

        def place() -> None:
            for n in wanted:
                final = storage.space_dir(settings, n)
                os.replace(staging / n, final)
                placed.append(final)

        counts = _insert_rows(db, tar, wanted, whole, reserved_ok, before_commit=place)
    except BaseException:
        for p in placed:
            shutil.rmtree(p, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summaries = []
    for n in wanted:
        with db.engine.connect() as c:
            sp_id = c.scalars(select(Space.id).where(Space.name == n)).one()
        drift = quota.recount(db, sp_id, n, storage.space_dir(settings, n) / "files")
        want = by_name[n]
        if (drift.after_bytes, drift.after_files) != (want["used_bytes"], want["used_files"]):
            log.warning("restore: space %s counters recounted %d/%d (backup said %d/%d)", n,
                        drift.after_bytes, drift.after_files, want["used_bytes"],
                        want["used_files"])
        summaries.append(SpaceSummary(n, drift.after_bytes, drift.after_files, want["files"]))
    log.info("restored from %s: spaces=%s", src, ", ".join(wanted))
    return Report(src, summaries, counts)


def _insert_rows(db: Database, tar: tarfile.TarFile, wanted: list[str], whole: bool,
                 reserved_ok: bool, before_commit: Callable[[], None]) -> dict[str, int]:
    """Insert the rows in one transaction; ``before_commit`` (which puts the files
    in place) runs inside it, so rows and files arrive together or not at all."""
    counts: dict[str, int] = {}
    with db.engine.begin() as c:
        if whole:
            for t in _tables():
                batch = [_load_row(t, r) for r in _rows(tar, t.name)]
                if t.name == "spaces":  # every space of the installation gets a folder
                    for row in batch:
                        check_space_name(row.get("name"), reserved_ok=reserved_ok)
                if batch:
                    c.execute(insert(t), batch)
                counts[t.name] = len(batch)
            if db.engine.dialect.name == "postgresql":
                for t in _tables():
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
        for t in _tables():
            if t.name == "spaces" or not _space_scoped(t):
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

