"""The web drive: a space's files in the browser, for its users (members).

A member logs in with the space, user and password of the drive and gets a
file manager: browse, upload (several files, drag and drop, progress), download
(a folder as a streamed ZIP), create folders, rename, move and delete. Every
change goes through :class:`spaces.files.storage.SpaceFiles`, the same functions the
WebDAV drive calls, and the write rule is :func:`spaces.access.service.check_may_write`,
so quota (507), roles (403), CFDI protection (403 with the date) and the
space's status apply identically on both. Every path goes through
``SpaceFiles.resolve`` (which refuses ``..`` and symlinks out of the space).

Uploads cannot use a form (the portal caps form bodies at ``[server]
buffered_body`` and would buffer them): the browser POSTs each file's bytes as
the raw request body, which is streamed in blocks into
``SpaceFiles.open_upload(rel, length, exact=True)``.
That view is exempt from the form CSRF hook (it would parse the body) and checks
the ``X-CSRFToken`` header itself.
"""

from __future__ import annotations

import io
import json
import logging
import mimetypes
import os
import stat
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import ValidationError, validate_csrf

from portal.forms import MemberLoginForm
from portal.web import current_member, log_in_member, safe_next, state
from spaces.access import service, statusfile, throttle
from spaces.core import audit, formats, metrics
from spaces.core.errors import (
    Forbidden,
    InvalidName,
    NotFound,
    QuotaExceeded,
    SpaceError,
)
from spaces.files import quota
from spaces.files.names import check_new_name
from spaces.files.storage import SpaceFiles

log = logging.getLogger(__name__)

bp = Blueprint("drive", __name__, url_prefix="/unidad")

#: Bytes read from the request body (uploads) or a file (downloads) at a time.
BLOCK = 256 * 1024
#: Files whose ZIP entry may pass 4 GiB need ZIP64 headers up front (the stream
#: cannot seek back to fix them).
ZIP64_FROM = 2**31


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
               SpaceFiles(st.settings, st.db, m.space.id, m.space.name, actor=actor,
                          max_depth=m.space.max_depth))


def _require(name: str) -> Who:
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


def content_disposition(name: str, *, inline: bool = False) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''...`` (RFC 6266/5987): every
    browser gets the real UTF-8 name, old ones an ASCII stand-in."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join(c if c.isprintable() and c not in '"\\' else "_"
                         for c in ascii_name) or "archivo"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _open_nofollow(p: Path) -> io.BufferedReader:
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb", buffering=0)  # type: ignore[return-value]


def _stream_file(fh: Any) -> Iterator[bytes]:
    with fh:
        while True:
            buf = fh.read(BLOCK)
            if not buf:
                return
            yield buf


def file_response(files: SpaceFiles, rel: str) -> Response:
    """Stream the file at ``rel`` (404 for none, a folder goes elsewhere)."""
    p = files.resolve(rel)
    e = files.entry(p)
    if e is None or e.is_dir:
        raise NotFound(_("El archivo no existe."))
    try:
        fh = _open_nofollow(p)
    except FileNotFoundError:
        raise NotFound(_("El archivo no existe.")) from None
    size = os.fstat(fh.fileno()).st_size
    mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
    resp = Response(_stream_file(fh), mimetype=mime, direct_passthrough=True)
    resp.headers["Content-Length"] = str(size)
    resp.headers["Content-Disposition"] = content_disposition(p.name)
    resp.headers["Last-Modified"] = _http_date(e.mtime)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


def _http_date(ts: float) -> str:
    from email.utils import formatdate

    return formatdate(ts, usegmt=True)


class _ZipSink(io.RawIOBase):
    """What ``zipfile`` writes into: collects the bytes until the generator hands
    them to the server. Not seekable, so zipfile writes data descriptors and the
    memory held is one block, whatever the size of the folder."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._chunks.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        if self._chunks:
            chunks, self._chunks = self._chunks, []
            yield b"".join(chunks)


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    t = time.localtime(max(mtime, 315532800 + 86400))  # ZIP cannot say before 1980
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def walk_tree(files: SpaceFiles, folder: Path, prefix: str
              ) -> Iterator[tuple[Path, str, os.stat_result]]:
    """(path, name in the archive, lstat) of everything below ``folder``, folders
    before their contents; symlinks and special files are never listed."""
    try:
        members = sorted(files.list_dir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name, st in members:
        p = folder / name
        arc = f"{prefix}{name}"
        if stat.S_ISDIR(st.st_mode):
            yield p, arc + "/", st
            yield from walk_tree(files, p, arc + "/")
        else:
            yield p, arc, st


def zip_stream(files: SpaceFiles, folder: Path, top: str) -> Iterator[bytes]:
    """A ZIP of ``folder`` (its contents under ``top/``), produced while it is sent."""
    sink = _ZipSink()
    nfiles = nbytes = 0
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(zipfile.ZipInfo(top + "/", _zip_time(time.time())), b"")
        yield from sink.drain()
        for p, arc, st in walk_tree(files, folder, top + "/"):
            info = zipfile.ZipInfo(arc, _zip_time(st.st_mtime))
            if arc.endswith("/"):
                zf.writestr(info, b"")
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            try:
                src = _open_nofollow(p)
            except (FileNotFoundError, OSError):
                continue  # gone meanwhile, or replaced by a symlink: skipped
            with src, zf.open(info, "w", force_zip64=st.st_size >= ZIP64_FROM) as dst:
                while True:
                    buf = src.read(BLOCK)
                    if not buf:
                        break
                    dst.write(buf)
                    nbytes += len(buf)
                    yield from sink.drain()
            nfiles += 1
            yield from sink.drain()
    yield from sink.drain()
    log.info("zip sent: space=%s folder=%s files=%d bytes=%d", files.space_name,
             files.index_path(folder), nfiles, nbytes)


def zip_response(files: SpaceFiles, rel: str) -> Response:
    p = files.resolve(rel)
    e = files.entry(p)
    if e is None or not e.is_dir:
        raise NotFound(_("La carpeta no existe."))
    top = p.name if p != files.root else files.space_name
    resp = Response(zip_stream(files, p, top), mimetype="application/zip",
                    direct_passthrough=True)
    resp.headers["Content-Disposition"] = content_disposition(top + ".zip")
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


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


# -- views ----------------------------------------------------------------------


@bp.route("/entrar", methods=["GET", "POST"])
def login() -> Any:
    """Any user of a space (admin, editor or reader) logs in to the web drive."""
    form = MemberLoginForm()
    st = state()
    if request.method == "GET" and request.args.get("espacio"):
        form.space.data = request.args["espacio"]
    if form.validate_on_submit():
        from spaces.commerce import accounts

        space = service.login_name(form.space.data or "")
        # The drive user's pause, whichever door (the drive's too) earned it.
        who = throttle.member(space, form.username.data or "")
        addr = request.remote_addr or "?"
        if st.throttle.blocked(who, throttle.address(addr)):
            flash(_("Demasiados intentos. Espere un minuto e intente de nuevo."), "error")
            return render_template("drive/login.html", form=form), 429
        m = accounts.authenticate_member(st.db, space, form.username.data or "",
                                         form.password.data or "")
        if m is None:
            st.throttle.failure(who, throttle.address(addr))
            flash(_("Espacio, usuario o contraseña incorrectos."), "error")
            return render_template("drive/login.html", form=form), 200
        st.throttle.success(who)
        log_in_member(m)  # a new session on login: no fixation
        log.info("web drive login: space=%s user=%s addr=%s", space, m.username, addr)
        home = url_for("drive.browse", name=space)
        nxt = safe_next(request.args.get("next"), home)
        return redirect(nxt if nxt.startswith(home) else home)
    return render_template("drive/login.html", form=form)


def _render_folder(w: Who, rel: str, status: int = 200) -> Any:
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
    w = _require(name)
    rel = clean_rel(request.args.get("ruta"))
    try:
        p = w.files.resolve(rel)
        e = w.files.entry(p)
    except SpaceError as exc:
        flash(str(exc), "error")
        return _render_folder(w, "/", status_of(exc))
    if e is not None and not e.is_dir:
        return redirect(url_for("drive.download", name=w.space.name, ruta=rel))
    return _render_folder(w, rel)


@bp.get("/<name>/descargar")
def download(name: str) -> Any:
    """A file (streamed), or a folder as a ZIP."""
    w = _require(name)
    rel = clean_rel(request.args.get("ruta"))
    try:
        p = w.files.resolve(rel)
        e = w.files.entry(p)
        if e is not None and e.is_dir:
            return zip_response(w.files, rel)
        return file_response(w.files, rel)
    except SpaceError as exc:
        flash(str(exc), "error")
        return _render_folder(w, parent_of(rel), status_of(exc))


def _write_action(name: str, act: Any) -> Any:
    """Run a form action that changes files; on refusal, the folder with the
    Spanish reason and the drive's status (403, 507, 400, 404, 409)."""
    w = _require(name)
    folder = clean_rel(request.form.get("carpeta"))
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        message = act(w, folder)
    except SpaceError as exc:
        log.info("web drive refused: space=%s user=%s action=%s: %s", w.space.name,
                 w.username, request.endpoint, exc)
        flash(f"{title_of(exc)}: {exc}", "error")
        return _render_folder(w, folder, status_of(exc))
    if message:
        flash(message, "ok")
    while folder != "/":  # the folder itself may be what was moved or deleted
        try:
            e = w.files.entry(w.files.resolve(folder))
        except SpaceError:
            e = None
        if e is not None and e.is_dir:
            break
        folder = parent_of(folder)
    return redirect(url_for("drive.browse", name=w.space.name, ruta=folder))


def _name_field(key: str = "nombre") -> str:
    # Spaces typed around a name in a form are dropped; any other character
    # stays and meets the name rules (a trailing no-break space is refused,
    # as on the drive, never silently turned into another name).
    n = unicodedata.normalize("NFC", (request.form.get(key) or "").strip(" "))
    check_new_name(n)
    return n


@bp.post("/<name>/carpeta")
def make_folder(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        n = _name_field()
        check_not_status_file(join(folder, n))
        w.files.make_folder(join(folder, n))
        log.info("web drive mkdir: space=%s user=%s path=%s", w.space.name, w.username,
                 join(folder, n))
        return _("Carpeta «%(n)s» creada.", n=n)

    return _write_action(name, act)


def _item() -> str:
    rel = clean_rel(request.form.get("ruta"))
    if rel == "/":
        raise Forbidden(_("No se puede cambiar la raíz del espacio."))
    return rel


@bp.post("/<name>/renombrar")
def rename(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        src = _item()
        n = _name_field()
        dst = join(parent_of(src), n)
        check_not_status_file(dst)
        w.files.move(src, dst)
        log.info("web drive rename: space=%s user=%s %s -> %s", w.space.name, w.username,
                 src, dst)
        return _("Nombre cambiado a «%(n)s».", n=n)

    return _write_action(name, act)


@bp.post("/<name>/mover")
def move(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        src = _item()
        dest_folder = clean_rel(request.form.get("destino"))
        dp = w.files.resolve(dest_folder)
        de = w.files.entry(dp)
        if de is None or not de.is_dir:
            raise NotFound(_("La carpeta de destino no existe."))
        sp = w.files.resolve(src)
        if dp == sp or str(dp).startswith(str(sp) + os.sep):
            raise InvalidName(_("No se puede mover una carpeta dentro de sí misma."))
        dst = join(dest_folder, sp.name)
        check_not_status_file(dst)
        w.files.move(src, dst)
        log.info("web drive move: space=%s user=%s %s -> %s", w.space.name, w.username,
                 src, dst)
        return _("Movido a %(d)s.", d=dest_folder)

    return _write_action(name, act)


@bp.post("/<name>/borrar")
def delete(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        src = _item()
        result = w.files.delete(src)
        if result.kept:
            kept = "; ".join(pr.message() for pr in result.kept[:5])
            flash(_("Se conservaron %(n)s CFDI protegidos: %(k)s", n=len(result.kept),
                    k=kept), "info")
        return _("Borrado: %(p)s.", p=src)

    return _write_action(name, act)


@bp.post("/<name>/subir")
def upload(name: str) -> Any:
    """One file per request, its bytes as the raw body (``?carpeta=/a&nombre=x.pdf``),
    streamed to disk. JSON answer; the drive's statuses (201, 200 replaced, 507,
    403, 400...). Exempt from the form CSRF hook: checks ``X-CSRFToken`` itself."""
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError:
        return _json_error(400, _("La página caducó"),
                           _("Recargue la página e intente de nuevo."))
    w = who(name)
    if w is None:
        return _json_error(401, _("Su sesión terminó"), _("Entre de nuevo a la unidad."))
    folder = clean_rel(request.args.get("carpeta"))
    length = request.content_length
    upload_ = None
    remaining = length or 0
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        # The browser's own file name, as is: the same rules as a PUT.
        n = unicodedata.normalize("NFC", request.args.get("nombre") or "")
        check_new_name(n)
        fe = w.files.entry(w.files.resolve(folder))
        if fe is None or not fe.is_dir:
            raise NotFound(_("La carpeta de destino no existe."))
        if length is None or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return _json_error(411, _("No se pudo completar"),
                               _("La subida debe indicar su tamaño (Content-Length)."))
        rel = join(folder, n)
        check_not_status_file(rel)
        upload_ = w.files.open_upload(rel, length, exact=True)
        stream = request.environ["wsgi.input"]
        remaining = length
        while remaining > 0:
            buf = stream.read(min(BLOCK, remaining))
            if not buf:
                break
            upload_.write(buf)
            remaining -= len(buf)
        created = upload_.commit()
        upload_ = None
    except SpaceError as exc:
        if upload_ is not None:
            upload_.abort()
        log.info("web drive upload refused: space=%s user=%s folder=%s bytes=%s: %s",
                 w.space.name, w.username, folder, length, exc)
        if 0 < remaining <= DISCARD_LIMIT:
            _discard(remaining)
        return _json_error(status_of(exc), title_of(exc), str(exc), unread=remaining)
    except BaseException:
        if upload_ is not None:
            upload_.abort()
        raise
    log.info("web drive upload: space=%s user=%s path=%s bytes=%d", w.space.name,
             w.username, rel, length)
    return _json(201 if created else 200, ok=True, path=rel, size=length)


def _json(status: int, **fields: Any) -> Response:
    """JSON with the Spanish as written (not escaped): the page shows it as is."""
    return Response(json.dumps(fields, ensure_ascii=False), status=status,
                    mimetype="application/json")


#: A refused upload's unread body up to this size is read and dropped, so the
#: browser gets the refusal (a browser that is cut off while it still sends sees
#: a network error, not the answer); above it the connection is closed.
DISCARD_LIMIT = 64 * 2**20


def _discard(nbytes: int) -> None:
    stream = request.environ["wsgi.input"]
    while nbytes > 0:
        buf = stream.read(min(BLOCK, nbytes))
        if not buf:
            return
        nbytes -= len(buf)


def _json_error(status: int, title: str, message: str, *, unread: int | None = None) -> Any:
    resp = _json(status, ok=False, error=title, message=message)
    left = (request.content_length or 0) if unread is None else unread
    if left > DISCARD_LIMIT or (unread is None and left > 2**20):
        resp.headers["Connection"] = "close"  # the unread body is not drained
    return resp


# -- share links ----------------------------------------------------------------

share_bp = Blueprint("share", __name__, url_prefix="/compartido")

#: Link ids whose password this browser session has given (bounded).
_SHARES_OK = "shares_ok"


def _link_url(token: str) -> str:
    from portal.web import links

    return links().base_url + url_for("share.view_link", token=token)


@bp.get("/<name>/enlaces")
def share_list(name: str) -> Any:
    """The space admin sees and revokes every link; other users their own."""
    from spaces.files import shares

    w = _require(name)
    st = state()
    items = shares.list_links(st.db, w.space.id,
                              created_by=None if w.is_admin else w.username)
    return render_template("drive/shares.html", who=w, space=w.space, items=items,
                           enabled=shares.enabled(st.db, w.space.id))


@bp.post("/<name>/enlaces/activar")
def share_toggle(name: str) -> Any:
    from spaces.files import shares

    w = _require(name)
    if not w.is_admin:
        abort(403)
    on = request.form.get("activar") == "1"
    shares.set_enabled(state().db, w.space.id, on)
    log.info("web drive share links %s: space=%s user=%s", "on" if on else "off",
             w.space.name, w.username)
    flash(_("Enlaces para compartir activados.") if on else
          _("Enlaces para compartir desactivados: los enlaces existentes dejan de abrir."),
          "ok")
    return redirect(url_for("drive.share_list", name=w.space.name))


@bp.post("/<name>/enlaces/crear")
def share_create(name: str) -> Any:
    from spaces.files import shares

    w = _require(name)
    folder = clean_rel(request.form.get("carpeta"))
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        rel = _item()
        p = w.files.resolve(rel)
        e = w.files.entry(p)
        if e is None:
            raise NotFound(_("No existe."))
        try:
            days = int(request.form.get("dias") or shares.DEFAULT_DAYS)
        except ValueError:
            raise InvalidName(_("Vigencia no válida.")) from None
        token, info = shares.create(state().db, w.space.id, w.files.index_path(p),
                                    is_dir=e.is_dir, inode=e.inode, created_by=w.username,
                                    days=days,
                                    password=request.form.get("clave") or "")
    except SpaceError as exc:
        flash(f"{title_of(exc)}: {exc}", "error")
        return _render_folder(w, folder, status_of(exc))
    audit.record(state().db, w.space.id, audit.Action.SHARE_CREATED, actor=w.files.actor,
                 path=info.path, space_name=w.space.name,
                 detail=f"vence {info.expires_at:%Y-%m-%d %H:%M} UTC"
                 + (", con contraseña" if info.has_password else ""))
    return render_template("drive/share_created.html", who=w, space=w.space, link=info,
                           url=_link_url(token), folder=folder), 201


@bp.post("/<name>/enlaces/<int:link_id>/revocar")
def share_revoke(name: str, link_id: int) -> Any:
    from spaces.files import shares

    w = _require(name)
    try:
        path = shares.revoke(state().db, w.space.id, link_id,
                             created_by=None if w.is_admin else w.username)
        audit.record(state().db, w.space.id, audit.Action.SHARE_REVOKED, actor=w.files.actor,
                     path=path, space_name=w.space.name)
        flash(_("Enlace revocado: ya no abre."), "ok")
    except SpaceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("drive.share_list", name=w.space.name))


def _opened(token: str) -> tuple[Any, SpaceFiles]:
    """The opened link and its space's files; aborts with the Spanish page: 404
    for an unknown token, 410 for an expired, revoked or switched-off link, or
    one whose object was deleted or replaced (the link serves only what it was
    made for, wherever that object now is)."""
    from spaces.files import shares

    st = state()
    try:
        opened = shares.open_link(st.db, token)
        info = service.get_space(st.db, opened.space_name)
        files = SpaceFiles(st.settings, st.db, info.id, info.name)
        try:
            e = files.entry(files.resolve(opened.link.path))
        except SpaceError:
            e = None
        shares.check_object(st.db, opened.link, e.inode if e is not None else None)
    except shares.Gone as exc:
        abort(make_response(render_template("drive/share_gone.html", message=str(exc)), 410))
    except NotFound:
        abort(make_response(render_template("drive/share_gone.html", message=None), 404))
    return opened, files


def _share_rel(root: str, sub: str | None) -> str:
    """A path below the shared ``root``: ``sub`` cannot climb out because
    SpaceFiles.resolve refuses '..' segments."""
    inner = clean_rel(sub)
    return root if inner == "/" else root.rstrip("/") + inner


@share_bp.route("/<token>", methods=["GET", "POST"])
def view_link(token: str) -> Any:
    from spaces.files import shares

    opened, files = _opened(token)
    link = opened.link
    ok: list[int] = list(session.get(_SHARES_OK, []))
    if link.has_password and link.id not in ok:
        st = state()
        who, addr = throttle.share(link.id), throttle.address(request.remote_addr)
        if request.method == "POST":
            if st.throttle.blocked(who, addr):
                flash(_("Demasiados intentos. Espere un minuto e intente de nuevo."), "error")
                return render_template("drive/share_password.html", token=token), 429
            if shares.check_password(opened, request.form.get("clave") or ""):
                st.throttle.success(who)
                session[_SHARES_OK] = (ok + [link.id])[-20:]
                return redirect(url_for("share.view_link", token=token,
                                        ruta=request.args.get("ruta")))
            st.throttle.failure(who, addr)
            flash(_("Contraseña incorrecta."), "error")
            return render_template("drive/share_password.html", token=token), 403
        return render_template("drive/share_password.html", token=token), 401
    try:
        rel = _share_rel(link.path, request.args.get("ruta") if link.is_dir else None)
        p = files.resolve(rel)
        e = files.entry(p)
        if e is None:
            raise NotFound(_("Lo compartido ya no existe."))
        if not e.is_dir:
            return render_template("drive/share_view.html", token=token, link=link,
                                   name=p.name, size=e.size, rows=None, sub="/")
        sub = rel[len(link.path):] or "/"
        rows = list_folder(files, rel)
        for_rows = [Row(r.name, join(sub, r.name), r.is_dir, r.size, r.modified)
                    for r in rows]
        return render_template("drive/share_view.html", token=token, link=link,
                               name=p.name, size=None, rows=for_rows, sub=sub,
                               crumbs=breadcrumbs(sub))
    except SpaceError as exc:
        return render_template("drive/share_gone.html", message=str(exc)), status_of(exc)


@share_bp.get("/<token>/descargar")
def share_download(token: str) -> Any:
    from spaces.files import shares

    opened, files = _opened(token)
    link = opened.link
    if link.has_password and link.id not in session.get(_SHARES_OK, []):
        return redirect(url_for("share.view_link", token=token))
    try:
        rel = _share_rel(link.path, request.args.get("ruta") if link.is_dir else None)
        p = files.resolve(rel)
        e = files.entry(p)
        if e is None:
            raise NotFound(_("Lo compartido ya no existe."))
        resp = zip_response(files, rel) if e.is_dir else file_response(files, rel)
    except SpaceError as exc:
        return render_template("drive/share_gone.html", message=str(exc)), status_of(exc)
    shares.count_download(state().db, link.id)
    log.info("share link download: space=%s link=%s path=%s addr=%s", opened.space_name,
             link.id, rel, request.remote_addr)
    return resp


# -- trash and versions -----------------------------------------------------------


def _trash_page(w: Who, status: int = 200) -> Any:
    from spaces.files import trash

    st = state()
    try:
        usage: quota.Usage | None = quota.usage(st.db, w.space.id)
    except SpaceError:
        usage = None
    items = trash.list_trash(w.files)
    return render_template("drive/trash.html", who=w, space=w.space, items=items,
                           usage=usage, days=st.settings.trash.days,
                           held=trash.held(st.db, w.space.id)), status


@bp.get("/<name>/papelera")
def trash_page(name: str) -> Any:
    """What was deleted, restorable until the sweep (or a full reserve) erases
    it; it lives in the reserve, outside the plan, and the page says so."""
    return _trash_page(_require(name))


def _trash_action(name: str, act: Any, *, admin: bool = False) -> Any:
    w = _require(name)
    try:
        if admin and not w.is_admin:
            raise Forbidden(_("Sólo un administrador del espacio puede borrar definitivamente "
                              "lo que está en la papelera."))
        service.check_may_write(w.role, w.username, w.space.status)
        message = act(w)
    except SpaceError as exc:
        log.info("web drive trash refused: space=%s user=%s action=%s: %s", w.space.name,
                 w.username, request.endpoint, exc)
        flash(f"{title_of(exc)}: {exc}", "error")
        return _trash_page(w, status_of(exc))
    flash(message, "ok")
    return redirect(url_for("drive.trash_page", name=w.space.name))


@bp.post("/<name>/papelera/<int:item_id>/restaurar")
def trash_restore(name: str, item_id: int) -> Any:
    from spaces.files import trash

    def act(w: Who) -> str:
        path = trash.restore_from_trash(w.files, item_id, by=w.username)
        return _("Restaurado en %(p)s.", p=path)

    return _trash_action(name, act)


@bp.post("/<name>/papelera/<int:item_id>/eliminar")
def trash_erase(name: str, item_id: int) -> Any:
    from spaces.files import trash

    def act(w: Who) -> str:
        freed = trash.delete_from_trash(w.files, item_id, by=w.username)
        return _("Eliminado definitivamente; se liberaron %(b)s.", b=formats.size(freed.bytes))

    return _trash_action(name, act, admin=True)


@bp.post("/<name>/papelera/vaciar")
def trash_empty(name: str) -> Any:
    from spaces.files import trash

    def act(w: Who) -> str:
        freed = trash.empty_trash(w.files, by=w.username)
        return _("Papelera vaciada: %(n)s elementos, %(b)s liberados.", n=freed.items,
                 b=formats.size(freed.bytes))

    return _trash_action(name, act, admin=True)


@bp.post("/<name>/papelera/liberar")
def trash_reclaim(name: str) -> Any:
    """An admin frees room: earlier versions first (oldest first), then the oldest
    trash items; current files are never touched."""
    from spaces.core.settings import parse_size
    from spaces.files import trash

    def act(w: Who) -> str:
        try:
            nbytes = parse_size(request.form.get("cantidad", ""))
        except ValueError:
            raise InvalidName(_("Escriba cuánto liberar, por ejemplo 500M o 2G.")) from None
        freed = trash.reclaim(w.files, nbytes, by=w.username)
        return _("Se liberaron %(b)s (%(n)s versiones anteriores y elementos de la papelera).",
                 b=formats.size(freed.bytes), n=freed.items)

    return _trash_action(name, act, admin=True)


def _versions_page(w: Who, rel: str, status: int = 200) -> Any:
    from spaces.files import versions

    p = w.files.resolve(rel)
    e = w.files.entry(p)
    items = versions.list_versions(w.files, rel)
    return render_template("drive/versions.html", who=w, space=w.space, rel=rel, name=p.name,
                           current=e, items=items, parent=parent_of(rel),
                           fromtimestamp=lambda t: datetime.fromtimestamp(t, UTC)), status


@bp.get("/<name>/versiones")
def versions_page(name: str) -> Any:
    """The earlier versions of one file: download or restore each."""
    w = _require(name)
    rel = clean_rel(request.args.get("ruta"))
    try:
        return _versions_page(w, rel)
    except SpaceError as exc:
        flash(str(exc), "error")
        return _render_folder(w, parent_of(rel), status_of(exc))


@bp.get("/<name>/versiones/<int:version_id>/descargar")
def version_download(name: str, version_id: int) -> Any:
    from spaces.files import versions

    w = _require(name)
    try:
        v, fh = versions.open_version(w.files, version_id)
    except SpaceError as exc:
        flash(str(exc), "error")
        return _render_folder(w, "/", status_of(exc))
    base, dot, ext = v.path.rsplit("/", 1)[-1].rpartition(".")
    stamp = v.created_at.strftime("%Y-%m-%d %H%M")
    fname = f"{base} (versión {stamp}){dot}{ext}" if dot else f"{ext} (versión {stamp})"
    resp = Response(_stream_file(fh), mimetype="application/octet-stream",
                    direct_passthrough=True)
    resp.headers["Content-Length"] = str(os.fstat(fh.fileno()).st_size)
    resp.headers["Content-Disposition"] = content_disposition(fname)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.post("/<name>/versiones/<int:version_id>/restaurar")
def version_restore(name: str, version_id: int) -> Any:
    from spaces.files import versions

    w = _require(name)
    rel = clean_rel(request.form.get("ruta"))
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        path = versions.restore_version(w.files, version_id, by=w.username)
    except SpaceError as exc:
        log.info("web drive version restore refused: space=%s user=%s version=%s: %s",
                 w.space.name, w.username, version_id, exc)
        flash(f"{title_of(exc)}: {exc}", "error")
        try:
            return _versions_page(w, rel, status_of(exc))
        except SpaceError:
            return _render_folder(w, "/", status_of(exc))
    flash(_("Versión restaurada; la anterior quedó guardada como versión."), "ok")
    return redirect(url_for("drive.versions_page", name=w.space.name, ruta=path))
