"""``resguardo admin``: the portal's operators (create one) and the operator
API's tokens (create, revoke, list)."""

from __future__ import annotations

import argparse

from resguardo.commands.space import read_password
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings

#: The commands this module adds to ``resguardo`` (and runs).
COMMANDS = ("admin",)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ap = sub.add_parser("admin", help="operadores del portal").add_subparsers(
        dest="action", required=True)
    ac = ap.add_parser("create", help="crea un operador (administrador de todo el sitio)")
    ac.add_argument("user")
    ac.add_argument("--email", required=True)
    ac.add_argument("--password-stdin", action="store_true", required=True,
                    help="lee la contraseña de la entrada estándar")

    tk = ap.add_parser("token", help="tokens de la API de operadores (/api/v1/)"
                       ).add_subparsers(dest="tokens", required=True)
    tc = tk.add_parser("create", help="crea un token y lo muestra (una sola vez)")
    tc.add_argument("name")
    tr = tk.add_parser("revoke", help="revoca un token")
    tr.add_argument("name")
    tk.add_parser("list", help="lista los tokens")


def run(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    if args.command == "admin" and args.action == "create":
        from spaces.commerce import accounts

        a = accounts.create_operator(db, args.user, args.email, read_password())
        print(f"Operador '{a.username}' creado; entra al portal en /cuenta/entrar y ve "
              "/operador/.")
        return 0
    if args.command == "admin" and args.action == "token":
        from spaces.access import apitokens

        if args.tokens == "create":
            token = apitokens.create(db, args.name)
            print(f"Token '{args.name}' creado. Guárdelo ahora: no se vuelve a mostrar.")
            print(token)
        elif args.tokens == "revoke":
            apitokens.revoke(db, args.name)
            print(f"Token '{args.name}' revocado.")
        else:
            for t in apitokens.list_tokens(db):
                state = f"revocado {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "vigente"
                used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "nunca"
                print(f"{t.name}\t{state}\tcreado {t.created_at:%Y-%m-%d}\tusado {used}")
        return 0
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it
