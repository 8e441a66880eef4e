"""The status file as a drive resource: the read-only text at each space's root
that Windows' redirector alone sees (what it says is
:mod:`spaces.access.statusfile`'s; see :class:`StatusFile`)."""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from wsgidav.dav_error import HTTP_FORBIDDEN
from wsgidav.dav_provider import DAVNonCollection

from davserver.request import HumanDAVError, RequestContext, Unchangeable
from davserver.resources import usage
from spaces.access import statusfile
from spaces.cfdi import index as cfdi_index
from spaces.files import listings


class StatusFile(Unchangeable, DAVNonCollection):
    """The read-only text file at each space's root that states, in Spanish, the
    used and available space, the reserve, the tier and the paid-until date
    (Windows Explorer cannot show RFC 4331 quota). Only Windows' redirector
    sees it (see spaces.access.statusfile.shown_to)."""

    def __init__(self, path: str, environ: dict[str, Any], ctx: RequestContext) -> None:
        super().__init__(path, environ)
        self.ctx = ctx
        self._body: bytes | None = None

    def _content(self) -> bytes:
        if self._body is None:
            custody: int | None
            try:
                custody = cfdi_index.custody_count(self.ctx.files.db, self.ctx.space.id)
            except SQLAlchemyError:
                custody = None
            big = listings.oversized_folders_cached(self.ctx.files.settings, self.ctx.space.name,
                                                    self.ctx.files.root)
            self._body = statusfile.render(self.ctx.space, usage(self.environ),
                                           cfdi_count=custody, oversized=big,
                                           zone=self.ctx.files.settings.portal.zone(),
                                           ).encode("utf-8")
        return self._body

    def get_content_length(self) -> int:
        return len(self._content())

    def get_content_type(self) -> str:
        return "text/plain; charset=utf-8"

    def get_display_name(self) -> str:
        return statusfile.STATUS_FILE_NAME

    def get_etag(self) -> str:
        return hashlib.sha256(self._content()).hexdigest()[:32]

    def get_last_modified(self) -> float:
        return time.time()

    def get_creation_date(self) -> float:
        return self.get_last_modified()

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Any:
        return io.BytesIO(self._content())

    def prevent_locking(self) -> bool:
        return True

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise HumanDAVError(HTTP_FORBIDDEN, statusfile.READ_ONLY_MESSAGE)

    begin_write = delete = copy_move_single = move_recursive = _refuse

    def set_property_value(self, name: str, value: Any, *, dry_run: bool = False) -> Any:
        self._refuse()

