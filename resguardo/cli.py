"""The ``resguardo`` command. Every error is one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from spaces.access import service
from spaces.core import audit, formats
from spaces.core.db import Database, open_database
from spaces.core.errors import NotFound, SpaceError
from spaces.core.settings import ConfigError, Settings
from spaces.core.settings_file import load_settings
from spaces.files import diskspace, quota, storage, trash


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

    cf = sub.add_parser("cfdi", help="índice de CFDI").add_subparsers(dest="action",
                                                                        required=True)
    cl = cf.add_parser("list", help="busca CFDI en el índice de un espacio")
    cl.add_argument("space")
    cl.add_argument("--uuid")
    cl.add_argument("--rfc", help="RFC emisor o receptor")
    cl.add_argument("--all", action="store_true", help="incluye XML que no son CFDI timbrados")
    cl.add_argument("--json", action="store_true")
    cr = cf.add_parser("reindex", help="reconstruye el índice a partir de los archivos")
    cr.add_argument("space")

    rp = sub.add_parser("retention", help="resguardo de CFDI").add_subparsers(
        dest="action", required=True)
    sw = rp.add_parser("sweep", help="libera los CFDI cuyo periodo terminó y borra lo vencido "
                       "de la papelera y las versiones")
    sw.add_argument("--now", help="fecha de referencia AAAA-MM-DD (por omisión, hoy)")
    hp = rp.add_parser("hold", help="retención legal sobre un documento, carpeta o espacio")
    hp.add_argument("space")
    hp.add_argument("path", help="ruta dentro del espacio ('/' para todo el espacio)")
    hp.add_argument("--reason", default="")
    hp.add_argument("--by", default="operador")
    lp = rp.add_parser("lift", help="levanta la retención legal de una ruta")
    lp.add_argument("space")
    lp.add_argument("path")
    lp.add_argument("--by", default="operador")

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

    lcp = sub.add_parser("lifecycle", help="vencimientos").add_subparsers(dest="action",
                                                                          required=True)
    lr = lcp.add_parser("run", help="envía recordatorios y pasa a solo lectura los espacios "
                       "vencidos tras la gracia (correr a diario o cada hora)")
    lr.add_argument("--today", help="fecha AAAA-MM-DD (para pruebas); hoy por omisión")

    ip = sub.add_parser("invoice", help="facturas (CFDI 4.0)").add_subparsers(
        dest="action", required=True)
    il = ip.add_parser("list", help="lista las facturas emitidas")
    il.add_argument("--search", default="", help="UUID, RFC, nombre, folio, pedido o mes")
    il.add_argument("--json", action="store_true")
    ig = ip.add_parser("global", help="emite la factura global (público en general) de un mes "
                       "ya terminado")
    ig.add_argument("--month", help="AAAA-MM; por omisión, el mes anterior")
    ic = ip.add_parser("cancel", help="cancela una factura con un motivo del SAT")
    ic.add_argument("id", type=int, help="número de la factura (su folio)")
    ic.add_argument("motivo", choices=["02", "03", "04"],
                    help="02 errores sin relación, 03 no se llevó a cabo la operación, 04 "
                    "factura global (el 01, con sustitución, desde /operador/facturas)")

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
    return p


def _read_password() -> str:
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


def _doc_dict(d: object) -> dict[str, object]:
    keys = ("uuid", "category", "reason", "version", "tipo", "emisor_rfc", "emisor_nombre",
            "receptor_rfc", "receptor_nombre", "fecha", "fecha_timbrado", "total",
            "monto_pagado", "moneda", "path", "size", "sha256", "ingested_at",
            "protected_until", "duplicate_of", "conflict", "cancelled", "released_at")
    out: dict[str, object] = {}
    for k in keys:
        v = getattr(d, k)
        out[k] = v.isoformat(timespec="seconds") if hasattr(v, "isoformat") else v
    return out


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


def _dispatch(args: argparse.Namespace, settings: Settings, db: object) -> int:
    from spaces.core.db import Database

    assert isinstance(db, Database)
    if args.command == "migrate":
        print("Base de datos al día.")
        return 0
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
            m = service.add_member(db, args.space, args.user, _read_password(), args.role,
                                   actor=audit.Actor.cli())
            print(f"Usuario '{m.username}' agregado a '{args.space}' con rol {m.role}.")
            return 0
        if args.action == "passwd":
            service.set_password(db, args.space, args.user, _read_password(),
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
    if args.command == "cfdi":
        from spaces.cfdi import index as cfdi_index

        info = service.get_space(db, args.space)
        if args.action == "reindex":
            root = storage.space_dir(settings, info.name) / "files"
            with storage.space_guard(settings, db, info.id):
                n = cfdi_index.reindex(settings, db, info.id, root)
            print(f"{info.name}: {n} archivos XML examinados; "
                  f"{cfdi_index.custody_count(db, info.id)} CFDI en resguardo.")
            return 0
        docs = cfdi_index.search(db, info.id, cfdi_index.Query(
            uuid=args.uuid, rfc=args.rfc, include_other=args.all))
        rows = [_doc_dict(d) for d in docs]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            for r in rows:
                print("\t".join(str(r[k] or "") for k in (
                    "uuid", "tipo", "fecha", "emisor_rfc", "receptor_rfc", "total", "path",
                    "protected_until")))
        return 0
    if args.command == "retention":
        from spaces.cfdi import retention

        if args.action == "hold":
            hold = retention.place_hold(db, args.space, args.path, args.by, args.reason,
                                        actor=audit.Actor.cli(), settings=settings)
            print(f"Retención legal sobre {args.space}:{hold.path}.")
            return 0
        if args.action == "lift":
            n = retention.lift_hold(db, args.space, args.path, args.by,
                                    actor=audit.Actor.cli())
            print(f"Retenciones levantadas: {n}.")
            return 0
        from datetime import datetime

        now = datetime.fromisoformat(args.now) if args.now else None
        actions = retention.sweep(settings, db, now=now)
        for act in actions:
            print(f"{act.space}\t{act.action}\t{act.uuid or ''}\t{act.path}")
        print(f"{len(actions)} acciones.")
        freed = trash.expire(settings, db, now=now)
        print(f"Papelera y versiones vencidas: {freed.items} elementos, {freed.bytes} bytes.")
        return 0
    if args.command in ("trash", "versions"):
        return _trash(args, settings, db)
    if args.command == "admin" and args.action == "create":
        from spaces.commerce import accounts

        a = accounts.create_operator(db, args.user, args.email, _read_password())
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
    if args.command == "lifecycle" and args.action == "run":
        from datetime import date

        from spaces.commerce import lifecycle, notices
        from spaces.core.mail import Mailer

        try:
            today = date.fromisoformat(args.today) if args.today else None
        except ValueError:
            raise SpaceError(f"Fecha no válida: {args.today} (use AAAA-MM-DD)") from None
        due = lifecycle.run(settings, db, Mailer(settings),
                            notices.Links(settings.base_url()), today)
        for name, days in due.reminded:
            print(f"{name}: recordatorio enviado (vence en {days} días)")
        for name in due.read_only:
            print(f"{name}: vencido, ahora en solo lectura")
        from datetime import UTC, datetime

        from spaces.commerce import invoicing

        now = (datetime(today.year, today.month, today.day, 18, tzinfo=UTC) if today
               else None)
        inv = invoicing.run(settings, db, Mailer(settings), now)
        for period in inv.globals_issued:
            print(f"factura global de {period} emitida")
        for ref in inv.restamped:
            print(f"{ref}: factura timbrada (el PAC no había respondido)")
        for err in inv.errors:
            print(f"facturación: {err}", file=sys.stderr)
        if not (due.reminded or due.read_only or inv.globals_issued or inv.restamped
                or inv.errors):
            print("Nada que hacer.")
        return 1 if inv.errors else 0
    if args.command == "invoice":
        return _invoice(args, settings, db)
    if args.command in ("backup", "restore"):
        from pathlib import Path

        from spaces.jobs import backup

        if args.command == "backup":
            report = backup.backup(settings, db, Path(args.archive), args.spaces,
                                   check=args.verify)
            verb = "respaldado"
        else:
            report = backup.restore(settings, db, Path(args.archive), args.spaces,
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
    if args.command == "audit":
        return _audit(args, db)
    if args.command == "quota" and args.action == "recount":
        spaces = [service.get_space(db, args.space)] if args.space else service.list_spaces(db)
        diskspace.rescue(settings)  # on a full disk the database needs the room
        for info in spaces:
            root = storage.space_dir(settings, info.name) / "files"
            with storage.space_guard(settings, db, info.id):
                drift = quota.recount(db, info.id, info.name, root)
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


def _trash(args: argparse.Namespace, settings: Settings, db: object) -> int:
    from datetime import datetime

    from spaces.core.db import Database
    from spaces.core.settings import parse_size
    from spaces.files import versions

    assert isinstance(db, Database)
    if args.action == "purge":
        now = datetime.fromisoformat(args.now) if args.now else None
        freed = trash.expire(settings, db, now=now, older_than_days=args.older_than)
        print(f"Eliminados: {freed.items} elementos, {freed.bytes} bytes.")
        return 0
    info = service.get_space(db, args.space)
    files = storage.SpaceFiles(settings, db, info.id, info.name, actor=audit.Actor.cli())
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


def _audit(args: argparse.Namespace, db: object) -> int:
    from datetime import date

    from spaces.core.db import Database

    assert isinstance(db, Database)
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


#: Bits no file or folder Resguardo creates may have: the database, the space
#: folders and their files, the outbox's e-mails (set-password links) and
#: backups belong to the service's user alone (systemd units set UMask=0077;
#: this holds the same outside systemd).
PRIVATE_UMASK = 0o077


def _invoice(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    from spaces.commerce import invoice_cancel, invoice_records, invoicing
    from spaces.commerce.pac import local_now

    if args.action == "list":
        rows = invoice_records.list_invoices(db, args.search, limit=100000)
        if args.json:
            print(json.dumps([{
                "id": f.id, "name": f.name, "uuid": f.uuid, "kind": f.kind,
                "order": f.order_reference, "period": f.period, "status": f.status,
                "receptor_rfc": f.receptor_rfc, "receptor_nombre": f.receptor_nombre,
                "total": str(f.total), "fecha": f.fecha, "sandbox": f.sandbox,
                "cancel_reason": f.cancel_reason} for f in rows], ensure_ascii=False, indent=1))
        else:
            for f in rows:
                print(f"{f.name}\t{f.uuid or '-'}\t{f.status}\t{f.receptor_rfc}\t"
                      f"{f.order_reference or 'global ' + (f.period or '')}\t{f.total}")
        return 0
    if args.action == "global":
        if args.month:
            try:
                year, month = (int(x) for x in args.month.split("-"))
            except ValueError:
                raise SpaceError(f"Mes no válido: {args.month} (use AAAA-MM)") from None
        else:
            today = local_now(settings.invoicing.issuer_postal_code)
            year, month = ((today.year, today.month - 1) if today.month > 1
                           else (today.year - 1, 12))
        made = invoicing.issue_global(settings, db, year, month, actor=audit.Actor.cli())
        if made is None:
            print(f"No hay ventas de {year:04d}-{month:02d} sin factura.")
        else:
            print(f"Factura global {made.name} de {made.period}: UUID {made.uuid}, total "
                  f"{made.total}")
        return 0
    info = invoice_cancel.cancel(settings, db, args.id, args.motivo, actor=audit.Actor.cli())
    print(f"Factura {info.name} ({info.uuid}): {info.status}")
    return 0


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
