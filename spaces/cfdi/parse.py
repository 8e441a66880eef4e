"""Recognise CFDI in the bytes of a file, safely.

:func:`classify` reads untrusted bytes and says what they are — a stamped CFDI
3.2/3.3/4.0 or Retenciones 1.0/2.0 (``index``), a SAT cancellation acuse
(``acuse``), a comprobante without a valid stamp (``unstamped``), a CFDI with
inconsistent fields (``flag-invalid``), something else (``not-cfdi``,
``archive``), or a file that must not be parsed (``reject-malformed``,
``reject-hostile``, ``too-large``). Documents are matched on namespace URIs,
never on prefixes or file names.

Parsing rules: the size is capped before parsing; any DOCTYPE or entity
declaration is refused (a CFDI never has one), so no entity is expanded and
nothing is fetched (no DTD, no schemaLocation, no XInclude); no recover mode;
files are read block by block whatever their size and only the parts a
classification reads are kept (a stamped CFDI with a huge Addenda is still a
CFDI); fields are read with ``find`` from the root, never by recursing over a
tree that may be 100,000 levels deep.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from spaces.cfdi.rfc import rfc_problem

#: A file larger than this whose root element is no CFDI is left as soon as its
#: root is read; a CFDI is examined whole whatever its size (:func:`classify_stream`).
MAX_INDEX_BYTES = 8 * 2**20

NS_CFDI3 = "http://www.sat.gob.mx/cfd/3"
NS_CFDI4 = "http://www.sat.gob.mx/cfd/4"
NS_TFD = "http://www.sat.gob.mx/TimbreFiscalDigital"
NS_PAGOS10 = "http://www.sat.gob.mx/Pagos"
NS_PAGOS20 = "http://www.sat.gob.mx/Pagos20"
NS_RET1 = "http://www.sat.gob.mx/esquemas/retencionpago/1"
NS_RET2 = "http://www.sat.gob.mx/esquemas/retencionpago/2"
NS_CANCEL = "http://cancelacfd.sat.gob.mx"

_CFDI_VERSION = {NS_CFDI3: "3.3", NS_CFDI4: "4.0"}
_RET_VERSION = {NS_RET1: "1.0", NS_RET2: "2.0"}
_TIPO_32 = {"ingreso": "I", "egreso": "E", "traslado": "T"}

_UUID_RE = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_FECHA_RE = re.compile(
    r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
)
_IMPORTE_RE = re.compile(r"^[0-9]{1,18}(\.[0-9]{1,6})?$")

INDEXED = "index"
ACUSE = "acuse"


@dataclass
class Finding:
    """What the indexer concluded about one file."""

    category: str
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    size: int = 0

    @property
    def uuid(self) -> str | None:
        value = self.fields.get("uuid")
        return str(value) if value else None


class _Rejected(Exception):
    def __init__(self, category: str, reason: str) -> None:
        super().__init__(reason)
        self.category, self.reason = category, reason


#: Byte order marks, longest first (UTF-32 LE's starts like UTF-16 LE's).
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
         (b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
#: What XML calls white space: all that may come before the root element.
_XML_SPACE = " \t\r\n"


def detect_encoding(head: bytes) -> tuple[str | None, int]:
    """The encoding XML's autodetection (its Appendix F) reads in the first
    bytes of a document, and the length of its byte order mark: a BOM, or
    without one the zero bytes around the first (ASCII) characters of UTF-16
    and UTF-32, big or little endian. None: an 8-bit encoding (UTF-8, or
    whatever the declaration names)."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    b = head[:4]
    if len(b) == 4:
        if b[0] == b[1] == b[2] == 0 and b[3]:
            return "utf-32-be", 0
        if b[0] and b[1] == b[2] == b[3] == 0:
            return "utf-32-le", 0
        if b[0] == 0 and b[1] and b[2] == 0 and b[3]:
            return "utf-16-be", 0
        if b[0] and b[1] == 0 and b[2] and b[3] == 0:
            return "utf-16-le", 0
    return None, 0


def _text_start(data: bytes) -> str:
    """The start of ``data`` as text in its detected encoding, leading XML
    white space removed (8-bit: Latin-1, enough to see ASCII markup)."""
    codec, skip = detect_encoding(data[:4])
    text = data[skip:].decode(codec or "latin-1", errors="ignore")
    return text.lstrip(_XML_SPACE)


def looks_like_xml(head: bytes) -> bool:
    """Cheap sniff on the first bytes of a file: worth examining as XML? Its
    first character after any BOM and white space, in any encoding XML
    allows, is '<' — or the bytes seen are all white space (so far it might
    still be)."""
    if not head:
        return False
    start = _text_start(head)
    return start[:1] == "<" or start == ""


def worth_examining(name: str, head: bytes) -> bool:
    """Should the indexer look at this file? XML content (whatever its name), a
    ZIP (to say it is an archive, never unpacked) or a name ending in .xml
    (so a damaged or disguised "XML" is reported as such). Names only decide
    what is looked at, never what it is."""
    return (looks_like_xml(head) or head.startswith((b"PK\x03\x04", b"PK\x05\x06"))
            or name.lower().endswith(".xml"))


#: Bytes read from a file at a time while it is examined.
_BLOCK = 1 << 20
#: Longest single token (a start tag with its attributes, a comment) the
#: parser may have to hold whole; a longer one stops the examination
#: (``too-large``). Character data never counts: it arrives in pieces.
MAX_TOKEN_BYTES = 8 * 2**20
#: Most elements kept for the classification (Pagos 1.0 may hold many Pago).
MAX_KEPT_ELEMENTS = 100_000
#: The only parts of a document a classification reads (local names below the
#: root); everything else (Conceptos, Addenda...) is parsed and dropped.
_KEEP = frozenset({
    ("Emisor",), ("Receptor",), ("Complemento",), ("Totales",), ("Folios",),
    ("Complemento", "TimbreFiscalDigital"), ("Complemento", "Pagos"),
    ("Receptor", "Nacional"), ("Receptor", "Extranjero"),
    ("Folios", "UUID"), ("Folios", "EstatusUUID"),
    ("Complemento", "Pagos", "Totales"), ("Complemento", "Pagos", "Pago"),
})
_KEEP_TEXT = frozenset({("Folios", "UUID"), ("Folios", "EstatusUUID")})


def _cfdi_root(tag: str) -> bool:
    ns, local = _split(tag)
    return ((ns in _CFDI_VERSION and local == "Comprobante")
            or (ns in _RET_VERSION and local == "Retenciones")
            or (ns is None and local == "Acuse"))


class _Shallow:
    """ElementTree parser target that builds only the root and the parts in
    :data:`_KEEP`, and counts every event (see :data:`MAX_TOKEN_BYTES`)."""

    def __init__(self, leave_foreign: bool) -> None:
        self.leave_foreign = leave_foreign
        self.builder = TreeBuilder()
        self.path: list[str] = []
        self.skipping = 0
        self.events = 0
        self.kept = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.events += 1
        if self.skipping:
            self.skipping += 1
            return
        local = _split(tag)[1]
        if not self.path:
            if self.leave_foreign and not _cfdi_root(tag):
                raise _Rejected("not-cfdi", f"el elemento raíz {tag!r} no es un CFDI")
        elif (*self.path[1:], local) not in _KEEP:
            self.skipping = 1
            return
        self.kept += 1
        if self.kept > MAX_KEPT_ELEMENTS:
            raise _Rejected("reject-hostile", f"más de {MAX_KEPT_ELEMENTS} elementos "
                                              "de los que se leen en un CFDI")
        self.path.append(local)
        self.builder.start(tag, attrib)

    def end(self, tag: str) -> None:
        self.events += 1
        if self.skipping:
            self.skipping -= 1
            return
        self.path.pop()
        self.builder.end(tag)

    def data(self, text: str) -> None:
        self.events += 1
        if not self.skipping and tuple(self.path[1:]) in _KEEP_TEXT:
            self.builder.data(text)

    def comment(self, text: str) -> None:
        self.events += 1

    def pi(self, target: str, text: str) -> None:
        self.events += 1

    def close(self) -> Element:
        return self.builder.close()


class _Feeder:
    """Feeds a file to the parser block by block, hashing and counting it.

    UTF-16 and UTF-32 (with or without BOM) and UTF-8 after a BOM are decoded
    here (expat knows no UTF-32; after a BOM no declaration may say
    otherwise); white space before the first markup is dropped, even before
    an XML declaration (where XML itself forbids it, but a stamped document
    is still one)."""

    def __init__(self, fh: BinaryIO, head: bytes, digest: Any, size_hint: int | None) -> None:
        self.fh, self.head, self.digest = fh, head, digest
        self.size = len(head)
        self.size_hint = size_hint
        self._rest = self._blocks()

    def _blocks(self) -> Iterator[bytes]:
        yield self.head
        for block in iter(lambda: self.fh.read(_BLOCK), b""):
            self.digest.update(block)
            self.size += len(block)
            yield block

    def drain(self) -> None:
        for _block in self._rest:
            pass

    def _chunks(self) -> Iterator[bytes | str]:
        """The document without its BOM and leading white space: bytes for
        8-bit encodings (expat reads the declaration), text otherwise."""
        codec, skip = detect_encoding(self.head[:4])
        first = True
        started = False
        if codec is None:
            for block in self._rest:
                if first:
                    block, first = block[skip:], False
                if not started:
                    block = block.lstrip(_XML_SPACE.encode())
                    if not block:
                        continue
                    if block[:1] != b"<":
                        raise _Rejected("not-cfdi", "no es XML")
                    started = True
                yield block
        else:
            decoder = codecs.getincrementaldecoder(codec)(errors="strict")
            try:
                for block in self._rest:
                    if first:
                        block, first = block[skip:], False
                    text = decoder.decode(block)
                    if not started:
                        text = text.lstrip(_XML_SPACE)
                        if not text:
                            continue
                        if text[:1] != "<":
                            raise _Rejected("not-cfdi", "no es XML")
                        started = True
                    yield text
                text = decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                raise _Rejected("reject-malformed", f"codificación no válida: {exc}") from None
            if text.strip(_XML_SPACE) and not started:
                raise _Rejected("not-cfdi", "no es XML")
            if started and text:
                yield text
        if not started:
            raise _Rejected("reject-malformed", "archivo vacío")

    def parse(self) -> Element:
        """The root with the parts a classification reads; _Rejected otherwise."""
        big = self.size_hint is None or self.size_hint > MAX_INDEX_BYTES
        target = _Shallow(leave_foreign=big)
        parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True,
                                  forbid_external=True)
        pending, seen = 0, 0
        try:
            for chunk in self._chunks():
                parser.feed(chunk)
                if target.events != seen:
                    seen, pending = target.events, 0
                else:
                    pending += len(chunk)
                    if pending > MAX_TOKEN_BYTES:
                        raise _Rejected("too-large", f"un elemento de más de {MAX_TOKEN_BYTES} "
                                                     "bytes; no se analiza")
            root: Element = parser.close()
            return root
        except DefusedXmlException as exc:
            raise _Rejected("reject-hostile", f"DTD o entidades no permitidas: {exc}") from None
        except (ParseError, ValueError, UnicodeError, AssertionError) as exc:
            raise _Rejected("reject-malformed", f"XML mal formado: {exc}") from None


def _split(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def _stamps(root: Element, ns: str) -> list[Element]:
    return [t for c in root.findall(f"{{{ns}}}Complemento")
            for t in c.findall(f"{{{NS_TFD}}}TimbreFiscalDigital")]


def _one_stamp(root: Element, ns: str) -> Element:
    stamps = _stamps(root, ns)
    if len(stamps) != 1:
        raise _Rejected("unstamped",
                        f"{len(stamps)} TimbreFiscalDigital en Complemento (se requiere 1)")
    return stamps[0]


def _paid_amount(root: Element, ns: str) -> str | None:
    """Total paid by a pago (Pagos 2.0 Totales, else the sum of Pagos 1.0 Monto)."""
    for comp in root.findall(f"{{{ns}}}Complemento"):
        p20 = comp.find(f"{{{NS_PAGOS20}}}Pagos")
        if p20 is not None:
            tot = p20.find(f"{{{NS_PAGOS20}}}Totales")
            if tot is not None and tot.get("MontoTotalPagos"):
                return tot.get("MontoTotalPagos")
        p10 = comp.find(f"{{{NS_PAGOS10}}}Pagos")
        if p10 is not None:
            from decimal import Decimal, InvalidOperation

            try:
                total = sum((Decimal(p.get("Monto") or "0")
                             for p in p10.findall(f"{{{NS_PAGOS10}}}Pago")), Decimal("0"))
            except InvalidOperation:
                return None
            return f"{total:.2f}"
    return None


def _fields(root: Element) -> tuple[str, dict[str, Any]]:
    ns, local = _split(root.tag)
    if ns == NS_CFDI3 and local == "Comprobante" and root.get("Version") is None \
            and root.get("version") == "3.2":
        em, rc = root.find(f"{{{ns}}}Emisor"), root.find(f"{{{ns}}}Receptor")
        t = _one_stamp(root, ns)
        rec = {
            "version": "3.2", "tipo": _TIPO_32.get(root.get("tipoDeComprobante") or ""),
            "uuid": t.get("UUID"), "fecha": root.get("fecha"),
            "fecha_timbrado": t.get("FechaTimbrado"),
            "emisor_rfc": em.get("rfc") if em is not None else None,
            "emisor_nombre": em.get("nombre") if em is not None else None,
            "receptor_rfc": rc.get("rfc") if rc is not None else None,
            "receptor_nombre": rc.get("nombre") if rc is not None else None,
            "total": root.get("total"), "moneda": root.get("Moneda"), "monto_pagado": None,
            "pac_rfc": t.get("RfcProvCertif"),
        }
    elif ns in _CFDI_VERSION and local == "Comprobante":
        version = root.get("Version")
        if version != _CFDI_VERSION[ns]:
            raise _Rejected("flag-invalid", f"Version={version!r} no corresponde al espacio de "
                                            f"nombres {ns}")
        em, rc = root.find(f"{{{ns}}}Emisor"), root.find(f"{{{ns}}}Receptor")
        t = _one_stamp(root, ns)
        tipo = root.get("TipoDeComprobante")
        rec = {
            "version": version, "tipo": tipo, "uuid": t.get("UUID"), "fecha": root.get("Fecha"),
            "fecha_timbrado": t.get("FechaTimbrado"),
            "emisor_rfc": em.get("Rfc") if em is not None else None,
            "emisor_nombre": em.get("Nombre") if em is not None else None,
            "receptor_rfc": rc.get("Rfc") if rc is not None else None,
            "receptor_nombre": rc.get("Nombre") if rc is not None else None,
            "total": root.get("Total"), "moneda": root.get("Moneda"),
            "monto_pagado": _paid_amount(root, ns) if tipo == "P" else None,
            "pac_rfc": t.get("RfcProvCertif"),
        }
    elif ns in _RET_VERSION and local == "Retenciones":
        v2 = ns == NS_RET2
        em = root.find(f"{{{ns}}}Emisor")
        nac = root.find(f"{{{ns}}}Receptor/{{{ns}}}Nacional")
        ext = root.find(f"{{{ns}}}Receptor/{{{ns}}}Extranjero")
        tot = root.find(f"{{{ns}}}Totales")
        t = _one_stamp(root, ns)
        receptor = nac if nac is not None else ext
        rec = {
            "version": root.get("Version") or _RET_VERSION[ns], "tipo": "RET",
            "uuid": t.get("UUID"), "fecha": root.get("FechaExp"),
            "fecha_timbrado": t.get("FechaTimbrado"),
            "emisor_rfc": em.get("RfcE" if v2 else "RFCEmisor") if em is not None else None,
            "emisor_nombre": em.get("NomDenRazSocE") if em is not None else None,
            "receptor_rfc": (nac.get("RfcR" if v2 else "RFCRecep") if nac is not None
                             else ("XEXX010101000" if ext is not None else None)),
            "receptor_nombre": receptor.get("NomDenRazSocR") if receptor is not None else None,
            "total": (tot.get("MontoTotOperacion" if v2 else "montoTotOperacion")
                      if tot is not None else None),
            "moneda": "MXN", "monto_pagado": None, "pac_rfc": t.get("RfcProvCertif"),
        }
    elif ns is None and local == "Acuse":
        folios = root.find(f"{{{NS_CANCEL}}}Folios")
        if folios is None:
            raise _Rejected("not-cfdi", "Acuse sin Folios del SAT")
        uuid = (folios.findtext(f"{{{NS_CANCEL}}}UUID") or "").strip().upper()
        if not _UUID_RE.match(uuid):
            raise _Rejected("flag-invalid", "Acuse con UUID no válido")
        return ACUSE, {
            "uuid": uuid, "emisor_rfc": root.get("RfcEmisor"),
            "fecha": (root.get("Fecha") or "")[:19],
            "estatus": (folios.findtext(f"{{{NS_CANCEL}}}EstatusUUID") or "").strip(),
        }
    else:
        raise _Rejected("not-cfdi", f"el elemento raíz {root.tag!r} no es un CFDI")

    # The timbre makes a CFDI fiscal: one TimbreFiscalDigital (checked above)
    # with a well-formed UUID. Everything else is reported, never decisive —
    # real RFCs issued by the SAT fail their check digit often enough.
    if not _UUID_RE.match(rec["uuid"] or ""):
        problems = ["UUID"]
        for key in ("emisor_rfc", "receptor_rfc"):
            if rfc_problem(rec[key] or ""):
                problems.append(key)
        if not _IMPORTE_RE.match(rec["total"] or ""):
            problems.append("total")
        raise _Rejected("flag-invalid", "campos no válidos: " + ", ".join(problems))
    notes = []
    for key, who in (("emisor_rfc", "emisor"), ("receptor_rfc", "receptor"),
                     ("pac_rfc", "PAC")):
        if key == "pac_rfc" and rec[key] is None and rec["version"] in ("3.2", "1.0"):
            continue
        problem = rfc_problem(rec[key] or "")
        if problem:
            notes.append(f"RFC del {who} con {problem}")
    if not _FECHA_RE.match(rec["fecha"] or ""):
        notes.append("fecha no válida")
    if not _IMPORTE_RE.match(rec["total"] or ""):
        notes.append("total no válido")
    rec["uuid"] = str(rec["uuid"]).upper()  # it matched its pattern above
    rec["fecha"] = rec["fecha"][:19] if isinstance(rec["fecha"], str) else None
    del rec["pac_rfc"]
    if notes:
        rec["notes"] = "timbrado, con observaciones: " + "; ".join(notes)
    return INDEXED, rec


def classify(data: bytes) -> Finding:
    """Examine the bytes of one file. Never raises for any input."""
    return classify_stream(io.BytesIO(data), size_hint=len(data))


def classify_stream(fh: BinaryIO, size_hint: int | None = None) -> Finding:
    """Examine a file read from ``fh`` (at its start) block by block, whatever
    its size: a stamped CFDI with an Addenda of hundreds of megabytes is a
    CFDI, protected like any other. Memory stays bounded: only the parts of
    the tree a classification reads are kept (:class:`_Shallow`), character
    data arrives in pieces, and a single token (a tag with its attributes, a
    comment) longer than :data:`MAX_TOKEN_BYTES` stops the parse
    (``too-large``; a CFDI's attributes are at most a few thousand
    characters). A file larger than :data:`MAX_INDEX_BYTES` whose root element
    is no CFDI is left as soon as its root is read. Never raises for any
    input other than a failing read (OSError)."""
    digest = hashlib.sha256()
    head = fh.read(_BLOCK)
    digest.update(head)
    size = len(head)
    if head.startswith(b"%PDF-") or head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
            size += len(block)
        if head.startswith(b"%PDF-"):
            return Finding("not-cfdi", "contenido PDF", sha256=digest.hexdigest(), size=size)
        return Finding("archive", "contenido ZIP (no se desempaca)",
                       sha256=digest.hexdigest(), size=size)
    feeder = _Feeder(fh, head, digest, size_hint)
    try:
        category, fields = _fields(feeder.parse())
        feeder.drain()
    except _Rejected as r:
        feeder.drain()
        return Finding(r.category, r.reason, sha256=digest.hexdigest(), size=feeder.size)
    except RecursionError:  # pragma: no cover - nothing recurses; belt and braces
        feeder.drain()
        return Finding("reject-malformed", "anidamiento excesivo",
                       sha256=digest.hexdigest(), size=feeder.size)
    return Finding(category, str(fields.pop("notes", "")), fields,
                   sha256=digest.hexdigest(), size=feeder.size)
