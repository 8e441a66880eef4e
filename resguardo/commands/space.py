"""``resguardo space`` and ``resguardo user``: spaces (create, list, show, change
plan) and the users of a space (add, password, remove, list)."""

from __future__ import annotations

import argparse
import json
import sys

from spaces.access import service
from spaces.core import audit, formats
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings
from spaces.files import quota

#: The commands this module adds to ``resguardo`` (and runs).
COMMANDS = ("space", "user")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("space", help="espacios").add_subparsers(dest="action", required=True)
    c = sp.add_parser("create", help="crea un espacio")
    c.add_argument("name")
    c.add_argument("--tier", required=True)
    c.add_argument("--owner", dest="owner_email")
    sp.add_parser("list", help="lista los espacios")
    s = sp.add_parser("show", help="muestra un espacio")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    t = sp.add_parser("tier", help="cambia el plan de un espacio")
    t.add_argument("name")
    t.add_argument("tier")

    up = sub.add_parser("user", help="usuarios de un espacio").add_subparsers(
        dest="action", required=True)
    a = up.add_parser("add", help="agrega un usuario")
    a.add_argument("space")
    a.add_argument("user")
    a.add_argument("--role", default="editor", choices=service.ROLES)
    a.add_argument("--password-stdin", action="store_true", required=True,
                   help="lee la contraseña de la entrada estándar")
    pw = up.add_parser("passwd", help="cambia la contraseña")
    pw.add_argument("space")
    pw.add_argument("user")
    pw.add_argument("--password-stdin", action="store_true", required=True)
    r = up.add_parser("remove", help="elimina un usuario")
    r.add_argument("space")
    r.add_argument("user")
    ul = up.add_parser("list", help="lista los usuarios de un espacio")
    ul.add_argument("space")


def read_password() -> str:
    """A password from the first line of standard input (``--password-stdin``)."""
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _space_dict(settings: Settings, info: service.SpaceInfo, users: int) -> dict[str, object]:
    return {
        "name": info.name, "id": info.id, "tier": info.tier, **quota.as_dict(info.usage),
        "max_users": info.max_users, "users": users, "status": info.status,
        "owner_email": info.owner_email,
        "paid_until": info.paid_until.isoformat() if info.paid_until else None,
        "drive_url": f"{settings.base_url()}/dav/{info.name}/",
    }


def run(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    if args.command == "space":
        if args.action == "create":
            info = service.create_space(settings, db, args.name, args.tier, args.owner_email,
                                        actor=audit.Actor.cli())
            print(f"Espacio '{info.name}' creado (plan {info.tier}, "
                  f"{formats.size(info.quota_bytes)}). Unidad: "
                  f"{settings.base_url()}/dav/{info.name}/")
            return 0
        if args.action == "list":
            for info in service.list_spaces(db):
                print(f"{info.name}\t{info.tier}\t{formats.size(info.used_bytes)} de "
                      f"{formats.size(info.quota_bytes)}\t{info.status}")
            return 0
        if args.action == "show":
            info = service.get_space(db, args.name)
            users = len(service.list_members(db, info.name))
            d = _space_dict(settings, info, users)
            if args.json:
                print(json.dumps(d, ensure_ascii=False, indent=2))
            else:
                for k, v in d.items():
                    print(f"{k}: {v}")
            return 0
        if args.action == "tier":
            info = service.change_tier(settings, db, args.name, args.tier,
                                       actor=audit.Actor.cli())
            print(f"Espacio '{info.name}' ahora en plan {info.tier}.")
            return 0
    if args.command == "user":
        if args.action == "add":
            m = service.add_member(db, args.space, args.user, read_password(), args.role,
                                   actor=audit.Actor.cli())
            print(f"Usuario '{m.username}' agregado a '{args.space}' con rol {m.role}.")
            return 0
        if args.action == "passwd":
            service.set_password(db, args.space, args.user, read_password(),
                                 actor=audit.Actor.cli())
            print(f"Contraseña de '{args.user}' actualizada.")
            return 0
        if args.action == "remove":
            service.remove_member(db, args.space, args.user, actor=audit.Actor.cli())
            print(f"Usuario '{args.user}' eliminado de '{args.space}'.")
            return 0
        if args.action == "list":
            for m in service.list_members(db, args.space):
                print(f"{m.username}\t{m.role}")
            return 0
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it
