"""PROPFIND Depth 0 and 1 on a space's files and folders, without WsgiDAV's
per-member work.

WsgiDAV answers a PROPFIND by building one resource object per member, asking
the property manager (one SQL query) and the lock manager (another) about each,
building an lxml tree of the whole multistatus and serialising it: about a
millisecond per entry here, and a 10,000-entry listing held well over 100 MB.
This middleware answers the same request from one directory scan, one query for
the dead properties of all members and one for the locks under the folder, and
writes the multistatus as text.

Contract: the answer carries exactly the properties, values and statuses
WsgiDAV's own ``do_PROPFIND`` would return (tests/test_propfind_fast.py compares
both on the same tree). Anything unusual goes to WsgiDAV unchanged: Depth
infinity, conditional headers, a body it cannot classify, the probe root, or a
name that is not plain XML text. A member that has a lock or that is the status
file is rendered by WsgiDAV's own code, inside the fast answer.

The members come from the folder resource's one listing (the file core's
``list_dir``, a ``scandir`` of the store: each entry's stat is the DirEntry's
own), and a file's ETag is the store's formula (``Info.etag_of``), the one
GET and WsgiDAV's answer use: this module reads no file and computes no ETag.
"""

from __future__ import annotations

import io
import math
import re
import stat
from collections.abc import Callable
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from lxml import etree
from wsgidav import util, xml_tools
from wsgidav.dav_error import DAVError, get_http_status_string
from wsgidav.mw.base_mw import BaseMiddleware

from davserver.provider import SpacesProvider
from davserver.request import request_context
from davserver.resources import SpaceFile, SpaceFolder, usage
from davserver.xmlbody import stored_element
from spaces.access import statusfile
from spaces.files.store import Info

StartResponse = Callable[..., Any]

#: The environ key that turns the fast path off for one request (tests compare
#: both answers). Not an ``HTTP_*`` key, so no client can set it.
DISABLE_KEY = "resguardo.propfind_fast"

_HREF_SAFE = "/" + "!*'()," + "$-_|."  # as WsgiDAV's get_href()
_CONDITIONAL = ("HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                "HTTP_IF_UNMODIFIED_SINCE")
#: Text lxml refuses (WsgiDAV would fail on it), or escapes in a way plain
#: text would not reproduce (a carriage return): leave such requests to WsgiDAV.
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")
_BODY_KEY = "resguardo.propfind_body"
_OK = "200 OK"
_NOT_FOUND = get_http_status_string(404)
_SUPPORTEDLOCK = (
    "<D:supportedlock>"
    "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope>"
    "<D:locktype><D:write/></D:locktype></D:lockentry>"
    "<D:lockentry><D:lockscope><D:shared/></D:lockscope>"
    "<D:locktype><D:write/></D:locktype></D:lockentry>"
    "</D:supportedlock>")
#: Marks a template field while a template is built (never in a real value: it
#: is one of the characters that send a request to WsgiDAV).
_FIELD = "\x01"
#: Names that quote() leaves as they are.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~-]+")
_XML_HEAD = "<?xml version='1.0' encoding='UTF-8'?>\n<D:multistatus xmlns:D=\"DAV:\">"

_FILE_LIVE = ("{DAV:}resourcetype", "{DAV:}creationdate", "{DAV:}getcontentlength",
              "{DAV:}getcontenttype", "{DAV:}getlastmodified", "{DAV:}displayname",
              "{DAV:}getetag", "{DAV:}lockdiscovery", "{DAV:}supportedlock")
_FOLDER_LIVE = ("{DAV:}resourcetype", "{DAV:}creationdate", "{DAV:}quota-used-bytes",
                "{DAV:}quota-available-bytes", "{DAV:}getlastmodified", "{DAV:}displayname",
                "{DAV:}lockdiscovery", "{DAV:}supportedlock")


class _Fallback(Exception):
    """Let WsgiDAV answer this request."""


class _Member:
    """What the renderer needs of one file or folder (no resource object)."""

    __slots__ = ("name", "is_dir", "size", "mtime", "ctime", "etag", "href", "ref")

    def __init__(self, name: str, is_dir: bool, size: int, mtime: float, ctime: float,
                 etag: str | None, href: str, ref: str) -> None:
        self.name, self.is_dir, self.size = name, is_dir, size
        self.mtime, self.ctime, self.etag = mtime, ctime, etag
        self.href, self.ref = href, ref


class _Renderer:
    """Property values of plain members, as WsgiDAV's get_property_value gives them,
    with the per-request caches that make them cheap (dates, MIME types)."""

    def __init__(self, environ: dict[str, Any], dead: dict[str, list[tuple[str, str]]]) -> None:
        self.environ = environ
        self.dead = dead
        self._rfc1123: dict[int, str] = {}
        self._rfc3339: dict[int, str] = {}
        self._mime: dict[str, str] = {}
        self._dead_xml: dict[str, str | None] = {}
        self._usage_done = False
        self._templates: dict[tuple[bool, str], str] = {}
        self._placeholders = False
        self._used: int | None = None
        self._available: int | None = None

    # -- cached formatting ------------------------------------------------------------
    def rfc1123(self, secs: float) -> str:
        if self._placeholders:
            return _FIELD + "modified" + _FIELD
        key = math.floor(secs)  # time.gmtime() floors; so does the cache key
        v = self._rfc1123.get(key)
        if v is None:
            v = self._rfc1123[key] = util.get_rfc1123_time(secs)
        return v

    def rfc3339(self, secs: float) -> str:
        if self._placeholders:
            return _FIELD + "created" + _FIELD
        key = math.floor(secs)
        v = self._rfc3339.get(key)
        if v is None:
            v = self._rfc3339[key] = util.get_rfc3339_time(secs)
        return v

    def mime(self, name: str) -> str:
        if self._placeholders:
            return _FIELD + "mime" + _FIELD
        # mimetypes looks at the last two suffixes at most ('.tar.gz'): names
        # that share them share a type. Names without a dot are computed whole.
        last = name.rfind(".")
        if last <= 0:
            return str(util.guess_mime_type(name))
        prev = name.rfind(".", 0, last)
        key = name[prev:] if prev > 0 else name[last:]
        v = self._mime.get(key)
        if v is None:
            v = self._mime[key] = str(util.guess_mime_type("x" + key))
        return v

    def usage(self) -> tuple[int | None, int | None]:
        if not self._usage_done:
            u = usage(self.environ)
            self._used = u.used_bytes if u else None
            self._available = u.available_bytes if u else None
            self._usage_done = True
        return self._used, self._available

    def dead_xml(self, value: str) -> str | None:
        """A stored dead property as WsgiDAV puts it in the answer (parsed, then
        serialised); None when the stored value is unreadable (it then reads
        as not found, as in WsgiDAV's path: see SpaceFile.get_property_value)."""
        if value not in self._dead_xml:
            el = stored_element(value)
            self._dead_xml[value] = (None if el is None
                                     else etree.tostring(el, encoding="unicode"))
        return self._dead_xml[value]

    # -- one property -----------------------------------------------------------------
    def live(self, m: _Member, name: str) -> tuple[str, str | None] | None:
        """(status, value XML or None for an empty element) of a live property,
        or None when ``name`` is not one of the ``{DAV:}`` names (a dead one)."""
        if not name.startswith("{DAV:}"):
            return None
        local = name[6:]
        if local == "lockdiscovery":
            return _OK, "<D:lockdiscovery/>"
        if local == "supportedlock":
            return _OK, _SUPPORTEDLOCK
        if local == "creationdate":
            return _OK, _text(local, self.rfc3339(m.ctime))
        if local == "getcontenttype":
            if m.is_dir:
                return _NOT_FOUND, None
            return _OK, _text(local, self.mime(m.name))
        if local == "resourcetype":
            if m.is_dir:
                return _OK, "<D:resourcetype><D:collection/></D:resourcetype>"
            return _OK, "<D:resourcetype/>"  # a file: an empty element, 17 bytes less
        if local in ("quota-used-bytes", "quota-available-bytes"):
            if not m.is_dir:
                return _OK, None  # WsgiDAV answers None: an empty element, 200
            used, available = self.usage()
            v = used if local == "quota-used-bytes" else available
            return _OK, (None if v is None else _text(local, str(v)))
        if local == "getlastmodified":
            return _OK, _text(local, self.rfc1123(m.mtime))
        if local == "getcontentlength":
            if m.is_dir:
                return _NOT_FOUND, None
            return _OK, _text(local, str(m.size))
        if local == "getetag":
            if m.etag is None:
                return _NOT_FOUND, None
            return _OK, _text(local, escape(m.etag))
        if local == "displayname":
            return _OK, _text(local, escape(m.name))
        return _NOT_FOUND, None

    def names(self, m: _Member) -> list[str]:
        """allprop / propname: WsgiDAV's get_property_names() for this member."""
        live = list(_FOLDER_LIVE if m.is_dir else _FILE_LIVE)
        if m.is_dir:
            used, available = self.usage()
            if used is None:
                live.remove("{DAV:}quota-used-bytes")
            if available is None:
                live.remove("{DAV:}quota-available-bytes")
        return live + [n for n, _ in self.dead.get(m.ref, ())]

    def template(self, is_dir: bool, mode: str, wanted: list[str]) -> str:
        """The whole <D:response> of a member without dead properties, as a
        ``str.format`` template: such members differ only in these values, so
        the answer is built once per kind (file, folder) and filled per member."""
        key = (is_dir, mode)
        t = self._templates.get(key)
        if t is None:
            fake = _Member(_FIELD + "name" + _FIELD, is_dir, _FIELD + "size" + _FIELD,  # type: ignore[arg-type]
                           0.0, 0.0, None if is_dir else _FIELD + "etag" + _FIELD,
                           _FIELD + "href" + _FIELD, "")
            self._placeholders = True
            try:
                text = _response(fake.href, self.props(fake, mode, wanted))
            finally:
                self._placeholders = False
            pieces = text.split(_FIELD)
            t = "".join(p.replace("{", "{{").replace("}", "}}") if i % 2 == 0 else "{" + p + "}"
                        for i, p in enumerate(pieces))
            self._templates[key] = t
        return t

    def props(self, m: _Member, mode: str, wanted: list[str]) -> list[tuple[str, str, str | None]]:
        """[(name, status, value XML or None)] in WsgiDAV's order."""
        out: list[tuple[str, str, str | None]] = []
        dead = dict(self.dead.get(m.ref, ()))
        for name in (wanted if mode == "named" else self.names(m)):
            if mode == "name":
                out.append((name, _OK, None))
                continue
            lv = self.live(m, name)
            if lv is not None:
                out.append((name, lv[0], lv[1]))
            elif name in dead and (xml := self.dead_xml(dead[name])) is not None:
                out.append((name, _OK, xml))
            else:
                out.append((name, _NOT_FOUND, None))
        return out


def _text(local: str, value: str) -> str:
    return f"<D:{local}>{value}</D:{local}>"


def _split_name(name: str) -> tuple[str, str]:
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


def _response(href: str, props: list[tuple[str, str, str | None]]) -> str:
    """One <D:response>, grouped by status like util.add_property_response."""
    nsmap: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for name, status, value in props:
        ns, local = _split_name(name)
        if ns == "DAV:":
            tag = "D:" + local
        elif ns == "":
            tag = local
        else:
            prefix = nsmap.get(ns)
            if prefix is None:
                prefix = nsmap[ns] = f"NS{len(nsmap) + 1}"
            tag = f"{prefix}:{local}"
        # A value is already the whole element (a dead property's own
        # serialisation carries its xmlns); None is an empty element.
        groups.setdefault(status, []).append(f"<{tag}/>" if value is None else value)
    decl = "".join(f' xmlns:{p}="{escape(ns, {chr(34): "&quot;"})}"'
                   for ns, p in nsmap.items())
    parts = [f"<D:response{decl}><D:href>{href}</D:href>"]
    for status, pieces in groups.items():
        parts.append("<D:propstat><D:prop>")
        parts.extend(pieces)
        parts.append(f"</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>")
    parts.append("</D:response>")
    return "".join(parts)


def _generic_response(res: Any, mode: str, wanted: list[str] | None) -> str:
    """A member rendered by WsgiDAV itself (locks, the status file)."""
    props = res.get_properties(mode, name_list=wanted if mode == "named" else None)
    ms = xml_tools.make_multistatus_el()
    util.add_property_response(ms, res.get_href(), props)
    return str(etree.tostring(ms[0], encoding="unicode"))


def _parse_body(environ: dict[str, Any]) -> tuple[str, list[str] | None]:
    """(mode, names) of the PROPFIND body, as do_PROPFIND reads it. Restores the
    body for WsgiDAV before raising _Fallback."""
    raw = (environ.get("CONTENT_LENGTH") or "").strip()
    if raw == "":
        return "allprop", None
    try:
        length = int(raw)
    except ValueError:
        raise _Fallback from None
    if length < 0:
        raise _Fallback
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    if not body:
        return "allprop", None
    try:
        root = etree.XML(body, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError:
        raise _Fallback from None
    if root.tag != "{DAV:}propfind":
        raise _Fallback
    # do_PROPFIND's own reading, quirks included: it knows <D:name/> (not
    # RFC 4918's <D:propname/>) and treats any other element as absent, which
    # leaves a "named" request for no property at all.
    mode: str | None = None
    names: list[str] = []
    for node in root:
        if node.tag == "{DAV:}allprop":
            if mode:
                raise _Fallback  # WsgiDAV answers 400
            mode = "allprop"
        elif node.tag == "{DAV:}name":
            if mode:
                raise _Fallback
            mode = "name"
        elif node.tag == "{DAV:}prop":
            if mode not in (None, "named"):
                raise _Fallback
            mode = "named"
            for child in node:
                if not isinstance(child.tag, str):
                    raise _Fallback  # a comment or a processing instruction
                names.append(child.tag)
    if mode in ("allprop", "name"):
        names_out = None
    else:
        mode, names_out = "named", names
    # Keep the body: if this request still goes to WsgiDAV, it reads it again.
    environ[_BODY_KEY] = body
    return mode, names_out


class FastPropfind(BaseMiddleware):
    """Answers PROPFIND Depth 0/1 on a space's files and folders (see module)."""

    def __init__(self, wsgidav_app: Any, next_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        if (environ.get("REQUEST_METHOD") != "PROPFIND" or not environ.get(DISABLE_KEY, True)
                or not isinstance(environ.get("wsgidav.provider"), SpacesProvider)
                or request_context(environ) is None
                or (environ.get("HTTP_DEPTH") or "").lower() not in ("0", "1")
                or any(k in environ for k in _CONDITIONAL)):
            return self.next_app(environ, start_response)
        try:
            body = self._answer(environ)
        except _Fallback:
            if _BODY_KEY in environ:
                environ["wsgi.input"] = io.BytesIO(environ.pop(_BODY_KEY))
            return self.next_app(environ, start_response)
        if _BODY_KEY in environ:
            environ.pop(_BODY_KEY)
            environ["wsgidav.all_input_read"] = 1
        environ["resguardo.propfind_fast_used"] = True
        start_response("207 Multi-Status", [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Date", util.get_rfc1123_time()),
            ("Content-Length", str(sum(len(b) for b in body))),
        ])
        return body

    def _answer(self, environ: dict[str, Any]) -> list[bytes]:
        provider: SpacesProvider = environ["wsgidav.provider"]
        path = environ["PATH_INFO"]
        res = provider.get_resource_inst(path, environ)
        if not isinstance(res, (SpaceFile, SpaceFolder)) or res.info is None:
            raise _Fallback  # 404, the status file, ...: WsgiDAV's answer
        mode, wanted = _parse_body(environ)
        environ["HTTP_DEPTH"] = environ["HTTP_DEPTH"].lower()
        depth1 = environ["HTTP_DEPTH"] == "1" and isinstance(res, SpaceFolder)

        lm = provider.lock_manager
        pm = provider.prop_manager
        if lm is None or pm is None or not hasattr(pm, "get_properties_of"):
            raise _Fallback
        self_ref = res.get_ref_url()
        self_norm = "/" + self_ref.strip("/")
        self_member = _Member(res.get_display_name(), res.is_collection,
                              res.info.size, res.info.mtime, res.info.ctime,
                              res.get_etag(), res.get_href(), self_norm)
        if _NOT_XML_TEXT.search(self_member.name):
            raise _Fallback

        names: list[str] = []
        scan: dict[str, Any] = {}
        folder_ref = folder_href = ""
        if depth1:
            assert isinstance(res, SpaceFolder)
            names = res.get_member_names()
            scan = res._members()
            base = util.join_uri(res.path, "x")[:-1]  # '/space/folder/'
            folder_ref = quote(provider.share_path + base)
            folder_href = quote(provider.mount_path + provider.share_path + base,
                                safe=_HREF_SAFE)
            for n in names:
                if _NOT_XML_TEXT.search(n):
                    raise _Fallback
        # One query for the locks at or below this resource: a member that is a
        # lock root is rendered by WsgiDAV (its lockdiscovery lists the lock).
        locked = {"/" + str(lk["root"]).strip("/") for lk in lm.storage.get_lock_list(
            self_ref, include_root=True, include_children=depth1, token_only=False)}
        special = statusfile.STATUS_FILE_NAME if depth1 and res.is_space_root else None
        quoted = {n: n if _PLAIN_NAME.fullmatch(n) else quote(n) for n in names if n != special}
        refs = [self_norm] + [folder_ref + q for q in quoted.values()]
        dead = pm.get_properties_of(refs)
        for props in dead.values():
            if any(n.startswith("{DAV:}") for n, _ in props):
                raise _Fallback  # WsgiDAV would answer these from its live branch
        r = _Renderer(environ, dead)

        out: list[bytes] = [_XML_HEAD.encode()]
        chunk: list[str] = []
        try:
            if self_norm in locked:
                chunk.append(_generic_response(res, mode, wanted))
            else:
                chunk.append(_response(self_member.href, r.props(self_member, mode, wanted or [])))
            for i, n in enumerate(names):
                st = scan.get(n) if n != special else None
                if st is None or (folder_ref + quoted[n]) in locked:
                    member = res.get_member(n)  # the status file, or a locked member
                    chunk.append(_generic_response(member, mode, wanted))
                else:
                    is_dir = stat.S_ISDIR(st.st_mode)
                    q = quoted[n]
                    ref = folder_ref + q
                    href = folder_href + (q if q is n else quote(n, safe=_HREF_SAFE)) + (
                        "/" if is_dir else "")
                    etag = None if is_dir else Info.etag_of(st)
                    if ref in dead:
                        m = _Member(n, is_dir, st.st_size, st.st_mtime, st.st_ctime, etag,
                                    href, ref)
                        chunk.append(_response(href, r.props(m, mode, wanted or [])))
                    else:
                        t = r.template(is_dir, mode, wanted or [])
                        chunk.append(t.format(
                            href=href, name=escape(n), size=st.st_size, etag=etag,
                            created=r.rfc3339(st.st_ctime), modified=r.rfc1123(st.st_mtime),
                            mime="" if is_dir else r.mime(n)))
                if i % 500 == 499:
                    out.append("".join(chunk).encode("utf-8"))
                    chunk = []
        except (etree.XMLSyntaxError, ValueError, DAVError):
            raise _Fallback from None
        chunk.append("</D:multistatus>")
        out.append("".join(chunk).encode("utf-8"))
        return out

