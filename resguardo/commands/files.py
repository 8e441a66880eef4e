"""``resguardo trash``, ``resguardo versions`` and ``resguardo quota``: a space's
trash (list, restore, empty, purge, reclaim), the earlier versions of its files
(list, restore) and the recount of its usage counters."""

from __future__ import annotations

import argparse
import json

from spaces.access import service
from spaces.access.files import space_files
from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings
from spaces.files import diskspace, layout, quota, trash
from spaces.files.guard import space_guard
from spaces.files.store import store_for
from spaces.jobs import sweeps

#: The commands this module adds to ``resguardo`` (and runs).
COMMANDS = ("trash", "versions", "quota")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tp = sub.add_parser("trash", help="papelera de los espacios").add_subparsers(
        dest="action", required=True)
    tl = tp.add_parser("list", help="lista la papelera de un espacio (lo más reciente primero)")
    tl.add_argument("space")
    tl.add_argument("--json", action="store_true")
    tre = tp.add_parser("restore", help="devuelve un elemento a su lugar (o con otro nombre)")
    tre.add_argument("space")
    tre.add_argument("id", type=int)
    te = tp.add_parser("empty", help="vacía la papelera de un espacio (no se puede deshacer)")
    te.add_argument("space")
    tpu = tp.add_parser("purge", help="borra lo vencido de la papelera y las versiones "
                        "(lo mismo que hace 'retention sweep')")
    tpu.add_argument("--older-than", type=int, dest="older_than", metavar="DÍAS",
                     help="días en la papelera (por omisión, [trash] days)")
    tpu.add_argument("--now", help="fecha de referencia AAAA-MM-DD (por omisión, hoy)")
    trc = tp.add_parser("reclaim", help="libera espacio: versiones más antiguas primero, "
                        "luego la papelera")
    trc.add_argument("space")
    trc.add_argument("size", help="cuánto liberar: 500M, 2G o bytes")
    vp = sub.add_parser("versions", help="versiones anteriores de los archivos").add_subparsers(
        dest="action", required=True)
    vl = vp.add_parser("list", help="lista las versiones de un archivo")
    vl.add_argument("space")
    vl.add_argument("path")
    vl.add_argument("--json", action="store_true")
    vr = vp.add_parser("restore", help="vuelve a poner una versión (la actual queda como versión)")
    vr.add_argument("space")
    vr.add_argument("id", type=int)

    qp = sub.add_parser("quota", help="cuota").add_subparsers(dest="action", required=True)
    rc = qp.add_parser("recount", help="recuenta los archivos y corrige los contadores")
    rc.add_argument("space", nargs="?")


def run(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    if args.command in ("trash", "versions"):
        return _trash(args, settings, db)
    if args.command == "quota" and args.action == "recount":
        spaces = [service.get_space(db, args.space)] if args.space else service.list_spaces(db)
        diskspace.rescue(settings)  # on a full disk the database needs the room
        for info in spaces:
            root = layout.space_dir(settings, info.name) / "files"
            with space_guard(settings, db, info.id):
                drift = quota.recount(db, store_for(settings), info.id, info.name, root)
            if drift.any:
                print(f"{info.name}: corregido {drift.before_bytes} -> {drift.after_bytes} bytes "
                      f"({drift.bytes:+d}), {drift.before_files} -> {drift.after_files} "
                      f"archivos ({drift.files:+d}); papelera y versiones "
                      f"{drift.before_held_bytes} -> {drift.after_held_bytes} bytes "
                      f"({drift.held_bytes:+d}), {drift.before_held_files} -> "
                      f"{drift.after_held_files} ({drift.held_files:+d})")
            else:
                print(f"{info.name}: sin diferencias ({drift.after_bytes} bytes, "
                      f"{drift.after_files} archivos; papelera y versiones "
                      f"{drift.after_held_bytes} bytes, {drift.after_held_files})")
        return 0
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it


def _trash(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from datetime import datetime

    from spaces.core.settings import parse_size
    from spaces.files import versions

    if args.action == "purge":
        now = datetime.fromisoformat(args.now) if args.now else None
        freed = sweeps.expire_trash(settings, db, now=now, older_than_days=args.older_than)
        print(f"Eliminados: {freed.items} elementos, {freed.bytes} bytes.")
        return 0
    info = service.get_space(db, args.space)
    files = space_files(settings, db, info.id, info.name, actor=audit.Actor.cli())
    if args.command == "versions":
        if args.action == "list":
            vs = versions.list_versions(files, args.path)
            if args.json:
                print(json.dumps([{"id": v.id, "path": v.path, "size": v.size,
                                   "mtime": v.mtime, "created_at": v.created_at.isoformat(),
                                   "created_by": v.created_by} for v in vs], indent=2))
            else:
                for v in vs:
                    print(f"{v.id}\t{v.created_at:%Y-%m-%d %H:%M}\t{v.size}\t"
                          f"{v.created_by or ''}\t{v.path}")
            return 0
        path = versions.restore_version(files, args.id)
        print(f"Versión {args.id} restaurada en {path}.")
        return 0
    if args.action == "list":
        items = trash.list_trash(files)
        if args.json:
            print(json.dumps([{"id": t.id, "path": t.path, "is_dir": t.is_dir, "size": t.size,
                               "files": t.files, "trashed_at": t.trashed_at.isoformat(),
                               "trashed_by": t.trashed_by,
                               "expires_at": t.expires_at.isoformat()} for t in items],
                             indent=2))
        else:
            for t in items:
                print(f"{t.id}\t{t.trashed_at:%Y-%m-%d %H:%M}\t{t.size}\t"
                      f"{t.trashed_by or ''}\t{t.path}{'/' if t.is_dir else ''}")
        return 0
    if args.action == "restore":
        print(f"Restaurado en {trash.restore_from_trash(files, args.id)}.")
        return 0
    if args.action == "empty":
        freed = trash.empty_trash(files)
    else:
        try:
            size = parse_size(args.size)
        except ValueError as exc:
            raise SpaceError(str(exc)) from None
        freed = trash.reclaim(files, size)
    print(f"Liberados {freed.bytes} bytes ({freed.items} elementos).")
    return 0

