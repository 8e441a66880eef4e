"""The ``resguardo`` command: its top-level parser, ``serve``, ``migrate`` and
``config``, and the entry point (:func:`main`). The other subcommands live in
:mod:`resguardo.commands`, one module per group. Every error is one clear line
and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from resguardo.commands import auditlog, backups, billing, cfdi, files, operators, space
from spaces.core.db import Database, open_database
from spaces.core.errors import SpaceError
from spaces.core.settings import ConfigError, Settings
from spaces.core.settings_file import load_settings

#: The groups of subcommands, in the order ``resguardo --help`` lists them.
GROUPS = (space, cfdi, operators, billing, backups, auditlog, files)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resguardo", description="Resguardo: unidades WebDAV "
                                "con cuota, usuarios y resguardo de CFDI.")
    p.add_argument("--config", help="archivo TOML (o RESGUARDO_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    sv = sub.add_parser("serve", help="inicia la unidad y el portal en un solo proceso")
    sv.add_argument("--only", choices=("drive", "portal"),
                    help="sirve sólo la unidad (/dav/) o sólo el portal, para correrlos "
                    "en procesos o máquinas separados")
    sv.add_argument("--port", type=int, help="puerto TCP en vez de [server] port (para "
                    "varios procesos en una máquina con la misma configuración)")
    sub.add_parser("migrate", help="lleva la base de datos a la última versión")
    cp = sub.add_parser("config", help="configuración").add_subparsers(dest="action",
                                                                         required=True)
    cp.add_parser("example", help="imprime la configuración de ejemplo con cada clave")
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        from spaces.core.settings_file import example_toml

        sys.stdout.write(example_toml())
        return 0
    settings = load_settings(args.config)
    from resguardo.observe import configure_logging

    configure_logging(settings, sys.stderr)
    if args.command == "serve":
        from resguardo.server import serve

        if args.port is not None:
            settings.server.port = args.port
        return serve(settings, only=args.only)
    if args.command != "serve":
        # Commands print results, not the domain's info logs.
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    db = open_database(settings)
    try:
        return _dispatch(args, settings, db)
    finally:
        db.dispose()


def _dispatch(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    if args.command == "migrate":
        print("Base de datos al día.")
        return 0
    for group in GROUPS:
        if args.command in group.COMMANDS:
            return group.run(args, settings, db)
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it


#: Bits no file or folder Resguardo creates may have: the database, the space
#: folders and their files, the outbox's e-mails (set-password links) and
#: backups belong to the service's user alone (systemd units set UMask=0077;
#: this holds the same outside systemd).
PRIVATE_UMASK = 0o077


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (``serve`` included) with :data:`PRIVATE_UMASK` added to
    the process's umask; an in-process caller gets its own umask back."""
    old_umask = os.umask(0)
    os.umask(old_umask | PRIVATE_UMASK)
    try:
        return run(argv)
    except (SpaceError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"error: base de datos no disponible: {exc.__class__.__name__}: "
              f"{str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        os.umask(old_umask)


if __name__ == "__main__":
    sys.exit(main())
