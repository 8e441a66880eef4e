"""Helpers for the tests of what Windows clients need from the drive: a session that
sends Explorer's User-Agent, PROPFIND and its 207 answer read as a dict, the Win32
properties Windows PROPPATCHes, LOCK and the locks on a resource, and a space's usage."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import requests

WIN_UA = "Microsoft-WebDAV-MiniRedir/10.0.19045"
D = "{DAV:}"


OLD_DATE = "Wed, 15 Mar 2017 10:20:30 GMT"  # years in the past, as Windows sends it


LOCK_BODY = ('<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:">'
             "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
             "<D:owner><D:href>OFICINA\\ana</D:href></D:owner></D:lockinfo>")


def windows_session(user: str = "ana", password: str = "secreto-ana-1") -> requests.Session:
    s = requests.Session()
    s.auth = (user, password)
    s.headers["User-Agent"] = WIN_UA
    return s


def multistatus(r: requests.Response) -> dict[str, dict[str, tuple[str, ET.Element]]]:
    """href -> {property tag: (status line, element)} of a 207 answer."""
    assert r.status_code == 207, (r.status_code, r.text)
    out: dict[str, dict[str, tuple[str, ET.Element]]] = {}
    for resp in ET.fromstring(r.content).iter(f"{D}response"):
        href = resp.findtext(f"{D}href") or ""
        props: dict[str, tuple[str, ET.Element]] = {}
        for ps in resp.iter(f"{D}propstat"):
            status = ps.findtext(f"{D}status") or ""
            for prop in ps.find(f"{D}prop") or []:
                props[prop.tag] = (status, prop)
        out[href] = props
    return out


def propfind(s: requests.Session, url: str, depth: str = "1", body: str | None = None
             ) -> dict[str, dict[str, tuple[str, ET.Element]]]:
    headers = {"Depth": depth}
    if body:
        headers["Content-Type"] = 'text/xml; charset="utf-8"'
    return multistatus(s.request("PROPFIND", url, data=body, headers=headers,
                                 allow_redirects=False))


def prop_text(props: dict[str, tuple[str, ET.Element]], tag: str) -> str:
    status, el = props[tag]
    assert " 200 " in status, (tag, status)
    return el.text or ""


def win32_proppatch_body(when: str = OLD_DATE) -> str:
    return ('<?xml version="1.0" encoding="utf-8" ?>'
            '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
            "<D:set><D:prop>"
            f"<Z:Win32CreationTime>{when}</Z:Win32CreationTime>"
            f"<Z:Win32LastAccessTime>{when}</Z:Win32LastAccessTime>"
            f"<Z:Win32LastModifiedTime>{when}</Z:Win32LastModifiedTime>"
            "<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
            "</D:prop></D:set></D:propertyupdate>")


def lock(s: requests.Session, url: str) -> str:
    r = s.request("LOCK", url, data=LOCK_BODY,
                  headers={"Timeout": "Second-3600", "Content-Type": 'text/xml; charset="utf-8"'})
    assert r.status_code in (200, 201), (r.status_code, r.text)
    token = r.headers["Lock-Token"]
    assert token.startswith("<opaquelocktoken:")
    return token


def lock_tokens(s: requests.Session, url: str) -> list[str]:
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/>'
            "</D:prop></D:propfind>")
    (props,) = propfind(s, url, "0", body).values()
    _, el = props[f"{D}lockdiscovery"]
    return [(h.text or "").strip() for h in el.iter(f"{D}href")
            if (h.text or "").startswith("opaquelocktoken:")]


def usage(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    d = srv.show(space)
    return int(d["used_bytes"]), int(d["used_files"])


def live(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(bytes, files and folders) actually under the space's files root."""
    entries = list(srv.files_root(space).rglob("*"))
    return sum(p.stat().st_size for p in entries if p.is_file()), len(entries)


def stored(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(bytes, files and folders) the plan counts and its usage must equal: the
    current files (the trash and earlier versions live in the reserve)."""
    return live(srv, space)


def held(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(bytes, entries) in the space's reserve: its trash and earlier versions,
    on disk, which the reserve counters must equal."""
    d = srv.show(space)
    entries = [p for area in ("trash", "versions")
               for p in (srv.data / "spaces" / space / area).rglob("*")]
    on_disk = sum(p.stat().st_size for p in entries if p.is_file()), len(entries)
    assert (int(d["reserve_used_bytes"]), int(d["reserve_used_files"])) == on_disk
    return on_disk
