"""The representación impresa of a stamped CFDI 4.0 (a PDF, made with fpdf2).

Everything Anexo 20 asks of a printed CFDI: issuer and receptor (RFC, name,
régimen, the receptor's postal code and uso), serie and folio, fecha, lugar de
expedición, forma and método de pago, the conceptos with their keys and IVA,
the totals, the folio fiscal (UUID), the certificate numbers, the date of the
timbre, both seals (the CFDI's and SAT's), the cadena original of the timbre,
and the QR code with SAT's verification URL (``id``, ``re``, ``rr``, ``tt``,
``fe``). A factura stamped by the sandbox PAC says across every page that it is
not valid before SAT.
"""

from __future__ import annotations

from decimal import Decimal

import qrcode
from fpdf import FPDF

from spaces import sat
from spaces.core import plans
from spaces.sat import catalogs

VERIFY_URL = "https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"


def verification_url(xml: bytes) -> str:
    """SAT's verification URL of a stamped CFDI (the QR's content, Anexo 20)."""
    root = sat.parse(xml).getroot()
    tfd = sat.timbre(xml)
    emisor = root.find(f"{{{sat.CFDI_NS}}}Emisor")
    receptor = root.find(f"{{{sat.CFDI_NS}}}Receptor")
    assert tfd is not None and emisor is not None and receptor is not None
    total = format(Decimal(root.get("Total", "0")).normalize(), "f")
    return (f"{VERIFY_URL}?id={tfd.get('UUID')}&re={emisor.get('Rfc')}"
            f"&rr={receptor.get('Rfc')}&tt={total}&fe={root.get('Sello', '')[-8:]}")


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


class _Doc(FPDF):
    def __init__(self, sandbox: bool) -> None:
        super().__init__(format="Letter")
        self.sandbox = sandbox
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(True, margin=14)

    def header(self) -> None:
        if self.sandbox:
            self.set_font("Helvetica", "B", 9)
            self.set_text_color(200, 0, 0)
            self.cell(0, 5, "SIN VALIDEZ FISCAL - timbrado de pruebas (sandbox), no enviado al "
                      "SAT", align="C", new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 7)
        self.cell(0, 4, _latin1(f"Este documento es una representación impresa de un CFDI "
                                f"4.0 · página {self.page_no()}"), align="C")

    def label(self, text: str, value: str, w: float = 0) -> None:
        self.set_font("Helvetica", "B", 7.5)
        self.cell(self.get_string_width(_latin1(text)) + 1, 4.2, _latin1(text))
        self.set_font("Helvetica", "", 7.5)
        self.cell(w, 4.2, _latin1(value), new_x="LMARGIN" if not w else "RIGHT",
                  new_y="NEXT" if not w else "TOP")

    def block(self, title: str, text: str) -> None:
        self.set_font("Helvetica", "B", 7.5)
        self.cell(0, 4.2, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Courier", "", 6.2)
        self.multi_cell(0, 2.8, _latin1(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def qr(self, data: str, x: float, y: float, size: float) -> None:
        code = qrcode.QRCode(border=0, error_correction=qrcode.constants.ERROR_CORRECT_M)
        code.add_data(data)
        code.make(fit=True)
        matrix = code.get_matrix()
        cell = size / len(matrix)
        self.set_fill_color(0, 0, 0)
        for r, row in enumerate(matrix):
            for c, dark in enumerate(row):
                if dark:
                    self.rect(x + c * cell, y + r * cell, cell, cell, style="F")


def _money(value: str | None) -> str:
    return plans.format_mxn(Decimal(value or "0"))


def render(xml: bytes, *, sandbox: bool) -> bytes:
    """The PDF of a stamped CFDI 4.0."""
    root = sat.parse(xml).getroot()
    ns = f"{{{sat.CFDI_NS}}}"
    tfd = sat.timbre(xml)
    if tfd is None:
        raise ValueError("the CFDI has no Timbre Fiscal Digital")
    em = root.find(f"{ns}Emisor")
    rc = root.find(f"{ns}Receptor")
    assert em is not None and rc is not None
    doc = _Doc(sandbox)
    doc.add_page()
    doc.set_title(f"Factura {root.get('Serie', '')}-{root.get('Folio', '')}")
    doc.set_author(em.get("Nombre", ""))

    doc.set_font("Helvetica", "B", 13)
    doc.cell(0, 7, _latin1(f"Factura {root.get('Serie', '')}-{root.get('Folio', '')}"),
             new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 8)
    doc.cell(0, 4.5, _latin1("Comprobante Fiscal Digital por Internet 4.0 · Ingreso"),
             new_x="LMARGIN", new_y="NEXT")
    doc.ln(1)
    regimen = catalogs.REGIMENES.get(em.get("RegimenFiscal", ""))
    doc.label("Emisor: ", f"{em.get('Nombre')} · RFC {em.get('Rfc')}")
    doc.label("Régimen fiscal: ", f"{em.get('RegimenFiscal')} "
              f"{regimen.description if regimen else ''}")
    doc.label("Lugar de expedición: ", f"{root.get('LugarExpedicion')}")
    doc.label("Fecha de emisión: ", f"{root.get('Fecha')}")
    doc.ln(1)
    rreg = catalogs.REGIMENES.get(rc.get("RegimenFiscalReceptor", ""))
    uso = catalogs.USOS.get(rc.get("UsoCFDI", ""))
    doc.label("Receptor: ", f"{rc.get('Nombre')} · RFC {rc.get('Rfc')}")
    doc.label("Domicilio fiscal (C.P.): ", f"{rc.get('DomicilioFiscalReceptor')}")
    doc.label("Régimen fiscal del receptor: ", f"{rc.get('RegimenFiscalReceptor')} "
              f"{rreg.description if rreg else ''}")
    doc.label("Uso del CFDI: ", f"{rc.get('UsoCFDI')} {uso.description if uso else ''}")
    forma = root.get("FormaPago", "")
    doc.label("Forma de pago: ", f"{forma} {catalogs.FORMA_PAGO_LABELS.get(forma, '')}")
    doc.label("Método de pago: ", f"{root.get('MetodoPago')} Pago en una sola exhibición")
    doc.label("Moneda: ", f"{root.get('Moneda')} · Exportación: {root.get('Exportacion')} "
              "No aplica")
    glob = root.find(f"{ns}InformacionGlobal")
    if glob is not None:
        doc.label("Información global: ", f"periodicidad {glob.get('Periodicidad')} "
                  f"(mensual), meses {glob.get('Meses')}, año {glob.get('Año')}")
    for rel in root.findall(f"{ns}CfdiRelacionados"):
        uuids = ", ".join(r.get("UUID", "") for r in rel.findall(f"{ns}CfdiRelacionado"))
        doc.label("CFDI relacionados: ", f"tipo {rel.get('TipoRelacion')} (sustitución): "
                  f"{uuids}")
    doc.ln(2)

    widths = (15, 25, 15, 58, 22, 19, 18, 20)
    heads = ("Clave", "No. ident.", "Cant.", "Descripción", "Valor unitario", "Descuento",
             "IVA 16 %", "Importe")
    doc.set_font("Helvetica", "B", 7)
    doc.set_fill_color(230, 230, 230)
    for w, h in zip(widths, heads, strict=True):
        doc.cell(w, 5, _latin1(h), border=1, fill=True)
    doc.ln()
    doc.set_font("Helvetica", "", 7)
    for c in root.iter(f"{ns}Concepto"):
        tras = c.find(f"{ns}Impuestos/{ns}Traslados/{ns}Traslado")
        iva = _money(tras.get("Importe")) if tras is not None else "-"
        values = (c.get("ClaveProdServ", ""), c.get("NoIdentificacion", ""),
                  f"{c.get('Cantidad')} {c.get('ClaveUnidad')}", c.get("Descripcion", ""),
                  _money(c.get("ValorUnitario")), _money(c.get("Descuento")), iva,
                  _money(c.get("Importe")))
        y = doc.get_y()
        wrapped = doc.multi_cell(widths[3], 4, _latin1(values[3]), dry_run=True,
                                 output="LINES")
        lines = max(1, len(wrapped) if isinstance(wrapped, list) else 1)
        height = 4 * lines
        x = doc.l_margin
        for w, v, i in zip(widths, values, range(len(widths)), strict=True):
            doc.set_xy(x, y)
            if i == 3:
                doc.multi_cell(w, 4, _latin1(v), border=1)
            else:
                doc.cell(w, height, _latin1(v), border=1, align="R" if i >= 4 else "L")
            x += w
        doc.set_xy(doc.l_margin, y + height)
    doc.ln(2)
    impuestos = root.find(f"{ns}Impuestos")
    totals = [("Subtotal", root.get("SubTotal")), ("Descuento", root.get("Descuento")),
              ("IVA trasladado 16 %", impuestos.get("TotalImpuestosTrasladados")
               if impuestos is not None else "0"), ("Total", root.get("Total"))]
    for label, value in totals:
        doc.set_x(doc.l_margin + sum(widths) - 60)
        doc.set_font("Helvetica", "B" if label == "Total" else "", 8)
        doc.cell(36, 4.5, _latin1(label), border=0)
        doc.cell(24, 4.5, _latin1(_money(value)), border=0, align="R", new_x="LMARGIN",
                 new_y="NEXT")
    doc.ln(3)

    y = doc.get_y()
    if y > doc.h - 110:
        doc.add_page()
        y = doc.get_y()
    url = verification_url(xml)
    doc.qr(url, doc.l_margin, y, 32)
    doc.set_xy(doc.l_margin + 36, y)
    doc.label("Folio fiscal (UUID): ", tfd.get("UUID", ""))
    doc.set_x(doc.l_margin + 36)
    doc.label("Fecha y hora de certificación: ", tfd.get("FechaTimbrado", ""))
    doc.set_x(doc.l_margin + 36)
    doc.label("No. de certificado del emisor: ", root.get("NoCertificado", ""))
    doc.set_x(doc.l_margin + 36)
    doc.label("No. de certificado del SAT: ", tfd.get("NoCertificadoSAT", ""))
    doc.set_x(doc.l_margin + 36)
    doc.label("RFC del proveedor de certificación: ", tfd.get("RfcProvCertif", ""))
    if tfd.get("Leyenda"):
        doc.set_x(doc.l_margin + 36)
        doc.set_text_color(200, 0, 0)
        doc.multi_cell(0, 4, _latin1(tfd.get("Leyenda", "")), new_x="LMARGIN", new_y="NEXT")
        doc.set_text_color(0, 0, 0)
    doc.set_x(doc.l_margin + 36)
    doc.set_font("Helvetica", "", 6.5)
    doc.multi_cell(0, 3, _latin1(f"Verificación: {url}"), new_x="LMARGIN", new_y="NEXT")
    doc.set_y(max(doc.get_y(), y + 34))
    doc.block("Sello digital del CFDI", root.get("Sello", ""))
    doc.block("Sello digital del SAT", tfd.get("SelloSAT", ""))
    doc.block("Cadena original del complemento de certificación digital del SAT",
              sat.cadena_original_tfd(tfd))
    return bytes(doc.output())
