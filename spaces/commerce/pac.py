"""PACs (proveedores autorizados de certificación): the interface the rest of
Resguardo uses, the operator's CSD, and the built-in offline *sandbox* PAC.

Issuing a factura has four steps, shaped like a payment (see
:mod:`spaces.commerce.payments`): :mod:`spaces.commerce.invoicing` **builds** the CFDI 4.0,
**signs** it with the operator's CSD (:func:`load_csd`), the PAC **stamps** it
(:meth:`Pac.stamp`: validates it and adds the Timbre Fiscal Digital), and
:mod:`spaces.commerce.invoicing` **stores** the stamped XML and its PDF. A PAC does only
the stamp and the cancellation (:meth:`Pac.cancel`); everything before and after
is the same for every PAC.

The CSD (certificado de sello digital, from SAT) is three things from the
environment, never from the configuration file: RESGUARDO_CSD_CERT (path of the
``.cer``), RESGUARDO_CSD_KEY (path of the ``.key``, PKCS#8 DER as SAT gives it)
and RESGUARDO_CSD_PASSWORD (the key's password). Its RFC must be
``[invoicing] issuer_rfc``. Without them only the sandbox works: it makes a test
CSD for the issuer under ``data_dir/invoicing/sandbox/``.

Adding a real PAC (Finkok, SW Sapien, Diverza, Prodigia, ...):

1. Subclass :class:`Pac` in a module of its own, with ``name`` and
   ``sandbox = False``. ``stamp(signed_xml)`` sends the signed CFDI to the PAC
   and returns ``Stamped(xml, uuid)`` with the XML it got back (the timbre
   inside); it raises :class:`PacRefused` with the PAC's reason when the PAC
   refuses the CFDI (nothing was stamped) and :class:`PacUnavailable` when it
   cannot tell (timeout, 5xx): the caller keeps the signed CFDI and sends the
   same one again later, which PACs answer with the stamp they already made.
   ``cancel(request)`` asks for the cancellation (``request.motivo`` 01–04,
   ``request.replacement`` for 01) and returns ``Cancelled(status, ack)``:
   ``"cancelled"``, or ``"pending"`` while the receptor must accept (then
   ``cancellation_status(request)`` tells later how it ended).
   satcfdi (a dependency) implements several PACs: e.g.
   ``satcfdi.pacs.finkok.Finkok(username, password, environment)``; its
   ``stamp(CFDI.from_string(signed_xml))`` returns a document whose ``.xml`` is
   the stamped CFDI, and ``cancel(cfdi, CancelReason(motivo), replacement,
   signer)`` the acuse. The PAC's user and password come from the environment
   (e.g. RESGUARDO_PAC_USER, RESGUARDO_PAC_PASSWORD), like every secret.
2. Register it in :func:`make_pac` under its ``[invoicing] pac`` name, and add
   the name to ``spaces.core.settings_file.PACS``.
3. Set ``[invoicing] issuer_*`` to the operator's fiscal data and the CSD
   variables; test with the PAC's test environment first.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from spaces import sat
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings

log = logging.getLogger(__name__)


class InvoicingUnavailable(SpaceError):
    """Facturas cannot be issued now (no usable CSD, the PAC is down): try later."""

    status = 503


class PacRefused(SpaceError):
    """The PAC refused the CFDI (nothing was stamped); the message says why."""

    status = 409


class PacUnavailable(InvoicingUnavailable):
    """The PAC did not answer; whether it stamped is unknown: send the same CFDI again."""


@dataclass(frozen=True)
class Stamped:
    xml: bytes
    uuid: str


@dataclass(frozen=True)
class CancelRequest:
    uuid: str
    issuer_rfc: str
    receptor_rfc: str
    total: str
    motivo: str  # "01".."04"
    replacement: str | None  # the substitute's UUID (motivo 01)


@dataclass(frozen=True)
class Cancelled:
    status: str  # "cancelled" | "pending" (the receptor must accept) | "rejected" (it did not)
    ack: str


class Pac:
    """A PAC: stamps signed CFDI and cancels stamped ones (see the module docstring)."""

    name = "base"
    #: Stamps that are not valid before SAT (the sandbox).
    sandbox = False

    def stamp(self, signed_xml: bytes) -> Stamped:
        raise NotImplementedError

    def cancel(self, request: CancelRequest) -> Cancelled:
        raise NotImplementedError

    def cancellation_status(self, request: CancelRequest) -> Cancelled | None:
        """How a cancellation that was ``pending`` (the receptor must accept it) ended:
        ``Cancelled("cancelled" | "rejected" | "pending", ack)``, or None when the PAC
        cannot tell yet. ``resguardo lifecycle run`` asks for every pending one."""
        return None


# -- the CSD --------------------------------------------------------------------------------

def certificate_number(cert: x509.Certificate) -> str:
    """SAT's 20-digit NoCertificado: the serial number's bytes are its ASCII digits."""
    raw = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
    return raw.decode("ascii", "replace")


def certificate_rfc(cert: x509.Certificate) -> str:
    """The RFC SAT writes in a CSD's subject (x500UniqueIdentifier, "RFC / RFC del
    representante" for a persona moral)."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)
    value = attrs[0].value if attrs else ""
    return (value if isinstance(value, str) else value.decode()).split("/")[0].strip()


@dataclass(frozen=True)
class Csd:
    """The operator's certificado de sello digital: what seals every factura."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    #: The same, as satcfdi's signer (it computes the sello of a CFDI it builds).
    signer: Any

    @property
    def number(self) -> str:
        return certificate_number(self.certificate)

    @property
    def rfc(self) -> str:
        return certificate_rfc(self.certificate)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def sign(self, data: bytes) -> str:
        """Base64 of the RSA-SHA256 (PKCS#1 v1.5) signature of ``data``: a sello."""
        return base64.b64encode(self.key.sign(data, padding.PKCS1v15(),
                                              hashes.SHA256())).decode()


def _csd(cert_der: bytes, key_der: bytes, password: bytes, issuer_rfc: str,
         now: datetime) -> Csd:
    from satcfdi.models import Signer

    try:
        cert = x509.load_der_x509_certificate(cert_der)
        key = serialization.load_der_private_key(key_der, password or None)
    except (ValueError, TypeError) as exc:
        raise InvoicingUnavailable(
            "No se puede facturar: el CSD no se pudo leer (revise RESGUARDO_CSD_CERT, "
            f"RESGUARDO_CSD_KEY y RESGUARDO_CSD_PASSWORD): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvoicingUnavailable("No se puede facturar: la llave del CSD no es RSA.")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, spki)
            != cert.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise InvoicingUnavailable("No se puede facturar: la llave del CSD no corresponde a "
                                   "su certificado.")
    if certificate_rfc(cert) != issuer_rfc:
        raise InvoicingUnavailable(
            f"No se puede facturar: el CSD es del RFC {certificate_rfc(cert)!r}, no del emisor "
            f"{issuer_rfc} ([invoicing] issuer_rfc).")
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise InvoicingUnavailable("No se puede facturar: el CSD no está vigente "
                                   f"(vigencia {cert.not_valid_before_utc:%Y-%m-%d} a "
                                   f"{cert.not_valid_after_utc:%Y-%m-%d}).")
    return Csd(cert, key, Signer.load(cert_der, key_der, password or None))


def load_csd(settings: Settings, now: datetime | None = None) -> Csd:
    """The operator's CSD from the environment (see the module docstring). With the
    sandbox PAC and no CSD in the environment, a generated test CSD for
    ``[invoicing] issuer_rfc``. InvoicingUnavailable (fail closed) for anything
    missing, unreadable, of another RFC or expired."""
    now = now or datetime.now(UTC)
    files = settings.csd_files
    if files is None:
        if settings.invoicing.pac != "sandbox":
            raise InvoicingUnavailable(
                "No se puede facturar: falta el CSD del emisor (RESGUARDO_CSD_CERT, "
                "RESGUARDO_CSD_KEY y RESGUARDO_CSD_PASSWORD).")
        d = sandbox_dir(settings)
        ensure_test_certificates(settings)
        return _csd((d / "csd.cer").read_bytes(), (d / "csd.key").read_bytes(),
                    SANDBOX_KEY_PASSWORD, settings.invoicing.issuer_rfc, now)
    cert_path, key_path, password = files
    try:
        cert_der, key_der = Path(cert_path).read_bytes(), Path(key_path).read_bytes()
    except OSError as exc:
        raise InvoicingUnavailable(f"No se puede facturar: no se pudo leer el CSD: {exc}") \
            from None
    return _csd(cert_der, key_der, password.encode(), settings.invoicing.issuer_rfc, now)


# -- the sandbox ----------------------------------------------------------------------------

#: The sandbox PAC's RFC (a made-up, well-formed one) and what it writes in every
#: timbre, so nobody takes its facturas for real ones.
SANDBOX_PAC_RFC = "SPR190613I52"
SANDBOX_LEYENDA = "SIN VALIDEZ FISCAL: timbre de pruebas de Resguardo, sandbox, no enviado al SAT"
SANDBOX_KEY_PASSWORD = b"sandbox-sin-validez"


def sandbox_dir(settings: Settings) -> Path:
    return settings.data_path / "invoicing" / "sandbox"


def _test_certificate(rfc: str, name: str, number: str, unit: str | None,
                      now: datetime) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, name),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
             x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, rfc),
             x509.NameAttribute(NameOID.SERIAL_NUMBER, " / "),
             x509.NameAttribute(NameOID.COUNTRY_NAME, "MX")]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    subject = x509.Name(attrs)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "RESGUARDO SANDBOX - SIN VALIDEZ ANTE EL SAT"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "MX")]))
        .public_key(key.public_key()).serial_number(int(number.encode().hex(), 16))
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=4 * 365))
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.DER),
            key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.BestAvailableEncryption(SANDBOX_KEY_PASSWORD)))


def ensure_test_certificates(settings: Settings) -> Path:
    """The sandbox's certificates, made once per installation: a test CSD for the
    issuer (``csd.cer``/``csd.key``) and the sandbox PAC's own (``pac.cer``/``pac.key``),
    keys encrypted with :data:`SANDBOX_KEY_PASSWORD`. A new issuer RFC gets a new
    test CSD. Several threads or processes at once wait on one ``flock`` and the
    first makes them; the set is swapped in whole by a rename, so a reader never
    sees half of one."""
    d = sandbox_dir(settings)
    rfc = settings.invoicing.issuer_rfc
    marker = d / f"issuer-{rfc}"
    if marker.exists():
        return d
    d.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(d.parent, os.O_RDONLY | os.O_DIRECTORY)  # flock the folder: no lock file left
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not marker.exists():  # nobody made them while this one waited
            _make_test_certificates(settings, d)
    finally:
        os.close(fd)  # releases the flock
    return d


def _make_test_certificates(settings: Settings, d: Path) -> None:
    rfc = settings.invoicing.issuer_rfc
    now = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix=".sandbox-", dir=d.parent))
    try:
        for stem, made in (
                ("csd", _test_certificate(rfc, settings.invoicing.issuer_name,
                                          "30001000000500000001", None, now)),
                ("pac", _test_certificate(SANDBOX_PAC_RFC,
                                          "RESGUARDO SANDBOX PAC SIN VALIDEZ",
                                          "00001000000700000001", f"PAC{SANDBOX_PAC_RFC}",
                                          now))):
            (tmp / f"{stem}.cer").write_bytes(made[0])
            (tmp / f"{stem}.key").write_bytes(made[1])
            os.chmod(tmp / f"{stem}.key", 0o600)
        (tmp / f"issuer-{rfc}").write_text("test CSD for this issuer RFC\n", encoding="utf-8")
        if d.exists():  # another issuer RFC's set: keep the PAC's, replace the CSD
            for name in ("pac.cer", "pac.key"):
                shutil.copyfile(d / name, tmp / name)
            old = d.with_name(f".old-{uuid.uuid4().hex}")
            os.rename(d, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, d)
        log.warning("sandbox PAC: test certificates made in %s (NOT valid before SAT)", d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SandboxPac(Pac):
    """Offline PAC for development and tests: validates the signed CFDI as a PAC
    would (SAT's schemas, its sello against its own certificate, the issuer,
    Fecha within 72 hours) and stamps it locally with a Timbre Fiscal Digital 1.1
    — a UUID and its own SelloSAT, made with the sandbox's test certificate
    (``data_dir/invoicing/sandbox/pac.cer``). Its timbre says
    :data:`SANDBOX_LEYENDA`: **not valid before SAT**; nothing goes to SAT.
    Stamping the same signed CFDI again gives the same UUID, as real PACs do."""

    name = "sandbox"
    sandbox = True

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        """``clock``: the PAC's "now" (aware), for tests that move time."""
        self.settings = settings
        self.clock = clock

    def _pac(self) -> Any:
        from satcfdi.models import Signer

        d = ensure_test_certificates(self.settings)
        return Signer.load((d / "pac.cer").read_bytes(), (d / "pac.key").read_bytes(),
                           SANDBOX_KEY_PASSWORD)

    def stamp(self, signed_xml: bytes, now: datetime | None = None) -> Stamped:
        from satcfdi.create.cfd import tfd11

        now = now or (self.clock() if self.clock else None)
        try:
            sat.validate(signed_xml)
        except sat.InvalidCfdi as exc:
            raise PacRefused(f"El PAC rechazó el CFDI (esquema del SAT): {exc}") from None
        root = sat.parse(signed_xml).getroot()
        sello, cert_b64 = root.get("Sello", ""), root.get("Certificado", "")
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(cert_b64))
            cert.public_key().verify(  # type: ignore[call-arg, union-attr]
                base64.b64decode(sello), sat.cadena_original(signed_xml).encode(),
                padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - any failure is a bad sello
            raise PacRefused("El PAC rechazó el CFDI: su sello no corresponde a su "
                             "certificado.") from None
        if certificate_number(cert) != root.get("NoCertificado"):
            raise PacRefused("El PAC rechazó el CFDI: NoCertificado no es el del certificado.")
        emisor = root.find(f"{{{sat.CFDI_NS}}}Emisor")
        if emisor is None or certificate_rfc(cert) != emisor.get("Rfc"):
            raise PacRefused("El PAC rechazó el CFDI: el certificado no es del RFC emisor.")
        local = local_now(root.get("LugarExpedicion", ""), now)
        try:
            fecha = datetime.fromisoformat(root.get("Fecha", ""))
        except ValueError:
            fecha = datetime.min
        if not (local - timedelta(hours=72) <= fecha <= local + timedelta(minutes=5)):
            raise PacRefused("El PAC rechazó el CFDI: su fecha no está dentro de las 72 horas "
                             "anteriores al timbrado.")
        digest = hashlib.sha256(sello.encode()).digest()
        stamp_uuid = str(uuid.UUID(bytes=digest[:16], version=4)).upper()
        tfd = tfd11.TimbreFiscalDigital(proveedor=self._pac(), uuid=stamp_uuid,
                                        fecha_timbrado=local_now("", now),
                                        sello_cfd=sello, leyenda=SANDBOX_LEYENDA)
        complemento = root.find(f"{{{sat.CFDI_NS}}}Complemento")
        if complemento is None:
            complemento = etree.Element(f"{{{sat.CFDI_NS}}}Complemento")
            addenda = root.find(f"{{{sat.CFDI_NS}}}Addenda")
            if addenda is not None:
                addenda.addprevious(complemento)
            else:
                root.append(complemento)
        complemento.append(tfd.to_xml(include_schema_location=True))
        etree.cleanup_namespaces(root)
        stamped = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        log.info("sandbox PAC stamped uuid=%s (not valid before SAT)", stamp_uuid)
        return Stamped(stamped, stamp_uuid)

    def cancel(self, request: CancelRequest) -> Cancelled:
        """Cancels at once (a real cancellation may wait for the receptor) and returns
        an acuse signed with the sandbox's certificate, marked not valid."""
        from xml.sax.saxutils import quoteattr

        at = local_now("", self.clock() if self.clock else None).isoformat()
        body = (f"<Acuse Fecha={quoteattr(at)} RfcEmisor={quoteattr(request.issuer_rfc)}>"
                f"<Folios UUID={quoteattr(request.uuid)} EstatusUUID=\"201\" "
                f"Motivo={quoteattr(request.motivo)}"
                + (f" FolioSustitucion={quoteattr(request.replacement)}"
                   if request.replacement else "")
                + f"/><Leyenda>{SANDBOX_LEYENDA}</Leyenda></Acuse>")
        seal = base64.b64encode(self._pac().key.sign(body.encode(), padding.PKCS1v15(),
                                                     hashes.SHA256())).decode()
        ack = body.replace("</Acuse>", f"<Sello>{seal}</Sello></Acuse>")
        log.info("sandbox PAC cancelled uuid=%s motivo=%s", request.uuid, request.motivo)
        return Cancelled("cancelled", ack)


#: SAT's time zones of c_CodigoPostal, as IANA zones.
_ZONES = {
    "Tiempo del Centro": "America/Mexico_City",
    "Tiempo del Centro en Frontera": "America/Matamoros",
    "Tiempo del Noroeste": "America/Tijuana",
    "Tiempo del Pacífico": "America/Mazatlan",
    "Tiempo del Sureste": "America/Cancun",
}


def local_now(postal_code: str, now: datetime | None = None) -> datetime:
    """Naive local time, to the second, where ``postal_code`` is (SAT's c_CodigoPostal
    gives each code its time zone; satcfdi carries the catalogue); Mexico City's for
    an unknown or empty code. A CFDI's Fecha is the local time of its lugar de
    expedición."""
    from zoneinfo import ZoneInfo

    zone = "America/Mexico_City"
    if postal_code:
        from satcfdi.catalogs import codigo_postal_uso_horario

        try:
            zone = _ZONES.get(codigo_postal_uso_horario(postal_code), zone)
        except (KeyError, TypeError, IndexError):
            pass
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)).replace(tzinfo=None,
                                                                          microsecond=0)


def make_pac(settings: Settings, now: datetime | None = None) -> Pac:
    """The configured PAC. ``now`` (aware): a moved clock (tests, ``lifecycle run
    --today``) that the sandbox follows; a real PAC has SAT's."""
    if settings.invoicing.pac == "sandbox":
        return SandboxPac(settings, clock=(lambda: now) if now else None)
    raise ValueError(f"unknown PAC {settings.invoicing.pac!r}")  # _validate prevents it
