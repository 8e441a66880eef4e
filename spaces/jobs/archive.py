"""The backup archive: what it holds, and reading it back whole under the rules a
restore applies (:func:`verify`), without extracting anything.

The archive is a tar file (``.tar.gz`` compresses) holding:

- ``files/<space>/...``: every file and folder of each space, with its mtime;
- ``trash/<space>/...`` and ``versions/<space>/...``: its trash bin and the
  earlier versions of its files (its reserve, outside the plan; their rows
  are in the database part);
- ``db/<table>.jsonl``: the rows, one JSON object per line, typed by the schema;
- ``manifest.json`` (last): format, schema revision, and for each space its
  counters and the size and sha256 of every file.

Writing one is :mod:`spaces.jobs.backup`; restoring it, :mod:`spaces.jobs.restore`.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, text

from spaces.core.db import Database
from spaces.core.errors import InvalidName, SpaceError
from spaces.core.models import Base
from spaces.files import names, quota

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


def tables() -> list[Table]:
    """The tables an archive carries, parents before children."""
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED_TABLES]


def space_scoped(t: Table) -> bool:
    """Whether the rows of ``t`` belong to one space (archived with it)."""
    return t.name in ("spaces", "dav_properties") or "space_id" in t.columns


def schema_revision(db: Database) -> str:
    """The database's Alembic revision (an archive records the one it was written at)."""
    with db.engine.connect() as c:
        return str(c.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


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


class Members:
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
    every member against the manifest under the rules of :class:`Members`,
    and every row parses. Returns the manifest; raises BackupError naming the
    first problem (a damaged or truncated archive included)."""
    try:
        with tarfile.open(src, "r:*") as tar:
            manifest = read_manifest(tar)
            spaces = manifest.get("spaces")
            if not isinstance(spaces, list):
                raise BackupError("El manifiesto del respaldo no lista sus espacios.")
            checks: dict[str, Members] = {}
            for sp in spaces:
                name = check_space_name(sp.get("name") if isinstance(sp, dict) else None,
                                        reserved_ok=reserved_ok)
                for area in AREAS:
                    checks[f"{area}/{name}/"] = Members(area, name, sp.get(area) or {})
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
