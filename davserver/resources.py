"""The files and folders of a space as WsgiDAV resources (``/dav/<space>/...``).

:class:`SpaceFile` and :class:`SpaceFolder` adapt WsgiDAV's resource model to
the file core: every change goes through
:class:`spaces.files.storage.SpaceFiles` (quota, trash, versions, retention,
audit), every byte read and every date set through the store
(:func:`spaces.files.store.store_for`), and the ETag is the store's
(:attr:`spaces.files.store.Info.etag`): this module opens no file and builds no
path of its own beyond the space's. Domain refusals become ``DAVError``
statuses with a Spanish message (:data:`davserver.request.mapped`). The
provider (:mod:`davserver.provider`) makes these; the status file is
:mod:`davserver.statusfile`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    HTTP_LOCKED,
    HTTP_NOT_FOUND,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from davserver.locks import PLACEHOLDER_KEY
from davserver.request import HumanDAVError, RequestContext, mapped, request_context, split_path
from davserver.xmlbody import stored_element
from spaces.access import statusfile
from spaces.cfdi import retention
from spaces.core.errors import AlreadyExists, SpaceError
from spaces.files import quota
from spaces.files.store import Info, Store, store_for
from spaces.files.upload import Upload

log = logging.getLogger(__name__)

#: Files whose properties this request may change (retention checked once each).
_WRITABLE_KEY = "resguardo.props_writable"
USAGE_KEY = "resguardo.usage"


def usage(environ: dict[str, Any]) -> quota.Usage | None:
    """The space's usage, read once per request (RFC 4331 properties)."""
    if USAGE_KEY not in environ:
        ctx = request_context(environ)
        try:
            environ[USAGE_KEY] = (
                quota.usage(ctx.files.db, ctx.space.id) if ctx is not None else None
            )
        except SpaceError:
            environ[USAGE_KEY] = None
    value = environ[USAGE_KEY]
    return value if isinstance(value, quota.Usage) else None


def is_status_file_path(path: str) -> bool:
    """True for ``/<space>/<status file>`` (a path relative to the drive's mount)."""
    return split_path(path)[1].rstrip("/") == "/" + statusfile.STATUS_FILE_NAME


class _SpaceResource:
    """Shared behaviour of files and folders of a space."""

    ctx: RequestContext
    fs_path: Path
    path: str
    environ: dict[str, Any]
    provider: Any

    @property
    def rel(self) -> str:
        return split_path(self.path)[1]

    @property
    def store(self) -> Store:
        return store_for(self.ctx.files.settings)

    def get_property_value(self, name: str) -> Any:
        """WsgiDAV builds ``lockdiscovery`` by looking up each lock's root, and
        crashes (500) when a concurrent DELETE or MOVE removed it in between.
        Such a lock went with its resource: report none instead. A dead
        property whose stored value is not one well-formed, DTD-free element
        reads as not found (404), never as a 500 (see
        :func:`davserver.xmlbody.stored_element`)."""
        pm = self.provider.prop_manager
        if pm is not None and not name.startswith("{DAV:}"):
            value = pm.get_property(self.get_ref_url(), name, self.environ)  # type: ignore[attr-defined]
            el = stored_element(value) if value is not None else None
            if el is None:
                raise DAVError(HTTP_NOT_FOUND)
            return el
        try:
            return super().get_property_value(name)  # type: ignore[misc]
        except AttributeError:
            if name != "{DAV:}lockdiscovery":
                raise
            from lxml import etree

            return etree.Element(name)

    def _check_locks(self, depth: str) -> None:
        """Raise 423 unless the request may change this resource (and, with depth
        "infinity", everything below it) under the locks any node holds."""
        lm = self.provider.lock_manager
        if lm is not None:
            lm.check_write_permission(
                url=self.get_ref_url(), depth=depth,  # type: ignore[attr-defined]
                token_list=self.environ.get("wsgidav.ifLockTokenList", []),
                principal=self.environ.get("wsgidav.user_name", ""))

    def _dest_rel(self, dest_path: str) -> str:
        seg, rel = split_path(dest_path)
        if seg.lower() != self.ctx.space.name:
            raise HumanDAVError(HTTP_FORBIDDEN, "No se puede copiar ni mover fuera de su espacio.")
        if is_status_file_path(dest_path):
            raise HumanDAVError(HTTP_FORBIDDEN, statusfile.READ_ONLY_MESSAGE)
        return rel

    def set_last_modified(self, dest_path: str, time_stamp: Any, *, dry_run: bool) -> bool:
        secs = time_stamp if isinstance(time_stamp, (int, float)) else \
            util.parse_time_string(time_stamp)
        if secs is None:
            raise HumanDAVError(HTTP_BAD_REQUEST, "Fecha de modificación no válida.")
        if not dry_run:
            self.store.set_mtime(self.fs_path, secs)
        return True

    def _copy_allowed(self, dest_path: str) -> tuple[str, Any]:
        """Before a COPY touches anything: the whole source fits in the room
        left (507), and an existing destination — which WsgiDAV deletes or
        overwrites, member by member — holds no protected CFDI and is not the
        folder the source is in (403). Returns
        the destination's path in the space and its resource (None if new)."""
        dest_rel = self._dest_rel(dest_path)
        dest = self.provider.get_resource_inst(dest_path, self.environ)
        pm = self.provider.prop_manager
        props = pm.bytes_at_or_below(self.get_ref_url()) if pm else 0  # type: ignore[attr-defined]
        with mapped:
            self.ctx.files.copy_fits(self.rel, dest_rel, extra_bytes=props)
            if dest is not None:
                self.ctx.files.check_copy_over(self.rel, dest_rel)
        return dest_rel, dest

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        self._copy_allowed(dest_path)
        return False  # let WsgiDAV walk the tree; each item is quota-checked again

    def handle_move(self, dest_path: str) -> bool:
        """A MOVE onto an existing destination (``Overwrite: T``; WsgiDAV has
        checked the locks of both): decided and done in one guarded step by
        ``SpaceFiles.move(replace=True)`` — refused before anything changes
        (a protected CFDI in the destination, a hold, the same item in another
        spelling), else the destination is replaced (a file's content kept as
        a version — Excel's save-by-rename —, anything else to the trash).
        WsgiDAV's own way, DELETE then MOVE, would empty the destination before
        learning that the MOVE is refused."""
        dest_rel = self._dest_rel(dest_path)
        dest = self.provider.get_resource_inst(dest_path, self.environ)
        if dest is None:
            return False  # a new name: move_recursive
        with mapped:
            self.ctx.files.move(self.rel, dest_rel, replace=True)
        dest.remove_all_properties(recursive=True)
        dest.remove_all_locks(recursive=True)
        self._move_props(dest_path, with_children=True)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        return True

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def move_recursive(self, dest_path: str) -> list[Any]:
        """MOVE in one rename. Dead properties follow the resource; locks do not
        (RFC 4918 §9.9.4): the locks rooted at or below the source are removed,
        or a later file at the old name (Office's save-by-rename puts the new
        version there) would stay locked by a token nobody holds."""
        dest_rel = self._dest_rel(dest_path)
        with mapped:
            self.ctx.files.move(self.rel, dest_rel)
        self._move_props(dest_path, with_children=True)
        self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
        return []

    def delete(self) -> list[tuple[str, DAVError]]:
        """Delete through the space's one delete path. Protected CFDI inside a
        folder stay; each is reported as 403 in the multistatus WsgiDAV builds
        from the returned list."""
        with mapped:
            result = self.ctx.files.delete(self.rel)
        if not result.kept:
            self.remove_all_properties(recursive=True)  # type: ignore[attr-defined]
            self.remove_all_locks(recursive=True)  # type: ignore[attr-defined]
            return []
        base = self.provider.share_path + "/" + split_path(self.path)[0]
        return [(quote(base + pr.path), HumanDAVError(HTTP_FORBIDDEN, pr.message()))
                for pr in result.kept]

    def _dest_ref(self, dest_path: str) -> str | None:
        dest = self.provider.get_resource_inst(dest_path, self.environ)
        return dest.get_ref_url() if dest is not None else None

    def _move_props(self, dest_path: str, *, with_children: bool) -> None:
        pm = self.provider.prop_manager
        dest_ref = self._dest_ref(dest_path) if pm else None
        if pm and dest_ref:
            pm.move_properties(self.get_ref_url(), dest_ref,  # type: ignore[attr-defined]
                               with_children=with_children, environ=self.environ)

    def _copy_props(self, dest_path: str, is_move: bool) -> None:
        if is_move:
            self._move_props(dest_path, with_children=False)
            return
        pm = self.provider.prop_manager
        dest_ref = self._dest_ref(dest_path) if pm else None
        if pm and dest_ref:
            pm.copy_properties(self.get_ref_url(), dest_ref,  # type: ignore[attr-defined]
                               self.environ)


class SpaceFile(_SpaceResource, DAVNonCollection):
    """A file of a space, or a name about to become one (``info is None``) while
    a PUT streams into it."""

    def __init__(self, path: str, environ: dict[str, Any], ctx: RequestContext,
                 fs_path: Path, info: Info | None) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self.ctx = ctx
        self.fs_path = fs_path
        self.info = info
        self.name = fs_path.name
        self._upload: Upload | None = None

    def handle_delete(self) -> list[tuple[str, DAVError]]:
        """Delete the file ourselves: WsgiDAV's own loop re-checks afterwards that
        the path is gone and answers 500 when a concurrent PUT has already put a
        new file there. WsgiDAV checked only the parent's locks: 423 if the
        file is locked and the request did not submit the token."""
        self._check_locks("0")
        return self.delete()

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        """A protected CFDI's properties are part of the evidence: only the Win32
        timestamps and attributes Windows sets on every copy are accepted."""
        if not name.startswith("{urn:schemas-microsoft-com:}"):
            checked = self.environ.setdefault(_WRITABLE_KEY, set())
            if self.fs_path not in checked:  # once per request, not once per property
                with mapped:
                    retention.check_writable(self.ctx.files.db, self.ctx.space.id,
                                             self.ctx.files.index_path(self.fs_path))
                checked.add(self.fs_path)
        return super().set_property_value(name, value, dry_run=dry_run)

    def get_content_length(self) -> int:
        return self.info.size if self.info else 0

    def get_content_type(self) -> str:
        return str(util.guess_mime_type(self.path))

    def get_creation_date(self) -> float | None:
        return self.info.ctime if self.info else None

    def get_display_name(self) -> str:
        return self.name

    def get_etag(self) -> str | None:
        return self.info.etag if self.info else None

    def get_last_modified(self) -> float | None:
        return self.info.mtime if self.info else None

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Any:
        return self.store.open_read(self.fs_path)  # WsgiDAV closes it

    def begin_write(self, *, content_type: str | None = None) -> _UploadWriter:
        declared, exact = _declared_length(self.environ)
        try:
            with mapped:
                upload = self.ctx.files.open_upload(self.rel, declared, exact=exact)
        except DAVError:
            self._forget_if_gone()
            raise
        self._upload = upload
        return _UploadWriter(upload)

    def end_write(self, *, with_errors: bool) -> None:
        upload, self._upload = self._upload, None
        if upload is None:
            return
        if with_errors:
            upload.abort()
            self._forget_if_gone()
            return
        with mapped:
            upload.commit()
            self.info = self.ctx.files.entry(self.fs_path)

    def _forget_if_gone(self) -> None:
        """After a failed write: a LOCK's placeholder the write was refused on
        is gone (spaces.files.storage.SpaceFiles.drop_placeholder); its properties go
        with it, so a later file of that name does not inherit them."""
        if self.info is not None and self.info.size == 0 and \
                self.ctx.files.entry(self.fs_path) is None:
            self.remove_all_properties(recursive=False)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        dest_rel = self._dest_rel(dest_path)
        with mapped:
            if is_move:
                self.ctx.files.move(self.rel, dest_rel)
            else:
                self.ctx.files.copy_file(self.rel, dest_rel)
        self._copy_props(dest_path, is_move)

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        """A file copied over an existing file: the destination's content
        becomes a version (the upload path), not a trash item. Over a folder,
        WsgiDAV deletes the folder and copies, once :meth:`_copy_allowed`."""
        dest_rel, dest = self._copy_allowed(dest_path)
        if not isinstance(dest, SpaceFile):
            return False  # WsgiDAV's path: copy_move_single, quota-checked by copy_file
        with mapped:  # quota-checked (exact size reserved) before anything changes
            self.ctx.files.copy_file(self.rel, dest_rel)
        dest.remove_all_properties(recursive=False)
        self._copy_props(dest_path, is_move=False)
        return True


class _UploadWriter:
    """What WsgiDAV writes a PUT body into: an Upload whose domain errors (quota,
    disk full) surface as DAVErrors, so they keep their status instead of 500."""

    def __init__(self, upload: Upload) -> None:
        self._upload = upload

    def write(self, data: bytes) -> int:
        with mapped:
            return self._upload.write(data)

    def writelines(self, chunks: Any) -> None:
        with mapped:
            self._upload.writelines(chunks)

    def close(self) -> None:
        with mapped:
            self._upload.close()


class SpaceFolder(_SpaceResource, DAVCollection):
    """A folder of a space (the space's root included)."""

    def __init__(self, path: str, environ: dict[str, Any], ctx: RequestContext,
                 fs_path: Path, info: Info) -> None:
        DAVCollection.__init__(self, path, environ)
        self.ctx = ctx
        self.fs_path = fs_path
        self.info = info
        self.name = fs_path.name if self.rel.strip("/") else ctx.space.name
        self._scan: dict[str, os.stat_result] | None = None

    @property
    def is_space_root(self) -> bool:
        return self.rel.strip("/") == ""

    def get_creation_date(self) -> float:
        return self.info.ctime

    def get_display_name(self) -> str:
        return self.name

    def get_etag(self) -> None:
        return None

    def get_last_modified(self) -> float:
        return self.info.mtime

    def get_used_bytes(self) -> int | None:
        u = usage(self.environ)
        return u.used_bytes if u else None

    def get_available_bytes(self) -> int | None:
        u = usage(self.environ)
        return u.available_bytes if u else None

    def _members(self) -> dict[str, os.stat_result]:
        scan = self._scan
        if scan is None:
            with mapped:
                self._scan = scan = dict(self.ctx.files.list_dir(self.fs_path))
        return scan

    def get_member_names(self) -> list[str]:
        names = sorted(self._members())
        if self.is_space_root:
            names = [n for n in names if n != statusfile.STATUS_FILE_NAME]
            if statusfile.shown_to(self.environ.get("HTTP_USER_AGENT")):
                names.insert(0, statusfile.STATUS_FILE_NAME)
        return names

    def get_member(self, name: str) -> Any:
        path = util.join_uri(self.path, name)
        if self.is_space_root and name == statusfile.STATUS_FILE_NAME:
            return self.provider.get_resource_inst(path, self.environ)
        st = self._members().get(name)
        if st is None:
            return self.provider.get_resource_inst(path, self.environ)
        fp = self.fs_path / name
        info = Info.of(st)
        if info.is_dir:
            return SpaceFolder(path, self.environ, self.ctx, fp, info)
        return SpaceFile(path, self.environ, self.ctx, fp, info)

    def _check_reserved(self, name: str) -> None:
        if self.is_space_root and name == statusfile.STATUS_FILE_NAME:
            raise HumanDAVError(HTTP_FORBIDDEN, statusfile.READ_ONLY_MESSAGE)

    def create_empty_resource(self, name: str) -> SpaceFile:
        """PUT to a new name: nothing is created until the body has arrived and
        fits (see SpaceFile.end_write). LOCK on a new name: an empty file, a
        placeholder until its first write (see davserver.locks.LockPlaceholders)."""
        self._check_reserved(name)
        path = util.join_uri(self.path, name)
        rel = split_path(path)[1]
        with mapped:
            fp = self.ctx.files.resolve(rel)
            if self.environ.get("REQUEST_METHOD") != "PUT":
                res = SpaceFile(path, self.environ, self.ctx, fp, None)
                try:
                    self.ctx.files.create_empty(rel, res.get_ref_url())
                except AlreadyExists:
                    # Another request (on this node or another) created and is
                    # locking this name since WsgiDAV looked: the race's loser
                    # is told it is locked, as when the file already existed.
                    log.info("lock race lost: space=%s path=%s", self.ctx.space.name, rel)
                    raise HumanDAVError(HTTP_LOCKED, "Alguien más acaba de crear y bloquear "
                                        "este archivo; intente de nuevo.") from None
                self.environ[PLACEHOLDER_KEY] = rel
                res.info = self.ctx.files.entry(fp)
                return res
        return SpaceFile(path, self.environ, self.ctx, fp, None)

    def create_collection(self, name: str) -> None:
        self._check_reserved(name)
        with mapped:
            self.ctx.files.make_folder(split_path(util.join_uri(self.path, name))[1])

    def support_recursive_delete(self) -> bool:
        return True

    def handle_delete(self) -> bool:
        """423 for the whole DELETE if anything in the folder is locked and the
        request did not submit the token: WsgiDAV's fallback would otherwise
        delete the folder recursively, locked members included."""
        self._check_locks("infinity")
        return False

    def delete(self) -> list[tuple[str, DAVError]]:
        if self.is_space_root:
            raise HumanDAVError(HTTP_FORBIDDEN, "No se puede borrar la raíz del espacio.")
        return super().delete()

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        dest_rel = self._dest_rel(dest_path)
        with mapped:
            dest = self.ctx.files.resolve(dest_rel)
            if self.ctx.files.entry(dest) is None:
                self.ctx.files.make_folder(dest_rel)
        try:
            self.store.set_mtime(dest, self.info.mtime)
        except OSError:
            pass
        self._copy_props(dest_path, is_move)


def _declared_length(environ: dict[str, Any]) -> tuple[int | None, bool]:
    """The body length the client announced and whether it is exact: a
    Content-Length is; for chunked uploads X-Expected-Entity-Length (macOS,
    some Windows clients) is only an announcement."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    raw = None if chunked else environ.get("CONTENT_LENGTH")
    exact = raw not in (None, "")
    if not exact:
        raw = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH")
    if raw in (None, ""):
        return None, False
    try:
        n = int(str(raw).strip())
    except ValueError:
        raise HumanDAVError(HTTP_BAD_REQUEST, "Longitud de contenido no válida.") from None
    if n < 0:
        raise HumanDAVError(HTTP_BAD_REQUEST, "Longitud de contenido no válida.")
    return n, exact
