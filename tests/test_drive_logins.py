"""Who may log in to the drive, and at what cost: the tier's user limit (simultaneous
adds, downgrades), a credential cache that never outlives a change, a bounded number of
password checks at a time, bad passwords slowed, and bad logins timed alike whether or not
the user exists."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import ROOT
from drive_helpers import ANA, BETO, NO_THROTTLE, raw, two_spaces

from spaces.core.passwords import HASH_SLOTS

# -- user limit -----------------------------------------------------------------

@pytest.mark.db
def test_second_user_in_the_1g_tier_is_refused_with_one_line_naming_the_limit(make_server):
    srv = make_server()
    srv.create_space("uno", "1G")
    srv.add_user("uno", "primero", "secreto-uno-1")
    p = srv.cli("user", "add", "uno", "segundo", "--password-stdin",
                input="secreto-dos-2\n", check=False)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "1 de 1" in lines[0] and "1G" in lines[0]
    assert "Traceback" not in p.stderr
    assert srv.cli("user", "list", "uno").stdout.split() == ["primero", "editor"]
    assert srv.show("uno")["users"] == 1


TWO_USERS = """
[tiers.T2]
quota = "1M"
max_users = 2
cfdi_years = 1
"""


@pytest.mark.db
@pytest.mark.parametrize("contenders", [2, 5])
def test_simultaneous_user_adds_for_the_last_free_slot_admit_exactly_one(
        make_server, contenders):
    srv = make_server(TWO_USERS)
    srv.create_space("par", "T2")
    srv.add_user("par", "primero", "secreto-uno-1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "resguardo", "--config", str(srv.config), "user", "add",
             "par", f"nuevo{i}", "--password-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT)
        for i in range(contenders)
    ]
    results = [(p, *p.communicate("secreto-nuevo-1\n", timeout=120)) for p in procs]
    winners = [out for p, out, _ in results if p.returncode == 0]
    losers = [err for p, _, err in results if p.returncode != 0]
    assert len(winners) == 1, results
    assert len(losers) == contenders - 1
    for err in losers:
        assert len(err.strip().splitlines()) == 1 and "2 de 2" in err, err
    assert srv.show("par")["users"] == 2
    names = srv.cli("user", "list", "par").stdout.split()[::2]
    assert names[0] == "primero" and len(names) == 2


@pytest.mark.db
def test_after_a_downgrade_the_newest_extra_users_get_401_until_some_are_removed(
        make_server):
    srv = make_server(NO_THROTTLE).start()  # a long credential cache on purpose
    srv.create_space("baja", "4G")
    users = [(f"u{i}", f"secreto-u{i}-1") for i in (1, 2, 3)]
    for u in users:  # one after the other: u1 is the oldest
        srv.add_user("baja", *u)

    def status(who):
        return raw(srv, "PROPFIND", "/dav/baja/", auth=who, headers={"Depth": "0"}).status

    assert [status(u) for u in users] == [207, 207, 207]  # now all are cached
    srv.cli("space", "tier", "baja", "1G")
    assert [status(u) for u in users] == [207, 401, 401]
    p = srv.cli("user", "add", "baja", "u4", "--password-stdin", input="secreto-u4-1\n",
                check=False)
    assert p.returncode != 0 and "de 1" in p.stderr

    srv.cli("user", "remove", "baja", "u3")
    assert [status(u) for u in users[:2]] == [207, 401]  # still two users for one place
    srv.cli("user", "remove", "baja", "u1")
    assert status(users[1]) == 207  # u2 is now the oldest: it logs in again
    assert status(users[0]) == 401 and status(users[2]) == 401  # removed


# -- credential cache -----------------------------------------------------------

@pytest.mark.db
def test_password_change_and_removal_take_effect_at_once_despite_the_cache(make_server):
    srv = make_server("[auth]\ncache_seconds = 3600\n").start()
    srv.create_space("cache", "4G")
    srv.add_user("cache", *ANA)
    url = "/dav/cache/"
    for _ in range(3):  # verified once, then served from the cache
        assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 207

    srv.cli("user", "passwd", "cache", "ana", "--password-stdin", input="nueva-clave-ana\n")
    assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 401
    new = ("ana", "nueva-clave-ana")
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 207
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 207

    srv.cli("user", "remove", "cache", "ana")
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 401
    assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 401
    # Back with the first password: the old cache entry must not vouch for it
    # either way; it is checked against the new hash.
    srv.add_user("cache", *ANA)
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 401
    assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 207


ARGON2_MIB = 19  # spaces/core/passwords.py: OWASP's 19 MiB per check


def password_checks(srv) -> float:
    """The drive's count of argon2 checks, from its /metrics."""
    text = requests.get(srv.url + "/metrics", timeout=10).text
    return float(re.search(r"^resguardo_drive_password_checks_total (\S+)$", text, re.M)[1])


def test_a_crowd_of_simultaneous_logins_runs_only_a_few_password_checks_at_a_time(
        make_server):
    """argon2 takes 19 MiB per check. Twenty-four clients arriving together (eight
    sessions of one user whose cache entry is new or expired, eight other users,
    eight wrong passwords) must not each hold those 19 MiB at once: the same
    credentials are checked once for all who wait on them, and the process runs
    at most as many checks at a time as it has cores. The kernel's own peak
    (VmHWM, reset just before) says how much the crowd cost."""
    srv = make_server(NO_THROTTLE).start()
    srv.create_space("acme", "40G")
    for i in range(9):
        srv.add_user("acme", f"u{i}", f"secreto-u{i}-1")
    who = ([("u1", "secreto-u1-1")] * 8 + [(f"u{i}", f"secreto-u{i}-1") for i in range(1, 9)]
           + [(f"u{i}", "no-es-la-clave") for i in range(1, 9)])
    barrier = threading.Barrier(len(who))

    def login(cred: tuple[str, str]) -> int:
        barrier.wait()
        return raw(srv, "PROPFIND", "/dav/acme/", auth=cred, headers={"Depth": "0"}).status

    # Steady state first: every worker thread busy once with a cached login (its
    # database connection open), so what grows next is the password checks.
    with ThreadPoolExecutor(len(who)) as pool:
        assert set(pool.map(login, [("u0", "secreto-u0-1")] * len(who))) == {207}
    try:
        Path(f"/proc/{srv.proc.pid}/clear_refs").write_text("5")
    except OSError as exc:
        pytest.skip(f"this kernel does not let the peak be reset (clear_refs): {exc}")
    before = srv.rss_kib()
    checks_before = password_checks(srv)

    with ThreadPoolExecutor(len(who)) as pool:
        statuses = list(pool.map(login, who))
    assert statuses == [207] * 16 + [401] * 8
    # u1's nine requests share one check; u2-u8 one each; each wrong password one.
    assert password_checks(srv) - checks_before == 1 + 7 + 8
    peak = 0
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    grown_mib = (peak - before) / 1024
    # The server runs on this machine: as many checks at a time as it allows here.
    assert grown_mib < (HASH_SLOTS + 1) * ARGON2_MIB + 16, (grown_mib, HASH_SLOTS)


# -- throttling -----------------------------------------------------------------

THROTTLE = """
[auth]
max_failures = 2
failure_window_seconds = 60
max_block_seconds = 1
"""


def test_repeated_bad_passwords_block_even_the_right_one_briefly_then_it_works(make_server):
    srv = two_spaces(make_server, THROTTLE)
    wrong = ("ana", "no-es-la-clave")

    def get(who):
        return raw(srv, "GET", "/dav/alfa/f.txt", auth=who).status

    assert get(ANA) == 200
    assert [get(wrong), get(wrong)] == [401, 401]
    assert get(ANA) == 401  # blocked: the right password is not even checked
    time.sleep(1.3)
    # Another failure after the pause would double it (2 s) but max_block_seconds
    # caps it at 1 s.
    assert get(wrong) == 401
    assert get(ANA) == 401
    time.sleep(1.3)
    assert get(ANA) == 200
    assert get(ANA) == 200


def test_other_users_from_the_same_address_are_not_blocked_before_the_address_limit(
        make_server):
    srv = two_spaces(make_server, THROTTLE)  # per address: 4 x 2 = 8 failures

    def get(who, space="beta"):
        path = "/dav/beta/secreto.txt" if space == "beta" else "/dav/alfa/f.txt"
        return raw(srv, "GET", path, auth=who).status

    assert [get(("ana", "mala"), "alfa"), get(("ana", "mala"), "alfa")] == [401, 401]
    assert get(ANA, "alfa") == 401  # ana is blocked ...
    assert get(BETO) == 200  # ... beto, from the same address, is not
    failures = 2
    for i in range(3):  # sprayed names: each blocked after 2, the address counts all
        for _ in range(2):
            assert get((f"spray{i}", "mala")) == 401
            failures += 1
            if failures < 8:
                assert get(BETO) == 200, failures
    assert failures == 8
    assert get(BETO) == 401  # the address limit: now everybody from here waits
    time.sleep(1.3)
    assert get(BETO) == 200


# -- timing ---------------------------------------------------------------------

@pytest.mark.serial  # compares timings: other tests running beside it would skew them
def test_bad_logins_take_the_same_time_whether_or_not_the_user_exists(make_server):
    srv = two_spaces(make_server)
    url = "/dav/beta/secreto.txt"

    def timed(who) -> float:
        t = time.perf_counter()
        assert raw(srv, "GET", url, auth=who).status == 401
        return time.perf_counter() - t

    for _ in range(2):  # warm up both paths
        timed(("beto", "clave-mala"))
        timed((f"x{uuid.uuid4().hex[:8]}", "clave-mala"))
    existing, missing, no_space = [], [], []
    for _ in range(5):
        existing.append(timed(("beto", f"mala-{uuid.uuid4().hex[:6]}")))
        missing.append(timed((f"nadie{uuid.uuid4().hex[:8]}", "clave-mala")))
        t = time.perf_counter()
        raw(srv, "GET", f"/dav/z{uuid.uuid4().hex[:8]}/x", auth=("beto", "clave-mala"))
        no_space.append(time.perf_counter() - t)
    m_existing = statistics.median(existing)
    for other in (missing, no_space):
        ratio = statistics.median(other) / m_existing
        assert 0.5 < ratio < 2, (existing, other)
