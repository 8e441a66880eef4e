"""The folder page of the web drive: a folder's rows, its breadcrumbs, the
"move to" choices, and the page itself (``browse``), which every refused form
action shows again with its reason.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal.drive.common import (
    Who,
    bp,
    clean_rel,
    join,
    parent_of,
    require,
    status_of,
)
from portal.web import state
from spaces.core.errors import NotFound, SpaceError
from spaces.files import quota
from spaces.files.storage import SpaceFiles


@dataclass(frozen=True)
class Row:
    name: str
    rel: str
    is_dir: bool
    size: int
    modified: datetime


def list_folder(files: SpaceFiles, rel: str) -> list[Row]:
    p = files.resolve(rel)
    e = files.entry(p)
    if e is None or not e.is_dir:
        raise NotFound(_("La carpeta no existe."))
    rows = [Row(name, join(rel, name), stat.S_ISDIR(st.st_mode), st.st_size,
                datetime.fromtimestamp(st.st_mtime, UTC)) for name, st in files.list_dir(p)]
    rows.sort(key=lambda r: (not r.is_dir, r.name.casefold()))
    return rows


def breadcrumbs(rel: str) -> list[tuple[str, str]]:
    crumbs, acc = [], ""
    for part in [x for x in rel.split("/") if x]:
        acc += "/" + part
        crumbs.append((part, acc))
    return crumbs


def folders_of(files: SpaceFiles, limit: int = 500) -> list[str]:
    """Folder paths of the space (breadth first, at most ``limit``): the choices
    of the "move to" list."""
    out = ["/"]
    queue = [("/", files.root)]
    while queue and len(out) < limit:
        rel, p = queue.pop(0)
        try:
            members = sorted(files.list_dir(p))
        except OSError:
            continue
        for name, st in members:
            if stat.S_ISDIR(st.st_mode):
                sub = join(rel, name)
                out.append(sub)
                queue.append((sub, p / name))
                if len(out) >= limit:
                    break
    return out


def render_folder(w: Who, rel: str, status: int = 200) -> Any:
    st = state()
    try:
        rows = list_folder(w.files, rel)
    except SpaceError as exc:
        if rel == "/":
            raise
        flash(str(exc), "error")
        rel, status = "/", status if status != 200 else status_of(exc)
        rows = list_folder(w.files, rel)
    try:
        usage: quota.Usage | None = quota.usage(st.db, w.space.id)
    except SpaceError:
        usage = None
    from spaces.files import shares

    return render_template(
        "drive/browse.html", who=w, space=w.space, rel=rel, rows=rows,
        crumbs=breadcrumbs(rel), parent=parent_of(rel), usage=usage,
        folders=folders_of(w.files) if w.may_write else [],
        shares_enabled=shares.enabled(st.db, w.space.id),
    ), status


@bp.get("/<name>/")
def browse(name: str) -> Any:
    w = require(name)
    rel = clean_rel(request.args.get("ruta"))
    try:
        p = w.files.resolve(rel)
        e = w.files.entry(p)
    except SpaceError as exc:
        flash(str(exc), "error")
        return render_folder(w, "/", status_of(exc))
    if e is not None and not e.is_dir:
        return redirect(url_for("drive.download", name=w.space.name, ruta=rel))
    return render_folder(w, rel)

