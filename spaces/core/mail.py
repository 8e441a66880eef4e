"""E-mail: through SMTP when ``[mail] smtp_host`` is set, otherwise into
``data_dir/outbox`` as one ``.eml`` file per message, so a demo works offline.

Messages are plain text in Spanish (what the customer reads). A link in a
message is the only way a password is ever set: no password travels by e-mail.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from spaces.core.settings import Settings

log = logging.getLogger(__name__)


class MailError(Exception):
    """The message could not be handed to the SMTP server or written to the outbox."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    #: Files sent with the message (a factura's XML and PDF).
    attachments: tuple[Attachment, ...] = ()


class Mailer:
    """Sends :class:`Mail`. Thread-safe: each message opens its own SMTP connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def outbox(self) -> Path:
        return self.settings.data_path / "outbox"

    def build(self, mail: Mail) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.mail.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="resguardo")
        msg.set_content(mail.body)
        for a in mail.attachments:
            maintype, _, subtype = a.content_type.partition("/")
            msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
        return msg

    def send(self, mail: Mail) -> None:
        """Deliver ``mail``; raises MailError (logged) if it could not be handed over."""
        msg = self.build(mail)
        m = self.settings.mail
        try:
            if m.smtp_host:
                self._smtp(msg)
                where = f"smtp {m.smtp_host}:{m.smtp_port}"
            else:
                where = str(self._to_outbox(msg))
        except (OSError, smtplib.SMTPException) as exc:
            log.error("mail not sent: to=%s subject=%r: %s", mail.to, mail.subject, exc)
            raise MailError(str(exc)) from exc
        log.info("mail sent: to=%s subject=%r via %s", mail.to, mail.subject, where)

    def _smtp(self, msg: EmailMessage) -> None:
        m = self.settings.mail
        context = ssl.create_default_context()
        if m.smtp_security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(m.smtp_host, m.smtp_port,
                                                    timeout=m.timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(m.smtp_host, m.smtp_port, timeout=m.timeout_seconds)
        with client:
            if m.smtp_security == "starttls":
                client.starttls(context=context)
            if m.smtp_user:
                client.login(m.smtp_user, self.settings.smtp_password or "")
            client.send_message(msg)

    def _to_outbox(self, msg: EmailMessage) -> Path:
        self.outbox.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.eml"
        tmp = self.outbox / f".{name}.tmp"
        tmp.write_bytes(msg.as_bytes())
        final = self.outbox / name
        # Beside it, the same message as plain UTF-8 text: the .eml's body is
        # quoted-printable, and a link copied from it "as text" would be broken.
        text = self.outbox / f".{name[:-4]}.txt.tmp"
        text.write_text(_readable(msg), encoding="utf-8")
        os.replace(text, final.with_suffix(".txt"))
        os.replace(tmp, final)  # a reader never sees half a message
        return final


def _readable(msg: EmailMessage) -> str:
    """A message as a person reads it: the headers that matter, then the body."""
    head = "".join(f"{h}: {msg[h]}\n" for h in ("Date", "From", "To", "Subject") if msg[h])
    body = msg.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    names = [p.get_filename() for p in msg.iter_attachments()]
    extra = "".join(f"[adjunto: {n}]\n" for n in names if n)
    return f"{head}\n{text}{'' if text.endswith(chr(10)) else chr(10)}{extra}"
