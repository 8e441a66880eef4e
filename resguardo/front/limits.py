"""What a client may send before a worker takes its request
(:class:`FrontLimits`, from ``[server]``), and the plain answer the front
gives when it refuses one (:func:`refusal`)."""

from __future__ import annotations

from dataclasses import dataclass

from spaces.core.settings import ServerSettings

_STATUS_TEXT = {
    400: ("Bad Request", "La petición no es válida."),
    408: ("Request Timeout", "La petición tardó demasiado en llegar; se cerró la conexión."),
    414: ("URI Too Long", "La dirección pedida es demasiado larga."),
    431: ("Request Header Fields Too Large",
          "Los encabezados de la petición son demasiado grandes o demasiados."),
    503: ("Service Unavailable", "El servidor está ocupado; intente de nuevo en unos segundos."),
}


@dataclass(frozen=True)
class FrontLimits:
    """What a client may send before a worker takes its request (see :mod:`resguardo.front`)."""

    max_request_line: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    head_timeout: float = 20.0
    idle_timeout: float = 60.0
    buffered_body: int = 65536
    max_connections: int = 512
    min_rate: int = 1024
    max_drain: int = 1048576

    @classmethod
    def of(cls, s: ServerSettings) -> FrontLimits:
        return cls(max_request_line=s.max_request_line, max_header_bytes=s.max_header_bytes,
                   max_headers=s.max_headers, head_timeout=float(s.head_timeout),
                   idle_timeout=float(s.idle_timeout), buffered_body=s.buffered_body,
                   max_connections=s.max_connections, min_rate=max(s.min_rate, 1),
                   max_drain=s.max_drained_body)


def refusal(status: int, extra: str = "") -> bytes:
    """A complete plain-text answer that closes the connection."""
    reason, message = _STATUS_TEXT[status]
    body = (message + "\n").encode("utf-8")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
            ).encode("ascii") + body

