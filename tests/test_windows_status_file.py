"""The status file Explorer shows instead of RFC 4331 quota: listed and readable,
stating usage and tier in Spanish, not counted in usage, refusing every change."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

from windows_helpers import (
    LOCK_BODY,
    D,
    prop_text,
    propfind,
    stored,
    usage,
    win32_proppatch_body,
    windows_session,
)

from spaces.access.statusfile import READ_ONLY_MESSAGE, STATUS_FILE_NAME
from spaces.core import formats

# -- the status file ------------------------------------------------------------------

T1M = """
[tiers.T1M]
quota = "1M"
max_users = 3
cfdi_years = 1
"""


def _small_space(make_server):  # type: ignore[no-untyped-def]
    srv = make_server(T1M).start()
    srv.create_space("acme", "T1M")
    srv.add_user("acme", "ana", "secreto-ana-1")
    return srv, windows_session()


def test_status_file_is_listed_readable_and_states_usage_and_tier_in_spanish(make_server):
    srv, s = _small_space(make_server)
    status_url = srv.dav("acme", quote(STATUS_FILE_NAME))
    quota_bytes = int(srv.show("acme")["quota_bytes"])

    listing = propfind(s, srv.dav("acme"), "1")
    assert f"/dav/acme/{quote(STATUS_FILE_NAME)}" in [urlsplit(h).path for h in listing]
    props = listing[next(h for h in listing if unquote(h).endswith(STATUS_FILE_NAME))]
    assert prop_text(props, f"{D}displayname") == STATUS_FILE_NAME

    r = s.get(status_url)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    before = r.content.decode("utf-8")
    assert int(prop_text(props, f"{D}getcontentlength")) == len(r.content)
    assert "Plan: T1M" in before
    assert f"Espacio usado: {formats.size(0)} de {formats.size(quota_bytes)}" in before
    assert f"Espacio disponible: {formats.size(quota_bytes)}" in before
    # es-MX figures, and the time in Mexico City with its zone.
    assert "(0.0 %)" in before
    assert re.search(r"Consultado: \d{1,2} [a-z]{3,4} \d{4}, \d{2}:\d{2} CST\r\n", before), before

    size = 256 * 1024
    assert s.put(srv.dav("acme", "datos.bin"), data=b"d" * size).status_code == 201
    after = s.get(status_url).content.decode("utf-8")
    assert after != before
    assert f"Espacio usado: {formats.size(size)} de {formats.size(quota_bytes)}" in after
    assert f"Espacio disponible: {formats.free_bytes(quota_bytes - size)}" in after
    assert "Plan: T1M" in after
    assert "Papelera y versiones: 0 bytes de 256 MB de reserva" in after

    # What is deleted leaves the plan at once, into the reserve: the file says so.
    assert s.delete(srv.dav("acme", "datos.bin")).status_code == 204
    deleted = s.get(status_url).content.decode("utf-8")
    assert f"Espacio usado: {formats.size(0)} de {formats.size(quota_bytes)}" in deleted
    assert f"Papelera y versiones: {formats.size(size)} de 256 MB de reserva; lo más " \
        "antiguo se elimina solo." in deleted
    assert "reserva aparte, fuera de su plan" in deleted


def test_status_file_is_not_counted_in_usage(make_server):
    srv, s = _small_space(make_server)
    assert s.get(srv.dav("acme", quote(STATUS_FILE_NAME))).status_code == 200
    assert usage(srv) == (0, 0)
    assert s.put(srv.dav("acme", "a.txt"), data=b"12345").status_code == 201
    assert usage(srv) == stored(srv) == (5, 1)
    assert not (srv.files_root("acme") / STATUS_FILE_NAME).exists()
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
            "<D:quota-used-bytes/></D:prop></D:propfind>")
    (props,) = propfind(s, srv.dav("acme"), "0", body).values()
    assert int(prop_text(props, f"{D}quota-used-bytes")) == 5


def test_status_file_refuses_every_change_with_403_and_a_spanish_reason(make_server):
    srv, s = _small_space(make_server)
    status_url = srv.dav("acme", quote(STATUS_FILE_NAME))
    assert s.put(srv.dav("acme", "doc.txt"), data=b"mio").status_code == 201
    original = s.get(status_url).content
    attempts = {
        "PUT": s.put(status_url, data=b"nuevo contenido"),
        "DELETE": s.delete(status_url),
        "MOVE": s.request("MOVE", status_url,
                          headers={"Destination": srv.dav("acme", "renombrado.txt")}),
        "COPY onto": s.request("COPY", srv.dav("acme", "doc.txt"),
                               headers={"Destination": status_url, "Overwrite": "T"}),
        "MOVE onto": s.request("MOVE", srv.dav("acme", "doc.txt"),
                               headers={"Destination": status_url, "Overwrite": "T"}),
        "PROPPATCH": s.request("PROPPATCH", status_url, data=win32_proppatch_body(),
                               headers={"Content-Type": 'text/xml; charset="utf-8"'}),
        "LOCK": s.request("LOCK", status_url, data=LOCK_BODY,
                          headers={"Content-Type": 'text/xml; charset="utf-8"'}),
    }
    for what, r in attempts.items():
        assert r.status_code == 403, (what, r.status_code, r.text)
        assert READ_ONLY_MESSAGE in r.text, (what, r.text)
        assert "solo lectura" in r.text
    assert s.get(status_url).content == original
    assert s.get(srv.dav("acme", "doc.txt")).content == b"mio"
    assert s.get(srv.dav("acme", "renombrado.txt")).status_code == 404
    assert usage(srv) == stored(srv) == (3, 1)
