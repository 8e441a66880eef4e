"""The brute-force pause (spaces.access.throttle) with an injected clock, on a real
database: SQLite and PostgreSQL (the pause lives in the database so every door,
process and node shares it)."""

from __future__ import annotations

import threading

import pytest
from conftest import _pg_create_database, _pg_drop_database, on_postgresql

from spaces.access import throttle
from spaces.access.throttle import LoginThrottle, Rule
from spaces.core.db import open_database
from spaces.core.settings import Settings

pytestmark = pytest.mark.db


@pytest.fixture
def db(tmp_path):  # type: ignore[no-untyped-def]
    s = Settings()
    s.data_dir = str(tmp_path)
    pg_name = ""
    if on_postgresql():
        s.database.url, pg_name = _pg_create_database()
    d = open_database(s)
    yield d
    d.dispose()
    if pg_name:
        _pg_drop_database(pg_name)


RULES = {"member": Rule(3, 300, 60), "address": Rule(12, 300, 60),
         "account": Rule(3, 300, 60), "share": Rule(3, 300, 60)}


def test_the_pause_starts_at_the_limit_doubles_and_is_capped(db):
    t = LoginThrottle(db, RULES)
    ana = throttle.member("acme", "ana")
    now = 1_000.0
    for _ in range(2):
        t.failure(ana, now=now)
        assert not t.blocked(ana, now=now)
    t.failure(ana, now=now)  # the 3rd: 1 s
    assert t.blocked(ana, now=now) and t.blocked(ana, now=now + 0.99)
    assert not t.blocked(ana, now=now + 1.01)
    t.failure(ana, now=now + 2)  # 2 s, then 4, 8 ... capped at 60
    assert t.blocked(ana, now=now + 3.9) and not t.blocked(ana, now=now + 4.1)
    for i in range(10):
        t.failure(ana, now=now + 10 + i)
    assert t.blocked(ana, now=now + 19 + 59.9)
    assert not t.blocked(ana, now=now + 19 + 60.1)


def test_the_first_pause_is_configurable_and_doubles_from_there(db):
    t = LoginThrottle(db, {**RULES, "member": Rule(3, 300, 60, first=5)})
    ana = throttle.member("acme", "ana")
    for _ in range(3):
        t.failure(ana, now=0.0)  # the 3rd: 5 s
    assert t.blocked(ana, now=4.9) and not t.blocked(ana, now=5.1)
    t.failure(ana, now=6.0)  # 10 s
    assert t.blocked(ana, now=15.9) and not t.blocked(ana, now=16.1)


def test_failures_outside_the_window_are_forgotten_and_success_clears(db):
    t = LoginThrottle(db, RULES)
    ana = throttle.member("acme", "ana")
    t.failure(ana, now=0.0)
    t.failure(ana, now=1.0)
    t.failure(ana, now=400.0)  # the window (300 s) began again: 1 of 3
    assert not t.blocked(ana, now=400.0)
    t.failure(ana, now=401.0)
    t.success(ana)
    t.failure(ana, now=402.0)  # 1 of 3 again
    assert not t.blocked(ana, now=402.0)


def test_one_subject_whatever_the_spelling_of_the_name():
    same = {throttle.member(s, u) for s, u in [
        ("acme", "ana"), (" ACME ", "Ana"), ("Acme", " ANA\t"), ("acme", "ACME\\ana"),
        ("acme", "dominio\\Ana ")]}
    assert len(same) == 1
    assert throttle.member("acme", "ana") != throttle.member("acme", "ana2")
    assert throttle.member("acme", "ana") != throttle.member("acmex", "ana")
    assert throttle.member("ac", "me\x00ana") != throttle.member("ac\x00me", "ana")


def test_each_kind_and_each_subject_is_paused_on_its_own(db):
    t = LoginThrottle(db, RULES)
    ana, beto = throttle.member("acme", "ana"), throttle.member("acme", "beto")
    here = throttle.address("198.51.100.7")
    for _ in range(3):
        t.failure(ana, here, now=5.0)
    assert t.blocked(ana, now=5.0) and not t.blocked(beto, now=5.0)
    assert not t.blocked(here, now=5.0)  # an address allows 4x as many
    for i in range(9):
        t.failure(throttle.member("acme", f"u{i}"), here, now=5.0)
    assert t.blocked(beto, here, now=5.0)  # beto, from that address, waits too
    assert not t.blocked(beto, throttle.address("203.0.113.9"), now=5.0)


def test_two_processes_share_the_pause(db):
    """Two throttles on one database are two nodes (or the drive and the portal
    run as separate processes): failures counted on either pause both."""
    a, b = LoginThrottle(db, RULES), LoginThrottle(db, RULES)
    ana = throttle.member("acme", "ana")
    a.failure(ana, now=50.0)
    b.failure(ana, now=50.0)
    a.failure(ana, now=50.0)
    assert b.blocked(ana, now=50.5) and a.blocked(ana, now=50.5)


def test_simultaneous_failures_are_all_counted(db):
    t = LoginThrottle(db, {**RULES, "member": Rule(40, 300, 60)})
    ana = throttle.member("acme", "ana")
    errors: list[BaseException] = []

    def fail() -> None:
        try:
            for _ in range(10):
                t.failure(ana, now=7.0)
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=fail) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert t.blocked(ana, now=7.5)  # 40 counted: exactly the limit


def test_old_records_are_purged(db):
    from sqlalchemy import func, select

    from spaces.core.models import LoginFailure

    t = LoginThrottle(db, RULES)
    for i in range(50):
        t.failure(throttle.member("acme", f"u{i}"), now=10.0)
    t.failure(throttle.member("acme", "late"), now=10_000.0)  # purges what is over
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 1
