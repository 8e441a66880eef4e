"""XML request bodies (PROPFIND, PROPPATCH, LOCK...) and stored dead properties,
read so that no DTD ever reaches a parser and no stored value breaks a PROPFIND.

A DOCTYPE can hide in any encoding XML allows: UTF-16 or UTF-32 with or without
a byte order mark, EBCDIC, UTF-7 and whatever else a declaration names. A byte
pattern cannot know them all, and a parser that guesses the encoding
differently from the check would see markup the check never saw. So the body
is decoded here, once, the way XML 1.0 (appendix F) says to detect its
encoding; the check runs on that text; and the parser gets exactly that text,
as UTF-8 without a declaration. What the check saw is what the parser sees.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree
from wsgidav.mw.base_mw import BaseMiddleware

from davserver.request import request_context

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
         (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"), (b"\xef\xbb\xbf", "utf-8"))
#: The first bytes of "<?xm" or "<" in each family, without a byte order mark
#: (UTF-16 without a declaration too: "<D:" is "\x00<\x00D" in UTF-16BE).
_FAMILIES = ((b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
             (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),
             (b"\x4c\x6f\xa7\x94", "cp037"))
_DECLARED = re.compile(r"""<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_DECLARATION = re.compile(r"<\?xml[^>]*\?>")
#: Markup declarations (DOCTYPE, ENTITY, ELEMENT, ATTLIST, NOTATION...):
#: anything "<!" opens but a comment or a CDATA section.
_MARKUP_DECLARATION = re.compile(r"<!(?!--|\[CDATA\[)")


class BadXml(ValueError):
    """The body cannot be read as XML a WebDAV client sends (its Spanish reason)."""


def xml_for_parser(body: bytes) -> bytes:
    """``body`` decoded (byte order mark, else the family of its first bytes and
    the encoding its declaration names), checked, and re-encoded as UTF-8
    without a declaration. Raises BadXml for an encoding that cannot decode it,
    a NUL, or any markup declaration (a DOCTYPE, an ENTITY...)."""
    text = _decode(body)
    if "\x00" in text:
        raise BadXml("El XML de la petición no es válido.")
    if _MARKUP_DECLARATION.search(text):
        raise BadXml("El XML de la petición trae una declaración DOCTYPE o ENTITY, que "
                     "WebDAV no usa; se rechaza por seguridad.")
    try:
        return text.encode("utf-8")
    except UnicodeError:
        raise BadXml("El XML de la petición no es válido.") from None


def _decode(body: bytes) -> str:
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return _without_declaration(_strict(body[len(bom):], codec))
    family = next((c for sig, c in _FAMILIES if body.startswith(sig)), "utf-8")
    m = _DECLARED.match(body[:512].decode(family, errors="replace"))
    codec = family
    if m is not None:
        try:
            codec = codecs.lookup(m.group(1)).name
        except LookupError:
            raise BadXml(f"Codificación no admitida: {m.group(1)[:40]}.") from None
        if codec in ("utf-16", "utf-32") and family.startswith(codec):
            codec = family  # the byte order the first bytes show
    return _without_declaration(_strict(body, codec))


def _strict(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        raise BadXml("El XML de la petición no está en la codificación que declara.") from None


def _without_declaration(text: str) -> str:
    m = _DECLARATION.match(text)
    return text[m.end():] if m else text


# -- stored dead properties ---------------------------------------------------------

_STORED_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 huge_tree=False)


def stored_element(value: str) -> Any:
    """A stored dead property's value as an element, or None when it is not one
    well-formed element free of DTDs (a value stored before these checks, or
    by hand): PROPFIND then reports that property as not found, never as a
    server error."""
    try:
        el = etree.fromstring(value, parser=_STORED_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        el = None
    if el is None or el.getroottree().docinfo.doctype or _MARKUP_DECLARATION.search(value):
        log.warning("unreadable dead property value ignored: %.80r", value)
        return None
    return el


# -- the middleware --------------------------------------------------------------------

XML_BODY_METHODS = frozenset({"PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "MKCOL", "REPORT",
                              "SEARCH"})


def _plain(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    body = (message + "\n").encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), ("Connection", "close")])
    return [body]


class XmlBodies(BaseMiddleware):
    """After authentication (an anonymous client's body is never read for a
    space: it gets 401 first), the XML body of a request is read, checked and
    handed on as UTF-8 (:func:`xml_for_parser`). Bodies are already bounded
    (``[server] max_xml_body``, see :func:`davserver.app.guard_bodies`); a
    request without a space behind it (the anonymous probes of ``/``) may send
    at most ``anonymous_limit`` bytes."""

    #: The WsgiDAV config key that sets ``anonymous_limit``.
    CONFIG_KEY = "resguardo.xml_anonymous_limit"

    def __init__(self, wsgidav_app: Any, next_app: Callable[..., Any],
                 config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self.anonymous_limit = int(config.get(self.CONFIG_KEY, 65536))

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:

        if environ.get("REQUEST_METHOD") not in XML_BODY_METHODS:
            return self.next_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            return self.next_app(environ, start_response)
        if request_context(environ) is None and length > self.anonymous_limit:
            return _plain(start_response, "413 Request Entity Too Large",
                          "El cuerpo XML de la petición es demasiado grande.")
        body = environ["wsgi.input"].read(length)
        try:
            clean = xml_for_parser(body)
        except BadXml as exc:
            log.warning("XML body refused: %s %s from %s: %s", environ.get("REQUEST_METHOD"),
                        environ.get("PATH_INFO"), environ.get("REMOTE_ADDR", "?"), exc)
            return _plain(start_response, "400 Bad Request", str(exc))
        environ["wsgi.input"] = io.BytesIO(clean)
        environ["CONTENT_LENGTH"] = str(len(clean))
        return self.next_app(environ, start_response)
