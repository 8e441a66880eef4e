"""Payment gateways: the interface the rest of Resguardo uses, and the built-in
offline *sandbox* gateway.

A gateway does two things: it sends the customer somewhere to pay
(:meth:`PaymentGateway.checkout_url`) and it turns a webhook it sent into a
verified :class:`GatewayEvent` (:meth:`PaymentGateway.parse_webhook`, which
raises :class:`InvalidSignature` for anything it did not sign). Everything
after that — idempotency, amount checks, provisioning — is
:func:`spaces.commerce.billing.process_event`, the same for every gateway.

Adding a real gateway (Stripe, Conekta, Openpay, Mercado Pago):

1. Subclass :class:`PaymentGateway` in a module of its own. ``checkout_url``
   creates the provider's hosted checkout (or payment link) for the order's
   ``reference`` and ``total_cents``, with ``urls.return_url`` as the success /
   cancel URL, and returns its URL. ``parse_webhook`` verifies the provider's
   signature header with the webhook secret (RESGUARDO_WEBHOOK_SECRET) and maps
   the provider's event to ``GatewayEvent(event_id, order_reference, outcome,
   amount_cents, currency, detail, method)`` — ``outcome`` is ``paid``,
   ``declined`` or ``failed``; ``method`` how the customer paid (one of
   :data:`METHODS`: the factura's forma de pago).
2. Register it in :func:`make_gateway` under its ``[billing] gateway`` name, and
   allow the name in ``spaces.core.settings_file._validate``.
3. Point the provider's webhook at ``/pagos/webhook/<name>`` (the portal verifies,
   then calls ``process_event``, and answers 200 to duplicates).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from spaces.core.errors import InvalidName
from spaces.core.settings import Settings

OUTCOMES = ("paid", "declined", "failed")
#: How a customer paid, as a gateway tells it (the factura's forma de pago comes
#: from it: spaces.sat.catalogs.FORMA_PAGO).
METHODS = ("credit_card", "debit_card", "service_card", "transfer", "cash", "wallet")



class InvalidCard(InvalidName):
    """What a card form says cannot be a card (the sandbox checks it as a provider would)."""

class InvalidSignature(Exception):
    """The webhook was not signed by the gateway (or is malformed or stale)."""


@dataclass(frozen=True)
class GatewayEvent:
    gateway: str
    event_id: str
    order_reference: str
    outcome: str  # "paid" | "declined" | "failed"
    amount_cents: int
    currency: str
    detail: str = ""
    method: str = "credit_card"


@dataclass(frozen=True)
class CheckoutUrls:
    """Where the gateway sends the customer back, and where its webhook goes."""

    pay_url: str  # the sandbox's own card page (ignored by real gateways)
    return_url: str
    webhook_url: str


@dataclass(frozen=True)
class OrderToPay:
    reference: str
    total_cents: int
    currency: str
    description: str
    email: str


class PaymentGateway:
    name = "base"

    def checkout_url(self, order: OrderToPay, urls: CheckoutUrls) -> str:
        raise NotImplementedError

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        raise NotImplementedError


# -- sandbox --------------------------------------------------------------------------

@dataclass(frozen=True)
class TestCard:
    number: str
    outcome: str
    label: str
    method: str = "credit_card"


#: The sandbox's documented test cards (any future expiry date, any 3-digit CVC).
#: Any other number is declined.
SANDBOX_CARDS = (
    TestCard("4242424242424242", "paid", "pago aprobado"),
    TestCard("4000056655665556", "paid", "pago aprobado, tarjeta de débito", "debit_card"),
    TestCard("4000000000000002", "declined", "tarjeta rechazada por el banco"),
    TestCard("4000000000000119", "failed", "error de procesamiento"),
)

SIGNATURE_HEADER = "X-Resguardo-Signature"
#: Older webhooks are refused, so a captured one cannot be replayed much later.
MAX_WEBHOOK_AGE_SECONDS = 3600


def _sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class SandboxGateway(PaymentGateway):
    """Offline gateway: the portal shows a card form (:data:`SANDBOX_CARDS`) and
    this class decides the outcome and signs the webhook the way a real provider
    would (``X-Resguardo-Signature: t=<unix time>,v1=<HMAC-SHA256 hex of
    "<t>.<body>">``), so the verifying path is the one production uses."""

    name = "sandbox"

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def checkout_url(self, order: OrderToPay, urls: CheckoutUrls) -> str:
        return urls.pay_url

    @staticmethod
    def card_for(card_number: str) -> TestCard:
        digits = "".join(ch for ch in card_number if ch.isdigit())
        for card in SANDBOX_CARDS:
            if card.number == digits:
                return card
        return TestCard(digits, "declined", "tarjeta no reconocida por el sandbox")

    @staticmethod
    def check_expiry(text: str, today: date) -> None:
        """Refuse what no card can carry, as a provider does before charging:
        InvalidCard unless ``text`` is MM/AA (or MM/AAAA) with a month 01-12 and
        not before ``today``'s month (a card is valid through its month)."""
        m = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", text or "")
        if m is None:
            raise InvalidCard("Escriba el vencimiento como MM/AA, por ejemplo 08/29.")
        month, year = int(m.group(1)), int(m.group(2))
        year += 2000 if year < 100 else 0
        if not 1 <= month <= 12:
            raise InvalidCard(f"El mes del vencimiento debe ir de 01 a 12 (escribió {month:02d}).")
        if (year, month) < (today.year, today.month):
            raise InvalidCard(f"La tarjeta venció en {month:02d}/{year % 100:02d}: "
                              "use una vigente.")
        if year > today.year + 20:
            raise InvalidCard("Ese vencimiento no es posible: revise el año.")

    @classmethod
    def outcome_for(cls, card_number: str) -> tuple[str, str]:
        card = cls.card_for(card_number)
        return card.outcome, card.label

    def charge(self, order: OrderToPay, card_number: str,
               now: float | None = None) -> tuple[bytes, dict[str, str]]:
        """Simulate the provider charging the card: returns the signed webhook
        (body, headers) it would then deliver."""
        card = self.card_for(card_number)
        outcome, detail = card.outcome, card.label
        body = json.dumps({
            "id": f"evt_{uuid.uuid4().hex}",
            "type": f"payment.{outcome}",
            "order": order.reference,
            "amount_cents": order.total_cents,
            "currency": order.currency,
            "detail": detail,
            "method": card.method,
        }, separators=(",", ":")).encode()
        return body, self.sign(body, now)

    def sign(self, body: bytes, now: float | None = None) -> dict[str, str]:
        t = str(int(time.time() if now is None else now))
        return {SIGNATURE_HEADER: f"t={t},v1={_sign(self.secret, t, body)}"}

    def parse_webhook(self, body: bytes, headers: Mapping[str, str],
                      now: float | None = None) -> GatewayEvent:
        header = ""
        for k, v in headers.items():
            if k.lower() == SIGNATURE_HEADER.lower():
                header = v
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        t, sig = parts.get("t", ""), parts.get("v1", "")
        if not t.isdigit() or not sig:
            raise InvalidSignature("falta la firma")
        if not hmac.compare_digest(_sign(self.secret, t, body), sig):
            raise InvalidSignature("firma inválida")
        age = (time.time() if now is None else now) - int(t)
        if abs(age) > MAX_WEBHOOK_AGE_SECONDS:
            raise InvalidSignature("webhook demasiado antiguo")
        try:
            data = json.loads(body)
            kind = str(data["type"])
            outcome = kind.removeprefix("payment.")
            if not kind.startswith("payment.") or outcome not in OUTCOMES:
                raise ValueError(kind)
            method = str(data.get("method", "credit_card"))
            if method not in METHODS:
                raise ValueError(method)
            return GatewayEvent(self.name, str(data["id"]), str(data["order"]), outcome,
                                int(data["amount_cents"]), str(data["currency"]),
                                str(data.get("detail", ""))[:500], method)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidSignature(f"evento mal formado: {exc}") from None


def make_gateway(settings: Settings) -> PaymentGateway:
    if settings.billing.gateway == "sandbox":
        return SandboxGateway(settings.webhook_secret)
    raise ValueError(f"unknown gateway {settings.billing.gateway!r}")  # _validate prevents it
