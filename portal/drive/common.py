"""What every area of the web drive shares: its blueprint (``drive``, under
``/unidad``), the member using it (:class:`Who`, re-read on every request),
paths taken from queries and forms, and a domain refusal's status and title.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, redirect, request, url_for
from flask_babel import gettext as _

from portal.web import current_member, state
from spaces.access import service, statusfile
from spaces.access.files import space_files
from spaces.core import audit, metrics
from spaces.core.errors import Forbidden, QuotaExceeded, SpaceError
from spaces.files.storage import SpaceFiles

bp = Blueprint("drive", __name__, url_prefix="/unidad")

#: Bytes read from the request body (uploads) or a file (into a ZIP) at a time.
BLOCK = 256 * 1024


@dataclass(frozen=True)
class Who:
    """The member using the web drive, re-read from the database on every request
    (a removed user, a changed role or a suspended space take effect at once)."""

    space: service.SpaceInfo
    member_id: int
    username: str
    role: str
    files: SpaceFiles

    @property
    def may_write(self) -> bool:
        return service.may_write(self.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def status_of(exc: SpaceError) -> int:
    """The HTTP status of a domain error (see spaces.core.errors), counted like the drive's."""
    metrics.count_refusal(exc)
    return exc.status


def title_of(exc: SpaceError) -> str:
    if isinstance(exc, QuotaExceeded):
        return _("Sin espacio")
    if isinstance(exc, Forbidden):
        return _("No permitido")
    return _("No se pudo completar")


def who(name: str) -> Who | None:
    """The logged-in member of space ``name``, or None."""
    m = current_member()  # re-read: exists, its session version, plan's users, status
    if m is None or m.space_name != name.strip().lower():
        return None
    st = state()
    actor = audit.Actor(m.username, request.remote_addr, "web")
    return Who(m.space, m.id, m.username, m.role,
               space_files(st.settings, st.db, m.space.id, m.space.name, actor=actor,
                           max_depth=m.space.max_depth))


def require(name: str) -> Who:
    """The logged-in member of space ``name``; otherwise a GET goes to the sign-in
    page (and comes back here after it), anything else is a 401."""
    w = who(name)
    if w is None:
        if request.method == "GET":
            abort(redirect(url_for("drive.login", espacio=name, next=request.full_path)))
        abort(401)
    return w


def clean_rel(raw: str | None) -> str:
    """'/a/b' from a query or form value: never empty, always absolute. Whether it
    stays inside the space is decided by SpaceFiles.resolve."""
    rel = "/" + (raw or "").strip().strip("/")
    return rel if rel != "/" else "/"


def join(folder: str, name: str) -> str:
    return (folder.rstrip("/") + "/" + name) if folder != "/" else "/" + name


def check_not_status_file(rel: str) -> None:
    """The drive shows a virtual, read-only status file at the space's root; no
    real file may take its name from the web either (403, the drive's sentence)."""
    if rel.rstrip("/") == "/" + statusfile.STATUS_FILE_NAME:
        raise Forbidden(statusfile.READ_ONLY_MESSAGE)


def parent_of(rel: str) -> str:
    head = rel.rstrip("/").rsplit("/", 1)[0]
    return head or "/"


def form_item() -> str:
    """The item a form acts on (``ruta``): never the space's root."""
    rel = clean_rel(request.form.get("ruta"))
    if rel == "/":
        raise Forbidden(_("No se puede cambiar la raíz del espacio."))
    return rel
