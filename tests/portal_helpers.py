"""Helpers for the portal tests: an in-process portal on a real database (the ``portal``
fixture of conftest), a real SMTP server (aiosmtpd), a client that fills in CSRF tokens
like a browser, and a customer's steps through the pages (sign-up, a purchase)."""

from __future__ import annotations

import email
import re
import shutil
import socket
import threading
from dataclasses import dataclass
from email import policy
from pathlib import Path
from typing import Any

from conftest import _migrated_template, _pg_create_database, _pg_drop_database, on_postgresql
from sqlalchemy import select

from spaces.core.db import Database, open_database
from spaces.core.models import Order
from spaces.core.settings import Settings
from spaces.core.settings_file import load_settings

CSRF_RE = re.compile(r'name="([\w-]*csrf_token)"[^>]*value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """A real SMTP server on a free port that keeps every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                with sink._lock:
                    sink.messages.append(msg)  # type: ignore[arg-type]
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def find(self, subject_part: str, to: str | None = None) -> list[email.message.EmailMessage]:
        with self._lock:
            return [m for m in self.messages if subject_part in str(m["Subject"])
                    and (to is None or str(m["To"]) == to)]

    def last(self, subject_part: str, to: str | None = None) -> str:
        found = self.find(subject_part, to)
        subjects = [str(m["Subject"]) for m in self.messages]
        assert found, f"no e-mail {subject_part!r} among {subjects}"
        return found[-1].get_content()


def link_in(body: str, path: str) -> str:
    """The path (with token) of the first link to ``path`` in an e-mail body."""
    m = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"\S+)", body)
    assert m, f"no {path} link in: {body}"
    return m.group(1)


def write_config(base: Path, extra: str = "") -> tuple[Path, str]:
    """A config file for a portal in ``base`` whose database is already at the latest
    schema (see conftest); returns (path, pg database name or '')."""
    data = base / "data"
    db_line, pg_name = "", ""
    if on_postgresql():
        url, pg_name = _pg_create_database(template=_migrated_template("postgresql"))
        db_line = f'[database]\nurl = "{url}"\n'
    else:
        data.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_migrated_template("sqlite"), data / "resguardo.db")
    cfg = base / "resguardo.toml"
    cfg.write_text(f'data_dir = "{data}"\n{extra}\n[demo]\ncreate = false\n{db_line}',
                   encoding="utf-8")
    return cfg, pg_name


def drop(pg_name: str) -> None:
    if pg_name:
        _pg_drop_database(pg_name)


class Browser:
    """A Flask test client that behaves like a form-filling browser."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.c = app.test_client()
        self.last_html = ""

    def get(self, path: str, **kw: Any) -> Any:
        r = self.c.get(path, **kw)
        self.last_html = r.get_data(as_text=True)
        return r

    def token(self, html: str | None = None, name: str = "csrf_token") -> str:
        for field, value in CSRF_RE.findall(html if html is not None else self.last_html):
            if field == name:
                return value
        raise AssertionError(f"no {name} in page")

    def post(self, path: str, data: dict[str, Any], *, form_page: str | None = None,
             csrf: bool = True, follow: bool = True, **kw: Any) -> Any:
        """POST like a browser: the CSRF token comes from ``form_page`` (GET first)
        or from the last page seen."""
        data = dict(data)
        if csrf:
            html = self.get(form_page).get_data(as_text=True) if form_page else self.last_html
            prefix = next((k.rsplit("-", 1)[0] + "-" for k in data if "-" in k), "")
            data.setdefault(f"{prefix}csrf_token", self.token(html, f"{prefix}csrf_token")
                            if f"{prefix}csrf_token" in html else self.token(html))
        r = self.c.post(path, data=data, follow_redirects=follow, **kw)
        self.last_html = r.get_data(as_text=True)
        return r

    @property
    def text(self) -> str:
        return self.last_html


ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "clave-segura-1"


@dataclass
class Portal:
    app: Any
    settings: Settings
    db: Database
    smtp: SmtpSink

    def browser(self) -> Browser:
        return Browser(self.app)


def _portal(tmp_path: Path, smtp: SmtpSink, extra: str = ""):
    from portal import create_app

    cfg, pg = write_config(tmp_path, f'[mail]\nsmtp_host = "127.0.0.1"\n'
                                     f'smtp_port = {smtp.port}\nsmtp_security = "none"\n'
                                     f"{extra}")
    settings = load_settings(cfg)
    db = open_database(settings)
    return Portal(create_app(settings, db), settings, db, smtp), pg


def sign_up(p: Portal, username: str = "despacho", email: str = "ana@despacho.mx",
            rfc: str = "", confirm: bool = True) -> Browser:
    b = p.browser()
    r = b.post("/cuenta/registro", {"username": username, "email": email,
                                    "password": PASSWORD, "rfc": rfc},
               form_page="/cuenta/registro")
    assert "Revise su correo" in b.text, b.text
    if confirm:
        path = link_in(p.smtp.last("Confirme su correo", email), "/cuenta/confirmar/")
        r = b.post(path, {}, form_page=path)
        assert "Correo confirmado" in b.text
    assert r.status_code == 200
    return b


def buy(p: Portal, b: Browser, tier: str = "4G", period: str = "monthly",
        naming: str = "username", card: str = "4242424242424242") -> str:
    """Through the pages: plans -> cart -> contract -> sandbox card. Returns the order ref."""
    b.post("/planes", {"tier": tier, "period": period, "naming": naming}, form_page="/planes")
    assert "Agregado al carrito" in b.text, b.text
    b.post("/pago", {"contract_version": p.settings.billing.contract_version, "accept": "y"},
           form_page="/pago", follow=False)
    r = b.c.get("/pago", follow_redirects=False)
    with p.db.session() as s:
        ref = s.scalar(select(Order.reference).order_by(Order.id.desc()))
    b.post(f"/sandbox/pagar/{ref}", {"number": card, "name": "Ana", "expiry": "12/30",
                                     "cvc": "123"}, form_page=f"/sandbox/pagar/{ref}")
    assert r is not None
    return ref
