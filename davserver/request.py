"""What every part of the drive shares about one request, below the provider:
who is asking (:class:`RequestContext`, set by :mod:`davserver.auth`), how a
path names its space, and how a domain refusal becomes the drive's answer (a
plain Spanish sentence with the status of :mod:`spaces.core.errors`). The provider,
the locks, the properties, the XML bodies and the fast PROPFIND import it; it
imports none of them."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from wsgidav import util
from wsgidav.dav_error import HTTP_METHOD_NOT_ALLOWED, DAVError

from spaces.access.service import SpaceInfo
from spaces.core import metrics
from spaces.core.errors import AlreadyExists, SpaceError, UsageUnavailable
from spaces.files.entries import DiskFull
from spaces.files.storage import SpaceFiles

log = logging.getLogger(__name__)

CTX_KEY = "resguardo.ctx"


class HumanDAVError(DAVError):
    """A DAVError whose body is a plain Spanish sentence a person can read."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(status, message, add_headers=headers)
        self.message = message

    def get_response_page(self) -> tuple[str, bytes]:
        return "text/plain; charset=utf-8", (self.message + "\n").encode("utf-8")


def to_dav_error(exc: SpaceError) -> DAVError:
    """A domain error as the drive's answer: its status (see spaces.core.errors: 507
    space, 403 protection, ...) with its Spanish message; 405 for a name that
    exists (RFC 4918's MKCOL), and a retry hint with a 503."""
    metrics.count_refusal(exc)
    if isinstance(exc, AlreadyExists):
        return HumanDAVError(HTTP_METHOD_NOT_ALLOWED, str(exc))
    headers = [("Retry-After", "5")] if exc.status == 503 else None
    return HumanDAVError(exc.status, str(exc), headers)


def plain_refusal(start_response: Any, exc: SpaceError) -> list[bytes]:
    """A domain refusal answered before WsgiDAV: its status and Spanish message
    as plain text (a 503 with a retry hint)."""
    metrics.count_refusal(exc)
    body = (str(exc) + "\n").encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if exc.status == 503:
        headers.append(("Retry-After", "5"))
    start_response(util.get_http_status_string(exc.status), headers)
    return [body]


class _Mapped:
    """Context manager: domain errors out, DAVErrors in."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, SpaceError):
            raise to_dav_error(exc) from exc
        if isinstance(exc, SQLAlchemyError):
            # The database failed (down, locked, or its disk full): nothing
            # half-done is acknowledged, and the client may retry. Never a 500.
            log.error("database unavailable during %s: %s", typ.__name__,
                      str(exc).splitlines()[0][:300])
            raise to_dav_error(UsageUnavailable(str(exc))) from exc
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("disk full: %s", exc)
            raise to_dav_error(DiskFull("")) from exc


mapped = _Mapped()


@dataclass
class RequestContext:
    """Who is asking, set by the domain controller once the password is checked."""

    space: SpaceInfo
    username: str
    role: str
    files: SpaceFiles


def request_context(environ: dict[str, Any]) -> RequestContext | None:
    ctx = environ.get(CTX_KEY)
    return ctx if isinstance(ctx, RequestContext) else None


def split_path(path: str) -> tuple[str, str]:
    """'/space/a/b' -> ('space', '/a/b')."""
    seg, _, rest = path.lstrip("/").partition("/")
    return seg, "/" + rest


class Unchangeable:
    """A resource that accepts no change: MOVE and COPY of it are refused with its
    own ``_refuse`` (WsgiDAV would otherwise try them member by member)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def handle_move(self, dest_path: str) -> bool:
        self._refuse()
        return False

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        self._refuse()
        return False
