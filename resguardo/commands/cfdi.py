"""``resguardo cfdi`` and ``resguardo retention``: search and rebuild a space's
CFDI index; the custody sweep, and legal holds placed and lifted."""

from __future__ import annotations

import argparse
import json

from spaces.access import service
from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings
from spaces.files import layout
from spaces.files.guard import space_guard
from spaces.jobs import sweeps

#: The commands this module adds to ``resguardo`` (and runs).
COMMANDS = ("cfdi", "retention")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def run(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    if args.command == "cfdi":
        from spaces.cfdi import index as cfdi_index

        info = service.get_space(db, args.space)
        if args.action == "reindex":
            root = layout.space_dir(settings, info.name) / "files"
            with space_guard(settings, db, info.id):
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
        actions = sweeps.retention_sweep(settings, db, now=now)
        for act in actions:
            print(f"{act.space}\t{act.action}\t{act.uuid or ''}\t{act.path}")
        print(f"{len(actions)} acciones.")
        freed = sweeps.expire_trash(settings, db, now=now)
        print(f"Papelera y versiones vencidas: {freed.items} elementos, {freed.bytes} bytes.")
        return 0
    raise SpaceError("Orden no reconocida.")  # pragma: no cover - argparse prevents it
