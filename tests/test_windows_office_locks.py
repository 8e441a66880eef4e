"""What Microsoft Office needs from the drive, proved against the real server: its
save-by-rename replaces the document and leaves no temporaries or stray locks, and locks
and dead properties outlive a restart of the server."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import pytest
import requests
from windows_helpers import (
    WIN_UA,
    held,
    live,
    lock,
    lock_tokens,
    multistatus,
    prop_text,
    propfind,
    stored,
    usage,
    windows_session,
)

from spaces.access.statusfile import STATUS_FILE_NAME

# -- Office's save-by-rename -------------------------------------------------------

def _listed_names(s: requests.Session, url: str) -> set[str]:
    return {unquote(urlsplit(h).path).rstrip("/").rsplit("/", 1)[1]
            for h in propfind(s, url, "1")} - {"acme"}


@pytest.mark.db
def test_word_save_by_rename_replaces_the_document_and_leaves_no_temporaries(space):
    srv, _ = space
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    s.headers["User-Agent"] = WIN_UA
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    old, new = b"version 1 " * 3000, b"version 2, con mas texto " * 5000
    assert s.put(d("doc.docx"), data=old).status_code == 201

    assert s.put(d("~WRL0001.tmp"), data=new).status_code == 201
    r = s.request("MOVE", d("doc.docx"), headers={"Destination": d("~WRL0002.tmp")})
    assert r.status_code == 201, r.text
    r = s.request("MOVE", d("~WRL0001.tmp"), headers={"Destination": d("doc.docx")})
    assert r.status_code == 201, r.text
    assert s.delete(d("~WRL0002.tmp")).status_code == 204

    assert s.get(d("doc.docx")).content == new
    assert _listed_names(s, srv.dav("acme")) == {STATUS_FILE_NAME, "doc.docx"}
    assert {p.name for p in srv.files_root("acme").iterdir()} == {"doc.docx"}
    # The old document is kept as a version of doc.docx (in the reserve), not as
    # an orphan: the plan counts the new document only.
    assert live(srv) == (len(new), 1)
    assert usage(srv) == stored(srv) == (len(new), 1)
    assert held(srv) == (len(old), 1)


@pytest.mark.db
def test_excel_save_by_rename_over_the_existing_document_counts_it_once(space):
    srv, _ = space
    s = windows_session()
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.request("MKCOL", d("Nómina") + "/").status_code == 201
    old, new = b"A" * 70_000, b"B" * 45_000
    assert s.put(d("Nómina/libro.xlsx"), data=old).status_code == 201
    assert usage(srv) == stored(srv) == (len(old), 2)

    assert s.put(d("Nómina/3A2B1C00"), data=new).status_code == 201
    r = s.request("MOVE", d("Nómina/3A2B1C00"),
                  headers={"Destination": d("Nómina/libro.xlsx"), "Overwrite": "T"})
    assert r.status_code == 204, r.text

    assert s.get(d("Nómina/libro.xlsx")).content == new
    assert _listed_names(s, d("Nómina") + "/") == {"Nómina", "libro.xlsx"}
    assert {p.name for p in (srv.files_root("acme") / "Nómina").iterdir()} == {"libro.xlsx"}
    assert live(srv) == (len(new), 2)
    assert usage(srv) == stored(srv) == (len(new), 2)
    assert held(srv) == (len(old), 1)  # the old one as a version


@pytest.mark.db
def test_save_by_rename_of_a_locked_document_leaves_no_lock_at_its_name(space):
    """Word holds a LOCK on the open document and renames it away with the token;
    the lock must not stay behind at ``doc.docx`` (RFC 4918: locks never move
    with a MOVE), or the new version would be locked by a token nobody holds and
    the next person to open it would get it read-only."""
    srv, _ = space
    s = windows_session()
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.put(d("doc.docx"), data=b"v1").status_code == 201
    token = lock(s, d("doc.docx"))

    assert s.put(d("~WRL0001.tmp"), data=b"v2 nueva").status_code == 201
    r = s.request("MOVE", d("doc.docx"),
                  headers={"Destination": d("~WRL0002.tmp"), "If": f"({token})"})
    assert r.status_code == 201, r.text
    assert lock_tokens(s, d("~WRL0002.tmp")) == []  # the lock did not travel
    r = s.request("MOVE", d("~WRL0001.tmp"), headers={"Destination": d("doc.docx")})
    assert r.status_code == 201, r.text
    assert s.delete(d("~WRL0002.tmp")).status_code == 204

    assert lock_tokens(s, d("doc.docx")) == []
    colleague = windows_session()
    assert colleague.put(d("doc.docx"), data=b"v3 de otra persona").status_code == 204
    colleague_token = lock(colleague, d("doc.docx"))
    assert colleague.request("UNLOCK", d("doc.docx"),
                             headers={"Lock-Token": colleague_token}).status_code == 204
    assert live(srv) == (len(b"v3 de otra persona"), 1)
    # v1 (save-by-rename) and "v2 nueva" (the colleague's overwrite) are versions.
    assert usage(srv) == stored(srv) == (len(b"v3 de otra persona"), 1)
    assert held(srv) == (8 + 2, 2)


@pytest.mark.db
def test_moving_a_locked_folder_leaves_no_lock_at_its_old_name(space):
    srv, _ = space
    srv.add_user("acme", "adela", "secreto-adela-1", role="admin")  # folders: admins lock
    s = windows_session("adela", "secreto-adela-1")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.request("MKCOL", d("Clientes") + "/").status_code == 201
    assert s.put(d("Clientes/lista.xlsx"), data=b"x" * 10).status_code == 201
    token = lock(s, d("Clientes") + "/")  # depth infinity: the folder and its members
    r = s.request("MOVE", d("Clientes"),
                  headers={"Destination": d("Clientes 2024"), "If": f"({token})"})
    assert r.status_code == 201, r.text
    assert lock_tokens(s, d("Clientes 2024") + "/") == []

    # A new folder under the old name is not covered by the old lock.
    assert s.request("MKCOL", d("Clientes") + "/").status_code == 201
    assert lock_tokens(s, d("Clientes") + "/") == []
    assert s.put(d("Clientes/nueva.xlsx"), data=b"nueva").status_code == 201
    assert usage(srv) == stored(srv) == (15, 4)


# -- locks and dead properties outlive the process -----------------------------------

@pytest.mark.db
def test_locks_and_dead_properties_survive_a_restart(space):
    srv, _ = space
    s = windows_session()
    path = quote("Contrato Ñuñoa.odt")
    assert s.put(srv.dav("acme", path), data=b"contrato").status_code == 201
    token = lock(s, srv.dav("acme", path))
    value = "Ferretería «El Martillo» & Hijos"
    pp = ('<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
          'xmlns:E="http://example.com/ns"><D:set><D:prop>'
          f"<E:cliente>{value.replace('&', '&amp;')}</E:cliente>"
          "</D:prop></D:set></D:propertyupdate>")
    r = s.request("PROPPATCH", srv.dav("acme", path), data=pp,
                  headers={"If": f"({token})", "Content-Type": 'text/xml; charset="utf-8"'})
    (props,) = multistatus(r).values()
    assert " 200 " in props["{http://example.com/ns}cliente"][0]

    srv.restart()
    url = srv.dav("acme", path)  # the new process listens on another port
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:E="http://example.com/ns">'
            "<D:prop><E:cliente/></D:prop></D:propfind>")
    (props,) = propfind(s, url, "0", body).values()
    assert prop_text(props, "{http://example.com/ns}cliente") == value
    assert lock_tokens(s, url) == [token.strip("<>")]

    assert s.put(url, data=b"sin token").status_code == 423
    assert s.put(url, data=b"con token", headers={"If": f"({token})"}).status_code == 204
    assert s.get(url).content == b"con token"
    assert s.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204
    assert lock_tokens(s, url) == []
