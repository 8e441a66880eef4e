"""What payments and the lifecycle do to a real drive: the server from
conftest serves the files while the domain (as the portal and the lifecycle
job call it) changes the space in the same database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import select

from spaces.access import service
from spaces.commerce import accounts, billing, lifecycle, notices, space_admin
from spaces.commerce.payments import GatewayEvent
from spaces.core import plans
from spaces.core.db import open_database
from spaces.core.mail import Mailer
from spaces.core.models import Account, Space, utcnow
from spaces.core.settings_file import load_settings

SMALL_TIER = ('[tiers.S]\nquota = "1M"\nmax_users = 2\ncfdi_years = 5\nmonthly_price = "10.00"\n'
              'reserve = "256K"\nmax_entries = 50\nmax_depth = 4\n'
              '[tiers.B]\nquota = "100M"\nmax_users = 2\ncfdi_years = 1\n'
              'monthly_price = "5.00"\n')


@pytest.fixture
def shop(make_server, smtp):
    """(server, settings, db, mailer, links, account id) with an account 'acme' that
    owns the 4G space 'acme', whose user 'acme' has a known drive password."""
    srv = make_server(extra_config=SMALL_TIER).start()
    settings = load_settings(srv.config)
    settings.mail.smtp_host, settings.mail.smtp_port = "127.0.0.1", smtp.port
    settings.mail.smtp_security = "none"
    db = open_database(settings)
    mailer, links = Mailer(settings), notices.Links(srv.url)
    with db.session() as s:
        a = Account(username="acme", email="dueno@acme.mx", password_hash="-",
                    ever_had_space=False, is_operator=False, email_confirmed_at=utcnow())
        s.add(a)
        s.flush()
        account_id = a.id
    pay(settings, db, mailer, links, account_id, "4G", "monthly")
    token = accounts.issue_token(db, settings, "member", member_id=service.list_members(
        db, "acme")[0].id)
    space_admin.set_member_password(db, token, "clave-acme-1")
    yield srv, settings, db, mailer, links, account_id
    db.dispose()


def pay(settings, db, mailer, links, account_id, tier, period, today=None):
    billing.add_to_cart(settings, db, account_id, tier, period, "username")
    order = billing.checkout(settings, db, account_id, settings.billing.contract_version)
    result = billing.process_event(settings, db, mailer, links, GatewayEvent(
        "sandbox", f"evt-{order.reference}", order.reference, "paid", order.total_cents,
        "MXN"), today=today)
    assert result.status == "provisioned"
    return order


AUTH = ("acme", "clave-acme-1")


@pytest.mark.db
def test_downgrade_below_usage_refuses_writes_deletes_nothing_and_upgrade_restores(shop):
    srv, settings, db, mailer, links, account_id = shop
    big = b"x" * (2 * 2**20)
    assert requests.put(srv.dav("acme", "grande.bin"), data=big, auth=AUTH,
                        timeout=30).status_code == 201
    pay(settings, db, mailer, links, account_id, "S", "monthly")
    assert service.get_space(db, "acme").quota_bytes == 2**20
    r = requests.put(srv.dav("acme", "nuevo.txt"), data=b"hola", auth=AUTH, timeout=30)
    assert r.status_code == 507
    r = requests.get(srv.dav("acme", "grande.bin"), auth=AUTH, timeout=30)
    assert r.status_code == 200 and r.content == big  # nothing deleted
    pay(settings, db, mailer, links, account_id, "4G", "monthly")
    assert requests.put(srv.dav("acme", "nuevo.txt"), data=b"hola", auth=AUTH,
                        timeout=30).status_code == 201
    assert requests.get(srv.dav("acme", "grande.bin"), auth=AUTH, timeout=30).content == big


@pytest.mark.db
def test_a_paid_change_of_plan_applies_every_limit_of_the_new_plan_at_once(shop):
    """A payment that changes the plan brings all of it: its reserve (the
    trash and versions above it are trimmed at once, oldest first: disk use
    stays within quota + reserve without waiting for the next delete), its
    number of entries and its depth, as `resguardo space tier` does."""
    srv, settings, db, mailer, links, account_id = shop
    for name in ("a.bin", "b.bin"):
        assert requests.put(srv.dav("acme", name), data=b"x" * (200 * 1024), auth=AUTH,
                            timeout=30).status_code == 201
        assert requests.delete(srv.dav("acme", name), auth=AUTH, timeout=30).status_code == 204
    assert service.get_space(db, "acme").held_bytes == 400 * 1024
    pay(settings, db, mailer, links, account_id, "S", "monthly")
    sp = service.get_space(db, "acme")
    assert (sp.reserve_bytes, sp.max_depth) == (256 * 1024, 4)
    assert (sp.held_bytes, sp.held_files) == (200 * 1024, 1)
    trash = [t.path for t in _trash(settings, db)]
    assert trash == ["/b.bin"]
    with db.engine.connect() as c:
        assert c.scalar(select(Space.max_entries).where(Space.name == "acme")) == 50
    for depth in range(1, 5):
        path = "/".join(f"d{i}" for i in range(depth)) + "/"
        assert requests.request("MKCOL", srv.dav("acme", path), auth=AUTH,
                                timeout=30).status_code == 201, depth
    assert requests.request("MKCOL", srv.dav("acme", "d0/d1/d2/d3/d4/"), auth=AUTH,
                            timeout=30).status_code == 400


def _trash(settings, db):
    from spaces.access.files import space_files
    from spaces.files import trash

    sp = service.get_space(db, "acme")
    return trash.list_trash(space_files(settings, db, sp.id, sp.name))


@pytest.mark.db
def test_reminders_once_then_read_only_after_grace_then_renewal_restores(shop, smtp):
    srv, settings, db, mailer, links, account_id = shop
    assert requests.put(srv.dav("acme", "a.txt"), data=b"datos", auth=AUTH,
                        timeout=30).status_code == 201
    until = service.get_space(db, "acme").paid_until
    assert until == plans.add_months(date.today(), 1)
    grace = settings.billing.grace_days

    def run(day: date) -> lifecycle.Report:
        return lifecycle.run(settings, db, mailer, links, today=day)

    assert run(until - timedelta(days=10)).reminded == []
    assert run(until - timedelta(days=7)).reminded == [("acme", 7)]
    assert run(until - timedelta(days=7)).reminded == []  # twice: still one e-mail
    assert run(until - timedelta(days=3)).reminded == []
    assert run(until - timedelta(days=1)).reminded == [("acme", 1)]
    reminders = smtp.find("Su espacio acme vence", "dueno@acme.mx")
    assert [str(m["Subject"]) for m in reminders] == ["Su espacio acme vence en 7 días",
                                                      "Su espacio acme vence mañana"]
    assert "/planes" in reminders[0].get_content()

    assert run(until + timedelta(days=grace)).read_only == []  # still in the grace period
    assert service.get_space(db, "acme").status == "active"
    assert run(until + timedelta(days=grace + 1)).read_only == ["acme"]
    assert run(until + timedelta(days=grace + 2)).read_only == []
    assert service.get_space(db, "acme").status == "readonly"
    assert len(smtp.find("quedó en solo lectura", "dueno@acme.mx")) == 1

    r = requests.put(srv.dav("acme", "b.txt"), data=b"nuevo", auth=AUTH, timeout=30)
    assert r.status_code == 403 and "solo lectura" in r.text
    r = requests.get(srv.dav("acme", "a.txt"), auth=AUTH, timeout=30)
    assert r.status_code == 200 and r.content == b"datos"

    later = until + timedelta(days=grace + 3)
    pay(settings, db, mailer, links, account_id, "4G", "monthly", today=later)
    space = service.get_space(db, "acme")
    assert space.status == "active" and space.paid_until == plans.add_months(later, 1)
    assert requests.put(srv.dav("acme", "b.txt"), data=b"nuevo", auth=AUTH,
                        timeout=30).status_code == 201


@pytest.mark.db
def test_a_space_bought_or_claimed_in_the_portal_has_every_limit_of_its_plan(shop):
    """Customers get their spaces from the portal (a purchase, the free space):
    those spaces carry every limit of the plan, entries and depth included, as
    `resguardo space create` gives them (they were created without an entry
    limit: empty files and folders without end)."""
    srv, settings, db, mailer, links, account_id = shop
    with db.session() as s:
        a = Account(username="libre", email="libre@x.mx", password_hash="-",
                    ever_had_space=False, is_operator=False, email_confirmed_at=utcnow())
        s.add(a)
        s.flush()
        free_id = a.id
    accounts.claim_free_space(settings, db, mailer, links, free_id)
    srv.create_space("porcli", "4G")
    with db.engine.connect() as c:
        rows = {r.name: r for r in c.execute(select(
            Space.name, Space.tier, Space.quota_bytes, Space.max_users, Space.reserve_bytes,
            Space.max_entries, Space.max_depth))}
    for name in ("acme", "libre", "porcli"):
        row = rows[name]
        t = plans.get_tier(settings, row.tier)
        assert (row.quota_bytes, row.max_users, row.reserve_bytes, row.max_entries,
                row.max_depth) == (t.quota_bytes, t.max_users, t.reserve_bytes, t.max_entries,
                                   t.max_depth), name
        assert row.max_entries > 0, name


@pytest.mark.db
def test_spaces_made_without_an_entry_limit_get_their_plans_limit_at_start_up(make_server):
    """Spaces the portal created before it gave them every limit of their plan
    (max_entries 0: no limit at all) get their plan's limit when the server
    starts; the drive then refuses entries beyond it."""
    import sqlalchemy as sa

    srv = make_server('[tiers.P]\nquota = "10M"\nmax_users = 2\ncfdi_years = 1\n'
                      'max_entries = 3\n').start()
    srv.create_space("acme", "P")
    srv.add_user("acme", "acme", "clave-acme-1", role="admin")
    engine = sa.create_engine(srv.db_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE spaces SET max_entries = 0 WHERE name = 'acme'"))
    srv.restart()
    with engine.connect() as c:
        assert c.scalar(sa.text("SELECT max_entries FROM spaces WHERE name = 'acme'")) == 3
    engine.dispose()
    codes = [requests.put(srv.dav("acme", f"v{i}.txt"), data=b"", auth=AUTH,
                          timeout=30).status_code for i in range(4)]
    assert codes[-1] == 507 and codes.count(201) <= 3, codes


@pytest.mark.db
def test_the_free_space_never_expires(shop):
    srv, settings, db, mailer, links, account_id = shop
    with db.session() as s:
        a = Account(username="libre", email="libre@x.mx", password_hash="-",
                    ever_had_space=False, is_operator=False, email_confirmed_at=utcnow())
        s.add(a)
        s.flush()
        free_id = a.id
    accounts.claim_free_space(settings, db, mailer, links, free_id)
    report = lifecycle.run(settings, db, mailer, links, today=date.today() + timedelta(days=3650))
    assert "libre" not in report.read_only
    assert service.get_space(db, "libre").status == "active"
    with db.session() as s:
        assert s.scalar(select(Space.paid_until).where(Space.name == "libre")) is None


def test_lifecycle_command_runs_from_the_cli(shop):
    srv = shop[0]
    p = srv.cli("lifecycle", "run", "--today", (date.today() + timedelta(days=400)).isoformat())
    assert "acme: vencido, ahora en solo lectura" in p.stdout
    p = srv.cli("lifecycle", "run", "--today", "mañana", check=False)
    assert p.returncode == 1 and p.stderr.startswith("error: Fecha no válida")


@pytest.mark.db
def test_a_paid_upgrade_extends_the_protection_of_cfdi_already_kept(shop, tmp_path):
    """A customer on a 1-year plan who pays for a 5-year one gets 5 years for the
    CFDI already in the space, exactly as when an operator changes the tier."""
    import json
    from datetime import datetime

    from test_cfdi import one_cfdi

    srv, settings, db, mailer, links, account_id = shop
    pay(settings, db, mailer, links, account_id, "B", "monthly")
    data, _entry = one_cfdi(tmp_path)
    assert requests.put(srv.dav("acme", "factura.xml"), data=data, auth=AUTH,
                        timeout=30).status_code == 201

    def until() -> int:
        rows = json.loads(srv.cli("cfdi", "list", "acme", "--json").stdout)
        return datetime.fromisoformat(rows[0]["protected_until"]).year

    assert until() == datetime.now().year + 1
    pay(settings, db, mailer, links, account_id, "4G", "monthly")
    assert until() == datetime.now().year + 5
    pay(settings, db, mailer, links, account_id, "B", "monthly")  # never shortened
    assert until() == datetime.now().year + 5
