"""``resguardo backup`` and ``resguardo restore``: the database and the files
of all spaces or some, into one archive and back (never overwriting)."""

from __future__ import annotations

import argparse

from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings

#: The commands this module adds to ``resguardo`` (and runs).
COMMANDS = ("backup", "restore")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bp = sub.add_parser("backup", help="respaldo de la base de datos y los archivos")
    bp.add_argument("archive", help="archivo a crear (.tar o .tar.gz)")
    bp.add_argument("--space", action="append", dest="spaces", metavar="ESPACIO",
                    help="sólo este espacio (repetible); por omisión, todo")
    bp.add_argument("--no-verify", action="store_false", dest="verify",
                    help="no leer el respaldo completo al terminar para comprobar que se "
                         "puede restaurar (por omisión se comprueba)")
    rsp = sub.add_parser("restore", help="restaura un respaldo (nunca sobrescribe)")
    rsp.add_argument("archive")
    rsp.add_argument("--space", action="append", dest="spaces", metavar="ESPACIO",
                     help="sólo este espacio (repetible); por omisión, todo el respaldo")
    rsp.add_argument("--allow-reserved-names", action="store_true", dest="reserved_ok",
                     help="restaurar también espacios con un nombre reservado para las rutas "
                          "del servicio (sólo los que ya se llamaban así antes de la lista)")


def run(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    if args.command in ("backup", "restore"):
        from pathlib import Path

        from spaces.jobs import backup, restore

        if args.command == "backup":
            report = backup.backup(settings, db, Path(args.archive), args.spaces,
                                   check=args.verify)
            verb = "respaldado"
        else:
            report = restore.restore(settings, db, Path(args.archive), args.spaces,
                                     reserved_ok=args.reserved_ok)
            verb = "restaurado"
        from spaces.access.service import RESERVED_SPACE_NAMES

        for sp in report.spaces:
            print(f"{sp.name}: {verb} ({len(sp.files)} archivos, {sp.used_bytes} bytes, "
                  f"{sp.used_files} archivos y carpetas)")
            if args.command == "backup" and sp.name in RESERVED_SPACE_NAMES:
                print(f"  Aviso: «{sp.name}» es un nombre reservado para las rutas del servicio; "
                      "para restaurar este espacio use --allow-reserved-names.")
        print(f"{len(report.spaces)} espacios; archivo {report.archive}"
              + (" (verificado: se leyó completo y se puede restaurar)." if report.verified
                 else "."))
        return 0
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it
