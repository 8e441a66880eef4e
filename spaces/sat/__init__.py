"""SAT's CFDI 4.0 and Timbre Fiscal Digital 1.1, offline: the vendored schemas
and cadena-original transforms (see ``README.md`` beside this file).

- :func:`validate` checks a CFDI (its timbre included) against ``cfdv40.xsd`` and
  ``TimbreFiscalDigitalv11.xsd`` with their catalogues; :class:`InvalidCfdi`
  names what SAT's schema refuses.
- :func:`cadena_original` and :func:`cadena_original_tfd` run SAT's own XSLT.
- :func:`postal_codes` is the c_CodigoPostal catalogue.

The schemas are loaded per call, one call at a time: the catalogue schema takes
about 90 MB once parsed, which a server should not keep for the few seconds a
year it issues facturas. The transforms are small and kept.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from lxml import etree

HERE = Path(__file__).resolve().parent / "cfd"
CFDI_XSD = HERE / "4" / "cfdv40.xsd"
TFD_XSD = HERE / "TimbreFiscalDigital" / "TimbreFiscalDigitalv11.xsd"
CATALOG_XSD = HERE / "catalogos" / "catCFDI.xsd"
CFDI_XSLT = HERE / "4" / "cadenaoriginal_4_0" / "cadenaoriginal_4_0.xslt"
TFD_XSLT = HERE / "TimbreFiscalDigital" / "cadenaoriginal_TFD_1_1.xslt"

CFDI_NS = "http://www.sat.gob.mx/cfd/4"
TFD_NS = "http://www.sat.gob.mx/TimbreFiscalDigital"

_schema_lock = threading.Lock()
_xslt_lock = threading.Lock()


class InvalidCfdi(ValueError):
    """The document is not a CFDI 4.0 that SAT's schemas accept."""


def _parser() -> etree.XMLParser:
    # Our own files only, and never the network: no entity, no DTD, no fetch.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False)


def _combined_schema() -> etree.XMLSchema:
    """cfdv40.xsd and TimbreFiscalDigitalv11.xsd in one schema, so the timbre in the
    Complemento (a strict xs:any) is checked too."""
    wrapper = etree.fromstring(
        b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        b'<xs:import namespace="' + CFDI_NS.encode() + b'" schemaLocation="'
        + CFDI_XSD.as_uri().encode() + b'"/>'
        b'<xs:import namespace="' + TFD_NS.encode() + b'" schemaLocation="'
        + TFD_XSD.as_uri().encode() + b'"/></xs:schema>',
        parser=_parser(), base_url=(HERE / "wrapper.xsd").as_uri())
    return etree.XMLSchema(wrapper)


def parse(xml: bytes) -> etree._ElementTree:
    """Parse a CFDI safely (no DTD, entities or network)."""
    try:
        return etree.ElementTree(etree.fromstring(xml, parser=_parser()))
    except etree.XMLSyntaxError as exc:
        raise InvalidCfdi(f"XML mal formado: {exc}") from None


def validate(xml: bytes) -> None:
    """InvalidCfdi unless ``xml`` is a cfdi:Comprobante 4.0 that SAT's schemas (with
    the Timbre Fiscal Digital 1.1 when present) accept."""
    doc = parse(xml)
    if doc.getroot().tag != f"{{{CFDI_NS}}}Comprobante":
        raise InvalidCfdi("no es un cfdi:Comprobante 4.0")
    with _schema_lock:
        schema = _combined_schema()
        ok = schema.validate(doc)
        errors = [f"línea {e.line}: {e.message}" for e in schema.error_log]
        del schema
    if not ok:
        raise InvalidCfdi("; ".join(errors[:5]))


@cache
def _transform(path: Path) -> etree.XSLT:
    return etree.XSLT(etree.parse(str(path), parser=_parser()),
                      access_control=etree.XSLTAccessControl.DENY_ALL)


def cadena_original(xml: bytes) -> str:
    """The cadena original of a CFDI 4.0, by SAT's XSLT (what its Sello signs)."""
    with _xslt_lock:
        return str(_transform(CFDI_XSLT)(parse(xml)))


def timbre(xml: bytes) -> etree._Element | None:
    """The tfd:TimbreFiscalDigital of a CFDI, if it has one."""
    return parse(xml).getroot().find(f"{{{CFDI_NS}}}Complemento/{{{TFD_NS}}}TimbreFiscalDigital")


def cadena_original_tfd(tfd: etree._Element) -> str:
    """The cadena original of a Timbre Fiscal Digital 1.1 (what its SelloSAT signs)."""
    doc = etree.ElementTree(etree.fromstring(etree.tostring(tfd), parser=_parser()))
    with _xslt_lock:
        return str(_transform(TFD_XSLT)(doc))


@cache
def postal_codes() -> frozenset[str]:
    """SAT's c_CodigoPostal (the codes a domicilio fiscal or lugar de expedición may have)."""
    codes: set[str] = set()
    wanted = False
    xs = "{http://www.w3.org/2001/XMLSchema}"
    for event, el in etree.iterparse(str(CATALOG_XSD), events=("start", "end")):
        if el.tag == f"{xs}simpleType":
            if event == "start":
                wanted = el.get("name") == "c_CodigoPostal"
            elif wanted:
                break
            else:
                el.clear()
        elif wanted and event == "start" and el.tag == f"{xs}enumeration":
            codes.add(el.get("value"))
    return frozenset(codes)
