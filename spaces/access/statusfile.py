"""The virtual, read-only text file at every space's root, for Windows.

Windows Explorer cannot show RFC 4331 quota (Microsoft KB2386902), so the drive
tells the customer in a file what it would otherwise never see. Only Windows'
WebDAV redirector is shown it (:func:`shown_to`): every other client reads
the quota properties, and a file it can neither delete nor copy back would
break a sync (``rclone sync`` would exit 1 and ``rclone check`` list it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from spaces.access.service import SpaceInfo
from spaces.core import formats
from spaces.files.listings import OversizedFolder
from spaces.files.quota import Usage

STATUS_FILE_NAME = "Espacio disponible - LEEME.txt"
READ_ONLY_MESSAGE = (
    "Este archivo lo genera Resguardo para informarle del espacio de su unidad; "
    "es de solo lectura y no se puede modificar, mover ni borrar."
)
#: What Windows' WebDAV redirector (Explorer's network drives) sends as its User-Agent.
WINDOWS_REDIRECTOR = "Microsoft-WebDAV-MiniRedir"
#: The one sentence that explains the reserve, wherever usage is shown.
RESERVE_SENTENCE = ("Lo que borra y las versiones anteriores de sus archivos se guardan en una "
                    "reserva aparte, fuera de su plan: no ocupan su espacio, y cuando la "
                    "reserva se llena lo más antiguo se elimina solo.")

_STATUS_ES = {
    "active": "activo",
    "readonly": "solo lectura (renueve su plan para volver a guardar)",
    "suspended": "suspendido",
}


def shown_to(user_agent: str | None) -> bool:
    """Whether a client sees the status file: Windows' WebDAV redirector only."""
    return WINDOWS_REDIRECTOR.lower() in (user_agent or "").lower()


def render(space: SpaceInfo, usage: Usage | None, now: datetime | None = None,
           cfdi_count: int | None = None,
           oversized: list[OversizedFolder] | None = None,
           zone: ZoneInfo | None = None) -> str:
    """The file's text (Spanish, Windows line endings so Notepad shows it well):
    the plan (current files only) and, apart, the reserve for the trash and
    earlier versions; the folders Explorer would show empty, if any."""
    now = now or datetime.now(UTC)
    lines = [
        f"Resguardo — estado del espacio «{space.name}»",
        f"Consultado: {formats.moment(now, zone=zone)}",
        "",
        f"Plan: {space.tier}",
        f"Estado: {_STATUS_ES.get(space.status, space.status)}",
    ]
    if usage is None:
        lines.append("Uso: no disponible en este momento.")
    else:
        pct = (100 * usage.used_bytes / usage.quota_bytes) if usage.quota_bytes else 0
        lines += [
            f"Espacio usado: {formats.size(usage.used_bytes)} de "
            f"{formats.size(usage.quota_bytes)} ({formats.percent(pct)})",
            f"Espacio disponible: {formats.free_bytes(usage.available_bytes)}",
            f"Archivos y carpetas: {usage.used_files}",
            f"Papelera y versiones: {formats.size(usage.held_bytes)} de "
            f"{formats.size(usage.reserve_bytes)} de reserva; lo más antiguo se elimina solo.",
        ]
        if usage.used_bytes > usage.quota_bytes:
            lines.append("ATENCIÓN: el espacio está lleno; puede leer, mover y borrar, pero no "
                         "guardar. Lo que borra deja de contar al instante.")
    if cfdi_count is not None:
        lines.append(f"CFDI en resguardo: {cfdi_count}")
    paid = formats.day(space.paid_until) if space.paid_until else "sin vencimiento"
    lines.append(f"Pagado hasta: {paid}")
    if oversized:
        lines += ["", "ATENCIÓN: con su configuración original, el Explorador de Windows muestra "
                  "vacías (o no abre) estas carpetas, aunque sus archivos siguen aquí:"]
        lines += [f"  {f.path} ({f.entries} archivos y carpetas)" for f in oversized[:20]]
        if len(oversized) > 20:
            lines.append(f"  … y {len(oversized) - 20} carpetas más")
        lines.append("Solución: importe en cada equipo el archivo .reg de la página del espacio "
                     "en el portal (fija FileAttributesLimitInBytes en su máximo) y reinicie el "
                     "servicio WebClient, o reparta los archivos en subcarpetas por año o mes.")
    lines += ["", RESERVE_SENTENCE,
              "1 GB = 1024 MB = 1 073 741 824 bytes, como los muestra Windows."]
    return "\r\n".join(lines) + "\r\n"
