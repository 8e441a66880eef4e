"""The foundation: typed configuration, migrations, the layering and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from spaces.core.settings import ConfigError, Settings
from spaces.core.settings_file import example_toml, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_lists_every_key_with_its_default_and_loads():
    text = (ROOT / "config" / "resguardo.example.toml").read_text(encoding="utf-8")
    assert text == example_toml(), "regenerate with: resguardo config example"
    # Uncommenting every key gives exactly the defaults.
    import re

    out = []
    for line in text.splitlines():
        m = re.match(r"^# ([a-z_]+ = .*?)(  # .*)?$", line)
        if m:
            out.append(m.group(1))
        elif line.startswith("# [tiers"):
            out.append(line[2:])
        elif not line.startswith("#"):
            out.append(line)
    uncommented = "\n".join(out)
    import tomllib

    data = tomllib.loads(uncommented)
    from spaces.core.settings_file import iter_schema

    for key, default, help_text in iter_schema():
        node = data
        for part in key.split("."):
            node = node[part]
        assert node == default, key
        assert help_text, f"{key} has no help line"
    assert set(data["tiers"]) == set(Settings().tiers)


def test_example_config_is_accepted_by_the_loader(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text((ROOT / "config" / "resguardo.example.toml").read_text(), encoding="utf-8")
    s = load_settings(p)
    assert s.server.port == 8080 and s.source == str(p)


def test_unknown_key_is_an_error_that_names_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[server]\nprot = 8080\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(p)
    assert str(p) in str(exc.value) and "prot" in str(exc.value)


def test_wrong_type_is_an_error_that_names_the_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[server]\nport = "ochenta"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=str(p)):
        load_settings(p)


def test_config_tiers_override_and_extend_the_catalogue(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[tiers.4G]\nquota = "5G"\nmax_users = 12\n[tiers.X]\nquota = "1M"\n')
    s = load_settings(p)
    assert s.tiers["4G"].quota == "5G" and s.tiers["4G"].max_users == 12
    assert s.tiers["X"].quota == "1M" and "80G" in s.tiers


def test_config_file_from_environment_variable(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text('data_dir = "/srv/x"\n')
    monkeypatch.setenv("RESGUARDO_CONFIG", str(p))
    assert load_settings().data_dir == "/srv/x"


@pytest.mark.db
def test_migrated_database_matches_the_models(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from spaces.core.db import migrate
    from spaces.core.models import Base

    url = database_url
    migrate(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.db
def test_the_drive_credential_lookup_reads_what_the_orm_reads(database_url, tmp_path):
    """The credential check runs on every request straight through the DB-API
    cursor (spaces.core.db.Database.first_row): its values, a date included, must be
    the ones SQLAlchemy itself gives, on both databases."""
    from datetime import date

    from spaces.access import service
    from spaces.core.db import open_database
    from spaces.core.models import Space

    settings = Settings(data_dir=str(tmp_path / "data"))
    settings.database.url = database_url
    db = open_database(settings)
    try:
        service.create_space(settings, db, "acme", "4G", owner_email="ana@acme.example.mx")
        service.add_member(db, "acme", "ana", "secreto-ana-1", "admin")
        with db.session() as s:
            sp = s.query(Space).filter_by(name="acme").one()
            sp.paid_until, sp.used_bytes, sp.used_files = date(2027, 1, 31), 1234, 5
        with db.session() as s:
            expected = service.SpaceInfo.of(s.query(Space).filter_by(name="acme").one())
        cred = service.find_credential(db, "acme", "ana")
        assert cred is not None
        assert cred.space == expected and isinstance(cred.space.paid_until, date)
        assert (cred.username, cred.role, cred.within_user_limit) == ("ana", "admin", True)
        assert cred.password_hash.startswith("$argon2id$")
        assert service.find_credential(db, "acme", "nadie") is None
        assert service.find_credential(db, "otro", "ana") is None
        # A database error comes out as SQLAlchemy's (the drive answers 503 for it).
        with db.engine.begin() as c:
            c.execute(text("ALTER TABLE members RENAME TO members_gone"))
        with pytest.raises(DBAPIError):
            service.find_credential(db, "acme", "ana")
    finally:
        db.dispose()


@pytest.mark.db
def test_upgrade_is_idempotent_and_downgrade_round_trips(database_url):
    from alembic import command
    from sqlalchemy import inspect

    from spaces.core.db import alembic_config, migrate

    url = database_url
    migrate(url)
    migrate(url)
    command.downgrade(alembic_config(url), "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate(url)
    engine = create_engine(url)
    assert {"spaces", "members", "dav_properties", "dav_locks"} <= set(
        inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.parametrize("module,forbidden", [
    ("davserver.app", "flask"),
    ("spaces.files.storage", "flask"),
    ("spaces.access.service", "wsgidav"),
    ("spaces.files.quota", "wsgidav"),
    ("spaces.access.statusfile", "wsgidav"),
])
def test_dependencies_point_one_way(module, forbidden):
    code = f"import sys, {module}; print({forbidden!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "False", f"{module} pulled in {forbidden}"


def _cli(tmp_path, *args, input=None, process=False):
    """``resguardo --config ... ARGS`` in this process, or with ``process`` as the
    real command in a new interpreter (what an operator's shell runs)."""
    cfg = tmp_path / "c.toml"
    if not cfg.exists():
        cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    if not process:
        return run_cli(["--config", str(cfg), *args], input=input)
    return subprocess.run([sys.executable, "-m", "resguardo", "--config", str(cfg), *args],
                          capture_output=True, text=True, cwd=ROOT, input=input, timeout=120)


def test_cli_errors_are_one_line_and_exit_non_zero(tmp_path):
    for args in (("space", "show", "nadie"), ("space", "create", "x y", "--tier", "4G"),
                 ("space", "create", "okname", "--tier", "7G")):
        p = _cli(tmp_path, *args, process=True)
        assert p.returncode != 0
        assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("nope = 1\n")
    p = subprocess.run([sys.executable, "-m", "resguardo", "--config", str(bad), "space", "list"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and str(bad) in p.stderr and p.stderr.count("\n") == 1


def test_cli_space_show_json_reports_the_space(tmp_path):
    import json

    assert _cli(tmp_path, "space", "create", "ABC010101AB1", "--tier", "4G").returncode == 0
    assert _cli(tmp_path, "user", "add", "abc010101ab1", "luis", "--password-stdin",
                input="contrasena-1\n").returncode == 0
    d = json.loads(_cli(tmp_path, "space", "show", "abc010101ab1", "--json").stdout)
    assert d["tier"] == "4G" and d["quota_bytes"] == 4 * 2**30
    assert d["used_bytes"] == 0 and d["used_files"] == 0
    assert d["max_users"] == 10 and d["users"] == 1 and d["status"] == "active"
    assert "abc010101ab1" in _cli(tmp_path, "space", "list").stdout
    p = _cli(tmp_path, "space", "create", "abc010101ab1", "--tier", "1G")
    assert p.returncode == 1 and "Ya existe" in p.stderr


def test_short_password_is_refused(tmp_path):
    _cli(tmp_path, "space", "create", "acme", "--tier", "4G")
    p = _cli(tmp_path, "user", "add", "acme", "luis", "--password-stdin", input="corta\n")
    assert p.returncode == 1 and "al menos 8" in p.stderr


def test_a_server_the_tests_start_stops_at_once_on_sigint(make_server):
    """SIGINT stops a test's server at once, cleanly (exit 0: its coverage is
    written, the next test waits for nothing), even when the test run itself was
    started with SIGINT ignored, as a shell without job control starts a
    background job: the harness gives its processes the default handler back."""
    import signal
    import time

    srv = make_server().start()
    proc = srv.proc
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(8) == 0
    assert time.monotonic() - started < 5
    srv.proc = None
