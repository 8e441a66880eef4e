"""Engine, sessions and migrations.

SQLite runs in WAL mode with a busy timeout so the drive's threads and the CLI
can share it; PostgreSQL is used as it is. The schema comes only from Alembic.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Integer,
    Select,
    String,
    Update,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    or_,
    update,
)
from sqlalchemy.engine import Result
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from spaces.core.settings import ConfigError, Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched. ``Session.execute`` is typed as returning a
    plain ``Result``; for these statements it is a ``CursorResult``."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def below(col: Any, name: str = "below") -> ColumnElement[bool]:
    """``col`` holds a path strictly below the one bound as :func:`below_params`
    (its ``name`` parameters): an exact, case-sensitive comparison of the
    leading characters, the same on SQLite and PostgreSQL. Never ``LIKE``:
    SQLite's ignores ASCII case, so '/CASEA/%' would also match '/caseA/x'."""
    return (func.substr(col, 1, bindparam(f"{name}_len", type_=Integer))
            == bindparam(name, type_=String))


def below_params(path: str, name: str = "below") -> dict[str, Any]:
    """The parameters of :func:`below` for everything strictly below ``path``
    ('/a/b' -> '/a/b/' and its length in characters, as SQL ``substr`` counts)."""
    base = path.rstrip("/") + "/"
    return {name: base, f"{name}_len": len(base)}


def path_mover(model: Any, *where: Any) -> Update:
    """An UPDATE, built once, that moves ``model.path`` from one place to another
    for the row at the old path and every row below it ('/a' and '/a/x' become
    '/b' and '/b/x'), set-based: no row is loaded. Run it with
    :func:`path_move_params` plus the parameters of ``where`` (whose names
    must not be column names: SQLAlchemy keeps those for the SET clause)."""
    col = model.path
    return (update(model)
            .where(*where, or_(col == bindparam("src"), below(col, "src_below")))
            .values(path=cast(bindparam("dst", type_=String), String)
                    + func.substr(col, bindparam("cut", type_=Integer))))


def path_move_params(src: str, dst: str) -> dict[str, Any]:
    """The parameters of a :func:`path_mover` statement for a rename ``src`` -> ``dst``."""
    return {"src": src, "dst": dst, "cut": len(src) + 1,
            **below_params(src, "src_below")}


class Database:
    """One engine and session factory per process (build it with :func:`open_database`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._prepared: dict[int, tuple[Select[Any], str, list[str] | None, list[Any]]] = {}

    def first_row(self, stmt: Select[Any], params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of ``stmt`` (a SELECT built once, with named bind
        parameters), run through the DB-API cursor directly.

        For the one query every drive request runs, the credential check:
        SQLAlchemy's execution and result machinery took three times as long as
        the database (40 us against 13 us). The statement is compiled once for
        this engine's dialect, and each column goes through its type's own
        result processor, so values come back as SQLAlchemy would give them
        (dates as dates on SQLite too)."""
        dialect = self.engine.dialect
        prepared = self._prepared.get(id(stmt))
        if prepared is None:
            compiled = stmt.compile(dialect=dialect)
            order = list(compiled.positiontup or []) if compiled.positional else None
            convert = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                       for c in stmt.selected_columns]
            # The statement is kept in the tuple so that its id() stays its own.
            prepared = (stmt, compiled.string, order, convert)
            self._prepared[id(stmt)] = prepared
        _, sql, order, convert = prepared
        args: Any = [params[k] for k in order] if order is not None else params
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            cursor = raw.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, args)
                row = cursor.fetchone()
            except dialect.loaded_dbapi.Error as exc:
                # As SQLAlchemy would: a lost connection is not reused, and the
                # caller sees SQLAlchemy's own error (a 503, never a 500).
                gone = dialect.is_disconnect(exc, raw, cursor)
                if gone:
                    conn.invalidate(exc)
                raise DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error,
                                          connection_invalidated=gone,
                                          dialect=dialect) from exc
            finally:
                with suppress(dialect.loaded_dbapi.Error):  # its connection may be gone
                    cursor.close()
        if row is None:
            return None
        return tuple(v if f is None else f(v) for f, v in zip(convert, row, strict=True))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        s = self.sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()


#: The drive's deletes and renames use UPDATE/DELETE ... RETURNING (SQLite 3.35).
MIN_SQLITE = (3, 35)


def make_engine(url: str, busy_timeout_ms: int = 5000) -> Engine:
    if url.startswith("sqlite"):
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigError(
                f"Resguardo necesita SQLite {'.'.join(map(str, MIN_SQLITE))} o posterior y este "
                f"Python usa {sqlite3.sqlite_version}: use un Python más nuevo o PostgreSQL.")
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            pool_size=20,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # A write that waits for a lock longer than SQLite would is refused (fail closed).
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True,
                         connect_args={"options": f"-c lock_timeout={int(busy_timeout_ms)}"})


def alembic_config(url: str, settings: Settings | None = None) -> Any:
    """Alembic's configuration for ``url``; ``settings`` reach the migrations
    that need the installation (its data folder, its tiers)."""
    from alembic.config import Config

    cfg = Config(attributes={"settings": settings} if settings is not None else None)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head", settings: Settings | None = None) -> None:
    """Bring the database at ``url`` to ``revision`` (creating it if needed)."""
    from alembic import command

    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url, settings), revision)


def open_database(settings: Settings, *, upgrade: bool = True) -> Database:
    """Open the configured database, migrating it to the latest schema first."""
    url = settings.database_url
    if upgrade:
        migrate(url, settings=settings)
    return Database(make_engine(url, settings.database.busy_timeout_ms))
