"""``resguardo audit``: the audit log of the spaces' changes, listed or
exported as CSV (read only: nothing here alters a record)."""

from __future__ import annotations

import argparse
import json
import sys

from spaces.access import service
from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import NotFound, SpaceError
from spaces.core.settings import Settings

#: The commands this module adds to ``resguardo`` (and runs).
COMMANDS = ("audit",)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    au = sub.add_parser("audit", help="bitácora de cambios de los espacios").add_subparsers(
        dest="action", required=True)
    for name, helptext in (("list", "muestra la bitácora (lo más reciente primero)"),
                           ("export", "exporta la bitácora como CSV (lo más antiguo primero)")):
        ax = au.add_parser(name, help=helptext)
        if name == "export":
            ax.add_argument("archive", help="archivo CSV a crear ('-' para la salida estándar)")
        ax.add_argument("--space", help="sólo este espacio (por omisión, todos)")
        ax.add_argument("--from", dest="date_from", help="desde el día AAAA-MM-DD (UTC)")
        ax.add_argument("--to", dest="date_to", help="hasta el día AAAA-MM-DD (UTC, incluido)")
        ax.add_argument("--user", help="usuario que hizo el cambio")
        ax.add_argument("--action", dest="event", choices=[a.value for a in audit.Action])
        ax.add_argument("--path", help="texto en la ruta o el destino")
        if name == "list":
            ax.add_argument("--limit", type=int, default=100)
            ax.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    if args.command == "audit":
        return _audit(args, db)
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it


def _audit(args: argparse.Namespace, db: Database) -> int:
    from datetime import date

    try:
        since = date.fromisoformat(args.date_from) if args.date_from else None
        until = date.fromisoformat(args.date_to) if args.date_to else None
    except ValueError:
        raise SpaceError("Fecha no válida (use AAAA-MM-DD).") from None
    space_id, space_name = None, None
    if args.space:
        try:
            space_id = service.get_space(db, args.space).id
        except NotFound:  # a space that no longer exists: its records outlive it
            space_name = args.space.strip().lower()
    f = audit.Filter(space_id=space_id, space=space_name, date_from=since, date_to=until,
                     user=args.user, action=args.event, path=args.path)
    if args.action == "export":
        if args.archive == "-":
            n = audit.export_csv(db, f, sys.stdout)
        else:
            with open(args.archive, "x", encoding="utf-8", newline="") as out:
                n = audit.export_csv(db, f, out)
            print(f"{n} registros exportados a {args.archive}.")
        return 0
    entries = audit.query(db, f, limit=max(args.limit, 1))
    if args.json:
        print(json.dumps([dict(zip(audit.CSV_HEADER, audit.csv_row(e), strict=True))
                          for e in entries], ensure_ascii=False, indent=2))
        return 0
    for e in entries:
        print("\t".join((f"{e.at:%Y-%m-%d %H:%M:%S}Z", e.space_name, e.action, e.user or "-",
                         e.address or "-", e.path or "", e.dest or "",
                         "" if e.size is None else str(e.size), e.detail or "")))
    return 0

