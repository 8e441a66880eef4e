"""The parts of SAT's CFDI 4.0 catalogues (``catCFDI_V_4``, Anexo 20) that the
XSD does not carry: descriptions, which régimen fiscal applies to a persona
física (RFC of 13 characters) or moral (12), and which uso de CFDI each régimen
of the receptor may state. PACs refuse a CFDI whose receptor breaks these
combinations (validations CFDI40157–CFDI40161), so Resguardo refuses them when
the customer enters them.

Copied from SAT's spreadsheet (sheets c_RegimenFiscal and c_UsoCFDI, columns
"Física", "Moral" and "Régimen Fiscal Receptor"); the codes are those of
``cfd/catalogos/catCFDI.xsd`` (a test checks every code here is in it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Regimen:
    code: str
    description: str
    fisica: bool
    moral: bool


@dataclass(frozen=True)
class Uso:
    code: str
    description: str
    fisica: bool
    moral: bool
    regimenes: frozenset[str]


def _r(code: str, description: str, fisica: bool, moral: bool) -> Regimen:
    return Regimen(code, description, fisica, moral)


#: c_RegimenFiscal in force (609 "Consolidación" ended and is left out).
REGIMENES: dict[str, Regimen] = {r.code: r for r in (
    _r("601", "General de Ley Personas Morales", False, True),
    _r("603", "Personas Morales con Fines no Lucrativos", False, True),
    _r("605", "Sueldos y Salarios e Ingresos Asimilados a Salarios", True, False),
    _r("606", "Arrendamiento", True, False),
    _r("607", "Régimen de Enajenación o Adquisición de Bienes", True, False),
    _r("608", "Demás ingresos", True, False),
    _r("610", "Residentes en el Extranjero sin Establecimiento Permanente en México",
       True, True),
    _r("611", "Ingresos por Dividendos (socios y accionistas)", True, False),
    _r("612", "Personas Físicas con Actividades Empresariales y Profesionales", True, False),
    _r("614", "Ingresos por intereses", True, False),
    _r("615", "Régimen de los ingresos por obtención de premios", True, False),
    _r("616", "Sin obligaciones fiscales", True, False),
    _r("620", "Sociedades Cooperativas de Producción que optan por diferir sus ingresos",
       False, True),
    _r("621", "Incorporación Fiscal", True, False),
    _r("622", "Actividades Agrícolas, Ganaderas, Silvícolas y Pesqueras", False, True),
    _r("623", "Opcional para Grupos de Sociedades", False, True),
    _r("624", "Coordinados", False, True),
    _r("625", "Régimen de las Actividades Empresariales con ingresos a través de "
              "Plataformas Tecnológicas", True, False),
    _r("626", "Régimen Simplificado de Confianza", True, True),
    _r("628", "Hidrocarburos", False, True),
    _r("629", "De los Regímenes Fiscales Preferentes y de las Empresas Multinacionales",
       True, False),
    _r("630", "Enajenación de acciones en bolsa de valores", True, False),
)}

_BUSINESS = frozenset({"601", "603", "606", "612", "620", "621", "622", "623", "624", "625",
                       "626"})
_PERSONAL = frozenset({"605", "606", "607", "608", "611", "612", "614", "615", "625"})
_ANY = frozenset({"601", "603", "605", "606", "607", "608", "610", "611", "612", "614", "615",
                  "616", "620", "621", "622", "623", "624", "625", "626"})


def _u(code: str, description: str, fisica: bool, moral: bool,
       regimenes: frozenset[str]) -> Uso:
    return Uso(code, description, fisica, moral, regimenes)


#: c_UsoCFDI, every code with the régimenes del receptor that may state it.
USOS: dict[str, Uso] = {u.code: u for u in (
    _u("G01", "Adquisición de mercancías", True, True, _BUSINESS),
    _u("G02", "Devoluciones, descuentos o bonificaciones", True, True, _BUSINESS | {"616"}),
    _u("G03", "Gastos en general", True, True, _BUSINESS),
    _u("I01", "Construcciones", True, True, _BUSINESS),
    _u("I02", "Mobiliario y equipo de oficina por inversiones", True, True, _BUSINESS),
    _u("I03", "Equipo de transporte", True, True, _BUSINESS),
    _u("I04", "Equipo de cómputo y accesorios", True, True, _BUSINESS),
    _u("I05", "Dados, troqueles, moldes, matrices y herramental", True, True, _BUSINESS),
    _u("I06", "Comunicaciones telefónicas", True, True, _BUSINESS),
    _u("I07", "Comunicaciones satelitales", True, True, _BUSINESS),
    _u("I08", "Otra maquinaria y equipo", True, True, _BUSINESS),
    _u("D01", "Honorarios médicos, dentales y gastos hospitalarios", True, False, _PERSONAL),
    _u("D02", "Gastos médicos por incapacidad o discapacidad", True, False, _PERSONAL),
    _u("D03", "Gastos funerales", True, False, _PERSONAL),
    _u("D04", "Donativos", True, False, _PERSONAL),
    _u("D05", "Intereses reales efectivamente pagados por créditos hipotecarios (casa "
              "habitación)", True, False, _PERSONAL),
    _u("D06", "Aportaciones voluntarias al SAR", True, False, _PERSONAL),
    _u("D07", "Primas por seguros de gastos médicos", True, False, _PERSONAL),
    _u("D08", "Gastos de transportación escolar obligatoria", True, False, _PERSONAL),
    _u("D09", "Depósitos en cuentas para el ahorro, primas que tengan como base planes de "
              "pensiones", True, False, _PERSONAL),
    _u("D10", "Pagos por servicios educativos (colegiaturas)", True, False, _PERSONAL),
    _u("S01", "Sin efectos fiscales", True, True, _ANY),
    _u("CP01", "Pagos", True, True, _ANY),
    _u("CN01", "Nómina", True, False, frozenset({"605"})),
)}

#: What a customer may ask for on the factura of a storage service (an Ingreso):
#: "Gastos en general" to deduct it, "Sin efectos fiscales" otherwise. The rest do
#: not describe a storage service (mercancías, inversiones in goods, the personal
#: deductions D01–D10) or belong to other kinds of CFDI (G02 an Egreso, CP01 a
#: Pago, CN01 a nómina), so they are not offered.
USOS_FOR_SERVICE = ("G03", "S01")

#: c_FormaPago codes Resguardo uses, by how the gateway says the customer paid.
FORMA_PAGO = {
    "cash": "01",
    "transfer": "03",
    "credit_card": "04",
    "wallet": "05",
    "debit_card": "28",
    "service_card": "29",
}
FORMA_PAGO_LABELS = {
    "01": "Efectivo",
    "03": "Transferencia electrónica de fondos",
    "04": "Tarjeta de crédito",
    "05": "Monedero electrónico",
    "28": "Tarjeta de débito",
    "29": "Tarjeta de servicios",
    "99": "Por definir",
}

#: c_Motivo of a cancellation (SAT, since 2022).
MOTIVOS_CANCELACION = {
    "01": "Comprobante emitido con errores con relación",
    "02": "Comprobante emitido con errores sin relación",
    "03": "No se llevó a cabo la operación",
    "04": "Operación nominativa relacionada en una factura global",
}

#: The receptor of a global invoice ("público en general", RMF 2.7.1.21 and the
#: Anexo 20 guide): generic RFC, this name, régimen 616, uso S01, and the issuer's
#: postal code as domicilio fiscal.
PUBLICO_EN_GENERAL_RFC = "XAXX010101000"
PUBLICO_EN_GENERAL_NOMBRE = "PUBLICO EN GENERAL"

#: The storage service, in SAT's c_ClaveProdServ and c_ClaveUnidad.
CLAVE_PROD_SERV = "81112006"  # Servicios de almacenamiento de datos
CLAVE_UNIDAD = "E48"  # Unidad de servicio
#: Each sale in a global invoice (Anexo 20 guide): "No existe en el catálogo", "Actividad".
GLOBAL_CLAVE_PROD_SERV = "01010101"
GLOBAL_CLAVE_UNIDAD = "ACT"


def persona(rfc: str) -> str:
    """"moral" for a 12-character RFC, "fisica" for 13."""
    return "moral" if len(rfc) == 12 else "fisica"


def regimenes_for(rfc: str) -> list[Regimen]:
    kind = persona(rfc)
    return [r for r in REGIMENES.values() if (r.moral if kind == "moral" else r.fisica)]


def usos_for(rfc: str, regimen: str) -> list[Uso]:
    """The usos this receptor may state on a storage service's factura."""
    kind = persona(rfc)
    return [USOS[c] for c in USOS_FOR_SERVICE
            if regimen in USOS[c].regimenes and (USOS[c].moral if kind == "moral"
                                                 else USOS[c].fisica)]
