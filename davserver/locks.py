"""WebDAV lock storage in the database (the default 'database' backend): locks
survive a restart and are shared by every drive process using the same
database. Implements the interface of WsgiDAV's ``LockStorageDict``."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import delete, or_, select, update
from wsgidav.lock_man.lock_storage import (
    LockStorageDict,
    generate_lock_token,
    normalize_lock_root,
    validate_lock,
)

from spaces.db import Database
from spaces.models import DavLock

log = logging.getLogger(__name__)

_FIELDS = ("token", "root", "principal", "owner", "scope", "type", "depth", "timeout",
           "expire")


def _as_dict(row: DavLock) -> dict[str, Any]:
    return {f: getattr(row, f) for f in _FIELDS}


def _like_prefix(path: str) -> str:
    base = path.rstrip("/") + "/"
    return base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SqlLockStorage:
    LOCK_TIME_OUT_DEFAULT = LockStorageDict.LOCK_TIME_OUT_DEFAULT
    LOCK_TIME_OUT_MAX = LockStorageDict.LOCK_TIME_OUT_MAX

    def __init__(self, db: Database) -> None:
        self.db = db

    def __repr__(self) -> str:
        return "SqlLockStorage"

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def cleanup(self) -> None:
        with self.db.engine.begin() as c:
            c.execute(delete(DavLock).where(DavLock.expire >= 0, DavLock.expire < time.time()))

    def clear(self) -> None:
        with self.db.engine.begin() as c:
            c.execute(delete(DavLock))

    def get(self, token: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(DavLock, token)
            if row is None:
                return None
            if 0 <= row.expire < time.time():
                s.delete(row)
                return None
            return _as_dict(row)

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        assert lock.get("token") is None
        assert lock.get("expire") is None, "Use timeout instead of expire"
        path = normalize_lock_root(path)
        lock["root"] = path
        timeout = lock.get("timeout")
        timeout = self.LOCK_TIME_OUT_DEFAULT if timeout is None else float(timeout)
        if timeout < 0 or timeout > self.LOCK_TIME_OUT_MAX:
            timeout = self.LOCK_TIME_OUT_MAX
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        with self.db.session() as s:
            s.add(DavLock(token=lock["token"], root=path, principal=lock["principal"],
                          owner=lock.get("owner") or "", scope=lock["scope"],
                          type=lock["type"], depth=lock["depth"], timeout=timeout,
                          expire=lock["expire"]))
        return lock

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        if timeout < 0 or timeout > self.LOCK_TIME_OUT_MAX:
            timeout = self.LOCK_TIME_OUT_MAX
        with self.db.engine.begin() as c:
            c.execute(update(DavLock).where(DavLock.token == token)
                      .values(timeout=timeout, expire=time.time() + timeout))
        lock = self.get(token)
        if lock is None:
            raise ValueError("Lock must exist")
        return lock

    def delete(self, token: str) -> bool:
        with self.db.engine.begin() as c:
            return bool(c.execute(delete(DavLock).where(DavLock.token == token)).rowcount)

    def get_lock_list(self, path: str, *, include_root: bool, include_children: bool,
                      token_only: bool) -> list[Any]:
        path = normalize_lock_root(path)
        conds = []
        if include_root:
            conds.append(DavLock.root == path)
        if include_children:
            conds.append(DavLock.root.like(_like_prefix(path), escape="\\"))
        now = time.time()
        with self.db.engine.connect() as c:
            rows = c.execute(select(DavLock).where(or_(*conds))).mappings().all()
        out: list[Any] = []
        for r in rows:
            if 0 <= r["expire"] < now:
                continue
            out.append(r["token"] if token_only else {f: r[f] for f in _FIELDS})
        return out
