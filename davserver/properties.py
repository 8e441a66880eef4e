"""WebDAV dead properties kept in the database, so they survive restarts and are
shared by every drive process. Implements WsgiDAV's property-manager interface."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import String, bindparam, cast, delete, insert, or_, select, update

from spaces.db import Database, like_prefix, path_move_params, path_mover
from spaces.models import DeadProperty

log = logging.getLogger(__name__)



def _variants(url: str) -> list[str]:
    """A collection's ref URL may be stored with or without its trailing slash."""
    bare = url.rstrip("/") or "/"
    return list({bare, bare + "/" if bare != "/" else "/"})


#: A listing asks for the dead properties of many paths: built once.
_PROPERTIES_OF = select(DeadProperty.path, DeadProperty.name, DeadProperty.value).where(
    DeadProperty.path.in_(bindparam("keys", expanding=True)))


#: Every DELETE runs it, and a MOVE of a folder: built once.
_REMOVE_AT_OR_BELOW = delete(DeadProperty).where(or_(
    DeadProperty.path == bindparam("key"),
    DeadProperty.path.like(bindparam("prefix"), escape="\\")))

#: COPY and MOVE run these on every file: built once, and set-based (no row
#: objects), since building and loading cost more than running them.
_REMOVE_AT = delete(DeadProperty).where(DeadProperty.path == bindparam("key"))
_COPY = insert(DeadProperty).from_select(
    ["path", "name", "value"],
    select(cast(bindparam("dest", type_=String), String), DeadProperty.name,
           DeadProperty.value).where(DeadProperty.path == bindparam("src")))
_RENAME = (update(DeadProperty).where(DeadProperty.path == bindparam("src"))
           .values(path=bindparam("dest")))
_MOVE_TREE = path_mover(DeadProperty)


class SqlPropertyManager:
    def __init__(self, db: Database) -> None:
        self.db = db

    def __repr__(self) -> str:
        return "SqlPropertyManager"

    def _key(self, url: str) -> str:
        return url.rstrip("/") or "/"

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

    def write_property(self, norm_url: str, name: str, property_value: Any,
                       dry_run: bool = False, environ: Any = None) -> None:
        if dry_run:
            return
        value = property_value.decode("utf-8") if isinstance(property_value, bytes) \
            else str(property_value)
        key = self._key(norm_url)
        with self.db.session() as s:
            row = s.scalar(select(DeadProperty).where(
                DeadProperty.path == key, DeadProperty.name == name))
            if row is None:
                s.add(DeadProperty(path=key, name=name, value=value))
            else:
                row.value = value

    def remove_property(self, norm_url: str, name: str, dry_run: bool = False,
                        environ: Any = None) -> None:
        if dry_run:
            return
        with self.db.engine.begin() as c:
            c.execute(delete(DeadProperty).where(
                DeadProperty.path == self._key(norm_url), DeadProperty.name == name))

    def remove_properties(self, norm_url: str, environ: Any = None) -> None:
        key = self._key(norm_url)
        with self.db.engine.begin() as c:
            c.execute(_REMOVE_AT_OR_BELOW, {"key": key, "prefix": like_prefix(key)})

    def copy_properties(self, src_url: str, dest_url: str, environ: Any = None) -> None:
        src, dest = self._key(src_url), self._key(dest_url)
        with self.db.engine.begin() as c:
            c.execute(_REMOVE_AT, {"key": dest})
            c.execute(_COPY, {"src": src, "dest": dest})

    def move_properties(self, src_url: str, dest_url: str, with_children: bool,
                        environ: Any = None) -> None:
        src, dest = self._key(src_url), self._key(dest_url)
        with self.db.engine.begin() as c:
            if with_children:
                c.execute(_REMOVE_AT_OR_BELOW, {"key": dest, "prefix": like_prefix(dest)})
                c.execute(_MOVE_TREE, path_move_params(src, dest))
            else:
                c.execute(_REMOVE_AT, {"key": dest})
                c.execute(_RENAME, {"src": src, "dest": dest})
