"""WebDAV dead properties kept in the database, so they survive restarts and are
shared by every drive process. Implements WsgiDAV's property-manager interface.

Dead properties take room like files do, so they count toward the space's
quota (through :mod:`spaces.files.quota`'s deltas: name and value, in UTF-8 bytes)
and are bounded (``[properties]``): per PROPPATCH, and per file or folder in
number and in bytes. A PROPPATCH is checked whole during WsgiDAV's dry run
and then stored in one transaction, with its quota, by
:class:`PropPatchTransaction`: a request that does not fit stores nothing.
Removing, copying and moving properties (DELETE, COPY, MOVE) credit or charge
exactly what the statements removed or copied.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from sqlalchemy import String, bindparam, cast, delete, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from wsgidav.dav_error import HTTP_INSUFFICIENT_STORAGE, DAVError
from wsgidav.mw.base_mw import BaseMiddleware

from davserver.request import plain_refusal, request_context
from spaces.core.db import Database, below, below_params, path_move_params, path_mover
from spaces.core.errors import InvalidName, QuotaExceeded, SpaceError, UsageUnavailable
from spaces.core.models import DAV_MOUNT, MAX_KEY_CHARS, MAX_PROPERTY_NAME, DeadProperty
from spaces.core.settings import PropertySettings
from spaces.files import quota

log = logging.getLogger(__name__)


def property_size(name: str, value: str) -> int:
    """What a stored property counts toward the quota: its name and value in UTF-8."""
    return len(name.encode("utf-8")) + len(value.encode("utf-8"))


def _sizes(rows: Iterable[Sequence[Any]]) -> int:
    return sum(property_size(name, value) for name, value in rows)


#: A listing asks for the dead properties of many paths: built once.
_PROPERTIES_OF = select(DeadProperty.path, DeadProperty.name, DeadProperty.value).where(
    DeadProperty.path.in_(bindparam("keys", expanding=True)))
_OF_ONE = select(DeadProperty.name, DeadProperty.value).where(
    DeadProperty.path == bindparam("key"))
_RETURNED = (DeadProperty.name, DeadProperty.value)

#: Every DELETE runs it, and a MOVE of a folder: built once.
_REMOVE_AT_OR_BELOW = delete(DeadProperty).where(or_(
    DeadProperty.path == bindparam("key"),
    below(DeadProperty.path))).returning(*_RETURNED)
_AT_OR_BELOW = select(*_RETURNED).where(or_(
    DeadProperty.path == bindparam("key"),
    below(DeadProperty.path)))

#: COPY and MOVE run these on every file: built once, and set-based (no row
#: objects), since building and loading cost more than running them.
_REMOVE_AT = delete(DeadProperty).where(DeadProperty.path == bindparam("key")).returning(
    *_RETURNED)
_REMOVE_ONE = delete(DeadProperty).where(DeadProperty.path == bindparam("key"),
                                         DeadProperty.name == bindparam("name"))
_ADD_ONE = insert(DeadProperty).values(path=bindparam("key"), name=bindparam("name"),
                                       value=bindparam("value"))
_COPY = insert(DeadProperty).from_select(
    ["path", "name", "value"],
    select(cast(bindparam("dest", type_=String), String), DeadProperty.name,
           DeadProperty.value).where(DeadProperty.path == bindparam("src")))
_RENAME = (update(DeadProperty).where(DeadProperty.path == bindparam("src"))
           .values(path=bindparam("dest")))
_MOVE_TREE = path_mover(DeadProperty)

#: The environ key of the PROPPATCH being checked and then stored (see _Batch).
BATCH_KEY = "resguardo.proppatch"


class PropertyLimit(QuotaExceeded):
    """A limit of ``[properties]`` (507, as RFC 4918 answers a property the
    server has no room to record)."""

    reason = "properties"

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.space, self.needed, self.available, self.quota = "", 0, 0, 0


@dataclass
class _Batch:
    """One PROPPATCH: what it will set (a value) or remove (None), checked
    against the limits as WsgiDAV's dry run offers each property; stored by
    :class:`PropPatchTransaction` once WsgiDAV has answered."""

    key: str | None = None
    #: name -> bytes, of what the resource holds before the request.
    held: dict[str, int] = field(default_factory=dict)
    planned: dict[str, str | None] = field(default_factory=dict)
    refusal: SpaceError | None = None


def _space_key(key: str) -> str | None:
    """The space of a property key ("/dav/<space>/..."), None outside any."""
    parts = key.split("/")
    if len(parts) >= 3 and "/" + parts[1] == DAV_MOUNT and parts[2]:
        return parts[2]
    return None


class SqlPropertyManager:
    def __init__(self, db: Database, limits: PropertySettings | None = None) -> None:
        self.db = db
        self.limits = limits or PropertySettings()

    def __repr__(self) -> str:
        return "SqlPropertyManager"

    def _key(self, url: str) -> str:
        return url.rstrip("/") or "/"

    # -- reading --------------------------------------------------------------------
    def get_properties(self, norm_url: str, environ: Any = None) -> list[str]:
        with self.db.engine.connect() as c:
            return list(c.scalars(select(DeadProperty.name)
                                  .where(DeadProperty.path == self._key(norm_url))))

    def get_properties_of(self, urls: list[str]) -> dict[str, list[tuple[str, str]]]:
        """Dead properties of many resources in a few queries (a folder listing):
        key (URL without trailing slash) -> [(name, value)]. Only keys that have some."""
        keys = list(dict.fromkeys(self._key(u) for u in urls))
        out: dict[str, list[tuple[str, str]]] = {}
        with self.db.engine.connect() as c:
            for i in range(0, len(keys), 500):
                rows = c.execute(_PROPERTIES_OF, {"keys": keys[i:i + 500]})
                for path, name, value in rows:
                    out.setdefault(path, []).append((name, value))
        return out

    def get_property(self, norm_url: str, name: str, environ: Any = None) -> Any:
        with self.db.engine.connect() as c:
            return c.scalar(select(DeadProperty.value).where(
                DeadProperty.path == self._key(norm_url), DeadProperty.name == name))

    def bytes_at_or_below(self, norm_url: str) -> int:
        """What the properties of a resource and everything below it count."""
        key = self._key(norm_url)
        with self.db.engine.connect() as c:
            return _sizes(c.execute(_AT_OR_BELOW, {"key": key, **below_params(key)}))

    # -- PROPPATCH ----------------------------------------------------------------------
    def write_property(self, norm_url: str, name: str, property_value: Any,
                       dry_run: bool = False, environ: Any = None) -> None:
        value = property_value.decode("utf-8") if isinstance(property_value, bytes) \
            else str(property_value)
        self._change(norm_url, name, value, dry_run, environ)

    def remove_property(self, norm_url: str, name: str, dry_run: bool = False,
                        environ: Any = None) -> None:
        self._change(norm_url, name, None, dry_run, environ)

    def _change(self, norm_url: str, name: str, value: str | None, dry_run: bool,
                environ: Any) -> None:
        batch = environ.get(BATCH_KEY) if isinstance(environ, dict) else None
        if batch is None:  # not inside a PROPPATCH: checked and stored at once
            if dry_run:
                return
            batch = _Batch()
            self.plan(batch, norm_url, name, value)
            self.commit(batch, environ)
            return
        if dry_run:
            self.plan(batch, norm_url, name, value)

    def plan(self, batch: _Batch, norm_url: str, name: str, value: str | None) -> None:
        """Add one change to the request; PropertyLimit (and the batch marked
        refused) when the request or the resource would pass its limits."""
        lim = self.limits
        if batch.refusal is not None:  # the request is refused already: answer each fast
            raise DAVError(HTTP_INSUFFICIENT_STORAGE)
        key = self._key(norm_url)
        try:
            if len(key) > MAX_KEY_CHARS:
                raise InvalidName("La ruta es demasiado larga para guardarle propiedades: use "
                                  "nombres o carpetas más cortos.")
            if len(name) > MAX_PROPERTY_NAME:
                raise PropertyLimit(f"El nombre de una propiedad puede tener a lo más "
                                    f"{MAX_PROPERTY_NAME} caracteres; no se guardó ninguna.")
        except SpaceError as exc:
            batch.refusal = exc
            raise DAVError(HTTP_INSUFFICIENT_STORAGE) from None
        if batch.key is None:
            batch.key = key
            with self.db.engine.connect() as c:
                batch.held = {n: property_size(n, v) for n, v in c.execute(_OF_ONE, {"key": key})}
        batch.planned[name] = value
        try:
            if len(batch.planned) > lim.max_per_request:
                raise PropertyLimit(
                    f"Demasiadas propiedades en una sola petición: el máximo es "
                    f"{lim.max_per_request}; no se guardó ninguna.")
            after = dict(batch.held)
            for n, v in batch.planned.items():
                if v is None:
                    after.pop(n, None)
                else:
                    after[n] = property_size(n, v)
            if len(after) > lim.max_per_resource:
                raise PropertyLimit(
                    f"Un archivo o carpeta puede tener a lo más {lim.max_per_resource} "
                    "propiedades; no se guardó ninguna.")
            if sum(after.values()) > lim.max_bytes_per_resource:
                raise PropertyLimit(
                    f"Las propiedades de un archivo o carpeta pueden ocupar a lo más "
                    f"{lim.max_bytes_per_resource} bytes; no se guardó ninguna.")
        except PropertyLimit as exc:
            batch.refusal = exc  # answered (and counted) once, by PropPatchTransaction
            raise DAVError(HTTP_INSUFFICIENT_STORAGE) from None

    def commit(self, batch: _Batch, environ: Any) -> None:
        """Store a checked request in one transaction, serialised with the
        space's other writes, its growth reserved first (QuotaExceeded: nothing
        stored). The resource's limits are checked again inside."""
        if batch.key is None or not batch.planned:
            return
        space = self._space(batch.key, environ)
        if space is None:
            raise UsageUnavailable("no space for " + batch.key)
        space_id, space_name, guard = space
        key = batch.key
        with guard():
            with self.db.engine.connect() as c:
                held = {n: property_size(n, v) for n, v in c.execute(_OF_ONE, {"key": key})}
            after = dict(held)
            for n, v in batch.planned.items():
                if v is None:
                    after.pop(n, None)
                else:
                    after[n] = property_size(n, v)
            lim = self.limits
            if (len(after) > lim.max_per_resource
                    or sum(after.values()) > lim.max_bytes_per_resource):
                raise PropertyLimit("Las propiedades ya no caben en este archivo o carpeta "
                                    "(otro cambio llegó antes); no se guardó ninguna.")
            delta = sum(after.values()) - sum(held.values())
            if delta > 0:
                quota.reserve(self.db, space_id, space_name, delta)
            try:
                with self.db.engine.begin() as c:
                    for n, v in batch.planned.items():
                        c.execute(_REMOVE_ONE, {"key": key, "name": n})
                        if v is not None:
                            c.execute(_ADD_ONE, {"key": key, "name": n, "value": v})
            except BaseException:
                if delta > 0:
                    quota.apply(self.db, space_id, -delta)
                raise
            if delta < 0:
                quota.apply(self.db, space_id, delta)

    def _space(self, key: str, environ: Any) -> tuple[int, str, Callable[[], Any]] | None:
        """(id, name, commit guard) of the space a key belongs to."""

        ctx = request_context(environ) if isinstance(environ, dict) else None
        name = _space_key(key)
        if ctx is not None and ctx.space.name == name:
            return ctx.space.id, ctx.space.name, ctx.files.guard
        if name is None:
            return None
        from spaces.access.service import get_space

        try:
            info = get_space(self.db, name)
        except SpaceError:
            return None
        return info.id, info.name, contextlib.nullcontext

    # -- DELETE, COPY, MOVE ---------------------------------------------------------------
    def _charge(self, key: str, environ: Any, nbytes: int) -> None:
        if nbytes:
            space = self._space(key, environ)
            if space is not None:
                quota.apply(self.db, space[0], nbytes)

    def remove_properties(self, norm_url: str, environ: Any = None) -> None:
        key = self._key(norm_url)
        with self.db.engine.begin() as c:
            freed = _sizes(c.execute(_REMOVE_AT_OR_BELOW, {"key": key, **below_params(key)}))
        self._charge(key, environ, -freed)

    def copy_properties(self, src_url: str, dest_url: str, environ: Any = None) -> None:
        """The destination's own properties go; the source's are copied if they
        fit in the quota (the copied content already did); if not, the copy is
        left without them (logged): the source keeps its own."""
        src, dest = self._key(src_url), self._key(dest_url)
        with self.db.engine.connect() as c:
            copied = _sizes(c.execute(_OF_ONE, {"key": src}))
        space = self._space(dest, environ)
        if copied and space is not None:
            try:
                quota.reserve(self.db, space[0], space[1], copied)
            except SpaceError as exc:
                log.warning("properties not copied (%s): %s -> %s", exc, src, dest)
                copied = -1
        try:
            with self.db.engine.begin() as c:
                freed = _sizes(c.execute(_REMOVE_AT, {"key": dest}))
                if copied >= 0:
                    c.execute(_COPY, {"src": src, "dest": dest})
        except BaseException:
            if copied > 0 and space is not None:
                quota.apply(self.db, space[0], -copied)
            raise
        self._charge(dest, environ, -freed)

    def move_properties(self, src_url: str, dest_url: str, with_children: bool,
                        environ: Any = None) -> None:
        src, dest = self._key(src_url), self._key(dest_url)
        with self.db.engine.begin() as c:
            if with_children:
                freed = _sizes(c.execute(_REMOVE_AT_OR_BELOW,
                                         {"key": dest, **below_params(dest)}))
                c.execute(_MOVE_TREE, path_move_params(src, dest))
            else:
                freed = _sizes(c.execute(_REMOVE_AT, {"key": dest}))
                c.execute(_RENAME, {"src": src, "dest": dest})
        self._charge(dest, environ, -freed)


class PropPatchTransaction(BaseMiddleware):
    """A PROPPATCH as one transaction: WsgiDAV checks every property (its dry
    run, where :meth:`SqlPropertyManager.plan` applies the limits) and writes
    its 207 answer; the answer is held back until the properties are stored
    (:meth:`SqlPropertyManager.commit`). A request refused by a limit, by the
    quota or by the database gets one plain answer (507, 503) and stores
    nothing."""

    def __init__(self, wsgidav_app: Any, next_app: Callable[..., Any],
                 config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self.pm: SqlPropertyManager = config["property_manager"]

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:

        if environ.get("REQUEST_METHOD") != "PROPPATCH" or request_context(environ) is None:
            return self.next_app(environ, start_response)
        many = self._too_many(environ)
        if many is not None:
            log.info("PROPPATCH refused: %s: %s", environ.get("PATH_INFO"), many)
            return plain_refusal(start_response, many)
        batch = environ[BATCH_KEY] = _Batch()
        held: list[Any] = []

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            held[:] = [status, headers, exc_info]
            return lambda data: None

        inner = self.next_app(environ, hold)
        try:
            body = b"".join(inner)
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        try:
            if batch.refusal is not None:
                raise batch.refusal
            if held and held[0].startswith("207"):
                self.pm.commit(batch, environ)
        except SpaceError as exc:
            log.info("PROPPATCH refused: %s %s: %s", environ.get("PATH_INFO"),
                     len(batch.planned), exc)
            return plain_refusal(start_response, exc)
        except SQLAlchemyError as exc:
            log.error("PROPPATCH not stored: %s: %s", environ.get("PATH_INFO"), exc)
            return plain_refusal(start_response, UsageUnavailable(str(exc)))
        start_response(held[0], held[1], held[2])
        return [body]

    def _too_many(self, environ: dict[str, Any]) -> PropertyLimit | None:
        """A request naming more properties than one PROPPATCH may change is
        refused here, from one parse in C, before WsgiDAV's Python loop and
        dry run would spend a second per few thousand of them."""
        stream = environ.get("wsgi.input")
        if not isinstance(stream, io.BytesIO):  # XmlBodies hands every body on as BytesIO
            return None
        try:
            root = etree.fromstring(stream.getvalue(), parser=_COUNTING_PARSER)
        except etree.XMLSyntaxError:
            return None  # WsgiDAV answers it (400)
        finally:
            stream.seek(0)
        if root is None:
            return None
        n = sum(len(prop) for prop in root.iterfind("{DAV:}*/{DAV:}prop"))
        limit = self.pm.limits.max_per_request
        if n <= limit:
            return None
        return PropertyLimit(f"Demasiadas propiedades en una sola petición ({n}): el máximo es "
                             f"{limit}; no se guardó ninguna.")


_COUNTING_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                   huge_tree=False)
