"""Limits on what a member (or an unpaid space) can do through the drive and the
web drive: read-only spaces, locks, dead properties, entries and depth, XML
bodies. Real server, real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from drive_helpers import ANA, LOCK_BODY, PROPPATCH_BODY, lock, raw, state, two_spaces
from web_drive_helpers import WebDrive, _db

pytestmark = pytest.mark.db  # statuses, properties, locks and counters live in SQL

READ_ONLY = "solo lectura"


def _set_status(srv, space: str, status: str) -> None:
    from spaces.access import service

    db = _db(srv)
    service.set_status(db, space, status)
    db.dispose()


def test_a_read_only_space_refuses_every_write_on_both_drives_and_still_reads(make_server):
    """An unpaid (read-only) space: members still browse, download and release
    their own locks; every change is refused, through every door, with the
    same Spanish reason, and nothing changes."""
    srv = two_spaces(make_server)
    here = srv.url
    assert raw(srv, "PUT", "/dav/alfa/f.txt", auth=ANA, body=b"de alfa, v2\n").status == 204
    assert raw(srv, "PUT", "/dav/alfa/borrado.txt", auth=ANA, body=b"b\n").status == 201
    assert raw(srv, "DELETE", "/dav/alfa/borrado.txt", auth=ANA).status == 204
    token = lock(srv, "alfa", "carpeta/x.txt", ANA)
    web = WebDrive(srv, "alfa", *ANA)
    trash_page = web.s.get(web.url("papelera"), timeout=30).text
    item = re.search(r"/papelera/(\d+)/restaurar", trash_page).group(1)
    versions_page = web.s.get(web.url("versiones"), params={"ruta": "/f.txt"}, timeout=30).text
    vid = re.search(r"/versiones/(\d+)/descargar", versions_page).group(1)

    _set_status(srv, "alfa", "readonly")
    before = state(srv, "alfa")
    dav_writes = [
        ("PUT", "/dav/alfa/f.txt", {}, b"pisado"),
        ("PUT", "/dav/alfa/nuevo.txt", {}, b"nuevo"),
        ("MKCOL", "/dav/alfa/nueva/", {}, None),
        ("DELETE", "/dav/alfa/f.txt", {}, None),
        ("DELETE", "/dav/alfa/carpeta/", {"If": f"({token})"}, None),
        ("MOVE", "/dav/alfa/f.txt", {"Destination": f"{here}/dav/alfa/g.txt"}, None),
        ("COPY", "/dav/alfa/f.txt", {"Destination": f"{here}/dav/alfa/g.txt"}, None),
        ("PROPPATCH", "/dav/alfa/f.txt", {}, PROPPATCH_BODY),
        ("LOCK", "/dav/alfa/f.txt", {}, LOCK_BODY),
        ("LOCK", "/dav/alfa/nuevo-bloqueado.txt", {}, LOCK_BODY),
    ]
    for method, path, headers, body in dav_writes:
        r = raw(srv, method, path, auth=ANA, headers=headers, body=body)
        assert r.status == 403, (method, path, r)
        assert READ_ONLY in r.body.decode(), (method, r.body)
    web.page = versions_page
    web_writes = [
        ("carpeta", {"nombre": "Nueva"}),
        ("renombrar", {"ruta": "/f.txt", "nombre": "g.txt"}),
        ("mover", {"ruta": "/f.txt", "destino": "/carpeta"}),
        ("borrar", {"ruta": "/f.txt"}),
        (f"papelera/{item}/restaurar", {}),
        (f"papelera/{item}/eliminar", {}),
        ("papelera/vaciar", {}),
        ("papelera/liberar", {"cantidad": "1K"}),
        (f"versiones/{vid}/restaurar", {"ruta": "/f.txt"}),
        ("enlaces/crear", {"ruta": "/f.txt", "dias": "7"}),
    ]
    for action, form in web_writes:
        r = web.action(action, **form)
        assert r.status_code == 403, (action, r.status_code)
        assert READ_ONLY in r.text, action
    r = web.upload("/", "subido.txt", b"hola")
    assert r.status_code == 403 and READ_ONLY in r.json()["message"]
    assert state(srv, "alfa") == before
    assert item in web.s.get(web.url("papelera"), timeout=30).text

    # Reading, downloading and releasing one's own lock still work.
    assert raw(srv, "GET", "/dav/alfa/f.txt", auth=ANA).body == b"de alfa, v2\n"
    assert raw(srv, "PROPFIND", "/dav/alfa/", auth=ANA, headers={"Depth": "1"}).status == 207
    assert web.download("/f.txt").content == b"de alfa, v2\n"
    assert web.s.get(web.url(f"versiones/{vid}/descargar"), timeout=30).status_code == 200
    assert raw(srv, "UNLOCK", "/dav/alfa/carpeta/x.txt", auth=ANA,
               headers={"Lock-Token": token}).status == 204

    # Paid again: writes work at once.
    _set_status(srv, "alfa", "active")
    assert raw(srv, "DELETE", "/dav/alfa/f.txt", auth=ANA).status == 204


# -- 13.13: XML bodies ------------------------------------------------------------------

_DTD_PROPPATCH = ('<?xml version="1.0" encoding="{enc}"?>'
                  '<!DOCTYPE p [<!ENTITY x "expandido">]>'
                  '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
                  '<Z:nota>&x;</Z:nota></D:prop></D:set></D:propertyupdate>')
_PLAIN_PROPPATCH = ('<?xml version="1.0" encoding="{enc}"?>'
                    '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
                    '<Z:nota>ñandú</Z:nota></D:prop></D:set></D:propertyupdate>')
_ENCODINGS = [  # (name in the declaration, Python codec, byte-order mark)
    ("UTF-8", "utf-8", b""), ("UTF-8", "utf-8", b"\xef\xbb\xbf"),
    ("UTF-16", "utf-16-le", b"\xff\xfe"), ("UTF-16", "utf-16-be", b"\xfe\xff"),
    ("UTF-16LE", "utf-16-le", b""), ("UTF-16BE", "utf-16-be", b""),
    ("UTF-32", "utf-32-le", b"\xff\xfe\x00\x00"), ("UTF-32", "utf-32-be", b"\x00\x00\xfe\xff"),
    ("UTF-32LE", "utf-32-le", b""), ("UTF-32BE", "utf-32-be", b""),
    ("ISO-8859-1", "latin-1", b""), ("IBM037", "cp037", b""), ("UTF-7", "utf-7", b""),
    (None, "utf-16-le", b""), (None, "utf-16-be", b""),  # no declaration, no BOM
]


def _declared(template: str, encoding: str | None) -> str:
    """The body with its XML declaration naming ``encoding``, or none at all."""
    text = template.format(enc=encoding or "")
    return text if encoding else text.split("?>", 1)[1]


def _xml_space(make_server):
    srv = make_server().start()
    srv.create_space("alfa", "4G")
    srv.add_user("alfa", *ANA, role="admin")
    assert raw(srv, "PUT", "/dav/alfa/f.txt", auth=ANA, body=b"f").status == 201
    return srv


def _all_props(srv, path: str, depth: str = "0") -> str:
    r = raw(srv, "PROPFIND", path, auth=ANA, headers={"Depth": depth})
    assert r.status == 207, r
    assert " 500 " not in r.body.decode(), r.body  # not even one property's status
    return r.body.decode()


def test_a_dtd_in_any_encoding_is_refused_and_plain_xml_in_any_encoding_works(make_server):
    """The same PROPPATCH in every encoding XML allows (with and without a byte
    order mark, EBCDIC and UTF-7 included): with a DOCTYPE it is refused before
    any parser sees it and nothing is stored; without one it is stored, and
    every PROPFIND reads it back."""
    srv = _xml_space(make_server)
    for name, codec, bom in _ENCODINGS:
        body = bom + _declared(_DTD_PROPPATCH, name).encode(codec)
        r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=body,
                headers={"Content-Type": "application/xml"})
        assert r.status == 400, (name, codec, r)
        assert "expandido" not in _all_props(srv, "/dav/alfa/f.txt"), (name, codec)
    for name, codec, bom in _ENCODINGS:
        body = bom + _declared(_PLAIN_PROPPATCH, name).encode(codec)
        r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=body,
                headers={"Content-Type": "application/xml"})
        assert r.status == 207 and "200 OK" in r.body.decode(), (name, codec, r)
        assert "ñandú" in _all_props(srv, "/dav/alfa/f.txt"), (name, codec)
        assert "ñandú" in _all_props(srv, "/dav/alfa/", "1"), (name, codec)


def test_a_stored_property_that_is_not_xml_never_makes_a_propfind_fail(make_server):
    """A value stored before today's checks (a DTD's entity, a cut value):
    PROPFIND, named, allprop and of the folder, answers 207 with it as not
    found, never as a 500 (neither the request nor that property's status)."""
    import sqlalchemy as sa

    srv = _xml_space(make_server)
    engine = sa.create_engine(srv.db_url)
    with engine.begin() as c:
        for i, value in enumerate(['<Z:a xmlns:Z="urn:z">&x;</Z:a>', "<Z:b xmlns:Z='urn:z'>",
                                   "no es xml", "<!DOCTYPE p><p/>"]):
            c.execute(sa.text("INSERT INTO dav_properties (path, name, value) "
                              "VALUES ('/dav/alfa/f.txt', :n, :v)"),
                      {"n": f"{{urn:z}}roto{i}", "v": value})
    engine.dispose()
    named = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop>'
             '<Z:roto0/><Z:roto1/><Z:roto2/><Z:roto3/><D:getcontentlength/></D:prop>'
             '</D:propfind>')
    r = raw(srv, "PROPFIND", "/dav/alfa/f.txt", auth=ANA, headers={"Depth": "0"}, body=named)
    assert r.status == 207 and "<D:getcontentlength>1<" in r.body.decode(), r
    assert " 500 " not in r.body.decode(), r.body
    _all_props(srv, "/dav/alfa/f.txt")
    assert "/dav/alfa/f.txt" in _all_props(srv, "/dav/alfa/", "1")


# -- 19.3 / 19.5: locks ----------------------------------------------------------------

EDITOR = ("eva", "secreto-eva-1")
LOCKS_SMALL = "[locks]\nmax_per_user = 4\nmax_per_space = 6\n"


def _lock_space(make_server, extra: str = ""):
    srv = make_server(extra).start()
    srv.create_space("alfa", "4G")
    srv.add_user("alfa", *ANA, role="admin")
    srv.add_user("alfa", *EDITOR, role="editor")
    assert raw(srv, "MKCOL", "/dav/alfa/carpeta/", auth=ANA).status == 201
    assert raw(srv, "PUT", "/dav/alfa/carpeta/x.txt", auth=ANA, body=b"x").status == 201
    assert raw(srv, "PUT", "/dav/alfa/doc.docx", auth=ANA, body=b"d").status == 201
    return srv


def _lock(srv, path: str, who, *, depth: str = "0", timeout: str | None = "Second-600",
          owner: str = "<D:href>eva</D:href>"):
    body = ('<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            f'</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>{owner}</D:owner>'
            '</D:lockinfo>')
    headers = {"Depth": depth}
    if timeout is not None:
        headers["Timeout"] = timeout
    return raw(srv, "LOCK", path, auth=who, headers=headers, body=body)


def _seconds(reply) -> int:
    m = re.search(r"<D:timeout>Second-(\d+)</D:timeout>", reply.body.decode())
    assert m, reply.body
    return int(m.group(1))


def test_lock_timeouts_are_bounded_and_nobody_can_freeze_the_space(make_server):
    """An editor's LOCK of the space root with Depth: infinity and Timeout:
    Infinite froze every write for 28 days. Now: nobody locks the space root,
    only an admin locks a folder, and every lock lasts an hour at most
    (Infinite, absurd or missing timeouts included; refreshes too)."""
    srv = _lock_space(make_server)
    for who in (EDITOR, ANA):
        for depth in ("infinity", "0"):
            r = _lock(srv, "/dav/alfa/", who, depth=depth, timeout="Infinite")
            assert r.status == 403 and "raíz" in r.body.decode(), (who, depth, r)
    r = _lock(srv, "/dav/alfa/carpeta/", EDITOR, depth="infinity")
    assert r.status == 403 and "administrador" in r.body.decode(), r
    assert _lock(srv, "/dav/alfa/carpeta/", EDITOR, depth="0").status == 403
    assert raw(srv, "PUT", "/dav/alfa/carpeta/y.txt", auth=EDITOR, body=b"y").status == 201
    for timeout in ("Infinite", "Second-4100000000", "Second-99999", None, "Infinite, Second-5"):
        r = _lock(srv, "/dav/alfa/doc.docx", EDITOR, timeout=timeout)
        assert r.status == 200, (timeout, r)
        assert 3590 <= _seconds(r) <= 3600, (timeout, r.body)
        token = r.header("Lock-Token")
        refreshed = raw(srv, "LOCK", "/dav/alfa/doc.docx", auth=EDITOR,
                        headers={"If": f"({token})", "Timeout": "Infinite"})
        assert refreshed.status == 200 and _seconds(refreshed) <= 3600, refreshed
        assert raw(srv, "UNLOCK", "/dav/alfa/doc.docx", auth=EDITOR,
                   headers={"Lock-Token": token}).status == 204
    r = _lock(srv, "/dav/alfa/carpeta/", ANA, depth="infinity", timeout="Infinite")
    assert r.status == 200 and _seconds(r) <= 3600, r


@pytest.fixture(params=["database", "redis"])
def lock_backend(request) -> Iterator[str]:
    """[locks] for each backend; on Redis under a prefix of its own (the
    machine's Redis is shared), whose keys are removed afterwards."""
    if request.param == "database":
        yield ""
        return
    import uuid

    import redis

    url = request.getfixturevalue("redis_url")
    prefix = f"resguardo:test-{uuid.uuid4().hex[:12]}:"
    yield f'backend = "redis"\nredis_url = "{url}"\nkey_prefix = "{prefix}"\n'
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


def test_lock_owners_and_the_number_of_locks_are_bounded(make_server, lock_backend):
    srv = _lock_space(make_server, LOCKS_SMALL + lock_backend)
    before = state(srv, "alfa")
    r = _lock(srv, "/dav/alfa/nuevo.docx", EDITOR, owner="<D:href>" + "o" * 900_000 + "</D:href>")
    assert r.status == 400 and "owner" in r.body.decode(), r
    assert state(srv, "alfa") == before  # no empty file left behind
    tokens = []
    for i in range(4):
        r = _lock(srv, f"/dav/alfa/e{i}.docx", EDITOR)
        assert r.status == 201, r
        tokens.append(r.header("Lock-Token"))
    r = _lock(srv, "/dav/alfa/e9.docx", EDITOR)
    assert r.status == 403 and "bloqueos" in r.body.decode(), r
    assert raw(srv, "GET", "/dav/alfa/e9.docx", auth=EDITOR).status == 404
    assert _lock(srv, "/dav/alfa/a0.docx", ANA).status == 201
    assert _lock(srv, "/dav/alfa/a1.docx", ANA).status == 201
    r = _lock(srv, "/dav/alfa/a2.docx", ANA)  # six live locks in the space: the limit
    assert r.status == 403 and "espacio" in r.body.decode(), r
    assert raw(srv, "UNLOCK", "/dav/alfa/e0.docx", auth=EDITOR,
               headers={"Lock-Token": tokens[0]}).status == 204
    assert _lock(srv, "/dav/alfa/e9.docx", EDITOR).status == 201


def test_a_space_admin_sees_every_lock_in_the_portal_and_breaks_one(make_server, lock_backend):
    srv = _lock_space(make_server, "[locks]\n" + lock_backend)
    r = _lock(srv, "/dav/alfa/doc.docx", EDITOR, timeout="Second-3000")
    assert r.status == 200
    assert raw(srv, "PUT", "/dav/alfa/doc.docx", auth=ANA, body=b"v2").status == 423
    web = WebDrive(srv, "alfa", *ANA)
    page = web.s.get(f"{srv.url}/espacios/alfa/", timeout=30).text
    assert "/doc.docx" in page and "eva" in page, page
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', page).group(1)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    r = web.s.post(f"{srv.url}/espacios/alfa/bloqueos/quitar",
                   data={"csrf_token": csrf, "token": token}, timeout=30)
    assert r.status_code == 200 and "Bloqueo quitado" in r.text, r.text[-2000:]
    assert "Nada está bloqueado" in r.text.split('id="bloqueos"', 1)[1]
    assert raw(srv, "PUT", "/dav/alfa/doc.docx", auth=ANA, body=b"v2").status == 204
    rows = srv.cli("audit", "list", "--space", "alfa", "--action", "lock_stolen").stdout
    assert "/doc.docx" in rows and "eva" in rows and "ana" in rows, rows
    # Nobody else: an editor of the space cannot open the page at all.
    other = WebDrive(srv, "alfa", *EDITOR)
    assert other.s.get(f"{srv.url}/espacios/alfa/", timeout=30).status_code == 404


# -- 13.7 / 19.4: dead properties --------------------------------------------------------

NS = "urn:resguardo:prueba"


def _proppatch(props: dict[str, str | None]) -> bytes:
    sets = "".join(f"<Z:{n}>{v}</Z:{n}>" for n, v in props.items() if v is not None)
    removes = "".join(f"<Z:{n}/>" for n, v in props.items() if v is None)
    body = f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="{NS}">'
    if sets:
        body += f"<D:set><D:prop>{sets}</D:prop></D:set>"
    if removes:
        body += f"<D:remove><D:prop>{removes}</D:prop></D:remove>"
    return (body + "</D:propertyupdate>").encode()


def _stored_props(srv, space: str = "alfa") -> list[tuple[str, str, str]]:
    import sqlalchemy as sa

    engine = sa.create_engine(srv.db_url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT path, name, value FROM dav_properties "
                                 "WHERE path LIKE :p ORDER BY path, name"),
                         {"p": f"/dav/{space}/%"}).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def _prop_bytes(srv, space: str = "alfa") -> int:
    return sum(len(n.encode()) + len(v.encode()) for _, n, v in _stored_props(srv, space))


def _used(srv, space: str = "alfa") -> int:
    return int(srv.show(space)["used_bytes"])


def test_dead_properties_count_in_the_quota_through_every_change(make_server):
    """Set, replace, remove, COPY, MOVE and DELETE: usage is always the files
    plus the bytes of the properties stored, and a recount agrees."""
    srv = _xml_space(make_server)
    files = _used(srv)
    r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA,
            body=_proppatch({"a": "x" * 3000, "b": "y" * 500}))
    assert r.status == 207 and "200 OK" in r.body.decode(), r
    assert _prop_bytes(srv) > 3500 and _used(srv) == files + _prop_bytes(srv)
    raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=_proppatch({"a": "z", "b": None}))
    assert _used(srv) == files + _prop_bytes(srv) and _prop_bytes(srv) < 200
    raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=_proppatch({"a": "w" * 2000}))
    assert raw(srv, "COPY", "/dav/alfa/f.txt", auth=ANA,
               headers={"Destination": f"{srv.url}/dav/alfa/g.txt"}).status == 201
    files = _used(srv) - _prop_bytes(srv)
    assert len(_stored_props(srv)) == 2 and _prop_bytes(srv) > 4000
    assert raw(srv, "MOVE", "/dav/alfa/g.txt", auth=ANA,
               headers={"Destination": f"{srv.url}/dav/alfa/h.txt"}).status == 201
    assert _used(srv) == files + _prop_bytes(srv)
    assert raw(srv, "MOVE", "/dav/alfa/h.txt", auth=ANA,  # over f.txt: its properties go
               headers={"Destination": f"{srv.url}/dav/alfa/f.txt", "Overwrite": "T"}
               ).status == 204
    assert len(_stored_props(srv)) == 1 and _used(srv) - _prop_bytes(srv) >= files - 1
    assert raw(srv, "DELETE", "/dav/alfa/f.txt", auth=ANA).status == 204
    assert _stored_props(srv) == []
    before = _used(srv)
    drift = srv.cli("quota", "recount", "alfa").stdout
    assert _used(srv) == before, drift


def test_proppatch_limits_refuse_the_whole_request_quickly_and_store_nothing(make_server):
    """22,000 properties in one 945 KB request took 37 s with a commit each. Now
    a request, a resource and the space's quota bound what is stored, and a
    refused request stores nothing."""
    import time

    srv = make_server('[tiers.T64K]\nquota = "64K"\nmax_users = 3\ncfdi_years = 1\n').start()
    srv.create_space("alfa", "T64K")
    srv.add_user("alfa", *ANA, role="admin")
    assert raw(srv, "PUT", "/dav/alfa/f.txt", auth=ANA, body=b"f").status == 201
    huge = _proppatch({f"p{i}": "v" * 20 for i in range(22_000)})
    assert 700_000 < len(huge) < 2**20
    t = time.monotonic()
    r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=huge)
    assert r.status == 507 and "propiedades" in r.body.decode(), r
    assert time.monotonic() - t < 5
    # 100 per request is fine; 101 on one resource (over two requests) is not.
    assert raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA,
               body=_proppatch({f"q{i}": "v" for i in range(100)})).status == 207
    r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=_proppatch({"q100": "v"}))
    assert r.status == 507, r
    # Bytes per resource.
    assert raw(srv, "PUT", "/dav/alfa/g.txt", auth=ANA, body=b"g").status == 201
    r = raw(srv, "PROPPATCH", "/dav/alfa/g.txt", auth=ANA,
            body=_proppatch({"grande": "x" * 70_000}))
    assert r.status == 507, r
    # The quota: 64 KiB with ~7 KB already used by properties and files.
    assert raw(srv, "PUT", "/dav/alfa/relleno.bin", auth=ANA, body=b"r" * 50_000).status == 201
    before = (_used(srv), _stored_props(srv))
    r = raw(srv, "PROPPATCH", "/dav/alfa/g.txt", auth=ANA,
            body=_proppatch({f"c{i}": "x" * 1000 for i in range(20)}))
    assert r.status == 507 and "Espacio insuficiente" in r.body.decode(), r
    assert (_used(srv), _stored_props(srv)) == before


def test_sixteen_parallel_huge_proppatches_do_not_starve_healthz(make_server):
    import threading
    import time

    from test_server_front import _healthz_seconds

    srv = _xml_space(make_server)
    huge = _proppatch({f"p{i}": "v" * 20 for i in range(22_000)})
    for i in range(16):
        assert raw(srv, "PUT", f"/dav/alfa/f{i}.txt", auth=ANA, body=b"f").status == 201
    results: list[tuple[int, float]] = []

    def one(i: int) -> None:
        t = time.monotonic()
        r = raw(srv, "PROPPATCH", f"/dav/alfa/f{i}.txt", auth=ANA, body=huge, timeout=120)
        results.append((r.status, time.monotonic() - t))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert _healthz_seconds(srv, timeout=30) < 5
    for t in threads:
        t.join(120)
    assert len(results) == 16 and all(s == 507 for s, _ in results), results
    assert max(d for _, d in results) < 30, results


# -- 19.6: entries and depth per plan ----------------------------------------------------

SMALL_PLAN = """
[tiers.T12]
quota = "4G"
max_users = 3
cfdi_years = 1
max_entries = 12
max_depth = 5
"""


def _plan_space(make_server):
    srv = make_server(SMALL_PLAN).start()
    srv.create_space("alfa", "T12")
    srv.add_user("alfa", *ANA, role="admin")
    return srv


def test_entries_are_limited_per_plan_and_empty_ones_are_not_free(make_server):
    """400 empty folders in 1.2 s cost nothing before; now every file and folder,
    in use or in the trash, counts against the plan's max_entries, on every door."""
    srv = _plan_space(make_server)
    for i in range(10):
        assert raw(srv, "MKCOL", f"/dav/alfa/c{i}/", auth=ANA).status == 201
    assert raw(srv, "PUT", "/dav/alfa/c0/vacio.txt", auth=ANA, body=b"").status == 201
    assert raw(srv, "MKCOL", "/dav/alfa/c0/sub/", auth=ANA).status == 201  # 12 entries
    before = state(srv, "alfa")
    refusals = [
        raw(srv, "MKCOL", "/dav/alfa/otra/", auth=ANA),
        raw(srv, "PUT", "/dav/alfa/otro.txt", auth=ANA, body=b""),
        raw(srv, "PUT", "/dav/alfa/otro.txt", auth=ANA, body=b"con datos"),
        raw(srv, "COPY", "/dav/alfa/c1/", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/c1-copia/"}),
        _lock(srv, "/dav/alfa/bloqueado.docx", ANA),
    ]
    for r in refusals:
        assert r.status == 507 and "archivos y carpetas" in r.body.decode(), r
    web = WebDrive(srv, "alfa", *ANA)
    assert web.action("carpeta", nombre="Web").status_code == 507
    assert web.upload("/", "web.txt", b"w").status_code == 507
    assert state(srv, "alfa") == before
    # The trash counts too: deleting frees nothing until the trash is emptied.
    assert raw(srv, "DELETE", "/dav/alfa/c9/", auth=ANA).status == 204
    r = raw(srv, "MKCOL", "/dav/alfa/otra/", auth=ANA)
    assert r.status == 507 and "papelera" in r.body.decode(), r
    srv.cli("trash", "empty", "alfa")
    assert raw(srv, "MKCOL", "/dav/alfa/otra/", auth=ANA).status == 201


def test_folder_depth_is_limited_per_plan_on_every_way_in(make_server):
    """A 120-deep chain of folders was accepted; now max_depth (5 here) bounds
    every path, however it is made: MKCOL, PUT, MOVE or COPY of a tree, the web
    drive."""
    srv = _plan_space(make_server)
    for p in ("a/", "a/b/", "a/b/c/", "a/b/c/d/", "a/b/c/d/e/", "z/", "z/y/"):
        assert raw(srv, "MKCOL", f"/dav/alfa/{p}", auth=ANA).status == 201, p
    assert raw(srv, "PUT", "/dav/alfa/a/b/c/d/cinco.txt", auth=ANA, body=b"5").status == 201
    before = state(srv, "alfa")
    refusals = [
        raw(srv, "MKCOL", "/dav/alfa/a/b/c/d/e/f/", auth=ANA),
        raw(srv, "PUT", "/dav/alfa/a/b/c/d/e/seis.txt", auth=ANA, body=b"6"),
        raw(srv, "MOVE", "/dav/alfa/a/", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/z/y/a/"}),
        raw(srv, "COPY", "/dav/alfa/a/", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/z/y/a/"}),
        raw(srv, "COPY", "/dav/alfa/a/b/c/d/cinco.txt", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/a/b/c/d/e/copia.txt"}),
    ]
    for r in refusals:
        assert r.status == 400 and "niveles" in r.body.decode(), r
    web = WebDrive(srv, "alfa", *ANA)
    r = web.action("carpeta", carpeta="/a/b/c/d/e", nombre="f")
    assert r.status_code == 400 and "niveles" in r.text
    r = web.action("mover", ruta="/a", destino="/z/y")
    assert r.status_code == 400 and "niveles" in r.text
    assert state(srv, "alfa") == before
    # Moving up (shallower) is fine.
    assert raw(srv, "MOVE", "/dav/alfa/a/b/c/", auth=ANA,
               headers={"Destination": f"{srv.url}/dav/alfa/z/c/"}).status == 201


def test_paths_too_long_for_locks_and_properties_are_refused_clearly(make_server):
    """A path's address keys its locks and properties (2048 characters at most,
    URL-encoded): on PostgreSQL a longer one made LOCK answer 500 and PROPPATCH
    503. Such paths are refused when they would be made (400), and a property
    name longer than the database keeps is a 507, never a server error."""
    from urllib.parse import quote

    srv = _xml_space(make_server)
    path = "/dav/alfa"
    made = 0
    for i in range(12):
        name = f"ñ{i}" * 60  # 120 characters, 480 encoded (as NFD, the longest spelling)
        r = raw(srv, "MKCOL", quote(f"{path}/{name}/"), auth=ANA)
        if r.status != 201:
            assert r.status == 400 and "larga" in r.body.decode(), r
            break
        path += "/" + name
        made += 1
    assert 3 <= made < 12, made
    for method, body in (("PUT", b"x"), ("LOCK", LOCK_BODY.encode())):
        r = raw(srv, method, quote(path + "/" + "ñ" * 100 + ".txt"), auth=ANA, body=body)
        assert r.status == 400 and "larga" in r.body.decode(), (method, r)
    r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA,
            body=_proppatch({"p": "v"}).replace(NS.encode(), b"urn:" + b"n" * 700))
    assert r.status == 507, r
    assert " 500 " not in _all_props(srv, "/dav/alfa/f.txt")
