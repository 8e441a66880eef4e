"""``resguardo lifecycle`` and ``resguardo invoice``: the daily run (reminders,
read-only after the grace period, then invoicing's pending work) and the
invoices (list, the monthly global invoice, cancel)."""

from __future__ import annotations

import argparse
import json
import sys

from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings

#: The commands this module adds to ``resguardo`` (and runs).
COMMANDS = ("lifecycle", "invoice")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def run(args: argparse.Namespace, settings: Settings, db: Database) -> int:
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
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it


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

