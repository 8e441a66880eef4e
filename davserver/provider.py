"""The WebDAV view of the spaces: ``/dav/<space>/...``.

One provider serves every space. A request may only reach the space its user
authenticated against (see :mod:`davserver.auth`); any path into another
space — including a COPY/MOVE Destination — is refused with 403. The provider
finds what a path names (through the file core,
:class:`spaces.files.storage.SpaceFiles`) and hands it over as a resource:
files and folders (:mod:`davserver.resources`), the status file
(:mod:`davserver.statusfile`), and ``/dav/`` itself (:class:`VirtualRoot`).
"""

from __future__ import annotations

from typing import Any

from wsgidav.dav_error import HTTP_FORBIDDEN
from wsgidav.dav_provider import DAVCollection, DAVProvider

from davserver.request import HumanDAVError, Unchangeable, mapped, request_context, split_path
from davserver.resources import SpaceFile, SpaceFolder, is_status_file_path
from davserver.statusfile import StatusFile
from spaces.access import statusfile
from spaces.core.db import Database
from spaces.core.settings import Settings


class SpacesProvider(DAVProvider):
    """Serves ``/dav``: its root is an empty collection; ``/<space>/`` are drives."""

    def __init__(self, settings: Settings, db: Database) -> None:
        super().__init__()
        self.settings = settings
        self.db = db

    def is_readonly(self) -> bool:
        return False

    def get_resource_inst(self, path: str | None, environ: dict[str, Any]) -> Any:
        self._count_get_resource_inst += 1
        if path is None:
            # WsgiDAV asks for the parent of /dav/ itself (None) on a PUT, MKCOL,
            # COPY or MOVE aimed at the drive's root: there is none, so it
            # answers 4xx instead of crashing with 500.
            return None
        seg, rel = split_path(path)
        if not seg:
            return VirtualRoot(path, environ)
        ctx = request_context(environ)
        if ctx is None or ctx.space.name != seg.lower():
            # Reached only with a Destination header or a path naming another
            # space than the one the user logged into: never cross spaces.
            raise HumanDAVError(HTTP_FORBIDDEN, "No tiene acceso a esa ubicación.")
        if is_status_file_path(path):
            # Windows' redirector alone sees it; for every other client the
            # (reserved) name maps to nothing.
            if statusfile.shown_to(environ.get("HTTP_USER_AGENT")):
                return StatusFile(path, environ, ctx)
            return None
        with mapped:
            p = ctx.files.resolve(rel)
            info = ctx.files.entry(p)  # a symlink or special file: refused
        if info is None:
            return None
        if info.is_dir:
            return SpaceFolder(path, environ, ctx, p, info)
        return SpaceFile(path, environ, ctx, p, info)


class VirtualRoot(Unchangeable, DAVCollection):
    """``/dav/`` (and ``/``): answers DAV probes, lists nothing, accepts nothing.
    Anonymous clients must not learn which spaces exist."""

    def get_member_names(self) -> list[str]:
        return []

    def get_display_name(self) -> str:
        return "Resguardo"

    def get_member(self, name: str) -> Any:
        return None

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise HumanDAVError(HTTP_FORBIDDEN, "Abra su espacio: /dav/<nombre-del-espacio>/")

    create_empty_resource = create_collection = delete = _refuse
    copy_move_single = move_recursive = set_property_value = _refuse


    def prevent_locking(self) -> bool:
        return True


class ProbeProvider(DAVProvider):
    """Serves ``OPTIONS /`` and ``PROPFIND /`` so Windows' first probes succeed."""

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        if path.strip("/") == "":
            return VirtualRoot("/", environ)
        return None
