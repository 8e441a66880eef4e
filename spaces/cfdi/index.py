"""The CFDI index of each space: what :mod:`spaces.cfdi.parse` found in the files.

Derived data — ``reindex`` rebuilds it from the files, keeping the ingest time
(and so the promised protection date) of documents it already knew. Writes
happen under the space's write lock, in the same step that stores, moves or
deletes the file, so the index never lags behind a protection decision:
:class:`IndexPolicy` is how the file core keeps it (one of the policies every
:class:`~spaces.files.storage.SpaceFiles` runs, see
:func:`spaces.access.files.space_files`).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select

from spaces.cfdi import parse as cfdi
from spaces.cfdi import retention
from spaces.core import audit
from spaces.core.db import Database, below, below_params
from spaces.core.models import CfdiDocument, Space
from spaces.core.settings import Settings
from spaces.files.policy import HEAD_BYTES, Folder, Policy
from spaces.files.store import Store, store_for

log = logging.getLogger(__name__)

#: Bytes of a file's start used to decide whether to examine it (enough for a
#: CFDI preceded by some white space, in UTF-32 too): what the file core keeps
#: of an upload's start.
SNIFF_BYTES = HEAD_BYTES

#: Fields that make two documents with one UUID the same fiscal document.
_IDENTITY = ("version", "tipo", "emisor_rfc", "receptor_rfc", "fecha", "fecha_timbrado",
             "total", "moneda")



#: Every stored XML runs these: built once (building them cost more than running them).
_SPACE = select(Space.tier, Space.name).where(Space.id == bindparam("sid"))
#: The first document of a space with this category and UUID that is no duplicate.
_FIRST = (select(CfdiDocument)
          .where(CfdiDocument.space_id == bindparam("sid"),
                 CfdiDocument.category == bindparam("category"),
                 CfdiDocument.uuid == bindparam("uuid"),
                 CfdiDocument.duplicate_of.is_(None))
          .order_by(CfdiDocument.id).limit(1))
_FORGET = delete(CfdiDocument).where(CfdiDocument.space_id == bindparam("space_id"),
                                     CfdiDocument.path == bindparam("path"))


def examine(store: Store, fs_path: Path, name: str | None = None) -> cfdi.Finding | None:
    """What the file at ``fs_path`` is (None if not worth examining, or if it
    cannot be read). ``name``: the name it has in the space (a temporary
    file's own name says nothing). Reads the whole file: call it outside the
    space's lock when possible and hand the finding to :func:`record`."""
    try:
        with store.open_read(fs_path) as fh:
            head = fh.read(SNIFF_BYTES)
            if not cfdi.worth_examining(name or fs_path.name, head):
                return None
            fh.seek(0)
            return cfdi.classify_stream(fh, size_hint=os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        log.warning("cfdi: could not read %s: %s", fs_path, exc)
        return None


#: What :func:`examine_tree` found: relative path -> (inode, finding).
Examined = dict[str, tuple[int, "cfdi.Finding | None"]]


def examine_tree(store: Store, root: Path, name: str) -> Examined:
    """:func:`examine` every file at or below ``root`` (a trash item or a
    version, whose content nobody changes), before the space's lock is taken;
    ``name``: the name ``root`` will have (a token's own name says nothing).
    Keyed by the path relative to ``root`` ("." for ``root`` itself), with the
    inode, so the caller can tell it is still the same file once it holds the
    lock (a rename keeps it)."""
    found: Examined = {}
    try:
        info = store.info(root)
        paths = [root] if info is not None and not info.is_dir else [
            Path(d) / n for d, _, names in store.walk(root) for n in names]
        for p in paths:
            st = store.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            rel = "." if p == root else str(p.relative_to(root))
            found[rel] = (st.st_ino, examine(store, p, name if p == root else None))
    except OSError as exc:
        log.warning("cfdi: could not examine %s: %s", root, exc)
    return found


def examined_for(store: Store, found: Examined | None, root: Path,
                 p: Path) -> cfdi.Finding | None:
    """The finding :func:`examine_tree` made for ``p`` (now at or below ``root``),
    if it is still the same file; None: examine it again."""
    if not found:
        return None
    rel = "." if p == root else str(p.relative_to(root))
    ino, finding = found.get(rel, (None, None))
    try:
        return finding if ino is not None and store.lstat(p).st_ino == ino else None
    except OSError:
        return None


def record(settings: Settings, db: Database, space_id: int, rel: str, fs_path: Path,
           *, now: datetime | None = None, keep_ingest: dict[str, Any] | None = None,
           actor: audit.Actor | None = None,
           finding: cfdi.Finding | None = None) -> cfdi.Finding | None:
    """Examine the file just stored at ``rel`` and record what it is.

    Returns the finding (None if the file is not XML at all). ``finding``:
    what :func:`examine` found in these same bytes before (outside the lock).
    A stamped CFDI
    gets ``protected_until`` = ingest + the tier's years; the same UUID already
    in the space is recorded as a duplicate (flagged as a conflict if the bytes
    differ) and is not a second protected document; an acuse marks its CFDI
    cancelled and shares its protection. A document that becomes protected
    here (not a duplicate, not one a reindex already knew) gets a
    ``cfdi_protected`` audit record by ``actor`` — after the index commits, so
    a failing audit write can never leave a stored CFDI unprotected.
    """
    rel = "/" + rel.strip("/")
    if finding is None:
        finding = examine(store_for(settings), fs_path)
    if finding is None:
        return None
    now = now or retention.now_utc()
    ingested = now
    if keep_ingest and keep_ingest.get("sha256") == finding.sha256:
        ingested = keep_ingest["ingested_at"]
    with db.engine.connect() as c:
        tier, space_name = c.execute(_SPACE, {"sid": space_id}).one()
    years = retention.years_for(settings, str(tier))
    f = finding.fields
    with db.session() as s:
        s.execute(_FORGET, {"space_id": space_id, "path": rel})
        doc = CfdiDocument(
            space_id=space_id, path=rel, category=finding.category,
            reason=finding.reason[:255] or None, size=finding.size, sha256=finding.sha256,
            ingested_at=ingested, conflict=False, cancelled=False,
            uuid=f.get("uuid"), version=f.get("version"), tipo=f.get("tipo"),
            emisor_rfc=f.get("emisor_rfc"), emisor_nombre=(f.get("emisor_nombre") or None),
            receptor_rfc=f.get("receptor_rfc"),
            receptor_nombre=(f.get("receptor_nombre") or None),
            fecha=f.get("fecha"), fecha_timbrado=f.get("fecha_timbrado"),
            total=f.get("total"), monto_pagado=f.get("monto_pagado"), moneda=f.get("moneda"),
        )
        first: CfdiDocument | None = None
        if finding.category in retention.PROTECTED_CATEGORIES:
            doc.protected_until = retention.add_years(ingested, years)
            first = s.scalar(_FIRST, {"sid": space_id, "category": finding.category,
                                      "uuid": doc.uuid})
            if first is not None:
                doc.duplicate_of = first.id
                # The same document again (byte-identical, or only spelled differently,
                # like a lower-case UUID) is a plain duplicate; different fiscal
                # content under the same UUID is a conflict the customer must see.
                doc.conflict = first.sha256 != finding.sha256 and any(
                    getattr(first, k) != getattr(doc, k) for k in _IDENTITY)
                # Protected like the first: which copy is the real one is for
                # the customer to tell, and a fake planted first must not leave
                # the real one deletable.
                log.info("cfdi duplicate: space=%s uuid=%s path=%s conflict=%s", space_id,
                         doc.uuid, rel, doc.conflict)
            if finding.category == cfdi.ACUSE and doc.duplicate_of is None:
                target = s.scalar(_FIRST, {"sid": space_id, "category": cfdi.INDEXED,
                                           "uuid": doc.uuid})
                if target is not None:
                    target.cancelled = True
                    if target.protected_until and (doc.protected_until is None or
                                                   target.protected_until > doc.protected_until):
                        doc.protected_until = target.protected_until
            elif finding.category == cfdi.INDEXED and doc.duplicate_of is None:
                acuse = s.scalar(_FIRST, {"sid": space_id, "category": cfdi.ACUSE,
                                          "uuid": doc.uuid})
                if acuse is not None:
                    doc.cancelled = True
        s.add(doc)
        newly_protected = doc.protected_until is not None and ingested == now
        until = doc.protected_until
        copy_of = first.path if first is not None else None
        conflict = doc.conflict
    if newly_protected and until is not None:
        audit.record(db, space_id, audit.Action.CFDI_PROTECTED, actor=actor, path=rel,
                     size=finding.size, space_name=space_name,
                     detail=f"{finding.category} UUID {f.get('uuid') or '-'}; "
                            f"protegido hasta {until:%Y-%m-%d}"
                            + (f"; {'CONFLICTO con' if conflict else 'copia de'} {copy_of}"
                               if copy_of else ""))
    if finding.category == cfdi.INDEXED:
        log.info("cfdi indexed: space=%s uuid=%s path=%s", space_id, f.get("uuid"), rel)
    return finding


def forget(db: Database, space_id: int, rels: list[str]) -> None:
    """Files at ``rels`` were deleted (or replaced by a non-XML file)."""
    if not rels:
        return
    with db.engine.begin() as c:
        for rel in rels:
            c.execute(_FORGET, {"space_id": space_id, "path": "/" + rel.strip("/")})


def forget_tree(db: Database, space_id: int, rel: str, keep: set[str]) -> None:
    """A folder was deleted, except the protected paths in ``keep``."""
    rel = "/" + rel.strip("/")
    with db.session() as s:
        rows = s.scalars(select(CfdiDocument).where(
            CfdiDocument.space_id == space_id,
            or_(CfdiDocument.path == rel, below(CfdiDocument.path))), below_params(rel))
        for row in rows:
            if row.path not in keep:
                s.delete(row)


class IndexPolicy(Policy):
    """The index in the file core: what is stored is examined (before the
    space's lock, when the file core can: :meth:`prepare`) and recorded, a
    stamped CFDI protected from then on; what leaves is forgotten. A rename's
    rows move with the holds (:meth:`spaces.cfdi.retention.RetentionPolicy.after_move`)."""

    def prepare(self, files: Folder, src: Path, name: str,
                head: bytes | None = None) -> Examined | None:
        if head is not None and not cfdi.worth_examining(name, head):
            return None
        return examine_tree(files.store, src, name)

    def after_store(self, files: Folder, rel: str, fs_path: Path, *, new: bool,
                    head: bytes | None, prepared: Any, root: Path) -> None:
        """Record the file if it is worth examining (a replaced file that no
        longer is leaves the index)."""
        if head is None:
            try:
                with files.store.open_read(fs_path) as fh:
                    head = fh.read(SNIFF_BYTES)
            except OSError:
                return
        if cfdi.worth_examining(fs_path.name, head):
            record(files.settings, files.db, files.space_id, rel, fs_path, actor=files.actor,
                   finding=examined_for(files.store, prepared, root, fs_path))
        elif not new:
            forget(files.db, files.space_id, [rel])

    def after_delete(self, files: Folder, rel: str, *, is_dir: bool,
                     kept: frozenset[str] = frozenset()) -> None:
        if is_dir:
            forget_tree(files.db, files.space_id, rel, set(kept))
        else:
            forget(files.db, files.space_id, [rel])


@dataclass(frozen=True)
class Query:
    uuid: str | None = None
    rfc: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    tipo: str | None = None
    min_total: str | None = None
    max_total: str | None = None
    include_other: bool = False


def search(db: Database, space_id: int, q: Query) -> list[CfdiDocument]:
    """Documents of a space matching ``q`` (stamped and acuses by default)."""
    stmt = select(CfdiDocument).where(CfdiDocument.space_id == space_id)
    if not q.include_other:
        stmt = stmt.where(CfdiDocument.category.in_(retention.PROTECTED_CATEGORIES))
    if q.uuid:
        stmt = stmt.where(CfdiDocument.uuid == q.uuid.strip().upper())
    if q.rfc:
        r = q.rfc.strip().upper()
        stmt = stmt.where(or_(CfdiDocument.emisor_rfc == r, CfdiDocument.receptor_rfc == r))
    if q.date_from:
        stmt = stmt.where(CfdiDocument.fecha >= q.date_from)
    if q.date_to:
        stmt = stmt.where(CfdiDocument.fecha <= q.date_to + "T23:59:59")
    if q.tipo:
        stmt = stmt.where(CfdiDocument.tipo == q.tipo)
    with db.session() as s:
        rows = list(s.scalars(stmt.order_by(CfdiDocument.fecha, CfdiDocument.id)))
    if q.min_total or q.max_total:
        from decimal import Decimal, InvalidOperation

        def total(d: CfdiDocument) -> Decimal:
            try:
                return Decimal(d.total or "0")
            except InvalidOperation:
                return Decimal("0")

        lo = Decimal(q.min_total) if q.min_total else None
        hi = Decimal(q.max_total) if q.max_total else None
        rows = [d for d in rows
                if (lo is None or total(d) >= lo) and (hi is None or total(d) <= hi)]
    return rows


def custody_count(db: Database, space_id: int) -> int:
    """How many stamped CFDI the space keeps (duplicates not counted)."""
    with db.engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(CfdiDocument).where(
            CfdiDocument.space_id == space_id, CfdiDocument.category == cfdi.INDEXED,
            CfdiDocument.duplicate_of.is_(None))) or 0)


def reindex(settings: Settings, db: Database, space_id: int, files_root: Path) -> int:
    """Rebuild a space's index from its files. Documents already known keep
    their ingest time (and so their protection date). Returns files examined."""
    with db.session() as s:
        known = {d.path: {"sha256": d.sha256, "ingested_at": d.ingested_at}
                 for d in s.scalars(select(CfdiDocument).where(
                     CfdiDocument.space_id == space_id))}
        s.execute(delete(CfdiDocument).where(CfdiDocument.space_id == space_id))
    store = store_for(settings)
    paths = []
    for dirpath, _dirnames, filenames in store.walk(files_root):
        for name in filenames:
            fp = Path(dirpath) / name
            try:
                regular = stat.S_ISREG(store.lstat(fp).st_mode)
            except OSError:
                continue
            if regular:
                paths.append(("/" + str(fp.relative_to(files_root)), fp))
    # Documents known before keep their order, so an original stays the
    # original (and protected) and its copies stay duplicates.
    far_future = datetime.max
    paths.sort(key=lambda item: (known.get(item[0], {}).get("ingested_at") or far_future,
                                 item[0]))
    examined = 0
    for rel, fp in paths:
        if record(settings, db, space_id, rel, fp, keep_ingest=known.get(rel)) is not None:
            examined += 1
    return examined
