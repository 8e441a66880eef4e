"""What makes a CFDI protected is its timbre (TimbreFiscalDigital), not the
details around it: not the RFC check digits (real RFCs issued by the SAT fail
them often enough), not whitespace or a BOM before the root, not the encoding
XML allows (UTF-8 with BOM, UTF-16 and UTF-32, big or little endian, with or
without BOM), not the file name. And every stamped copy of a UUID is protected:
a fake planted first must not leave the real one deletable."""

from __future__ import annotations

import json

import pytest
import requests
from cfdi_docs import rfc_with_wrong_check_digit, stamped

pytestmark = pytest.mark.db  # the index and its duplicates live in SQL


def setup(make_server):
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return srv, s


def index(srv) -> dict[str, dict]:
    rows = json.loads(srv.cli("cfdi", "list", "acme", "--all", "--json").stdout)
    return {r["path"]: r for r in rows}


def assert_protected(srv, s, name: str, data: bytes, uuid: str) -> None:
    r = s.delete(srv.dav("acme", name))
    assert r.status_code == 403, (name, r.status_code, index(srv).get("/" + name))
    assert uuid in r.text
    r = s.put(srv.dav("acme", name), data=b"otra cosa")
    assert r.status_code == 403, name
    assert s.get(srv.dav("acme", name)).content == data


def test_a_stamped_cfdi_is_protected_even_when_its_rfc_check_digits_fail(make_server):
    srv, s = setup(make_server)
    for i, (who, kw) in enumerate([("emisor", "emisor_rfc"), ("receptor", "receptor_rfc"),
                                   ("both", None)]):
        base, meta = stamped(10 + i)
        if kw is None:
            text, meta = stamped(10 + i,
                                 emisor_rfc=rfc_with_wrong_check_digit(meta["emisor_rfc"]),
                                 receptor_rfc=rfc_with_wrong_check_digit(meta["receptor_rfc"]))
        else:
            text, meta = stamped(10 + i, **{kw: rfc_with_wrong_check_digit(meta[kw])})
        data = text.encode()
        name = f"{who}.xml"
        assert s.put(srv.dav("acme", name), data=data).status_code == 201
        row = index(srv)["/" + name]
        assert row["category"] == "index" and row["protected_until"], row
        assert row["emisor_rfc"] == meta["emisor_rfc"]
        assert "dígito verificador" in (row["reason"] or ""), row  # flagged, still protected
        assert_protected(srv, s, name, data, meta["uuid"])


def _without_declaration(text: str) -> str:
    return text.split("?>", 1)[1].lstrip("\r\n")


def variants() -> list[tuple[str, str, bytes]]:
    """(case, file name, bytes) for one stamped CFDI per case."""
    out = []
    for i, (case, name, make) in enumerate([
        ("80 spaces before the root", "espacios.xml", lambda t: (" " * 80 + _without_declaration(
            t)).encode()),
        ("blank lines and tabs, no .xml", "espacios",
         lambda t: ("\r\n\t \n" * 40 + _without_declaration(t)).encode()),
        ("BOM then whitespace", "bom-espacios.txt", lambda t: b"\xef\xbb\xbf" + (
            " " * 100 + _without_declaration(t)).encode()),
        ("UTF-8 BOM", "bom", lambda t: b"\xef\xbb\xbf" + t.encode()),
        ("UTF-16LE with BOM", "u16le-bom.dat",
         lambda t: t.replace("UTF-8", "UTF-16").encode("utf-16")),
        ("UTF-16BE without BOM", "u16be", lambda t: t.replace("UTF-8", "UTF-16").encode(
            "utf-16-be")),
        ("UTF-16LE without BOM", "u16le", lambda t: t.replace("UTF-8", "UTF-16").encode(
            "utf-16-le")),
        ("UTF-16BE with BOM", "u16be-bom.bin", lambda t: b"\xfe\xff" + t.replace(
            "UTF-8", "UTF-16").encode("utf-16-be")),
        ("UTF-32LE with BOM", "u32le-bom.xml", lambda t: t.replace("UTF-8", "UTF-32").encode(
            "utf-32")),
        ("UTF-32BE without BOM", "u32be", lambda t: t.replace("UTF-8", "UTF-32").encode(
            "utf-32-be")),
        ("UTF-32LE without BOM", "u32le.txt", lambda t: t.replace("UTF-8", "UTF-32").encode(
            "utf-32-le")),
        ("UTF-16 without declaration, spaces first", "u16-sin-decl", lambda t: (
            "  \n" + _without_declaration(t)).encode("utf-16-be")),
    ]):
        text, meta = stamped(30 + i)
        out.append((case, name, make(text), meta["uuid"]))
    return out


def test_a_stamped_cfdi_is_recognised_in_every_encoding_and_layout_xml_allows(make_server):
    srv, s = setup(make_server)
    cases = variants()
    for case, name, data, _uuid in cases:
        assert s.put(srv.dav("acme", name), data=data).status_code == 201, case
    rows = index(srv)
    for case, name, data, uuid in cases:
        row = rows.get("/" + name)
        assert row is not None and row["category"] == "index", (case, row)
        assert row["uuid"] == uuid, case
        assert_protected(srv, s, name, data, uuid)


def test_every_stamped_copy_of_a_uuid_is_protected_and_a_conflict_is_flagged(make_server):
    srv, s = setup(make_server)
    real_text, meta = stamped(50)
    # A fake with the real one's UUID, planted first (different issuer and total).
    fake_text, _ = stamped(51, uuid=meta["uuid"], total="1.00")
    real, fake = real_text.encode(), fake_text.encode()
    assert s.put(srv.dav("acme", "plantado.xml"), data=fake).status_code == 201
    assert s.put(srv.dav("acme", "real.xml"), data=real).status_code == 201
    assert s.put(srv.dav("acme", "copia-exacta.xml"), data=real).status_code == 201
    rows = index(srv)
    assert rows["/real.xml"]["conflict"] is True and rows["/real.xml"]["duplicate_of"]
    assert rows["/copia-exacta.xml"]["duplicate_of"]
    for name, data in (("real.xml", real), ("copia-exacta.xml", real), ("plantado.xml", fake)):
        assert rows["/" + name]["protected_until"], name
        assert_protected(srv, s, name, data, meta["uuid"])
    # Deleting a folder keeps every copy.
    assert s.request("MKCOL", srv.dav("acme", "c/")).status_code == 201
    assert s.request("MOVE", srv.dav("acme", "real.xml"),
                     headers={"Destination": srv.dav("acme", "c/real.xml")}).status_code == 201
    assert s.delete(srv.dav("acme", "c/")).status_code == 207
    assert s.get(srv.dav("acme", "c/real.xml")).content == real
    # The portal's and the CLI's duplicate list shows the conflict.
    out = srv.cli("cfdi", "list", "acme", "--uuid", meta["uuid"], "--json").stdout
    flags = {r["path"]: r["conflict"] for r in json.loads(out)}
    # Both copies of the real one differ from what came first.
    assert flags == {"/plantado.xml": False, "/c/real.xml": True, "/copia-exacta.xml": True}


@pytest.mark.parametrize("head", [b" " * 2000 + b"hola", b"\x00" * 100, b"\xff\xfe" + b"a" * 50])
def test_files_that_only_look_like_xml_at_first_are_stored_and_not_protected(make_server, head):
    srv, s = setup(make_server)
    assert s.put(srv.dav("acme", "raro.bin"), data=head).status_code == 201
    assert s.delete(srv.dav("acme", "raro.bin")).status_code == 204


def test_a_cfdi_without_xml_in_its_name_is_protected_again_when_it_leaves_the_trash(
        make_server):
    srv, s = setup(make_server)
    text, meta = stamped(60)
    data = text.replace("UTF-8", "UTF-16").encode("utf-16-be")
    assert s.put(srv.dav("acme", "factura-sin-extension"), data=data).status_code == 201
    srv.cli("retention", "sweep", "--now", "2045-01-01")  # its period is over: released
    assert s.delete(srv.dav("acme", "factura-sin-extension")).status_code == 204
    (item,) = json.loads(srv.cli("trash", "list", "acme", "--json").stdout)
    srv.cli("trash", "restore", "acme", str(item["id"]))
    assert_protected(srv, s, "factura-sin-extension", data, meta["uuid"])


def _with_addenda(text: str, addenda: str) -> str:
    return text.replace("</cfdi:Comprobante>", f"<cfdi:Addenda>{addenda}</cfdi:Addenda>"
                                               "</cfdi:Comprobante>")


def test_a_stamped_cfdi_is_protected_whatever_its_size(make_server):
    """An Addenda (a retailer's purchase order, a PDF in base64) can make a
    stamped CFDI larger than anything the indexer once parsed (8 MiB): it is
    still a CFDI, in any encoding. A large XML that is no CFDI stays an
    ordinary file."""
    srv, s = setup(make_server)
    text, meta_a = stamped(70)
    big_text = _with_addenda(text, "<pdf>" + ("QUJD" * 250 + "\n") * 12_000 + "</pdf>")
    text, meta_b = stamped(71)
    many = _with_addenda(text, '<linea n="1"/>' * 700_000).replace("UTF-8", "UTF-16")
    cases = [("grande.xml", big_text.encode(), meta_a["uuid"]),
             ("grande-utf16", many.encode("utf-16-be"), meta_b["uuid"])]
    for name, data, _uuid in cases:
        assert len(data) > 9 * 2**20, name
        assert s.put(srv.dav("acme", name), data=data).status_code == 201, name
    rows = index(srv)
    for name, data, uuid in cases:
        row = rows["/" + name]
        assert row["category"] == "index" and row["uuid"] == uuid, (name, row["reason"])
        assert row["size"] == len(data)
        assert_protected(srv, s, name, data, uuid)
    other = b"<?xml version='1.0'?><datos>" + b"<fila a='1'/>" * 900_000 + b"</datos>"
    assert s.put(srv.dav("acme", "datos.xml"), data=other).status_code == 201
    assert index(srv)["/datos.xml"]["category"] == "not-cfdi"
    assert s.delete(srv.dav("acme", "datos.xml")).status_code == 204


@pytest.mark.serial  # measures latencies while a big document is examined
def test_examining_a_huge_cfdi_never_holds_up_the_colleagues_writes(make_server):
    """Reading a CFDI of tens of megabytes takes seconds: it happens before the
    space's lock is taken, so the colleagues' uploads in the same space go on
    meanwhile (they waited for the whole parse, and past the busy timeout got
    503)."""
    import threading
    import time

    srv, s = setup(make_server)
    text, meta = stamped(80)
    data = _with_addenda(text, '<l n="1"/>' * 4_000_000).encode()
    done: list[float] = []

    def upload() -> None:
        t = time.monotonic()
        r = requests.put(srv.dav("acme", "enorme.xml"), data=data, auth=s.auth, timeout=300)
        done.append(time.monotonic() - t)
        assert r.status_code == 201

    big = threading.Thread(target=upload)
    big.start()
    latencies, statuses = [], []
    i = 0
    while big.is_alive():
        t = time.monotonic()
        statuses.append(s.put(srv.dav("acme", f"nota-{i}.txt"), data=b"hola").status_code)
        latencies.append(time.monotonic() - t)
        i += 1
        time.sleep(0.05)
    big.join()
    assert done and done[0] > 3, done  # the examination really took a while
    assert set(statuses) == {201}, statuses
    assert max(latencies) < 1.5, (max(latencies), done)
    assert index(srv)["/enorme.xml"]["uuid"] == meta["uuid"]
    assert_protected(srv, s, "enorme.xml", data, meta["uuid"])


def _latencies_while(srv, s, work) -> tuple[list[float], list[int], float]:
    """Run ``work`` in a thread while a colleague keeps uploading small files."""
    import threading
    import time

    took: list[float] = []

    def run() -> None:
        t = time.monotonic()
        work()
        took.append(time.monotonic() - t)

    th = threading.Thread(target=run)
    th.start()
    latencies, statuses, i = [], [], 0
    while th.is_alive():
        t = time.monotonic()
        statuses.append(s.put(srv.dav("acme", f"colega-{time.monotonic_ns()}-{i}.txt"),
                              data=b"hola").status_code)
        latencies.append(time.monotonic() - t)
        i += 1
        time.sleep(0.05)
    th.join()
    return latencies, statuses, took[0] if took else 0.0


@pytest.mark.serial  # measures latencies while a big document is examined
def test_restoring_a_huge_cfdi_from_the_trash_or_a_version_never_holds_up_colleagues(
        make_server):
    """A trash item or an earlier version that is a huge stamped CFDI is
    examined before the space's lock is taken, like an upload."""
    srv, s = setup(make_server)
    text, meta = stamped(81)
    data = _with_addenda(text, '<l n="1"/>' * 4_000_000).encode()
    assert s.put(srv.dav("acme", "enorme.xml"), data=data).status_code == 201
    srv.cli("retention", "sweep", "--now", "2045-01-01")  # its period is over: released
    assert s.delete(srv.dav("acme", "enorme.xml")).status_code == 204
    (item,) = json.loads(srv.cli("trash", "list", "acme", "--json").stdout)
    latencies, statuses, took = _latencies_while(
        srv, s, lambda: srv.cli("trash", "restore", "acme", str(item["id"])))
    assert took > 3 and set(statuses) == {201}, (took, statuses)
    assert max(latencies) < 1.5, (max(latencies), took)
    assert_protected(srv, s, "enorme.xml", data, meta["uuid"])  # protected again
    srv.cli("retention", "sweep", "--now", "2045-01-01")
    assert s.put(srv.dav("acme", "enorme.xml"), data=b"otra cosa").status_code == 204
    (version,) = json.loads(srv.cli("versions", "list", "acme", "/enorme.xml", "--json").stdout)
    latencies, statuses, took = _latencies_while(
        srv, s, lambda: srv.cli("versions", "restore", "acme", str(version["id"])))
    assert took > 3 and set(statuses) == {201}, (took, statuses)
    assert max(latencies) < 1.5, (max(latencies), took)
    assert_protected(srv, s, "enorme.xml", data, meta["uuid"])
